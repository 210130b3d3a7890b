"""Capital CSVs meet synced balance transactions: every paydown is booked once, in any order.

The real stripe SDK syncs from the simulator over HTTP; ledgers are checked with Beancount's
loader and ``bean-check``.
"""

from __future__ import annotations

import csv
import datetime
import io
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from beancount import loader
from beancount.core import data

from beancount_stripe import capital, currency, ledger
from beancount_stripe.cli import bean_check
from beancount_stripe.config import (
    CapitalConfig,
    ClientConfig,
    KeySource,
    LoanConfig,
    make_accounts,
)
from beancount_stripe.errors import InputFileError
from beancount_stripe.importer import BalanceTransactionImporter, CapitalImporter
from beancount_stripe.simulator import SimAccount, Simulator, World
from beancount_stripe.simulator.generator import History
from beancount_stripe.sync import fetch_client, sync_client

from ..conftest import make_account, tree_digest

ACCOUNT = "acct_1TestAcme00001"
KEY = "sk_test_1TestAcme00001Key0000"
NEW_YORK = ZoneInfo("America/New_York")
CUT = int(
    datetime.datetime(2025, 4, 1, tzinfo=NEW_YORK).timestamp()
)  # a month start for the client


@pytest.fixture(scope="module")
def full() -> SimAccount:
    return make_account(ACCOUNT, seed=11, key=KEY)


def financing(history: History) -> list[dict[str, Any]]:
    return [bt for bt in history.transactions if bt["type"].startswith("financing_")]


@pytest.fixture(scope="module")
def loan(full: SimAccount) -> LoanConfig:
    bts = financing(full.history)
    assert len(bts) >= 6 and sum(bt["type"] == "financing_paydown" for bt in bts) >= 4
    obj = full.history.objects[bts[0]["source"]]
    code = obj["currency"]
    return LoanConfig(
        obj["id"],
        currency.commodity(code),
        currency.to_decimal(obj["advance_amount"], code),
        currency.to_decimal(obj["fee_amount"], code),
        (obj["financing_offer"],),
    )


def world_of(account: SimAccount, until: int | None = None) -> World:
    history = account.history
    if until is not None:
        history = History(
            account.id,
            [bt for bt in history.transactions if bt["created"] < until],
            history.objects,
            history.payout_members,
        )
    sim_account = SimAccount(id=account.id, name=account.name, key=KEY, history=history)
    return World({account.id: sim_account})


@pytest.fixture
def sim(full: SimAccount) -> Iterator[Simulator]:
    with Simulator(world_of(full)) as s:
        yield s


@pytest.fixture
def client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sim: Simulator, loan: LoanConfig
) -> ClientConfig:
    monkeypatch.setenv("TEST_KEY_CAPITAL", KEY)
    base = tmp_path / "acme"
    base.mkdir()
    (base / "ledger.beancount").write_text(
        'option "title" "Acme"\ninclude "stripe.beancount"\ninclude "capital.beancount"\n'
    )
    return ClientConfig(
        id="acme",
        name="Acme",
        stripe_account=ACCOUNT,
        key=KeySource("env", "TEST_KEY_CAPITAL"),
        ledger=base / "ledger.beancount",
        output=base / "stripe.beancount",
        archive_dir=base / "archive",
        timezone="America/New_York",
        accounts=make_accounts("Acme"),
        api_base=sim.url,
        capital=CapitalConfig(loans=(loan,), output=base / "capital.beancount"),
    )


# -- CSVs made from the simulator's financing transactions ----------------------------------------


def _major(minor: int) -> str:
    return str(currency.to_decimal(minor, "usd"))


def _utc(ts: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(ts, datetime.UTC)


def export_csv(bts: list[dict[str, Any]], path: Path) -> Path:
    """The Dashboard balance export (ids, Excel-resaved dates), newest first."""
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["id", "Type", "Source", "Amount", "Fee", "Net", "Currency", "Created (UTC)"])
    for bt in sorted(bts, key=lambda b: -b["created"]):
        d = _utc(bt["created"])
        w.writerow(
            [
                bt["id"],
                bt["type"],
                bt["source"],
                _major(bt["amount"]),
                "0.00",
                _major(bt["net"]),
                bt["currency"],
                f"{d.month}/{d.day}/{d.year} {d.hour}:{d.minute:02d}",
            ]
        )
    path.write_text(out.getvalue())
    return path


