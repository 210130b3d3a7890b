"""beangulp importer: same entries as sync, skips what the ledger has, works in Fava."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from beancount import loader
from beancount.parser import printer

from beancount_stripe import archive
from beancount_stripe.errors import InputFileError
from beancount_stripe.importer import DUPLICATE, BalanceTransactionImporter
from beancount_stripe.simulator import World
from beancount_stripe.sync import fetch_client, sync_client

from .conftest import REPO, ClientFactory


def _text(entries: list) -> list[str]:
    return sorted(printer.format_entry(e) for e in entries)


def test_extract_books_exactly_what_sync_books(make_client: ClientFactory) -> None:
    client = make_client()
    fetch_client(client)
    importer = BalanceTransactionImporter(client)
    files = [p for _m, p in archive.month_files(client.archive_dir)]
    assert files and all(importer.identify(str(p)) for p in files)
    extracted = [e for p in files for e in importer.extract(str(p), [])]
    report = sync_client(client, dry_run=True)
    assert _text(extracted) == _text(report.booked)


def test_extract_marks_what_the_ledger_already_has(make_client: ClientFactory) -> None:
    """beangulp's convention: duplicates are returned marked, so the user sees why."""
    client = make_client()
    sync_client(client)
    existing, errors, _ = loader.load_file(str(client.ledger))
    assert not errors
    booked = {e.meta["stripe_id"]: e for e in existing if "stripe_id" in e.meta}
    importer = BalanceTransactionImporter(client)
    for _m, path in archive.month_files(client.archive_dir):
        entries = importer.extract(str(path), existing)
        assert len(entries) == len(archive.read_transactions(path))
        importer.deduplicate(entries, existing)
        for e in entries:
            assert e.meta[DUPLICATE] is booked[e.meta["stripe_id"]]


def test_identify_is_specific_to_the_client(make_client: ClientFactory, tmp_path: Path) -> None:
    acme = make_client()
    other = make_client("other", stripe_account="acct_1TestOther0002")
    fetch_client(acme)
    path = archive.month_files(acme.archive_dir)[0][1]
    assert BalanceTransactionImporter(acme).identify(str(path))
    assert not BalanceTransactionImporter(other).identify(str(path))
    stray = tmp_path / "notes.json"
    stray.write_text('{"hello": "world"}')
    assert not BalanceTransactionImporter(acme).identify(str(stray))
    csv = tmp_path / "acme.csv"
    csv.write_text("id,amount\n")
    assert not BalanceTransactionImporter(acme).identify(str(csv))


def test_saved_list_response_and_bare_array(
    make_client: ClientFactory, world: World, tmp_path: Path
) -> None:
    client = make_client()
    bts = world.accounts[client.stripe_account].history.transactions[:25]
    folder = tmp_path / "downloads" / "acme"
    folder.mkdir(parents=True)
    as_list = folder / "balance_transactions.json"
    as_list.write_text(
        json.dumps(
            {"object": "list", "url": "/v1/balance_transactions", "has_more": False, "data": bts},
            indent=2,
        )
    )
    as_array = folder / "saved-array.json"
    as_array.write_text(json.dumps(bts))
    importer = BalanceTransactionImporter(client)
    for path in (as_list, as_array):
        assert importer.identify(str(path))
        entries = importer.extract(str(path), [])
        assert sorted(e.meta["stripe_id"] for e in entries) == sorted(b["id"] for b in bts)
    elsewhere = tmp_path / "balance_transactions.json"
    elsewhere.write_text(as_list.read_text())
    assert not importer.identify(str(elsewhere)), "an anonymous file outside the client's folders"


