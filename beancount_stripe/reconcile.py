"""Payouts that close: what each payout contains, and the bank line that clears it.

Three parts, pure at the core:

- **Contents.** ``record_payout_contents`` (called by sync after the balance transactions are
  fetched) records each payout, and for an automatic one the balance transactions it settles
  (``GET /v1/balance_transactions?payout=po_…``), in ``<archive>/payouts.jsonl``. A payout in a
  final state is never fetched again; manual payouts, which Stripe does not itemise, are recorded
  with ``transactions: null``.
- **Matching.** ``match_entries`` takes bank entries and the ledger and books each bank line that
  matches exactly one *transit item* (a Stripe booking on the transit account: a payout, a failed
  payout's return, a top-up) by currency, exact amount and date window, to the transit account
  with the item's link. Anything ambiguous is flagged ``!`` with a note naming the candidates,
  never guessed. ``match_payouts`` wraps it as a beangulp hook.
- **Listing.** ``list_payouts`` / ``payout_transactions`` give the rows the ``payouts`` command,
  its ``--json`` and the Fava page render.

Transit invariant: the transit account's balance equals the sum of the items no bank line clears.
"""

from __future__ import annotations

import bisect
import datetime
import os
import re
from collections import defaultdict
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

FINAL_STATUSES = frozenset({"paid", "failed", "canceled"})
BREAKDOWN_KEYS = ("charges", "refunds", "disputes", "fees", "other")
_TRANSACTION_FIELDS = (
    "id",
    "type",
    "reporting_category",
    "created",
    "amount",
    "fee",
    "net",
    "currency",
    "description",
)
_PAYOUT_FIELDS = (
    "id",
    "amount",
    "currency",
    "created",
    "arrival_date",
    "automatic",
    "method",
    "status",
    "description",
    "statement_descriptor",
    "balance_transaction",
    "failure_balance_transaction",
    "reconciliation_status",
)
WRITE_EVERY = 25  # payouts recorded between two atomic writes: an interrupted run resumes
NOTE_KEY = "payout_note"
CANDIDATES_KEY = "payout_candidates"
_STRIPE_TEXT = re.compile(r"stripe|\bpo_[0-9A-Za-z]+", re.IGNORECASE)
_ID_TEXT = re.compile(r"\b(?:po|tu|ibt)_[0-9A-Za-z]+")


# -- contents (I/O at the edge: the gateway and the archive) ---------------------------------------


@dataclass
class ContentsResult:
    """What one ``record_payout_contents`` run did."""

    recorded: int = 0  # payouts newly recorded or refreshed
    itemised: int = 0  # of those, automatic payouts whose transactions were listed
    changed_files: list[Path] = field(default_factory=list)


def _source_id(bt: Mapping[str, Any]) -> str | None:
    src = bt.get("source")
    if isinstance(src, dict):
        return str(src.get("id") or "") or None
    return str(src) if src else None


def _compact_payout(obj: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: obj.get(k) for k in _PAYOUT_FIELDS}
    trace = obj.get("trace_id")
    out["trace_id"] = trace.get("value") if isinstance(trace, dict) else trace
    return out


def _compact_transaction(bt: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: bt.get(k) for k in _TRANSACTION_FIELDS}
    out["source"] = _source_id(bt)
    return out


def record_payout_contents(
    client: ClientConfig,
    gateway: Any,
    known: Mapping[str, Mapping[str, Any]],
    *,
    write: bool = True,
) -> ContentsResult:
    """Record every payout among ``known`` BTs and what each automatic one settles.

    Resumable: records are written every ``WRITE_EVERY`` payouts, and a payout already recorded
    in a final state (paid, failed, canceled) with its contents is not fetched again unless a
    failure or cancel BT names it after it was recorded as paid.
    """
    result = ContentsResult()
    records = archive.read_payouts(client.archive_dir)
    reversed_ids = {
        _source_id(bt): str(bt["type"])
        for bt in known.values()
        if bt.get("type") in ("payout_failure", "payout_cancel")
    }
    payout_bts = sorted(
        (bt for bt in known.values() if bt.get("type") == "payout" and _source_id(bt)),
        key=lambda b: (b["created"], b["id"]),
    )
    pending = 0
    for bt in payout_bts:
        po_id = str(_source_id(bt))
        rec = records.get(po_id)
        if rec is not None and not _needs_refresh(rec, reversed_ids.get(po_id)):
            continue
        src = bt.get("source")
        obj: Mapping[str, Any]
        if rec is None and isinstance(src, dict) and src.get("status") in FINAL_STATUSES:
            obj = src
        else:
            obj = gateway.payout(po_id)
        new = _compact_payout(obj)
        new["transactions"] = rec.get("transactions") if rec else None
        completed = obj.get("reconciliation_status", "completed") == "completed"
        if new["transactions"] is None and obj.get("automatic") and completed:
            members = gateway.payout_transactions(po_id)
            new["transactions"] = [_compact_transaction(m) for m in members]
            result.itemised += 1
        records[po_id] = new
        result.recorded += 1
        pending += 1
        if write and pending >= WRITE_EVERY:
            _write(client, records, result)
            pending = 0
    if write and pending:
        _write(client, records, result)
    return result


