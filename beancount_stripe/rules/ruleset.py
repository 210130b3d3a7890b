"""A client's ruleset: its rules files bound to its accounts, indexed so that each
transaction is offered only the rules that can match it."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from beancount_stripe.config import (
    DEFAULT_ACCOUNTS,
    ClientConfig,
    _account_reason,
    camel_case,
    zone,
)
from beancount_stripe.errors import ConfigError
from beancount_stripe.rules import index
from beancount_stripe.rules.compiled import compile_order
from beancount_stripe.rules.compiler import load_rules
from beancount_stripe.rules.conditions import _always, residual
from beancount_stripe.rules.fields import (
    _PARTY_ID_FIELDS,
    BT_TEXT,
    FIELDS,
    Facts,
    _customer_email,
    _customer_name,
)
from beancount_stripe.rules.model import _BIT, Cond, Party, Pred, Rule, RuleFile, Template

# -- a client's ruleset ----------------------------------------------------------------------------

# the kinds of decision a rule makes (``Ruleset._act``): the payload is the value (the rule for
# the account, the flag), or a template to render (payee, narration; metadata)
VALUE, TEXT, META = range(3)
Act = tuple[int, str, int, Any]


@dataclass(frozen=True)
class _Candidates:
    """The rules that can match one BT type, with what is left to decide after each."""

    rules: tuple[Rule, ...]
    # what is left to test of each rule's condition once offered (None: nothing)
    tests: tuple[Pred | None, ...]
    masks: tuple[int, ...]
    additive: tuple[bool, ...]
    more_after: tuple[int, ...]  # OR of the masks of rules[i:]
    additive_after: tuple[bool, ...]  # any of rules[i:] adds tags or links
    # Second index (rules/index.py): rules are filed under a condition they cannot match
    # without, and tried only for BTs that meet it; ``unguarded`` are all other rules.
    unguarded: tuple[int, ...] = ()
    guards: tuple[index.GuardIndex, ...] = ()
    acts: tuple[tuple[Act, ...], ...] = ()  # what each rule decides, in the engine's order
    # per rule, for the engine's loop: the parts it or a later rule can still decide, and the
    # parts it decides; -1 (every part) when it (or a later rule) adds tags or links
    stop: tuple[int, ...] = ()
    want: tuple[int, ...] = ()
    # ``reference_order`` compiled into one function (rules/compiled.py); what the engine calls
    compiled: Callable[[Facts], Sequence[int]] | None = None
    # The BT keys every rule's condition reads, when they are all few-valued text fields and the
    # rules' templates have no slots: the rules' decision is then a function of those values,
    # and the engine keeps it in ``memo`` (by the values) instead of testing the rules per BT.
    memo_keys: tuple[str, ...] | None = None
    memo: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)

    def order(self, facts: Facts) -> Sequence[int]:
        """Indexes of the rules worth testing for ``facts``, in precedence order."""
        if self.compiled is not None:
            return self.compiled(facts)
        return self.reference_order(facts)

    def reference_order(self, facts: Facts) -> Sequence[int]:
        """``order`` index by index, as the indexes answer one at a time."""
        if not self.guards:
            return range(len(self.rules))
        picked = list(self.unguarded)
        for guard in self.guards:
            hit = guard.lookup(facts)
            if hit:
                picked.extend(hit)
        picked.sort()
        return picked


# Text fields of the BT itself with few values (not ``id`` or ``description``): a condition
# that reads only these may have its outcome remembered by their values (``_memo_keys``).
_MEMO_FIELDS = frozenset({"type", "reporting_category", "category", "currency", "status"})
_MEMO_FIELDS |= {"balance_type"}
MEMO_LIMIT = 4096  # outcomes remembered per candidate set: past that, rules run per BT


def _reads(cond: Cond, out: set[str]) -> bool:
    """Add the BT keys ``cond`` reads to ``out``; False when it reads anything else."""
    if cond.kind != "leaf":
        return all(_reads(part, out) for part in cond.parts)
    if cond.field is None:
        return cond.test is _always
    name = cond.field
    if name not in _MEMO_FIELDS or cond.getter is not FIELDS[name][1]:
        return False
    out.add(BT_TEXT[name])
    return True


def _fixed(templates: Sequence[Template | None]) -> bool:
    return all(t is None or t.fixed is not None for t in templates)


def _memo_keys(rules: Sequence[Rule]) -> tuple[str, ...] | None:
    """The BT keys whose values decide what ``rules`` do to any BT, or None when the rules
    read other fields (in conditions or templates)."""
    keys: set[str] = set()
    for rule in rules:
        if not _reads(rule.when, keys):
            return None
        templates = [rule.payee, rule.narration, *rule.tags, *rule.links]
        if not _fixed(templates + [t for _k, t in rule.meta]):
            return None
    return tuple(sorted(keys))


_MISSING: Any = object()
# party id fields that are a key of a dict source when its value is None (or, for the
# destination, a str): ``resolve_party`` reads them without their getters
_SOURCE_IDS = {"destination": "destination", "source.account": "account"}


class Ruleset:
    """A client's rules files bound to its accounts; ``apply_rules`` uses it for every BT."""

    memoise = True  # tests compare the memo with testing the rules per BT

    def __init__(
        self,
        files: Sequence[RuleFile],
        accounts: Mapping[str, str | None],
        account_name: str,
        tz: ZoneInfo,
        client_id: str = "",
    ) -> None:
        self.files = tuple(files)
        self.rules: tuple[Rule, ...] = tuple(r for f in self.files for r in f.rules)
        self.parties: tuple[Party, ...] = tuple(p for f in self.files for p in f.parties)
        self.accounts = dict(accounts)
        self.account_name = account_name
        self.tz = tz
        self.client_id = client_id
        self.uncategorized = str(accounts["uncategorized"])
        self.clearing = str(accounts["clearing"])
        meta_keys = sorted({k for r in self.rules for k, _ in r.meta})
        self._bits = dict(_BIT)
        self._bits.update({f"meta:{k}": 1 << (len(_BIT) + i) for i, k in enumerate(meta_keys)})
        self._masks = {id(r): self._mask(r) for r in self.rules}
        self._resolved: dict[int, tuple[str, ...]] = {}
        for rule in self.rules:
            names = [rule.account] if rule.account else [leg.account for leg in rule.split]
            self._resolved[id(rule)] = tuple(self._resolve(n, rule) for n in names if n)
        self._candidates: dict[str, _Candidates] = {}
        self._by_type: dict[Any, _Candidates] = {}  # by the BT's type as written
        self._acts = {id(r): self._act(r) for r in self.rules}
        self._ids: dict[str, Party] = {}
        self._emails: dict[str, Party] = {}
        self._names: dict[str, Party] = {}
        self._descriptions: list[tuple[re.Pattern[str], Party]] = []
        for party in self.parties:  # earlier files (the client's) win for the same identity
            for ident in party.ids:
                self._ids.setdefault(ident, party)
            for email in party.emails:
                self._emails.setdefault(email, party)
            for name in party.names:
                self._names.setdefault(name, party)
            self._descriptions.extend((p, party) for p in party.descriptions)

    def _act(self, rule: Rule) -> tuple[Act, ...]:
        """What a matching rule decides, as (kind, part, bit, payload), in the order the engine
        decides them: account (payload: the rule), payee, narration, flag, each metadata key."""
        bits = self._bits
        out: list[Act] = []
        if rule.account or rule.split:
            out.append((VALUE, "account", bits["account"], rule))
        for part in ("payee", "narration"):
            template = getattr(rule, part)
            if template is not None:
                out.append((TEXT, part, bits[part], template))
        if rule.flag is not None:
            out.append((VALUE, "flag", bits["flag"], rule.flag))
        for key, template in rule.meta:
            out.append((META, f"meta:{key}", bits[f"meta:{key}"], template))
        return tuple(out)

    def _mask(self, rule: Rule) -> int:
        mask = 0
        for part in rule.decides():
            mask |= self._bits[part]
        return mask

    def _resolve(self, name: str, rule: Rule) -> str:
        if ":" in name:
            account = name.replace("{client}", self.account_name)
            reason = _account_reason(account)
            if reason:
                raise ConfigError(
                    f"rule `{rule.name}`: `{name}` gives `{account}` for client "
                    f"{self.client_id}, which is not a valid account: {reason}",
                    where=rule.where,
                    fix="fix the account in the rule, or the client's `account_name`",
                )
        else:
            account = self.accounts.get(name) or (
                self.accounts["fees"] if name == "fee_tax" else ""
            )
            account = str(account)
        if account == self.clearing or account.startswith(self.clearing + ":"):
            raise ConfigError(
                f"rule `{rule.name}` books the counter-leg to `{account}`, the clearing account "
                f"of client {self.client_id} (or under it); Stripe balances would never tie out",
                where=rule.where,
                fix="name the income, expense or asset account the money belongs to",
            )
        return account

    def account_of(self, rule: Rule) -> tuple[str, ...]:
        """The concrete account(s) a rule books to for this client (one, or one per leg)."""
        return self._resolved[id(rule)]

    def candidates(self, bt_type: Any) -> _Candidates:
        """The rules that can match a BT of type ``bt_type``, built once per type."""
        found = self._by_type.get(bt_type) if self._candidates and type(bt_type) is str else None
        if found is None:
            if not self._candidates:  # cleared: forget the types as written too
                self._by_type.clear()
            found = self._build_candidates(bt_type)
            if type(bt_type) is str:
                self._by_type[bt_type] = found
        return found

    def _build_candidates(self, bt_type: Any) -> _Candidates:
        key = bt_type.casefold() if isinstance(bt_type, str) else ""
        found = self._candidates.get(key)
        if found is None:
            rules = tuple(r for r in self.rules if r.types is None or key in r.types)
            masks = tuple(self._masks[id(r)] for r in rules)
            more: list[int] = []
            additive: list[bool] = []
            acc, add = 0, False
            for rule, mask in zip(reversed(rules), reversed(masks), strict=True):
                acc |= mask
                add = add or rule.additive
                more.append(acc)
                additive.append(add)
            unguarded, guards = index.build(rules)
            sure = {i: leaves for guard in guards for i, leaves in guard.sure.items()}
            tests = tuple(
                residual(r.when, r.rest if r.types is not None else None, sure.get(i, ()))
                for i, r in enumerate(rules)
            )
            compiled = compile_order(unguarded, guards) if guards else None
            more_after, additive_after = tuple(reversed(more)), tuple(reversed(additive))
            found = _Candidates(
                rules,
                tests,
                masks,
                tuple(r.additive for r in rules),
                more_after,
                additive_after,
                unguarded,
                guards,
                tuple(self._acts[id(r)] for r in rules),
                tuple(-1 if a else m for m, a in zip(more_after, additive_after, strict=True)),
                tuple(-1 if r.additive else m for r, m in zip(rules, masks, strict=True)),
                compiled,
                _memo_keys(rules) if self.memoise and rules else None,
            )
            self._candidates[key] = found
        return found

    def resolve_party(self, facts: Facts) -> tuple[str | None, str]:
        """(canonical payee, how it was recognized): id, email, email domain, name, description."""
        if not self.parties:
            return None, ""
        ids = self._ids
        if ids:
            values = facts._values
            source = facts.bt.get("source")
            plain = type(source) is dict
            for key, getter in _PARTY_ID_FIELDS:
                ident = values.get(key, _MISSING)
                if ident is _MISSING and plain and key in _SOURCE_IDS:
                    # ``_destination`` / ``source.account`` of a dict source, in one step
                    ident = source.get(_SOURCE_IDS[key])  # type: ignore[union-attr]
                    if ident is not None and (type(ident) is not str or key != "destination"):
                        ident = facts.text(key, getter)
                elif ident is _MISSING or (ident is not None and type(ident) is not str):
                    ident = facts.text(key, getter)
                if ident and ident in ids:
                    return ids[ident].payee, f"{key} {ident}"
        email = facts.folded("customer.email", _customer_email) if self._emails else None
        if email:
            if email in self._emails:
                return self._emails[email].payee, f"email {email}"
            domain = "@" + email.rpartition("@")[2]
            if domain in self._emails:
                return self._emails[domain].payee, f"email domain {domain}"
        name = facts.folded("customer.name", _customer_name) if self._names else None
        if name and name in self._names:
            return self._names[name].payee, f"name {name}"
        description = (
            facts.text("description", FIELDS["description"][1]) if self._descriptions else None
        )
        if description:
            for pattern, party in self._descriptions:
                if pattern.search(description):
                    return party.payee, f"description /{pattern.pattern}/"
        return None, ""

    def party_source(self, payee: str) -> Party | None:
        return next((p for p in self.parties if p.payee == payee), None)


