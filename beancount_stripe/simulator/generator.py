"""Deterministic Stripe balance-transaction histories for the simulator.

A history is what Stripe would hold for one account: balance transactions (BTs) in Stripe's wire
shape plus the source objects behind them (charges, refunds, payouts, disputes, …) so that
``expand[]=data.source`` has something to return. Everything is drawn from one
``random.Random(seed)``; the wall clock is never read, so a seed is a reproducible test case.

The engine walks a timeline of slots (one BT per slot) and, at each slot, emits either a due
scheduled event (an automatic payout, a payout failure, a minimum-balance release), one of the
"mandatory" types still missing (so that a history of 200+ BTs covers every known type), or an
ordinary event drawn by weight (mostly charges). Automatic payouts sweep every available,
not-yet-paid-out BT of their currency, so ``Σ net`` of a payout's members equals its amount, which
is what ``GET /v1/balance_transactions?payout=po_…`` reconciliation relies on.
"""

from __future__ import annotations

import base64
import datetime as dt
import heapq
import json
import math
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from .money import amount_quantum, minor_per_major, payout_quantum, per_usd

DAY = 86400

# --- The type universe (mirrors balance_transaction_type_enum_history.json) -------------------

LATEST_ENUM: tuple[str, ...] = (
    "adjustment",
    "advance",
    "advance_funding",
    "anticipation_repayment",
    "application_fee",
    "application_fee_refund",
    "charge",
    "climate_order_purchase",
    "climate_order_refund",
    "connect_collection_transfer",
    "contribution",
    "fee_credit_funding",
    "inbound_transfer",
    "inbound_transfer_reversal",
    "issuing_authorization_hold",
    "issuing_authorization_release",
    "issuing_dispute",
    "issuing_dispute_provisional_credit",
    "issuing_dispute_provisional_credit_reversal",
    "issuing_transaction",
    "obligation_outbound",
    "obligation_reversal_inbound",
    "payment",
    "payment_failure_refund",
    "payment_network_reserve_hold",
    "payment_network_reserve_release",
    "payment_refund",
    "payment_reversal",
    "payment_unreconciled",
    "payout",
    "payout_cancel",
    "payout_failure",
    "payout_minimum_balance_hold",
    "payout_minimum_balance_release",
    "refund",
    "refund_failure",
    "reserve_hold",
    "reserve_release",
    "reserve_transaction",
    "reserved_funds",
    "stripe_balance_payment_debit",
    "stripe_balance_payment_debit_reversal",
    "stripe_fee",
    "stripe_fx_fee",
    "tax_fee",
    "tax_fund",
    "topup",
    "topup_reversal",
    "transfer",
    "transfer_cancel",
    "transfer_failure",
    "transfer_refund",
)
REMOVED_2024: tuple[str, ...] = (
    "obligation_inbound",
    "obligation_payout",
    "obligation_payout_failure",
    "obligation_reversal_outbound",
)
DOCS_ONLY: tuple[str, ...] = ("balance_transfer_inbound", "balance_transfer_outbound")
LEGACY: tuple[str, ...] = (
    "validation",
    "adjusted_for_overdraft_transaction",
    "recipient_transfer",
    "recipient_transfer_cancel",
    "recipient_transfer_failure",
    "climate_reservation_purchase",
    "climate_reservation_refund",
    "transferred_to_balance_transaction",
    "issuing_disbursement",
    "issuing_dispute_fraud_liability_debit",
)
CAPITAL: tuple[str, ...] = (
    "financing_payout",
    "financing_paydown",
    "financing_payout_reversal",
    "financing_paydown_reversal",
)
ALL_TYPES: tuple[str, ...] = LATEST_ENUM + REMOVED_2024 + DOCS_ONLY + LEGACY + CAPITAL

#: Variants a big history must also show (type:reporting_category or a quirk name).
MANDATORY_VARIANTS: tuple[str, ...] = (
    "adjustment:dispute",
    "adjustment:dispute_reversal",
    "adjustment:other_adjustment",
    "refund:partial_capture_reversal",
    "refund:legacy_fee",
    "charge:fx",
    "stripe_fee:network_cost",
    "payout:manual",
    "_cluster",
    "_midnight",
)

#: Size from which a history is guaranteed to contain every type and variant above.
FULL_COVERAGE_SIZE = 200


def _ts(d: dt.date) -> int:
    return int(dt.datetime(d.year, d.month, d.day, tzinfo=dt.UTC).timestamp())


#: When a type existed, so that a long history places it plausibly (ignored when impossible).
TYPE_WINDOWS: dict[str, tuple[int | None, int | None]] = {
    **{t: (None, _ts(dt.date(2024, 4, 10))) for t in REMOVED_2024},
    "payment_unreconciled": (_ts(dt.date(2023, 11, 2)), None),
    "climate_order_purchase": (_ts(dt.date(2023, 11, 30)), None),
    "climate_order_refund": (_ts(dt.date(2023, 11, 30)), None),
    "payment_network_reserve_hold": (_ts(dt.date(2023, 12, 7)), None),
    "payment_network_reserve_release": (_ts(dt.date(2023, 12, 7)), None),
    "payout_minimum_balance_hold": (_ts(dt.date(2024, 12, 18)), None),
    "payout_minimum_balance_release": (_ts(dt.date(2024, 12, 18)), None),
    "stripe_balance_payment_debit": (_ts(dt.date(2025, 3, 31)), None),
    "stripe_balance_payment_debit_reversal": (_ts(dt.date(2025, 3, 31)), None),
    "reserve_hold": (_ts(dt.date(2026, 1, 28)), None),
    "reserve_release": (_ts(dt.date(2026, 1, 28)), None),
    "fee_credit_funding": (_ts(dt.date(2026, 4, 23)), None),
    "inbound_transfer": (_ts(dt.date(2026, 4, 23)), None),
    "inbound_transfer_reversal": (_ts(dt.date(2026, 4, 23)), None),
    "tax_fund": (_ts(dt.date(2026, 6, 24)), None),
    "issuing_dispute_provisional_credit": (_ts(dt.date(2026, 7, 1)), None),
    "issuing_dispute_provisional_credit_reversal": (_ts(dt.date(2026, 7, 1)), None),
}


#: Types whose window closes inside plausible histories: placed first while they still existed.
_CLOSING = tuple(t for t, (_, hi) in TYPE_WINDOWS.items() if hi is not None)


@dataclass(frozen=True)
class _Simple:
    """A type whose BT needs no bookkeeping beyond a sign, a category and maybe a source."""

    category: str
    sign: int  # +1 credit, -1 debit, 0 either
    source: str | None  # key of _SOURCE_KINDS, or None for a null source
    description: str | None
    scale: float  # size relative to a typical charge


