"""The Stripe page in Fava, through Fava itself (its Flask app and test client): every endpoint,
CSRF and read-only refusals, one-entry edits, Sync now against the simulator, no key leaks."""

from __future__ import annotations

import difflib
import hashlib
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fava.application import create_app

from beancount_stripe import sync_state
from beancount_stripe.simulator import World
from beancount_stripe.sync import sync_client

from .conftest import ClientFactory, copy_examples, tree_digest

CLIENTS = {
    "acme": "acme-coffee-roasters",
    "kyoto-tea": "kyoto-tea-house",
    "gulf-trading": "gulf-trading-wll",
}
SECRET = "sk_test_51DoNotLeakThisKeyAnywhere0000"


@pytest.fixture
def books(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the committed config and example ledgers (so edits stay in tmp_path)."""
    copy_examples(tmp_path)
    for name in ("ACME_STRIPE_KEY", "KYOTO_TEA_STRIPE_KEY", "FIRM_PLATFORM_STRIPE_KEY"):
        monkeypatch.setenv(name, SECRET)
    return tmp_path


def _app(books: Path, *, read_only: bool = False) -> Any:
    files = [str(books / "example-ledger" / c / "ledger.beancount") for c in CLIENTS]
    app = create_app(files, load=True, read_only=read_only)
    app.testing = True
    return app


class Recorder:
    """A test client that keeps every response body, to prove no key ever appears in one."""

    def __init__(self, app: Any) -> None:
        self.client = app.test_client()
        self.bodies: list[str] = []

    def get(self, url: str, **kw: Any) -> Any:
        r = self.client.get(url, **kw)
        self.bodies.append(r.get_data(as_text=True))
        return r

    def post(self, url: str, **kw: Any) -> Any:
        r = self.client.post(url, **kw)
        self.bodies.append(r.get_data(as_text=True))
        return r

    def assert_no_key(self) -> None:
        for body in self.bodies:
            assert SECRET not in body and SECRET[8:24] not in body


@pytest.fixture
def fava(books: Path) -> Iterator[Recorder]:
    rec = Recorder(_app(books))
    yield rec
    rec.assert_no_key()


def _token(page: str) -> str:
    m = re.search(r'data-csrf="([^"]*)"', page)
    assert m is not None
    return m.group(1)


def _rows(page: str) -> list[tuple[str, str]]:
    """(stripe id, entry hash) of each review-queue row on the page."""
    return re.findall(r'data-stripe-id="([^"]+)" data-hash="([^"]+)"', page)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("client_id", list(CLIENTS))
def test_page_renders_each_example_client(fava: Recorder, books: Path, client_id: str) -> None:
    r = fava.get(f"/{CLIENTS[client_id]}/extension/Stripe/")
    assert r.status_code == 200
    page = r.get_data(as_text=True)
    config = (books / "config" / "clients.yaml").read_text()
    block = config.split(f"- id: {client_id}", 1)[1]
    account = re.search(r"stripe_account: (\S+)", block)
    key = re.search(r"key: (\S+)", block)
    assert account and key
    assert account.group(1) in page and key.group(1) in page  # the source, never the key
    output = (books / "example-ledger" / client_id / "stripe.beancount").read_text()
    flagged = len(re.findall(r"^\d{4}-\d\d-\d\d !", output, re.MULTILINE))
    assert f"{flagged} open" in page
    assert len(_rows(page)) == min(flagged, 200)
    for section in ("stripe-connection", "stripe-review", "stripe-payouts", "stripe-charts"):
        assert f'id="{section}"' in page
    assert 'id="stripe-firm"' in page  # the config has three clients
    for other, slug in CLIENTS.items():  # Fava serves every client's ledger: linked
        assert f'href="/{slug}/extension/Stripe/" data-remote' in page, other
    assert ('id="stripe-capital"' in page) == (client_id == "acme")
    assert 'id="stripe-sync-now"' in page and _token(page)


def test_total_in_transit_equals_the_transit_balance(fava: Recorder, books: Path) -> None:
    from beancount import loader

    entries, _e, _o = loader.load_file(str(books / "example-ledger/acme/ledger.beancount"))
    balance: dict[str, Any] = {}
    for e in entries:
        for p in getattr(e, "postings", []):
            if p.account == "Assets:Acme:Transfers:Stripe":
                balance[p.units.currency] = balance.get(p.units.currency, 0) + p.units.number
    page = fava.get("/acme-coffee-roasters/extension/Stripe/").get_data(as_text=True)
    shown = re.search(r"In transit on <code>[^<]+</code>:(.*?)\(", page, re.S)
    assert shown is not None
    for cur, value in balance.items():
        if value:
            assert f"<strong>{value} {cur}</strong>" in shown.group(1)
    # each payout row: its date, and Stripe's arrival date from the archived payout object
    rows = re.findall(r"<tr><td>(\d{4}-\d\d-\d\d)</td><td>(\d{4}-\d\d-\d\d)</td>", page)
    assert len(rows) == 100 and all(arrival >= day for day, arrival in rows)


def test_a_payout_drills_down_to_the_transactions_it_settled(fava: Recorder, books: Path) -> None:
    from beancount_stripe import archive

    page = fava.get("/acme-coffee-roasters/extension/Stripe/").get_data(as_text=True)
    shown = re.findall(r'data-payout="(po_[^"]+)"><summary>(\d+)</summary>', page)
    assert shown, "automatic payouts offer their transactions"
    records = archive.read_payouts(books / "example-ledger/acme/archive")
    payout_id, count = shown[0]
    members = records[payout_id]["transactions"]
    assert int(count) == len(members)
    got = fava.get(f"/acme-coffee-roasters/extension/Stripe/payout?id={payout_id}").get_json()
    assert got["ok"] and [t["id"] for t in got["transactions"]] == sorted(
        (m["id"] for m in members),
        key=lambda i: next((m["created"], m["id"]) for m in members if m["id"] == i),
    )
    assert all(
        t["account"].startswith(("Income:", "Expenses:", "Assets:")) for t in got["transactions"]
    )
    missing = fava.get("/acme-coffee-roasters/extension/Stripe/payout?id=po_nothing")
    assert missing.status_code == 404 and "po_nothing" in missing.get_json()["error"]


ACTIONS = ("sync", "check", "accept", "change_account", "add_rule")


@pytest.mark.parametrize("token", [None, "wrong-token"])
def test_post_without_a_valid_token_is_refused_and_changes_nothing(
    fava: Recorder, books: Path, token: str | None
) -> None:
    page = fava.get("/acme-coffee-roasters/extension/Stripe/").get_data(as_text=True)
    txn, entry_hash = _rows(page)[0]
    before = tree_digest(books)
    headers = {"X-CSRF-Token": token} if token else {}
    for action in ACTIONS:
        r = fava.post(
            f"/acme-coffee-roasters/extension/Stripe/{action}",
            json={"entry_hash": entry_hash, "account": "Income:Acme:Coffee", "stripe_id": txn},
            headers=headers,
        )
        assert r.status_code == 403, (action, r.status_code)
        assert "CSRF" in r.get_json()["error"]
    time.sleep(0.2)  # a sync would have started in the background
    assert tree_digest(books) == before


def test_read_only_fava_refuses_every_post_and_hides_the_buttons(books: Path) -> None:
    rec = Recorder(_app(books, read_only=True))
    page = rec.get("/acme-coffee-roasters/extension/Stripe/").get_data(as_text=True)
    assert 'id="stripe-sync-now"' not in page and 'class="stripe-accept"' not in page
    assert _token(page) == ""  # nothing to post with
    token = Recorder(_app(books)).get("/acme-coffee-roasters/extension/Stripe/")
    real = _token(token.get_data(as_text=True))
    stripe_id, entry_hash = _rows(page)[0]
    before = tree_digest(books)
    for action in ACTIONS:
        r = rec.post(
            f"/acme-coffee-roasters/extension/Stripe/{action}",
            json={"entry_hash": entry_hash, "stripe_id": stripe_id},
            headers={"X-CSRF-Token": real},
        )
        assert 400 <= r.status_code < 500
    time.sleep(0.2)
    assert tree_digest(books) == before
    rec.assert_no_key()


def _changed_lines(before: str, after: str) -> list[tuple[str, str]]:
    out = []
    a, b = before.splitlines(), after.splitlines()
    sm = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    for op, a1, a2, b1, b2 in sm.get_opcodes():
        if op != "equal":
            out.append(("\n".join(a[a1:a2]), "\n".join(b[b1:b2])))
    return out


def test_accept_flags_exactly_one_entry_and_it_leaves_the_queue(
    fava: Recorder, books: Path
) -> None:
    output = books / "example-ledger/acme/stripe.beancount"
    other = [p for p in books.rglob("*.beancount") if p != output]
    others_before = {p: _digest(p) for p in other}
    page = fava.get("/acme-coffee-roasters/extension/Stripe/").get_data(as_text=True)
    rows = _rows(page)
    stripe_id, entry_hash = rows[3]
    before = output.read_text()
    r = fava.post(
        "/acme-coffee-roasters/extension/Stripe/accept",
        json={"entry_hash": entry_hash},
        headers={"X-CSRF-Token": _token(page)},
    )
    assert r.status_code == 200, r.get_json()
    after = output.read_text()
    changes = _changed_lines(before, after)
    assert len(changes) == 1
    old, new = changes[0]
    assert old.count("\n") == 0 and re.match(r"\d{4}-\d\d-\d\d !", old)
    assert new == old.replace(" ! ", " * ", 1)
    block = before.split(old, 1)[1].split("\n\n", 1)[0]
    assert f'stripe_id: "{stripe_id}"' in block
    assert {p: _digest(p) for p in other} == others_before
    page2 = fava.get("/acme-coffee-roasters/extension/Stripe/").get_data(as_text=True)
    assert stripe_id not in [s for s, _h in _rows(page2)]
    assert f"{len(rows) - 1} open" in page2
    # the old hash names an entry that no longer exists as it was: a conflict, nothing written
    again = fava.post(
        "/acme-coffee-roasters/extension/Stripe/accept",
        json={"entry_hash": entry_hash},
        headers={"X-CSRF-Token": _token(page2)},
    )
    assert again.status_code == 409
    assert output.read_text() == after


def test_change_account_moves_one_posting_of_one_entry(fava: Recorder, books: Path) -> None:
    output = books / "example-ledger/acme/stripe.beancount"
    page = fava.get("/acme-coffee-roasters/extension/Stripe/").get_data(as_text=True)
    stripe_id, entry_hash = _rows(page)[0]
    token = {"X-CSRF-Token": _token(page)}
    before = output.read_text()
    bad = fava.post(
        "/acme-coffee-roasters/extension/Stripe/change_account",
        json={"entry_hash": entry_hash, "account": "Income:Nowhere:Unopened"},
        headers=token,
    )
    assert bad.status_code == 400 and output.read_text() == before
    r = fava.post(
        "/acme-coffee-roasters/extension/Stripe/change_account",
        json={"entry_hash": entry_hash, "account": "Expenses:Acme:Stripe:Services"},
        headers=token,
    )
    assert r.status_code == 200, r.get_json()
    after = output.read_text()
    blocks_before, blocks_after = before.split("\n\n"), after.split("\n\n")
    assert len(blocks_before) == len(blocks_after)
    changed = [(a, b) for a, b in zip(blocks_before, blocks_after, strict=True) if a != b]
    assert len(changed) == 1  # exactly one entry
    old, new = changed[0]
    assert f'stripe_id: "{stripe_id}"' in old and f'stripe_id: "{stripe_id}"' in new
    assert "Expenses:Acme:Uncategorized" in old and "Expenses:Acme:Stripe:Services" in new
    assert "Expenses:Acme:Uncategorized" not in new and " * " in new.splitlines()[0]
    assert len(_changed_lines(old, new)) == 2  # its header (flag) and its counter posting
    from beancount import loader

    entries, errors, _ = loader.load_file(str(books / "example-ledger/acme/ledger.beancount"))
    assert not errors
    (entry,) = [e for e in entries if getattr(e, "meta", {}).get("stripe_id") == stripe_id]
    assert entry.flag == "*"
    assert "Expenses:Acme:Stripe:Services" in {p.account for p in entry.postings}


def test_explain_and_suggest_answer_for_a_queued_entry(fava: Recorder) -> None:
    page = fava.get("/acme-coffee-roasters/extension/Stripe/").get_data(as_text=True)
    stripe_id, _h = _rows(page)[0]
    r = fava.get(f"/acme-coffee-roasters/extension/Stripe/explain?stripe_id={stripe_id}")
    assert r.status_code == 200 and stripe_id in r.get_json()["text"]
    assert "decisions:" in r.get_json()["text"]
    s = fava.get(f"/acme-coffee-roasters/extension/Stripe/suggest?stripe_id={stripe_id}")
    assert s.status_code == 200 and isinstance(s.get_json()["proposals"], list)


# -- Sync now and Check connection against the simulator -------------------------------------------


def _fava_client_setup(make_client: ClientFactory, tmp_path: Path) -> tuple[Any, Path]:
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
        f'2024-01-01 custom "fava-extension" "beancount_stripe.fava_ext" '
        f"\"{{'config': '{cfg}', 'client': 'acme'}}\"\n"
        'include "stripe.beancount"\n'
    )
    return client, cfg


def test_sync_now_and_check_connection(
    make_client: ClientFactory, tmp_path: Path, world: World
) -> None:
    client, _cfg = _fava_client_setup(make_client, tmp_path)
    history = world.accounts[client.stripe_account].history.transactions
    # as if run just after the newest transaction, so the new activity below is in the future
    first = sync_client(client, via="cron", now=max(bt["created"] for bt in history) + 3600)
    app = create_app([str(client.ledger)], load=True)
    rec = Recorder(app)
    page = rec.get("/acme-books/extension/Stripe/").get_data(as_text=True)
    assert "via cron" in page
    token = {"X-CSRF-Token": _token(page)}
    check = rec.post("/acme-books/extension/Stripe/check", headers=token)
    assert check.status_code == 200 and client.stripe_account in check.get_json()["message"]
    before = client.output.read_text()
    new = world.add_activity(client.stripe_account, 25)  # activity since the last sync
    r = rec.post("/acme-books/extension/Stripe/sync", headers=token)
    assert r.status_code == 200
    for _ in range(300):
        job = rec.get("/acme-books/extension/Stripe/status").get_json()["job"]
        if job["state"] != "running":
            break
        time.sleep(0.1)
    assert job["state"] == "done", job
    after = client.output.read_text()
    ids = re.compile(r'stripe_id: "([^"]+)"')
    added = set(ids.findall(after)) - set(ids.findall(before))
    assert job["added"] == len(added) > 0 and added <= {bt["id"] for bt in new}
    assert after.startswith(before)
    last = sync_state.last_run(client)
    assert last is not None and last.via == "fava" and last.entries_added == job["added"]
    page = rec.get("/acme-books/extension/Stripe/").get_data(as_text=True)
    flagged = len(re.findall(r"^\d{4}-\d\d-\d\d !", after, re.MULTILINE))
    assert f"{flagged} open" in page  # Fava reloaded the ledger with the new entries
    assert "via fava" in page and f"{job['added']} entries added" in page
    assert "differs by" not in page  # the tie-out holds after the sync
    assert first.booked
    for body in rec.bodies:
        assert "sk_test_" not in body


def test_sync_errors_are_the_cli_messages(
    make_client: ClientFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client, _cfg = _fava_client_setup(make_client, tmp_path)
    monkeypatch.setenv(client.key.ref, "sk_test_WrongKeyForThisAccount000")
    rec = Recorder(create_app([str(client.ledger)], load=True))
    page = rec.get("/acme-books/extension/Stripe/").get_data(as_text=True)
    r = rec.post("/acme-books/extension/Stripe/sync", headers={"X-CSRF-Token": _token(page)})
    assert r.status_code == 200
    for _ in range(300):
        job = rec.get("/acme-books/extension/Stripe/status").get_json()["job"]
        if job["state"] != "running":
            break
        time.sleep(0.1)
    assert job["state"] == "error"
    assert "fix:" in job["message"]
    last = sync_state.last_run(client)
    assert last is not None and last.result == "error" and last.via == "fava"
    for body in rec.bodies:
        assert "WrongKeyForThisAccount" not in body


def test_suggest_a_rule_appends_it_and_recategorizes(books: Path) -> None:
    ledger_file = books / "example-ledger/acme/ledger.beancount"
    ledger_file.write_text(
        ledger_file.read_text().replace(
            "'client': 'acme'}", "'client': 'acme', 'suggest_min_count': 1}"
        )
    )
    rules_file = books / "config/rules/acme.yaml"
    rules_before = rules_file.read_text()
    fava = Recorder(_app(books))
    page = fava.get("/acme-coffee-roasters/extension/Stripe/").get_data(as_text=True)
    output = books / "example-ledger/acme/stripe.beancount"
    text = output.read_text()
    disputes = [
        (s, h)
        for s, h in _rows(page)
        if re.search(
            rf'stripe_id: "{s}"\n(?:  \w+: .*\n)*?  stripe_type: "issuing_dispute"\n', text
        )
    ]
    assert len(disputes) == 2
    (hand, hand_hash), (other, _h) = disputes
    token = {"X-CSRF-Token": _token(page)}
    r = fava.post(
        "/acme-coffee-roasters/extension/Stripe/change_account",
        json={"entry_hash": hand_hash, "account": "Expenses:Acme:Stripe:Disputes"},
        headers=token,
    )
    assert r.status_code == 200
    s = fava.get(f"/acme-coffee-roasters/extension/Stripe/suggest?stripe_id={other}").get_json()
    assert s["ok"] and s["proposals"], s
    proposal = next(p for p in s["proposals"] if p["account"] == "Expenses:Acme:Stripe:Disputes")
    assert proposal["settles"] == 1 and "issuing_dispute" in proposal["yaml"]
    added = fava.post(
        "/acme-coffee-roasters/extension/Stripe/add_rule",
        json={"stripe_id": other, "name": proposal["name"]},
        headers=token,
    )
    assert added.status_code == 200, added.get_json()
    assert rules_file.read_text() == rules_before + proposal["yaml"]
    from beancount import loader

    entries, errors, _ = loader.load_file(str(ledger_file))
    assert not errors
    (entry,) = [e for e in entries if getattr(e, "meta", {}).get("stripe_id") == other]
    assert entry.flag == "*"
    assert "Expenses:Acme:Stripe:Disputes" in {p.account for p in entry.postings}
    # the hand-edited entry is untouched by recategorize, and stays as the bookkeeper left it
    (mine,) = [e for e in entries if getattr(e, "meta", {}).get("stripe_id") == hand]
    assert mine.flag == "*"
    fava.assert_no_key()


def test_a_broken_extension_config_is_shown_on_the_page(books: Path) -> None:
    ledger_file = books / "example-ledger/acme/ledger.beancount"
    ledger_file.write_text(
        ledger_file.read_text().replace("../../config/clients.yaml", "../../config/missing.yaml")
    )
    fava = Recorder(_app(books))
    r = fava.get("/acme-coffee-roasters/extension/Stripe/")
    assert r.status_code == 200
    page = r.get_data(as_text=True)
    assert 'id="stripe-setup-error"' in page and "missing.yaml" in page
    token = Recorder(_app(books)).get("/kyoto-tea-house/extension/Stripe/")
    real = _token(token.get_data(as_text=True))
    refused = fava.post(
        "/acme-coffee-roasters/extension/Stripe/sync", headers={"X-CSRF-Token": real}
    )
    assert refused.status_code == 403  # another page's token is not this page's


def test_a_changed_config_is_read_again_when_fava_reloads(books: Path) -> None:
    fava = Recorder(_app(books))
    assert "Acme Coffee Roasters" in fava.get("/acme-coffee-roasters/extension/Stripe/").get_data(
        as_text=True
    )
    cfg = books / "config/clients.yaml"
    cfg.write_text(cfg.read_text().replace("name: Acme Coffee Roasters", "name: Acme Coffee Co"))
    ledger_file = books / "example-ledger/acme/ledger.beancount"
    ledger_file.write_text(ledger_file.read_text() + "\n")  # Fava reloads on its next request
    time.sleep(0.05)
    page = ""
    for _ in range(50):
        page = fava.get("/acme-coffee-roasters/extension/Stripe/").get_data(as_text=True)
        if "Acme Coffee Co<" in page or "Acme Coffee Co " in page:
            break
        time.sleep(0.1)
    assert "Acme Coffee Co " in page


def test_sync_now_waits_for_the_clients_lock(
    make_client: ClientFactory, tmp_path: Path, world: World
) -> None:
    from beancount_stripe import ledger

    client, _cfg = _fava_client_setup(make_client, tmp_path)
    history = world.accounts[client.stripe_account].history.transactions
    sync_client(client, via="cron", now=max(bt["created"] for bt in history) + 3600)
    rec = Recorder(create_app([str(client.ledger)], load=True))
    page = rec.get("/acme-books/extension/Stripe/").get_data(as_text=True)
    token = {"X-CSRF-Token": _token(page)}
    before = client.output.read_text()
    world.add_activity(client.stripe_account, 10)
    with ledger.locked(client.ledger):  # a cron sync holds the client's lock
        assert rec.post("/acme-books/extension/Stripe/sync", headers=token).status_code == 200
        again = rec.post("/acme-books/extension/Stripe/sync", headers=token)
        assert again.status_code == 409  # one sync per client at a time
        time.sleep(1.0)
        assert rec.get("/acme-books/extension/Stripe/status").get_json()["job"]["state"] == (
            "running"
        )
        assert client.output.read_text() == before  # it waits, writes nothing meanwhile
    for _ in range(300):
        job = rec.get("/acme-books/extension/Stripe/status").get_json()["job"]
        if job["state"] != "running":
            break
        time.sleep(0.1)
    assert job["state"] == "done" and job["added"] > 0
