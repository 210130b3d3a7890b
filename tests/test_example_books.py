"""The example ledgers read like books a bookkeeper expects: bean-check clean, every currency
declared, converted charges keep what the customer paid, no payee that repeats the narration,
Capital ids in metadata, one account per purpose, and every shipped query runs."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import beanquery
import pytest
from beancount import loader
from beancount.core import data

REPO = Path(__file__).resolve().parent.parent
LEDGERS = sorted((REPO / "example-ledger").glob("*/ledger.beancount"))
QUERIES = ("fees-by-month", "effective-fee-rate", "refunds-and-disputes", "top-customers")
ID_RE = re.compile(r"\b(txn|ch|py|po|flxln|cptxn)_[A-Za-z0-9]{6,}")


@pytest.fixture(scope="module", params=LEDGERS, ids=[p.parent.name for p in LEDGERS])
def books(request: pytest.FixtureRequest) -> tuple[Path, list[data.Directive]]:
    entries, errors, _ = loader.load_file(str(request.param))
    assert not errors, errors
    return request.param, entries


def test_bean_check_is_clean(books: tuple[Path, list[data.Directive]]) -> None:
    path, _ = books
    exe = shutil.which("bean-check", path=str(Path(sys.executable).parent))
    assert exe is not None
    proc = subprocess.run([exe, str(path)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_shipped_query_runs(books: tuple[Path, list[data.Directive]]) -> None:
    path, entries = books
    queries = [e for e in entries if isinstance(e, data.Query)]
    names = " ".join(q.name for q in queries)
    for wanted in QUERIES:
        assert wanted in names, f"no query about {wanted}"
    conn = beanquery.connect(f"beancount:{path}")
    for query in queries:
        rows = conn.execute(query.query_string).fetchall()
        assert rows, f"query {query.name} returned nothing on {path.parent.name}"


def test_every_currency_has_a_commodity_directive(books: tuple[Path, list[data.Directive]]) -> None:
    _, entries = books
    declared = {e.currency: e for e in entries if isinstance(e, data.Commodity)}
    used = {
        p.units.currency for e in entries if isinstance(e, data.Transaction) for p in e.postings
    }
    assert used and used <= set(declared)
    for com in used:
        assert declared[com].meta["name"] and declared[com].meta["name"] != com
        numbers = [
            p.units.number
            for e in entries
            if isinstance(e, data.Transaction)
            for p in e.postings
            if p.units.currency == com
        ]
        # the declared precision is the one the amounts are written with
        assert {-n.as_tuple().exponent for n in numbers} == {int(declared[com].meta["precision"])}


def test_no_payee_repeats_the_narration_and_capital_ids_stay_in_metadata(
    books: tuple[Path, list[data.Directive]],
) -> None:
    _, entries = books
    txns = [e for e in entries if isinstance(e, data.Transaction)]
    assert not [e for e in txns if e.payee and e.payee == e.narration]
    capital = [e for e in txns if str(e.meta.get("stripe_type", "")).startswith("financing_")]
    capital += [e for e in txns if any(str(k).startswith("capital_") for k in e.meta)]
    for entry in capital:
        assert not ID_RE.search(f"{entry.payee or ''} {entry.narration}"), entry


def test_one_account_per_purpose_for_capital_fees() -> None:
    for path in LEDGERS:
        entries, _, _ = loader.load_file(str(path))
        opened = {e.account for e in entries if isinstance(e, data.Open)}
        capital_fee_accounts = {a for a in opened if "Capital" in a and a.startswith("Expenses:")}
        assert len(capital_fee_accounts) <= 1, capital_fee_accounts


def test_a_converted_charge_keeps_what_the_customer_paid() -> None:
    """The 16,327 JPY charge Stripe settled as 101.90 EUR (simulator history of acme)."""
    entries, _, _ = loader.load_file(str(REPO / "example-ledger" / "acme" / "ledger.beancount"))
    converted = [
        e for e in entries if isinstance(e, data.Transaction) and "presentment_amount" in e.meta
    ]
    assert len(converted) > 10
    jpy = [e for e in converted if e.meta["presentment_amount"].currency == "JPY"]
    match = [e for e in jpy if e.meta["presentment_amount"].number == Decimal(16327)]
    assert match, "the 16,327 JPY charge is not in the example ledger"
    (entry,) = match
    gross = -sum(p.units.number for p in entry.postings if p.account.startswith("Income:"))
    assert gross == Decimal("101.90")
    # presented amount × exchange rate = settled amount (to the cent, as Stripe rounds)
    rate = entry.meta["exchange_rate"]
    assert abs(entry.meta["presentment_amount"].number * rate - gross) < Decimal("0.01")
