"""The raw archive: balance transactions as Stripe sent them, one JSON Lines file per client month.

Layout: ``<archive_dir>/<YYYY-MM>.jsonl`` (the month in the client's time zone). The first line is a
header naming the client and account, so identifying a file (Fava does it on every Import page
view) reads a few hundred bytes, never the whole file. Then one balance transaction per line,
sorted by (created, id), serialized with sorted keys: the same transactions always give the same
bytes, so re-fetching changes nothing and git diffs stay small.

A month is marked ``complete`` once it was fetched after its end plus the overlap: nothing new can
appear in it, so a resumed backfill skips it.

Also reads the other shapes a user may hand us: a saved Stripe list response
(``{"object": "list", "data": [...]}``) or a bare JSON array of balance transactions.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import IO, Any

import orjson

from beancount_stripe import bt_projection, heap
from beancount_stripe.atomic import replace_atomic, write_atomic, write_error
from beancount_stripe.bt_check import check_bt, common_shape, projected_shape
from beancount_stripe.errors import InputFileError, LedgerError

HEADER_OBJECT = "beancount_stripe.archive"
ARCHIVE_VERSION = 1
MONTH_FILE_RE = re.compile(r"^(\d{4})-(\d{2})\.jsonl$")
_SNIFF_BYTES = 4096


@dataclass(frozen=True)
class ArchiveHeader:
    client: str
    stripe_account: str
    month: str
    complete: bool
    # Σ net per currency of the month's transactions (None in archives written before it was
    # recorded): the balance the archive implies, without reading every line
    nets: dict[str, int] | None = None


@dataclass(frozen=True)
class FileKind:
    """What a JSON file holds, decided by reading only its first bytes."""

    kind: str  # "archive" | "list" | "array"
    header: ArchiveHeader | None = None


def dumps(obj: Mapping[str, Any]) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def month_path(archive_dir: Path, month: str) -> Path:
    return archive_dir / f"{month}.jsonl"


def month_files(archive_dir: Path) -> list[tuple[str, Path]]:
    """(month, path) of every month file, oldest first."""
    if not archive_dir.is_dir():
        return []
    out = []
    for p in archive_dir.iterdir():
        m = MONTH_FILE_RE.match(p.name)
        if m:
            out.append((f"{m.group(1)}-{m.group(2)}", p))
    return sorted(out)


def sniff(path: Path) -> FileKind | None:
    """Cheaply tell whether ``path`` holds balance transactions, and in which shape."""
    try:
        with open(path, "rb") as f:
            head = f.read(_SNIFF_BYTES)
    except OSError:
        return None
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
    if text.startswith("{"):
        first_line = text.split("\n", 1)[0]
        if HEADER_OBJECT in first_line:
            try:
                h = json.loads(first_line)
            except json.JSONDecodeError:
                return None
            if h.get("object") == HEADER_OBJECT:
                return FileKind("archive", _header(h))
            return None
        compact = re.sub(r"\s+", "", text)
        is_list = '"object":"list"' in compact or '"data":[{' in compact
        if is_list and (_BT_MARKERS.search(compact) or _LIST_URL in compact):
            return FileKind("list")
        return None
    if text.startswith("["):
        compact = re.sub(r"\s+", "", text)
        if compact == "[]" or (compact.startswith("[{") and _BT_MARKERS.search(compact)):
            return FileKind("array")
    return None


# What only Stripe balance transaction data holds in its first KB: a transaction's own id or
# object name, or the URL a saved list response names. Any other JSON is not ours to identify.
_BT_MARKERS = re.compile(r'"(?:id":"txn_|object":"balance_transaction")')
_LIST_URL = '"url":"/v1/balance_transactions"'


def _header(h: Mapping[str, Any]) -> ArchiveHeader:
    return ArchiveHeader(
        client=str(h.get("client", "")),
        stripe_account=str(h.get("stripe_account", "")),
        month=str(h.get("month", "")),
        complete=bool(h.get("complete", False)),
        nets=_nets_of(h.get("net")),
    )


def _nets_of(value: Any) -> dict[str, int] | None:
    if not isinstance(value, dict):
        return None
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in value.values()):
        return None
    return {str(k): v for k, v in value.items()}


def month_nets(path: Path, header: ArchiveHeader) -> dict[str, int]:
    """Σ net per currency of one month file: from its header, or (older archives) its lines."""
    if header.nets is not None:
        return dict(header.nets)
    return sum_nets(read_transactions(path))


def sum_nets(transactions: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Σ net per (lower-case) currency."""
    totals: dict[str, int] = {}
    for bt in transactions:
        cur = str(bt["currency"]).lower()
        totals[cur] = totals.get(cur, 0) + int(bt["net"])
    return totals


