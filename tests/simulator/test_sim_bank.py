"""The simulated bank statement agrees with the payouts the simulator serves."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from beancount_stripe import currency
from beancount_stripe.errors import ConfigError
from beancount_stripe.simulator import generate_history, load_world
from beancount_stripe.simulator.bank import StatementSpec, statement, write_statements


@pytest.fixture(scope="module")
def history():
    return generate_history(
        account_id="acct_1BankStatement01",
        seed=8,
        size=700,
        start=dt.date(2024, 1, 1),
        end=dt.date(2024, 12, 31),
        currencies=("usd", "eur"),
    )


def _day(ts: int) -> dt.date:
    return dt.datetime.fromtimestamp(ts, dt.UTC).date()


def test_each_payout_that_reached_the_bank_has_its_line(history) -> None:
    holidays = (dt.date(2024, 7, 4), dt.date(2024, 12, 25))
    spec = StatementSpec(holidays=holidays)
    lines = statement(history, spec)
    payouts = [o for o in history.objects.values() if o.get("object") == "payout"]
    end = max(_day(p["created"]) for p in payouts)
    all_lines = [ln for rows in lines.values() for ln in rows]
    assert all(ln.date <= end and ln.date.weekday() < 5 for ln in all_lines)
    assert not any(ln.date in holidays for ln in all_lines)
    deposits = {(ln.currency, ln.amount) for ln in all_lines if ln.amount > 0}
    in_flight = 0
    for p in payouts:
        amount = currency.to_decimal(p["amount"], p["currency"])
        arrival = _day(p["arrival_date"])
        line = [
            ln
            for ln in lines.get(p["currency"], [])
            if ln.amount == amount and arrival <= ln.date <= arrival + dt.timedelta(days=6)
        ]
        if p["status"] == "canceled":
            continue
        if arrival > end:
            in_flight += 1
            continue
        if p["status"] == "failed":
            assert any(ln.amount == -amount for ln in lines[p["currency"]]), p["id"]
        if arrival + dt.timedelta(days=6) <= end:
            assert line, f"{p['id']} reached the bank but has no line"
    assert in_flight >= 1, "the last payouts are still in flight at the statement's end"
    assert deposits


def test_one_payout_lands_in_another_currency_converted(history, tmp_path: Path) -> None:
    spec = StatementSpec(cross_currency="eur", cross_to="usd", cross_from=dt.date(2024, 3, 1))
    lines = statement(history, spec)
    crossed = [ln for ln in lines["usd"] if "@" in ln.description]
    assert len(crossed) == 1
    (ln,) = crossed
    assert ln.currency == "USD" and ln.reference, "the converted line carries the trace id"
    paths = write_statements(history, spec, tmp_path)
    assert [p.name for p in paths] == ["eur.csv", "usd.csv"]
    assert (
        paths[1]
        .read_text(encoding="utf-8")
        .startswith("Date,Description,Reference,Amount,Currency,Balance\n")
    )
    again = tmp_path / "again"
    write_statements(history, spec, again)
    assert (again / "usd.csv").read_bytes() == paths[1].read_bytes(), "same history, same bytes"
    total = sum(ln.amount for ln in lines["usd"])
    last = paths[1].read_text(encoding="utf-8").splitlines()[-1].split(",")[-1]
    assert Decimal(last) == total


def test_world_yaml_bank_statement_errors_name_the_key(tmp_path: Path) -> None:
    path = tmp_path / "world.yaml"
    path.write_text(
        """accounts:
  - id: acct_1Bad
    key: sk_test_x
    history: {seed: 1, size: 10}
    bank_statement: {cross_rate: lots}
""",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=r"accounts\[0\]\.bank_statement"):
        load_world(path)
