"""The payout records on disk: ``PayoutStore`` writes what a dict of the same records writes.

Recording payout contents keeps the records in a ``PayoutStore`` (only line positions in
memory); these tests pin that it reads, updates and writes exactly like the plain dict
``read_payouts`` returns, including files a person edited (spacing, key order, no header).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from beancount_stripe import archive
from beancount_stripe.errors import InputFileError


def _record(n: int, created: int, members: int | None = 2) -> dict[str, Any]:
    txns = None
    if members is not None:
        txns = [
            {"id": f"txn_{n}_{i}", "amount": 100 * i, "description": "Ünïcode ☕", "fee": 3}
            for i in range(members)
        ]
    return {
        "id": f"po_{n:04d}",
        "created": created,
        "status": "paid",
        "automatic": members is not None,
        "transactions": txns,
    }


def _write_dict(folder: Path, records: dict[str, dict[str, Any]]) -> bytes:
    archive.write_payouts(folder, "c", "acct_1", records)
    return archive.payouts_path(folder).read_bytes()


def test_store_writes_the_bytes_a_dict_writes(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    first = {r["id"]: r for r in (_record(1, 30), _record(2, 10), _record(3, 20, None))}
    _write_dict(a, first)
    _write_dict(b, first)

    store = archive.open_payouts(b)
    assert dict(store) == archive.read_payouts(a) == first
    assert len(store) == 3 and "po_0002" in store and store.get("po_9999") is None
    # nothing new: same bytes, nothing written
    assert archive.write_payouts(b, "c", "acct_1", store) is False

    # a new record (sorting between old ones) and a changed one, twice over (the store is reused
    # after each write, as record_payout_contents does)
    changed = dict(first)
    for n, created in ((4, 15), (5, 5)):
        changed[f"po_{n:04d}"] = store[f"po_{n:04d}"] = _record(n, created)
        changed["po_0001"] = store["po_0001"] = dict(changed["po_0001"], status=f"s{n}")
        assert archive.write_payouts(b, "c", "acct_1", store) is True
        assert archive.payouts_path(b).read_bytes() == _write_dict(a, changed)
    assert dict(store) == archive.read_payouts(b) == changed


def test_store_rewrites_an_edited_file_as_a_dict_would(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    b.mkdir()
    # no header, keys unsorted, spaces, a blank line, a duplicate id (the last one wins), no
    # newline at the end
    archive.payouts_path(b).write_text(
        '{"id": "po_0002", "created": 10, "transactions": null}\n'
        "\n"
        '{"transactions": [], "id": "po_0001", "created": 20}\n'
        '{"id": "po_0002", "created": 5, "transactions": null, "status": "paid"}',
        encoding="utf-8",
    )
    expected = archive.read_payouts(b)
    store = archive.open_payouts(b)
    assert dict(store) == expected
    assert archive.write_payouts(b, "c", "acct_1", store) is True
    assert archive.payouts_path(b).read_bytes() == _write_dict(a, expected)


def test_store_refuses_what_read_payouts_refuses(tmp_path: Path) -> None:
    tmp_path.mkdir(exist_ok=True)
    archive.payouts_path(tmp_path).write_text('{"object": "list"}\n{"id": "x"}\n')
    with pytest.raises(InputFileError) as read_error:
        archive.read_payouts(tmp_path)
    with pytest.raises(InputFileError) as store_error:
        archive.open_payouts(tmp_path)
    assert str(store_error.value) == str(read_error.value)
