"""Reproduce every row of issue 10's table in one run and write the table into RESULTS.md.

Runs the benchmark scripts one after the other (each in its own process, each measuring its own
baselines in the same run), collects the figures they hand over through ``bench/figures.py``, and
writes the section "Big accounts at a glance" at the top of bench/RESULTS.md: each figure beside
its same-run baseline and the issue's target. The scripts also rewrite or print their own detailed
sections. Takes roughly 20–40 minutes on 2 cores (the 1M-transaction memory run is most of it).

Usage: python bench/run_all.py [--quick] [--jobs 100] [--memory-sizes 1000000]
       [--only booking,summary,backfill] [--earlier FIGURES.jsonl]

``--quick`` shrinks every size (10k transactions, 10 clients × 300) to check the harness itself;
its figures are not the issue's. ``--earlier`` adds figures a script recorded in an earlier run
(``BENCH_FIGURES=FILE python bench/…``) for rows this run does not measure (e.g. the 1M memory
row, ~20 minutes, with ``--memory-sizes ""``); the table marks them as from a separate run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import figures as handed

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Row:
    """One row of the issue's table: how to show a figure and whether it meets the target."""

    key: str
    measurement: str
    show: Callable[[dict[str, Any]], str]
    baseline: Callable[[dict[str, Any]], str]
    target: str
    met: Callable[[dict[str, Any]], bool]


def _ratio(f: dict[str, Any]) -> float:
    return float(f["value"]) / float(f["bound"])


ROWS = [
    Row(
        "backfill_latency",
        "full backfill, simulator latency 0.3 s, limit 100/s",
        lambda f: f"{f['value']:.1f} s = **{_ratio(f):.2f}×** the bound ({f['bound']:.1f} s)",
        lambda f: f"bare SDK sequential paging {f['baseline']:.0f} s",
        "≤ 1.5× the bound",
        lambda f: _ratio(f) <= 1.5,
    ),
    Row(
        "backfill_nolatency",
        "same, simulator with no latency",
        lambda f: f"{f['value']:.1f} s = **{_ratio(f):.2f}×** the bound ({f['bound']:.1f} s)",
        lambda f: f"bare SDK sequential paging {f['baseline']:.0f} s",
        "≤ 1.5× the bound",
        lambda f: _ratio(f) <= 1.5,
    ),
    Row(
        "booking_extract",
        "book + write to ledger text (beangulp extract path)",
        lambda f: f"**{f['value']:,.0f} BTs/s** = {f['value'] / f['baseline']:.1f}× the baseline",
        lambda f: f"beangulp-stripe 0.3 {f['baseline']:,.0f} BTs/s",
        "≥ 50k BTs/s, ≥ 6× beangulp-stripe",
        lambda f: f["value"] >= 50_000 and f["value"] >= 6 * f["baseline"],
    ),
    Row(
        "memory_small",
        "peak memory, full sync (smaller size)",
        lambda f: f"**{f['value']:.0f} MB** at {f['size']:,} BTs",
        lambda f: f"archive parsed into memory {f['baseline']:.0f} MB",
        "≤ 250 MB at 100k",
        lambda f: f["value"] <= 250,
    ),
    Row(
        "memory_large",
        "peak memory, full sync (largest size)",
        lambda f: f"**{f['value']:.0f} MB** at {f['size']:,} BTs",
        lambda f: f"archive parsed into memory {f['baseline']:.0f} MB",
        "≤ 300 MB at 1M",
        lambda f: f["value"] <= 300 and f["size"] >= 1_000_000,
    ),
    Row(
        "rules_500",
        "500 live rules, on top of booking",
        lambda f: f"**{f['value']:.1f} µs/BT** ({f.get('note', '')})",
        lambda f: f"booking with 0 rules {f['baseline']:.1f} µs/BT",
        "≤ 10 µs/BT",
        lambda f: f["value"] <= 10,
    ),
    Row(
        "fava_daily",
        "Fava, first page, `booking.mode: daily`",
        lambda f: f"**{f['value']:.2f} s**",
        lambda f: f"transaction mode {f['baseline']:.1f} s",
        "≤ 2 s",
        lambda f: f["value"] <= 2,
    ),
    Row(
        "fava_payout",
        "Fava, first page, `booking.mode: payout`",
        lambda f: f"**{f['value']:.2f} s**",
        lambda f: f"transaction mode {f['baseline']:.1f} s",
        "≤ 2 s",
        lambda f: f["value"] <= 2,
    ),
    Row(
        "clients",
        "many clients, `sync --all --jobs N`",
        lambda f: f"{f['value']:.1f} s = **{f['value'] / f['baseline']:.2f}×** ({f['note']})",
        lambda f: f"the biggest client alone {f['baseline']:.1f} s",
        "≤ 1.2× the biggest one",
        lambda f: f["value"] <= 1.2 * f["baseline"],
    ),
]


