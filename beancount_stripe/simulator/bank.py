"""A bank statement consistent with a simulated account's payouts (the demo's bank side).

One CSV per currency (``<currency>.csv``: Date, Description, Reference, Amount, Currency,
Balance), as a bank's export would look. Each payout that reached the bank is credited on its
arrival date or up to two business days later (a bank's lag; weekends and the given holidays
skipped); a failed payout is credited and then returned; a canceled one never appears; top-ups
and inbound transfers are debits or credits on their day. Payouts the bank has not posted by the
statement's end are still in flight. One payout (the first automatic one of ``cross_currency``
after ``cross_from``) is credited to the account of ``cross_to`` in that currency, converted:
its line cannot match its payout, and the matching must say why. About half the lines carry the
payout's trace id as their reference. Everything is derived from the history: same history,
same bytes.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

from .generator import History
from .money import minor_per_major

BANK_TYPES = ("topup", "topup_reversal", "inbound_transfer", "inbound_transfer_reversal")
HEADER = ("Date", "Description", "Reference", "Amount", "Currency", "Balance")


@dataclass(frozen=True)
class BankLine:
    date: dt.date
    description: str
    reference: str
    amount: Decimal
    currency: str  # upper-case


@dataclass(frozen=True)
class StatementSpec:
    """What the world YAML's ``bank_statement:`` says (every key optional)."""

    end: dt.date | None = None  # default: the day the last payout was created
    holidays: tuple[dt.date, ...] = ()
    cross_currency: str | None = None  # e.g. "eur": one such payout lands in ``cross_to``
    cross_to: str = "usd"
    cross_rate: Decimal = Decimal("1.0850")
    cross_from: dt.date = dt.date(2025, 6, 1)

    @classmethod
    def from_mapping(cls, spec: Mapping[str, Any]) -> StatementSpec:
        def day(v: Any) -> dt.date:
            return v if isinstance(v, dt.date) else dt.date.fromisoformat(str(v))

        return cls(
            end=day(spec["end"]) if spec.get("end") else None,
            holidays=tuple(sorted(day(h) for h in spec.get("holidays", []) or [])),
            cross_currency=str(spec["cross_currency"]).lower()
            if spec.get("cross_currency")
            else None,
            cross_to=str(spec.get("cross_to", "usd")).lower(),
            cross_rate=Decimal(str(spec.get("cross_rate", "1.0850"))),
            cross_from=day(spec.get("cross_from", "2025-06-01")),
        )


def _day(ts: int) -> dt.date:
    return dt.datetime.fromtimestamp(ts, dt.UTC).date()


def _major(minor: int, cur: str) -> Decimal:
    per = minor_per_major(cur)
    exp = Decimal(1).scaleb(-len(str(per)) + 1) if per > 1 else Decimal(1)
    return (Decimal(minor) / per).quantize(exp)


def _business(day: dt.date, holidays: Iterable[dt.date]) -> dt.date:
    off = set(holidays)
    while day.weekday() >= 5 or day in off:
        day += dt.timedelta(days=1)
    return day


def _after(day: dt.date, n: int, holidays: Iterable[dt.date]) -> dt.date:
    off = set(holidays)
    day = _business(day, off)
    while n:
        day += dt.timedelta(days=1)
        if day.weekday() < 5 and day not in off:
            n -= 1
    return day


def _draw(key: str, n: int) -> int:
    """A stable small number per object id (no RNG state: adding lines never shifts others)."""
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % n


def statement(history: History, spec: StatementSpec) -> dict[str, list[BankLine]]:
    """Bank lines per account currency (lower-case), oldest first."""
    payouts = sorted(
        (o for o in history.objects.values() if o.get("object") == "payout"),
        key=lambda o: (o["created"], o["id"]),
    )
    end = spec.end or (_day(payouts[-1]["created"]) if payouts else dt.date.max)
    by_id = {bt["id"]: bt for bt in history.transactions}
    cross_id = None
    if spec.cross_currency:
        cross_id = next(
            (
                o["id"]
                for o in payouts
                if o["currency"] == spec.cross_currency
                and o["automatic"]
                and o["status"] == "paid"
                and _day(o["created"]) >= spec.cross_from
            ),
            None,
        )
    lines: dict[str, list[BankLine]] = {}

    def add(cur: str, line: BankLine) -> None:
        if line.date <= end:
            lines.setdefault(cur, []).append(line)

    for po in payouts:
        if po["status"] == "canceled" or _day(po["created"]) > end:
            continue
        cur = po["currency"]
        amount = _major(int(po["amount"]), cur)
        trace = (po.get("trace_id") or {}).get("value") or ""
        ref = trace if _draw(po["id"], 2) == 0 else ""
        posted = _after(_day(po["arrival_date"]), _draw(po["id"] + "lag", 3), spec.holidays)
        what = "STRIPE PAYOUT" if po["automatic"] else po.get("description") or "STRIPE PAYOUT"
        if po["id"] == cross_id:
            converted = (amount * spec.cross_rate).quantize(Decimal("0.01"), ROUND_HALF_EVEN)
            desc = f"{what} {cur.upper()} {amount} @ {spec.cross_rate}"
            add(spec.cross_to, BankLine(posted, desc, trace, converted, spec.cross_to.upper()))
            continue
        add(cur, BankLine(posted, what, ref, amount, cur.upper()))
        if po["status"] == "failed":
            failed_on = _day(by_id[po["failure_balance_transaction"]]["created"])
            back = max(_after(posted, 1, spec.holidays), _business(failed_on, spec.holidays))
            add(cur, BankLine(back, f"RETURNED {what}", ref, -amount, cur.upper()))
    for bt in history.transactions:
        if bt["type"] not in BANK_TYPES:
            continue
        cur = bt["currency"]
        day = _business(_day(bt["created"]), spec.holidays)
        desc = f"STRIPE {bt['type'].replace('_', ' ').upper()} {bt['source']}"
        add(cur, BankLine(day, desc, "", -_major(int(bt["amount"]), cur), cur.upper()))
    for cur in lines:
        lines[cur].sort(key=lambda ln: (ln.date, ln.amount, ln.description))
    return lines


def write_statements(history: History, spec: StatementSpec, directory: Path) -> list[Path]:
    """Write ``<currency>.csv`` per account with a running balance; return the paths."""
    from beancount_stripe.atomic import write_atomic

    paths = []
    for cur, rows in sorted(statement(history, spec).items()):
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(HEADER)
        balance = Decimal(0)
        for ln in rows:
            balance += ln.amount
            writer.writerow(
                (ln.date.isoformat(), ln.description, ln.reference, ln.amount, ln.currency, balance)
            )
        path = directory / f"{cur}.csv"
        write_atomic(path, buf.getvalue())
        paths.append(path)
    return paths