def _account_name(client: ClientConfig) -> str:
    name = getattr(client, "account_name", None)
    return name if isinstance(name, str) and name else camel_case(client.id)


def rule_paths(client: ClientConfig) -> tuple[Path, ...]:
    """The client's rules files in precedence order: its own, then the shared ones."""
    own = tuple(getattr(client, "rules", ()) or ())
    shared = tuple(getattr(client, "shared_rules", ()) or ())
    return own + shared


_RULESETS: dict[Any, Ruleset] = {}


def ruleset_for(client: ClientConfig) -> Ruleset:
    """The client's ruleset (its files, then the shared ones), rebuilt when a file changes."""
    files = [load_rules(p) for p in rule_paths(client)]
    accounts = {name: getattr(client.accounts, name) for name in DEFAULT_ACCOUNTS}
    name = _account_name(client)
    key = (
        client.id,
        client.timezone,
        name,
        tuple(id(f) for f in files),
        tuple(sorted(accounts.items(), key=str)),
    )
    cached = _RULESETS.get(key)
    if cached is not None:
        return cached
    tz = zone(client.timezone, client.id)
    ruleset = Ruleset(files, accounts, name, tz, client.id)
    if len(_RULESETS) > 64:
        _RULESETS.clear()
    _RULESETS[key] = ruleset
    return ruleset
