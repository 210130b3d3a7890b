"""Benchmark booking + writing: 100,000 balance transactions to ledger text, beside baselines.

One run measures, on the same simulator history (cached under $TMPDIR; the first run generates
it), each figure next to its baseline:

- **ours, extract path**: the beangulp importer (``BalanceTransactionImporter.extract``: read the
  archive file, book, refine with the client's rules, mark duplicates) and the ledger writer
  (``ledger.format_entries``), i.e. what ``import.py extract`` and ``sync`` produce;
- **ours, sync's booking**: the same from transactions already parsed (what ``sync`` does after
  fetching);
- **beangulp-stripe 0.3** (PyPI ``beangulp-stripe==0.3.0``, installed for the bench only) on the
  same transactions as a JSON array, its entries printed by Beancount's printer;
- **Beancount's printer** (the old way): our entries printed by ``printer.format_entry``;
- the same extract path with the cyclic garbage collector left running;
- the rule engine: µs per transaction of 0 and of 500 *live* rules (bench/live_rules.py) on
  top of booking, and the throughput of book + 500 rules + write.

Each figure is the best of ``--repeat`` runs, in process CPU time (the machine is shared; wall
time is printed too). Writes its section of bench/RESULTS.md.

Usage: python bench/bench_booking.py [--size 100000] [--seed 1] [--repeat 3] [--no-results]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

from beancount.parser import printer

from beancount_stripe import archive, booking, heap, importer, ledger, rules
from beancount_stripe.config import ClientConfig, KeySource, make_accounts
from beancount_stripe.simulator import generate_history

sys.path.insert(0, str(Path(__file__).resolve().parent))
import figures as handed
from figures import best
from live_rules import client_rules, live_count

REPO = Path(__file__).resolve().parent.parent
DEFAULT_RULES = REPO / "config" / "rules.yaml"
ACCOUNT = "acct_1BenchBooking001"
CURRENCIES = ("usd", "eur", "jpy", "bhd")


def history(size: int, seed: int, cache: Path) -> tuple[Path, Path, list[dict[str, Any]]]:
    """(archive file, JSON array file, transactions), generated once per size and seed."""
    folder = cache / f"history-{size}-{seed}"
    archive_file = folder / "archive" / "2026-10.jsonl"
    array_file = folder / "balance-transactions.json"
    if not (archive_file.exists() and array_file.exists()):
        made = generate_history(
            account_id=ACCOUNT,
            seed=seed,
            size=size,
            start=datetime.date(2019, 1, 1),
            end=datetime.date(2026, 10, 31),
            currencies=CURRENCIES,
        )
        bts = []
        for bt in made.transactions:
            bt = dict(bt)
            if isinstance(bt.get("source"), str) and bt["source"] in made.objects:
                bt["source"] = made.objects[bt["source"]]
            bts.append(bt)
        (folder / "archive").mkdir(parents=True, exist_ok=True)
        archive.write_month(folder / "archive", "2026-10", "bench", ACCOUNT, bts, complete=True)
        array_file.write_text(json.dumps(bts), encoding="utf-8")
    return archive_file, array_file, archive.read_transactions(archive_file)


def printer_text(entries: list[Any]) -> str:
    """``ledger.format_entries`` as it was: Beancount's printer for every entry."""
    parts: list[str] = []
    prev_single = False
    for entry in entries:
        text = printer.format_entry(entry)
        single = text.count("\n") == 1
        if parts and not (single and prev_single):
            parts.append("\n")
        parts.append(text)
        prev_single = single
    return "".join(parts)


def baseline_importer() -> Any:
    """beangulp-stripe 0.3, configured like our defaults: every currency to the clearing
    account, fees and fee tax split out, payee rules sending the common types to accounts."""
    import beangulp_stripe

    clearing = "Assets:Bench:Stripe"
    return beangulp_stripe.Importer(
        {c: clearing for c in CURRENCIES},
        fees_account="Expenses:Bench:Stripe:Fees",
        tax_account="Expenses:Bench:Stripe:Fee-Tax",
        account_id=ACCOUNT,
        payee_rules=[
            ("payout", "Assets:Bench:Transfers:Stripe", "*"),
            ("refund", "Income:Bench:Refunds", "*"),
            ("charge|payment", "Income:Bench:Sales", "*"),
        ],
    )


