"""Benchmark the Fava Stripe page on a ledger of 100,000 Stripe transactions already loaded by Fava.

Measures server-side render time through Fava's own Flask app (its test client, no network):
the first render after a load (the page's figures are computed once per load: balances,
payouts, monthly figures, review queue, Capital), then warm renders (cached by the ledger's
load, nothing re-read but the small sync-state file and file mtimes). The named baseline,
measured in the same run on the same loaded ledger: Fava's own income statement (the HTML page
plus the JSON API call its frontend makes for the data).

Usage: python bench/bench_fava_page.py [--size 100000] [--renders 20] [--seed 7]
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from beancount_stripe import archive, ledger, rules, sync_state
from beancount_stripe.config import load_config
from beancount_stripe.simulator import generate_history
from beancount_stripe.sync import month_of

ACCOUNT = "acct_1BenchFavaPage01"


def write_books(root: Path, size: int, seed: int) -> Path:
    """Config, archive and a synced-looking ledger of ``size`` transactions under ``root``."""
    books = root / "books"
    books.mkdir(parents=True)
    cfg = root / "clients.yaml"
    cfg.write_text(
        "clients:\n"
        f"  - id: bench\n    name: Bench Roasters\n    stripe_account: {ACCOUNT}\n"
        "    key: env:BENCH_STRIPE_KEY\n    ledger: books/ledger.beancount\n"
        "    timezone: America/New_York\n"
        f"rules: {Path(__file__).resolve().parent.parent / 'config' / 'rules.yaml'}\n"
    )
    client = load_config(cfg).client("bench")
    history = generate_history(
        account_id=ACCOUNT,
        seed=seed,
        size=size,
        start=datetime.date(2021, 1, 1),
        end=datetime.date(2025, 12, 31),
        currencies=("usd", "eur"),
    )
    bts = history.transactions
    tz = __import__("zoneinfo").ZoneInfo(client.timezone)
    by_month: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for bt in bts:
        by_month[month_of(bt["created"], tz)].append(bt)
    for month, rows in by_month.items():
        archive.write_month(client.archive_dir, month, client.id, ACCOUNT, rows, complete=True)
    entries = [e for e, _why in rules.book_with_rules(bts, client, rules.ruleset_for(client))]
    used = {p.account for e in entries for p in e.postings}
    first = min(e.date for e in entries)
    opens = ledger.open_directives(used, set(), first)
    client.output.write_text(
        ledger.format_entries(opens) + "\n" + ledger.format_entries(entries), encoding="utf-8"
    )
    client.ledger.write_text(
        'option "title" "Bench Roasters"\noption "operating_currency" "USD"\n'
        '2021-01-01 custom "fava-extension" "beancount_stripe.fava_ext" '
        f"\"{{'config': '{cfg}', 'client': 'bench'}}\"\n"
        'include "stripe.beancount"\n',
        encoding="utf-8",
    )
    totals = sync_state.clearing_totals(client, [client.output])
    sync_state.record(
        client,
        sync_state.SyncRun(
            client.id,
            sync_state.now_iso(),
            sync_state.now_iso(),
            "cron",
            "ok",
            entries_added=len(entries),
            stripe_balance=totals,
            ledger_clearing=totals,
        ),
    )
    return client.ledger


def timed(fn: Any, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--renders", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    from fava.application import create_app

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        main_file = write_books(Path(tmp), args.size, args.seed)
        took = time.perf_counter() - t0
        print(f"wrote {args.size:,} booked transactions + archive in {took:.1f} s")
        t0 = time.perf_counter()
        app = create_app([str(main_file)], load=True)
        print(f"Fava loaded the ledger in {time.perf_counter() - t0:.1f} s (not part of a render)")
        client = app.test_client()
        slug = "bench-roasters"

        def page() -> None:
            r = client.get(f"/{slug}/extension/Stripe/")
            assert r.status_code == 200 and b"stripe-review" in r.data, r.status_code

        def income_statement() -> None:
            r1 = client.get(f"/{slug}/income_statement/")
            r2 = client.get(f"/{slug}/api/income_statement?interval=month")
            assert r1.status_code == 200 and r2.status_code == 200

        ext: Any = app.config["LEDGERS"].ledgers[0].extensions.get_extension("Stripe")

        def precompute() -> None:  # what the extension adds to each load of the ledger
            from beancount_stripe.review import ArchiveCache

            ext._snapshot, ext._capital, ext._archive = None, None, ArchiveCache()
            ext.after_load_file()

        load_share = timed(precompute, 1)[0]
        first = timed(page, 1)[0]
        warm = timed(page, args.renders)
        base = timed(income_statement, args.renders)
        med = statistics.median
        print(f"\nserver-side render, {args.size:,} Stripe transactions loaded by Fava:")
        print(f"  extension's figures, computed with each load {load_share:8.1f} ms")
        print(f"  Stripe page, first render after load   {first:8.1f} ms")
        print(f"  Stripe page, warm (median of {args.renders})        {med(warm):8.1f} ms")
        print(f"  baseline: Fava income statement (page + API, median) {med(base):8.1f} ms")
        print(f"  warm page / baseline                    {med(warm) / med(base):8.2f} x")
        met = "met" if max(first, med(warm)) <= 300 else "NOT met"
        print(f"  target: ≤ 300 ms server-side -> {met}")


if __name__ == "__main__":
    main()
