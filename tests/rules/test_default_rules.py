"""config/rules.yaml reproduces the booking table: same account and flag for every type."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import pytest

from beancount_stripe import booking, ledger, rules
from beancount_stripe.simulator import generate_history

from .conftest import DEFAULT_RULES, PAYOUT, client_with, make_bt

REFERENCE = Path("/work/shared/stripe-reference")
HERE = Path(__file__).resolve().parent
ENUM_FILE = REFERENCE / "balance_transaction_type_enum_history.json"
CATEGORY_FILE = REFERENCE / "reporting_categories.json"
# A copy lives beside the booking tests, so the suite runs without the shared notes too.
LOCAL_ENUM = HERE.parent / "booking" / "balance_transaction_type_enum_history.json"


def _all_types() -> list[str]:
    source = ENUM_FILE if ENUM_FILE.exists() else LOCAL_ENUM
    raw = json.loads(source.read_text())
    types: set[str] = set()
    for key, value in raw.items():
        if isinstance(value, list) and all(isinstance(x, str) for x in value):
            types.update(value)
        elif key == "history":
            for step in value:
                for part in step.values():
                    if isinstance(part, list):
                        types.update(x for x in part if isinstance(x, str))
    return sorted(types)


def _all_categories() -> list[str]:
    found = set(booking.CATEGORY_COUNTER)
    found.update(category for _type, category in booking.PAIR_COUNTER)
    if CATEGORY_FILE.exists():
        raw = json.loads(CATEGORY_FILE.read_text())
        found.update(raw.get("categories", {}))
        for key, value in raw.items():
            if key.startswith("report_run_reporting_category_enum") and isinstance(value, list):
                found.update(value)
    return sorted(found | {"", "something_new"})


TYPES = [*_all_types(), "something_stripe_adds_tomorrow"]
CATEGORIES = _all_categories()


def test_the_reference_lists_are_complete() -> None:
    assert len(TYPES) > 60 and "financing_paydown" in TYPES and "tax_fee" in TYPES
    assert "dispute" in CATEGORIES and "platform_earning" in CATEGORIES


@pytest.mark.parametrize("fee_tax", [None, "Expenses:Shop:Stripe:Fee-Tax"])
def test_default_rules_give_the_booking_tables_account_and_flag(
    tmp_path: Path, fee_tax: str | None
) -> None:
    with_rules = client_with(tmp_path, shared=(DEFAULT_RULES,), fee_tax=fee_tax)
    without = client_with(tmp_path, fee_tax=fee_tax)
    ruleset = rules.ruleset_for(with_rules)
    bare = rules.ruleset_for(without)
    checked = 0
    for bt_type in TYPES:
        for category in CATEGORIES:
            bt = make_bt(PAYOUT, type=bt_type, reporting_category=category)
            field = booking.classify(bt, fee_tax=bool(fee_tax))
            expected_account = getattr(with_rules.accounts, field)
            expected_flag = "!" if field == "uncategorized" else "*"
            booked = booking.book(bt, with_rules)
            entry, why = rules.apply_rules(booked, bt, ruleset)
            assert (entry.postings[-1].account, entry.flag) == (expected_account, expected_flag), (
                bt_type,
                category,
            )
            assert why.account_rule is not None  # every BT is decided by some default rule
            plain, _ = rules.apply_rules(booking.book(bt, without), bt, bare)
            assert plain == entry
            checked += 1
    assert checked == len(TYPES) * len(CATEGORIES)


def test_a_whole_history_books_identically_with_or_without_default_rules(
    tmp_path: Path,
) -> None:
    history = generate_history(
        account_id="acct_1DefaultRules01",
        seed=5,
        size=400,
        start=datetime.date(2024, 1, 1),
        end=datetime.date(2024, 12, 31),
        currencies=("usd", "jpy", "bhd"),
    )
    bts: list[dict[str, Any]] = [_expanded(bt, history.objects) for bt in history.transactions]
    plain = rules.book_with_rules(bts, client_with(tmp_path))
    ruled = rules.book_with_rules(bts, client_with(tmp_path, shared=(DEFAULT_RULES,)))
    text = ledger.format_entries(e for e, _ in plain)
    assert text == ledger.format_entries(e for e, _ in ruled)
    assert "Expenses:Shop:Uncategorized" in text and rules.HASH_KEY in text


def _expanded(bt: dict[str, Any], objects: dict[str, Any]) -> dict[str, Any]:
    out = dict(bt)
    source = bt.get("source")
    if isinstance(source, str) and source in objects:
        out["source"] = objects[source]
    return out
