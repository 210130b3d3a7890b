"""The ``beancount-stripe`` command line: a thin shell over config, sync and the simulator."""

from __future__ import annotations

import datetime
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import click

from beancount_stripe import __version__, cli_jobs, sync_state
from beancount_stripe.cli_jobs import JOBS_PER_PROCESS
from beancount_stripe.cli_report import format_report, payouts_line
from beancount_stripe.config import ClientConfig, Config, check_config, load_config
from beancount_stripe.errors import BeancountStripeError, ConfigError
from beancount_stripe.health import ledger_health
from beancount_stripe.monitor import ClientOutcome
from beancount_stripe.stripe_api import mask_secrets
from beancount_stripe.sync import DEFAULT_OVERLAP, SyncReport, fetch_client, sync_client

DEFAULT_CONFIG = "config/clients.yaml"
T = TypeVar("T")


def _fail(error: BeancountStripeError) -> None:
    _say_error(f"error: {mask_secrets(str(error))}")


_held = threading.local()  # per-client error lines of `sync --jobs N`, printed in client order


def _say_error(text: str) -> None:
    lines = getattr(_held, "lines", None)
    if lines is not None:
        lines.append(text)
    else:
        click.secho(text, fg="red", err=True)


def _load(ctx: click.Context) -> Config:
    path = ctx.obj["config"]
    return load_config(path)


def _select(config: Config, ids: Sequence[str], all_: bool) -> list[ClientConfig]:
    if all_ and ids:
        raise click.UsageError("give client ids or --all, not both")
    if all_ or (not ids and len(config.clients) == 1):
        return list(config.clients)
    if not ids:
        known = ", ".join(c.id for c in config.clients)
        raise click.UsageError(f"name one or more clients ({known}) or pass --all")
    return [config.client(i) for i in ids]


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except BeancountStripeError as e:
        _fail(e)
        sys.exit(e.exit_code)


class _Bars:
    """One tqdm bar per client while its months are fetched (only on a terminal)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: Any = None

    def __call__(self, client_id: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=total, desc=f"{client_id}: months", unit="mo", leave=False)
        self.bar.n = done
        self.bar.refresh()
        if done >= total:
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _for_each(clients: list[ClientConfig], run: Callable[[ClientConfig], T]) -> tuple[list[T], int]:
    """Run per client; one client's failure is reported and does not stop the others."""
    results: list[T] = []
    code = 0
    for client in clients:
        try:
            results.append(run(client))
        except BeancountStripeError as e:
            _fail(e)
            code = max(code, e.exit_code)
    return results, code


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="beancount-stripe")
@click.option(
    "-c",
    "--config",
    "config_path",
    default=DEFAULT_CONFIG,
    show_default=True,
    envvar="BEANCOUNT_STRIPE_CONFIG",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Client configuration (YAML). Env: BEANCOUNT_STRIPE_CONFIG.",
)
@click.pass_context
def main(ctx: click.Context, config_path: Path) -> None:
    """Sync Stripe balance transactions of each client into its Beancount ledger.

    \b
    Typical use:
      beancount-stripe init ~/books          # a firm's folder: config, schedules, README
      beancount-stripe -c ~/books/clients.yaml connect acme   # check a key, add a client
      beancount-stripe config check
      beancount-stripe sync --all            # first run: full history; later: what is new
      beancount-stripe sync acme --dry-run   # show what would be appended
      beancount-stripe fetch acme            # raw archive only, for `import.py extract`
      beancount-stripe demo                  # everything, against the built-in simulator
      beancount-stripe capital import FILE --client acme   # a Stripe Capital loan CSV
      beancount-stripe payouts acme --unmatched            # payouts no bank line clears yet
    """
    ctx.ensure_object(dict)
    ctx.obj["config"] = config_path


@main.group("config")
def config_group() -> None:
    """Inspect the client configuration."""


@config_group.command("check")
@click.option(
    "--online",
    is_flag=True,
    help="Also ask Stripe: each key opens its account and holds every read permission needed.",
)
@click.pass_context
def config_check(ctx: click.Context, online: bool) -> None:
    """Validate the configuration: keys, accounts, ids, key sources, time zones.

    Exits 2 when there is any error; warnings alone exit 0. With --online, one small request
    per permission probes each client's key (exit 3 if one is missing or the account differs).
    """
    path = ctx.obj["config"]
    problems = check_config(path)
    errors = [p for p in problems if getattr(p, "severity", "error") == "error"]
    for p in problems:
        color = "red" if getattr(p, "severity", "error") == "error" else "yellow"
        click.secho(mask_secrets(str(p)), fg=color, err=True)
    if errors:
        click.secho(f"{len(errors)} error(s) in {path}", fg="red", err=True)
        sys.exit(ConfigError.exit_code)
    with _errors():
        config = load_config(path)
    click.echo(
        f"{path}: OK, {len(config.clients)} client(s): "
        + ", ".join(
            f"{c.id} ({c.stripe_account}{', Connect' if c.connect else ''})" for c in config.clients
        )
    )
    _echo_rules_files(config)
    if online:
        sys.exit(_check_online(config))


