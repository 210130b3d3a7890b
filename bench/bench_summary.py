"""Benchmark the summary modes: Fava's first page of a 100k-BT ledger, per booking mode.

Books the same simulator history (``--size`` balance transactions, two currencies, five years)
three times, as ``sync`` would: one entry per transaction (the baseline, today's mode), one per
day (``booking: {mode: daily}``), one per payout (``{mode: payout}``, with the payout contents
recorded as ``sync`` records them). For each: the ledger's size, then the time from nothing
loaded to Fava's first page (Fava loads the ledger, then renders its default page through its own
Flask app, no network), and the Stripe page's first render. Issue 10's target: ≤ 2 s in a summary
mode (13.3 s in transaction mode at 100k).

Usage: python bench/bench_summary.py [--size 100000] [--seed 7]
"""

from __future__ import annotations

import argparse
import datetime
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import figures

from beancount_stripe import archive, ledger, rules, summary
from beancount_stripe.config import BookingConfig, load_config
from beancount_stripe.simulator import generate_history
from beancount_stripe.sync import month_of

ACCOUNT = "acct_1BenchSummary001"
MODES = ("transaction", "daily", "payout")


def payout_records(history: Any) -> dict[str, dict[str, Any]]:
    """What ``reconcile.record_payout_contents`` records, from the simulator's own objects."""
    by_id = {bt["id"]: bt for bt in history.transactions}
    own: dict[str, str] = {}
    for bt in history.transactions:
        src = bt.get("source")
        src_id = src.get("id") if isinstance(src, dict) else src
        if bt["type"] == "payout" and src_id:
            own[str(src_id)] = bt["id"]
    out = {}
    for po_id, obj in history.objects.items():
        if not po_id.startswith("po_") or po_id not in own:
            continue
        members = history.payout_members.get(po_id) if obj.get("automatic") else None
        out[po_id] = {
            "id": po_id,
            "amount": obj.get("amount"),
            "currency": obj.get("currency"),
            "created": obj.get("created"),
            "arrival_date": obj.get("arrival_date"),
            "automatic": bool(obj.get("automatic")),
            "status": obj.get("status"),
            "balance_transaction": own[po_id],
            "transactions": None
            if members is None
            else [
                {k: by_id[m].get(k) for k in ("id", "type", "created", "amount", "fee", "net")}
                | {"currency": by_id[m]["currency"]}
                for m in members
                if m != own[po_id] and m in by_id
            ],
        }
    return out


def write_books(root: Path, mode: str, history: Any) -> tuple[Path, int]:
    """Config, archive and a ledger booked in ``mode``; (main file, entries written)."""
    books = root / mode
    books.mkdir(parents=True)
    cfg = root / f"{mode}.yaml"
    cfg.write_text(
        "clients:\n"
        f"  - id: bench\n    name: Bench {mode}\n    stripe_account: {ACCOUNT}\n"
        f"    key: env:BENCH_STRIPE_KEY\n    ledger: {mode}/ledger.beancount\n"
        "    timezone: America/New_York\n"
        f"    booking: {{mode: {mode}}}\n"
        f"rules: {Path(__file__).resolve().parent.parent / 'config' / 'rules.yaml'}\n"
    )
    client = load_config(cfg).client("bench")
    assert client.booking == BookingConfig(mode=mode)
    bts = history.transactions
    tz = ZoneInfo(client.timezone)
    by_month: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for bt in bts:
        by_month[month_of(bt["created"], tz)].append(bt)
    for month, rows in by_month.items():
        archive.write_month(client.archive_dir, month, client.id, ACCOUNT, rows, complete=True)
    archive.write_payouts(client.archive_dir, client.id, ACCOUNT, payout_records(history))
    ruleset = rules.ruleset_for(client)
    entries = [e for e, _why in rules.book_with_rules(bts, client, ruleset)]
    plan = summary.plan_for(
        client,
        entries,
        bts,
        [],
        taken=(),
        now=max(bt["created"] for bt in bts) + 30 * 86400,
        overlap=datetime.timedelta(days=2),
        uncategorized=ruleset.uncategorized,
    )
    entries = plan.entries
    if plan.new:
        summary.write_index(client, plan.new)
    used = {p.account for e in entries for p in e.postings}
    opens = ledger.open_directives(used, set(), min(e.date for e in entries))
    client.output.write_text(
        ledger.format_entries(opens) + "\n" + ledger.format_entries(entries), encoding="utf-8"
    )
    client.ledger.write_text(
        f'option "title" "Bench {mode}"\noption "operating_currency" "USD"\n'
        '2021-01-01 custom "fava-extension" "beancount_stripe.fava_ext" '
        f"\"{{'config': '{cfg}', 'client': 'bench'}}\"\n"
        'include "stripe.beancount"\n',
        encoding="utf-8",
    )
    return client.ledger, len(entries)


def first_page(main_file: Path, mode: str) -> tuple[float, float, float]:
    """(load s, first default page s, first Stripe page s) through Fava's own app."""
    from fava.application import create_app

    t0 = time.perf_counter()
    app = create_app([str(main_file)], load=True)
    loaded = time.perf_counter() - t0
    client = app.test_client()
    slug = f"bench-{mode}"
    t1 = time.perf_counter()
    r = client.get(f"/{slug}/", follow_redirects=True)  # Fava's default page: income statement
    r2 = client.get(f"/{slug}/api/income_statement?interval=month")  # what its frontend asks
    assert r.status_code == 200 and r2.status_code == 200, (r.status_code, r2.status_code)
    page = time.perf_counter() - t1
    t2 = time.perf_counter()
    r = client.get(f"/{slug}/extension/Stripe/")
    assert r.status_code == 200 and b"stripe-review" in r.data, r.status_code
    return loaded, page, time.perf_counter() - t2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    history = generate_history(
        account_id=ACCOUNT,
        seed=args.seed,
        size=args.size,
        start=datetime.date(2021, 1, 1),
        end=datetime.date(2025, 12, 31),
        currencies=("usd", "eur"),
    )
    print(f"{args.size:,} balance transactions, {len(history.payout_members):,} automatic payouts")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for mode in MODES:
            t0 = time.perf_counter()
            main_file, n = write_books(Path(tmp), mode, history)
            booked = time.perf_counter() - t0
            out = main_file.with_name("stripe.beancount")
            size_mb = out.stat().st_size / 1e6
            lines = out.read_text(encoding="utf-8").count("\n")
            loaded, page, stripe_page = first_page(main_file, mode)
            rows.append((mode, n, size_mb, lines, booked, loaded, page, stripe_page))
    print(
        f"\n{'mode':<12} {'entries':>8} {'MB':>6} {'lines/BT':>8} {'book s':>7} "
        f"{'load s':>7} {'page s':>7} {'first page s':>12} {'Stripe page s':>13}"
    )
    for mode, n, mb, lines, booked, loaded, page, stripe_page in rows:
        print(
            f"{mode:<12} {n:>8,} {mb:>6.1f} {lines / args.size:>8.2f} {booked:>7.1f} "
            f"{loaded:>7.2f} {page:>7.2f} {loaded + page:>12.2f} {stripe_page:>13.2f}"
        )
    base = rows[0][5] + rows[0][6]
    for mode, *_rest, loaded, page, _sp in rows[1:]:
        first = loaded + page
        figures.record(f"fava_{mode}", first, "s", baseline=base, size=args.size)
        met = "met" if first <= 2.0 else "NOT met"
        print(
            f"{mode}: first page {first:.2f} s = {first / base:.2f}x transaction mode; ≤ 2 s {met}"
        )


if __name__ == "__main__":
    main()
