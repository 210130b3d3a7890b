"""Many clients at once (`sync --all --jobs N`): threads, and worker processes across CPUs.

A client's sync mostly waits on Stripe (its own rate limit, the network), so threads overlap
clients well; but what each client costs in CPU (its requests, booking, writing) runs under one
interpreter lock per process. With many clients that lock is the bound (100 clients × 1k
transactions: one core busy, the others idle), so the jobs are split over worker processes,
one per CPU at most, each running its share of the jobs as threads. Clients are dealt to the
processes in turn, so each gets a like share of big and small ones; results come back in the
configured order, whatever order they finish in.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

JOBS_PER_PROCESS = 8  # below this many jobs (or clients) per process, threads alone do

T = TypeVar("T")


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask, where the system has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def process_count(jobs: int, clients: int, requested: int | None = None) -> int:
    """How many processes share ``jobs``: ``requested`` if given (at most one per job and per
    client), else one per CPU as long as each gets ``JOBS_PER_PROCESS`` jobs and clients."""
    if requested is not None:
        return max(1, min(requested, jobs, clients))
    return max(1, min(usable_cpus(), jobs // JOBS_PER_PROCESS, clients // JOBS_PER_PROCESS))


def run_split(
    ids: Sequence[str],
    processes: int,
    task: Callable[..., list[T]],
    *args: Any,
) -> list[T]:
    """``task(group, *args)`` for ``processes`` groups of ``ids`` in worker processes; the
    results (one per id, as ``task`` returns them for its group) in the order of ``ids``.

    ``task`` must be a module-level function (it is sent to a fresh interpreter: ``spawn``, so
    nothing of this process's threads or locks is inherited).
    """
    groups = [list(ids[p::processes]) for p in range(processes)]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=processes, mp_context=context) as pool:
        futures = [pool.submit(task, group, *args) for group in groups]
        answers = [future.result() for future in futures]
    merged: list[T] = []
    for i in range(len(ids)):
        merged.append(answers[i % processes][i // processes])
    return merged
