"""Every action, templates, parties and precedence (first match wins per decision)."""

from __future__ import annotations

import textwrap
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from beancount.parser import parser

from beancount_stripe import booking, ledger, rules
from beancount_stripe.errors import ConfigError

from .conftest import CHARGE, PAYOUT, Apply, client_with, make_bt, write_rules


def rule(body: str) -> str:
    return "rules:\n" + textwrap.indent(textwrap.dedent(body), "  ")


# (rule text, the BT, attribute of the entry → expected)
ACTIONS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    # account: a full name with {client}, or a booking account key of the client
    (
        '- {name: a, account: "Income:{client}:Beans"}',
        CHARGE,
        {"account": "Income:Shop:Beans", "flag": "*"},
    ),
    ("- {name: a, account: refunds}", CHARGE, {"account": "Income:Shop:Refunds"}),
    ("- {name: a, account: uncategorized}", CHARGE, {"account": "Expenses:Shop:Uncategorized"}),
    ("- {name: a, account: uncategorized}", CHARGE, {"flag": "!"}),
    ("- {name: a, account: fee_tax}", CHARGE, {"account": "Expenses:Shop:Stripe:Fees"}),
    # payee / narration templates: fields, regex groups, named groups, literal braces
    (
        "- {name: a, payee: '{customer.name} <{customer.email}>'}",
        CHARGE,
        {"payee": "Lena Larsen <lena.larsen12@example.com>"},
    ),
    (
        "- {name: a, narration: 'Order {metadata.order_id} ({currency})'}",
        CHARGE,
        {"narration": "Order 9603 (usd)"},
    ),
    (
        r"- {name: a, when: {description: {regex: '#(\d+): (.+)$'}}, narration: '{2} / {1}'}",
        CHARGE,
        {"narration": "House Blend 1kg / 9603"},
    ),
    (
        r"- {name: a, when: {description: {regex: '(?P<product>House \w+)'}},"
        r" narration: '{product}!'}",
        CHARGE,
        {"narration": "House Blend!"},
    ),
    ("- {name: a, narration: '{{literal}} {amount}'}", CHARGE, {"narration": "{literal} 36.93"}),
    (
        "- {name: a, narration: '{created} {label}'}",
        CHARGE,
        {"narration": "2024-01-01 Card charge"},
    ),
    (
        "- {name: a, payee: '{narration}', narration: '{payee}'}",
        CHARGE,
        {
            "payee": "Order #9603: House Blend 1kg",
            "narration": "Lena Larsen",
        },
    ),
    # tags and links: templated, cleaned to Beancount tokens, added to existing ones
    ("- {name: a, tags: [coffee, '#beans']}", CHARGE, {"tags": {"coffee", "beans"}}),
    ("- {name: a, tags: 'ch-{metadata.channel}'}", CHARGE, {"tags": {"ch-Web-Shop"}}),
    ("- {name: a, links: ['order-{metadata.order_id}']}", CHARGE, {"links": {"order-9603"}}),
    ("- {name: a, links: [statement]}", PAYOUT, {"links": {"po_1TestPayout0001", "statement"}}),
    # metadata and flag
    (
        "- {name: a, meta: {product: '{description}', channel: shop}}",
        CHARGE,
        {"meta": {"product": "Order #9603: House Blend 1kg", "channel": "shop"}},
    ),
    ("- {name: a, flag: '!'}", CHARGE, {"flag": "!", "account": "Income:Shop:Sales"}),
    ("- {name: a, account: uncategorized, flag: '*'}", CHARGE, {"flag": "*"}),
]


@pytest.mark.parametrize(("text", "bt", "expected"), ACTIONS, ids=[a[0] for a in ACTIONS])
def test_action(apply: Apply, text: str, bt: dict[str, Any], expected: dict[str, Any]) -> None:
    entry, _ = apply("rules:\n  " + text + "\n", bt)
    for key, value in expected.items():
        if key == "account":
            assert entry.postings[-1].account == value
        elif key == "meta":
            assert {k: entry.meta[k] for k in value} == value
        else:
            assert getattr(entry, key) == value, key


