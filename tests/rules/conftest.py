"""Helpers for the rule tests: a client bound to rules files, and balance transactions to try."""

from __future__ import annotations

import copy
import dataclasses
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from beancount_stripe import booking, rules
from beancount_stripe.config import ClientConfig, KeySource, make_accounts

REPO = Path(__file__).resolve().parents[2]
DEFAULT_RULES = REPO / "config" / "rules.yaml"


def client_with(
    tmp_path: Path,
    own: tuple[Path, ...] = (),
    shared: tuple[Path, ...] = (),
    *,
    fee_tax: str | None = None,
    timezone: str = "UTC",
) -> ClientConfig:
    overrides = {"fee_tax": fee_tax} if fee_tax else {}
    return ClientConfig(
        id="test",
        name="Test Shop",
        stripe_account="acct_1TestShop00001",
        key=KeySource("env", "UNUSED_TEST_KEY"),
        ledger=tmp_path / "books" / "ledger.beancount",
        output=tmp_path / "books" / "stripe.beancount",
        archive_dir=tmp_path / "books" / "archive",
        timezone=timezone,
        accounts=make_accounts("Shop", overrides),
        account_name="Shop",
        rules=own,
        shared_rules=shared,
    )


def write_rules(tmp_path: Path, text: str, name: str = "rules.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


CHARGE: dict[str, Any] = {
    "id": "txn_1TestCharge0001",
    "object": "balance_transaction",
    "amount": 3693,
    "available_on": 1704412800,
    "balance_type": "payments",
    "created": 1704067200,  # 2024-01-01 00:00 UTC
    "currency": "usd",
    "description": "Order #9603: House Blend 1kg",
    "exchange_rate": None,
    "fee": 137,
    "fee_details": [{"amount": 137, "currency": "usd", "type": "stripe_fee"}],
    "net": 3556,
    "reporting_category": "charge",
    "status": "available",
    "type": "charge",
    "source": {
        "id": "ch_1TestCharge0001",
        "object": "charge",
        "billing_details": {"email": "lena.larsen12@example.com", "name": "Lena Larsen"},
        "customer": "cus_1LenaLarsen00001",
        "receipt_email": "lena@larsen.example",
        "metadata": {"order_id": "9603", "channel": "Web Shop"},
        "statement_descriptor": "ACME COFFEE",
        "payment_method_details": {
            "type": "card",
            "card": {"brand": "visa", "country": "DE", "funding": "credit"},
        },
    },
}

PAYOUT: dict[str, Any] = {
    "id": "txn_1TestPayout0001",
    "object": "balance_transaction",
    "amount": -17028,
    "available_on": 1704672000,
    "created": 1704672000,
    "currency": "eur",
    "description": "STRIPE PAYOUT",
    "fee": 0,
    "fee_details": [],
    "net": -17028,
    "reporting_category": "payout",
    "status": "available",
    "type": "payout",
    "source": {"id": "po_1TestPayout0001", "object": "payout", "destination": "ba_1Bank0001"},
}


def make_bt(base: dict[str, Any] | None = None, **changes: Any) -> dict[str, Any]:
    """A copy of ``base`` (CHARGE by default); ``source__x=…`` sets a source field."""
    bt = copy.deepcopy(base or CHARGE)
    for key, value in changes.items():
        if key.startswith("source__"):
            bt["source"][key[8:]] = value
        else:
            bt[key] = value
    if "amount" in changes or "fee" in changes:
        bt["net"] = bt["amount"] - bt["fee"]
    return bt


Apply = Callable[..., tuple[Any, rules.Explanation]]


@pytest.fixture
def apply(tmp_path: Path) -> Apply:
    """apply(rules_text, bt=CHARGE, shared_text=None) → (entry, explanation)."""

    def run(text: str, bt: dict[str, Any] | None = None, shared: str | None = None, **kw: Any):
        own = (write_rules(tmp_path, text, "own.yaml"),)
        shared_paths = (write_rules(tmp_path, shared, "shared.yaml"),) if shared else ()
        client = client_with(tmp_path, own, shared_paths, **kw)
        bt = bt or make_bt()
        return rules.apply_rules(booking.book(bt, client), bt, rules.ruleset_for(client))

    return run


def replace(client: ClientConfig, **changes: Any) -> ClientConfig:
    return dataclasses.replace(client, **changes)


def outcome(pairs: list[tuple[Any, Any]]) -> list[Any]:
    """What a booking with rules decided, comparable across rulesets: entries, deciders by
    part, matched rules and the party, by rule name."""
    return [
        (
            entry,
            {part: r.name for part, r in why.deciders.items()},
            [r.name for r in why.matched],
            why.party,
        )
        for entry, why in pairs
    ]


def assert_decided_as_without_index(
    bts: list[dict[str, Any]], client: ClientConfig, ruleset: rules.Ruleset
) -> None:
    """``ruleset`` books ``bts`` exactly as the same rules evaluated one by one, with no index:
    the same entries, deciders, matched rules and parties."""
    from beancount_stripe.rules import index

    fast = outcome(rules.book_with_rules(bts, client, ruleset))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(index, "build", lambda rs: (tuple(range(len(rs))), ()))
        plain_set = rules.Ruleset(
            ruleset.files, ruleset.accounts, ruleset.account_name, ruleset.tz, "test"
        )
        assert not plain_set.candidates("charge").guards
        assert outcome(rules.book_with_rules(bts, client, plain_set)) == fast
