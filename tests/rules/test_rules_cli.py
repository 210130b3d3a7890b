"""The rule commands through click's runner, and rules in sync, beangulp and Fava alike."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from beancount.parser import printer
from click.testing import CliRunner

from beancount_stripe import archive
from beancount_stripe.cli import main
from beancount_stripe.config import load_config
from beancount_stripe.importer import BalanceTransactionImporter
from beancount_stripe.simulator import Simulator, World
from beancount_stripe.sync import fetch_client, sync_client

from ..conftest import tree_digest
from .conftest import DEFAULT_RULES

CLIENT_RULES = """\
parties:
  - payee: Big Customer
    names: [{name}]
rules:
  - name: big customer
    when: {{type: charge, party: Big Customer, currency: usd}}
    account: "Income:{{client}}:Key-Accounts"
    tags: [key-account]
  - name: plans
    when: {{type: [charge, payment], description: {{regex: '(Starter|Pro) plan'}}}}
    account: "Income:{{client}}:Plans"
    narration: "{{1}} plan"
  - name: usd workshops
    when: {{type: charge, currency: usd, description: {{contains: Workshop ticket}}}}
    account: "Income:{{client}}:Workshops"
"""


@pytest.fixture
def setup(tmp_path: Path, sim: Simulator, world: World, monkeypatch: pytest.MonkeyPatch) -> Path:
    account = world.accounts["acct_1TestAcme00001"]
    monkeypatch.setenv("RULES_CLI_KEY", account.key)
    names = [
        bt_source["billing_details"]["name"]
        for bt_source in account.history.objects.values()
        if bt_source.get("object") == "charge" and bt_source.get("customer")
    ]
    top = max(set(names), key=names.count)
    cfg_dir = tmp_path / "config"
    (cfg_dir / "rules").mkdir(parents=True)
    (cfg_dir / "rules.yaml").write_text(DEFAULT_RULES.read_text())
    (cfg_dir / "rules" / "acme.yaml").write_text(CLIENT_RULES.format(name=json.dumps(top)))
    cfg = cfg_dir / "clients.yaml"
    cfg.write_text(
        f"""\
defaults:
  timezone: Europe/Berlin
  api_base: {sim.url}
rules: rules.yaml
clients:
  - id: acme
    name: Acme Test GmbH
    stripe_account: acct_1TestAcme00001
    key: env:RULES_CLI_KEY
    ledger: ../books/acme/ledger.beancount
    rules: rules/acme.yaml