def read_header(path: Path) -> ArchiveHeader | None:
    kind = sniff(path)
    return kind.header if kind else None


def month_headers(
    archive_dir: Path, client: str, stripe_account: str
) -> list[tuple[str, Path, ArchiveHeader]]:
    """(month, path, header) of every month file, refusing another account's archive."""
    out = []
    for month, path in month_files(archive_dir):
        header = read_header(path)
        if header is None:
            continue
        if header.stripe_account and header.stripe_account != stripe_account:
            raise LedgerError(
                f"this archive holds Stripe account {header.stripe_account}, but client "
                f"{client} is {stripe_account}",
                where=str(path),
                fix="give each client its own `archive` directory",
            )
        out.append((month, path, header))
    return out


def loads(text: str) -> Any:
    """Parse JSON with orjson (several times faster on a big archive), falling back to the
    standard parser for what orjson refuses but JSON allows (lone surrogate escapes, integers
    beyond 64 bits, NaN): same result, and the same error message, as ``json.loads``."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


_LINE_ID = re.compile(r'"id":"(txn_[^"]*)"')


def read_transactions(
    path: Path, *, skip_ids: Container[str] = frozenset()
) -> list[dict[str, Any]]:
    """All balance transactions in an archive file, a saved list response or a JSON array.

    In an archive file, lines whose transaction id is in ``skip_ids`` are not parsed at all (the
    first ``"id":"txn_…"`` of a line is the transaction's own: keys are sorted and no key before
    ``id`` holds an object with an id). Raises InputFileError naming the file, line and the fix
    for anything malformed.
    """
    kind = sniff(path)
    if kind is None:
        raise InputFileError(
            "not a file of Stripe balance transactions",
            where=str(path),
            fix="pass a beancount-stripe archive (.jsonl), a saved `GET /v1/balance_transactions` "
            'response ({"object": "list", "data": [...]}) or a JSON array of them',
        )
    if kind.kind == "archive":
        fast = _read_archive_fast(path, skip_ids)
        if fast is not None:
            return fast
        rows: list[dict[str, Any]] = []
        with open(path, encoding="utf-8") as f, heap.quiet_gc():  # parsed rows have no cycles
            for lineno, line in enumerate(f, 1):
                if lineno == 1 or not line.strip():
                    continue
                if skip_ids:
                    m = _LINE_ID.search(line)
                    if m and m.group(1) in skip_ids:
                        continue
                try:
                    obj = loads(line)
                except json.JSONDecodeError as e:
                    raise InputFileError(
                        f"line is not valid JSON ({e.msg}, column {e.colno})",
                        where=f"{path}:{lineno}",
                        fix="restore the file from git, or delete it and run `beancount-stripe "
                        "fetch` to fetch that month again",
                    ) from None
                rows.append(_check_bt(obj, f"{path}:{lineno}"))
        return rows
    try:
        with open(path, encoding="utf-8-sig") as f, heap.quiet_gc():
            doc = loads(f.read())
    except json.JSONDecodeError as e:
        raise InputFileError(
            f"invalid JSON ({e.msg})",
            where=f"{path}:{e.lineno}",
            fix="save the complete response body of the Stripe API call",
        ) from None
    data = doc.get("data") if isinstance(doc, dict) else doc
    if not isinstance(data, list):
        raise InputFileError(
            "expected a list response with a `data` array",
            where=str(path),
            fix='save the body of `GET /v1/balance_transactions` ({"object": "list", ...})',
        )
    return [_check_bt(obj, f"{path}: data[{i}]") for i, obj in enumerate(data)]


_LINE_ID_BYTES = re.compile(rb'"id":"(txn_[^"]*)"')


def _read_archive_fast(path: Path, skip_ids: Container[str]) -> list[dict[str, Any]] | None:
    """The rows of an archive file, read as bytes and parsed by orjson line by line; None when
    a line is not valid JSON (or not UTF-8), for the text reader to word the refusal."""
    rows: list[dict[str, Any]] = []
    try:
        for chunk in _fast_chunks(path, skip_ids, 1 << 62):
            rows += chunk
    except NotFastReadable:
        return None
    return rows


_READ_BUFFER = 1 << 16


class NotFastReadable(Exception):
    """An archive line the bytes reader cannot parse (not JSON, not UTF-8): the text reader
    (``read_transactions``) reads the file and words the refusal."""


def archive_chunks(
    path: Path, size: int, *, read_paths: Iterable[tuple[str, ...]] | None = None
) -> Iterator[list[dict[str, Any]]] | None:
    """The rows of an archive file in chunks of ``size`` lines, each row checked as
    ``read_transactions`` checks it (the same refusals); None for any other kind of file.

    For a big history read and booked chunk by chunk (the importer): each chunk is booked
    while its rows are still in the CPU caches, and freed before the next is parsed, whose rows
    then reuse the same memory; reading it all first measured ~20% slower at 100k rows. Raises
    ``NotFastReadable`` when a line needs the text reader: read the file whole then.

    With ``read_paths`` (the source paths the client's rules name, ``privacy.rule_paths``) a
    row's expanded source keeps only what booking and those rules read (``bt_projection``):
    for booking, not for storing.
    """
    kind = sniff(path)
    if kind is None or kind.kind != "archive":
        return None
    if read_paths is None:
        return _fast_chunks(path, frozenset(), size)
    read_paths = tuple(read_paths)
    return _projected_chunks(
        path, size, bt_projection.decoder(read_paths), bt_projection.array_decoder(read_paths)
    )


def _fast_chunks(
    path: Path,
    skip_ids: Container[str],
    size: int,
    project: Callable[[bytes], dict[str, Any]] | None = None,
) -> Iterator[list[dict[str, Any]]]:
    """The hot loop of reading a big history: no decoding pass, no per-line ``where`` text
    unless a row needs the full check (``bt_check.common_shape``), which then raises as usual.

    ``project`` (``bt_projection``) parses a line of the common shape; any other line is parsed
    whole and checked as without it. A line is first known to be UTF-8 (ASCII, or decoded once):
    the projection does not decode what it skips."""
    # 64 KB reads: the default 8 KB buffer made the lines (~1.5 KB each) cost twice as much
    with open(path, "rb", buffering=_READ_BUFFER) as f, heap.quiet_gc():  # rows have no cycles
        f.readline()  # the header
        yield from _line_chunks(f, path, 1, skip_ids, size, project)


def _line_chunks(
    lines: Iterable[bytes],
    path: Path,
    lineno: int,
    skip_ids: Container[str],
    size: int,
    project: Callable[[bytes], dict[str, Any]] | None,
) -> Iterator[list[dict[str, Any]]]:
    """``_fast_chunks``' loop over ``lines`` (the first numbered ``lineno + 1``)."""
    parse = orjson.loads
    common = common_shape
    refused = bt_projection.Refused
    projected = projected_shape
    rows: list[dict[str, Any]] = []
    append = rows.append
    for line in lines:
        lineno += 1
        if skip_ids:
            m = _LINE_ID_BYTES.search(line)
            if m:
                try:
                    if m.group(1).decode("utf-8") in skip_ids:
                        continue
                except UnicodeDecodeError:
                    raise NotFastReadable from None
        obj = None
        if project is not None and (line.isascii() or _is_utf8(line)):
            try:
                obj = project(line)
            except refused:
                pass
            else:
                if not projected(obj):
                    obj = None  # parsed whole below, and refused as without ``project``
        if obj is None:
            try:
                obj = parse(line)
            except orjson.JSONDecodeError:
                if line.isspace():
                    continue  # a blank line, as the text reader skips it
                raise NotFastReadable from None
            if not common(obj):
                obj = _check_bt(obj, f"{path}:{lineno}")
        append(obj)
        if len(rows) >= size:
            yield rows
            rows = []
            append = rows.append
    if rows:
        yield rows


def _projected_chunks(
    path: Path,
    size: int,
    project: Callable[[bytes], dict[str, Any]],
    project_array: Callable[[bytes], list[dict[str, Any]]],
) -> Iterator[list[dict[str, Any]]]:
    """``_fast_chunks`` with ``project``, ``size`` lines decoded in one call: the lines joined
    as one JSON array (``bt_projection.array_decoder``), which holds one row per line exactly
    when each line is one JSON value. A chunk with any other line (refused, blank, not UTF-8)
    is read line by line as before (``_line_chunks``), so refusals are worded as before. Saves
    the per-line Python loop (~0.3 µs of ~4.5 per line, bench_booking)."""
    refused = bt_projection.Refused
    projected = projected_shape
    with open(path, "rb", buffering=_READ_BUFFER) as f, heap.quiet_gc():  # rows have no cycles
        f.readline()  # the header
        lineno = 1
        while True:
            lines = list(islice(f, size))
            if not lines:
                return
            joined = lines.copy()
            joined[0] = b"[" + joined[0]
            joined[-1] += b"]"
            block = b",".join(joined)
            rows = None
            if block.isascii() or _is_utf8(block):
                try:
                    rows = project_array(block)
                except refused:
                    pass
                else:
                    if len(rows) != len(lines) or not all(map(projected, rows)):
                        rows = None
            if rows is None:
                rows = [
                    row
                    for chunk in _line_chunks(lines, path, lineno, (), 1 << 62, project)
                    for row in chunk
                ]
            lineno += len(lines)
            if rows:
                yield rows


def _is_utf8(line: bytes) -> bool:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _check_bt(obj: Any, where: str) -> dict[str, Any]:
    """The one balance-transaction check (``bt_check``), with the fix for a file on disk."""
    return check_bt(
        obj,
        where=where,
        fix="restore the file from git, or save the objects exactly as the Stripe API returned "
        "them; for an archive month, delete its file and run `beancount-stripe fetch` again",
    )


def write_month(
    archive_dir: Path,
    month: str,
    client: str,
    stripe_account: str,
    transactions: Iterable[Mapping[str, Any]],
    *,
    complete: bool,
) -> bool:
    """Merge ``transactions`` into the month file atomically; return True if the bytes changed.

    Existing lines win over nothing: a transaction already archived is replaced by the newly
    fetched copy (its status may have moved from pending to available), never duplicated.
    """
    path = month_path(archive_dir, month)
    merged: dict[str, Mapping[str, Any]] = {}
    old_complete = False
    if path.exists():
        header = read_header(path)
        old_complete = bool(header and header.complete)
        for bt in read_transactions(path):
            merged[bt["id"]] = bt
    for bt in transactions:
        merged[bt["id"]] = bt
    ordered = sorted(merged.values(), key=lambda b: (b["created"], b["id"]))
    header_obj = {
        "object": HEADER_OBJECT,
        "version": ARCHIVE_VERSION,
        "client": client,
        "stripe_account": stripe_account,
        "month": month,
        "complete": complete or old_complete,
        "net": dict(sorted(sum_nets(ordered).items())),
    }

    def lines() -> Iterator[bytes]:  # the month's text is never held whole
        yield (dumps(header_obj) + "\n").encode("utf-8")
        for bt in ordered:
            yield (dumps(bt) + "\n").encode("utf-8")

    return _write_lines_atomic(path, lines)


# -- payout contents (reconcile.py) ---------------------------------------------------------------

PAYOUTS_FILE = "payouts.ndjson"
PAYOUTS_OBJECT = "beancount_stripe.payouts"


def payouts_path(archive_dir: Path) -> Path:
    """JSON Lines too, but not named ``*.jsonl``: what globs the archive for months skips it."""
    return archive_dir / PAYOUTS_FILE


def read_payouts(archive_dir: Path) -> dict[str, dict[str, Any]]:
    """Recorded payouts by id (``{}`` when none were recorded yet).

    One payout per line after a header line; see ``reconcile.record_payout_contents``.
    """
    path = payouts_path(archive_dir)
    out: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return out
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            obj = _payout_line(line, path, lineno)
            if obj is not None:
                out[obj["id"]] = obj
    return out


def _payout_line(line: str, path: Path, lineno: int) -> dict[str, Any] | None:
    """The payout recorded on one line of ``path`` (None for a blank line or the header)."""
    if not line.strip():
        return None
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise InputFileError(
            f"line is not valid JSON ({e.msg}, column {e.colno})",
            where=f"{path}:{lineno}",
            fix="delete the file; the next sync records every payout again",
        ) from None
    if lineno == 1 and obj.get("object") == PAYOUTS_OBJECT:
        return None
    if not isinstance(obj, dict) or not str(obj.get("id", "")).startswith("po_"):
        raise InputFileError(
            "not a recorded payout",
            where=f"{path}:{lineno}",
            fix="delete the file; the next sync records every payout again",
        )
    return obj


def write_payouts(
    archive_dir: Path, client: str, stripe_account: str, records: Mapping[str, Mapping[str, Any]]
) -> bool:
    """Write every recorded payout atomically, sorted by (created, id); True if bytes changed.

    A ``PayoutStore`` is written line by line, never held in memory whole.
    """
    header = {
        "object": PAYOUTS_OBJECT,
        "version": ARCHIVE_VERSION,
        "client": client,
        "stripe_account": stripe_account,
    }
    if isinstance(records, PayoutStore):
        return records.write(dumps(header))
    ordered = sorted(records.values(), key=_payout_key)
    text = "\n".join([dumps(header), *(dumps(r) for r in ordered)]) + "\n"
    return write_atomic(payouts_path(archive_dir), text)


def _payout_key(record: Mapping[str, Any]) -> tuple[Any, str]:
    return (record.get("created", 0), record["id"])


class PayoutStore(MutableMapping[str, dict[str, Any]]):
    """The recorded payouts as a mapping that holds no record in memory.

    An automatic payout's record lists every transaction it settles, so the records together
    grow with the history (about 1 KB per transaction as parsed JSON), and recording payout
    contents reads them all and rewrites them every few payouts. This store keeps only where
    each record's line is (in the payouts file, or in a temporary spill file for records set
    since) and its sort key; ``write_payouts`` streams it to the file, with the same bytes as
    for a dict of the same records. Each read parses the record's line again: a record changed
    in place is kept only once it is set back.
    """

    def __init__(self, archive_dir: Path) -> None:
        self._path = payouts_path(archive_dir)
        # id -> (spilled, offset, length, sort key) of the record's line
        self._at: dict[str, tuple[bool, int, int, tuple[Any, str]]] = {}
        self._canonical = False  # the file's lines are as ``dumps`` writes them (once written)
        self._spill: IO[bytes] | None = None
        self._file: IO[bytes] | None = None
        if not self._path.exists():
            return
        offset = 0
        with open(self._path, "rb") as f:
            for lineno, raw in enumerate(f, 1):
                obj = _payout_line(raw.decode("utf-8"), self._path, lineno)
                if obj is not None:
                    self._at[obj["id"]] = (False, offset, len(raw), _payout_key(obj))
                offset += len(raw)

    def __getitem__(self, po_id: str) -> dict[str, Any]:
        spilled, offset, length, _key = self._at[po_id]
        return dict(json.loads(self._read(spilled, offset, length)))

    def __setitem__(self, po_id: str, record: dict[str, Any]) -> None:
        if self._spill is None:
            self._spill = tempfile.TemporaryFile()  # noqa: SIM115 - closed with the store
        line = _payout_bytes(record)
        offset = self._spill.seek(0, os.SEEK_END)
        self._spill.write(line)
        self._at[po_id] = (True, offset, len(line), _payout_key(record))

    def __delitem__(self, po_id: str) -> None:
        del self._at[po_id]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._at))

    def __len__(self) -> int:
        return len(self._at)

    def _read(self, spilled: bool, offset: int, length: int) -> bytes:
        if spilled:
            assert self._spill is not None
            self._spill.seek(offset)
            return self._spill.read(length)
        if self._file is None:  # one handle for all reads until the next write
            self._file = open(self._path, "rb")  # noqa: SIM115 - closed with the store
        self._file.seek(offset)
        return self._file.read(length)

    def write(self, header: str) -> bool:
        """Write ``header`` and every record, sorted by (created, id); True if bytes changed."""
        at: dict[str, tuple[bool, int, int, tuple[Any, str]]] = {}

        def lines() -> Iterator[bytes]:
            first = (header + "\n").encode("utf-8")
            yield first
            offset = len(first)
            for po_id in sorted(self._at, key=lambda i: self._at[i][3]):
                spilled, start, length, key = self._at[po_id]
                raw = self._read(spilled, start, length)
                if not spilled and not self._canonical:  # as a dict's records are written
                    raw = _payout_bytes(json.loads(raw))
                at[po_id] = (False, offset, len(raw), key)
                offset += len(raw)
                yield raw

        changed = _write_lines_atomic(self._path, lines)
        self._at, self._canonical = at, True  # every record is now a line of the file
        self.close()
        return changed

    def close(self) -> None:
        for f in (self._spill, self._file):
            if f is not None:
                f.close()
        self._spill = self._file = None


def _payout_bytes(record: Mapping[str, Any]) -> bytes:
    return (dumps(record) + "\n").encode("utf-8")


def open_payouts(archive_dir: Path) -> PayoutStore:
    """The recorded payouts, as a mapping that reads each record from disk when asked."""
    return PayoutStore(archive_dir)


def _write_lines_atomic(path: Path, lines: Callable[[], Iterable[bytes]]) -> bool:
    """``write_atomic`` for text made line by line (``lines()`` may be called twice), never
    held whole: False, and nothing written, if the file already holds exactly these bytes."""
    if _same_bytes(path, lines()):
        return False
    replace_atomic(path, lambda f: f.writelines(lines()))
    return True


def _same_bytes(path: Path, lines: Iterable[bytes]) -> bool:
    """Whether ``path`` holds exactly ``lines``; stops at the first difference."""
    try:
        with open(path, "rb") as f:
            for line in lines:
                if f.read(len(line)) != line:
                    return False
            return not f.read(1)
    except FileNotFoundError:
        return False
    except OSError as e:
        raise write_error(path, e) from None
