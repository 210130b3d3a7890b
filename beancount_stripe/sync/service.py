"""``sync_client``: fetch → archive → book → write for one client, under its lock."""

from __future__ import annotations

import datetime
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from beancount.core import data

from beancount_stripe import (
    archive,
    atomic,
    booking,
    capital,
    ledger,
    rules,
    summary,
    sync_state,
)
from beancount_stripe.config import ClientConfig
from beancount_stripe.errors import (
    BeancountStripeError,
)
from beancount_stripe.spool import Spool
from beancount_stripe.stripe_api import StripeGateway
from beancount_stripe.sync.fetching import (
    _archive_months,
    _month_rows,
    _recent_transactions,
    fetch,
    fetch_payout_contents,
    settle_balance,
)
from beancount_stripe.sync.gateway import (
    gateway_for,
    verify_account,
)
from beancount_stripe.sync.report import (
    DEFAULT_OVERLAP,
    KEEP_BOOKED,
    STRIPE_EPOCH,
    Progress,
    SyncReport,
)
from beancount_stripe.sync.tieout import (
    _archive_period,
    _norm,
    _untied_message,
    assertion_cutoff,
    derive_assertions,
    differences,
    implied_totals,
    repair_tie_out,
)
from beancount_stripe.sync.timeline import (
    start_of_day,
)


def sync_client(
    client: ClientConfig,
    *,
    dry_run: bool = False,
    now: int | None = None,
    overlap: datetime.timedelta = DEFAULT_OVERLAP,
    api_base: str | None = None,
    gateway: StripeGateway | None = None,
    progress: Progress | None = None,
    workers: int | None = None,
    rate_limit: float | None = None,
    via: str = "python",
) -> SyncReport:
    """Fetch, book and write one client. See the module docstring for the order of steps.

    ``rate_limit`` (requests/s) overrides the client's; see ``gateway_for``. ``via`` says who
    runs it (cli, cron, fava, demo, python): every run that may write, and every failure, is
    recorded in the client's sync state file (``sync_state``).
    """
    started = sync_state.now_iso()
    try:
        with ledger.locked(client.ledger):
            report = _sync_locked(
                client,
                dry_run=dry_run,
                now=now,
                overlap=overlap,
                api_base=api_base,
                gateway=gateway,
                progress=progress,
                workers=workers,
                rate_limit=rate_limit,
            )
    except BeancountStripeError as error:
        if not dry_run:
            sync_state.record_sync(client, via=via, started=started, error=error)
        raise
    if not dry_run:
        sync_state.record_sync(client, via=via, started=started, report=report)
    return report


