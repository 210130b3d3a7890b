"""The client's ledger files: a fast scan of what is already booked, formatting, atomic append.

The ledger is the source of truth for what has been imported. Scanning it is a text scan for
``stripe_id`` metadata (plus ``open`` and ``balance`` lines), following ``include`` directives,
not a Beancount load: it must stay fast on a client's whole history and must work even while a
ledger has errors a bookkeeper is still fixing. A deleted entry is therefore simply re-imported.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import glob
import hashlib
import os
import re
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

from beancount.core import data

from beancount_stripe import currency, entry_text
from beancount_stripe.atomic import write_atomic
from beancount_stripe.currency_names import NAMES
from beancount_stripe.errors import LedgerError

_DATE_LINE = re.compile(
    r"^(\d{4}-\d{2}-\d{2})\s+(\S+)(?:\s+(\S+))?(?:\s+(-?[\d.,]+)\s+([A-Z][A-Z0-9'._-]*))?"
)
_STRIPE_ID = re.compile(r'^\s+stripe_id:\s*"([^"]+)"')
_SUMMARY = re.compile(r'^\s+stripe_summary:\s*"([^"]+)"')
_INCLUDE = re.compile(r'^include\s+"([^"]+)"')
# Only entries with one of these in an indented line are parsed in full (see ``ScannedEntry``).
_FULL_MARKERS = ("capital_", "financing_")
_META_LINE = re.compile(
    r'^\s+([a-z][A-Za-z0-9_-]*):\s*(?:"((?:[^"\\]|\\.)*)"|(\S[^;]*?))?\s*(?:;.*)?$'
)
_POSTING_LINE = re.compile(
    r"^\s+(?:[!*]\s+)?([A-Z][A-Za-z0-9-]*(?::[A-Za-z0-9][A-Za-z0-9-]*)+)"
    r"\s+(-?[\d,]*\.?\d+)\s+([A-Z][A-Z0-9'._-]*)"
)
_TXN_FLAGS = frozenset("*!&#?%PSTCURM") | {"txn"}


@dataclass(frozen=True)
class ScannedEntry:
    """A transaction the scan read in full because it concerns Stripe Capital.

    Only entries with a ``capital_…`` key or a ``financing_…`` value are parsed this far, so the
    scan stays a cheap line filter for everything else. ``meta`` holds the entry's own metadata
    (text, quotes removed); ``postings`` the (account, number, currency) of each posting.
    """

    date: datetime.date
    meta: dict[str, str]
    postings: tuple[tuple[str, Decimal, str], ...]
    path: Path
    line: int
    header: str = ""  # the entry's first line (flag, payee, narration, tags, links)


@dataclass
class LedgerState:
    """What a client's ledger already holds, as far as syncing is concerned."""

    stripe_ids: dict[str, datetime.date] = field(default_factory=dict)
    open_accounts: set[str] = field(default_factory=set)
    commodities: set[str] = field(default_factory=set)  # currencies with a `commodity` directive
    # (date, account, currency) -> amount text of existing balance assertions
    balances: dict[tuple[datetime.date, str, str], str] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    includes: set[Path] = field(default_factory=set)  # include targets, even not-yet-existing
    # what the first root (the main ledger) reaches through its includes: the files Beancount reads
    main_closure: set[Path] = field(default_factory=set)
    # (including file, line, target) of include lines that match no file
    missing_includes: list[tuple[Path, int, str]] = field(default_factory=list)
    capital_entries: list[ScannedEntry] = field(default_factory=list)  # see ``ScannedEntry``
    # stripe_ids of entries a Capital CSV import wrote: booked, but not proof of sync's progress
    capital_ids: set[str] = field(default_factory=set)
    # summary entries (summary.py): their key -> date; the archive's index lists their ids
    summaries: dict[str, datetime.date] = field(default_factory=dict)

    @property
    def newest_date(self) -> datetime.date | None:
        """The newest day sync has booked (Capital imports may book single later days)."""
        return max(
            (day for sid, day in self.stripe_ids.items() if sid not in self.capital_ids),
            default=None,
        )


def scan(*roots: Path) -> LedgerState:
    """Scan each root file and every file it includes (recursively, globs allowed).

    Missing roots are skipped: before the first sync there is nothing to scan.
    """
    state = LedgerState()
    seen: set[Path] = set()
    for index, root in enumerate(roots):
        _scan_file(root.resolve(), state, seen)
        if index == 0:
            state.main_closure = set(state.files) | state.includes
    return state


