"""Unattended syncs: `sync --json` against its schema, `--quiet`, `--on-failure`, `--check`."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from beancount_stripe.cli import main
from beancount_stripe.monitor import schema
from beancount_stripe.simulator import Simulator, World


def write_config(tmp_path: Path, sim: Simulator) -> Path:
    """Two clients; `broken`'s key opens the wrong account, so it fails with exit status 3."""
    cfg = tmp_path / "config" / "clients.yaml"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text(
        f"""\
defaults:
  timezone: Europe/Berlin
  api_base: {sim.url}
clients:
  - id: broken
    name: Broken Key Ltd
    stripe_account: acct_1TestAcme00001
    key: env:MON_TEST_BROKEN_KEY
    ledger: ../books/broken/ledger.beancount
  - id: other
    name: Other GmbH
    stripe_account: acct_1TestOther0002
    key: env:MON_TEST_OTHER_KEY
    ledger: ../books/other/ledger.beancount
    operating_currency: EUR
""",
        encoding="utf-8",
    )
    return cfg


@pytest.fixture
def cfg(tmp_path: Path, sim: Simulator, world: World, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MON_TEST_BROKEN_KEY", world.accounts["acct_1TestOther0002"].key)
    monkeypatch.setenv("MON_TEST_OTHER_KEY", world.accounts["acct_1TestOther0002"].key)
    return write_config(tmp_path, sim)


def hook_command(tmp_path: Path) -> tuple[str, Path]:
    """A hook that appends what it received (stdin JSON and env) to a file, one line per run."""
    log = tmp_path / "hook.log"
    script = tmp_path / "hook.py"
    script.write_text(
        "import json, os, sys\n"
        "summary = json.load(sys.stdin)\n"
        f"with open({str(log)!r}, 'a') as f:\n"
        "    f.write(json.dumps({'failed': summary['failed'],\n"
        "        'env_failed': os.environ['BEANCOUNT_STRIPE_FAILED'],\n"
        "        'env_exit': os.environ['BEANCOUNT_STRIPE_EXIT'],\n"
        "        'env_summary': os.environ['BEANCOUNT_STRIPE_SUMMARY'],\n"
        "        'key_visible': 'MON_TEST_OTHER_KEY' in os.environ}) + '\\n')\n",
        encoding="utf-8",
    )
    return f"{sys.executable} {script}", log


def test_one_failing_client_does_not_stop_the_others(
    cfg: Path, tmp_path: Path, world: World
) -> None:
    command, log = hook_command(tmp_path)
    result = CliRunner().invoke(
        main, ["-c", str(cfg), "sync", "--all", "--json", "--on-failure", command]
    )
    assert result.exit_code == 3, result.output
    summary = json.loads(result.stdout)
    jsonschema.validate(summary, schema())
    by_id = {c["id"]: c for c in summary["clients"]}
    assert summary["failed"] == ["broken"] and summary["exit_status"] == 3
    assert by_id["broken"]["status"] == "failed" and by_id["broken"]["exit_status"] == 3
    assert "acct_1TestOther0002" in by_id["broken"]["error"]
    other = by_id["other"]
    n = len(world.accounts["acct_1TestOther0002"].history.transactions)
    assert other["status"] == "ok" and other["booked"] == n and other["error"] is None
    assert other["tie_out"] and all(t["ties_out"] for t in other["tie_out"])
    assert other["flagged"]["open"] == other["flagged"]["new"]
    assert not (tmp_path / "books" / "broken" / "stripe.beancount").exists()
    assert (tmp_path / "books" / "other" / "stripe.beancount").exists()
    # the hook ran once, named the failing client, and saw no key variable
    runs = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(runs) == 1
    assert runs[0]["failed"] == ["broken"] and runs[0]["env_failed"] == "broken"
    assert runs[0]["env_exit"] == "3" and runs[0]["env_summary"].startswith("broken: exit 3")
    assert runs[0]["key_visible"] is False
    for key in (a.key for a in world.accounts.values()):
        assert key not in result.output


def test_quiet_success_prints_nothing_and_no_hook_runs(
    cfg: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    command, log = hook_command(tmp_path)
    result = CliRunner().invoke(
        main, ["-c", str(cfg), "sync", "other", "--quiet", "--on-failure", command]
    )
    assert result.exit_code == 0, result.output
    assert result.output == ""
    assert not log.exists()
    # a failing client is not quiet
    failed = CliRunner().invoke(main, ["-c", str(cfg), "sync", "broken", "--quiet"])
    assert failed.exit_code == 3 and "acct_1TestOther0002" in failed.output


def test_a_quiet_run_with_a_failure_shows_every_client_with_its_books(cfg: Path) -> None:
    """A quiet run reads the books back only when it shows them (a client failed): then in
    full, as a run without --quiet would."""
    result = CliRunner().invoke(main, ["-c", str(cfg), "sync", "other", "broken", "--quiet"])
    assert result.exit_code == 3, result.output
    assert "open in the ledger" in result.output and "✔ ties out" in result.output


def test_plain_summary_counts_every_open_flag_and_ties_out(cfg: Path, tmp_path: Path) -> None:
    first = CliRunner().invoke(main, ["-c", str(cfg), "sync", "other", "--check"])
    assert first.exit_code == 0, first.output
    assert "bean-check: clean" in first.output and "✔ ties out" in first.output
    opened = re.search(r"(\d+) open in the ledger, (\d+) of them new", first.output)
    assert opened and opened.group(1) == opened.group(2)
    # a bookkeeper flags two entries by hand: the next run books nothing, yet counts them
    output = tmp_path / "books" / "other" / "stripe.beancount"
    text = output.read_text()
    output.write_text(re.sub(r"^(\d{4}-\d\d-\d\d) \* ", r"\1 ! ", text, count=2, flags=re.M))
    second = CliRunner().invoke(main, ["-c", str(cfg), "sync", "other"])
    total = int(opened.group(1)) + 2
    assert f"{total} open in the ledger, 0 of them new" in second.output, second.output


def test_check_fails_a_client_whose_ledger_does_not_balance(cfg: Path, tmp_path: Path) -> None:
    CliRunner().invoke(main, ["-c", str(cfg), "sync", "other"])
    main_ledger = tmp_path / "books" / "other" / "ledger.beancount"
    main_ledger.write_text(
        main_ledger.read_text() + '\n2025-01-05 * "broken by hand"\n'
        "  Assets:Other:Stripe  1.00 EUR\n  Expenses:Other:Uncategorized  2.00 EUR\n"
    )
    result = CliRunner().invoke(main, ["-c", str(cfg), "sync", "other", "--check", "--json"])
    assert result.exit_code == 1
    summary = json.loads(result.stdout)
    jsonschema.validate(summary, schema())
    (client,) = summary["clients"]
    assert client["bean_check"]["ok"] is False and client["status"] == "failed"
    assert any("does not balance" in e for e in client["bean_check"]["errors"])
    # the hand-made entry moved the clearing account: the tie-out says by how much
    assert any(t["difference"] == "1.00" for t in client["tie_out"] if t["currency"] == "EUR")
