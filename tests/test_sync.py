"""End to end: the real stripe SDK over HTTP against the simulator, ledgers loaded by Beancount."""

from __future__ import annotations

import datetime
from decimal import Decimal
from pathlib import Path

import pytest
from beancount import loader
from beancount.core import data, realization

from beancount_stripe import currency, ledger
from beancount_stripe.errors import StripeAccessError, StripeUnavailableError
from beancount_stripe.simulator import Simulator, World
from beancount_stripe.sync import sync_client

from .conftest import ClientFactory, tree_digest


def load_clean(path: Path) -> list[data.Directive]:
    entries, errors, _ = loader.load_file(str(path))
    assert errors == [], [e.message for e in errors]
    return entries


def clearing_totals(entries: list[data.Directive], account: str) -> dict[str, Decimal]:
    node = realization.get(realization.realize(entries), account)
    return (
        {pos.units.currency: pos.units.number for pos in node.balance} if node is not None else {}
    )


def expected_totals(world: World, account_id: str) -> dict[str, Decimal]:
    totals: dict[str, int] = {}
    for bt in world.accounts[account_id].history.transactions:
        totals[bt["currency"]] = totals.get(bt["currency"], 0) + bt["net"]
    return {c.upper(): currency.to_decimal(v, c) for c, v in totals.items() if v}


def sim_now(world: World, account_id: str) -> int:
    """The simulated clock: an hour after the account's newest transaction.

    New activity in the simulator continues right after the history, so a sync must see the
    same clock, not the wall clock (which would call those months long complete).
    """
    return max(bt["created"] for bt in world.accounts[account_id].history.transactions) + 3600


def booked_ids(entries: list[data.Directive]) -> list[str]:
    return [e.meta["stripe_id"] for e in entries if isinstance(e, data.Transaction)]


def test_full_sync_books_every_transaction_once_and_ties_out(
    world: World, make_client: ClientFactory
) -> None:
    client = make_client()
    report = sync_client(client)
    history = world.accounts[client.stripe_account].history.transactions
    entries = load_clean(client.ledger)
    ids = booked_ids(entries)
    assert sorted(ids) == sorted(bt["id"] for bt in history)
    assert len(ids) == len(set(ids))
    assert len(report.booked) == len(history)
    totals = clearing_totals(entries, client.accounts.clearing)
    assert {k: v for k, v in totals.items() if v} == expected_totals(world, client.stripe_account)
    balances = [e for e in entries if isinstance(e, data.Balance)]
    assert balances, "a balance assertion per currency must be written"
    assert {b.amount.currency for b in balances} >= set(
        expected_totals(world, client.stripe_account)
    )


def test_second_sync_changes_no_byte(make_client: ClientFactory, tmp_path: Path) -> None:
    client = make_client()
    sync_client(client)
    before = tree_digest(tmp_path)
    report = sync_client(client)
    assert report.booked == []
    assert tree_digest(tmp_path) == before


def test_incremental_sync_after_new_activity(
    world: World, make_client: ClientFactory, sim: Simulator
) -> None:
    client = make_client()
    sync_client(client, now=sim_now(world, client.stripe_account))
    world.add_activity(client.stripe_account, 40)
    report = sync_client(client, now=sim_now(world, client.stripe_account))
    assert len(report.booked) == 40
    # the second run fetched only recent months, not the whole history again
    assert report.fetched < len(world.accounts[client.stripe_account].history.transactions)
    entries = load_clean(client.ledger)
    ids = booked_ids(entries)
    history = world.accounts[client.stripe_account].history.transactions
    assert sorted(ids) == sorted(bt["id"] for bt in history)
    totals = clearing_totals(entries, client.accounts.clearing)
    assert {k: v for k, v in totals.items() if v} == expected_totals(world, client.stripe_account)


