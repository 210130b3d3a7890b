"""ledger.scan reads Capital entries in full (and only those), as Beancount's loader would."""

from __future__ import annotations

import datetime
from decimal import Decimal
from pathlib import Path

from beancount import loader

from beancount_stripe import capital, ledger

from .conftest import capital_client

MAIN = """\
option "title" "t"
2010-01-01 open Assets:Acme:Stripe
2010-01-01 open Liabilities:Acme:Stripe-Capital
2010-01-01 open Expenses:Acme:Stripe-Capital:Fees
2010-01-01 open Income:Acme:Sales

2024-01-02 * "Ana" "Card charge"
  stripe_id: "txn_charge"
  stripe_type: "charge"
  Assets:Acme:Stripe   10.00 USD
  Income:Acme:Sales   -10.00 USD

include "more/*.beancount"
"""

MORE = """\
2024-01-03 * "Withheld \\"funds\\"" "Stripe Capital paydown" ^flxln_1A
  capital_loan: "flxln_1A"
  stripe_id: "txn_pd" ; a comment
  capital_kind: "paydown"
  capital_amount: -1,234.50 USD
  Assets:Acme:Stripe                 -1,234.50 USD
    capital_kind: "posting metadata is not the entry's"
  ! Liabilities:Acme:Stripe-Capital   1122.27 USD
  Expenses:Acme:Stripe-Capital:Fees   112.23 USD
  ; a comment line
2024-01-05 balance Liabilities:Acme:Stripe-Capital  0.00 USD

2024-01-04 txn "Capital financing" "Stripe Capital financing"
  stripe_id: "txn_payout"
  stripe_type: "financing_payout"
  Assets:Acme:Stripe
  Liabilities:Acme:Stripe-Capital  -500.00 USD
"""


def test_scan_reads_capital_entries_like_the_loader(tmp_path: Path) -> None:
    (tmp_path / "more").mkdir()
    (tmp_path / "main.beancount").write_text(MAIN)
    (tmp_path / "more" / "capital.beancount").write_text(MORE)
    state = ledger.scan(tmp_path / "main.beancount")
    assert [e.meta.get("stripe_id") for e in state.capital_entries] == ["txn_pd", "txn_payout"]
    paydown, payout = state.capital_entries
    assert paydown.meta == {
        "capital_loan": "flxln_1A",
        "stripe_id": "txn_pd",
        "capital_kind": "paydown",
        "capital_amount": "-1,234.50 USD",
    }
    assert paydown.postings == (
        ("Assets:Acme:Stripe", Decimal("-1234.50"), "USD"),
        ("Liabilities:Acme:Stripe-Capital", Decimal("1122.27"), "USD"),
        ("Expenses:Acme:Stripe-Capital:Fees", Decimal("112.23"), "USD"),
    )
    assert paydown.date == datetime.date(2024, 1, 3) and paydown.line == 1
    assert 'Withheld \\"funds\\"' in paydown.header
    assert payout.postings == (
        ("Assets:Acme:Stripe", Decimal("500.00"), "USD"),  # elided: filled in as Beancount does
        ("Liabilities:Acme:Stripe-Capital", Decimal("-500.00"), "USD"),
    )
    # a Capital import's stripe_id is booked, but is no proof of how far sync has come
    assert state.capital_ids == {"txn_pd"}
    assert state.newest_date == datetime.date(2024, 1, 4)
    assert set(state.stripe_ids) == {"txn_charge", "txn_pd", "txn_payout"}

    # The loader sees the same entries; both views give the same Capital items.
    entries, errors, _ = loader.load_file(str(tmp_path / "main.beancount"))
    assert [e.message for e in errors] == ["Balance failed for 'Liabilities:Acme:Stripe-Capital': "
                                           "expected 0.00 USD != accumulated 622.27 USD "
                                           "(622.27 too much)"]  # fmt: skip
    client = capital_client(tmp_path)
    from_text = capital.ledger_items(state.capital_entries, client)
    from_entries = capital.ledger_items(capital.scanned_from_entries(entries), client)
    key = [(i.date, i.kind, i.origin, i.amount, i.fee, i.principal, i.txn) for i in from_text]
    assert key == [
        (i.date, i.kind, i.origin, i.amount, i.fee, i.principal, i.txn) for i in from_entries
    ]
    assert key[0] == (
        datetime.date(2024, 1, 3),
        "paydown",
        "capital",
        -123450,
        11223,
        112227,
        "txn_pd",
    )