FT_TYPES = {
    "financing_payout": ("payout", ""),
    "financing_paydown": ("payment", "automatic_withholding"),
    "financing_paydown_reversal": ("reversal", "collection_failure"),
    "financing_payout_reversal": ("reversal", "financing_cancellation"),
}


def financing_csv(bts: list[dict[str, Any]], loan: LoanConfig, path: Path) -> Path:
    """Financing transactions: no balance transaction ids, Stripe's own per-row split."""
    advance = currency.to_minor(loan.advance, "usd")
    fee_total = currency.to_minor(loan.fee, "usd")
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(
        [
            "id",
            "created_at",
            "type",
            "reason",
            "financing_offer",
            "advance_amount",
            "fee_amount",
            "total_amount",
            "currency",
        ]
    )
    for bt in bts:
        kind, reason = FT_TYPES[bt["type"]]
        magnitude = abs(bt["amount"])
        if bt["type"] in ("financing_paydown", "financing_paydown_reversal"):
            fee = (2 * magnitude * fee_total + advance + fee_total) // (2 * (advance + fee_total))
        else:
            fee = 0
        w.writerow(
            [
                "cptxn_" + bt["id"][4:],
                _utc(bt["created"]).strftime("%Y-%m-%d %H:%M:%S"),
                kind,
                reason,
                loan.aliases[0],
                _major(magnitude - fee),
                _major(fee),
                _major(magnitude),
                "usd",
            ]
        )
    path.write_text(out.getvalue())
    return path


# -- what "booked once" means ------------------------------------------------------------------


def load_clean(client: ClientConfig) -> list[data.Directive]:
    entries, errors, _ = loader.load_file(str(client.ledger))
    assert errors == [], [e.message for e in errors]
    return entries


def check_books(client: ClientConfig, account: SimAccount, *, split_all: bool = True) -> None:
    """Each financing BT's money is on the clearing account exactly once, each repayment has its
    fee part booked exactly once, the clearing account ties out with Stripe, bean-check agrees."""
    entries = load_clean(client)
    txns = [e for e in entries if isinstance(e, data.Transaction)]
    clearing = client.accounts.clearing
    fin = financing(account.history)

    money = [
        e
        for e in txns
        if "capital_for" not in e.meta
        and (
            str(e.meta.get("stripe_type", "")).startswith("financing_") or "capital_kind" in e.meta
        )
    ]
    amounts = sorted(
        sum(p.units.number for p in e.postings if p.account == clearing) for e in money
    )
    assert amounts == sorted(currency.to_decimal(bt["net"], bt["currency"]) for bt in fin)

    ids = Counter(str(e.meta["stripe_id"]) for e in txns if "stripe_id" in e.meta)
    assert all(n == 1 for n in ids.values())

    repayments = [
        bt for bt in fin if bt["type"] in ("financing_paydown", "financing_paydown_reversal")
    ]
    split = [
        e
        for e in money
        if "capital_kind" in e.meta and e.meta["capital_kind"].startswith("paydown")
    ]
    split += [e for e in txns if "capital_for" in e.meta]
    if split_all:
        assert len(split) == len(repayments)
        targets = Counter(e.meta.get("capital_for") for e in txns if "capital_for" in e.meta)
        assert all(n == 1 for n in targets.values())

    totals: dict[str, int] = {}
    for bt in account.history.transactions:
        totals[bt["currency"]] = totals.get(bt["currency"], 0) + bt["net"]
    booked: Counter[str] = Counter()
    for e in txns:
        for p in e.postings:
            if p.account == clearing:
                booked[p.units.currency] += currency.to_minor(p.units.number, p.units.currency)
    assert {c: v for c, v in booked.items() if v} == {c.upper(): v for c, v in totals.items() if v}


