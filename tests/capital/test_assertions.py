"""Loan balance assertions from the remaining balance an export gives, and their cross-check."""

from __future__ import annotations

import datetime
from decimal import Decimal
from pathlib import Path

import pytest
from beancount.core import data
from beancount.core.amount import Amount

from beancount_stripe import capital
from beancount_stripe.config import LoanConfig
from beancount_stripe.errors import InputFileError

from .conftest import FINANCING_HEADER, LOAN, capital_client, csv_text


def ft(ident: str, when: str, kind: str, advance: str, fee: str, remaining: str = "") -> list[str]:
    total = str(Decimal(advance) + Decimal(fee or 0))
    row = {
        "id": ident,
        "created_at": when,
        "type": kind,
        "reason": "",
        "financing_offer": LOAN.aliases[0],
        "advance_amount": advance,
        "fee_amount": fee,
        "total_amount": total,
        "currency": "usd",
        "reversed_transaction": "",
        "remaining_amount": remaining,
    }
    return [row[h] for h in FINANCING_HEADER]


PAYOUT = ft("cptxn_po", "2024-03-01 15:00:00", "payout", "1000.00", "", "1100.00")


def plan(rows: list[list[str]], tmp_path: Path, scanned: list | None = None, **kw: object):
    client = capital_client(tmp_path, **kw)  # type: ignore[arg-type]
    parsed = capital.parse_csv(csv_text(FINANCING_HEADER, rows), client, "ft.csv")
    return client, capital.plan_import(parsed, client, scanned or [])


def test_one_assertion_per_day_after_its_last_row(tmp_path: Path) -> None:
    rows = [
        PAYOUT,
        ft("cptxn_1", "2024-03-05 12:00:00", "payment", "50.00", "5.00", "1045.00"),
        ft("cptxn_2", "2024-03-05 13:00:00", "payment", "10.00", "1.00", "1034.00"),
        ft("cptxn_3", "2024-03-06 13:00:00", "payment", "10.00", "1.00"),  # no remaining given
    ]
    client, result = plan(rows, tmp_path)
    got = [(b.date, b.account, b.amount.number) for b in result.assertions]
    assert got == [
        (datetime.date(2024, 3, 2), client.accounts.capital_loan, Decimal("-1000.00")),
        (datetime.date(2024, 3, 6), client.accounts.capital_loan, Decimal("-940.00")),
    ]


def test_remaining_principal_is_asserted_as_given(tmp_path: Path) -> None:
    header = [h if h != "remaining_amount" else "remaining_principal" for h in FINANCING_HEADER]
    payout = ft("cptxn_po", "2024-03-01 15:00:00", "payout", "1000.00", "", "1000.00")
    rows = [payout, ft("cptxn_1", "2024-03-05 12:00:00", "payment", "50.00", "5.00", "950.00")]
    client = capital_client(tmp_path)
    parsed = capital.parse_csv(csv_text(header, rows), client, "ft.csv")
    result = capital.plan_import(parsed, client, [])
    assert [b.amount.number for b in result.assertions] == [Decimal("-1000.00"), Decimal("-950.00")]
    wrong = [payout, ft("cptxn_1", "2024-03-05 12:00:00", "payment", "50.00", "5.00", "955.00")]
    with pytest.raises(InputFileError, match=r"row 3: the export says 955\.00 USD principal left"):
        capital.plan_import(
            capital.parse_csv(csv_text(header, wrong), client, "ft.csv"), client, []
        )


def test_a_remaining_balance_the_ledger_contradicts_is_refused(tmp_path: Path) -> None:
    rows = [PAYOUT, ft("cptxn_1", "2024-03-05 12:00:00", "payment", "50.00", "5.00", "1044.00")]
    with pytest.raises(InputFileError) as info:
        plan(rows, tmp_path)
    message = str(info.value)
    assert "ft.csv:3, row 3:" in message
    assert "the export says 1044.00 USD left to repay" in message
    assert "the ledger and this file give 1045.00 USD" in message


def test_no_assertion_on_a_day_the_ledger_has_more_than_the_file(tmp_path: Path) -> None:
    """A synced paydown the file does not list may come after its last row that day."""
    client = capital_client(tmp_path)
    synced = data.Transaction(
        data.new_metadata("stripe.beancount", 9)
        | {"stripe_id": "txn_other", "stripe_type": "financing_paydown", "stripe_source": LOAN.id},
        datetime.date(2024, 3, 5),
        "*",
        None,
        "Stripe Capital paydown",
        data.EMPTY_SET,
        data.EMPTY_SET,
        [
            data.Posting(
                client.accounts.clearing,
                Amount(Decimal("-3.00"), "USD"),
                None,
                None,
                None,
                None,
            ),
            data.Posting(
                client.accounts.capital_loan,
                Amount(Decimal("3.00"), "USD"),
                None,
                None,
                None,
                None,
            ),
        ],
    )
    rows = [PAYOUT, ft("cptxn_1", "2024-03-05 12:00:00", "payment", "50.00", "5.00", "1045.00")]
    parsed = capital.parse_csv(csv_text(FINANCING_HEADER, rows), client, "ft.csv")
    result = capital.plan_import(parsed, client, capital.scanned_from_entries([synced]))
    assert [b.date for b in result.assertions] == [datetime.date(2024, 3, 2)]


def test_no_assertions_when_loans_share_the_account(tmp_path: Path) -> None:
    other = LoanConfig("flxln_1Other", "USD", Decimal("10.00"), Decimal("1.00"))
    _client, result = plan([PAYOUT], tmp_path, loans=(LOAN, other))
    assert result.assertions == []
    assert any("several loans in USD" in w for w in result.warnings)


def test_an_assertion_already_in_the_ledger_is_not_written_again(tmp_path: Path) -> None:
    client = capital_client(tmp_path)
    parsed = capital.parse_csv(csv_text(FINANCING_HEADER, [PAYOUT]), client, "ft.csv")
    key = (datetime.date(2024, 3, 2), client.accounts.capital_loan, "USD")
    result = capital.plan_import(parsed, client, [], balances={key: "-1000.00"})
    assert result.assertions == [] and len(result.entries) == 1
