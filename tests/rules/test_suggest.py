"""`rules suggest` learns rules back from a ledger categorized by a hidden rule set.

A bookkeeper's decisions are simulated by booking 70% of a simulator history with a hidden rule
set. The suggestions, pasted as the client's rules file, must decide the same counter-accounts
as the hidden rules for at least 95% of the 30% held back (which the learner never saw).
"""

from __future__ import annotations

import datetime
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from beancount_stripe import categorize, ledger, rules
from beancount_stripe.simulator import generate_history

from .conftest import DEFAULT_RULES, client_with, write_rules

PRODUCTS = [
    "House Blend 1kg",
    "Espresso Roast 250g",
    "Decaf Swiss Water 250g",
    "Pour-over kettle",
    "Wholesale order",
    "Barista workshop",
    "Coffee subscription (monthly)",
]


def history(seed: int = 17, size: int = 1500) -> list[dict[str, Any]]:
    h = generate_history(
        account_id="acct_1SuggestTest001",
        seed=seed,
        size=size,
        start=datetime.date(2024, 1, 1),
        end=datetime.date(2025, 12, 31),
        currencies=("usd", "eur"),
        products=PRODUCTS,
    )
    out = []
    for bt in h.transactions:
        bt = dict(bt)
        if isinstance(bt.get("source"), str) and bt["source"] in h.objects:
            bt["source"] = h.objects[bt["source"]]
        out.append(bt)
    return out


def top_customer(bts: list[dict[str, Any]]) -> str:
    counts = Counter(
        bt["source"]["customer"]
        for bt in bts
        if isinstance(bt.get("source"), dict) and isinstance(bt["source"].get("customer"), str)
    )
    return counts.most_common(1)[0][0]


def hidden_rules(customer: str) -> str:
    return f"""\
rules:
  - name: key account
    when: {{customer.id: {customer}}}
    account: "Income:{{client}}:Key-Account"
  - name: wholesale
    when: {{type: [charge, payment], description: {{contains: Wholesale order}}}}
    account: "Income:{{client}}:Wholesale"
  - name: workshops
    when: {{type: [charge, payment], description: {{regex: 'barista workshop'}}}}
    account: "Income:{{client}}:Workshops"
  - name: equipment
    when: {{type: [charge, payment], description: {{suffix: kettle}}}}
    account: "Income:{{client}}:Equipment"
  - name: bank debits
    when: {{type: payment, payment_method: [sepa_debit, us_bank_account]}}
    account: "Income:{{client}}:Direct-Debit"
  - name: euro payouts
    when: {{type: payout, currency: eur}}
    account: "Assets:{{client}}:Bank:EUR"
  - name: wholesale returns
    when: {{type: refund, description: {{contains: wholesale}}}}
    account: "Income:{{client}}:Wholesale:Returns"
"""


def counter_account(entry: Any) -> str:
    return str(
        max(entry.postings[2:] or entry.postings[-1:], key=lambda p: abs(p.units.number)).account
    )


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("suggest")
    bts = history()
    rng = random.Random(4)
    held = {bt["id"] for bt in bts if rng.random() < 0.3}
    hidden = write_rules(tmp, hidden_rules(top_customer(bts)), "hidden.yaml")
    bookkeeper = client_with(tmp, (hidden,), (DEFAULT_RULES,))
    pairs = rules.book_with_rules([bt for bt in bts if bt["id"] not in held], bookkeeper)
    entries = [e for e, _ in pairs]
    # the ledger the bookkeeper kept: written and read back as Beancount text
    used = {p.account for e in entries for p in e.postings}
    text = ledger.format_entries(ledger.open_directives(used, set(), entries[0].date))
    text += "\n" + ledger.format_entries(entries)
    book = tmp / "books" / "ledger.beancount"
    book.parent.mkdir(parents=True, exist_ok=True)
    book.write_text(text)
    client = client_with(tmp, (), (DEFAULT_RULES,))  # the firm's rules: only the defaults
    result = categorize.suggest(
        client, entries=categorize.load_ledger(book), bts={bt["id"]: bt for bt in bts}
    )
    return {"tmp": tmp, "bts": bts, "held": held, "hidden": hidden, "result": result}


