"""Tests for beancount_stripe.currency: Stripe's minor units ↔ exact Decimals."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from beancount_stripe import currency
from beancount_stripe.errors import CurrencyError

# (code as Stripe sends it, exponent, minor units, expected Decimal text)
CASES = [
    ("jpy", 0, 500, "500"),
    ("krw", 0, 12345, "12345"),
    ("bhd", 3, 5120, "5.120"),
    ("kwd", 3, 5120, "5.120"),
    ("tnd", 3, 1, "0.001"),
    ("isk", 2, 500, "5.00"),  # ISK: zero-decimal, but the API sends two decimals ("00")
    ("ugx", 2, 500, "5.00"),  # UGX: same representation rule as ISK
    ("huf", 2, 104500, "1045.00"),
    ("eur", 2, 1999, "19.99"),
    ("usd", 2, 1000, "10.00"),
    ("usd", 2, -5, "-0.05"),
    ("usd", 2, 0, "0.00"),
]


@pytest.mark.parametrize(("code", "exp", "minor", "text"), CASES)
def test_to_decimal_is_quantized_to_the_exponent(code: str, exp: int, minor: int, text: str):
    value = currency.to_decimal(minor, code)
    assert currency.exponent(code) == exp
    assert str(value) == text  # str() shows the exponent: "10.00", not "10"
    assert value.as_tuple().exponent == -exp


@pytest.mark.parametrize(("code", "exp", "minor", "text"), CASES)
def test_round_trip(code: str, exp: int, minor: int, text: str):
    assert currency.to_minor(currency.to_decimal(minor, code), code) == minor
    assert currency.to_minor(text, code) == minor


def test_zero_and_three_decimal_tables_match_stripe():
    zero = set("BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF VND VUV XAF XOF XPF".split())
    assert set(currency.ZERO_DECIMAL) == zero
    assert set(currency.THREE_DECIMAL) == {"BHD", "JOD", "KWD", "OMR", "TND"}
    for code in ("ISK", "UGX", "HUF", "TWD", "EUR", "GBP", "CHF"):
        assert currency.exponent(code) == 2, code
    assert currency.ZERO_DECIMAL | currency.THREE_DECIMAL <= currency.ISO_4217_ACTIVE


def test_commodity_and_case():
    assert currency.commodity("usd") == "USD"
    assert currency.commodity("Jpy") == "JPY"
    assert currency.exponent("KWD") == currency.exponent("kwd") == 3
    assert currency.is_known("eur") and currency.is_known("EUR")
    assert currency.is_known("hrk")  # withdrawn in 2023, still in old Stripe history


@pytest.mark.parametrize("code", ["xyz", "usdd", "us", "", " usd", "xts", "xxx", "uſd"])
def test_unknown_code_error_names_code_where_and_fix(code: str):
    assert not currency.is_known(code)
    with pytest.raises(CurrencyError) as info:
        currency.commodity(code, where="balance transaction txn_1")
    message = str(info.value)
    assert repr(code) in message
    assert "balance transaction txn_1" in message
    assert "fix:" in message and "ISO 4217" in message


@pytest.mark.parametrize("call", [currency.exponent, currency.commodity])
def test_non_string_code_is_an_error(call):
    with pytest.raises(CurrencyError):
        call(None)


def test_to_decimal_refuses_non_integers():
    with pytest.raises(CurrencyError, match="not an integer"):
        currency.to_decimal(10.5, "usd")  # type: ignore[arg-type]
    with pytest.raises(CurrencyError):
        currency.to_decimal(True, "usd")
    with pytest.raises(CurrencyError, match="'xyz'"):
        currency.to_decimal(1, "xyz")


@pytest.mark.parametrize(
    ("amount", "code"),
    [("10.005", "usd"), ("1.5", "jpy"), ("5.1234", "kwd"), (Decimal("0.001"), "eur")],
)
def test_to_minor_refuses_inexact_amounts(amount, code):
    with pytest.raises(CurrencyError) as info:
        currency.to_minor(amount, code, where="capital.csv line 3")
    assert "capital.csv line 3" in str(info.value)
    assert currency.commodity(code) in str(info.value)


def test_to_minor_accepts_exact_amounts_with_extra_zeros_and_exponents():
    assert currency.to_minor("10.500", "usd") == 1050
    assert currency.to_minor("1E+3", "jpy") == 1000
    assert currency.to_minor(Decimal("-5.12"), "KWD") == -5120
    assert currency.to_minor(" 7 ", "usd") == 700
    assert currency.to_minor(3, "bhd") == 3000


def test_to_minor_is_exact_beyond_decimal_context_precision():
    # 30 significant digits: Decimal's default 28-digit context would round this to look exact.
    with pytest.raises(CurrencyError):
        currency.to_minor("1000000000000000000000000000.001", "usd")
    assert currency.to_minor("1" + "0" * 30, "usd") == 10**32


@pytest.mark.parametrize("bad", ["ten", "", "NaN", "Infinity", 1.5])
def test_to_minor_rejects_non_amounts(bad):
    with pytest.raises(CurrencyError):
        currency.to_minor(bad, "usd")


@given(
    minor=st.integers(min_value=-(10**12), max_value=10**12),
    code=st.sampled_from(["jpy", "krw", "bhd", "kwd", "tnd", "isk", "huf", "ugx", "eur", "usd"]),
)
def test_round_trip_property(minor: int, code: str):
    value = currency.to_decimal(minor, code)
    assert value.as_tuple().exponent == -currency.exponent(code)
    assert currency.to_minor(value, code) == minor
    assert currency.to_minor(str(value), code) == minor
    assert value == Decimal(minor) / (10 ** currency.exponent(code))
