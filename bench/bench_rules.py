"""Benchmark the rule engine: 500 rules over 100,000 balance transactions.

Prints figures and compares, in the same run, against the named baselines: booking the same
transactions without rules (``booking.book_all``), which any import must do anyway; booking with
an empty ruleset (fingerprints only); and the rule engine of another git revision
(``--baseline-ref``, default ``main``: its ``beancount_stripe/rules/`` loaded under another
name), on the same transactions and rules, whose entries and explanations must be identical.
The figure issue 10 targets is "rules on top of booking": (book + rules) − (book + empty
ruleset), per transaction. Times are process CPU, best of ``--repeat`` rounds in which the runs
(this engine and the baseline's, each with the empty and the full ruleset) take turns: the
machine is shared, and a busy spell then weighs on both engines alike.
Writes its section of bench/RESULTS.md unless ``--no-results``.

The 500 rules are a plausible firm's set, every one of them *live* (it matches at least one
transaction of the history; the figure is printed): the 24 shared default rules plus 476 client
rules from bench/live_rules.py (products by description, order numbers, key customers, regexes
with captures feeding templates, amount bands, ``metadata.*``, splits, additive tag and link
rules, refunds, payouts and fees) and a parties table of 100 entries.

Usage: python bench/bench_rules.py [--size 100000] [--rules 500] [--seed 1] [--repeat 3]
       [--baseline-ref main] [--no-results]
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

from beancount_stripe import booking, heap, rules
from beancount_stripe.config import ClientConfig, KeySource, make_accounts
from beancount_stripe.simulator import generate_history

sys.path.insert(0, str(Path(__file__).resolve().parent))
import figures
from figures import best
from live_rules import client_rules, live_count

REPO = Path(__file__).resolve().parent.parent
DEFAULT_RULES = REPO / "config" / "rules.yaml"
BASELINE = "_rules_baseline"
PRODUCTS = [
    "House Blend 1kg",
    "Espresso Roast 250g",
    "Ethiopia Yirgacheffe 250g",
    "Colombia Huila 1kg",
    "Decaf Swiss Water 250g",
    "Coffee subscription (monthly)",
    "Pour-over kettle",
    "Wholesale order",
    "Barista workshop",
]


def interleaved(repeat: int, runs: list[tuple[str, Any]]) -> list[tuple[Any, float]]:
    """``best`` of each of ``runs`` (label, fn), the runs taken in turn in each of ``repeat``
    rounds: on a shared machine, a busy spell then slows every engine, not one of them."""
    cpu: list[list[float]] = [[] for _ in runs]
    wall: list[list[float]] = [[] for _ in runs]
    results: list[Any] = [None] * len(runs)
    for _ in range(repeat):
        for k, (_label, fn) in enumerate(runs):
            results[k] = None
            w0, c0 = time.perf_counter(), time.process_time()
            results[k] = fn()
            cpu[k].append(time.process_time() - c0)
            wall[k].append(time.perf_counter() - w0)
    for k, (label, _fn) in enumerate(runs):
        print(f"  {label:<56} {min(cpu[k]):7.2f} s CPU  ({min(wall[k]):6.2f} s wall)")
    return [(results[k], min(cpu[k])) for k in range(len(runs))]


def _quiet(fn):  # type: ignore[no-untyped-def]
    """Book as ``rules.book_with_rules`` does: with the garbage collector paused (heap.py)."""
    with heap.quiet_gc():
        return fn()


def baseline_engine(ref: str, folder: Path) -> ModuleType | None:
    """``beancount_stripe/rules/`` as of git revision ``ref``, importable as ``BASELINE``."""
    try:
        names = subprocess.run(
            ["git", "-C", str(REPO), "ls-tree", "--name-only", f"{ref}:beancount_stripe/rules"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        return None
    package = folder / BASELINE
    package.mkdir()
    for name in names:
        if not name.endswith(".py"):
            continue
        text = subprocess.run(
            ["git", "-C", str(REPO), "show", f"{ref}:beancount_stripe/rules/{name}"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        (package / name).write_text(text.replace("beancount_stripe.rules", BASELINE))
    sys.path.insert(0, str(folder))
    return importlib.import_module(BASELINE)


def outcome(pairs: list[tuple[Any, Any]]) -> list[Any]:
    """What must not change: the entries, and which rule decided and matched what."""
    return [
        (entry, {p: r.name for p, r in why.deciders.items()}, [r.name for r in why.matched])
        for entry, why in pairs
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--rules", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--baseline-ref", default="main")
    parser.add_argument("--no-results", action="store_true", help="do not write RESULTS.md")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    n = args.size
    n_default = len(rules.load_rules(DEFAULT_RULES).rules)
    n_client = max(0, args.rules - n_default)
    print(
        f"rule engine benchmark: {n:,} balance transactions, {n_default + n_client} "
        f"rules ({n_client} client + {n_default} shared defaults), 100 parties, seed {args.seed}, "
        f"best of {args.repeat}"
    )
    _, history = best(
        "generate history (simulator)",
        1,
        lambda: generate_history(
            account_id="acct_1BenchRules0001",
            seed=args.seed,
            size=n,
            start=datetime.date(2019, 1, 1),
            end=datetime.date(2026, 10, 31),
            currencies=("usd", "eur", "jpy"),
            products=PRODUCTS,
        ),
    )
    bts = []
    for bt in history.transactions:
        bt = dict(bt)
        if isinstance(bt.get("source"), str) and bt["source"] in history.objects:
            bt["source"] = history.objects[bt["source"]]
        bts.append(bt)

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        own = base / "client.yaml"
        text, witnesses = client_rules(n_client, bts, rng)
        own.write_text(text)

        def client(own_rules: tuple[Path, ...], shared: tuple[Path, ...]) -> ClientConfig:
            return ClientConfig(
                id="bench",
                name="Bench",
                stripe_account="acct_1BenchRules0001",
                key=KeySource("env", "UNUSED"),
                ledger=base / "ledger.beancount",
                output=base / "stripe.beancount",
                archive_dir=base / "archive",
                timezone="Europe/Berlin",
                accounts=make_accounts("Bench"),
                rules=own_rules,
                shared_rules=shared,
            )

        plain = client((), ())
        ruled = client((own,), (DEFAULT_RULES,))
        print("baseline: booking")
        t_book, _ = best(
            "book without rules (booking.book_all)",
            args.repeat,
            lambda: _quiet(lambda: booking.book_all(bts, plain)),
        )
        print("rules")
        t0 = time.process_time()
        ruleset = rules.ruleset_for(ruled)
        rules.book_with_rules(bts[:3000], ruled, ruleset)  # every type's indexes compiled
        t_load = time.process_time() - t0
        assert len(ruleset.rules) == n_default + n_client
        live = live_count(ruleset, rules, booking, ruled, witnesses, bts)
        print(f"  live rules (match at least one transaction) {live:>20} of {len(ruleset.rules)}")
        empty = rules.ruleset_for(plain)
        runs = [
            (
                "book + empty ruleset (fingerprints only)",
                lambda: rules.book_with_rules(bts, plain, empty),
            ),
            (
                f"book + {len(ruleset.rules)} rules (rules.book_with_rules)",
                lambda: rules.book_with_rules(bts, ruled, ruleset),
            ),
        ]
        old = baseline_engine(args.baseline_ref, base)
        if old is not None:
            old_set, old_empty = old.ruleset_for(ruled), old.ruleset_for(plain)
            old.book_with_rules(bts[:3000], ruled, old_set)
            runs += [
                (
                    f"{args.baseline_ref}: book + empty ruleset",
                    lambda: old.book_with_rules(bts, plain, old_empty),
                ),
                (
                    f"{args.baseline_ref}: book + {len(old_set.rules)} rules",
                    lambda: old.book_with_rules(bts, ruled, old_set),
                ),
            ]
            print(f"  (and the rule engine of `{args.baseline_ref}`, same transactions, in turn)")
        measured = interleaved(args.repeat, runs)
        (_, t_empty), (pairs, t_rules) = measured[:2]
        t_old = t_old_empty = None
        if old is not None:
            (_, t_old_empty), (old_pairs, t_old) = measured[2:]
            same = outcome(old_pairs) == outcome(pairs)
            print(f"  same entries, deciders and matched rules as {args.baseline_ref}: {same}")
            assert same, "the engine must decide exactly what the baseline engine decides"
        decided = Counter(why.account_rule.name for _e, why in pairs if why.account_rule)
        own_rules = sum(k for name, k in decided.items() if name.startswith("r"))
        evaluated = sum(len(why.matched) for _e, why in pairs)
        us = 1e6 / n
        lines = [
            f"book without rules                          {t_book * us:8.1f} µs/BT",
            f"book + empty ruleset                        {t_empty * us:8.1f} µs/BT",
            f"rules on top of booking, {len(ruleset.rules)} rules           "
            f"{(t_rules - t_empty) * us:8.1f} µs/BT   ({live} of {len(ruleset.rules)} live, "
            f"{evaluated / n:.1f} matched per BT)",
        ]
        if t_old is not None and t_old_empty is not None:
            lines.append(
                f"  same run, engine of `{args.baseline_ref}`              "
                f"{(t_old - t_old_empty) * us:8.1f} µs/BT   "
                f"(this engine = {(t_old - t_old_empty) / max(t_rules - t_empty, 1e-9):.1f}x "
                "faster)"
            )
        lines += [
            f"book + {len(ruleset.rules)} rules                            "
            f"{n / t_rules:8,.0f} BTs/s",
            f"entries whose account a client rule decided {own_rules:8,}",
            f"load + compile the rules (and every type's indexes) {t_load:5.2f} s",
        ]
    print("figures")
    for line in lines:
        print("  " + line)
    if not args.no_results:
        write_results(args, lines)


def write_results(args: argparse.Namespace, lines: list[str]) -> None:
    figures.write_section(
        "bench_rules",
        [
            "## Rules engine (bench/bench_rules.py)",
            "",
            f"`python bench/bench_rules.py --size {args.size} --rules {args.rules} --seed "
            f"{args.seed} --repeat {args.repeat}`, {datetime.date.today()}, process CPU time, "
            f"best of {args.repeat}; the baseline engine is `{args.baseline_ref}`'s, run in the "
            "same process on the same transactions and rules (identical output checked). "
            "Target (issue 10): ≤ 10 µs per BT on top of booking with 500 live rules.",
            "",
            "```",
            *lines,
            "```",
        ],
    )


if __name__ == "__main__":
    main()
