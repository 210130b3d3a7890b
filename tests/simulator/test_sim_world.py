"""Worlds: the demo world, YAML loading and its errors, fixtures, the click command."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import stripe
from click.testing import CliRunner

from beancount_stripe.errors import ConfigError
from beancount_stripe.simulator import (
    ALL_TYPES,
    SimAccount,
    Simulator,
    World,
    default_world,
    generate_history,
    load_world,
    mask_key,
)
from beancount_stripe.simulator.command import build_world, describe, simulator
from beancount_stripe.simulator.money import THREE_DECIMAL, ZERO_DECIMAL

from .conftest import ALPHA, KEYS, make_world, newest_first

DEMO_IDS = {
    "platform": "acct_1FirmPlatform0001",
    "acme": "acct_1AcmeCoffeeRoast",
    "kyoto": "acct_1KyotoTeaHouse01",
    "gulf": "acct_1GulfTrading0001",
}


@pytest.fixture(scope="module")
def demo() -> World:
    return default_world()


def test_demo_world_shape(demo: World) -> None:
    accounts = demo.accounts
    assert set(accounts) == set(DEMO_IDS.values())
    acme, kyoto, gulf = (accounts[DEMO_IDS[k]] for k in ("acme", "kyoto", "gulf"))
    platform = accounts[DEMO_IDS["platform"]]
    assert len(acme.history.transactions) == 1200
    assert {t["currency"] for t in acme.history.transactions} == {"usd", "eur"}
    assert {t["currency"] for t in kyoto.history.transactions} == {"jpy", "krw", "usd"}
    assert {t["currency"] for t in gulf.history.transactions} == {"bhd", "kwd", "usd"}
    assert gulf.key is None and platform.connected == [gulf.id]
    for account in (acme, kyoto, platform):
        assert account.key and account.key.startswith("sk_test_sim_") and account.env
    assert {a.env for a in accounts.values() if a.env} == {
        "ACME_STRIPE_KEY",
        "KYOTO_TEA_STRIPE_KEY",
        "FIRM_PLATFORM_STRIPE_KEY",
    }
    assert {t["type"] for t in acme.history.transactions} >= set(ALL_TYPES)
    for t in gulf.history.transactions:
        if t["currency"] in THREE_DECIMAL:
            assert t["amount"] % 10 == 0 and t["fee"] % 10 == 0
    assert any(t["currency"] in ZERO_DECIMAL for t in kyoto.history.transactions)
    assert demo.add_activity  # the world is mutable per instance
    assert default_world().accounts[acme.id].history == acme.history  # deterministic


def test_demo_world_over_http_with_connect(demo: World) -> None:
    platform_key = demo.accounts[DEMO_IDS["platform"]].key
    with Simulator(demo) as sim:
        client = stripe.StripeClient(platform_key, base_addresses={"api": sim.url})
        gulf = client.v1.accounts.retrieve_current(options={"stripe_account": DEMO_IDS["gulf"]})
        assert gulf.id == DEMO_IDS["gulf"] and gulf.default_currency in ("bhd", "kwd", "usd")
        page = client.v1.balance_transactions.list(
            params={"currency": "bhd", "limit": 5}, options={"stripe_account": DEMO_IDS["gulf"]}
        )
        assert page.data and all(b.currency == "bhd" for b in page.data)
        listed = client.v1.accounts.list()
        assert [a.id for a in listed.data] == [DEMO_IDS["gulf"]]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "world.yaml"
    path.write_text(text)
    return path


def test_load_world_with_a_fixture_account(tmp_path: Path) -> None:
    bts = generate_history(
        account_id="acct_1Recorded00000001",
        seed=3,
        size=40,
        start=dt.date(2025, 1, 1),
        end=dt.date(2025, 3, 1),
    ).transactions
    (tmp_path / "bts.jsonl").write_text("\n".join(json.dumps(b) for b in bts))
    path = write(
        tmp_path,
        """
accounts:
  - id: acct_1Recorded00000001
    name: Recorded
    key: sk_test_recorded_0001
    fixture: bts.jsonl
  - id: acct_1Generated0000002
    key: sk_test_generated_0002
    env: GEN_KEY
    history: {seed: 4, size: 30, start: 2025-01-01, end: 2025-02-01, currencies: [EUR]}
