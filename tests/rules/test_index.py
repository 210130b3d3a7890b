"""The rule indexes (rules/index.py) only ever skip rules that cannot match.

Every test compares against the plain definition: the needle index against ``in`` /
``startswith`` / ``endswith``, and a whole ruleset against the same ruleset with no index at
all (every candidate rule tested in order), entry by entry and decider by decider.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beancount_stripe import rules
from beancount_stripe.rules import index

from .conftest import CHARGE, DEFAULT_RULES, client_with, outcome, write_rules
from .test_golden import history_bts

TEXT = st.text(alphabet="abcAB İıKkſs", max_size=12)
NEEDLES = st.lists(st.text(alphabet="abcAB İK", min_size=1, max_size=4), min_size=1, max_size=12)


@settings(max_examples=300, deadline=None)
@given(needles=NEEDLES, text=TEXT, mode=st.sampled_from(["contains", "prefix", "suffix"]))
def test_needle_index_finds_exactly_the_needles_a_text_holds(
    needles: list[str], text: str, mode: str
) -> None:
    table: dict[str, list[int]] = {}
    for i, needle in enumerate(needles):
        table.setdefault(needle, []).append(i)
    found = set(index.NeedleIndex(table, mode).hits(text))
    holds = {
        "contains": lambda n: n in text,
        "prefix": text.startswith,
        "suffix": text.endswith,
    }[mode]
    assert found == {i for i, n in enumerate(needles) if holds(n)}


@pytest.mark.parametrize(
    ("pattern", "flags", "literal"),
    [
        (r"^Order #(\d+): (Gift[^(]*)", re.IGNORECASE, "order #"),
        (r"Pro plan", 0, "Pro plan"),
        (r"(?x) ab  c  # comment", 0, "abc"),
        (r"foo|barbaz", 0, None),  # an alternation requires no literal
        (r"(Gift)+ card", 0, " card"),
        (r"Straße", re.IGNORECASE, None),  # non-ASCII and case-insensitive: not indexed
        (r"Straße", 0, "Straße"),
        (r"a*b", 0, "b"),
    ],
)
def test_regex_literal(pattern: str, flags: int, literal: str | None) -> None:
    assert index.regex_literal(re.compile(pattern, flags)) == literal


RULES = r"""
rules:
  - {name: by customer, when: {customer.id: cus_nope, currency: usd}, payee: K}
  - {name: equal text, when: {description: "gift card"}, account: "Income:{client}:Gift"}
  - {name: metadata eq, when: {metadata.order_id: "17"}, meta: {order: "{metadata.order_id}"}}
  - {name: contains ci, when: {type: charge, description: {contains: PLAN}}, tags: [plan]}
  - {name: contains cs, when: {description: {contains: Pro, case_sensitive: true}}, tags: [pro]}
  - {name: contains short, when: {description: {contains: o}}, links: ["o-{id}"]}
  - {name: prefix, when: {description: {prefix: "order #1"}}, narration: "early {description}"}
  - {name: suffix cs, when: {description: {suffix: ")", case_sensitive: true}}, tags: [paren]}
  - {name: suffix ci, when: {customer.email: {suffix: "@EXAMPLE.NET"}}, meta: {net: "yes"}}
  - name: regex ci
    when: {description: {regex: '^order #(\d+): (\w+)'}}
    narration: "{2} #{1}"
  - name: regex cs
    when: {description: {regex: 'Workshop (\w+)', case_sensitive: true}}
    tags: [ws]
  - {name: regex bare, when: {description: {regex: '^\w+$'}}, tags: [oneword]}
  - {name: istanbul, when: {description: {regex: 'istanbul'}}, tags: [ist]}
  - {name: kelvin, when: {description: {contains: "k"}}, tags: [kay]}
  - {name: broad, when: {currency: eur, payment_method: card}, flag: "!"}
  - {name: not guarded, when: {not: {description: {contains: plan}}}, tags: [noplan]}
  - {name: any guarded, when: {any: [{description: {contains: gift}}, {currency: jpy}]}, tags: [gj]}
  - {name: band, when: {type: charge, amount: {between: [20, 21.5]}}, meta: {band: "20"}}
  - {name: wide band, when: {amount: {between: [-50, 400]}, fee: {gt: 1}}, tags: [wide]}
  - {name: days, when: {created: {between: [2024-02-01, 2024-02-10]}}, tags: [early-feb]}
  - {name: since, when: {created: {gte: 2024-06-01}, currency: usd}, tags: [recent]}
  - {name: small, when: {net: {lt: 5}}, tags: [small]}
  - {name: order no, when: {metadata.order_id: {gte: 40}}, tags: [late-order]}
  - name: split
    when: {type: [charge, payment], description: {contains: Consulting}}
    split:
      - {account: "Income:{client}:A", percent: 60}
      - {account: "Income:{client}:B"}