def test_deleted_entry_is_booked_again(make_client: ClientFactory) -> None:
    client = make_client()
    sync_client(client)
    text = client.output.read_text()
    state = ledger.scan(client.ledger)
    victim = sorted(state.stripe_ids)[len(state.stripe_ids) // 2]
    blocks = text.split("\n\n")
    kept = [b for b in blocks if f'stripe_id: "{victim}"' not in b]
    assert len(kept) == len(blocks) - 1
    client.output.write_text("\n\n".join(kept))
    report = sync_client(client)
    assert [e.meta["stripe_id"] for e in report.booked] == [victim]
    ids = booked_ids(load_clean(client.ledger))
    assert ids.count(victim) == 1


def test_wrong_account_is_refused_and_nothing_written(
    make_client: ClientFactory, tmp_path: Path
) -> None:
    client = make_client(key_of="acct_1TestOther0002")
    with pytest.raises(StripeAccessError) as info:
        sync_client(client)
    message = str(info.value)
    assert "acct_1TestOther0002" in message and "acct_1TestAcme00001" in message
    assert tree_digest(tmp_path) == {}


def test_wrong_account_leaves_existing_ledger_untouched(
    make_client: ClientFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, world: World
) -> None:
    client = make_client()
    sync_client(client)
    before = tree_digest(tmp_path)
    monkeypatch.setenv(client.key.ref, world.accounts["acct_1TestOther0002"].key)
    with pytest.raises(StripeAccessError):
        sync_client(client)
    assert tree_digest(tmp_path) == before


def test_bad_key_is_refused_without_echoing_it(
    make_client: ClientFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make_client()
    secret = "sk_test_NotARealKeyAtAll9876"
    monkeypatch.setenv(client.key.ref, secret)
    with pytest.raises(StripeAccessError) as info:
        sync_client(client)
    assert "401" in str(info.value)
    assert secret not in str(info.value)
    assert tree_digest(tmp_path) == {}


def test_connect_platform_key_reaches_connected_account(
    world: World, make_client: ClientFactory
) -> None:
    client = make_client(
        "gulf",
        stripe_account="acct_1TestChild0003",
        key_of="acct_1TestPlatform04",
        connect=True,
        platform_account="acct_1TestPlatform04",
        timezone="Asia/Bahrain",
    )
    sync_client(client)
    entries = load_clean(client.ledger)
    history = world.accounts["acct_1TestChild0003"].history.transactions
    assert sorted(booked_ids(entries)) == sorted(bt["id"] for bt in history)
    totals = clearing_totals(entries, client.accounts.clearing)
    assert {k: v for k, v in totals.items() if v} == expected_totals(world, "acct_1TestChild0003")
    # three-decimal currencies keep their three places
    assert all(
        len(str(p.units.number).split(".")[1]) == 3
        for e in entries
        if isinstance(e, data.Transaction)
        for p in e.postings
        if p.units.currency in ("BHD", "KWD")
    )


def test_connect_to_foreign_account_is_refused(make_client: ClientFactory, tmp_path: Path) -> None:
    client = make_client(
        "sneaky", stripe_account="acct_1TestOther0002", key_of="acct_1TestPlatform04", connect=True
    )
    with pytest.raises(StripeAccessError) as info:
        sync_client(client)
    assert "403" in str(info.value)
    assert tree_digest(tmp_path) == {}


def test_dry_run_writes_nothing(make_client: ClientFactory, tmp_path: Path) -> None:
    client = make_client()
    report = sync_client(client, dry_run=True)
    assert report.booked and 'stripe_id: "txn_' in report.text
    assert tree_digest(tmp_path) == {}


@pytest.mark.parametrize("faults", ["429@2,500@3,drop@5,429lock@7,503@9", "drop@1,429@4,429@5"])
def test_faults_are_recovered_with_nothing_lost_or_doubled(
    world: World, make_client: ClientFactory, faults: str
) -> None:
    from beancount_stripe.simulator import FaultPlan

    with Simulator(world, faults=FaultPlan.parse(faults)) as flaky:
        client = make_client()
        report = sync_client(client, api_base=flaky.url)
    history = world.accounts[client.stripe_account].history.transactions
    ids = booked_ids(load_clean(client.ledger))
    assert sorted(ids) == sorted(bt["id"] for bt in history)
    assert len(report.booked) == len(history)


def test_interrupted_backfill_resumes_and_skips_complete_months(
    world: World, make_client: ClientFactory
) -> None:
    from beancount_stripe import sync as sync_mod
    from beancount_stripe.simulator import FaultPlan

    client = make_client()
    # Request 1 is /v1/account; from request 6 on every request fails: some months land first.
    plan = ",".join(f"500@{n}" for n in range(6, 400))
    with Simulator(world, faults=FaultPlan.parse(plan)) as broken:
        gw = sync_mod.gateway_for(client, api_base=broken.url, max_retries=1, backoff=0.01)
        with pytest.raises(StripeUnavailableError):
            sync_client(client, gateway=gw, workers=1)
    assert not client.output.exists(), "nothing is booked before the fetch completed"
    archived = list(client.archive_dir.glob("*.jsonl"))
    assert archived, "finished months are kept for the resume"
    report = sync_client(client)
    assert report.months_skipped >= len(archived)
    history = world.accounts[client.stripe_account].history.transactions
    assert sorted(booked_ids(load_clean(client.ledger))) == sorted(bt["id"] for bt in history)


def test_balance_assertion_survives_later_syncs(world: World, make_client: ClientFactory) -> None:
    client = make_client()
    first = sync_client(client, now=sim_now(world, client.stripe_account))
    assert first.assertion_date is not None
    for _ in range(3):
        world.add_activity(client.stripe_account, 15)
        sync_client(client, now=sim_now(world, client.stripe_account))
    entries = load_clean(client.ledger)  # every assertion written so far still holds
    dates = sorted({e.date for e in entries if isinstance(e, data.Balance)})
    assert dates[0] == first.assertion_date
    assert dates[-1] >= first.assertion_date


def test_dates_are_in_the_client_time_zone(world: World, make_client: ClientFactory) -> None:
    client = make_client(timezone="Asia/Tokyo")
    report = sync_client(client)
    by_id = {bt["id"]: bt for bt in world.accounts[client.stripe_account].history.transactions}
    from zoneinfo import ZoneInfo

    tokyo = ZoneInfo("Asia/Tokyo")
    for entry in report.booked:
        created = by_id[entry.meta["stripe_id"]]["created"]
        assert entry.date == datetime.datetime.fromtimestamp(created, tokyo).date()


def test_unknown_currency_stops_the_sync_with_the_ledger_untouched(
    world: World, make_client: ClientFactory, tmp_path: Path
) -> None:
    from beancount_stripe.errors import CurrencyError
    from beancount_stripe.simulator import History, SimAccount

    client = make_client()
    sync_client(client)
    before = tree_digest(client.ledger.parent)
    good = world.accounts[client.stripe_account].history.transactions
    newest = max(bt["created"] for bt in good)
    odd = {
        **good[-1],
        "id": "txn_1OddCurrency000001",
        "currency": "xyz",
        "created": newest + 60,
        "source": None,
    }
    history = History.from_transactions(client.stripe_account, [*good, odd])
    acct = world.accounts[client.stripe_account]
    odd_world = World([SimAccount(id=acct.id, name=acct.name, key=acct.key, history=history)])
    with Simulator(odd_world) as odd_sim, pytest.raises(CurrencyError) as info:
        sync_client(client, now=newest + 3600, api_base=odd_sim.url)
    message = str(info.value)
    assert "xyz" in message.lower() and "txn_1OddCurrency000001" in message
    after = tree_digest(client.ledger.parent)
    ledger_files = [k for k in before if k.endswith(".beancount")]
    assert ledger_files and all(after[k] == before[k] for k in ledger_files)


def test_a_second_sync_waits_for_the_first_and_books_nothing_twice(
    world: World, make_client: ClientFactory
) -> None:
    import threading

    client = make_client()
    reports = []
    errors = []

    def run() -> None:
        try:
            reports.append(sync_client(client))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    history = world.accounts[client.stripe_account].history.transactions
    assert sorted(len(r.booked) for r in reports) == [0, 0, len(history)]
    ids = booked_ids(load_clean(client.ledger))
    assert sorted(ids) == sorted(bt["id"] for bt in history)


def test_the_lock_gives_up_with_a_clear_message(make_client: ClientFactory) -> None:
    import fcntl
    import os

    from beancount_stripe.errors import LedgerError

    client = make_client()
    sync_client(client)
    fd = os.open(ledger.lock_path(client.ledger), os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(LedgerError) as info, ledger.locked(client.ledger, timeout=0.3):
            pass
        assert "another beancount-stripe process" in str(info.value)
    finally:
        os.close(fd)


def test_a_missing_main_ledger_is_created_even_with_nothing_new(
    make_client: ClientFactory,
) -> None:
    """A crash between writing the output file and creating the main ledger heals itself."""
    client = make_client()
    sync_client(client)
    output_before = client.output.read_bytes()
    client.ledger.unlink()
    report = sync_client(client)
    assert report.booked == []
    assert client.ledger.exists() and client.output.read_bytes() == output_before
    load_clean(client.ledger)