def _needs_refresh(rec: Mapping[str, Any], reversal: str | None) -> bool:
    if rec.get("status") not in FINAL_STATUSES:
        return True
    if reversal and rec.get("status") == "paid":
        return True  # "Some payouts show paid and later turn failed"
    return bool(rec.get("automatic")) and rec.get("transactions") is None


def _write(client: ClientConfig, records: Mapping[str, Any], result: ContentsResult) -> None:
    if archive.write_payouts(client.archive_dir, client.id, client.stripe_account, records):
        path = archive.payouts_path(client.archive_dir)
        if path not in result.changed_files:
            result.changed_files.append(path)


# -- contents: the breakdown (pure) ----------------------------------------------------------------


def _own(t: Mapping[str, Any], record: Mapping[str, Any]) -> bool:
    """The payout's own ``payout`` BT, which the member list includes."""
    return t.get("type") == "payout" and t.get("source") == record["id"]


def breakdown_minor(record: Mapping[str, Any]) -> dict[str, int] | None:
    """Charges (gross), refunds, disputes, fees, other in minor units; None for manual payouts.

    Every member except the payout's own BT contributes ``amount`` to its category and ``-fee``
    to fees, so the parts sum to Σ net of the members, which is the payout amount.
    """
    rows = record.get("transactions")
    if rows is None:
        return None
    out = dict.fromkeys(BREAKDOWN_KEYS, 0)
    for t in rows:
        if _own(t, record):
            continue
        cat = str(t.get("reporting_category") or t.get("type"))
        if cat == "charge":
            key = "charges"
        elif cat in ("refund", "refund_failure"):
            key = "refunds"
        elif cat in ("dispute", "dispute_reversal"):
            key = "disputes"
        elif cat == "fee":
            key = "fees"
        else:
            key = "other"
        out[key] += int(t["amount"])
        out["fees"] -= int(t["fee"])
    return out


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


def _arrival(ts: int | None) -> datetime.date | None:
    # Stripe's arrival_date is the bank day at midnight UTC.
    return None if ts is None else datetime.datetime.fromtimestamp(int(ts), datetime.UTC).date()


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
                arrival_date=_arrival(rec.get("arrival_date")),
                status=str(rec.get("status")),
                currency=cur.upper(),
                amount=currency.to_decimal(int(rec["amount"]), cur),
                transactions=sum(1 for t in rec.get("transactions") or () if not _own(t, rec)),
                breakdown={k: currency.to_decimal(v, cur) for k, v in parts.items()}
                if parts is not None
                else {},
                matched=payout_matched(rec, cleared),
                automatic=bool(rec.get("automatic")),
                trace_id=rec.get("trace_id"),
                unmatched=payout_open(rec, cleared),
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


# -- matching (pure) -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TransitItem:
    """A Stripe booking on the transit account that one bank line should clear."""

    key: str  # po_…, tu_…, ibt_…: the link the clearing bank entry carries
    kind: str  # the stripe_type of the booking
    currency: str
    bank_amount: Decimal  # what the bank line shows: the transit posting (+ deposit, - debit)
    first: datetime.date  # window in which the bank line may be dated
    last: datetime.date
    trace_id: str | None
    transit: str  # the transit account
    client: str


@dataclass(frozen=True)
class MatchSettings:
    """Per client: the transit account, the bank accounts, the lag and the holidays."""

    client: str
    transit: str
    payouts: PayoutsConfig
    records: Mapping[str, Mapping[str, Any]]  # payout id → recorded payout (arrival, trace id)


def business_days(day: datetime.date, n: int, holidays: Iterable[datetime.date]) -> datetime.date:
    """``day`` moved ``n`` business days (Mon–Fri, not a holiday); negative ``n`` goes back."""
    off = set(holidays)
    step = 1 if n >= 0 else -1
    left = abs(n)
    while left:
        day += datetime.timedelta(days=step)
        if day.weekday() < 5 and day not in off:
            left -= 1
    return day


