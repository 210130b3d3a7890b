"""beangulp importers: the same booking as ``sync``, for ``import.py extract`` and Fava.

One importer per client (beangulp's model: the constructor takes the accounts). It reads the raw
archive ``fetch`` writes, a saved Stripe list response, or a bare JSON array of balance
transactions, and books them with ``booking.book_all`` refined by the client's rules
(``rules.book_with_rules``): exactly what ``sync`` would append.

Transactions the ledger already has (same ``stripe_id``, or the money of a Capital CSV entry) are
returned marked as duplicates, beangulp's convention: ``extract`` prints them commented out with
the entry they duplicate, Fava's Import page shows them as duplicates and does not save them.

A file that is identified but malformed raises ``ImportFileError``, a beangulp ``Error``: beangulp
prints its message (what, where, fix) without a traceback and exits non-zero.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import beangulp
import beangulp.exceptions
from beancount.core import data

from beancount_stripe import archive, capital, heap, privacy, rules
from beancount_stripe.config import ClientConfig, load_config
from beancount_stripe.errors import BeancountStripeError, InputFileError

DUPLICATE = "__duplicate__"  # beangulp.extract.DUPLICATE: the entry is already in the ledger


class ImportFileError(InputFileError, beangulp.exceptions.Error):
    """An input file an importer cannot book; also a beangulp ``Error``.

    beangulp's ``extract``, ``identify`` and ``archive`` print an ``Error`` as a plain message
    under the file's name (as for a file two importers claim) and exit 1, but print a traceback
    for any other exception. Callers catching ``InputFileError`` keep working.
    """

    @classmethod
    def wrap(cls, err: BeancountStripeError) -> ImportFileError:
        return cls(err.what, where=err.where, fix=err.fix)

    def __str__(self) -> str:
        return self.render()


class BalanceTransactionImporter(beangulp.Importer):
    """Stripe balance transactions of one client → Beancount transactions."""

    def __init__(self, client: ClientConfig) -> None:
        self.client = client

    @property
    def name(self) -> str:
        return f"beancount_stripe.{self.client.id}"

    def identify(self, filepath: str) -> bool:
        """Cheap: a few hundred bytes of the file, and its path (Fava calls this on every view).

        An archive file names its client in its header. A saved list response or JSON array does
        not say whose it is, so it must lie in the client's archive directory or in a directory
        (or file name) carrying the client id or its ``acct_…`` id.
        """
        path = Path(filepath)
        kind = archive.sniff(path)
        if kind is None:
            return False
        if kind.header is not None:
            return kind.header.client == self.client.id and (
                not kind.header.stripe_account
                or kind.header.stripe_account == self.client.stripe_account
            )
        return self._path_names_client(path)

    def _path_names_client(self, path: Path) -> bool:
        resolved = path.resolve()
        try:
            resolved.relative_to(self.client.archive_dir.resolve())
            return True
        except ValueError:
            pass
        tokens = (self.client.id, self.client.stripe_account)
        if any(part in tokens for part in resolved.parent.parts):
            return True
        return any(tok in resolved.name for tok in tokens)

    def account(self, filepath: str) -> data.Account:
        return self.client.accounts.clearing

    def date(self, filepath: str) -> datetime.date | None:
        header = archive.read_header(Path(filepath))
        if header and header.month:
            year, month = (int(x) for x in header.month.split("-"))
            return datetime.date(year, month, 1)
        return None

    def filename(self, filepath: str) -> str | None:
        return None

    def extract(self, filepath: str, existing: data.Entries) -> data.Entries:
        """Book every transaction in the file; those a Capital CSV entry of ``existing`` already
        books are marked duplicate here, those with a booked ``stripe_id`` by ``deduplicate``."""
        with heap.quiet_gc():  # a big file: keep the collector off the parsed history
            return self._extract(filepath, existing)

    def _extract(self, filepath: str, existing: data.Entries) -> data.Entries:
        try:
            # Capital CSV rows booked before their balance transaction are that money already.
            scanned = capital.scanned_from_entries(existing)
        except BeancountStripeError as err:
            raise ImportFileError.wrap(err) from None
        if not scanned:
            chunked = self._extract_in_chunks(filepath)
            if chunked is not None:
                return chunked
        try:
            bts = archive.read_transactions(Path(filepath))
            booked = _stripe_ids(existing)
            covered: set[str] = set()
            if scanned:
                fresh = [bt for bt in bts if bt["id"] not in booked]
                covered = capital.covered_by_capital(fresh, scanned, self.client)
            # booked with this file as the entries' source, as beangulp expects of ``extract``
            pairs = rules.book_with_rules(bts, self.client, filename=filepath, explain=False)
        except BeancountStripeError as err:
            raise ImportFileError.wrap(err) from None
        out = [entry for entry, _why in pairs]
        for entry in out if covered else ():
            if entry.meta.get("stripe_id") in covered:
                entry.meta[DUPLICATE] = True  # booked by a Capital CSV entry, without its id
        return out

    def _extract_in_chunks(self, filepath: str) -> data.Entries | None:
        """An archive file booked chunk by chunk (``archive.archive_chunks``: ~20% faster for a
        big file); None when the file must be read whole: not an archive, in an order booking
        does not keep (its entries sort by date, created, id), or anything refused or failing,
        so that the whole-file path words the refusal exactly as it always did."""
        try:
            # the `source.…` paths the client's rules name: the rows keep them (bt_projection)
            read_paths = privacy.keep_paths_for(rules.rule_paths(self.client))
            chunks = archive.archive_chunks(Path(filepath), _CHUNK, read_paths=read_paths)
            if chunks is None:
                return None
            out: list[data.Transaction] = []
            ruleset = None
            last: tuple[Any, ...] = ()
            for chunk in chunks:
                if ruleset is None:
                    ruleset = rules.ruleset_for(self.client)
                pairs = rules.book_with_rules(
                    chunk, self.client, ruleset, filename=filepath, explain=False
                )
                if not pairs:
                    continue
                first = _sort_key(pairs[0][0], chunk)
                if first < last:
                    return None  # a chunk sorts before the one read before it: read it whole
                last = _sort_key(pairs[-1][0], reversed(chunk))  # usually the chunk's last
                out += [entry for entry, _why in pairs]
        except Exception:  # the whole-file path raises it (or books the file) as it always did
            return None
        return out

    def deduplicate(self, entries: data.Entries, existing: data.Entries) -> None:
        """Mark entries whose ``stripe_id`` is in ``existing`` (the ledger, and in beangulp's
        ``extract`` the files extracted before this one) with the entry they duplicate."""
        by_id: dict[str, data.Directive] = {}
        for e in existing or ():
            sid = e.meta.get("stripe_id") if e.meta else None
            if sid and not (e.meta.get(DUPLICATE)):
                by_id.setdefault(str(sid), e)
        by_id.update(_summarized(self.client, existing, by_id))
        for entry in entries:
            target = by_id.get(str(entry.meta.get("stripe_id", "")))
            if target is not None and target is not entry and not entry.meta.get(DUPLICATE):
                entry.meta[DUPLICATE] = target


_CHUNK = 64  # archive lines booked at a time (bench_booking: 32-64 best, 256 ~8% slower)


def _sort_key(entry: data.Transaction, chunk: Iterable[dict[str, Any]]) -> tuple[Any, ...]:
    """``booking.book_all``'s sort key (date, created, id) of a booked entry of ``chunk``."""
    txn_id = entry.meta["stripe_id"]
    for bt in chunk:
        if bt["id"] == txn_id:
            return (entry.date, bt["created"], txn_id)
    raise LookupError(txn_id)  # not booked from this chunk: cannot happen


