"""Payout contents: which balance transactions each payout settles, and its breakdown.

``record_payout_contents`` (called by sync after the balance transactions are fetched) records
each payout, and for an automatic one the balance transactions it settles
(``GET /v1/balance_transactions?payout=po_…``), in ``archive/payouts.ndjson``. A payout
already recorded in a final state is never fetched again; manual payouts, which Stripe does not
itemise, are recorded with ``transactions: null``.

Payouts are fetched side by side (one request or three each, at ~0.3 s per request a backfill
would otherwise spend minutes here) under the gateway's one rate limiter, but recorded strictly
in their (created, id) order: every file written, the checkpoints included, holds exactly the
first payouts of that order, whatever order the answers came in.
"""

from __future__ import annotations

import contextlib
import itertools
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from beancount_stripe import archive
from beancount_stripe.config import ClientConfig

FINAL_STATUSES = frozenset({"paid", "failed", "canceled"})
BREAKDOWN_KEYS = ("charges", "refunds", "disputes", "fees", "other")
_TRANSACTION_FIELDS = (
    "id",
    "type",
    "reporting_category",
    "created",
    "amount",
    "fee",
    "net",
    "currency",
    "description",
)
_PAYOUT_FIELDS = (
    "id",
    "amount",
    "currency",
    "created",
    "arrival_date",
    "automatic",
    "method",
    "status",
    "description",
    "statement_descriptor",
    "balance_transaction",
    "failure_balance_transaction",
    "reconciliation_status",
)
# Payouts recorded between two atomic writes (an interrupted run resumes from the last one); later
# in a long run the gap grows to half of what the run recorded, so a backfill of n payouts rewrites
# the file O(log n) times, not n / 25 times.
WRITE_EVERY = 25

# -- contents (I/O at the edge: the gateway and the archive) ---------------------------------------


@dataclass
class ContentsResult:
    """What one ``record_payout_contents`` run did."""

    recorded: int = 0  # payouts newly recorded or refreshed
    itemised: int = 0  # of those, automatic payouts whose transactions were listed
    changed_files: list[Path] = field(default_factory=list)


def _source_id(bt: Mapping[str, Any]) -> str | None:
    src = bt.get("source")
    if isinstance(src, dict):
        return str(src.get("id") or "") or None
    return str(src) if src else None


def _compact_payout(obj: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: obj.get(k) for k in _PAYOUT_FIELDS}
    trace = obj.get("trace_id")
    out["trace_id"] = trace.get("value") if isinstance(trace, dict) else trace
    return out


def _compact_transaction(bt: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: bt.get(k) for k in _TRANSACTION_FIELDS}
    out["source"] = _source_id(bt)
    return out


def record_payout_contents(
    client: ClientConfig,
    gateway: Any,
    known: Mapping[str, Mapping[str, Any]],
    *,
    write: bool = True,
    workers: int | None = None,
) -> ContentsResult:
    """Record every payout among ``known`` BTs and what each automatic one settles.

    Resumable: records are written every ``WRITE_EVERY`` payouts (or half of those recorded so
    far, if more), and a payout already recorded
    in a final state (paid, failed, canceled) with its contents is not fetched again unless a
    failure or cancel BT names it after it was recorded as paid. Up to ``workers`` payouts are
    fetched at once (default: enough to reach the gateway's rate limit); when one fails for good,
    nothing new starts, the payouts before it are recorded and written, and its error is raised.
    """
    result = ContentsResult()
    records = archive.open_payouts(client.archive_dir)  # on disk: they grow with the history
    reversed_ids = {
        _source_id(bt): str(bt["type"])
        for bt in known.values()
        if bt.get("type") in ("payout_failure", "payout_cancel")
    }
    payout_bts = sorted(
        (bt for bt in known.values() if bt.get("type") == "payout" and _source_id(bt)),
        key=lambda b: (b["created"], b["id"]),
    )
    todo: list[tuple[str, Any, Mapping[str, Any] | None]] = []
    for bt in payout_bts:
        po_id = str(_source_id(bt))
        rec = records.get(po_id)
        if rec is not None and not _needs_refresh(rec, reversed_ids.get(po_id)):
            continue
        todo.append((po_id, bt.get("source"), rec))
    if workers is None:
        from beancount_stripe.backfill import default_workers

        workers = default_workers(gateway.limiter.per_second)
    fetched = in_order(todo, lambda job: _record(*job, gateway), workers)
    with contextlib.closing(records), contextlib.closing(fetched):  # an error stops the threads
        _record_all(client, todo, fetched, records, result, write)
    return result


