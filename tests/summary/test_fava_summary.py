"""The Fava page in a summary mode: summaries listed, their transactions from the archive, the
review queue still holds the `!` entries."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from fava.application import create_app

from beancount_stripe import summary
from beancount_stripe.config import BookingConfig
from beancount_stripe.sync import sync_client

from ..conftest import ClientFactory
from ..test_fava_ext import _fava_client_setup


def test_page_lists_summaries_and_their_transactions(
    make_client: ClientFactory, tmp_path: Path
) -> None:
    client, cfg = _fava_client_setup(make_client, tmp_path)
    cfg.write_text(cfg.read_text() + "    booking: {mode: daily}\n")
    client = dataclasses.replace(client, booking=BookingConfig(mode="daily"))
    report = sync_client(client)
    flagged = [e for e in report.booked if e.flag == "!"]
    assert flagged, "the history has entries to review"
    index = summary.read_index(client.archive_dir)
    app = create_app([str(client.ledger)], load=True)
    web = app.test_client()
    page = web.get("/acme-books/extension/Stripe/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'id="stripe-summaries"' in html
    newest = max(index.values(), key=lambda s: (s.date, s.key))
    assert f"^{newest.link}" in html
    for entry in flagged[:3]:  # the review queue still lists the `!` entries
        assert entry.meta["stripe_id"] in html
    listed = web.get(f"/acme-books/extension/Stripe/summary?ref={newest.link}")
    assert listed.status_code == 200
    body = listed.get_json()
    assert [t["id"] for t in body["transactions"]] == list(newest.ids)
    assert web.get("/acme-books/extension/Stripe/summary?ref=nope").status_code == 404
