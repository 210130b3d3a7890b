"""Commands that set a firm up: `init` (a working folder) and `connect` (add a client).

Registered on the main group by cli.py; the work is done by firm.py and connect.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from beancount_stripe.errors import BeancountStripeError
from beancount_stripe.stripe_api import mask_secrets

__all__ = ["connect", "init", "register"]


def _fail(error: BeancountStripeError) -> None:
    click.secho(f"error: {mask_secrets(str(error))}", fg="red", err=True)
    sys.exit(error.exit_code)


@click.command()
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", default="Our firm", show_default=True, help="The firm's name (README).")
@click.option("--timezone", default="UTC", show_default=True, help="Default time zone.")
@click.option("--currency", default="USD", show_default=True, help="Default operating currency.")
def init(folder: Path, name: str, timezone: str, currency: str) -> None:
    """Create a firm's working folder: clients.yaml, .gitignore, import.py, README, schedules.

    \b
    FOLDER/clients.yaml        commented configuration; `connect` adds clients to it
    FOLDER/.gitignore          keeps secrets, sync state and caches out of git
    FOLDER/import.py           beangulp script (and Fava's import-config)
    FOLDER/README.md           next steps
    FOLDER/schedule/           a crontab line and a systemd service + timer (hourly sync)
    Existing files are never overwritten.
    """
    from beancount_stripe.firm import init_folder

    try:
        result = init_folder(folder, name=name, timezone=timezone, currency=currency)
    except BeancountStripeError as e:
        _fail(e)
        return
    for path in result.written:
        click.echo(f"  created {path.relative_to(result.folder)}")
    for path in result.kept:
        click.echo(f"  kept    {path.relative_to(result.folder)} (exists)")
    config = result.folder / "clients.yaml"
    click.echo(
        f"\n{result.folder}: ready. Next: connect a client\n"
        f"  cd {folder} && beancount-stripe -c clients.yaml connect CLIENT_ID\n"
        "then read README.md there (first sync, schedule, monitoring)."
    )
    if not config.exists():  # pragma: no cover - init_folder writes it
        sys.exit(1)


@click.command()
@click.argument("client_id")
@click.option("--name", help="The client's name in the books (default: the Stripe account's).")
@click.option("--key-env", metavar="NAME", help="Read the key from this environment variable.")
@click.option(
    "--key-file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Read the key from this file (it is stored again; you may delete it afterwards).",
)
@click.option(
    "--store",
    type=click.Choice(["keyring", "file", "env"]),
    help="Where sync reads the key: the system keyring (default when one is usable), a 0600 "
    "file under secrets/ beside the config, or the --key-env variable itself.",
)
@click.option("--connect", "connect_mode", is_flag=True, help="The key is a Connect platform's.")
@click.option("--account", "account_id", help="Connect mode: the connected account (acct_…).")
@click.option("--ledger", help="Ledger path, relative to the config (default ledgers/ID/…).")
@click.option("--timezone", help="Time zone of entry dates (default: the Stripe account's).")
@click.option("--currency", help="Operating currency (default: the account's default currency).")
@click.option("-y", "--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--api-base",
    envvar="BEANCOUNT_STRIPE_API_BASE",
    help="Stripe API base URL (default https://api.stripe.com; the simulator for tests/demo).",
)
@click.pass_context
def connect(
    ctx: click.Context,
    client_id: str,
    name: str | None,
    key_env: str | None,
    key_file: Path | None,
    store: str | None,
    connect_mode: bool,
    account_id: str | None,
    ledger: str | None,
    timezone: str | None,
    currency: str | None,
    yes: bool,
    api_base: str | None,
) -> None:
    """Connect CLIENT_ID's Stripe account: check the key, store it, add the client to the config.

    Asks for the key with hidden input unless --key-env or --key-file gives it. Shows the
    account's name, id, country and default currency for confirmation, checks the key holds
    every read permission sync needs (naming any missing one, as `config check --online` does),
    stores the key (never in the config), and appends the client to the config file keeping its
    comments and order. Connect mode: --connect --account acct_… with the platform's key.
    """
    from beancount_stripe import connect as conn

    config_path: Path = ctx.obj["config"]
    try:
        if not config_path.exists():
            raise BeancountStripeError(
                f"{config_path} does not exist",
                where="connect",
                fix="create a working folder with `beancount-stripe init DIR`, then run connect "
                "with `-c DIR/clients.yaml`",
            )
        conn.check_client_id(client_id)
        if client_id in conn.existing_ids(config_path):
            raise BeancountStripeError(
                f"client {client_id!r} is already in {config_path}",
                where="connect",
                fix="choose another id, or edit the existing entry",
            )
        if connect_mode != bool(account_id):
            raise click.UsageError("Connect mode needs both --connect and --account acct_…")
        key = conn.read_key(key_env, key_file)
        if key is None:
            key = click.prompt("Stripe key (rk_… or sk_…; input hidden)", hide_input=True)
        key = key.strip()
        conn.check_key_shape(key)
        info = conn.inspect_account(key, client_id, api_base=api_base, connected_account=account_id)
        lines = [
            click.style("Stripe account", bold=True),
            f"  name      {info.name}",
            f"  id        {info.id}",
            f"  country   {info.country}",
            f"  currency  {info.default_currency or '?'}",
        ]
        if info.platform:
            lines.append(f"  platform  {info.platform} (Connect: read with the platform's key)")
        if info.missing:
            lines.append(
                click.style("  the key lacks: " + "; ".join(info.missing), fg="red")
                + "\n  fix: edit the restricted key in the Dashboard (Developers → API keys) "
                "and grant these read permissions"
            )
        else:
            lines.append("  permissions: every read permission sync needs ✔")
        click.echo("\n".join(lines))
        if info.missing:
            sys.exit(3)
        if not yes and not click.confirm(f"Book this account as client {client_id!r}?"):
            click.echo("Nothing changed.")
            sys.exit(1)
        chosen = store or ("keyring" if conn.keyring_usable() else "file")
        source = conn.store_key(chosen, client_id, key, config_path, key_env)
        entry: dict[str, object] = {
            "id": client_id,
            "name": name or info.name,
            "stripe_account": info.id,
            "key": source,
        }
        if info.platform:
            entry["connect"] = True
            entry["platform_account"] = info.platform
        entry["ledger"] = ledger or f"ledgers/{client_id}/ledger.beancount"
        tz = timezone or info.timezone
        if tz:
            entry["timezone"] = tz
        cur = currency or info.default_currency
        if cur:
            entry["operating_currency"] = cur.upper()
        if api_base:
            entry["api_base"] = api_base
        conn.add_client(config_path, entry)
    except BeancountStripeError as e:
        _fail(e)
        return
    where = {"keyring": "the system keyring", "env": f"${key_env}"}.get(chosen, source[5:])
    click.echo(
        f"Added {client_id} to {config_path} (key: {source}; stored in {where}).\n"
        f"Next: beancount-stripe -c {config_path} sync {client_id} --check"
    )


def register(main: click.Group) -> None:
    """Add these commands to the main command group."""
    main.add_command(init)
    main.add_command(connect)
