"""A firm's working folder for hostile cases: a config, a ledger folder, a simulator, a key."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from beancount_stripe.simulator import Simulator, World

from .harness import Run, digest, run


@dataclass
class Workspace:
    """Paths and the key of one hostile case; ``cli`` runs the command with the key set."""

    root: Path
    config: Path
    books: Path
    sim_url: str
    key: str
    env: dict[str, str] = field(default_factory=dict)

    @property
    def ledger(self) -> Path:
        return self.books / "acme" / "ledger.beancount"

    @property
    def output(self) -> Path:
        return self.books / "acme" / "stripe.beancount"

    @property
    def archive(self) -> Path:
        return self.books / "acme" / "archive"

    def write_config(self, body: str) -> Path:
        self.config.write_text(body, encoding="utf-8")
        return self.config

    def cli(self, *args: str, **kw: object) -> Run:
        return run(["-c", str(self.config), *args], env=self.env, **kw)  # type: ignore[arg-type]

    def snapshot(self) -> dict[str, str]:
        return digest(self.root)


CONFIG = """\
defaults:
  timezone: Europe/Berlin
  api_base: {url}
clients:
  - id: acme
    name: Acme Test GmbH
    stripe_account: acct_1TestAcme00001
    key: env:HOSTILE_ACME_KEY
    ledger: ../books/acme/ledger.beancount
    operating_currency: EUR
"""


@pytest.fixture
def ws(tmp_path: Path, sim: Simulator, world: World) -> Workspace:
    """A valid workspace (config + key); nothing synced yet."""
    root = tmp_path
    config = root / "config" / "clients.yaml"
    config.parent.mkdir(parents=True)
    key = world.accounts["acct_1TestAcme00001"].key
    w = Workspace(root, config, root / "books", sim.url, key, {"HOSTILE_ACME_KEY": key})
    w.write_config(CONFIG.format(url=sim.url))
    return w


@pytest.fixture
def synced(ws: Workspace) -> Workspace:
    """The workspace after one clean sync."""
    result = ws.cli("sync", "acme")
    assert result.code == 0, result.output
    return ws