def scripts(quick: bool, jobs: int, memory_sizes: str) -> dict[str, list[str]]:
    """The benchmark commands, by name."""
    if quick:
        return {
            "booking": ["bench_booking.py", "--size", "10000", "--repeat", "1", "--no-results"],
            "summary": ["bench_summary.py", "--size", "10000"],
            "backfill": [
                "bench_backfill.py",
                "--size",
                "10000",
                "--memory-sizes",
                "20000",
                "--clients",
                "10",
                "--client-size",
                "300",
                "--jobs",
                str(jobs),
            ],
        }
    return {
        "booking": ["bench_booking.py", "--size", "100000", "--repeat", "3"],
        "summary": ["bench_summary.py", "--size", "100000"],
        "backfill": [
            "bench_backfill.py",
            "--size",
            "100000",
            "--memory-sizes",
            memory_sizes,
            "--clients",
            "100",
            "--client-size",
            "1000",
            "--jobs",
            str(jobs),
        ],
    }


def table(figures: dict[str, dict[str, Any]], commands: list[list[str]], when: str) -> str:
    """The section written at the top of RESULTS.md."""
    lines = [
        "## Big accounts at a glance (bench/run_all.py, issue 10)",
        "",
        f"`python bench/run_all.py` on {when}: every row measured in this one run, each beside its",
        "baseline measured in the same run (2 shared cores: compare within the run).",
        "Commands:",
        "",
        *[f"- `python bench/{shlex.join(c)}`" for c in commands],
        "",
        "| measurement | ours | baseline, same run | target | met? |",
        "|---|---|---|---|---|",
    ]
    for row in ROWS:
        f = figures.get(row.key)
        if f is None:
            lines.append(f"| {row.measurement} | not measured | | {row.target} | — |")
            continue
        met = "yes" if row.met(f) else "**no**"
        name = row.measurement + (" †" if f.get("earlier") else "")
        lines.append(f"| {name} | {row.show(f)} | {row.baseline(f)} | {row.target} | {met} |")
    if any(f.get("earlier") for f in figures.values()):
        lines += ["", "† measured in a separate, earlier run of the same script (`--earlier`)."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: check the harness")
    parser.add_argument("--jobs", type=int, default=100, help="--jobs for the many-clients run")
    parser.add_argument("--memory-sizes", default="1000000", help="bench_backfill's extra sizes")
    parser.add_argument("--only", default="", help="comma-separated: booking,summary,backfill")
    parser.add_argument("--earlier", type=Path, help="figures recorded by an earlier run")
    args = parser.parse_args()
    chosen = scripts(args.quick, args.jobs, args.memory_sizes)
    if args.only:
        wanted = set(args.only.split(","))
        unknown = wanted - set(chosen)
        if unknown:
            parser.error(f"unknown benchmark(s) {sorted(unknown)}; choose from {sorted(chosen)}")
        chosen = {k: v for k, v in chosen.items() if k in wanted}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "figures.jsonl"
        path.touch()
        env = {**os.environ, "BENCH_FIGURES": str(path)}
        for name, command in chosen.items():
            print(f"\n=== {name}: python bench/{' '.join(command)}", flush=True)
            t0 = time.perf_counter()
            done = subprocess.run([sys.executable, str(HERE / command[0]), *command[1:]], env=env)
            took = time.perf_counter() - t0
            print(f"=== {name}: exit {done.returncode} after {took:.0f} s", flush=True)
            if done.returncode:
                raise SystemExit(f"bench/{command[0]} failed (exit {done.returncode})")
        figures: dict[str, dict[str, Any]] = {}
        if args.earlier:
            for line in args.earlier.read_text(encoding="utf-8").splitlines():
                f = json.loads(line)
                figures[f["key"]] = {**f, "earlier": True}
        for line in path.read_text(encoding="utf-8").splitlines():
            f = json.loads(line)
            figures[f["key"]] = f
    when = datetime.date.today().isoformat()
    section = table(figures, list(chosen.values()), when)
    print("\n" + section)
    if args.quick or args.only:
        print("\n(--quick/--only: RESULTS.md left as it was)")
    else:
        handed.write_section("run_all", section.split("\n"), at_top=True)


if __name__ == "__main__":
    main()
