"""The pure parts behind the Fava page: entry text edits, rule appending, payouts, monthly."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from beancount.parser import parser

from beancount_stripe import overview, review
from beancount_stripe.config import ClientConfig, KeySource, make_accounts
from beancount_stripe.errors import BeancountStripeError, InputFileError

ENTRY = (
    '2025-03-01 ! "Advance" "Advance"\n'
    '  stripe_id: "txn_1"\n'
    '  stripe_type: "advance"\n'
    "  Assets:Acme:Stripe            -57.63 USD\n"
    "  Expenses:Acme:Uncategorized    57.63 USD"
)


def _client(tmp_path: Path) -> ClientConfig:
    return ClientConfig(
        id="acme",
        name="Acme",
        stripe_account="acct_1",
        key=KeySource("env", "K"),
        ledger=tmp_path / "ledger.beancount",
        output=tmp_path / "stripe.beancount",
        archive_dir=tmp_path / "archive",
        accounts=make_accounts("Acme"),
    )


def test_accepted_slice_changes_only_the_flag() -> None:
    out = review.accepted_slice(ENTRY)
    assert out == ENTRY.replace("2025-03-01 ! ", "2025-03-01 * ", 1)
    with pytest.raises(InputFileError, match="not flagged"):
        review.accepted_slice(out)


def test_rebooked_slice_moves_the_counter_posting_and_accepts() -> None:
    out = review.rebooked_slice(ENTRY, "Expenses:Acme:Uncategorized", "Liabilities:Acme:Loan")
    lines = out.splitlines()
    assert lines[0].startswith("2025-03-01 * ")
    assert lines[-1] == "  Liabilities:Acme:Loan          57.63 USD"  # amount column kept
    assert lines[1:-1] == ENTRY.splitlines()[1:-1]
    longer = review.rebooked_slice(
        ENTRY, "Expenses:Acme:Uncategorized", "Expenses:Acme:Marketing:Online-Advertising"
    )
    assert longer.splitlines()[-1].endswith("Online-Advertising  57.63 USD")
    with pytest.raises(InputFileError, match="no posting"):
        review.rebooked_slice(ENTRY, "Income:Nope", "Income:Acme:Coffee")
    with pytest.raises(InputFileError, match="not an account"):
        review.rebooked_slice(ENTRY, "Expenses:Acme:Uncategorized", "not an account")


RULE = '  - name: "x"\n    when: {type: advance}\n    account: "Liabilities:Acme:Loan"\n'


def test_append_rule(tmp_path: Path) -> None:
    path = tmp_path / "acme.yaml"
    path.write_text(
        "# my rules\nrules:\n  - name: a\n    when: {type: charge}\n    account: Income:X:Y\n"
    )
    before = path.read_text()
    review.append_rule(path, RULE)
    assert path.read_text() == before + RULE
    other = tmp_path / "other.yaml"
    other.write_text(
        "rules:\n  - name: a\n    when: {type: charge}\n    account: Income:X:Y\nparties: []\n"
    )
    text = other.read_text()
    with pytest.raises(InputFileError, match="not the last key"):
        review.append_rule(other, RULE)
    assert other.read_text() == text
    with pytest.raises(BeancountStripeError, match="would not load") as bad:
        review.append_rule(path, '  - name: "bad"\n    when: {nosuchfield: 1}\n    account: A:B\n')
    assert str(path) in str(bad.value) and ".check-" not in str(bad.value)
    assert path.read_text() == before + RULE  # a rule that does not load is not written


LEDGER = """
2025-01-01 open Assets:Acme:Stripe
2025-01-01 open Assets:Acme:Transfers:Stripe
2025-01-01 open Assets:Bank
2025-01-01 open Expenses:Acme:Stripe:Fees
2025-01-01 open Income:Acme:Sales

2025-01-05 * "Jo" "Coffee"
  stripe_id: "txn_c1"
  stripe_type: "charge"
  Assets:Acme:Stripe          96.80 USD
  Expenses:Acme:Stripe:Fees    3.20 USD
  Income:Acme:Sales         -100.00 USD

2025-01-06 * "Stripe" "Stripe payout" ^po_1
  stripe_id: "txn_p1"
  stripe_type: "payout"
  Assets:Acme:Stripe            -50.00 USD
  Assets:Acme:Transfers:Stripe   50.00 USD

2025-01-08 * "Bank" "STRIPE TRANSFER" ^po_1
  Assets:Bank                    50.00 USD
  Assets:Acme:Transfers:Stripe  -50.00 USD

2025-02-06 * "Stripe" "Stripe payout" ^po_2
  stripe_id: "txn_p2"
  stripe_type: "payout"
  Assets:Acme:Stripe            -40.00 USD
  Assets:Acme:Transfers:Stripe   40.00 USD
"""


def test_payouts_matched_and_in_transit(tmp_path: Path) -> None:
    client = _client(tmp_path)
    entries, errors, _ = parser.parse_string(LEDGER)
    assert not errors
    rows = overview.payouts(entries, client)
    assert [(r.payout_id, r.status, r.matched) for r in rows] == [
        ("po_2", "in transit", False),
        ("po_1", "matched", True),
    ]
    transit = overview.balances(entries, {client.accounts.transit})[client.accounts.transit]
    assert overview.in_transit(rows) == {k: v for k, v in transit.items() if v}
    assert overview.in_transit(rows) == {"USD": Decimal("40.00")}


def test_monthly_figures(tmp_path: Path) -> None:
    client = _client(tmp_path)
    entries, _e, _o = parser.parse_string(LEDGER)
    months = overview.monthly(entries, client)["USD"]
    jan = months[0]
    assert (jan.month, jan.gross, jan.fees, jan.payouts) == (
        "2025-01",
        Decimal("100.00"),
        Decimal("3.20"),
        Decimal("50.00"),
    )
    assert jan.fee_rate == Decimal("3.20")
