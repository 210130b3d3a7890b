"""Minor units ↔ Decimal per currency, the way Stripe's API represents them.

Stripe sends every amount as an integer in the currency's *API* minor unit, which is not always
ISO 4217's: the exponent table below follows Stripe (STRIPE-FACTS §3), not ISO. Amounts are never
floats: integers in minor units on the wire, ``Decimal`` quantized to the exponent in the books.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from functools import lru_cache

from beancount_stripe.errors import CurrencyError

__all__ = [
    "ISO_4217_ACTIVE",
    "ISO_4217_WITHDRAWN",
    "THREE_DECIMAL",
    "ZERO_DECIMAL",
    "commodity",
    "exponent",
    "is_known",
    "to_decimal",
    "to_minor",
]

# ISO 4217 list one (active codes), including fund codes and precious metals. Left out on purpose:
# XTS (reserved for testing) and XXX (“no currency”) — neither can be a Stripe balance currency,
# and accepting them would let a test placeholder slip into a real ledger.
ISO_4217_ACTIVE: frozenset[str] = frozenset(
    """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL BSD BTN
    BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN
    ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD
    JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT
    MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG
    QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT
    TND TOP TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED VES VND VUV WST XAF XAG XAU XBA
    XBB XBC XBD XCD XCG XDR XOF XPD XPF XPT XSU XUA YER ZAR ZMW ZWG
    """.split()
)

# Codes withdrawn since Stripe launched (2011). Old balance transactions in an archive can still
# carry them (Stripe settled in HRK until 2023, for instance), so they stay bookable.
ISO_4217_WITHDRAWN: frozenset[str] = frozenset(
    "BYR CUC EEK HRK LTL LVL MRO SLL STD VEF ZMK ZWL".split()
)

_KNOWN: frozenset[str] = ISO_4217_ACTIVE | ISO_4217_WITHDRAWN

# Stripe's zero-decimal currencies (STRIPE-FACTS §3) minus UGX. Stripe lists UGX as zero-decimal
# but *also* says the API represents it as a two-decimal value with a "00" fraction (5 UGX → 500),
# like ISK. The balance-transaction integers follow that representation, so UGX (and ISK, HUF,
# TWD, which behave the same way for payouts) use exponent 2 here; a 0 would inflate UGX 100×.
ZERO_DECIMAL: frozenset[str] = frozenset(
    "BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF VND VUV XAF XOF XPF".split()
)

# Stripe's three-decimal currencies (minor unit 1/1000; Stripe requires the last digit to be 0).
THREE_DECIMAL: frozenset[str] = frozenset("BHD JOD KWD OMR TND".split())

_FIX = (
    "use a three-letter ISO 4217 code such as usd, eur or jpy; if the code is real and new, "
    "report it so the currency table can be updated"
)


def _unknown(code: object, where: str | None) -> CurrencyError:
    return CurrencyError(f"unknown currency code {code!r}", where=where, fix=_FIX)


@lru_cache(maxsize=512)
def _lookup(code: str) -> tuple[str, int] | None:
    """(upper-case code, exponent) for a known code in any letter case; None when unknown."""
    if not code.isascii():  # str.upper() maps e.g. "uſd" to "USD"; only ASCII codes are real
        return None
    upper = code.upper()
    if upper not in _KNOWN:
        return None
    if upper in ZERO_DECIMAL:
        return upper, 0
    if upper in THREE_DECIMAL:
        return upper, 3
    return upper, 2


def _resolve(code: object, where: str | None) -> tuple[str, int]:
    if not isinstance(code, str):
        raise _unknown(code, where)
    found = _lookup(code)
    if found is None:
        raise _unknown(code, where)
    return found


def is_known(code: str) -> bool:
    """True when ``code`` (any letter case) is a currency this module can convert."""
    return isinstance(code, str) and _lookup(code) is not None


def exponent(code: str, where: str | None = None) -> int:
    """Number of decimal places of the API's minor unit for ``code`` (0, 2 or 3)."""
    return _resolve(code, where)[1]


def commodity(code: str, where: str | None = None) -> str:
    """The Beancount commodity for a Stripe currency code: the validated upper-case code."""
    return _resolve(code, where)[0]


def to_decimal(minor: int, code: str, where: str | None = None) -> Decimal:
    """Minor units → Decimal with exactly the currency's places: USD 1000 → 10.00, JPY 500 → 500."""
    exp = _resolve(code, where)[1]
    if type(minor) is not int:  # bool is an int subclass, and floats must never get this far
        raise CurrencyError(
            f"amount {minor!r} in {code} is not an integer number of minor units",
            where=where,
            fix="Stripe API amounts are integers; check the input file was not edited or re-typed",
        )
    return Decimal(minor).scaleb(-exp)


def to_minor(amount: Decimal | str | int, code: str, where: str | None = None) -> int:
    """Decimal (or its text) → integer minor units; refuses anything not exact in the currency."""
    upper, exp = _resolve(code, where)
    if isinstance(amount, Decimal):
        value = amount
    elif isinstance(amount, str):
        try:
            value = Decimal(amount.strip())
        except InvalidOperation:
            raise CurrencyError(
                f"{amount!r} is not a decimal amount",
                where=where,
                fix="write amounts as plain decimals, e.g. 12.50",
            ) from None
    elif type(amount) is int:
        value = Decimal(amount)
    else:
        raise CurrencyError(
            f"amount {amount!r} has type {type(amount).__name__}, not Decimal or str",
            where=where,
            fix="pass a Decimal or its text; floats cannot hold money exactly",
        )
    if not value.is_finite():
        raise CurrencyError(f"amount {amount!r} is not a finite number", where=where)
    # Exact integer arithmetic on the digits: Decimal.scaleb would round beyond 28 digits.
    sign, digits, dec_exp = value.as_tuple()
    coefficient = int("".join(map(str, digits)))
    shift = int(dec_exp) + exp
    if shift >= 0:
        minor = coefficient * 10**shift
    else:
        minor, remainder = divmod(coefficient, 10**-shift)
        if remainder:
            places = f"more than {exp} decimal places" if exp else "a fraction"
            raise CurrencyError(
                f"amount {amount} has {places}, which {upper} cannot hold exactly",
                where=where,
                fix=f"round it to {exp} decimal places" if exp else "use a whole number",
            )
    return -minor if sign else minor
