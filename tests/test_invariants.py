"""The invariant, over generated histories: every BT booked once, clearing == Stripe's balance.

Hypothesis draws the history (seed, size, currency mix, time zone) and how the activity is split
across syncs; each example runs the real SDK over HTTP against the simulator and loads the result
with Beancount's own loader (what bean-check runs).
"""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from beancount import loader
from beancount.core import data
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beancount_stripe import currency
from beancount_stripe.config import BookingConfig, ClientConfig, KeySource, make_accounts
from beancount_stripe.simulator import SimAccount, Simulator, World, generate_history
from beancount_stripe.sync import sync_client

CURRENCIES = ["usd", "eur", "jpy", "krw", "bhd", "kwd", "isk", "huf", "gbp"]
ZONES = ["UTC", "America/Los_Angeles", "Asia/Tokyo", "Pacific/Kiritimati", "Europe/Berlin"]


def property_books(
    seed: int,
    size: int,
    currencies: list[str],
    tz: str,
    tmp: Path,
    booking: BookingConfig | None = None,
) -> tuple[World, ClientConfig]:
    """A generated history in a simulator world, and a client whose books go under ``tmp``."""
    account_id = "acct_1PropertyTest01"
    history = generate_history(
        account_id=account_id,
        seed=seed,
        size=size,
        start=datetime.date(2025, 1, 1),
        end=datetime.date(2025, 3, 31),
        currencies=currencies,
    )
    key = "sk_test_propertyKey0000001"
    world = World([SimAccount(id=account_id, name="P", key=key, history=history)])
    os.environ["PROPERTY_TEST_KEY"] = key
    client = ClientConfig(
        id="prop",
        name="Prop",
        stripe_account=account_id,
        key=KeySource("env", "PROPERTY_TEST_KEY"),
        ledger=tmp / "ledger.beancount",
        output=tmp / "stripe.beancount",
        archive_dir=tmp / "archive",
        timezone=tz,
        accounts=make_accounts("Prop"),
        booking=booking or BookingConfig(),
    )
    return world, client


def clearing_minor(entries: list[data.Directive], account: str) -> dict[str, int]:
    """The clearing account per currency, in minor units, as the loaded ledger has it."""
    booked: dict[str, int] = {}
    for e in entries:
        if isinstance(e, data.Transaction):
            for p in e.postings:
                if p.account == account:
                    cur = p.units.currency
                    booked[cur] = booked.get(cur, 0) + currency.to_minor(p.units.number, cur)
    return booked


def _book(
    seed: int, size: int, currencies: list[str], tz: str, steps: list[int], tmp: Path
) -> None:
    world, client = property_books(seed, size, currencies, tz, tmp)
    history = world.accounts[client.stripe_account].history
    with Simulator(world) as sim:
        for count in [0, *steps]:
            if count:
                world.add_activity(client.stripe_account, count)
            newest = max(bt["created"] for bt in history.transactions)
            sync_client(client, api_base=sim.url, now=newest + 600)

    entries, errors, _ = loader.load_file(str(client.ledger))
    assert errors == [], [e.message for e in errors]
    ids = [e.meta["stripe_id"] for e in entries if isinstance(e, data.Transaction)]
    assert len(ids) == len(set(ids)), "a balance transaction was booked twice"
    assert set(ids) == {bt["id"] for bt in history.transactions}, "a transaction was lost"
    expected: dict[str, int] = {}
    for bt in history.transactions:
        expected[bt["currency"]] = expected.get(bt["currency"], 0) + bt["net"]
    booked = clearing_minor(entries, client.accounts.clearing)
    assert {c.upper(): v for c, v in expected.items() if v} == {
        c: v for c, v in booked.items() if v
    }


@pytest.mark.slow
@settings(
    max_examples=12,
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
def test_every_transaction_booked_once_and_ties_out(
    seed: int, size: int, currencies: list[str], tz: str, steps: list[int]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        _book(seed, size, currencies, tz, steps, Path(tmp))


def test_bean_check_accepts_a_synced_ledger(tmp_path: Path) -> None:
    """Beancount's own command line, not just its loader."""
    _book(5, 120, ["usd", "jpy", "kwd"], "Asia/Tokyo", [7], tmp_path)
    exe = Path(sys.executable).with_name("bean-check")
    proc = subprocess.run(
        [str(exe), str(tmp_path / "ledger.beancount")], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
