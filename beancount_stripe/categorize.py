"""The tools around the rules: explain, coverage (`rules test`), `rules suggest`, `recategorize`.

Each works on one client's archive (the raw balance transactions) and ledger, and returns plain
data plus a text rendering for the CLI, which stays a thin shell. Nothing here talks to Stripe.
"""

from __future__ import annotations

import difflib
import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from beancount.core import data
from beancount.parser import parser

from beancount_stripe import archive, booking, ledger, rules
from beancount_stripe.atomic import write_atomic
from beancount_stripe.config import ClientConfig
from beancount_stripe.errors import InputFileError, LedgerError
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
        gross = abs(sum((p.units.number for p in _counter_legs(entry, why)), Decimal(0)))
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


def _counter_legs(entry: data.Transaction, why: Explanation) -> list[data.Posting]:
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


# -- suggest ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Example:
    """One booked entry as the learner sees it: the BT's facts and the ledger's decision."""

    txn_id: str
    bt_type: str
    features: Mapping[tuple[str, str, str], str]  # (field, op, casefolded value) → as written
    account: str  # counter-account in the ledger (largest counter posting)
    rule_account: str  # counter-account the current rules give
    edited: bool  # the bookkeeper chose another counter-account than the current rules
    reviewed: bool  # the rules flag it `!`, the ledger has `*`: approved by hand
    payee: str | None
    rule_payee: str | None
    identities: tuple[tuple[str, str], ...]  # (field, raw value) a party can be recognized by


@dataclass
class Suggestion:
    """A proposed rule with the evidence for it."""

    name: str
    types: list[str]
    field: str
    op: str
    value: str
    account: str
    count: int  # ledger entries it decides as the bookkeeper did
    edited: int  # of which the bookkeeper categorized by hand
    conflicts: list[tuple[str, str]]  # (txn id, account in the ledger) it would decide otherwise

    @property
    def precision(self) -> float:
        return self.count / max(1, self.count + len(self.conflicts))


@dataclass
class PartySuggestion:
    payee: str
    identities: dict[str, set[str]]  # ids/emails/names → values
    count: int
    conflicts: list[str]


@dataclass
class Suggestions:
    client: ClientConfig
    examined: int = 0
    edited: int = 0
    reviewed: int = 0  # `!` removed with the same account
    rules: list[Suggestion] = field(default_factory=list)
    parties: list[PartySuggestion] = field(default_factory=list)
    unexplained: Counter[str] = field(default_factory=Counter)  # account → hand-made entries left


_SKIP_TOKEN = re.compile(r"[#@]|^\W*$|^\d+\W*$|\d{5,}")
_EDGE_PUNCT = re.compile(r"^[\W_]+|[\W_]+$")
_FEATURE_FIELDS = (
    "customer.id",
    "customer.email",
    "customer.name",
    "statement_descriptor",
    "payment_method",
    "card.brand",
    "currency",
    "destination",
    "reporting_category",
)
# A more specific field wins a tie on coverage: ids over emails over names over descriptions.
_FIELD_RANK = {name: i for i, name in enumerate((*_FEATURE_FIELDS, "metadata", "description"))}


def _features(facts: rules.Facts) -> dict[tuple[str, str, str], str]:
    """(field, operator, casefolded value) → the value as written, for one BT."""
    out: dict[tuple[str, str, str], str] = {}

    def add(name: str, op: str, value: str) -> None:
        out.setdefault((name, op, value.casefold()), value)

    for name in _FEATURE_FIELDS:
        value = facts.text(name, rules.FIELDS[name][1])
        if value:
            add(name, "equals", value)
            if name == "customer.email" and "@" in value:
                add(name, "suffix", "@" + value.rpartition("@")[2])
    charge = rules.charge_of(facts)
    for obj in (charge, facts.bt.get("source")):
        meta = obj.get("metadata") if isinstance(obj, Mapping) else None
        if isinstance(meta, Mapping):
            for key, value in meta.items():
                if isinstance(value, str) and value and re.fullmatch(r"[A-Za-z0-9_.-]+", key):
                    add(f"metadata.{key}", "equals", value)
    description = facts.text("description", rules.FIELDS["description"][1])
    if description:
        text = " ".join(description.split())
        add("description", "equals", text)
        for gram in _ngrams(text):
            if gram.casefold() in text.casefold():
                add("description", "contains", gram)
    return out


