"""Stripe Capital: loan CSV exports → entries against the loan liability, reconciled with sync.

Stripe does not report the principal/fee split of a Capital repayment in its balance transactions
(STRIPE-FACTS §5.4), so users export their Capital transactions as CSV and import them here. The
money itself is also in the synced balance transactions (``financing_payout``,
``financing_paydown`` and their reversals), which ``booking.py`` books whole against the loan. The
two must meet without counting anything twice:

* **Stripe's balance transaction owns the money** (amount, date, clearing posting, ``stripe_id``):
  the clearing account must keep tying out with ``/v1/balance``.
* **The CSV owns the split** (principal vs financing fee) and names the loan.

So a CSV row whose balance transaction the ledger already holds adds only a small linked entry
moving the fee part from the liability to the fee expense (the ledger is append-only); a row
imported before its balance transaction is synced books the money and the split in one entry that
carries the transaction's ``stripe_id`` when it is known (from the CSV, or found in the client's
local archive), so sync skips it; and for a row without one, sync asks ``covered_by_capital`` and
skips the balance transaction that is the same money (same kind, currency and amount, within
``MATCH_DAYS`` days). Matching is by ids first (``txn_…``, ``cptxn_…``), then amount + date.

The module is pure down to ``import_file``/``loan_status``, the I/O edge used by the CLI.
"""

from __future__ import annotations

import csv
import datetime
import io
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from beancount.core import data
from beancount.core.amount import Amount

from beancount_stripe import archive, currency, ledger
from beancount_stripe.config import CAPITAL_FIELDS, CapitalConfig, ClientConfig, LoanConfig, zone
from beancount_stripe.errors import (
    BeancountStripeError,
    ConfigError,
    CurrencyError,
    InputFileError,
    LedgerError,
)
from beancount_stripe.ledger import ScannedEntry

__all__ = [
    "BT_TYPES",
    "KINDS",
    "MATCH_DAYS",
    "CapitalFile",
    "CapitalRow",
    "ImportResult",
    "LoanState",
    "LoanStatus",
    "Plan",
    "archive_for",
    "covered_by_capital",
    "import_file",
    "ledger_items",
    "loan_status",
    "looks_like_capital",
    "parse_csv",
    "plan_import",
    "read_csv",
    "scanned_from_entries",
    "status_of",
]

# -- what a Capital transaction is ------------------------------------------------------------

PAYOUT = "payout"
PAYDOWN = "paydown"
PAYOUT_REVERSAL = "payout_reversal"
PAYDOWN_REVERSAL = "paydown_reversal"
KINDS = (PAYOUT, PAYDOWN, PAYOUT_REVERSAL, PAYDOWN_REVERSAL)
BT_TYPES: dict[str, str] = {kind: f"financing_{kind}" for kind in KINDS}
KIND_OF_BT: dict[str, str] = {bt_type: kind for kind, bt_type in BT_TYPES.items()}
# The sign of each kind's effect on the Stripe balance.
SIGN: dict[str, int] = {PAYOUT: 1, PAYDOWN: -1, PAYOUT_REVERSAL: -1, PAYDOWN_REVERSAL: 1}
_REPAYMENT_KINDS = frozenset({PAYDOWN, PAYDOWN_REVERSAL})  # kinds with a principal/fee split
LABELS: dict[str, str] = {
    PAYOUT: "Stripe Capital financing",
    PAYDOWN: "Stripe Capital paydown",
    PAYOUT_REVERSAL: "Stripe Capital financing reversal",
    PAYDOWN_REVERSAL: "Stripe Capital paydown reversal",
}
# A CSV row and a balance transaction are the same money when kind, currency and amount are equal
# and their dates (in the client's time zone) are at most this many days apart.
MATCH_DAYS = 2
WITHHOLDING_REASON = "automatic_withholding"
_WITHHELD_PREFIX = "Withheld funds from"  # balance transaction description of a withholding

# -- CSV columns --------------------------------------------------------------------------------

# Header (case-insensitive, spaces collapsed) → field. STRIPE-FACTS §5.5 and §6.3.
HEADER_FIELDS: dict[str, str] = {
    # report style (balance change from activity / payout reconciliation, itemized)
    "balance_transaction_id": "id",
    "created_utc": "created_utc",
    "created": "created",
    "reporting_category": "type",
    "gross": "amount",
    "net": "net",
    "fee": "stripe_fee",
    "currency": "currency",
    "description": "description",
    "source_id": "source",
    # the legacy Dashboard balance export ("Balance → All activity → Export")
    "id": "id",
    "type": "type",
    "source": "source",
    "amount": "amount",
    "created (utc)": "created_utc",
    # financing transactions (the API object, Sigma, the Capital Dashboard export)
    "created_at": "created_utc",
    "advance_amount": "advance_amount",
    "fee_amount": "fee_amount",
    "total_amount": "total_amount",
    "reason": "reason",
    "financing_offer": "loan",
    "reversed_transaction": "reversed_transaction",
    "user_facing_description": "description",
    "legacy_balance_transaction_source": "source",
    "balance_transaction": "id",
    "loan": "loan",
    "loan_id": "loan",
    "remaining_amount": "remaining_amount",
    "remaining_principal": "remaining_principal",
}

# Columns of Stripe's exports that say nothing about Capital money: read past, never an error.
KNOWN_IGNORED: frozenset[str] = frozenset(
    """
    automatic_payout_effective_at automatic_payout_effective_at_utc automatic_payout_id
    available_on available_on_utc card_address_city card_address_country card_address_line1
    card_address_line2 card_address_postal_code card_address_state card_brand card_country
    card_funding charge_created charge_created_utc charge_id connected_account_country
    connected_account_direct_charge_id connected_account_id connected_account_name
    customer_address_city customer_address_country customer_address_line1
    customer_address_line2 customer_address_postal_code customer_address_state
    customer_description customer_email customer_facing_amount customer_facing_currency
    customer_id customer_name customer_shipping_address_city customer_shipping_address_country
    customer_shipping_address_line1 customer_shipping_address_line2
    customer_shipping_address_postal_code customer_shipping_address_state
    destination_payment_id dispute_reason effective_at effective_at_utc invoice_id
    invoice_number is_link order_id payment_intent_id payment_method_type payout_description
    payout_destination_id payout_expected_arrival_date payout_id payout_reversed_at
    payout_reversed_at_utc payout_status payout_type regulatory_tag shipping_address_city
    shipping_address_country shipping_address_line1 shipping_address_line2
    shipping_address_postal_code shipping_address_state statement_descriptor subscription_id
    trace_id trace_id_status
    object account account_id livemode linked_payment charge treasury_transaction
    financing_type product_type status withhold_rate
    """.split()
) | frozenset(
    {
        "destination platform fee",
        "destination platform fee currency",
        "available on (utc)",
        "customer facing amount",
        "customer facing currency",
        "transfer",
        "transfer date (utc)",
        "transfer group",
    }
)
# Fields only financing-transaction exports have: there, type `payout` is the Capital payout
# (in a balance export it is a payout to the bank, which is not Capital's business).
_FINANCING_FIELDS = frozenset(
    {"advance_amount", "fee_amount", "total_amount", "reason", "loan", "reversed_transaction"}
)
# (what, headers recognized, fields that give it, the field to suggest) a file must have.
_REQUIRED = (
    ("type", "reporting_category, Type, type", {"type"}, "type"),
    (
        "date",
        "created_utc, Created (UTC), created, created_at",
        {"created", "created_utc"},
        "created",
    ),
    (
        "amount",
        "gross, net, Amount, Net, total_amount, advance_amount",
        {"amount", "net", "total_amount", "advance_amount"},
        "amount",
    ),
)


def _norm_header(header: str) -> str:
    return " ".join(header.replace("\ufeff", "").split()).casefold()


# -- parsed rows ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CapitalRow:
    """One Capital transaction of a CSV, validated; amounts are integers in minor units."""

    row: int  # spreadsheet row (the header is row 1)
    line: int  # file line the row starts on
    kind: str  # payout | paydown | payout_reversal | paydown_reversal
    amount: int  # signed effect on the Stripe balance
    commodity: str  # upper-case currency code
    date: datetime.date  # in the client's time zone
    when: datetime.datetime | None  # the instant, when the CSV gives a time
    loan: LoanConfig
    txn_id: str | None = None  # the balance transaction (txn_…)
    cptxn_id: str | None = None  # the financing transaction (cptxn_…)
    source: str | None = None
    description: str | None = None
    reason: str | None = None
    reversed_id: str | None = None
    advance: int | None = None  # principal part (magnitude), when the CSV splits it
    fee: int | None = None  # financing-fee part (magnitude), when the CSV splits it
    remaining: int | None = None  # left to repay after this row (advance + fee)
    remaining_principal: int | None = None

    @property
    def magnitude(self) -> int:
        return abs(self.amount)


