"""`rules explain|test|suggest` and `recategorize`: the rule tools, a thin shell over categorize.

Imported by ``cli`` once ``main`` exists; the decorators register the commands on it.
"""

from __future__ import annotations

import sys
from decimal import Decimal
from pathlib import Path

import click

from beancount_stripe.cli import (
    _errors,
    _for_each,
    _load,
    _select,
    main,
)


@main.group("rules")
def rules_group() -> None:
    """Categorization rules: explain a decision, test coverage, suggest rules from the ledger.

    \b
      beancount-stripe rules explain txn_1…          # which rule decided what, and near misses
      beancount-stripe rules test acme --fail-under 95
      beancount-stripe rules suggest acme > suggested.yaml
      beancount-stripe recategorize acme --dry-run   # re-apply rules to entries under review
    """


@rules_group.command("explain")
@click.argument("txn_id")
@click.option("--client", "client_id", help="Client whose archive holds the transaction.")
@click.option(
    "--file",
    "file_",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Read the transaction from this archive file / saved list response instead.",
)
@click.pass_context
def rules_explain(
    ctx: click.Context, txn_id: str, client_id: str | None, file_: Path | None
) -> None:
    """Explain how TXN_ID (a txn_… id or its source id, e.g. ch_…/po_…) is booked.

    Shows which rule decided each part of the entry (account, payee, narration, flag, tags,
    links, metadata) and why, the rules that almost matched, and the resulting entry.
    """
    from beancount_stripe import archive, categorize

    with _errors():
        config = _load(ctx)
        clients = [config.client(client_id)] if client_id else list(config.clients)
        if file_ is not None and client_id is None:
            header = archive.read_header(file_)
            named = [c for c in clients if header and header.client == c.id]
            if named:
                clients = named
            elif len(clients) > 1:
                raise click.UsageError("name the client the file belongs to with --client")
        client, bt = categorize.find_transaction(clients, txn_id, file_)
        click.echo(categorize.explain(client, bt))


@rules_group.command("test")
@click.argument("clients", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Test every configured client.")
@click.option(
    "--fail-under",
    type=click.FloatRange(0, 100),
    help="Exit 1 when less than PCT percent of transactions are categorized.",
)
@click.option("--top", type=click.IntRange(0, 1000), default=10, show_default=True)
@click.pass_context
def rules_test(
    ctx: click.Context, clients: tuple[str, ...], all_: bool, fail_under: float | None, top: int
) -> None:
    """Run the rules over each client's archive and report coverage.

    Per rule: transactions and gross amount whose counter-account it decided; what falls to the
    uncategorized account; the most common uncategorized descriptions and payees.
    """
    from beancount_stripe import categorize

    with _errors():
        config = _load(ctx)
        selected = _select(config, clients, all_)
    results, code = _for_each(selected, lambda c: categorize.coverage(c, top=top))
    for cov in results:
        click.echo(categorize.format_coverage(cov))
        if fail_under is not None and cov.percent < Decimal(str(fail_under)):
            click.secho(
                f"{cov.client.id}: coverage {cov.percent}% is under --fail-under {fail_under}%",
                fg="red",
                err=True,
            )
            code = max(code, 1)
    sys.exit(code)


@rules_group.command("suggest")
@click.argument("client_id", required=False)
@click.option("--min-count", type=click.IntRange(1), default=2, show_default=True)
@click.option(
    "--min-precision",
    type=click.FloatRange(0.5, 1.0),
    default=0.9,
    show_default=True,
    help="Share of the entries a proposed rule matches that must agree with the ledger.",
)
@click.pass_context
def rules_suggest(
    ctx: click.Context, client_id: str | None, min_count: int, min_precision: float
) -> None:
    """Propose rules (YAML) from entries a bookkeeper categorized by hand in the ledger.

    An entry counts as categorized by hand when its counter-account differs from what the
    current rules give, or its `!` flag was removed. Each proposal shows how many entries it
    decides as the ledger does, and its conflicts. Nothing is written: paste what you agree with.
    """
    from beancount_stripe import categorize

    with _errors():
        config = _load(ctx)
        (client,) = _select(config, (client_id,) if client_id else (), False)[:1]
        result = categorize.suggest(client, min_count=min_count, min_precision=min_precision)
        click.echo(categorize.format_suggestions(result), nl=False)


@main.command("recategorize")
@click.argument("clients", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Every configured client.")
@click.option("--dry-run", is_flag=True, help="Show the diff; write nothing.")
@click.pass_context
def recategorize_cmd(
    ctx: click.Context, clients: tuple[str, ...], all_: bool, dry_run: bool
) -> None:
    """Re-apply the current rules to entries still flagged `!` or on the uncategorized account.

    Only entries whose `stripe_hash` fingerprint still matches their content are rewritten: an
    entry a person has edited in any way is never touched. Prints the diff; the output file is
    replaced in one atomic rename (nothing is written with --dry-run).
    """
    from beancount_stripe import categorize

    with _errors():
        config = _load(ctx)
        selected = _select(config, clients, all_)
    results, code = _for_each(selected, lambda c: categorize.recategorize(c, dry_run=dry_run))
    for result in results:
        if result.diff:
            click.echo(result.diff, nl=False)
        click.echo(categorize.format_recategorized(result, dry_run))
    sys.exit(code)
