"""A sync never writes a balance assertion that fails: it re-fetches, or it writes none.

Stripe back-dates some transactions into months a client has already fetched to their end.
Trusting "month complete" would skip them and the next assertion would fail in bean-check.
"""

from __future__ import annotations

import datetime
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

from beancount import loader
from beancount.core import data
from click.testing import CliRunner

from beancount_stripe.cli import main
from beancount_stripe.simulator import Simulator, World
from beancount_stripe.sync import UNTIED_EXIT, sync_client

from .conftest import ClientFactory, tree_digest
from .test_cli import write_config
from .test_sync import booked_ids, clearing_totals, expected_totals

ACME = "acct_1TestAcme00001"


def newest(world: World) -> int:
    return max(bt["created"] for bt in world.accounts[ACME].history.transactions)


def later(world: World, days: int = 0) -> int:
    """A clock ``days`` after the history's end; from 5 days on, its last month is complete."""
    return newest(world) + 3600 + days * 86400


def late_instant(world: World) -> int:
    """After the first sync's assertion day, inside a month that sync marked complete."""
    return newest(world) - 3600


def bean_check(path: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).parent / "bean-check"
    return subprocess.run([str(exe), str(path)], capture_output=True, text=True, check=False)


def post_late(sim: Simulator, created: int, amount: int, cur: str) -> str:
    query = urllib.parse.urlencode(
        {"account": ACME, "created": created, "amount": amount, "currency": cur}
    )
    req = urllib.request.Request(f"{sim.url}/_simulator/late?{query}", method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        import json

        return json.loads(resp.read())["id"]


def test_a_late_transaction_in_a_complete_month_is_fetched_and_booked(
    world: World, sim: Simulator, make_client: ClientFactory
) -> None:
    client = make_client()
    first = sync_client(client, now=later(world, 5))
    assert first.months_skipped == 0 and not first.untied
    late_id = post_late(sim, late_instant(world), -1_234, "usd")  # the simulator's admin route

    report = sync_client(client, now=later(world, 6))
    assert report.months_skipped >= 1, "its month was complete: only the tie-out finds it"
    assert [e.meta["stripe_id"] for e in report.booked] == [late_id]
    assert report.refetched_months >= 1 and not report.untied
    assert report.assertion_date is not None  # the day's assertion stands, and still holds
    check = bean_check(client.ledger)
    assert check.returncode == 0, check.stdout + check.stderr
    entries, errors, _ = loader.load_file(str(client.ledger))
    assert errors == []
    ids = booked_ids(entries)
    assert sorted(ids) == sorted(bt["id"] for bt in world.accounts[ACME].history.transactions)
    totals = clearing_totals(entries, client.accounts.clearing)
    assert {k: v for k, v in totals.items() if v} == expected_totals(world, ACME)
    month = datetime.datetime.fromtimestamp(late_instant(world), datetime.UTC)
    assert late_id in (client.archive_dir / f"{month:%Y-%m}.jsonl").read_text()


def test_a_transaction_not_yet_listed_is_reported_then_booked_once_listed(
    world: World, make_client: ClientFactory
) -> None:
    client = make_client()
    sync_client(client, now=later(world, 5))
    late = world.add_late(ACME, late_instant(world), 2_500, "usd", listed=False)

    hidden = sync_client(client, now=later(world, 6))
    assert hidden.untied == {"usd": 2_500} and hidden.assertions == []
    assert hidden.exit_code == UNTIED_EXIT
    assert bean_check(client.ledger).returncode == 0

    world.reveal(ACME)
    shown = sync_client(client, now=later(world, 7))
    assert [e.meta["stripe_id"] for e in shown.booked] == [late["id"]]
    assert not shown.untied and shown.assertion_date is not None
    check = bean_check(client.ledger)
    assert check.returncode == 0, check.stdout + check.stderr


def test_a_late_transaction_shows_in_a_dry_run_and_nothing_is_written(
    world: World, make_client: ClientFactory, tmp_path: Path
) -> None:
    client = make_client()
    sync_client(client, now=later(world, 5))
    late = world.add_late(ACME, late_instant(world), 5_000, "eur")
    before = tree_digest(tmp_path)
    report = sync_client(client, now=later(world, 6), dry_run=True)
    assert [e.meta["stripe_id"] for e in report.booked] == [late["id"]]
    assert not report.untied and late["id"] in report.text
    assert tree_digest(tmp_path) == before


def test_an_unexplained_difference_writes_entries_but_no_assertion(
    world: World, make_client: ClientFactory
) -> None:
    client = make_client()
    sync_client(client, now=later(world, 5))
    world.add_activity(ACME, 5)
    world.accounts[ACME].unlisted_balance["usd"] = 777  # no transaction explains it
    before = [e for e in loader.load_file(str(client.ledger))[0] if isinstance(e, data.Balance)]

    report = sync_client(client)
    assert report.untied == {"usd": 777}
    assert report.exit_code == UNTIED_EXIT
    assert len(report.booked) == 5 and report.assertions == []
    assert report.period is not None and report.period[0] < report.period[1]
    assert any("+7.77 USD" in w for w in report.warnings)
    entries, errors, _ = loader.load_file(str(client.ledger))
    assert errors == []
    after = [e for e in entries if isinstance(e, data.Balance)]
    assert after == before  # no new assertion
    assert bean_check(client.ledger).returncode == 0


def test_the_cli_exits_with_the_untied_status_and_names_the_difference(
    world: World, sim: Simulator, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.setenv("CLI_TEST_ACME_KEY", world.accounts[ACME].key)
    cfg = write_config(tmp_path, sim)
    world.accounts[ACME].unlisted_balance["eur"] = -50
    result = CliRunner().invoke(main, ["-c", str(cfg), "sync", "acme"])
    assert result.exit_code == UNTIED_EXIT, result.output
    assert "-0.50 EUR" in result.output and "no balance assertion" in result.output
    assert "Traceback" not in result.output
    ledger = tmp_path / "books" / "acme" / "ledger.beancount"
    assert bean_check(ledger).returncode == 0
