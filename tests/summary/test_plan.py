"""The pure core of the summary modes: booked entries → summary entries, what waits, assertions."""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from beancount.core import data
from beancount.parser import printer

from beancount_stripe import booking, summary
from beancount_stripe.config import ClientConfig, KeySource, make_accounts

UTC = ZoneInfo("UTC")
DAY = 86400
T0 = int(datetime.datetime(2025, 3, 14, 10, tzinfo=UTC).timestamp())
CLIENT = ClientConfig(
    id="u",
    name="U",
    stripe_account="acct_1Unit",
    key=KeySource("env", "X"),
    ledger=__import__("pathlib").Path("/nonexistent/l.beancount"),
    output=__import__("pathlib").Path("/nonexistent/s.beancount"),
    archive_dir=__import__("pathlib").Path("/nonexistent/a"),
    accounts=make_accounts("U"),
)
ACC = CLIENT.accounts


def bt(n: int, created: int, amount: int, fee: int = 0, typ: str = "charge", **kw: Any) -> dict:
    out = {
        "id": f"txn_{n:04d}",
        "object": "balance_transaction",
        "type": typ,
        "reporting_category": {"payout": "payout"}.get(typ, "charge"),
        "created": created,
        "available_on": created + 2 * DAY,
        "amount": amount,
        "fee": fee,
        "net": amount - fee,
        "currency": "usd",
        "status": "available",
    }
    out.update(kw)
    return out


def run(bts: list[dict], mode: str, now: int, **kw: Any) -> summary.Plan:
    entries = booking.book_all(bts, CLIENT)
    return summary.plan(
        entries,
        {b["id"]: b for b in bts},
        mode=mode,
        tz=UTC,
        clearing=ACC.clearing,
        uncategorized=ACC.uncategorized,
        closed_before=now,
        **kw,
    )


def test_transaction_mode_is_untouched() -> None:
    bts = [bt(1, T0, 1000, 59), bt(2, T0 + 60, 500, 30)]
    p = run(bts, "transaction", T0 + 10 * DAY)
    assert p.entries == booking.book_all(bts, CLIENT) and not p.summarizing


def test_daily_sums_per_account_and_counts() -> None:
    bts = [bt(1, T0, 1000, 59), bt(2, T0 + 60, 500, 30), bt(3, T0 + DAY, 700, 10)]
    p = run(bts, "daily", T0 + 3 * DAY)
    assert [e.date.day for e in p.entries] == [14, 15]
    first = p.entries[0]
    assert first.meta[summary.SUMMARY_KEY] == "day-2025-03-14-usd"
    assert first.links == {"stripe-day-2025-03-14-usd"}
    assert first.meta[summary.COUNT_KEY] == 2
    assert (first.meta["stripe_first"], first.meta["stripe_last"]) == ("txn_0001", "txn_0002")
    by_account = {p.account: p.units.number for p in first.postings}
    assert by_account == {
        ACC.clearing: Decimal("14.11"),
        ACC.fees: Decimal("0.89"),
        ACC.revenue: Decimal("-15.00"),
    }
    assert first.postings[0].account == ACC.clearing
    assert p.new[0].ids == ("txn_0001", "txn_0002") and p.new[0].nets == {"usd": 1411}
    text = printer.format_entry(first)
    assert 'stripe_summary: "day-2025-03-14-usd"' in text and "stripe_count: 2" in text


def test_a_day_inside_the_overlap_waits() -> None:
    bts = [bt(1, T0, 1000), bt(2, T0 + DAY, 500)]
    day_end = int(datetime.datetime(2025, 3, 15, tzinfo=UTC).timestamp())
    p = run(bts, "daily", day_end)  # the 14th has just closed, the 15th has not
    assert [e.date.day for e in p.entries] == [14]
    assert [b["id"] for b in p.waiting] == ["txn_0002"]
    assert p.assertion_day(datetime.date(2025, 3, 20), UTC) == datetime.date(2025, 3, 15)


def test_review_entries_stay_their_own_entry() -> None:
    odd = bt(2, T0 + 60, 500, typ="brand_new_type")
    odd["reporting_category"] = "brand_new"
    p = run([bt(1, T0, 1000), odd], "daily", T0 + 5 * DAY)
    flagged = [e for e in p.entries if e.flag == "!"]
    assert [e.meta["stripe_id"] for e in flagged] == ["txn_0002"]
    assert summary.SUMMARY_KEY not in flagged[0].meta
    assert p.new[0].ids == ("txn_0001",)


