"""The Stripe page in a real browser (Debian's chromium through Playwright) against a real
`fava` process and the simulator: no console errors, Accept removes a row, Sync now books the
new activity. Screenshots of each section are saved beside the test's files."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from beancount_stripe import sync_state
from beancount_stripe.simulator import World
from beancount_stripe.sync import sync_client

from .conftest import ClientFactory
from .test_fava_browser import CHROMIUM, _require_chromium, running_fava

pytestmark = pytest.mark.slow
SECTIONS = ("stripe-connection", "stripe-review", "stripe-payouts", "stripe-charts")
SHOTS = os.environ.get("BEANCOUNT_STRIPE_SHOTS")  # keep the screenshots in this folder


@pytest.fixture
def stripe_page(
    make_client: ClientFactory, tmp_path: Path, world: World
) -> Iterator[tuple[str, Any]]:
    _require_chromium()
    client = make_client()
    client.ledger.parent.mkdir(parents=True, exist_ok=True)
    cfg = tmp_path / "clients.yaml"
    cfg.write_text(
        f"clients:\n  - id: acme\n    name: Acme\n    stripe_account: {client.stripe_account}\n"
        f"    key: env:{client.key.ref}\n    ledger: {client.ledger}\n"
        f"    timezone: {client.timezone}\n    api_base: {client.api_base}\n"
    )
    client.ledger.write_text(
        'option "title" "Acme Books"\noption "operating_currency" "USD"\n'
        '2024-01-01 custom "fava-extension" "beancount_stripe.fava_ext" '
        f"\"{{'config': '{cfg}', 'client': 'acme'}}\"\n"
        'include "stripe.beancount"\n'
    )
    history = world.accounts[client.stripe_account].history.transactions
    sync_client(client, via="cron", now=max(bt["created"] for bt in history) + 3600)
    with running_fava(client.ledger) as url:
        yield url, client


def test_stripe_page_in_the_browser(
    stripe_page: tuple[str, Any], tmp_path: Path, world: World
) -> None:
    from playwright.sync_api import sync_playwright

    url, client = stripe_page
    shots = Path(SHOTS) if SHOTS else tmp_path / "shots"
    shots.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{url}/acme-books/extension/Stripe/")
        page.wait_for_selector("#stripe-connection")
        page.wait_for_selector("#stripe-charts svg", timeout=20_000)  # Fava drew its charts
        # Fava's article scrolls on its own: a viewport as tall as the page keeps the
        # element screenshots where the elements are.
        height = page.evaluate("document.getElementById('stripe-page').scrollHeight")
        page.set_viewport_size({"width": 1400, "height": int(height) + 400})
        for section in SECTIONS:
            page.locator(f"#{section}").screenshot(path=str(shots / f"{section}.png"))
        page.screenshot(path=str(shots / "page.png"), full_page=True)

        # Accept the newest entry under review: it leaves the queue, and stays gone on reload.
        first = page.locator(".stripe-row").first
        txn = first.get_attribute("data-stripe-id")
        count = page.locator(".stripe-row").count()
        first.locator(".stripe-accept").click()
        page.wait_for_selector(f'[data-stripe-id="{txn}"]', state="detached")
        page.reload()
        page.wait_for_selector("#stripe-review")
        assert page.locator(f'[data-stripe-id="{txn}"]').count() == 0
        assert page.locator(".stripe-row").count() == count - 1
        accepted = rf'^\d{{4}}-\d\d-\d\d \* .*\n  stripe_id: "{txn}"'
        assert re.search(accepted, client.output.read_text(), re.M)

        # Sync now: new activity at Stripe is booked, and the page shows it after the reload.
        new = world.add_activity(client.stripe_account, 30)
        page.click("#stripe-sync-now")
        page.wait_for_function(
            "document.querySelector('#stripe-last-sync')?.textContent.includes('via fava')",
            timeout=60_000,
        )
        last = sync_state.last_run(client)
        assert last is not None and last.via == "fava" and last.entries_added > 0
        text = page.inner_text("#stripe-last-sync")
        assert f"{last.entries_added} entries added" in text
        booked = client.output.read_text()
        flagged_new = [
            bt["id"]
            for bt in new
            if re.search(rf'^\d{{4}}-\d\d-\d\d ! .*\n  stripe_id: "{bt["id"]}"', booked, re.M)
        ]
        for txn_id in flagged_new:
            assert page.locator(f'[data-stripe-id="{txn_id}"]').count() == 1
        page.locator("#stripe-connection").screenshot(path=str(shots / "after-sync.png"))
        browser.close()
    assert errors == [], errors
    for name in (*SECTIONS, "after-sync"):
        assert (shots / f"{name}.png").stat().st_size > 1000


def test_example_ledgers_in_the_browser(tmp_path: Path) -> None:
    """All three example clients in one Fava: every section, Capital and the firm view."""

    from playwright.sync_api import sync_playwright

    from .conftest import copy_examples

    _require_chromium()
    copy_examples(tmp_path)
    ledgers = [
        str(tmp_path / "example-ledger" / c / "ledger.beancount")
        for c in ("acme", "kyoto-tea", "gulf-trading")
    ]
    shots = Path(SHOTS) if SHOTS else tmp_path / "shots"
    shots.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    with running_fava(*ledgers, read_only=True) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{url}/acme-coffee-roasters/extension/Stripe/")
        page.wait_for_selector("#stripe-charts svg", timeout=20_000)
        assert page.locator("#stripe-sync-now").count() == 0  # --read-only: no buttons
        height = page.evaluate("document.getElementById('stripe-page').scrollHeight")
        page.set_viewport_size({"width": 1400, "height": int(height) + 400})
        for section in (*SECTIONS, "stripe-capital", "stripe-firm"):
            page.locator(f"#{section}").screenshot(path=str(shots / f"example-{section}.png"))
        assert "flxln_18CWiQCQ0exodBPO2rtX3Pf4" in page.inner_text("#stripe-capital")
        # a payout opens onto the transactions it settled (read-only mode allows it: GET)
        payout = page.locator(".stripe-payout-txns").first
        settled = int(payout.locator("summary").inner_text())
        payout.locator("summary").click()
        page.wait_for_selector(".stripe-payout-txns[open] tbody tr", timeout=20_000)
        assert payout.locator("tbody tr").count() == settled
        assert "txn_" in payout.locator("tbody").inner_text()
        payout.screenshot(path=str(shots / "example-payout-drilldown.png"))
        page.click("#stripe-firm >> text=Kyoto Tea House")
        page.wait_for_selector("text=acct_1KyotoTeaHouse01", timeout=20_000)
        assert "/kyoto-tea-house/extension/Stripe/" in page.url
        browser.close()
    assert errors == [], errors
