"""What the Fava page shows besides the review queue: balances, payouts, monthly figures,
Capital loans, and the firm's clients at a glance. Pure functions over Beancount entries (one
pass each) and the config; nothing here imports Flask or Fava.
"""

from __future__ import annotations

import datetime
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from beancount.core import data

from beancount_stripe import capital, currency, sync_state
from beancount_stripe.config import ClientConfig

# -- balances -----------------------------------------------------------------------------------


def balances(
    entries: Iterable[data.Directive], accounts: set[str]
) -> dict[str, dict[str, Decimal]]:
    """account → currency → balance over ``entries``, for the given accounts only."""
    out: dict[str, dict[str, Decimal]] = {a: {} for a in accounts}
    for entry in entries:
        if not isinstance(entry, data.Transaction):
            continue
        for p in entry.postings:
            if p.account in accounts and p.units is not None and p.units.number is not None:
                per = out[p.account]
                per[p.units.currency] = per.get(p.units.currency, Decimal(0)) + p.units.number
    return out


# -- payouts ------------------------------------------------------------------------------------


@dataclass
class PayoutRow:
    """One payout as the ledger sees it, with what the recorded payout adds (Stripe's status,
    arrival date, contents); the bank side matched when a bank entry with its link clears it."""

    payout_id: str
    date: datetime.date
    kind: str  # payout, payout_failure, payout_cancel
    status: str  # in transit, matched, failed/canceled (returned)
    amount: Decimal  # what left the Stripe balance for the bank (transit side, +)
    currency: str
    matched: bool  # a bank-side entry with the same link clears the transit account
    bank_date: datetime.date | None = None
    stripe_ids: list[str] = field(default_factory=list)
    arrival: datetime.date | None = None  # Stripe's expected arrival at the bank
    stripe_status: str | None = None  # Stripe's own status (paid, in_transit, failed, …)
    settles: int | None = None  # balance transactions it paid out (None: manual or unknown)


def payouts(entries: Iterable[data.Directive], client: ClientConfig) -> list[PayoutRow]:
    """Payouts: entries posting to the transit account with a ``po_…`` link, newest first.

    A payout is matched when another entry with the same link posts the opposite amount to the
    transit account (the bank side). Its status is "in transit" until then.
    """
    transit = client.accounts.transit
    by_link: dict[str, list[tuple[data.Transaction, Decimal, str]]] = defaultdict(list)
    for entry in entries:
        if not isinstance(entry, data.Transaction) or not entry.links:
            continue
        links = [link for link in entry.links if link.startswith("po_")]
        if not links:
            continue
        for p in entry.postings:
            if p.account == transit and p.units is not None and p.units.number is not None:
                for link in links:
                    by_link[link].append((entry, p.units.number, p.units.currency))
    rows = []
    for link, items in by_link.items():
        stripe = [(e, n, c) for e, n, c in items if e.meta.get("stripe_id")]
        other = [(e, n, c) for e, n, c in items if not e.meta.get("stripe_id")]
        if not stripe:
            continue
        first = min(stripe, key=lambda t: t[0].date)[0]
        total = sum((n for _e, n, _c in stripe), Decimal(0))
        cur = stripe[0][2]
        bank = sum((n for _e, n, c in other if c == cur), Decimal(0))
        matched = bool(other) and bank == -total and total != 0
        kind = str(first.meta.get("stripe_type") or "payout")
        if total == 0:
            status = "returned"  # a payout and its failure/cancel net out
        elif matched:
            status = "matched"
        else:
            status = "in transit"
        rows.append(
            PayoutRow(
                payout_id=link,
                date=first.date,
                kind=kind,
                status=status,
                amount=total,
                currency=cur,
                matched=matched,
                bank_date=min((e.date for e, _n, _c in other), default=None),
                stripe_ids=[str(e.meta["stripe_id"]) for e, _n, _c in stripe],
            )
        )
    rows.sort(key=lambda r: (r.date, r.payout_id), reverse=True)
    return rows


def add_stripe_details(
    rows: Sequence[PayoutRow], bts: Mapping[str, Mapping[str, Any]], tz: str
) -> None:
    """Fill each row's arrival date and Stripe status from its archived payout object."""
    zone = ZoneInfo(tz)
    for row in rows:
        for txn_id in row.stripe_ids:
            source = (bts.get(txn_id) or {}).get("source")
            if not isinstance(source, Mapping) or source.get("object") != "payout":
                continue
            if isinstance(source.get("arrival_date"), int):
                row.arrival = datetime.datetime.fromtimestamp(source["arrival_date"], zone).date()
            if isinstance(source.get("status"), str):
                row.stripe_status = source["status"]
            break


def add_recorded_details(
    rows: Sequence[PayoutRow], records: Mapping[str, Mapping[str, Any]], tz: str
) -> None:
    """Fill arrival date, Stripe status and contents count from the recorded payouts
    (``archive/payouts.ndjson``, written by each sync; see ``reconcile.record_payout_contents``)."""
    zone = ZoneInfo(tz)
    for row in rows:
        rec = records.get(row.payout_id)
        if rec is None:
            continue
        if isinstance(rec.get("arrival_date"), int):
            row.arrival = datetime.datetime.fromtimestamp(rec["arrival_date"], zone).date()
        if isinstance(rec.get("status"), str):
            row.stripe_status = rec["status"]
        members = rec.get("transactions")
        row.settles = len(members) if isinstance(members, list) else None


def in_transit(rows: Sequence[PayoutRow]) -> dict[str, Decimal]:
    """Per currency: what the unmatched payouts hold (= the transit account's balance)."""
    out: dict[str, Decimal] = {}
    for r in rows:
        if not r.matched:
            out[r.currency] = out.get(r.currency, Decimal(0)) + r.amount
    return {c: v for c, v in out.items() if v}