def next_business_day(day: datetime.date, holidays: Iterable[datetime.date]) -> datetime.date:
    off = set(holidays)
    while day.weekday() >= 5 or day in off:
        day += datetime.timedelta(days=1)
    return day


def cleared_keys(entries: Iterable[data.Directive], transit: str) -> set[tuple[str, int]]:
    """(link, sign of the transit posting) of every bank-side entry that already clears one."""
    out: set[tuple[str, int]] = set()
    for e in entries:
        if not isinstance(e, data.Transaction) or "stripe_id" in e.meta or not e.links:
            continue
        for p in e.postings:
            if p.account == transit and p.units is not None and p.units.number:
                sign = 1 if p.units.number > 0 else -1
                for link in e.links:
                    out.add((link, sign))
    return out


def transit_items(
    entries: Iterable[data.Directive], settings: MatchSettings
) -> list[tuple[TransitItem, int]]:
    """(item, sign of its transit posting) for every Stripe booking on the transit account.

    Canceled payouts never reach the bank: the payout and its cancel are left out together.
    """
    cfg = settings.payouts
    raw: list[tuple[data.Transaction, data.Posting]] = []
    canceled: set[str] = set()
    for e in entries:
        if not isinstance(e, data.Transaction) or "stripe_id" not in e.meta:
            continue
        for p in e.postings:
            if p.account == settings.transit and p.units is not None and p.units.number:
                raw.append((e, p))
                if e.meta.get("stripe_type") == "payout_cancel":
                    canceled.add(_item_key(e))
    out = []
    for e, p in raw:
        key = _item_key(e)
        if key in canceled:
            continue
        kind = str(e.meta.get("stripe_type", ""))
        rec = settings.records.get(key, {})
        trace = rec.get("trace_id")
        if kind == "payout":
            arrival = _arrival(rec.get("arrival_date")) or business_days(e.date, 2, cfg.holidays)
            first = arrival
        elif kind == "payout_failure":
            first = e.date  # the return leaves the bank once the failure is known
        else:  # top-ups and inbound transfers: the bank side may come first
            first = business_days(e.date, -cfg.lag_days, cfg.holidays)
        start = arrival if kind == "payout" else e.date
        last = business_days(next_business_day(start, cfg.holidays), cfg.lag_days, cfg.holidays)
        item = TransitItem(
            key=key,
            kind=kind,
            currency=p.units.currency,
            bank_amount=p.units.number,
            first=first,
            last=last,
            trace_id=str(trace) if trace else None,
            transit=settings.transit,
            client=settings.client,
        )
        out.append((item, 1 if p.units.number > 0 else -1))
    return out


def _item_key(e: data.Transaction) -> str:
    src = e.meta.get("stripe_source")
    if src:
        return str(src)
    return sorted(e.links)[0] if e.links else str(e.meta["stripe_id"])


@dataclass
class _Line:
    index: int  # position in the list of bank entries
    entry: data.Transaction
    bank: data.Posting
    currency: str
    amount: Decimal
    date: datetime.date
    text: str
    candidates: list[TransitItem] = field(default_factory=list)


def _bank_posting(entry: data.Transaction, banks: _Accounts) -> data.Posting | None:
    for p in entry.postings:
        if p.units is not None and p.account in banks:
            return p
    return None


class _Accounts:
    """An account filter: a set of names, or everything when empty."""

    def __init__(self, accounts: Iterable[str]) -> None:
        self.accounts = frozenset(accounts)

    def __contains__(self, account: object) -> bool:
        return not self.accounts or account in self.accounts


