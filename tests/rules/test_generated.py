"""What the generated code reads inline, against the plain evaluation, on random BT shapes.

The compiled indexes (rules/compiled.py) read fields inline (the charge, charge fields known
absent, metadata, amounts in any currency, dates, bucketed ranges, needle memos), the engine
skips the leaves an index already proved (``conditions.residual``), and ``resolve_party`` reads
a dict source's ids itself. For random rules and random transaction shapes (expanded or guest
customers, metadata with and without the key or with numbers, refunds whose charge is nested,
payouts with and without a destination):

- every value the generated ``order`` leaves in the ``Facts`` cache is what the field's getter
  gives on a fresh ``Facts``;
- the booked entries, deciders, matched rules and parties are those of the same ruleset with no
  index at all (every rule of the BT's type tested in full, in precedence order).
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beancount_stripe import booking, rules
from beancount_stripe.rules.fields import Facts, field_spec

from .conftest import CHARGE, PAYOUT, assert_decided_as_without_index, client_with, write_rules

LEAVES = [
    "customer.id: cus_1LenaLarsen00001",
    "customer.id: [cus_1LenaLarsen00001, cus_1Other000000001]",
    "customer.email: {prefix: lena}",
    "customer.name: {suffix: larsen}",
    "card.brand: visa",
    "card.funding: {equals: credit}",
    "payment_method: card",
    "metadata.order_id: {prefix: '96'}",
    "metadata.order_id: '9603'",
    "metadata.channel: {contains: shop}",
    "description: {contains: blend}",
    "description: {prefix: 'Order #'}",
    "description: {regex: '^Order #(\\d+): (\\w+)'}",
    "description: {regex: '(?i)refund (\\w+)'}",
    "amount: {between: [30, 40]}",
    "amount: {between: [-200, -100]}",
    "amount: {gte: 5000}",
    "created: {between: [2024-01-01, 2024-01-03]}",
    "destination: ba_1Bank0001",
    "currency: usd",
    "currency: [eur, jpy]",
    "status: available",
]
TYPES = ["type: charge", "type: [charge, refund]", "type: payout", "type: refund"]
ACTIONS = [
    'account: "Income:{{client}}:R{i}"',
    'payee: "P{i} {{customer.name}}"',
    'narration: "{{description}} n{i}"',
    "tags: [t{i}]",
    'links: ["o-{{metadata.order_id}}"]',
    'meta: {{m{k}: "{{metadata.order_id}} {{amount}} {{created}}"}}',
    'flag: "!"',
    "split: [{{account: revenue, percent: 50}}, {{account: fees}}]",
]
PARTIES = """parties:
  - {payee: Lena, ids: [cus_1LenaLarsen00001]}
  - {payee: Bank, ids: [ba_1Bank0001]}
  - {payee: Connected, ids: [acct_1Connected001]}
  - {payee: Noah, names: [noah rossi]}
"""


@st.composite
def rules_text(draw: st.DrawFn) -> str:
    out = []
    for i in range(draw(st.integers(1, 12))):
        parts = draw(
            st.lists(
                st.sampled_from(LEAVES),
                min_size=1,
                max_size=3,
                unique_by=lambda p: p.split(":")[0],  # one condition per field
            )
        )
        if draw(st.booleans()):
            parts.append(draw(st.sampled_from(TYPES)))
        actions = ACTIONS
        if any("regex" in p for p in parts):  # a group to capture from
            actions = [*ACTIONS, 'narration: "{{1}} - {{description}} n{i}"']
        action = draw(st.sampled_from(actions)).format(i=i, k=i % 3)
        out.append(f"  - name: r{i}\n    when: {{{', '.join(parts)}}}\n    {action}")
    parties = PARTIES if draw(st.booleans()) else ""
    return "rules:\n" + "\n".join(out) + "\n" + parties


METADATA = [{"order_id": "9603", "channel": "Web Shop"}, {}, {"order_id": 9603}, None, "x"]
CUSTOMERS: list[Any] = [
    "cus_1LenaLarsen00001",
    None,
    {"id": "cus_1LenaLarsen00001", "name": "Noah Rossi", "email": "n@rossi.example"},
    12,
]


@st.composite
def bt(draw: st.DrawFn, i: int) -> dict[str, Any]:
    kind = draw(st.sampled_from(["charge", "charge", "refund", "payout"]))
    charge = copy.deepcopy(CHARGE["source"])
    charge["customer"] = draw(st.sampled_from(CUSTOMERS))
    charge["metadata"] = draw(st.sampled_from(METADATA))
    pmd = draw(st.sampled_from(["keep", "no card", "none"]))
    if pmd == "no card":
        charge["payment_method_details"] = {"type": "sepa_debit"}
    elif pmd == "none":
        charge["payment_method_details"] = None
    if draw(st.booleans()):
        charge["billing_details"] = {"name": None, "email": None}
    amount = draw(st.sampled_from([3693, -15000, 700000, 0, 3999]))
    if kind == "payout":
        out = copy.deepcopy(PAYOUT)
        out["source"]["destination"] = draw(
            st.sampled_from(["ba_1Bank0001", None, {"id": "ba_1Bank0001"}])
        )
        if draw(st.booleans()):
            out["source"]["account"] = "acct_1Connected001"
        out["source"]["metadata"] = draw(st.sampled_from(METADATA))  # no charge: these count
    else:
        out = copy.deepcopy(CHARGE)
        out["source"] = charge
        if kind == "refund":
            out.update(type="refund", reporting_category="refund", description="REFUND Blend")
            out["source"] = {
                "id": "re_1Test",
                "object": "refund",
                "charge": charge,
                "metadata": draw(st.sampled_from(METADATA)),
            }
    out.update(
        id=f"txn_g{i}",
        amount=amount,
        fee=0,
        net=amount,
        currency=draw(st.sampled_from(["usd", "eur", "jpy", "USD"])),
        created=1704067200 + 86400 * draw(st.integers(0, 4)),
    )
    return out


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(text=rules_text(), data=st.data())
def test_generated_code_decides_exactly_like_the_plain_evaluation(
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
            facts = Facts(one, entry, ruleset)
            cand.compiled(facts)
            for key, value in facts._values.items():
                name = key.lstrip("\0")
                spec = field_spec(name)
                assert spec is not None
                fresh = Facts(one, entry, ruleset)
                expected = fresh.folded(name, spec[1]) if key[0] == "\0" else spec[1](fresh)
                assert value == expected and type(value) is type(expected), key
        assert_decided_as_without_index(bts, client, ruleset)


def test_a_rule_offered_by_its_equality_and_filter_has_nothing_left_to_test(
    tmp_path: Path,
) -> None:
    text = """
    rules:
      - name: product
        when: {type: charge, currency: usd, description: {prefix: 'Order #9603'}}
        account: "Income:{client}:Blend"
      - name: order
        when: {type: charge, description: {regex: '^Order #(\\d+)'}}
        narration: "order {1}"
    """
    client = client_with(tmp_path, (write_rules(tmp_path, text),))
    cand = rules.ruleset_for(client).candidates("charge")
    assert cand.tests[0] is None  # type, currency and the prefix: all proved by the index
    assert cand.tests[1] is not None  # the regex itself must still run (and capture)
    entry, why = rules.apply_rules(booking.book(CHARGE, client), CHARGE, rules.ruleset_for(client))
    assert [r.name for r in why.matched] == ["product", "order"]
    assert entry.narration == "order 9603"
