"""``beancount-stripe show LINK_OR_ID``: the transactions a summary entry or payout holds.

Registered from cli.py. Summary entries (summary.py) book many balance transactions as one; this
lists them from the archive, by the entry's link (``stripe-day-…`` or ``po_…``), its
``stripe_summary`` key, or a single ``txn_…`` id (then it says which summary holds it).
"""

from __future__ import annotations

import json
import sys

import click

from beancount_stripe import summary
from beancount_stripe.config import ClientConfig, load_config
from beancount_stripe.errors import BeancountStripeError, InputFileError
from beancount_stripe.stripe_api import mask_secrets


@click.command("show")
@click.argument("ref")
@click.option("--client", "client_id", default=None, help="Client id (default: every client).")
@click.option("--json", "as_json", is_flag=True, help="Print the transactions as JSON.")
@click.pass_context
def show_command(ctx: click.Context, ref: str, client_id: str | None, as_json: bool) -> None:
    """List the balance transactions behind LINK_OR_ID, from the archive.

    LINK_OR_ID is a summary entry's link (^stripe-day-2025-03-14-usd, ^po_…), its stripe_summary
    key, a payout id or a balance transaction id.
    """
    try:
        config = load_config(ctx.obj["config"])
        clients = [config.client(client_id)] if client_id else list(config.clients)
        found = _find(clients, ref)
    except BeancountStripeError as e:
        click.secho(f"error: {mask_secrets(str(e))}", fg="red", err=True)
        sys.exit(e.exit_code)
    client, what, bts = found
    if as_json:
        rows = [
            {**{k: v for k, v in bt.items() if k != "_summary"}, "summary": bt.get("_summary")}
            for bt in bts
        ]
        click.echo(json.dumps({"client": client.id, "what": what, "transactions": rows}, indent=1))
        return
    click.echo(f"{client.id}: {what}")
    for line in summary.format_rows(client, bts):
        click.echo(f"  {line}")


def _find(clients: list[ClientConfig], ref: str) -> tuple[ClientConfig, str, list]:
    last: InputFileError | None = None
    for client in clients:
        try:
            what, bts = summary.find(client, ref)
        except InputFileError as e:
            last = e
            continue
        return client, what, bts
    raise last or InputFileError(
        f"nothing is named {ref!r}", where="configuration", fix="check the id and --client"
    )