def _sync_locked(
    client: ClientConfig,
    *,
    dry_run: bool,
    now: int | None,
    overlap: datetime.timedelta,
    api_base: str | None,
    gateway: StripeGateway | None,
    progress: Progress | None,
    workers: int | None,
    rate_limit: float | None = None,
) -> SyncReport:
    report = SyncReport(client=client, dry_run=dry_run)
    tz = ZoneInfo(client.timezone)
    now = int(time.time()) if now is None else now

    # Read the ledger first: a broken config or ledger must fail before any network traffic.
    state = ledger.scan(client.ledger, client.output)
    old_summaries = summary.add_covered(client, state)  # what summary entries hold is booked
    ours = [client.capital.output] if client.capital is not None else []
    ledger.check_included(client.ledger, client.output, state, ours=ours)
    ruleset = rules.ruleset_for(client)  # invalid rules also fail before any network traffic
    if not dry_run:  # an unwritable folder fails now, not after the whole history is fetched
        atomic.check_writable(
            client.ledger, client.output, archive.month_path(client.archive_dir, "0000-00")
        )

    gw = gateway or gateway_for(client, api_base=api_base, rate_limit=rate_limit)
    account = verify_account(gw, client)

    newest_date = state.newest_date
    if newest_date is not None:
        lower = start_of_day(newest_date, tz) - int(overlap.total_seconds())
    else:
        lower = int(account.get("created") or STRIPE_EPOCH)
    fetched = fetch(
        client,
        gw,
        lower=lower,
        now=now,
        overlap=overlap,
        write=not dry_run,
        workers=workers,
        progress=progress,
        keep=dry_run,  # a real sync streams: what it fetched is read back month by month
    )
    report.fetched = fetched.count
    report.months_skipped = fetched.months_skipped
    report.changed_files.extend(fetched.changed_files)

    # Only the recent months are held in memory: the balance and its assertion need them; older
    # months are read one at a time while booking (see ``_book_streamed``).
    extra: dict[str, dict[str, Any]] = dict(fetched.transactions)  # dry run: not in the archive
    known = _recent_transactions(client, extra, overlap)
    totals, arrived = settle_balance(client, gw, known, write=not dry_run)
    report.fetched += len(arrived)
    report.stripe_balance = totals
    if dry_run:
        extra.update((b["id"], b) for b in arrived)

    # The archive must imply Stripe's balance before any assertion is written (see tie-out).
    if differences(totals, implied_totals(client, extra.values())):
        before = dict.fromkeys(known)
        report.untied, report.refetched_months = repair_tie_out(
            client,
            gw,
            totals,
            known,
            lower=int(account.get("created") or STRIPE_EPOCH),
            now=now,
            overlap=overlap,
            write=not dry_run,
            unwritten=extra,
        )
        report.fetched += len(known) - len(before)
        if dry_run:
            extra.update((i, bt) for i, bt in known.items() if i not in before)
        if report.untied:
            report.period = _archive_period(client, known.values())
            report.warnings.append(_untied_message(report))

    if not dry_run:
        payouts = {**fetched.payouts, **known}
        report.changed_files.extend(fetch_payout_contents(client, gw, payouts, workers=workers))
    report.requests = gw.request_count

    # Transaction mode streams: entries are booked month by month while writing (see
    # ``_book_streamed``). Summary modes group across days and payouts: they book month by month
    # too, but only gather each summary's sums (``summary.Planner``); their entries are few, and
    # what waits stays in the archive.
    streamed = client.booking.mode == "transaction"
    entries: list[data.Transaction] = []
    newest_new: int | None = None  # of the transactions summarized, which ``known`` leaves out
    currencies: set[str] = set()
    if streamed:
        plan = summary.plan_for(
            client,
            [],
            [],
            old_summaries,
            taken=state.summaries,
            now=now,
            overlap=overlap,
            uncategorized=ruleset.uncategorized,
        )
    else:
        planner = summary.planner_for(  # per day / per payout; the rest waits (summary.py)
            client,
            taken=state.summaries,
            now=now,
            overlap=overlap,
            uncategorized=ruleset.uncategorized,
        )
        months = _archive_months(client, extra)
        covered = _capital_covered(client, state, months)
        for path, rows in months.values():
            new_bts = [
                bt for bt in _month_rows(path, rows, state.stripe_ids) if bt["id"] not in covered
            ]
            if not new_bts:
                continue
            pairs = rules.book_with_rules(new_bts, client, ruleset)
            by_id = {bt["id"]: bt for bt in new_bts}
            singles, waiting = len(planner.singles), len(planner.result.waiting)
            planner.add([entry for entry, _why in pairs], by_id)
            # The assertion needs the transactions booked on their own and those that wait (its
            # day may move back to the oldest waiting one); of the others, their newest time
            # and their currencies.
            for entry in planner.singles[singles:]:
                bt = by_id[entry.meta["stripe_id"]]
                known.setdefault(bt["id"], {k: bt[k] for k in ("id", "created", "currency", "net")})
            for bt in planner.result.waiting[waiting:]:
                known.setdefault(bt["id"], bt)
            for bt in new_bts:
                currencies.add(str(bt["currency"]).lower())
                if newest_new is None or bt["created"] > newest_new:
                    newest_new = bt["created"]
            for _entry, why in pairs:
                rule = why.account_rule
                if rule is not None and ruleset.uncategorized not in why.accounts:
                    report.rule_hits[rule.name] += 1
            report.by_type.update(str(bt["type"]) for bt in new_bts)
        plan = planner.finish()
        plan.old = old_summaries
        entries = plan.entries
        report.waiting, report.waiting_count = plan.waiting_nets(), len(plan.waiting)
        report.rules_files = len(ruleset.files)
        report.ruled = sum(report.rule_hits.values())
        report.booked = entries
        report.booked_count = len(entries)
        report.by_account.update(e.postings[-1].account for e in entries)
        report.flagged = sum(1 for e in entries if e.flag == "!")

    newest = max((bt["created"] for bt in known.values()), default=newest_new)
    if newest is not None and newest_new is not None:
        newest = max(newest, newest_new)
    assertions: list[data.Balance] = []
    if newest is not None and not report.untied:
        cutoff = plan.assertion_day(assertion_cutoff(newest, tz, overlap), tz)
        report.assertion_date = cutoff
        if plan.summarizing:
            expected = plan.expected_balances(known.values(), totals, cutoff, tz, currencies)
        else:
            expected = derive_assertions(client, known.values(), totals, cutoff)
        for bal in booking.balance_assertions(client, cutoff, expected):
            key = (bal.date, bal.account, bal.amount.currency)
            if key in state.balances:
                if _norm(state.balances[key]) != _norm(str(bal.amount.number)):
                    report.warnings.append(
                        f"{bal.date} balance {bal.account} is {state.balances[key]} "
                        f"{bal.amount.currency} in the ledger, Stripe now says "
                        f"{bal.amount.number} {bal.amount.currency}"
                    )
                continue
            assertions.append(bal)
    report.assertions = assertions
    del known

    main_text = None
    if not dry_run:
        main_text = ledger.ensure_main(
            client.ledger, client.output, client.name, client.operating_currency
        )
    header = ledger.OUTPUT_HEADER.format(name=client.name, account=client.stripe_account)
    if not streamed:
        blocks: list[str] = []
        if entries or assertions:
            first = min([e.date for e in entries] + [a.date for a in assertions])
            used = {p.account for e in entries for p in e.postings}
            used.update(a.account for a in assertions)
            opens = ledger.open_directives(used, state.open_accounts, first)
            used_currencies = {p.units.currency for e in entries for p in e.postings}
            used_currencies.update(a.amount.currency for a in assertions)
            commodities = ledger.commodity_directives(used_currencies, state.commodities, first)
            if commodities:
                blocks.append(ledger.format_entries(commodities))
            if opens:
                blocks.append(ledger.format_entries(opens))
            if entries:
                blocks.append(ledger.format_entries(entries))
            if assertions:
                blocks.append(ledger.format_entries(assertions))
        report.text = "\n".join(blocks)
        if dry_run:
            return report
        if plan.new and summary.write_index(client, plan.new):  # before the ledger: summary.py
            report.changed_files.append(summary.index_path(client.archive_dir))
        if blocks and ledger.append(client.output, blocks, header):
            report.changed_files.append(client.output)
    else:
        with Spool(None if dry_run else client.output) as entries_text:
            used, used_currencies, first_date = _book_streamed(
                client, ruleset, state, extra, report, entries_text
            )
            blocks: list[str] = []
            if report.booked_count or assertions:
                dates = [a.date for a in assertions] + ([first_date] if first_date else [])
                first = min(dates)
                used.update(a.account for a in assertions)
                opens = ledger.open_directives(used, state.open_accounts, first)
                used_currencies.update(a.amount.currency for a in assertions)
                commodities = ledger.commodity_directives(used_currencies, state.commodities, first)
                if commodities:
                    blocks.append(ledger.format_entries(commodities))
                if opens:
                    blocks.append(ledger.format_entries(opens))
            tail = [ledger.format_entries(assertions)] if assertions else []
            if dry_run or report.booked_count <= KEEP_BOOKED:
                body = [entries_text.text()] if report.booked_count else []
                report.text = "\n".join(blocks + body + tail)
            if dry_run:
                return report
            if entries_text.append_to(client.output, header, blocks, tail):
                report.changed_files.append(client.output)
    # The main ledger comes second, so a crash in between leaves it missing, as before the
    # first sync; the next sync (even with nothing new) creates it.
    if main_text is not None and client.output.exists():
        atomic.write_atomic(client.ledger, main_text)
        report.changed_files.append(client.ledger)
    return report


