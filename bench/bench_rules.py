"""Benchmark the rule engine: 500 rules over 100,000 balance transactions.

Prints figures and compares, in the same run, against the named baseline: booking the same
transactions without rules (``booking.book_all``), which any import must do anyway. Also shows
the cost of loading and compiling the rules, and of an empty ruleset (fingerprints only).

The 500 rules are a plausible firm's set: the 24 shared default rules plus 476 client rules
(product rules by description, key customers by id, regexes with captures, amount bands,
additive tag rules that every transaction must try, rules on refunds, payouts and fees) and a
parties table of 100 entries.

Usage: python bench/bench_rules.py [--size 100000] [--rules 500] [--seed 1]
"""

from __future__ import annotations

import argparse
import datetime
import random
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from beancount_stripe import booking, rules
from beancount_stripe.config import ClientConfig, KeySource, make_accounts
from beancount_stripe.simulator import generate_history

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
WORDS = "alpha bravo cedar delta ember fjord grove harbor indigo juniper kestrel lumen".split()


def timed(label: str, fn):  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    result = fn()
    dt = time.perf_counter() - t0
    print(f"  {label:<52} {dt:8.2f} s")
    return result, dt


def client_rules(n: int, bts: list[dict[str, Any]], rng: random.Random) -> str:
    """``n`` client rules plus 100 parties, drawn from what the history contains (and not)."""
    customers = sorted(
        {
            bt["source"]["customer"]
            for bt in bts
            if isinstance(bt.get("source"), dict) and isinstance(bt["source"].get("customer"), str)
        }
    )
    names = sorted(
        {
            bt["source"]["billing_details"]["name"]
            for bt in bts
            if isinstance(bt.get("source"), dict) and "billing_details" in bt["source"]
        }
    )
    lines = ["parties:"]
    picked_ids = rng.sample(customers, min(50, len(customers)))
    picked_names = rng.sample(names, min(50, len(names)))
    for i, ident in enumerate(picked_ids):
        lines.append(f'  - {{payee: "Party {i}", ids: [{ident}]}}')
    for i, name in enumerate(picked_names, start=len(picked_ids)):
        lines.append(f'  - {{payee: "Party {i}", names: ["{name}"]}}')
    lines.append("rules:")
    kinds = (
        (["product"] * 40 + ["customer"] * 20 + ["regex"] * 10 + ["band"] * 10 + ["tag"] * 6)
        + ["refund"] * 5
        + ["payout"] * 5
        + ["fee"] * 4
    )
    for i in range(n):
        kind = kinds[i % len(kinds)]
        if kind == "product":
            word = rng.choice(PRODUCTS).split()[0] if rng.random() < 0.2 else rng.choice(WORDS)
            when = f"{{type: [charge, payment], description: {{contains: {word}{i}}}}}"
            if rng.random() < 0.5:
                when = f"{{type: [charge, payment], description: {{contains: {word}}}}}"
            action = f'account: "Income:{{client}}:Products:P{i}"'
        elif kind == "customer":
            when = f"{{customer.id: {rng.choice(customers)}, currency: usd}}"
            action = f'account: "Income:{{client}}:Key:K{i}"\n    payee: "Key {i}"'
        elif kind == "regex":
            word = rng.choice(WORDS + [p.split()[0] for p in PRODUCTS])
            when = f"{{type: charge, description: {{regex: '^Order #(\\d+): {word}'}}}}"
            action = f'narration: "Order {{1}} ({i})"'
        elif kind == "band":
            lo = rng.randrange(0, 500)
            when = f"{{type: charge, currency: eur, amount: {{between: [{lo}, {lo + 20}]}}}}"
            action = f'meta: {{band: "b{i}"}}'
        elif kind == "tag":
            field = rng.choice(["currency: eur", "payment_method: sepa_debit", "card.brand: amex"])
            when = f"{{{field}, created: {{gte: 2020-0{1 + i % 9}-01}}}}"
            action = f"tags: [t{i}]"
        elif kind == "refund":
            when = f"{{type: refund, description: {{contains: {rng.choice(PRODUCTS).split()[0]}}}}}"
            action = f'account: "Income:{{client}}:Refunds:R{i}"'
        elif kind == "payout":
            when = f"{{type: payout, currency: {rng.choice(['usd', 'eur', 'jpy'])}}}"
            action = f'account: "Assets:{{client}}:Bank:B{i}"'
        else:
            when = f"{{type: stripe_fee, description: {{prefix: {rng.choice(WORDS)}}}}}"
            action = f'account: "Expenses:{{client}}:Stripe:F{i}"'
        lines.append(f"  - name: r{i} {kind}\n    when: {when}\n    {action}")
    return "\n".join(lines) + "\n"


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
        own.write_text(client_rules(n_client, bts, rng))

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
            "book without rules (booking.book_all)", lambda: booking.book_all(bts, plain)
        )
        print("rules")
        ruleset, t_load = timed(
            "load + validate + compile the rules", lambda: rules.ruleset_for(ruled)
        )
        assert len(ruleset.rules) == n_default + n_client
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
