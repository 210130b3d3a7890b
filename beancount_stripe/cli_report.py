"""How a sync report reads on the terminal: the per-client summary of `sync` and `demo`."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import click

from beancount_stripe import currency
from beancount_stripe.config import ClientConfig
from beancount_stripe.errors import BeancountStripeError
from beancount_stripe.health import Health
from beancount_stripe.stripe_api import mask_secrets
from beancount_stripe.sync import SyncReport


def payouts_line(client: ClientConfig, entries: Any = None) -> str:
    """The summary's payouts line (matched / in transit / late), or a warning if unreadable."""
    from beancount_stripe.cli_payouts import summary_line

    try:
        return summary_line(client, entries)
    except BeancountStripeError as e:
        return click.style(f"  payouts: {mask_secrets(str(e))}", fg="yellow")


def fmt_money(minor: int, cur: str) -> str:
    value = currency.to_decimal(minor, cur)
    return f"{value:,} {cur.upper()}"


def format_report(
    report: SyncReport,
    ledger_totals: dict[str, Decimal] | None = None,
    *,
    health: Health | None = None,
    checked: bool = False,
) -> str:
    """A per-client summary a bookkeeper can read at a glance.

    With ``health`` (the books as Beancount loads them) it shows the tie-out of the clearing
    account with Stripe's balance, every open `!` entry, and the payouts still in transit.
    """
    from beancount_stripe.health import tie_out

    c = report.client
    mode = "would book" if report.dry_run else "booked"
    lines = [
        click.style(f"{c.id}: {c.name} ({c.stripe_account})", bold=True),
        f"  fetched {report.fetched:,} balance transaction(s) in {report.requests:,} request(s); "
        f"{mode} {report.booked_count:,} new entr{'y' if report.booked_count == 1 else 'ies'}",
    ]
    if report.by_type:
        ranked = report.by_type.most_common()
        kinds = ", ".join(f"{t} {n:,}" for t, n in ranked[:8])
        rest = sum(n for _t, n in ranked[8:])
        more = f", {rest:,} more in {len(ranked) - 8} other types" if rest else ""
        lines.append(f"  by type: {kinds}{more}")
        by_account = report.by_account.most_common()
        accounts = ", ".join(f"{a} {n:,}" for a, n in by_account[:6])
        rest = len(by_account) - 6
        lines.append(f"  by counter-account: {accounts}" + (f", {rest} more" if rest > 0 else ""))
        lines.extend(_rule_coverage_lines(report))
    if health is not None and ledger_totals is None:
        ledger_totals = health.clearing
    if report.stripe_balance:
        lines.append(f"  {c.accounts.clearing} per currency (Stripe balance = available+pending):")
        pending = report.booked if report.dry_run else ()
        if report.waiting_count:  # summary modes (summary.py)
            lines.append(
                f"    ({report.waiting_count:,} transaction(s) wait in the archive for their "
                "day or payout; counted below)"
            )
        for t in tie_out(
            report.stripe_balance,
            ledger_totals or {},
            pending,
            c.accounts.clearing,
            waiting=report.waiting,
        ):
            stripe_amount = f"{t.stripe:,} {t.currency}"
            if ledger_totals is not None:
                mark = (
                    click.style("✔ ties out", fg="green")
                    if t.ties_out
                    else click.style(f"✘ differs by {t.difference:,} {t.currency}", fg="red")
                )
                books = f"{t.ledger:,} {t.currency}"
                lines.append(f"    ledger {books} / Stripe {stripe_amount}  {mark}")
            else:
                lines.append(f"    Stripe {stripe_amount}")
    if report.assertion_date:
        state = "new" if report.assertions else "already in the ledger"
        lines.append(f"  balance assertion dated {report.assertion_date} ({state})")
    if health is not None:
        lines.append(
            f"  entries flagged for review (flag !): {health.open_flagged:,} open in the ledger, "
            f"{report.flagged:,} of them new"
        )
        if health.transit:  # the payouts line below counts them; this is the money
            amounts = ", ".join(f"{t.amount:,} {t.currency}" for t in health.transit)
            lines.append(f"  on the transit account (no bank entry has cleared it): {amounts}")
        if checked:
            lines.append(
                click.style("  bean-check: clean", fg="green")
                if not health.errors
                else click.style("  bean-check: FAILED", fg="red")
            )
    else:
        lines.append(f"  entries flagged for review: {report.flagged:,} (flag !)")
    for w in report.warnings:
        lines.append(click.style(f"  warning: {w}", fg="yellow"))
    if not report.dry_run:
        lines.append(f"  files changed: {len(report.changed_files)}")
    return "\n".join(lines)


def _rule_coverage_lines(report: SyncReport) -> list[str]:
    """One summary line: how many new entries the client's rules categorized, and by which."""
    if not getattr(report, "rules_files", 0) or not report.booked_count:
        return []
    n = report.booked_count
    pct = report.ruled * 100 / n
    top = ", ".join(f"{name} {k:,}" for name, k in report.rule_hits.most_common(6))
    more = len(report.rule_hits) - 6
    tail = f", {more} more rule(s)" if more > 0 else ""
    return [
        f"  rules ({report.rules_files} file(s)): {report.ruled:,} of {n:,} entries categorized "
        f"by a rule ({pct:.1f}%); by rule: {top}{tail}"
    ]
