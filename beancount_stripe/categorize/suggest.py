"""`rules suggest`: learn rules and parties from what the bookkeeper already decided."""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from beancount.core import data

from beancount_stripe import booking, rules
from beancount_stripe.categorize.explain import counter_legs, read_archive
from beancount_stripe.config import ClientConfig
from beancount_stripe.errors import LedgerError
from beancount_stripe.rules import Ruleset

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
            counter_legs(ruled, why), key=lambda p: abs(p.units.number or 0)
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
