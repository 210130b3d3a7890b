"""`beancount-stripe capital import` and `capital status` through click's CliRunner."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from beancount_stripe.cli import main

from ..conftest import tree_digest

GOLDEN = Path(__file__).resolve().parent / "golden"

CONFIG = """\
clients:
  - id: acme
    name: Acme
    stripe_account: acct_1TestAcme00001
    key: env:ACME_STRIPE_KEY
    ledger: books/acme/ledger.beancount
    timezone: America/New_York
    capital:
      loans:
        - id: flxln_1TestLoan0001
          aliases: [financingoffer_1TestOffer01]
          currency: USD
          advance: 1000.00
          fee: 100.00
  - id: plain
    name: Plain
    stripe_account: acct_1Plain
    key: env:PLAIN_STRIPE_KEY
    ledger: books/plain/ledger.beancount
"""

# What sync writes for a Capital paydown (booking.py): the whole amount against the loan.
SYNCED = """\
2024-03-01 open Assets:Acme:Stripe
2024-03-01 open Liabilities:Acme:Stripe-Capital

2024-03-01 * "Capital financing for flex loan flxln_1TestLoan0001" "Stripe Capital financing"
  stripe_id: "txn_1SyncPayout0001"
  stripe_source: "flxln_1TestLoan0001"
  stripe_type: "financing_payout"
  Assets:Acme:Stripe                1000.00 USD
  Liabilities:Acme:Stripe-Capital  -1000.00 USD

2024-03-04 * "Withheld funds from ch_1 to pay down flex loan" "Stripe Capital paydown"
  stripe_id: "txn_1SyncPaydown001"
  stripe_source: "flxln_1TestLoan0001"
  stripe_type: "financing_paydown"
  Assets:Acme:Stripe               -22.00 USD
  Liabilities:Acme:Stripe-Capital   22.00 USD
