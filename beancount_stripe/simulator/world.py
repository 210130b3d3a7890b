"""The simulated Stripe accounts a simulator serves: who they are, their keys and histories.

A world is loaded from YAML (``load_world``) or built in code. Each account has its own
history (kept separate, as Stripe keeps separate ledgers per ``Stripe-Account``), an optional
secret key, and for a Connect platform the accounts it may act for. Keys here are fake
``sk_test_…`` strings that only this simulator accepts.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from .bank import StatementSpec
from .generator import History, generate_history, load_transactions
from .index import TransactionIndex

DEMO_WORLD = "demo_world.yaml"


@dataclass
class SimAccount:
    """One Stripe account: identity, key, Connect links and its balance-transaction history."""

    id: str
    name: str
    history: History
    key: str | None = None
    key_env: str | None = None  # the environment variable the demo puts this key in
    connected: list[str] = field(default_factory=list)
    country: str = "US"
    default_currency: str | None = None
    timezone: str = "Etc/UTC"
    email: str | None = None
    created: int | None = None
    bank_statement: StatementSpec | None = None  # the demo's bank CSVs (bank.py), if any
    # balance Stripe reports that no listed transaction explains yet (minor units per currency),
    # for tests of a sync that must not write an assertion it cannot prove
    unlisted_balance: dict[str, int] = field(default_factory=dict)
    unlisted: list[dict[str, Any]] = field(default_factory=list)  # see ``World.add_late``
    # Restricted keys (``rk_test_…``) of this account and the permissions each holds
    # (``rak_charge_read``…); the simulator answers 403 to anything else, as Stripe does.
    restricted_keys: dict[str, frozenset[str]] = field(default_factory=dict)
    index: TransactionIndex = field(init=False, repr=False, compare=False)
    lock: threading.RLock = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.id.startswith("acct_"):
            raise ValueError(f"account id must start with acct_: {self.id!r}")
        self.index = TransactionIndex(self.history.transactions)
        self.lock = threading.RLock()
        if self.default_currency is None:
            currencies = [t["currency"] for t in self.history.transactions[:1000]]
            self.default_currency = (
                max(set(currencies), key=currencies.count) if currencies else "usd"
            )
        if self.created is None:
            first = self.history.transactions[0]["created"] if self.history.transactions else 0
            self.created = first - 30 * 86400 if first else 1_700_000_000

    @classmethod
    def from_fixture(
        cls,
        path: str | Path,
        *,
        id: str,
        name: str | None = None,
        key: str | None = None,
        **settings: Any,
    ) -> SimAccount:
        """Serve recorded BTs: a ``{"object":"list","data":[…]}`` file, a JSON array or JSON Lines.

        Expanded sources in the file become retrievable objects; the balance is derived from
        the BTs themselves.
        """
        history = History.from_transactions(id, load_transactions(path))
        return cls(id=id, name=name or Path(path).stem, history=history, key=key, **settings)

    @property
    def env(self) -> str | None:
        """Alias of ``key_env`` (the variable ``make demo`` exports this key in)."""
        return self.key_env

    def account_object(self) -> dict[str, Any]:
        """The ``account`` object Stripe returns from ``GET /v1/account``."""
        return {
            "id": self.id,
            "object": "account",
            "business_profile": {
                "mcc": None,
                "name": self.name,
                "support_email": self.email,
                "url": None,
            },
            "business_type": "company",
            "capabilities": {"card_payments": "active", "transfers": "active"},
            "charges_enabled": True,
            "country": self.country,
            "created": self.created,
            "default_currency": self.default_currency,
            "details_submitted": True,
            "email": self.email,
            "metadata": {},
            "payouts_enabled": True,
            "settings": {
                "dashboard": {"display_name": self.name, "timezone": self.timezone},
                "payouts": {
                    "schedule": {"delay_days": 2, "interval": "weekly", "weekly_anchor": "monday"}
                },
            },
            "type": "standard",
        }


class World:
    """All accounts of one simulator, looked up by id or by key; thread-safe activity."""

    def __init__(self, accounts: Iterable[SimAccount] | Mapping[str, SimAccount] = ()) -> None:
        self.accounts: dict[str, SimAccount] = {}
        self._by_key: dict[str, SimAccount] = {}
        for account in accounts.values() if isinstance(accounts, Mapping) else accounts:
            self.add(account)
        self.check()

    def add(self, account: SimAccount) -> None:
        if account.id in self.accounts:
            raise ValueError(f"duplicate account id {account.id}")
        if account.key is not None:
            if account.key in self._by_key:
                raise ValueError(f"two accounts share one key ({account.id})")
            self._by_key[account.key] = account
        for rk in account.restricted_keys:
            if rk in self._by_key:
                raise ValueError(f"two accounts share one key ({account.id})")
            self._by_key[rk] = account
        self.accounts[account.id] = account

    def add_restricted_key(self, account_id: str, key: str, permissions: Iterable[str]) -> str:
        """Give ``account_id`` a restricted key holding ``permissions``; returns the key."""
        if not key.startswith("rk_test_"):
            raise ValueError(f"restricted keys start with rk_test_: {key[:8]}…")
        if key in self._by_key:
            raise ValueError(f"the key is already in use ({account_id})")
        account = self.accounts[account_id]
        account.restricted_keys[key] = frozenset(permissions)
        self._by_key[key] = account
        return key

    def revoke_key(self, key: str) -> None:
        """Forget a key (as rolling or deleting it in the Dashboard does): it answers 401."""
        account = self._by_key.pop(key, None)
        if account is not None:
            account.restricted_keys.pop(key, None)
            if account.key == key:
                account.key = None

    def permissions_of(self, key: str) -> frozenset[str] | None:
        """The permissions of a restricted key; None for a secret key (it may do anything)."""
        account = self._by_key.get(key)
        if account is None:
            return frozenset()
        return account.restricted_keys.get(key)

    def check(self) -> None:
        """Every connected id must name an account of this world."""
        for account in self.accounts.values():
            for other in account.connected:
                if other not in self.accounts:
                    raise ValueError(f"{account.id} lists unknown connected account {other}")

    def account(self, account_id: str) -> SimAccount | None:
        return self.accounts.get(account_id)

    def account_for_key(self, key: str) -> SimAccount | None:
        return self._by_key.get(key)

    def may_act_for(self, key_account: SimAccount, target_id: str) -> bool:
        """A key opens its own account and, for a platform, its connected accounts."""
        return target_id == key_account.id or target_id in key_account.connected

    def add_activity(
        self, account_id: str, count: int, until: dt.datetime | None = None
    ) -> list[dict[str, Any]]:
        """Append ``count`` newer BTs to one account (new activity between two syncs)."""
        account = self.accounts[account_id]
        with account.lock:
            new = account.history.extend(count, until)
            account.index.append(new)
        return new

    def add_late(
        self,
        account_id: str,
        created: int,
        amount: int,
        currency: str,
        *,
        type: str = "adjustment",
        category: str = "other_adjustment",
        description: str = "Late adjustment",
        listed: bool = True,
    ) -> dict[str, Any]:
        """Insert a BT dated in the past, into a month a client may have fetched completely.

        Stripe's lists are eventually consistent: a transaction can show in the balance before
        it shows in ``/v1/balance_transactions``. With ``listed=False`` it counts in the balance
        only, until ``reveal``. A sync must notice either case through the balance instead of
        trusting "month complete".
        """
        account = self.accounts[account_id]
        digest = hashlib.blake2b(
            f"late|{account_id}|{created}|{amount}|{currency}|{len(account.history.transactions)}".encode(),
            digest_size=12,
        ).hexdigest()
        bt: dict[str, Any] = {
            "id": f"txn_1Late{digest[:19]}",
            "object": "balance_transaction",
            "amount": amount,
            "available_on": created,
            "balance_type": "payments",
            "created": created,
            "currency": currency.lower(),
            "description": description,
            "exchange_rate": None,
            "fee": 0,
            "fee_details": [],
            "net": amount,
            "reporting_category": category,
            "source": None,
            "status": "available",
            "type": type,
        }
        with account.lock:
            if listed:
                self._list(account, [bt])
            else:
                account.unlisted.append(bt)
                cur = bt["currency"]
                account.unlisted_balance[cur] = account.unlisted_balance.get(cur, 0) + bt["net"]
        return bt

    def reveal(self, account_id: str) -> list[dict[str, Any]]:
        """List the transactions ``add_late(listed=False)`` kept out of the lists so far."""
        account = self.accounts[account_id]
        with account.lock:
            shown, account.unlisted = account.unlisted, []
            for bt in shown:
                account.unlisted_balance[bt["currency"]] -= bt["net"]
            self._list(account, shown)
        return shown

    @staticmethod
    def _list(account: SimAccount, bts: list[dict[str, Any]]) -> None:
        account.history.transactions.extend(bts)
        account.history.transactions.sort(key=lambda t: (t["created"], t["id"]))
        account.index.append(bts)


# --- YAML ---------------------------------------------------------------------------------------


def default_world() -> World:
    """The demo world (``demo_world.yaml``): an accounting firm's platform and three clients."""
    ref = resources.files(__package__).joinpath(DEMO_WORLD)
    with resources.as_file(ref) as path:
        return load_world(path)