def _check_online(config: Config) -> int:
    """`config check --online`: print each client's key check; the worst exit status."""
    from beancount_stripe.keycheck import check_key_online
    from beancount_stripe.stripe_api import REQUIRED_PERMISSIONS

    code = 0
    for client in config.clients:
        result = check_key_online(client)
        for problem in result.problems:
            _fail(problem)
        if not result.problems:
            click.echo(
                f"{client.id}: the key opens {result.account} and holds all "
                f"{len(REQUIRED_PERMISSIONS)} read permissions the sync needs"
            )
        code = max(code, result.exit_code)
    return code


_api_base_option = click.option(
    "--api-base",
    envvar="BEANCOUNT_STRIPE_API_BASE",
    help="Stripe API base URL (default https://api.stripe.com; the simulator for tests/demo).",
)
_rate_limit_option = click.option(
    "--rate-limit",
    type=click.FloatRange(min=0, min_open=True),
    metavar="N",
    help="Requests per second to Stripe, per client (default: the client's `rate_limit:`, else "
    "80 for live keys, 20 for test keys; Stripe allows 100 and 25).",
)


@main.command()
@click.argument("clients", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Sync every configured client.")
@click.option("--dry-run", is_flag=True, help="Fetch and show what would be booked; write nothing.")
@click.option(
    "--overlap-days",
    type=click.IntRange(0, 60),
    default=DEFAULT_OVERLAP.days,
    show_default=True,
    help="Re-fetch this many days before the newest booked transaction.",
)
@_api_base_option
@_rate_limit_option
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(1, 256),
    default=1,
    show_default=True,
    help="Sync this many clients at once, each under its own rate limit (output stays in order). "
    f"With {2 * JOBS_PER_PROCESS}+ jobs and clients they are split over worker processes, "
    "one per CPU at most.",
)
@click.option(
    "--processes",
    type=click.IntRange(1, 64),
    default=None,
    help="Worker processes that share the --jobs (default: one per CPU once each gets "
    f"{JOBS_PER_PROCESS} jobs and clients; 1: threads in this process only).",
)
@click.option("--check", is_flag=True, help="Also run bean-check on each client's ledger.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON summary of the run.")
@click.option("-q", "--quiet", is_flag=True, help="Print nothing when every client succeeds.")
@click.option(
    "--on-failure",
    metavar="CMD",
    help="Shell command run once when a client fails; it reads the JSON summary on stdin "
    "(and BEANCOUNT_STRIPE_FAILED, _EXIT, _SUMMARY from its environment).",
)
@click.pass_context
def sync(
    ctx: click.Context,
    clients: tuple[str, ...],
    all_: bool,
    dry_run: bool,
    overlap_days: int,
    api_base: str | None,
    rate_limit: float | None,
    jobs: int,
    processes: int | None,
    check: bool,
    as_json: bool,
    quiet: bool,
    on_failure: str | None,
) -> None:
    """Fetch new balance transactions and append them to each client's ledger.

    The first run imports the full history; later runs fetch from the newest booked transaction
    (minus the overlap) and skip what the ledger already has (by stripe_id). Running it twice
    changes nothing. The key must open the configured account, or nothing is written. A
    failing client never stops the others; the exit status is the highest of theirs.
    Each run (failed ones too) is recorded in .beancount-stripe-state.json beside the ledger,
    as run by `cli` on a terminal or `cron` without one; $BEANCOUNT_STRIPE_VIA overrides.

    
    For cron (README "Sync, check, schedule, monitor"; `init` writes the schedule files):
      beancount-stripe sync --all --check --quiet --on-failure 'mail -s "stripe sync" me@firm'
      beancount-stripe sync --all --json > last-sync.json
    """
    from beancount_stripe import monitor

    started = datetime.datetime.now(datetime.UTC)
    with _errors():
        config = _load(ctx)
        selected = _select(config, clients, all_)
    # Reading the books back (Beancount's loader, about as long as booking 1k transactions) is
    # only needed for what is shown; a quiet run shows something only when a client failed.
    eager = as_json or not quiet or check
    options = _SyncOptions(
        config=ctx.obj["config"],
        dry_run=dry_run,
        overlap_days=overlap_days,
        api_base=api_base,
        rate_limit=rate_limit,
        via=sync_state.detect_via(),
        check=check,
        health=eager,
        bars=sys.stderr.isatty() and not as_json and not quiet and jobs == 1,
    )
    outcomes = _sync_all(selected, options, jobs=jobs, processes=processes)
    code = max((o.exit_status for o in outcomes), default=0)
    if not eager and code:
        for o in outcomes:
            o.health = ledger_health(o.client)
    summary = monitor.run_summary(outcomes, started, code)
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    elif not (quiet and code == 0):
        for o in outcomes:
            if o.report is None:
                continue
            if dry_run and o.report.text:
                click.echo(o.report.text)
            click.echo(format_report(o.report, health=o.health, checked=o.checked))
            if not dry_run:
                click.echo(payouts_line(o.report.client))
    if code and on_failure:
        hidden = [c.key.ref for c in config.clients if c.key.kind == "env"]
        status = monitor.run_hook(on_failure, summary, hide_env=hidden)
        if status:
            click.secho(f"warning: --on-failure command exited {status}", fg="yellow", err=True)
    sys.exit(code)