def _ngrams(text: str, longest: int = 4) -> list[str]:
    runs: list[list[str]] = [[]]
    for raw in text.split():
        token = _EDGE_PUNCT.sub("", raw)
        if not token or _SKIP_TOKEN.search(raw):
            runs.append([])
            continue
        runs[-1].append(token)
    grams = []
    for run in runs:
        for n in range(1, min(longest, len(run)) + 1):
            for i in range(len(run) - n + 1):
                grams.append(" ".join(run[i : i + n]))
    return grams


def _identities(facts: rules.Facts) -> tuple[tuple[str, str], ...]:
    out = []
    for name, kind in (("customer.id", "ids"), ("customer.email", "emails")):
        value = facts.text(name, rules.FIELDS[name][1])
        if value:
            out.append((kind, value))
    name = facts.text("customer.name", rules.FIELDS["customer.name"][1])
    if name:
        out.append(("names", name))
    return tuple(out)


def ledger_examples(
    client: ClientConfig,
    entries: Iterable[data.Directive],
    bts: Mapping[str, Mapping[str, Any]],
    ruleset: Ruleset,
) -> list[Example]:
    """Pair each ledger entry with its BT; mark those a bookkeeper decided differently."""
    own = {client.accounts.clearing, client.accounts.fees, client.accounts.fee_tax}
    out = []
    for entry in entries:
        if not isinstance(entry, data.Transaction):
            continue
        txn_id = (entry.meta or {}).get("stripe_id")
        bt = bts.get(str(txn_id)) if txn_id else None
        if bt is None:
            continue
        booked = booking.book(bt, client)
        counter = _ledger_counter(entry, booked, own)
        if not counter:
            continue
        ledger_account = max(counter, key=lambda p: abs(p.units.number or 0)).account
        ruled, why = rules.apply_rules(booked, bt, ruleset)
        ruled_counter = max(
            _counter_legs(ruled, why), key=lambda p: abs(p.units.number or 0)
        ).account
        edited = ledger_account != ruled_counter
        facts = rules.Facts(bt, booked, ruleset)
        out.append(
            Example(
                txn_id=str(txn_id),
                bt_type=str(bt.get("type") or "").casefold(),
                features=_features(facts),
                account=ledger_account,
                rule_account=ruled_counter,
                edited=edited,
                reviewed=ruled.flag == "!" and entry.flag == "*",
                payee=entry.payee,
                rule_payee=ruled.payee,
                identities=_identities(facts),
            )
        )
    return out


def _ledger_counter(
    entry: data.Transaction, booked: data.Transaction, own: set[str | None]
) -> list[data.Posting]:
    """The counter-leg(s) of a ledger entry: what follows the clearing and fee postings.

    When a person reshaped the entry, the postings not on the clearing or fee accounts.
    """
    prefix = [p.account for p in booked.postings[:-1]]
    postings = [p for p in entry.postings if p.units is not None and p.units.number is not None]
    if [p.account for p in postings[: len(prefix)]] == prefix and len(postings) > len(prefix):
        return postings[len(prefix) :]
    return [p for p in postings if p.account not in own]


