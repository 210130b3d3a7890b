"""Currency facts the simulator needs to make amounts Stripe would accept (STRIPE-FACTS §3).

Kept inside the simulator on purpose: the simulator is a stand-in for Stripe and must not
borrow the project's own currency module, or a bug there would be mirrored here and go unseen.
"""

from __future__ import annotations

#: Stripe's zero-decimal currencies (exact list from the docs).
ZERO_DECIMAL = frozenset(
    {
        "bif",
        "clp",
        "djf",
        "gnf",
        "jpy",
        "kmf",
        "krw",
        "mga",
        "pyg",
        "rwf",
        "ugx",
        "vnd",
        "vuv",
        "xaf",
        "xof",
        "xpf",
    }
)
#: Three-decimal currencies; the last minor digit must be 0.
THREE_DECIMAL = frozenset({"bhd", "jod", "kwd", "omr", "tnd"})
#: Zero-decimal in reality but sent as two-decimal values with a ``00`` fraction.
TWO_DECIMAL_COMPAT = frozenset({"isk", "ugx"})
#: Charges may carry two decimals, payouts are whole units (multiples of 100).
ZERO_DECIMAL_PAYOUTS = frozenset({"huf", "twd"})

#: Rough units of each currency per US dollar; only used to draw plausible amounts.
PER_USD: dict[str, float] = {
    "usd": 1.0,
    "eur": 0.92,
    "gbp": 0.79,
    "cad": 1.36,
    "aud": 1.52,
    "nzd": 1.65,
    "chf": 0.88,
    "sek": 10.5,
    "nok": 10.7,
    "dkk": 6.9,
    "pln": 4.0,
    "czk": 23.0,
    "huf": 360.0,
    "ron": 4.6,
    "bgn": 1.8,
    "isk": 138.0,
    "jpy": 150.0,
    "krw": 1350.0,
    "twd": 32.0,
    "hkd": 7.8,
    "sgd": 1.35,
    "inr": 83.0,
    "idr": 16000.0,
    "thb": 36.0,
    "myr": 4.7,
    "vnd": 25000.0,
    "mxn": 17.0,
    "brl": 5.0,
    "clp": 950.0,
    "pyg": 7300.0,
    "aed": 3.67,
    "bhd": 0.376,
    "jod": 0.709,
    "kwd": 0.307,
    "omr": 0.385,
    "tnd": 3.1,
    "ugx": 3700.0,
    "xof": 600.0,
    "xaf": 600.0,
    "bif": 2850.0,
}


def minor_per_major(currency: str) -> int:
    """How many API minor units make one major unit, as Stripe represents the currency."""
    c = currency.lower()
    if c in THREE_DECIMAL:
        return 1000
    if c in TWO_DECIMAL_COMPAT:
        return 100
    if c in ZERO_DECIMAL:
        return 1
    return 100


def amount_quantum(currency: str) -> int:
    """Every amount in this currency must be a multiple of this many minor units."""
    c = currency.lower()
    if c in TWO_DECIMAL_COMPAT:
        return 100
    if c in THREE_DECIMAL:
        return 10
    return 1


def payout_quantum(currency: str) -> int:
    """Payout amounts must be a multiple of this (HUF/TWD payouts are whole units)."""
    c = currency.lower()
    if c in ZERO_DECIMAL_PAYOUTS:
        return 100
    return amount_quantum(c)


def per_usd(currency: str) -> float:
    """Approximate exchange rate used for drawing amounts (1.0 for unknown currencies)."""
    return PER_USD.get(currency.lower(), 1.0)
