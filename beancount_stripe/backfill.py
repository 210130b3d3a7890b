"""Fetch month windows at the rate limit: many pages in flight, windows split by observed density.

Cursor paging is sequential within a window, so a month fetched as one window keeps one request
in flight however many pages it holds. Here every page is its own job on a thread pool, and the
first page of a range tells its density: 100 transactions covering the newest ``s`` seconds of
the range mean about ``100 × span / s`` in the rest, which is then cut into pieces of a few pages
each, fetched side by side (a piece that turns out denser splits again). The ranges overlap by
one second at each cut so transactions sharing the cut's second are never missed; duplicates
merge by id. All jobs share the gateway's one rate limiter.

Months are still the unit of the archive: a month is written (atomically, by ``archive``) as
soon as the last range overlapping it lands, and older ranges go first, so only a few months are
ever held in memory. Near the end, when fewer ranges are left than threads, a range still paging
is cut again, finer, so its last pages are not fetched one after another at the latency. When a
job fails for good, nothing new is started: the jobs already in flight finish, finished months
stay written (the next run resumes), and the first error is raised.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Protocol

from beancount_stripe.stripe_api import PAGE_SIZE, StripeGateway

PAGES_PER_PIECE = 8  # fewer: more requests wasted on part-filled last pages; more: less parallel
TAIL_PAGES_PER_PIECE = 2  # near the end, when threads would wait, what is left is cut finer
MAX_PIECES = 64
MAX_QUEUED_WRITES = 4  # months waiting for the archive writer; bounds what is held in memory
# ... and their transactions (~5 KB each as parsed JSON): a month of a 1M-transaction history
# holds ~10k, so four of them waiting for the writer held ~200 MB. With this, the one being
# written and one more; fetching goes on meanwhile (the writer is the slower part there).
MAX_QUEUED_ROWS = 16_000


class MonthWindow(Protocol):
    month: str
    gte: int
    lt: int
    complete_after: int


@dataclass
class _Range:
    """A time range paged from its newest end; it may span (parts of) several month windows."""

    gte: int
    lt: int
    cursor: str | None = None
    seen: set[str] = field(default_factory=set)
    pages: int = 0


def default_workers(rate_limit: float | None) -> int:
    """Threads enough to keep ``rate_limit`` requests/s busy at up to ~0.5 s per request."""
    if not rate_limit:
        return 16
    return max(4, min(64, math.ceil(rate_limit / 2)))


def split(
    gte: int,
    lt: int,
    oldest: int,
    newest_span: int,
    got: int,
    *,
    pages_per_piece: int = PAGES_PER_PIECE,
    max_pieces: int = MAX_PIECES,
) -> list[tuple[int, int]]:
    """Pieces of [gte, oldest + 1) sized to about ``pages_per_piece`` pages each.

    ``got`` transactions covered the newest ``newest_span`` seconds; the rest is assumed as
    dense. One piece (no split) when the rest looks small or cannot be cut.
    """
    rest = oldest + 1 - gte
    if rest < 2:
        return []
    estimate = got * rest / max(1, newest_span)
    pieces = min(max_pieces, rest, math.ceil(estimate / (PAGE_SIZE * pages_per_piece)))
    if pieces < 2:
        return []
    bounds = [gte + rest * i // pieces for i in range(pieces + 1)]
    return [(bounds[i], bounds[i + 1]) for i in range(pieces) if bounds[i] < bounds[i + 1]]


def _too_many(queued: list[int]) -> bool:
    return len(queued) > MAX_QUEUED_WRITES or sum(queued) > MAX_QUEUED_ROWS


def fetch_windows(
    gateway: StripeGateway,
    windows: list[MonthWindow],
    on_month: Callable[[MonthWindow, list[dict[str, Any]]], None],
    *,
    workers: int,
) -> None:
    """Fetch every window; call ``on_month(window, rows)`` (in this thread) as each completes.

    ``windows`` are sorted and disjoint. Adjacent ones start as one range, so a sparse history
    costs a few requests, not one per month; the density of each range's first page decides
    how it is split.
    """
    windows = sorted(windows, key=lambda w: w.gte)
    starts = [w.gte for w in windows]
    rows: list[dict[str, dict[str, Any]]] = [{} for _ in windows]
    open_ranges = [0] * len(windows)  # ranges not yet finished that overlap each window
    ready: list[tuple[int, int, _Range]] = []  # (gte, order, range): older ranges first
    order = itertools.count()

    def overlapping(r: _Range) -> range:
        first = max(0, bisect.bisect_right(starts, r.gte) - 1)
        last = bisect.bisect_left(starts, r.lt)
        return range(first, last)

    def push(r: _Range, *, new: bool) -> None:
        if new:
            for i in overlapping(r):
                open_ranges[i] += 1
        heapq.heappush(ready, (r.gte, next(order), r))

    writer = ThreadPoolExecutor(max_workers=1)  # months are written in order, off this thread
    writes: list[Future[None]] = []
    queued: list[int] = []  # transactions of each write in ``writes``

    def finish(r: _Range) -> None:
        for i in overlapping(r):
            open_ranges[i] -= 1
            if open_ranges[i] == 0:
                got, rows[i] = list(rows[i].values()), {}
                writes.append(writer.submit(on_month, windows[i], got))
                queued.append(len(got))

    def written(block: bool) -> BaseException | None:
        """Collect finished writes (waiting while too many queue up); the first error."""
        while writes and (writes[0].done() or (block and _too_many(queued))):
            queued.pop(0)
            e = writes.pop(0).exception()
            if e is not None:
                return e
        return None

    merged: list[_Range] = []
    for w in windows:
        if merged and merged[-1].lt == w.gte:
            merged[-1].lt = w.lt
        else:
            merged.append(_Range(w.gte, w.lt))
    for r in merged:
        push(r, new=True)

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
    with writer, ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        while running or (ready and error is None):
            error = error or written(block=True)
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
                for bt in items:
                    i = bisect.bisect_right(starts, bt["created"]) - 1
                    if 0 <= i < len(windows) and bt["created"] < windows[i].lt:
                        rows[i][bt["id"]] = bt
                r.pages += 1
                if has_more:
                    oldest = items[-1]["created"]
                    spare = workers - len(running) - len(ready)
                    if r.pages == 1:
                        pieces = split(r.gte, r.lt, oldest, r.lt - oldest, len(items))
                    elif spare > 0:  # the tail: threads would wait, so cut what is left finer
                        pieces = split(
                            r.gte,
                            r.lt,
                            oldest,
                            r.lt - oldest,
                            r.pages * PAGE_SIZE,
                            pages_per_piece=TAIL_PAGES_PER_PIECE,
                            max_pieces=min(MAX_PIECES, spare + 1),
                        )
                    else:
                        pieces = []
                    if pieces:
                        for gte, lt in pieces:
                            push(_Range(gte, lt), new=True)
                        finish(r)
                    else:
                        r.cursor = items[-1]["id"]
                        push(r, new=False)
                    continue
                finish(r)
        while writes and error is None:
            error = writes.pop(0).exception()
    if error is not None:
        raise error