@dataclass(frozen=True)
class CapitalFile:
    """A parsed Capital CSV: its rows in time order, and how many rows were not Capital's."""

    path: Path
    style: str  # "balance report" | "balance export" | "financing transactions" | "mapped"
    rows: tuple[CapitalRow, ...]
    skipped: int = 0  # rows of other transaction types (a whole balance export, say)


def _error(path: Path | str, row: int | None, what: str, fix: str) -> InputFileError:
    where = f"{path}, row {row}" if row is not None else str(path)
    return InputFileError(what, where=where, fix=fix)


def _fmt(minor: int, commodity: str) -> str:
    return f"{currency.to_decimal(minor, commodity)} {commodity}"


def read_csv(path: Path, client: ClientConfig) -> CapitalFile:
    """Read and validate a Capital CSV export for ``client`` (``parse_csv`` on the file's text)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise _error(
            path, None, f"cannot read the file ({exc.strerror})", "check the path"
        ) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _error(
            path,
            None,
            "the file is not UTF-8 text",
            "export it again from Stripe, or save it from your spreadsheet as `CSV UTF-8`",
        ) from None
    return parse_csv(text, client, path)


def parse_csv(text: str, client: ClientConfig, path: Path | str = "<csv>") -> CapitalFile:
    """Parse a Capital CSV: header-driven, amounts in major units, dates in the client's zone.

    Raises ``InputFileError`` naming the row and the reason for the first problem; rows that are
    not Capital transactions (a whole balance export) are counted and skipped.
    """
    path = Path(path)
    capital = require_capital(client)
    tz = _zone(client.timezone, client)
    local_tz = _zone(capital.timezone, client) if capital.timezone else tz
    text = text.lstrip("\ufeff")
    first = text.split("\n", 1)[0]
    delimiter = ";" if first.count(";") > first.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise _error(
            path, None, "the file is empty", "export the Capital transactions again"
        ) from None
    except csv.Error as exc:
        raise _error(path, 1, f"unreadable CSV header ({exc})", "export the file again") from None
    columns = _columns(header, capital.columns, path)
    fields = set(columns.values())
    style = _style(header, fields)
    for required, names, have, example in _REQUIRED:
        if not fields & have:
            raise _error(
                path,
                1,
                f"no column gives the {required} (recognized: {names})",
                "map the column that has it in the client's `capital.columns`, e.g. "
                f'`columns: {{"My {required} column": {example}}}`',
            )
    financing_vocabulary = bool(fields & _FINANCING_FIELDS)
    rows: list[CapitalRow] = []
    skipped = 0
    previous_end = reader.line_num
    for index, values in enumerate(_records(reader, path)):
        start_line = previous_end + 1
        previous_end = reader.line_num
        row_no = index + 2
        if not any(v.strip() for v in values):
            continue
        if len(values) != len(header):
            raise _error(
                path,
                row_no,
                f"{len(values)} values for {len(header)} columns",
                "the row is cut or has an unquoted comma; export the file again",
            )
        record: dict[str, str] = {}
        for i, value in enumerate(values):
            target = columns.get(i)
            if target is not None:
                record[target] = value.strip()
        parsed = _row(record, row_no, start_line, client, tz, local_tz, financing_vocabulary, path)
        if parsed is None:
            skipped += 1
        else:
            rows.append(parsed)
    rows = _refine_reversals(rows)
    rows.sort(key=lambda r: (r.date, r.when or _midnight(r.date, tz), r.row))
    return CapitalFile(path=path, style=style, rows=tuple(rows), skipped=skipped)


def _records(reader: Any, path: Path) -> Iterable[list[str]]:
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise _error(
                path, reader.line_num, f"unreadable CSV ({exc})", "export the file again"
            ) from None
        yield values


def require_capital(client: ClientConfig) -> CapitalConfig:
    """The client's Capital configuration, or a ConfigError saying how to add one."""
    if client.capital is None:
        raise ConfigError(
            f"client {client.id} has no Stripe Capital loans configured",
            where=str(client.source_file or f"client {client.id}"),
            fix="add a `capital:` block with the loan's id, currency, advance and fee to the "
            "client (see config/README.md)",
        )
    return client.capital


def _zone(name: str, client: ClientConfig) -> ZoneInfo:
    return zone(name, client.id)


def _midnight(day: datetime.date, tz: ZoneInfo) -> datetime.datetime:
    return datetime.datetime(day.year, day.month, day.day, tzinfo=tz)


def _columns(
    header: Sequence[str], mapping: Sequence[tuple[str, str]], path: Path
) -> dict[int, str]:
    """Column index → field for every header; unknown headers are an error (row 1)."""
    user = {_norm_header(h): target for h, target in mapping}
    out: dict[int, str] = {}
    given: dict[str, str] = {}
    for index, raw in enumerate(header):
        norm = _norm_header(raw)
        target = user.get(norm) or HEADER_FIELDS.get(norm)
        if target is None:
            if norm in KNOWN_IGNORED or norm.endswith("(metadata)") or not norm:
                continue
            raise _error(
                path,
                1,
                f"unknown column `{raw}` (column {index + 1})",
                "map it in the client's `capital.columns` to one of "
                f"{', '.join(f for f in CAPITAL_FIELDS if f != 'ignore')}, or to `ignore`",
            )
        if target == "ignore":
            continue
        if target in given:
            raise _error(
                path,
                1,
                f"columns `{given[target]}` and `{raw}` both give the `{target}`",
                "map one of them to `ignore` in the client's `capital.columns`",
            )
        given[target] = raw
        out[index] = target
    return out


def looks_like_capital(head: str, client: ClientConfig) -> bool:
    """Cheap test on a file's first KB: a CSV header this client's map reads, with Capital rows.

    For beangulp's ``identify`` (Fava calls it on every view): no row is validated here.
    """
    if client.capital is None:
        return False
    head = head.lstrip("\ufeff")
    first = head.split("\n", 1)[0]
    delimiter = ";" if first.count(";") > first.count(",") else ","
    try:
        header = next(csv.reader([first], delimiter=delimiter))
        fields = set(_columns(header, client.capital.columns, Path("<head>")).values())
    except (csv.Error, StopIteration, InputFileError):
        return False
    if not ({"type"} <= fields and fields & {"created", "created_utc"}):
        return False
    if not fields & {"amount", "net", "total_amount", "advance_amount"}:
        return False
    markers = ("financing_", "cptxn_", *(i for loan in client.capital.loans for i in loan.ids))
    return bool(fields & _FINANCING_FIELDS) or any(m in head for m in markers)


def _style(header: Sequence[str], fields: set[str]) -> str:
    names = {_norm_header(h) for h in header}
    if fields & {"advance_amount", "fee_amount", "total_amount"}:
        return "financing transactions"
    if "reporting_category" in names:
        return "balance report"
    if "created (utc)" in names:
        return "balance export"
    return "mapped"


def _kind(type_value: str, reason: str | None, financing_vocabulary: bool) -> str | None:
    """The Capital kind of a row, or None for a row of another transaction type."""
    value = re.sub(r"[\s-]+", "_", type_value.strip().casefold())
    if value in KIND_OF_BT:
        return KIND_OF_BT[value]
    if value in ("payment", "paydown"):
        return PAYDOWN
    if value == "payout" and financing_vocabulary:
        return PAYOUT
    if value == "reversal":
        return PAYOUT_REVERSAL if reason == "financing_cancellation" else PAYDOWN_REVERSAL
    return None


