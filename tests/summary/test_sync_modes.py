"""End to end in summary modes: the real SDK over HTTP against the simulator, Beancount loads."""

from __future__ import annotations

import dataclasses
import datetime
import re
import subprocess
import sys
from pathlib import Path

import pytest
from beancount.core import data

from beancount_stripe import ledger, summary
from beancount_stripe.config import BookingConfig, ClientConfig
from beancount_stripe.errors import LedgerError
from beancount_stripe.simulator import World
from beancount_stripe.sync import sync_client

from ..conftest import ClientFactory, tree_digest
from ..test_sync import clearing_totals, expected_totals, load_clean


def _client(make_client: ClientFactory, mode: str, **kw: object) -> ClientConfig:
    return dataclasses.replace(make_client(), booking=BookingConfig(mode=mode, **kw))  # type: ignore[arg-type]


def covered(entries: list[data.Directive], client: ClientConfig) -> list[str]:
    """Every BT id the ledger books: own entries' stripe_id, summaries' ids from the index."""
    index = summary.read_index(client.archive_dir)
    out: list[str] = []
    for e in entries:
        if not isinstance(e, data.Transaction):
            continue
        key = e.meta.get(summary.SUMMARY_KEY)
        if key is not None:
            ids = index[key].ids
            assert int(e.meta[summary.COUNT_KEY]) == len(ids)
            out.extend(ids)
        elif "stripe_id" in e.meta:
            out.append(e.meta["stripe_id"])
    return out


def waiting_nets(client: ClientConfig, booked: set[str], world: World) -> dict[str, int]:
    out: dict[str, int] = {}
    for bt in world.accounts[client.stripe_account].history.transactions:
        if bt["id"] not in booked:
            out[bt["currency"]] = out.get(bt["currency"], 0) + bt["net"]
    return out


@pytest.mark.parametrize("mode", ["daily", "payout"])
def test_summary_mode_books_each_transaction_once_and_ties_out(
    mode: str, world: World, make_client: ClientFactory, tmp_path: Path
) -> None:
    client = _client(make_client, mode)
    history = world.accounts[client.stripe_account].history.transactions
    report = sync_client(client)
    entries = load_clean(client.ledger)
    ids = covered(entries, client)
    assert len(ids) == len(set(ids)), "a transaction was booked twice"
    summaries = [
        e for e in entries if isinstance(e, data.Transaction) and summary.SUMMARY_KEY in e.meta
    ]
    assert summaries and len(summaries) < len(history) * 0.8
    own = [
        e for e in entries if isinstance(e, data.Transaction) and summary.SUMMARY_KEY not in e.meta
    ]
    assert all(e.flag == "!" for e in own), "only review entries stay their own entry"
    # every transaction is booked or waits in the archive; booked + waiting = Stripe's balance
    if mode == "daily":
        assert set(ids) == {bt["id"] for bt in history}
    else:
        assert set(ids) <= {bt["id"] for bt in history}
    waiting = waiting_nets(client, set(ids), world)
    totals = clearing_totals(entries, client.accounts.clearing)
    from beancount_stripe import currency

    got = {
        c: currency.to_minor(v, c.lower()) + waiting.pop(c.lower(), 0) for c, v in totals.items()
    }
    got.update({c.upper(): v for c, v in waiting.items()})
    want = {
        c: currency.to_minor(v, c.lower())
        for c, v in expected_totals(world, client.stripe_account).items()
    }
    assert {c: v for c, v in got.items() if v} == want
    assert report.assertions, "the balance assertion ties out in a summary mode too"
    if mode == "payout":
        links = {link for e in summaries for link in e.links}
        assert any(link.startswith("po_") for link in links)
    else:
        assert all(
            re.fullmatch(r"stripe-day-\d{4}-\d\d-\d\d-[a-z]{3}", next(iter(e.links)))
            for e in summaries
        )
    # twice = no change
    before = tree_digest(tmp_path)
    again = sync_client(client)
    assert again.booked == [] and tree_digest(tmp_path) == before
    exe = Path(sys.executable).with_name("bean-check")
    proc = subprocess.run([str(exe), str(client.ledger)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _entry_blocks(text: str) -> list[str]:
    return text.split("\n\n")


def test_deleted_summary_entry_is_booked_again(make_client: ClientFactory) -> None:
    client = _client(make_client, "daily")
    sync_client(client)
    text = client.output.read_text()
    blocks = _entry_blocks(text)
    victim = next(b for b in blocks if "stripe_summary:" in b)
    key = re.search(r'stripe_summary: "([^"]+)"', victim).group(1)  # type: ignore[union-attr]
    client.output.write_text(text.replace(victim + "\n\n", ""))
    assert key not in ledger.scan(client.ledger).summaries
    report = sync_client(client)
    assert len(report.booked) == 1
    assert report.booked[0].meta[summary.SUMMARY_KEY] == key
    entries = load_clean(client.ledger)
    ids = covered(entries, client)
    assert len(ids) == len(set(ids))
    assert sync_client(client).booked == []


def test_index_lost_refuses_rather_than_double_book(make_client: ClientFactory) -> None:
    client = _client(make_client, "daily")
    sync_client(client)
    before = client.output.read_text()
    summary.index_path(client.archive_dir).unlink()
    with pytest.raises(LedgerError, match="summary index"):
        sync_client(client)
    assert client.output.read_text() == before


def test_switching_mode_from_a_date_never_rebooks(make_client: ClientFactory) -> None:
    """Transaction mode first; then daily from a date on: nothing booked is booked again."""
    plain = make_client()
    history = sync_client(plain)
    assert history.booked
    # drop the entries of the last months, as if they were not synced yet
    since = datetime.date(2025, 5, 1)
    text = plain.output.read_text()
    kept = [
        b
        for b in _entry_blocks(text)
        if not re.match(r"\d{4}-\d\d-\d\d [*!]", b) or b[:10] < "2025-04-15"
    ]
    plain.output.write_text("\n\n".join(kept) + "\n")
    switched = dataclasses.replace(plain, booking=BookingConfig(mode="daily", since=since))
    report = sync_client(switched)
    entries = load_clean(switched.ledger)
    ids = covered(entries, switched)
    assert len(ids) == len(set(ids)), "a transaction was booked twice"
    new = report.booked
    assert any(summary.SUMMARY_KEY in e.meta for e in new)
    for e in new:  # before `since`: one entry each; from it on: summaries or review entries
        if e.date < since:
            assert summary.SUMMARY_KEY not in e.meta
        else:
            assert summary.SUMMARY_KEY in e.meta or e.flag == "!"
    # and back to transaction mode: the summaries stay, nothing is booked again
    back = dataclasses.replace(plain, booking=BookingConfig())
    assert sync_client(back).booked == []


def test_importer_marks_what_summaries_hold_as_duplicates(make_client: ClientFactory) -> None:
    """beangulp's extract (Fava's Import page) books nothing a summary entry already holds."""
    from beancount import loader

    from beancount_stripe import archive
    from beancount_stripe.importer import DUPLICATE, BalanceTransactionImporter

    client = _client(make_client, "daily")
    sync_client(client)
    existing, errors, _ = loader.load_file(str(client.ledger))
    assert not errors
    importer = BalanceTransactionImporter(client)
    summarized = 0
    for _m, path in archive.month_files(client.archive_dir):
        entries = importer.extract(str(path), existing)
        importer.deduplicate(entries, existing)
        for e in entries:
            target = e.meta.get(DUPLICATE)
            assert target, f"{e.meta['stripe_id']} would be booked twice"
            summarized += summary.SUMMARY_KEY in target.meta
    assert summarized > 0