# Categories marked "inferred" are not documented by Stripe for that type (see STRIPE-FACTS §1.3).
_SIMPLE: dict[str, _Simple] = {
    "advance": _Simple("advance", +1, None, "Advance", 2.0),
    "advance_funding": _Simple("advance_funding", -1, None, "Advance funding", 2.0),
    "anticipation_repayment": _Simple("anticipation_repayment", -1, None, None, 1.0),
    "climate_order_purchase": _Simple(
        "climate_order_purchase", -1, "climate_order", "Frontier carbon removal order", 0.5
    ),
    "climate_order_refund": _Simple(
        "climate_order_refund", +1, "climate_order", "Frontier carbon removal order refund", 0.5
    ),
    "climate_reservation_purchase": _Simple(
        "climate_order_purchase", -1, "climate_order", "Carbon removal reservation", 0.5
    ),
    "climate_reservation_refund": _Simple(
        "climate_order_refund", +1, "climate_order", "Carbon removal reservation refund", 0.5
    ),
    "connect_collection_transfer": _Simple(
        "connect_collection_transfer", -1, "connect_collection_transfer", None, 0.5
    ),
    "contribution": _Simple("contribution", -1, None, "Stripe Climate contribution", 0.05),
    "fee_credit_funding": _Simple("fee", +1, None, "Stripe fee credit", 0.3),  # inferred
    "inbound_transfer": _Simple("topup", +1, "inbound_transfer", "Inbound transfer", 3.0),
    "inbound_transfer_reversal": _Simple(
        "topup_reversal", -1, "inbound_transfer", "Inbound transfer reversal", 1.0
    ),
    "issuing_authorization_hold": _Simple(
        "issuing_authorization_hold", -1, "issuing_authorization", None, 0.8
    ),
    "issuing_authorization_release": _Simple(
        "issuing_authorization_release", +1, "issuing_authorization", None, 0.8
    ),
    "issuing_transaction": _Simple("issuing_transaction", -1, "issuing_transaction", None, 0.8),
    "issuing_dispute": _Simple("issuing_dispute", +1, "issuing_dispute", None, 0.5),
    "issuing_dispute_provisional_credit": _Simple(
        "issuing_dispute_provisional_credit", +1, "issuing_dispute", None, 0.5
    ),
    "issuing_dispute_provisional_credit_reversal": _Simple(
        "issuing_dispute_provisional_credit_reversal", -1, "issuing_dispute", None, 0.5
    ),
    "issuing_disbursement": _Simple("issuing_disbursement", +1, None, "Issuing credit", 0.2),
    "issuing_dispute_fraud_liability_debit": _Simple(
        "issuing_dispute_fraud_liability_debit", -1, "issuing_dispute", None, 0.5
    ),
    "obligation_outbound": _Simple("other_adjustment", -1, None, None, 0.5),
    "obligation_reversal_inbound": _Simple("other_adjustment", +1, None, None, 0.5),
    "obligation_inbound": _Simple("obligation", +1, None, None, 0.5),
    "obligation_payout": _Simple("obligation", -1, None, None, 0.5),
    "obligation_payout_failure": _Simple("obligation", +1, None, None, 0.5),
    "obligation_reversal_outbound": _Simple("obligation", -1, None, None, 0.5),
    "payment_network_reserve_hold": _Simple(
        "payment_network_reserve_hold", -1, None, "Payment network reserve", 1.0
    ),
    "payment_network_reserve_release": _Simple(
        "payment_network_reserve_release", +1, None, "Payment network reserve release", 1.0
    ),
    "payment_unreconciled": _Simple(
        "unreconciled_customer_funds", +1, "cash_balance", "Unreconciled customer funds", 1.0
    ),
    "transferred_to_balance_transaction": _Simple(
        "unreconciled_customer_funds", +1, "cash_balance", "Unreconciled customer funds", 1.0
    ),
    "reserve_hold": _Simple("risk_reserved_funds", -1, None, "Reserve hold", 1.0),  # inferred
    "reserve_release": _Simple("risk_reserved_funds", +1, None, "Reserve release", 1.0),
    "reserve_transaction": _Simple(
        "connect_reserved_funds", 0, "reserve_transaction", "Connect reserve", 0.5
    ),
    "reserved_funds": _Simple("risk_reserved_funds", 0, None, "Risk reserve", 1.0),
    "stripe_balance_payment_debit": _Simple(
        "other_adjustment", -1, "payment", "Payment to platform from Stripe balance", 0.5
    ),  # inferred
    "stripe_balance_payment_debit_reversal": _Simple(
        "other_adjustment", +1, "payment", "Payment to platform reversed", 0.5
    ),  # inferred
    "tax_fund": _Simple("tax", -1, None, "Stripe Tax funding", 0.3),  # inferred
    "balance_transfer_inbound": _Simple("other_adjustment", +1, None, "Balance transfer", 0.5),
    "balance_transfer_outbound": _Simple("other_adjustment", -1, None, "Balance transfer", 0.5),
    "adjusted_for_overdraft_transaction": _Simple("dispute", -1, None, None, 0.3),
    "stripe_fx_fee": _Simple("fee", -1, None, "Currency conversion fee", 0.05),
    "tax_fee": _Simple("tax", -1, None, "Tax on Stripe fees", 0.02),
    "topup": _Simple("topup", +1, "topup", "Top-up", 5.0),
}

#: id prefix and ``object`` name of source kinds used by simple types.
_SOURCE_KINDS: dict[str, tuple[str, str]] = {
    "climate_order": ("climorder", "climate.order"),
    "connect_collection_transfer": ("cct", "connect_collection_transfer"),
    "inbound_transfer": ("ibt", "treasury.inbound_transfer"),
    "issuing_authorization": ("iauth", "issuing.authorization"),
    "issuing_transaction": ("ipi", "issuing.transaction"),
    "issuing_dispute": ("idp", "issuing.dispute"),
    "cash_balance": ("ccsbtxn", "customer_cash_balance_transaction"),
    "reserve_transaction": ("rtx", "reserve_transaction"),
    "topup": ("tu", "topup"),
    "payment": ("py", "charge"),
}

#: Ordinary activity: kind → weight. "rare" picks one of _RARE_TYPES.
_NORMAL_WEIGHTS: tuple[tuple[str, float], ...] = (
    ("charge", 60.0),
    ("charge:fx", 2.0),
    ("payment", 5.0),
    ("refund", 6.0),
    ("financing_paydown", 5.0),  # only while a loan is outstanding
    ("adjustment:dispute", 0.8),
    ("adjustment:dispute_reversal", 0.4),
    ("stripe_fee", 1.5),
    ("stripe_fx_fee", 0.5),
    ("tax_fee", 0.5),
    ("application_fee", 0.6),
    ("application_fee_refund", 0.1),
    ("transfer", 0.6),
    ("transfer_refund", 0.08),
    ("topup", 0.2),
    ("payout:manual", 0.15),
    ("rare", 1.2),
)


def _cumulative(with_loan: bool) -> tuple[list[str], list[float]]:
    kinds, cum, total = [], [], 0.0
    for kind, weight in _NORMAL_WEIGHTS:
        if kind == "financing_paydown" and not with_loan:
            continue
        total += weight
        kinds.append(kind)
        cum.append(total)
    return kinds, cum


_WITH_LOAN = _cumulative(True)
_WITHOUT_LOAN = _cumulative(False)

_RARE_TYPES: tuple[str, ...] = tuple(
    t
    for t in LATEST_ENUM
    if t
    not in {
        "charge",
        "payment",
        "refund",
        "adjustment",
        "stripe_fee",
        "stripe_fx_fee",
        "tax_fee",
        "application_fee",
        "application_fee_refund",
        "transfer",
        "transfer_refund",
        "topup",
        "payout",
        "payout_cancel",
        "payout_failure",
        "payout_minimum_balance_hold",
        "payout_minimum_balance_release",
    }
)

#: Events that take money out of the balance; they wait for headroom so balances stay >= 0.
_DEBITS = frozenset(
    {t for t, spec in _SIMPLE.items() if spec.sign < 0}
    | {
        "refund",
        "refund:partial_capture_reversal",
        "refund:legacy_fee",
        "payment_refund",
        "payment_failure_refund",
        "payment_reversal",
        "adjustment:dispute",
        "stripe_fee",
        "stripe_fee:network_cost",
        "application_fee_refund",
        "transfer",
        "recipient_transfer",
        "topup_reversal",
        "financing_paydown",
        "financing_payout_reversal",
        "payout_minimum_balance_hold",
        "payout:manual",
    }
)

#: Events that become a debit when what they reverse does not exist yet (see ``_do``).
_MAYBE_DEBITS = frozenset(
    {
        "transfer_cancel",
        "transfer_failure",
        "transfer_refund",
        "recipient_transfer_cancel",
        "recipient_transfer_failure",
        "adjustment:dispute_reversal",
        "refund_failure",
        "payout_failure",
        "payout_cancel",
    }
)
_NEEDS_HEADROOM = _DEBITS | _MAYBE_DEBITS

_FX_PRESENTMENT = ("eur", "gbp", "cad", "aud", "jpy", "chf", "usd", "sek")
_FIRST = ("Jenny", "Amir", "Sofia", "Kenji", "Lena", "Omar", "Priya", "Lucas", "Mei", "Noah")
_FIRST += ("Fatima", "Jonas", "Aiko", "Carlos", "Hana", "Yusuf", "Elena", "Tariq", "Ines", "Ravi")
_LAST = ("Rosen", "Haddad", "Rossi", "Tanaka", "Fischer", "Nasser", "Patel", "Silva", "Chen")
_LAST += ("Okafor", "Kim", "Novak", "Dubois", "Sato", "Larsen", "Moreau", "Kowalski", "Ali")
_PRODUCTS = (
    "Starter plan",
    "Pro plan (monthly)",
    "Pro plan (annual)",
    "Consulting hour",
    "Gift card",
    "Workshop ticket",
    "Shipping",
    "Replacement part",
)
_CARD_BRANDS = ("visa", "mastercard", "amex", "visa", "mastercard")
_LOCAL_METHODS = ("sepa_debit", "us_bank_account", "ideal", "bancontact", "acss_debit")


