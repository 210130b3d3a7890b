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
"""

from __future__ import annotations

import datetime
import os
import time
from collections import Counter
from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from beancount.core import data

from beancount_stripe import (
    archive,
    atomic,
    booking,
    capital,
    currency,
    ledger,
    privacy,
    rules,
    summary,
    sync_state,
)
from beancount_stripe.backfill import default_workers, fetch_windows
from beancount_stripe.config import ClientConfig, resolve_key
from beancount_stripe.errors import (
    BeancountStripeError,
    ConfigError,
    LedgerError,
    StripeAccessError,
)
from beancount_stripe.spool import Spool
from beancount_stripe.stripe_api import StripeGateway

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


# -- connecting -------------------------------------------------------------------------------


def gateway_for(
    client: ClientConfig,
    *,
    api_base: str | None = None,
    rate_limit: float | None = None,
    max_retries: int | None = None,
    backoff: float = 0.5,
) -> StripeGateway:
    """A gateway for ``client`` with its key read from its configured source.

    ``rate_limit=0`` disables the client-side limit (benchmarks). Without it, the client's
    ``rate_limit:``, else Stripe's read limits with room for the client's other integrations:
    80 requests/s for live keys (Stripe allows 100), 20 for test keys (25). ``max_retries``
    defaults to ``$BEANCOUNT_STRIPE_RETRIES``, else 6.
    """
    if max_retries is None:
        max_retries = retries_from_env()
    base = api_base or os.environ.get(API_BASE_ENV) or client.api_base
    key = resolve_key(client)
    if rate_limit is None:
        rate_limit = client.rate_limit
    if rate_limit is None:
        rate_limit = default_rate_limit(key)
    return StripeGateway(
        key,
        client_id=client.id,
        api_base=base,
        stripe_account=client.stripe_account if client.connect else None,
        rate_limit=rate_limit,
        max_retries=max_retries,
        backoff=backoff,
        minimise=privacy.minimiser_for(client),
    )


def default_rate_limit(key: str) -> float:
    """Stripe's read limit for the key's mode, with room for the client's other integrations."""
    return 80.0 if "_live_" in key else 20.0


def retries_from_env() -> int:
    """``$BEANCOUNT_STRIPE_RETRIES`` (0–20), else the default: how often a request is retried."""
    text = os.environ.get(RETRIES_ENV, "").strip()
    if not text:
        return DEFAULT_RETRIES
    if not text.isdigit() or int(text) > 20:
        raise ConfigError(
            f"${RETRIES_ENV} is {text!r}, not a whole number from 0 to 20",
            where="environment",
            fix=f"unset it (default {DEFAULT_RETRIES}) or set it to e.g. 2",
        )
    return int(text)


def verify_account(gateway: StripeGateway, client: ClientConfig) -> dict[str, Any]:
    """Refuse unless the key opens exactly the configured account (and platform, if given)."""
    if client.connect and client.platform_account:
        platform = gateway.account(as_connected=False)
        if platform.get("id") != client.platform_account:
            raise StripeAccessError(
                f"the platform key opens {platform.get('id')}, but the configuration expects "
                f"platform {client.platform_account}; nothing was written",
                where=f"client {client.id}",
                fix="configure the right key source for this client, or correct `platform_account`",
            )
    acct = gateway.account()
    if acct.get("id") != client.stripe_account:
        raise StripeAccessError(
            f"the key opens Stripe account {acct.get('id')}, but client {client.id} expects "
            f"{client.stripe_account}; refusing to book another account's money into these "
            "books. Nothing was written",
            where=f"client {client.id}",
            fix="give this client its own key (check the env var / file / keyring entry), or "
            "correct `stripe_account` if the account id in the config is wrong",
        )
    return acct


# -- time helpers ------------------------------------------------------------------------------


def _local(ts: int, tz: ZoneInfo) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(ts, tz)


def month_of(ts: int, tz: ZoneInfo) -> str:
    return _local(ts, tz).strftime("%Y-%m")


def _month_start(year: int, month: int, tz: ZoneInfo) -> int:
    return int(datetime.datetime(year, month, 1, tzinfo=tz).timestamp())