def _scan_file(path: Path, state: LedgerState, seen: set[Path]) -> None:
    """Read ``path`` line by line: a long history's file is never held in memory whole.

    Only the current transaction's lines are kept (a Capital entry is parsed in full once it
    ends, see ``_parse_entry``), and dates are shared between the ids booked on one day.
    """
    if path in seen or not path.exists():
        return
    seen.add(path)
    state.files.append(path)
    date: datetime.date | None = None
    days: dict[str, datetime.date] = {}
    entry: list[str] = []  # the current transaction's lines, from its first; empty when none
    start = -1  # index of the current transaction's first line, or -1
    full = False  # parse the current transaction in full when it ends
    top = (-1, "")  # (index, text) of the last line that is not indented (blank lines count)
    index = -1
    for lines in _chunks(path):
        for line in lines:
            index += 1
            if not line:
                top = (index, line)
                if start >= 0:
                    entry.append(line)
                continue
            first = line[0]
            if first not in " \t":
                if full:
                    _parse_entry(entry, start, path, state)
                    full = False
                top = (index, line)
                entry = []
            if first.isdigit():
                start = -1
                m = _DATE_LINE.match(line)
                if not m:
                    date = None
                    continue
                day = m.group(1)
                date = days.get(day)
                if date is None:
                    try:
                        date = days[day] = datetime.date.fromisoformat(day)
                    except ValueError:
                        continue
                kind = m.group(2)
                if kind in _TXN_FLAGS:
                    start = index
                    entry.append(line)
                elif kind == "open" and m.group(3):
                    state.open_accounts.add(m.group(3))
                elif kind == "commodity" and m.group(3):
                    state.commodities.add(m.group(3))
                elif kind == "balance" and m.group(3) and m.group(5):
                    state.balances[(date, m.group(3), m.group(5))] = m.group(4) or ""
            elif first in " \t":
                if start >= 0:
                    entry.append(line)
                if "stripe_id" in line:
                    m2 = _STRIPE_ID.match(line)
                    if m2 and date is not None:
                        state.stripe_ids[m2.group(1)] = date
                    elif m2:
                        _unattributed(path, index, top)
                elif "stripe_summary" in line:
                    m4 = _SUMMARY.match(line)
                    if m4 and date is not None:
                        state.summaries[m4.group(1)] = date
                    elif m4:
                        _unattributed(path, index, top)
                if not full and start >= 0 and ("capital_" in line or "financing_" in line):
                    full = True  # see _FULL_MARKERS
            elif first == "i":
                m3 = _INCLUDE.match(line)
                if m3:
                    pattern = m3.group(1)
                    base = path.parent
                    target = pattern if Path(pattern).is_absolute() else str(base / pattern)
                    state.includes.add(Path(target).resolve())
                    matches = sorted(glob.glob(target))
                    if not matches:
                        state.missing_includes.append((path, index + 1, pattern))
                    for inc in matches:
                        _scan_file(Path(inc).resolve(), state, seen)
                start = -1
            else:
                date = None
                start = -1
    if full:
        _parse_entry(entry, start, path, state)


def _chunks(path: Path) -> Iterator[list[str]]:
    """The lines of ``path`` as ``str.splitlines`` cuts its whole text, a few MB at a time."""
    try:
        for block in text_blocks(path):
            yield block.splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise LedgerError(
            f"cannot read ledger file ({e})",
            where=str(path),
            fix="check the file's permissions and that it is UTF-8",
        ) from None


def text_blocks(path: Path, size: int = 1 << 20) -> Iterator[str]:
    """The text of ``path`` (read as ``Path.read_text`` does) in blocks of about ``size``.

    Each block but the last ends just after a newline, so no line is cut: a line-anchored
    pattern finds in the blocks what it finds in the whole text, which is never held at once.
    """
    with open(path, encoding="utf-8") as f:
        rest = ""
        while block := f.read(size):
            cut = block.rfind("\n") + 1
            if not cut:
                rest += block
                continue
            yield rest + block[:cut]
            rest = block[cut:]
        if rest:
            yield rest


def files(*roots: Path) -> list[Path]:
    """The files ``scan(*roots)`` reads (``LedgerState.files``), following includes only."""
    out: list[Path] = []
    seen: set[Path] = set()
    for root in roots:
        _walk(root.resolve(), out, seen)
    return out


def _walk(path: Path, out: list[Path], seen: set[Path]) -> None:
    if path in seen or not path.exists():
        return
    seen.add(path)
    out.append(path)
    for lines in _chunks(path):
        for line in lines:
            if line[:1] == "i" and (m := _INCLUDE.match(line)):
                pattern = m.group(1)
                target = pattern if Path(pattern).is_absolute() else str(path.parent / pattern)
                for inc in sorted(glob.glob(target)):
                    _walk(Path(inc).resolve(), out, seen)


