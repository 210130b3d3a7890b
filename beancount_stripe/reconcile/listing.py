"""Listing payouts (the ``payouts`` command, ``--json``, Fava), ``payouts match``, summaries."""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from beancount.core import data
from beancount.core.amount import Amount

from beancount_stripe import archive, currency
from beancount_stripe.config import ClientConfig, PayoutsConfig

from .contents import breakdown_minor, own_payout_bt
from .matching import (
    NOTE_KEY,
    MatchSettings,
    arrival_day,
    business_days,
    cleared_keys,
    match_entries,
    next_business_day,
)

# -- listing ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PayoutRow:
    """One payout as the ``payouts`` command, its ``--json`` and the Fava page show it."""

    id: str
    created: datetime.date
    arrival_date: datetime.date | None
    status: str  # paid, in_transit, pending, failed, canceled
    currency: str  # upper-case
    amount: Decimal  # major units, positive for money sent to the bank
    transactions: int
    breakdown: dict[str, Decimal]  # charges, refunds, disputes, fees, other ({} when manual)
    matched: bool
    automatic: bool
    trace_id: str | None = None
    unmatched: bool = False  # still in the transit account: no bank line clears it yet
    transit_amount: Decimal = Decimal(0)  # what it still holds on the transit account (signed)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "created": self.created.isoformat(),
            "arrival_date": self.arrival_date.isoformat() if self.arrival_date else None,
            "status": self.status,
            "currency": self.currency,
            "amount": str(self.amount),
            "transactions": self.transactions,
            "breakdown": {k: str(v) for k, v in self.breakdown.items()},
            "matched": self.matched,
            "unmatched": self.unmatched,
            "transit_amount": str(self.transit_amount),
            "automatic": self.automatic,
            "trace_id": self.trace_id,
        }


@dataclass(frozen=True)
class PayoutTransaction:
    """One balance transaction a payout settled, and where the ledger booked it."""

    id: str
    type: str
    created: datetime.date
    currency: str
    amount: Decimal
    fee: Decimal
    net: Decimal
    account: str | None  # the counter-leg account in the ledger; None if not booked yet
    description: str = ""


def _date(ts: int | None, tz: ZoneInfo) -> datetime.date | None:
    if ts is None:
        return None
    return datetime.datetime.fromtimestamp(int(ts), tz).date()


def load_ledger(client: ClientConfig) -> list[data.Directive]:
    """The client's ledger entries, through Beancount's own loader."""
    from beancount import loader

    if not client.ledger.exists():
        return []
    entries, _errors, _options = loader.load_file(str(client.ledger))
    return entries


def list_payouts(
    client: ClientConfig,
    *,
    since: datetime.date | None = None,
    ledger_entries: Sequence[data.Directive] | None = None,
) -> list[PayoutRow]:
    """Every recorded payout of ``client`` (oldest first), with breakdown and matched flag."""
    entries = load_ledger(client) if ledger_entries is None else ledger_entries
    cleared = cleared_keys(entries, client.accounts.transit)
    tz = ZoneInfo(client.timezone)
    rows = []
    for rec in archive.read_payouts(client.archive_dir).values():
        created = _date(rec.get("created"), tz) or datetime.date.min
        if since is not None and created < since:
            continue
        cur = str(rec["currency"])
        parts = breakdown_minor(rec)
        rows.append(
            PayoutRow(
                id=rec["id"],
                created=created,
                arrival_date=arrival_day(rec.get("arrival_date")),
                status=str(rec.get("status")),
                currency=cur.upper(),
                amount=currency.to_decimal(int(rec["amount"]), cur),
                transactions=sum(not own_payout_bt(t, rec) for t in rec.get("transactions") or ()),
                breakdown={k: currency.to_decimal(v, cur) for k, v in parts.items()}
                if parts is not None
                else {},
                matched=payout_matched(rec, cleared),
                automatic=bool(rec.get("automatic")),
                trace_id=rec.get("trace_id"),
                unmatched=payout_open(rec, cleared),
                transit_amount=currency.to_decimal(transit_minor(rec, cleared), cur),
            )
        )
    rows.sort(key=lambda r: (r.created, r.id))
    return rows


def payout_matched(rec: Mapping[str, Any], cleared: set[tuple[str, int]]) -> bool:
    """A payout is matched once its deposit (and, if it failed, its return) clears transit."""
    po = rec["id"]
    if rec.get("status") == "canceled":
        return False
    deposit = (po, -1) in cleared
    if rec.get("status") == "failed":
        return deposit and (po, 1) in cleared
    return deposit


def transit_minor(rec: Mapping[str, Any], cleared: set[tuple[str, int]]) -> int:
    """What the payout's bookings still hold on the transit account, in minor units."""
    po, amount, status = rec["id"], int(rec["amount"]), rec.get("status")
    if status == "canceled":
        return 0
    held = 0 if (po, -1) in cleared else amount
    if status == "failed" and (po, 1) not in cleared:
        held -= amount
    return held


def payout_open(rec: Mapping[str, Any], cleared: set[tuple[str, int]]) -> bool:
    """Still weighing on the transit account: no bank line clears it yet.

    A canceled payout and its cancel net to zero, and so do a failed payout and its return when
    the bank saw neither or both; only a failed payout seen on one side only stays open.
    """
    po = rec["id"]
    status = rec.get("status")
    if status == "canceled":
        return False
    if status == "failed":
        return ((po, -1) in cleared) != ((po, 1) in cleared)
    return (po, -1) not in cleared