def _next_month(year: int, month: int) -> tuple[int, int]:
    return (year + 1, 1) if month == 12 else (year, month + 1)


def start_of_day(day: datetime.date, tz: ZoneInfo) -> int:
    return int(datetime.datetime(day.year, day.month, day.day, tzinfo=tz).timestamp())


@dataclass(frozen=True)
class Window:
    month: str
    gte: int
    lt: int
    complete_after: int  # the month's end + overlap: fetched after this, the month is complete


def plan_windows(
    lower: int,
    now: int,
    tz: ZoneInfo,
    complete_months: set[str],
    newest_in_month: Mapping[str, int],
    overlap: datetime.timedelta,
) -> tuple[list[Window], int]:
    """Month windows covering [lower, now], minus complete months; (windows, months skipped).

    A month with archived transactions is fetched from the start of the day ``overlap`` before its
    newest one: earlier transactions are already in the archive.
    """
    first = _local(lower, tz)
    year, month = first.year, first.month
    windows: list[Window] = []
    skipped = 0
    while True:
        start = _month_start(year, month, tz)
        if start > now:
            break
        ny, nm = _next_month(year, month)
        end = _month_start(ny, nm, tz)
        key = f"{year:04d}-{month:02d}"
        if key in complete_months:
            skipped += 1
        else:
            gte = max(start, _day_floor(lower, tz))
            if key in newest_in_month:
                resume = _day_floor(newest_in_month[key] - int(overlap.total_seconds()), tz)
                gte = max(gte, resume)
            windows.append(Window(key, gte, end, complete_after=end + int(overlap.total_seconds())))
        year, month = ny, nm
    return windows, skipped


def _day_floor(ts: int, tz: ZoneInfo) -> int:
    return start_of_day(_local(ts, tz).date(), tz)


# -- fetch ---------------------------------------------------------------------------------------


def _archive_state(client: ClientConfig) -> tuple[set[str], dict[str, Path]]:
    complete: set[str] = set()
    files: dict[str, Path] = {}
    for month, path, header in archive.month_headers(
        client.archive_dir, client.id, client.stripe_account
    ):
        files[month] = path
        if header.complete:
            complete.add(month)
    return complete, files


def read_archive(
    client: ClientConfig, *, booked: Container[str] = frozenset(), full_from: str = ""
) -> dict[str, dict[str, Any]]:
    """Archived transactions of ``client`` by id.

    Months from ``full_from`` on are read whole (the balance assertion needs every recent
    transaction); older months only yield transactions not in ``booked``. Most lines of an old
    month are then skipped by their id alone, which keeps a no-op sync of a long history fast.
    """
    out: dict[str, dict[str, Any]] = {}
    for month, path in archive.month_files(client.archive_dir):
        rows = (
            archive.read_transactions(path)
            if month >= full_from
            else archive.read_transactions(path, skip_ids=booked)
        )
        for bt in rows:
            out[bt["id"]] = bt
    return out


def fetch(
    client: ClientConfig,
    gateway: StripeGateway,
    *,
    lower: int,
    now: int,
    overlap: datetime.timedelta = DEFAULT_OVERLAP,
    write: bool = True,
    workers: int | None = None,
    progress: Progress | None = None,
    keep: bool = True,
) -> FetchResult:
    """Fetch every month window not yet complete in the archive; write each month as it lands.

    Pages run concurrently under the gateway's rate limit (``backfill``); ``workers`` defaults
    to enough threads to reach it. With ``keep=False`` the fetched transactions are only
    counted (a long backfill is streamed to the archive, not held in memory).
    """
    tz = ZoneInfo(client.timezone)
    complete, files = _archive_state(client)
    newest: dict[str, int] = {}
    for month, path in files.items():
        if month in complete:
            continue
        bts = archive.read_transactions(path)
        if bts:
            newest[month] = max(b["created"] for b in bts)
    windows, skipped = plan_windows(lower, now, tz, complete, newest, overlap)
    result = FetchResult(months_skipped=skipped)
    done = 0
    if progress:
        progress(client.id, 0, len(windows))

    def landed(window: Any, got: list[dict[str, Any]]) -> None:
        nonlocal done
        # A month is only complete once fetched after its end plus the overlap.
        finished = now >= window.complete_after
        by_month: dict[str, list[dict[str, Any]]] = {}
        for bt in got:
            by_month.setdefault(month_of(bt["created"], tz), []).append(bt)
            if keep:
                result.transactions[bt["id"]] = bt
            if bt["type"] in PAYOUT_TYPES:
                result.payouts[bt["id"]] = bt
            result.count += 1
            if result.newest is None or (bt["created"], bt["id"]) > result.newest:
                result.newest = (bt["created"], bt["id"])
        if write and (got or window.month in files):
            for month, rows in by_month.items() or [(window.month, [])]:
                if archive.write_month(
                    client.archive_dir,
                    month,
                    client.id,
                    client.stripe_account,
                    rows,
                    complete=finished and month == window.month,
                ):
                    result.changed_files.append(archive.month_path(client.archive_dir, month))
        result.months_fetched += 1
        done += 1
        if progress:
            progress(client.id, done, len(windows))

    if workers is None:
        workers = default_workers(gateway.limiter.per_second)
    fetch_windows(gateway, list(windows), landed, workers=workers)
    return result


