"""What a sync and a fetch report, and the constants every step shares."""

from __future__ import annotations

import datetime
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from beancount.core import data

from beancount_stripe.config import ClientConfig

DEFAULT_OVERLAP = datetime.timedelta(days=2)


API_BASE_ENV = "BEANCOUNT_STRIPE_API_BASE"


RETRIES_ENV = "BEANCOUNT_STRIPE_RETRIES"


DEFAULT_RETRIES = 6


STRIPE_EPOCH = 1262304000  # 2010-01-01: no Stripe account has older transactions


UNTIED_EXIT = 6  # entries written, but no balance assertion: the archive disagrees with Stripe


Progress = Callable[[str, int, int], None]  # (client id, months done, months total)


@dataclass
class FetchResult:
    """What one fetch saw: transactions by id, requests made, months fetched/skipped."""

    transactions: dict[str, dict[str, Any]] = field(default_factory=dict)  # with keep=True
    count: int = 0  # transactions fetched (kept or not)
    payouts: dict[str, dict[str, Any]] = field(default_factory=dict)  # fetched payout BTs (kept)
    newest: tuple[int, str] | None = None  # (created, id) of the newest one fetched
    months_fetched: int = 0
    months_skipped: int = 0
    changed_files: list[Path] = field(default_factory=list)


@dataclass
class SyncReport:
    """The outcome of syncing one client, for the CLI summary, Fava, and tests."""

    client: ClientConfig
    fetched: int = 0
    booked: list[data.Transaction] = field(default_factory=list)
    by_type: Counter[str] = field(default_factory=Counter)
    flagged: int = 0
    stripe_balance: dict[str, int] = field(default_factory=dict)  # minor units, per currency
    assertions: list[data.Balance] = field(default_factory=list)
    assertion_date: datetime.date | None = None
    warnings: list[str] = field(default_factory=list)
    changed_files: list[Path] = field(default_factory=list)
    text: str = ""  # what was (or, with dry_run, would be) appended
    requests: int = 0
    months_skipped: int = 0
    dry_run: bool = False
    rules_files: int = 0  # rules files the client uses (its own, then shared)
    ruled: int = 0  # booked entries whose counter-account a rule decided (not uncategorized)
    rule_hits: Counter[str] = field(default_factory=Counter)  # rule name → entries it decided
    # New entries: how many, and per counter-account. ``booked`` holds the entries themselves
    # only up to KEEP_BOOKED (and always in a dry run): a backfill streams them to the file.
    booked_count: int = 0
    by_account: Counter[str] = field(default_factory=Counter)
    # Stripe's balance minus the balance the archive implies, per currency, when they still
    # differ after re-fetching (minor units; empty when the books tie out). No assertion then.
    untied: dict[str, int] = field(default_factory=dict)
    refetched_months: int = 0  # months fetched again to find transactions the archive lacked
    period: tuple[datetime.date, datetime.date] | None = None  # first and last archived days
    # summary modes: net per currency (minor units) of the transactions left in the archive for
    # a later day or payout (summary.py); the ledger's clearing + this = Stripe's balance
    waiting: dict[str, int] = field(default_factory=dict)
    waiting_count: int = 0

    @property
    def exit_code(self) -> int:
        """0, or ``UNTIED_EXIT`` when the books do not tie out with Stripe's balance."""
        return UNTIED_EXIT if self.untied else 0


KEEP_BOOKED = 10_000  # SyncReport.booked/text hold the entries up to this many (memory)
