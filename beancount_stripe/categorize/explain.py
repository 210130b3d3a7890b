"""Explain one transaction's booking (`rules explain`) and measure rule coverage (`rules test`).

Both read the client's archive and return plain data plus a text rendering for the CLI."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from beancount.core import data

from beancount_stripe import archive, booking, ledger, rules
from beancount_stripe.config import ClientConfig
from beancount_stripe.errors import InputFileError
from beancount_stripe.rules import Explanation, Rule, Ruleset

BOOKING_TABLE = "(booking table, no rule)"
ANY_TYPE = "*"


# -- archive access --------------------------------------------------------------------------------


def read_archive(client: ClientConfig) -> dict[str, dict[str, Any]]:
    """Every archived balance transaction of ``client`` by id."""
    out: dict[str, dict[str, Any]] = {}
    for _month, path in archive.month_files(client.archive_dir):
        for bt in archive.read_transactions(path):
            out[bt["id"]] = bt
    return out


def find_transaction(
    clients: Sequence[ClientConfig], ident: str, file: Path | None = None
) -> tuple[ClientConfig, dict[str, Any]]:
    """The BT with id (or source id, e.g. ``ch_…``/``po_…``) ``ident``, and the client it is of."""
    for client in clients:
        if file is not None:
            bts = archive.read_transactions(file)
        else:
            bts = list(read_archive(client).values())
        for bt in bts:
            source = bt.get("source")
            source_id = source.get("id") if isinstance(source, Mapping) else source
            if ident in (bt.get("id"), source_id):
                return client, bt
        if file is not None:
            break
    where = str(file) if file else ", ".join(str(c.archive_dir) for c in clients)
    raise InputFileError(
        f"no balance transaction {ident} found",
        where=where,
        fix="check the id (txn_… or the source id such as ch_…/po_…); run `beancount-stripe "
        "fetch` first if the archive is not up to date, or pass --file",
    )


# -- explain ---------------------------------------------------------------------------------------


def explain(client: ClientConfig, bt: Mapping[str, Any], ruleset: Ruleset | None = None) -> str:
    """Which rule decided each part of the entry for ``bt`` and why; which rules almost matched."""
    ruleset = ruleset or rules.ruleset_for(client)
    booked = booking.book(bt, client)
    entry, why = rules.apply_rules(booked, bt, ruleset)
    amount = booked.postings[-1].units
    lines = [
        f"{bt['id']}  {bt.get('type')} / {bt.get('reporting_category')}  {-amount.number} "
        f"{amount.currency}  {entry.date}  client {client.id}",
        f"  description: {bt.get('description')!r}",
    ]
    fields = ("customer.name", "customer.email", "customer.id", "payment_method", "party")
    facts = rules.Facts(bt, booked, ruleset)
    known = [
        f"{name}={facts.text(name, rules.FIELDS[name][1])!r}"
        for name in fields
        if facts.text(name, rules.FIELDS[name][1])
    ]
    if known:
        lines.append("  " + "  ".join(known))
    lines.append("decisions:")
    lines.append(_decision("account", ", ".join(why.accounts), why, "account", booked, ruleset))
    lines.append(_decision("payee", entry.payee or "", why, "payee", booked, ruleset))
    lines.append(_decision("narration", entry.narration or "", why, "narration", booked, ruleset))
    flag_why = why.deciders.get("flag")
    if flag_why is not None:
        lines.append(_rule_line("flag", entry.flag, flag_why))
    else:
        reason = "on the uncategorized account" if entry.flag == "!" else "categorized"
        lines.append(f"  {'flag':<10} {entry.flag}  ← derived: {reason}")
    extra = sorted((entry.tags or set()) - (booked.tags or set()))
    if extra:
        lines.append(f"  {'tags':<10} {' '.join('#' + t for t in extra)}  ← matching rules")
    extra = sorted((entry.links or set()) - (booked.links or set()))
    if extra:
        lines.append(f"  {'links':<10} {' '.join('^' + t for t in extra)}  ← matching rules")
    for part, rule in why.deciders.items():
        if part.startswith("meta:"):
            lines.append(_rule_line(part[5:], entry.meta.get(part[5:]), rule))
    if why.matched:
        lines.append("rules that matched, in order:")
        for rule in why.matched:
            decided = [p for p, r in why.deciders.items() if r is rule]
            note = f" → decided {', '.join(decided)}" if decided else " (earlier rules decided)"
            lines.append(f"  {rule.name} ({where(rule)}){note}")
    near = rules.near_misses(booked, bt, ruleset)
    if near:
        lines.append("near misses (all conditions held but one):")
        for miss in near:
            actual = "no value" if miss.actual is None else repr(miss.actual)
            lines.append(
                f"  {miss.rule.name} ({where(miss.rule)}): failed {miss.failed} (was {actual})"
            )
    lines.append("entry:")
    lines.append(_indent(ledger.format_entries([entry])))
    return "\n".join(lines)


def _decision(
    label: str,
    value: str,
    why: Explanation,
    part: str,
    booked: data.Transaction,
    ruleset: Ruleset,
) -> str:
    rule = why.deciders.get(part)
    if rule is not None:
        return _rule_line(label, value, rule)
    if part == "payee" and why.party[0] and value == why.party[0]:
        party = ruleset.party_source(why.party[0])
        at = f" ({where(party)})" if party else ""
        return f"  {label:<10} {value}  ← party{at}, recognized by {why.party[1]}"
    return f"  {label:<10} {value}  ← booking default (no rule decided it)"


def _rule_line(label: str, value: Any, rule: Rule) -> str:
    return f"  {label:<10} {value}  ← rule {rule.name!r} ({where(rule)}): {rule.when.text}"


def where(rule: Rule | rules.Party) -> str:
    """``file:line`` of a rule or party, the file relative to the working directory if inside."""
    path = Path(rule.file)
    try:
        shown = str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        shown = str(path)
    return f"{shown}:{rule.line}"


def _indent(text: str) -> str:
    return "\n".join("  " + line if line else line for line in text.rstrip("\n").splitlines())


# -- coverage (`rules test`) -----------------------------------------------------------------------


@dataclass
class RuleCount:
    """Transactions whose counter-account one rule decided, and their gross per currency."""

    label: str
    where: str
    count: int = 0
    amounts: dict[str, Decimal] = field(default_factory=dict)


@dataclass
class Coverage:
    """How far a client's rules categorize its archive."""

    client: ClientConfig
    total: int = 0
    uncategorized: int = 0
    amounts: dict[str, Decimal] = field(default_factory=dict)  # |gross| per currency, all
    uncategorized_amounts: dict[str, Decimal] = field(default_factory=dict)
    by_rule: list[RuleCount] = field(default_factory=list)
    top_descriptions: list[tuple[str, int]] = field(default_factory=list)
    top_customers: list[tuple[str, int]] = field(default_factory=list)

    @property
    def percent(self) -> Decimal:
        """Share of transactions not on the uncategorized account (100 when there are none)."""
        if not self.total:
            return Decimal(100)
        return (Decimal(self.total - self.uncategorized) * 100 / self.total).quantize(
            Decimal("0.1")
        )


