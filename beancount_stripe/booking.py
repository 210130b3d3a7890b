"""Pure booking: one Stripe balance transaction + client config → one Beancount transaction.

Every balance transaction (BT) posts its net to the clearing account and its fee to the fees
account, so the counter-leg carries the gross amount and the postings always sum to zero. Which
account the counter-leg uses is data (the tables below), chosen by ``type``, then by
``reporting_category`` so that types Stripe adds later still land somewhere sensible; anything
unknown goes to the uncategorized account with flag ``!`` and is never dropped. Rules refine the
result later (the rules package); this module knows nothing about them.
"""

from __future__ import annotations

import datetime
import operator
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from beancount.core import data
from beancount.core.amount import Amount

from beancount_stripe import currency
from beancount_stripe.config import Accounts, ClientConfig, zone
from beancount_stripe.errors import InputFileError

__all__ = [
    "CATEGORY_COUNTER",
    "PAIR_COUNTER",
    "PAYOUT_TYPES",
    "TYPE_COUNTER",
    "balance_assertions",
    "book",
    "book_all",
    "classify",
    "label",
]

DEFAULT_FILENAME = "<stripe>"
CAPITAL_PAYEE = "Stripe Capital"
_LOAN_PREFIX = "flxln_"  # a Capital balance transaction's source: the loan, linked like Capital's

# Counter-leg by BT type (values are ``Accounts`` field names). ARCHITECTURE.md "Booking model".
TYPE_COUNTER: dict[str, str] = {
    "charge": "revenue",
    "payment": "revenue",
    "refund": "refunds",
    "payment_refund": "refunds",
    "refund_failure": "refunds",
    "payment_failure_refund": "refunds",
    "adjustment": "adjustments",
    "payout": "transit",
    "payout_failure": "transit",
    "payout_cancel": "transit",
    "topup": "transit",
    "topup_reversal": "transit",
    "stripe_fee": "fees",
    "stripe_fx_fee": "fees",
    "tax_fee": "fees",
    "network_cost": "fees",
    "application_fee": "platform_revenue",
    "application_fee_refund": "platform_revenue",
    "transfer": "connect_transfers",
    "transfer_cancel": "connect_transfers",
    "transfer_failure": "connect_transfers",
    "transfer_refund": "connect_transfers",
    "connect_collection_transfer": "connect_transfers",
    "reserve_transaction": "reserve",
    "reserve_hold": "reserve",
    "reserve_release": "reserve",
    "reserved_funds": "reserve",
    "payout_minimum_balance_hold": "reserve",
    "payout_minimum_balance_release": "reserve",
    "payment_network_reserve_hold": "reserve",
    "payment_network_reserve_release": "reserve",
    "financing_payout": "capital_loan",
    "financing_paydown": "capital_loan",
    "financing_payout_reversal": "capital_loan",
    "financing_paydown_reversal": "capital_loan",
}

# (type, reporting_category) pairs that override the type: the category tells them apart.
PAIR_COUNTER: dict[tuple[str, str], str] = {
    ("adjustment", "dispute"): "disputes",
    ("adjustment", "dispute_reversal"): "disputes",
    # the uncaptured part of an authorization is not a refund to a customer
    ("refund", "partial_capture_reversal"): "adjustments",
}

# Fallback for types not in TYPE_COUNTER (future or legacy types), by reporting_category.
CATEGORY_COUNTER: dict[str, str] = {
    "charge": "revenue",
    "refund": "refunds",
    "refund_failure": "refunds",
    "charge_failure": "refunds",
    "fee": "fees",
    "network_cost": "fees",
    "tax": "fees",
    "dispute": "disputes",
    "dispute_reversal": "disputes",
    "other_adjustment": "adjustments",
    "partial_capture_reversal": "adjustments",
    "payout": "transit",
    "payout_reversal": "transit",
    "topup": "transit",
    "topup_reversal": "transit",
    "platform_earning": "platform_revenue",
    "platform_earning_refund": "platform_revenue",
    "transfer": "connect_transfers",
    "transfer_reversal": "connect_transfers",
    "connect_collection_transfer": "connect_transfers",
    "risk_reserved_funds": "reserve",
    "connect_reserved_funds": "reserve",
    "financing_payout": "capital_loan",
    "financing_paydown": "capital_loan",
    "financing_payout_reversal": "capital_loan",
    "financing_paydown_reversal": "capital_loan",
}