def load_world(path: str | Path) -> World:
    """Build a world from YAML; errors name the file and the key path."""
    path = Path(path)
    where = str(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read simulator world: {exc.strerror}", where=where) from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", where=where) from exc
    if not isinstance(data, dict) or not isinstance(data.get("accounts"), list):
        raise ConfigError(
            "a simulator world needs a top-level 'accounts' list",
            where=where,
            fix="see beancount_stripe/simulator/demo_world.yaml for the shape",
        )
    accounts = []
    platforms: dict[str, str] = {}
    for spec in data["accounts"]:
        if isinstance(spec, dict):
            for child in spec.get("connected", []) or []:
                platforms[str(child)] = str(spec.get("id", ""))
    for n, spec in enumerate(data["accounts"]):
        accounts.append(_account_from_spec(spec, f"accounts[{n}]", path, platforms))
    try:
        return World(accounts)
    except ValueError as exc:
        raise ConfigError(str(exc), where=where) from exc


_ACCOUNT_KEYS = {
    "id",
    "name",
    "key",
    "key_env",
    "env",
    "connected",
    "country",
    "default_currency",
    "timezone",
    "email",
    "history",
    "fixture",
    "bank_statement",
    "restricted_keys",
}
_HISTORY_KEYS = {
    "seed",
    "size",
    "start",
    "end",
    "currencies",
    "payout_every_days",
    "products",
    "statement_descriptor",
}