"""
    )
    return cfg


def run(cfg: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["-c", str(cfg), *args])
    return result.exit_code, result.output


def test_sync_reports_rule_coverage_and_applies_rules(setup: Path) -> None:
    code, out = run(setup, "sync", "acme")
    assert code == 0, out
    line = next(x for x in out.splitlines() if x.strip().startswith("rules ("))
    assert re.search(r"rules \(2 file\(s\)\): [\d,]+ of [\d,]+ entries categorized by a rule", line)
    assert "plans" in line and "sales" in line
    text = (setup.parent.parent / "books" / "acme" / "stripe.beancount").read_text()
    assert "Income:AcmeTestGmbh" not in text and "Income:Acme:Plans" in text
    assert "#key-account" in text and '"Big Customer"' in text


def test_beangulp_extract_gives_the_same_entries_as_sync(setup: Path) -> None:
    (client,) = load_config(setup).clients
    fetch_client(client)
    importer = BalanceTransactionImporter(client)
    files = [p for _m, p in archive.month_files(client.archive_dir)]
    extracted = sorted(printer.format_entry(e) for p in files for e in importer.extract(str(p), []))
    synced = sorted(printer.format_entry(e) for e in sync_client(client, dry_run=True).booked)
    assert extracted == synced
    assert any("Income:Acme:Plans" in e for e in extracted)


def test_explain(setup: Path) -> None:
    assert run(setup, "sync", "acme")[0] == 0
    (client,) = load_config(setup).clients
    bts = [
        bt
        for _m, p in archive.month_files(client.archive_dir)
        for bt in archive.read_transactions(p)
    ]
    plan = next(
        bt
        for bt in bts
        if bt["type"] == "charge"
        and "Pro plan" in (bt["description"] or "")
        and bt["currency"] == "eur"
    )
    code, out = run(setup, "rules", "explain", plan["id"])
    assert code == 0, out
    assert re.search(r"account\s+Income:Acme:Plans\s+← rule 'plans' \(.*acme\.yaml:\d+\)", out)
    assert "narration  Pro plan  ← rule 'plans'" in out
    assert "flag       *  ← derived: categorized" in out
    assert "near misses" in out and "usd workshops" not in out.split("near misses")[0]
    # by the source id, from a file, and a client the id does not belong to
    code2, out2 = run(setup, "rules", "explain", plan["source"]["id"], "--client", "acme")
    assert code2 == 0 and plan["id"] in out2
    month_file = next(
        p for _m, p in archive.month_files(client.archive_dir) if plan["id"] in p.read_text()
    )
    code3, out3 = run(setup, "rules", "explain", plan["id"], "--file", str(month_file))
    assert code3 == 0 and "Income:Acme:Plans" in out3
    code4, out4 = run(setup, "rules", "explain", "txn_nope")
    assert code4 == 2 and "no balance transaction txn_nope" in out4 and "Traceback" not in out4


def test_explain_shows_near_misses(setup: Path) -> None:
    assert run(setup, "sync", "acme")[0] == 0
    (client,) = load_config(setup).clients
    bts = [
        bt
        for _m, p in archive.month_files(client.archive_dir)
        for bt in archive.read_transactions(p)
    ]
    eur_workshop = next(
        (
            bt
            for bt in bts
            if bt["type"] == "charge"
            and bt["currency"] == "eur"
            and "Workshop ticket" in (bt["description"] or "")
        ),
        None,
    )
    if eur_workshop is None:
        pytest.skip("the simulated history has no EUR workshop charge")
    code, out = run(setup, "rules", "explain", eur_workshop["id"])
    assert code == 0
    near = out.split("near misses")[1]
    assert "usd workshops" in near and "failed currency = \"usd\" (was 'eur')" in near


def test_rules_test_coverage_and_fail_under(setup: Path) -> None:
    assert run(setup, "fetch", "acme")[0] == 0
    code, out = run(setup, "rules", "test", "acme")
    assert code == 0, out
    first = out.splitlines()[0]
    match = re.search(r"([\d,]+) transaction\(s\); ([\d,]+) categorized \(([\d.]+)%\)", first)
    assert match
    pct = float(match.group(3))
    assert 0 < pct < 100
    assert "plans" in out and "sales" in out and "uncategorized" in out
    assert "most common uncategorized descriptions:" in out
    assert run(setup, "rules", "test", "acme", "--fail-under", str(pct))[0] == 0
    code, out = run(setup, "rules", "test", "--all", "--fail-under", str(min(100.0, pct + 0.1)))
    assert code == 1 and "under --fail-under" in out


def test_rules_suggest_prints_pasteable_yaml(setup: Path) -> None:
    assert run(setup, "sync", "acme")[0] == 0
    books = setup.parent.parent / "books" / "acme" / "stripe.beancount"
    text = books.read_text()
    # the bookkeeper books every "Replacement part" charge to Parts by hand
    blocks = text.split("\n\n")
    for i, block in enumerate(blocks):
        if 'stripe_type: "charge"' in block and "Replacement part" in block:
            blocks[i] = block.replace("Income:Acme:Sales", "Income:Acme:Parts")
    text = "\n\n".join(blocks)
    opening = "open Income:Acme:Sales"
    books.write_text(text.replace(opening, f"{opening}\n\n2000-01-01 open Income:Acme:Parts", 1))
    code, out = run(setup, "rules", "suggest")
    assert code == 0, out
    data = yaml.safe_load(out)
    (rule,) = [r for r in data["rules"] if r["account"] == "Income:Acme:Parts"]
    assert "replacement part" in json.dumps(rule["when"]).casefold()
    assert "categorized by hand" in out


def test_recategorize_cli(setup: Path, tmp_path: Path) -> None:
    assert run(setup, "sync", "acme")[0] == 0
    rules_file = setup.parent / "rules" / "acme.yaml"
    rules_file.write_text(
        rules_file.read_text()
        + "  - name: climate\n"
        + "    when: {type: {prefix: climate_}}\n"
        + '    account: "Expenses:{client}:Climate"\n'
    )
    books = setup.parent.parent / "books"
    digest = tree_digest(books)
    code, out = run(setup, "recategorize", "acme", "--dry-run")
    assert code == 0, out
    assert "would rewrite" in out and "+  Expenses:Acme:Climate" in out
    assert tree_digest(books) == digest
    code, out = run(setup, "recategorize", "--all")
    assert code == 0 and "rewrote" in out
    assert "Expenses:Acme:Climate" in (books / "acme" / "stripe.beancount").read_text()
    code, out = run(setup, "recategorize", "acme")
    assert code == 0 and "rewrote 0" in out


def test_invalid_rules_stop_sync_before_anything_is_fetched(setup: Path) -> None:
    (setup.parent / "rules" / "acme.yaml").write_text(
        "rules:\n  - name: oops\n    when: {type: {regex: '['}}\n    account: revenue\n"
    )
    code, out = run(setup, "sync", "acme")
    assert code == 2
    assert "acme.yaml:3" in out and "rule `oops`" in out and "Traceback" not in out
    assert not (setup.parent.parent / "books").exists()
    code, out = run(setup, "config", "check")
    assert code == 2 and "acme.yaml:3" in out


def test_config_check_lists_the_rules_files(setup: Path) -> None:
    code, out = run(setup, "config", "check")
    assert code == 0, out
    assert re.search(r"rules .*rules/acme\.yaml: 3 rule\(s\), 1 party \(acme\)", out)
    assert re.search(r"rules .*rules\.yaml: 24 rule\(s\), 0 parties \(acme\)", out)
