"""Payouts that close: what each payout contains, and the bank line that clears it.

Three parts, pure at the core:

- **Contents.** ``record_payout_contents`` (called by sync after the balance transactions are
  fetched) records each payout, and for an automatic one the balance transactions it settles
  (``GET /v1/balance_transactions?payout=po_…``), in ``archive/payouts.ndjson``. A
  payout in a final state is never fetched again; manual payouts, which Stripe does not
  itemise, are recorded with ``transactions: null``.
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

from .contents import (
    BREAKDOWN_KEYS,
    FINAL_STATUSES,
    ContentsResult,
    breakdown_minor,
    record_payout_contents,
)
from .listing import (
    MATCH_FILE,
    MATCH_HEADER,
    LedgerMatch,
    PayoutRow,
    PayoutSummary,
    PayoutTransaction,
    list_payouts,
    load_ledger,
    match_output,
    payout_matched,
    payout_open,
    payout_transactions,
    plan_ledger_matches,
    summarize,
)
from .matching import (
    CANDIDATES_KEY,
    NOTE_KEY,
    MatchSettings,
    PayoutHook,
    TransitItem,
    business_days,
    cleared_keys,
    match_entries,
    match_payouts,
    next_business_day,
    payout_hook,
    settings_for,
    transit_items,
)

__all__ = [
    "BREAKDOWN_KEYS",
    "CANDIDATES_KEY",
    "FINAL_STATUSES",
    "MATCH_FILE",
    "MATCH_HEADER",
    "NOTE_KEY",
    "ContentsResult",
    "LedgerMatch",
    "MatchSettings",
    "PayoutHook",
    "PayoutRow",
    "PayoutSummary",
    "PayoutTransaction",
    "TransitItem",
    "breakdown_minor",
    "business_days",
    "cleared_keys",
    "list_payouts",
    "load_ledger",
    "match_entries",
    "match_output",
    "match_payouts",
    "next_business_day",
    "payout_hook",
    "payout_matched",
    "payout_open",
    "payout_transactions",
    "plan_ledger_matches",
    "record_payout_contents",
    "settings_for",
    "summarize",
    "transit_items",
]
