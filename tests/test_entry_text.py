"""Golden test: the direct entry writer (entry_text.py) writes exactly what Beancount's printer
writes, on every balance-transaction type Stripe ever documented, every currency, and every
shape booking, rules, sync and the Capital import produce.

Each entry is written twice, by ``entry_text`` and by ``beancount.parser.printer.format_entry``,
and the two texts must be equal byte for byte. The entries must also take the direct path (a
writer that handed everything to the printer would pass vacuously).
"""

from __future__ import annotations

import datetime
import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from beancount.core import data
from beancount.core.amount import Amount
from beancount.parser import parser, printer

from beancount_stripe import booking, currency, entry_text, ledger, rules
from beancount_stripe.simulator import generate_history

from .rules.conftest import DEFAULT_RULES, client_with

HERE = Path(__file__).parent
REPO = HERE.parent
ENUM_HISTORY = HERE / "booking" / "balance_transaction_type_enum_history.json"
STRIPE_FACTS = Path("/work/shared/stripe-reference/STRIPE-FACTS.md")
GOLDEN_RULES = HERE / "rules" / "golden" / "rules.yaml"
T0 = int(datetime.datetime(2024, 3, 1, 23, 30, tzinfo=datetime.UTC).timestamp())

# Every currency the reference names (zero-, two- and three-decimal, and those with API quirks),
# plus every other code the currency table accepts.
REFERENCE_CURRENCIES = sorted(
    currency.ZERO_DECIMAL
    | currency.THREE_DECIMAL
    | {"USD", "EUR", "GBP", "ISK", "UGX", "HUF", "TWD"}
)
ALL_CURRENCIES = sorted(currency.ISO_4217_ACTIVE | currency.ISO_4217_WITHDRAWN)

# A rules file on top of tests/rules/golden/rules.yaml (every operator and action) and the
# shared defaults: tags, links, metadata from templates, flags, payees and splits on every type.
EXTRA_RULES = """
rules:
  - name: everything gets a tag, a link and metadata
    tags: ["{type}", "all"]
    links: ["bt-{id}"]
    meta: {kind: "{label}", origin: "{metadata.origin}"}
  - name: three-way split of charges
    when: {type: [charge, payment], currency: [jpy, bhd, kwd, usd]}
    split:
      - {account: "Income:{client}:A", percent: 33.3}
      - {account: "Income:{client}:B", amount: 1}
      - {account: "Income:{client}:C"}
  - name: review refunds
    when: {type: refund}
    flag: "!"
    payee: 'Refund "{description}" \\ {customer.name}'
"""


def _documented_types() -> list[tuple[str, str]]:
    """(type, reporting_category) for every type in the enum history, plus future ones."""
    history = json.loads(ENUM_HISTORY.read_text())
    types: set[str] = set()
    for key, value in history.items():
        if isinstance(value, list) and key != "history":
            types.update(value)
    for step in history["history"]:
        types.update(step.get("initial", []), step.get("added", []), step.get("removed", []))
    pairs = [(t, t) for t in sorted(types)]
    pairs += [
        ("adjustment", "dispute"),
        ("adjustment", "dispute_reversal"),
        ("refund", "partial_capture_reversal"),
        ("tax_fee", "tax"),
        ("quantum_escrow_hold", "quantum_escrow"),
    ]
    return pairs


def _charge(code: str, n: int, *, name: str | None, presented: str | None) -> dict[str, Any]:
    return {
        "id": f"ch_{n}",
        "object": "charge",
        "amount": 1234 + n,
        "currency": presented or code,
        "billing_details": {"name": name, "email": f"buyer{n}@example.net"},
        "customer": {"id": f"cus_{n % 7}", "name": None, "email": None},
        "metadata": {"origin": f'web "shop" \\ {n}'} if n % 3 else {},
        "payment_method_details": {"type": "card", "card": {"brand": "visa"}},
    }


def _bt(bt_type: str, category: str, code: str, n: int) -> dict[str, Any]:
    """A balance transaction in Stripe's wire shape, varied by ``n``: sign, fee, tax, source."""
    amount = (-1 if n % 4 == 1 else 1) * (10 ** (n % 9) + n) * (10 if code in ("BHD",) else 1)
    fee = [0, 59, -12, 1000][n % 4]
    tax = 7 if fee == 59 else 0
    source: Any
    if bt_type.startswith("payout"):
        source = f"po_{n} x/y"  # sanitized into a link
    elif bt_type.startswith("financing"):
        source = f"flxln_{n}"
    elif bt_type in ("charge", "payment", "refund") and n % 5:
        presented = "eur" if n % 2 and code.lower() != "eur" else None
        source = _charge(
            code.lower(), n, name=[None, 'Zoë "Z" O\'Brien', "A\\B"][n % 3], presented=presented
        )
    else:
        source = f"src_{n}" if n % 6 else None
    descriptions = [
        None,
        "Order 42",
        'He said "hi" \\ bye',
        "Café Zürich — 東京",
        "  spaced   out ",
    ]
    return {
        "id": f"txn_{n:06d}",
        "object": "balance_transaction",
        "amount": amount,
        "available_on": T0 + n * 3600 + 86400,
        "balance_type": "payments",
        "created": T0 + n * 3600,
        "currency": code.lower() if n % 2 else code,
        "description": descriptions[n % len(descriptions)],
        "exchange_rate": 1.0923 if n % 2 and isinstance(source, dict) else None,
        "fee": fee,
        "fee_details": [
            {"amount": fee - tax, "currency": code.lower(), "type": "stripe_fee"},
            {"amount": tax, "currency": code.lower(), "type": "tax"},
        ],
        "net": amount - fee,
        "reporting_category": category,
        "source": source,
        "status": "available",
        "type": bt_type,
    }