""",
    )
    world = load_world(path)
    recorded = world.accounts["acct_1Recorded00000001"]
    assert [t["id"] for t in recorded.history.transactions] == [t["id"] for t in bts]
    generated = world.accounts["acct_1Generated0000002"]
    assert generated.env == "GEN_KEY" and generated.default_currency == "eur"
    with Simulator(world) as sim:
        client = stripe.StripeClient("sk_test_recorded_0001", base_addresses={"api": sim.url})
        ids = [b.id for b in client.v1.balance_transactions.list().auto_paging_iter()]
        assert ids == [t["id"] for t in newest_first(bts)]
        total = client.v1.balance.retrieve()
        assert sum(a.amount for a in total.available) + sum(p.amount for p in total.pending) == sum(
            t["net"] for t in bts
        )


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("accounts: 3\n", "top-level 'accounts' list"),
        ("accounts:\n  - id: nope\n    history: {}\n", "accounts[0].id"),
        ("accounts:\n  - id: acct_1X\n    colour: red\n    history: {}\n", "accounts[0]: unknown"),
        ("accounts:\n  - id: acct_1X\n    key: sk_live_abc\n    history: {}\n", "accounts[0].key"),
        ("accounts:\n  - id: acct_1X\n", "needs either 'history' or 'fixture'"),
        ("accounts:\n  - id: acct_1X\n    history: {size: -1}\n", "accounts[0].history"),
        ("accounts:\n  - id: acct_1X\n    history: {}\n    connected: [acct_1Y]\n", "acct_1Y"),
        ("accounts:\n  - id: acct_1X\n    fixture: missing.json\n", "accounts[0].fixture"),
        ("accounts: [\n", "not valid YAML"),
    ],
)
def test_world_errors_name_the_file_and_key(tmp_path: Path, text: str, fragment: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_world(path)
    assert fragment in str(info.value) and str(path) in str(info.value)


def test_world_accepts_a_mapping_and_rejects_duplicates() -> None:
    source = make_world()
    again = World({a.id: a for a in source.accounts.values()})
    assert set(again.accounts) == set(source.accounts)
    assert again.account_for_key(KEYS[ALPHA]).id == ALPHA
    twin = SimAccount(
        id="acct_1Twin", name="Twin", history=source.accounts[ALPHA].history, key=KEYS[ALPHA]
    )
    with pytest.raises(ValueError):
        World([source.accounts[ALPHA], twin])


def test_mask_key_shows_only_prefix_and_last_four() -> None:
    assert mask_key("sk_test_abcdefgh1234") == "sk_test_****1234"
    fake = "rk_" + "live_" + "z" * 10 + "9876"  # built at run time: no key-shaped literal
    assert mask_key(fake) == "rk_live_****9876"
    assert "secret" not in mask_key("secretsecret")


# --- the command ----------------------------------------------------------------------------------


def test_build_world_from_options_and_fixtures(tmp_path: Path) -> None:
    fixture = tmp_path / "bts.json"
    bts = make_world().accounts[ALPHA].history.transactions[:20]
    fixture.write_text(json.dumps({"object": "list", "data": bts}))
    world, source = build_world(
        seed=9,
        size=250,
        currencies="usd,jpy",
        fixtures=(f"acct_1FromFile000001={fixture}",),
        environ={},
    )
    assert len(world.accounts) == 2 and "STRIPE_SIM_KEY" in source
    generated = world.accounts["acct_1Sim000000000009"]
    assert {t["currency"] for t in generated.history.transactions} == {"usd", "jpy"}
    lines = "\n".join(describe(world, source))
    for account in world.accounts.values():
        assert account.key not in lines and mask_key(account.key) in lines
    demo, _ = build_world(environ={})
    assert "acct_1AcmeCoffeeRoast" in demo.accounts
    text = "\n".join(describe(demo, "demo"))
    assert "$ACME_STRIPE_KEY" in text and "sk_test_sim_acme" not in text


def test_command_refuses_non_loopback_and_bad_options() -> None:
    runner = CliRunner()
    result = runner.invoke(simulator, ["--host", "0.0.0.0"])
    assert result.exit_code == 2 and "loopback" in result.output
    result = runner.invoke(simulator, ["--faults", "boom@1"])
    assert result.exit_code == 2 and "--faults" in result.output
    result = runner.invoke(simulator, ["--fixture", "nonsense"])
    assert result.exit_code == 2 and "ACCOUNT=FILE" in result.output


def test_command_serves_until_interrupted(tmp_path: Path) -> None:
    code = "from beancount_stripe.simulator.command import simulator; simulator()"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "--port", "0", "--seed", "3", "--size", "50"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "STRIPE_SIM_KEY": "sk_test_from_env_0042"},
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("Stripe simulator listening on http://127.0.0.1:")
        url = first.split()[4]
        banner = [first]
        while not banner[-1].startswith("SDK:"):
            banner.append(proc.stdout.readline())
        assert "sk_test_****0042" in "".join(banner)
        client = stripe.StripeClient("sk_test_from_env_0042", base_addresses={"api": url})
        assert client.v1.accounts.retrieve_current().id == "acct_1Sim000000000003"
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=10)
    assert "sk_test_from_env_0042" not in "".join(banner) + out and "stopped" in out
    assert proc.returncode == 0
