"""Fetch month windows at the rate limit: many pages in flight, windows split by observed density.

Cursor paging is sequential within a window, so a month fetched as one window keeps one request
in flight however many pages it holds. Here every page is its own job on a thread pool, and the
first page of a range tells its density: 100 transactions covering the newest ``s`` seconds of
the range mean about ``100 × span / s`` in the rest, which is then cut into pieces of a few pages
each, fetched side by side (a piece that turns out denser splits again). The ranges overlap by
one second at each cut so transactions sharing the cut's second are never missed; duplicates
merge by id. All jobs share the gateway's one rate limiter.

Months are still the unit of the archive: a month is written (atomically, by ``archive``) as
soon as its last piece lands, and jobs of older months go first, so only a few months are ever
held in memory. When a job fails for good, nothing new is started: the jobs already in flight
finish, finished months stay written (the next run resumes), and the first error is raised.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Protocol

from beancount_stripe.stripe_api import PAGE_SIZE, StripeGateway

PAGES_PER_PIECE = 8  # fewer: more requests wasted on part-filled last pages; more: less parallel
MAX_PIECES = 64


class MonthWindow(Protocol):
    month: str
    gte: int
    lt: int
    complete_after: int


@dataclass
class _Range:
    """One piece of a month window, paged from its newest end."""

    month: int  # index into the windows
    gte: int
    lt: int
    cursor: str | None = None
    seen: set[str] = field(default_factory=set)
    pages: int = 0


@dataclass
class _Month:
    window: MonthWindow
    rows: dict[str, dict[str, Any]] = field(default_factory=dict)
    open_ranges: int = 1


def default_workers(rate_limit: float | None) -> int:
    """Threads enough to keep ``rate_limit`` requests/s busy at up to ~0.5 s per request."""
    if not rate_limit:
        return 16
    return max(4, min(64, math.ceil(rate_limit / 2)))


def split(gte: int, lt: int, oldest: int, newest_span: int, got: int) -> list[tuple[int, int]]:
    """Pieces of [gte, oldest + 1) sized to about ``PAGES_PER_PIECE`` pages each.

    ``got`` transactions covered the newest ``newest_span`` seconds; the rest is assumed as
    dense. One piece (no split) when the rest looks small or cannot be cut.
    """
    rest = oldest + 1 - gte
    if rest < 2:
        return []
    estimate = got * rest / max(1, newest_span)
    pieces = min(MAX_PIECES, rest, math.ceil(estimate / (PAGE_SIZE * PAGES_PER_PIECE)))
    if pieces < 2:
        return []
    bounds = [gte + rest * i // pieces for i in range(pieces + 1)]
    return [(bounds[i], bounds[i + 1]) for i in range(pieces) if bounds[i] < bounds[i + 1]]


def fetch_windows(
    gateway: StripeGateway,
    windows: list[MonthWindow],
    on_month: Callable[[MonthWindow, list[dict[str, Any]]], None],
    *,
    workers: int,
) -> None:
    """Fetch every window; call ``on_month(window, rows)`` (in this thread) as each completes."""
    months = [_Month(w) for w in windows]
    ready: list[tuple[int, int, _Range]] = []  # (month, order, range): older months first
    order = itertools.count()

    def push(r: _Range) -> None:
        heapq.heappush(ready, (r.month, next(order), r))

    for i, w in enumerate(windows):
        push(_Range(i, w.gte, w.lt))

    def page(r: _Range) -> tuple[list[dict[str, Any]], bool]:
        return gateway.balance_transactions_page(
            created_gte=r.gte,
            created_lt=r.lt,
            starting_after=r.cursor,
            seen=r.seen,
            page_no=r.pages + 1,
        )

    error: BaseException | None = None
    running: dict[Future[tuple[list[dict[str, Any]], bool]], _Range] = {}
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        while running or (ready and error is None):
            while ready and error is None and len(running) < workers:
                r = heapq.heappop(ready)[2]
                running[pool.submit(page, r)] = r
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                r = running.pop(fut)
                try:
                    items, has_more = fut.result()
                except BaseException as e:  # re-raised once in-flight jobs end
                    error = error or e
                    continue
                if error is not None:
                    continue
                month = months[r.month]
                for bt in items:
                    month.rows[bt["id"]] = bt
                r.pages += 1
                if has_more:
                    oldest = items[-1]["created"]
                    first = r.pages == 1
                    pieces = split(r.gte, r.lt, oldest, r.lt - oldest, len(items)) if first else []
                    if pieces:
                        month.open_ranges += len(pieces) - 1
                        for gte, lt in pieces:
                            push(_Range(r.month, gte, lt))
                    else:
                        r.cursor = items[-1]["id"]
                        push(r)
                    continue
                month.open_ranges -= 1
                if month.open_ranges == 0:
                    rows = list(month.rows.values())
                    month.rows = {}
                    on_month(month.window, rows)
    if error is not None:
        raise error
