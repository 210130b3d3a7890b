"""`capital import` and `capital status`: Stripe Capital loan CSVs, a thin shell over capital.

Imported by ``cli`` once ``main`` exists; the decorators register the commands on it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from beancount_stripe import currency
from beancount_stripe.cli import (
    _errors,
    _load,
    _rel,
    main,
)
from beancount_stripe.cli_report import fmt_money as _fmt


@main.group("capital")
def capital_group() -> None:
    """Stripe Capital: book loan CSV exports, show where each loan stands.

    \b
      beancount-stripe capital import FILE --client acme [--dry-run]
      beancount-stripe capital status acme
    """


@capital_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--client", "client_id", required=True, help="The client whose loan it is.")
@click.option("--dry-run", is_flag=True, help="Show what would be appended; write nothing.")
@click.pass_context
def capital_import(ctx: click.Context, file: Path, client_id: str, dry_run: bool) -> None:
    """Book a Capital CSV export against the client's loan.

    The columns are recognized by their headers (Stripe's balance reports, the Dashboard balance
    export, financing-transaction exports; `capital.columns` in the config maps any other).
    Proceeds credit the loan; each paydown debits it for the principal and the financing-fee
    account for the fee. A row whose balance transaction is already synced adds only its fee
    part; rows already imported are skipped, so importing a file twice books nothing. A bad row
    stops the import with its row number, and nothing is written.
    """
    from beancount_stripe import capital

    with _errors():
        config = _load(ctx)
        client = config.client(client_id)
        result = capital.import_file(file, client, dry_run=dry_run)
    if dry_run and result.text:
        click.echo(result.text)
    click.echo(format_capital_import(result))


def format_capital_import(result: Any) -> str:
    """Summary of one ``capital.import_file`` run."""
    c, f, plan = result.client, result.file, result.plan
    skipped = f" ({f.skipped:,} other row(s) skipped)" if f.skipped else ""
    lines = [
        click.style(f"{c.id}: {f.path.name} ({f.style})", bold=True),
        f"  {len(f.rows):,} Capital row(s){skipped}",
        f"  booked with their money: {plan.booked:,}; fee part added to synced paydowns: "
        f"{plan.split:,}; synced, nothing to add: {plan.reconciled:,}; already imported: "
        f"{plan.already:,}",
    ]
    if plan.assertions:
        lines.append(f"  loan balance assertions: {len(plan.assertions):,}")
    for w in plan.warnings:
        lines.append(click.style(f"  warning: {w}", fg="yellow"))
    if result.dry_run:
        verb = "would append to" if result.text else "nothing to append to"
        lines.append(f"  {verb} {_rel(result.output)}")
    elif result.changed_files:
        lines.append(f"  appended to {_rel(result.output)}")
    else:
        lines.append(f"  nothing new; {_rel(result.output)} unchanged")
    return "\n".join(lines)


@capital_group.command("status")
@click.argument("client_id")
@click.pass_context
def capital_status(ctx: click.Context, client_id: str) -> None:
    """Per loan: paid out, repaid (withheld or paid), fees paid, principal outstanding."""
    from beancount_stripe import capital

    with _errors():
        config = _load(ctx)
        client = config.client(client_id)
        statuses = capital.status_of(client)
    click.echo(click.style(f"{client.id}: {client.name}, Stripe Capital", bold=True))
    for st in statuses:
        cur = st.loan.currency
        loan = st.loan
        lines = [
            f"  loan {loan.id} ({cur}): advance {_fmt(currency.to_minor(loan.advance, cur), cur)},"
            f" fee {_fmt(st.fee_total, cur)}",
            f"    paid out              {_fmt(st.paid_out, cur)}",
            f"    repaid to date        {_fmt(st.repaid, cur)}  (withheld from sales "
            f"{_fmt(st.withheld, cur)}, other payments {_fmt(st.repaid - st.withheld, cur)})",
            f"    fees paid             {_fmt(st.fees_paid, cur)} of {_fmt(st.fee_total, cur)}",
            f"    principal outstanding {_fmt(st.principal_outstanding, cur)}  "
            f"({client.accounts.capital_loan})",
            f"    left to repay         {_fmt(st.left_to_repay, cur)}  (principal and fee)",
        ]
        if st.unsplit:
            lines.append(
                click.style(
                    f"    not yet split: {_fmt(st.unsplit, cur)} of synced paydowns count whole "
                    "against the loan; import the Capital export that covers them",
                    fg="yellow",
                )
            )
        click.echo("\n".join(lines))