def _balance_transactions() -> list[dict[str, Any]]:
    bts = []
    n = 0
    types = _documented_types()
    for bt_type, category in types:  # every type in the reference currencies
        for code in REFERENCE_CURRENCIES:
            bts.append(_bt(bt_type, category, code, n))
            n += 1
    for i, code in enumerate(ALL_CURRENCIES):  # every currency, a few types each
        for bt_type, category in types[i % len(types) :][:3]:
            bts.append(_bt(bt_type, category, code, n))
            n += 1
    return bts


def _assert_same(entries: list[data.Directive], *, direct: bool = True) -> None:
    assert entries
    for entry in entries:
        expected = printer.format_entry(entry)
        if direct:
            assert entry_text.direct(entry) is not None, f"left to the printer: {entry}"
        assert entry_text.format_entry(entry) == expected
    old = []  # ledger.format_entries as it was, on Beancount's printer
    prev_single = False
    for entry in entries:
        text = printer.format_entry(entry)
        single = text.count("\n") == 1
        if old and not (single and prev_single):
            old.append("\n")
        old.append(text)
        prev_single = single
    assert ledger.format_entries(entries) == "".join(old)


def test_reference_currencies_are_all_in_the_test() -> None:
    if not STRIPE_FACTS.exists():
        pytest.skip("shared stripe-reference not present")
    section = STRIPE_FACTS.read_text().split("## 3.", 1)[1].split("\n## ", 1)[0]
    named = {c for c in re.findall(r"\b[A-Z]{3}\b", section) if currency.is_known(c)}
    assert named and named <= set(ALL_CURRENCIES)
    assert {"JPY", "BHD", "USD"} <= set(REFERENCE_CURRENCIES)


@pytest.fixture(scope="module")
def booked(tmp_path_factory: pytest.TempPathFactory) -> list[data.Transaction]:
    tmp = tmp_path_factory.mktemp("entry_text")
    extra = tmp / "extra.yaml"
    extra.write_text(EXTRA_RULES, encoding="utf-8")
    client = client_with(tmp, (extra, GOLDEN_RULES), (DEFAULT_RULES,), fee_tax="Expenses:Shop:Tax")
    pairs = rules.book_with_rules(_balance_transactions(), client)
    return [entry for entry, _ in pairs]


def test_every_type_and_currency_with_rules(booked: list[data.Transaction]) -> None:
    # the cases the test means to cover are really there
    assert {e.meta["stripe_type"] for e in booked} >= {t for t, _ in _documented_types()}
    assert {p.units.currency for e in booked for p in e.postings} == set(ALL_CURRENCIES)
    assert any(e.tags and e.links for e in booked)
    assert any(len(e.postings) >= 5 for e in booked)  # net, fee, tax, and a split
    assert {e.flag for e in booked} == {"*", "!"}
    assert any(e.payee is None for e in booked) and any(e.payee for e in booked)
    assert any("presentment_amount" in e.meta for e in booked)
    assert any(rules.HASH_KEY in e.meta for e in booked)
    assert any('"' in (e.payee or "") and "\\" in (e.payee or "") for e in booked)
    assert any(e.meta["stripe_type"].startswith("financing") and e.links for e in booked)
    _assert_same(list(booked))


def test_simulator_history_with_the_golden_rules(tmp_path: Path) -> None:
    history = generate_history(
        account_id="acct_1EntryText00001",
        seed=11,
        size=600,
        start=datetime.date(2024, 1, 1),
        end=datetime.date(2024, 12, 31),
        currencies=("usd", "eur", "jpy", "bhd", "huf"),
    )
    bts = []
    for bt in history.transactions:
        bt = dict(bt)
        if isinstance(bt.get("source"), str) and bt["source"] in history.objects:
            bt["source"] = history.objects[bt["source"]]
        bts.append(bt)
    client = client_with(tmp_path, (GOLDEN_RULES,), (DEFAULT_RULES,))
    _assert_same([e for e, _ in rules.book_with_rules(bts, client)])


