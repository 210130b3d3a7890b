#!/usr/bin/env python3
"""beangulp import script for every client of clients.yaml; also Fava's `import-config`.

    python import.py identify ledgers/CLIENT/archive
    python import.py extract ledgers/CLIENT/archive -e ledgers/CLIENT/ledger.beancount

`extract` books exactly what `beancount-stripe sync` books (same rules), and skips what the
ledger already has. Add your bank importers to CONFIG and the payout-matching hooks to HOOKS.
"""

from pathlib import Path

import beangulp

from beancount_stripe.importer import importers_from_config

HERE = Path(__file__).resolve().parent
CONFIG = importers_from_config(HERE / "clients.yaml")
HOOKS: list = []

if __name__ == "__main__":
    beangulp.Ingest(CONFIG, HOOKS)()