def learn(
    examples: Sequence[Example],
    *,
    min_count: int = 2,
    min_precision: float = 0.9,
) -> list[Suggestion]:
    """Learn an ordered decision list (sequential covering, as in CN2) from the ledger.

    Each round picks, over every account the bookkeeper chose by hand, the condition (one field,
    restricted to the BT types it was seen with) that best separates those entries from the
    rest of the entries not yet decided; the entries it matches are then taken out, so later
    rules only have to be right about what earlier rules leave. Rules come out in the order they
    must be tried: exceptions before the general cases.
    """
    index: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    for i, ex in enumerate(examples):
        for feat in ex.features:
            index[feat].append(i)
    pool = set(range(len(examples)))  # not decided by a learned rule yet
    todo = {i for i, ex in enumerate(examples) if ex.edited}  # hand decisions to explain
    found: list[Suggestion] = []
    while todo:
        by_feature: dict[tuple[str, tuple[str, str, str]], set[str]] = defaultdict(set)
        for i in todo:
            ex = examples[i]
            for feat in ex.features:
                by_feature[(ex.account, feat)].add(ex.bt_type)
        best: tuple[Any, ...] | None = None
        for (account, feat), types in by_feature.items():
            members = [i for i in index[feat] if i in pool and examples[i].bt_type in types]
            pos = sum(1 for i in members if examples[i].account == account)
            gain = sum(1 for i in members if i in todo and examples[i].account == account)
            if gain < min_count or pos < min_precision * len(members):
                continue
            fname, _op, value = feat
            rank = _FIELD_RANK.get("metadata" if fname.startswith("metadata.") else fname, 99)
            # exceptions first: the most precise condition, then the one deciding the most
            # entries, the most specific field, the longest text, and a stable order (``_prune``
            # then drops the narrow rules a later, broader one makes redundant)
            precision = round(pos / len(members), 6)
            score = (precision, gain, -rank, len(value), value, account)
            if best is None or score > best[0]:
                best = (score, account, feat, sorted(types), members, pos, gain)
        if best is None:
            break
        _score, account, (fname, op, value), types, members, pos, gain = best
        found.append(
            Suggestion(
                name="",
                types=types,
                field=fname,
                op=op,
                value=examples[members[0]].features[(fname, op, value)],
                account=account,
                count=pos,
                edited=gain,
                conflicts=[
                    (examples[i].txn_id, examples[i].account)
                    for i in members
                    if examples[i].account != account
                ],
            )
        )
        pool.difference_update(members)
        todo.difference_update(members)
    found = _prune(found, examples)
    names: Counter[str] = Counter()
    for sug in found:
        base = f"{sug.account.rsplit(':', 1)[-1].lower()}: {sug.field} {sug.op} {sug.value}"
        names[base] += 1
        sug.name = base if names[base] == 1 else f"{base} ({names[base]})"
    return found


def _matches(sug: Suggestion, examples: Sequence[Example]) -> list[int]:
    feat = (sug.field, sug.op, sug.value.casefold())
    return [i for i, ex in enumerate(examples) if ex.bt_type in sug.types and feat in ex.features]


def _prune(found: list[Suggestion], examples: Sequence[Example]) -> list[Suggestion]:
    """Drop rules a later, more general rule makes redundant; recount what each decides.

    A rule goes when the list without it decides at least as many ledger entries as the
    bookkeeper did (entries no rule matches keep what the current rules give).
    """
    matches = [_matches(s, examples) for s in found]

    def agreement(keep: list[int]) -> int:
        decided: dict[int, str] = {}
        for k in keep:
            for i in matches[k]:
                decided.setdefault(i, found[k].account)
        return sum(decided.get(i, ex.rule_account) == ex.account for i, ex in enumerate(examples))

    keep = list(range(len(found)))
    best = agreement(keep)
    changed = True
    while changed:
        changed = False
        for k in sorted(keep, key=lambda k: (len(matches[k]), -k)):
            trial = [x for x in keep if x != k]
            score = agreement(trial)
            if score >= best:
                keep, best, changed = trial, score, True
                break
    out = []
    taken: set[int] = set()
    for k in keep:
        sug = found[k]
        members = [i for i in matches[k] if i not in taken]
        taken.update(members)
        sug.count = sum(1 for i in members if examples[i].account == sug.account)
        sug.edited = sum(
            1 for i in members if examples[i].account == sug.account and examples[i].edited
        )
        sug.conflicts = [
            (examples[i].txn_id, examples[i].account)
            for i in members
            if examples[i].account != sug.account
        ]
        out.append(sug)
    return out