def liability(client: ClientConfig) -> Decimal:
    entries = load_clean(client)
    return sum(
        (
            p.units.number
            for e in entries
            if isinstance(e, data.Transaction)
            for p in e.postings
            if p.account == client.accounts.capital_loan
        ),
        Decimal(0),
    )


# -- the orders ----------------------------------------------------------------------------------


def test_import_after_sync_adds_only_the_fee_parts(
    client: ClientConfig, full: SimAccount, tmp_path: Path
) -> None:
    sync_client(client)
    source = export_csv(financing(full.history), tmp_path / "export.csv")
    result = capital.import_file(source, client)
    repayments = sum(
        bt["type"] in ("financing_paydown", "financing_paydown_reversal")
        for bt in financing(full.history)
    )
    assert (result.plan.booked, result.plan.split) == (0, repayments)
    assert result.plan.reconciled == len(financing(full.history)) - repayments
    check_books(client, full)
    ok, output, _totals = bean_check(client)
    assert ok, output

    before = tree_digest(client.ledger.parent)
    again = capital.import_file(source, client)
    assert (again.plan.booked, again.plan.split, again.changed_files) == (0, 0, [])
    report = sync_client(client)
    assert report.booked == []
    assert tree_digest(client.ledger.parent) == before

    statuses = capital.status_of(client)
    (status,) = statuses
    assert status.unsplit == 0
    assert currency.to_decimal(-status.principal_outstanding, "usd") == liability(client)


def test_import_before_sync_with_ids_then_sync_skips_them(
    client: ClientConfig, full: SimAccount, tmp_path: Path
) -> None:
    source = export_csv(financing(full.history), tmp_path / "export.csv")
    result = capital.import_file(source, client)
    assert result.plan.booked == len(financing(full.history))
    assert all("stripe_id" in e.meta for e in result.plan.entries)
    report = sync_client(client)
    assert not any(str(e.meta["stripe_type"]).startswith("financing_") for e in report.booked)
    check_books(client, full)
    again = capital.import_file(source, client)
    assert again.plan.already == len(result.file.rows) and again.changed_files == []


def test_import_without_ids_before_sync_is_matched_by_amount_and_date(
    client: ClientConfig, full: SimAccount, loan: LoanConfig, tmp_path: Path
) -> None:
    source = financing_csv(financing(full.history), loan, tmp_path / "ft.csv")
    result = capital.import_file(source, client)
    assert result.plan.booked == len(financing(full.history))
    assert not any("stripe_id" in e.meta for e in result.plan.entries)
    report = sync_client(client)
    assert not any(str(e.meta["stripe_type"]).startswith("financing_") for e in report.booked)
    check_books(client, full)
    ok, output, _totals = bean_check(client)
    assert ok, output
    before = tree_digest(client.ledger.parent)
    assert capital.import_file(source, client).changed_files == []
    assert sync_client(client).booked == []
    assert tree_digest(client.ledger.parent) == before


def test_twice_around_a_sync_in_two_styles(
    client: ClientConfig, full: SimAccount, loan: LoanConfig, tmp_path: Path
) -> None:
    bts = financing(full.history)
    early = [bt for bt in bts if bt["created"] < CUT]
    assert 0 < len(early) < len(bts)
    first = capital.import_file(financing_csv(early, loan, tmp_path / "early.csv"), client)
    assert first.plan.booked == len(early)
    sync_client(client)
    check_books(client, full, split_all=False)
    # The balance export lists everything, with ids: the early rows are already imported.
    second = capital.import_file(export_csv(bts, tmp_path / "all.csv"), client)
    assert second.plan.already == len(early)
    assert second.plan.split + second.plan.reconciled == len(bts) - len(early)
    check_books(client, full)
    before = tree_digest(client.ledger.parent)
    for source in (tmp_path / "early.csv", tmp_path / "all.csv"):
        assert capital.import_file(source, client).changed_files == []
    assert sync_client(client).booked == []
    assert tree_digest(client.ledger.parent) == before


