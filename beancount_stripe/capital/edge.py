"""The I/O edge used by the CLI and the importer: import a Capital CSV file into the client's
Capital output file, and report each loan's status from the ledger on disk."""

from __future__ import annotations

import datetime
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from beancount.core import data

from beancount_stripe import archive, currency, ledger
from beancount_stripe.capital.held import ledger_items
from beancount_stripe.capital.kinds import MATCH_DAYS, PAYDOWN, PAYOUT, PAYOUT_REVERSAL
from beancount_stripe.capital.parse import CapitalFile, CapitalRow, read_csv, require_capital
from beancount_stripe.capital.plan import Plan, plan_import
from beancount_stripe.config import ClientConfig, LoanConfig
from beancount_stripe.errors import ConfigError, LedgerError
from beancount_stripe.ledger import ScannedEntry

# -- the I/O edge: import a file, report a loan's status ---------------------------------------

OUTPUT_HEADER = """\
;; Stripe Capital of {name} ({account}), written by `beancount-stripe capital import`.
;; The capital_* metadata is how the tool knows which Capital rows are booked: keep it when you
;; edit an entry. See "Stripe Capital" in the README for how these entries meet the synced ones.
"""


@dataclass
class ImportResult:
    """The outcome of importing one Capital CSV for one client (CLI summary, tests)."""

    client: ClientConfig
    file: CapitalFile
    plan: Plan
    output: Path
    text: str = ""
    changed_files: list[Path] = field(default_factory=list)
    dry_run: bool = False


def archive_for(
    client: ClientConfig, rows: Iterable[CapitalRow]
) -> tuple[list[dict[str, Any]], set[str]]:
    """(financing BTs archived around the rows' dates, every archive month marked complete)."""
    return _archive_of(client, _months(rows))


def _archive_of(
    client: ClientConfig, months: Collection[str]
) -> tuple[list[dict[str, Any]], set[str]]:
    """(financing BTs of the archive months in ``months``, every complete month)."""
    bts: list[dict[str, Any]] = []
    complete: set[str] = set()
    for month, path, header in archive.month_headers(
        client.archive_dir, client.id, client.stripe_account
    ):
        if header.complete:
            complete.add(month)
        if month in months:
            bts.extend(
                bt
                for bt in archive.read_transactions(path)
                if str(bt.get("type", "")).startswith("financing_")
                or str(bt.get("reporting_category", "")).startswith("financing_")
            )
    return bts, complete


def _months(rows: Iterable[CapitalRow]) -> set[str]:
    out = set()
    for row in rows:
        for d in range(-MATCH_DAYS, MATCH_DAYS + 1):
            out.add((row.date + datetime.timedelta(days=d)).strftime("%Y-%m"))
    return out


def _open_date(
    entries: Sequence[data.Directive], state: ledger.LedgerState
) -> datetime.date | None:
    """When to open new accounts: before anything sync or this import can book on them.

    A ledger sync has never written to may later receive the client's whole history, which can
    start years before the loan; accounts are then opened at Stripe's beginning (2010).
    """
    if not entries:
        return None
    first = min(e.date for e in entries)
    oldest = min(
        (day for sid, day in state.stripe_ids.items() if sid not in state.capital_ids),
        default=None,
    )
    if oldest is None:
        return datetime.date(2010, 1, 1)
    return min(first, oldest)


def import_file(path: Path, client: ClientConfig, *, dry_run: bool = False) -> ImportResult:
    """Import one Capital CSV into the client's Capital output file (atomic; all or nothing)."""
    require_capital(client)
    with ledger.locked(client.ledger):
        return _import_locked(path, client, dry_run=dry_run)