def settle_balance(
    client: ClientConfig,
    gateway: StripeGateway,
    known: dict[str, dict[str, Any]],
    *,
    write: bool,
    max_rounds: int = 5,
) -> tuple[dict[str, int], list[dict[str, Any]]]:
    """Read /v1/balance so that it matches exactly the transactions in ``known``.

    Returns (available + pending per currency, transactions that arrived meanwhile). The caller
    adds those to what it books.
    """
    tz = ZoneInfo(client.timezone)
    arrived: list[dict[str, Any]] = []
    for _ in range(max_rounds):
        bal = gateway.balance()
        totals: dict[str, int] = {}
        for part in ("available", "pending"):
            for item in bal.get(part) or []:
                cur = str(item["currency"]).lower()
                totals[cur] = totals.get(cur, 0) + int(item["amount"])
        newest = max(known.values(), key=lambda b: (b["created"], b["id"]), default=None)
        if newest is None:
            return totals, arrived
        newer = [
            bt
            for bt in gateway.balance_transactions(ending_before=newest["id"])
            if bt["id"] not in known
        ]
        if not newer:
            return totals, arrived
        for bt in newer:
            known[bt["id"]] = bt
        arrived.extend(newer)
        if write:
            by_month: dict[str, list[dict[str, Any]]] = {}
            for bt in newer:
                by_month.setdefault(month_of(bt["created"], tz), []).append(bt)
            for month, rows in by_month.items():
                archive.write_month(
                    client.archive_dir,
                    month,
                    client.id,
                    client.stripe_account,
                    rows,
                    complete=False,
                )
    raise LedgerError(
        "Stripe kept receiving new transactions while the balance was read; nothing was booked",
        where=f"client {client.id}",
        fix="run the sync again",
    )


# -- tie-out ------------------------------------------------------------------------------------


def implied_totals(
    client: ClientConfig, unwritten: Iterable[Mapping[str, Any]] = ()
) -> dict[str, int]:
    """Σ net per currency of the whole archive, plus ``unwritten`` transactions (a dry run).

    Written archives answer from each month's header, so this reads a few hundred bytes a month.
    """
    tz = ZoneInfo(client.timezone)
    pending: dict[str, list[Mapping[str, Any]]] = {}
    for bt in unwritten:
        pending.setdefault(month_of(bt["created"], tz), []).append(bt)
    totals: dict[str, int] = {}

    def add(nets: Mapping[str, int]) -> None:
        for cur, value in nets.items():
            totals[cur] = totals.get(cur, 0) + value

    for month, path, header in archive.month_headers(
        client.archive_dir, client.id, client.stripe_account
    ):
        extra = pending.pop(month, None)
        if extra is None:
            add(archive.month_nets(path, header))
        else:
            rows = {bt["id"]: bt for bt in archive.read_transactions(path)}
            rows.update((bt["id"], bt) for bt in extra)
            add(archive.sum_nets(rows.values()))
    for rows in pending.values():
        add(archive.sum_nets({bt["id"]: bt for bt in rows}.values()))
    return totals