def test_split_by_percent_and_fixed_amount(apply: Apply) -> None:
    text = rule("""\
        - name: split
          split:
            - {account: "Income:{client}:Beans", percent: 80}
            - {account: "Income:{client}:Packaging", amount: 2.5}
            - {account: revenue}
        """)
    entry, why = apply(text)
    legs = [(p.account, p.units.number) for p in entry.postings[2:]]
    assert legs == [
        ("Income:Shop:Beans", Decimal("-29.54")),  # 80% of 36.93 = 29.544
        ("Income:Shop:Packaging", Decimal("-2.50")),
        ("Income:Shop:Sales", Decimal("-4.89")),
    ]
    assert sum(p.units.number for p in entry.postings) == 0
    assert why.accounts == tuple(a for a, _ in legs)


def test_split_keeps_fee_postings_and_drops_zero_legs(apply: Apply) -> None:
    text = rule("""\
        - name: split
          split:
            - {account: "Income:{client}:A", percent: 100}
            - {account: "Income:{client}:B"}
        """)
    entry, _ = apply(text)
    assert [p.account for p in entry.postings] == [
        "Assets:Shop:Stripe",
        "Expenses:Shop:Stripe:Fees",
        "Income:Shop:A",
    ]


def test_first_match_wins_per_decision(apply: Apply) -> None:
    text = rule("""\
        - {name: payee only, when: {type: charge}, payee: First}
        - {name: account, when: {type: charge}, account: "Income:{client}:Second", payee: Lost}
        - {name: late account, account: "Income:{client}:Third", narration: Third}
        - {name: tag one, tags: [one]}
        - {name: tag two, when: {currency: usd}, tags: [two]}
        """)
    entry, why = apply(text)
    assert entry.payee == "First"
    assert entry.postings[-1].account == "Income:Shop:Second"
    assert entry.narration == "Third"
    assert entry.tags == {"one", "two"}  # tags and links add up
    assert {k: r.name for k, r in why.deciders.items()} == {
        "payee": "payee only",
        "account": "account",
        "narration": "late account",
    }
    assert [r.name for r in why.matched] == [
        "payee only",
        "account",
        "late account",
        "tag one",
        "tag two",
    ]


def test_client_rules_before_shared_rules(apply: Apply) -> None:
    own = rule('- {name: mine, when: {type: charge}, account: "Income:{client}:Mine"}')
    shared = rule("""\
        - {name: shared, when: {type: charge}, account: "Income:{client}:Shared", payee: Shared}
        """)
    entry, why = apply(own, shared=shared)
    assert entry.postings[-1].account == "Income:Shop:Mine"
    assert entry.payee == "Shared"  # the client's file did not decide the payee
    assert why.deciders["account"].file.endswith("own.yaml")


def test_empty_template_leaves_the_decision_to_later_rules(apply: Apply) -> None:
    text = rule("""\
        - {name: by customer, payee: '{customer.name}'}
        - {name: fallback, payee: 'Walk-in customer'}
        """)
    entry, _ = apply(text, make_bt(source__billing_details={}, source__customer=None))
    assert entry.payee == "Walk-in customer"
    entry, _ = apply(text)
    assert entry.payee == "Lena Larsen"


def test_without_rules_the_booking_decides(apply: Apply, tmp_path: Path) -> None:
    client = client_with(tmp_path)
    booked = booking.book(CHARGE, client)
    entry, why = rules.apply_rules(booked, CHARGE, rules.ruleset_for(client))
    assert entry == booked and why.deciders == {} and why.accounts == ("Income:Shop:Sales",)


