"""Killing a writer at any instant leaves each file either as it was or complete."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from beancount import loader

from beancount_stripe.atomic import write_atomic
from beancount_stripe.simulator import Simulator, World

WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from beancount_stripe.atomic import write_atomic
    path = Path(sys.argv[1])
    i = 0
    while True:
        i += 1
        body = (f"version {i}\\n" + "x" * 2_000_000 + f"\\nend {i}\\n")
        write_atomic(path, body)
    """
)


def test_write_atomic_returns_false_when_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    assert write_atomic(path, "a\n") is True
    assert write_atomic(path, "a\n") is False
    assert write_atomic(path, "b\n") is True
    assert path.read_text() == "b\n"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


@pytest.mark.slow
def test_killed_writer_never_leaves_a_partial_file(tmp_path: Path) -> None:
    path = tmp_path / "ledger.txt"
    write_atomic(path, "version 0\nend 0\n")
    rng = random.Random(7)
    for _ in range(12):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)])
        time.sleep(rng.uniform(0.05, 0.6))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        text = path.read_text()
        first, last = text.splitlines()[0], text.splitlines()[-1]
        assert first.startswith("version ") and last == "end " + first.split()[1]


@pytest.mark.slow
def test_killed_sync_leaves_ledger_as_before_or_complete(world: World, tmp_path: Path) -> None:
    """Kill `beancount-stripe sync` at random instants; the ledger is never half-written."""
    acct = world.accounts["acct_1TestAcme00001"]
    cfg = tmp_path / "clients.yaml"
    rng = random.Random(3)
    expected = {bt["id"] for bt in acct.history.transactions}
    with Simulator(world, latency=0.01) as sim:
        cfg.write_text(
            "clients:\n  - id: acme\n    name: Acme\n    stripe_account: acct_1TestAcme00001\n"
            f"    key: env:KILL_TEST_KEY\n    ledger: books/ledger.beancount\n"
            f"    api_base: {sim.url}\n"
        )
        env = {**os.environ, "KILL_TEST_KEY": acct.key}
        output = tmp_path / "books" / "stripe.beancount"
        completed = False
        for attempt in range(10):
            proc = subprocess.Popen(
                [sys.executable, "-m", "beancount_stripe.cli", "-c", str(cfg), "sync", "acme"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(rng.uniform(0.2, 2.5))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            proc.wait()
            if output.exists():
                # The output file is written first, then (on a first sync) the main ledger that
                # includes it: a kill between the two leaves the main file absent, as before.
                entries, errors, _ = loader.load_file(str(output))
                ids = {e.meta["stripe_id"] for e in entries if "stripe_id" in e.meta}
                assert ids == expected, f"attempt {attempt}: output file is partial"
                assert not errors
                main = tmp_path / "books" / "ledger.beancount"
                if main.exists():
                    entries, errors, _ = loader.load_file(str(main))
                    assert not errors, f"attempt {attempt}: main ledger is partial"
                completed = True
                break
            leftovers = [p for p in (tmp_path / "books").glob(".*.tmp")]
            assert len(leftovers) <= 1  # at most the temp file of the killed rename
        if not completed:
            subprocess.run(
                [sys.executable, "-m", "beancount_stripe.cli", "-c", str(cfg), "sync", "acme"],
                env=env,
                check=True,
                capture_output=True,
            )
            entries, errors, _ = loader.load_file(str(tmp_path / "books" / "ledger.beancount"))
            assert not errors
            assert {e.meta["stripe_id"] for e in entries if "stripe_id" in e.meta} == expected