def _record_all(
    client: ClientConfig,
    todo: list[tuple[str, Any, Mapping[str, Any] | None]],
    fetched: Iterator[tuple[dict[str, Any], int]],
    records: archive.PayoutStore,
    result: ContentsResult,
    write: bool,
) -> None:
    """Set each fetched record in ``todo``'s order, writing a checkpoint now and then."""
    pending = 0
    for po_id, _src, _rec in todo:
        try:
            new, itemised = next(fetched)
        except Exception:
            if write and pending:  # what was fetched before the failure is kept
                _write(client, records, result)
            raise
        records[po_id] = new
        result.recorded += 1
        result.itemised += itemised
        pending += 1
        if write and pending >= max(WRITE_EVERY, result.recorded // 2):
            _write(client, records, result)
            pending = 0
    if write and pending:
        _write(client, records, result)


_Job = TypeVar("_Job")
_Out = TypeVar("_Out")


def in_order(jobs: Iterable[_Job], fn: Callable[[_Job], _Out], workers: int) -> Iterator[_Out]:
    """``fn(job)`` for every job, in the jobs' order, up to ``workers`` of them running at once.

    The first failure in that order is raised once the jobs before it are yielded; after any
    failure no new job starts, and the jobs already running finish before it is raised (threads
    cannot be interrupted mid-request; their requests count against the same limiter).
    """
    if workers <= 1:
        yield from map(fn, jobs)
        return
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="payouts")
    queue: deque[Future[_Out]] = deque()
    failed = False

    def note(fut: Future[_Out]) -> None:
        nonlocal failed
        if not fut.cancelled() and fut.exception() is not None:
            failed = True

    def submit(more: Iterator[_Job], n: int) -> None:
        for job in itertools.islice(more, n):
            if failed:
                return
            fut = pool.submit(fn, job)
            fut.add_done_callback(note)
            queue.append(fut)

    rest = iter(jobs)
    try:
        submit(rest, 2 * workers)  # a slow payout must not leave the others idle
        while queue:
            value = queue.popleft().result()
            submit(rest, 1)
            yield value
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _record(
    po_id: str, src: Any, rec: Mapping[str, Any] | None, gateway: Any
) -> tuple[dict[str, Any], int]:
    """One payout's record, with as few requests as possible.

    The archived source (an expanded payout) says whether it is automatic; listing an automatic
    payout's transactions with ``expand[]=data.source`` returns the payout object itself, whole
    (trace id included, which a minimal archive drops). Only a payout whose object is still
    missing, not final, or stale is asked for with ``GET /v1/payouts/:id``. Returns the record
    and 1 if the payout's transactions were listed (else 0).
    """
    itemised = 0
    obj: Mapping[str, Any] | None = dict(src) if isinstance(src, dict) and rec is None else None
    from_api = obj is None
    if obj is None:
        obj = gateway.payout(po_id)
    members = rec.get("transactions") if rec else None
    completed = obj.get("reconciliation_status", "completed") == "completed"
    if members is None and obj.get("automatic") and completed:
        raw = list(gateway.payout_transactions(po_id, expand_source=True))
        members = [_compact_transaction(m) for m in raw]
        itemised = 1
        own = [
            m["source"]
            for m in raw
            if isinstance(m.get("source"), dict) and m["source"].get("id") == po_id
        ]
        if own:
            obj, from_api = own[0], True
    if not from_api and (obj.get("status") not in FINAL_STATUSES or "trace_id" not in obj):
        obj = gateway.payout(po_id)  # the archived copy is stale or was stripped of its trace id
    new = _compact_payout(obj)
    new["transactions"] = members
    return new, itemised


def _needs_refresh(rec: Mapping[str, Any], reversal: str | None) -> bool:
    if rec.get("status") not in FINAL_STATUSES:
        return True
    if reversal and rec.get("status") == "paid":
        return True  # "Some payouts show paid and later turn failed"
    return bool(rec.get("automatic")) and rec.get("transactions") is None


def _write(client: ClientConfig, records: Mapping[str, Any], result: ContentsResult) -> None:
    if archive.write_payouts(client.archive_dir, client.id, client.stripe_account, records):
        path = archive.payouts_path(client.archive_dir)
        if path not in result.changed_files:
            result.changed_files.append(path)


# -- contents: the breakdown (pure) ----------------------------------------------------------------


def own_payout_bt(t: Mapping[str, Any], record: Mapping[str, Any]) -> bool:
    """The payout's own ``payout`` BT, which the member list includes."""
    return t.get("type") == "payout" and t.get("source") == record["id"]


def breakdown_minor(record: Mapping[str, Any]) -> dict[str, int] | None:
    """Charges (gross), refunds, disputes, fees, other in minor units; None for manual payouts.

    Every member except the payout's own BT contributes ``amount`` to its category and ``-fee``
    to fees, so the parts sum to Σ net of the members, which is the payout amount.
    """
    rows = record.get("transactions")
    if rows is None:
        return None
    out = dict.fromkeys(BREAKDOWN_KEYS, 0)
    for t in rows:
        if own_payout_bt(t, record):
            continue
        cat = str(t.get("reporting_category") or t.get("type"))
        if cat == "charge":
            key = "charges"
        elif cat in ("refund", "refund_failure"):
            key = "refunds"
        elif cat in ("dispute", "dispute_reversal"):
            key = "disputes"
        elif cat == "fee":
            key = "fees"
        else:
            key = "other"
        out[key] += int(t["amount"])
        out["fees"] -= int(t["fee"])
    return out