@dataclass(frozen=True)
class _SyncOptions:
    """What `sync` was asked, as a worker process needs it to sync as this one would."""

    config: str | None
    dry_run: bool
    overlap_days: int
    api_base: str | None
    rate_limit: float | None
    via: str
    check: bool
    health: bool
    bars: bool = False


def _sync_all(
    clients: list[ClientConfig], options: _SyncOptions, *, jobs: int, processes: int | None
) -> list[ClientOutcome]:
    """Sync each client, ``jobs`` at a time (over worker processes when many); errors print in
    client order, not finish order."""
    if jobs <= 1 or len(clients) <= 1:
        run = _runner(options)
        return [
            _sync_one(client, run, check=options.check, health=options.health) for client in clients
        ]
    count = cli_jobs.process_count(jobs, len(clients), processes)
    if count > 1:
        per = -(-jobs // count)
        ids = [c.id for c in clients]
        results = cli_jobs.run_split(ids, count, _sync_group, options, per)
    else:
        results = _sync_threads(clients, options, jobs)
    outcomes = []
    for outcome, lines in results:
        for line in lines:
            click.secho(line, fg="red", err=True)
        outcomes.append(outcome)
    return outcomes


def _sync_group(
    ids: list[str], options: _SyncOptions, jobs: int
) -> list[tuple[ClientOutcome, list[str]]]:
    """A worker process's share of `sync --jobs N`: its clients, ``jobs`` at a time."""
    config = load_config(options.config)
    return _sync_threads([config.client(i) for i in ids], options, jobs)


def _sync_threads(
    clients: list[ClientConfig], options: _SyncOptions, jobs: int
) -> list[tuple[ClientOutcome, list[str]]]:
    """Each client's outcome and error lines, synced ``jobs`` at a time in threads."""
    run = _runner(options)

    def held(client: ClientConfig) -> tuple[ClientOutcome, list[str]]:
        _held.lines = []
        try:
            outcome = _sync_one(client, run, check=options.check, health=options.health)
            return outcome, _held.lines
        finally:
            _held.lines = None

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(held, clients))


def _runner(options: _SyncOptions) -> Callable[[ClientConfig], SyncReport]:
    """Sync one client as `sync` was asked to."""
    bars = _Bars(options.bars)

    def run(client: ClientConfig) -> SyncReport:
        try:
            return sync_client(
                client,
                dry_run=options.dry_run,
                overlap=datetime.timedelta(days=options.overlap_days),
                api_base=options.api_base,
                progress=bars,
                rate_limit=options.rate_limit,
                via=options.via,
            )
        finally:
            bars.close()

    return run


