"""Capital CSV exports → validated ``CapitalRow``s: header-driven columns, exact amounts, dates
in the client's zone, and every refusal naming the file's line, the row and the column."""

from __future__ import annotations

import csv
import datetime
import io
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from beancount_stripe import currency
from beancount_stripe.capital.kinds import (
    _REPAYMENT_KINDS,
    KIND_OF_BT,
    PAYDOWN,
    PAYDOWN_REVERSAL,
    PAYOUT,
    PAYOUT_REVERSAL,
    SIGN,
)
from beancount_stripe.config import CAPITAL_FIELDS, CapitalConfig, ClientConfig, LoanConfig, zone
from beancount_stripe.errors import ConfigError, CurrencyError, InputFileError

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


def _error(
    path: Path | str, row: int | None, what: str, fix: str, *, line: int | None = None
) -> InputFileError:
    place = f"{path}:{line}" if line is not None else str(path)
    where = f"{place}, row {row}" if row is not None else place
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
    header_of = {target: header[i].strip() for i, target in columns.items()}  # field → header
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
        parsed = _row(
            record, row_no, start_line, client, tz, local_tz, financing_vocabulary, path, header_of
        )
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
    names: Mapping[str, str],
) -> CapitalRow | None:
    def fail(what: str, fix: str) -> InputFileError:
        return _error(path, row_no, what, fix, line=line)

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
    advance, fee, total = _split_magnitudes(values, kind, commodity, names, fail)
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


_SPLIT_FIELDS = ("advance_amount", "fee_amount", "total_amount")


def _split_magnitudes(
    values: Mapping[str, int | None],
    kind: str,
    commodity: str,
    names: Mapping[str, str],
    fail: Callable[[str, str], InputFileError],
) -> tuple[int | None, int | None, int | None]:
    """The advance, fee and total columns of a row as magnitudes, once their signs agree.

    Stripe's financing transactions give all three unsigned, with advance + fee = total; some
    exports sign all three like the balance effect (negative for a paydown). A row mixing signs,
    signed against its kind, or whose parts do not add up is refused: which of its numbers is
    right cannot be told, and booking it would put a wrong split on the loan.
    """

    def col(name: str) -> str:
        return f"`{names.get(name, name)}` {_fmt(values[name] or 0, commodity)}"

    given = [k for k in _SPLIT_FIELDS if values[k]]  # non-zero
    negative = [k for k in given if (values[k] or 0) < 0]
    label = kind.replace("_", " ")
    if negative and SIGN[kind] > 0:
        raise fail(
            f"column {col(negative[0])} is negative, but a {label} adds to the Stripe balance",
            "Stripe gives advance, fee and total as positive amounts; correct the sign in the "
            "file, or check the row's type",
        )
    if negative and len(negative) < len(given):
        others = " and ".join(col(k) for k in given if k not in negative)
        raise fail(
            f"column {col(negative[0])} is negative, while {others} "
            f"{'is' if len(given) - len(negative) == 1 else 'are'} positive: the parts of one "
            f"{label} share one sign",
            "Stripe gives advance, fee and total as positive amounts (advance + fee = total); "
            "correct the sign in the file, or export it again",
        )
    advance, fee, total = (
        None if values[k] is None else abs(values[k] or 0) for k in _SPLIT_FIELDS
    )
    if advance is not None and fee is not None and total is not None and advance + fee != total:
        raise fail(
            f"{col('advance_amount')} + {col('fee_amount')} is not {col('total_amount')}",
            "the advance and the fee must add up to the total: correct the row, or export the "
            "file again",
        )
    return advance, fee, total


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
