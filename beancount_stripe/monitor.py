"""Unattended syncs: the machine-readable summary of a run and the on-failure hook.

``sync --json`` prints :func:`run_summary` (it validates against the JSON schema shipped in
``beancount_stripe/schemas/sync-report.schema.json``); ``sync --on-failure CMD`` runs
:func:`run_hook` once when any client failed, so a cron job can send mail or a chat message.
Everything here goes through :func:`mask_secrets`: a key never reaches a hook or a log.
"""

from __future__ import annotations

import datetime
import json
import os
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

from beancount_stripe import __version__
from beancount_stripe.config import ClientConfig
from beancount_stripe.health import Health, tie_out
from beancount_stripe.stripe_api import mask_secrets
from beancount_stripe.sync import SyncReport

__all__ = [
    "SCHEMA_ID",
    "ClientOutcome",
    "client_summary",
    "failure_text",
    "run_hook",
    "run_summary",
    "schema",
]

SCHEMA_ID = "https://github.com/beancount-stripe/beancount-stripe/sync-report/v1"


@dataclass
class ClientOutcome:
    """One client's part of a run: its report, or the error that stopped it, and its books."""

    client: ClientConfig
    report: SyncReport | None = None
    error: str | None = None
    exit_status: int = 0
    health: Health | None = None
    checked: bool = False  # bean-check ran (``sync --check``)
    warnings: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.exit_status != 0


def schema() -> dict[str, Any]:
    """The JSON schema of :func:`run_summary`, as shipped in the package."""
    text = (
        resources.files("beancount_stripe")
        .joinpath("schemas/sync-report.schema.json")
        .read_text(encoding="utf-8")
    )
    return json.loads(text)


def _amount(number: Decimal) -> str:
    return f"{number:f}"


def client_summary(outcome: ClientOutcome) -> dict[str, Any]:
    """The JSON object of one client (see the schema for every field)."""
    c, report, health = outcome.client, outcome.report, outcome.health
    ties = []
    if report is not None and report.stripe_balance and health is not None:
        pending = report.booked if report.dry_run else ()
        for t in tie_out(
            report.stripe_balance,
            health.clearing,
            pending,
            c.accounts.clearing,
            waiting=report.waiting,
        ):
            ties.append(
                {
                    "currency": t.currency,
                    "ledger": _amount(t.ledger),
                    "stripe": _amount(t.stripe),
                    "difference": _amount(t.difference),
                    "ties_out": t.ties_out,
                }
            )
    transit = [
        {"currency": t.currency, "amount": _amount(t.amount), "payouts": t.payouts}
        for t in (health.transit if health else [])
    ]
    assertion = None
    if report is not None and report.assertion_date is not None:
        assertion = {"date": report.assertion_date.isoformat(), "new": bool(report.assertions)}
    bean_check = None
    if outcome.checked and health is not None:
        bean_check = {"ok": not health.errors, "errors": health.errors}
    warnings = list(report.warnings if report else []) + outcome.warnings
    return {
        "id": c.id,
        "name": c.name,
        "stripe_account": c.stripe_account,
        "ledger": str(c.ledger),
        "status": "failed" if outcome.failed else "ok",
        "exit_status": outcome.exit_status,
        "error": outcome.error,
        "dry_run": bool(report.dry_run) if report else False,
        "fetched": report.fetched if report else 0,
        "booked": report.booked_count if report else 0,
        "requests": report.requests if report else 0,
        "flagged": {
            "open": health.open_flagged if health is not None else None,
            "new": report.flagged if report else 0,
        },
        "tie_out": ties,
        "in_transit": transit,
        "balance_assertion": assertion,
        "bean_check": bean_check,
        "warnings": warnings,
        "files_changed": [str(p) for p in (report.changed_files if report else [])],
    }


def run_summary(
    outcomes: list[ClientOutcome], started: datetime.datetime, exit_status: int
) -> dict[str, Any]:
    """The whole run: one object per client, in the order they ran."""
    clients = [client_summary(o) for o in outcomes]
    summary = {
        "$schema": SCHEMA_ID,
        "tool": "beancount-stripe",
        "version": __version__,
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "exit_status": exit_status,
        "ok": exit_status == 0,
        "failed": [c["id"] for c in clients if c["status"] == "failed"],
        "clients": clients,
    }
    # Round-trip through mask_secrets: nothing shaped like a key leaves this function.
    return json.loads(mask_secrets(json.dumps(summary)))


def failure_text(summary: dict[str, Any]) -> str:
    """One line per failed client, for mail subjects and chat messages."""
    lines = []
    for c in summary["clients"]:
        if c["status"] == "failed":
            first = (c["error"] or "failed").splitlines()[0]
            lines.append(f"{c['id']}: exit {c['exit_status']}: {first}")
    return "\n".join(lines)


def run_hook(
    command: str,
    summary: dict[str, Any],
    *,
    hide_env: Iterable[str] = (),
    cwd: Path | None = None,
) -> int:
    """Run ``command`` through the shell once, with the run's summary.

    The command reads the JSON summary on stdin, and finds in its environment
    ``BEANCOUNT_STRIPE_FAILED`` (failed client ids, space-separated),
    ``BEANCOUNT_STRIPE_EXIT`` (the sync's exit status) and ``BEANCOUNT_STRIPE_SUMMARY`` (one
    line per failed client: id, exit status, first line of the error). The variables named in
    ``hide_env`` (the clients' key variables) are removed: the hook never sees a key. Returns its
    exit status.
    """
    hidden = set(hide_env)
    env = {
        **{k: v for k, v in os.environ.items() if k not in hidden},
        "BEANCOUNT_STRIPE_FAILED": " ".join(summary["failed"]),
        "BEANCOUNT_STRIPE_EXIT": str(summary["exit_status"]),
        "BEANCOUNT_STRIPE_SUMMARY": failure_text(summary),
    }
    proc = subprocess.run(
        command,
        shell=True,
        input=json.dumps(summary, indent=2),
        text=True,
        env=env,
        cwd=cwd,
        check=False,
    )
    return proc.returncode
