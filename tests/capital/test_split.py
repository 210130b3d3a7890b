"""The principal/fee split: cumulative pro-rata rounding, exact columns, exact reversals."""

from __future__ import annotations

import datetime
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beancount_stripe import capital, currency
from beancount_stripe.capital import CapitalFile, CapitalRow, LoanState
from beancount_stripe.config import ClientConfig, LoanConfig

from .conftest import LOAN, capital_client

DAY0 = datetime.date(2024, 1, 1)


def row(
    n: int,
    kind: str,
    magnitude: int,
    loan: LoanConfig = LOAN,
    *,
    fee: int | None = None,
    reversed_id: str | None = None,
) -> CapitalRow:
    return CapitalRow(
        row=n + 2,
        line=n + 2,
        kind=kind,
        amount=capital.SIGN[kind] * magnitude,
        commodity=loan.currency,
        date=DAY0 + datetime.timedelta(days=n),
        when=None,
        loan=loan,
        txn_id=f"txn_{n:05d}",
        advance=None if fee is None else magnitude - fee,
        fee=fee,
        reversed_id=reversed_id,
    )


def plan(
    rows: list[CapitalRow], client: ClientConfig, previous: list | None = None
) -> capital.Plan:
    scanned = capital.scanned_from_entries(previous or [])
    return capital.plan_import(CapitalFile(Path("t.csv"), "mapped", tuple(rows)), client, scanned)


def totals(entries: list, client: ClientConfig) -> dict[str, Decimal]:
    out: dict[str, Decimal] = defaultdict(Decimal)
    for entry in entries:
        assert sum(p.units.number for p in entry.postings) == 0, entry  # every entry balances
        for p in entry.postings:
            out[p.account] += p.units.number
    return out


def fee_parts(entries: list, client: ClientConfig) -> list[Decimal]:
    return [
        sum(
            (p.units.number for p in e.postings if p.account == client.accounts.capital_fees),
            Decimal(0),
        )
        for e in entries
    ]


def test_pro_rata_thirds_round_cumulatively(tmp_path: Path) -> None:
    client = capital_client(tmp_path)
    rows = [row(0, "payout", 100000)] + [
        row(i, "paydown", m) for i, m in ((1, 36667), (2, 36667), (3, 36666))
    ]
    result = plan(rows, client)
    assert fee_parts(result.entries, client) == [
        0,
        Decimal("33.33"),
        Decimal("33.34"),
        Decimal("33.33"),
    ]
    sums = totals(result.entries, client)
    assert sums[client.accounts.capital_loan] == 0
    assert sums[client.accounts.capital_fees] == Decimal("100.00")
    assert {e.meta["capital_split"] for e in result.entries[1:]} == {"pro-rata"}


def test_exact_split_columns_win_and_pro_rata_continues_from_them(tmp_path: Path) -> None:
    client = capital_client(tmp_path)
    rows = [
        row(0, "payout", 100000),
        row(1, "paydown", 55000, fee=7000),  # Stripe's own split: more fee than pro-rata
        row(2, "paydown", 55000),  # completes the loan: takes the rest of the fee
    ]
    result = plan(rows, client)
    assert fee_parts(result.entries, client)[1:] == [Decimal("70.00"), Decimal("30.00")]
    assert result.entries[1].meta["capital_split"] == "exact"
    assert totals(result.entries, client)[client.accounts.capital_loan] == 0


def test_a_reversal_undoes_exactly_the_paydown_it_reverses(tmp_path: Path) -> None:
    client = capital_client(tmp_path)
    rows = [
        row(0, "payout", 100000),
        row(1, "paydown", 333),
        row(2, "paydown", 1000),
        row(3, "paydown_reversal", 333),  # same amount as row 1: that one is undone
        row(4, "paydown_reversal", 1000, reversed_id="txn_00002"),
    ]
    result = plan(rows, client)
    fees = fee_parts(result.entries, client)
    assert fees[3] == -fees[1] and fees[4] == -fees[2]
    principal = [
        sum(p.units.number for p in e.postings if p.account == client.accounts.capital_loan)
        for e in result.entries
    ]
    assert principal[3] == -principal[1] and principal[4] == -principal[2]
    assert result.entries[3].meta["capital_reverses"] == "txn_00001"
    assert result.entries[4].meta["capital_reverses"] == "txn_00002"
    assert totals(result.entries, client)[client.accounts.capital_loan] == Decimal("-1000.00")