def differences(stripe: Mapping[str, int], implied: Mapping[str, int]) -> dict[str, int]:
    """Stripe's balance minus the implied one, for each currency where they differ."""
    return {
        cur: stripe.get(cur, 0) - implied.get(cur, 0)
        for cur in sorted(set(stripe) | set(implied))
        if stripe.get(cur, 0) != implied.get(cur, 0)
    }


def repair_tie_out(
    client: ClientConfig,
    gateway: StripeGateway,
    stripe_totals: Mapping[str, int],
    known: dict[str, dict[str, Any]],
    *,
    lower: int,
    now: int,
    overlap: datetime.timedelta,
    write: bool,
    unwritten: Mapping[str, dict[str, Any]] | None = None,
) -> tuple[dict[str, int], int]:
    """Re-fetch months, newest first and complete ones included, until the archive ties out.

    A transaction Stripe adds late to a month already marked complete is otherwise never
    fetched, and the next balance assertion would fail. Each month is fetched at most once;
    new transactions join ``known`` (and the archive, when writing). Returns (remaining
    differences, months fetched).
    """
    tz = ZoneInfo(client.timezone)
    pending = dict(unwritten or {})  # fetched in a dry run: not in the archive files
    windows, _ = plan_windows(lower, now, tz, set(), {}, overlap)
    fetched = 0
    diff = differences(stripe_totals, implied_totals(client, pending.values()))
    for window in reversed(windows):
        if not diff:
            break
        got = list(gateway.balance_transactions(created_gte=window.gte, created_lt=window.lt))
        fetched += 1
        for bt in got:
            known.setdefault(bt["id"], bt)
        if write:
            if got:
                archive.write_month(
                    client.archive_dir,
                    window.month,
                    client.id,
                    client.stripe_account,
                    got,
                    complete=now >= window.complete_after,
                )
        else:
            pending.update((bt["id"], bt) for bt in got)
        diff = differences(stripe_totals, implied_totals(client, pending.values()))
    return diff, fetched


# -- sync ----------------------------------------------------------------------------------------


def assertion_cutoff(
    newest_created: int, tz: ZoneInfo, overlap: datetime.timedelta
) -> datetime.date:
    """The day a balance assertion is dated: no later fetch can book anything before it."""
    return _local(newest_created - int(overlap.total_seconds()), tz).date()


def derive_assertions(
    client: ClientConfig,
    all_bts: Iterable[Mapping[str, Any]],
    stripe_totals: Mapping[str, int],
    cutoff: datetime.date,
) -> dict[str, int]:
    """Balance per currency at the start of ``cutoff``: Stripe's balance minus later nets."""
    tz = ZoneInfo(client.timezone)
    start = start_of_day(cutoff, tz)
    totals = {cur: int(v) for cur, v in stripe_totals.items()}
    for bt in all_bts:
        cur = str(bt["currency"]).lower()
        totals.setdefault(cur, 0)
        if bt["created"] >= start:
            totals[cur] -= int(bt["net"])
    return totals


def sync_client(
    client: ClientConfig,
    *,
    dry_run: bool = False,
    now: int | None = None,
    overlap: datetime.timedelta = DEFAULT_OVERLAP,
    api_base: str | None = None,
    gateway: StripeGateway | None = None,
    progress: Progress | None = None,
    workers: int | None = None,
    rate_limit: float | None = None,
    via: str = "python",
) -> SyncReport:
    """Fetch, book and write one client. See the module docstring for the order of steps.

    ``rate_limit`` (requests/s) overrides the client's; see ``gateway_for``. ``via`` says who
    runs it (cli, cron, fava, demo, python): every run that may write, and every failure, is
    recorded in the client's sync state file (``sync_state``).
    """
    started = sync_state.now_iso()
    try:
        with ledger.locked(client.ledger):
            report = _sync_locked(
                client,
                dry_run=dry_run,
                now=now,
                overlap=overlap,
                api_base=api_base,
                gateway=gateway,
                progress=progress,
                workers=workers,
                rate_limit=rate_limit,
            )
    except BeancountStripeError as error:
        if not dry_run:
            sync_state.record_sync(client, via=via, started=started, error=error)
        raise
    if not dry_run:
        sync_state.record_sync(client, via=via, started=started, report=report)
    return report