def match_entries(
    bank_entries: Sequence[data.Directive],
    ledger_entries: Iterable[data.Directive],
    settings: Sequence[MatchSettings],
    *,
    bank_account: str | None = None,
) -> list[data.Directive]:
    """Return ``bank_entries`` with each bank line that matches one transit item booked to it.

    A line matches an item when currency and amount are equal and the line's date falls in the
    item's window; a trace id or ``po_…`` id in the line's text narrows the candidates. A line
    with several candidates, or a payout claimed by several lines, is flagged ``!`` with a note
    naming them. A line that looks like Stripe's but matches nothing is flagged with the reason.
    Items already cleared in ``ledger_entries`` are not candidates, so importing twice matches
    nothing twice. Pure: the inputs are not modified.
    """
    ledger_list = list(ledger_entries)
    own = {id(e) for e in bank_entries}
    existing = [e for e in ledger_list if id(e) not in own]
    index: dict[tuple[str, Decimal], list[TransitItem]] = defaultdict(list)
    by_text: dict[str, list[TransitItem]] = defaultdict(list)
    for s in settings:
        cleared = cleared_keys(existing, s.transit)
        for item, sign in transit_items(ledger_list, s):
            if (item.key, -sign) in cleared:
                continue
            index[(item.currency, item.bank_amount)].append(item)
            by_text[item.key].append(item)
            if item.trace_id:
                by_text[item.trace_id].append(item)
    for items in index.values():
        items.sort(key=lambda i: (i.first, i.key))

    lines: list[_Line] = []
    for n, e in enumerate(bank_entries):
        if not isinstance(e, data.Transaction) or "stripe_id" in e.meta:
            continue
        if e.meta.get("__duplicate__") or any(k in by_text for k in e.links):
            continue
        if any(p.account == s.transit for s in settings for p in e.postings):
            continue  # already booked to transit: matched before, or by hand
        banks = _Accounts(
            [bank_account]
            if bank_account
            else [a for s in settings for a in s.payouts.bank_accounts]
        )
        post = _bank_posting(e, banks)
        if post is None or not post.units.number:
            continue
        text = " ".join(
            [e.payee or "", e.narration or ""]
            + [str(v) for k, v in e.meta.items() if k not in ("filename", "lineno")]
        )
        line = _Line(n, e, post, post.units.currency, post.units.number, e.date, text)
        items = index.get((line.currency, line.amount), [])
        lo = bisect.bisect_left([i.first for i in items], line.date + datetime.timedelta(1))
        line.candidates = [i for i in items[:lo] if i.last >= line.date]
        named = _named(line.text, by_text)
        if named and line.candidates:
            narrowed = [i for i in line.candidates if i.key in named]
            line.candidates = narrowed or line.candidates
        lines.append(line)

    _resolve(lines)
    out = list(bank_entries)
    unmatched = [ln for ln in lines if not ln.candidates]
    notes = _explain_unmatched(unmatched, index, by_text)
    for ln in lines:
        if len(ln.candidates) == 1:
            out[ln.index] = _book(ln.entry, ln.bank, ln.candidates[0])
        elif len(ln.candidates) > 1:
            keys = sorted({i.key for i in ln.candidates})
            out[ln.index] = _flag(ln.entry, _ambiguous_note(ln), keys)
        elif ln.index in notes:
            note, keys = notes[ln.index]
            out[ln.index] = _flag(ln.entry, note, keys)
    return out


def _named(text: str, by_text: Mapping[str, list[TransitItem]]) -> set[str]:
    found = {m.group(0) for m in _ID_TEXT.finditer(text)}
    for token in re.findall(r"[0-9A-Za-z_]{6,}", text):
        if token in by_text:
            found.update(i.key for i in by_text[token])
    return found


def _resolve(lines: list[_Line]) -> None:
    """Settle claims: a payout claimed alone by two lines matches neither (both are flagged).

    Items that a line claims alone are removed from other lines' candidate lists (that is not a
    guess: the other line cannot be that payout's deposit too); repeat until nothing changes.
    """
    while True:
        sole: dict[TransitItem, list[_Line]] = defaultdict(list)
        for ln in lines:
            if len(ln.candidates) == 1:
                sole[ln.candidates[0]].append(ln)
        taken = {item for item, claim in sole.items() if len(claim) == 1}
        changed = False
        for item, claim in sole.items():
            if len(claim) > 1:
                for ln in claim:
                    ln.candidates = [item, item]  # two deposits, one payout: flagged below
        for ln in lines:
            if len(ln.candidates) > 1 and len(set(ln.candidates)) > 1:
                rest = [i for i in ln.candidates if i not in taken]
                if rest and len(rest) < len(ln.candidates):
                    ln.candidates = rest
                    changed = True
        if not changed:
            return


def _ambiguous_note(ln: _Line) -> str:
    keys = sorted({i.key for i in ln.candidates})
    if len(keys) == 1:
        return (
            f"another bank line also matches {keys[0]} ({ln.amount} {ln.currency}); "
            "two deposits for one payout are not matched automatically: book the right one to "
            "the transit account with the payout's link"
        )
    return (
        f"{len(keys)} payouts of {ln.amount} {ln.currency} fit this date: {', '.join(keys)}; "
        "not matched: book it to the transit account with the right payout's link"
    )


