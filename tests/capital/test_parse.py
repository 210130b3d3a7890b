"""Capital CSV parsing: header-driven styles, dates in the client's zone, exact amounts, errors."""

from __future__ import annotations

import datetime
from decimal import Decimal
from pathlib import Path

import pytest

from beancount_stripe import capital
from beancount_stripe.config import LoanConfig
from beancount_stripe.errors import ConfigError, InputFileError

from .conftest import (
    EXPORT_HEADER,
    FINANCING_HEADER,
    LOAN,
    REPORT_HEADER,
    capital_client,
    csv_text,
)

NY = datetime.date


def report_row(**kw: object) -> list[object]:
    base = {
        "balance_transaction_id": "txn_1A",
        "created_utc": "2024-03-02 03:30:00",
        "created": "",
        "available_on_utc": "2024-03-02 03:30:00",
        "currency": "usd",
        "gross": "-12.34",
        "fee": "0.00",
        "net": "-12.34",
        "reporting_category": "financing_paydown",
        "source_id": LOAN.id,
        "description": f"Withheld funds from ch_1X to pay down flex loan {LOAN.id}",
        "customer_email": "",
    }
    base.update(kw)
    return [base[h] for h in REPORT_HEADER]


def export_row(**kw: object) -> list[object]:
    base = dict.fromkeys(EXPORT_HEADER, "")
    base.update(
        {
            "id": "txn_1B",
            "Type": "financing_paydown",
            "Source": LOAN.id,
            "Amount": "-5.00",
            "Fee": "0.00",
            "Net": "-5.00",
            "Currency": "usd",
            "Created (UTC)": "3/2/2024 3:30",
            "Available On (UTC)": "3/2/2024 3:30",
            "Description": "External transfer to paydown financing balance",
            "order_id (metadata)": "1234",
        }
    )
    base.update(kw)
    return [base[h] for h in EXPORT_HEADER]


def financing_row(**kw: object) -> list[object]:
    base = {
        "id": "cptxn_1C",
        "created_at": "2024-03-02 03:30:00",
        "type": "payment",
        "reason": "automatic_withholding",
        "financing_offer": "financingoffer_1TestOffer01",
        "advance_amount": "10.00",
        "fee_amount": "1.00",
        "total_amount": "11.00",
        "currency": "usd",
        "reversed_transaction": "",
        "remaining_amount": "",
    }
    base.update(kw)
    return [base[h] for h in FINANCING_HEADER]


def parse(text: str, tmp_path: Path, **client_kw: object) -> capital.CapitalFile:
    return capital.parse_csv(text, capital_client(tmp_path, **client_kw), "t.csv")  # type: ignore[arg-type]


def error(text: str, tmp_path: Path, **client_kw: object) -> str:
    with pytest.raises(InputFileError) as info:
        parse(text, tmp_path, **client_kw)
    return str(info.value)


# -- the three styles ------------------------------------------------------------------------------


def test_report_style_converts_utc_to_the_client_zone_and_skips_other_categories(
    tmp_path: Path,
) -> None:
    text = csv_text(
        REPORT_HEADER,
        [
            report_row(),
            report_row(balance_transaction_id="txn_ch", reporting_category="charge", gross="9"),
            report_row(
                balance_transaction_id="txn_1P",
                reporting_category="financing_payout",
                gross="1000.00",
                net="1000.00",
                created_utc="2024-03-01 12:00:00",
            ),
        ],
    )
    parsed = parse(text, tmp_path)
    assert parsed.style == "balance report"
    assert parsed.skipped == 1
    payout, paydown = parsed.rows  # in time order, whatever the file's order
    assert (payout.kind, payout.amount, payout.txn_id) == ("payout", 100000, "txn_1P")
    assert (paydown.kind, paydown.amount, paydown.commodity) == ("paydown", -1234, "USD")
    # 03:30 UTC on 2 March is still 1 March in New York
    assert paydown.date == NY(2024, 3, 1)
    assert paydown.when is not None and paydown.when.utcoffset() == datetime.timedelta(hours=-5)
    assert paydown.loan == LOAN and paydown.row == 2 and paydown.line == 2