"""


def _unindexed(monkeypatch: pytest.MonkeyPatch, rs: rules.Ruleset) -> None:
    monkeypatch.setattr(index, "build", lambda rs_rules: (tuple(range(len(rs_rules))), ()))
    rs._candidates.clear()


def _odd_bts() -> list[dict[str, Any]]:
    out = []
    for i, desc in enumerate(["İSTANBUL order", "Kelvin K sale", "ſtraße Pro plan", None, ""]):
        bt = copy.deepcopy(CHARGE)
        bt.update(id=f"txn_odd{i}", description=desc)
        bt["source"]["description"] = desc
        out.append(bt)
    return out


def test_indexed_ruleset_decides_exactly_like_testing_every_rule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_rules(tmp_path, RULES)
    client = client_with(tmp_path, (path,), (DEFAULT_RULES,))
    bts = history_bts() + _odd_bts()
    ruleset = rules.ruleset_for(client)
    fast = outcome(rules.book_with_rules(bts, client, ruleset))
    guarded = ruleset.candidates("charge").guards
    assert {g.kind for g in guarded} >= {"equals", "contains", "prefix", "suffix", "regex", "range"}
    assert any(g.fields for g in guarded)  # a composite equality (currency & payment_method)
    fired = {name for _e, _d, matched, _party in fast for name in matched}
    assert len(fired) >= 20  # the comparison covers rules that really match
    _unindexed(monkeypatch, ruleset)
    assert not ruleset.candidates("charge").guards
    assert outcome(rules.book_with_rules(bts, client, ruleset)) == fast


BOUNDS = """
rules:
  - {name: gte, when: {amount: {gte: 10}}, tags: [gte]}
  - {name: gt, when: {amount: {gt: 10}}, tags: [gt]}
  - {name: lte, when: {amount: {lte: 10}}, tags: [lte]}
  - {name: lt, when: {amount: {lt: 10}}, tags: [lt]}
  - {name: point, when: {amount: {between: [10, 10]}}, tags: [point]}
  - {name: cents, when: {amount: {between: [9.99, 10.005]}}, tags: [cents]}
  - {name: day, when: {created: {between: [2024-01-01, 2024-01-01]}}, tags: [day]}
  - {name: after, when: {created: {gte: 2024-01-02}}, tags: [after]}
  - {name: text, when: {metadata.qty: {gte: 2}}, tags: [qty]}
"""


def test_range_bounds_are_inclusive_exactly_like_the_conditions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = client_with(tmp_path, (write_rules(tmp_path, BOUNDS),))
    bts = []
    for i, (amount, day, qty) in enumerate(
        [(999, 0, "1"), (1000, 0, "2"), (1001, 1, "2.0"), (1000, 2, "NaN"), (-1000, 1, "x")]
    ):
        bt = copy.deepcopy(CHARGE)
        bt.update(id=f"txn_b{i}", amount=amount, fee=0, net=amount)
        bt["created"] += day * 86400
        bt["source"]["metadata"] = {"qty": qty}
        bts.append(bt)
    ruleset = rules.ruleset_for(client)
    fast = outcome(rules.book_with_rules(bts, client, ruleset))
    assert {g.kind for g in ruleset.candidates("charge").guards} == {"range"}
    tags = {entry.meta["stripe_id"]: sorted(entry.tags) for entry, _d, _m, _p in fast}
    assert tags["txn_b1"] == ["cents", "day", "gte", "lte", "point", "qty"]  # 10.00 on the day
    assert tags["txn_b3"] == ["after", "cents", "gte", "lte", "point"]  # qty NaN: no match
    _unindexed(monkeypatch, ruleset)
    assert outcome(rules.book_with_rules(bts, client, ruleset)) == fast
