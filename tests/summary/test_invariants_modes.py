"""The invariants in every summary mode, over generated histories (see tests/test_invariants.py).

Every balance transaction (BT) is counted exactly once (an own entry, or in exactly one summary
the ledger holds, or waiting in the archive), the clearing account plus what waits equals Stripe's
balance per currency, and Beancount's loader finds no error (the balance assertions hold).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from beancount import loader
from beancount.core import data
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beancount_stripe import summary
from beancount_stripe.config import BookingConfig
from beancount_stripe.simulator import Simulator
from beancount_stripe.sync import sync_client

from ..test_invariants import CURRENCIES, ZONES, clearing_minor, property_books

MODES = ["daily", "payout"]


def _book(
    mode: str, seed: int, size: int, currencies: list[str], tz: str, steps: list[int], tmp: Path
) -> None:
    world, client = property_books(
        seed, size, currencies, tz, tmp, booking=BookingConfig(mode=mode)
    )
    account_id = client.stripe_account
    history = world.accounts[account_id].history
    with Simulator(world) as sim:
        runs = [0, *steps]
        for n, count in enumerate(runs):
            if count:
                world.add_activity(account_id, count)
            newest = max(bt["created"] for bt in history.transactions)
            # the last sync runs past the overlap when there are several: every day is closed
            later = 3 * 86400 if n == len(runs) - 1 and steps else 600
            sync_client(client, api_base=sim.url, now=newest + later)

    entries, errors, _ = loader.load_file(str(client.ledger))
    assert errors == [], [e.message for e in errors]
    index = summary.read_index(client.archive_dir)
    counted: list[str] = []
    for e in entries:
        if not isinstance(e, data.Transaction):
            continue
        key_ = e.meta.get(summary.SUMMARY_KEY)
        if key_ is not None:
            assert int(e.meta[summary.COUNT_KEY]) == len(index[key_].ids)
            counted.extend(index[key_].ids)
        else:
            counted.append(e.meta["stripe_id"])
    assert len(counted) == len(set(counted)), "a balance transaction was booked twice"
    every = {bt["id"]: bt for bt in history.transactions}
    assert set(counted) <= set(every), "a summary holds a transaction Stripe does not have"
    waiting = [bt for i, bt in every.items() if i not in set(counted)]
    if mode == "daily" and steps:
        assert waiting == [], "a closed day was not booked"
    expected: dict[str, int] = {}
    for bt in history.transactions:
        expected[bt["currency"]] = expected.get(bt["currency"], 0) + bt["net"]
    booked: dict[str, int] = {}
    for bt in waiting:
        cur = bt["currency"].upper()
        booked[cur] = booked.get(cur, 0) + bt["net"]
    for cur, value in clearing_minor(entries, client.accounts.clearing).items():
        booked[cur] = booked.get(cur, 0) + value
    assert {c.upper(): v for c, v in expected.items() if v} == {
        c: v for c, v in booked.items() if v
    }
    assert any(isinstance(e, data.Balance) for e in entries), "no balance assertion was written"


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    seed=st.integers(0, 10_000),
    size=st.integers(20, 260),
    currencies=st.lists(st.sampled_from(CURRENCIES), min_size=1, max_size=4, unique=True),
    tz=st.sampled_from(ZONES),
    steps=st.lists(st.integers(1, 30), max_size=3),
)
def test_every_transaction_counted_once_and_ties_out(
    mode: str, seed: int, size: int, currencies: list[str], tz: str, steps: list[int]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        _book(mode, seed, size, currencies, tz, steps, Path(tmp))


@pytest.mark.parametrize("mode", MODES)
def test_invariants_on_one_history(mode: str, tmp_path: Path) -> None:
    _book(mode, 5, 180, ["usd", "jpy", "kwd"], "Asia/Tokyo", [7, 12], tmp_path)