def test_directives(booked: list[data.Transaction]) -> None:
    """``open``, ``commodity`` and ``balance`` as sync writes them, in every currency."""
    day = datetime.date(2024, 3, 2)
    accounts = {p.account for e in booked for p in e.postings}
    opens = ledger.open_directives(accounts, set(), day)
    commodities = ledger.commodity_directives(ALL_CURRENCIES, set(), day)
    client = client_with(Path("/nonexistent"))
    totals = {code.lower(): (-1) ** i * 10 ** (i % 12) for i, code in enumerate(ALL_CURRENCIES)}
    balances = booking.balance_assertions(client, day, totals)
    _assert_same([*commodities, *opens, *booked[:50], *balances])
    meta = data.new_metadata("<x>", 0)
    odd = [
        data.Open(meta, day, "Assets:A", ["USD", "EUR"], data.Booking.FIFO),
        data.Open(meta, day, "Assets:" + "Long" * 20, None, None),
        data.Balance(meta, day, "Assets:A", Amount(Decimal("-0.000"), "KWD"), None, None),
    ]
    _assert_same(odd)


def test_metadata_values_of_every_kind() -> None:
    day = datetime.date(2024, 1, 2)
    meta: dict[str, Any] = {
        "filename": "f",
        "lineno": 3,
        "text": 'quote " and \\ backslash',
        "number": Decimal("1.50"),
        "small": Decimal("1E-7"),
        "date": day,
        "amount": Amount(Decimal("12.000"), "BHD"),
        "yes": True,
        "no": False,
        "empty": None,
        "__hidden": "x",
    }
    posting = data.Posting("Assets:A", Amount(Decimal("1"), "USD"), None, None, None, None)
    other = data.Posting("Income:B", Amount(Decimal("-1"), "USD"), None, None, "!", None)
    entries = [
        data.Transaction(meta, day, "*", None, "", data.EMPTY_SET, data.EMPTY_SET, [posting]),
        data.Transaction(
            meta, day, "!", "P", None, frozenset({"b", "a"}), data.EMPTY_SET, [posting, other]
        ),
        data.Transaction(meta, day, None, None, None, data.EMPTY_SET, frozenset({"z"}), [other]),
        data.Commodity(meta, day, "USD"),
    ]
    _assert_same(entries)


def test_other_shapes_go_to_the_printer() -> None:
    """Costs, prices, posting metadata, integer metadata: the printer's text (or error)."""
    day = datetime.date(2024, 1, 2)
    meta = data.new_metadata("f", 1)
    cost = data.Posting(
        "Assets:A",
        Amount(Decimal("2"), "HOOL"),
        data.Cost(Decimal("10.00"), "USD", None, None),
        Amount(Decimal("11"), "USD"),
        None,
        {"note": "x"},
    )
    cash = data.Posting("Assets:B", Amount(Decimal("-20.00"), "USD"), None, None, None, None)
    elided = data.Posting("Assets:C", None, None, None, None, None)
    entries: list[data.Directive] = [
        data.Transaction(meta, day, "*", None, "n", data.EMPTY_SET, data.EMPTY_SET, [cost, cash]),
        data.Transaction(meta, day, "*", None, "n", data.EMPTY_SET, data.EMPTY_SET, [cash, elided]),
        data.Transaction(meta, day, "*", None, "n", data.EMPTY_SET, data.EMPTY_SET, []),
        data.Note(meta, day, "Assets:A", "a note", None, None),
    ]
    for entry in entries:
        assert entry_text.direct(entry) is None
    _assert_same(entries, direct=False)
    bad = data.Transaction({"n": 3}, day, "*", None, "n", data.EMPTY_SET, data.EMPTY_SET, [cash])
    with pytest.raises(ValueError):
        printer.format_entry(bad)
    with pytest.raises(ValueError):
        entry_text.format_entry(bad)


def test_example_ledgers_as_parsed() -> None:
    """Every entry of the example ledgers (sync output, Capital CSV imports, hand-written
    books), as Beancount parses them: the parser's metadata types, real payees and links."""
    entries: list[data.Directive] = []
    for path in sorted((REPO / "example-ledger").rglob("*.beancount")):
        parsed, errors, _ = parser.parse_file(str(path))
        assert not errors, path
        for entry in parsed:
            if isinstance(entry, data.Transaction):  # posting metadata is only filename/lineno
                entry = entry._replace(postings=[p._replace(meta=None) for p in entry.postings])
            entries.append(entry)
    transactions = [e for e in entries if isinstance(e, data.Transaction)]
    assert len(transactions) > 100
    assert any("capital_kind" in e.meta for e in transactions)
    for entry in entries:
        assert entry_text.format_entry(entry) == printer.format_entry(entry)
    ours = [e for e in transactions if "stripe_id" in e.meta]  # sync and Capital import wrote
    assert len(ours) > 100
    assert all(entry_text.direct(e) is not None for e in ours)  # (a bank line may elide amounts)