def learn_parties(examples: Sequence[Example], min_count: int = 1) -> list[PartySuggestion]:
    """Identities whose entries the bookkeeper renamed to one payee → a parties entry."""
    by_ident: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    kept: Counter[tuple[str, str]] = Counter()  # entries with the identity and the rules' payee
    for ex in examples:
        renamed = bool(ex.payee) and ex.payee != ex.rule_payee
        for kind, value in ex.identities:
            if renamed:
                by_ident[(kind, value)][str(ex.payee)] += 1
            else:
                kept[(kind, value)] += 1
    parties: dict[str, PartySuggestion] = {}
    for (kind, value), payees in sorted(by_ident.items()):
        payee, n = payees.most_common(1)[0]
        if kept[(kind, value)] > n // 10:  # the identity also stands for others (a common name)
            continue
        party = parties.setdefault(payee, PartySuggestion(payee, defaultdict(set), 0, []))
        party.identities[kind].add(value)
        party.count = max(party.count, n)
        for other in payees:
            if other != payee:
                party.conflicts.append(f"{kind} {value} also renamed to {other!r}")
    return [p for p in parties.values() if p.count >= min_count]


def suggest(
    client: ClientConfig,
    *,
    entries: Iterable[data.Directive] | None = None,
    bts: Mapping[str, Mapping[str, Any]] | None = None,
    ruleset: Ruleset | None = None,
    min_count: int = 2,
    min_precision: float = 0.9,
) -> Suggestions:
    """Propose rules and parties from what the bookkeeper decided by hand in the ledger."""
    ruleset = ruleset or rules.ruleset_for(client)
    if entries is None:
        entries = load_ledger(client.ledger)
    bts = bts if bts is not None else read_archive(client)
    examples = ledger_examples(client, entries, bts, ruleset)
    result = Suggestions(client, examined=len(examples))
    result.edited = sum(1 for ex in examples if ex.edited or ex.reviewed)
    result.reviewed = sum(1 for ex in examples if ex.reviewed and not ex.edited)
    result.rules = learn(examples, min_count=min_count, min_precision=min_precision)
    result.parties = learn_parties(examples)
    covered: set[str] = set()
    by_id = {ex.txn_id: ex for ex in examples}
    for s in result.rules:
        for ex in examples:
            if (
                (not s.types or ex.bt_type in s.types)
                and (s.field, s.op, s.value.casefold()) in ex.features
                and ex.account == s.account
            ):
                covered.add(ex.txn_id)
    for txn_id, ex in by_id.items():
        if ex.edited and txn_id not in covered:
            result.unexplained[ex.account] += 1
    return result


def load_ledger(path: Path) -> list[data.Directive]:
    """All entries of a ledger (errors are the bookkeeper's business here, not ours)."""
    from beancount import loader

    if not path.exists():
        raise LedgerError(
            "the ledger does not exist yet",
            where=str(path),
            fix="run `beancount-stripe sync` first",
        )
    entries, _errors, _options = loader.load_file(str(path))
    return entries