@pytest.mark.parametrize(
    ("csv_timezone", "expected"),
    [(None, NY(2024, 3, 2)), ("UTC", NY(2024, 3, 1)), ("Asia/Tokyo", NY(2024, 3, 1))],
)
def test_local_created_column_is_read_in_the_capital_timezone(
    tmp_path: Path, csv_timezone: str | None, expected: datetime.date
) -> None:
    header = [h for h in REPORT_HEADER if h != "created_utc"]
    row = report_row(created="2024-03-02 03:30:00")
    row.pop(REPORT_HEADER.index("created_utc"))
    parsed = parse(csv_text(header, [row]), tmp_path, csv_timezone=csv_timezone)
    assert parsed.rows[0].date == expected


def test_balance_export_reads_excel_dates_and_skips_bank_payouts(tmp_path: Path) -> None:
    text = csv_text(
        EXPORT_HEADER,
        [
            export_row(),
            export_row(id="txn_po", Type="payout", Amount="-50.00", Net="-50.00"),
            export_row(id="txn_2", **{"Created (UTC)": "2024-03-03 23:59"}),
        ],
    )
    parsed = parse(text, tmp_path)
    assert parsed.style == "balance export"
    assert parsed.skipped == 1  # a payout to the bank is not Capital's
    first, second = parsed.rows
    assert (first.txn_id, first.amount, first.date) == ("txn_1B", -500, NY(2024, 3, 1))
    assert second.date == NY(2024, 3, 3)
    assert first.description == "External transfer to paydown financing balance"


def test_financing_transactions_split_types_reasons_and_reversals(tmp_path: Path) -> None:
    text = csv_text(
        FINANCING_HEADER,
        [
            financing_row(
                id="cptxn_rev",
                type="reversal",
                reason="",
                reversed_transaction="cptxn_pay",
                advance_amount="1000.00",
                fee_amount="",
                total_amount="1000.00",
                created_at="1709400000",
            ),
            financing_row(remaining_amount="1089.00"),
            financing_row(
                id="cptxn_pay",
                type="payout",
                reason="",
                advance_amount="1000.00",
                fee_amount="100.00",
                total_amount="1100.00",
                created_at="2024-03-01T15:00:00Z",
            ),
            financing_row(id="cptxn_fail", type="reversal", reason="collection_failure"),
            financing_row(
                id="cptxn_cancel",
                type="reversal",
                reason="financing_cancellation",
                advance_amount="3.00",
                fee_amount="0",
                total_amount="3.00",
            ),
        ],
    )
    parsed = parse(text, tmp_path)
    assert parsed.style == "financing transactions"
    kinds = {r.cptxn_id: (r.kind, r.amount, r.advance, r.fee) for r in parsed.rows}
    assert kinds["cptxn_pay"] == ("payout", 100000, None, None)  # the advance is what moves
    assert kinds["cptxn_1C"] == ("paydown", -1100, 1000, 100)
    assert kinds["cptxn_fail"] == ("paydown_reversal", 1100, 1000, 100)
    assert kinds["cptxn_cancel"] == ("payout_reversal", -300, None, None)
    assert kinds["cptxn_rev"] == ("payout_reversal", -100000, None, None)  # reverses the payout
    paydown = next(r for r in parsed.rows if r.cptxn_id == "cptxn_1C")
    assert paydown.remaining == 108900 and paydown.reason == "automatic_withholding"
    assert paydown.txn_id is None and paydown.loan == LOAN  # the financing offer is an alias
    assert parsed.rows[0].cptxn_id == "cptxn_pay"


def test_column_map_reads_any_export(tmp_path: Path) -> None:
    columns = (
        ("Paid on", "created"),
        ("What", "type"),
        ("Amount paid", "amount"),
        ("Notes", "ignore"),
        ("Balance TX", "id"),
    )
    text = csv_text(
        ["Balance TX", "Paid on", "What", "Amount paid", "Notes"],
        [["txn_9", "2024-05-06", "financing_paydown", "-7.50", "hello"]],
    )
    parsed = parse(text, tmp_path, columns=columns)
    (row,) = parsed.rows
    assert parsed.style == "mapped"
    assert (row.txn_id, row.amount, row.date, row.when) == ("txn_9", -750, NY(2024, 5, 6), None)
    assert row.commodity == "USD"  # no currency column: the loan's