"""


@pytest.fixture
def books(tmp_path: Path) -> Path:
    config = tmp_path / "clients.yaml"
    config.write_text(CONFIG)
    acme = tmp_path / "books" / "acme"
    acme.mkdir(parents=True)
    (acme / "ledger.beancount").write_text(
        'option "title" "Acme"\ninclude "stripe.beancount"\ninclude "capital.beancount"\n'
    )
    (acme / "stripe.beancount").write_text("")
    return config


def run(config: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["-c", str(config), "capital", *args])
    return result.exit_code, result.stdout, result.stderr


def test_import_dry_run_then_import_then_again(books: Path, tmp_path: Path) -> None:
    source = str(GOLDEN / "balance-report.csv")
    books_dir = tmp_path / "books"
    before = tree_digest(books_dir)
    code, out, _err = run(books, "import", source, "--client", "acme", "--dry-run")
    assert code == 0
    assert 'stripe_id: "txn_1RptPaydown0001"' in out  # the entries it would append
    assert "booked with their money: 5" in out and "1 other row(s) skipped" in out
    assert "would append to" in out
    assert tree_digest(books_dir) == before

    code, out, _err = run(books, "import", source, "--client", "acme")
    assert code == 0, out
    assert "appended to" in out and "stripe_id" not in out
    capital_file = books_dir / "acme" / "capital.beancount"
    assert capital_file.read_text() == (GOLDEN / "balance-report.beancount").read_text().replace(
        "Client acme", "Acme"
    )

    after = tree_digest(books_dir)
    code, out, _err = run(books, "import", source, "--client", "acme")
    assert code == 0 and "already imported: 5" in out and "unchanged" in out
    assert tree_digest(books_dir) == after

    code, out, _err = run(books, "status", "acme")
    assert code == 0, out
    assert "paid out              1,000.00 USD" in out
    assert "repaid to date        205.00 USD  (withheld from sales 5.00 USD" in out
    assert "fees paid             18.64 USD of 100.00 USD" in out
    assert "principal outstanding 813.64 USD" in out
    assert "left to repay         895.00 USD" in out
    assert "not yet split" not in out


def test_status_shows_synced_paydowns_not_yet_split(books: Path, tmp_path: Path) -> None:
    (tmp_path / "books" / "acme" / "stripe.beancount").write_text(SYNCED)
    code, out, _err = run(books, "status", "acme")
    assert code == 0, out
    assert "withheld from sales 22.00 USD" in out
    assert "principal outstanding 978.00 USD" in out  # unsplit paydowns count whole
    assert "not yet split: 22.00 USD" in out


def test_import_adds_the_fee_part_to_a_synced_paydown(books: Path, tmp_path: Path) -> None:
    (tmp_path / "books" / "acme" / "stripe.beancount").write_text(SYNCED)
    source = tmp_path / "export.csv"
    source.write_text(
        "id,Type,Source,Amount,Fee,Net,Currency,Created (UTC)\n"
        "txn_1SyncPaydown001,financing_paydown,flxln_1TestLoan0001,-22.00,0.00,-22.00,usd,"
        "3/4/2024 18:00\n"
    )
    code, out, _err = run(books, "import", str(source), "--client", "acme")
    assert code == 0, out
    assert "fee part added to synced paydowns: 1" in out
    text = (tmp_path / "books" / "acme" / "capital.beancount").read_text()
    assert 'capital_for: "txn_1SyncPaydown001"' in text
    assert "Expenses:Acme:Stripe-Capital:Fees   2.00 USD" in text
    code, out, _err = run(books, "status", "acme")
    assert "principal outstanding 980.00 USD" in out and "not yet split" not in out


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (
            "txn_2,financing_paydown,flxln_1TestLoan0001,-1.0x,0,-1.0x,usd,3/4/2024 18:00",
            "not a number",
        ),
        ("txn_2,financing_paydown,flxln_1TestLoan0001,-1.00,0,-1.00,eur,3/4/2024 18:00", "EUR"),
        ("txn_1,financing_paydown,flxln_1TestLoan0001,-1.00,0,-1.00,usd,3/4/2024 18:00", "twice"),
    ],
)
def test_a_bad_row_stops_the_import_and_writes_nothing(
    books: Path, tmp_path: Path, line: str, reason: str
) -> None:
    source = tmp_path / "bad.csv"
    source.write_text(
        "id,Type,Source,Amount,Fee,Net,Currency,Created (UTC)\n"
        "txn_1,financing_paydown,flxln_1TestLoan0001,-1.00,0.00,-1.00,usd,3/3/2024 18:00\n"
        f"{line}\n"
    )
    before = tree_digest(tmp_path / "books")
    code, _out, err = run(books, "import", str(source), "--client", "acme")
    assert code == 2
    assert f"{source}:3, row 3:" in err and reason in err
    assert "Traceback" not in err
    assert tree_digest(tmp_path / "books") == before


def test_unknown_columns_stop_at_row_1(books: Path, tmp_path: Path) -> None:
    source = tmp_path / "odd.csv"
    source.write_text("Paid on,Kind,Amount paid\n2024-03-04,financing_paydown,-1.00\n")
    code, _out, err = run(books, "import", str(source), "--client", "acme")
    assert code == 2 and "row 1: unknown column `Paid on`" in err and "capital.columns" in err
    assert not (tmp_path / "books" / "acme" / "capital.beancount").exists()


def test_the_ledger_must_include_the_capital_file(books: Path, tmp_path: Path) -> None:
    main_file = tmp_path / "books" / "acme" / "ledger.beancount"
    main_file.write_text('include "stripe.beancount"\n')
    before = tree_digest(tmp_path / "books")
    code, _out, err = run(books, "import", str(GOLDEN / "balance-report.csv"), "--client", "acme")
    assert code == 5
    assert 'add the line: include "capital.beancount"' in err
    assert tree_digest(tmp_path / "books") == before


def test_clients_without_capital_and_unknown_clients(books: Path) -> None:
    code, _out, err = run(books, "import", str(GOLDEN / "mapped.csv"), "--client", "plain")
    assert code == 2 and "client plain has no Stripe Capital loans configured" in err
    code, _out, err = run(books, "status", "plain")
    assert code == 2 and "capital:" in err
    code, _out, err = run(books, "status", "nobody")
    assert code == 2 and "no client 'nobody'" in err


def test_a_missing_ledger_is_refused(books: Path, tmp_path: Path) -> None:
    (tmp_path / "books" / "acme" / "ledger.beancount").unlink()
    code, _out, err = run(books, "import", str(GOLDEN / "balance-report.csv"), "--client", "acme")
    assert code == 5 and "does not exist yet" in err and "sync acme" in err
    assert not (tmp_path / "books" / "acme" / "capital.beancount").exists()
