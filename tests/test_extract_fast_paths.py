"""The fast paths of the extract path agree with the careful paths they short-cut.

``bt_check.common_shape`` accepts only what the full check accepts; the archive's bytes reader
returns what the text reader returns and leaves every refusal to it; the booking memo of the last
local day gives the date ``zoneinfo`` gives, in zones with odd offsets and DST at midnight.
"""

from __future__ import annotations

import copy
import datetime
import json
import random
import zoneinfo
from pathlib import Path
from typing import Any

import pytest

from beancount_stripe import archive, booking, bt_check, importer, ledger
from beancount_stripe.config import ClientConfig, KeySource, make_accounts
from beancount_stripe.errors import BeancountStripeError

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


@pytest.mark.parametrize("case", ["plain", "unordered", "not json", "bad row", "not utf8"])
def test_extract_in_chunks_books_and_refuses_like_the_whole_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    """Chunks of 3 lines (GOLDEN has more): the same text, the same refusal, as reading whole."""
    ordered = sorted(GOLDEN, key=lambda bt: (bt["created"], bt["id"]))
    if case == "unordered":  # later transactions first: chunks sort before their predecessors
        ordered.reverse()
    rows = [json.dumps(bt, sort_keys=True) for bt in ordered]
    if case == "not json":
        rows[-2] = rows[-2][:-5]
    elif case == "bad row":
        rows[-1] = json.dumps(dict(ordered[-1], net=1))
    path = _archive(tmp_path, rows)
    if case == "not utf8":
        path.write_bytes(path.read_bytes().replace(b'"txn_', b'"txn_\xff', 1))
    client = _client(tmp_path)
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
    assert taken == [case == "plain"], taken
    if case == "plain":
        assert got[0] == "text" and got[1].count("stripe_id") == len(GOLDEN)
    else:
        assert got[0] != "text" or case == "unordered"