def _explain_unmatched(
    unmatched: list[_Line],
    index: Mapping[tuple[str, Decimal], list[TransitItem]],
    by_text: Mapping[str, list[TransitItem]],
) -> dict[int, tuple[str, list[str]]]:
    """Why a Stripe-looking bank line matched nothing: another currency, a split, or no payout."""
    notes: dict[int, tuple[str, list[str]]] = {}
    # A payout paid in two bank lines: two unmatched lines of one account whose sum is a payout.
    by_cur: dict[tuple[str, str], list[_Line]] = defaultdict(list)
    for ln in unmatched:
        by_cur[(ln.bank.account, ln.currency)].append(ln)
    for (_acct, cur), group in by_cur.items():
        if len(group) < 2 or len(group) > 2000:
            continue
        for a_i, a in enumerate(group):
            for b in group[a_i + 1 :]:
                if a.index in notes or b.index in notes:
                    continue
                lo, hi = min(a.date, b.date), max(a.date, b.date)
                for item in index.get((cur, a.amount + b.amount), []):
                    if item.first <= lo and hi <= item.last:
                        note = (
                            f"with another bank line this sums to {item.key} "
                            f"({item.bank_amount} {cur}); a payout paid in two bank lines is "
                            "not matched automatically"
                        )
                        notes[a.index] = notes[b.index] = (note, [item.key])
                        break
    for ln in unmatched:
        if ln.index in notes:
            continue
        named = _named(ln.text, by_text)
        other = sorted(
            {i.key for k in named for i in by_text.get(k, []) if i.currency != ln.currency}
        )
        if other:
            item = by_text[other[0]][0]
            notes[ln.index] = (
                f"the bank line is in {ln.currency} but {item.key} was paid out in "
                f"{item.currency} ({item.bank_amount} {item.currency}); not matched: book the "
                "exchange difference by hand",
                other,
            )
        elif named or _STRIPE_TEXT.search(ln.text):
            notes[ln.index] = (
                f"no Stripe payout or top-up of {ln.amount} {ln.currency} is in transit around "
                f"{ln.date}",
                sorted(named),
            )
    return notes


def _book(entry: data.Transaction, bank: data.Posting, item: TransitItem) -> data.Transaction:
    """The bank line with its other leg on the transit account and the item's link."""
    others = [p for p in entry.postings if p is not bank and p.account == bank.account]
    transit = data.Posting(
        item.transit, Amount(-bank.units.number, bank.units.currency), None, None, None, None
    )
    meta = dict(entry.meta)
    meta["stripe_payout" if item.key.startswith("po_") else "stripe_transfer"] = item.key
    return entry._replace(
        meta=meta,
        links=frozenset(entry.links or ()) | {item.key},
        postings=[bank, *others, transit],
    )


def _flag(entry: data.Transaction, note: str, keys: Sequence[str]) -> data.Transaction:
    meta = dict(entry.meta)
    meta[NOTE_KEY] = note
    if keys:
        meta[CANDIDATES_KEY] = " ".join(keys)
    return entry._replace(flag="!", meta=meta)


# -- the beangulp hook -----------------------------------------------------------------------------


def settings_for(clients: Iterable[ClientConfig]) -> list[MatchSettings]:
    """Matching settings of each client, with its recorded payouts (arrival dates, trace ids)."""
    return [
        MatchSettings(
            client=c.id,
            transit=c.accounts.transit,
            payouts=c.payouts,
            records=archive.read_payouts(c.archive_dir),
        )
        for c in clients
    ]


class PayoutHook:
    """A beangulp hook: ``hooks=[PayoutHook("config/clients.yaml")]`` in ``import.py``.

    Each extracted file's entries are matched against the transit items of the clients whose
    ``payouts.bank_accounts`` list the importer's account (all clients when none lists it).
    """

    def __init__(self, config_path: str | os.PathLike[str] | None = None) -> None:
        self.config_path = config_path

    def _settings(self) -> list[MatchSettings]:
        from beancount_stripe.config import load_config

        path = self.config_path or os.environ.get("BEANCOUNT_STRIPE_CONFIG", "config/clients.yaml")
        return settings_for(load_config(Path(path)).clients)

    def __call__(self, extracted: list[tuple[Any, ...]], existing: list[data.Directive]) -> list:
        settings = self._settings()
        out = []
        for item in extracted:
            filename, entries, account, *rest = item
            mine = [s for s in settings if account in s.payouts.bank_accounts] or [
                s for s in settings if not s.payouts.bank_accounts
            ]
            if mine and account:
                entries = match_entries(entries, existing, mine, bank_account=account)
            out.append((filename, entries, account, *rest))
        return out


def match_payouts(extracted: list[tuple[Any, ...]], existing: list[data.Directive]) -> list:
    """The beangulp hook with the configuration from $BEANCOUNT_STRIPE_CONFIG (or the default)."""
    return PayoutHook()(extracted, existing)


def payout_hook(config_path: str | os.PathLike[str]) -> PayoutHook:
    """The beangulp hook for the clients of ``config_path``."""
    return PayoutHook(config_path)
