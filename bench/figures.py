"""Hand each benchmark's figures to ``bench/run_all.py`` as JSON lines.

The scripts print their figures for people; ``run_all.py`` also needs them as numbers to build
the one table of the issue's targets. A script calls :func:`record` beside each figure it prints;
the call appends a line to the file named by ``$BENCH_FIGURES`` and does nothing when a script
runs on its own.
"""

from __future__ import annotations

import json
import os
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