def _summarized(
    client: ClientConfig, existing: Iterable[data.Directive] | None, known: Mapping[str, Any]
) -> dict[str, data.Directive]:
    """BT id → the summary entry (summary modes, summary.py) of ``existing`` that books it."""
    from beancount_stripe import summary

    keys = {
        str(e.meta["stripe_summary"]): e
        for e in existing or ()
        if isinstance(e, data.Transaction) and e.meta and "stripe_summary" in e.meta
    }
    if not keys:
        return {}
    index = summary.read_index(client.archive_dir)
    return {
        txn_id: entry
        for key, entry in keys.items()
        if key in index
        for txn_id in index[key].ids
        if txn_id not in known
    }


def _stripe_ids(entries: Iterable[data.Directive] | None) -> set[str]:
    out: set[str] = set()
    for e in entries or ():
        sid = e.meta.get("stripe_id") if e.meta else None
        if sid:
            out.add(str(sid))
    return out


def importers_from_config(path: str | Path) -> list[beangulp.Importer]:
    """One importer per configured client, for an ``import.py`` (``CONFIG = ...``), plus one for
    the Capital CSV exports of each client with Capital loans."""
    config = load_config(path)
    importers: list[beangulp.Importer] = [BalanceTransactionImporter(c) for c in config.clients]
    importers += [CapitalImporter(c) for c in config.clients if c.capital is not None]
    return importers


