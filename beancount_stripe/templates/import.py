#!/usr/bin/env python3
"""beangulp import script for every client of clients.yaml; also Fava's `import-config`.

    python import.py identify ledgers/CLIENT/archive
    python import.py extract ledgers/CLIENT/archive -e ledgers/CLIENT/ledger.beancount

`extract` books exactly what `beancount-stripe sync` books (same rules); what the ledger already
has comes out marked as a duplicate (commented out by `extract`, shown as such by Fava). Point
Fava's `import-dirs` at an inbox folder for hand-saved files, never at an archive/ folder.
Add your bank importers to CONFIG and the payout-matching hooks to HOOKS.
"""

from pathlib import Path

import beangulp

from beancount_stripe.importer import importers_from_config

HERE = Path(__file__).resolve().parent
CONFIG = importers_from_config(HERE / "clients.yaml")
HOOKS: list = []

if __name__ == "__main__":
    beangulp.Ingest(CONFIG, HOOKS)()