def _unattributed(path: Path, index: int, top: tuple[int, str]) -> None:
    """Refuse a ``stripe_id`` that belongs to no entry the scan can date.

    Its entry's first line is malformed (a date like ``2024-13-45``) or missing. Booking the
    transaction again would double it once the entry is repaired, so the sync stops instead.
    ``top`` is the last line above it that is not indented (``(-1, "")`` when none).
    """
    head = top[0] + 1
    first = top[1].strip() if head > 0 else ""
    shown = f": {first[:60]!r}" if first else ""
    raise LedgerError(
        f"a stripe_id belongs to an entry whose first line is not a valid dated entry{shown}; "
        "booking its transaction again would double it",
        where=f"{path}:{head if head > 0 else index + 1}",
        fix="repair the entry's date line (YYYY-MM-DD and a valid flag), or delete the whole "
        "entry to have it booked again, then run the sync again",
    )


def _parse_entry(lines: list[str], start: int, path: Path, state: LedgerState) -> None:
    """Read one transaction's own metadata and its postings (posting metadata is skipped).

    ``lines``: the transaction's, from its first (line ``start + 1`` of ``path``).
    """
    m = _DATE_LINE.match(lines[0])
    if m is None:  # pragma: no cover - the caller matched this line already
        return
    meta: dict[str, str] = {}
    postings: list[tuple[str, Decimal, str]] = []
    in_postings = False
    elided: list[tuple[int, str]] = []  # (index, account) of postings written without amount
    for line in lines[1:]:
        stripped = line.lstrip()
        if not stripped or stripped[0] == ";":
            continue
        if stripped[0].isupper() or stripped[0] in "!*":
            in_postings = True
            pm = _POSTING_LINE.match(line)
            if pm:
                try:
                    number = Decimal(pm.group(2).replace(",", ""))
                except InvalidOperation:
                    continue
                postings.append((pm.group(1), number, pm.group(3)))
            else:
                account = stripped.lstrip("!* ").split(None, 1)[0]
                elided.append((len(postings), account))
            continue
        if in_postings:
            continue  # metadata of a posting, not of the entry
        mm = _META_LINE.match(line)
        if mm:
            value = mm.group(2) if mm.group(2) is not None else (mm.group(3) or "")
            meta.setdefault(mm.group(1), value.replace('\\"', '"').replace("\\\\", "\\"))
    currencies = {c for _a, _n, c in postings}
    if len(elided) == 1 and len(currencies) == 1:  # Beancount fills in the one missing amount
        index, account = elided[0]
        total = sum((n for _a, n, _c in postings), Decimal(0))
        postings.insert(index, (account, -total, currencies.pop()))
    try:
        date = datetime.date.fromisoformat(m.group(1))
    except ValueError:
        return
    entry = ScannedEntry(date, meta, tuple(postings), path, start + 1, lines[0])
    state.capital_entries.append(entry)
    if "capital_kind" in meta and "stripe_id" in meta:
        state.capital_ids.add(meta["stripe_id"])


LOCK_DIR_ENV = "BEANCOUNT_STRIPE_LOCK_DIR"


def lock_path(main: Path) -> Path:
    """The client's lock file: derived from the ledger's absolute path alone.

    It must be the same file whatever exists on disk: a lock on "the ledger's folder" would be
    a different object before and after the first sync creates that folder, and two first syncs
    would both book everything. So it lives in a shared lock directory (``$TMPDIR`` by default,
    ``$BEANCOUNT_STRIPE_LOCK_DIR`` to move it) and never in the books.
    """
    key = hashlib.sha256(str(main.resolve()).encode("utf-8")).hexdigest()[:32]
    base = os.environ.get(LOCK_DIR_ENV) or os.path.join(tempfile.gettempdir(), "beancount-stripe")
    return Path(base) / f"{key}.lock"