def test_csv_between_a_partial_and_a_full_sync(
    client: ClientConfig, full: SimAccount, loan: LoanConfig, tmp_path: Path
) -> None:
    """Part of the loan synced, the CSV imported, then the rest synced."""
    with Simulator(world_of(full, until=CUT)) as early_sim:
        sync_client(replace(client, api_base=early_sim.url), now=CUT)
    source = financing_csv(financing(full.history), loan, tmp_path / "ft.csv")
    result = capital.import_file(source, client)
    synced = sum(bt["created"] < CUT for bt in financing(full.history))
    assert result.plan.split + result.plan.reconciled == synced
    assert result.plan.booked == len(financing(full.history)) - synced
    sync_client(client)
    check_books(client, full)


def test_beangulp_importers_agree(
    client: ClientConfig, full: SimAccount, loan: LoanConfig, tmp_path: Path
) -> None:
    """extract books the same as the CLI: Capital rows first, then the archive minus them."""
    capital_dir = client.ledger.parent / "capital"
    capital_dir.mkdir()
    source = financing_csv(financing(full.history), loan, capital_dir / "ft.csv")
    importer = CapitalImporter(client)
    assert importer.identify(str(source))
    assert not importer.identify(str(client.ledger))
    entries = importer.extract(str(source), [])
    assert len([e for e in entries if isinstance(e, data.Transaction)]) == len(
        financing(full.history)
    )
    # the same rows against a ledger that holds them: nothing
    text = ledger.format_entries(entries)
    existing, errors, _ = loader.load_string(
        "".join(
            f"2010-01-01 open {a}\n" for a in sorted(filter(None, vars(client.accounts).values()))
        )
        + text
    )
    assert errors == []
    assert importer.extract(str(source), existing) == []

    fetch_client(client)
    bt_importer = BalanceTransactionImporter(client)
    booked = []
    for month in sorted(client.archive_dir.glob("*.jsonl")):
        extracted = bt_importer.extract(str(month), existing)
        bt_importer.deduplicate(extracted, existing)
        booked += [e for e in extracted if not e.meta.get("__duplicate__")]
    kinds = Counter(str(e.meta.get("stripe_type")) for e in booked)
    assert not any(k.startswith("financing_") for k in kinds)
    assert len(booked) == len(full.history.transactions) - len(financing(full.history))


# -- refusals --------------------------------------------------------------------------------------


def test_an_unmatched_row_in_a_synced_month_is_refused(
    client: ClientConfig, full: SimAccount, loan: LoanConfig, tmp_path: Path
) -> None:
    sync_client(client)
    bts = financing(full.history)
    moved = dict(bts[-1], created=bts[-1]["created"] - 10 * 86400)  # date off by ten days
    source = financing_csv([*bts[:-1], moved], loan, tmp_path / "ft.csv")
    before = tree_digest(client.ledger.parent)
    with pytest.raises(InputFileError) as info:
        capital.import_file(source, client)
    message = str(info.value)
    assert f"row {len(bts) + 1}:" in message and "is fully synced" in message
    assert tree_digest(client.ledger.parent) == before


def test_a_row_contradicting_its_synced_transaction_is_refused(
    client: ClientConfig, full: SimAccount, tmp_path: Path
) -> None:
    sync_client(client)
    bts = financing(full.history)
    paydown = next(i for i, bt in enumerate(bts) if bt["type"] == "financing_paydown")
    wrong = dict(bts[paydown], amount=bts[paydown]["amount"] - 100, net=bts[paydown]["net"] - 100)
    rows = [*bts[:paydown], wrong, *bts[paydown + 1 :]]
    source = export_csv(rows, tmp_path / "export.csv")
    before = tree_digest(client.ledger.parent)
    with pytest.raises(InputFileError) as info:
        capital.import_file(source, client)
    assert f"the synced entry at {client.output}" in str(info.value)
    assert "row " in str(info.value)
    assert tree_digest(client.ledger.parent) == before
