"""New entries spooled to a temp file beside the output, appended in one atomic rename.

A backfill books month by month; holding its whole text (or its entries) in memory would grow
with the history. The spool takes each month's text as it is booked. At the end the output is
rebuilt in a second temp file (old text, the directives that must come first, the spooled
entries, the assertions), fsynced and renamed over the output: readers see the old file or the
new one, never a part. Without a path (a dry run) the text stays in memory.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from types import TracebackType
from typing import IO

from beancount_stripe.atomic import replace_atomic, write_error


class Spool:
    """Entry text written chunk by chunk; a blank line between chunks (as between entries)."""

    def __init__(self, beside: Path | None) -> None:
        self._beside = beside
        self._file: IO[str] | None = None
        self._tmp: str | None = None
        self._memory = io.StringIO()
        self._empty = True

    def __enter__(self) -> Spool:
        if self._beside is not None:
            parent = self._beside.parent
            try:
                parent.mkdir(parents=True, exist_ok=True)
                fd, self._tmp = tempfile.mkstemp(
                    prefix=f".{self._beside.name}.", suffix=".spool", dir=parent
                )
            except OSError as e:
                raise write_error(self._beside, e) from None
            self._file = os.fdopen(fd, "w", encoding="utf-8")
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._file is not None:
            self._file.close()
        if self._tmp is not None:
            Path(self._tmp).unlink(missing_ok=True)

    def _out(self) -> IO[str]:
        return self._file if self._file is not None else self._memory

    def write(self, text: str) -> None:
        if not text:
            return
        try:
            if not self._empty:
                self._out().write("\n")
            self._out().write(text)
        except OSError as e:
            raise write_error(self._beside or Path("."), e) from None
        self._empty = False

    def text(self) -> str:
        """Everything written so far (read back from the file when spooled to disk)."""
        if self._file is None:
            return self._memory.getvalue()
        self._file.flush()
        assert self._tmp is not None
        return Path(self._tmp).read_text(encoding="utf-8")

    def append_to(self, path: Path, header: str, before: list[str], after: list[str]) -> bool:
        """Append ``before`` blocks, the spooled entries, then ``after`` blocks to ``path``.

        Same bytes as ``ledger.append(path, before + [entries] + after, header)``; False (and
        nothing written) when there is nothing to append.
        """
        if self._empty and not before and not after:
            return False
        try:  # the old text is copied a block at a time, never held whole
            old: IO[str] | None = open(path, encoding="utf-8")  # noqa: SIM115
        except FileNotFoundError:
            old = None
        except OSError as e:
            raise write_error(path, e) from None

        def write(raw: IO[bytes]) -> None:
            f = io.TextIOWrapper(raw, encoding="utf-8")
            _copy_old(old, header, f)
            # ledger.append: "\n" + each block with exactly one trailing newline
            for part in [*before, None, *after]:
                if part is None and self._empty:
                    continue
                f.write("\n")
                if part is None:
                    self._copy_entries(f)
                else:
                    f.write(part.rstrip("\n") + "\n")
            f.flush()
            f.detach()  # the temp file stays open for replace_atomic's fsync

        try:
            replace_atomic(path, write)
        finally:
            if old is not None:
                old.close()
        return True

    def _copy_entries(self, out: IO[str]) -> None:
        """The spooled text without its trailing newlines, plus one (as ``ledger.append``)."""
        if self._file is None:
            out.write(self._memory.getvalue().rstrip("\n") + "\n")
            return
        self._file.flush()
        assert self._tmp is not None
        size = os.path.getsize(self._tmp)
        with open(self._tmp, "rb") as src:
            # trailing newlines: find how many to drop, then copy the rest
            drop = 0
            while drop < size:
                src.seek(size - drop - 1)
                if src.read(1) != b"\n":
                    break
                drop += 1
            src.seek(0)
            out.flush()
            raw = out.buffer if hasattr(out, "buffer") else None
            if raw is None:  # pragma: no cover - text files opened here always have a buffer
                out.write(src.read(size - drop).decode("utf-8"))
            else:
                remaining = size - drop
                while remaining:
                    chunk = src.read(min(remaining, 1 << 20))
                    raw.write(chunk)
                    remaining -= len(chunk)
                raw.flush()
        out.write("\n")


def _copy_old(old: IO[str] | None, header: str, out: IO[str]) -> None:
    """The old text (``header`` for a new file), ending with a newline unless empty.

    Read in text mode like ``Path.read_text``, so line endings come out as ``ledger.append``
    writes them.
    """
    last = ""
    if old is None:
        out.write(header)
        last = header[-1:]
    else:
        while block := old.read(1 << 22):
            out.write(block)
            last = block[-1]
    if last and last != "\n":
        out.write("\n")
