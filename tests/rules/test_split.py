"""Split rounding: legs always add up to the gross, in the currency's minor unit, same sign."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beancount_stripe import currency
from beancount_stripe.rules import split_amounts

D = Decimal


@pytest.mark.parametrize(
    ("total", "shares", "exponent", "expected"),
    [
        ("100.00", [(D(50), None), (None, None)], 2, ["50.00", "50.00"]),
        ("-36.93", [(D(88), None), (None, None)], 2, ["-32.50", "-4.43"]),
        ("0.01", [(D(50), None), (D(50), None)], 2, ["0.00", "0.01"]),
        (
            "0.03",
            [(D("33.33"), None), (D("33.33"), None), (None, None)],
            2,
            ["0.01", "0.01", "0.01"],
        ),
        ("10.00", [(None, D("2.50")), (D(50), None), (None, None)], 2, ["2.50", "5.00", "2.50"]),
        ("3.00", [(None, D(5)), (None, None)], 2, ["3.00", "0.00"]),  # capped, never flips
        ("-1000", [(D("33.3"), None), (None, None)], 0, ["-333", "-667"]),  # JPY
        ("1.235", [(D(50), None), (None, None)], 3, ["0.618", "0.617"]),  # BHD, half-even
        ("0", [(D(50), None), (None, None)], 2, ["0.00", "0.00"]),
    ],
)
def test_split_examples(
    total: str, shares: list[tuple[D | None, D | None]], exponent: int, expected: list[str]
) -> None:
    assert split_amounts(D(total), shares, exponent) == [D(x) for x in expected]


share = st.one_of(
    st.tuples(st.decimals(min_value=D("0.01"), max_value=D(100), places=2), st.none()),
    st.tuples(st.none(), st.decimals(min_value=D("0.001"), max_value=D(5000), places=3)),
)


@settings(max_examples=400, deadline=None)
@given(
    code=st.sampled_from(["usd", "jpy", "bhd", "krw", "kwd", "eur"]),
    minor=st.integers(min_value=-(10**10), max_value=10**10),
    shares=st.lists(share, min_size=1, max_size=6),
)
def test_legs_always_sum_to_the_gross(
    code: str, minor: int, shares: list[tuple[D | None, D | None]]
) -> None:
    # keep the percentages valid (at most 100 in total), as the rule loader does
    budget = D(100)
    valid: list[tuple[D | None, D | None]] = []
    for percent, amount in shares:
        if percent is not None:
            percent = min(percent, budget)
            if percent <= 0:
                continue
            budget -= percent
        valid.append((percent, amount))
    valid.append((None, None))  # the last leg takes the rest
    total = currency.to_decimal(minor, code)
    exponent = currency.exponent(code)
    legs = split_amounts(total, valid, exponent)
    assert len(legs) == len(valid)
    assert sum(legs, D(0)) == total
    quantum = D(1).scaleb(-exponent)
    for leg in legs:
        assert leg == leg.quantize(quantum)
        assert leg == 0 or (leg > 0) == (total > 0)
        assert abs(leg) <= abs(total)