def coverage(
    client: ClientConfig,
    bts: Iterable[Mapping[str, Any]] | None = None,
    ruleset: Ruleset | None = None,
    top: int = 10,
) -> Coverage:
    """Run the rules over the client's archive (or ``bts``) and count what each rule decides."""
    ruleset = ruleset or rules.ruleset_for(client)
    items = list(read_archive(client).values() if bts is None else bts)
    result = Coverage(client)
    counts: dict[int, RuleCount] = {}
    order: dict[int, int] = {id(r): i for i, r in enumerate(ruleset.rules)}
    descriptions: Counter[str] = Counter()
    customers: Counter[str] = Counter()
    by_id = {bt["id"]: bt for bt in items}
    for entry, why in rules.book_with_rules(items, client, ruleset):
        result.total += 1
        units = entry.postings[-1].units
        gross = abs(sum((p.units.number for p in counter_legs(entry, why)), Decimal(0)))
        cur = units.currency
        result.amounts[cur] = result.amounts.get(cur, Decimal(0)) + gross
        rule = why.account_rule
        key = id(rule) if rule is not None else -1
        if key not in counts:
            label = rule.name if rule else BOOKING_TABLE
            counts[key] = RuleCount(label, where(rule) if rule else "")
        row = counts[key]
        row.count += 1
        row.amounts[cur] = row.amounts.get(cur, Decimal(0)) + gross
        if ruleset.uncategorized in why.accounts:
            result.uncategorized += 1
            result.uncategorized_amounts[cur] = (
                result.uncategorized_amounts.get(cur, Decimal(0)) + gross
            )
            bt = by_id[entry.meta["stripe_id"]]
            facts = rules.Facts(bt, entry, ruleset)
            description = facts.text("description", rules.FIELDS["description"][1])
            descriptions[description or f"(none; {booking.label(bt)})"] += 1
            who = facts.text("customer.name", rules.FIELDS["customer.name"][1]) or facts.text(
                "customer.email", rules.FIELDS["customer.email"][1]
            )
            customers[who or "(no customer)"] += 1
    ranks = {id(row): order.get(key, len(order)) for key, row in counts.items()}
    result.by_rule = sorted(counts.values(), key=lambda r: (-r.count, ranks[id(r)]))
    result.top_descriptions = descriptions.most_common(top)
    result.top_customers = customers.most_common(top)
    return result


def counter_legs(entry: data.Transaction, why: Explanation) -> list[data.Posting]:
    return list(entry.postings[len(entry.postings) - len(why.accounts) :])


def format_coverage(cov: Coverage) -> str:
    c = cov.client
    lines = [
        f"{c.id}: {cov.total:,} transaction(s); {cov.total - cov.uncategorized:,} categorized "
        f"({cov.percent}%), {cov.uncategorized:,} on {c.accounts.uncategorized}",
    ]
    if cov.amounts:
        shares = []
        for cur in sorted(cov.amounts):
            total = cov.amounts[cur]
            unc = cov.uncategorized_amounts.get(cur, Decimal(0))
            pct = (
                Decimal(100)
                if not total
                else ((total - unc) * 100 / total).quantize(Decimal("0.1"))
            )
            shares.append(f"{cur} {pct}%")
        lines.append("  amount categorized per currency: " + ", ".join(shares))
    lines.append("  counter-account decided by:")
    width = max((len(r.label) for r in cov.by_rule), default=10)
    for row in cov.by_rule:
        amounts = ", ".join(f"{v:,} {k}" for k, v in sorted(row.amounts.items()))
        at = f"  ({row.where})" if row.where else ""
        lines.append(f"    {row.label:<{width}} {row.count:>7,}  {amounts}{at}")
    if cov.top_descriptions:
        lines.append("  most common uncategorized descriptions:")
        lines += [f"    {n:>6,}  {text}" for text, n in cov.top_descriptions]
    if cov.top_customers:
        lines.append("  most common uncategorized customers:")
        lines += [f"    {n:>6,}  {text}" for text, n in cov.top_customers]
    return "\n".join(lines)
