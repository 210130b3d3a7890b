"""Hand each benchmark's figures to ``bench/run_all.py`` as JSON lines.

The scripts print their figures for people; ``run_all.py`` also needs them as numbers to build
the one table of the issue's targets. A script calls :func:`record` beside each figure it prints;
the call appends a line to the file named by ``$BENCH_FIGURES`` and does nothing when a script
runs on its own.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["record"]


def record(key: str, value: float, unit: str, **context: Any) -> None:
    """Append ``{"key", "value", "unit", **context}`` to ``$BENCH_FIGURES`` if it is set.

    ``context`` carries the same-run baseline (``baseline=…``, ``baseline_label=…``) and any
    detail worth showing beside the figure (``note=…``).
    """
    path = os.environ.get("BENCH_FIGURES")
    if not path:
        return
    line = json.dumps({"key": key, "value": value, "unit": unit, **context}, sort_keys=True)
    with open(path, "a", encoding="utf-8") as out:
        out.write(line + "\n")


RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def write_section(name: str, body: list[str], *, at_top: bool = False) -> None:
    """Put ``body`` between ``<!-- name: start -->`` and ``<!-- name: end -->`` in RESULTS.md.

    Replaces the script's earlier section in place; a new one goes at the end (or just under the
    title with ``at_top``), so each script rewrites only its own figures.
    """
    start, end = f"<!-- {name}: start -->", f"<!-- {name}: end -->"
    section = "\n".join([start, *body, end])
    old = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n"
    if start in old and end in old:
        head, rest = old.split(start, 1)
        new = head + section + rest.split(end, 1)[1]
    elif at_top:
        title, _, rest = old.partition("\n")
        new = f"{title}\n\n{section}\n{rest}"
    else:
        new = old.rstrip("\n") + "\n\n" + section + "\n"
    RESULTS.write_text(new, encoding="utf-8")
    print(f"wrote its section of bench/{RESULTS.name}")


def best(label: str, repeat: int, fn: Callable[[], Any], width: int = 58) -> tuple[float, Any]:
    """Best process-CPU seconds of ``repeat`` runs of ``fn`` (wall seconds printed beside), and
    the last run's result: the machine is shared, so CPU time is the figure to compare."""
    cpu, wall, result = [], [], None
    for _ in range(repeat):
        result = None
        w0, c0 = time.perf_counter(), time.process_time()
        result = fn()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    print(f"  {label:<{width}} {min(cpu):7.2f} s CPU  ({min(wall):6.2f} s wall)")
    return min(cpu), result