# -- by month ----------------------------------------------------------------------------------


@dataclass
class Month:
    """One month of one currency: what Stripe moved (all amounts positive)."""

    month: str
    currency: str
    gross: Decimal = Decimal(0)  # charges and payments (their gross amount)
    fees: Decimal = Decimal(0)  # every Stripe fee booked that month
    refunds: Decimal = Decimal(0)
    disputes: Decimal = Decimal(0)
    payouts: Decimal = Decimal(0)

    @property
    def fee_rate(self) -> Decimal | None:
        return (self.fees / self.gross * 100).quantize(Decimal("0.01")) if self.gross else None

    @property
    def refund_share(self) -> Decimal | None:
        if not self.gross:
            return None
        return ((self.refunds + self.disputes) / self.gross * 100).quantize(Decimal("0.01"))


_CHARGE = {"charge", "payment"}
_REFUND = {"refund", "payment_refund", "refund_failure", "payment_failure_refund"}
_PAYOUT = {"payout", "payout_failure", "payout_cancel"}


def monthly(entries: Iterable[data.Directive], client: ClientConfig) -> dict[str, list[Month]]:
    """currency → months, oldest first: gross volume, fees, refunds, disputes, payouts."""
    acc = client.accounts
    fee_accounts = {a for a in (acc.fees, acc.fee_tax) if a}
    table: dict[tuple[str, str], Month] = {}
    for entry in entries:
        if not isinstance(entry, data.Transaction):
            continue
        meta = entry.meta or {}
        if "stripe_id" not in meta:
            continue
        kind = str(meta.get("stripe_type") or "")
        category = str(meta.get("stripe_category") or kind)
        net = Decimal(0)
        fee = Decimal(0)
        cur = None
        for p in entry.postings:
            if p.units is None or p.units.number is None:
                continue
            if p.account == acc.clearing:
                net += p.units.number
                cur = p.units.currency
            elif p.account in fee_accounts:
                fee += p.units.number
        if cur is None:
            continue
        key = (entry.date.strftime("%Y-%m"), cur)
        m = table.get(key)
        if m is None:
            m = table[key] = Month(key[0], cur)
        gross = net + fee
        m.fees += fee
        if kind in _CHARGE or category == "charge":
            m.gross += gross
        elif kind in _REFUND or category in ("refund", "refund_failure"):
            m.refunds -= gross
        elif category in ("dispute", "dispute_reversal"):
            m.disputes -= gross
        elif kind in _PAYOUT:
            m.payouts -= gross
    out: dict[str, list[Month]] = defaultdict(list)
    for (_month, cur), m in sorted(table.items()):
        out[cur].append(m)
    return dict(out)


# -- Capital ------------------------------------------------------------------------------------


@dataclass
class LoanRow:
    loan_id: str
    currency: str
    advance: Decimal
    outstanding: Decimal
    withheld: Decimal
    fees_paid: Decimal
    fee_total: Decimal
    left_to_repay: Decimal
    unsplit: Decimal


@dataclass
class CapitalView:
    loans: list[LoanRow]
    last_csv: str | None  # file name of the newest Capital CSV beside the ledger
    last_csv_time: datetime.datetime | None
    output_time: datetime.datetime | None  # when the Capital output file last changed


def capital_view(client: ClientConfig) -> CapitalView | None:
    """Each configured loan's status (``capital status``), and the newest CSV imported."""
    if client.capital is None:
        return None
    rows = []
    for st in capital.status_of(client):
        cur = st.loan.currency
        dec = lambda minor, cur=cur: currency.to_decimal(minor, cur)  # noqa: E731
        rows.append(
            LoanRow(
                loan_id=st.loan.id,
                currency=cur,
                advance=st.loan.advance,
                outstanding=dec(st.principal_outstanding),
                withheld=dec(st.withheld),
                fees_paid=dec(st.fees_paid),
                fee_total=dec(st.fee_total),
                left_to_repay=dec(st.left_to_repay),
                unsplit=dec(st.unsplit),
            )
        )
    csvs = sorted((client.ledger.parent / "capital").glob("*.csv"), key=lambda p: p.stat().st_mtime)
    last = csvs[-1] if csvs else None
    return CapitalView(
        loans=rows,
        last_csv=last.name if last else None,
        last_csv_time=_mtime(last) if last else None,
        output_time=_mtime(client.capital.output),
    )


def _mtime(path: Path) -> datetime.datetime | None:
    try:
        ts = path.stat().st_mtime
    except OSError:
        return None
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).replace(microsecond=0)


# -- the firm: every client of the config --------------------------------------------------------

_FLAGGED = re.compile(r"^\d{4}-\d{2}-\d{2}[ \t]+!", re.MULTILINE)
_flag_cache: dict[Path, tuple[int, int]] = {}


def open_count(client: ClientConfig) -> int:
    """`!` entries in the client's Stripe output: a text count, cached by file mtime."""
    path = client.output
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        return 0
    cached = _flag_cache.get(path)
    if cached and cached[0] == mtime:
        return cached[1]
    n = len(_FLAGGED.findall(path.read_text(encoding="utf-8")))
    _flag_cache[path] = (mtime, n)
    return n


@dataclass
class FirmRow:
    client: ClientConfig
    last: sync_state.SyncRun | None
    open_count: int
    tie_out: dict[str, str] | None  # CUR → difference; {} ties out; None: never synced


def firm(clients: Sequence[ClientConfig]) -> list[FirmRow]:
    rows = []
    for c in clients:
        last = sync_state.last_run(c)
        tie = None
        if last is not None and last.stripe_balance:
            tie = last.tie_out()
        rows.append(FirmRow(c, last, open_count(c), tie))
    return rows
