"""Soak: random faults, kill -9, concurrent syncs and hand edits never lose or double anything.

A seeded loop of ``ITERATIONS`` iterations over a generated history served by one simulator.
Every ``EPISODE`` iterations the client starts over in a ledger folder that does not exist yet.
Each iteration does one or more random things — new activity at Stripe, a sync under random
429/500/drop faults, two syncs at once, a CLI sync killed with SIGKILL at a random instant, a
hand edit of the output (delete an entry, re-flag one, move one to another included file, add a
comment) — then one clean sync, after which every balance transaction Stripe shows must be booked
exactly once, and the ledger must load without an error (so every balance assertion holds).

A failing iteration names its seed and its actions, so ``SOAK_SEED=… SOAK_ITERATIONS=1`` replays it.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import stripe
from beancount import loader
from beancount.core import data

from beancount_stripe.config import ClientConfig, KeySource, make_accounts
from beancount_stripe.errors import BeancountStripeError, StripeUnavailableError
from beancount_stripe.simulator import FaultPlan, SimAccount, Simulator, World, generate_history
from beancount_stripe.sync import gateway_for, sync_client

pytestmark = pytest.mark.slow

ITERATIONS = int(os.environ.get("SOAK_ITERATIONS", "200"))
SEED = int(os.environ.get("SOAK_SEED", "7"))
EPISODE = 5  # iterations per ledger folder; each episode starts with no folder at all
KILL_EVERY = 16  # about one action in this many kills a CLI sync with SIGKILL
ACCOUNT = "acct_1SoakTest000001"
KEY_ENV = "SOAK_TEST_KEY"
CLI = str(Path(sys.executable).parent / "beancount-stripe")
HEADER = re.compile(r"^\d{4}-\d{2}-\d{2} [*!] ", re.M)


@dataclass
class Books:
    """One client's folder for an episode, and what the loop did to it (for failure messages)."""

    root: Path
    client: ClientConfig
    config: Path
    log: list[str] = field(default_factory=list)

    @property
    def moved(self) -> Path:
        return self.client.ledger.parent / "moved.beancount"


@pytest.fixture(scope="module")
def soak_world() -> World:
    today = dt.datetime.now(dt.UTC).date()
    history = generate_history(
        account_id=ACCOUNT,
        seed=SEED,
        size=120,
        start=today - dt.timedelta(days=75),
        end=today - dt.timedelta(days=1),
        currencies=("usd", "jpy", "bhd"),
    )
    key = "sk_test_SoakTest000001Key0000"
    return World([SimAccount(id=ACCOUNT, name="Soak", key=key, history=history)])


@pytest.fixture(scope="module")
def soak_sim(soak_world: World) -> Iterator[Simulator]:
    with Simulator(soak_world) as sim:
        yield sim


def _books(root: Path, sim: Simulator) -> Books:
    base = root / "books" / "soak"  # does not exist yet: the first sync creates it
    client = ClientConfig(
        id="soak",
        name="Soak Test",
        stripe_account=ACCOUNT,
        key=KeySource("env", KEY_ENV),
        ledger=base / "ledger.beancount",
        output=base / "stripe.beancount",
        archive_dir=base / "archive",
        timezone="America/New_York",
        accounts=make_accounts("Soak"),
        api_base=sim.url,
    )
    root.mkdir(parents=True, exist_ok=True)
    config = root / "clients.yaml"
    config.write_text(
        "clients:\n"
        "  - id: soak\n"
        "    name: Soak Test\n"
        f"    stripe_account: {ACCOUNT}\n"
        f"    key: env:{KEY_ENV}\n"
        f"    ledger: {client.ledger}\n"
        "    timezone: America/New_York\n"
        f"    api_base: {sim.url}\n",
        encoding="utf-8",
    )
    return Books(root, client, config)


# -- actions --------------------------------------------------------------------------------------


def _faults(rng: random.Random) -> FaultPlan:
    return FaultPlan(
        rate=rng.choice([0.0, 0.05, 0.1, 0.2]),
        seed=rng.randrange(10**6),
        kinds=(
            "429",
            "500",
            "drop",
        ),
    )


def _sync(books: Books, *, tolerate_outage: bool) -> None:
    gw = gateway_for(books.client, max_retries=10, backoff=0.005, rate_limit=0)
    try:
        sync_client(books.client, gateway=gw)
    except StripeUnavailableError:
        if not tolerate_outage:
            raise