def _row(
    record: Mapping[str, str],
    row_no: int,
    line: int,
    client: ClientConfig,
    tz: ZoneInfo,
    local_tz: ZoneInfo,
    financing_vocabulary: bool,
    path: Path,
) -> CapitalRow | None:
    def fail(what: str, fix: str) -> InputFileError:
        return _error(path, row_no, what, fix)

    type_value = record.get("type", "")
    if not type_value:
        raise fail("the type is empty", "every row needs its transaction type")
    reason = record.get("reason") or None
    kind = _kind(type_value, reason, financing_vocabulary)
    if kind is None:
        return None
    assert client.capital is not None
    loans = client.capital.loans

    code = record.get("currency", "").strip()
    if code:
        if not currency.is_known(code):
            raise fail(
                f"unknown currency `{code}`",
                "the currency column must hold ISO codes such as usd, eur, jpy",
            )
        commodity = currency.commodity(code)
        if not any(loan.currency == commodity for loan in loans):
            have = ", ".join(f"{loan.id} in {loan.currency}" for loan in loans)
            raise fail(
                f"currency {commodity}: client {client.id} has no Capital loan in {commodity} "
                f"(its loans: {have})",
                "import this file for the client it belongs to, or add the loan to `capital.loans`",
            )
    else:
        commodity = ""
    loan = _resolve_loan(record, commodity, client, fail)
    commodity = commodity or loan.currency
    if loan.currency != commodity:
        raise fail(
            f"loan {loan.id} is in {loan.currency}, but the row is in {commodity}",
            "check the row's currency and loan columns, or the loan's `currency` in the config",
        )

    def amount(name: str) -> int | None:
        text = record.get(name, "")
        if not text:
            return None
        try:
            return _parse_amount(text, commodity)
        except _BadNumber as exc:
            raise fail(f"`{name}` {exc.reason}: {text!r}", exc.fix) from None

    values = {
        name: amount(name)
        for name in (
            "amount",
            "net",
            "stripe_fee",
            "advance_amount",
            "fee_amount",
            "total_amount",
            "remaining_amount",
            "remaining_principal",
        )
    }
    stripe_fee = values["stripe_fee"]
    if stripe_fee:
        raise fail(
            f"Stripe fee {_fmt(stripe_fee, commodity)} on a Capital transaction, which carries "
            "no Stripe fee",
            "check that the row is a Capital transaction; map this column to `fee_amount` if it "
            "is the financing fee",
        )
    sign = SIGN[kind]
    signed = values["amount"] if values["amount"] is not None else values["net"]
    gross, net = values["amount"], values["net"]
    if gross is not None and net is not None and gross - (stripe_fee or 0) != net:
        raise fail(
            "gross and net differ on a Capital transaction",
            "export the file again; Capital transactions have no Stripe fee",
        )
    # The split columns hold magnitudes (some exports sign them like the balance effect).
    advance, fee, total = (
        None if values[k] is None else abs(values[k])  # type: ignore[arg-type]
        for k in ("advance_amount", "fee_amount", "total_amount")
    )
    magnitude: int | None
    if signed is not None:
        if signed * sign < 0:
            direction = "adds to" if sign > 0 else "takes from"
            raise fail(
                f"a {kind.replace('_', ' ')} {direction} the Stripe balance, but the amount is "
                f"{_fmt(signed, commodity)}",
                "check the type and the sign of the amount",
            )
        magnitude = abs(signed)
    elif kind in (PAYOUT, PAYOUT_REVERSAL) and advance is not None:
        magnitude = advance  # a payout moves the advance; the fee is owed, not paid out
    elif total is not None:
        magnitude = abs(total)
    elif advance is not None:
        magnitude = advance + (fee or 0)
    else:
        raise fail("the amount is empty", "every Capital row needs its amount")
    if magnitude == 0:
        raise fail("the amount is zero", "remove the row; it moves no money")
    if kind in _REPAYMENT_KINDS:
        if advance is not None and fee is None:
            fee = magnitude - advance
        elif fee is not None and advance is None:
            advance = magnitude - fee
        if advance is not None and fee is not None and advance + fee != magnitude:
            raise fail(
                f"advance {_fmt(advance, commodity)} + fee {_fmt(fee, commodity)} is not the "
                f"amount {_fmt(magnitude, commodity)}",
                "export the file again; the split must add up to the transaction",
            )
        if fee is not None and fee < 0:
            raise fail("the fee part is negative", "check the advance and fee columns")
    elif kind == PAYOUT and fee and advance is not None:  # a payout row may state the loan fee
        loan_fee = currency.to_minor(loan.fee, commodity)
        if fee != loan_fee:
            raise fail(
                f"the export gives the loan's fee as {_fmt(fee, commodity)}, the configuration "
                f"as {_fmt(loan_fee, commodity)}",
                f"correct `fee` of loan {loan.id} in the configuration",
            )
    if kind == PAYOUT:
        loan_advance = currency.to_minor(loan.advance, commodity)
        if magnitude != loan_advance:
            raise fail(
                f"financing payout of {_fmt(magnitude, commodity)}, but loan {loan.id} is "
                f"configured with advance {_fmt(loan_advance, commodity)}",
                f"correct `advance` of loan {loan.id} in the configuration",
            )

    when, day = _when(record, tz, local_tz, fail)
    ident = record.get("id", "") or None
    txn_id = cptxn_id = None
    if ident:
        if ident.startswith("txn_"):
            txn_id = ident
        elif ident.startswith("cptxn_") or financing_vocabulary:
            cptxn_id = ident
        else:
            raise fail(
                f"id `{ident}` is neither a balance transaction (txn_…) nor a financing "
                "transaction (cptxn_…)",
                "map the column that holds the balance transaction id to `id`",
            )
    for name in ("remaining_amount", "remaining_principal"):
        value = values[name]
        if value is not None and value < 0:
            raise fail(f"`{name}` is negative", "it is what is left to repay")
    return CapitalRow(
        row=row_no,
        line=line,
        kind=kind,
        amount=sign * magnitude,
        commodity=commodity,
        date=day,
        when=when,
        loan=loan,
        txn_id=txn_id,
        cptxn_id=cptxn_id,
        source=record.get("source") or None,
        description=_clean(record.get("description")),
        reason=reason,
        reversed_id=record.get("reversed_transaction") or None,
        advance=advance if kind in _REPAYMENT_KINDS else None,
        fee=fee if kind in _REPAYMENT_KINDS else None,
        remaining=values["remaining_amount"],
        remaining_principal=values["remaining_principal"],
    )


_LOAN_REF = re.compile(r"\b(?:flxln|financingoffer)_[A-Za-z0-9]+")


def _resolve_loan(
    record: Mapping[str, str],
    commodity: str,
    client: ClientConfig,
    fail: Callable[[str, str], InputFileError],
) -> LoanConfig:
    """The configured loan a row belongs to: named by a column, the source or the description."""
    assert client.capital is not None
    loans = client.capital.loans
    by_id = {loan_id: loan for loan in loans for loan_id in loan.ids}
    add_fix = "add it to the client's `capital.loans` (id, currency, advance, fee)"
    named = record.get("loan", "")
    if named:
        if named in by_id:
            return by_id[named]
        raise fail(f"loan `{named}` is not in the configuration", add_fix)
    source = record.get("source", "")
    if source in by_id:
        return by_id[source]
    description = record.get("description", "")
    for text in (source, description):
        for ref in _LOAN_REF.findall(text):
            if ref in by_id:
                return by_id[ref]
            raise fail(f"loan `{ref}` is not in the configuration", add_fix)
    candidates = [loan for loan in loans if not commodity or loan.currency == commodity]
    if len(candidates) == 1:
        return candidates[0]
    raise fail(
        "the row does not say which loan it belongs to, and the client has "
        f"{len(candidates)} loans" + (f" in {commodity}" if commodity else ""),
        "add a `loan` (or `financing_offer`) column, or map the column that names the loan",
    )


