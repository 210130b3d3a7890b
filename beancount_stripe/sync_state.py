"""The record of each client's syncs: when, by whom, with what result (issue 9).

Every sync from any entry point (the CLI, cron, Fava, the demo, a Python caller) records one
run in a small JSON file beside the client's ledger, ``.beancount-stripe-state.json``. Fava's
Stripe page shows it; nothing else depends on it, and git ignores it, so syncing causes no churn.
It is written atomically (temp file + rename) and keeps the last ``HISTORY`` runs per client.

The record holds no key and no part of one: error messages are masked before they are stored.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import re
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from beancount_stripe.atomic import write_atomic
from beancount_stripe.config import ClientConfig

STATE_NAME = ".beancount-stripe-state.json"
HISTORY = 20
VIA_ENV = "BEANCOUNT_STRIPE_VIA"  # cli | cron | fava | …: who runs the sync, when not guessed
_write_lock = threading.Lock()  # one writer per process; across processes the rename is atomic


@dataclass
class SyncRun:
    """One sync of one client as recorded in the state file."""

    client: str
    started: str  # ISO 8601, UTC
    finished: str
    via: str  # cli, cron, fava, demo, python
    result: str  # ok, warnings, error
    entries_added: int = 0
    flagged: int = 0
    fetched: int = 0
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stripe_balance: dict[str, str] = field(default_factory=dict)  # CUR → decimal text
    ledger_clearing: dict[str, str] = field(default_factory=dict)  # CUR → decimal text
    waiting: dict[str, str] = field(default_factory=dict)  # CUR → decimal text (summary modes)

    def tie_out(self) -> dict[str, str]:
        """Per currency: the ledger's clearing balance minus Stripe's, when they differ."""
        out: dict[str, str] = {}
        from decimal import Decimal

        for cur in sorted(set(self.stripe_balance) | set(self.ledger_clearing)):
            diff = (
                Decimal(self.ledger_clearing.get(cur, "0"))
                + Decimal(self.waiting.get(cur, "0"))
                - Decimal(self.stripe_balance.get(cur, "0"))
            )
            if diff:
                out[cur] = str(diff)
        return out


def state_path(client: ClientConfig) -> Path:
    """The state file of ``client``: beside its main ledger."""
    return client.ledger.parent / STATE_NAME


def detect_via(env: Mapping[str, str] | None = None, *, tty: bool | None = None) -> str:
    """Who runs a CLI sync: ``$BEANCOUNT_STRIPE_VIA`` if set, else cron without a terminal."""
    env = os.environ if env is None else env
    explicit = env.get(VIA_ENV, "").strip()
    if explicit:
        return explicit
    if tty is None:
        tty = sys.stdin.isatty() or sys.stdout.isatty()
    return "cli" if tty else "cron"


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat()


def _load(path: Path) -> dict[str, Any]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"version": 1, "clients": {}}
    if not isinstance(raw, dict) or not isinstance(raw.get("clients"), dict):
        return {"version": 1, "clients": {}}
    return raw


def record(client: ClientConfig, run: SyncRun) -> None:
    """Append ``run`` to the client's history (newest last), keeping the last ``HISTORY``.

    A state file that cannot be written never fails a sync: the books matter, this does not.
    Nor does it create the ledger's folder: a first sync that fails leaves no trace on disk.
    """
    path = state_path(client)
    if not path.parent.is_dir():
        return
    with _write_lock:
        state = _load(path)
        runs = state["clients"].setdefault(client.id, [])
        runs.append(asdict(run))
        del runs[:-HISTORY]
        with contextlib.suppress(OSError):
            write_atomic(path, json.dumps(state, indent=1, sort_keys=True) + "\n")


def history(client: ClientConfig) -> list[SyncRun]:
    """The recorded runs of ``client``, oldest first (empty before the first sync)."""
    runs = _load(state_path(client))["clients"].get(client.id) or []
    out = []
    for item in runs:
        if isinstance(item, dict):
            try:
                out.append(SyncRun(**item))
            except TypeError:
                continue
    return out


def last_run(client: ClientConfig) -> SyncRun | None:
    runs = history(client)
    return runs[-1] if runs else None


# -- the ledger side of the tie-out --------------------------------------------------------------


def clearing_totals(client: ClientConfig, files: Sequence[Path]) -> dict[str, str]:
    """The clearing account's balance per currency, summed from posting lines of ``files``.

    A text scan (as ``ledger.scan``), so recording it costs no Beancount load; entries whose
    clearing amount is elided are not counted (the tool never writes those). Files are read a
    block at a time: a long history's ledger is never held in memory whole.
    """
    from decimal import Decimal

    from beancount_stripe.ledger import text_blocks

    pattern = re.compile(
        r"^[ \t]+(?:[!*][ \t]+)?" + re.escape(client.accounts.clearing) + r"[ \t]+"
        r"(-?[\d,]*\.?\d+)[ \t]+([A-Z][A-Z0-9'._-]*)",
        re.MULTILINE,
    )
    totals: dict[str, Decimal] = {}
    for path in files:
        summed = dict(totals)  # kept only once the whole file was read
        try:
            for block in text_blocks(path):
                for m in pattern.finditer(block):
                    cur = m.group(2)
                    summed[cur] = summed.get(cur, Decimal(0)) + Decimal(m.group(1).replace(",", ""))
        except OSError:
            continue
        totals = summed
    return {cur: str(v) for cur, v in sorted(totals.items())}


def record_sync(
    client: ClientConfig,
    *,
    via: str,
    started: str,
    report: Any = None,
    error: BaseException | None = None,
) -> None:
    """Record one finished sync (``report``: a ``sync.SyncReport``) or failed one (``error``)."""
    from beancount_stripe import currency, ledger
    from beancount_stripe.stripe_api import mask_secrets

    run = SyncRun(client=client.id, started=started, finished=now_iso(), via=via, result="ok")
    if error is not None:
        run.result = "error"
        run.errors = [mask_secrets(str(error))]
    if report is not None:
        run.entries_added = report.booked_count
        run.flagged = int(report.flagged)
        run.fetched = int(report.fetched)
        run.warnings = [mask_secrets(w) for w in report.warnings]
        if run.warnings:
            run.result = "warnings"
        run.stripe_balance = {
            cur.upper(): str(currency.to_decimal(minor, cur))
            for cur, minor in sorted(report.stripe_balance.items())
        }
        run.waiting = {
            cur.upper(): str(currency.to_decimal(minor, cur))
            for cur, minor in sorted(report.waiting.items())
            if minor
        }
    try:
        files = ledger.files(client.ledger, client.output)
    except Exception:  # a broken ledger must not hide the sync's own result
        files = []
    run.ledger_clearing = clearing_totals(client, files)
    record(client, run)
