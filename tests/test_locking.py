"""Every command that writes a client's files holds the client's lock: sync, fetch, recategorize.

A command that read the output file, then replaced it while a sync appended, would lose the
sync's entries; two merges of one archive month could lose each other's lines.
"""

from __future__ import annotations

import dataclasses
import fcntl
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from beancount_stripe import categorize, ledger
from beancount_stripe.config import ClientConfig
from beancount_stripe.sync import fetch_client, sync_client

from .conftest import ClientFactory
from .rules.conftest import DEFAULT_RULES


def waits_for_the_lock(client: ClientConfig, command: Callable[[], object]) -> None:
    """``command`` must not finish while another process holds the client's lock."""
    fd = os.open(ledger.lock_path(client.ledger), os.O_RDONLY | os.O_CREAT)
    done = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            command()
        except BaseException as e:  # pragma: no cover - reported below
            failure.append(e)
        done.set()

    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        thread = threading.Thread(target=run)
        thread.start()
        assert not done.wait(2.5), "the command ran while the lock was held"
    finally:
        os.close(fd)  # releases the lock
    assert done.wait(30), "the command did not finish once the lock was free"
    assert failure == []


@pytest.fixture
def client(make_client: ClientFactory) -> ClientConfig:
    c = dataclasses.replace(make_client(), shared_rules=(DEFAULT_RULES,))
    sync_client(c)
    return c


def test_sync_waits(client: ClientConfig) -> None:
    waits_for_the_lock(client, lambda: sync_client(client))


def test_fetch_waits(client: ClientConfig) -> None:
    waits_for_the_lock(client, lambda: fetch_client(client))


def test_recategorize_waits(client: ClientConfig) -> None:
    waits_for_the_lock(client, lambda: categorize.recategorize(client))


def test_the_lock_is_the_same_before_and_after_the_folder_exists(tmp_path: Path) -> None:
    main = tmp_path / "books" / "acme" / "ledger.beancount"
    before = ledger.lock_path(main)
    main.parent.mkdir(parents=True)
    assert ledger.lock_path(main) == before
    with ledger.locked(main):
        fd = os.open(before, os.O_RDONLY)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
    assert not list(main.parent.iterdir()), "the lock leaves nothing in the books"