def _concurrent(books: Books, rng: random.Random) -> None:
    """Two syncs at once, the second started a random instant after the first."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            _sync(books, tolerate_outage=True)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    first = threading.Thread(target=run)
    second = threading.Thread(target=run)
    first.start()
    time.sleep(rng.uniform(0.0, 0.25))
    second.start()
    first.join(120)
    second.join(120)
    assert not errors, f"a concurrent sync failed: {errors[0]!r}"


def _kill(books: Books, rng: random.Random, key: str) -> None:
    """A CLI sync in its own process, killed with SIGKILL at a random instant."""
    env = {**os.environ, KEY_ENV: key, "BEANCOUNT_STRIPE_RETRIES": "10"}
    env.pop("BEANCOUNT_STRIPE_CONFIG", None)
    proc = subprocess.Popen(
        [CLI, "-c", str(books.config), "sync", "soak"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(rng.uniform(0.3, 2.0))
    proc.kill()
    proc.wait(30)


def _blocks(text: str) -> list[tuple[int, int]]:
    """(start, end) offsets of each transaction with a stripe_id, up to its blank line."""
    out = []
    for m in HEADER.finditer(text):
        end = text.find("\n\n", m.start())
        end = len(text) if end < 0 else end + 1
        if "stripe_id:" in text[m.start() : end]:
            out.append((m.start(), end))
    return out


def _edit(books: Books, rng: random.Random) -> str:
    """One hand edit of the output file; returns what it did."""
    out = books.client.output
    if not out.exists():
        return "edit: nothing to edit yet"
    text = out.read_text(encoding="utf-8")
    blocks = _blocks(text)
    kind = rng.choice(["delete", "reflag", "move", "comment"])
    if not blocks or kind == "comment":
        cuts = [m.end() for m in re.finditer(r"\n\n", text)] or [len(text)]
        at = rng.choice(cuts)
        out.write_text(text[:at] + "; checked by hand\n\n" + text[at:], encoding="utf-8")
        return "edit: comment"
    start, end = rng.choice(blocks)
    block = text[start:end]
    stripe_id = re.search(r'stripe_id: "([^"]+)"', block)
    what = f"edit: {kind} {stripe_id.group(1) if stripe_id else '?'}"
    if kind == "reflag":
        flipped = block.replace(" * ", " ! ", 1) if " * " in block[:14] else block
        out.write_text(text[:start] + flipped + text[end:], encoding="utf-8")
        return what
    out.write_text(text[:start] + text[end:], encoding="utf-8")
    if kind == "move":
        main = books.client.ledger
        if 'include "moved.beancount"' not in main.read_text(encoding="utf-8"):
            with main.open("a", encoding="utf-8") as f:
                f.write('\ninclude "moved.beancount"\n')
        with books.moved.open("a", encoding="utf-8") as f:
            f.write("\n" + block)
    return what


def _activity(world: World, count: int) -> list[dict[str, object]]:
    """New transactions at Stripe, created up to now (never in the future: a sync cannot see
    those yet)."""
    newest = world.accounts[ACCOUNT].index.newest_created() or 0
    while time.time() <= newest + 1:
        time.sleep(0.2)
    return world.add_activity(ACCOUNT, count, dt.datetime.now(dt.UTC))


# -- the check ------------------------------------------------------------------------------------


def _check(books: Books, world: World, where: str) -> None:
    """After a clean sync: every visible BT booked exactly once; the ledger loads without error."""
    entries, errors, _ = loader.load_file(str(books.client.ledger))
    booked = Counter(
        str(e.meta["stripe_id"])
        for e in entries
        if isinstance(e, data.Transaction) and "stripe_id" in e.meta
    )
    doubled = {i: n for i, n in booked.items() if n > 1}
    assert not doubled, f"{where}: booked twice: {sorted(doubled)[:3]} ({len(doubled)} in all)"
    messages = [e.message for e in errors]
    assert not messages, f"{where}: bean-check: {messages[:3]} ({len(messages)} in all)"
    now = int(time.time())
    visible = {
        bt["id"] for bt in world.accounts[ACCOUNT].history.transactions if bt["created"] <= now
    }
    missing = visible - set(booked)
    assert not missing, f"{where}: never booked: {sorted(missing)[:5]} ({len(missing)} in all)"
    assert set(booked) <= visible, f"{where}: booked what Stripe does not have"


def test_soak(
    tmp_path: Path,
    soak_world: World,
    soak_sim: Simulator,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key = soak_world.accounts[ACCOUNT].key
    assert key
    monkeypatch.setenv(KEY_ENV, key)
    monkeypatch.delenv("BEANCOUNT_STRIPE_API_BASE", raising=False)
    # The SDK's own retry pause (0.5 s at least) only slows the loop; its retries still run.
    monkeypatch.setattr(stripe._http_client.HTTPClient, "INITIAL_DELAY", 0.005)
    failures: list[str] = []
    books: Books | None = None
    for i in range(ITERATIONS):
        seed = SEED * 100_003 + i
        rng = random.Random(seed)
        if i % EPISODE == 0:
            books = _books(tmp_path / f"episode{i // EPISODE:03d}", soak_sim)
        assert books is not None
        actions: list[str] = []
        try:
            for _ in range(rng.randint(1, 3)):
                soak_sim.faults = _faults(rng)
                roll = rng.random()
                if roll < 0.2:
                    new = _activity(soak_world, rng.randint(1, 8))
                    actions.append(f"activity +{len(new)}")
                elif roll < 0.45:
                    actions.append(f"sync (faults {soak_sim.faults.rate})")
                    _sync(books, tolerate_outage=True)
                elif roll < 0.65:
                    actions.append(f"two syncs at once (faults {soak_sim.faults.rate})")
                    _concurrent(books, rng)
                elif roll < 0.65 + 1 / KILL_EVERY:
                    actions.append("kill -9 a CLI sync")
                    _kill(books, rng, key)
                else:
                    actions.append(_edit(books, rng))
            soak_sim.faults = FaultPlan()
            where = f"iteration {i} (seed {seed}) [{'; '.join(actions)}]"
            try:
                _sync(books, tolerate_outage=False)  # the one clean sync
            except BeancountStripeError as exc:
                raise AssertionError(f"{where}: the clean sync failed: {exc}") from None
            _check(books, soak_world, where)
        except (AssertionError, BeancountStripeError) as exc:
            failures.append(str(exc).splitlines()[0])
            books = _books(tmp_path / f"episode{i // EPISODE:03d}-after-failure-{i}", soak_sim)
    soak_sim.faults = FaultPlan()
    assert not failures, f"{len(failures)} of {ITERATIONS} iterations failed:\n" + "\n".join(
        failures
    )
