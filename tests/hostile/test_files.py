"""Hostile cases about files on disk and concurrency: what the books folder may look like.

Each refusal goes through ``assert_refused``: documented exit status, a message naming the
problem and the fix, no traceback, no file changed, no key anywhere.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from beancount import loader
from beancount.core import data

from beancount_stripe.simulator import World

from .conftest import CONFIG, Workspace
from .harness import CLI, assert_refused, digest, run

ACME = "acct_1TestAcme00001"


def refused(ws: Workspace, result, *, code: int, mentions: list[str], before) -> None:
    assert_refused(
        result, code=code, mentions=mentions, before=before, roots=[ws.root], keys=[ws.key]
    )


def history_ids(world: World) -> list[str]:
    return sorted(bt["id"] for bt in world.accounts[ACME].history.transactions)


def booked(ledger: Path) -> list[str]:
    entries, errors, _ = loader.load_file(str(ledger))
    assert errors == [], [e.message for e in errors]
    return [e.meta["stripe_id"] for e in entries if isinstance(e, data.Transaction)]


# -- concurrency --------------------------------------------------------------------------------


def test_two_first_syncs_at_once_book_everything_once(ws: Workspace, world: World) -> None:
    """Failure 1: with no ledger folder yet, both runs used to lock different folders."""
    assert not ws.books.exists()
    env = {**os.environ, **ws.env}
    args = [CLI, "-c", str(ws.config), "sync", "acme"]
    first = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    # start the second run once the first has created the folder (its archive) but not finished
    deadline = time.monotonic() + 60
    while not ws.archive.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    second = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    outs = [p.communicate(timeout=120)[0].decode() for p in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], outs
    assert sorted(booked(ws.ledger)) == history_ids(world)


# -- the ledger's own files ---------------------------------------------------------------------


def test_a_broken_date_in_the_output_is_refused_not_booked_again(synced: Workspace) -> None:
    """Failure 5: the scan skipped the entry, so its transaction was booked a second time."""
    text = synced.output.read_text()
    lines = text.splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith("20") and " * " in line)
    lines[index] = "2024-13-45" + lines[index][10:]
    synced.output.write_text("\n".join(lines) + "\n")
    before = synced.snapshot()
    result = synced.cli("sync", "acme")
    refused(
        synced,
        result,
        code=5,
        mentions=[f"{synced.output}:{index + 1}", "2024-13-45", "date"],
        before=before,
    )


def test_a_date_without_leading_zeros_is_refused(synced: Workspace) -> None:
    text = synced.output.read_text()
    first = next(line for line in text.splitlines() if line.startswith("20") and " * " in line)
    broken = first[:5] + first[5:7].lstrip("0") + first[7:]
    synced.output.write_text(text.replace(first, broken, 1))
    before = synced.snapshot()
    refused(synced, synced.cli("sync", "acme"), code=5, mentions=["stripe_id"], before=before)


def test_a_dry_run_refuses_a_broken_entry_too(synced: Workspace) -> None:
    text = synced.output.read_text()
    first = next(line for line in text.splitlines() if line.startswith("20") and " * " in line)
    synced.output.write_text(text.replace(first, "2024-02-30" + first[10:], 1))
    before = synced.snapshot()
    result = synced.cli("sync", "acme", "--dry-run")
    refused(synced, result, code=5, mentions=["2024-02-30"], before=before)


def test_removing_the_include_of_the_output_is_refused(synced: Workspace) -> None:
    """Failure 6: entries were appended to a file the ledger no longer reads."""
    main = synced.ledger.read_text()
    synced.ledger.write_text(main.replace('include "stripe.beancount"', "; include removed"))
    before = synced.snapshot()
    result = synced.cli("sync", "acme")
    refused(
        synced,
        result,
        code=5,
        mentions=["does not include", "stripe.beancount", 'include "stripe.beancount"'],
        before=before,
    )


def test_an_include_reached_only_through_a_commented_line_is_refused(synced: Workspace) -> None:
    main = synced.ledger.read_text()
    synced.ledger.write_text(main.replace('include "stripe.beancount"', ';include "stripe.b"'))
    before = synced.snapshot()
    refused(synced, synced.cli("sync", "acme"), code=5, mentions=["include"], before=before)


def test_an_include_of_a_missing_file_is_refused(synced: Workspace) -> None:
    """Failure 7: sync exited 0 and bean-check failed afterwards."""
    with synced.ledger.open("a") as f:
        f.write('include "bank/2025.beancount"\n')
    line = len(synced.ledger.read_text().splitlines())
    before = synced.snapshot()
    result = synced.cli("sync", "acme")
    refused(
        synced,
        result,
        code=5,
        mentions=["bank/2025.beancount", f"{synced.ledger}:{line}", "matches no file"],
        before=before,
    )


def test_an_include_glob_that_matches_nothing_is_refused(synced: Workspace) -> None:
    with synced.ledger.open("a") as f:
        f.write('include "statements/*.beancount"\n')
    before = synced.snapshot()
    refused(synced, synced.cli("sync", "acme"), code=5, mentions=["statements/*"], before=before)


def test_a_ledger_file_that_is_not_utf8_is_refused(synced: Workspace) -> None:
    with synced.ledger.open("ab") as f:
        f.write(b"; caf\xe9\n")
    before = synced.snapshot()
    refused(synced, synced.cli("sync", "acme"), code=5, mentions=["UTF-8", "ledger"], before=before)


def test_an_output_path_that_is_a_directory_is_refused(ws: Workspace) -> None:
    ws.output.mkdir(parents=True)
    before = ws.snapshot()
    refused(
        ws,
        ws.cli("sync", "acme"),
        code=5,
        mentions=["stripe.beancount", "directory"],
        before=before,
    )


def test_a_ledger_folder_under_a_file_is_refused(ws: Workspace) -> None:
    ws.books.parent.mkdir(parents=True, exist_ok=True)
    ws.books.write_text("not a folder\n")
    before = ws.snapshot()
    refused(ws, ws.cli("sync", "acme"), code=5, mentions=["books"], before=before)


def test_an_archive_line_that_is_not_json_is_refused(synced: Workspace) -> None:
    month = sorted(synced.archive.glob("*.jsonl"))[-1]
    with month.open("a") as f:
        f.write('{"id": "txn_broken", \n')
    before = synced.snapshot()
    result = synced.cli("sync", "acme")
    refused(synced, result, code=2, mentions=[month.name, "not valid JSON"], before=before)


def test_another_accounts_archive_is_refused(synced: Workspace) -> None:
    month = sorted(synced.archive.glob("*.jsonl"))[0]
    month.write_text(month.read_text().replace(ACME, "acct_1SomeoneElse0001", 1))
    before = synced.snapshot()
    result = synced.cli("sync", "acme")
    refused(synced, result, code=5, mentions=["acct_1SomeoneElse0001", "archive"], before=before)


# -- a disk that refuses writes -----------------------------------------------------------------

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")


@contextlib.contextmanager
def tmpfs(path: Path, size: str, *options: str) -> Iterator[None]:
    path.mkdir(parents=True, exist_ok=True)
    opts = ",".join([f"size={size}", *options])
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True, check=False
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.decode().strip()}")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@needs_root
def test_a_full_disk_leaves_no_partial_or_temp_file(ws: Workspace, world: World) -> None:
    """Failure 4 (ENOSPC): exit 5, the ledger as it was, no temp file anywhere."""
    with tmpfs(ws.books, "4m"):
        assert ws.cli("sync", "acme").code == 0
        world.add_activity(ACME, 60)
        # leave a few kilobytes: less than any file the next sync must rewrite
        free = shutil.disk_usage(ws.books).free
        (ws.books / "filler").write_bytes(b"\0" * max(0, free - 8 * 1024))
        before = digest(ws.books)
        result = ws.cli("sync", "acme")
        assert_refused(
            result,
            code=5,
            mentions=["disk is full", "free space"],
            before=before,
            roots=[ws.books],
            keys=[ws.key],
        )
        assert not [p for p in ws.books.rglob("*") if p.name.endswith(".tmp")]
        (ws.books / "filler").unlink()
        assert ws.cli("sync", "acme").code == 0
        assert sorted(booked(ws.ledger)) == history_ids(world)


@needs_root
def test_a_read_only_file_system_is_refused_before_fetching(ws: Workspace) -> None:
    with tmpfs(ws.books, "1m", "ro"):
        before = ws.snapshot()
        result = ws.cli("sync", "acme")
        refused(ws, result, code=5, mentions=["read-only", "ledger.beancount"], before=before)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run the sync as another user")
def test_an_unwritable_ledger_folder_is_refused(world: World, sim) -> None:
    """Failure 4 (EACCES): a PermissionError traceback before. Run as `nobody`, who may read
    the books but not write them."""
    root = Path(tempfile.mkdtemp(prefix="bs-perm-"))
    try:
        root.chmod(0o755)
        config = root / "config" / "clients.yaml"
        config.parent.mkdir()
        config.write_text(CONFIG.format(url=sim.url))
        books = root / "books" / "acme"
        books.mkdir(parents=True)
        for p in (root / "config", config, root / "books", books):
            p.chmod(0o755 if p.is_dir() else 0o644)
        key = world.accounts[ACME].key
        probe = run(
            ["-c", "pass"],
            program=[
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                str(Path(CLI).parent / "python"),
            ],
        )
        if probe.code != 0:
            pytest.skip(f"user nobody cannot run this venv's python: {probe.output[:200]}")
        before = digest(root)
        result = run(
            ["-c", str(config), "sync", "acme"],
            env={"HOSTILE_ACME_KEY": key},
            program=["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", CLI],
        )
        assert_refused(
            result,
            code=5,
            mentions=["permission denied", str(books)],
            before=before,
            roots=[root],
            keys=[key],
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