# Tax on Stripe's fees: goes to ``fee_tax`` instead of ``fees`` when the client configures it.
_TAX_TYPE = "tax_fee"
_TAX_CATEGORY = "tax"

# Types whose source is a payout: the entry gets the payout id as a link (``^po_…``).
PAYOUT_TYPES: frozenset[str] = frozenset({"payout", "payout_failure", "payout_cancel"})

# Narration when no party is known. The category wins where it says more than the type.
_CATEGORY_LABELS: dict[str, str] = {
    "dispute": "Dispute",
    "dispute_reversal": "Dispute reversal",
    "partial_capture_reversal": "Partial capture reversal",
}
_TYPE_LABELS: dict[str, str] = {
    "charge": "Card charge",
    "payment": "Payment",
    "refund": "Refund",
    "payment_refund": "Refund",
    "refund_failure": "Refund failed",
    "payment_failure_refund": "Payment failed",
    "payment_reversal": "Payment reversal",
    "adjustment": "Adjustment",
    "payout": "Stripe payout",
    "payout_failure": "Stripe payout failed",
    "payout_cancel": "Stripe payout canceled",
    "topup": "Stripe top-up",
    "topup_reversal": "Stripe top-up reversal",
    "stripe_fee": "Stripe fee",
    "stripe_fx_fee": "Stripe currency conversion fee",
    "tax_fee": "Tax on Stripe fees",
    "network_cost": "Card network cost",
    "application_fee": "Application fee",
    "application_fee_refund": "Application fee refund",
    "transfer": "Connect transfer",
    "transfer_cancel": "Connect transfer canceled",
    "transfer_failure": "Connect transfer failed",
    "transfer_refund": "Connect transfer reversal",
    "connect_collection_transfer": "Connect collection transfer",
    "reserve_transaction": "Connect reserve",
    "reserved_funds": "Stripe reserve",
    "financing_payout": "Stripe Capital financing",
    "financing_paydown": "Stripe Capital paydown",
    "financing_payout_reversal": "Stripe Capital financing reversal",
    "financing_paydown_reversal": "Stripe Capital paydown reversal",
}

_LINK_BAD_CHARS = re.compile(r"[^A-Za-z0-9\-_/.]")  # Beancount's link token: ^[A-Za-z0-9-_/.]+
_PARTY_TYPES = frozenset({"charge", "payment"})


def classify(bt: Mapping[str, Any], *, fee_tax: bool = False) -> str:
    """The ``Accounts`` field name for the counter-leg of ``bt``.

    ``fee_tax=True`` (the client configures a fee-tax account) sends tax on Stripe fees there.
    """
    return _classify(_text(bt.get("type")), _text(bt.get("reporting_category")), fee_tax)


def _classify(bt_type: str, category: str, fee_tax: bool) -> str:
    field = PAIR_COUNTER.get((bt_type, category))
    if field is None:
        field = TYPE_COUNTER.get(bt_type)
        if field is None:
            field = CATEGORY_COUNTER.get(category, "uncategorized")
            if fee_tax and category == _TAX_CATEGORY:
                field = "fee_tax"
        elif fee_tax and bt_type == _TAX_TYPE:
            field = "fee_tax"
    return field


def label(bt: Mapping[str, Any]) -> str:
    """A readable, never empty name for what ``bt`` is ("Stripe payout", "Dispute", …)."""
    return _label(_text(bt.get("type")), _text(bt.get("reporting_category")))


def _label(bt_type: str, category: str) -> str:
    if category in _CATEGORY_LABELS:
        return _CATEGORY_LABELS[category]
    if bt_type in _TYPE_LABELS:
        return _TYPE_LABELS[bt_type]
    readable = " ".join(bt_type.replace("_", " ").split())
    return readable.capitalize() if readable else "Stripe balance transaction"


