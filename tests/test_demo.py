"""The demo: regenerated from scratch (--fresh) it gives byte-identical example-ledger/ files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import REPO, copy_examples, tree_digest


@pytest.mark.slow
def test_demo_regenerates_the_committed_example_ledger(tmp_path: Path) -> None:
    work = tmp_path / "repo"
    copy_examples(work)
    env = {"PATH": str(Path(sys.executable).parent), "HOME": str(tmp_path), "LANG": "C.UTF-8"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "beancount_stripe.cli",
            "-c",
            "config/clients.yaml",
            "demo",
            "--fresh",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "bean-check: clean" in out and "ties out" in out and "differs by" not in out
    assert "open in the ledger" in out
    assert "Open the books in Fava" in out
    # --fresh removed the generated files, so the whole history was synced again
    assert "booked 1,200 new entries" in out and "booked 0 new entries" not in out
    regenerated = tree_digest(work / "example-ledger")
    committed = tree_digest(REPO / "example-ledger")
    assert regenerated.keys() == committed.keys()
    changed = [name for name in committed if committed[name] != regenerated[name]]
    assert changed == [], f"demo output differs from the committed files: {changed[:5]}"
