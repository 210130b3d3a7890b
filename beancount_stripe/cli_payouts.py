"""The ``beancount-stripe payouts`` commands (registered from cli.py): list, show, match."""

from __future__ import annotations

import datetime
import difflib
import json
import os
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import click

from beancount_stripe import atomic, ledger, reconcile
from beancount_stripe.config import ClientConfig, load_config
from beancount_stripe.errors import BeancountStripeError, ConfigError, LedgerError
from beancount_stripe.stripe_api import mask_secrets


class _ClientFirstGroup(click.Group):
    """A group whose default command is ``list``: ``payouts acme`` = ``payouts list acme``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        help_asked = args[:1] in (["-h"], ["--help"])
        if args and not help_asked and args[0] not in self.commands:
            args = ["list", *args]
        return super().parse_args(ctx, args)


def _client(ctx: click.Context, client_id: str) -> ClientConfig:
    return load_config(ctx.obj["config"]).client(client_id)


def _run(fn: Any) -> None:
    try:
        fn()
    except BeancountStripeError as e:
        click.secho(f"error: {mask_secrets(str(e))}", fg="red", err=True)
        sys.exit(e.exit_code)


@click.group("payouts", cls=_ClientFirstGroup)
def payouts_group() -> None:
    """Payouts: what each contains, and whether a bank line cleared it.

    \b
      beancount-stripe payouts acme                  # table of acme's payouts
      beancount-stripe payouts acme po_…             # the payout's transactions
      beancount-stripe payouts acme --unmatched      # payouts no bank entry clears yet
      beancount-stripe payouts acme --json           # the same, as JSON
      beancount-stripe payouts match acme --dry-run  # match bank entries already in the ledger
    """


@payouts_group.command("list")
@click.argument("client_id", metavar="CLIENT")
@click.argument("payout_id", required=False)
@click.option("--unmatched", is_flag=True, help="Only payouts that no bank entry clears yet.")
@click.option(
    "--since",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Only payouts created on or after this date (YYYY-MM-DD).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def payouts_list(
    ctx: click.Context,
    client_id: str,
    payout_id: str | None,
    unmatched: bool,
    since: datetime.datetime | None,
    as_json: bool,
) -> None:
    """A table of CLIENT's payouts (recorded by `sync`), or one payout's transactions.

    Columns: id, created, arrival date, status, amount, number of transactions, and the
    settlement breakdown (charges gross, refunds, disputes, fees, other; it sums to the amount).
    Manual payouts are not itemised by Stripe. `matched` says whether a bank entry linked to the
    payout clears the transit account.
    """

    def go() -> None:
        client = _client(ctx, client_id)
        entries = reconcile.load_ledger(client)
        if payout_id:
            txns = reconcile.payout_transactions(client, payout_id, ledger_entries=entries)
            if as_json:
                click.echo(json.dumps([_txn_json(t) for t in txns], indent=2))
            else:
                click.echo(format_transactions(payout_id, txns))
            return
        rows = reconcile.list_payouts(
            client, since=since.date() if since else None, ledger_entries=entries
        )
        if unmatched:
            rows = [r for r in rows if r.unmatched]
        if as_json:
            click.echo(json.dumps([r.to_json() for r in rows], indent=2))
        else:
            click.echo(format_table(rows))

    _run(go)


@payouts_group.command("match")
@click.argument("client_id", metavar="CLIENT")
@click.option("--dry-run", is_flag=True, help="Show what would be appended; write nothing.")
@click.pass_context
def payouts_match(ctx: click.Context, client_id: str, dry_run: bool) -> None:
    """Match CLIENT's bank entries already in the ledger to its payouts.

    Bank entries are the transactions on the accounts listed in the client's
    `payouts.bank_accounts`. They are never rewritten: each match is appended to
    payouts.beancount beside the ledger as a linked entry (^po_…) that moves the bank entry's
    other leg to the transit account. Ambiguous lines are listed with their candidates and left
    alone. Run with --dry-run first to see the change.
    """

    def go() -> None:
        client = _client(ctx, client_id)
        if not client.payouts.bank_accounts:
            raise ConfigError(
                f"client {client.id} names no bank accounts to match",
                where=str(client.source_file or ""),
                fix="add `payouts: {bank_accounts: [Assets:…:Bank:Checking]}` to the client",
            )
        entries = reconcile.load_ledger(client)
        records = reconcile.settings_for([client])[0].records
        plan = reconcile.plan_ledger_matches(client, entries, records)
        target = reconcile.match_output(client)
        for entry in plan.flagged:
            click.secho(
                f"{entry.date} {entry.narration or entry.payee}: {entry.meta[reconcile.NOTE_KEY]}",
                fg="yellow",
            )
        for entry, why in plan.skipped:
            click.secho(f"{entry.date} {entry.narration or entry.payee}: {why}", fg="yellow")
        text = ledger.format_entries(plan.appended)
        try:
            old = target.read_text(encoding="utf-8")
        except FileNotFoundError:
            old = reconcile.MATCH_HEADER
        new = old.rstrip("\n") + "\n\n" + text if plan.appended else old
        included = _includes(client, target)
        if dry_run:
            diff = difflib.unified_diff(
                old.splitlines(keepends=True),
                new.splitlines(keepends=True),
                str(target),
                str(target),
            )
            click.echo("".join(diff), nl=False)
            if not included and plan.appended:
                click.echo(f'(the ledger must include it: include "{target.name}")')
        elif plan.appended:
            if not included:
                raise LedgerError(
                    f"the ledger does not include {target.name}",
                    where=str(client.ledger),
                    fix=f'add the line: include "{target.name}"',
                )
            atomic.write_atomic(target, new)
        mode = "would append" if dry_run else "appended"
        click.echo(
            f"{client.id}: {mode} {len(plan.appended)} matched entr"
            f"{'y' if len(plan.appended) == 1 else 'ies'} to {target}; "
            f"{len(plan.flagged) + len(plan.skipped)} line(s) left for review"
        )

    _run(go)


def _includes(client: ClientConfig, target: Path) -> bool:
    state = ledger.scan(client.ledger)
    resolved = target.resolve()
    return resolved in state.files or resolved in state.includes


# -- rendering ------------------------------------------------------------------------------------


def _txn_json(t: reconcile.PayoutTransaction) -> dict[str, Any]:
    return {
        "id": t.id,
        "type": t.type,
        "created": t.created.isoformat(),
        "currency": t.currency,
        "amount": str(t.amount),
        "fee": str(t.fee),
        "net": str(t.net),
        "account": t.account,
    }


def _num(value: Decimal | None) -> str:
    return "" if value is None else f"{value:,}"


def format_table(rows: list[reconcile.PayoutRow]) -> str:
    """One line per payout; the breakdown columns sum to the amount."""
    head = (
        "id",
        "created",
        "arrival",
        "status",
        "amount",
        "cur",
        "txns",
        *reconcile.BREAKDOWN_KEYS,
        "matched",
    )
    table = [head]
    for r in rows:
        parts = [_num(r.breakdown.get(k)) for k in reconcile.BREAKDOWN_KEYS]
        if not r.automatic:
            parts = ["manual", "", "", "", ""]
        table.append(
            (
                r.id,
                r.created.isoformat(),
                r.arrival_date.isoformat() if r.arrival_date else "",
                r.status.replace("_", " "),
                _num(r.amount),
                r.currency,
                str(r.transactions) if r.automatic else "",
                *parts,
                "yes" if r.matched else "no",
            )
        )
    lines = _render(table, right={4, 6, 7, 8, 9, 10, 11})
    totals: dict[str, Decimal] = {}
    for r in rows:
        if r.transit_amount:
            totals[r.currency] = totals.get(r.currency, Decimal(0)) + r.transit_amount
    lines.append(f"{len(rows)} payout(s)")
    if totals:
        lines.append(
            "unmatched (still in transit): "
            + ", ".join(f"{v:,} {k}" for k, v in sorted(totals.items()))
        )
    return "\n".join(lines)


def format_transactions(payout_id: str, txns: list[reconcile.PayoutTransaction]) -> str:
    if not txns:
        return f"{payout_id}: a manual payout; Stripe does not itemise its transactions"
    table = [("id", "type", "created", "amount", "fee", "net", "cur", "booked to")]
    for t in txns:
        table.append(
            (
                t.id,
                t.type,
                t.created.isoformat(),
                _num(t.amount),
                _num(t.fee),
                _num(t.net),
                t.currency,
                t.account or "(not booked yet)",
            )
        )
    return "\n".join(_render(table, right={3, 4, 5}))


def _render(table: list[tuple[str, ...]], right: set[int]) -> list[str]:
    """Aligned columns; numbers (the ``right`` columns) right-aligned."""
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    return [
        "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in table
    ]


def summary_line(client: ClientConfig, entries: list[Any] | None = None) -> str:
    """The per-client summary line of `sync` and `demo`: matched, in transit, late."""
    rows = reconcile.list_payouts(client, ledger_entries=entries)
    summary = reconcile.summarize(rows, client.payouts, datetime.date.today())
    return "  " + summary.line()


# -- the demo's bank side -------------------------------------------------------------------------

BANK_OUTPUT = "bank.beancount"
BANK_HEADER = """\
;; Bank accounts of {name}.
;; Imported from the statements in bank/ by ../import.py (a beangulp CSV importer) with the
;; payouts hook, which books each line that matches a Stripe payout to the transit account with
;; its ^po_… link and flags (!) what it cannot match without guessing.
;; `beancount-stripe demo` writes the statements (from the simulator) and this file.
"""


def demo_bank(client: ClientConfig, sim_account: Any, *, fresh: bool) -> str:
    """Write the simulated bank statement of ``client`` and import it with beangulp (once).

    The statement comes from the simulator (consistent with the payouts it served); the import
    runs ``example-ledger/import.py extract`` like a user would, hook included.
    """
    import subprocess

    from beancount.core import data as bdata
    from beancount.parser import parser

    from beancount_stripe.simulator.bank import write_statements

    spec = getattr(sim_account, "bank_statement", None)
    if spec is None:
        return ""
    base = client.ledger.parent
    script = base.parent / "import.py"
    output = base / BANK_OUTPUT
    if fresh and output.exists():
        output.unlink()
    paths = write_statements(sim_account.history, spec, base / "bank")
    if output.exists():
        return f"  bank: {output.name} already imported (demo --fresh imports it again)"
    header = BANK_HEADER.format(name=client.name)
    atomic.write_atomic(output, header)  # the ledger includes it: it must exist for `-e`
    rel = [str(p.relative_to(base.parent)) for p in paths]
    proc = subprocess.run(
        [sys.executable, script.name, "extract", *rel, "-e", f"{base.name}/{client.ledger.name}"],
        cwd=base.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        output.unlink()
        raise LedgerError(
            f"importing the bank statement failed: {proc.stderr.strip()[-500:]}",
            where=str(script),
            fix="run the same `import.py extract` by hand to see the error",
        )
    # beangulp names each statement by its absolute path; keep the file the same on any machine.
    text = proc.stdout.replace(str(base.parent.resolve()) + os.sep, "")
    # `open` the accounts the importer booked to (the ledger has not seen them yet).
    parsed, _errors, _options = parser.parse_string(text)
    used = {p.account for e in parsed if isinstance(e, bdata.Transaction) for p in e.postings}
    first = min((e.date for e in parsed), default=datetime.date.today())
    opens = ledger.open_directives(used - ledger.scan(client.ledger).open_accounts, set(), first)
    opens = [o._replace(date=first - datetime.timedelta(days=1)) for o in opens]
    atomic.write_atomic(output, header + "\n" + ledger.format_entries(opens) + "\n" + text)
    flagged = text.count(f"  {reconcile.NOTE_KEY}:")
    lines = sum(len(p.read_text(encoding="utf-8").splitlines()) - 1 for p in paths)
    return (
        f"  bank: imported {lines} line(s) of {', '.join(rel)} with import.py; "
        f"{flagged} flagged for review (!)"
    )