def _sync_one(
    client: ClientConfig,
    run: Callable[[ClientConfig], SyncReport],
    *,
    check: bool,
    health: bool = True,
) -> ClientOutcome:
    """Sync one client and read its books (``health``, or with ``check``); an error is recorded
    and printed, never raised."""
    outcome = ClientOutcome(client=client)
    try:
        outcome.report = run(client)
    except BeancountStripeError as e:
        _fail(e)
        outcome.error = mask_secrets(str(e))
        outcome.exit_status = e.exit_code
    if outcome.report is not None and outcome.report.exit_code:
        # entries written, but the archive does not add up to Stripe's balance (sync.py)
        outcome.exit_status = outcome.report.exit_code
        outcome.error = (
            "the archive does not add up to Stripe's balance: entries written, no balance "
            "assertion (see the warnings)"
        )
    if health or check:
        outcome.health = ledger_health(client)
    if check and client.ledger.exists():
        ok, output = _bean_check_text(client)
        outcome.checked = True
        outcome.health.errors = [] if ok else [output or "bean-check failed"]
        if not ok:
            outcome.exit_status = max(outcome.exit_status, 1)
            outcome.error = outcome.error or f"bean-check found errors in {client.ledger}"
            _say_error(f"error: {client.id}: bean-check failed:\n{output}")
    return outcome


