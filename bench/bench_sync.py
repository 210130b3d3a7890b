"""Benchmark a client's whole history: full sync, no-op re-sync, and each stage alone.

Prints figures; compares against baselines measured in the same run (never a timed assert):

- fetch baseline: paging the whole history with the bare stripe SDK (the least any tool must do);
- booking baseline: json-parsing the archive (the least any importer must do).

Usage: python bench/bench_sync.py [--size 100000] [--seed 1]
"""

from __future__ import annotations

import argparse
import datetime
import multiprocessing
import os
import tempfile
import time
from pathlib import Path

import stripe

from beancount_stripe import booking, ledger, sync
from beancount_stripe.config import ClientConfig, KeySource, make_accounts
from beancount_stripe.simulator import SimAccount, Simulator, World, generate_history


def timed(label: str, fn):  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    result = fn()
    dt = time.perf_counter() - t0
    print(f"  {label:<44} {dt:8.2f} s")
    return result, dt


ACCOUNT = "acct_1BenchAccount01"
KEY = "sk_test_benchKey000000001"


def serve(size: int, seed: int, ready: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """The simulator in its own process, so it does not share the GIL with the client."""
    t0 = time.perf_counter()
    history = generate_history(
        account_id=ACCOUNT,
        seed=seed,
        size=size,
        start=datetime.date(2019, 1, 1),
        end=datetime.date(2026, 10, 31),
        currencies=("usd", "eur", "jpy", "bhd"),
    )
    world = World([SimAccount(id=ACCOUNT, name="Bench", key=KEY, history=history)])
    sim = Simulator(world).start()
    ready.put((sim.url, time.perf_counter() - t0))
    time.sleep(3600)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    print(f"beancount-stripe benchmark: {args.size:,} balance transactions, seed {args.seed}")
    ready: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    server = multiprocessing.Process(target=serve, args=(args.size, args.seed, ready), daemon=True)
    server.start()
    url, t_gen = ready.get(timeout=600)
    print(f"  {'generate history (simulator process)':<44} {t_gen:8.2f} s")
    os.environ["BENCH_STRIPE_KEY"] = KEY
    try:
        run(args.size, url)
    finally:
        server.terminate()


def run(size: int, url: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        client = ClientConfig(
            id="bench",
            name="Bench",
            stripe_account=ACCOUNT,
            key=KeySource("env", "BENCH_STRIPE_KEY"),
            ledger=base / "ledger.beancount",
            output=base / "stripe.beancount",
            archive_dir=base / "archive",
            timezone="Europe/Berlin",
            accounts=make_accounts("Bench"),
            api_base=url,
        )

        def sdk_baseline() -> int:
            c = stripe.StripeClient(KEY, base_addresses={"api": url})
            page = c.v1.balance_transactions.list(params={"limit": 100, "expand": ["data.source"]})
            return sum(1 for _ in page.auto_paging_iter())

        print("baselines")
        n, t_sdk = timed("bare SDK paging of the whole history", sdk_baseline)
        assert n == size

        print("beancount-stripe")
        gw = sync.gateway_for(client, rate_limit=0)
        report, t_full = timed(
            "full sync (4 concurrent month windows)", lambda: sync.sync_client(client, gateway=gw)
        )
        assert len(report.booked) == size
        _, t_again = timed(
            "second sync (nothing new)",
            lambda: sync.sync_client(client, gateway=sync.gateway_for(client, rate_limit=0)),
        )
        bts, t_read = timed("read whole archive (json parse)", lambda: sync.read_archive(client))
        _, t_book = timed(
            "book all (booking.book_all)", lambda: booking.book_all(bts.values(), client)
        )
        _, t_scan = timed("scan ledger for stripe_ids", lambda: ledger.scan(client.ledger))
        size_mb = client.output.stat().st_size / 1e6
        print("figures")
        print(f"  full sync / bare SDK paging              {t_full / t_sdk:8.2f} x")
        print(f"  booking / json parse of the same data    {t_book / t_read:8.2f} x")
        print(f"  transactions per second (full sync)      {size / t_full:8.0f}")
        print(f"  no-op sync                               {t_again:8.2f} s")
        print(f"  ledger scan                              {t_scan:8.2f} s for {size_mb:.1f} MB")


if __name__ == "__main__":
    main()