def _sync_locked(
    client: ClientConfig,
    *,
    dry_run: bool,
    now: int | None,
    overlap: datetime.timedelta,
    api_base: str | None,
    gateway: StripeGateway | None,
    progress: Progress | None,
    workers: int | None,
    rate_limit: float | None = None,
) -> SyncReport:
    report = SyncReport(client=client, dry_run=dry_run)
    tz = ZoneInfo(client.timezone)
    now = int(time.time()) if now is None else now

    # Read the ledger first: a broken config or ledger must fail before any network traffic.
    state = ledger.scan(client.ledger, client.output)
    old_summaries = summary.add_covered(client, state)  # what summary entries hold is booked
    ours = [client.capital.output] if client.capital is not None else []
    ledger.check_included(client.ledger, client.output, state, ours=ours)
    ruleset = rules.ruleset_for(client)  # invalid rules also fail before any network traffic
    if not dry_run:  # an unwritable folder fails now, not after the whole history is fetched
        atomic.check_writable(
            client.ledger, client.output, archive.month_path(client.archive_dir, "0000-00")
        )

    gw = gateway or gateway_for(client, api_base=api_base, rate_limit=rate_limit)
    account = verify_account(gw, client)

    newest_date = state.newest_date
    if newest_date is not None:
        lower = start_of_day(newest_date, tz) - int(overlap.total_seconds())
    else:
        lower = int(account.get("created") or STRIPE_EPOCH)
    fetched = fetch(
        client,
        gw,
        lower=lower,
        now=now,
        overlap=overlap,
        write=not dry_run,
        workers=workers,
        progress=progress,
        keep=dry_run,  # a real sync streams: what it fetched is read back month by month
    )
    report.fetched = fetched.count
    report.months_skipped = fetched.months_skipped
    report.changed_files.extend(fetched.changed_files)

    # Only the recent months are held in memory: the balance and its assertion need them; older
    # months are read one at a time while booking (see ``_book_streamed``).
    extra: dict[str, dict[str, Any]] = dict(fetched.transactions)  # dry run: not in the archive
    known = _recent_transactions(client, extra, overlap)
    totals, arrived = settle_balance(client, gw, known, write=not dry_run)
    report.fetched += len(arrived)
    report.stripe_balance = totals
    if dry_run:
        extra.update((b["id"], b) for b in arrived)

    # The archive must imply Stripe's balance before any assertion is written (see tie-out).
    if differences(totals, implied_totals(client, extra.values())):
        before = dict.fromkeys(known)
        report.untied, report.refetched_months = repair_tie_out(
            client,
            gw,
            totals,
            known,
            lower=int(account.get("created") or STRIPE_EPOCH),
            now=now,
            overlap=overlap,
            write=not dry_run,
            unwritten=extra,
        )
        report.fetched += len(known) - len(before)
        if dry_run:
            extra.update((i, bt) for i, bt in known.items() if i not in before)
        if report.untied:
            report.period = _archive_period(client, known.values())
            report.warnings.append(_untied_message(report))

    if not dry_run:
        payouts = {**fetched.payouts, **known}
        report.changed_files.extend(fetch_payout_contents(client, gw, payouts))
    report.requests = gw.request_count

    # Transaction mode streams: entries are booked month by month while writing (see
    # ``_book_streamed``). Summary modes group across days and payouts, so they book what the
    # ledger lacks at once; their entries are few, and what waits stays in the archive.
    plan = summary.plan_for(
        client,
        [],
        [],
        old_summaries,
        taken=state.summaries,
        now=now,
        overlap=overlap,
        uncategorized=ruleset.uncategorized,
    )
    streamed = client.booking.mode == "transaction"
    entries: list[data.Transaction] = []
    if not streamed:
        new_bts = [
            bt
            for path, rows in _archive_months(client, extra).values()
            for bt in _month_rows(path, rows, state.stripe_ids)
        ]
        # Capital CSV rows imported before their balance transaction was synced already book it.
        covered = capital.covered_by_capital(new_bts, state.capital_entries, client)
        new_bts = [bt for bt in new_bts if bt["id"] not in covered]
        for bt in new_bts:  # the assertion day may move back to the oldest waiting one
            known.setdefault(bt["id"], bt)
        pairs = rules.book_with_rules(new_bts, client, ruleset)
        plan = summary.plan_for(  # per day / per payout; the rest waits (summary.py)
            client,
            [entry for entry, _why in pairs],
            new_bts,
            old_summaries,
            taken=state.summaries,
            now=now,
            overlap=overlap,
            uncategorized=ruleset.uncategorized,
        )
        entries = plan.entries
        report.waiting, report.waiting_count = plan.waiting_nets(), len(plan.waiting)
        report.rules_files = len(ruleset.files)
        for _entry, why in pairs:
            rule = why.account_rule
            if rule is not None and ruleset.uncategorized not in why.accounts:
                report.rule_hits[rule.name] += 1
        report.ruled = sum(report.rule_hits.values())
        report.booked = entries
        report.booked_count = len(entries)
        report.by_account.update(e.postings[-1].account for e in entries)
        report.by_type = Counter(str(bt["type"]) for bt in new_bts)
        report.flagged = sum(1 for e in entries if e.flag == "!")

    newest = max((bt["created"] for bt in known.values()), default=None)
    assertions: list[data.Balance] = []
    if newest is not None and not report.untied:
        cutoff = plan.assertion_day(assertion_cutoff(newest, tz, overlap), tz)
        report.assertion_date = cutoff
        if plan.summarizing:
            expected = plan.expected_balances(known.values(), totals, cutoff, tz)
        else:
            expected = derive_assertions(client, known.values(), totals, cutoff)
        for bal in booking.balance_assertions(client, cutoff, expected):
            key = (bal.date, bal.account, bal.amount.currency)
            if key in state.balances:
                if _norm(state.balances[key]) != _norm(str(bal.amount.number)):
                    report.warnings.append(
                        f"{bal.date} balance {bal.account} is {state.balances[key]} "
                        f"{bal.amount.currency} in the ledger, Stripe now says "
                        f"{bal.amount.number} {bal.amount.currency}"
                    )
                continue
            assertions.append(bal)
    report.assertions = assertions
    del known

    main_text = None
    if not dry_run:
        main_text = ledger.ensure_main(
            client.ledger, client.output, client.name, client.operating_currency
        )
    header = ledger.OUTPUT_HEADER.format(name=client.name, account=client.stripe_account)
    if not streamed:
        blocks: list[str] = []
        if entries or assertions:
            first = min([e.date for e in entries] + [a.date for a in assertions])
            used = {p.account for e in entries for p in e.postings}
            used.update(a.account for a in assertions)
            opens = ledger.open_directives(used, state.open_accounts, first)
            used_currencies = {p.units.currency for e in entries for p in e.postings}
            used_currencies.update(a.amount.currency for a in assertions)
            commodities = ledger.commodity_directives(used_currencies, state.commodities, first)
            if commodities:
                blocks.append(ledger.format_entries(commodities))
            if opens:
                blocks.append(ledger.format_entries(opens))
            if entries:
                blocks.append(ledger.format_entries(entries))
            if assertions:
                blocks.append(ledger.format_entries(assertions))
        report.text = "\n".join(blocks)
        if dry_run:
            return report
        if plan.new and summary.write_index(client, plan.new):  # before the ledger: summary.py
            report.changed_files.append(summary.index_path(client.archive_dir))
        if blocks and ledger.append(client.output, blocks, header):
            report.changed_files.append(client.output)
    else:
        with Spool(None if dry_run else client.output) as entries_text:
            used, used_currencies, first_date = _book_streamed(
                client, ruleset, state, extra, report, entries_text
            )
            blocks: list[str] = []
            if report.booked_count or assertions:
                dates = [a.date for a in assertions] + ([first_date] if first_date else [])
                first = min(dates)
                used.update(a.account for a in assertions)
                opens = ledger.open_directives(used, state.open_accounts, first)
                used_currencies.update(a.amount.currency for a in assertions)
                commodities = ledger.commodity_directives(used_currencies, state.commodities, first)
                if commodities:
                    blocks.append(ledger.format_entries(commodities))
                if opens:
                    blocks.append(ledger.format_entries(opens))
            tail = [ledger.format_entries(assertions)] if assertions else []
            if dry_run or report.booked_count <= KEEP_BOOKED:
                body = [entries_text.text()] if report.booked_count else []
                report.text = "\n".join(blocks + body + tail)
            if dry_run:
                return report
            if entries_text.append_to(client.output, header, blocks, tail):
                report.changed_files.append(client.output)
    # The main ledger comes second, so a crash in between leaves it missing, as before the
    # first sync; the next sync (even with nothing new) creates it.
    if main_text is not None and client.output.exists():
        atomic.write_atomic(client.ledger, main_text)
        report.changed_files.append(client.ledger)
    return report


