"""The history generator: deterministic, complete, valid amounts, balances that add up."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from beancount_stripe.simulator import (
    ALL_TYPES,
    History,
    TransactionIndex,
    balance,
    generate_history,
    load_transactions,
)
from beancount_stripe.simulator.generator import REMOVED_2024
from beancount_stripe.simulator.money import (
    THREE_DECIMAL,
    TWO_DECIMAL_COMPAT,
    ZERO_DECIMAL_PAYOUTS,
)

from .conftest import assert_valid_bt, category_map, latest_enum, type_universe

START, END = dt.date(2024, 1, 1), dt.date(2026, 10, 31)
MIXES = [
    ("usd",),
    ("usd", "eur"),
    ("jpy", "krw", "usd"),
    ("bhd", "kwd", "usd"),
    ("huf", "twd", "isk", "ugx"),
    ("jod", "omr", "tnd", "clp", "vnd"),
]


def gen(seed: int = 7, size: int = 300, currencies=("usd", "eur"), **kw: Any) -> History:
    kw.setdefault("start", START)
    kw.setdefault("end", END)
    return generate_history(
        account_id=kw.pop("account_id", "acct_1GenTest0000001"),
        seed=seed,
        size=size,
        currencies=currencies,
        **kw,
    )


def quantum(currency: str) -> int:
    if currency in TWO_DECIMAL_COMPAT:
        return 100
    if currency in THREE_DECIMAL:
        return 10
    return 1


def net_by_currency(bts: list[dict[str, Any]]) -> Counter[str]:
    totals: Counter[str] = Counter()
    for bt in bts:
        totals[bt["currency"]] += bt["net"]
    return totals


# --- determinism --------------------------------------------------------------------------------


def test_same_seed_same_history_and_different_seed_differs() -> None:
    a, b = gen(seed=5), gen(seed=5)
    assert a == b
    assert json.dumps(a.transactions) == json.dumps(b.transactions)
    assert a.objects == b.objects and a.payout_members == b.payout_members
    c = gen(seed=6)
    assert [t["id"] for t in c.transactions] != [t["id"] for t in a.transactions]
    assert [t["amount"] for t in c.transactions] != [t["amount"] for t in a.transactions]


def test_ids_are_unique_within_and_across_accounts() -> None:
    a = gen(seed=1, account_id="acct_1GenTestAAAA0001")
    b = gen(seed=1, account_id="acct_1GenTestBBBB0002")
    ids_a = [t["id"] for t in a.transactions] + list(a.objects)
    ids_b = [t["id"] for t in b.transactions] + list(b.objects)
    assert len(ids_a) == len(set(ids_a))
    assert not set(ids_a) & set(ids_b)
    assert all(t["id"].startswith("txn_") and len(t["id"]) == 28 for t in a.transactions)


# --- coverage -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seed", "size", "currencies", "end"),
    [
        (1, 200, ("usd",), END),
        (2, 200, ("jpy", "krw", "usd"), dt.date(2024, 1, 1)),  # one single day
        (3, 250, ("bhd", "kwd", "usd"), dt.date(2024, 2, 15)),
        (4, 1200, ("usd", "eur"), END),
        (5, 201, ("huf", "twd", "isk", "ugx"), END),
    ],
)
def test_every_type_and_quirk_appears(seed: int, size: int, currencies, end: dt.date) -> None:
    h = gen(seed=seed, size=size, currencies=currencies, end=end)
    bts = h.transactions
    assert len(bts) == size
    assert {t["type"] for t in bts} >= type_universe()
    assert set(ALL_TYPES) == type_universe()
    pairs = {(t["type"], t["reporting_category"]) for t in bts}
    for category in ("dispute", "dispute_reversal", "other_adjustment"):
        assert ("adjustment", category) in pairs
    assert ("refund", "partial_capture_reversal") in pairs
    assert any(t["type"] == "refund" and t["fee"] < 0 for t in bts), "legacy negative fee"
    assert any(t["exchange_rate"] is not None for t in bts), "an FX charge"
    assert any(t["type"] == "payout" and not h.objects[t["source"]]["automatic"] for t in bts)
    per_second = Counter(t["created"] for t in bts)
    assert max(per_second.values()) >= 3, "a same-second cluster"
    assert any(t["created"] % 86400 == 0 for t in bts), "a BT at exactly UTC midnight"


def test_realistic_rows() -> None:
    h = gen(seed=11, size=600)
    bts = h.transactions
    disputes = [
        t for t in bts if t["reporting_category"] == "dispute" and t["type"] == "adjustment"
    ]
    assert disputes
    for t in disputes:
        assert t["amount"] < 0 and t["fee"] == 1500
        assert t["fee_details"] == [
            {
                "amount": 1500,
                "application": None,
                "currency": t["currency"],
                "description": "Dispute fee",
                "type": "stripe_fee",
            }
        ]
        charge = h.objects[t["source"]]["charge"]
        assert t["description"] == f"Chargeback withdrawal for {charge}"
    for t in bts:
        if t["type"] == "refund":
            charge = h.objects[h.objects[t["source"]]["charge"]]
            want = "REFUND FOR CHARGE"
            if charge["description"]:
                want += f" ({charge['description']})"
            assert t["description"] == want
        if t["type"] == "payout":
            assert t["description"] in ("STRIPE PAYOUT", "INSTANT PAYOUT") and t["amount"] < 0
            assert h.objects[t["source"]]["destination"].startswith("ba_")
        if t["type"] == "charge" and t["amount"] > 0:
            kinds = {f["type"] for f in t["fee_details"]}
            assert "stripe_fee" in kinds and kinds <= {"stripe_fee", "tax", "application_fee"}
    capital = {t["description"] for t in bts if t["type"] == "financing_paydown"}
    assert any(d.startswith("Withheld funds from ch_") and "flex loan flxln_" in d for d in capital)
    assert any(
        t["type"] == "charge" and any(f["type"] == "tax" for f in t["fee_details"]) for t in bts
    )


def test_reporting_categories_are_plausible() -> None:
    known, by_type = category_map()
    known |= {"obligation"}
    h = gen(seed=12, size=800, currencies=("usd", "eur"))
    for t in h.transactions:
        assert t["reporting_category"] in known, t
        listed = by_type.get(t["type"])
        if listed is not None and t["reporting_category"] != "network_cost":
            assert t["reporting_category"] in listed, (t["type"], t["reporting_category"])


def test_types_outside_the_enum_are_only_the_known_extras() -> None:
    h = gen(seed=13, size=400)
    extras = {t["type"] for t in h.transactions} - latest_enum()
    assert extras and extras <= type_universe() - latest_enum()


def test_removed_types_sit_before_their_removal_when_the_history_allows() -> None:
    h = gen(seed=14, size=400)
    cutoff = int(dt.datetime(2024, 4, 10, tzinfo=dt.UTC).timestamp())
    removed = [t for t in h.transactions if t["type"] in REMOVED_2024]
    assert {t["type"] for t in removed} == set(REMOVED_2024)
    assert all(t["created"] <= cutoff for t in removed)
    added_2026 = [t for t in h.transactions if t["type"] == "tax_fund"]
    assert added_2026 and all(t["created"] >= cutoff for t in added_2026)


# --- amounts and balances -------------------------------------------------------------------------


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), mix=st.sampled_from(MIXES), size=st.integers(1, 260))
def test_amounts_are_valid_per_currency_and_add_up(seed: int, mix, size: int) -> None:
    h = gen(seed=seed, size=size, currencies=mix)
    assert len(h.transactions) == size
    for t in h.transactions:
        q = quantum(t["currency"])
        assert t["currency"] == t["currency"].lower() and t["currency"] in mix
        assert t["net"] == t["amount"] - t["fee"]
        assert t["fee"] == sum(f["amount"] for f in t["fee_details"])
        for value in (t["amount"], t["fee"], t["net"], *(f["amount"] for f in t["fee_details"])):
            assert isinstance(value, int) and value % q == 0, (t, q)
        if t["type"] == "payout" and t["currency"] in ZERO_DECIMAL_PAYOUTS:
            assert t["amount"] % 100 == 0
            assert h.objects[t["source"]]["amount"] % 100 == 0
    created = [t["created"] for t in h.transactions]
    assert created == sorted(created)


def test_every_generated_bt_validates_against_the_schema() -> None:
    for mix in MIXES:
        for t in gen(seed=21, size=260, currencies=mix).transactions:
            assert_valid_bt(t)


@pytest.mark.parametrize("mix", MIXES)
def test_balance_available_plus_pending_is_sum_of_net(mix) -> None:
    h = gen(seed=31, size=500, currencies=mix)
    index = TransactionIndex(h.transactions)
    created = sorted(t["created"] for t in h.transactions)
    for now in (created[len(created) // 3], created[-1] - 86400, created[-1] + 10 * 86400):
        visible = [t for t in h.transactions if t["created"] <= now]
        b = balance(h, now)
        assert b["object"] == "balance" and b["livemode"] is False
        totals = net_by_currency(visible)
        avail = {x["currency"]: x["amount"] for x in b["available"]}
        pend = {x["currency"]: x["amount"] for x in b["pending"]}
        for cur in set(totals) | set(avail):
            assert avail.get(cur, 0) + pend.get(cur, 0) == totals.get(cur, 0)
            want = sum(
                t["net"] for t in visible if t["currency"] == cur and t["available_on"] <= now
            )
            assert avail.get(cur, 0) == want
        fast_avail, fast_pend = index.balance_sums(now)
        assert {c: v for c, v in fast_avail.items() if c in avail} == avail
        assert {c: v for c, v in fast_pend.items() if c in pend} == pend


def test_balance_mostly_stays_non_negative() -> None:
    h = gen(seed=41, size=1200, currencies=("usd", "eur"))
    running: Counter[str] = Counter()
    negative = 0
    for t in h.transactions:
        running[t["currency"]] += t["net"]
        negative += running[t["currency"]] < 0
    assert negative / len(h.transactions) < 0.05


def test_automatic_payouts_sweep_exactly_their_members() -> None:
    h = gen(seed=51, size=900, currencies=("usd", "huf"))
    by_id = {t["id"]: t for t in h.transactions}
    seen: set[str] = set()
    assert len(h.payout_members) > 20
    for po_id, members in h.payout_members.items():
        payout = h.objects[po_id]
        own = by_id[members[-1]]
        assert payout["automatic"] is True and payout["balance_transaction"] == own["id"]
        assert own["type"] == "payout" and own["source"] == po_id
        swept = [by_id[m] for m in members[:-1]]
        assert sum(t["net"] for t in swept) == payout["amount"] == -own["amount"]
        for t in swept:
            assert t["currency"] == payout["currency"]
            assert t["available_on"] <= payout["created"] and t["created"] <= payout["created"]
            assert t["id"] not in seen
            seen.add(t["id"])
    statuses = Counter(h.objects[p]["status"] for p in h.payout_members)
    assert statuses["paid"] > 0
    failed = [t for t in h.transactions if t["type"] in ("payout_failure", "payout_cancel")]
    for t in failed:
        payout = h.objects[t["source"]]
        assert payout["failure_balance_transaction"] == t["id"]
        assert t["amount"] == payout["amount"] and t["reporting_category"] == "payout_reversal"


# --- extend ---------------------------------------------------------------------------------------


def test_extend_adds_only_newer_transactions_deterministically() -> None:
    a, b = gen(seed=61, size=250), gen(seed=61, size=250)
    before = [dict(t) for t in a.transactions]
    newest = a.newest_created
    added = a.extend(40)
    assert len(added) == 40 and a.transactions[: len(before)] == before
    assert a.transactions[len(before) :] == added
    assert all(t["created"] > newest for t in added)
    assert len({t["id"] for t in a.transactions}) == len(a.transactions)
    assert b.extend(40) == added
    until = dt.datetime.fromtimestamp(a.newest_created + 30 * 86400, dt.UTC)
    more = a.extend(25, until=until)
    assert len(more) == 25 and all(added[-1]["created"] < t["created"] for t in more)
    assert all(t["created"] <= until.timestamp() for t in more)
    for t in more:
        assert_valid_bt(t)
    with pytest.raises(ValueError):
        a.extend(1, until=dt.datetime(2020, 1, 1))


def test_extend_keeps_payouts_reconciling() -> None:
    h = gen(seed=62, size=300, end=dt.date(2024, 6, 30))
    end = dt.datetime(2024, 9, 30, tzinfo=dt.UTC)
    h.extend(200, until=end)
    by_id = {t["id"]: t for t in h.transactions}
    cutoff = int(dt.datetime(2024, 7, 1, tzinfo=dt.UTC).timestamp())
    late = [p for p in h.payout_members if h.objects[p]["created"] >= cutoff]
    assert late
    for po_id in h.payout_members:
        members = h.payout_members[po_id]
        assert sum(by_id[m]["net"] for m in members[:-1]) == h.objects[po_id]["amount"]


# --- fixtures -----------------------------------------------------------------------------------


def test_fixture_files_in_every_shape_give_the_same_history(tmp_path: Path) -> None:
    src = gen(seed=71, size=120)
    bts = [dict(t) for t in src.transactions]
    first = dict(bts[0])
    first["source"] = src.objects[first["source"]]  # an expanded source, as saved with expand
    bts[0] = first
    envelope = tmp_path / "list.json"
    envelope.write_text(
        json.dumps(
            {
                "object": "list",
                "url": "/v1/balance_transactions",
                "has_more": False,
                "data": bts[::-1],
            }
        )
    )
    array = tmp_path / "array.json"
    array.write_text(json.dumps(bts))
    lines = tmp_path / "lines.jsonl"
    lines.write_text("\n".join(json.dumps(t) for t in bts) + "\n")
    histories = [
        History.from_transactions("acct_1Fixture00000001", load_transactions(p))
        for p in (envelope, array, lines)
    ]
    for h in histories:
        assert [t["id"] for t in h.transactions] == [t["id"] for t in histories[0].transactions]
        assert h.transactions[0]["source"] == src.transactions[0]["source"]
        assert src.transactions[0]["source"] in h.objects
        assert net_by_currency(h.transactions) == net_by_currency(src.transactions)
    extended = histories[0].extend(10)
    assert len(extended) == 10
    assert not {t["id"] for t in extended} & {t["id"] for t in src.transactions}
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "txn_1", "created": 1}\nnot json\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:2"):
        load_transactions(bad)
