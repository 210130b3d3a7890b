"""The fast paths of the extract path agree with the careful paths they short-cut.

``bt_check.common_shape`` accepts only what the full check accepts; the archive's bytes reader
returns what the text reader returns and leaves every refusal to it; the booking memo of the last
local day gives the date ``zoneinfo`` gives, in zones with odd offsets and DST at midnight.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime
import json
import random
import zoneinfo
from pathlib import Path
from typing import Any

import pytest

from beancount_stripe import (
    archive,
    booking,
    bt_check,
    bt_projection,
    importer,
    ledger,
    privacy,
    rules,
)
from beancount_stripe.config import ClientConfig, KeySource, make_accounts
from beancount_stripe.errors import BeancountStripeError
from tests.test_privacy import expanded

GOLDEN = json.loads((Path(__file__).parent / "booking" / "golden_bts.json").read_text())
ODD_VALUES: list[Any] = [None, True, False, 0, -1, 1.5, "", " ", "x", "usd", [], {}, [1], {"a": 1}]
ODD_VALUES += [946_684_799, 4_102_444_800, "txn_ok", "txn_bad id", "balance_transaction"]
FIELDS = ["id", "object", "amount", "fee", "net", "currency", "created", "type", "description"]
FIELDS += ["reporting_category", "status", "source", "fee_details", "available_on"]


def _outcome(obj: Any) -> tuple[str, str]:
    try:
        bt_check._check_full(obj, "here", None, "fix")
    except BeancountStripeError as err:
        return "refused", str(err)
    return "accepted", ""


def _variants() -> list[Any]:
    out: list[Any] = [None, 1, "txn_1", [], *GOLDEN]
    for bt in GOLDEN:
        for key in FIELDS:
            missing = copy.deepcopy(bt)
            missing.pop(key, None)
            out.append(missing)
            for value in ODD_VALUES:
                changed = copy.deepcopy(bt)
                changed[key] = value
                out.append(changed)
    return out


def test_the_common_shape_is_only_ever_what_the_full_check_accepts() -> None:
    for bt in GOLDEN:
        bt_check.check_bt(bt, where="warm up")  # the codes the fast path knows
    variants = _variants()
    fast = 0
    for obj in variants:
        verdict, message = _outcome(obj)
        if bt_check.common_shape(obj):
            fast += 1
            assert verdict == "accepted", (obj, message)
        try:
            result = bt_check.check_bt(obj, where="here", fix="fix")
            assert verdict == "accepted" and result is obj
        except BeancountStripeError as err:
            assert (verdict, message) == ("refused", str(err))
    assert fast >= len(GOLDEN), "the fast path took none of the well-formed transactions"


def test_the_projected_shape_is_only_ever_the_common_shape() -> None:
    """A row the projection decodes and ``projected_shape`` accepts is, parsed whole, of the
    common shape (so the full check accepts it too)."""
    for bt in GOLDEN:
        bt_check.check_bt(bt, where="warm up")
    decode = bt_projection.decoder()
    taken = 0
    for obj in _variants():
        line = json.dumps(obj).encode("utf-8")
        try:
            small = decode(line)
        except bt_projection.Refused:
            continue
        if bt_check.projected_shape(small):
            taken += 1
            assert bt_check.common_shape(json.loads(line)), obj
        else:
            assert not bt_check.common_shape(json.loads(line)), obj
    assert taken >= len(GOLDEN), "the projection took none of the well-formed transactions"


def _archive(tmp_path: Path, lines: list[str], newline: str = "\n") -> Path:
    header = {"object": archive.HEADER_OBJECT, "client": "c", "stripe_account": "acct_1"}
    path = tmp_path / "2026-01.jsonl"
    path.write_bytes(newline.join([json.dumps(header), *lines, ""]).encode("utf-8"))
    return path


def _text_reader(path: Path, skip: frozenset[str] = frozenset()) -> tuple[str, Any]:
    """What ``read_transactions`` returns or raises with the bytes reader out of the way."""
    saved = archive._read_archive_fast
    archive._read_archive_fast = lambda _path, _skip: None  # type: ignore[assignment]
    try:
        return "rows", archive.read_transactions(path, skip_ids=skip)
    except BeancountStripeError as err:
        return "error", str(err)
    finally:
        archive._read_archive_fast = saved  # type: ignore[assignment]


def _reader(path: Path, skip: frozenset[str] = frozenset()) -> tuple[str, Any]:
    try:
        return "rows", archive.read_transactions(path, skip_ids=skip)
    except BeancountStripeError as err:
        return "error", str(err)


@pytest.mark.parametrize(
    "case",
    ["plain", "blank lines", "crlf", "not json", "bad row", "unicode blank", "skip", "not utf8"],
)
def test_the_bytes_reader_reads_and_refuses_like_the_text_reader(tmp_path: Path, case: str) -> None:
    rows = [json.dumps(bt, sort_keys=True) for bt in GOLDEN]
    newline, skip = "\n", frozenset[str]()
    if case == "blank lines":
        rows[2:2] = ["", "   "]
    elif case == "crlf":
        newline = "\r\n"
    elif case == "not json":
        rows[3] = rows[3][:-5]
    elif case == "bad row":
        bad = dict(GOLDEN[4], net=1)
        rows[4] = json.dumps(bad)
    elif case == "unicode blank":
        rows[1:1] = ["\u00a0\u2028"]
    elif case == "skip":
        skip = frozenset({GOLDEN[0]["id"], GOLDEN[5]["id"]})
    path = _archive(tmp_path, rows, newline)
    if case == "not utf8":
        path.write_bytes(path.read_bytes().replace(b'"txn_', b'"txn_\xff', 1))
        with pytest.raises(UnicodeDecodeError):
            _text_reader(path)
        with pytest.raises(UnicodeDecodeError):
            _reader(path)
        return
    assert _reader(path, skip) == _text_reader(path, skip)


@pytest.mark.parametrize(
    "zone",
    ["Europe/Berlin", "Asia/Kathmandu", "Australia/Lord_Howe", "America/Sao_Paulo",
     "Pacific/Chatham", "Africa/Casablanca", "America/Havana", "Pacific/Apia", "UTC"],
)  # fmt: skip
def test_the_last_local_day_memo_gives_zoneinfos_dates(zone: str) -> None:
    tz = zoneinfo.ZoneInfo(zone)
    rng = random.Random(zone)
    memo = booking._Memo()
    created = int(datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC).timestamp())
    end = int(datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC).timestamp())
    checked = 0
    while created < end:
        expected = datetime.datetime.fromtimestamp(created, tz).date()
        assert booking._local_date(created, tz, memo) == expected, created
        created += rng.randint(1, 30_000)
        checked += 1
    assert checked > 10_000


def _client(tmp_path: Path) -> ClientConfig:
    rules_file = Path(__file__).resolve().parent.parent / "config" / "rules.yaml"
    return ClientConfig(
        id="c",
        name="C",
        stripe_account="acct_1",
        key=KeySource("env", "UNUSED"),
        ledger=tmp_path / "ledger.beancount",
        output=tmp_path / "stripe.beancount",
        archive_dir=tmp_path / "archive",
        timezone="Europe/Berlin",
        accounts=make_accounts("C"),
        shared_rules=(rules_file,),
    )


def _extract(client: ClientConfig, path: Path) -> tuple[str, str]:
    try:
        entries = importer.BalanceTransactionImporter(client).extract(str(path), [])
    except Exception as err:  # what the whole-file path raises, the chunked one must too
        return type(err).__name__, str(err)
    return "text", ledger.format_entries(entries)


_TAKEN = ("plain", "crlf", "rules read the source", "not ascii", "blank line")


@pytest.mark.parametrize(
    "case",
    ["plain", "unordered", "not json", "bad row", "not utf8", "not utf8 where unread", "crlf",
     "huge amount", "rules read the source", "not ascii", "blank line", "two on a line",
     "one over two lines", "bad id", "blank type"],
)  # fmt: skip
def test_extract_in_chunks_books_and_refuses_like_the_whole_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    """Chunks of 3 lines (GOLDEN has more): the same text, the same refusal, as reading whole
    (a chunk's lines are decoded as one JSON array, or one by one as before)."""
    ordered = sorted(GOLDEN, key=lambda bt: (bt["created"], bt["id"]))
    ordered = [copy.deepcopy(bt) for bt in ordered]
    for bt in ordered:  # a field only a rule reads, and one nothing reads
        if isinstance(bt.get("source"), dict):
            bt["source"].update(reason="fraudulent", unread="-")
    if case == "unordered":  # later transactions first: chunks sort before their predecessors
        ordered.reverse()
    elif case == "huge amount":
        ordered[2].update(amount=2**64 + 1, fee=0, net=2**64 + 1)
    elif case == "not ascii":
        ordered[1]["description"] = "Bestellung Nr. 12 für Jürgen"
    rows = [json.dumps(bt, sort_keys=True) for bt in ordered]
    if case == "not json":
        rows[-2] = rows[-2][:-5]
    elif case == "bad row":
        rows[-1] = json.dumps(dict(ordered[-1], net=1))
    elif case in ("bad id", "blank type"):  # tested by ``projected_shape``, not the decoder
        rows[4] = json.dumps(
            dict(ordered[4], **({"id": "txn_bad id"} if case == "bad id" else {"type": " "}))
        )
    elif case == "blank line":  # skipped, by the chunk's lines read one by one
        rows.insert(4, "  ")
    elif case == "two on a line":  # a JSON array of the lines would hold them both
        rows[4:6] = [rows[4] + " " + rows[5]]
    elif case == "one over two lines":
        rows[4:5] = rows[4].split(", ", 1)
    path = _archive(tmp_path, rows, "\r\n" if case == "crlf" else "\n")
    if case == "not utf8":
        path.write_bytes(path.read_bytes().replace(b'"txn_', b'"txn_\xff', 1))
    elif case == "not utf8 where unread":
        path.write_bytes(path.read_bytes().replace(b'"unread": "-', b'"unread": "\xff', 1))
    client = _client(tmp_path)
    if case == "rules read the source":
        own = tmp_path / "rules.yaml"
        own.write_text(
            "rules:\n  - name: fraud\n    when: {source.reason: fraudulent}\n"
            "    narration: Fraud {source.reason}\n"
        )
        client = dataclasses.replace(client, rules=(own,))
    monkeypatch.setattr(importer, "_CHUNK", 3)
    taken: list[bool] = []
    chunked = importer.BalanceTransactionImporter._extract_in_chunks

    def spy(self: importer.BalanceTransactionImporter, filepath: str) -> Any:
        result = chunked(self, filepath)
        taken.append(result is not None)
        return result

    monkeypatch.setattr(importer.BalanceTransactionImporter, "_extract_in_chunks", spy)
    got = _extract(client, path)
    monkeypatch.setattr(importer.BalanceTransactionImporter, "_extract_in_chunks", lambda *_: None)
    assert got == _extract(client, path)
    assert taken == [case in _TAKEN], taken
    if case in _TAKEN:
        assert got[0] == "text" and got[1].count("stripe_id") == len(GOLDEN)
    else:
        assert got[0] != "text" or case == "unordered"
    if case == "rules read the source":
        assert got[1].count("Fraud fraudulent") == sum(
            isinstance(b["source"], dict) for b in GOLDEN
        )


# -- the projection: what booking and rules read, parsed without the rest -------------------------


def _source_paths(obj: Any, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Every path to a value inside ``obj`` (an expanded source)."""
    out: set[tuple[str, ...]] = set()
    if isinstance(obj, dict):
        for key, value in obj.items():
            out.add((*prefix, key))
            out |= _source_paths(value, (*prefix, key))
    return out


def _field_values(bt: dict[str, Any], names: list[str], ruleset: Any) -> list[Any]:
    entry = booking.book(bt, _CLIENT)
    facts = rules.Facts(bt, entry, ruleset)
    out = []
    for name in names:
        spec = rules.field_spec(name)
        assert spec is not None, name
        out.append((name, facts.get(name, spec[1])))
    return out


_CLIENT = _client(Path("/nonexistent"))
_TAX_CLIENT = dataclasses.replace(
    _CLIENT, accounts=make_accounts("C", {"fee_tax": "Expenses:C:Stripe:Fee-Tax"})
)


def _variants_of_sources(bts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each expanded charge also with its fallbacks in play: no billing name or email (the
    customer's, then the receipt email), a statement descriptor unlike the calculated one."""
    out = []
    for bt in bts:
        source = bt.get("source")
        if not isinstance(source, dict) or source.get("object") != "charge":
            continue
        bare = copy.deepcopy(bt)
        bare["source"]["billing_details"] = {"name": None, "email": None}
        bare["source"]["customer"] = {"id": "cus_1", "name": "Cust Name", "email": None}
        bare["source"]["receipt_email"] = "receipt@example.com"
        bare["source"]["statement_descriptor"] = "OWN DESCRIPTOR"
        bare["source"]["calculated_statement_descriptor"] = "CALCULATED"
        out.append(bare)
        nobody = copy.deepcopy(bare)
        nobody["source"]["customer"] = None
        nobody["source"]["statement_descriptor"] = None
        out.append(nobody)
    return out


def test_the_projection_keeps_every_field_rules_and_booking_read() -> None:
    """Every rule field, and the booked text, of the projected transaction are the full one's;
    so is every ``source.…`` path once the rules name it (``privacy.rule_paths``)."""
    bts = [*GOLDEN, *expanded()]
    bts += _variants_of_sources(bts)
    ruleset = rules.ruleset_for(_CLIENT)
    metadata = {k for bt in bts for k in _sub(bt, "source", "metadata") or {}}
    metadata |= {k for bt in bts for k in _sub(bt, "source", "charge", "metadata") or {}}
    paths = set().union(*(_source_paths(bt.get("source")) for bt in bts))
    assert metadata and len(paths) > 60, "the fixture lacks the fields it tests"
    # read without the rules naming them: the fields, metadata, and the party ids' source.account
    names = [*rules.FIELDS, *(f"metadata.{k}" for k in sorted(metadata)), "source.account"]
    plain = bt_projection.decoder()
    lines = [archive.dumps(bt).encode("utf-8") for bt in bts]
    dropped = 0
    for bt, line in zip(bts, lines, strict=True):
        small = plain(line)
        dropped += len(line) - len(archive.dumps(small))
        assert bt_check.common_shape(small) == bt_check.common_shape(bt)
        assert _field_values(small, names, ruleset) == _field_values(bt, names, ruleset)
        for client in (_CLIENT, _TAX_CLIENT):  # the fee tax split reads the fee details
            assert ledger.format_entries([booking.book(small, client)]) == ledger.format_entries(
                [booking.book(bt, client)]
            )
    assert dropped > 100 * len(bts), "the projection kept everything: it saves nothing"
    for path in sorted(paths):
        name = f"source.{'.'.join(path)}"
        named = bt_projection.decoder(privacy.rule_paths([f"when: {{{name}: x}}"]))
        for bt, line in zip(bts, lines, strict=True):
            assert _field_values(named(line), [name], ruleset) == _field_values(bt, [name], ruleset)


def _sub(obj: Any, *keys: str) -> Any:
    for key in keys:
        obj = obj.get(key) if isinstance(obj, dict) else None
    return obj


@pytest.mark.parametrize(
    "line",
    [
        b'{"id":"txn_1","amount":1,"source":{"billing_details":"x"}}',
        b'{"id":"txn_1","amount":1,"source":{"charge":7}}',
        b'{"id":"txn_1","amount":1,"source":[]}',
        b'{"id":"txn_1","amount":9223372036854775808}',
        b'{"id":"txn_1","amount":true}',
        b'{"id":"txn_1","description":7}',
        b'{"id":"txn_1","source":{"x":tru}}',
    ],
)
def test_the_projection_refuses_what_is_not_the_common_shape(line: bytes) -> None:
    """Refused lines are parsed whole and checked as before (``archive._fast_chunks``)."""
    with pytest.raises(bt_projection.Refused):
        bt_projection.decoder()(line)


def test_book_with_rules_unexplained_books_the_same_entries() -> None:
    """``explain=False`` (the importer) changes only the explanations: one shared, empty one."""
    bts = [*GOLDEN, *expanded()]
    own = Path(__file__).parent.parent / "config" / "rules.yaml"
    client = dataclasses.replace(_CLIENT, shared_rules=(own,))
    explained = rules.book_with_rules(bts, client)
    unexplained = rules.book_with_rules(bts, client, explain=False)
    assert [e for e, _ in unexplained] == [e for e, _ in explained]
    assert {id(why) for _, why in unexplained} == {id(rules.engine.UNEXPLAINED)}
    assert any(why.matched for _, why in explained)
