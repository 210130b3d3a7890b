"""The hostile corpus's one assertion: a refusal is clean, named, fixable, and changes nothing.

Each case runs the real ``beancount-stripe`` command (or ``import.py``) in a subprocess, so a
traceback printed by the interpreter is seen exactly as a user would see it, then checks:

- the exit status is the documented one for that kind of problem;
- the message names the problem (every string in ``mentions``) and says how to fix it;
- no traceback is printed;
- no file under the watched roots changed (sha256 before and after);
- no API key appears in the output or in any file under the watched roots.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from beancount_stripe.sync_state import STATE_NAME

BIN = Path(sys.executable).parent
CLI = str(BIN / "beancount-stripe")


def digest(*roots: Path) -> dict[str, str]:
    """sha256 of every file under ``roots`` (a root may be a file or missing).

    The sync state file is left out: it records every run, failed ones too, and is not books.
    """
    out: dict[str, str] = {}
    for root in roots:
        if root.is_file():
            out[str(root)] = hashlib.sha256(root.read_bytes()).hexdigest()
        elif root.is_dir():
            for p in sorted(root.rglob("*")):
                if p.is_file() and "__pycache__" not in p.parts and p.name != STATE_NAME:
                    out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@dataclass
class Run:
    code: int
    output: str  # stdout and stderr together, as a terminal shows them


def run(
    args: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 120,
    program: Sequence[str] = (CLI,),
) -> Run:
    """Run a command with the test's environment plus ``env``; never reads standard input."""
    full_env = {**os.environ, **(env or {})}
    full_env.pop("BEANCOUNT_STRIPE_CONFIG", None)
    full_env.setdefault("COLUMNS", "200")
    proc = subprocess.run(
        [*program, *args],
        env=full_env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Run(proc.returncode, proc.stdout)


def files_containing(secret: str, roots: Iterable[Path]) -> list[Path]:
    hits = []
    needle = secret.encode()
    for root in roots:
        paths = [root] if root.is_file() else (root.rglob("*") if root.is_dir() else [])
        for p in paths:
            if p.is_file() and needle in p.read_bytes():
                hits.append(p)
    return hits


def assert_refused(
    result: Run,
    *,
    code: int | Iterable[int],
    mentions: Sequence[str],
    before: Mapping[str, str],
    roots: Sequence[Path],
    keys: Sequence[str] = (),
    fix: bool = True,
) -> None:
    """The clean refusal every hostile case must end in (see the module docstring)."""
    codes = {code} if isinstance(code, int) else set(code)
    text = result.output
    assert result.code in codes, f"exit {result.code}, expected {sorted(codes)}:\n{text}"
    assert "Traceback" not in text, text
    low = text.lower()
    for m in mentions:
        assert m.lower() in low, f"message does not name {m!r}:\n{text}"
    if fix:
        assert "fix:" in low or "fix " in low or "to fix" in low, f"no fix given:\n{text}"
    after = digest(*roots)
    assert after == dict(before), _changed(before, after)
    for key in keys:
        assert key not in text, "an API key was printed"
        assert not files_containing(key, roots), "an API key was written to a file"


def _changed(before: Mapping[str, str], after: Mapping[str, str]) -> str:
    names = sorted(set(before) ^ set(after) | {k for k in before if after.get(k) != before[k]})
    return "files changed: " + ", ".join(names)
