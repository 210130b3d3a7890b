"""Payout contents fetched side by side, over real HTTP: whatever order the answers come in, the
file is what fetching one payout at a time writes, every checkpoint holds the first payouts in
order, a failure stops cleanly with the serial run's error, and a resumed run fetches no payout
already recorded in a final state."""

from __future__ import annotations

import re
from typing import Any

import pytest

from beancount_stripe import archive, reconcile
from beancount_stripe import sync as sync_mod
from beancount_stripe.errors import BeancountStripeError
from beancount_stripe.reconcile import contents
from beancount_stripe.simulator import FaultPlan, Simulator, World
from tests.conftest import ClientFactory

_PAYOUT_ID = re.compile(r"po_[0-9A-Za-z]+")


def _order(known: dict[str, dict[str, Any]]) -> list[str]:
    """Payout ids in the order they are recorded: their ``payout`` BT's (created, id)."""
    bts = sorted(
        (bt for bt in known.values() if bt["type"] == "payout"),
        key=lambda b: (b["created"], b["id"]),
    )
    return [bt["source"]["id"] if isinstance(bt["source"], dict) else bt["source"] for bt in bts]


@pytest.fixture
def recorded(
    make_client: ClientFactory, sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> tuple[Any, dict[str, dict[str, Any]], bytes]:
    """A client whose archive is fetched, its transactions, and the payouts file one payout at a
    time writes (then removed)."""
    monkeypatch.setattr(contents, "WRITE_EVERY", 4)  # many checkpoints over 40 payouts
    client = make_client()
    sync_mod.fetch_client(client)
    path = archive.payouts_path(client.archive_dir)
    known = sync_mod.read_archive(client)
    path.unlink()
    gw = sync_mod.gateway_for(client, api_base=sim.url)
    reconcile.record_payout_contents(client, gw, known, workers=1)
    serial = path.read_bytes()
    path.unlink()
    return client, known, serial


def test_answers_out_of_order_write_the_same_file_and_checkpoints_in_order(
    world: World,
    recorded: tuple[Any, dict[str, dict[str, Any]], bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client, known, serial = recorded
    order = _order(known)
    written: list[list[str]] = []
    write = archive.write_payouts

    def spy(*args: Any) -> bool:
        written.append(list(args[3]))
        return write(*args)

    monkeypatch.setattr(archive, "write_payouts", spy)
    # Random 429s, retried after a short backoff: answers arrive out of their order.
    with Simulator(world, faults=FaultPlan.parse("rate=0.15,seed=7,kinds=429")) as jittery:
        gw = sync_mod.gateway_for(client, api_base=jittery.url, backoff=0.02)
        result = reconcile.record_payout_contents(client, gw, known, workers=8)
        assert any(d["status"] == 429 for d in jittery.request_details)
    assert archive.payouts_path(client.archive_dir).read_bytes() == serial
    assert result.recorded == len(order)
    # Checkpoints: after WRITE_EVERY payouts, then whenever the payouts since the last one reach
    # WRITE_EVERY and half of all recorded so far (4, 8, 15, 30, ... with WRITE_EVERY = 4).
    expected, last = [], 0
    for n in range(1, len(order) + 1):
        if n - last >= max(contents.WRITE_EVERY, n // 2) or n == len(order):
            expected.append(n)
            last = n
    assert expected[:3] == [4, 8, 15]
    assert [len(ids) for ids in written] == expected
    for ids in written:
        assert sorted(ids) == sorted(order[: len(ids)]), "a checkpoint skipped an earlier payout"


def test_a_failure_stops_with_the_serial_error_keeps_a_prefix_and_resumes_without_refetching(
    world: World, sim: Simulator, recorded: tuple[Any, dict[str, dict[str, Any]], bytes]
) -> None:
    client, known, serial = recorded
    order = _order(known)
    path = archive.payouts_path(client.archive_dir)
    failures = {}
    for workers in (1, 8):
        path.unlink(missing_ok=True)
        with Simulator(world, faults=FaultPlan.parse("500@20-100000")) as broken:
            gw = sync_mod.gateway_for(client, api_base=broken.url, max_retries=0, backoff=0.01)
            with pytest.raises(BeancountStripeError) as info:
                reconcile.record_payout_contents(client, gw, known, workers=workers)
        error = info.value
        text = _PAYOUT_ID.sub("po_…", str(error))
        text = re.sub(r"GET \S+", "GET …", text.replace(broken.url, "URL"))
        failures[workers] = (type(error), error.exit_code, text)
        partial = list(archive.read_payouts(client.archive_dir))
        assert 0 < len(partial) < len(order), workers
        assert sorted(partial) == sorted(order[: len(partial)]), "kept a payout after the failure"
    assert failures[1] == failures[8]
    assert "kept failing after 0 retries" in failures[8][2]

    before = archive.read_payouts(client.archive_dir)
    done = {po for po, r in before.items() if not contents._needs_refresh(r, None)}
    seen = len(sim.request_details)
    gw = sync_mod.gateway_for(client, api_base=sim.url)
    reconcile.record_payout_contents(client, gw, known, workers=8)
    assert path.read_bytes() == serial
    asked = {
        po
        for d in sim.request_details[seen:]
        for po in _PAYOUT_ID.findall(f"{d['path']}?{d['query']}")
    }
    assert asked and not asked & done, "a payout recorded in a final state was fetched again"