@main.command()
@click.argument("clients", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Fetch every configured client.")
@_api_base_option
@_rate_limit_option
@click.pass_context
def fetch(
    ctx: click.Context,
    clients: tuple[str, ...],
    all_: bool,
    api_base: str | None,
    rate_limit: float | None,
) -> None:
    """Fetch balance transactions into each client's JSON Lines archive (no booking).

    Then book them with beangulp: `python example-ledger/import.py extract ARCHIVE_DIR -e LEDGER`,
    or from Fava's Import page.
    """
    with _errors():
        config = _load(ctx)
        selected = _select(config, clients, all_)
    bars = _Bars(sys.stderr.isatty())

    def run(client: ClientConfig) -> tuple[ClientConfig, Any]:
        try:
            return client, fetch_client(
                client, api_base=api_base, progress=bars, rate_limit=rate_limit
            )
        finally:
            bars.close()

    results, code = _for_each(selected, run)
    for client, result in results:
        click.echo(
            f"{client.id}: {result.count} balance transaction(s) fetched, "
            f"{len(result.changed_files)} archive file(s) changed in {client.archive_dir} "
            f"({result.months_skipped} complete month(s) skipped)"
        )
    sys.exit(code)


def _register_simulator() -> None:
    try:
        from beancount_stripe.simulator.command import simulator
    except ImportError:  # pragma: no cover - the simulator is part of the package
        return
    main.add_command(simulator)


_register_simulator()

from beancount_stripe.cli_firm import register as _register_firm  # noqa: E402  (init, connect)

_register_firm(main)


# -- payouts (issue 8): the commands live in cli_payouts.py -------------------------------------


def _register_payouts() -> None:
    from beancount_stripe.cli_payouts import payouts_group

    main.add_command(payouts_group)


_register_payouts()


def _register_show() -> None:  # issue 10: what a summary entry holds (cli_show.py)
    from beancount_stripe.cli_show import show_command

    main.add_command(show_command)


_register_show()


# -- demo -----------------------------------------------------------------------------------------


@main.command()
@click.option(
    "--world",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Simulator world (YAML); default: the built-in demo world.",
)
@click.option(
    "--fresh",
    is_flag=True,
    help="First delete the files sync and Capital import generate (output, archive, capital "
    "output, and the imported bank.beancount) of clients whose account the simulator serves, so "
    "the whole history is synced again; the result is byte-identical to the committed example "
    "ledger.",
)
@click.pass_context
def demo(ctx: click.Context, world: Path | None, fresh: bool) -> None:
    """Run the whole job on the built-in Stripe simulator: no key, no network.

    Starts the simulator on loopback, points the configured clients at it with its test keys,
    syncs every client's full history, writes and imports (with import.py and the payouts hook)
    the bank statement of clients whose simulated account has one, runs bean-check on every
    client ledger and prints a per-client summary. `make demo` runs it with --fresh.
    """
    from beancount_stripe.simulator import Simulator, default_world, load_world

    with _errors():
        config = _load(ctx)
    sim_world = load_world(world) if world else default_world()
    if fresh:
        for client in config.clients:
            if client.stripe_account in sim_world.accounts:
                _remove_generated(client)
    os.environ.update(_demo_keys(sim_world))
    code = 0
    with Simulator(sim_world) as sim:
        click.echo(f"Stripe simulator listening on {sim.url} (loopback only, no network)")
        bars = _Bars(sys.stderr.isatty())
        for client in config.clients:
            try:
                report = sync_client(client, api_base=sim.url, progress=bars, via="demo")
            except BeancountStripeError as e:
                bars.close()
                _fail(e)
                code = max(code, e.exit_code)
                continue
            bars.close()
            capital_text, capital_code = _demo_capital(client)
            code = max(code, capital_code)
            bank_text = _demo_bank(client, sim_world, fresh)
            ok, output = _bean_check_text(client)
            click.echo(format_report(report, health=ledger_health(client)))
            code = max(code, report.exit_code)
            if capital_text:
                click.echo(capital_text)
            if bank_text:
                click.echo(bank_text)
            click.echo(payouts_line(client))
            if ok:
                click.echo(click.style("  bean-check: clean", fg="green"))
            else:
                click.echo(click.style("  bean-check: FAILED", fg="red"))
                click.echo(output)
                code = max(code, 1)
    first = config.clients[0].ledger if config.clients else Path("LEDGER")
    click.echo(
        "\nOpen the books in Fava:  .venv/bin/fava "
        + " ".join(_rel(c.ledger) for c in config.clients)
        + "\nthen browse to http://127.0.0.1:5000/ (Import page: each client's inbox/;"
        + " the Stripe page of each client: /<ledger>/extension/Stripe/)."
        + f"\nbeangulp:  cd {_rel(first.parent.parent)} && ../.venv/bin/python import.py extract "
        f"{first.parent.name}/archive -e {first.parent.name}/{first.name}"
    )
    sys.exit(code)


def _remove_generated(client: ClientConfig) -> None:
    """Delete what sync and Capital import wrote for ``client`` (never the main ledger)."""
    targets = [client.output, client.archive_dir]
    if client.capital is not None:
        targets.append(client.capital.output)
    for target in targets:
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _demo_keys(world: Any) -> dict[str, str]:
    """Env vars the demo config reads its keys from, filled with the simulator's test keys."""
    return {a.env: a.key for a in world.accounts.values() if getattr(a, "env", None)}


def bean_check(client: ClientConfig) -> tuple[bool, str, dict[str, Decimal]]:
    """Run Beancount's own ``bean-check`` and sum the clearing account per currency."""
    ok, output = _bean_check_text(client)
    return ok, output, ledger_health(client).clearing


def _bean_check_text(client: ClientConfig) -> tuple[bool, str]:
    """Run Beancount's own ``bean-check`` on the client's ledger: (clean?, what it printed)."""
    exe = shutil.which("bean-check", path=str(Path(sys.executable).parent)) or shutil.which(
        "bean-check"
    )
    if exe is None:  # pragma: no cover - beancount is a dependency
        return False, "bean-check not found"
    proc = subprocess.run([exe, str(client.ledger)], capture_output=True, text=True, check=False)
    return proc.returncode == 0, (proc.stdout + proc.stderr).strip()


def _echo_rules_files(config: Config) -> None:
    """After `config check`: each rules file once, with its rule and party counts."""
    from beancount_stripe import rules

    seen: dict[Path, list[str]] = {}
    for client in config.clients:
        for path in rules.rule_paths(client):
            seen.setdefault(path, []).append(client.id)
    for path, ids in seen.items():
        loaded = rules.load_rules(path)
        users = "all clients" if len(ids) == len(config.clients) > 1 else ", ".join(ids)
        click.echo(
            f"  rules {_rel(path)}: {len(loaded.rules)} rule(s), {len(loaded.parties)} "
            f"part{'y' if len(loaded.parties) == 1 else 'ies'} ({users})"
        )


def _demo_capital(client: ClientConfig) -> tuple[str, int]:
    """The demo imports each Capital CSV beside a client's ledger (`capital/*.csv`), by name."""
    from beancount_stripe import capital
    from beancount_stripe.cli_capital import format_capital_import

    if client.capital is None:
        return "", 0
    texts = []
    for path in sorted((client.ledger.parent / "capital").glob("*.csv")):
        try:
            result = capital.import_file(path, client)
        except BeancountStripeError as e:
            _fail(e)
            return "\n".join(texts), e.exit_code
        texts.append(format_capital_import(result))
    return "\n".join(texts), 0


def _demo_bank(client: ClientConfig, sim_world: Any, fresh: bool) -> str:
    """acme's bank statement: written by the simulator, imported by import.py (issue 8)."""
    from beancount_stripe.cli_payouts import demo_bank

    account = sim_world.accounts.get(client.stripe_account)
    try:
        return demo_bank(client, account, fresh=fresh)
    except BeancountStripeError as e:
        _fail(e)
        return ""


def _register_rules_and_capital() -> None:  # their commands live in cli_rules.py, cli_capital.py
    import beancount_stripe.cli_capital
    import beancount_stripe.cli_rules  # noqa: F401  (their decorators register on ``main``)


_register_rules_and_capital()


if __name__ == "__main__":
    main()
