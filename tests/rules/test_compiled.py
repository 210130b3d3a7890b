"""The compiled rule indexes (rules/compiled.py) against the plain evaluation, on random rules.

For random rules files (every index kind, broad ``also`` filters, needles that are prefixes of
one another, case-sensitive and case-insensitive text, regexes with captures feeding templates)
and random transactions, two properties hold:

- the generated ``order`` offers exactly the rules the indexes offer one at a time
  (``_Candidates.reference_order``);
- the booked entries, their deciders and matched rules are exactly those of the same ruleset
  with no index at all (every rule of the BT's type tested in precedence order).
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beancount_stripe import booking, rules

from .conftest import (
    CHARGE,
    PAYOUT,
    assert_decided_as_without_index,
    client_with,
    outcome,
    write_rules,
)

WORDS = ["Blend", "blend", "Order", "#1", "Kit", "kettle", "ÄPFEL", "straße", "İst", "Gift"]
NAMES = ["Lena Larsen", "Noah Rossi", "  noah  ROSSI ", "  ", None]
EMAILS = ["lena@larsen.example", "NOAH@rossi.example", "x@y.z", None]
CURRENCIES = ["usd", "eur", "jpy", "USD"]


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


needle = st.builds(" ".join, st.lists(st.sampled_from(WORDS), min_size=1, max_size=2))
text_op = st.sampled_from(["contains", "prefix", "suffix", "equals"])


@st.composite
def leaf(draw: st.DrawFn) -> str:
    kinds = ["desc", "desc", "regex", "name", "email", "amount", "meta", "customer", "method"]
    kind = draw(st.sampled_from(kinds))
    if kind == "desc":
        op, cs = draw(text_op), draw(st.booleans())
        value = draw(needle)
        extra = ", case_sensitive: true" if cs else ""
        return f"description: {{{op}: {_quote(value)}{extra}}}"
    if kind == "regex":
        word = draw(st.sampled_from(WORDS))
        pattern = draw(st.sampled_from([f"^({word})\\b(.*)$", f"{word} (\\w+)", f"(?i){word}"]))
        return f"description: {{regex: {_quote(pattern)}}}"
    if kind == "name":
        op = draw(st.sampled_from(["suffix", "prefix", "equals"]))
        name = draw(st.sampled_from(["Larsen", "noah", "Lena Larsen"]))
        return f"customer.name: {{{op}: {_quote(name)}}}"
    if kind == "email":
        email = draw(st.sampled_from(["lena", "noah", "x@"]))
        return f"customer.email: {{prefix: {_quote(email)}}}"
    if kind == "amount":
        lo = draw(st.integers(-200, 200))
        return draw(
            st.sampled_from(
                [
                    f"amount: {{between: [{lo}, {lo + draw(st.integers(0, 40))}]}}",
                    f"amount: {{gte: {lo}}}",
                    f"amount: {{lt: {lo}}}",
                ]
            )
        )
    if kind == "customer":
        return "customer.id: cus_1LenaLarsen00001"
    if kind == "method":
        return f"payment_method: {draw(st.sampled_from(['card', 'sepa_debit']))}"
    return f"metadata.order_id: {{prefix: {_quote(str(draw(st.integers(1, 20))))}}}"


@st.composite
def rule(draw: st.DrawFn, i: int) -> str:
    parts = draw(st.lists(leaf(), min_size=1, max_size=2, unique_by=lambda p: p.split(":")[0]))
    if draw(st.booleans()):
        parts.append(f"currency: {draw(st.sampled_from(['usd', 'eur', '[usd, jpy]']))}")
    if draw(st.booleans()):
        parts.append(f"type: {draw(st.sampled_from(['charge', '[charge, payout]']))}")
    actions = [
        f'account: "Income:{{client}}:R{i}"',
        f'payee: "P{i} {{customer.name}}"',
        f'narration: "{{description}} n{i}"',
        f"tags: [t{i}]",
        f'meta: {{m{i % 3}: "{{metadata.order_id}}"}}',
        'flag: "!"',
    ]
    if any("regex: '^(" in p for p in parts):  # two groups to capture from
        actions.append('narration: "{2} - {1}"')
    action = draw(st.sampled_from(actions))
    return f"  - name: r{i}\n    when: {{{', '.join(parts)}}}\n    {action}"


@st.composite
def rules_text(draw: st.DrawFn) -> str:
    n = draw(st.integers(1, 14))
    return "rules:\n" + "\n".join(draw(rule(i)) for i in range(n)) + "\n"


@st.composite
def bt(draw: st.DrawFn, i: int) -> dict[str, Any]:
    out = copy.deepcopy(draw(st.sampled_from([CHARGE, CHARGE, PAYOUT])))
    words = draw(st.lists(st.sampled_from([*WORDS, "x", ":"]), max_size=5))
    desc = draw(st.one_of(st.none(), st.just(" ".join(words))))
    amount = draw(st.integers(-25_000, 25_000))
    out.update(
        id=f"txn_h{i}",
        description=desc,
        currency=draw(st.sampled_from(CURRENCIES)),
        amount=amount,
        fee=0,
        net=amount,
    )
    source = out["source"]
    if source.get("object") == "charge":
        source["billing_details"] = {
            "name": draw(st.sampled_from(NAMES)),
            "email": draw(st.sampled_from(EMAILS)),
        }
        source["metadata"] = {"order_id": draw(st.sampled_from(["7", "12", 12, "   ", None]))}
        if draw(st.booleans()):  # an expanded customer: its id, name and email count too
            source["customer"] = {
                "id": "cus_1LenaLarsen00001",
                "name": draw(st.sampled_from(NAMES)),
                "email": draw(st.sampled_from(EMAILS)),
            }
    return out


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(text=rules_text(), data=st.data())
def test_compiled_indexes_decide_exactly_like_the_plain_evaluation(
    text: str, data: st.DataObject
) -> None:
    bts = [data.draw(bt(i)) for i in range(data.draw(st.integers(1, 8)))]
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        client = client_with(base, (write_rules(base, text),))
        ruleset = rules.ruleset_for(client)
        for one in bts:
            cand = ruleset.candidates(one["type"])
            if cand.compiled is None:
                continue
            entry = booking.book(one, client)
            compiled = list(cand.compiled(rules.Facts(one, entry, ruleset)))
            reference = sorted(cand.reference_order(rules.Facts(one, entry, ruleset)))
            assert compiled == reference
        assert_decided_as_without_index(bts, client, ruleset)


# -- the decision memo (``_Candidates.memo``): rules that read only few-valued BT fields ----------

STATUSES = ["available", "pending", "Pending", None]


@st.composite
def memo_rule(draw: st.DrawFn, i: int) -> str:
    """A rule whose conditions read only type/category/currency/status (memoisable), or, now
    and then, one other field or a template with a slot (which turns the memo off)."""
    leaves = [
        f"currency: {draw(st.sampled_from(['usd', 'EUR', '[usd, jpy]']))}",
        f"status: {draw(st.sampled_from(['available', '{prefix: pend}', '{exists: true}']))}",
        f"reporting_category: {draw(st.sampled_from(['charge', '[payout, fee]']))}",
        f"category: {{regex: {_quote(draw(st.sampled_from(['^ch', 'out$', '(?i)CHARGE'])))}}}",
        f"type: {draw(st.sampled_from(['charge', '[charge, payout]', 'PAYOUT']))}",
        "not: {currency: usd}",
        "any: [{currency: eur}, {status: pending}]",
    ]
    if draw(st.integers(0, 9)) == 0:
        leaves.append("description: {contains: Kit}")
    parts = draw(st.lists(st.sampled_from(leaves), max_size=3, unique_by=lambda p: p[:4]))
    actions = [
        f'account: "Income:{{client}}:R{i}"',
        f'payee: "P{i}"',
        f'narration: "n{i}"',
        f"tags: [t{i}]",
        f"links: [l{i}]",
        f'meta: {{m{i % 3}: "v{i}"}}',
        'flag: "!"',
        "account: uncategorized",
    ]
    if draw(st.integers(0, 9)) == 0:
        actions.append(f'payee: "P{i} {{customer.name}}"')
    action = draw(st.sampled_from(actions))
    when = f"\n    when: {{{', '.join(parts)}}}" if parts else ""
    return f"  - name: m{i}{when}\n    {action}"


@st.composite
def memo_rules_text(draw: st.DrawFn) -> str:
    n = draw(st.integers(0, 10))
    parties = "parties:\n  - payee: Lena\n    names: [lena larsen]\n" if draw(st.booleans()) else ""
    return "rules:\n" + "\n".join(draw(memo_rule(i)) for i in range(n)) + "\n" + parties


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(text=memo_rules_text(), data=st.data())
def test_the_decision_memo_decides_exactly_like_testing_every_rule(
    text: str, data: st.DataObject
) -> None:
    bts = []
    for i in range(data.draw(st.integers(1, 10))):
        one = data.draw(bt(i))
        one["status"] = data.draw(st.sampled_from(STATUSES))
        one["reporting_category"] = data.draw(st.sampled_from(["charge", "payout", "fee", None]))
        bts.append(one)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        client = client_with(base, (write_rules(base, text),))
        ruleset = rules.ruleset_for(client)
        charges = ruleset.candidates("charge")
        if charges.rules and "description" not in text and "{customer" not in text:
            assert charges.memo_keys is not None  # the memo is what is tested here
        memoised = outcome(rules.book_with_rules(bts, client, ruleset))
        again = outcome(rules.book_with_rules(bts, client, ruleset))  # answered from the memo
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(rules.Ruleset, "memoise", False)
            plain_set = rules.Ruleset(
                ruleset.files, ruleset.accounts, ruleset.account_name, ruleset.tz, "test"
            )
            assert plain_set.candidates("charge").memo_keys is None
            plain = outcome(rules.book_with_rules(bts, client, plain_set))
        assert memoised == plain
        assert again == plain
        for one in bts:
            why = rules.apply_rules(booking.book(one, client), one, ruleset)[1]
            assert (
                why.party == rules.apply_rules(booking.book(one, client), one, plain_set)[1].party
            )