# --- public data --------------------------------------------------------------------------------


@dataclass
class History:
    """One account's balance transactions (chronological) and the objects behind them.

    ``payout_members`` maps each *automatic* payout id to the ids of the BTs it paid out,
    ending with the payout's own ``payout`` BT (Σ net of the others == the payout amount).
    """

    account_id: str
    transactions: list[dict[str, Any]]
    objects: dict[str, dict[str, Any]]
    payout_members: dict[str, list[str]] = field(default_factory=dict)
    _engine: _Engine | None = field(default=None, repr=False, compare=False)

    @property
    def newest_created(self) -> int | None:
        """``created`` of the newest BT, or None for an empty history."""
        return max((t["created"] for t in self.transactions), default=None)

    def extend(self, count: int, until: dt.datetime | None = None) -> list[dict[str, Any]]:
        """Append ``count`` new deterministic BTs, all strictly newer than the current newest.

        With ``until`` the new BTs are spread up to that instant (naive means UTC); without it
        they follow the history's usual pace. Returns the new BTs (also appended in place).
        """
        if count < 0:
            raise ValueError("count must be >= 0")
        if self._engine is None:
            self._engine = _Engine.for_existing(self)
        until_ts = None
        if until is not None:
            if until.tzinfo is None:
                until = until.replace(tzinfo=dt.UTC)
            until_ts = int(until.timestamp())
        return self._engine.extend(count, until_ts)

    @classmethod
    def from_transactions(
        cls, account_id: str, transactions: Iterable[dict[str, Any]], *, seed: int = 0
    ) -> History:
        """Wrap recorded BTs (e.g. a fixture file): expanded sources become ``objects``."""
        objects: dict[str, dict[str, Any]] = {}
        rows: list[dict[str, Any]] = []
        seen: set[str] = set()
        for raw in transactions:
            bt = dict(raw)
            if not isinstance(bt.get("id"), str) or not isinstance(bt.get("created"), int):
                raise ValueError(f"not a balance transaction: {str(raw)[:80]}")
            if bt["id"] in seen:
                continue
            seen.add(bt["id"])
            src = bt.get("source")
            if isinstance(src, dict) and isinstance(src.get("id"), str):
                objects[src["id"]] = src
                bt["source"] = src["id"]
            bt.setdefault("object", "balance_transaction")
            bt.setdefault("available_on", bt["created"])
            bt.setdefault("fee", 0)
            bt.setdefault("fee_details", [])
            bt.setdefault("net", bt.get("amount", 0) - bt["fee"])
            bt["currency"] = str(bt.get("currency", "usd")).lower()
            rows.append(bt)
        rows.sort(key=lambda t: (t["created"], t["id"]))
        history = cls(account_id=account_id, transactions=rows, objects=objects)
        history._engine = _Engine.for_existing(history, seed=seed)
        return history


def load_transactions(path: str | Path) -> list[dict[str, Any]]:
    """Read BTs from a JSON list envelope, a bare JSON array, or JSON Lines."""
    text = Path(path).read_text(encoding="utf-8")
    stripped = text.lstrip()
    if stripped.startswith("[") or stripped.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("data"), list):
            return list(data["data"])
        if isinstance(data, list):
            return data
        if isinstance(data, dict) and data.get("object") == "balance_transaction":
            return [data]
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{n}: not JSON: {exc.msg}") from exc
    return rows


def generate_history(
    *,
    account_id: str,
    seed: int,
    size: int,
    start: dt.date,
    end: dt.date,
    currencies: Sequence[str] = ("usd",),
    payout_every_days: int = 7,
    products: Sequence[str] | None = None,
    application: str | None = None,
    statement_descriptor: str | None = None,
) -> History:
    """Generate ``size`` BTs between ``start`` 00:00 UTC and ``end`` 23:59:59 UTC.

    With ``size >= 200`` every type in ``ALL_TYPES`` and every quirk in ``MANDATORY_VARIANTS``
    appears at least once. ``application`` (a ``ca_…`` id) adds platform application-fee items
    to some charges, as on a Connect platform's connected account.
    """
    if size < 0:
        raise ValueError("size must be >= 0")
    if end < start:
        raise ValueError("end must not be before start")
    if not currencies:
        raise ValueError("at least one currency is needed")
    if payout_every_days < 1:
        raise ValueError("payout_every_days must be >= 1")
    engine = _Engine(
        account_id=account_id,
        seed=seed,
        currencies=[c.lower() for c in currencies],
        start_ts=_ts(start),
        end_ts=_ts(end) + DAY - 1,
        payout_every_days=payout_every_days,
        products=tuple(products) if products else _PRODUCTS,
        application=application,
        statement_descriptor=statement_descriptor,
        size_hint=size,
    )
    history = History(
        account_id=account_id,
        transactions=engine.transactions,
        objects=engine.objects,
        payout_members=engine.payout_members,
        _engine=engine,
    )
    engine.generate(size, mandatory=size >= FULL_COVERAGE_SIZE)
    return history


def balance(history: History, now: int) -> dict[str, Any]:
    """Stripe's ``balance`` object for ``history`` as of unix time ``now``.

    Invariant the project's sync relies on: for every currency,
    ``available + pending == Σ net`` of all BTs created at or before ``now``; ``available`` is
    the part with ``available_on <= now``. (Simplification: issuing and reserve balances are
    not split out; every BT counts towards the payments balance.)
    """
    available: Counter[str] = Counter()
    pending: Counter[str] = Counter()
    currencies: set[str] = set()
    for bt in history.transactions:
        if bt["created"] > now:
            continue
        cur = bt["currency"]
        currencies.add(cur)
        if bt["available_on"] <= now:
            available[cur] += bt["net"]
        else:
            pending[cur] += bt["net"]
    return balance_object(sorted(currencies), available, pending)


def balance_object(
    currencies: Sequence[str], available: dict[str, int], pending: dict[str, int]
) -> dict[str, Any]:
    """Assemble the wire shape of a ``balance`` (shared by :func:`balance` and the server)."""

    def amounts(values: dict[str, int]) -> list[dict[str, Any]]:
        return [
            {"amount": values.get(c, 0), "currency": c, "source_types": {"card": values.get(c, 0)}}
            for c in currencies
        ]

    return {
        "object": "balance",
        "livemode": False,
        "available": amounts(available),
        "pending": amounts(pending),
        "connect_reserved": [{"amount": 0, "currency": c} for c in currencies],
    }


# --- the engine ----------------------------------------------------------------------------------


class _Ids:
    """Stripe-shaped ids from a stream seeded by (account, seed): deterministic and unique.

    The account id is part of the seed, so two accounts never share ids (144 random bits).
    """

    def __init__(self, account_id: str, seed: int, salt: str = "") -> None:
        self._rng = random.Random(f"ids|{account_id}|{seed}|{salt}")
        self.counter = 0

    def new(self, prefix: str, length: int = 24) -> str:
        self.counter += 1
        raw = self._rng.getrandbits(144).to_bytes(18, "big")
        return f"{prefix}_1{base64.b64encode(raw, altchars=b'xQ').decode('ascii')[: length - 1]}"


@dataclass
class _Unswept:
    available_on: int
    id: str
    net: int


def _midnight(ts: int) -> int:
    return ts - ts % DAY