@dataclass(frozen=True, slots=True)
class _Context:
    """What booking needs from a client, computed once per client instead of once per BT."""

    accounts: Mapping[str, str]
    tz: ZoneInfo
    fee_tax: bool
    # currency code as Stripe writes it → (commodity, one minor unit: Decimal 1E-exponent),
    # filled as codes are met
    units: dict[str, tuple[str, Decimal]] = field(default_factory=dict, compare=False, hash=False)
    # (type, reporting_category) → (counter-leg field, label), filled as pairs are met
    kinds: dict[tuple[str, str], tuple[str, str]] = field(
        default_factory=dict, compare=False, hash=False
    )


def _make_context(client: ClientConfig) -> _Context:
    tz = zone(client.timezone, client.id)
    accounts: Accounts = client.accounts
    mapping = {name: getattr(accounts, name) for name in accounts.__dataclass_fields__}
    return _Context(accounts=mapping, tz=tz, fee_tax=bool(accounts.fee_tax))


@lru_cache(maxsize=64)
def _cached_context(client: ClientConfig) -> _Context:
    return _make_context(client)


def _context(client: ClientConfig) -> _Context:
    try:
        return _cached_context(client)
    except TypeError:  # an unhashable field (a hand-built config); just do the work
        return _make_context(client)


def book(
    bt: Mapping[str, Any], client: ClientConfig, filename: str = DEFAULT_FILENAME
) -> data.Transaction:
    """Book one balance transaction (Stripe wire shape) for ``client``."""
    return _book(bt, _context(client), filename)


_SORT_KEY = operator.itemgetter(0, 1, 2)  # (date, created, id)


def book_all(
    bts: Iterable[Mapping[str, Any]], client: ClientConfig, filename: str = DEFAULT_FILENAME
) -> list[data.Transaction]:
    """Book many balance transactions, sorted by (date, created, id) so output is stable."""
    return [entry for entry, _bt in book_pairs(bts, client, filename)]


def balance_assertions(
    client: ClientConfig,
    date: datetime.date,
    totals_minor: Mapping[str, int],
    filename: str = DEFAULT_FILENAME,
) -> list[data.Balance]:
    """``balance`` directives on the clearing account, one per currency, from /v1/balance totals.

    Beancount checks a balance at the *start* of ``date``: pass the day after the cut-off.
    Currency keys are case-insensitive; totals given twice for one currency add up.
    """
    where = f"balance of client {client.id}"
    by_commodity: dict[str, tuple[str, int]] = {}
    for code, minor in totals_minor.items():
        com = currency.commodity(code, where)
        previous = by_commodity.get(com, (code, 0))[1]
        by_commodity[com] = (code, previous + minor)
    account = client.accounts.clearing
    out = []
    for com in sorted(by_commodity):
        code, minor = by_commodity[com]
        meta = data.new_metadata(filename, 0, {"stripe_balance_source": "v1/balance"})
        number = currency.to_decimal(minor, code, where)
        out.append(data.Balance(meta, date, account, Amount(number, com), None, None))
    return out


# --- internals ---------------------------------------------------------------------------------


def _is_map(value: object) -> bool:
    """``isinstance(value, Mapping)``, without the ABC check for the usual plain dict."""
    return type(value) is dict or isinstance(value, Mapping)


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _clean(value: object) -> str | None:
    """Single-line, trimmed text, or None when there is nothing readable."""
    if type(value) is str:
        # Already clean, the usual case: printable (so no whitespace but " ": every other
        # whitespace character is a control or separator), no double space, not padded.
        if value.isprintable() and "  " not in value and value[:1] != " " != value[-1:]:
            return value or None
    elif not isinstance(value, str):
        return None
    text = " ".join(value.split())
    return text or None


def _int_field(bt: Mapping[str, Any], key: str, txn_id: str, filename: str) -> int:
    value = bt.get(key)
    if type(value) is not int:
        raise InputFileError(
            f"balance transaction {txn_id}: `{key}` is {value!r}, not an integer",
            where=filename,
            fix="use the balance transaction exactly as the Stripe API returned it",
        )
    return value