def _q(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def format_suggestions(s: Suggestions) -> str:
    """The suggestions as YAML ready to paste into the client's rules file."""
    c = s.client
    lines = [
        f"# Suggested by `beancount-stripe rules suggest {c.id}` from {s.examined:,} ledger",
        f"# entries, {s.edited:,} of them categorized by hand (their counter-account differs from",
        "# what the current rules give, or their `!` flag was removed). Each rule says how many",
        "# entries it decides as you did, and lists conflicts: entries it would decide otherwise.",
        "# Paste into the client's own rules file (tried before the shared rules), then run",
        f"# `beancount-stripe rules test {c.id}`.",
    ]
    if s.rules:
        lines.append("rules:")
    for sug in s.rules:
        lines.append(
            f"  # decides {sug.count:,} entr{'y' if sug.count == 1 else 'ies'} as in the ledger "
            f"({sug.edited:,} categorized by hand); {len(sug.conflicts)} conflict(s)"
        )
        for txn, account in sug.conflicts[:3]:
            lines.append(f"  #   conflict: {txn} is on {account} in the ledger")
        types = sug.types[0] if len(sug.types) == 1 else "[" + ", ".join(sug.types) + "]"
        cond = _q(sug.value) if sug.op == "equals" else "{" + f"{sug.op}: {_q(sug.value)}" + "}"
        when = f"type: {types}, " if sug.types else ""
        lines += [
            f"  - name: {_q(sug.name)}",
            f"    when: {{{when}{sug.field}: {cond}}}",
            f"    account: {_q(sug.account)}",
        ]
    if s.parties:
        lines.append("parties:")
        for party in s.parties:
            lines.append(f"  # {party.count:,} entr{'y' if party.count == 1 else 'ies'} renamed")
            for text in party.conflicts[:3]:
                lines.append(f"  #   conflict: {text}")
            lines.append(f"  - payee: {_q(party.payee)}")
            for kind in ("ids", "emails", "names"):
                values = sorted(party.identities.get(kind, ()))
                if values:
                    lines.append(f"    {kind}: [{', '.join(_q(v) for v in values)}]")
    if not s.rules and not s.parties:
        lines.append("# nothing to suggest: no hand categorization shared by enough entries")
    if s.reviewed:
        lines.append(
            f"# {s.reviewed:,} entr{'y' if s.reviewed == 1 else 'ies'} flagged `!` by the rules "
            "were approved (`*`) on the same account: nothing to learn from them"
        )
    if s.unexplained:
        lines.append("# categorized by hand but not generalizable (too few alike), per account:")
        for account, n in s.unexplained.most_common():
            lines.append(f"#   {account}: {n}")
    return "\n".join(lines) + "\n"


# -- recategorize ----------------------------------------------------------------------------------


@dataclass
class Recategorized:
    client: ClientConfig
    candidates: int = 0  # entries still flagged `!` or on the uncategorized account
    changed: list[str] = field(default_factory=list)  # stripe ids rewritten
    unchanged: int = 0  # current rules give the same entry
    edited: list[str] = field(default_factory=list)  # fingerprint differs: a person edited it
    unfingerprinted: list[str] = field(default_factory=list)  # no stripe_hash: never touched
    missing: list[str] = field(default_factory=list)  # not in the archive
    opened: list[str] = field(default_factory=list)
    diff: str = ""
    written: bool = False


def recategorize(
    client: ClientConfig, *, dry_run: bool = False, ruleset: Ruleset | None = None
) -> Recategorized:
    """Re-apply the current rules to entries still awaiting review, never to edited ones.

    An entry is rewritten only when it is flagged ``!`` or on the uncategorized account, carries a
    ``stripe_hash`` fingerprint and the fingerprint still matches its content (see
    ``rules.entry_hash``): i.e. nobody changed it since it was booked. The output file is replaced
    in one atomic rename.
    """
    ruleset = ruleset or rules.ruleset_for(client)
    # under the client's lock: a sync appending meanwhile would otherwise be overwritten
    with ledger.locked(client.ledger):
        return _recategorize_locked(client, ruleset, dry_run=dry_run)


def _recategorize_locked(client: ClientConfig, ruleset: Ruleset, *, dry_run: bool) -> Recategorized:
    result = Recategorized(client)
    path = client.output
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return result
    entries, _errors, _opts = parser.parse_string(text, report_filename=str(path))
    lines = text.splitlines(keepends=True)
    bts: dict[str, dict[str, Any]] | None = None
    replacements: list[tuple[int, int, str, data.Transaction]] = []
    for entry in entries:
        if not isinstance(entry, data.Transaction):
            continue
        txn_id = entry.meta.get("stripe_id")
        if not txn_id or not rules.needs_review(entry, client.accounts.uncategorized):
            continue
        result.candidates += 1
        stamp = entry.meta.get(rules.HASH_KEY)
        if not stamp:
            result.unfingerprinted.append(txn_id)
            continue
        if stamp != rules.entry_hash(entry):
            result.edited.append(txn_id)
            continue
        if bts is None:
            bts = read_archive(client)
        bt = bts.get(txn_id)
        if bt is None:
            result.missing.append(txn_id)
            continue
        new, _why = rules.apply_rules(booking.book(bt, client), bt, ruleset)
        if rules.entry_hash(new) == stamp or _same(new, entry):
            result.unchanged += 1
            continue
        start = entry.meta["lineno"] - 1
        end = _entry_end(lines, start)
        block = "".join(lines[start:end])
        if not _is_exactly(block, txn_id, stamp):
            result.edited.append(txn_id)
            continue
        replacements.append((start, end, ledger.format_entries([new]), new))
        result.changed.append(txn_id)
    if not replacements:
        return result
    new_lines = list(lines)
    for start, end, block, _new in sorted(replacements, reverse=True):
        new_lines[start:end] = [block if block.endswith("\n") else block + "\n"]
    new_text = "".join(new_lines)
    state = ledger.scan(client.ledger, client.output)
    first_use: dict[str, Any] = {}
    for _s, _e, _b, new in replacements:
        for posting in new.postings:
            if posting.account not in state.open_accounts:
                first_use[posting.account] = min(first_use.get(posting.account, new.date), new.date)
    opens = [
        op
        for account, date in sorted(first_use.items())
        for op in ledger.open_directives([account], state.open_accounts, date)
    ]
    if opens:
        result.opened = [o.account for o in opens]
        body = new_text if new_text.endswith("\n") else new_text + "\n"
        new_text = body + "\n" + ledger.format_entries(opens)
    result.diff = "".join(
        difflib.unified_diff(
            text.splitlines(keepends=True),
            new_text.splitlines(keepends=True),
            fromfile=f"{path} (before)",
            tofile=f"{path} (after)",
            n=2,
        )
    )
    if not dry_run:
        result.written = write_atomic(path, new_text)
    return result


def _same(a: data.Transaction, b: data.Transaction) -> bool:
    return rules.entry_hash(a) == rules.entry_hash(b)


def _entry_end(lines: Sequence[str], start: int) -> int:
    """The line after an entry: its header, then its indented lines (no blank line inside)."""
    end = start + 1
    while end < len(lines) and lines[end][:1] in (" ", "\t") and lines[end].strip():
        end += 1
    return end


def _is_exactly(block: str, txn_id: str, stamp: str) -> bool:
    """The text span is exactly this entry as the tool wrote it (safe to replace).

    It parses to just this entry, with this fingerprint, and reads character for character as
    the tool formats it: a comment or any other change to the text counts as an edit too.
    """
    parsed, errors, _ = parser.parse_string(block)
    return (
        not errors
        and len(parsed) == 1
        and isinstance(parsed[0], data.Transaction)
        and parsed[0].meta.get("stripe_id") == txn_id
        and rules.entry_hash(parsed[0]) == stamp
        and block.rstrip("\n") == ledger.format_entries(parsed).rstrip("\n")
    )


def format_recategorized(r: Recategorized, dry_run: bool) -> str:
    verb = "would rewrite" if dry_run else "rewrote"
    lines = [
        f"{r.client.id}: {r.candidates:,} entr{'y' if r.candidates == 1 else 'ies'} awaiting "
        f"review; {verb} {len(r.changed):,}, {r.unchanged:,} unchanged by the current rules",
    ]
    if r.edited:
        lines.append(
            f"  {len(r.edited):,} left alone: edited by hand since booking "
            f"(e.g. {', '.join(r.edited[:3])})"
        )
    if r.unfingerprinted:
        lines.append(
            f"  {len(r.unfingerprinted):,} left alone: no {rules.HASH_KEY} fingerprint "
            "(booked by an older version or written by hand)"
        )
    if r.missing:
        lines.append(f"  {len(r.missing):,} not in the archive (run `beancount-stripe fetch`)")
    if r.opened:
        lines.append(
            f"  {verb.split()[-1] if dry_run else 'added'} open for: {', '.join(r.opened)}"
        )
    return "\n".join(lines)


# -- summary for sync ------------------------------------------------------------------------------


def rule_summary(
    pairs: Iterable[tuple[data.Transaction, Explanation]], uncategorized: str
) -> tuple[int, int, Counter[str]]:
    """(entries, entries whose counter-account a rule decided, count per deciding rule)."""
    total = 0
    by_rule: Counter[str] = Counter()
    for _entry, why in pairs:
        total += 1
        rule = why.account_rule
        if rule is not None and uncategorized not in why.accounts:
            by_rule[rule.name] += 1
    return total, sum(by_rule.values()), by_rule
