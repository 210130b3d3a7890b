"""beangulp importers: the same booking as ``sync``, for ``import.py extract`` and Fava.

One importer per client (beangulp's model: the constructor takes the accounts). It reads the raw
archive ``fetch`` writes, a saved Stripe list response, or a bare JSON array of balance
transactions, and books them with ``booking.book_all`` — exactly what ``sync`` would append.
Transactions the ledger already has (same ``stripe_id``) are skipped.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from pathlib import Path

import beangulp
from beancount.core import data

from beancount_stripe import archive, booking
from beancount_stripe.config import ClientConfig, load_config


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
        """Book every transaction in the file that ``existing`` does not have yet."""
        booked = _stripe_ids(existing)
        bts = [bt for bt in archive.read_transactions(Path(filepath)) if bt["id"] not in booked]
        entries = booking.book_all(bts, self.client)
        return [_with_source(e, filepath) for e in entries]

    def deduplicate(self, entries: data.Entries, existing: data.Entries) -> None:
        """Duplicates are exact (same stripe_id) and already dropped by ``extract``."""


def _stripe_ids(entries: Iterable[data.Directive] | None) -> set[str]:
    out: set[str] = set()
    for e in entries or ():
        sid = e.meta.get("stripe_id") if e.meta else None
        if sid:
            out.add(str(sid))
    return out


def _with_source(entry: data.Transaction, filepath: str) -> data.Transaction:
    meta = dict(entry.meta)
    meta["filename"] = filepath
    return entry._replace(meta=meta)


def importers_from_config(path: str | Path) -> list[beangulp.Importer]:
    """One importer per configured client, for an ``import.py`` (``CONFIG = ...``)."""
    config = load_config(path)
    return [BalanceTransactionImporter(c) for c in config.clients]