def _account_from_spec(spec: Any, at: str, path: Path, platforms: dict[str, str]) -> SimAccount:
    where = str(path)
    if not isinstance(spec, dict):
        raise ConfigError(f"{at}: expected a mapping", where=where)
    unknown = set(spec) - _ACCOUNT_KEYS
    if unknown:
        raise ConfigError(
            f"{at}: unknown key(s) {', '.join(sorted(unknown))}",
            where=where,
            fix=f"allowed keys: {', '.join(sorted(_ACCOUNT_KEYS))}",
        )
    account_id = spec.get("id")
    if not isinstance(account_id, str) or not account_id.startswith("acct_"):
        raise ConfigError(f"{at}.id: must be a string starting with acct_", where=where)
    key = spec.get("key")
    if key is not None and (
        not isinstance(key, str) or not key.startswith(("sk_test_", "rk_test_"))
    ):
        raise ConfigError(
            f"{at}.key: simulator keys must be fake test keys (sk_test_… or rk_test_…)",
            where=where,
        )
    settings: dict[str, Any] = {
        "key": key,
        "key_env": spec.get("key_env", spec.get("env")),
        "connected": [str(c) for c in spec.get("connected", []) or []],
        "country": str(spec.get("country", "US")),
        "timezone": str(spec.get("timezone", "Etc/UTC")),
        "email": spec.get("email"),
    }
    if spec.get("bank_statement"):
        try:
            settings["bank_statement"] = StatementSpec.from_mapping(spec["bank_statement"])
        except (TypeError, ValueError, KeyError, ArithmeticError) as exc:
            raise ConfigError(f"{at}.bank_statement: {exc}", where=where) from exc
    settings["restricted_keys"] = _restricted_keys(spec.get("restricted_keys"), at, where)
    if spec.get("default_currency"):
        settings["default_currency"] = str(spec["default_currency"]).lower()
    name = str(spec.get("name") or account_id)
    if "fixture" in spec:
        fixture = path.parent / str(spec["fixture"])
        try:
            return SimAccount.from_fixture(fixture, id=account_id, name=name, **settings)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{at}.fixture: {exc}", where=where) from exc
    history = spec.get("history")
    if not isinstance(history, dict):
        raise ConfigError(f"{at}: needs either 'history' or 'fixture'", where=where)
    unknown = set(history) - _HISTORY_KEYS
    if unknown:
        raise ConfigError(f"{at}.history: unknown key(s) {', '.join(sorted(unknown))}", where=where)
    try:
        platform = platforms.get(account_id)
        generated = generate_history(
            account_id=account_id,
            seed=int(history.get("seed", 0)),
            size=int(history.get("size", 500)),
            start=_date(history.get("start", "2024-01-01")),
            end=_date(history.get("end", "2026-10-31")),
            currencies=[str(c).lower() for c in history.get("currencies", ["usd"])],
            payout_every_days=int(history.get("payout_every_days", 7)),
            products=history.get("products"),
            application=f"ca_{platform[5:]}" if platform else None,
            statement_descriptor=history.get("statement_descriptor"),
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{at}.history: {exc}", where=where) from exc
    return SimAccount(id=account_id, name=name, history=generated, **settings)


def _restricted_keys(value: Any, at: str, where: str) -> dict[str, frozenset[str]]:
    """`restricted_keys: [{key: rk_test_…, permissions: [rak_balance_read, …]}]`."""
    if value is None:
        return {}
    if not isinstance(value, list):
        raise ConfigError(f"{at}.restricted_keys: expected a list", where=where)
    out: dict[str, frozenset[str]] = {}
    for n, item in enumerate(value):
        here = f"{at}.restricted_keys[{n}]"
        key = item.get("key") if isinstance(item, dict) else None
        perms = item.get("permissions") if isinstance(item, dict) else None
        if not isinstance(key, str) or not key.startswith("rk_test_"):
            raise ConfigError(f"{here}.key: must be a fake restricted key rk_test_…", where=where)
        if not isinstance(perms, list) or not all(isinstance(p, str) for p in perms):
            raise ConfigError(f"{here}.permissions: expected a list of names", where=where)
        out[key] = frozenset(perms)
    return out


def _date(value: Any) -> dt.date:
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value))