def _party(source: Mapping[str, Any] | None, bt_type: str) -> str | None:
    """Customer name or email from an expanded charge (or the charge inside a refund/dispute)."""
    if source is None:
        return None
    charge: Any = source
    if source.get("object") != "charge" and bt_type not in _PARTY_TYPES:
        charge = source.get("charge")
        if not _is_map(charge):
            return None
    billing = charge.get("billing_details")
    if type(billing) is not dict and not isinstance(billing, Mapping):
        billing = _NO_MAP
    text = _clean(billing.get("name"))
    if text:
        return text  # the usual case: the card holder's name
    customer = charge.get("customer")
    if type(customer) is not dict and not isinstance(customer, Mapping):
        customer = _NO_MAP
    for candidate in (
        customer.get("name"),
        billing.get("email"),
        customer.get("email"),
        charge.get("receipt_email"),
    ):
        text = _clean(candidate)
        if text:
            return text
    return None


_NO_MAP: Mapping[str, Any] = {}


def _tax_part(bt: Mapping[str, Any], fee: int, code: str) -> int:
    """Σ fee_details of type "tax", trusted only when the details add up to the fee."""
    details = bt.get("fee_details")
    if not fee or not isinstance(details, list):
        return 0
    total = tax = 0
    for detail in details:
        if not _is_map(detail):
            return 0
        amount = detail.get("amount")
        detail_currency = detail.get("currency")
        if type(amount) is not int or (
            isinstance(detail_currency, str) and detail_currency.lower() != code.lower()
        ):
            return 0
        total += amount
        if detail.get("type") == "tax":
            tax += amount
    return tax if total == fee else 0


def _presentment(
    bt: Mapping[str, Any], source: Mapping[str, Any] | None, code: str, where: str
) -> dict[str, Any]:
    """What the customer was charged, when Stripe converted it: amount, currency and rate.

    Stripe converts a charge presented in another currency at ``exchange_rate`` (presented
    amount × rate = the balance transaction's amount, STRIPE-FACTS "exchange_rate"); the
    presented amount and currency are the source's. Kept as metadata so revenue in the
    settlement currency still matches the invoice the customer saw.
    """
    rate = bt.get("exchange_rate")
    if not isinstance(rate, (int, float)) or isinstance(rate, bool) or source is None:
        return {}
    amount, presented = source.get("amount"), source.get("currency")
    if type(amount) is not int or not isinstance(presented, str):
        return {}
    if presented.lower() == code.lower() or not currency.is_known(presented.upper()):
        return {}
    number = currency.to_decimal(amount, presented, where)
    return {
        "presentment_amount": Amount(number, currency.commodity(presented, where)),
        "exchange_rate": Decimal(repr(rate)),
    }


def _posting(account: str, number: Any, com: str) -> data.Posting:
    return data.Posting(account, Amount(number, com), None, None, None, None)


_new_tuple = tuple.__new__
_Posting = data.Posting
_Transaction = data.Transaction
_EMPTY = data.EMPTY_SET


def _units(ctx: _Context, code: Any, where: str) -> tuple[str, Decimal]:
    """(commodity, one minor unit) of a Stripe currency code; raises CurrencyError when unknown.

    ``minor * unit`` is ``Decimal(minor).scaleb(-exponent)`` (the same coefficient and exponent:
    0.01 × 6600 is 66.00), in one operation instead of two."""
    com = currency.commodity(code, where)
    found = (com, Decimal(1).scaleb(-currency.exponent(code)))
    ctx.units[code] = found
    return found


class _Memo:
    """What one ``book_all`` run remembers between transactions: the last local day (a history
    in time order converts dates once per day).

    No table of Amounts: entries sharing Amounts (even only the few thousand distinct fees)
    measured slower to book and to write than fresh ones allocated next to their entry."""

    __slots__ = ("day", "day_end", "day_start")

    def __init__(self) -> None:
        self.day_start = self.day_end = 0
        self.day: datetime.date | None = None