class _Engine:
    """Mutable generation state; kept on the History so ``extend`` continues deterministically."""

    def __init__(
        self,
        *,
        account_id: str,
        seed: int,
        currencies: list[str],
        start_ts: int,
        end_ts: int,
        payout_every_days: int,
        products: Sequence[str],
        application: str | None,
        statement_descriptor: str | None,
        size_hint: int,
        salt: str = "",
    ) -> None:
        self.account_id = account_id
        self.rng = random.Random(f"{seed}|{account_id}|{salt}")
        self.ids = _Ids(account_id, seed, salt)
        self.currencies = currencies
        self.start_ts = start_ts
        self.end_ts = end_ts
        self.as_of = end_ts
        self.every = payout_every_days * DAY
        self.products = tuple(products)
        self.application = application
        self.statement_descriptor = statement_descriptor or "STRIPE SIM"
        self.mean_gap = max(1.0, (end_ts - start_ts) / max(1, size_hint))
        self.transactions: list[dict[str, Any]] = []
        self.objects: dict[str, dict[str, Any]] = {}
        self.payout_members: dict[str, list[str]] = {}
        self.last = start_ts
        self.forced = False  # True while missing mandatory types must be placed at any cost
        self.heap: list[tuple[int, int, str, tuple[Any, ...]]] = []
        self._seq = 0
        self.unswept: dict[str, list[_Unswept]] = {c: [] for c in currencies}
        self.net_total: Counter[str] = Counter()
        self.charges: dict[str, list[str]] = {c: [] for c in currencies}
        self.payments: dict[str, list[str]] = {c: [] for c in currencies}
        self.refundable: dict[str, int] = {}
        self.refunds: list[str] = []
        self.open_disputes: list[str] = []
        self.payouts: list[str] = []  # payouts that may still fail or be canceled
        self.transfers: list[str] = []
        self.app_fees: list[str] = []
        self.topups: list[str] = []
        self.auths: list[str] = []
        self.loan: dict[str, Any] | None = None
        self.loan_remaining = 0
        self.paydown_amounts: list[int] = []
        self.bt_amount: dict[str, int] = {}  # charge id -> settlement amount of its BT
        self.dispute_bt: dict[str, tuple[int, str]] = {}  # dispute id -> (amount, currency)
        self.refund_bt: dict[str, tuple[int, str]] = {}  # refund id -> (amount, currency)
        self.banks: dict[str, str] = {}
        self.app_id = application or f"ca_{self.ids.new('x')[2:]}"
        self.destinations = [f"acct_{self.ids.new('x', 16)[2:]}" for _ in range(3)]
        self.order_no = 1000 + self.rng.randrange(9000)
        n_customers = max(8, min(400, size_hint // 15))
        self.customers = [self._new_customer() for _ in range(n_customers)]
        self._push(self._next_payout_time(start_ts), "run", ())

    @classmethod
    def for_existing(cls, history: History, seed: int = 0) -> _Engine:
        """An engine that continues a history it did not generate (a fixture)."""
        created = [t["created"] for t in history.transactions]
        counts = Counter(t["currency"] for t in history.transactions)
        currencies = [c for c, _ in counts.most_common()] or ["usd"]
        start = min(created, default=_ts(dt.date(2024, 1, 1)))
        end = max(created, default=start)
        engine = cls(
            account_id=history.account_id,
            seed=seed,
            currencies=currencies,
            start_ts=start,
            end_ts=end,
            payout_every_days=7,
            products=_PRODUCTS,
            application=None,
            statement_descriptor=None,
            size_hint=max(1, len(created)),
            salt="continued",
        )
        for customer in engine.customers:
            history.objects.setdefault(customer["id"], customer)
        if len(created) < 2:
            engine.mean_gap = 3600.0  # nothing to learn a pace from: about one BT an hour
        engine.transactions = history.transactions
        engine.objects = history.objects
        engine.payout_members = history.payout_members
        engine.last = end
        engine.heap = []
        engine._push(engine._next_payout_time(end), "run", ())
        return engine

    # --- timeline -------------------------------------------------------------------------------

    def _push(self, when: int, kind: str, args: tuple[Any, ...]) -> None:
        self._seq += 1
        heapq.heappush(self.heap, (when, self._seq, kind, args))

    def _next_payout_time(self, after: int) -> int:
        day = _midnight(after) + self.every
        offset = 0 if self.rng.random() < 0.5 else self.rng.randrange(3600, 8 * 3600)
        return day + offset

    def _slots(self, n: int, lo: int, hi: int) -> list[int]:
        """``n`` sorted instants in [lo, hi] with same-second clusters and midnight instants."""
        slots = sorted(self.rng.randint(lo, hi) for _ in range(n))
        for i in range(1, n):
            r = self.rng.random()
            if r < 0.02:
                slots[i] = slots[i - 1]
            elif r < 0.07 and _midnight(slots[i]) > slots[i - 1]:
                slots[i] = _midnight(slots[i])
        if slots and not any(s % DAY == 0 for s in slots):
            slots[0] = _midnight(slots[0])
        return slots

    def generate(self, size: int, *, mandatory: bool) -> None:
        slots = self._slots(size, self.start_ts, self.end_ts)
        pending: list[str] = []
        if mandatory:
            pending = list(ALL_TYPES) + list(MANDATORY_VARIANTS)
            self.rng.shuffle(pending)
        self._run(slots, pending)

    def extend(self, count: int, until: int | None) -> list[dict[str, Any]]:
        newest = max((t["created"] for t in self.transactions), default=self.start_ts - 1)
        if until is not None:
            if until <= newest:
                raise ValueError("until must be after the newest balance transaction")
            slots = sorted(self.rng.randint(newest + 1, until) for _ in range(count))
            self.as_of = max(self.as_of, until)
        else:
            slots, t = [], newest
            for _ in range(count):
                t += max(1, int(self.rng.expovariate(1.0 / self.mean_gap)))
                slots.append(t)
            if slots:
                self.as_of = max(self.as_of, slots[-1])
        self.last = max(self.last, newest + 1)
        first = len(self.transactions)
        self._run(slots, [])
        return self.transactions[first:]

    def _run(self, slots: list[int], pending: list[str]) -> None:
        begin = len(self.transactions)
        target = begin + len(slots)
        warmup = min(10, len(slots) // 20)
        while len(self.transactions) < target:
            k = len(self.transactions) - begin
            t = slots[k]
            remaining = target - len(self.transactions)
            forced = self.forced = bool(pending) and remaining <= 1.5 * len(pending) + 12
            bts: list[dict[str, Any]] = []
            if not forced and self.heap and self.heap[0][0] <= t:
                when, _, kind, args = heapq.heappop(self.heap)
                bts = self._scheduled(kind, args, when, remaining)
                if not bts:
                    continue
            elif pending and (
                forced or (k >= warmup and self.rng.random() < self._urge(pending, t, remaining))
            ):
                bts = self._mandatory(pending, t, remaining, forced)
            if not bts:
                bts = self._normal(t, remaining)
            for bt in bts:
                self._emit(bt)
            if pending:
                covered = self._covers(bts)
                pending[:] = [p for p in pending if p not in covered]

    def _urge(self, pending: list[str], t: int, remaining: int) -> float:
        """Chance that this slot places a missing type: higher while a type's window closes."""
        base = 1.6 * len(pending) / remaining
        for key in _CLOSING:
            if key in pending and self._in_window(key, t):
                return max(base, 0.5)
        return base

    def _covers(self, bts: list[dict[str, Any]]) -> set[str]:
        keys: set[str] = set()
        for bt in bts:
            typ = bt["type"]
            keys.add(typ)
            keys.add(f"{typ}:{bt['reporting_category']}")
            if bt["exchange_rate"] is not None:
                keys.add(f"{typ}:fx")
            if typ == "refund" and bt["fee"] < 0:
                keys.add("refund:legacy_fee")
            if typ == "payout" and not self.objects[bt["source"]]["automatic"]:
                keys.add("payout:manual")
            if bt["created"] % DAY == 0:
                keys.add("_midnight")
        if len(bts) >= 3 and len({b["created"] for b in bts}) == 1:
            keys.add("_cluster")
        return keys

    def _emit(self, bt: dict[str, Any]) -> None:
        self.transactions.append(bt)
        self.last = max(self.last, bt["created"])
        self.net_total[bt["currency"]] += bt["net"]

    def _at(self, t: int) -> int:
        return max(self.last, t)

    # --- choosing what happens ------------------------------------------------------------------

    def _pick_currency(self) -> str:
        if len(self.currencies) == 1 or self.rng.random() < 0.7:
            return self.currencies[0]
        return self.rng.choice(self.currencies[1:])

    def _in_window(self, key: str, t: int) -> bool:
        base = key.split(":", 1)[0]
        lo, hi = TYPE_WINDOWS.get(base, (None, None))
        if (lo is not None and lo > self.end_ts) or (hi is not None and hi < self.start_ts):
            return True  # the window lies outside this history: place it anywhere
        return (lo is None or t >= lo) and (hi is None or t <= hi)

    def _mandatory(
        self, pending: list[str], t: int, budget: int, forced: bool
    ) -> list[dict[str, Any]]:
        # types whose window closes go first, so they land while they still existed
        closing = [k for k in pending if k in _CLOSING]
        for key in closing + [k for k in pending if k not in closing]:
            if not forced and not self._in_window(key, t):
                continue
            if (
                not forced
                and key not in closing
                and key in _NEEDS_HEADROOM
                and not self._has_headroom(self.currencies[0])
            ):
                continue
            if key == "_midnight" and not forced and _midnight(t) < self.last:
                continue
            bts = self._do(key, t, budget, self.currencies[0], mandatory=True)
            if bts:
                return bts
        return []

    def _normal(self, t: int, budget: int) -> list[dict[str, Any]]:
        table = _WITH_LOAN if self.loan and self.loan_remaining > 0 else _WITHOUT_LOAN
        kind = self.rng.choices(table[0], cum_weights=table[1])[0]
        if kind == "rare":
            options = [k for k in _RARE_TYPES if self._in_window(k, t)]
            kind = self.rng.choice(options)
        cur = self.loan["currency"] if kind == "financing_paydown" and self.loan else None
        cur = cur or self._pick_currency()
        if kind in _NEEDS_HEADROOM and not self._has_headroom(cur):
            kind = "charge"
        bts = self._do(kind, t, budget, cur, mandatory=False)
        return bts or self._charge(t, self._pick_currency())

    def _do(self, key: str, t: int, budget: int, cur: str, *, mandatory: bool) -> list[dict]:
        """Emit the event named ``key``, or its prerequisite when it cannot happen yet."""
        typ, _, variant = key.partition(":")
        if key == "_cluster":
            if budget < 3:
                return []
            at = self._at(t)
            return [bt for _ in range(3) for bt in self._charge(at, cur)]
        if key == "_midnight":
            m = _midnight(t)
            if m < self.last:
                m = _midnight(self.last) + DAY
            return self._charge(m, cur)
        if typ == "charge":
            return self._charge(t, cur, fx=variant == "fx" or None)
        if typ == "validation":
            return self._charge(t, cur, validation=True)
        if typ == "payment":
            return self._charge(t, cur, kind="payment")
        if typ in ("refund", "payment_refund", "payment_failure_refund", "payment_reversal"):
            return self._refund(t, cur, typ, variant, mandatory)
        if typ == "refund_failure":
            return self._refund_failure(t, cur) or self._refund(t, cur, "refund", "", mandatory)
        if typ == "adjustment":
            return self._adjustment(t, cur, variant or "other_adjustment")
        if typ == "stripe_fee":
            return self._stripe_fee(t, cur, variant)
        if typ in ("application_fee", "application_fee_refund"):
            return self._application_fee(t, cur, typ)
        if typ in (
            "transfer",
            "transfer_cancel",
            "transfer_failure",
            "transfer_refund",
            "recipient_transfer",
            "recipient_transfer_cancel",
            "recipient_transfer_failure",
        ):
            return self._transfer(t, cur, typ)
        if typ == "topup_reversal":
            return self._topup_reversal(t, cur)
        if typ == "payout" and variant == "manual":
            return self._manual_payout(t, cur) or self._fund(t, cur, mandatory)
        if typ == "payout":
            return []  # automatic payouts come from the schedule only
        if typ in ("payout_failure", "payout_cancel"):
            return (
                self._payout_reversal(t, typ, None)
                or self._manual_payout(t, cur)
                or self._fund(t, cur, mandatory)
            )
        if typ in ("payout_minimum_balance_hold", "payout_minimum_balance_release"):
            return self._min_balance(t, cur, typ)
        if typ in CAPITAL:
            return self._capital(t, typ)
        if typ in _SIMPLE:
            return self._simple(t, cur, typ)
        return []

    def _fund(self, t: int, cur: str, mandatory: bool) -> list[dict[str, Any]]:
        """A top-up (available at once) so that a required payout can happen next."""
        return self._simple(t, cur, "topup") if mandatory else []

    # --- amounts --------------------------------------------------------------------------------

    def _q(self, cur: str, minor: int) -> int:
        q = amount_quantum(cur)
        return max(q, (minor // q) * q)

    def _draw(self, cur: str, scale: float = 1.0) -> int:
        usd = min(max(self.rng.lognormvariate(math.log(40.0 * scale), 0.8), 0.5), 50000.0)
        return self._q(cur, int(usd * per_usd(cur) * minor_per_major(cur)))

    def _typical(self, cur: str) -> int:
        return self._q(cur, int(40 * per_usd(cur) * minor_per_major(cur)))

    def _has_headroom(self, cur: str) -> bool:
        return self.net_total[cur] >= 3 * self._typical(cur)

    def _cap(self, cur: str, amount: int) -> int:
        """Shrink a debit to half the current balance when that balance is positive."""
        room = self.net_total[cur] // 2
        return min(amount, self._q(cur, room)) if room > 0 else amount

    def _fixed_fee(self, cur: str) -> int:
        return self._q(cur, int(0.30 * per_usd(cur) * minor_per_major(cur)))

    # --- builders -------------------------------------------------------------------------------

    def _bt(
        self,
        typ: str,
        amount: int,
        cur: str,
        created: int,
        category: str,
        source: str | None,
        description: str | None,
        fee_items: Sequence[dict[str, Any]] = (),
        *,
        available_on: int | None = None,
        exchange_rate: float | None = None,
        swept: bool = True,
    ) -> dict[str, Any]:
        fee = sum(item["amount"] for item in fee_items)
        avail = created if available_on is None else available_on
        bt = {
            "id": self.ids.new("txn"),
            "object": "balance_transaction",
            "amount": amount,
            "available_on": avail,
            "balance_type": "payments",
            "created": created,
            "currency": cur,
            "description": description,
            "exchange_rate": exchange_rate,
            "fee": fee,
            "fee_details": list(fee_items),
            "net": amount - fee,
            "reporting_category": category,
            "source": source,
            "status": "available" if avail <= self.as_of else "pending",
            "type": typ,
        }
        if swept and cur in self.unswept:
            self.unswept[cur].append(_Unswept(avail, bt["id"], bt["net"]))
        elif swept:
            self.unswept[cur] = [_Unswept(avail, bt["id"], bt["net"])]
        return bt

    @staticmethod
    def _fee_item(amount: int, cur: str, typ: str, description: str, app: str | None = None):
        return {
            "amount": amount,
            "application": app,
            "currency": cur,
            "description": description,
            "type": typ,
        }

    def _object(self, prefix: str, obj: str, created: int, **fields: Any) -> dict[str, Any]:
        ob = {"id": self.ids.new(prefix), "object": obj, "created": created, "livemode": False}
        ob.update(fields)
        ob.setdefault("metadata", {})
        self.objects[ob["id"]] = ob
        return ob

    def _new_customer(self) -> dict[str, Any]:
        first, last = self.rng.choice(_FIRST), self.rng.choice(_LAST)
        email = f"{first}.{last}{self.rng.randrange(100)}@example.com".lower()
        return self._object(
            "cus",
            "customer",
            self.start_ts,
            name=f"{first} {last}",
            email=email,
            description=None,
            phone=None,
            address=None,
            currency=self.currencies[0],
            delinquent=False,
            balance=0,
        )

    def _bank(self, cur: str) -> str:
        if cur not in self.banks:
            self.banks[cur] = self.ids.new("ba")
        return self.banks[cur]

    # --- event handlers -------------------------------------------------------------------------

    def _charge(
        self,
        t: int,
        cur: str,
        *,
        fx: bool | None = None,
        kind: str = "charge",
        validation: bool = False,
    ) -> list[dict[str, Any]]:
        created = self._at(t)
        rng = self.rng
        if fx is None:
            fx = rng.random() < 0.03
        presentment, rate = cur, None
        if validation:
            amount = charge_amount = 0
        elif fx:
            presentment = rng.choice([c for c in _FX_PRESENTMENT if c != cur])
            charge_amount = self._draw(presentment)
            raw = per_usd(cur) / per_usd(presentment) * rng.uniform(0.97, 1.03)
            rate = float(f"{raw:.6g}")
            major = Decimal(charge_amount) / minor_per_major(presentment) * Decimal(str(rate))
            amount = self._q(cur, int(major * minor_per_major(cur)))
        else:
            amount = charge_amount = self._draw(cur)
        fee_items: list[dict[str, Any]] = []
        if amount:
            pct = 39 if fx else 29
            stripe_fee = self._q(cur, amount * pct // 1000 + self._fixed_fee(cur))
            fee_items.append(
                self._fee_item(stripe_fee, cur, "stripe_fee", "Stripe processing fees")
            )
            if rng.random() < 0.15:
                tax = self._q(cur, stripe_fee * 20 // 100)
                fee_items.append(self._fee_item(tax, cur, "tax", "VAT"))
            if self.application and rng.random() < 0.4:
                app_fee = self._q(cur, amount // 100)
                fee_items.append(
                    self._fee_item(
                        app_fee, cur, "application_fee", "Platform fee", self.application
                    )
                )
        customer = rng.choice(self.customers) if rng.random() < 0.7 else None
        if customer is not None:
            name, email = customer["name"], customer["email"]
        else:
            name = f"{rng.choice(_FIRST)} {rng.choice(_LAST)}"
            email = f"{name.replace(' ', '.').lower()}@example.net"
        description = self._description() if not validation else "Card validation"
        prefix = "py" if kind == "payment" else "ch"
        delay = 5 if kind == "payment" else rng.choice((2, 2, 2, 7))
        available_on = _midnight(created) + delay * DAY
        ch_id = self.ids.new(prefix)
        bt = self._bt(
            "validation" if validation else kind,
            amount,
            cur,
            created,
            "charge",
            ch_id,
            description,
            fee_items,
            available_on=available_on,
            exchange_rate=rate,
        )
        if kind == "payment":
            method = rng.choice(_LOCAL_METHODS)
            pmd: dict[str, Any] = {"type": method, method: {}}
        else:
            brand = rng.choice(_CARD_BRANDS)
            pmd = {
                "type": "card",
                "card": {
                    "brand": brand,
                    "country": rng.choice(("US", "GB", "DE", "JP", "FR", "BH")),
                    "exp_month": rng.randint(1, 12),
                    "exp_year": 2027 + rng.randrange(5),
                    "funding": rng.choice(("credit", "debit")),
                    "last4": f"{rng.randrange(10000):04d}",
                    "network": brand,
                },
            }
        metadata = {"order_id": str(self.order_no)} if rng.random() < 0.6 else {}
        self.order_no += 1
        charge = {
            "id": ch_id,
            "object": "charge",
            "amount": charge_amount,
            "amount_captured": charge_amount,
            "amount_refunded": 0,
            "application": None,
            "application_fee": None,
            "application_fee_amount": None,
            "balance_transaction": bt["id"],
            "billing_details": {
                "address": {
                    "city": None,
                    "country": None,
                    "line1": None,
                    "line2": None,
                    "postal_code": None,
                    "state": None,
                },
                "email": email,
                "name": name,
                "phone": None,
            },
            "calculated_statement_descriptor": self.statement_descriptor,
            "captured": True,
            "created": created,
            "currency": presentment,
            "customer": customer["id"] if customer else None,
            "description": description,
            "disputed": False,
            "failure_code": None,
            "failure_message": None,
            "livemode": False,
            "metadata": metadata,
            "paid": True,
            "payment_intent": self.ids.new("pi"),
            "payment_method": self.ids.new("pm"),
            "payment_method_details": pmd,
            "receipt_email": email if rng.random() < 0.8 else None,
            "refunded": False,
            "statement_descriptor": self.statement_descriptor,
            "statement_descriptor_suffix": None,
            "status": "succeeded",
            "transfer_data": None,
            "transfer_group": None,
        }
        self.objects[ch_id] = charge
        if amount:
            (self.payments if kind == "payment" else self.charges)[cur].append(ch_id)
            self.refundable[ch_id] = amount
            self.bt_amount[ch_id] = amount
        return [bt]

    def _description(self) -> str | None:
        r = self.rng.random()
        if r < 0.06:
            return None
        product = self.rng.choice(self.products)
        if r < 0.5:
            return product
        if r < 0.8:
            return f"Order #{self.order_no}: {product}"
        return f"Invoice {self.rng.randrange(16**4):04X}-{self.rng.randrange(10000):04d}"

    def _recent(self, pool: list[str], window: int = 300) -> str | None:
        if not pool:
            return None
        return self.rng.choice(pool[-window:])

    def _refundable_charge(self, cur: str, payments: bool = False) -> str | None:
        """A recent charge with something left to refund, preferring one the balance covers."""
        pool = (self.payments if payments else self.charges).get(cur, [])
        found = []
        for _ in range(8):
            ch = self._recent(pool)
            if ch and self.refundable.get(ch, 0) > 0:
                found.append(ch)
        if not found:
            return None
        fits = [ch for ch in found if self.refundable[ch] <= self.net_total[cur] // 2]
        return fits[0] if fits else min(found, key=lambda ch: (self.refundable[ch], ch))

    def _refund(
        self, t: int, cur: str, typ: str, variant: str, mandatory: bool
    ) -> list[dict[str, Any]]:
        payments = typ != "refund"
        ch_id = self._refundable_charge(cur, payments)
        if ch_id is None:
            return self._charge(t, cur, kind="payment" if payments else "charge")
        charge = self.objects[ch_id]
        left = self.refundable[ch_id]
        created = self._at(t)
        if typ in ("payment_failure_refund", "payment_reversal"):
            amount = left
        elif variant == "partial_capture_reversal" or (
            typ == "refund" and not mandatory and self.rng.random() < 0.04
        ):
            variant = "partial_capture_reversal"
            amount = self._q(cur, left // 4)
        else:
            amount = left if self.rng.random() < 0.7 else self._q(cur, left // 2)
        amount = min(self._cap(cur, amount), left)
        self.refundable[ch_id] = left - amount
        fee_items: list[dict[str, Any]] = []
        legacy = variant == "legacy_fee" or (
            typ == "refund" and not mandatory and self.rng.random() < 0.08
        )
        bt_amount = self.bt_amount.get(ch_id) or amount or 1
        if legacy and typ == "refund":
            returned = self._q(
                cur, amount * 29 // 1000 + self._fixed_fee(cur) * amount // bt_amount
            )
            fee_items.append(self._fee_item(-returned, cur, "stripe_fee", "Stripe processing fees"))
        desc = charge["description"]
        if typ == "refund":
            description = f"REFUND FOR CHARGE ({desc})" if desc else "REFUND FOR CHARGE"
            category = (
                "partial_capture_reversal" if variant == "partial_capture_reversal" else "refund"
            )
        elif typ == "payment_refund":
            description = f"REFUND FOR PAYMENT ({desc})" if desc else "REFUND FOR PAYMENT"
            category = "refund"
        else:
            description = None
            category = "charge_failure"  # payment_reversal: inferred
        # in the charge's own (presentment) currency, which differs for FX charges
        in_charge_currency = charge["amount"] * amount // bt_amount
        charge["amount_refunded"] = min(
            charge["amount"], charge["amount_refunded"] + in_charge_currency
        )
        charge["refunded"] = self.refundable[ch_id] == 0
        if typ in ("payment_failure_refund", "payment_reversal"):
            charge["status"] = "failed"
            return [self._bt(typ, -amount, cur, created, category, ch_id, description)]
        refund = self._object(
            "pyr" if payments else "re",
            "refund",
            created,
            amount=in_charge_currency,
            balance_transaction=None,
            charge=ch_id,
            currency=charge["currency"],
            payment_intent=charge["payment_intent"],
            reason=self.rng.choice((None, "requested_by_customer", "duplicate")),
            status="succeeded",
            failure_balance_transaction=None,
            failure_reason=None,
        )
        bt = self._bt(typ, -amount, cur, created, category, refund["id"], description, fee_items)
        refund["balance_transaction"] = bt["id"]
        self.refund_bt[refund["id"]] = (amount, cur)
        if typ == "refund":
            self.refunds.append(refund["id"])
        return [bt]

    def _refund_failure(self, t: int, cur: str) -> list[dict[str, Any]]:
        candidates = [r for r in self.refunds[-200:] if self.objects[r]["status"] == "succeeded"]
        candidates = [r for r in candidates if self.refund_bt[r][1] == cur] or candidates
        if not candidates:
            return []
        refund = self.objects[self.rng.choice(candidates)]
        refund["status"] = "failed"
        refund["failure_reason"] = "expired_or_canceled_card"
        amount, bt_cur = self.refund_bt[refund["id"]]
        bt = self._bt(
            "refund_failure",
            amount,
            bt_cur,
            self._at(t),
            "refund_failure",
            refund["id"],
            "REFUND FAILURE",
        )
        refund["failure_balance_transaction"] = bt["id"]
        return [bt]

    def _adjustment(self, t: int, cur: str, variant: str) -> list[dict[str, Any]]:
        created = self._at(t)
        if variant == "dispute_reversal":
            open_ = [d for d in self.open_disputes if self.dispute_bt[d][1] == cur]
            if not (open_ or self.open_disputes):
                return self._adjustment(t, cur, "dispute")
            dp = self.objects[self.rng.choice(open_ or self.open_disputes)]
            self.open_disputes.remove(dp["id"])
            dp["status"] = "won"
            amount, bt_cur = self.dispute_bt[dp["id"]]
            bt = self._bt(
                "adjustment",
                amount,
                bt_cur,
                created,
                "dispute_reversal",
                dp["id"],
                f"Chargeback reversal for {dp['charge']}",
            )
            return [bt]
        if variant == "dispute":
            ch_id = self._refundable_charge(cur)
            if ch_id is None:
                return self._charge(t, cur)
            charge = self.objects[ch_id]
            amount = self.refundable[ch_id]
            self.refundable[ch_id] = 0
            charge["disputed"] = True
            dp = self._object(
                "dp",
                "dispute",
                created,
                amount=charge["amount"],
                balance_transactions=[],
                charge=ch_id,
                currency=charge["currency"],
                is_charge_refundable=False,
                payment_intent=charge["payment_intent"],
                reason=self.rng.choice(("fraudulent", "product_not_received", "duplicate")),
                status="lost",
            )
            self.dispute_bt[dp["id"]] = (amount, cur)
            fee = self._fee_item(1500, cur, "stripe_fee", "Dispute fee")
            bt = self._bt(
                "adjustment",
                -amount,
                cur,
                created,
                "dispute",
                dp["id"],
                f"Chargeback withdrawal for {ch_id}",
                [fee],
            )
            self.open_disputes.append(dp["id"])
            return [bt]
        if self._has_headroom(cur) and self.rng.random() < 0.5:
            amount = -self._cap(cur, self._draw(cur, 0.3))
        else:
            amount = self._draw(cur, 0.3)
        return [self._bt("adjustment", amount, cur, created, "other_adjustment", None, None)]

    def _stripe_fee(self, t: int, cur: str, variant: str) -> list[dict[str, Any]]:
        created = self._at(t)
        month = dt.datetime.fromtimestamp(created, dt.UTC).strftime("%Y-%m")
        if variant == "network_cost" or (not variant and self.rng.random() < 0.1):
            amount = -self._cap(cur, self._draw(cur, 0.05))
            return [self._bt("stripe_fee", amount, cur, created, "network_cost", None, None)]
        if self.loan and self.rng.random() < 0.1:
            amount = self._draw(cur, 0.2)
            desc = "Revenue Share: Capital"
        else:
            amount = -self._cap(cur, self._draw(cur, 0.1))
            desc = self.rng.choice(
                (
                    f"Billing - Usage Fee ({month})",
                    f"Radar ({month})",
                    f"Connect ({month}): Active Accounts",
                    f"Invoicing ({month})",
                )
            )
        return [self._bt("stripe_fee", amount, cur, created, "fee", None, desc)]

    def _application_fee(self, t: int, cur: str, typ: str) -> list[dict[str, Any]]:
        created = self._at(t)
        if typ == "application_fee_refund":
            if not self.app_fees:
                return self._application_fee(t, cur, "application_fee")
            fee = self.objects[self.rng.choice(self.app_fees[-100:])]
            amount = self._q(fee["currency"], fee["amount"] // 2)
            fr = self._object(
                "fr", "fee_refund", created, amount=amount, currency=fee["currency"], fee=fee["id"]
            )
            fee["amount_refunded"] += amount
            bt = self._bt(
                typ,
                -amount,
                fee["currency"],
                created,
                "platform_earning_refund",
                fr["id"],
                "Application fee refund",
            )
            fr["balance_transaction"] = bt["id"]
            return [bt]
        amount = self._draw(cur, 0.1)
        app = self.app_id
        fee = self._object(
            "fee",
            "application_fee",
            created,
            account=self.rng.choice(self.destinations),
            amount=amount,
            amount_refunded=0,
            application=app,
            charge=self.ids.new("py"),
            currency=cur,
            refunded=False,
        )
        bt = self._bt(typ, amount, cur, created, "platform_earning", fee["id"], None)
        fee["balance_transaction"] = bt["id"]
        self.app_fees.append(fee["id"])
        return [bt]

    def _transfer(self, t: int, cur: str, typ: str) -> list[dict[str, Any]]:
        created = self._at(t)
        if typ in ("transfer", "recipient_transfer"):
            amount = self._cap(cur, self._draw(cur, 1.5))
            tr = self._object(
                "tr",
                "transfer",
                created,
                amount=amount,
                amount_reversed=0,
                currency=cur,
                description=None,
                destination=self.rng.choice(self.destinations),
                reversed=False,
                source_type="card",
                transfer_group=None,
            )
            bt = self._bt(typ, -amount, cur, created, "transfer", tr["id"], None)
            tr["balance_transaction"] = bt["id"]
            self.transfers.append(tr["id"])
            return [bt]
        open_ = [x for x in self.transfers[-100:] if not self.objects[x]["reversed"]]
        if not open_:
            base = "recipient_transfer" if typ.startswith("recipient") else "transfer"
            return self._transfer(t, cur, base)
        tr = self.objects[self.rng.choice(open_)]
        amount = tr["amount"] - tr["amount_reversed"]
        tr["amount_reversed"] = tr["amount"]
        tr["reversed"] = True
        source = tr["id"]
        if typ == "transfer_refund":
            trr = self._object(
                "trr",
                "transfer_reversal",
                created,
                amount=amount,
                currency=tr["currency"],
                transfer=tr["id"],
                destination_payment_refund=None,
                source_refund=None,
            )
            source = trr["id"]
        bt = self._bt(typ, amount, tr["currency"], created, "transfer_reversal", source, None)
        if typ == "transfer_refund":
            self.objects[source]["balance_transaction"] = bt["id"]
        return [bt]

    def _topup_reversal(self, t: int, cur: str) -> list[dict[str, Any]]:
        live = [u for u in self.topups if self.objects[u]["status"] == "succeeded"]
        if not live:
            return self._simple(t, cur, "topup")
        fits = [u for u in live if self.objects[u]["amount"] <= self.net_total[cur]]
        if not fits and not self.forced:
            return []
        live = fits or live
        tu = self.objects[self.rng.choice(live)]
        tu["status"] = "reversed"
        bt = self._bt(
            "topup_reversal",
            -tu["amount"],
            tu["currency"],
            self._at(t),
            "topup_reversal",
            tu["id"],
            "Top-up reversal",
        )
        return [bt]

    def _simple(self, t: int, cur: str, typ: str) -> list[dict[str, Any]]:
        spec = _SIMPLE[typ]
        created = self._at(t)
        sign = spec.sign or (self.rng.choice((1, -1)) if self._has_headroom(cur) else 1)
        amount = self._draw(cur, spec.scale)
        if sign < 0:
            amount = self._cap(cur, amount)
        source = None
        if spec.source:
            held = [a for a in self.auths if self.objects[a]["currency"] == cur]
            if typ == "issuing_authorization_release" and held:
                source = held[-1]
                self.auths.remove(source)
                amount = self.objects[source]["amount"]
            else:
                prefix, name = _SOURCE_KINDS[spec.source]
                ob = self._object(prefix, name, created, amount=amount, currency=cur)
                source = ob["id"]
                if typ == "issuing_authorization_hold":
                    self.auths.append(source)
                if typ == "topup":
                    ob.update(status="succeeded", description="Top-up", statement_descriptor=None)
                    self.topups.append(source)
        bt = self._bt(typ, sign * amount, cur, created, spec.category, source, spec.description)
        if source and source in self.objects:
            self.objects[source].setdefault("balance_transaction", bt["id"])
        return [bt]

    def _min_balance(self, t: int, cur: str, typ: str) -> list[dict[str, Any]]:
        created = self._at(t)
        amount = self._draw(cur, 0.5)
        if typ == "payout_minimum_balance_hold":
            amount = self._cap(cur, amount)
        amount = (amount // payout_quantum(cur)) * payout_quantum(cur) or payout_quantum(cur)
        source = self.payouts[-1] if self.payouts else None
        hold = typ == "payout_minimum_balance_hold"
        bt = self._bt(
            typ,
            -amount if hold else amount,
            cur,
            created,
            typ,
            source,
            "Payout minimum balance hold" if hold else "Payout minimum balance release",
        )
        return [bt]

    def _capital(self, t: int, typ: str) -> list[dict[str, Any]]:
        created = self._at(t)
        loan = self.loan
        if typ == "financing_payout" or loan is None:
            cur = self.currencies[0]
            advance = self._q(cur, self._draw(cur, 1.0) * 20)
            fee = self._q(cur, advance // 10)
            loan = self.loan = self._object(
                "flxln",
                "capital.flex_loan",
                created,
                advance_amount=advance,
                fee_amount=fee,
                currency=cur,
                withhold_rate=self.rng.choice((0.05, 0.08, 0.1)),
                financing_offer=self.ids.new("financingoffer"),
            )
            self.loan_remaining = advance + fee
            self.paydown_amounts = []
            bt = self._bt(
                "financing_payout",
                advance,
                cur,
                created,
                "financing_payout",
                loan["id"],
                f"Capital financing for flex loan {loan['id']}",
            )
            return [bt]
        cur = loan["currency"]
        if typ == "financing_paydown":
            ch_id = self._recent(self.charges.get(cur, []), 50)
            if ch_id and self.rng.random() < 0.9:
                owed = self.bt_amount.get(ch_id) or self._draw(cur)
                amount = self._q(cur, int(owed * loan["withhold_rate"]))
                desc = f"Withheld funds from {ch_id} to pay down flex loan {loan['id']}"
            else:
                amount = self._q(cur, loan["advance_amount"] // 10)
                desc = "External transfer to paydown financing balance"
            amount = min(amount, max(self.loan_remaining, amount_quantum(cur)))
            self.loan_remaining -= amount
            bt = self._bt(typ, -amount, cur, created, "financing_paydown", loan["id"], desc)
            self.paydown_amounts.append(amount)
            return [bt]
        if typ == "financing_paydown_reversal":
            amounts = self.paydown_amounts or [self._q(cur, loan["advance_amount"] // 50)]
            amount = self.rng.choice(amounts[-20:])
            self.loan_remaining += amount
            desc = f"Reversal of paydown for flex loan {loan['id']}"
            return [self._bt(typ, amount, cur, created, typ, loan["id"], desc)]
        # financing_payout_reversal: cancel what the balance can bear, never more than advanced
        available = sum(u.net for u in self.unswept.get(cur, []) if u.available_on <= created)
        amount = min(loan["advance_amount"], max(available // 2, amount_quantum(cur)))
        amount = self._q(cur, amount)
        self.loan_remaining = max(0, self.loan_remaining - amount)
        desc = f"Reversal of financing for flex loan {loan['id']}"
        return [self._bt(typ, -amount, cur, created, typ, loan["id"], desc)]

    # --- payouts ----------------------------------------------------------------------------------

    def _scheduled(self, kind: str, args: tuple[Any, ...], when: int, budget: int) -> list[dict]:
        if kind == "run":
            for cur in sorted(self.unswept):
                self._push(when, "payout", (cur,))
            self._push(self._next_payout_time(when), "run", ())
            return []
        if kind == "payout":
            return self._auto_payout(when, args[0], budget)
        if kind == "release":
            cur, amount, po = args
            bt = self._bt(
                "payout_minimum_balance_release",
                amount,
                cur,
                self._at(when),
                "payout_minimum_balance_release",
                po,
                "Payout minimum balance release",
            )
            return [bt]
        if kind in ("payout_failure", "payout_cancel"):
            return self._payout_reversal(when, kind, args[0])
        return []

    def _payout_object(
        self, po_id: str, created: int, amount: int, cur: str, automatic: bool, method: str
    ) -> dict[str, Any]:
        arrival = _midnight(created) + 2 * DAY
        while dt.datetime.fromtimestamp(arrival, dt.UTC).weekday() >= 5:
            arrival += DAY
        payout = {
            "id": po_id,
            "object": "payout",
            "amount": amount,
            "application_fee": None,
            "application_fee_amount": None,
            "arrival_date": arrival,
            "automatic": automatic,
            "balance_transaction": None,
            "created": created,
            "currency": cur,
            "description": "STRIPE PAYOUT",
            "destination": self._bank(cur),
            "failure_balance_transaction": None,
            "failure_code": None,
            "failure_message": None,
            "livemode": False,
            "metadata": {},
            "method": method,
            "original_payout": None,
            "reconciliation_status": "completed" if automatic else "not_applicable",
            "reversed_by": None,
            "source_type": "card",
            "statement_descriptor": None,
            "status": "paid" if arrival <= self.as_of else "in_transit",
            "trace_id": {"status": "supported", "value": f"{self.rng.randrange(10**15):015d}"},
            "type": "bank_account",
        }
        self.objects[po_id] = payout
        return payout

    def _auto_payout(self, when: int, cur: str, budget: int) -> list[dict[str, Any]]:
        pool = self.unswept.get(cur, [])
        members = [u for u in pool if u.available_on <= when]
        total = sum(u.net for u in members)
        if total <= 0:
            return []
        remainder = total % payout_quantum(cur)
        amount = total - remainder
        if amount <= 0 or budget < (2 if remainder else 1):
            return []
        self.unswept[cur] = [u for u in pool if u.available_on > when]
        created = self._at(when)
        po_id = self.ids.new("po")
        out = []
        ids = [u.id for u in members]
        if remainder:
            hold = self._bt(
                "payout_minimum_balance_hold",
                -remainder,
                cur,
                created,
                "payout_minimum_balance_hold",
                po_id,
                "Payout minimum balance hold",
                swept=False,
            )
            out.append(hold)
            ids.append(hold["id"])
            self._push(created + self.every - 3600, "release", (cur, remainder, po_id))
        bt = self._bt(
            "payout", -amount, cur, created, "payout", po_id, "STRIPE PAYOUT", swept=False
        )
        out.append(bt)
        ids.append(bt["id"])
        payout = self._payout_object(po_id, created, amount, cur, True, "standard")
        payout["balance_transaction"] = bt["id"]
        self.payout_members[po_id] = ids
        self.payouts.append(po_id)
        r = self.rng.random()
        if r < 0.03:
            self._push(created + self.rng.randint(1, 3) * DAY, "payout_failure", (po_id,))
        elif r < 0.05:
            self._push(created + self.rng.randint(600, 7200), "payout_cancel", (po_id,))
        return out

    def _manual_payout(self, t: int, cur: str) -> list[dict[str, Any]]:
        created = self._at(t)
        available = sum(u.net for u in self.unswept.get(cur, []) if u.available_on <= created)
        q = payout_quantum(cur)
        amount = (available // 2 // q) * q
        if amount <= 0:
            return []
        instant = self.rng.random() < 0.6
        fee_items = []
        if instant:
            fee = self._q(cur, amount // 100)
            fee_items.append(self._fee_item(fee, cur, "stripe_fee", "Instant Payout fee"))
        po_id = self.ids.new("po")
        bt = self._bt(
            "payout",
            -amount,
            cur,
            created,
            "payout",
            po_id,
            "INSTANT PAYOUT" if instant else "STRIPE PAYOUT",
            fee_items,
        )
        payout = self._payout_object(
            po_id, created, amount, cur, False, "instant" if instant else "standard"
        )
        payout["balance_transaction"] = bt["id"]
        if instant:
            payout["arrival_date"] = created
            payout["description"] = "INSTANT PAYOUT"
        self.payouts.append(po_id)
        return [bt]

    def _payout_reversal(self, t: int, typ: str, po_id: str | None) -> list[dict[str, Any]]:
        if po_id is None:
            if not self.payouts:
                return []
            po_id = self.payouts[-1]
        if po_id not in self.payouts:
            return []  # already failed or canceled
        self.payouts.remove(po_id)
        payout = self.objects[po_id]
        payout["status"] = "failed" if typ == "payout_failure" else "canceled"
        if typ == "payout_failure":
            payout["failure_code"] = "account_closed"
            payout["failure_message"] = "The bank account has been closed."
        bt = self._bt(
            typ,
            payout["amount"],
            payout["currency"],
            self._at(t),
            "payout_reversal",
            po_id,
            payout["description"],
        )
        payout["failure_balance_transaction"] = bt["id"]
        return [bt]
