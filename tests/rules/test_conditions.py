"""Every condition of the rule language, table-driven: one rule, one BT, matched or not."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest

from .conftest import CHARGE, PAYOUT, Apply, make_bt

HIT = "Income:Shop:Hit"

REFUND = make_bt(
    type="refund",
    reporting_category="refund",
    amount=-1500,
    fee=0,
    description="REFUND FOR CHARGE (Wholesale order)",
    source={"id": "re_1X", "object": "refund", "charge": "ch_1TestCharge0001", "metadata": {}},
)
PENDING_JPY = make_bt(currency="jpy", amount=125000, fee=3600, status="pending")

# (condition as YAML, the BT, expected match)
CASES: list[tuple[str, dict[str, Any], bool]] = [
    # equals / one_of, text compared case-insensitively unless asked otherwise
    ("type: charge", CHARGE, True),
    ("type: refund", CHARGE, False),
    ("type: CHARGE", CHARGE, True),
    ("type: {equals: CHARGE, case_sensitive: true}", CHARGE, False),
    ("type: [refund, charge]", CHARGE, True),
    ("type: {one_of: [refund, payout]}", CHARGE, False),
    ("category: charge", CHARGE, True),
    ("reporting_category: payout", PAYOUT, True),
    ("currency: USD", CHARGE, True),
    ("currency: [eur, gbp]", CHARGE, False),
    ("status: pending", PENDING_JPY, True),
    ("status: pending", CHARGE, False),
    ("id: txn_1testcharge0001", CHARGE, True),
    ("source: ch_1TestCharge0001", CHARGE, True),
    # contains / prefix / suffix / regex
    ("description: {contains: house blend}", CHARGE, True),
    ("description: {contains: house blend, case_sensitive: true}", CHARGE, False),
    ("description: {contains: House Blend, case_sensitive: true}", CHARGE, True),
    ("description: {contains: decaf}", CHARGE, False),
    ("description: {prefix: 'order #'}", CHARGE, True),
    ("description: {prefix: House}", CHARGE, False),
    ("description: {suffix: 1KG}", CHARGE, True),
    ("description: {suffix: 250g}", CHARGE, False),
    ("description: {regex: '^order #\\d+: (house|decaf)'}", CHARGE, True),
    ("description: {regex: '^order #\\d+', case_sensitive: true}", CHARGE, False),
    ("description: {regex: 'Wholesale'}", REFUND, True),
    ("description: {regex: 'x{3}'}", CHARGE, False),
    # absent values: null / exists
    ("description: null", make_bt(description=None), True),
    ("description: null", CHARGE, False),
    ("description: {exists: true}", CHARGE, True),
    ("description: {exists: true}", make_bt(description=None), False),
    ("description: {contains: x}", make_bt(description=None), False),
    # amounts: major units with sign, comparisons, ranges, sign
    ("amount: 36.93", CHARGE, True),
    ("amount: '36.930'", CHARGE, True),
    ("amount: [10, 36.93]", CHARGE, True),
    ("amount: {gt: 36.93}", CHARGE, False),
    ("amount: {gte: 36.93}", CHARGE, True),
    ("amount: {lt: 36.94}", CHARGE, True),
    ("amount: {lte: 36.92}", CHARGE, False),
    ("amount: {between: [30, 40]}", CHARGE, True),
    ("amount: {between: [36.94, 40]}", CHARGE, False),
    ("amount: {sign: positive}", CHARGE, True),
    ("amount: {sign: negative}", REFUND, True),
    ("amount: {sign: negative}", CHARGE, False),
    ("amount: {sign: zero}", make_bt(amount=0, fee=0), True),
    ("amount: {lt: -10}", REFUND, True),
    ("amount: {gte: 1250}", PENDING_JPY, True),  # zero-decimal: 125000 minor = 125000 JPY
    ("amount: {gte: 1251}", PENDING_JPY, True),
    ("net: 35.56", CHARGE, True),
    ("fee: {gt: 1.36, lt: 1.38}", CHARGE, True),
    ("fee: 0", PAYOUT, True),
    ("exchange_rate: {gt: 1}", make_bt(exchange_rate=1.234), True),
    ("exchange_rate: {gt: 1}", CHARGE, False),
    # dates (created in the client's time zone; available_on likewise)
    ("created: 2024-01-01", CHARGE, True),
    ("created: {gte: 2024-01-01, lt: 2024-02-01}", CHARGE, True),
    ("created: {lt: 2024-01-01}", CHARGE, False),
    ("created: {between: [2023-12-01, 2023-12-31]}", CHARGE, False),
    ("created: {gt: '2023-12-31'}", CHARGE, True),
    ("available_on: 2024-01-05", CHARGE, True),
    # the customer, from the expanded charge
    ("customer.name: lena larsen", CHARGE, True),
    ("customer.email: {suffix: '@example.com'}", CHARGE, True),
    ("customer.id: cus_1LenaLarsen00001", CHARGE, True),
    ("customer.name: {exists: true}", REFUND, False),  # a refund's charge is not expanded
    ("customer.email: {exists: true}", make_bt(source__billing_details={}), True),  # receipt
    # metadata, descriptors, payment method, card, destination, raw source paths
    ("metadata.order_id: '9603'", CHARGE, True),
    ("metadata.order_id: {gte: 9000}", CHARGE, True),
    ("metadata.order_id: 9603", CHARGE, True),
    ("metadata.order_id: 9603.0", CHARGE, True),
    ("metadata.order_id: [9602, 9604]", CHARGE, False),
    ("source.amount_hint: 12.5", make_bt(source__amount_hint="12.50"), True),
    ("metadata.channel: 9603", CHARGE, False),
    ("metadata.channel: web shop", CHARGE, True),
    ("metadata.missing: {exists: false}", CHARGE, True),
    ("statement_descriptor: {prefix: acme}", CHARGE, True),
    ("payment_method: card", CHARGE, True),
    ("payment_method: [sepa_debit, ideal]", CHARGE, False),
    ("card.brand: VISA", CHARGE, True),
    ("card.country: {one_of: [DE, FR]}", CHARGE, True),
    ("card.funding: debit", CHARGE, False),
    ("destination: ba_1Bank0001", PAYOUT, True),
    ("source.billing_details.email: lena.larsen12@example.com", CHARGE, True),
    ("source.payment_method_details.card.brand: visa", CHARGE, True),
    ("source.object: payout", PAYOUT, True),
    ("source.nothing.here: {exists: true}", CHARGE, False),
    # booked values and labels
    ("payee: Lena Larsen", CHARGE, True),
    ("label: Card charge", CHARGE, True),
    ("narration: {contains: blend}", CHARGE, True),
    # several conditions, all / any / not
    ("{type: charge, currency: usd, amount: {gt: 10}}", CHARGE, True),
    ("{type: charge, currency: eur}", CHARGE, False),
    ("all: [{type: charge}, {amount: {lt: 100}}]", CHARGE, True),
    ("all: [{type: charge}, {amount: {gt: 100}}]", CHARGE, False),
    ("any: [{type: refund}, {description: {contains: blend}}]", CHARGE, True),
    ("any: [{type: refund}, {currency: eur}]", CHARGE, False),
    ("not: {type: refund}", CHARGE, True),
    ("not: {type: charge}", CHARGE, False),
    ("not: [{type: charge}, {currency: eur}]", CHARGE, True),  # not (charge and eur)
    ("{type: charge, not: {any: [{currency: eur}, {amount: {gt: 100}}]}}", CHARGE, True),
    ("any: [{all: [{type: refund}, {amount: {lt: 0}}]}, {not: {currency: usd}}]", REFUND, True),
]


@pytest.mark.parametrize(("condition", "bt", "expected"), CASES, ids=[c[0] for c in CASES])
def test_condition(apply: Apply, condition: str, bt: dict[str, Any], expected: bool) -> None:
    when = condition if condition.startswith("{") else "{" + condition + "}"
    text = f"""\
    rules:
      - name: probe
        when: {when}
        account: "{HIT}"
    """
    entry, why = apply(textwrap.dedent(text), bt)
    assert (entry.postings[-1].account == HIT) is expected
    assert (why.account_rule is not None) is expected


def test_a_rule_without_when_matches_everything(apply: Apply) -> None:
    entry, _ = apply(f'rules:\n  - {{name: all, account: "{HIT}"}}\n', PAYOUT)
    assert entry.postings[-1].account == HIT


def test_created_is_the_date_in_the_clients_time_zone(apply: Apply) -> None:
    text = f"""\
    rules:
      - {{name: new year, when: {{created: 2023-12-31}}, account: "{HIT}"}}
    """
    # 2024-01-01 00:00 UTC is still 2023-12-31 in New York
    entry, _ = apply(textwrap.dedent(text), CHARGE, timezone="America/New_York")
    assert entry.postings[-1].account == HIT
    entry, _ = apply(textwrap.dedent(text), CHARGE, timezone="UTC")
    assert entry.postings[-1].account != HIT


def test_party_condition_uses_the_parties_table(apply: Apply) -> None:
    text = f"""\
    parties:
      - payee: Larsen Café
        emails: ["@example.com"]
    rules:
      - {{name: café, when: {{party: larsen café}}, account: "{HIT}"}}
    """
    entry, why = apply(textwrap.dedent(text))
    assert entry.postings[-1].account == HIT and entry.payee == "Larsen Café"
    assert why.party == ("Larsen Café", "email domain @example.com")
