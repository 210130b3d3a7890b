"""The command line through click's runner: exit codes, messages, and no key in any output."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from beancount_stripe.cli import main
from beancount_stripe.simulator import Simulator, World

from .conftest import tree_digest


def write_config(tmp_path: Path, sim: Simulator, *, account: str = "acct_1TestAcme00001") -> Path:
    cfg = tmp_path / "config" / "clients.yaml"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text(
        f"""\
defaults:
  timezone: Europe/Berlin
  api_base: {sim.url}
clients:
  - id: acme
    name: Acme Test GmbH
    stripe_account: {account}
    key: env:CLI_TEST_ACME_KEY
    ledger: ../books/acme/ledger.beancount
    operating_currency: EUR
""",
        encoding="utf-8",
    )
    return cfg


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_help_lists_the_commands(runner: CliRunner) -> None:
    result = runner.invoke(main, ["--help"])
    assert result.exit_code == 0
    for command in ("sync", "fetch", "config", "demo", "simulator"):
        assert command in result.output


def test_sync_twice_via_cli(
    runner: CliRunner, tmp_path: Path, sim: Simulator, world: World, monkeypatch
) -> None:
    key = world.accounts["acct_1TestAcme00001"].key
    monkeypatch.setenv("CLI_TEST_ACME_KEY", key)
    cfg = write_config(tmp_path, sim)
    first = runner.invoke(main, ["-c", str(cfg), "sync", "--all"])
    assert first.exit_code == 0, first.output
    n = len(world.accounts["acct_1TestAcme00001"].history.transactions)
    assert f"booked {n:,} new entries" in first.output
    assert "by type:" in first.output and "entries flagged for review" in first.output
    assert key not in first.output
    books = tmp_path / "books"
    before = tree_digest(books)
    second = runner.invoke(main, ["-c", str(cfg), "sync", "acme"])
    assert second.exit_code == 0, second.output
    assert "booked 0 new entries" in second.output
    assert tree_digest(books) == before


def test_sync_refuses_wrong_account(
    runner: CliRunner, tmp_path: Path, sim: Simulator, world: World, monkeypatch
) -> None:
    key = world.accounts["acct_1TestOther0002"].key
    monkeypatch.setenv("CLI_TEST_ACME_KEY", key)
    cfg = write_config(tmp_path, sim)
    result = runner.invoke(main, ["-c", str(cfg), "sync", "acme"])
    assert result.exit_code == 3
    assert "acct_1TestOther0002" in result.output and "acct_1TestAcme00001" in result.output
    assert key not in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "books").exists()


def test_sync_with_missing_env_var(
    runner: CliRunner, tmp_path: Path, sim: Simulator, monkeypatch
) -> None:
    monkeypatch.delenv("CLI_TEST_ACME_KEY", raising=False)
    cfg = write_config(tmp_path, sim)
    result = runner.invoke(main, ["-c", str(cfg), "sync", "acme"])
    assert result.exit_code == 2
    assert "CLI_TEST_ACME_KEY" in result.output
    assert not (tmp_path / "books").exists()


def test_dry_run_prints_entries_and_writes_nothing(
    runner: CliRunner, tmp_path: Path, sim: Simulator, world: World, monkeypatch
) -> None:
    monkeypatch.setenv("CLI_TEST_ACME_KEY", world.accounts["acct_1TestAcme00001"].key)
    cfg = write_config(tmp_path, sim)
    result = runner.invoke(main, ["-c", str(cfg), "sync", "acme", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert 'stripe_id: "txn_' in result.output and "would book" in result.output
    assert not (tmp_path / "books").exists()


def test_unknown_client_is_a_clear_error(
    runner: CliRunner, tmp_path: Path, sim: Simulator, monkeypatch
) -> None:
    monkeypatch.setenv("CLI_TEST_ACME_KEY", "sk_test_x")
    cfg = write_config(tmp_path, sim)
    result = runner.invoke(main, ["-c", str(cfg), "sync", "nobody"])
    assert result.exit_code == 2
    assert "nobody" in result.output and "acme" in result.output


def test_config_check_reports_errors_with_line(runner: CliRunner, tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(
        "clients:\n  - id: acme\n    name: A\n    stripe_account: acct_1A\n"
        "    key: env:K\n    ledger: l.beancount\n    acounts: {}\n",
        encoding="utf-8",
    )
    result = runner.invoke(main, ["-c", str(cfg), "config", "check"])
    assert result.exit_code == 2
    assert "bad.yaml:7" in result.output and "acounts" in result.output


def test_fetch_fills_the_archive_only(
    runner: CliRunner, tmp_path: Path, sim: Simulator, world: World, monkeypatch
) -> None:
    monkeypatch.setenv("CLI_TEST_ACME_KEY", world.accounts["acct_1TestAcme00001"].key)
    cfg = write_config(tmp_path, sim)
    result = runner.invoke(main, ["-c", str(cfg), "fetch", "acme"])
    assert result.exit_code == 0, result.output
    archive_dir = tmp_path / "books" / "acme" / "archive"
    assert list(archive_dir.glob("*.jsonl"))
    assert not (tmp_path / "books" / "acme" / "stripe.beancount").exists()
    again = runner.invoke(main, ["-c", str(cfg), "fetch", "acme"])
    assert again.exit_code == 0
    assert "0 archive file(s) changed" in again.output