def test_flag_follows_the_final_account_unless_a_rule_sets_it(apply: Apply) -> None:
    unknown = make_bt(PAYOUT, type="brand_new_type", reporting_category="brand_new")
    entry, _ = apply(rule("- {name: t, when: {type: charge}, tags: [x]}"), unknown)
    assert entry.flag == "!" and entry.postings[-1].account == "Expenses:Shop:Uncategorized"
    entry, _ = apply(rule('- {name: t, account: "Expenses:{client}:New"}'), unknown)
    assert entry.flag == "*"


# -- parties ---------------------------------------------------------------------------------


PARTIES = """\
parties:
  - payee: By Id
    ids: [cus_1LenaLarsen00001, ba_1Bank0001]
  - payee: By Email
    emails: [LENA.LARSEN12@example.com]
  - payee: By Domain
    emails: ["@larsen.example"]
  - payee: By Name
    names: ["lena   LARSEN"]
  - payee: By Description
    descriptions: ['house blend', '^STRIPE PAYOUT$']
"""


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, "By Id"),
        ({"source__customer": None}, "By Email"),
        (
            {
                "source__customer": None,
                "source__billing_details": {"name": "Lena Larsen"},
            },
            "By Domain",  # the receipt email's domain
        ),
        (
            {
                "source__customer": None,
                "source__receipt_email": None,
                "source__billing_details": {"name": "Lena Larsen"},
            },
            "By Name",
        ),
        (
            {
                "source__customer": None,
                "source__receipt_email": None,
                "source__billing_details": {},
            },
            "By Description",
        ),
        (
            {
                "source__customer": None,
                "source__receipt_email": None,
                "source__billing_details": {},
                "description": "Decaf",
            },
            None,
        ),
    ],
)
def test_party_recognized_by_most_specific_identity(
    apply: Apply, changes: dict[str, Any], expected: str | None
) -> None:
    entry, why = apply(PARTIES, make_bt(**changes))
    assert why.party[0] == expected
    assert entry.payee == (expected or "Decaf")


def test_party_by_destination_and_a_rule_payee_wins(apply: Apply) -> None:
    entry, _ = apply(PARTIES, PAYOUT)
    assert entry.payee == "By Id"  # the payout's bank account
    entry, _ = apply(PARTIES + rule("- {name: p, payee: Rule}"), PAYOUT)
    assert entry.payee == "Rule"


def test_client_parties_win_over_shared_ones(apply: Apply) -> None:
    own = "parties:\n  - {payee: Mine, names: [Lena Larsen]}\n"
    shared = "parties:\n  - {payee: Shared, names: [Lena Larsen]}\n"
    entry, _ = apply(own, shared=shared)
    assert entry.payee == "Mine"


# -- review fingerprint ----------------------------------------------------------------------


def test_review_entries_carry_a_fingerprint_that_survives_the_round_trip(apply: Apply) -> None:
    entry, _ = apply(rule("- {name: u, account: uncategorized, tags: [x], links: [y]}"))
    stamp = entry.meta[rules.HASH_KEY]
    assert stamp == rules.entry_hash(entry)
    parsed, errors, _ = parser.parse_string(ledger.format_entries([entry]))
    assert not errors and parsed[0].meta[rules.HASH_KEY] == stamp
    assert rules.entry_hash(parsed[0]) == stamp
    edited = parsed[0]._replace(narration="checked by Anna")
    assert rules.entry_hash(edited) != stamp
    categorized, _ = apply(rule("- {name: c, account: revenue}"))
    assert rules.HASH_KEY not in categorized.meta


def test_rule_account_under_the_clearing_account_is_refused(tmp_path: Path) -> None:
    path = write_rules(tmp_path, rule('- {name: bad, account: "Assets:{client}:Stripe:Sub"}'))
    client = client_with(tmp_path, (path,))
    with pytest.raises(ConfigError, match="clearing account") as err:
        rules.ruleset_for(client)
    assert f"{path}:2" in str(err.value)
