"""Payout contents over real HTTP: the sync records what each payout settles, once."""

from __future__ import annotations

import datetime

import pytest

from beancount_stripe import archive, reconcile
from beancount_stripe import sync as sync_mod
from beancount_stripe.errors import BeancountStripeError
from beancount_stripe.simulator import Simulator, World, generate_history
from beancount_stripe.sync import sync_client
from tests.conftest import ClientFactory


def test_sync_records_every_payout_and_each_breakdown_sums_to_its_amount(
    world: World, make_client: ClientFactory
) -> None:
    client = make_client()
    sync_client(client)
    history = world.accounts[client.stripe_account].history
    payouts = {k: v for k, v in history.objects.items() if v.get("object") == "payout"}
    records = archive.read_payouts(client.archive_dir)
    assert set(records) == set(payouts)
    rows = reconcile.list_payouts(client)
    assert len(rows) == len(payouts)
    manual = [r for r in rows if not r.automatic]
    assert manual, "the generated history has manual payouts"
    assert all(r.breakdown == {} and records[r.id]["transactions"] is None for r in manual)
    for row in rows:
        if row.automatic:
            assert sum(row.breakdown.values()) == row.amount, row.id
            members = history.payout_members[row.id]
            assert [t["id"] for t in records[row.id]["transactions"]] != []
            assert {t["id"] for t in records[row.id]["transactions"]} == set(members)
            assert row.transactions == len(members) - 1


def test_second_sync_fetches_no_recorded_payout_again(
    world: World, make_client: ClientFactory, sim: Simulator
) -> None:
    client = make_client()
    sync_client(client)
    path = archive.payouts_path(client.archive_dir)
    before = path.read_bytes()
    gw = sync_mod.gateway_for(client, api_base=sim.url)
    known = sync_mod.read_archive(client)
    result = reconcile.record_payout_contents(client, gw, known)
    open_ones = [
        r for r in archive.read_payouts(client.archive_dir).values() if r["status"] == "in_transit"
    ]
    assert result.recorded == len(open_ones), "only payouts not yet final are asked again"
    assert result.itemised == 0
    assert gw.request_count == len(open_ones)
    assert path.read_bytes() == before


def test_an_interrupted_recording_resumes(
    world: World, make_client: ClientFactory, sim: Simulator
) -> None:
    from beancount_stripe.simulator import FaultPlan

    client = make_client()
    sync_client(client)
    path = archive.payouts_path(client.archive_dir)
    full = archive.read_payouts(client.archive_dir)
    path.unlink()
    known = sync_mod.read_archive(client)
    plan = ",".join(f"500@{n}" for n in range(reconcile.contents.WRITE_EVERY + 5, 500))
    with Simulator(world, faults=FaultPlan.parse(plan)) as broken:
        gw = sync_mod.gateway_for(client, api_base=broken.url, max_retries=0, backoff=0.01)
        with pytest.raises(BeancountStripeError):
            reconcile.record_payout_contents(client, gw, known)
    partial = archive.read_payouts(client.archive_dir)
    assert 0 < len(partial) < len(full)
    gw = sync_mod.gateway_for(client, api_base=sim.url)
    result = reconcile.record_payout_contents(client, gw, known)
    assert archive.read_payouts(client.archive_dir) == full
    in_transit = sum(1 for r in partial.values() if r["status"] == "in_transit")
    assert result.recorded == len(full) - len(partial) + in_transit


def test_stripe_refuses_to_itemise_a_manual_payout(
    world: World, make_client: ClientFactory, sim: Simulator
) -> None:
    client = make_client()
    history = world.accounts[client.stripe_account].history
    manual = next(
        k for k, v in history.objects.items() if v.get("object") == "payout" and not v["automatic"]
    )
    gw = sync_mod.gateway_for(client, api_base=sim.url)
    assert gw.payout(manual)["automatic"] is False
    with pytest.raises(BeancountStripeError, match="automatic transfers, not manual"):
        list(gw.payout_transactions(manual))


@pytest.mark.parametrize("seed", [5, 17, 99])
def test_generated_histories_every_breakdown_sums_to_the_payout_amount(seed: int) -> None:
    history = generate_history(
        account_id="acct_1Breakdown0001",
        seed=seed,
        size=600,
        start=datetime.date(2024, 1, 1),
        end=datetime.date(2024, 12, 31),
        currencies=("usd", "jpy", "bhd"),
    )
    by_id = {bt["id"]: bt for bt in history.transactions}
    assert history.payout_members
    for po_id, members in history.payout_members.items():
        payout = history.objects[po_id]
        rec = {
            "id": po_id,
            "transactions": [dict(by_id[m], source=by_id[m]["source"]) for m in members],
        }
        parts = reconcile.breakdown_minor(rec)
        assert parts is not None and sum(parts.values()) == payout["amount"], po_id


def test_fetch_for_beangulp_records_payouts_too(world: World, make_client: ClientFactory) -> None:
    client = make_client()
    result = sync_mod.fetch_client(client)
    assert archive.payouts_path(client.archive_dir) in result.changed_files
    history = world.accounts[client.stripe_account].history
    payouts = {k for k, v in history.objects.items() if v.get("object") == "payout"}
    assert set(archive.read_payouts(client.archive_dir)) == payouts


def test_a_payout_recorded_paid_that_later_failed_is_fetched_again(
    world: World, make_client: ClientFactory, sim: Simulator
) -> None:
    client = make_client()
    sync_client(client)
    records = archive.read_payouts(client.archive_dir)
    failed = [po for po, r in records.items() if r["status"] == "failed"]
    assert failed, "the generated history has a failed payout"
    stale = {po: dict(r, status="paid") if po in failed else r for po, r in records.items()}
    archive.write_payouts(client.archive_dir, client.id, client.stripe_account, stale)
    gw = sync_mod.gateway_for(client, api_base=sim.url)
    reconcile.record_payout_contents(client, gw, sync_mod.read_archive(client))
    assert archive.read_payouts(client.archive_dir) == records