_KINDS_MAX = 4096  # distinct (type, category) pairs remembered per client: Stripe has ~60


def _local_date(created: int, tz: ZoneInfo, memo: _Memo | None) -> datetime.date:
    """The local date of ``created``. ``memo`` remembers the last local day seen: it is taken
    as 24 hours of one UTC offset, kept only when the offset at its start and its end is that
    offset and both read that date (around an offset change the day is not remembered)."""
    if memo is not None and memo.day_start <= created < memo.day_end:
        return memo.day  # type: ignore[return-value]
    local = datetime.datetime.fromtimestamp(created, tz)
    date = local.date()
    if memo is not None:
        offset = local.utcoffset()
        start = created - (local.hour * 3600 + local.minute * 60 + local.second)
        first = datetime.datetime.fromtimestamp(start, tz)
        last = datetime.datetime.fromtimestamp(start + 86_399, tz)
        if (
            first.utcoffset() == offset == last.utcoffset()
            and first.date() == date == last.date()
            and first.time() == datetime.time(0)
        ):
            memo.day_start, memo.day_end, memo.day = start, start + 86_400, date
    return date


def _book(
    bt: Mapping[str, Any],
    ctx: _Context,
    filename: str,
    memo: _Memo | None = None,
) -> data.Transaction:
    # The hot path of booking a big history: plain locals, one dict lookup per currency, Amounts
    # built without the constructor's type asserts (the values are checked here already).
    get = bt.get
    txn_id = get("id")
    if not isinstance(txn_id, str) or not txn_id:
        raise InputFileError(
            f"a balance transaction has no id (id={txn_id!r})",
            where=filename,
            fix="use the balance transactions exactly as the Stripe API returned them",
        )
    code = get("currency")
    units = ctx.units.get(code) if isinstance(code, str) else None
    if units is None:
        units = _units(ctx, code, f"balance transaction {txn_id}")  # raises CurrencyError
    com, unit = units
    amount, fee, net, created = get("amount"), get("fee"), get("net"), get("created")
    if type(amount) is not int or type(fee) is not int or type(net) is not int:
        amount = _int_field(bt, "amount", txn_id, filename)
        fee = _int_field(bt, "fee", txn_id, filename)
        net = _int_field(bt, "net", txn_id, filename)
    if net != amount - fee:
        raise InputFileError(
            f"balance transaction {txn_id}: net {net} is not amount {amount} minus fee {fee}",
            where=filename,
            fix="re-fetch the balance transaction from Stripe; the stored copy is damaged",
        )
    if type(created) is not int:
        created = _int_field(bt, "created", txn_id, filename)
    if memo is not None and memo.day_start <= created < memo.day_end:
        date = memo.day  # the usual case, without the call
    else:
        date = _local_date(created, ctx.tz, memo)

    bt_type = get("type")
    if type(bt_type) is not str:
        bt_type = ""
    category = get("reporting_category")
    if type(category) is not str:
        category = ""
    fee_tax = ctx.fee_tax
    kind = ctx.kinds.get((bt_type, category))
    if kind is None:
        kind = (_classify(bt_type, category, fee_tax), _label(bt_type, category))
        if len(ctx.kinds) < _KINDS_MAX:
            ctx.kinds[(bt_type, category)] = kind
    field, label_text = kind
    accounts = ctx.accounts
    tax = _tax_part(bt, fee, code) if fee_tax else 0  # type: ignore[arg-type]

    number = unit * net
    postings = [
        _new_tuple(
            _Posting,
            (accounts["clearing"], _new_tuple(Amount, (number, com)), None, None, None, None),
        )
    ]
    if fee != tax:
        number = unit * (fee - tax)
        postings.append(
            _new_tuple(
                _Posting,
                (accounts["fees"], _new_tuple(Amount, (number, com)), None, None, None, None),
            )
        )
    if tax:
        number = unit * tax
        postings.append(
            _new_tuple(
                _Posting,
                (accounts["fee_tax"], _new_tuple(Amount, (number, com)), None, None, None, None),
            )
        )
    number = unit * -amount
    postings.append(
        _new_tuple(
            _Posting, (accounts[field], _new_tuple(Amount, (number, com)), None, None, None, None)
        )
    )

    # Texts Stripe writes are clean as a rule: tested inline (what ``_clean`` tests first),
    # ``_clean`` and ``_party`` called only for the rest.
    source = get("source")
    source_obj: Mapping[str, Any] | None = None
    source_id: str | None = None
    party: str | None = None
    if type(source) is dict or isinstance(source, Mapping):
        source_obj = source
        text = source.get("id")
        if type(text) is str and text and text.isprintable() and " " not in text:
            source_id = text
        else:
            source_id = _clean(text)
        billing = source.get("billing_details") if source.get("object") == "charge" else None
        text = billing.get("name") if type(billing) is dict else None
        if (
            type(text) is str
            and text
            and text.isprintable()
            and "  " not in text
            and text[0] != " " != text[-1]
        ):
            party = text  # what ``_party`` returns first for a charge: the card holder's name
        else:
            party = _party(source, bt_type)
    else:
        source_id = _clean(source)

    text = get("description")
    if (
        type(text) is str
        and text.isprintable()
        and "  " not in text
        and text[:1] != " " != text[-1:]
    ):
        description = text or None
    else:
        description = None if text is None else _clean(text)
    capital = field == "capital_loan"
    if capital:
        # Stripe's Capital descriptions are made of ids ("Withheld funds from ch_… to pay down
        # flex loan flxln_…"): they go to metadata, the loan becomes a link.
        payee, narration = CAPITAL_PAYEE, label_text
    elif party:
        payee, narration = party, description or label_text
    else:
        payee, narration = description, label_text
    if payee == narration:
        payee = None  # "Advance funding" "Advance funding" says it twice

    meta: dict[str, Any] = {"filename": filename, "lineno": 0, "stripe_id": txn_id}
    if source_id:
        meta["stripe_source"] = source_id
    if bt_type:
        meta["stripe_type"] = bt_type
    if category and category != bt_type:
        meta["stripe_category"] = category
    if capital and description:
        meta["stripe_description"] = description
    if get("exchange_rate") is not None:
        meta.update(_presentment(bt, source_obj, code, f"balance transaction {txn_id}"))  # type: ignore[arg-type]

    links = _EMPTY
    if source_id and (
        bt_type in PAYOUT_TYPES or (capital and str(source_id).startswith(_LOAN_PREFIX))
    ):
        links = frozenset({_LINK_BAD_CHARS.sub("-", source_id)})

    flag = "!" if field == "uncategorized" else "*"
    return _new_tuple(_Transaction, (meta, date, flag, payee, narration, _EMPTY, links, postings))