class CapitalImporter(beangulp.Importer):
    """Stripe Capital CSV exports of one client → entries against its loan (``capital``).

    The same planning as ``beancount-stripe capital import``: rows the ledger already has are
    skipped, rows whose balance transaction is synced add only the fee part, the others book the
    money with the transaction's ``stripe_id`` where it is known.
    """

    def __init__(self, client: ClientConfig) -> None:
        if client.capital is None:
            raise ValueError(f"client {client.id} has no `capital:` configuration")
        self.client = client

    @property
    def name(self) -> str:
        return f"beancount_stripe.capital.{self.client.id}"

    def identify(self, filepath: str) -> bool:
        """Cheap: the first few KB. A Capital CSV header, in the client's directory or named
        after the client, or mentioning one of its loans."""
        path = Path(filepath)
        if path.suffix.lower() != ".csv":
            return False
        try:
            with open(path, "rb") as f:
                head = f.read(8192).decode("utf-8", errors="replace")
        except OSError:
            return False
        if not capital.looks_like_capital(head, self.client):
            return False
        resolved = path.resolve()
        try:
            resolved.relative_to(self.client.ledger.parent.resolve())
            return True
        except ValueError:
            pass
        tokens = (self.client.id, self.client.stripe_account)
        if any(part in tokens for part in resolved.parent.parts):
            return True
        if any(tok in resolved.name for tok in tokens):
            return True
        assert self.client.capital is not None
        return any(i in head for loan in self.client.capital.loans for i in loan.ids)

    def account(self, filepath: str) -> data.Account:
        return self.client.accounts.capital_loan

    def extract(self, filepath: str, existing: data.Entries) -> data.Entries:
        try:
            capital_file = capital.read_csv(Path(filepath), self.client)
            bts, complete = capital.archive_for(self.client, capital_file.rows)
            balances = {
                (e.date, e.account, e.amount.currency): str(e.amount.number)
                for e in existing or ()
                if isinstance(e, data.Balance)
            }
            plan = capital.plan_import(
                capital_file,
                self.client,
                capital.scanned_from_entries(existing),
                booked_ids=_stripe_ids(existing),
                archive_bts=bts,
                complete_months=complete,
                balances=balances,
                filename=filepath,
            )
        except BeancountStripeError as err:
            raise ImportFileError.wrap(err) from None
        return plan.directives

    def deduplicate(self, entries: data.Entries, existing: data.Entries) -> None:
        """Rows already booked are recognized by ``extract`` (ids, then amount and date)."""
