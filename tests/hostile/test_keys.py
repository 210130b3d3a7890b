"""Hostile cases about keys: restricted keys missing a permission, revoked, pasted, unreadable,
missing from the keyring, opening another account; `config check --online` on each.

Every case ends in the clean refusal of ``harness.assert_refused``: the documented exit status,
a message naming the problem and the fix, no traceback, no file changed, the key never shown.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from beancount_stripe.simulator import World
from beancount_stripe.stripe_api import PERMISSION_NAMES

from .conftest import Workspace
from .harness import assert_refused

ACME = "acct_1TestAcme00001"
OTHER = "acct_1TestOther0002"
HERE = Path(__file__).resolve().parent


def rk(tag: str) -> str:
    """A fake restricted key, assembled so no key-shaped literal sits in the source."""
    return "rk_" + "test_" + f"Hostile{tag}".ljust(26, "7")


def use_key(ws: Workspace, key: str) -> None:
    ws.env["HOSTILE_ACME_KEY"] = key


def restricted(world: World, ws: Workspace, lacking: str) -> str:
    """A restricted key of acme holding the documented list minus ``lacking`` (and, so the
    missing one is not implied back, minus the source permission when it implies it)."""
    held = set(PERMISSION_NAMES) - {lacking}
    if lacking in ("rak_balance_read", "rak_transfer_read", "rak_application_fee_read"):
        held.discard("rak_balance_transaction_source_read")
    key = world.add_restricted_key(ACME, rk(lacking[4:20].replace("_", "")), held)
    use_key(ws, key)
    return key


def key_config(ws: Workspace, key_line: str) -> None:
    text = ws.config.read_text(encoding="utf-8")
    ws.write_config(text.replace("key: env:HOSTILE_ACME_KEY", key_line))


# -- sync with a restricted key missing a permission ------------------------------------------


@pytest.mark.parametrize(
    ("lacking", "row"),
    [
        ("rak_connected_account_read", "Account"),
        ("rak_balance_read", "Balance"),
        ("rak_balance_transaction_source_read", "Balance transaction sources"),
        ("rak_charge_read", "Charges"),
    ],
)
def test_sync_with_a_restricted_key_missing_a_permission(
    ws: Workspace, world: World, lacking: str, row: str
) -> None:
    key = restricted(world, ws, lacking)
    before = ws.snapshot()
    result = ws.cli("sync", "acme")
    assert_refused(
        result,
        code=3,
        mentions=["acme", lacking, row, "403", "nothing was booked"],
        before=before,
        roots=[ws.root],
        keys=[key],
    )


def test_sync_with_a_missing_permission_after_a_clean_sync(synced: Workspace, world: World) -> None:
    key = restricted(world, synced, "rak_balance_transaction_source_read")
    before = synced.snapshot()
    result = synced.cli("sync", "acme")
    assert_refused(
        result,
        code=3,
        mentions=["rak_balance_transaction_source_read", "Dashboard"],
        before=before,
        roots=[synced.root],
        keys=[key],
    )


# -- keys Stripe refuses, or that open the wrong account ---------------------------------------


def test_revoked_key(synced: Workspace, world: World) -> None:
    before = synced.snapshot()
    world.revoke_key(synced.key)
    result = synced.cli("sync", "acme")
    assert_refused(
        result,
        code=3,
        mentions=["acme", "401", "Invalid API Key"],
        before=before,
        roots=[synced.root],
        keys=[synced.key],
    )


def test_revoked_restricted_key(ws: Workspace, world: World) -> None:
    key = world.add_restricted_key(ACME, rk("Revoked"), PERMISSION_NAMES)
    world.revoke_key(key)
    use_key(ws, key)
    before = ws.snapshot()
    result = ws.cli("sync", "acme")
    assert_refused(
        result, code=3, mentions=["acme", "401"], before=before, roots=[ws.root], keys=[key]
    )


def test_key_of_another_account(synced: Workspace, world: World) -> None:
    other = world.accounts[OTHER].key
    assert other is not None
    use_key(synced, other)
    before = synced.snapshot()
    result = synced.cli("sync", "acme")
    assert_refused(
        result,
        code=3,
        mentions=[OTHER, ACME, "acme"],
        before=before,
        roots=[synced.root],
        keys=[other, synced.key],
    )


def test_restricted_key_of_another_account(ws: Workspace, world: World) -> None:
    key = world.add_restricted_key(OTHER, rk("OtherAcct"), PERMISSION_NAMES)
    use_key(ws, key)
    before = ws.snapshot()
    result = ws.cli("sync", "acme")
    assert_refused(
        result, code=3, mentions=[OTHER, ACME], before=before, roots=[ws.root], keys=[key]
    )


def test_publishable_key(ws: Workspace) -> None:
    key = "pk_" + "test_" + "Publishable".ljust(24, "3")
    use_key(ws, key)
    before = ws.snapshot()
    result = ws.cli("sync", "acme")
    assert_refused(
        result, code=2, mentions=["publishable", "rk_"], before=before, roots=[ws.root], keys=[key]
    )


# -- where the key comes from --------------------------------------------------------------------


def test_key_pasted_into_the_config(ws: Workspace) -> None:
    key = rk("Pasted")
    key_config(ws, f"key: {key}")
    before = ws.snapshot()
    result = ws.cli("sync", "acme")
    assert_refused(
        result, code=2, mentions=["clients[0].key", key[-4:]], before=before, roots=[ws.root]
    )
    assert key not in result.output  # masked in the message (the file itself holds it)


def test_key_pasted_into_a_comment(ws: Workspace) -> None:
    key = rk("Comment")
    ws.write_config(ws.config.read_text(encoding="utf-8") + f"# old key: {key}\n")
    before = ws.snapshot()
    result = ws.cli("config", "check")
    assert_refused(result, code=2, mentions=["key"], before=before, roots=[ws.root])
    assert key not in result.output


def test_key_file_missing(ws: Workspace) -> None:
    key_config(ws, "key: file:../secrets/acme.key")
    before = ws.snapshot()
    result = ws.cli("sync", "acme")
    assert_refused(
        result,
        code=2,
        mentions=["acme.key", "does not exist"],
        before=before,
        roots=[ws.root],
        keys=[ws.key],
    )


def test_key_file_empty(ws: Workspace) -> None:
    secret = ws.root / "secrets" / "acme.key"
    secret.parent.mkdir()
    secret.write_text("\n", encoding="utf-8")
    secret.chmod(0o600)
    key_config(ws, "key: file:../secrets/acme.key")
    before = ws.snapshot()
    result = ws.cli("sync", "acme")
    assert_refused(
        result, code=2, mentions=["acme.key", "is empty"], before=before, roots=[ws.root]
    )


def test_key_file_is_a_directory(ws: Workspace) -> None:
    (ws.root / "secrets" / "acme.key").mkdir(parents=True)
    key_config(ws, "key: file:../secrets/acme.key")
    before = ws.snapshot()
    result = ws.cli("sync", "acme")
    assert_refused(
        result, code=2, mentions=["acme.key", "cannot read"], before=before, roots=[ws.root]
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its mode")
def test_key_file_unreadable(ws: Workspace) -> None:
    secret = ws.root / "secrets" / "acme.key"
    secret.parent.mkdir()
    secret.write_text(ws.key, encoding="utf-8")
    secret.chmod(0o000)
    key_config(ws, "key: file:../secrets/acme.key")
    before = ws.snapshot()
    try:
        result = ws.cli("sync", "acme")
    finally:
        secret.chmod(0o600)
    assert_refused(
        result,
        code=2,
        mentions=["acme.key", "permission denied"],
        before=before,
        roots=[ws.root],
        keys=[ws.key],
    )


def test_keyring_without_the_entry(ws: Workspace) -> None:
    pytest.importorskip("keyring")
    key_config(ws, "key: keyring")
    ws.env["PYTHON_KEYRING_BACKEND"] = "empty_keyring.EmptyKeyring"
    ws.env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(HERE), os.environ.get("PYTHONPATH", "")) if p
    )
    before = ws.snapshot()
    result = ws.cli("sync", "acme")
    assert_refused(
        result,
        code=2,
        mentions=["keyring", "beancount-stripe", "keyring set beancount-stripe acme"],
        before=before,
        roots=[ws.root],
        keys=[ws.key],
    )


# -- config check --online -----------------------------------------------------------------------


def test_online_check_names_the_missing_permission(ws: Workspace, world: World) -> None:
    key = restricted(world, ws, "rak_dispute_read")
    before = ws.snapshot()
    result = ws.cli("config", "check", "--online")
    assert_refused(
        result,
        code=3,
        mentions=["acme", "rak_dispute_read", "Disputes", "Dashboard"],
        before=before,
        roots=[ws.root],
        keys=[key],
    )
    assert "rak_charge_read" not in result.output.split("fix:")[0]


def test_online_check_names_every_missing_permission(ws: Workspace, world: World) -> None:
    held = {"rak_connected_account_read", "rak_balance_read"}
    key = world.add_restricted_key(ACME, rk("TwoOnly"), held)
    use_key(ws, key)
    before = ws.snapshot()
    result = ws.cli("config", "check", "--online")
    missing = [p for p in PERMISSION_NAMES if p not in held]
    assert_refused(result, code=3, mentions=missing, before=before, roots=[ws.root], keys=[key])
    assert result.output.count("error:") == len(missing)


def test_online_check_with_the_key_of_another_account(ws: Workspace, world: World) -> None:
    key = world.add_restricted_key(OTHER, rk("OnlineOther"), PERMISSION_NAMES)
    use_key(ws, key)
    before = ws.snapshot()
    result = ws.cli("config", "check", "--online")
    assert_refused(
        result, code=3, mentions=[OTHER, ACME], before=before, roots=[ws.root], keys=[key]
    )


def test_online_check_with_a_revoked_key(ws: Workspace, world: World) -> None:
    before = ws.snapshot()
    world.revoke_key(ws.key)
    result = ws.cli("config", "check", "--online")
    assert_refused(
        result, code=3, mentions=["acme", "401"], before=before, roots=[ws.root], keys=[ws.key]
    )


def test_online_check_passes_with_the_documented_permissions(ws: Workspace, world: World) -> None:
    key = world.add_restricted_key(ACME, rk("Complete"), PERMISSION_NAMES)
    use_key(ws, key)
    before = ws.snapshot()
    result = ws.cli("config", "check", "--online")
    assert result.code == 0, result.output
    assert f"holds all {len(PERMISSION_NAMES)} read permissions" in result.output
    assert key not in result.output and ws.snapshot() == before
