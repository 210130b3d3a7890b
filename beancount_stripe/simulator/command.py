"""``beancount-stripe simulator``: serve the Stripe simulator on loopback until Ctrl-C.

This is an edge module (it uses click); the CLI attaches :data:`simulator` to its group.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from pathlib import Path

import click

from ..errors import BeancountStripeError
from .generator import generate_history
from .server import FaultPlan, Simulator, mask_key
from .world import DEMO_WORLD, SimAccount, World, default_world, load_world

#: Environment variable that sets the key of a generated (``--currencies`` …) account.
GENERATED_KEY_ENV = "STRIPE_SIM_KEY"
#: Its default: a fake test key only this simulator accepts.
GENERATED_DEFAULT_KEY = "sk_test_sim_generated_00000000000000demo"


def generated_account_id(seed: int) -> str:
    """The id of the single account ``--seed/--size/--currencies`` generate."""
    return f"acct_1Sim{seed % 10**12:012d}"


def fixture_key(account_id: str) -> str:
    """The fake key that opens a ``--fixture`` account: derived from its id."""
    return f"sk_test_sim_fixture_{account_id.removeprefix('acct_')}"


def build_world(
    *,
    world_path: Path | None = None,
    seed: int | None = None,
    size: int | None = None,
    start: dt.date | None = None,
    end: dt.date | None = None,
    currencies: str | None = None,
    fixtures: tuple[str, ...] = (),
    environ: dict[str, str] | None = None,
) -> tuple[World, str]:
    """The world the options describe, and a phrase saying where its keys come from."""
    env = os.environ if environ is None else environ
    generating = any(v is not None for v in (seed, size, start, end, currencies))
    if world_path is not None and generating:
        raise click.UsageError("give --world or --seed/--size/--start/--end/--currencies, not both")
    if world_path is not None:
        world, source = load_world(world_path), f"the world file {world_path}"
    elif generating:
        seed = 1 if seed is None else seed
        key = env.get(GENERATED_KEY_ENV) or GENERATED_DEFAULT_KEY
        if not key.startswith(("sk_test_", "rk_test_")):
            raise click.UsageError(f"${GENERATED_KEY_ENV} must be a test key (sk_test_…)")
        names = [c.strip().lower() for c in (currencies or "usd").split(",") if c.strip()]
        account_id = generated_account_id(seed)
        history = generate_history(
            account_id=account_id,
            seed=seed,
            size=1000 if size is None else size,
            start=start or dt.date(2024, 1, 1),
            end=end or dt.date(2026, 10, 31),
            currencies=names or ["usd"],
        )
        account = SimAccount(
            id=account_id, name=f"Generated account (seed {seed})", history=history, key=key
        )
        world = World([account])
        source = f"${GENERATED_KEY_ENV} if set, else the built-in generated-account test key"
    else:
        world, source = default_world(), f"the built-in demo world ({DEMO_WORLD})"
    for spec in fixtures:
        account_id, sep, file = spec.partition("=")
        if not sep or not account_id.startswith("acct_") or not file:
            raise click.BadParameter(
                f"{spec!r}: expected ACCOUNT=FILE, e.g. acct_123=bts.json", param_hint="--fixture"
            )
        try:
            world.add(
                SimAccount.from_fixture(Path(file), id=account_id, key=fixture_key(account_id))
            )
        except (OSError, ValueError) as exc:
            raise click.BadParameter(f"{file}: {exc}", param_hint="--fixture") from exc
    return world, source


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def describe(world: World, key_source: str) -> list[str]:
    """The lines the command prints about accounts; keys only masked, env names in full."""
    lines = ["Accounts:"]
    platforms = {c: a.id for a in world.accounts.values() for c in a.connected}
    width = max((len(a.name) for a in world.accounts.values()), default=0)
    for account in world.accounts.values():
        count = len(account.history.transactions)
        head = f"  {account.id}  {account.name:<{width}}  {count:>7,} BTs  "
        if account.key:
            how = f"key {mask_key(account.key)}"
            if account.key_env:
                how += f"  (`make demo` exports it as ${account.key_env})"
            elif account.id.startswith("acct_1Sim"):
                how += f"  (${GENERATED_KEY_ENV})"
        else:
            how = "no key of its own"
        if account.id in platforms:
            how += f"; via platform {platforms[account.id]} + header Stripe-Account: {account.id}"
        lines.append(head + how)
    lines.append(f"Keys are fake test keys from {key_source}; only masked forms are shown.")
    return lines


@click.command("simulator")
@click.option("--host", default="127.0.0.1", show_default=True, help="Loopback address to bind.")
@click.option(
    "--port", default=12111, show_default=True, type=click.IntRange(0, 65535), help="0 = any."
)
@click.option(
    "--world",
    "world_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="World YAML (accounts, keys, histories). Default: the built-in demo world.",
)
@click.option("--seed", type=int, help="Serve one generated account from this seed.")
@click.option("--size", type=click.IntRange(min=0), help="Its number of balance transactions.")
@click.option("--start", type=click.DateTime(formats=["%Y-%m-%d"]), help="Its first day.")
@click.option("--end", type=click.DateTime(formats=["%Y-%m-%d"]), help="Its last day.")
@click.option("--currencies", metavar="usd,eur,jpy", help="Its currencies, comma-separated.")
@click.option(
    "--fixture",
    "fixtures",
    multiple=True,
    metavar="ACCOUNT=FILE",
    help="Also serve recorded balance transactions (list JSON, array or JSON Lines). Repeatable.",
)
@click.option("--latency", type=click.FloatRange(min=0), default=0.0, help="Seconds per request.")
@click.option(
    "--rate-limit", type=click.FloatRange(min=0, min_open=True), help="Requests/s per key."
)
@click.option(
    "--faults",
    metavar="SPEC",
    help='Injected failures, e.g. "429@3,500@5,drop@7,429lock@9" or "rate=0.1,seed=4". Kinds: '
    "429 429lock 500 503 409 drop (random ones), 401 403 404html html badjson repeat_page.",
)
def simulator(
    host: str,
    port: int,
    world_path: Path | None,
    seed: int | None,
    size: int | None,
    start: dt.datetime | None,
    end: dt.datetime | None,
    currencies: str | None,
    fixtures: tuple[str, ...],
    latency: float,
    rate_limit: float | None,
    faults: str | None,
) -> None:
    """Serve a local stand-in for the Stripe API (loopback only) until Ctrl-C.

    Point the SDK at the printed URL, e.g.
    StripeClient(key, base_addresses={"api": URL}), or set `api_base:` in the client config.
    A generated account (--seed/--size/--currencies) opens with the key in $STRIPE_SIM_KEY,
    default sk_test_sim_generated_00000000000000demo; a --fixture ACCOUNT opens with
    sk_test_sim_fixture_<ACCOUNT without acct_>. All are fake test keys.
    """
    if not _loopback(host):
        raise click.BadParameter(
            f"{host} is not a loopback address; the simulator accepts fake keys and must not be "
            "reachable from the network (use 127.0.0.1, ::1 or localhost)",
            param_hint="--host",
        )
    try:
        plan = FaultPlan.parse(faults) if faults else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--faults") from exc
    try:
        world, key_source = build_world(
            world_path=world_path,
            seed=seed,
            size=size,
            start=start.date() if start else None,
            end=end.date() if end else None,
            currencies=currencies,
            fixtures=fixtures,
        )
    except BeancountStripeError as exc:
        raise click.ClickException(str(exc)) from exc
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        sim = Simulator(world, host, port, latency=latency, rate_limit=rate_limit, faults=plan)
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on {host}:{port} ({exc.strerror}); pick another --port"
        ) from exc
    extras = []
    if latency:
        extras.append(f"latency {latency:g}s")
    if rate_limit:
        extras.append(f"rate limit {rate_limit:g}/s per key")
    if faults:
        extras.append(f"faults {faults}")
    try:
        click.echo(f"Stripe simulator listening on {sim.url}  (loopback only; Ctrl-C to stop)")
        for line in describe(world, key_source):
            click.echo(line)
        if extras:
            click.echo("Behaviour: " + ", ".join(extras))
        click.echo(f'SDK: stripe.StripeClient(key, base_addresses={{"api": "{sim.url}"}})')
        sim.serve_forever()
    except KeyboardInterrupt:
        click.echo("\nsimulator stopped")
    finally:
        sim.stop()
