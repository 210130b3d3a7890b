"""Customers' personal data stays out of the archive unless the client asks for `keep: full`.

The sources are enriched with everything Stripe really sends for a card charge (billing address,
expiry, fingerprint, last4, card country), then: the default archive holds none of it, a
`keep: full` archive holds all of it, and booking and rules give the same ledger text from
either (and from an old full archive), rule-driven payees and accounts included.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest

from beancount_stripe import ledger, privacy, rules, sync
from beancount_stripe.simulator import SimAccount, World, generate_history

from .conftest import ClientFactory
from .rules.conftest import DEFAULT_RULES, client_with

REPO = Path(__file__).resolve().parent.parent
GOLDEN_RULES = REPO / "tests" / "rules" / "golden" / "rules.yaml"
GULF_RULES = REPO / "config" / "rules" / "gulf-trading.yaml"

ADDRESS = {
    "city": "Springfield",
    "country": "US",
    "line1": "742 Evergreen Terrace",
    "line2": None,
    "postal_code": "49007",
    "state": "OR",
}
# Strings only the personal fields carry: none may reach a minimal archive.
PERSONAL = ("Evergreen Terrace", "49007", "fp_", "exp_month", "exp_year", "last4", '"country"')


def enrich(objects: dict[str, dict[str, Any]]) -> None:
    """Give every charge the personal data a real one carries (in place)."""
    for obj in objects.values():
        if obj.get("object") != "charge" or "billing_details" not in obj:
            continue
        obj["billing_details"] = {**obj["billing_details"], "address": dict(ADDRESS)}
        obj["shipping"] = {"address": dict(ADDRESS), "name": obj["billing_details"]["name"]}
        obj["outcome"] = {"network_status": "approved_by_network", "risk_score": 12}
        card = obj.get("payment_method_details", {}).get("card")
        if card is not None:
            card["fingerprint"] = "fp_" + obj["id"][-10:]
            card["checks"] = {"address_postal_code_check": "pass", "cvc_check": "pass"}
            card["wallet"] = None


def expanded(account_id: str = "acct_1PrivacyTest001") -> list[dict[str, Any]]:
    history = generate_history(
        account_id=account_id,
        seed=7,
        size=320,
        start=datetime.date(2024, 1, 1),
        end=datetime.date(2024, 9, 30),
        currencies=("usd", "eur", "jpy"),
        statement_descriptor="GOLDEN SHOP",
    )
    enrich(history.objects)
    out = []
    for bt in history.transactions:
        bt = dict(bt)
        if isinstance(bt.get("source"), str) and bt["source"] in history.objects:
            source = dict(history.objects[bt["source"]])
            if isinstance(source.get("charge"), str) and source["charge"] in history.objects:
                source["charge"] = history.objects[source["charge"]]  # as expand[] may give it
            bt["source"] = source
        out.append(bt)
    return out


def booked_text(bts: Iterable[Mapping[str, Any]], client: Any) -> str:
    entries = [entry for entry, _why in rules.book_with_rules(list(bts), client)]
    return ledger.format_entries(entries)


# -- the pure function ---------------------------------------------------------------------------


def test_minimal_keeps_no_personal_data() -> None:
    bts = expanded()
    full = json.dumps(bts)
    for needle in PERSONAL:
        assert needle in full, f"the fixture lacks {needle!r}: the test could not fail"
    kept = json.dumps([privacy.minimise(bt) for bt in bts])
    for needle in PERSONAL:
        assert needle not in kept, f"{needle!r} survived minimisation"
    assert "shipping" not in kept and "risk_score" not in kept


def test_minimal_keeps_what_booking_and_rules_read() -> None:
    bts = expanded()
    kept = [privacy.minimise(bt) for bt in bts]
    charges = [bt["source"] for bt in kept if bt["type"] == "charge"]
    assert charges and all(c["billing_details"].keys() == {"name", "email"} for c in charges)
    assert all(c["payment_method_details"]["card"].keys() <= {"brand", "funding"} for c in charges)
    assert all(c["object"] == "charge" and c["id"].startswith("ch_") for c in charges)
    assert any(c["metadata"] for c in charges)
    # the balance transactions themselves are untouched
    for before, after in zip(bts, kept, strict=True):
        assert {k: v for k, v in before.items() if k != "source"} == {
            k: v for k, v in after.items() if k != "source"
        }
    assert privacy.minimise(kept[0]) == kept[0]  # idempotent: re-fetching changes nothing


def test_every_rule_field_reads_the_same(tmp_path: Path) -> None:
    """A narration template naming every rule field: identical from minimal and full sources."""
    names = [n for n in rules.FIELDS if n not in ("card.country", "party", "payee", "narration")]
    template = " | ".join(f"{n}={{{n}}}" for n in names)
    path = tmp_path / "all-fields.yaml"
    path.write_text(
        "rules:\n"
        "  - name: every field\n"
        "    when: {id: {prefix: txn_}}\n"
        f"    narration: {json.dumps(template)}\n"
        "    meta: {order: '{metadata.order_id}', via: '{source.account}'}\n",
        encoding="utf-8",
    )
    client = client_with(tmp_path, (path,), (DEFAULT_RULES,))
    bts = expanded()
    full = booked_text(bts, client)
    assert "customer.name=" in full and "@example" in full and "card.brand=" in full
    assert booked_text([privacy.minimise(bt) for bt in bts], client) == full


@pytest.mark.parametrize("own", [GOLDEN_RULES, GULF_RULES], ids=["golden", "gulf-trading"])
def test_rules_get_the_source_fields_they_name(tmp_path: Path, own: Path) -> None:
    """`card.country` and `source.…` in a client's rules are kept for that client, and only
    then: payees, accounts, tags and narrations stay identical."""
    client = client_with(tmp_path, (own,), (DEFAULT_RULES,))
    keep = privacy.minimiser_for(client)
    assert keep is not None
    bts = expanded()
    minimal = [keep(bt) for bt in bts]
    assert booked_text(minimal, client) == booked_text(bts, client)
    sources = [bt["source"] for bt in minimal if isinstance(bt.get("source"), dict)]
    countries = [s.get("payment_method_details", {}).get("card", {}) for s in sources]
    assert any("country" in c for c in countries)  # gulf and golden rules read card.country
    plain = json.dumps([privacy.minimise(bt) for bt in bts])
    assert '"country"' not in plain  # a client without such rules does not keep it


def test_rule_paths_scan() -> None:
    text = "when: {card.country: JP, source.payment_method_details.card.funding: debit}\n"
    text += 'narration: "Chargeback ({source.reason})"  # metadata.x and outsource.y are not\n'
    assert privacy.rule_paths([text]) == {
        ("payment_method_details", "card", "country"),
        ("payment_method_details", "card", "funding"),
        ("reason",),
    }


def test_full_keeps_everything() -> None:
    client = client_with(Path("/nonexistent"))
    assert privacy.minimiser_for(dataclasses.replace(client, archive_keep="full")) is None


# -- over HTTP, through the archive --------------------------------------------------------------


@pytest.fixture
def enriched(world: World) -> SimAccount:
    account = world.accounts["acct_1TestAcme00001"]
    enrich(account.history.objects)
    return account


def archive_text(client: Any) -> str:
    return "".join(p.read_text(encoding="utf-8") for _m, p in sorted_files(client.archive_dir))


def sorted_files(folder: Path) -> list[tuple[str, Path]]:
    from beancount_stripe import archive

    return archive.month_files(folder)


def output_body(client: Any) -> str:
    return client.output.read_text(encoding="utf-8").split("\n", 3)[-1]


def test_sync_archives_minimal_by_default_and_full_on_request(
    make_client: ClientFactory, enriched: SimAccount, tmp_path: Path
) -> None:
    base = make_client("minimal")
    minimal = dataclasses.replace(
        base, rules=(GOLDEN_RULES,), shared_rules=(DEFAULT_RULES,), account_name="Shop"
    )
    full = dataclasses.replace(
        make_client("full"),
        rules=(GOLDEN_RULES,),
        shared_rules=(DEFAULT_RULES,),
        archive_keep="full",
        name=minimal.name,
        accounts=minimal.accounts,
        account_name=minimal.account_name,
    )
    sync.sync_client(minimal)
    sync.sync_client(full)

    small, whole = archive_text(minimal), archive_text(full)
    for needle in PERSONAL:
        assert needle in whole, f"keep: full lost {needle!r}"
        if needle != '"country"':  # the golden rules read card.country: kept for them
            assert needle not in small, f"{needle!r} reached the default archive"
    assert len(small) < len(whole)

    # The same books from either archive, and from the sync itself.
    assert output_body(minimal) == output_body(full)
    from_small = booked_text(sync.read_archive(minimal).values(), minimal)
    assert from_small == booked_text(sync.read_archive(full).values(), full)

    # An archive written before minimisation existed (full) keeps working for a minimal client.
    old = dataclasses.replace(
        minimal,
        id="old",
        ledger=tmp_path / "old" / "ledger.beancount",
        output=tmp_path / "old" / "stripe.beancount",
        archive_dir=tmp_path / "old" / "archive",
    )
    shutil.copytree(full.archive_dir, old.archive_dir)
    report = sync.sync_client(old)
    assert report.booked
    assert output_body(old) == output_body(full)
