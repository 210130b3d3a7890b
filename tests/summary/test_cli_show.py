"""The `booking:` config key and the `show` command, through the CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

from click.testing import CliRunner

from beancount_stripe import archive, summary, sync_state
from beancount_stripe.cli import main
from beancount_stripe.config import load_config
from beancount_stripe.simulator import Simulator, World

from ..test_cli import write_config


def _config(tmp_path: Path, sim: Simulator, booking: str) -> Path:
    cfg = write_config(tmp_path, sim)
    cfg.write_text(cfg.read_text() + f"    booking: {booking}\n", encoding="utf-8")
    return cfg


def test_bad_booking_mode_names_line_and_key(tmp_path: Path, sim: Simulator) -> None:
    cfg = _config(tmp_path, sim, "{mode: weekly, sinse: 2025-01-01}")
    result = CliRunner().invoke(main, ["-c", str(cfg), "config", "check"])
    assert result.exit_code == 2, result.output
    assert "clients[0].booking.mode" in result.output and "weekly" in result.output
    assert "booking.sinse" in result.output and "since" in result.output
    assert re.search(r"clients\.yaml:\d+", result.output)


def test_show_lists_what_summaries_hold(
    tmp_path: Path, sim: Simulator, world: World, monkeypatch
) -> None:
    monkeypatch.setenv("CLI_TEST_ACME_KEY", world.accounts["acct_1TestAcme00001"].key)
    cfg = _config(tmp_path, sim, "{mode: daily, since: 2025-01-01}")
    client = load_config(cfg).client("acme")
    assert client.booking.mode == "daily"
    runner = CliRunner()
    synced = runner.invoke(main, ["-c", str(cfg), "sync", "acme"])
    assert synced.exit_code == 0, synced.output
    index = summary.read_index(client.archive_dir)
    day = next(s for s in index.values() if s.key.startswith("day-"))
    for ref in (f"^{day.link}", day.link, day.key):
        out = runner.invoke(main, ["-c", str(cfg), "show", ref, "--client", "acme"])
        assert out.exit_code == 0, out.output
        for txn_id in day.ids:
            assert txn_id in out.output
        assert f"{len(day.ids)} transactions" in out.output
    # a payout lists what it settled, from the payout records, in any mode
    rec = next(r for r in archive.read_payouts(client.archive_dir).values() if r["transactions"])
    out = runner.invoke(main, ["-c", str(cfg), "show", rec["id"]])
    assert out.exit_code == 0, out.output
    assert all(t["id"] in out.output for t in rec["transactions"])

    as_json = runner.invoke(main, ["-c", str(cfg), "show", day.ids[0], "--json"])
    assert as_json.exit_code == 0, as_json.output
    rows = json.loads(as_json.output)["transactions"]
    assert [r["id"] for r in rows] == [day.ids[0]] and rows[0]["summary"] == day.key

    missing = runner.invoke(main, ["-c", str(cfg), "show", "txn_doesNotExist"])
    assert missing.exit_code == 2 and "Traceback" not in missing.output


def test_payouts_command_names_the_summary_holding_each_transaction(
    tmp_path: Path, sim: Simulator, world: World, monkeypatch
) -> None:
    monkeypatch.setenv("CLI_TEST_ACME_KEY", world.accounts["acct_1TestAcme00001"].key)
    cfg = _config(tmp_path, sim, "{mode: payout}")
    runner = CliRunner()
    synced = runner.invoke(main, ["-c", str(cfg), "sync", "acme"])
    assert synced.exit_code == 0, synced.output
    # what waits for a payout is Stripe's balance, not the ledger's: the books still tie out
    assert "wait in the archive" in synced.output
    assert "✔ ties out" in synced.output and "differs by" not in synced.output
    client = load_config(cfg).client("acme")
    (run,) = sync_state.history(client)
    assert run.waiting and run.tie_out() == {}
    payout = next(s for s in summary.read_index(client.archive_dir).values() if s.link == s.key)
    out = runner.invoke(main, ["-c", str(cfg), "payouts", "acme", payout.key])
    assert out.exit_code == 0, out.output
    assert f"summary ^{payout.link}" in out.output and "(not booked yet)" not in out.output