def _import_locked(path: Path, client: ClientConfig, *, dry_run: bool) -> ImportResult:
    capital = require_capital(client)
    capital_file = read_csv(path, client)
    if not client.ledger.exists():
        raise LedgerError(
            "the client's ledger does not exist yet",
            where=str(client.ledger),
            fix=f"run `beancount-stripe sync {client.id}` first, or create the ledger with "
            f'`include "{capital.output.name}"`',
        )
    state = ledger.scan(client.ledger, client.output, capital.output)
    ledger.check_included(client.ledger, capital.output, state, ours=[client.output])
    bts, complete = archive_for(client, capital_file.rows)
    plan = plan_import(
        capital_file,
        client,
        state.capital_entries,
        booked_ids=state.stripe_ids.keys(),
        archive_bts=bts,
        complete_months=complete,
        balances=state.balances,
        filename=str(path),
    )
    result = ImportResult(client, capital_file, plan, capital.output, dry_run=dry_run)
    blocks: list[str] = []
    directives = plan.directives
    open_date = _open_date(directives, state)
    if open_date is not None:
        used = {p.account for e in plan.entries for p in e.postings}
        used.update(a.account for a in plan.assertions)
        opens = ledger.open_directives(used, state.open_accounts, open_date)
        if opens:
            blocks.append(ledger.format_entries(opens))
    if plan.entries:
        blocks.append(ledger.format_entries(plan.entries))
    if plan.assertions:
        blocks.append(ledger.format_entries(plan.assertions))
    result.text = "\n".join(blocks)
    if dry_run or not blocks:
        return result
    header = OUTPUT_HEADER.format(name=client.name, account=client.stripe_account)
    if ledger.append(capital.output, blocks, header):
        result.changed_files.append(capital.output)
    return result


# -- status ----------------------------------------------------------------------------------------


@dataclass
class LoanStatus:
    """Where a loan stands according to the ledger (minor units)."""

    loan: LoanConfig
    paid_out: int = 0  # financing payouts, less their reversals
    repaid: int = 0  # paydowns, less their reversals (withheld + other)
    withheld: int = 0  # the part of ``repaid`` withheld from sales
    fees_paid: int = 0  # fee parts booked
    principal_repaid: int = 0  # principal parts booked
    unsplit: int = 0  # repaid by synced paydowns whose split no CSV has given yet
    unsplit_count: int = 0

    @property
    def fee_total(self) -> int:
        return currency.to_minor(self.loan.fee, self.loan.currency)

    @property
    def principal_outstanding(self) -> int:
        """What the liability account holds for this loan (unsplit paydowns count whole)."""
        return self.paid_out - self.principal_repaid - self.unsplit

    @property
    def left_to_repay(self) -> int:
        return self.paid_out + self.fee_total - self.repaid


def loan_status(client: ClientConfig, scanned: Iterable[ScannedEntry]) -> list[LoanStatus]:
    """Per configured loan: paid out, repaid (withheld or paid), fees and principal outstanding."""
    loans = client.capital.loans if client.capital else ()
    out = {loan.id: LoanStatus(loan) for loan in loans}
    for item in ledger_items(scanned, client):
        status = out.get(item.loan or "")
        if status is None or item.amount is None:
            continue
        if item.origin == "sync" and item.split:
            continue  # counted through its split entry
        if item.kind in (PAYOUT, PAYOUT_REVERSAL):
            status.paid_out += item.amount
            continue
        magnitude = -item.amount  # + for a paydown, − for its reversal
        status.repaid += magnitude
        if item.withheld:
            status.withheld += magnitude
        if item.origin == "sync":
            status.unsplit += magnitude
            status.unsplit_count += 1 if item.kind == PAYDOWN else -1
        else:
            status.fees_paid += item.fee
            status.principal_repaid += magnitude - item.fee
    return list(out.values())


def status_of(client: ClientConfig) -> list[LoanStatus]:
    """``loan_status`` of the client's ledger as it is on disk."""
    capital = client.capital
    if capital is None:
        raise ConfigError(
            f"client {client.id} has no Stripe Capital loans configured",
            where=str(client.source_file or f"client {client.id}"),
            fix="add a `capital:` block to the client (see config/README.md)",
        )
    state = ledger.scan(client.ledger, client.output, capital.output)
    return loan_status(client, state.capital_entries)
