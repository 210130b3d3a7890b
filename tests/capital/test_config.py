"""The `capital:` block of a client: loans read exactly, problems named by file, line, key path."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from beancount_stripe.cli import main
from beancount_stripe.config import InvalidConfigError, Problem, check_config, load_config
from beancount_stripe.errors import ConfigError

CLIENT = """\
clients:
  - id: acme
    name: Acme
    stripe_account: acct_1Acme
    key: env:ACME_STRIPE_KEY
    ledger: acme/ledger.beancount
"""

CAPITAL = """\
    capital:
      loans:
        - id: flxln_1A
          aliases: [financingoffer_1B]
          currency: USD
          advance: 2695.80
          fee: 269.58
      columns:
        "Paid on": created
        Notes: ignore
      timezone: Europe/Berlin
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "clients.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def problems(tmp_path: Path, text: str) -> list[Problem]:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    assert isinstance(info.value, InvalidConfigError)
    return list(info.value.problems)


def test_a_capital_block_loads_exactly(tmp_path: Path) -> None:
    (client,) = load_config(write(tmp_path, CLIENT + CAPITAL)).clients
    assert client.capital is not None
    (loan,) = client.capital.loans
    assert (loan.id, loan.aliases, loan.currency) == ("flxln_1A", ("financingoffer_1B",), "USD")
    # the text as written, not the YAML float 2695.8
    assert str(loan.advance) == "2695.80" and loan.fee == Decimal("269.58")
    assert client.capital.output == tmp_path / "acme" / "capital.beancount"
    assert client.capital.columns == (("Paid on", "created"), ("Notes", "ignore"))
    assert client.capital.timezone == "Europe/Berlin"
    assert client.accounts.capital_fees == "Expenses:Acme:Stripe-Capital:Fees"


def test_clients_without_capital_have_none(tmp_path: Path) -> None:
    (client,) = load_config(write(tmp_path, CLIENT)).clients
    assert client.capital is None


@pytest.mark.parametrize(
    ("old", "new", "line", "key_path", "message"),
    [
        ("advance: 2695.80", 'advance: "2,695.80"', 12, "loans[0].advance", "not a plain"),
        ("fee: 269.58", "fee: 269.585", 13, "loans[0].fee", "more than 2 decimal places"),
        ("currency: USD", "currency: XYZ", 11, "loans[0].currency", "unknown currency `XYZ`"),
        ("advance: 2695.80", "advance: 0", 12, "loans[0].advance", "more than zero"),
        ("advance: 2695.80", "advance: [1]", 12, "loans[0].advance", "must be a number"),
        ("        - id: flxln_1A", "        - id: flx ln", 9, "loans[0].id", "not a Stripe id"),
        ('"Paid on": created', '"Paid on": creatd', 15, "columns.Paid on", "not a Capital CSV"),
        ("timezone: Europe/Berlin", "timezone: Mars/Base", 17, "capital.timezone", "unknown"),
        ("          fee: 269.58", "          rate: 0.1", 13, "loans[0].rate", "unknown key"),
    ],
)
def test_capital_problems_name_line_and_key_path(
    tmp_path: Path, old: str, new: str, line: int, key_path: str, message: str
) -> None:
    text = CLIENT + CAPITAL.replace(old, new)
    found = problems(tmp_path, text)
    assert any(
        p.line == line and p.key_path.endswith(key_path) and message in p.message for p in found
    ), found
    assert all(p.key_path.startswith("clients[0].capital") for p in found)


def test_missing_fee_and_zero_decimal_amounts(tmp_path: Path) -> None:
    text = CLIENT + CAPITAL.replace("          fee: 269.58\n", "").replace("USD", "JPY")
    found = problems(tmp_path, text)
    messages = {(p.key_path, p.message.split(" (")[0]) for p in found}
    assert ("clients[0].capital.loans[0].fee", "missing required key `fee`") in messages
    assert any("JPY cannot hold" in p.message for p in found)  # 2695.80 is not whole yen


def test_a_loan_id_given_twice(tmp_path: Path) -> None:
    second = "        - {id: financingoffer_1B, currency: USD, advance: 1, fee: 0}\n"
    text = CLIENT + CAPITAL.replace("      columns:", second + "      columns:")
    (problem,) = problems(tmp_path, text)
    assert problem.key_path == "clients[0].capital.loans[1].id"
    assert "also given at clients[0].capital.loans[0].aliases[0]" in problem.message


@pytest.mark.parametrize(
    ("capital", "message"),
    [
        ("    capital: []\n", "`capital` must be a mapping"),
        ("    capital:\n      loans: []\n", "`loans` is empty"),
        ("    capital:\n      timezone: UTC\n", "`capital` needs `loans`"),
        ("    output: x.beancount\n" + CAPITAL + "      output: x.beancount\n", "same file"),
    ],
)
def test_bad_capital_blocks(tmp_path: Path, capital: str, message: str) -> None:
    found = problems(tmp_path, CLIENT + capital)
    assert any(message in p.message for p in found), found


def test_two_clients_cannot_share_a_capital_file(tmp_path: Path) -> None:
    other = (
        CLIENT.replace("clients:\n", "").replace("acme", "other").replace("acct_1Acme", "acct_1O")
    )
    other = other.replace("other/ledger.beancount", "acme/ledger2.beancount")
    text = CLIENT + CAPITAL + other + CAPITAL.replace("flxln_1A", "flxln_1Z")
    found = problems(tmp_path, text)
    assert any("same output file (of `capital`)" in p.message for p in found), found


def test_capital_cannot_be_a_default(tmp_path: Path) -> None:
    text = "defaults:\n  capital: {}\n" + CLIENT
    found = problems(tmp_path, text)
    assert any(p.key_path == "defaults.capital" and "cannot be shared" in p.message for p in found)


def test_config_check_reports_capital_problems(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACME_STRIPE_KEY", "rk_test_abcdefghijklmnop")
    path = write(tmp_path, CLIENT + CAPITAL.replace("fee: 269.58", "fee: 269.585"))
    assert any("decimal places" in p.message for p in check_config(path))
    result = CliRunner().invoke(main, ["-c", str(path), "config", "check"])
    assert result.exit_code == 2
    assert "clients[0].capital.loans[0].fee" in result.output
    good = write(tmp_path, CLIENT + CAPITAL)
    result = CliRunner().invoke(main, ["-c", str(good), "config", "check"])
    assert result.exit_code == 0, result.output