KEEP_BOOKED = 10_000  # SyncReport.booked/text hold the entries up to this many (memory)


def _archive_months(
    client: ClientConfig, extra: Mapping[str, dict[str, Any]]
) -> dict[str, tuple[Path | None, list[dict[str, Any]]]]:
    """Every month of the archive plus ``extra`` (unwritten, dry run): (file, extra rows)."""
    tz = ZoneInfo(client.timezone)
    out: dict[str, tuple[Path | None, list[dict[str, Any]]]] = {
        month: (path, []) for month, path in archive.month_files(client.archive_dir)
    }
    for bt in extra.values():
        month = month_of(bt["created"], tz)
        out.setdefault(month, (None, []))[1].append(bt)
    return dict(sorted(out.items()))


def _month_rows(
    path: Path | None, rows: list[dict[str, Any]], skip_ids: Container[str] = frozenset()
) -> list[dict[str, Any]]:
    merged = (
        {bt["id"]: bt for bt in archive.read_transactions(path, skip_ids=skip_ids)} if path else {}
    )
    merged.update((bt["id"], bt) for bt in rows if bt["id"] not in skip_ids)
    return list(merged.values())


def _recent_transactions(
    client: ClientConfig, extra: Mapping[str, dict[str, Any]], overlap: datetime.timedelta
) -> dict[str, dict[str, Any]]:
    """The archive's transactions from the month holding the newest one's overlap on, by id.

    Enough to read the balance (newer transactions are asked for after the newest) and to date
    its assertion (only transactions after the cut-off day count).
    """
    tz = ZoneInfo(client.timezone)
    months = _archive_months(client, extra)
    out: dict[str, dict[str, Any]] = {}
    floor: str | None = None
    for month in reversed(list(months)):
        if floor is not None and month < floor:
            break
        rows = _month_rows(*months[month])
        out.update((bt["id"], bt) for bt in rows)
        if rows and floor is None:
            newest = max(bt["created"] for bt in rows)
            reach = newest - int(overlap.total_seconds()) - 2 * 86400
            floor = month_of(reach, tz)
    return out