def payout_transactions(
    client: ClientConfig,
    payout_id: str,
    *,
    ledger_entries: Sequence[data.Directive] | None = None,
) -> list[PayoutTransaction]:
    """The balance transactions ``payout_id`` settled, with the account each was booked to."""
    from beancount_stripe.errors import InputFileError

    rec = archive.read_payouts(client.archive_dir).get(payout_id)
    if rec is None:
        raise InputFileError(
            f"no payout {payout_id} recorded for client {client.id}",
            where=str(archive.payouts_path(client.archive_dir)),
            fix=f"run `beancount-stripe sync {client.id}` first, or check the id",
        )
    entries = load_ledger(client) if ledger_entries is None else ledger_entries
    booked: dict[str, str] = {}
    clearing = client.accounts.clearing
    for e in entries:
        if isinstance(e, data.Transaction) and "stripe_id" in e.meta:
            other = [p.account for p in e.postings if p.account != clearing]
            fees = client.accounts.fees
            main = [a for a in other if a != fees] or other
            if main:
                booked[str(e.meta["stripe_id"])] = main[-1]
    tz = ZoneInfo(client.timezone)
    out = []
    members = sorted(rec.get("transactions") or [], key=lambda t: (t["created"], t["id"]))
    for t in members:
        cur = str(t["currency"])
        out.append(
            PayoutTransaction(
                id=t["id"],
                type=str(t["type"]),
                created=_date(t["created"], tz) or datetime.date.min,
                currency=cur.upper(),
                amount=currency.to_decimal(int(t["amount"]), cur),
                fee=currency.to_decimal(int(t["fee"]), cur),
                net=currency.to_decimal(int(t["net"]), cur),
                account=booked.get(t["id"]),
                description=str(t.get("description") or ""),
            )
        )
    return out


# -- `payouts match`: bank entries already in the ledger ------------------------------------------

MATCH_FILE = "payouts.beancount"
MATCH_HEADER = """\
;; Bank lines matched to Stripe payouts by `beancount-stripe payouts match`: each entry moves a
;; bank line's other leg to the transit account, linked to its payout (^po_…).
"""


@dataclass
class LedgerMatch:
    """What ``plan_ledger_matches`` found: entries to append, and lines left for a person."""

    appended: list[data.Transaction] = field(default_factory=list)
    flagged: list[data.Transaction] = field(default_factory=list)  # with NOTE_KEY metadata
    skipped: list[tuple[data.Transaction, str]] = field(default_factory=list)  # (entry, why)


def match_output(client: ClientConfig) -> Path:
    return client.ledger.parent / MATCH_FILE


def plan_ledger_matches(
    client: ClientConfig, entries: Sequence[data.Directive], records: Mapping[str, Any]
) -> LedgerMatch:
    """Match the client's bank entries already in the ledger; never rewrite them.

    Each match becomes a new linked entry that moves the bank entry's other leg to the transit
    account (the bank entry keeps its own date, payee and posting). Pure.
    """
    cfg = client.payouts
    banks = set(cfg.bank_accounts)
    bank_entries = [
        e
        for e in entries
        if isinstance(e, data.Transaction)
        and "stripe_id" not in e.meta
        and any(p.account in banks for p in e.postings)
    ]
    settings = [MatchSettings(client.id, client.accounts.transit, cfg, records)]
    result = LedgerMatch()
    matched = match_entries(bank_entries, entries, settings)
    for before, after in zip(bank_entries, matched, strict=True):
        if after is before:
            continue
        if after.flag == "!" and NOTE_KEY in after.meta and not (after.links - before.links):
            result.flagged.append(after)
            continue
        key = sorted(after.links - before.links)[0]
        bank = next(p for p in before.postings if p.account in banks)
        others = [p for p in before.postings if p is not bank]
        if len(others) != 1 or others[0].units is None:
            result.skipped.append((before, f"{len(others)} other postings; book {key} by hand"))
            continue
        other = others[0]
        meta = data.new_metadata("<beancount-stripe>", 0)
        meta["stripe_payout" if key.startswith("po_") else "stripe_transfer"] = key
        amount = bank.units
        result.appended.append(
            data.Transaction(
                meta,
                before.date,
                "*",
                before.payee,
                f"Bank line clears {key}",
                frozenset(),
                frozenset({key}),
                [
                    data.Posting(other.account, -other.units, None, None, None, None),
                    data.Posting(
                        client.accounts.transit,
                        Amount(-amount.number, amount.currency),
                        None,
                        None,
                        None,
                        None,
                    ),
                ],
            )
        )
    return result


# -- summary --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PayoutSummary:
    """How many payouts are matched, in transit, and unmatched past their arrival date."""

    matched: int
    in_transit: int
    past_arrival: int

    def line(self) -> str:
        return (
            f"payouts: {self.matched:,} matched to the bank, {self.in_transit:,} in transit, "
            f"{self.past_arrival:,} unmatched past their arrival date"
        )


def summarize(rows: Iterable[PayoutRow], cfg: PayoutsConfig, today: datetime.date) -> PayoutSummary:
    """Count payouts; an unmatched one is late once its arrival date plus the lag has passed."""
    matched = in_transit = late = 0
    for row in rows:
        if row.matched:
            matched += 1
        elif row.unmatched:
            arrival = row.arrival_date or row.created
            due = business_days(
                next_business_day(arrival, cfg.holidays), cfg.lag_days, cfg.holidays
            )
            if due < today:
                late += 1
            else:
                in_transit += 1
    return PayoutSummary(matched, in_transit, late)
