"""Orchestration: fetch → archive → book → write, for one client. Used by the CLI and Fava.

The steps, and why they are ordered so:

1. Read the key and check it opens the configured account, before anything is fetched or
   written: the wrong client's books must never receive another client's money.
2. Fetch. The time range is cut into months (in the client's time zone); a month that the archive
   marks complete is skipped, the others are fetched concurrently from just before the newest
   transaction already known (the overlap), under a shared rate limit. Each finished month is
   written to the archive at once, so an interrupted backfill resumes where it stopped.
3. Read ``/v1/balance``, then ask for anything newer than the newest transaction seen; repeat
   until nothing arrived in between, so the balance and the transactions describe one instant.
4. Book every archived transaction the ledger lacks (by ``stripe_id``): new ones, and any entry a
   person deleted. Add ``open`` directives for new accounts and a ``balance`` assertion per
   currency dated at the start of a day no later transaction can fall before.
5. Append to the output file in one atomic rename.

One module per step: ``report`` (what a run reports), ``timeline`` (months and windows in the
client's zone), ``gateway`` (key, rate limit, account check), ``fetching``, ``tieout``,
``service`` (``sync_client``). This package re-exports what callers use.
"""

from beancount_stripe.sync.fetching import (
    PAYOUT_TYPES,
    _archive_months,
    _archive_state,
    _is_payout,
    _month_rows,
    _recent_transactions,
    fetch,
    fetch_client,
    fetch_payout_contents,
    read_archive,
    settle_balance,
)
from beancount_stripe.sync.gateway import (
    default_rate_limit,
    gateway_for,
    retries_from_env,
    verify_account,
)
from beancount_stripe.sync.report import (
    API_BASE_ENV,
    DEFAULT_OVERLAP,
    DEFAULT_RETRIES,
    KEEP_BOOKED,
    RETRIES_ENV,
    STRIPE_EPOCH,
    UNTIED_EXIT,
    FetchResult,
    Progress,
    SyncReport,
)
from beancount_stripe.sync.service import (
    _book_streamed,
    _sync_locked,
    sync_client,
)
from beancount_stripe.sync.tieout import (
    _archive_period,
    _norm,
    _untied_message,
    assertion_cutoff,
    derive_assertions,
    differences,
    implied_totals,
    repair_tie_out,
)
from beancount_stripe.sync.timeline import (
    Window,
    _day_floor,
    _local,
    _month_start,
    _next_month,
    month_of,
    plan_windows,
    start_of_day,
)

__all__ = [
    "API_BASE_ENV",
    "DEFAULT_OVERLAP",
    "DEFAULT_RETRIES",
    "KEEP_BOOKED",
    "PAYOUT_TYPES",
    "RETRIES_ENV",
    "STRIPE_EPOCH",
    "UNTIED_EXIT",
    "FetchResult",
    "Progress",
    "SyncReport",
    "Window",
    "_archive_months",
    "_archive_period",
    "_archive_state",
    "_book_streamed",
    "_day_floor",
    "_is_payout",
    "_local",
    "_month_rows",
    "_month_start",
    "_next_month",
    "_norm",
    "_recent_transactions",
    "_sync_locked",
    "_untied_message",
    "assertion_cutoff",
    "default_rate_limit",
    "derive_assertions",
    "differences",
    "fetch",
    "fetch_client",
    "fetch_payout_contents",
    "gateway_for",
    "implied_totals",
    "month_of",
    "plan_windows",
    "read_archive",
    "repair_tie_out",
    "retries_from_env",
    "settle_balance",
    "start_of_day",
    "sync_client",
    "verify_account",
]
