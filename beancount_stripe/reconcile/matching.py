"""Bank-side matching, pure: a bank line clears the one transit item it matches, or is flagged.

A *transit item* is a Stripe booking on the client's transit account (a payout, a failed payout's
return, a top-up). A bank line matches an item by currency, exact amount and a date window
(arrival date plus a lag in business days); a trace id or ``po_…`` id in its text narrows the
candidates. Anything ambiguous is flagged ``!`` with a note naming the candidates, never guessed.
``match_payouts`` / ``PayoutHook`` wrap it as a beangulp hook.
"""

from __future__ import annotations

import bisect
import datetime
import functools
import os
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from beancount.core import data
from beancount.core.amount import Amount

from beancount_stripe import archive

if TYPE_CHECKING:
    from beangulp import Importer
from beancount_stripe.config import ClientConfig, PayoutsConfig

NOTE_KEY = "payout_note"
CANDIDATES_KEY = "payout_candidates"
_STRIPE_TEXT = re.compile(r"stripe|\bpo_[0-9A-Za-z]+", re.IGNORECASE)
_ID_TEXT = re.compile(r"\b(?:po|tu|ibt)_[0-9A-Za-z]+")


def arrival_day(ts: int | None) -> datetime.date | None:
    # Stripe's arrival_date is the bank day at midnight UTC.
    return None if ts is None else datetime.datetime.fromtimestamp(int(ts), datetime.UTC).date()


# -- matching (pure) -------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)  # identity: each booking is its own item (and hashes fast)
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
    return _shift(day, n, frozenset(holidays))


@functools.lru_cache(maxsize=65536)
def _shift(day: datetime.date, n: int, off: frozenset[datetime.date]) -> datetime.date:
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
        arrival = arrival_day(rec.get("arrival_date")) or business_days(e.date, 2, cfg.holidays)
        if kind == "payout":
            first = start = arrival
        elif kind == "payout_failure":
            # The return leaves the bank once the failure is known and the deposit has landed.
            first, start = e.date, max(e.date, arrival)
        else:  # top-ups and inbound transfers: the bank side may come first
            first, start = business_days(e.date, -cfg.lag_days, cfg.holidays), e.date
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
    firsts: dict[tuple[str, Decimal], list[datetime.date]] = {}
    for k, items in index.items():
        items.sort(key=lambda i: (i.first, i.key))
        firsts[k] = [i.first for i in items]
    banks = _Accounts(
        [bank_account] if bank_account else [a for s in settings for a in s.payouts.bank_accounts]
    )
    transits = {s.transit for s in settings}

    lines: list[_Line] = []
    for n, e in enumerate(bank_entries):
        if not isinstance(e, data.Transaction) or "stripe_id" in e.meta:
            continue
        if e.meta.get("__duplicate__") or any(k in by_text for k in e.links):
            continue
        if any(p.account in transits for p in e.postings):
            continue  # already booked to transit: matched before, or by hand
        post = _bank_posting(e, banks)
        if post is None or not post.units.number:
            continue
        text = " ".join(
            [e.payee or "", e.narration or ""]
            + [str(v) for k, v in e.meta.items() if k not in ("filename", "lineno")]
        )
        line = _Line(n, e, post, post.units.currency, post.units.number, e.date, text)
        key = (line.currency, line.amount)
        items = index.get(key, [])
        if items:
            lo = bisect.bisect_right(firsts[key], line.date)
            line.candidates = [i for i in items[:lo] if i.last >= line.date]
        if len(line.candidates) > 1:
            named = _named(line.text, by_text)
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
    return data.Transaction(
        meta,
        entry.date,
        entry.flag,
        entry.payee,
        entry.narration,
        entry.tags,
        frozenset(entry.links or ()) | {item.key},
        [bank, *others, transit],
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
        """beangulp passes (filename, entries, account, importer) per file; Fava, for a hook
        whose annotations do not name ``Importer``, only (filename, entries): then the bank
        accounts come from the configuration alone."""
        settings = self._settings()
        out = []
        for item in extracted:
            filename, entries, *rest = item
            account = rest[0] if rest else None
            mine = [s for s in settings if account in s.payouts.bank_accounts] or [
                s for s in settings if not s.payouts.bank_accounts
            ]
            if account is None:
                mine = settings
            if mine and (account or any(s.payouts.bank_accounts for s in mine)):
                entries = match_entries(entries, existing, mine, bank_account=account)
            out.append((filename, entries, *rest))
        return out


def match_payouts(
    extracted: list[tuple[str, list[data.Directive], str, Importer]],
    existing: list[data.Directive],
) -> list[tuple[str, list[data.Directive], str, Importer]]:
    """The beangulp hook with the configuration from $BEANCOUNT_STRIPE_CONFIG (or the default).

    (Its annotations name ``Importer`` so that Fava passes the importer's account too.)
    """
    return PayoutHook()(extracted, existing)


Extracted = list[tuple[str, list[data.Directive], str, "Importer"]]


def payout_hook(
    config_path: str | os.PathLike[str],
) -> Callable[[Extracted, list[data.Directive]], Extracted]:
    """The beangulp hook for the clients of ``config_path`` (a function, so that Fava, which
    reads a hook's annotations, passes each file's importer and account as beangulp does)."""
    hook = PayoutHook(config_path)

    def match_payouts_of(
        extracted: list[tuple[str, list[data.Directive], str, Importer]],
        existing: list[data.Directive],
    ) -> list[tuple[str, list[data.Directive], str, Importer]]:
        return hook(extracted, existing)

    return match_payouts_of
