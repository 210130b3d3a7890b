"""Shared fixtures: a running simulator over real HTTP and client configs pointing at it."""

from __future__ import annotations

import datetime
import hashlib
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from beancount_stripe.config import ClientConfig, KeySource, make_accounts
from beancount_stripe.simulator import SimAccount, Simulator, World, generate_history
from beancount_stripe.sync_state import STATE_NAME

REPO = Path(__file__).resolve().parent.parent


def make_account(
    account_id: str,
    *,
    seed: int = 1,
    size: int = 250,
    currencies: tuple[str, ...] = ("usd", "eur"),
    start: datetime.date = datetime.date(2025, 1, 1),
    end: datetime.date = datetime.date(2025, 6, 30),
    key: str | None = None,
    connected: tuple[str, ...] = (),
) -> SimAccount:
    history = generate_history(
        account_id=account_id, seed=seed, size=size, start=start, end=end, currencies=currencies
    )
    return SimAccount(
        id=account_id,
        name=f"Test {account_id}",
        key=key or f"sk_test_{account_id[5:]}Key0000",
        history=history,
        connected=list(connected),
    )


@pytest.fixture
def world() -> World:
    acme = make_account("acct_1TestAcme00001", seed=11)
    other = make_account("acct_1TestOther0002", seed=22, size=120)
    child = make_account("acct_1TestChild0003", seed=33, size=150, currencies=("bhd", "kwd"))
    platform = make_account(
        "acct_1TestPlatform04", seed=44, size=60, connected=("acct_1TestChild0003",)
    )
    return World({a.id: a for a in (acme, other, child, platform)})


@pytest.fixture
def sim(world: World) -> Iterator[Simulator]:
    with Simulator(world) as s:
        yield s


ClientFactory = Callable[..., ClientConfig]


@pytest.fixture
def make_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, world: World, sim: Simulator
) -> ClientFactory:
    """A client whose key env var holds ``key_of``'s simulator key; files under tmp_path."""

    def factory(
        client_id: str = "acme",
        *,
        stripe_account: str = "acct_1TestAcme00001",
        key_of: str | None = None,
        connect: bool = False,
        timezone: str = "America/New_York",
        platform_account: str | None = None,
    ) -> ClientConfig:
        env = f"TEST_KEY_{client_id.upper().replace('-', '_')}"
        monkeypatch.setenv(env, world.accounts[key_of or stripe_account].key)
        base = tmp_path / client_id
        return ClientConfig(
            id=client_id,
            name=f"Client {client_id}",
            stripe_account=stripe_account,
            key=KeySource("env", env),
            ledger=base / "ledger.beancount",
            output=base / "stripe.beancount",
            archive_dir=base / "archive",
            timezone=timezone,
            accounts=make_accounts(client_id.title().replace("-", "")),
            connect=connect,
            platform_account=platform_account,
            api_base=sim.url,
        )

    return factory


def tree_digest(root: Path) -> dict[str, str]:
    """sha256 of every file under root, by relative path (to prove 'no byte changed').

    The sync state file is left out: it records every run, failed ones too, and is not books;
    so are Beancount's pickle caches, which any load (bean-check) writes beside a ledger.
    """
    if not root.exists():
        return {}
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
        and "__pycache__" not in p.parts
        and p.name != STATE_NAME
        and not p.name.endswith(".picklecache")
    }


def copy_examples(dest: Path) -> None:
    """Copy the committed config and example ledgers into ``dest``, without Beancount's pickle
    caches: a cache copied along names the repository's files, whose unchanged mtimes make it
    look valid, so a load in the copy would return the repository's entries, not the copy's."""
    skip = shutil.ignore_patterns("*.picklecache", ".beancount-stripe-state.json")
    shutil.copytree(REPO / "config", dest / "config", ignore=skip)
    shutil.copytree(REPO / "example-ledger", dest / "example-ledger", ignore=skip)