def test_suggested_rules_recover_the_hidden_ones_on_held_back_entries(case: dict[str, Any]) -> None:
    tmp: Path = case["tmp"]
    text = categorize.format_suggestions(case["result"])
    suggested = write_rules(tmp, text, "suggested.yaml")
    assert rules.check_rules(suggested) == []  # valid YAML, ready to paste
    assert yaml.safe_load(text)["rules"]
    held_bts = [bt for bt in case["bts"] if bt["id"] in case["held"]]
    truth = rules.book_with_rules(held_bts, client_with(tmp, (case["hidden"],), (DEFAULT_RULES,)))
    learned = rules.book_with_rules(held_bts, client_with(tmp, (suggested,), (DEFAULT_RULES,)))
    baseline = rules.book_with_rules(held_bts, client_with(tmp, (), (DEFAULT_RULES,)))
    affected = same_affected = same_all = 0
    for (t, _), (lrn, _), (base, _) in zip(truth, learned, baseline, strict=True):
        same = counter_account(t) == counter_account(lrn)
        same_all += same
        if counter_account(t) != counter_account(base):  # the hidden rules decided it
            affected += 1
            same_affected += same
    assert affected >= 100, "the test case must hinge on the hidden rules"
    assert same_affected / affected >= 0.95, (same_affected, affected, text)
    assert same_all / len(held_bts) >= 0.97


def test_suggestions_report_counts_and_what_was_categorized_by_hand(case: dict[str, Any]) -> None:
    result = case["result"]
    assert result.examined == len(case["bts"]) - len(case["held"])
    assert result.edited > 200
    accounts = {s.account for s in result.rules}
    assert {"Income:Shop:Key-Account", "Income:Shop:Wholesale", "Assets:Shop:Bank:EUR"} <= accounts
    for s in result.rules:
        assert s.count >= s.edited >= 2 and s.precision >= 0.9
    text = categorize.format_suggestions(result)
    assert "conflict" in text and "decides" in text


def test_conflicting_hand_decisions_are_reported(tmp_path: Path) -> None:
    bts = history(seed=3, size=300)
    client = client_with(tmp_path, (), (DEFAULT_RULES,))
    pairs = rules.book_with_rules(bts, client)
    # the bookkeeper moved 9 of 10 "House Blend" charges to Beans, one to Gifts
    entries, moved = [], 0
    for entry, _ in pairs:
        if entry.meta["stripe_type"] == "charge" and "House Blend" in (entry.narration or ""):
            target = "Income:Shop:Gifts" if moved == 9 else "Income:Shop:Beans"
            moved += 1
            entry = entry._replace(
                postings=[*entry.postings[:-1], entry.postings[-1]._replace(account=target)]
            )
        entries.append(entry)
    assert moved >= 10
    result = categorize.suggest(
        client, entries=entries, bts={bt["id"]: bt for bt in bts}, min_precision=0.8
    )
    (beans,) = [s for s in result.rules if s.account == "Income:Shop:Beans"]
    assert beans.field == "description" and "house blend" in beans.value.casefold()
    assert len(beans.conflicts) >= 1 and beans.conflicts[0][1] == "Income:Shop:Gifts"
    assert "conflict:" in categorize.format_suggestions(result)


def test_payee_renames_become_parties(tmp_path: Path) -> None:
    bts = history(seed=3, size=300)
    client = client_with(tmp_path, (), (DEFAULT_RULES,))
    customer = top_customer(bts)
    entries = []
    for entry, _ in rules.book_with_rules(bts, client):
        bt = next(b for b in bts if b["id"] == entry.meta["stripe_id"])
        source = bt.get("source")
        if isinstance(source, dict) and source.get("customer") == customer:
            entry = entry._replace(payee="Big Customer Ltd")
        entries.append(entry)
    result = categorize.suggest(client, entries=entries, bts={bt["id"]: bt for bt in bts})
    (party,) = result.parties
    assert party.payee == "Big Customer Ltd" and customer in party.identities["ids"]
    text = categorize.format_suggestions(result)
    path = write_rules(tmp_path, text, "parties.yaml")
    ruled = rules.book_with_rules(bts, client_with(tmp_path, (path,), (DEFAULT_RULES,)))
    renamed = [e for e, _ in ruled if e.payee == "Big Customer Ltd"]
    assert len(renamed) == sum(1 for e in entries if e.payee == "Big Customer Ltd")


def test_approving_a_flagged_entry_teaches_no_account_rule(tmp_path: Path) -> None:
    bts = history(seed=3, size=300)
    client = client_with(tmp_path, (), (DEFAULT_RULES,))
    entries = [
        entry._replace(flag="*") if entry.flag == "!" else entry
        for entry, _ in rules.book_with_rules(bts, client)
    ]
    approved = sum(1 for e, _ in rules.book_with_rules(bts, client) if e.flag == "!")
    assert approved >= 5
    result = categorize.suggest(client, entries=entries, bts={bt["id"]: bt for bt in bts})
    assert result.reviewed == result.edited == approved
    assert result.rules == []
    assert f"{approved} entries flagged `!` by the rules" in categorize.format_suggestions(result)
