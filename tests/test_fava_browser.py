"""Fava in a real headless browser (Debian's chromium through Playwright): the synced books and
the Import page listing this client's inbox, never its archive."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from beancount_stripe import archive
from beancount_stripe.sync import sync_client

from .conftest import ClientFactory

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.slow


def _require_chromium() -> None:
    if CHROMIUM.exists():
        return
    if os.environ.get("CI"):
        pytest.fail("CI needs /usr/bin/chromium: scripts/ensure-chromium installs it")
    pytest.skip("Debian's chromium is not installed (scripts/ensure-chromium)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_fava(*ledgers: Path | str, read_only: bool = False) -> Iterator[str]:
    """Fava itself, in its own process on a free loopback port, until the block ends."""
    port = _free_port()
    fava = Path(sys.executable).with_name("fava")
    flags = ["--read-only"] if read_only else []
    proc = subprocess.Popen(
        [str(fava), *flags, "--host", "127.0.0.1", "--port", str(port), *map(str, ledgers)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(url, timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def fava_url(make_client: ClientFactory, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    _require_chromium()
    client = make_client()
    client.ledger.parent.mkdir(parents=True, exist_ok=True)
    script = tmp_path / "import.py"
    cfg = tmp_path / "clients.yaml"
    cfg.write_text(
        f"clients:\n  - id: acme\n    name: Acme\n    stripe_account: {client.stripe_account}\n"
        f"    key: env:{client.key.ref}\n    ledger: {client.ledger}\n"
        f"    timezone: {client.timezone}\n"
    )
    script.write_text(
        "from beancount_stripe.importer import importers_from_config\n"
        f"CONFIG = importers_from_config({str(cfg)!r})\nHOOKS = []\n"
    )
    client.ledger.write_text(
        'option "title" "Acme Books"\noption "operating_currency" "USD"\n'
        f'2024-01-01 custom "fava-option" "import-config" "{script}"\n'
        '2024-01-01 custom "fava-option" "import-dirs" "inbox"\n'
        'include "stripe.beancount"\n'
    )
    sync_client(client)
    first_month = archive.month_files(client.archive_dir)[0][1]
    saved = archive.read_transactions(first_month)[:3]
    inbox = client.ledger.parent / "inbox"
    inbox.mkdir()
    (inbox / "balance_transactions.json").write_text(json.dumps({"object": "list", "data": saved}))
    with running_fava(client.ledger) as url:
        yield url, client.archive_dir


def test_fava_shows_synced_books_and_import_page(
    fava_url: tuple[str, Path], tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    url, archive_dir = fava_url
    months = [p.name for _m, p in archive.month_files(archive_dir)]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        page = browser.new_page()
        page.goto(f"{url}/acme-books/account/Assets:Acme:Stripe/")
        page.wait_for_selector("text=Assets:Acme:Stripe")
        assert page.locator("text=Balance").count() > 0
        page.goto(f"{url}/acme-books/import/")
        page.wait_for_selector("text=balance_transactions.json", timeout=20_000)
        body = page.inner_text("body")
        page.screenshot(path=str(tmp_path / "import.png"), full_page=True)
        browser.close()
    assert not any(m in body for m in months), "the audit trail is not offered for import"
    assert "beancount_stripe.acme" in body