class _BadNumber(Exception):
    def __init__(self, reason: str, fix: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.fix = fix


_NUMBER_RE = re.compile(r"(?P<sign>[-+])?(?P<int>\d{1,3}(?:,\d{3})+|\d*)(?:\.(?P<frac>\d+))?")


def _parse_amount(text: str, commodity: str) -> int:
    """Major units as written in a CSV (``-1,234.56``, ``(12.50)``) → signed minor units."""
    value = text.strip().replace("\u2212", "-")
    negative = False
    if value.startswith("(") and value.endswith(")"):
        negative, value = True, value[1:-1].strip()
    m = _NUMBER_RE.fullmatch(value)
    if not m or not (m.group("int") or m.group("frac")):
        raise _BadNumber(
            "is not a number",
            "write amounts in major units as plain decimals, e.g. -12.50 (no currency symbol)",
        )
    number = Decimal(f"{m.group('int').replace(',', '') or '0'}.{m.group('frac') or '0'}")
    if m.group("sign") == "-":
        negative = not negative
    try:
        minor = currency.to_minor(number, commodity)
    except CurrencyError as exc:
        raise _BadNumber(
            f"cannot be held exactly in {commodity} ({exc.what})", exc.fix or ""
        ) from None
    return -minor if negative else minor


_ISO_RE = re.compile(
    r"(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?"
    r"\s*(Z|UTC|[+-]\d{2}:?\d{2})?)?"
)
_US_RE = re.compile(
    r"(\d{1,2})/(\d{1,2})/(\d{4}|\d{2})(?:,?\s+(\d{1,2}):(\d{2})(?::(\d{2}))?\s*([AaPp][Mm])?)?"
)


def _when(
    record: Mapping[str, str],
    tz: ZoneInfo,
    local_tz: ZoneInfo,
    fail: Callable[[str, str], InputFileError],
) -> tuple[datetime.datetime | None, datetime.date]:
    """(instant in the client's zone or None, date in the client's zone) of a row."""
    for name, column_zone in (("created_utc", datetime.UTC), ("created", local_tz)):
        text = record.get(name, "")
        if not text:
            continue
        parsed = _parse_when(text, column_zone)
        if parsed is None:
            raise fail(
                f"`{name}` is not a date: {text!r}",
                "dates must look like 2024-04-23 21:56, 2024-04-23T21:56:00Z or 4/23/2024 21:56",
            )
        if isinstance(parsed, datetime.datetime):
            local = parsed.astimezone(tz)
            return local, local.date()
        return None, parsed
    raise fail("the date is empty", "every Capital row needs its date")


def _parse_when(text: str, zone: datetime.tzinfo) -> datetime.datetime | datetime.date | None:
    value = text.strip()
    try:
        if value.isdigit() and len(value) >= 9:
            return datetime.datetime.fromtimestamp(int(value), datetime.UTC)
        m = _ISO_RE.fullmatch(value)
        if m:
            year, month, day = int(m.group(1)), int(m.group(2)), int(m.group(3))
            if m.group(4) is None:
                return datetime.date(year, month, day)
            hour, minute, second = int(m.group(4)), int(m.group(5)), int(m.group(6) or 0)
            offset = m.group(7)
            tzinfo: datetime.tzinfo = zone
            if offset in ("Z", "UTC"):
                tzinfo = datetime.UTC
            elif offset:
                digits = offset.replace(":", "")
                delta = datetime.timedelta(hours=int(digits[1:3]), minutes=int(digits[3:5]))
                tzinfo = datetime.timezone(delta if digits[0] == "+" else -delta)
            return datetime.datetime(year, month, day, hour, minute, second, tzinfo=tzinfo)
        m = _US_RE.fullmatch(value)  # Excel re-saves dates as M/D/YYYY H:MM
        if m:
            month, day, year = int(m.group(1)), int(m.group(2)), int(m.group(3))
            year += 2000 if year < 100 else 0
            if m.group(4) is None:
                return datetime.date(year, month, day)
            hour, minute, second = int(m.group(4)), int(m.group(5)), int(m.group(6) or 0)
            meridiem = (m.group(7) or "").lower()
            if meridiem:
                if not 1 <= hour <= 12:
                    return None
                hour = hour % 12 + (12 if meridiem == "pm" else 0)
            return datetime.datetime(year, month, day, hour, minute, second, tzinfo=zone)
    except ValueError:  # 2024-02-30, 25:00 …
        return None
    return None


def _clean(value: str | None) -> str | None:
    if not value:
        return None
    text = " ".join(value.split())
    return text or None


def _refine_reversals(rows: list[CapitalRow]) -> list[CapitalRow]:
    """A financing `reversal` of a payout listed in the same file is a payout reversal."""
    payouts = {r.cptxn_id for r in rows if r.kind == PAYOUT and r.cptxn_id}
    out = []
    for r in rows:
        if r.kind == PAYDOWN_REVERSAL and r.reversed_id and r.reversed_id in payouts:
            r = replace(r, kind=PAYOUT_REVERSAL, amount=-r.magnitude, advance=None, fee=None)
        out.append(r)
    return out


# -- what the ledger already holds ------------------------------------------------------------


@dataclass
class LedgerItem:
    """One Capital movement the ledger holds: a synced balance transaction, a Capital CSV entry
    booking the money, or a split entry adding the fee part to a synced one."""

    date: datetime.date
    kind: str
    origin: str  # "sync" | "capital" (money and split) | "split" (fee part of a synced BT)
    commodity: str
    amount: int | None  # signed effect on the Stripe balance; None: unknown (a split without BT)
    loan: str | None  # primary id of the configured loan
    txn: str | None  # the balance transaction (stripe_id, or capital_for of a split)
    cptxn: str | None
    fee: int  # signed posting on the fee account (+ for a paydown)
    principal: int  # signed posting on the loan account
    reverses: str | None
    where: str
    withheld: bool = False
    split: bool = False  # a synced BT whose fee part is booked by a split entry


def scanned_from_entries(entries: Iterable[data.Directive] | None) -> list[ScannedEntry]:
    """The Capital-related transactions of loaded entries, shaped like ``ledger.scan`` finds them.

    Lets the beangulp importers (which get Beancount entries) share the logic of the CLI (which
    scans text).
    """
    out = []
    for entry in entries or ():
        if not isinstance(entry, data.Transaction) or not entry.meta:
            continue
        keys = entry.meta.keys()
        stripe_type = str(entry.meta.get("stripe_type", ""))
        if not stripe_type.startswith("financing_") and not any(
            k.startswith("capital_") for k in keys
        ):
            continue
        meta = {str(k): str(v) for k, v in entry.meta.items() if k not in ("filename", "lineno")}
        postings = tuple(
            (p.account, p.units.number, p.units.currency)
            for p in entry.postings
            if p.units is not None and p.units.number is not None
        )
        header = f"{entry.payee or ''} {entry.narration or ''}"
        out.append(
            ScannedEntry(
                entry.date,
                meta,
                postings,
                Path(str(entry.meta.get("filename", "<entries>"))),
                int(entry.meta.get("lineno", 0) or 0),
                header,
            )
        )
    return out


def _loan_ids(client: ClientConfig) -> dict[str, str]:
    loans = client.capital.loans if client.capital else ()
    return {loan_id: loan.id for loan in loans for loan_id in loan.ids}


def _loan_of(
    texts: Iterable[str], commodity: str, client: ClientConfig, ids: Mapping[str, str]
) -> str | None:
    for text in texts:
        if text in ids:
            return ids[text]
        for ref in _LOAN_REF.findall(text):
            if ref in ids:
                return ids[ref]
    loans = client.capital.loans if client.capital else ()
    candidates = [loan.id for loan in loans if loan.currency == commodity]
    return candidates[0] if len(candidates) == 1 else None


def _sum_minor(entry: ScannedEntry, account: str, commodity: str) -> int:
    total = Decimal(0)
    for acc, number, com in entry.postings:
        if acc == account and com == commodity:
            total += number
    return currency.to_minor(total, commodity) if currency.is_known(commodity) else 0


def ledger_items(scanned: Iterable[ScannedEntry], client: ClientConfig) -> list[LedgerItem]:
    """Every Capital movement in the scanned entries, with split entries joined to their BT."""
    accounts = client.accounts
    ids = _loan_ids(client)
    items: list[LedgerItem] = []
    for entry in scanned:
        meta = entry.meta
        if "capital_kind" in meta:
            kind = meta["capital_kind"]
        else:
            kind = KIND_OF_BT.get(meta.get("stripe_type", ""), "")
        if kind not in KINDS:
            continue
        commodity = next(
            (
                com
                for acc, _n, com in entry.postings
                if acc in (accounts.clearing, accounts.capital_loan, accounts.capital_fees)
            ),
            "",
        )
        if not currency.is_known(commodity):
            continue
        if "capital_for" in meta:
            origin, txn = "split", meta["capital_for"]
            amount: int | None = None
        else:
            origin = "capital" if "capital_kind" in meta else "sync"
            txn = meta.get("stripe_id") or None
            amount = _sum_minor(entry, accounts.clearing, commodity)
        loan = meta.get("capital_loan")
        loan = ids.get(loan, loan) if loan else None
        if loan is None:
            loan = _loan_of((meta.get("stripe_source", ""), entry.header), commodity, client, ids)
        reason = meta.get("capital_reason")
        items.append(
            LedgerItem(
                date=entry.date,
                kind=kind,
                origin=origin,
                commodity=commodity,
                amount=amount,
                loan=loan,
                txn=txn,
                cptxn=meta.get("capital_txn") or None,
                fee=_sum_minor(entry, accounts.capital_fees, commodity),
                principal=_sum_minor(entry, accounts.capital_loan, commodity),
                reverses=meta.get("capital_reverses") or None,
                where=f"{entry.path}:{entry.line}",
                withheld=reason == WITHHOLDING_REASON
                or (reason is None and _WITHHELD_PREFIX in entry.header),
            )
        )
    by_txn = {i.txn: i for i in items if i.origin == "sync" and i.txn}
    for item in items:
        if item.origin == "split" and item.txn in by_txn:
            bt = by_txn[item.txn]
            bt.split = True
            item.amount = bt.amount
            item.withheld = item.withheld or bt.withheld
            item.loan = item.loan or bt.loan
    return items


# -- the split of each repayment ----------------------------------------------------------------


def _round_div(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded half up, exactly (integers only)."""
    return (2 * numerator + denominator) // (2 * denominator)


@dataclass
class _Repayment:
    key: str | None  # txn_… or cptxn_…, when known
    magnitude: int
    fee: int  # magnitude of the fee part
    reversed: bool = False


@dataclass
class LoanState:
    """A loan's running totals, in minor units: enough to split the next repayment.

    Fee parts use cumulative rounding: after repaying C of the total T = advance + fee, the fee
    booked so far is round(C × fee / T), so the parts sum exactly to the fee when C reaches T. A
    reversal undoes exactly the split of the repayment it reverses.
    """

    loan: LoanConfig
    advance: int
    fee_total: int
    repaid: int = 0  # repaid with a booked split, net of reversals (C)
    fees: int = 0  # fee parts booked so far
    advance_reversed: int = 0  # payouts reversed (financing cancelled)
    repayments: list[_Repayment] = field(default_factory=list)

    @classmethod
    def for_loan(cls, loan: LoanConfig) -> LoanState:
        return cls(
            loan,
            currency.to_minor(loan.advance, loan.currency),
            currency.to_minor(loan.fee, loan.currency),
        )

    @property
    def owed(self) -> int:
        """Advance (less reversed payouts) plus the fee: what the repayments must add up to."""
        return self.advance - self.advance_reversed + self.fee_total

    def fee_for_paydown(self, magnitude: int) -> int:
        """The fee part of a repayment of ``magnitude``, by cumulative pro-rata rounding."""
        owed = self.owed
        if owed <= 0 or self.fee_total == 0:
            return 0
        after = self.repaid + magnitude
        if after >= owed:  # the repayment that completes the loan takes the rest, exactly
            return self.fee_total - self.fees
        fee = _round_div(after * self.fee_total, owed) - self.fees
        return min(max(fee, 0), magnitude)

    def fee_for_reversal(self, magnitude: int, reverses: str | None) -> tuple[int, str | None]:
        """(fee part to undo, key of the repayment undone) for a reversal of ``magnitude``."""
        undone = self._reversed_repayment(magnitude, reverses)
        if undone is not None:
            undone.reversed = True
            return undone.fee, undone.key
        owed = self.owed
        if owed <= 0:
            return 0, None
        fee = self.fees - _round_div((self.repaid - magnitude) * self.fee_total, owed)
        return min(max(fee, 0), magnitude), None

    def _reversed_repayment(self, magnitude: int, key: str | None) -> _Repayment | None:
        if key:
            for rep in self.repayments:
                if rep.key == key and not rep.reversed:
                    return rep
        same = [r for r in self.repayments if r.magnitude == magnitude and not r.reversed]
        return same[-1] if same else None

    def apply(self, kind: str, magnitude: int, fee: int, key: str | None) -> None:
        """Record a movement whose split is booked (``fee`` is the fee part's magnitude)."""
        if kind == PAYDOWN:
            self.repaid += magnitude
            self.fees += fee
            self.repayments.append(_Repayment(key, magnitude, fee))
        elif kind == PAYDOWN_REVERSAL:
            self.repaid -= magnitude
            self.fees -= fee
        elif kind == PAYOUT_REVERSAL:
            self.advance_reversed += magnitude


# -- planning an import ---------------------------------------------------------------------------


@dataclass
class Plan:
    """What importing a Capital CSV adds to the ledger, and what each row turned out to be."""

    entries: list[data.Transaction] = field(default_factory=list)
    assertions: list[data.Balance] = field(default_factory=list)
    booked: int = 0  # rows booked with their money (their BT is not in the ledger)
    split: int = 0  # rows adding the fee part to a synced BT
    reconciled: int = 0  # rows of synced BTs that need nothing more (payouts)
    already: int = 0  # rows already imported
    warnings: list[str] = field(default_factory=list)

    @property
    def directives(self) -> list[data.Directive]:
        return [*self.entries, *self.assertions]


@dataclass
class _Bt:
    """A financing balance transaction of the local archive, not yet in the ledger."""

    id: str
    kind: str
    amount: int
    commodity: str
    date: datetime.date
    source: str | None


def _archive_bts(
    bts: Iterable[Mapping[str, Any]], booked: Collection[str], tz: ZoneInfo
) -> list[_Bt]:
    out = []
    for bt in bts:
        kind = KIND_OF_BT.get(str(bt.get("type", ""))) or KIND_OF_BT.get(
            str(bt.get("reporting_category", ""))
        )
        if kind is None or bt.get("id") in booked:
            continue
        code = str(bt.get("currency", ""))
        if not currency.is_known(code) or type(bt.get("amount")) is not int:
            continue
        source = bt.get("source")
        source_id = source.get("id") if isinstance(source, Mapping) else source
        out.append(
            _Bt(
                id=str(bt["id"]),
                kind=kind,
                amount=int(bt["net"]) if type(bt.get("net")) is int else int(bt["amount"]),
                commodity=currency.commodity(code),
                date=datetime.datetime.fromtimestamp(int(bt["created"]), tz).date(),
                source=str(source_id) if source_id else None,
            )
        )
    return out


def _nearest(candidates: Iterable[Any], day: datetime.date) -> Any | None:
    best = None
    best_key: tuple[int, datetime.date] | None = None
    for cand in candidates:
        gap = abs((cand.date - day).days)
        if gap > MATCH_DAYS:
            continue
        key = (gap, cand.date)
        if best_key is None or key < best_key:
            best, best_key = cand, key
    return best


def _by_key(items: Iterable[Any]) -> dict[tuple[str, str, int], list[Any]]:
    out: dict[tuple[str, str, int], list[Any]] = {}
    for item in items:
        if item.amount is not None:
            out.setdefault((item.kind, item.commodity, item.amount), []).append(item)
    return out


def _link(loan_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9\-_/.]", "-", loan_id)


def plan_import(
    capital_file: CapitalFile,
    client: ClientConfig,
    scanned: Iterable[ScannedEntry],
    *,
    booked_ids: Collection[str] = (),
    archive_bts: Iterable[Mapping[str, Any]] = (),
    complete_months: Collection[str] = (),
    balances: Mapping[tuple[datetime.date, str, str], str] | None = None,
    filename: str = "<capital>",
) -> Plan:
    """Decide, row by row, what the CSV adds to a ledger that already holds ``scanned``.

    ``booked_ids`` are all ``stripe_id``s in the ledger; ``archive_bts`` the client's archived
    balance transactions (to learn the id and exact date of rows imported before sync books
    them); ``complete_months`` the archive months fetched after they ended (an unmatched row in
    one of them would count money Stripe's balance does not show); ``balances`` the ledger's
    balance assertions by (date, account, currency). Raises ``InputFileError`` with the row
    number for a row that would double-book or contradicts the ledger; nothing is planned then.
    """
    return _Planner(
        capital_file,
        client,
        list(scanned),
        booked_ids,
        archive_bts,
        complete_months,
        balances or {},
        filename,
    ).run()


class _Planner:
    def __init__(
        self,
        capital_file: CapitalFile,
        client: ClientConfig,
        scanned: list[ScannedEntry],
        booked_ids: Collection[str],
        archive_bts: Iterable[Mapping[str, Any]],
        complete_months: Collection[str],
        balances: Mapping[tuple[datetime.date, str, str], str],
        filename: str,
    ) -> None:
        self.file = capital_file
        self.client = client
        self.accounts = client.accounts
        self.tz = _zone(client.timezone, client)
        self.items = ledger_items(scanned, client)
        self.all_ids = set(booked_ids) | {i.txn for i in self.items if i.txn}
        self.archive = _archive_bts(archive_bts, self.all_ids, self.tz)
        self.complete = set(complete_months)
        self.balances = balances
        self.filename = filename
        self.claimed: dict[int, int] = {}  # id() of a ledger item / archive BT → row matched
        self.plan = Plan()
        self.loans = {loan.id: loan for loan in client.capital.loans} if client.capital else {}
        self.states = {loan_id: LoanState.for_loan(loan) for loan_id, loan in self.loans.items()}
        # (date, row, signed amount, signed fee posting) of the money entries planned
        self.new_events: list[tuple[datetime.date, CapitalRow, int, int]] = []
        self._load_states()
        # Indexes for matching: by id, and by (kind, currency, amount) for amount + date.
        self.mine = [i for i in self.items if i.origin in ("capital", "split")]
        self.synced = [i for i in self.items if i.origin == "sync" and not i.split]
        self.mine_by_key = _by_key(self.mine)
        self.synced_by_key = _by_key(self.synced)
        self.archive_by_key = _by_key(self.archive)
        self.synced_by_txn = {i.txn: i for i in self.synced if i.txn}
        self.mine_by_id: dict[str, list[LedgerItem]] = {}
        for item in self.mine:
            for ident in {item.txn, item.cptxn} - {None}:
                self.mine_by_id.setdefault(str(ident), []).append(item)
        self.archive_by_id = {bt.id: bt for bt in self.archive}

    def fail(self, row: CapitalRow, what: str, fix: str) -> InputFileError:
        return _error(self.file.path, row.row, what, fix)

    def _load_states(self) -> None:
        ordered = sorted(self.items, key=lambda i: (i.date, i.where))
        for item in ordered:
            state = self.states.get(item.loan or "")
            if state is None:
                continue
            if item.kind == PAYOUT_REVERSAL and item.amount is not None:
                if item.origin != "split":
                    state.apply(PAYOUT_REVERSAL, abs(item.amount), 0, None)
            elif item.kind in _REPAYMENT_KINDS and item.origin in ("capital", "split"):
                if item.amount is None:
                    continue
                state.apply(item.kind, abs(item.amount), abs(item.fee), item.txn or item.cptxn)
                if item.kind == PAYDOWN_REVERSAL and item.reverses:
                    for rep in state.repayments:
                        if rep.key == item.reverses:
                            rep.reversed = True

    # -- matching --

    def _conflict(self, row: CapitalRow, item: Any, label: str) -> None:
        amount = item.amount
        if item.kind != row.kind or amount != row.amount or item.commodity != row.commodity:
            shown = _fmt(amount, item.commodity) if amount is not None else "an unknown amount"
            raise self.fail(
                row,
                f"{label} books this transaction as a {item.kind.replace('_', ' ')} of {shown}, "
                f"but the row says {row.kind.replace('_', ' ')} of "
                f"{_fmt(row.amount, row.commodity)}",
                "check the row against the Stripe Dashboard; if the ledger is wrong, delete its "
                "entry and import again",
            )

    def _compatible(self, row: CapitalRow, item: LedgerItem | _Bt) -> bool:
        txn = item.txn if isinstance(item, LedgerItem) else item.id
        cptxn = item.cptxn if isinstance(item, LedgerItem) else None
        if row.txn_id and txn and txn != row.txn_id:
            return False
        if row.cptxn_id and cptxn and cptxn != row.cptxn_id:
            return False
        return (
            id(item) not in self.claimed
            and item.kind == row.kind
            and item.amount == row.amount
            and item.commodity == row.commodity
        )

    def _candidates(self, index: Mapping[tuple[str, str, int], list[Any]], row: CapitalRow) -> Any:
        found = index.get((row.kind, row.commodity, row.amount), ())
        return _nearest((c for c in found if self._compatible(row, c)), row.date)

    def _imported(self, row: CapitalRow) -> LedgerItem | None:
        """The CSV entry (money or split) that already books this row, if any."""
        for ident in (row.cptxn_id, row.txn_id):
            for item in self.mine_by_id.get(ident or "", ()):
                if id(item) not in self.claimed:
                    self._conflict(row, item, f"an earlier Capital import ({item.where})")
                    return item
        return self._candidates(self.mine_by_key, row)

    def _synced(self, row: CapitalRow) -> LedgerItem | None:
        if row.txn_id:
            item = self.synced_by_txn.get(row.txn_id)
            if item is not None:
                if id(item) in self.claimed:
                    raise self.fail(
                        row,
                        f"{row.txn_id} is the same money as row {self.claimed[id(item)]}; "
                        "importing both would book it twice",
                        "remove one of the two rows",
                    )
                self._conflict(row, item, f"the synced entry at {item.where}")
                return item
            if row.txn_id in self.all_ids:
                raise self.fail(
                    row,
                    f"balance transaction {row.txn_id} is already in the ledger, but not as a "
                    "Capital transaction",
                    "check the id column; the row may belong to another export",
                )
            return None
        return self._candidates(self.synced_by_key, row)

    def _archived(self, row: CapitalRow) -> _Bt | None:
        if row.txn_id:
            bt = self.archive_by_id.get(row.txn_id)
            if bt is not None:
                self._conflict(row, bt, f"Stripe's balance transaction {bt.id} (archive)")
            return bt
        return self._candidates(self.archive_by_key, row)

    # -- booking --

    def run(self) -> Plan:
        rows = self.file.rows
        seen: dict[str, int] = {}
        for row in rows:
            for ident in (row.txn_id, row.cptxn_id):
                if ident and ident in seen:
                    raise self.fail(
                        row,
                        f"{ident} is listed twice (rows {seen[ident]} and {row.row}); "
                        "importing both would book it twice",
                        "remove the duplicate row",
                    )
                if ident:
                    seen[ident] = row.row
        # Rows naming their balance transaction claim it first; the others match by amount and
        # date among what is left. Booking then runs in time order, for the cumulative split.
        matches: dict[int, tuple[str, Any]] = {}
        for by_id in (True, False):
            for index, row in enumerate(rows):
                if bool(row.txn_id) != by_id:
                    continue
                match = self._match(row)
                if match is not None:
                    matches[index] = match
                    self.claimed[id(match[1])] = row.row
        for index, row in enumerate(rows):
            self._book_row(row, matches.get(index))
        self._assertions()
        return self.plan

    def _match(self, row: CapitalRow) -> tuple[str, Any] | None:
        done = self._imported(row)
        if done is not None:
            return "imported", done
        synced = self._synced(row)
        if synced is not None:
            return "synced", synced
        bt = self._archived(row)
        return ("archived", bt) if bt is not None else None

    def _book_row(self, row: CapitalRow, match: tuple[str, Any] | None) -> None:
        state = self.states[row.loan.id]
        how_matched, matched = match or ("", None)
        if how_matched == "imported":
            self.plan.already += 1
            return
        if how_matched == "synced":
            synced: LedgerItem = matched
            if row.kind not in _REPAYMENT_KINDS:
                self.plan.reconciled += 1
                return
            fee, how, reverses = self._split(state, row, synced.txn)
            self.plan.entries.append(self._split_entry(row, synced, fee, how, reverses))
            synced.split = True
            self.plan.split += 1
            return
        bt: _Bt | None = matched if how_matched == "archived" else None
        if bt is None and self._fully_synced(row):
            raise self.fail(
                row,
                f"no {BT_TYPES[row.kind]} balance transaction of {_fmt(row.amount, row.commodity)}"
                f" within {MATCH_DAYS} days of {row.date} in the synced data, although "
                f"{row.date:%Y-%m} is fully synced: booking the row would count money Stripe's "
                "balance does not show, or count it twice if its date or amount is off",
                "compare the row with the Stripe Dashboard (date, time zone, amount); if the row "
                "is right, re-fetch that month (delete its archive file, sync) and import again",
            )
        fee = 0
        how = reverses = None
        if row.kind in _REPAYMENT_KINDS:
            fee, how, reverses = self._split(state, row, bt.id if bt else row.txn_id)
        elif row.kind == PAYOUT_REVERSAL:
            state.apply(PAYOUT_REVERSAL, row.magnitude, 0, None)
        entry = self._money_entry(row, bt, fee, how, reverses)
        self.plan.entries.append(entry)
        self.new_events.append((entry.date, row, row.amount, SIGN[row.kind] * -fee))
        self.plan.booked += 1

    def _fully_synced(self, row: CapitalRow) -> bool:
        if row.txn_id:
            return False  # Stripe's id: sync will skip it, whenever it comes
        months = {
            (row.date + datetime.timedelta(days=d)).strftime("%Y-%m")
            for d in range(-MATCH_DAYS, MATCH_DAYS + 1)
        }
        return months <= self.complete

    def _split(
        self, state: LoanState, row: CapitalRow, txn: str | None
    ) -> tuple[int, str, str | None]:
        """(fee part magnitude, how it was split, key of the reversed repayment) of a row."""
        key = txn or row.cptxn_id
        reverses = None
        if row.fee is not None:
            fee, how = row.fee, "exact"
            if row.kind == PAYDOWN_REVERSAL:
                undone = state._reversed_repayment(row.magnitude, row.reversed_id)
                if undone is not None:
                    undone.reversed = True
                    reverses = undone.key
        elif row.kind == PAYDOWN:
            fee, how = state.fee_for_paydown(row.magnitude), "pro-rata"
        else:
            fee, reverses = state.fee_for_reversal(row.magnitude, row.reversed_id)
            how = "reversal" if reverses or fee else "pro-rata"
        state.apply(row.kind, row.magnitude, fee, key)
        return fee, how, reverses

    def _meta(self, line: int) -> dict[str, Any]:
        return data.new_metadata(self.filename, line)

    def _capital_meta(
        self, meta: dict[str, Any], row: CapitalRow, how: str | None, reverses: str | None
    ) -> None:
        meta["capital_loan"] = row.loan.id
        meta["capital_kind"] = row.kind
        if row.cptxn_id:
            meta["capital_txn"] = row.cptxn_id
        if row.reason:
            meta["capital_reason"] = row.reason
        if how:
            meta["capital_split"] = how
        if reverses:
            meta["capital_reverses"] = reverses

    def _posting(self, account: str, minor: int, commodity: str) -> data.Posting:
        number = currency.to_decimal(minor, commodity)
        return data.Posting(account, Amount(number, commodity), None, None, None, None)

    def _money_entry(
        self, row: CapitalRow, bt: _Bt | None, fee: int, how: str | None, reverses: str | None
    ) -> data.Transaction:
        meta = self._meta(row.line)
        txn = bt.id if bt else row.txn_id
        if txn:
            meta["stripe_id"] = txn
            source = (bt.source if bt else None) or row.source
            if source:
                meta["stripe_source"] = source
            meta["stripe_type"] = BT_TYPES[row.kind]
        self._capital_meta(meta, row, how, reverses)
        com = row.commodity
        sign = SIGN[row.kind]
        postings = [self._posting(self.accounts.clearing, row.amount, com)]
        # Repayments debit the loan for the principal and the fee expense for the fee part;
        # a reversal undoes both. Payouts and their reversals move principal only.
        principal = row.magnitude - fee
        postings.append(self._posting(self.accounts.capital_loan, sign * -principal, com))
        if fee:
            postings.append(self._posting(self.accounts.capital_fees, sign * -fee, com))
        date = bt.date if bt else row.date
        return data.Transaction(
            meta,
            date,
            "*",
            row.description,
            LABELS[row.kind],
            data.EMPTY_SET,
            frozenset({_link(row.loan.id)}),
            postings,
        )

    def _split_entry(
        self, row: CapitalRow, synced: LedgerItem, fee: int, how: str, reverses: str | None
    ) -> data.Transaction:
        meta = self._meta(row.line)
        meta["capital_for"] = synced.txn
        self._capital_meta(meta, row, how, reverses)
        signed_fee = -SIGN[row.kind] * fee  # + for a paydown, − for its reversal
        com = row.commodity
        postings = [
            self._posting(self.accounts.capital_fees, signed_fee, com),
            self._posting(self.accounts.capital_loan, -signed_fee, com),
        ]
        return data.Transaction(
            meta,
            synced.date,
            "*",
            None,
            f"{LABELS[row.kind]}: financing fee part of {synced.txn}",
            data.EMPTY_SET,
            frozenset({_link(row.loan.id)}),
            postings,
        )

    # -- loan balance assertions --

    def _assertions(self) -> None:
        """``balance`` on the loan at the end of each day whose last row gives what is left."""
        by_day: dict[tuple[str, datetime.date], CapitalRow] = {}
        for row in self.file.rows:
            if row.remaining is not None or row.remaining_principal is not None:
                by_day[(row.loan.id, row.date)] = row  # rows are in time order: keep the last
        if not by_day:
            return
        per_account: dict[tuple[str, str], int] = {}
        for loan in self.loans.values():
            key = (self.accounts.capital_loan, loan.currency)
            per_account[key] = per_account.get(key, 0) + 1
        events = self._events()
        for (loan_id, day), row in sorted(by_day.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            loan = self.loans[loan_id]
            if per_account[(self.accounts.capital_loan, loan.currency)] > 1:
                self.plan.warnings.append(
                    f"no loan balance assertion: several loans in {loan.currency} share "
                    f"{self.accounts.capital_loan}"
                )
                return
            if self._later_same_day(row, events):
                continue
            self._assert_day(row, loan, day, events)

    def _events(self) -> list[tuple[datetime.date, str, str, int, int, bool, int | None]]:
        """(date, loan, kind, signed amount, signed fee, split booked, row) of every movement."""
        out = []
        for item in self.items:
            if item.origin == "sync" and item.split:
                continue  # counted through its split entry
            if item.amount is None or item.loan is None:
                continue
            booked_split = item.origin in ("capital", "split")
            out.append((item.date, item.loan, item.kind, item.amount, item.fee, booked_split, None))
        for date, row, amount, fee in self.new_events:
            out.append((date, row.loan.id, row.kind, amount, fee, True, row.row))
        synced = {i.txn: i for i in self.items if i.origin == "sync" and i.txn}
        for entry in self.plan.entries:
            item = synced.get(entry.meta.get("capital_for", ""))
            if item is not None:
                fee = currency.to_minor(entry.postings[0].units.number, item.commodity)
                out.append((item.date, item.loan or "", item.kind, item.amount or 0, fee, True, 0))
        return out

    def _later_same_day(self, row: CapitalRow, events: Sequence[Any]) -> bool:
        """True when the ledger has movements of the loan that day the CSV does not list."""
        listed = sum(1 for r in self.file.rows if r.loan.id == row.loan.id and r.date == row.date)
        that_day = sum(1 for e in events if e[1] == row.loan.id and e[0] == row.date)
        return that_day > listed

    def _assert_day(
        self, row: CapitalRow, loan: LoanConfig, day: datetime.date, events: Sequence[Any]
    ) -> None:
        com = loan.currency
        state = self.states[loan.id]
        paid_out = repaid = fees = 0
        for date, loan_id, kind, amount, fee, booked_split, _row in events:
            if loan_id != loan.id or date > day:
                continue
            if kind in (PAYOUT, PAYOUT_REVERSAL):
                paid_out += amount
            else:
                repaid -= amount
                if booked_split:
                    fees += fee
        fee_total = state.fee_total
        implied_remaining = paid_out + fee_total - repaid
        principal = paid_out - repaid + fees  # what the liability holds at the end of the day
        stripe_says = None
        if row.remaining is not None:
            stripe_says = ("left to repay", row.remaining, implied_remaining)
        else:
            assert row.remaining_principal is not None
            stripe_says = ("principal left", row.remaining_principal, principal)
        label, given, implied = stripe_says
        if given != implied:
            raise self.fail(
                row,
                f"the export says {_fmt(given, com)} {label} on loan {loan.id} after {day}, but "
                f"the ledger and this file give {_fmt(implied, com)}",
                "a Capital transaction is missing or booked twice: sync the client and import "
                "every Capital export that covers the loan, oldest first",
            )
        date = day + datetime.timedelta(days=1)
        key = (date, self.accounts.capital_loan, com)
        amount = currency.to_decimal(-principal, com)
        if key in self.balances:
            return
        meta = data.new_metadata(self.filename, row.line)
        meta["capital_loan"] = loan.id
        self.plan.assertions.append(
            data.Balance(meta, date, self.accounts.capital_loan, Amount(amount, com), None, None)
        )


# -- sync's hook ----------------------------------------------------------------------------------


def covered_by_capital(
    bts: Iterable[Mapping[str, Any]], scanned: Iterable[ScannedEntry], client: ClientConfig
) -> set[str]:
    """Ids of new financing balance transactions that a Capital CSV entry already books.

    Called by sync (and the balance-transaction importer) with the transactions the ledger does
    not hold by ``stripe_id``. A CSV entry booked without a ``stripe_id`` is the same money as the
    balance transaction of the same kind, currency and amount closest in date (at most
    ``MATCH_DAYS`` days apart); each entry covers at most one transaction. Pure.
    """
    entries = [e for e in scanned if "capital_kind" in e.meta and "capital_for" not in e.meta]
    if not entries:
        return set()
    items = [i for i in ledger_items(entries, client) if i.origin == "capital" and i.txn is None]
    if not items:
        return set()
    tz = _zone(client.timezone, client)
    # Oldest first, so a tie in date goes to the transaction Stripe created first: the same one
    # every later sync will pick, whatever newer transactions arrive meanwhile.
    ordered = sorted(bts, key=lambda b: (int(b["created"]), str(b["id"])))
    candidates = _by_key(_archive_bts(ordered, (), tz))
    covered: set[str] = set()
    for item in sorted(items, key=lambda i: (i.date, i.where)):
        same = candidates.get((item.kind, item.commodity, item.amount or 0), ())
        match = _nearest((bt for bt in same if bt.id not in covered), item.date)
        if match is not None:
            covered.add(match.id)
    return covered


# -- the I/O edge: import a file, report a loan's status ---------------------------------------

OUTPUT_HEADER = """\
;; Stripe Capital of {name} ({account}), written by `beancount-stripe capital import`.
;; The capital_* metadata is how the tool knows which Capital rows are booked: keep it when you
;; edit an entry. See "Stripe Capital" in the README for how these entries meet the synced ones.
"""


@dataclass
class ImportResult:
    """The outcome of importing one Capital CSV for one client (CLI summary, tests)."""

    client: ClientConfig
    file: CapitalFile
    plan: Plan
    output: Path
    text: str = ""
    changed_files: list[Path] = field(default_factory=list)
    dry_run: bool = False


def archive_for(
    client: ClientConfig, rows: Iterable[CapitalRow]
) -> tuple[list[dict[str, Any]], set[str]]:
    """(financing BTs archived around the rows' dates, every archive month marked complete)."""
    return _archive_of(client, _months(rows))


def _archive_of(
    client: ClientConfig, months: Collection[str]
) -> tuple[list[dict[str, Any]], set[str]]:
    """(financing BTs of the archive months in ``months``, every complete month)."""
    bts: list[dict[str, Any]] = []
    complete: set[str] = set()
    for month, path, header in archive.month_headers(
        client.archive_dir, client.id, client.stripe_account
    ):
        if header.complete:
            complete.add(month)
        if month in months:
            bts.extend(
                bt
                for bt in archive.read_transactions(path)
                if str(bt.get("type", "")).startswith("financing_")
                or str(bt.get("reporting_category", "")).startswith("financing_")
            )
    return bts, complete


def _months(rows: Iterable[CapitalRow]) -> set[str]:
    out = set()
    for row in rows:
        for d in range(-MATCH_DAYS, MATCH_DAYS + 1):
            out.add((row.date + datetime.timedelta(days=d)).strftime("%Y-%m"))
    return out


def _open_date(
    entries: Sequence[data.Directive], state: ledger.LedgerState
) -> datetime.date | None:
    """When to open new accounts: before anything sync or this import can book on them.

    A ledger sync has never written to may later receive the client's whole history, which can
    start years before the loan; accounts are then opened at Stripe's beginning (2010).
    """
    if not entries:
        return None
    first = min(e.date for e in entries)
    oldest = min(
        (day for sid, day in state.stripe_ids.items() if sid not in state.capital_ids),
        default=None,
    )
    if oldest is None:
        return datetime.date(2010, 1, 1)
    return min(first, oldest)


def import_file(path: Path, client: ClientConfig, *, dry_run: bool = False) -> ImportResult:
    """Import one Capital CSV into the client's Capital output file (atomic; all or nothing)."""
    require_capital(client)
    with ledger.locked(client.ledger):
        return _import_locked(path, client, dry_run=dry_run)


def _import_locked(path: Path, client: ClientConfig, *, dry_run: bool) -> ImportResult:
    capital = require_capital(client)
    capital_file = read_csv(path, client)
    if not client.ledger.exists():
        raise LedgerError(
            "the client's ledger does not exist yet",
            where=str(client.ledger),
            fix=f"run `beancount-stripe sync {client.id}` first, or create the ledger with "
            f'`include "{capital.output.name}"`',
        )
    state = ledger.scan(client.ledger, client.output, capital.output)
    ledger.check_included(client.ledger, capital.output, state, ours=[client.output])
    bts, complete = archive_for(client, capital_file.rows)
    plan = plan_import(
        capital_file,
        client,
        state.capital_entries,
        booked_ids=state.stripe_ids.keys(),
        archive_bts=bts,
        complete_months=complete,
        balances=state.balances,
        filename=str(path),
    )
    result = ImportResult(client, capital_file, plan, capital.output, dry_run=dry_run)
    blocks: list[str] = []
    directives = plan.directives
    open_date = _open_date(directives, state)
    if open_date is not None:
        used = {p.account for e in plan.entries for p in e.postings}
        used.update(a.account for a in plan.assertions)
        opens = ledger.open_directives(used, state.open_accounts, open_date)
        if opens:
            blocks.append(ledger.format_entries(opens))
    if plan.entries:
        blocks.append(ledger.format_entries(plan.entries))
    if plan.assertions:
        blocks.append(ledger.format_entries(plan.assertions))
    result.text = "\n".join(blocks)
    if dry_run or not blocks:
        return result
    header = OUTPUT_HEADER.format(name=client.name, account=client.stripe_account)
    if ledger.append(capital.output, blocks, header):
        result.changed_files.append(capital.output)
    return result


# -- status ----------------------------------------------------------------------------------------


@dataclass
class LoanStatus:
    """Where a loan stands according to the ledger (minor units)."""

    loan: LoanConfig
    paid_out: int = 0  # financing payouts, less their reversals
    repaid: int = 0  # paydowns, less their reversals (withheld + other)
    withheld: int = 0  # the part of ``repaid`` withheld from sales
    fees_paid: int = 0  # fee parts booked
    principal_repaid: int = 0  # principal parts booked
    unsplit: int = 0  # repaid by synced paydowns whose split no CSV has given yet
    unsplit_count: int = 0

    @property
    def fee_total(self) -> int:
        return currency.to_minor(self.loan.fee, self.loan.currency)

    @property
    def principal_outstanding(self) -> int:
        """What the liability account holds for this loan (unsplit paydowns count whole)."""
        return self.paid_out - self.principal_repaid - self.unsplit

    @property
    def left_to_repay(self) -> int:
        return self.paid_out + self.fee_total - self.repaid


def loan_status(client: ClientConfig, scanned: Iterable[ScannedEntry]) -> list[LoanStatus]:
    """Per configured loan: paid out, repaid (withheld or paid), fees and principal outstanding."""
    loans = client.capital.loans if client.capital else ()
    out = {loan.id: LoanStatus(loan) for loan in loans}
    for item in ledger_items(scanned, client):
        status = out.get(item.loan or "")
        if status is None or item.amount is None:
            continue
        if item.origin == "sync" and item.split:
            continue  # counted through its split entry
        if item.kind in (PAYOUT, PAYOUT_REVERSAL):
            status.paid_out += item.amount
            continue
        magnitude = -item.amount  # + for a paydown, − for its reversal
        status.repaid += magnitude
        if item.withheld:
            status.withheld += magnitude
        if item.origin == "sync":
            status.unsplit += magnitude
            status.unsplit_count += 1 if item.kind == PAYDOWN else -1
        else:
            status.fees_paid += item.fee
            status.principal_repaid += magnitude - item.fee
    return list(out.values())


def status_of(client: ClientConfig) -> list[LoanStatus]:
    """``loan_status`` of the client's ledger as it is on disk."""
    capital = client.capital
    if capital is None:
        raise ConfigError(
            f"client {client.id} has no Stripe Capital loans configured",
            where=str(client.source_file or f"client {client.id}"),
            fix="add a `capital:` block to the client (see config/README.md)",
        )
    state = ledger.scan(client.ledger, client.output, capital.output)
    return loan_status(client, state.capital_entries)


_ = BeancountStripeError  # re-exported for callers catching everything this module raises
