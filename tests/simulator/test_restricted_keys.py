"""Restricted keys: the simulator enforces permissions as Stripe does, and the documented list
(``stripe_api.REQUIRED_PERMISSIONS``) is exactly what a sync needs."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import stripe

from beancount_stripe import keycheck, sync
from beancount_stripe.config import KeySource
from beancount_stripe.errors import MissingPermissionError
from beancount_stripe.simulator import Simulator, World
from beancount_stripe.simulator.server import PERMISSION_IMPLIES, granted
from beancount_stripe.stripe_api import PERMISSION_NAMES, REQUIRED_PERMISSIONS

from ..conftest import ClientFactory

REPO = Path(__file__).resolve().parents[2]
ACME = "acct_1TestAcme00001"


def rk(tag: str) -> str:
    """A fake restricted key, assembled so no key-shaped literal sits in the source."""
    return "rk_" + "test_" + f"Restricted{tag}".ljust(24, "0")


def client_with_key(make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch, key: str):
    monkeypatch.setenv("TEST_RESTRICTED_KEY", key)
    return dataclasses.replace(make_client(), key=KeySource("env", "TEST_RESTRICTED_KEY"))


def without(permission: str) -> frozenset[str]:
    """The documented list minus ``permission`` and every permission that implies it."""
    keep = {p for p in PERMISSION_NAMES if p != permission}
    while True:
        drop = {p for p in keep if permission in granted(frozenset({p}))}
        if not drop:
            return frozenset(keep)
        keep -= drop


def test_the_documented_permissions_are_enough(
    make_client: ClientFactory, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = world.add_restricted_key(ACME, rk("All"), PERMISSION_NAMES)
    client = client_with_key(make_client, monkeypatch, key)
    report = sync.sync_client(client)
    assert report.booked and report.assertions
    assert key not in client.output.read_text() + "".join(
        p.read_text() for p in client.archive_dir.iterdir()
    )
    check = keycheck.check_key_online(client)
    assert check.problems == [] and check.account == ACME


@pytest.mark.parametrize("permission", PERMISSION_NAMES)
def test_each_documented_permission_is_needed(
    make_client: ClientFactory,
    world: World,
    monkeypatch: pytest.MonkeyPatch,
    permission: str,
) -> None:
    held = without(permission)
    key = world.add_restricted_key(ACME, rk(permission[4:18]), held)
    client = client_with_key(make_client, monkeypatch, key)
    removed = set(PERMISSION_NAMES) - held
    with pytest.raises(MissingPermissionError) as info:
        sync.sync_client(client)
    assert info.value.permission in removed
    assert info.value.exit_code == 3
    assert key not in str(info.value)
    assert not client.output.exists() and not client.ledger.exists()
    # The online check names the permission itself, whatever else is missing.
    found = keycheck.check_key_online(client)
    names = {getattr(p, "permission", None) for p in found.problems}
    assert permission in names and found.exit_code == 3


def test_simulator_answers_403_like_stripe(sim: Simulator, world: World) -> None:
    key = world.add_restricted_key(ACME, rk("Balance"), {"rak_balance_read"})
    client = stripe.StripeClient(key, base_addresses={"api": sim.url})
    assert client.v1.balance.retrieve()["object"] == "balance"
    with pytest.raises(stripe.PermissionError) as info:
        client.v1.balance_transactions.list(params={"limit": 1, "expand": ["data.source"]})
    err = info.value
    assert err.http_status == 403
    assert err.error is not None and err.error.type == "invalid_request_error"
    text = str(err.user_message)
    assert "does not have the required permissions for this endpoint" in text
    assert "'rak_balance_transaction_source_read'" in text
    assert key not in text and key[-4:] in text  # masked as Stripe masks it
    with pytest.raises(stripe.PermissionError):
        client.v1.charges.list(params={"limit": 1})
    # a secret key may do anything
    secret = stripe.StripeClient(world.accounts[ACME].key, base_addresses={"api": sim.url})
    assert secret.v1.charges.list(params={"limit": 1})["object"] == "list"


def test_source_permission_implies_what_stripe_documents() -> None:
    assert granted(frozenset({"rak_balance_transaction_source_read"})) >= {
        "rak_application_fee_read",
        "rak_balance_read",
        "rak_transfer_read",
        "rak_payout_read",
    }
    assert granted(frozenset({"rak_charge_write"})) == {"rak_charge_write", "rak_charge_read"}
    assert set(PERMISSION_IMPLIES) <= set(PERMISSION_NAMES)


def test_docs_list_every_permission() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    clients = (REPO / "config" / "clients.yaml").read_text(encoding="utf-8")
    for perm in REQUIRED_PERMISSIONS:
        assert perm.name in readme, f"README lacks {perm.name}"
        assert perm.name in clients, f"config/clients.yaml lacks {perm.name}"
        assert perm.resource in readme


def test_world_file_declares_restricted_keys(tmp_path: Path) -> None:
    from beancount_stripe.errors import ConfigError
    from beancount_stripe.simulator.world import load_world

    key = rk("Yaml")
    body = (
        "accounts:\n"
        "  - id: acct_1YamlWorld0001\n"
        "    history: {seed: 1, size: 20}\n"
        "    restricted_keys:\n"
        f"      - {{key: {key}, permissions: [rak_balance_read]}}\n"
    )
    path = tmp_path / "world.yaml"
    path.write_text(body, encoding="utf-8")
    world = load_world(path)
    assert world.permissions_of(key) == {"rak_balance_read"}
    assert world.account_for_key(key) is world.accounts["acct_1YamlWorld0001"]
    path.write_text(body.replace("permissions: [rak_balance_read]", "permissions: 3"))
    with pytest.raises(ConfigError, match="restricted_keys"):
        load_world(path)
