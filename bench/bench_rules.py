"""Benchmark the rule engine: 500 rules over 100,000 balance transactions.

Prints figures and compares, in the same run, against the named baseline: booking the same
transactions without rules (``booking.book_all``), which any import must do anyway. Also shows
the cost of loading and compiling the rules, and of an empty ruleset (fingerprints only).

The 500 rules are a plausible firm's set, every one of them *live* (it matches at least one
transaction of the history; the figure is printed): the 24 shared default rules plus 476 client
rules from bench/live_rules.py (products by description, order numbers, key customers, regexes
with captures feeding templates, amount bands, ``metadata.*``, splits, additive tag and link
rules, refunds, payouts and fees) and a parties table of 100 entries.

Usage: python bench/bench_rules.py [--size 100000] [--rules 500] [--seed 1]
"""

from __future__ import annotations

import argparse
import datetime
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from beancount_stripe import booking, heap, rules
from beancount_stripe.config import ClientConfig, KeySource, make_accounts
from beancount_stripe.simulator import generate_history

sys.path.insert(0, str(Path(__file__).resolve().parent))
from live_rules import client_rules, live_count

REPO = Path(__file__).resolve().parent.parent
DEFAULT_RULES = REPO / "config" / "rules.yaml"
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


def timed(label: str, fn):  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    result = fn()
    dt = time.perf_counter() - t0
    print(f"  {label:<52} {dt:8.2f} s")
    return result, dt


def _quiet(fn):  # type: ignore[no-untyped-def]
    """Book as ``rules.book_with_rules`` does: with the garbage collector paused (heap.py)."""
    with heap.quiet_gc():
        return fn()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--rules", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    n_default = len(rules.load_rules(DEFAULT_RULES).rules)
    n_client = max(0, args.rules - n_default)
    print(
        f"rule engine benchmark: {args.size:,} balance transactions, {n_default + n_client} "
        f"rules ({n_client} client + {n_default} shared defaults), 100 parties, seed {args.seed}"
    )
    history, _ = timed(
        "generate history (simulator)",
        lambda: generate_history(
            account_id="acct_1BenchRules0001",
            seed=args.seed,
            size=args.size,
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
        print("baseline")
        _, t_book = timed(
            "book without rules (booking.book_all)",
            lambda: _quiet(lambda: booking.book_all(bts, plain)),
        )
        print("rules")
        ruleset, t_load = timed(
            "load + validate + compile the rules", lambda: rules.ruleset_for(ruled)
        )
        assert len(ruleset.rules) == n_default + n_client
        live = live_count(ruleset, rules, booking, ruled, witnesses, bts)
        print(
            f"  live rules (match at least one transaction)      {live:>6} of {len(ruleset.rules)}"
        )
        empty = rules.ruleset_for(plain)
        _, t_empty = timed(
            "book + empty ruleset (fingerprints only)",
            lambda: rules.book_with_rules(bts, plain, empty),
        )
        pairs, t_rules = timed(
            f"book + {len(ruleset.rules)} rules (rules.book_with_rules)",
            lambda: rules.book_with_rules(bts, ruled, ruleset),
        )
        decided = Counter(why.account_rule.name for _e, why in pairs if why.account_rule)
        own_rules = sum(n for name, n in decided.items() if name.startswith("r"))
        evaluated = sum(len(why.matched) for _e, why in pairs)
        print("figures")
        apply_only = t_rules - t_book
        print(f"  rules cost on top of booking                         {apply_only:8.2f} s")
        print(f"  book + rules / book without rules                    {t_rules / t_book:8.2f} x")
        print(
            f"  per transaction: booking {t_book / args.size * 1e6:6.1f} µs, "
            f"rules {apply_only / args.size * 1e6:6.1f} µs"
        )
        print(f"  transactions per second with rules                   {args.size / t_rules:8.0f}")
        print(f"  entries whose account a client rule decided          {own_rules:8,}")
        print(
            f"  rules matched per transaction (mean)                 {evaluated / args.size:8.2f}"
        )
        print(f"  empty ruleset overhead                               {t_empty - t_book:8.2f} s")
        print(f"  loading the rules                                    {t_load:8.2f} s")


if __name__ == "__main__":
    main()
