#!/usr/bin/env python3
"""beangulp import script for the example clients; also Fava's `import-config`.

    python import.py identify acme/archive
    python import.py extract acme/archive -e acme/ledger.beancount
    python import.py extract acme/capital -e acme/ledger.beancount   # Stripe Capital CSVs
    python import.py extract acme/bank -e acme/ledger.beancount      # acme's bank statements

Importers come from ../config/clients.yaml (one per client, plus one for the Capital CSV exports
of each client with a loan), so `extract` books exactly what `beancount-stripe sync` and
`beancount-stripe capital import` book; what the ledger already has comes out marked as a
duplicate (commented out by `extract`, shown as such on Fava's Import page). Fava's `import-dirs`
is each client's inbox/ (hand-saved Stripe JSON, Capital CSVs), never the archive.

acme's bank statements (bank/usd.csv, bank/eur.csv) are read by a small CSV importer; the
payouts hook then books each bank line that matches a Stripe payout to the transit account with
the payout's ^po_… link, and flags (!) what it cannot match without guessing.
"""

from pathlib import Path

import beangulp
from beancount.core import data
from beangulp.importers import csvbase

from beancount_stripe.importer import importers_from_config
from beancount_stripe.reconcile import payout_hook

HERE = Path(__file__).resolve().parent
CLIENTS = HERE.parent / "config" / "clients.yaml"


class BankStatement(csvbase.Importer):
    """A bank's CSV export: Date, Description, Reference, Amount, Currency, Balance."""

    date = csvbase.Date("Date", "%Y-%m-%d")
    narration = csvbase.Column("Description")
    reference = csvbase.Column("Reference")
    amount = csvbase.Amount("Amount")
    currency = csvbase.Column("Currency")
    balance = csvbase.Amount("Balance")

    def __init__(self, account: str, currency: str, pending: str, filename: str) -> None:
        super().__init__(account, currency)
        self.pending = pending  # the other leg until a person (or the payouts hook) books it
        self.filename = filename

    def identify(self, filepath: str) -> bool:
        if Path(filepath).name != self.filename:
            return False
        with open(filepath, encoding="utf-8") as f:
            return f.readline().startswith("Date,Description,Reference,Amount,Currency")

    def metadata(self, filepath, lineno, row):
        meta = super().metadata(filepath, lineno, row)
        if row.reference:
            meta["reference"] = row.reference
        return meta

    def finalize(self, txn, row):
        txn.postings.append(data.Posting(self.pending, None, None, None, None, None))
        return txn


BANKS = [
    BankStatement("Assets:Acme:Bank:Checking", "USD", "Equity:Acme:Bank:Unreconciled", "usd.csv"),
    BankStatement("Assets:Acme:Bank:Euro", "EUR", "Equity:Acme:Bank:Unreconciled", "eur.csv"),
]
CONFIG = [*importers_from_config(CLIENTS), *BANKS]
HOOKS = [payout_hook(CLIENTS)]

if __name__ == "__main__":
    beangulp.Ingest(CONFIG, HOOKS)()
