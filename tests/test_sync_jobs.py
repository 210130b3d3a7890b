"""`sync --all --jobs N`: many clients at once, in threads and in worker processes, give the same
books, the same summary and the same error lines, in client order, as one at a time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from beancount_stripe import cli_jobs
from beancount_stripe.cli import main
from beancount_stripe.simulator import Simulator, World

CLIENTS = [  # id, Stripe account, the key's environment variable
    ("acme", "acct_1TestAcme00001", "JOBS_ACME_KEY"),
    ("ghost", "acct_1TestOther0002", "JOBS_UNSET_KEY"),  # fails: the variable is not set
    ("other", "acct_1TestOther0002", "JOBS_OTHER_KEY"),
    ("wrong", "acct_1TestAcme00001", "JOBS_OTHER_KEY"),  # fails: the key opens another account
    ("platform", "acct_1TestPlatform04", "JOBS_PLATFORM_KEY"),
]


def _config(root: Path, sim: Simulator) -> Path:
    lines = ["defaults:", "  timezone: Europe/Berlin", f"  api_base: {sim.url}", "clients:"]
    for cid, acct, var in CLIENTS:
        lines += [
            f"  - id: {cid}",
            f"    name: {cid.title()} Ltd",
            f"    stripe_account: {acct}",
            f"    key: env:{var}",
            f"    ledger: ../books/{cid}/ledger.beancount",
        ]
    cfg = root / "config" / "clients.yaml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return cfg


def _books(root: Path) -> dict[str, bytes]:
    """Every file written under books/, by path (the sync-state file's run times aside)."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted((root / "books").rglob("*"))
        if p.is_file() and p.name != ".beancount-stripe-state.json"
    }


def _stable(summary: dict[str, Any]) -> dict[str, Any]:
    """The JSON summary without what differs between any two runs (times, paths)."""
    out = json.loads(json.dumps(summary))
    for key in ("started", "finished"):
        out.pop(key)
    for client in out["clients"]:
        client.pop("ledger")
        client.pop("files_changed", None)
    return out


@pytest.fixture
def keys(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBS_ACME_KEY", world.accounts["acct_1TestAcme00001"].key)
    monkeypatch.setenv("JOBS_OTHER_KEY", world.accounts["acct_1TestOther0002"].key)
    monkeypatch.setenv("JOBS_PLATFORM_KEY", world.accounts["acct_1TestPlatform04"].key)
    monkeypatch.delenv("JOBS_UNSET_KEY", raising=False)


@pytest.mark.slow
@pytest.mark.usefixtures("keys")
def test_threads_and_processes_book_what_one_at_a_time_books(
    tmp_path: Path, sim: Simulator
) -> None:
    runs: dict[str, tuple[Any, dict[str, bytes], dict[str, Any]]] = {}
    for name, extra in {
        "serial": ["--jobs", "1"],
        "threads": ["--jobs", "4", "--processes", "1"],
        "processes": ["--jobs", "4", "--processes", "2"],
    }.items():
        root = tmp_path / name
        cfg = _config(root, sim)
        result = CliRunner().invoke(main, ["-c", str(cfg), "sync", "--all", "--json", *extra])
        runs[name] = (result, _books(root), _stable(json.loads(result.stdout)))

    serial, books, summary = runs["serial"]
    assert serial.exit_code != 0  # two clients fail, the others are booked
    assert [c["id"] for c in summary["clients"]] == [cid for cid, _a, _v in CLIENTS]
    assert summary["failed"] == ["ghost", "wrong"]
    errors = [line for line in serial.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 2 and "JOBS_UNSET_KEY" in errors[0] and "acct_1TestAcme00001" in errors[1]
    assert any(path.endswith("acme/ledger.beancount") for path in books)
    for name in ("threads", "processes"):
        result, their_books, their_summary = runs[name]
        assert result.exit_code == serial.exit_code, name
        assert their_books == books, f"{name}: books differ from one at a time"
        assert their_summary == summary, name
        their_errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert their_errors == errors, f"{name}: errors not in client order"


def test_process_count_needs_enough_jobs_and_clients_per_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(cli_jobs, "usable_cpus", lambda: 4)
    per = cli_jobs.JOBS_PER_PROCESS
    assert cli_jobs.process_count(jobs=per - 1, clients=100) == 1
    assert cli_jobs.process_count(jobs=2 * per, clients=100) == 2
    assert cli_jobs.process_count(jobs=100, clients=100) == 4  # one per CPU at most
    assert cli_jobs.process_count(jobs=100, clients=per) == 1  # too few clients to split
    assert cli_jobs.process_count(jobs=16, clients=100, requested=1) == 1
    assert cli_jobs.process_count(jobs=3, clients=100, requested=8) == 3  # never above the jobs


def _tag(group: list[str], suffix: str) -> list[str]:
    return [f"{item}{suffix}" for item in group]


def test_run_split_returns_results_in_the_order_given() -> None:
    ids = [f"c{i}" for i in range(7)]
    assert cli_jobs.run_split(ids, 3, _tag, "!") == [f"{i}!" for i in ids]