def test_malformed_files_name_the_line(make_client: ClientFactory, tmp_path: Path) -> None:
    client = make_client()
    fetch_client(client)
    path = archive.month_files(client.archive_dir)[0][1]
    lines = path.read_text().splitlines()
    lines[2] = lines[2][: len(lines[2]) // 2]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputFileError) as info:
        BalanceTransactionImporter(client).extract(str(path), [])
    assert f"{path}:3" in str(info.value)
    bad_amount = tmp_path / "acme" / "x.json"
    bad_amount.parent.mkdir(exist_ok=True)
    bad_amount.write_text(
        json.dumps(
            [
                {
                    "object": "balance_transaction",
                    "id": "txn_1",
                    "amount": "12.00",
                    "fee": 0,
                    "net": 1200,
                    "currency": "usd",
                    "created": 1,
                    "type": "charge",
                }
            ]
        )
    )
    with pytest.raises(InputFileError) as info2:
        BalanceTransactionImporter(client).extract(str(bad_amount), [])
    assert "txn_1" in str(info2.value) and "amount" in str(info2.value)


def _write_import_script(tmp_path: Path, config: Path) -> Path:
    script = tmp_path / "import.py"
    script.write_text(
        "import beangulp\n"
        "from beancount_stripe.importer import importers_from_config\n"
        f"CONFIG = importers_from_config({str(config)!r})\n"
        "HOOKS = []\n"
        "if __name__ == '__main__':\n"
        "    beangulp.Ingest(CONFIG, HOOKS)()\n"
    )
    return script


def _write_config(tmp_path: Path, client, key_env: str) -> Path:
    cfg = tmp_path / "clients.yaml"
    cfg.write_text(
        f"clients:\n  - id: {client.id}\n    name: Acme\n    stripe_account: "
        f"{client.stripe_account}\n    key: env:{key_env}\n    ledger: {client.ledger}\n"
        f"    timezone: {client.timezone}\n    account_name: Acme\n"
    )
    return cfg


def test_beangulp_extract_command(make_client: ClientFactory, tmp_path: Path) -> None:
    client = make_client()
    fetch_client(client)
    cfg = _write_config(tmp_path, client, client.key.ref)
    script = _write_import_script(tmp_path, cfg)
    out = subprocess.run(
        [sys.executable, str(script), "extract", str(client.archive_dir)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    n_archived = sum(
        len(archive.read_transactions(p)) for _m, p in archive.month_files(client.archive_dir)
    )
    assert out.count('stripe_id: "txn_') == n_archived
    sync_client(client)
    again = subprocess.run(
        [sys.executable, str(script), "extract", str(client.archive_dir), "-e", str(client.ledger)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    ids = [line for line in again.splitlines() if 'stripe_id: "txn_' in line]
    assert len(ids) == n_archived, "every transaction is shown"
    assert all(line.startswith(";") for line in ids), "each one commented out as a duplicate"
    assert again.count(f"; duplicate of {client.output}:") == n_archived


def test_example_ledgers_import_from_an_inbox_not_the_archive() -> None:
    """Fava's Move and × buttons act on the files of `import-dirs`: never the audit trail."""
    ledgers = sorted((REPO / "example-ledger").glob("*/ledger.beancount"))
    assert ledgers
    for ledger in ledgers:
        dirs = re.findall(r'custom "fava-option" "import-dirs" "([^"]*)"', ledger.read_text())
        assert dirs == ["inbox"], ledger
        assert (ledger.parent / "inbox").is_dir(), ledger


def test_fava_import_page_lists_the_inbox_and_shows_duplicates(
    make_client: ClientFactory, world: World, tmp_path: Path
) -> None:
    from fava.application import create_app

    client = make_client()
    cfg = _write_config(tmp_path, client, client.key.ref)
    script = _write_import_script(tmp_path, cfg)
    inbox = client.ledger.parent / "inbox"
    inbox.mkdir(parents=True)
    client.ledger.write_text(
        'option "title" "Acme"\n'
        f'2024-01-01 custom "fava-option" "import-config" "{script}"\n'
        '2024-01-01 custom "fava-option" "import-dirs" "inbox"\n'
        'include "stripe.beancount"\n'
    )
    sync_client(client)
    bts = [dict(bt) for bt in world.accounts[client.stripe_account].history.transactions[:5]]
    new = {**bts[0], "id": "txn_1NotYetBooked000"}
    saved = inbox / "balance_transactions.json"
    saved.write_text(json.dumps({"object": "list", "data": [*bts, new], "has_more": False}))
    (inbox / "notes.json").write_text('{"hello": "world"}')

    app = create_app([str(client.ledger)], load=True, poll_watcher=True)
    app.config["TESTING"] = True
    web = app.test_client()
    assert web.get("/acme/import/").status_code == 200
    listed = web.get("/acme/api/imports").get_json()["data"]
    ours = {
        f["basename"]
        for f in listed
        if any(i["importer_name"] == "beancount_stripe.acme" for i in f["importers"])
    }
    assert ours == {"balance_transactions.json"}, "the inbox only; a stray JSON is not ours"
    assert not any("/archive/" in f["name"] for f in listed)
    got = web.get(
        "/acme/api/extract",
        query_string={"filename": str(saved), "importer": "beancount_stripe.acme"},
    )
    assert got.status_code == 200, got.data[:500]
    entries = got.get_json()["data"]
    duplicate = {e["meta"]["stripe_id"]: bool(e["meta"].get(DUPLICATE)) for e in entries}
    assert duplicate == {**{bt["id"]: True for bt in bts}, new["id"]: False}
