"""Atomic file replacement: a crash or kill at any instant leaves the old file or the new one.

Used for ledger files and archive files alike (temp file in the same directory, fsync, rename,
fsync the directory), so no reader ever sees a half-written file. A write that fails (no
permission, disk full, read-only file system) removes its temp file and raises a
``LedgerError`` naming the path and the fix: the old file is untouched.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from beancount_stripe.errors import LedgerError


def write_atomic(path: Path, text: str) -> bool:
    """Replace ``path`` with ``text`` via temp file + fsync + rename; False if already equal."""
    data = text.encode("utf-8")
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    except OSError as e:
        raise write_error(path, e) from None
    replace_atomic(path, lambda f: f.write(data))
    return True


def replace_atomic(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Write ``path`` anew through ``write(f)`` on a temp file beside it, then fsync and rename.

    The one recipe behind every writer here (whole texts, archive lines, the booking spool), so
    each gets the same crash safety, file mode and error wording.
    """
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, path.stat().st_mode & 0o7777 if path.exists() else 0o644)
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise write_error(path, e) from None
        raise
    _fsync_dir(path.parent)


def write_error(path: Path, error: OSError) -> LedgerError:
    """The typed error for a failed write: what happened to which path, and what to do."""
    code = error.errno
    if code == errno.ENOSPC or code == errno.EDQUOT:
        what, fix = "the disk is full", f"free space on the disk that holds {path.parent}"
    elif code == errno.EROFS:
        what, fix = "the file system is read-only", f"mount {path.parent} read-write"
    elif code in (errno.EACCES, errno.EPERM):
        what = "permission denied"
        fix = f"make {path.parent} writable for this user, or configure another path"
    elif code == errno.EISDIR:
        what, fix = "it is a directory", "configure a file path, or remove the directory"
    elif code == errno.ENOTDIR:
        what, fix = "a parent of it is a file", "configure a path whose parents are directories"
    else:
        what, fix = error.strerror or type(error).__name__, f"check {path.parent}"
    return LedgerError(
        f"cannot write {path}: {what}; nothing was written to it",
        where=str(path),
        fix=fix + ", then run this again",
    )


def check_writable(*paths: Path) -> None:
    """Refuse early (before any network traffic) when a file could not be written later.

    Each path is a file to be written; its nearest existing ancestor must be a writable
    directory, and the path itself must not be a directory. A write can still fail later (a
    full disk); ``write_atomic`` reports that.
    """
    for path in paths:
        if path.is_dir():
            raise write_error(path, IsADirectoryError(errno.EISDIR, "Is a directory"))
        parent = path.parent
        while not parent.exists():
            parent = parent.parent
        if not parent.is_dir():
            raise write_error(path, NotADirectoryError(errno.ENOTDIR, "Not a directory"))
        if not os.access(parent, os.W_OK | os.X_OK):
            err = errno.EROFS if _read_only(parent) else errno.EACCES
            raise write_error(path, OSError(err, os.strerror(err)))


def _read_only(directory: Path) -> bool:
    try:
        return bool(os.statvfs(directory).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