@contextmanager
def locked(main: Path, *, timeout: float = 120.0) -> Iterator[None]:
    """Hold the client's lock (an flock on ``lock_path(main)``) while reading then writing.

    Two syncs of one client at once (cron and Fava, say) would each append what the other also
    appends; with the lock the second one waits, then sees the first one's entries.
    """
    path = lock_path(main)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):  # shared by every user who syncs these books
            path.parent.chmod(0o1777)
        try:  # open first without O_CREAT: another user's file in a sticky dir refuses O_CREAT
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o666)
    except OSError as e:
        raise LedgerError(
            f"cannot create the lock file {path} ({e.strerror})",
            where=str(main),
            fix=f"make {path.parent} writable, or set {LOCK_DIR_ENV} to a writable directory",
        ) from None
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LedgerError(
                        f"another beancount-stripe process has held the ledger for {timeout:.0f} s",
                        where=str(main),
                        fix="wait for the other sync or import to finish, then run this again",
                    ) from None
                time.sleep(0.1)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def format_entries(entries: Iterable[data.Directive]) -> str:
    """Beancount text for ``entries``: a blank line between entries, none between one-liners
    (a run of ``open`` directives reads as one block). Byte for byte Beancount's printer, written
    directly (entry_text.py) because the printer dominated the time of booking a big history."""
    return entry_text.format_entries(entries)


def open_directives(
    accounts: Iterable[str], already_open: set[str], date: datetime.date
) -> list[data.Open]:
    """``open`` entries for accounts the ledger does not open yet, so it loads on its own."""
    meta = data.new_metadata("<beancount-stripe>", 0)
    return [data.Open(meta, date, acc, None, None) for acc in sorted(set(accounts) - already_open)]


def commodity_directives(
    currencies: Iterable[str], declared: set[str], date: datetime.date
) -> list[data.Commodity]:
    """``commodity`` entries for currencies the ledger does not declare yet.

    Each names the currency and its display precision (Fava reads ``precision``), so a
    zero-decimal JPY shows as 16,327 and a three-decimal BHD to the fils.
    """
    out = []
    for com in sorted(set(currencies) - declared):
        meta = data.new_metadata("<beancount-stripe>", 0)
        meta["name"] = NAMES.get(com, com)
        if currency.is_known(com):
            meta["precision"] = Decimal(currency.exponent(com))
        out.append(data.Commodity(meta, date, com))
    return out


OUTPUT_HEADER = """\
;; Stripe balance transactions of {name} ({account}), written by beancount-stripe.
;; New entries are appended by `beancount-stripe sync`. Edit or move entries freely: the
;; stripe_id metadata is how the tool knows what is booked (a deleted entry is re-imported).
"""

MAIN_HEADER = """\
;; Books of {name}. Created by beancount-stripe; yours to edit.
option "title" "{name}"
{currency_option}
include "{output}"
"""


def ensure_main(main: Path, output: Path, name: str, operating_currency: str | None) -> str | None:
    """Text for a new main ledger (title, operating currency, include of ``output``) if ``main``
    does not exist yet, else None. An existing main ledger is the user's: see ``check_included``.
    """
    if main.exists():
        return None
    rel = _relative(output, main.parent)
    currency_option = (
        f'option "operating_currency" "{operating_currency}"' if operating_currency else ""
    )
    text = MAIN_HEADER.format(name=_escape(name), currency_option=currency_option, output=rel)
    return text.replace("\n\n", "\n")


def check_included(
    main: Path, output: Path, state: LedgerState, *, ours: Iterable[Path] = ()
) -> None:
    """Refuse when ``main`` exists but does not reach ``output`` through its includes (entries
    would be written where neither bean-check nor Fava look), or includes a file that does not
    exist (Beancount fails on it, and the scan cannot see which transactions it held).

    ``output`` and ``ours`` are files this tool creates, so they may be missing before their
    first write.
    """
    if not main.exists():
        return
    target = output.resolve()
    if target not in state.main_closure:
        raise LedgerError(
            f"the ledger does not include the Stripe output file {output}",
            where=str(main),
            fix=f'add the line: include "{_relative(output, main.parent)}"',
        )
    created_later = {target, *(p.resolve() for p in ours)}
    for including, line, pattern in state.missing_includes:
        resolved = Path(pattern if Path(pattern).is_absolute() else including.parent / pattern)
        if resolved.resolve() in created_later:
            continue
        raise LedgerError(
            f'the ledger includes "{pattern}", which matches no file; Beancount would fail '
            "on it, and entries it held would be booked again",
            where=f"{including}:{line}",
            fix="restore the file, or correct or remove the include line, then run this again",
        )


def append(path: Path, blocks: Sequence[str], header: str) -> bool:
    """Append text blocks to ``path`` atomically (the whole file is replaced in one rename)."""
    try:
        old = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        old = header
    if not blocks:
        return False
    body = old if old.endswith("\n") or not old else old + "\n"
    new = body + "\n" + "\n".join(b.rstrip("\n") + "\n" for b in blocks)
    return write_atomic(path, new)


def _relative(target: Path, base: Path) -> str:
    try:
        return str(target.resolve().relative_to(base.resolve()))
    except ValueError:
        return str(target.resolve())


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')