def book_pairs(
    bts: Iterable[Mapping[str, Any]], client: ClientConfig, filename: str = DEFAULT_FILENAME
) -> list[tuple[data.Transaction, Mapping[str, Any]]]:
    """``book_all``, each entry paired with its BT: the rule engine needs both, in this order."""
    ctx = _context(client)
    pairs: list[tuple[data.Transaction, Mapping[str, Any]]] = []
    append = pairs.append
    memo = _Memo()
    # An archive is in (created, id) order, and its dates then rarely go back: when neither
    # happens the pairs are already in (date, created, id) order, and need no sort keys.
    in_order = True
    last_date: Any = datetime.date.min
    last_created: Any = None
    last_id: Any = None
    for bt in bts:
        entry = _book(bt, ctx, filename, memo)
        append((entry, bt))
        if in_order:
            date, created, txn_id = entry[1], bt["created"], bt["id"]
            if date == last_date and (
                created > last_created or (created == last_created and txn_id > last_id)
            ):
                last_created, last_id = created, txn_id
            elif date > last_date:
                last_date, last_created, last_id = date, created, txn_id
            else:
                in_order = False
    if in_order:
        return pairs
    keyed = [(entry.date, bt["created"], bt["id"], entry, bt) for entry, bt in pairs]
    keyed.sort(key=_SORT_KEY)
    return [(item[3], item[4]) for item in keyed]