def _book_streamed(
    client: ClientConfig,
    ruleset: rules.Ruleset,
    state: ledger.LedgerState,
    extra: Mapping[str, dict[str, Any]],
    report: SyncReport,
    out: Spool,
) -> tuple[set[str], set[str], datetime.date | None]:
    """Book every archived transaction the ledger lacks, one month at a time, into ``out``.

    Returns the accounts and currencies the entries use and their first date. Entries sort by
    (date, created, id) within a month and months are in order, so the text equals booking all
    at once.
    """
    months = _archive_months(client, extra)
    covered: set[str] = set()
    if state.capital_entries:  # Capital CSV rows imported before their BT was synced book it
        financing = [
            bt
            for path, rows in months.values()
            for bt in _month_rows(path, rows, state.stripe_ids)
            if bt["type"] in capital.KIND_OF_BT
            or bt.get("reporting_category") in capital.KIND_OF_BT
        ]
        covered = capital.covered_by_capital(financing, state.capital_entries, client)
    used: set[str] = set()
    currencies: set[str] = set()
    first: datetime.date | None = None
    report.rules_files = len(ruleset.files)
    for path, rows in months.values():
        new_bts = [
            bt for bt in _month_rows(path, rows, state.stripe_ids) if bt["id"] not in covered
        ]
        if not new_bts:
            continue
        pairs = rules.book_with_rules(new_bts, client, ruleset)
        entries = [entry for entry, _why in pairs]
        for entry, why in pairs:
            rule = why.account_rule
            if rule is not None and ruleset.uncategorized not in why.accounts:
                report.rule_hits[rule.name] += 1
            if entry.flag == "!":
                report.flagged += 1
            report.by_account[entry.postings[-1].account] += 1
            for posting in entry.postings:
                used.add(posting.account)
                currencies.add(posting.units.currency)
            first = entry.date if first is None else min(first, entry.date)
        report.by_type.update(str(bt["type"]) for bt in new_bts)
        report.booked_count += len(entries)
        if report.dry_run or report.booked_count <= KEEP_BOOKED:
            report.booked.extend(entries)
        else:
            report.booked.clear()
        out.write(ledger.format_entries(entries))
    report.ruled = sum(report.rule_hits.values())
    return used, currencies, first