def test_since_books_older_days_one_entry_each() -> None:
    bts = [bt(1, T0 - DAY, 1000), bt(2, T0, 500)]
    p = run(bts, "daily", T0 + 5 * DAY, since=datetime.date(2025, 3, 14))
    assert "stripe_id" in p.entries[0].meta and summary.SUMMARY_KEY not in p.entries[0].meta
    assert p.entries[1].meta[summary.SUMMARY_KEY] == "day-2025-03-14-usd"


def test_a_key_the_ledger_holds_gets_a_suffix() -> None:
    p = run([bt(1, T0, 1000)], "daily", T0 + 5 * DAY, taken={"day-2025-03-14-usd"})
    assert p.entries[0].meta[summary.SUMMARY_KEY] == "day-2025-03-14-usd-2"


def _payout(po: str, created: int, members: list[dict], own: dict | None, **kw: Any) -> dict:
    return {
        "id": po,
        "created": created,
        "currency": "usd",
        "automatic": True,
        "balance_transaction": own["id"] if own else None,
        "transactions": [{"id": m["id"]} for m in members],
        **kw,
    }


def test_payout_summary_holds_members_and_the_payout_itself() -> None:
    a, b = bt(1, T0, 1000, 59), bt(2, T0 + 60, 500, 30)
    po = bt(3, T0 + 3 * DAY, -1411, typ="payout", source="po_1X")
    later = bt(4, T0 + 4 * DAY, 800, 20)  # not in a payout yet: waits
    payouts = {"po_1X": _payout("po_1X", po["created"], [a, b], po)}
    p = run([a, b, po, later], "payout", T0 + 9 * DAY, payouts=payouts)
    (entry,) = p.entries
    assert entry.links == {"po_1X"} and entry.meta["stripe_id"] == "txn_0003"
    assert entry.meta["stripe_type"] == "payout" and entry.meta[summary.COUNT_KEY] == 3
    assert entry.date == datetime.date(2025, 3, 17)
    postings = [(p.account, p.units.number) for p in entry.postings]
    assert postings[-2:] == [(ACC.clearing, Decimal("-14.11")), (ACC.transit, Decimal("14.11"))]
    assert (ACC.clearing, Decimal("14.11")) in postings
    assert [w["id"] for w in p.waiting] == ["txn_0004"]
    assert p.new[0].nets == {"usd": 0}


def test_payout_mode_falls_back_to_daily_when_no_payout_will_settle() -> None:
    manual_bt = bt(2, T0 + DAY, -1000, typ="payout", source="po_1M")
    payouts = {
        "po_1M": {
            "id": "po_1M",
            "created": manual_bt["created"],
            "currency": "usd",
            "automatic": False,
            "transactions": None,
        },
    }
    p = run([bt(1, T0, 1000), manual_bt], "payout", T0 + 9 * DAY, payouts=payouts)
    assert [e.meta[summary.SUMMARY_KEY] for e in p.entries] == [
        "day-2025-03-14-usd",
        "day-2025-03-15-usd",
    ]
    assert not p.waiting


def test_expected_balances_subtract_what_is_booked_later_or_waits() -> None:
    a, b = bt(1, T0, 1000, 59), bt(2, T0 + 60, 500, 30)
    po = bt(3, T0 + 3 * DAY, -1411, typ="payout", source="po_1X")
    later = bt(4, T0 + 4 * DAY, 800, 20)
    payouts = {"po_1X": _payout("po_1X", po["created"], [a, b], po)}
    p = run([a, b, po, later], "payout", T0 + 9 * DAY, payouts=payouts)
    stripe = {"usd": 780}  # a+b+po net to 0; `later` is still in Stripe's balance
    cutoff = p.assertion_day(datetime.date(2025, 3, 20), UTC)
    assert cutoff == datetime.date(2025, 3, 18)
    # at the start of the 18th the ledger holds the payout summary (nets 0) only
    assert p.expected_balances([a, b, po, later], stripe, cutoff, UTC) == {"usd": 0}
    # at the start of the 16th the summary (dated the 17th) is not booked yet either
    assert p.expected_balances([a, b, po, later], stripe, datetime.date(2025, 3, 16), UTC) == {
        "usd": 0
    }


def test_summary_entries_are_valid_beancount() -> None:
    from beancount import loader

    bts = [bt(i, T0 + i * 3600, 1000 + i, 30) for i in range(1, 30)]
    p = run(bts, "daily", T0 + 9 * DAY)
    opens = "\n".join(
        f"2025-01-01 open {a}" for a in sorted({p.account for e in p.entries for p in e.postings})
    )
    text = opens + "\n\n" + "\n".join(printer.format_entry(e) for e in p.entries)
    entries, errors, _ = loader.load_string(text)
    assert errors == []
    assert (
        sum(int(e.meta[summary.COUNT_KEY]) for e in entries if isinstance(e, data.Transaction))
        == 29
    )