def test_a_cancelled_payout_lowers_what_is_owed(tmp_path: Path) -> None:
    client = capital_client(tmp_path)
    rows = [row(0, "payout", 100000), row(1, "payout_reversal", 50000), row(2, "paydown", 60000)]
    result = plan(rows, client)
    assert fee_parts(result.entries, client) == [0, 0, Decimal("100.00")]
    assert totals(result.entries, client)[client.accounts.capital_loan] == 0


def test_loan_state_reversal_without_a_known_paydown_is_pro_rata() -> None:
    state = LoanState.for_loan(LOAN)
    state.apply("paydown", 2200, state.fee_for_paydown(2200), None)
    assert state.fees == 200
    fee, undone = state.fee_for_reversal(1100, None)
    assert (fee, undone) == (100, None)  # no repayment of that size: by the ratio


# -- the invariant, for any loan and any sequence ----------------------------------------------


@st.composite
def loans_and_sequences(
    draw: st.DrawFn,
) -> tuple[LoanConfig, list[tuple[str, int, str | None]], int]:
    code = draw(st.sampled_from(["USD", "JPY", "BHD"]))
    advance = draw(st.integers(1, 10**8))
    fee = draw(st.integers(0, 10**7))
    owed = advance + fee
    cuts = sorted(draw(st.sets(st.integers(1, max(1, owed - 1)), max_size=12)) - {owed})
    paydowns = [b - a for a, b in zip([0, *cuts], [*cuts, owed], strict=True) if b > a]
    # Interleave reversals of earlier paydowns; each reversed amount is paid again at the end.
    sequence: list[tuple[str, int, str | None]] = []
    again: list[int] = []
    reversed_already: set[int] = set()
    for i, amount in enumerate(paydowns):
        sequence.append(("paydown", amount, None))
        if draw(st.booleans()) and draw(st.integers(0, 3)) == 0:
            j = draw(st.integers(0, i))
            if j not in reversed_already:
                reversed_already.add(j)
                # half of the reversals name the paydown, the others are found by amount
                ref = str(j) if draw(st.booleans()) else None
                sequence.append(("paydown_reversal", paydowns[j], ref))
                again.append(paydowns[j])
    sequence += [("paydown", amount, None) for amount in again]
    loan = LoanConfig(
        "flxln_1Prop",
        code,
        currency.to_decimal(advance, code),
        currency.to_decimal(fee, code),
    )
    split_at = draw(st.integers(0, len(sequence) + 1))
    return loan, sequence, split_at


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(loans_and_sequences())
def test_fee_parts_sum_to_the_fee_and_the_loan_is_repaid(
    tmp_path: Path, case: tuple[LoanConfig, list[tuple[str, int, str | None]], int]
) -> None:
    """For any loan and any paydowns (with reversals, over two imports) that repay it: the fee
    parts add up to the loan's fee and the liability returns to exactly zero."""
    loan, sequence, split_at = case
    client = capital_client(tmp_path, loans=(loan,))
    paydown_ids: dict[str, str] = {}
    rows = [row(0, "payout", currency.to_minor(loan.advance, loan.currency), loan)]
    for n, (kind, amount, ref) in enumerate(sequence, start=1):
        reversed_id = paydown_ids.get(ref) if ref is not None else None
        rows.append(row(n, kind, amount, loan, reversed_id=reversed_id))
        if kind == "paydown":
            paydown_ids.setdefault(str(len(paydown_ids)), rows[-1].txn_id or "")
    first = plan(rows[:split_at], client)
    second = plan(rows[split_at:], client, first.entries)
    entries = first.entries + second.entries
    assert len(entries) == len(rows)
    sums = totals(entries, client)
    fee = loan.fee
    assert sums[client.accounts.capital_fees] == fee
    assert sums[client.accounts.capital_loan] == 0
    assert sums[client.accounts.clearing] == -fee  # paid out the advance, repaid advance + fee
    # Each fee part lies between zero and its paydown (a reversal's between minus it and zero).
    for entry, r in zip(entries[1:], rows[1:], strict=True):
        part = fee_parts([entry], client)[0] * -capital.SIGN[r.kind]
        assert 0 <= part <= currency.to_decimal(r.magnitude, loan.currency)