def test_semicolons_bom_and_crlf(tmp_path: Path) -> None:
    text = "\ufeff" + csv_text(REPORT_HEADER, [report_row()]).replace(",", ";").replace(
        "\n", "\r\n"
    )
    (row,) = parse(text, tmp_path).rows
    assert row.amount == -1234


def test_read_csv_refuses_non_utf8(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_bytes(csv_text(REPORT_HEADER, [report_row(description="Caf\xe9")]).encode("latin-1"))
    with pytest.raises(InputFileError, match="not UTF-8"):
        capital.read_csv(path, capital_client(tmp_path))


def test_a_client_without_capital_is_a_config_error(tmp_path: Path) -> None:
    from dataclasses import replace

    client = replace(capital_client(tmp_path), capital=None)
    with pytest.raises(ConfigError, match="no Stripe Capital loans"):
        capital.parse_csv(csv_text(REPORT_HEADER, [report_row()]), client)


# -- values ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "code", "minor"),
    [
        ("-1,234.56", "USD", -123456),
        ("(12.50)", "USD", -1250),
        ("\u22125.00", "USD", -500),
        ("+5", "USD", 500),
        (".5", "USD", 50),
        ("1,200", "JPY", 1200),
        ("-1.230", "BHD", -1230),
    ],
)
def test_amounts_are_exact_minor_units(text: str, code: str, minor: int) -> None:
    assert capital._parse_amount(text, code) == minor


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("12,5a", "USD"),
        ("$5.00", "USD"),
        ("1.234", "USD"),
        ("1.5", "JPY"),
        ("", "USD"),
        ("-", "USD"),
    ],
)
def test_bad_amounts_are_refused(text: str, code: str) -> None:
    with pytest.raises(capital._BadNumber):
        capital._parse_amount(text, code)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-03-02 03:30", datetime.datetime(2024, 3, 2, 3, 30, tzinfo=datetime.UTC)),
        ("2024-03-02T03:30:05Z", datetime.datetime(2024, 3, 2, 3, 30, 5, tzinfo=datetime.UTC)),
        ("2024-03-02 05:30:00+02:00", datetime.datetime(2024, 3, 2, 3, 30, tzinfo=datetime.UTC)),
        ("3/2/2024 3:30", datetime.datetime(2024, 3, 2, 3, 30, tzinfo=datetime.UTC)),
        ("3/2/24 3:30 PM", datetime.datetime(2024, 3, 2, 15, 30, tzinfo=datetime.UTC)),
        ("3/2/2024 12:05 am", datetime.datetime(2024, 3, 2, 0, 5, tzinfo=datetime.UTC)),
        ("1709350200", datetime.datetime(2024, 3, 2, 3, 30, tzinfo=datetime.UTC)),
        ("2024-03-02", datetime.date(2024, 3, 2)),
        ("3/2/2024", datetime.date(2024, 3, 2)),
        ("2024-02-30 10:00", None),
        ("13/45/2024 1:00", None),
        ("yesterday", None),
    ],
)
def test_date_forms(text: str, expected: object) -> None:
    got = capital._parse_when(text, datetime.UTC)
    assert got == expected
    if isinstance(expected, datetime.datetime):
        assert isinstance(got, datetime.datetime) and got.utcoffset() is not None


