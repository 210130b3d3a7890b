"""Summary modes: many booked transactions → one entry per day or per payout (issue 10).

A client with ``booking: {mode: daily}`` or ``{mode: payout}`` gets, instead of one entry per
balance transaction (BT), one entry per closed day and currency, or one per automatic payout,
whose postings are the sums per account of the BTs it holds. What stays its own entry: a BT that
needs review (flag ``!`` or the uncategorized account, so the review queue works) and a BT dated
before ``booking.since`` (so switching modes never re-books what is booked).

Idempotency. The ledger stays the source of truth: a summary entry carries
``stripe_summary: "KEY"`` (which ``ledger.scan`` reads, a text scan like ``stripe_id``),
``stripe_count``, ``stripe_first``/``stripe_last`` and a link. Which BTs a key covers is kept in a
small index beside the archive (``summaries.ndjson``): only keys the ledger holds count, so a
deleted summary entry is booked again, and a key the index lacks stops the sync rather than book
its BTs twice. The index is written before the ledger: a crash in between leaves an index line
no entry names, which the next run overwrites.

What waits in the archive: in ``daily`` mode a day still inside the overlap (a later sync may
fetch more of it); in ``payout`` mode a BT no recorded automatic payout settles yet. A BT that an
itemised automatic payout of its currency, created after it became available, did not settle (or
that a later manual payout swept) will never be itemised: it falls back to ``daily``.

Balance assertions. A summary is dated on its day or payout, on or after every BT it holds, so the
assertion's day is moved before the oldest waiting BT and its amount is Stripe's balance minus
what is booked on or after that day, or waits (``expected_balances``).
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from beancount.core import data
from beancount.core.amount import Amount

from beancount_stripe import archive, currency
from beancount_stripe.atomic import write_atomic
from beancount_stripe.config import ClientConfig
from beancount_stripe.errors import InputFileError, LedgerError

INDEX_FILE = "summaries.ndjson"
INDEX_OBJECT = "beancount_stripe.summaries"
SUMMARY_KEY = "stripe_summary"
COUNT_KEY = "stripe_count"
PAYEE = "Stripe"
_BAD_LINK = str.maketrans({c: "-" for c in " \t:^#\"'"})


# -- the index beside the archive ----------------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    """One summary entry as the index records it: its key, day, BT ids and net per currency."""

    key: str
    date: datetime.date
    ids: tuple[str, ...]
    nets: dict[str, int]  # minor units per (lower-case) currency, on the clearing account
    link: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "date": self.date.isoformat(),
            "link": self.link,
            "nets": self.nets,
            "count": len(self.ids),
            "ids": list(self.ids),
        }


def index_path(archive_dir: Path) -> Path:
    """Not ``*.jsonl``: what globs the archive for months skips it (like ``payouts.ndjson``)."""
    return archive_dir / INDEX_FILE


def read_index(archive_dir: Path) -> dict[str, Summary]:
    """Every summary the index records, by key (``{}`` before the first summary)."""
    path = index_path(archive_dir)
    out: dict[str, Summary] = {}
    if not path.exists():
        return out
    fix = (
        "restore the file from git or a backup; or delete the summary entries it lists "
        "(stripe_summary metadata) from the ledger and the file, and sync again to rebook them"
    )
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                if lineno == 1 and obj.get("object") == INDEX_OBJECT:
                    continue
                out[obj["key"]] = Summary(
                    key=str(obj["key"]),
                    date=datetime.date.fromisoformat(obj["date"]),
                    ids=tuple(str(i) for i in obj["ids"]),
                    nets={str(k): int(v) for k, v in obj["nets"].items()},
                    link=str(obj.get("link") or ""),
                )
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                raise InputFileError(
                    f"not a summary index line ({e})", where=f"{path}:{lineno}", fix=fix
                ) from None
    return out


def write_index(client: ClientConfig, new: Iterable[Summary]) -> bool:
    """Add (or replace) ``new`` summaries in the index, atomically; True if bytes changed."""
    index = read_index(client.archive_dir)
    index.update((s.key, s) for s in new)
    header = {"object": INDEX_OBJECT, "client": client.id, "stripe_account": client.stripe_account}
    rows = sorted(index.values(), key=lambda s: (s.date, s.key))
    text = "\n".join([archive.dumps(header), *(archive.dumps(s.to_json()) for s in rows)]) + "\n"
    client.archive_dir.mkdir(parents=True, exist_ok=True)
    return write_atomic(index_path(client.archive_dir), text)


def ledger_summaries(client: ClientConfig, keys: Mapping[str, datetime.date]) -> list[Summary]:
    """The indexed summaries whose key the ledger holds (``LedgerState.summaries``).

    A key the index lacks stops the sync: its transactions are booked, but which ones is unknown.
    """
    if not keys:
        return []
    index = read_index(client.archive_dir)
    missing = sorted(set(keys) - set(index))
    if missing:
        raise LedgerError(
            f"{len(missing)} summary entr{'y' if len(missing) == 1 else 'ies'} of the ledger "
            f"(first: stripe_summary {missing[0]!r}) are not in the archive's summary index, so "
            "which transactions they hold is unknown; booking again could count them twice",
            where=str(index_path(client.archive_dir)),
            fix="restore the index from git or a backup, or delete those summary entries from "
            "the ledger to have their transactions booked again, then sync again",
        )
    # The ledger's date wins: a person may have moved an entry.
    return [Summary(k, keys[k], index[k].ids, index[k].nets, index[k].link) for k in sorted(keys)]


def add_covered(client: ClientConfig, state: Any) -> list[Summary]:
    """Mark every BT a summary entry of the ledger holds as booked (on the summary's date).

    ``state`` is a ``ledger.LedgerState``; its ``stripe_ids`` then cover every mode.
    """
    found = ledger_summaries(client, state.summaries)
    for s in found:
        for txn_id in s.ids:
            state.stripe_ids.setdefault(txn_id, s.date)
    return found


# -- planning: entries → entries (pure) ----------------------------------------------------------


@dataclass
class Plan:
    """What one run books in a summary mode, and what waits."""

    entries: list[data.Transaction] = field(default_factory=list)
    new: list[Summary] = field(default_factory=list)  # summaries booked by this run
    old: list[Summary] = field(default_factory=list)  # summaries the ledger already holds
    waiting: list[Mapping[str, Any]] = field(default_factory=list)  # BTs left in the archive

    def waiting_nets(self) -> dict[str, int]:
        """Net of the waiting BTs per (lower-case) currency: Stripe holds it, the ledger not yet."""
        out: dict[str, int] = {}
        for bt in self.waiting:
            cur = str(bt["currency"]).lower()
            out[cur] = out.get(cur, 0) + int(bt["net"])
        return out

    @property
    def summarizing(self) -> bool:
        return bool(self.new or self.old or self.waiting)

    def assertion_day(self, cutoff: datetime.date, tz: ZoneInfo) -> datetime.date:
        """``cutoff``, or the day of the oldest waiting BT if earlier: it will be booked then."""
        days = [_day(bt, tz) for bt in self.waiting]
        return min([cutoff, *days])

    def expected_balances(
        self,
        known: Iterable[Mapping[str, Any]],
        stripe_totals: Mapping[str, int],
        cutoff: datetime.date,
        tz: ZoneInfo,
        currencies: Iterable[str] = (),
    ) -> dict[str, int]:
        """Clearing balance per currency at the start of ``cutoff``, in minor units.

        Stripe's balance minus: summaries dated on or after ``cutoff`` (their nets, from the
        index), BTs booked one entry each on or after it, and BTs that wait. ``currencies``: of
        transactions summarized by this run and left out of ``known``, shown even at zero.
        """
        totals = {cur: int(v) for cur, v in stripe_totals.items()}
        for cur in currencies:
            totals.setdefault(cur, 0)
        covered: set[str] = set()
        for s in [*self.old, *self.new]:
            covered.update(s.ids)
            if s.date >= cutoff:
                for cur, net in s.nets.items():
                    totals[cur] = totals.get(cur, 0) - net
        waiting = {bt["id"] for bt in self.waiting}
        for bt in known:
            cur = str(bt["currency"]).lower()
            totals.setdefault(cur, 0)
            if bt["id"] in covered:
                continue
            if bt["id"] in waiting or _day(bt, tz) >= cutoff:
                totals[cur] -= int(bt["net"])
        return totals


def plan(
    entries: Sequence[data.Transaction],
    bts: Mapping[str, Mapping[str, Any]],
    *,
    mode: str,
    tz: ZoneInfo,
    clearing: str,
    uncategorized: str,
    closed_before: int,
    since: datetime.date | None = None,
    payouts: Mapping[str, Mapping[str, Any]] | None = None,
    taken: Iterable[str] = (),
) -> Plan:
    """Turn booked, refined ``entries`` (one per BT in ``bts``) into what a summary mode writes.

    ``closed_before``: a day (in ``tz``) ending at or before this instant is closed (past the
    overlap). ``payouts``: recorded payouts (``archive.read_payouts``). ``taken``: summary keys the
    ledger already holds. The same as ``Planner``, given every entry at once.
    """
    planner = Planner(
        mode=mode,
        tz=tz,
        clearing=clearing,
        uncategorized=uncategorized,
        closed_before=closed_before,
        since=since,
        payouts=payouts,
        taken=taken,
    )
    planner.add(entries, bts)
    return planner.finish()


@dataclass
class _Group:
    """What one summary entry sums, gathered while its transactions are booked (no entry kept)."""

    members: list[tuple[int, str, str, int]] = field(default_factory=list)  # created, id, cur, net
    sums: dict[tuple[str, str], Decimal] = field(default_factory=dict)  # (account, currency)
    own: data.Transaction | None = None  # the payout's own entry (payout mode)
    newest: datetime.date | None = None  # of its entries


class Planner:
    """``plan`` fed in order, a chunk at a time (a month's entries and their BTs, say).

    A summary entry only needs sums per account, each member's id and net, and the payout's own
    entry, so booked entries are dropped once added: memory grows with the ids of the summarized
    transactions and the entries kept apart (review, ``booking.since``), not with the entries.
    """

    def __init__(
        self,
        *,
        mode: str,
        tz: ZoneInfo,
        clearing: str,
        uncategorized: str,
        closed_before: int,
        since: datetime.date | None = None,
        payouts: Mapping[str, Mapping[str, Any]] | None = None,
        taken: Iterable[str] = (),
    ) -> None:
        self.result = Plan()
        self.mode, self.tz, self.clearing = mode, tz, clearing
        self.uncategorized, self.closed_before, self.since = uncategorized, closed_before, since
        self.taken = set(taken)
        self.members: dict[str, str] = {}  # BT id → automatic payout that settles it
        self.auto: dict[str, list[int]] = {}  # currency → creation of itemised automatic payouts
        self.manual: dict[str, list[int]] = {}  # currency → creation of manual payouts
        self.payouts: dict[str, tuple[int, Any]] = {}  # id → (created, balance_transaction)
        if mode == "payout":
            for po_id in payouts or {}:
                rec = (payouts or {})[po_id]
                self.payouts[po_id] = (int(rec.get("created") or 0), rec.get("balance_transaction"))
                cur = str(rec.get("currency", "")).lower()
                if rec.get("automatic") and rec.get("transactions") is not None:
                    for t in rec["transactions"]:
                        self.members[str(t["id"])] = po_id
                    if rec.get("balance_transaction"):
                        self.members[str(rec["balance_transaction"])] = po_id
                    self.auto.setdefault(cur, []).append(int(rec.get("created") or 0))
                elif not rec.get("automatic"):
                    self.manual.setdefault(cur, []).append(int(rec.get("created") or 0))
        self.singles: list[data.Transaction] = []
        self.days: dict[tuple[datetime.date, str], _Group] = {}
        self.by_payout: dict[str, _Group] = {}

    def add(
        self, entries: Iterable[data.Transaction], bts: Mapping[str, Mapping[str, Any]]
    ) -> None:
        """Plan the next ``entries`` (booked, refined; one per BT in ``bts``), in order."""
        if self.mode == "transaction":
            self.result.entries.extend(entries)
            return
        for entry in entries:
            bt = bts[entry.meta["stripe_id"]]
            day = entry.date
            if _needs_review(entry, self.uncategorized) or (
                self.since is not None and day < self.since
            ):
                self.singles.append(entry)
                continue
            if self.mode == "payout":
                po_id = self.members.get(bt["id"])
                if po_id is not None:
                    group = self.by_payout.setdefault(po_id, _Group())
                    own = group.own is None and bt["id"] == self.payouts[po_id][1]
                    _gather(group, entry, bt, own=own)
                    continue
                if not _never_itemised(bt, self.auto, self.manual):
                    self.result.waiting.append(bt)
                    continue
            if _day_end(day, self.tz) > self.closed_before:
                self.result.waiting.append(bt)
                continue
            _gather(self.days.setdefault((day, str(bt["currency"]).lower()), _Group()), entry, bt)

    def finish(self) -> Plan:
        """The plan: summary entries and the entries kept apart, by date."""
        result = self.result
        if self.mode == "transaction":
            return result
        summaries: list[data.Transaction] = []
        for (day, cur), group in sorted(self.days.items(), key=lambda kv: kv[0]):
            key = _free(f"day-{day.isoformat()}-{cur}", self.taken)
            link = "stripe-" + key
            narration = f"{day.isoformat()} {cur.upper()}: {len(group.members)} transaction(s)"
            entry, summ = _summary(group, key, link, day, narration, self.clearing)
            summaries.append(entry)
            result.new.append(summ)
        for po_id, group in sorted(self.by_payout.items(), key=self._payout_order):
            created = self.payouts[po_id][0]
            day = datetime.datetime.fromtimestamp(created, self.tz).date()
            assert group.newest is not None
            day = max(day, group.newest)  # never before a BT it holds
            key = _free(po_id, self.taken)
            link = po_id.translate(_BAD_LINK)
            narration = f"Payout {po_id}: {len(group.members)} transaction(s)"
            entry, summ = _summary(group, key, link, day, narration, self.clearing)
            summaries.append(entry)
            result.new.append(summ)
        merged = [(e.date, 0, i, e) for i, e in enumerate(self.singles)]
        merged += [(e.date, 1, i, e) for i, e in enumerate(summaries)]
        result.entries = [e for *_k, e in sorted(merged, key=lambda t: t[:3])]
        return result

    def _payout_order(self, item: tuple[str, _Group]) -> tuple[int, str]:
        return (self.payouts[item[0]][0], item[0])


def _gather(
    group: _Group, entry: data.Transaction, bt: Mapping[str, Any], *, own: bool = False
) -> None:
    """Add one booked entry to its summary: member, sums per account (not the payout's own)."""
    group.members.append(
        (int(bt["created"]), entry.meta["stripe_id"], str(bt["currency"]).lower(), int(bt["net"]))
    )
    group.newest = entry.date if group.newest is None else max(group.newest, entry.date)
    if own:
        group.own = entry
        return
    sums = group.sums
    for p in entry.postings:
        if p.units is None or p.units.number is None:
            continue
        k = (p.account, p.units.currency)
        sums[k] = sums.get(k, Decimal(0)) + p.units.number


def _needs_review(entry: data.Transaction, uncategorized: str) -> bool:
    return entry.flag == "!" or any(p.account == uncategorized for p in entry.postings)


def _day(bt: Mapping[str, Any], tz: ZoneInfo) -> datetime.date:
    return datetime.datetime.fromtimestamp(int(bt["created"]), tz).date()


def _day_end(day: datetime.date, tz: ZoneInfo) -> int:
    nxt = day + datetime.timedelta(days=1)
    return int(datetime.datetime(nxt.year, nxt.month, nxt.day, tzinfo=tz).timestamp())


def _never_itemised(
    bt: Mapping[str, Any], auto: Mapping[str, list[int]], manual: Mapping[str, list[int]]
) -> bool:
    """True when no automatic payout will ever settle ``bt``: book it by day instead.

    An itemised automatic payout of its currency created after the BT became available left it
    out, or a manual payout created after it swept the balance.
    """
    cur = str(bt["currency"]).lower()
    available = int(bt.get("available_on") or bt["created"])
    if any(t >= available for t in auto.get(cur, ())):
        return True
    return any(t >= int(bt["created"]) for t in manual.get(cur, ()))


def _free(key: str, taken: set[str]) -> str:
    """``key``, or ``key-2``, ``key-3``…: a day or payout summarized before keeps its entry."""
    out, n = key, 1
    while out in taken:
        n += 1
        out = f"{key}-{n}"
    taken.add(out)
    return out


def _summary(
    group: _Group,
    key: str,
    link: str,
    day: datetime.date,
    narration: str,
    clearing: str,
) -> tuple[data.Transaction, Summary]:
    """One summary entry: the group's postings summed per account, the payout's own apart.

    Sums of Decimals are exact here, so gathering them in booking order gives what summing in
    (created, id) order gives.
    """
    ordered = sorted(group.members)
    nets: dict[str, int] = {}
    for _created, _id, cur, net in ordered:
        nets[cur] = nets.get(cur, 0) + net
    sums = group.sums
    postings = [
        data.Posting(acc, Amount(num, com), None, None, None, None)
        for (acc, com), num in sorted(sums.items(), key=lambda kv: (kv[0][0] != clearing, kv[0]))
        if num or acc == clearing
    ]
    own = group.own
    if own is not None:
        postings += [data.Posting(p.account, p.units, None, None, None, None) for p in own.postings]
    ids = tuple(txn_id for _created, txn_id, _cur, _net in ordered)
    meta = data.new_metadata("<beancount-stripe>", 0)
    if own is not None:  # the payout itself: matched to the bank like any payout entry
        for k in ("stripe_id", "stripe_source", "stripe_type"):
            if k in own.meta:
                meta[k] = own.meta[k]
    meta[SUMMARY_KEY] = key
    meta[COUNT_KEY] = Decimal(len(ids))
    meta["stripe_first"] = ids[0]
    meta["stripe_last"] = ids[-1]
    entry = data.Transaction(
        meta, day, "*", PAYEE, narration, data.EMPTY_SET, frozenset({link}), postings
    )
    return entry, Summary(key, day, ids, nets, link)


# -- the edge sync calls -------------------------------------------------------------------------


def plan_for(
    client: ClientConfig,
    entries: Sequence[data.Transaction],
    bts: Iterable[Mapping[str, Any]],
    old: list[Summary],
    *,
    taken: Iterable[str],
    now: int,
    overlap: datetime.timedelta,
    uncategorized: str,
) -> Plan:
    """``plan`` with the client's mode, zone and recorded payouts (read here, in payout mode)."""
    planner = planner_for(
        client, taken=taken, now=now, overlap=overlap, uncategorized=uncategorized
    )
    planner.add(entries, {bt["id"]: bt for bt in bts})
    result = planner.finish()
    result.old = old
    return result


def planner_for(
    client: ClientConfig,
    *,
    taken: Iterable[str],
    now: int,
    overlap: datetime.timedelta,
    uncategorized: str,
) -> Planner:
    """A ``Planner`` with the client's mode, zone and recorded payouts (payout mode)."""
    mode = client.booking.mode
    # records are read one at a time from disk: together they grow with the history
    payouts = archive.open_payouts(client.archive_dir) if mode == "payout" else None
    return Planner(
        mode=mode,
        tz=ZoneInfo(client.timezone),
        clearing=client.accounts.clearing,
        uncategorized=uncategorized,
        closed_before=now - int(overlap.total_seconds()),
        since=client.booking.since,
        payouts=payouts,
        taken=taken,
    )


# -- listing what a summary holds (the `show` command, Fava) -------------------------------------


def find(client: ClientConfig, ref: str) -> tuple[str, list[dict[str, Any]]]:
    """(what ``ref`` names, the archived BTs it holds): a summary key or link, a payout, a BT id.

    ``ref`` may start with ``^``. Raises ``InputFileError`` when nothing matches.
    """
    ref = ref.strip().lstrip("^")
    index = read_index(client.archive_dir)
    summ = index.get(ref) or next((s for s in index.values() if s.link == ref), None)
    if summ is None and ref.startswith("stripe-"):
        summ = index.get(ref[len("stripe-") :])
    wanted: list[str]
    if summ is not None:
        what, wanted = (
            f"summary {summ.key} ({summ.date}, {len(summ.ids)} transactions)",
            list(summ.ids),
        )
    else:
        rec = archive.read_payouts(client.archive_dir).get(ref)
        if rec is not None and rec.get("transactions") is not None:
            wanted = [str(t["id"]) for t in rec["transactions"]]
            if rec.get("balance_transaction") and rec["balance_transaction"] not in wanted:
                wanted.append(str(rec["balance_transaction"]))
            what = f"payout {ref} ({len(wanted)} transactions)"
        else:
            wanted, what = [ref], f"balance transaction {ref}"
    found = _from_archive(client, set(wanted))
    if not found:
        raise InputFileError(
            f"nothing in client {client.id}'s archive is named {ref!r}",
            where=str(client.archive_dir),
            fix="give a summary link (e.g. stripe-day-2025-03-14-usd), a payout id (po_…) or a "
            "balance transaction id (txn_…), and check --client",
        )
    where = {i: s.key for s in index.values() for i in s.ids if i in found}
    for txn_id, bt in found.items():
        bt["_summary"] = where.get(txn_id)
    order = {i: n for n, i in enumerate(wanted)}
    return what, sorted(found.values(), key=lambda b: (b["created"], order.get(b["id"], 0)))


def _from_archive(client: ClientConfig, wanted: set[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for _month, path in archive.month_files(client.archive_dir):
        for bt in archive.read_transactions(path):
            if bt["id"] in wanted:
                out[bt["id"]] = bt
    return out


def format_rows(client: ClientConfig, bts: Sequence[Mapping[str, Any]]) -> list[str]:
    """One text line per BT: date, id, type, amount, fee, net, where it is booked."""
    tz = ZoneInfo(client.timezone)
    lines = []
    for bt in bts:
        cur = str(bt["currency"])
        nums = [f"{currency.to_decimal(int(bt[k]), cur):>12}" for k in ("amount", "fee", "net")]
        where = bt.get("_summary") or "own entry"
        desc = str(bt.get("description") or "")[:40]
        lines.append(
            f"{_day(bt, tz)}  {bt['id']:<28} {bt.get('type')!s:<22} {' '.join(nums)} "
            f"{cur.upper()}  {where}  {desc}".rstrip()
        )
    return lines
