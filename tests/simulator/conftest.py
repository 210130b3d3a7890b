"""Fixtures for the simulator tests: a small world served over real HTTP, SDK clients, schemas.

The reference JSON under ``reference/`` is a verbatim copy of ../shared/stripe-reference (the CI
runs on a clean clone without it). The OpenAPI schema is translated here, not edited there.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import stripe

from beancount_stripe.simulator import SimAccount, Simulator, World, generate_history

REFERENCE = Path(__file__).parent / "reference"

#: The simulator's clock in these tests: after every generated BT, fixed for reproducibility.
NOW = int(dt.datetime(2026, 1, 15, tzinfo=dt.UTC).timestamp())

ALPHA = "acct_1SimTestAlpha001"
BETA = "acct_1SimTestBeta0002"
CHILD = "acct_1SimTestChild003"
PLATFORM = "acct_1SimTestPlatfrm4"
KEYS = {
    ALPHA: "sk_test_simtest_alpha_0000000000000001",
    BETA: "sk_test_simtest_beta_00000000000000002",
    PLATFORM: "sk_test_simtest_platform_000000000004",
}


def make_world() -> World:
    """Four accounts: two direct, a platform, and its connected child (which has no key)."""

    def account(account_id: str, seed: int, size: int, currencies: tuple[str, ...], **kw: Any):
        history = generate_history(
            account_id=account_id,
            seed=seed,
            size=size,
            start=dt.date(2025, 1, 1),
            end=dt.date(2025, 12, 31),
            currencies=currencies,
        )
        return SimAccount(
            id=account_id,
            name=f"Test {account_id}",
            history=history,
            key=KEYS.get(account_id),
            **kw,
        )

    return World(
        [
            account(ALPHA, 1, 320, ("usd", "eur")),
            account(BETA, 2, 220, ("jpy", "krw", "usd")),
            account(CHILD, 3, 210, ("bhd", "kwd")),
            account(PLATFORM, 4, 60, ("usd",), connected=[CHILD]),
        ]
    )


@pytest.fixture(scope="session")
def sim_world() -> World:
    """Shared, never mutated (tests that add activity build their own world)."""
    return make_world()


@pytest.fixture(scope="session")
def served(sim_world: World) -> Iterator[Simulator]:
    with Simulator(sim_world, now=lambda: NOW) as sim:
        yield sim


ClientMaker = Callable[..., stripe.StripeClient]


@pytest.fixture(scope="session")
def client_for(served: Simulator) -> ClientMaker:
    def make(account_or_key: str, *, retries: int = 0, url: str | None = None):
        key = KEYS.get(account_or_key, account_or_key)
        return stripe.StripeClient(
            key, base_addresses={"api": url or served.url}, max_network_retries=retries
        )

    return make


def newest_first(bts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(bts, key=lambda b: (b["created"], b["id"]), reverse=True)


# --- schema --------------------------------------------------------------------------------------


def _nullable_to_union(node: Any) -> Any:
    """OpenAPI 3.0 ``nullable: true`` → JSON Schema ``null`` in the type / anyOf."""
    if isinstance(node, list):
        return [_nullable_to_union(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _nullable_to_union(v) for k, v in node.items() if not k.startswith("x-")}
    if out.pop("nullable", False):
        if "type" in out:
            out["type"] = [out["type"], "null"]
            if "enum" in out:
                out["enum"] = [*out["enum"], None]
        elif "anyOf" in out:
            out["anyOf"] = [*out["anyOf"], {"type": "null"}]
    return out


def _relax_refs(node: Any, fee: dict[str, Any]) -> Any:
    """Resolve ``fee``; expanded polymorphic sources only need to look like Stripe objects."""
    if isinstance(node, list):
        return [_relax_refs(n, fee) for n in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if ref == "#/components/schemas/fee":
        return fee
    if isinstance(ref, str):
        return {
            "type": "object",
            "required": ["id", "object"],
            "properties": {"id": {"type": "string"}, "object": {"type": "string"}},
        }
    return {k: _relax_refs(v, fee) for k, v in node.items()}


def _schemas() -> tuple[dict[str, Any], dict[str, Any]]:
    spec = json.loads((REFERENCE / "balance_transaction_schema_latest.json").read_text())
    fee = _nullable_to_union(spec["components.schemas.fee"])
    fee.pop("_note", None)
    bt = _relax_refs(_nullable_to_union(spec["components.schemas.balance_transaction"]), fee)
    bt["additionalProperties"] = False  # the simulator must not invent fields
    fee["additionalProperties"] = False
    # `type` is an open set (STRIPE-FACTS §1.2): Capital and legacy types occur in real data
    # outside the enum. The enum is kept aside; tests check non-enum types are known ones.
    bt["properties"]["type"] = {"type": "string", "minLength": 1}
    listing = copy.deepcopy(
        spec["paths./v1/balance_transactions"]["get"]["responses"]["200"]["content"][
            "application/json"
        ]["schema"]
    )
    listing = _nullable_to_union(listing)
    listing["properties"]["data"]["items"] = bt
    listing["additionalProperties"] = False
    return bt, listing


_BT_SCHEMA, _LIST_SCHEMA = _schemas()
_BT_VALIDATOR = jsonschema.Draft202012Validator(_BT_SCHEMA)
_LIST_VALIDATOR = jsonschema.Draft202012Validator(_LIST_SCHEMA)


def assert_valid_bt(bt: dict[str, Any]) -> None:
    errors = sorted(_BT_VALIDATOR.iter_errors(bt), key=str)
    assert not errors, f"{bt.get('id')}: {errors[0].message} at {list(errors[0].path)}"


def assert_valid_list(envelope: dict[str, Any]) -> None:
    errors = sorted(_LIST_VALIDATOR.iter_errors(envelope), key=str)
    assert not errors, f"{errors[0].message} at {list(errors[0].path)}"


def latest_enum() -> set[str]:
    spec = json.loads((REFERENCE / "balance_transaction_schema_latest.json").read_text())
    return set(spec["components.schemas.balance_transaction"]["properties"]["type"]["enum"])


def type_universe() -> set[str]:
    """Every BT type the reference knows (latest, removed, docs-only, legacy, Capital)."""
    data = json.loads((REFERENCE / "balance_transaction_type_enum_history.json").read_text())
    keys = [k for k in data if k.startswith(("latest", "removed", "documented", "legacy", "seen"))]
    return {t for k in keys for t in data[k]}


def category_map() -> tuple[set[str], dict[str, set[str]]]:
    """(every known reporting category, type → categories that list it)."""
    data = json.loads((REFERENCE / "reporting_categories.json").read_text())
    known = set(data["report_run_reporting_category_enum (37 values)"]) | set(data["categories"])
    known.add(data["obligation (removed from report enum in stripe-python v12/v13 era)"])
    by_type: dict[str, set[str]] = {}
    for category, info in data["categories"].items():
        for typ in info["balance_transaction_types"]:
            by_type.setdefault(typ.split(" ")[0], set()).add(category)
    return known, by_type
