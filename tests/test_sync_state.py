"""The sync state file: every sync (CLI, cron, Fava, Python) records when, by whom, the result,
the balances for the tie-out; failures too, never a key; ignored by git."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from beancount_stripe import sync_state
from beancount_stripe.cli import main
from beancount_stripe.errors import StripeAccessError
from beancount_stripe.simulator import Simulator, World
from beancount_stripe.sync import sync_client

from .conftest import REPO, ClientFactory
from .test_cli import write_config


def test_detect_via() -> None:
    assert sync_state.detect_via({}, tty=True) == "cli"
    assert sync_state.detect_via({}, tty=False) == "cron"
    assert sync_state.detect_via({sync_state.VIA_ENV: "systemd-timer"}, tty=True) == "systemd-timer"


def test_a_sync_records_its_run_and_the_tie_out(make_client: ClientFactory) -> None:
    client = make_client()
    report = sync_client(client, via="cron")
    last = sync_state.last_run(client)
    assert last is not None
    assert (last.via, last.result, last.client) == ("cron", "ok", "acme")
    assert last.entries_added == len(report.booked) and last.flagged == report.flagged
    assert set(last.stripe_balance) == {c.upper() for c in report.stripe_balance}
    assert last.ledger_clearing == last.stripe_balance  # the books tie out right after a sync
    assert last.tie_out() == {}
    again = sync_client(client, via="fava")
    runs = sync_state.history(client)
    assert [r.via for r in runs] == ["cron", "fava"] and runs[-1].entries_added == 0
    assert not again.booked


def test_dry_run_records_nothing(make_client: ClientFactory) -> None:
    client = make_client()
    sync_client(client, dry_run=True)
    assert sync_state.last_run(client) is None
    assert not sync_state.state_path(client).exists()


def test_a_failure_is_recorded_without_the_key(make_client: ClientFactory, world: World) -> None:
    client = make_client(key_of="acct_1TestOther0002")  # the key opens another account
    with pytest.raises(StripeAccessError):
        sync_client(client, via="cli")
    assert not client.ledger.parent.exists()  # a failed first sync leaves no trace on disk
    client.ledger.parent.mkdir(parents=True)  # books that exist record the failure
    with pytest.raises(StripeAccessError):
        sync_client(client, via="cli")
    last = sync_state.last_run(client)
    assert last is not None and last.result == "error" and last.via == "cli"
    assert "acct_1TestOther0002" in last.errors[0] and "fix:" in last.errors[0]
    text = sync_state.state_path(client).read_text()
    assert world.accounts["acct_1TestOther0002"].key not in text
    assert not client.output.exists()  # nothing was booked


def test_history_is_bounded(make_client: ClientFactory) -> None:
    client = make_client()
    client.ledger.parent.mkdir(parents=True)
    for i in range(sync_state.HISTORY + 5):
        sync_state.record(
            client,
            sync_state.SyncRun(client.id, str(i), str(i), "python", "ok"),
        )
    runs = sync_state.history(client)
    assert len(runs) == sync_state.HISTORY and runs[-1].started == str(sync_state.HISTORY + 4)
    json.loads(sync_state.state_path(client).read_text())  # still valid JSON


def test_cli_sync_records_cron_without_a_terminal(
    tmp_path: Path, sim: Simulator, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLI_TEST_ACME_KEY", world.accounts["acct_1TestAcme00001"].key)
    monkeypatch.delenv(sync_state.VIA_ENV, raising=False)
    cfg = write_config(tmp_path, sim)
    result = CliRunner().invoke(main, ["-c", str(cfg), "sync", "--all"])
    assert result.exit_code == 0, result.output
    state = json.loads((tmp_path / "books/acme" / sync_state.STATE_NAME).read_text())
    assert state["clients"]["acme"][-1]["via"] == "cron"  # click's runner has no terminal
    monkeypatch.setenv(sync_state.VIA_ENV, "cli")
    monkeypatch.setenv("CLI_TEST_ACME_KEY", "sk_test_NotTheRightKey000")
    failed = CliRunner().invoke(main, ["-c", str(cfg), "sync", "--all"])
    assert failed.exit_code != 0
    state = json.loads((tmp_path / "books/acme" / sync_state.STATE_NAME).read_text())
    assert state["clients"]["acme"][-1]["via"] == "cli"
    assert state["clients"]["acme"][-1]["result"] == "error"
    assert "NotTheRightKey" not in json.dumps(state)


def test_git_ignores_the_state_file() -> None:
    for where in ("example-ledger/acme", "books/x"):
        path = f"{where}/{sync_state.STATE_NAME}"
        proc = subprocess.run(
            ["git", "check-ignore", "-q", path], cwd=REPO, capture_output=True, check=False
        )
        assert proc.returncode == 0, f"{path} is not ignored by git"
