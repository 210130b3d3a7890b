"""Deciding, row by row, what a Capital CSV adds to a ledger (``plan_import``), and sync's hook
``covered_by_capital``. Pure."""

from __future__ import annotations

import datetime
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from beancount.core import data
from beancount.core.amount import Amount

from beancount_stripe import currency
from beancount_stripe.capital.held import LedgerItem, LoanState, ledger_items
from beancount_stripe.capital.kinds import (
    _REPAYMENT_KINDS,
    BT_TYPES,
    CAPITAL_PAYEE,
    KIND_OF_BT,
    LABELS,
    MATCH_DAYS,
    PAYDOWN,
    PAYDOWN_REVERSAL,
    PAYOUT,
    PAYOUT_REVERSAL,
    SIGN,
)
from beancount_stripe.capital.parse import CapitalFile, CapitalRow, _error, _fmt, _zone
from beancount_stripe.config import ClientConfig, LoanConfig
from beancount_stripe.errors import InputFileError
from beancount_stripe.ledger import ScannedEntry

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
        return _error(self.file.path, row.row, what, fix, line=row.line)

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
        if row.description:
            meta["stripe_description"] = row.description  # ids: metadata, not the payee
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
            CAPITAL_PAYEE,
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
            f"{LABELS[row.kind]}: financing fee part",  # the txn is in capital_for
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
