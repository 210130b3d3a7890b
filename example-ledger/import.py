#!/usr/bin/env python3
"""beangulp import script for the example clients; also Fava's `import-config`.

    python import.py identify acme/archive
    python import.py extract acme/archive -e acme/ledger.beancount
    python import.py extract acme/capital -e acme/ledger.beancount   # Stripe Capital CSVs

Importers come from ../config/clients.yaml (one per client, plus one for the Capital CSV exports
of each client with a loan), so `extract` books exactly what `beancount-stripe sync` and
`beancount-stripe capital import` book; what the ledger already has comes out marked as a
duplicate (commented out by `extract`, shown as such on Fava's Import page). Fava's `import-dirs`
is each client's inbox/ (hand-saved Stripe JSON, Capital CSVs), never the archive.
"""

from pathlib import Path

import beangulp

from beancount_stripe.importer import importers_from_config

HERE = Path(__file__).resolve().parent
CONFIG = importers_from_config(HERE.parent / "config" / "clients.yaml")
HOOKS: list = []

if __name__ == "__main__":
    beangulp.Ingest(CONFIG, HOOKS)()