# -- bad files: the row and the reason -------------------------------------------------------------


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([report_row(gross="12,5a", net="")], "row 2: `amount` is not a number: '12,5a'"),
        ([report_row(), report_row(gross="-1.234", net="")], "row 3: `amount` cannot be held"),
        (
            [report_row(currency="eur")],
            "row 2: currency EUR: client acme has no Capital loan in EUR",
        ),
        ([report_row(currency="xyz")], "row 2: unknown currency `xyz`"),
        ([report_row(gross="5.00", net="5.00")], "row 2: a paydown takes from the Stripe balance"),
        ([report_row(fee="0.30", net="-12.64")], "row 2: Stripe fee 0.30 USD on a Capital"),
        ([report_row(net="-12.00")], "row 2: gross and net differ"),
        ([report_row(gross="0.00", net="0.00")], "row 2: the amount is zero"),
        ([report_row(created_utc="tomorrow")], "row 2: `created_utc` is not a date"),
        ([report_row(created_utc="")], "row 2: the date is empty"),
        ([report_row(reporting_category="")], "row 2: the type is empty"),
        ([report_row(balance_transaction_id="ch_1")], "row 2: id `ch_1` is neither"),
        (
            [report_row(source_id="flxln_1Other", description="")],
            "row 2: loan `flxln_1Other` is not in the configuration",
        ),
        (
            [report_row(reporting_category="financing_payout", gross="999", net="999")],
            "row 2: financing payout of 999.00 USD, but loan flxln_1TestLoan0001 is configured "
            "with advance 1000.00 USD",
        ),
        ([report_row()[:-1]], "row 2: 11 values for 12 columns"),
    ],
)
def test_bad_rows_name_their_row_and_reason(
    tmp_path: Path, rows: list[list[object]], expected: str
) -> None:
    assert expected in error(csv_text(REPORT_HEADER, rows), tmp_path)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ([*REPORT_HEADER, "Foo"], "row 1: unknown column `Foo` (column 13)"),
        (
            [h for h in REPORT_HEADER if not h.startswith("created")],
            "row 1: no column gives the date",
        ),
        ([h for h in REPORT_HEADER if h != "reporting_category"], "no column gives the type"),
        ([*REPORT_HEADER, "Amount"], "row 1: columns `gross` and `Amount` both give the `amount`"),
    ],
)
def test_bad_headers(tmp_path: Path, header: list[str], expected: str) -> None:
    text = ",".join(header) + "\n"
    message = error(text, tmp_path)
    assert expected in message
    assert "capital.columns" in message  # the fix says how to map it


def test_financing_errors(tmp_path: Path) -> None:
    bad_split = financing_row(advance_amount="10.00", fee_amount="2.00", total_amount="11.00")
    assert (
        "row 2: `advance_amount` 10.00 USD + `fee_amount` 2.00 USD is not `total_amount` "
        in error(csv_text(FINANCING_HEADER, [bad_split]), tmp_path)
    )
    unknown = financing_row(financing_offer="financingoffer_1Nope")
    assert "loan `financingoffer_1Nope` is not in the configuration" in error(
        csv_text(FINANCING_HEADER, [unknown]), tmp_path
    )
    fee = financing_row(
        type="payout", advance_amount="1000.00", fee_amount="90.00", total_amount="1090.00"
    )
    assert "gives the loan's fee as 90.00 USD" in error(csv_text(FINANCING_HEADER, [fee]), tmp_path)


def test_a_row_that_names_no_loan_among_several_is_refused(tmp_path: Path) -> None:
    other = LoanConfig("flxln_1Second", "USD", Decimal("50.00"), Decimal("5.00"))
    message = error(
        csv_text(REPORT_HEADER, [report_row(source_id="", description="")]),
        tmp_path,
        loans=(LOAN, other),
    )
    assert "row 2: the row does not say which loan it belongs to" in message


def test_empty_file(tmp_path: Path) -> None:
    assert "the file is empty" in error("", tmp_path)


def test_looks_like_capital(tmp_path: Path) -> None:
    client = capital_client(tmp_path)
    assert capital.looks_like_capital(csv_text(REPORT_HEADER, [report_row()]), client)
    assert capital.looks_like_capital(csv_text(FINANCING_HEADER, []), client)
    charges = csv_text(REPORT_HEADER, [report_row(reporting_category="charge", source_id="ch_1")])
    charges = charges.replace(LOAN.id, "nothing")
    assert not capital.looks_like_capital(charges, client)  # no Capital row in sight
    assert not capital.looks_like_capital("date,amount\n2024-01-01,5\n", client)
    assert not capital.looks_like_capital(",".join([*REPORT_HEADER, "Foo"]) + "\n", client)
