"""The balance the archive implies, the re-fetch that finds what a complete month lacked, and
the balance assertion: a sync never writes one that fails."""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from typing import Any
from zoneinfo import ZoneInfo

from beancount_stripe import (
    archive,
    currency,
)
from beancount_stripe.config import ClientConfig
from beancount_stripe.stripe_api import StripeGateway
from beancount_stripe.sync.report import (
    SyncReport,
)
from beancount_stripe.sync.timeline import (
    _local,
    month_of,
    plan_windows,
    start_of_day,
)


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