# Transactions booked and written at once: a month of a dense history (~10k transactions at 1M
# over 8 years) is booked in a few chunks, so its entries are never all held
BOOK_CHUNK = 4_000


def _book_streamed(
    client: ClientConfig,
    ruleset: rules.Ruleset,
    state: ledger.LedgerState,
    extra: Mapping[str, dict[str, Any]],
    report: SyncReport,
    out: Spool,
) -> tuple[set[str], set[str], datetime.date | None]:
    """Book every archived transaction the ledger lacks, one month at a time, into ``out``.

    Returns the accounts and currencies the entries use and their first date. Entries sort by
    (date, created, id) within a month and months are in order, so the text equals booking all
    at once.
    """
    months = _archive_months(client, extra)
    covered = _capital_covered(client, state, months)
    used: set[str] = set()
    currencies: set[str] = set()
    first: datetime.date | None = None
    report.rules_files = len(ruleset.files)
    for path, rows in months.values():
        month = [bt for bt in _month_rows(path, rows, state.stripe_ids) if bt["id"] not in covered]
        report.by_type.update(str(bt["type"]) for bt in month)
        if len(month) > BOOK_CHUNK:
            # Booking sorts by (date, created, id), and the date follows ``created``: booked in
            # (created, id) order a chunk at a time, the text is the month's as booked at once.
            month.sort(key=lambda bt: (bt["created"], bt["id"]))
        for start in range(0, len(month), BOOK_CHUNK):
            new_bts = month[start : start + BOOK_CHUNK]
            pairs = rules.book_with_rules(new_bts, client, ruleset)
            entries = [entry for entry, _why in pairs]
            for entry, why in pairs:
                rule = why.account_rule
                if rule is not None and ruleset.uncategorized not in why.accounts:
                    report.rule_hits[rule.name] += 1
                if entry.flag == "!":
                    report.flagged += 1
                report.by_account[entry.postings[-1].account] += 1
                for posting in entry.postings:
                    used.add(posting.account)
                    currencies.add(posting.units.currency)
                first = entry.date if first is None else min(first, entry.date)
            report.booked_count += len(entries)
            if report.dry_run or report.booked_count <= KEEP_BOOKED:
                report.booked.extend(entries)
            else:
                report.booked.clear()
            out.write(ledger.format_entries(entries))
            del pairs, entries
    report.ruled = sum(report.rule_hits.values())
    return used, currencies, first


def _capital_covered(
    client: ClientConfig,
    state: ledger.LedgerState,
    months: Mapping[str, tuple[Path | None, list[dict[str, Any]]]],
) -> set[str]:
    """Ids of new financing transactions a Capital CSV row imported before them already books.

    Only financing transactions can be covered, so only they are kept while reading the archive.
    """
    if not state.capital_entries:
        return set()
    financing = [
        bt
        for path, rows in months.values()
        for bt in _month_rows(path, rows, state.stripe_ids)
        if bt["type"] in capital.KIND_OF_BT or bt.get("reporting_category") in capital.KIND_OF_BT
    ]
    return capital.covered_by_capital(financing, state.capital_entries, client)
