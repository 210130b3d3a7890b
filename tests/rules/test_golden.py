"""Golden test: a simulator history booked with rules that use every condition and action.

Regenerate the golden file after an intended change with
``UPDATE_GOLDEN=1 .venv/bin/pytest tests/rules/test_golden.py`` and review the diff.
"""

from __future__ import annotations

import datetime
import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from beancount import loader

from beancount_stripe import ledger, rules
from beancount_stripe.rules import OPERATORS
from beancount_stripe.simulator import generate_history

from .conftest import DEFAULT_RULES, client_with

GOLDEN = Path(__file__).resolve().parent / "golden"
RULES = GOLDEN / "rules.yaml"
EXPECTED = GOLDEN / "history.beancount"


def history_bts() -> list[dict[str, Any]]:
    history = generate_history(
        account_id="acct_1GoldenRules001",
        seed=7,
        size=320,
        start=datetime.date(2024, 1, 1),
        end=datetime.date(2024, 9, 30),
        currencies=("usd", "eur", "jpy"),
        statement_descriptor="GOLDEN SHOP",
    )
    out = []
    for bt in history.transactions:
        bt = dict(bt)
        if isinstance(bt.get("source"), str) and bt["source"] in history.objects:
            bt["source"] = history.objects[bt["source"]]
        out.append(bt)
    return out


@pytest.fixture(scope="module")
def booked(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, list[Any]]:
    client = client_with(tmp_path_factory.mktemp("golden"), (RULES,), (DEFAULT_RULES,))
    return client, rules.book_with_rules(history_bts(), client)


def test_golden_history(booked: tuple[Any, list[Any]], tmp_path: Path) -> None:
    _client, pairs = booked
    entries = [entry for entry, _ in pairs]
    used = {p.account for e in entries for p in e.postings}
    opens = ledger.open_directives(used, set(), entries[0].date)
    text = (
        'option "operating_currency" "USD"\n\n'
        + ledger.format_entries(opens)
        + "\n"
        + ledger.format_entries(entries)
    )
    if os.environ.get("UPDATE_GOLDEN"):
        EXPECTED.write_text(text, encoding="utf-8")
    assert text == EXPECTED.read_text(encoding="utf-8")
    path = tmp_path / "golden.beancount"
    path.write_text(text)
    _entries, errors, _ = loader.load_file(str(path))
    assert errors == []


def test_every_rule_and_every_operator_is_exercised(booked: tuple[Any, list[Any]]) -> None:
    client, pairs = booked
    ruleset = rules.ruleset_for(client)
    own = [r for r in ruleset.rules if r.file == str(RULES)]
    matched: Counter[str] = Counter(r.name for _, why in pairs for r in why.matched)
    deciding: Counter[str] = Counter(r.name for _, why in pairs for r in why.deciders.values())
    for rule in own:
        assert matched[rule.name] > 0, f"rule {rule.name!r} never matched"
        if rule.decides():
            assert deciding[rule.name] > 0, f"rule {rule.name!r} never decided anything"
    text = RULES.read_text()
    for op in OPERATORS:
        assert f"{op}:" in text, op
    for combinator in ("all:", "any:", "not:"):
        assert combinator in text
    parties = Counter(why.party[0] for _, why in pairs if why.party[0])
    assert set(parties) == {p.payee for p in ruleset.parties}


def test_the_indexes_do_not_change_any_decision(booked: tuple[Any, list[Any]]) -> None:
    """Reference: every rule in order, full condition, no type or value index, no skipping."""
    client, pairs = booked
    ruleset = rules.ruleset_for(client)
    bts = {bt["id"]: bt for bt in history_bts()}
    from beancount_stripe import booking

    for entry, why in pairs:
        bt = bts[entry.meta["stripe_id"]]
        facts = rules.Facts(bt, booking.book(bt, client), ruleset)
        want: dict[str, str] = {}
        tags: set[str] = set()
        for rule in ruleset.rules:
            facts.captures.clear()
            if not rule.when.test(facts):
                continue
            if (rule.account or rule.split) and "account" not in want:
                want["account"] = rule.name
            for part in ("payee", "narration"):
                template = getattr(rule, part)
                if template is not None and part not in want and template.render(facts):
                    want[part] = rule.name
            if rule.flag and "flag" not in want:
                want["flag"] = rule.name
            for key, template in rule.meta:
                if f"meta:{key}" not in want and template.render(facts):
                    want[f"meta:{key}"] = rule.name
            tags.update(t.render(facts) for t in rule.tags)
        assert {k: r.name for k, r in why.deciders.items()} == want, entry.meta["stripe_id"]
        assert entry.tags == frozenset(t for t in tags if t)