def client(base: Path, own: tuple[Path, ...], shared: tuple[Path, ...]) -> ClientConfig:
    return ClientConfig(
        id="bench",
        name="Bench",
        stripe_account=ACCOUNT,
        key=KeySource("env", "UNUSED"),
        ledger=base / "ledger.beancount",
        output=base / "stripe.beancount",
        archive_dir=base / "archive",
        timezone="Europe/Berlin",
        accounts=make_accounts("Bench"),
        rules=own,
        shared_rules=shared,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rules", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-results", action="store_true", help="do not write RESULTS.md")
    args = parser.parse_args()
    cache = Path(os.environ.get("TMPDIR", tempfile.gettempdir())) / "beancount-stripe-bench"
    n = args.size
    print(f"booking benchmark: {n:,} balance transactions, seed {args.seed}, best of {args.repeat}")
    archive_file, array_file, bts = history(n, args.seed, cache)
    assert len(bts) == n, len(bts)
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        plain = client(base, (), (DEFAULT_RULES,))  # the shared default rules, as shipped
        ours = importer.BalanceTransactionImporter(plain)
        theirs = baseline_importer()

        def extract() -> str:
            return ledger.format_entries(ours.extract(str(archive_file), []))

        print("book + write to ledger text, extract path")
        out["ours"], text = best(
            "ours: importer.extract + ledger.format_entries", args.repeat, extract
        )
        out["baseline"], base_text = best(
            "baseline: beangulp-stripe 0.3 extract + Beancount's printer",
            args.repeat,
            lambda: printer_text(theirs.extract(str(array_file), [])),
        )
        out["printer"], old_text = best(
            "baseline: ours with Beancount's printer (the old way)",
            args.repeat,
            lambda: printer_text(ours.extract(str(archive_file), [])),
        )
        assert text == old_text, "the direct writer must write what Beancount's printer writes"
        out["sync"], _ = best(
            "ours from parsed BTs: book_with_rules + format_entries (sync)",
            args.repeat,
            lambda: ledger.format_entries(e for e, _ in rules.book_with_rules(bts, plain)),
        )
        with _gc_left_on():
            out["gc_on"], _ = best("ours with the garbage collector left running", 1, extract)
        print(
            f"  (ledger text: ours {len(text) / 1e6:.1f} MB, "
            f"beangulp-stripe {len(base_text) / 1e6:.1f} MB)"
        )

        print(f"rules ({args.rules} live rules, 100 parties)")
        own = base / "client-rules.yaml"
        n_default = len(rules.load_rules(DEFAULT_RULES).rules)
        rules_text, witnesses = client_rules(args.rules - n_default, bts, random.Random(args.seed))
        own.write_text(rules_text, encoding="utf-8")
        ruled = client(base, (own,), (DEFAULT_RULES,))
        bare = client(base, (), ())
        ruleset, empty = rules.ruleset_for(ruled), rules.ruleset_for(bare)
        live = live_count(ruleset, rules, booking, ruled, witnesses, bts)
        print(f"  live rules (match at least one transaction) {live:>15} of {len(ruleset.rules)}")
        rules.book_with_rules(bts[:2000], ruled, ruleset)  # build the per-type indexes once
        out["rules0"], _ = best(
            "book + 0 rules (rules.book_with_rules)",
            args.repeat,
            lambda: rules.book_with_rules(bts, bare, empty),
        )
        out["rules500"], pairs = best(
            f"book + {len(ruleset.rules)} rules",
            args.repeat,
            lambda: rules.book_with_rules(bts, ruled, ruleset),
        )
        out["rules500_write"], _ = best(
            f"book + {len(ruleset.rules)} rules + write",
            args.repeat,
            lambda: ledger.format_entries(e for e, _ in rules.book_with_rules(bts, ruled, ruleset)),
        )
        matched = sum(len(why.matched) for _e, why in pairs) / n
    report = figures(n, out, live, len(ruleset.rules), matched)
    handed.record("booking_extract", n / out["ours"], "BTs/s", baseline=n / out["baseline"], size=n)
    handed.record(
        "rules_500",
        (out["rules500"] - out["rules0"]) / n * 1e6,
        "µs/BT",
        baseline=out["rules0"] / n * 1e6,
        note=f"{live} of {len(ruleset.rules)} live, {matched:.1f} matched per BT",
    )
    print("figures")
    for line in report:
        print("  " + line)
    if not args.no_results:
        write_results(n, args, report)


@contextlib.contextmanager
def _gc_left_on() -> Any:
    saved = heap.quiet_gc
    heap.quiet_gc = contextlib.nullcontext  # type: ignore[assignment]
    try:
        yield
    finally:
        heap.quiet_gc = saved


def figures(n: int, t: dict[str, float], live: int, total: int, matched: float) -> list[str]:
    rate = {k: n / v for k, v in t.items()}
    rules_us = (t["rules500"] - t["rules0"]) / n * 1e6
    return [
        f"ours, book + write (extract path)        {rate['ours']:>9,.0f} BTs/s",
        f"beangulp-stripe 0.3, same input          {rate['baseline']:>9,.0f} BTs/s"
        f"   ours = {rate['ours'] / rate['baseline']:.1f}x",
        f"ours from parsed BTs (sync's booking)    {rate['sync']:>9,.0f} BTs/s",
        f"ours with Beancount's printer (old way)  {rate['printer']:>9,.0f} BTs/s"
        f"   ours = {rate['ours'] / rate['printer']:.1f}x",
        f"ours with the GC left running            {rate['gc_on']:>9,.0f} BTs/s"
        f"   ours = {rate['ours'] / rate['gc_on']:.1f}x",
        f"book, 0 rules                            {t['rules0'] / n * 1e6:>9.1f} µs/BT",
        f"rules on top of booking, {total} live rules {rules_us:>7.1f} µs/BT"
        f"   ({live} of {total} live, {matched:.1f} matched per BT)",
        f"book + {total} rules + write                {rate['rules500_write']:>9,.0f} BTs/s",
    ]


def write_results(n: int, args: argparse.Namespace, report: list[str]) -> None:
    handed.write_section(
        "bench_booking",
        [
            "## Booking and writing (bench/bench_booking.py)",
            "",
            f"`python bench/bench_booking.py --size {n} --seed {args.seed} --repeat "
            f"{args.repeat}`, {datetime.date.today()}, best of {args.repeat}, process CPU time "
            "(the machine is shared). Targets (issue 10): ≥ 50k BTs/s and ≥ 6× beangulp-stripe "
            "0.3 for book + write; ≤ 10 µs per BT for 500 live rules. beangulp-stripe runs as "
            "its users run it, the garbage collector in its normal state (none of our "
            "`heap.quiet_gc`).",
            "",
            "```",
            *report,
            "```",
        ],
    )


if __name__ == "__main__":
    main()
