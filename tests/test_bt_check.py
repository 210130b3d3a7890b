"""The one balance-transaction check: every generated BT passes, every malformed one is named."""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import pytest

from beancount_stripe.bt_check import REQUIRED, check_bt
from beancount_stripe.errors import BeancountStripeError, InputFileError
from beancount_stripe.importer import BalanceTransactionImporter
from beancount_stripe.simulator import generate_history

from .conftest import ClientFactory


@pytest.fixture(scope="module")
def history() -> list[dict[str, Any]]:
    return generate_history(
        account_id="acct_1CheckTest00001",
        seed=5,
        size=400,
        start=datetime.date(2025, 1, 1),
        end=datetime.date(2025, 3, 31),
        currencies=("usd", "jpy", "kwd"),
    ).transactions


def test_every_generated_transaction_passes(history: list[dict[str, Any]]) -> None:
    for i, bt in enumerate(history):
        assert check_bt(bt, where="gen", index=i) is bt


@pytest.mark.parametrize("key", REQUIRED)
def test_each_required_field_is_named_when_missing(history: list[dict[str, Any]], key: str) -> None:
    bt = {k: v for k, v in history[0].items() if k != key}
    with pytest.raises(InputFileError) as info:
        check_bt(bt, where="page 3", index=7)
    text = str(info.value)
    assert f"`{key}`" in text and "page 3" in text and "fix:" in text
    assert (history[0]["id"] if key != "id" else "#7") in text


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("amount", "12.00", "a string"),
        ("amount", 12.5, "fraction"),
        ("fee", None, "null"),
        ("net", True, "boolean"),
        ("created", "2025-01-01", "a string"),
        ("created", -5, "plausible"),
        ("id", "", "non-empty"),
        ("type", None, "null"),
        ("description", 5, "`description`"),
        ("fee_details", {}, "`fee_details`"),
    ],
)
def test_wrong_types_are_named(
    history: list[dict[str, Any]], key: str, value: Any, says: str
) -> None:
    bt = {**history[0], key: value}
    with pytest.raises(BeancountStripeError) as info:
        check_bt(bt, where="x", index=0)
    assert info.value.exit_code == 2
    assert says in str(info.value) and f"`{key}`" in str(info.value)


def test_importer_names_a_saved_transaction_without_created(
    make_client: ClientFactory, tmp_path: Path, history: list[dict[str, Any]]
) -> None:
    client = make_client()
    bts = [dict(bt) for bt in history[:3]]
    del bts[1]["created"]
    saved = tmp_path / "acme" / "saved.json"
    saved.parent.mkdir(parents=True, exist_ok=True)
    saved.write_text(json.dumps({"object": "list", "has_more": False, "data": bts}))
    with pytest.raises(InputFileError) as info:
        BalanceTransactionImporter(client).extract(str(saved), [])
    text = str(info.value)
    assert bts[1]["id"] in text and "`created`" in text and "data[1]" in text
