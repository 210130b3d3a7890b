"""Benchmark bank-line matching: 10,000 bank lines against 10,000 payouts in transit.

Prints figures and compares, in the same run, against the named baseline: a naive matcher that,
for each bank line, scans every payout for one of the same currency and amount whose window
holds the line's date (what a first attempt would write). Both must find the same matches.

The payouts are drawn like a busy multi-client firm's: about 27 a day over a year, in USD, EUR
and JPY; each bank line lands 0-2 days after its payout's arrival (weekends skipped), half of
them with the trace id as reference (which settles the rare same-amount pairs).

Usage: python bench/bench_payouts.py [--size 10000] [--seed 1]
"""

from __future__ import annotations

import argparse
import datetime
import random
import time
from decimal import Decimal

from beancount.core import data
from beancount.core.amount import Amount

from beancount_stripe.config import PayoutsConfig
from beancount_stripe.reconcile import MatchSettings, match_entries, transit_items

TRANSIT = "Assets:Firm:Transfers:Stripe"
BANK = "Assets:Firm:Bank"


def _posting(account: str, number: Decimal, cur: str) -> data.Posting:
    return data.Posting(account, Amount(number, cur), None, None, None, None)


def build(size: int, seed: int) -> tuple[list[data.Directive], list[data.Transaction], dict]:
    rng = random.Random(seed)
    start = datetime.date(2025, 1, 6)
    stripe: list[data.Directive] = []
    lines: list[data.Transaction] = []
    records = {}
    for n in range(size):
        po = f"po_{n:08d}"
        cur = rng.choice(("USD", "EUR", "JPY"))
        amount = (
            Decimal(rng.randrange(1000, 500000))
            if cur == "JPY"
            else Decimal(rng.randrange(100, 5_000_00)) / 100
        )
        created = start + datetime.timedelta(days=n * 365 // size)
        arrival = created + datetime.timedelta(days=2)
        while arrival.weekday() >= 5:
            arrival += datetime.timedelta(days=1)
        trace = f"{rng.randrange(10**15):015d}"
        records[po] = {
            "id": po,
            "arrival_date": int(
                datetime.datetime(
                    arrival.year, arrival.month, arrival.day, tzinfo=datetime.UTC
                ).timestamp()
            ),
            "trace_id": trace,
        }
        meta = {"filename": "stripe", "lineno": n, "stripe_id": f"txn_{n}", "stripe_source": po}
        meta["stripe_type"] = "payout"
        stripe.append(
            data.Transaction(
                meta,
                created,
                "*",
                "Stripe",
                "Stripe payout",
                frozenset(),
                frozenset({po}),
                [_posting("Assets:Firm:Stripe", -amount, cur), _posting(TRANSIT, amount, cur)],
            )
        )
        posted = arrival + datetime.timedelta(days=rng.randrange(3))
        while posted.weekday() >= 5:
            posted += datetime.timedelta(days=1)
        bank_meta = {"filename": "bank.csv", "lineno": n}
        if rng.random() < 0.5:
            bank_meta["reference"] = trace
        lines.append(
            data.Transaction(
                bank_meta,
                posted,
                "*",
                None,
                "STRIPE PAYOUT",
                frozenset(),
                frozenset(),
                [
                    _posting(BANK, amount, cur),
                    data.Posting("Equity:Unreconciled", None, None, None, None, None),
                ],
            )
        )
    return stripe, lines, records


def naive(lines: list[data.Transaction], items: list) -> dict[int, list[str]]:
    """Baseline: for each line, scan every transit item."""
    out = {}
    for n, line in enumerate(lines):
        units = line.postings[0].units
        out[n] = [
            i.key
            for i in items
            if i.currency == units.currency
            and i.bank_amount == units.number
            and i.first <= line.date <= i.last
        ]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    stripe, lines, records = build(args.size, args.seed)
    settings = [
        MatchSettings("firm", TRANSIT, PayoutsConfig(lag_days=3, bank_accounts=(BANK,)), records)
    ]
    ledger = [*stripe, *lines]

    t0 = time.perf_counter()
    out = match_entries(lines, ledger, settings)
    fast = time.perf_counter() - t0
    matched = sum(1 for e in out if e.links)
    flagged = sum(1 for e in out if e.flag == "!")

    items = [i for i, _sign in transit_items(ledger, settings[0])]
    t0 = time.perf_counter()
    candidates = naive(lines, items)
    slow = time.perf_counter() - t0
    unique = sum(1 for c in candidates.values() if len(c) == 1)

    print(f"bank lines: {len(lines):,}   payouts in transit: {len(items):,}")
    print(f"match_entries (index by currency+amount, window check): {fast:.3f} s")
    print(f"  matched {matched:,}, flagged {flagged:,} (ambiguous: same amount in the window)")
    print(f"baseline naive scan (every line x every payout):        {slow:.3f} s")
    print(f"  lines with exactly one candidate: {unique:,}")
    print(f"speed-up: {slow / fast:.1f}x")
    assert matched >= unique - flagged, "the indexed matcher lost matches the scan finds"


if __name__ == "__main__":
    main()
