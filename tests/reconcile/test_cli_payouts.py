"""`beancount-stripe payouts` through click's runner, after a real sync against the simulator."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from beancount_stripe import archive, reconcile
from beancount_stripe.cli import main
from beancount_stripe.config import load_config
from beancount_stripe.simulator import Simulator, World


def write_config(tmp_path: Path, sim: Simulator, payouts: str = "") -> Path:
    cfg = tmp_path / "config" / "clients.yaml"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text(
        f"""\
clients:
  - id: acme
    name: Acme Test
    stripe_account: acct_1TestAcme00001
    key: env:CLI_TEST_ACME_KEY
    ledger: ../books/acme/ledger.beancount
    timezone: UTC
    api_base: {sim.url}
{payouts}""",
        encoding="utf-8",
    )
    return cfg


@pytest.fixture
def synced(tmp_path: Path, sim: Simulator, world: World, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CLI_TEST_ACME_KEY", world.accounts["acct_1TestAcme00001"].key)
    cfg = write_config(
        tmp_path,
        sim,
        "    payouts:\n      lag_days: 2\n      bank_accounts: [Assets:Acme:Bank]\n",
    )
    result = CliRunner().invoke(main, ["-c", str(cfg), "sync", "acme"])
    assert result.exit_code == 0, result.output
    assert "payouts: 0 matched to the bank" in result.output
    return cfg


def test_table_json_and_one_payout(synced: Path) -> None:
    runner = CliRunner()
    table = runner.invoke(main, ["-c", str(synced), "payouts", "acme"])
    assert table.exit_code == 0, table.output
    client = load_config(synced).client("acme")
    rows = reconcile.list_payouts(client)
    assert all(r.id in table.output for r in rows)
    assert "charges" in table.output.splitlines()[0] and "manual" in table.output
    out = runner.invoke(main, ["-c", str(synced), "payouts", "acme", "--json"])
    listed = json.loads(out.output)
    assert [r["id"] for r in listed] == [r.id for r in rows]
    for r in listed:
        assert {
            "id",
            "currency",
            "amount",
            "arrival_date",
            "status",
            "matched",
            "breakdown",
        } <= set(r)
        assert r["currency"].isupper() and Decimal(r["amount"]) > 0
        if r["automatic"]:
            assert sum(Decimal(v) for v in r["breakdown"].values()) == Decimal(r["amount"])
    since = runner.invoke(
        main, ["-c", str(synced), "payouts", "acme", "--since", "2025-06-01", "--json"]
    )
    assert [r["id"] for r in json.loads(since.output)] == [
        r.id for r in rows if r.created.isoformat() >= "2025-06-01"
    ]
    auto = next(r for r in rows if r.automatic and r.transactions > 1)
    one = runner.invoke(main, ["-c", str(synced), "payouts", "acme", auto.id])
    assert one.exit_code == 0, one.output
    members = archive.read_payouts(client.archive_dir)[auto.id]["transactions"]
    assert all(m["id"] in one.output for m in members)
    assert "(not booked yet)" not in one.output and "Income:Acme" in one.output
    missing = runner.invoke(main, ["-c", str(synced), "payouts", "acme", "po_nope"])
    assert missing.exit_code == 2 and "no payout po_nope" in missing.output


def test_help_texts(synced: Path) -> None:
    runner = CliRunner()
    assert "payouts" in runner.invoke(main, ["--help"]).output
    group = runner.invoke(main, ["payouts", "--help"])
    assert group.exit_code == 0 and "match" in group.output and "--unmatched" in group.output
    listing = runner.invoke(main, ["payouts", "list", "--help"])
    assert "--since" in listing.output and "--json" in listing.output


def test_match_appends_linked_entries_and_never_rewrites_bank_entries(synced: Path) -> None:
    client = load_config(synced).client("acme")
    rows = [r for r in reconcile.list_payouts(client) if r.status == "paid"][:3]
    books = client.ledger.parent
    lines = "".join(
        f"""
{r.arrival_date} * "Bank" "STRIPE PAYOUT"
  Assets:Acme:Bank  {r.amount} {r.currency}
  Equity:Unreconciled
"""
        for r in rows
    )
    bank = books / "bank.beancount"
    bank.write_text(
        "2020-01-01 open Assets:Acme:Bank\n2020-01-01 open Equity:Unreconciled\n" + lines,
        encoding="utf-8",
    )
    with open(client.ledger, "a", encoding="utf-8") as f:
        f.write('include "bank.beancount"\n')
    before = bank.read_bytes()
    runner = CliRunner()
    dry = runner.invoke(main, ["-c", str(synced), "payouts", "match", "acme", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "would append 3 matched entries" in dry.output
    assert all(
        f'+{r.arrival_date} * "Bank" "Bank line clears {r.id}" ^{r.id}' in dry.output for r in rows
    )
    assert not (books / "payouts.beancount").exists()
    refused = runner.invoke(main, ["-c", str(synced), "payouts", "match", "acme"])
    assert refused.exit_code == 5 and 'include "payouts.beancount"' in refused.output
    with open(client.ledger, "a", encoding="utf-8") as f:
        f.write('include "payouts.beancount"\n')
    done = runner.invoke(main, ["-c", str(synced), "payouts", "match", "acme"])
    assert done.exit_code == 0 and "appended 3 matched entries" in done.output
    assert bank.read_bytes() == before, "the user's bank entries are not rewritten"
    matched = {r.id for r in reconcile.list_payouts(client) if r.matched}
    assert matched == {r.id for r in rows}
    again = runner.invoke(main, ["-c", str(synced), "payouts", "match", "acme"])
    assert "appended 0 matched entries" in again.output, "nothing is matched twice"
    unmatched = runner.invoke(main, ["-c", str(synced), "payouts", "acme", "--unmatched", "--json"])
    assert not {r["id"] for r in json.loads(unmatched.output)} & matched


def test_match_without_bank_accounts_is_a_config_error(
    tmp_path: Path, sim: Simulator, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = write_config(tmp_path, sim)
    result = CliRunner().invoke(main, ["-c", str(cfg), "payouts", "match", "acme"])
    assert result.exit_code == 2 and "bank_accounts" in result.output
