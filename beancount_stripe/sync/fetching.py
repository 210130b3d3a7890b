"""Fetching into the archive and reading it back: month windows, the balance read at one
instant with the transactions, payout contents, and ``fetch_client`` for beangulp users."""

from __future__ import annotations

import datetime
import time
from collections.abc import Container, Mapping
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from beancount_stripe import (
    archive,
    atomic,
    ledger,
)
from beancount_stripe.backfill import default_workers, fetch_windows
from beancount_stripe.config import ClientConfig
from beancount_stripe.errors import (
    LedgerError,
)
from beancount_stripe.stripe_api import StripeGateway
from beancount_stripe.sync.gateway import (
    gateway_for,
    verify_account,
)
from beancount_stripe.sync.report import (
    DEFAULT_OVERLAP,
    STRIPE_EPOCH,
    FetchResult,
    Progress,
)
from beancount_stripe.sync.timeline import (
    month_of,
    plan_windows,
)


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


PAYOUT_TYPES = frozenset({"payout", "payout_failure", "payout_cancel"})


def fetch_payout_contents(
    client: ClientConfig,
    gateway: StripeGateway,
    known: Mapping[str, Mapping[str, Any]],
    *,
    workers: int | None = None,
) -> list[Path]:
    """Record what each payout settles (issue 8), beside the archive; see reconcile.py.

    ``known`` holds the new and recent transactions; the first time (no payouts recorded yet)
    the payouts of the whole archive are added, read month by month (only they are kept).
    Payouts are fetched ``workers`` at a time (default: enough to reach the rate limit).
    """
    from beancount_stripe import reconcile

    if not archive.payouts_path(client.archive_dir).exists():
        everything: dict[str, Mapping[str, Any]] = {}
        for path, rows in _archive_months(client, {}).values():
            everything.update((bt["id"], bt) for bt in _month_rows(path, rows) if _is_payout(bt))
        known = {**everything, **known}
    return reconcile.record_payout_contents(client, gateway, known, workers=workers).changed_files


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