PAYOUT_TYPES = frozenset({"payout", "payout_failure", "payout_cancel"})


def fetch_payout_contents(
    client: ClientConfig,
    gateway: StripeGateway,
    known: Mapping[str, Mapping[str, Any]],
) -> list[Path]:
    """Record what each payout settles (issue 8), beside the archive; see reconcile.py.

    ``known`` holds the new and recent transactions; the first time (no payouts recorded yet)
    the payouts of the whole archive are added, read month by month (only they are kept).
    """
    from beancount_stripe import reconcile

    if not archive.payouts_path(client.archive_dir).exists():
        everything: dict[str, Mapping[str, Any]] = {}
        for path, rows in _archive_months(client, {}).values():
            everything.update((bt["id"], bt) for bt in _month_rows(path, rows) if _is_payout(bt))
        known = {**everything, **known}
    return reconcile.record_payout_contents(client, gateway, known).changed_files


def _is_payout(bt: Mapping[str, Any]) -> bool:
    return bt.get("type") in PAYOUT_TYPES


def fetch_client(
    client: ClientConfig,
    *,
    now: int | None = None,
    overlap: datetime.timedelta = DEFAULT_OVERLAP,
    api_base: str | None = None,
    gateway: StripeGateway | None = None,
    progress: Progress | None = None,
    rate_limit: float | None = None,
) -> FetchResult:
    """Only fetch into the archive (for beangulp's ``import.py extract`` and Fava's Import page)."""
    now = int(time.time()) if now is None else now
    atomic.check_writable(archive.month_path(client.archive_dir, "0000-00"))
    gw = gateway or gateway_for(client, api_base=api_base, rate_limit=rate_limit)
    account = verify_account(gw, client)
    # Complete months are skipped and the others resume from their newest transaction, so
    # starting at the account's creation costs one request per month not yet complete.
    lower = int(account.get("created") or STRIPE_EPOCH)
    with ledger.locked(client.ledger):  # a sync merging the same month file must wait
        result = fetch(
            client, gw, lower=lower, now=now, overlap=overlap, progress=progress, keep=False
        )
        result.changed_files.extend(fetch_payout_contents(client, gw, result.payouts))
        return result


def _archive_period(
    client: ClientConfig, recent: Iterable[Mapping[str, Any]]
) -> tuple[datetime.date, datetime.date] | None:
    """First and last day (client's zone) of the archived transactions."""
    tz = ZoneInfo(client.timezone)
    stamps = [int(bt["created"]) for bt in recent]
    months = archive.month_files(client.archive_dir)
    if months:
        stamps.extend(int(bt["created"]) for bt in archive.read_transactions(months[0][1])[:1])
    if not stamps:
        return None
    return _local(min(stamps), tz).date(), _local(max(stamps), tz).date()


def _untied_message(report: SyncReport) -> str:
    parts = ", ".join(
        f"{currency.to_decimal(v, cur):+} {cur.upper()}" for cur, v in report.untied.items()
    )
    period = f" {report.period[0]} … {report.period[1]}" if report.period else ""
    return (
        f"the archived transactions{period} do not add up to Stripe's balance even after "
        f"fetching {report.refetched_months} month(s) again: Stripe minus archive is {parts}. "
        "The entries were written, but no balance assertion; run the sync again later, and if "
        "the difference stays, compare the period with Stripe's balance report"
    )


def _norm(number: str) -> str:
    return number.replace(",", "").strip()
