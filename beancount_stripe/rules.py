"""The rule engine: a firm's own rules refine the entries ``booking`` produces.

``booking.book`` turns a balance transaction (BT) into an entry with the booking table's
counter-account; ``apply_rules`` then refines that entry (smart_importer's model: hooks refine
after extraction). A rules file holds ``rules:`` (conditions → actions) and ``parties:`` (many raw
identities → one canonical payee). Precedence: a client's files before the shared files, each file
in the order written, and for every *decision* (counter-account or split, payee, narration, flag,
each metadata key) the first rule that matches and sets it wins; tags and links add up.

Everything here is pure: files are read and validated once (errors name file, line, key path and
rule), conditions compile into closures over precompiled regexes, and rules are indexed by the BT
``type`` they require, so hundreds of rules over a whole history stay cheap.
"""

from __future__ import annotations

import datetime
import hashlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from beancount.core import data
from beancount.core.amount import Amount

from beancount_stripe import booking, currency
from beancount_stripe.config import (
    DEFAULT_ACCOUNTS,
    ClientConfig,
    InvalidConfigError,
    Problem,
    _account_reason,
    _did_you_mean,
    _join,
    _parse,
    _Report,
    _scan_literal_keys,
    _type_name,
    camel_case,
    zone,
)
from beancount_stripe.errors import ConfigError

__all__ = [
    "FIELDS",
    "HASH_KEY",
    "Explanation",
    "Facts",
    "NearMiss",
    "Rule",
    "RuleFile",
    "Ruleset",
    "apply_rules",
    "book_with_rules",
    "charge_of",
    "check_rules",
    "entry_hash",
    "field_spec",
    "load_rules",
    "near_misses",
    "needs_review",
    "refine",
    "rule_paths",
    "ruleset_for",
    "split_amounts",
]

#: Metadata key holding the fingerprint of an entry as written for review (see ``entry_hash``).
HASH_KEY = "stripe_hash"
# Metadata the tool owns; a rule may not overwrite it.
RESERVED_META = frozenset(
    {"stripe_id", "stripe_source", "stripe_type", "stripe_category", HASH_KEY, "filename", "lineno"}
)
FLAGS = ("*", "!")

RULE_KEYS = ("name", "note", "when", "account", "split", "payee", "narration", "tags", "links")
RULE_KEYS += ("meta", "flag")
ACTION_KEYS = ("account", "split", "payee", "narration", "tags", "links", "meta", "flag")
PARTY_KEYS = ("payee", "note", "ids", "emails", "names", "descriptions")
FILE_KEYS = ("rules", "parties")
COMBINATORS = ("all", "any", "not")
OPERATORS = ("equals", "one_of", "contains", "prefix", "suffix", "regex", "gt", "gte", "lt")
OPERATORS += ("lte", "between", "sign", "exists", "case_sensitive")
_TEXT_OPS = frozenset({"contains", "prefix", "suffix", "regex"})
_ORDER_OPS = frozenset({"gt", "gte", "lt", "lte", "between"})
_SIGNS = ("positive", "negative", "zero")

_META_KEY_RE = re.compile(r"[a-z][a-zA-Z0-9_-]*")
_TOKEN_BAD = re.compile(r"[^A-Za-z0-9\-_/.]+")  # Beancount tag/link tokens: [A-Za-z0-9-_/.]
_TEMPLATE_RE = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_DECISIONS = ("account", "payee", "narration", "flag")
_BIT = {name: 1 << i for i, name in enumerate(_DECISIONS)}

# -- fields ----------------------------------------------------------------------------------------
#
# A field is read from the BT, from its expanded source, or derived (customer.*, metadata.*, party).
# Values are str, Decimal (amounts in major units, with sign), datetime.date, or None when absent.

TEXT, NUMBER, DATE, ANY = "text", "number", "date", "any"
Getter = Callable[["Facts"], Any]


def _bt_text(key: str) -> Getter:
    def get(f: Facts) -> Any:
        value = f.bt.get(key)
        return value if isinstance(value, str) else None

    return get


def _bt_money(key: str) -> Getter:
    def get(f: Facts) -> Any:
        value = f.bt.get(key)
        if type(value) is not int:
            return None
        return currency.to_decimal(value, f.bt.get("currency"))  # type: ignore[arg-type]

    return get


def _exchange_rate(f: Facts) -> Any:
    value = f.bt.get("exchange_rate")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return Decimal(str(value))
    return None


def _created(f: Facts) -> Any:
    return f.entry.date


def _available_on(f: Facts) -> Any:
    value = f.bt.get("available_on")
    if type(value) is not int:
        return None
    return datetime.datetime.fromtimestamp(value, f.ruleset.tz).date()


def _source_id(f: Facts) -> Any:
    source = f.bt.get("source")
    if isinstance(source, Mapping):
        source = source.get("id")
    return source if isinstance(source, str) else None


def _charge(f: Facts) -> Mapping[str, Any] | None:
    """The charge behind the BT: its source, or the charge a refund/dispute expands."""
    source = f.bt.get("source")
    if not isinstance(source, Mapping):
        return None
    if source.get("object") == "charge" or f.bt.get("type") in ("charge", "payment"):
        return source
    charge = source.get("charge")
    return charge if isinstance(charge, Mapping) else None


charge_of = _charge


def _sub(obj: Any, *keys: str) -> Any:
    for key in keys:
        if type(obj) is not dict and not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def _first_text(*values: Any) -> str | None:
    for value in values:
        if isinstance(value, str) and value.strip():
            return " ".join(value.split())
    return None


def _customer_name(f: Facts) -> Any:
    charge = _charge(f)
    return _first_text(_sub(charge, "billing_details", "name"), _sub(charge, "customer", "name"))


def _customer_email(f: Facts) -> Any:
    charge = _charge(f)
    return _first_text(
        _sub(charge, "billing_details", "email"),
        _sub(charge, "customer", "email"),
        _sub(charge, "receipt_email"),
    )


def _customer_id(f: Facts) -> Any:
    customer = _sub(_charge(f), "customer")
    if isinstance(customer, Mapping):
        customer = customer.get("id")
    return customer if isinstance(customer, str) else None


def _statement_descriptor(f: Facts) -> Any:
    charge = _charge(f)
    source = f.bt.get("source")
    return _first_text(
        _sub(charge, "statement_descriptor"),
        _sub(charge, "calculated_statement_descriptor"),
        _sub(source, "statement_descriptor"),
    )


def _payment_method(f: Facts) -> Any:
    return _first_text(_sub(_charge(f), "payment_method_details", "type"))


def _card(key: str) -> Getter:
    def get(f: Facts) -> Any:
        value = _sub(_charge(f), "payment_method_details", "card", key)
        return value if isinstance(value, str) else None

    return get


def _destination(f: Facts) -> Any:
    value = _sub(f.bt.get("source"), "destination")
    if isinstance(value, Mapping):
        value = value.get("id")
    return value if isinstance(value, str) else None


def _party(f: Facts) -> Any:
    return f.party()[0]


def _booked(attr: str) -> Getter:
    def get(f: Facts) -> Any:
        value = getattr(f.entry, attr)
        return value if isinstance(value, str) else None

    return get


def _label(f: Facts) -> Any:
    return booking.label(f.bt)


FIELDS: dict[str, tuple[str, Getter, str]] = {
    "id": (TEXT, _bt_text("id"), "the balance transaction id (txn_…)"),
    "type": (TEXT, _bt_text("type"), "charge, refund, payout, …"),
    "reporting_category": (TEXT, _bt_text("reporting_category"), "charge, dispute, fee, …"),
    "category": (TEXT, _bt_text("reporting_category"), "alias of reporting_category"),
    "description": (TEXT, _bt_text("description"), "the BT description"),
    "currency": (TEXT, _bt_text("currency"), "ISO code (case does not matter)"),
    "status": (TEXT, _bt_text("status"), "available or pending"),
    "balance_type": (TEXT, _bt_text("balance_type"), "payments, issuing, …"),
    "amount": (NUMBER, _bt_money("amount"), "gross, major units, with sign"),
    "net": (NUMBER, _bt_money("net"), "net, major units, with sign"),
    "fee": (NUMBER, _bt_money("fee"), "Stripe's fee, major units"),
    "exchange_rate": (NUMBER, _exchange_rate, "FX rate of a converted charge"),
    "created": (DATE, _created, "date in the client's time zone"),
    "available_on": (DATE, _available_on, "date in the client's time zone"),
    "source": (TEXT, _source_id, "the source id (ch_…, re_…, po_…)"),
    "customer.name": (TEXT, _customer_name, "billing name, else the customer's name"),
    "customer.email": (TEXT, _customer_email, "billing, customer or receipt email"),
    "customer.id": (TEXT, _customer_id, "cus_… of the charge"),
    "statement_descriptor": (TEXT, _statement_descriptor, "what the card statement shows"),
    "payment_method": (TEXT, _payment_method, "card, sepa_debit, us_bank_account, …"),
    "card.brand": (TEXT, _card("brand"), "visa, mastercard, amex, …"),
    "card.country": (TEXT, _card("country"), "issuing country of the card"),
    "card.funding": (TEXT, _card("funding"), "credit, debit, prepaid"),
    "destination": (TEXT, _destination, "payout bank account / transfer account"),
    "party": (TEXT, _party, "canonical payee from the parties table"),
    "payee": (TEXT, _booked("payee"), "payee as booked before rules"),
    "narration": (TEXT, _booked("narration"), "narration as booked before rules"),
    "label": (TEXT, _label, "readable type: Card charge, Stripe payout, …"),
}
_PREFIXED = ("source.", "metadata.")


def _path_getter(path: tuple[str, ...]) -> Getter:
    def get(f: Facts) -> Any:
        value = _sub(f.bt.get("source"), *path)
        if isinstance(value, Mapping):
            value = value.get("id")
        return value if isinstance(value, str | int | float | bool) else None

    return get


def _metadata_getter(key: str) -> Getter:
    def get(f: Facts) -> Any:
        for obj in (_charge(f), f.bt.get("source")):
            value = _sub(obj, "metadata", key)
            if isinstance(value, str | int | float | bool):
                return value
        return None

    return get


# Where a party's `ids` are looked for: the customer, a payout's or transfer's destination, and
# the connected account an application fee came from.
_PARTY_ID_FIELDS: tuple[tuple[str, Getter], ...] = (
    ("customer.id", _customer_id),
    ("destination", _destination),
    ("source.account", _path_getter(("account",))),
)


def field_spec(name: str) -> tuple[str, Getter] | None:
    """(kind, getter) of a field name, or None when no such field exists."""
    if name in FIELDS:
        kind, getter, _doc = FIELDS[name]
        return kind, getter
    if name.startswith("source.") and len(name) > 7:
        parts = tuple(name[7:].split("."))
        if all(parts):
            return ANY, _path_getter(parts)
    if name.startswith("metadata.") and len(name) > 9:
        return ANY, _metadata_getter(name[9:])
    return None


class Facts:
    """One BT (and its booked entry) as rules see it; every field is computed at most once."""

    __slots__ = ("_party", "_values", "bt", "captures", "entry", "ruleset")

    def __init__(self, bt: Mapping[str, Any], entry: data.Transaction, ruleset: Ruleset) -> None:
        self.bt = bt
        self.entry = entry
        self.ruleset = ruleset
        self._values: dict[str, Any] = {}
        self._party: tuple[str | None, str] | None = None
        self.captures: list[re.Match[str]] = []

    def get(self, key: str, getter: Getter) -> Any:
        values = self._values
        if key in values:
            return values[key]
        value = values[key] = getter(self)
        return value

    def text(self, key: str, getter: Getter) -> str | None:
        value = self.get(key, getter)
        if value is None or isinstance(value, str):
            return value
        return _scalar_text(value)

    def folded(self, key: str, getter: Getter) -> str | None:
        fkey = "\0" + key
        values = self._values
        if fkey in values:
            return values[fkey]
        text = self.text(key, getter)
        folded = values[fkey] = None if text is None else text.casefold()
        return folded

    def party(self) -> tuple[str | None, str]:
        """(canonical payee or None, how it was recognized)."""
        if self._party is None:
            self._party = self.ruleset.resolve_party(self)
        return self._party


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime.date):
        return value.isoformat()
    return str(value)


def _number(value: Any) -> Decimal | None:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool) or value is None:
        return None
    try:
        return Decimal(str(value).strip().replace(",", ""))
    except InvalidOperation:
        return None


# -- compiled rules --------------------------------------------------------------------------------

Pred = Callable[[Facts], bool]


@dataclass(frozen=True)
class Cond:
    """A compiled condition: ``test`` is the fast path, the rest serves ``rules explain``."""

    text: str
    test: Pred
    field: str | None = None
    getter: Getter | None = None
    parts: tuple[Cond, ...] = ()
    kind: str = "leaf"  # leaf, all, any, not
    values: frozenset[str] | None = None  # casefolded values of an equals/one_of text leaf


@dataclass(frozen=True)
class Template:
    """A payee/narration/tag/meta template: literal text and ``{field}`` / ``{1}`` slots."""

    source: str
    pieces: tuple[tuple[str, str | None, Getter | None], ...]  # (literal, slot, getter)

    def render(self, facts: Facts) -> str:
        out: list[str] = []
        for literal, slot, getter in self.pieces:
            out.append(literal)
            if slot is None:
                continue
            if getter is not None:
                value = facts.text(slot, getter)
            else:
                value = _capture(facts.captures, slot)
            if value:
                out.append(value)
        return " ".join("".join(out).split())


def _capture(captures: Sequence[re.Match[str]], slot: str) -> str | None:
    if slot.isdigit():
        number = int(slot)
        for match in captures:  # the first regex that matched and has that group
            if match.re.groups >= number:
                return match.group(number)
        return None
    for match in captures:
        if slot in match.re.groupindex:
            value = match.group(slot)
            if value is not None:
                return value
    return None


@dataclass(frozen=True)
class Leg:
    """One leg of a split: a percentage of the gross, a fixed amount, or the rest (last leg)."""

    account: str  # an ``Accounts`` field name or an account template (``{client}``)
    percent: Decimal | None = None
    amount: Decimal | None = None


@dataclass(frozen=True)
class Rule:
    """One compiled rule. ``types`` (casefolded) lets the ruleset skip rules that cannot match."""

    name: str
    file: str
    line: int
    when: Cond
    types: frozenset[str] | None
    account: str | None = None
    split: tuple[Leg, ...] = ()
    payee: Template | None = None
    narration: Template | None = None
    flag: str | None = None
    tags: tuple[Template, ...] = ()
    links: tuple[Template, ...] = ()
    meta: tuple[tuple[str, Template], ...] = ()
    note: str | None = None
    # ``when`` without its ``type`` condition: what is left to test once the index picked the rule
    rest: Pred | None = field(default=None, compare=False, repr=False)

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def additive(self) -> bool:
        return bool(self.tags or self.links)

    def decides(self) -> tuple[str, ...]:
        parts = []
        if self.account or self.split:
            parts.append("account")
        parts += [p for p in ("payee", "narration", "flag") if getattr(self, p) is not None]
        parts += [f"meta:{k}" for k, _ in self.meta]
        return tuple(parts)


@dataclass(frozen=True)
class Party:
    """One canonical payee and the raw identities that stand for it."""

    payee: str
    file: str
    line: int
    ids: frozenset[str] = frozenset()
    emails: frozenset[str] = frozenset()  # casefolded; "@domain" entries match a whole domain
    names: frozenset[str] = frozenset()  # casefolded, whitespace-normalized
    descriptions: tuple[re.Pattern[str], ...] = ()


@dataclass(frozen=True)
class RuleFile:
    """A validated, compiled rules file."""

    path: Path
    rules: tuple[Rule, ...] = ()
    parties: tuple[Party, ...] = ()


# -- loading and validation ------------------------------------------------------------------------


def check_rules(path: str | Path) -> list[Problem]:
    """Every problem of a rules file (errors and warnings), each with file, line and rule."""
    _file, report = _analyse(Path(path))
    return report.sorted_problems()


def load_rules(path: str | Path) -> RuleFile:
    """Read, validate and compile a rules file; compiled once per distinct file content."""
    p = Path(path)
    try:
        digest: str | None = hashlib.sha256(p.read_bytes()).hexdigest()
    except OSError:
        digest = None
    key = (str(p.absolute()), digest)
    if digest is not None and key in _CACHE:
        return _CACHE[key]
    rule_file, report = _analyse(p)
    problems = [x for x in report.sorted_problems() if x.severity == "error"]
    if problems:
        raise InvalidConfigError(str(path), problems)
    assert rule_file is not None
    if digest is not None:
        if len(_CACHE) > 256:
            _CACHE.clear()
        _CACHE[key] = rule_file
    return rule_file


_CACHE: dict[tuple[str, str], RuleFile] = {}


def _analyse(path: Path) -> tuple[RuleFile | None, _Report]:
    report = _Report(str(path))
    if not path.is_file():
        report.add(
            "",
            "rules file not found",
            "create it (config/rules.yaml is the default set to start from) or fix the path",
        )
        return None, report
    try:
        text = path.read_text(encoding="utf-8")
        blank = all(not line.strip() or line.lstrip().startswith("#") for line in text.splitlines())
    except (OSError, UnicodeDecodeError):
        blank = False  # _parse reports it
    if blank:
        return RuleFile(path.absolute()), report
    raw, scalars, text = _parse(path, report)
    _scan_literal_keys(report, scalars, text)
    if raw is None:
        return None, report
    compiler = _Compiler(report, path)
    result = compiler.file(raw)
    return result, report


class _Compiler:
    def __init__(self, report: _Report, path: Path) -> None:
        self.report = report
        self.path = path
        self.file_label = str(path)

    def add(self, key_path: str, message: str, fix: str, rule: str | None = None) -> None:
        prefix = f"rule `{rule}`: " if rule else ""
        self.report.add(key_path, prefix + message, fix)

    # file ------------------------------------------------------------------------------------

    def file(self, raw: Any) -> RuleFile:
        if raw is None:
            return RuleFile(self.path.absolute())
        if not isinstance(raw, dict):
            self.add(
                "",
                f"a rules file must be a mapping with `rules:` and/or `parties:`, not "
                f"{_type_name(raw)}",
                "start the file with `rules:` followed by a list of rules",
            )
            return RuleFile(self.path.absolute())
        for key in raw:
            if key not in FILE_KEYS:
                hint = _did_you_mean(str(key), FILE_KEYS)
                self.add(
                    str(key),
                    f"unknown key `{key}` at the top level of a rules file",
                    f"did you mean `{hint}`?" if hint else "use `rules:` and `parties:`",
                )
        rules: list[Rule] = []
        raw_rules = raw.get("rules")
        if raw_rules is not None and not isinstance(raw_rules, list):
            self.add("rules", f"`rules` must be a list, not {_type_name(raw_rules)}", _FIX_RULE)
        elif raw_rules:
            seen: dict[str, int | None] = {}
            for i, item in enumerate(raw_rules):
                rule = self.rule(item, _join("rules", i), seen)
                if rule is not None:
                    rules.append(rule)
        parties: list[Party] = []
        raw_parties = raw.get("parties")
        if raw_parties is not None and not isinstance(raw_parties, list):
            self.add(
                "parties",
                f"`parties` must be a list, not {_type_name(raw_parties)}",
                "write `parties:` followed by `- payee: …` entries",
            )
        elif raw_parties:
            owners: dict[tuple[str, str], tuple[str, int | None]] = {}
            for i, item in enumerate(raw_parties):
                party = self.party(item, _join("parties", i), owners)
                if party is not None:
                    parties.append(party)
        return RuleFile(self.path.absolute(), tuple(rules), tuple(parties))

    # rules -----------------------------------------------------------------------------------

    def rule(self, raw: Any, path: str, seen: dict[str, int | None]) -> Rule | None:
        if not isinstance(raw, dict):
            self.add(path, f"each rule must be a mapping, not {_type_name(raw)}", _FIX_RULE)
            return None
        name = raw.get("name")
        label = name if isinstance(name, str) and name.strip() else None
        if label is None:
            self.add(
                _join(path, "name") if "name" in raw else path,
                "a rule needs a `name` (a short text, unique in the file)",
                "add `name: …` so explanations and errors can refer to the rule",
            )
        elif label in seen:
            self.add(
                _join(path, "name"),
                f"duplicate rule name `{label}` (first used on line {seen[label]})",
                "give every rule in a file its own name",
            )
        else:
            seen[label] = self.report.line(_join(path, "name"))
        ok = label is not None
        start = len(self.report.problems)
        for key in raw:
            if key not in RULE_KEYS:
                hint = _did_you_mean(str(key), RULE_KEYS)
                self.add(
                    _join(path, str(key)),
                    f"unknown key `{key}` in a rule",
                    f"did you mean `{hint}`?" if hint else f"use one of: {', '.join(RULE_KEYS)}",
                    label,
                )
        if not any(k in raw for k in ACTION_KEYS) and all(k in RULE_KEYS for k in raw):
            self.add(
                path,
                "the rule does nothing: it sets none of " + ", ".join(ACTION_KEYS),
                "add e.g. `account: Income:{client}:Sales` or `payee: …`",
                label,
            )
        if "account" in raw and "split" in raw:
            self.add(
                _join(path, "split"),
                "a rule sets either `account` or `split`, not both",
                "remove `account` (a split names the account of each leg)",
                label,
            )
        regexes: list[re.Pattern[str]] = []
        when = self.when(raw.get("when"), _join(path, "when"), label, regexes)
        account = None
        if "account" in raw:
            account = self.account(raw["account"], _join(path, "account"), label)
        legs: tuple[Leg, ...] = ()
        if "split" in raw:
            legs = self.split(raw["split"], _join(path, "split"), label)
        templates: dict[str, Template | None] = {}
        for key in ("payee", "narration"):
            if key in raw:
                templates[key] = self.template(raw[key], _join(path, key), label, regexes)
        flag = None
        if "flag" in raw:
            flag = raw["flag"]
            if flag not in FLAGS:
                self.add(
                    _join(path, "flag"),
                    f'flag must be "*" or "!", not {flag!r}',
                    'write `flag: "!"` (quoted: `!` and `*` mean something else in YAML)',
                    label,
                )
                flag = None
        tags = self.tokens(raw.get("tags"), _join(path, "tags"), label, regexes, "tag")
        links = self.tokens(raw.get("links"), _join(path, "links"), label, regexes, "link")
        meta = self.meta(raw.get("meta"), _join(path, "meta"), label, regexes)
        note = raw.get("note") if isinstance(raw.get("note"), str) else None
        if not ok or len(self.report.problems) > start or when is None:
            return None
        types, rest = _type_index(when)
        return Rule(
            name=label,  # type: ignore[arg-type]
            file=self.file_label,
            line=self.report.line(path) or 0,
            when=when,
            types=types,
            rest=rest,
            account=account,
            split=legs,
            payee=templates.get("payee"),
            narration=templates.get("narration"),
            flag=flag,
            tags=tags,
            links=links,
            meta=meta,
            note=note,
        )

    # conditions ------------------------------------------------------------------------------

    def when(
        self, raw: Any, path: str, rule: str | None, regexes: list[re.Pattern[str]]
    ) -> Cond | None:
        if raw is None:
            return Cond("always", _always)
        if not isinstance(raw, dict):
            self.add(
                path,
                f"`when` must be a mapping of conditions, not {_type_name(raw)}",
                "write e.g. `when: {type: charge, description: {contains: Wholesale}}`",
                rule,
            )
            return None
        return self.conjunction(raw, path, rule, regexes)

    def conjunction(
        self, raw: dict[str, Any], path: str, rule: str | None, regexes: list[re.Pattern[str]]
    ) -> Cond | None:
        parts: list[Cond] = []
        ok = True
        for key, value in raw.items():
            sub = _join(path, str(key))
            cond = self.condition(str(key), value, sub, rule, regexes)
            if cond is None:
                ok = False
            else:
                parts.append(cond)
        if not ok:
            return None
        if not parts:
            return Cond("always", _always)
        if len(parts) == 1:
            return parts[0]
        return _all(parts)

    def condition(
        self, key: str, value: Any, path: str, rule: str | None, regexes: list[re.Pattern[str]]
    ) -> Cond | None:
        if key in COMBINATORS:
            items = value if isinstance(value, list) else [value]
            if key != "not" and not isinstance(value, list):
                self.add(
                    path,
                    f"`{key}` takes a list of condition mappings",
                    f"write `{key}:` followed by `- field: value` items",
                    rule,
                )
                return None
            if not items:
                self.add(path, f"`{key}` is empty", "list at least one condition", rule)
                return None
            parts: list[Cond] = []
            for i, item in enumerate(items):
                sub = _join(path, i) if isinstance(value, list) else path
                if not isinstance(item, dict):
                    self.add(
                        sub,
                        f"each item of `{key}` must be a mapping of conditions, not "
                        f"{_type_name(item)}",
                        "write `- field: value` (one mapping per item)",
                        rule,
                    )
                    return None
                cond = self.conjunction(item, sub, rule, regexes)
                if cond is None:
                    return None
                parts.append(cond)
            if key == "all":
                return _all(parts)
            if key == "any":
                return _any(parts)
            inner = parts[0] if len(parts) == 1 else _all(parts)
            return _not(inner)
        spec = field_spec(key)
        if spec is None:
            hint = _did_you_mean(key, [*FIELDS, *COMBINATORS])
            self.add(
                path,
                f"unknown field `{key}`",
                f"did you mean `{hint}`?"
                if hint
                else "use a field from config/README.md (Rules), `source.…`, `metadata.…`, "
                "or all/any/not",
                rule,
            )
            return None
        kind, getter = spec
        if isinstance(value, dict):
            ops = value
        elif isinstance(value, list):
            ops = {"one_of": value}
        elif value is None:
            ops = {"exists": False}
        else:
            ops = {"equals": value}
        if not ops:
            self.add(path, f"no condition given for `{key}`", "write `field: value`", rule)
            return None
        case_sensitive = ops.get("case_sensitive", False)
        if not isinstance(case_sensitive, bool):
            self.add(
                _join(path, "case_sensitive"),
                "`case_sensitive` must be true or false",
                "write `case_sensitive: true`",
                rule,
            )
            return None
        if "case_sensitive" in ops and not (set(ops) & (_TEXT_OPS | {"equals", "one_of"})):
            self.add(
                _join(path, "case_sensitive"),
                "`case_sensitive` only applies to text comparisons",
                "remove it, or add equals/one_of/contains/prefix/suffix/regex",
                rule,
            )
            return None
        parts = []
        for op, arg in ops.items():
            if op == "case_sensitive":
                continue
            sub = _join(path, str(op))
            if op not in OPERATORS:
                hint = _did_you_mean(str(op), OPERATORS)
                self.add(
                    sub,
                    f"unknown operator `{op}` for `{key}`",
                    f"did you mean `{hint}`?" if hint else f"use one of: {', '.join(OPERATORS)}",
                    rule,
                )
                return None
            cond = self.leaf(key, kind, getter, str(op), arg, case_sensitive, sub, rule, regexes)
            if cond is None:
                return None
            parts.append(cond)
        return parts[0] if len(parts) == 1 else _all(parts)

    def leaf(
        self,
        name: str,
        kind: str,
        getter: Getter,
        op: str,
        arg: Any,
        cs: bool,
        path: str,
        rule: str | None,
        regexes: list[re.Pattern[str]],
    ) -> Cond | None:
        if op in _TEXT_OPS and kind in (NUMBER, DATE):
            self.add(
                path,
                f"`{op}` compares text, but `{name}` is a {kind}",
                "use equals, one_of, gt/gte/lt/lte, between" + (", sign" if kind == NUMBER else ""),
                rule,
            )
            return None
        if op in _ORDER_OPS and kind == TEXT:
            self.add(
                path,
                f"`{op}` compares numbers or dates, but `{name}` is text",
                "use equals, one_of, contains, prefix, suffix or regex",
                rule,
            )
            return None
        if op == "sign" and kind in (TEXT, DATE):
            self.add(path, f"`sign` needs a number, but `{name}` is a {kind}", "remove it", rule)
            return None
        if op == "exists":
            if not isinstance(arg, bool):
                self.add(path, "`exists` must be true or false", "write `exists: true`", rule)
                return None
            return _exists(name, getter, arg)
        if op == "sign":
            if arg not in _SIGNS:
                self.add(
                    path,
                    f"`sign` must be one of {', '.join(_SIGNS)}, not {arg!r}",
                    "write e.g. `amount: {sign: negative}`",
                    rule,
                )
                return None
            return _sign(name, getter, arg)
        if op == "regex":
            if not isinstance(arg, str) or not arg:
                self.add(path, "`regex` needs a pattern (text)", "write `regex: '^Order'`", rule)
                return None
            try:
                pattern = re.compile(arg, 0 if cs else re.IGNORECASE)
            except re.error as exc:
                at = f" at position {exc.pos}" if exc.pos is not None else ""
                self.add(
                    path,
                    f"invalid regular expression {arg!r}: {exc.msg}{at}",
                    "fix the pattern (quote it in single quotes so YAML keeps backslashes)",
                    rule,
                )
                return None
            regexes.append(pattern)
            return _regex(name, getter, pattern)
        if op in ("contains", "prefix", "suffix"):
            if not isinstance(arg, str | int) or isinstance(arg, bool) or str(arg) == "":
                self.add(path, f"`{op}` needs a non-empty text", f"write `{op}: text`", rule)
                return None
            return _text_op(name, getter, op, str(arg), cs)
        if op in ("equals", "one_of"):
            values = arg if op == "one_of" else [arg]
            if op == "one_of" and (not isinstance(arg, list) or not arg):
                self.add(path, "`one_of` needs a non-empty list", "write `one_of: [a, b]`", rule)
                return None
            converted = []
            for v in values:
                c = self.value(name, kind, v, path, rule)
                if c is _INVALID:
                    return None
                converted.append(c)
            if kind in (NUMBER, DATE) or (
                kind == ANY and all(isinstance(c, Decimal) for c in converted)
            ):
                return _one_of_ordered(name, getter, kind, converted, op)
            return _one_of_text(name, getter, [_scalar_text(c) for c in converted], cs, op)
        # ordering operators
        if op == "between":
            if not isinstance(arg, list) or len(arg) != 2:
                self.add(
                    path,
                    "`between` needs two values: [low, high] (both included)",
                    "write e.g. `between: [100, 500]` or `between: [2025-01-01, 2025-03-31]`",
                    rule,
                )
                return None
            lo = self.value(name, kind, arg[0], path, rule, ordered=True)
            hi = self.value(name, kind, arg[1], path, rule, ordered=True)
            if lo is _INVALID or hi is _INVALID:
                return None
            if lo > hi:  # type: ignore[operator]
                self.add(path, f"`between` low {lo} is above high {hi}", "swap them", rule)
                return None
            return _compare(name, getter, kind, "between", (lo, hi))
        bound = self.value(name, kind, arg, path, rule, ordered=True)
        if bound is _INVALID:
            return None
        return _compare(name, getter, kind, op, bound)

    def value(
        self, name: str, kind: str, raw: Any, path: str, rule: str | None, ordered: bool = False
    ) -> Any:
        if kind == NUMBER or (kind == ANY and ordered and not isinstance(raw, datetime.date)):
            number = None if isinstance(raw, bool) else _number(raw)
            if number is None or not number.is_finite():
                self.add(
                    path,
                    f"`{name}` compares numbers, but {raw!r} is not a number",
                    "write a plain number in major units, e.g. `100` or `19.99`",
                    rule,
                )
                return _INVALID
            return number
        if kind == DATE or (kind == ANY and isinstance(raw, datetime.date)):
            if kind == ANY:
                self.add(
                    path,
                    f"`{name}` is not a date field",
                    "compare dates on `created` or `available_on`",
                    rule,
                )
                return _INVALID
            if isinstance(raw, datetime.datetime):
                return raw.date()
            if isinstance(raw, datetime.date):
                return raw
            try:
                return datetime.date.fromisoformat(str(raw))
            except ValueError:
                self.add(
                    path,
                    f"`{name}` compares dates, but {raw!r} is not a date",
                    "write the date as YYYY-MM-DD",
                    rule,
                )
                return _INVALID
        if isinstance(raw, dict | list) or raw is None:
            self.add(
                path,
                f"`{name}` compares text, not {_type_name(raw)}",
                "write a plain value",
                rule,
            )
            return _INVALID
        if kind == ANY and isinstance(raw, int | float) and not isinstance(raw, bool):
            return Decimal(str(raw))  # `metadata.qty: 2` matches "2" and "2.0"
        return raw

    # actions ---------------------------------------------------------------------------------

    def account(self, raw: Any, path: str, rule: str | None) -> str | None:
        if not isinstance(raw, str) or not raw.strip():
            self.add(
                path,
                f"`account` must be an account name, not {_type_name(raw)}",
                "write e.g. `account: Income:{client}:Wholesale` or `account: revenue`",
                rule,
            )
            return None
        raw = raw.strip()
        if ":" not in raw:
            if raw == "clearing":
                self.add(
                    path,
                    "the clearing account cannot be a counter-account",
                    "name the income/expense account the money belongs to",
                    rule,
                )
                return None
            if raw not in DEFAULT_ACCOUNTS:
                hint = _did_you_mean(raw, DEFAULT_ACCOUNTS)
                self.add(
                    path,
                    f"`{raw}` is neither an account name nor a booking account key",
                    f"did you mean `{hint}`?"
                    if hint
                    else "write a full account (`Income:{client}:Sales`) or one of: "
                    + ", ".join(k for k in DEFAULT_ACCOUNTS if k != "clearing"),
                    rule,
                )
                return None
            return raw
        reason = _account_reason(raw.replace("{client}", "Client"))
        if reason:
            self.add(
                path,
                f"`{raw}` is not a valid Beancount account name: {reason}",
                "write e.g. `Income:{client}:Wholesale` (`{client}` is the client's account name)",
                rule,
            )
            return None
        return raw

    def split(self, raw: Any, path: str, rule: str | None) -> tuple[Leg, ...]:
        fix = "write `split:` with `- {account: …, percent: 80}` legs; the last leg takes the rest"
        if not isinstance(raw, list) or len(raw) < 2:
            self.add(path, "`split` needs a list of at least two legs", fix, rule)
            return ()
        legs: list[Leg] = []
        total = Decimal(0)
        ok = True
        for i, item in enumerate(raw):
            sub = _join(path, i)
            last = i == len(raw) - 1
            if not isinstance(item, dict) or "account" not in item:
                self.add(sub, "each leg is a mapping with `account`", fix, rule)
                ok = False
                continue
            for key in item:
                if key not in ("account", "percent", "amount"):
                    self.add(
                        _join(sub, str(key)),
                        f"unknown key `{key}` in a split leg",
                        "a leg has `account` and `percent` or `amount`",
                        rule,
                    )
                    ok = False
            account = self.account(item["account"], _join(sub, "account"), rule)
            percent = amount = None
            if "percent" in item and "amount" in item:
                self.add(sub, "a leg has `percent` or `amount`, not both", fix, rule)
                ok = False
            if "percent" in item:
                percent = (
                    _number(item["percent"]) if not isinstance(item["percent"], bool) else None
                )
                if percent is None or not (0 < percent <= 100):
                    self.add(
                        _join(sub, "percent"),
                        f"`percent` must be a number above 0 and at most 100, not "
                        f"{item['percent']!r}",
                        fix,
                        rule,
                    )
                    ok = False
                else:
                    total += percent
            if "amount" in item:
                amount = _number(item["amount"]) if not isinstance(item["amount"], bool) else None
                if amount is None or amount <= 0:
                    self.add(
                        _join(sub, "amount"),
                        f"`amount` must be a positive number (major units), not {item['amount']!r}",
                        "amounts are taken in the direction of the gross; write e.g. `5.00`",
                        rule,
                    )
                    ok = False
                elif last:
                    self.add(
                        _join(sub, "amount"),
                        "the last leg takes whatever remains; it cannot have a fixed `amount`",
                        "move the fixed leg up, or end with a leg that has only `account`",
                        rule,
                    )
                    ok = False
            if not last and "percent" not in item and "amount" not in item:
                self.add(
                    sub,
                    "only the last leg may omit `percent`/`amount` (it takes the rest)",
                    fix,
                    rule,
                )
                ok = False
            if account is None:
                ok = False
            else:
                legs.append(Leg(account, percent, amount))
        if ok and total > 100:
            self.add(path, f"the percentages add up to {total}, above 100", fix, rule)
            ok = False
        if ok and legs[-1].percent is not None and total != 100:
            self.add(
                _join(path, len(raw) - 1),
                f"the percentages add up to {total}, not 100, and the last leg has a percent",
                "make them add up to 100, or drop the last leg's `percent` so it takes the rest",
                rule,
            )
            ok = False
        return tuple(legs) if ok else ()

    def template(
        self, raw: Any, path: str, rule: str | None, regexes: list[re.Pattern[str]]
    ) -> Template | None:
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            raw = str(raw)
        if not isinstance(raw, str) or not raw.strip():
            self.add(
                path,
                f"expected a text template, not {_type_name(raw)}",
                "write e.g. `payee: '{customer.name}'` (quote templates that start with `{`)",
                rule,
            )
            return None
        pieces: list[tuple[str, str | None, Getter | None]] = []
        literal: list[str] = []
        pos = 0
        for m in _TEMPLATE_RE.finditer(raw):
            literal.append(raw[pos : m.start()])
            pos = m.end()
            token = m.group(0)
            if token in ("{{", "}}"):
                literal.append(token[0])
                continue
            if m.group(1) is None:
                self.add(
                    path,
                    f"unbalanced `{token}` in template {raw!r}",
                    "write `{{` or `}}` for a literal brace",
                    rule,
                )
                return None
            slot = m.group(1).strip()
            getter: Getter | None = None
            if slot.isdigit():
                groups = max((r.groups for r in regexes), default=0)
                if int(slot) < 1 or int(slot) > groups:
                    self.add(
                        path,
                        f"unknown template field `{{{slot}}}`: "
                        + (
                            f"the rule's regexes have at most {groups} group(s)"
                            if regexes
                            else "the rule has no `regex` condition to capture from"
                        ),
                        "add a group `( … )` to a regex condition of this rule, or fix the number",
                        rule,
                    )
                    return None
            elif any(slot in r.groupindex for r in regexes):
                pass
            else:
                spec = field_spec(slot)
                if spec is None:
                    hint = _did_you_mean(slot, FIELDS)
                    self.add(
                        path,
                        f"unknown template field `{{{slot}}}`",
                        f"did you mean `{{{hint}}}`?"
                        if hint
                        else "use a field name (customer.name, description, metadata.KEY, …) "
                        "or a regex group number",
                        rule,
                    )
                    return None
                getter = spec[1]
            pieces.append(("".join(literal), slot, getter))
            literal = []
        literal.append(raw[pos:])
        pieces.append(("".join(literal), None, None))
        return Template(raw, tuple(pieces))

    def tokens(
        self, raw: Any, path: str, rule: str | None, regexes: list[re.Pattern[str]], what: str
    ) -> tuple[Template, ...]:
        if raw is None:
            return ()
        items = raw if isinstance(raw, list) else [raw]
        out = []
        for i, item in enumerate(items):
            sub = _join(path, i) if isinstance(raw, list) else path
            if isinstance(item, str):
                item = item.strip().lstrip("#^" if what == "tag" else "^")
            template = self.template(item, sub, rule, regexes)
            if template is None:
                continue
            literal = "".join(p[0] for p in template.pieces)
            if _TOKEN_BAD.search(literal):
                self.add(
                    sub,
                    f"a {what} may contain only letters, digits and - _ / . (got {item!r})",
                    f"write e.g. `{'wholesale' if what == 'tag' else 'order-{metadata.order_id}'}`",
                    rule,
                )
                continue
            out.append(template)
        return tuple(out)

    def meta(
        self, raw: Any, path: str, rule: str | None, regexes: list[re.Pattern[str]]
    ) -> tuple[tuple[str, Template], ...]:
        if raw is None:
            return ()
        if not isinstance(raw, dict):
            self.add(
                path,
                f"`meta` must be a mapping, not {_type_name(raw)}",
                "write `meta: {product: '{description}'}`",
                rule,
            )
            return ()
        out = []
        for key, value in raw.items():
            sub = _join(path, str(key))
            if not isinstance(key, str) or not _META_KEY_RE.fullmatch(key):
                self.add(
                    sub,
                    f"`{key}` is not a valid metadata key",
                    "start with a lower-case letter; use letters, digits, `-` and `_`",
                    rule,
                )
                continue
            if key in RESERVED_META:
                self.add(
                    sub,
                    f"`{key}` is written by beancount-stripe and cannot be set by a rule",
                    "choose another key",
                    rule,
                )
                continue
            template = self.template(value, sub, rule, regexes)
            if template is not None:
                out.append((key, template))
        return tuple(out)

    # parties ---------------------------------------------------------------------------------

    def party(
        self, raw: Any, path: str, owners: dict[tuple[str, str], tuple[str, int | None]]
    ) -> Party | None:
        fix = "write `- payee: Canonical Name` with `emails:`, `names:`, `ids:` or `descriptions:`"
        if not isinstance(raw, dict):
            self.add(path, f"each party must be a mapping, not {_type_name(raw)}", fix)
            return None
        payee = raw.get("payee")
        start = len(self.report.problems)
        if not isinstance(payee, str) or not payee.strip():
            self.add(path, "a party needs `payee` (the canonical name)", fix)
            payee = None
        for key in raw:
            if key not in PARTY_KEYS:
                hint = _did_you_mean(str(key), PARTY_KEYS)
                self.add(
                    _join(path, str(key)),
                    f"unknown key `{key}` in a party",
                    f"did you mean `{hint}`?" if hint else f"use one of: {', '.join(PARTY_KEYS)}",
                )
        lists: dict[str, list[str]] = {}
        for key in ("ids", "emails", "names", "descriptions"):
            value = raw.get(key)
            if value is None:
                continue
            items = value if isinstance(value, list) else [value]
            good = []
            for i, item in enumerate(items):
                sub = _join(_join(path, key), i) if isinstance(value, list) else _join(path, key)
                if not isinstance(item, str) or not item.strip():
                    self.add(sub, f"`{key}` entries must be non-empty text", fix)
                    continue
                good.append(item.strip())
                norm = " ".join(item.split()).casefold() if key != "descriptions" else item
                if key in ("ids", "emails", "names"):
                    owner = owners.get((key, norm))
                    if owner is not None and owner[0] != payee:
                        self.add(
                            sub,
                            f"`{item}` already belongs to party `{owner[0]}` (line {owner[1]})",
                            "an identity can map to one canonical payee only; remove one",
                        )
                    else:
                        owners[(key, norm)] = (str(payee), self.report.line(sub))
            lists[key] = good
        patterns = []
        for i, text in enumerate(lists.get("descriptions", [])):
            try:
                patterns.append(re.compile(text, re.IGNORECASE))
            except re.error as exc:
                self.add(
                    _join(_join(path, "descriptions"), i),
                    f"invalid regular expression {text!r}: {exc.msg}",
                    "fix the pattern (quote it in single quotes)",
                )
        if not any(lists.get(k) for k in ("ids", "emails", "names", "descriptions")):
            self.add(path, "the party lists no identity", fix)
        if payee is None or len(self.report.problems) > start:
            return None
        return Party(
            payee=" ".join(payee.split()),
            file=self.file_label,
            line=self.report.line(path) or 0,
            ids=frozenset(lists.get("ids", [])),
            emails=frozenset(e.casefold() for e in lists.get("emails", [])),
            names=frozenset(" ".join(n.split()).casefold() for n in lists.get("names", [])),
            descriptions=tuple(patterns),
        )


_MISSING = object()
_FIX_RULE = "write each rule as `- name: …` with `when:` conditions and actions (account, payee, …)"
_INVALID = object()


def _always(_f: Facts) -> bool:
    return True


def _all(parts: list[Cond]) -> Cond:
    tests = tuple(p.test for p in parts)

    def test(f: Facts) -> bool:
        mark = len(f.captures)
        for t in tests:
            if not t(f):
                del f.captures[mark:]
                return False
        return True

    return Cond(" and ".join(p.text for p in parts), test, parts=tuple(parts), kind="all")


def _any(parts: list[Cond]) -> Cond:
    tests = tuple(p.test for p in parts)

    def test(f: Facts) -> bool:
        return any(t(f) for t in tests)

    text = "any of (" + "; ".join(p.text for p in parts) + ")"
    return Cond(text, test, parts=tuple(parts), kind="any")


def _not(inner: Cond) -> Cond:
    inner_test = inner.test

    def test(f: Facts) -> bool:
        mark = len(f.captures)
        result = not inner_test(f)
        del f.captures[mark:]
        return result

    return Cond(f"not ({inner.text})", test, parts=(inner,), kind="not")


def _exists(name: str, getter: Getter, want: bool) -> Cond:
    def test(f: Facts) -> bool:
        v = f.text(name, getter)
        return (v is not None and v != "") is want

    return Cond(f"{name} {'is set' if want else 'is empty'}", test, name, getter)


def _sign(name: str, getter: Getter, sign: str) -> Cond:
    def test(f: Facts) -> bool:
        n = _number(f.get(name, getter))
        if n is None:
            return False
        return n > 0 if sign == "positive" else n < 0 if sign == "negative" else n == 0

    return Cond(f"{name} is {sign}", test, name, getter)


def _regex(name: str, getter: Getter, pattern: re.Pattern[str]) -> Cond:
    search = pattern.search

    def test(f: Facts) -> bool:
        v = f._values.get(name, _MISSING)
        if type(v) is not str:
            v = f.text(name, getter)
        if v is None:
            return False
        m = search(v)
        if m is None:
            return False
        f.captures.append(m)
        return True

    return Cond(f"{name} matches /{pattern.pattern}/", test, name, getter)


def _text_op(name: str, getter: Getter, op: str, needle: str, cs: bool) -> Cond:
    verb = {"prefix": "starts with", "suffix": "ends with"}.get(op, op)
    text = f'{name} {verb} "{needle}"'
    if cs:
        if op == "contains":
            return Cond(text, lambda f: needle in (f.text(name, getter) or "\0"), name, getter)

        def test(f: Facts) -> bool:
            v = f.text(name, getter)
            if v is None:
                return False
            return v.startswith(needle) if op == "prefix" else v.endswith(needle)

        return Cond(text, test, name, getter)
    folded = needle.casefold()
    fkey = "\0" + name
    if op == "contains":

        def contains(f: Facts) -> bool:
            v = f._values.get(fkey, _MISSING)
            if v is _MISSING:
                v = f.folded(name, getter)
            return v is not None and folded in v

        return Cond(text, contains, name, getter)

    def fold_test(f: Facts) -> bool:
        v = f.folded(name, getter)
        if v is None:
            return False
        return v.startswith(folded) if op == "prefix" else v.endswith(folded)

    return Cond(text, fold_test, name, getter)


def _one_of_text(name: str, getter: Getter, values: list[str], cs: bool, op: str) -> Cond:
    shown = values[0] if op == "equals" else "[" + ", ".join(values) + "]"
    text = f'{name} = "{shown}"' if op == "equals" else f"{name} in {shown}"
    folded = frozenset(v.casefold() for v in values)
    if cs:
        exact = frozenset(values)
        return Cond(text, lambda f: f.text(name, getter) in exact, name, getter)
    fkey = "\0" + name

    def test(f: Facts) -> bool:
        v = f._values.get(fkey, _MISSING)
        if v is _MISSING:
            v = f.folded(name, getter)
        return v in folded

    return Cond(text, test, name, getter, values=folded)


def _one_of_ordered(name: str, getter: Getter, kind: str, values: list[Any], op: str) -> Cond:
    shown = str(values[0]) if op == "equals" else "[" + ", ".join(map(str, values)) + "]"
    text = f"{name} = {shown}" if op == "equals" else f"{name} in {shown}"
    wanted = frozenset(values)
    if kind == DATE:
        return Cond(text, lambda f: f.get(name, getter) in wanted, name, getter)

    def test(f: Facts) -> bool:
        n = _number(f.get(name, getter))
        return n is not None and n in wanted

    return Cond(text, test, name, getter)


_OP_TEXT = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


def _compare(name: str, getter: Getter, kind: str, op: str, bound: Any) -> Cond:
    convert: Callable[[Any], Any] = (
        (lambda v: v if isinstance(v, datetime.date) else None) if kind == DATE else _number
    )
    if op == "between":
        lo, hi = bound
        text = f"{name} between {lo} and {hi}"

        def between(f: Facts) -> bool:
            v = convert(f.get(name, getter))
            return v is not None and lo <= v <= hi

        return Cond(text, between, name, getter)
    cmp: Callable[[Any, Any], bool] = {
        "gt": lambda a, b: a > b,
        "gte": lambda a, b: a >= b,
        "lt": lambda a, b: a < b,
        "lte": lambda a, b: a <= b,
    }[op]

    def test(f: Facts) -> bool:
        v = convert(f.get(name, getter))
        return v is not None and cmp(v, bound)

    return Cond(f"{name} {_OP_TEXT[op]} {bound}", test, name, getter)


def _type_index(when: Cond) -> tuple[frozenset[str] | None, Pred | None]:
    """(types a rule can match, the rest of its condition) when a top-level condition pins
    ``type``: the ruleset then offers the rule only to BTs of those types, and tests the rest."""
    parts = when.parts if when.kind == "all" else (when,)
    for i, part in enumerate(parts):
        if part.kind == "leaf" and part.field == "type" and part.values is not None:
            others = [p for j, p in enumerate(parts) if j != i]
            if not others:
                return part.values, _always
            return part.values, others[0].test if len(others) == 1 else _all(others).test
    return None, None


# Fields worth a hash index, most selective first (``type`` has its own index).
_GUARD_FIELDS = (
    "customer.id",
    "customer.email",
    "destination",
    "source",
    "customer.name",
    "payment_method",
    "card.brand",
    "card.country",
    "currency",
    "status",
    "reporting_category",
    "category",
)


def _guard(rule: Rule) -> tuple[str, Getter, frozenset[str]] | None:
    """A top-level ``field = value`` / ``one_of`` condition the rule cannot match without."""
    parts = rule.when.parts if rule.when.kind == "all" else (rule.when,)
    found = [
        p for p in parts if p.kind == "leaf" and p.values is not None and p.field in _GUARD_FIELDS
    ]
    if not found:
        return None
    best = min(found, key=lambda p: _GUARD_FIELDS.index(str(p.field)))
    assert best.field is not None and best.getter is not None
    return best.field, best.getter, best.values  # type: ignore[return-value]


# -- a client's ruleset ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Candidates:
    """The rules that can match one BT type, with what is left to decide after each."""

    rules: tuple[Rule, ...]
    tests: tuple[Pred, ...]  # what is left to test of each rule's condition
    masks: tuple[int, ...]
    additive: tuple[bool, ...]
    more_after: tuple[int, ...]  # OR of the masks of rules[i:]
    additive_after: tuple[bool, ...]  # any of rules[i:] adds tags or links
    # Second index: rules whose condition requires ``field = value`` are tried only for BTs
    # with that value; ``unguarded`` are the indexes of all other rules.
    unguarded: tuple[int, ...] = ()
    guards: tuple[tuple[str, Getter, dict[str | None, tuple[int, ...]]], ...] = ()

    def order(self, facts: Facts) -> Sequence[int]:
        """Indexes of the rules worth testing for ``facts``, in precedence order."""
        if not self.guards:
            return range(len(self.rules))
        picked = list(self.unguarded)
        for name, getter, table in self.guards:
            hit = table.get(facts.folded(name, getter))
            if hit:
                picked.extend(hit)
        picked.sort()
        return picked


class Ruleset:
    """A client's rules files bound to its accounts; ``apply_rules`` uses it for every BT."""

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
            tests = tuple(
                r.rest if r.types is not None and r.rest is not None else r.when.test for r in rules
            )
            unguarded: list[int] = []
            tables: dict[str, tuple[Getter, dict[str | None, list[int]]]] = {}
            for i, rule in enumerate(rules):
                guard = _guard(rule)
                if guard is None:
                    unguarded.append(i)
                    continue
                name, getter, values = guard
                table = tables.setdefault(name, (getter, {}))[1]
                for value in values:
                    table.setdefault(value, []).append(i)
            guards = tuple(
                (name, getter, {v: tuple(ix) for v, ix in table.items()})
                for name, (getter, table) in tables.items()
            )
            found = _Candidates(
                rules,
                tests,
                masks,
                tuple(r.additive for r in rules),
                tuple(reversed(more)),
                tuple(reversed(additive)),
                tuple(unguarded),
                guards,
            )
            self._candidates[key] = found
        return found

    def resolve_party(self, facts: Facts) -> tuple[str | None, str]:
        """(canonical payee, how it was recognized): id, email, email domain, name, description."""
        if not self.parties:
            return None, ""
        for key, getter in _PARTY_ID_FIELDS:
            ident = facts.text(key, getter)
            if ident and ident in self._ids:
                return self._ids[ident].payee, f"{key} {ident}"
        email = facts.folded("customer.email", _customer_email)
        if email:
            if email in self._emails:
                return self._emails[email].payee, f"email {email}"
            domain = "@" + email.rpartition("@")[2]
            if domain in self._emails:
                return self._emails[domain].payee, f"email domain {domain}"
        name = facts.folded("customer.name", _customer_name)
        if name and name in self._names:
            return self._names[name].payee, f"name {name}"
        description = facts.text("description", FIELDS["description"][1])
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


# -- applying rules --------------------------------------------------------------------------------


@dataclass
class Explanation:
    """Which rule (or default) decided each part of an entry: for `rules explain` and coverage."""

    txn_id: str
    deciders: dict[str, Rule] = field(default_factory=dict)  # part → rule (account, payee, …)
    matched: list[Rule] = field(default_factory=list)
    party: tuple[str | None, str] = (None, "")
    booked_account: str = ""  # the booking table's counter-account, before rules
    accounts: tuple[str, ...] = ()  # counter-account(s) after rules

    @property
    def account_rule(self) -> Rule | None:
        return self.deciders.get("account")


def apply_rules(
    entry: data.Transaction, bt: Mapping[str, Any], ruleset: Ruleset
) -> tuple[data.Transaction, Explanation]:
    """Refine one booked entry with the ruleset; the counter-leg is the entry's last posting."""
    facts = Facts(bt, entry, ruleset)
    cand = ruleset.candidates(bt.get("type"))
    explanation = Explanation(str(bt.get("id")))
    deciders = explanation.deciders
    values: dict[str, Any] = {}
    tags: set[str] = set()
    links: set[str] = set()
    decided = 0
    bits = ruleset._bits
    rules, tests, masks, additive = cand.rules, cand.tests, cand.masks, cand.additive
    more_after, additive_after = cand.more_after, cand.additive_after
    captures = facts.captures
    for i in cand.order(facts):
        if not (more_after[i] & ~decided) and not additive_after[i]:
            break
        if not (masks[i] & ~decided) and not additive[i]:
            continue
        if captures:
            captures.clear()
        if not tests[i](facts):
            continue
        rule = rules[i]
        explanation.matched.append(rule)
        if (rule.account or rule.split) and not decided & 1:
            values["account"] = rule
            deciders["account"] = rule
            decided |= 1
        for part in ("payee", "narration"):
            template = getattr(rule, part)
            if template is not None and not decided & bits[part]:
                text = template.render(facts)
                if text:
                    values[part] = text
                    deciders[part] = rule
                    decided |= bits[part]
        if rule.flag is not None and not decided & bits["flag"]:
            values["flag"] = rule.flag
            deciders["flag"] = rule
            decided |= bits["flag"]
        for key, template in rule.meta:
            bit = bits[f"meta:{key}"]
            if not decided & bit:
                text = template.render(facts)
                if text:
                    values[f"meta:{key}"] = text
                    deciders[f"meta:{key}"] = rule
                    decided |= bit
        for template in rule.tags:
            token = _token(template.render(facts))
            if token:
                tags.add(token)
        for template in rule.links:
            token = _token(template.render(facts))
            if token:
                links.add(token)

    counter = entry.postings[-1]
    explanation.booked_account = counter.account
    postings = list(entry.postings)
    account_rule: Rule | None = values.get("account")
    if account_rule is not None:
        accounts = ruleset.account_of(account_rule)
        if account_rule.split:
            postings[-1:] = _split_postings(counter, account_rule.split, accounts)
        else:
            postings[-1] = counter._replace(account=accounts[0])
    explanation.accounts = tuple(p.account for p in postings[len(entry.postings) - 1 :])

    payee = values.get("payee")
    if payee is None:
        party = facts.party()
        explanation.party = party
        payee = party[0] or entry.payee
    flag = values.get("flag")
    if flag is None:
        flag = "!" if ruleset.uncategorized in explanation.accounts else "*"
    meta = dict(entry.meta)
    for key, value in values.items():
        if key.startswith("meta:"):
            meta[key[5:]] = value
    narration = values.get("narration", entry.narration)
    if payee is not None and payee == narration:
        payee = None  # "Advance funding" "Advance funding" says it twice; the narration is enough
    new = entry._replace(
        meta=meta,
        flag=flag,
        payee=payee,
        narration=narration,
        tags=frozenset(entry.tags | tags) if tags else entry.tags,
        links=frozenset(entry.links | links) if links else entry.links,
        postings=postings,
    )
    if needs_review(new, ruleset.uncategorized):
        meta[HASH_KEY] = entry_hash(new)
    return new, explanation


def _token(text: str) -> str:
    return _TOKEN_BAD.sub("-", text).strip("-")


def _split_postings(
    counter: data.Posting, legs: Sequence[Leg], accounts: Sequence[str]
) -> list[data.Posting]:
    units = counter.units
    exp = max(0, -int(units.number.as_tuple().exponent))  # type: ignore[union-attr, operator]
    amounts = split_amounts(units.number, [(leg.percent, leg.amount) for leg in legs], exp)
    out = [
        counter._replace(account=account, units=Amount(number, units.currency))
        for account, number in zip(accounts, amounts, strict=True)
        if number
    ]
    return out or [counter._replace(account=accounts[-1])]


def split_amounts(
    total: Decimal, shares: Sequence[tuple[Decimal | None, Decimal | None]], exponent: int
) -> list[Decimal]:
    """Split ``total`` into legs of (percent, fixed amount); the last leg takes the rest.

    Percentages are of the gross and rounded cumulatively to the currency's minor unit, and a
    fixed amount never takes more than is left, so every leg has the sign of ``total`` and the
    legs always add up to exactly ``total``.
    """
    quantum = Decimal(1).scaleb(-exponent)
    sign = -1 if total < 0 else 1
    magnitude = abs(total)
    out: list[Decimal] = []
    allocated = Decimal(0)
    cumulative = Decimal(0)
    for i, (percent, amount) in enumerate(shares):
        if i == len(shares) - 1:
            out.append(sign * (magnitude - allocated))
            break
        if percent is not None:
            before = (magnitude * cumulative / 100).quantize(quantum, ROUND_HALF_EVEN)
            cumulative += percent
            after = (magnitude * cumulative / 100).quantize(quantum, ROUND_HALF_EVEN)
            share = after - before
        else:
            share = (amount or Decimal(0)).quantize(quantum, ROUND_HALF_EVEN)
        share = max(Decimal(0), min(share, magnitude - allocated))
        allocated += share
        out.append(sign * share)
    return [x.quantize(quantum) if x else Decimal(0).quantize(quantum) for x in out]


def needs_review(entry: data.Transaction, uncategorized: str) -> bool:
    """Flagged ``!`` or (partly) on the uncategorized account: what ``recategorize`` may redo."""
    return entry.flag == "!" or any(p.account == uncategorized for p in entry.postings)


_SKIP_META = frozenset({"filename", "lineno", HASH_KEY})


def entry_hash(entry: data.Transaction) -> str:
    """Fingerprint of everything a person could edit in an entry (not its position in a file).

    Written as ``stripe_hash`` on entries booked for review; ``recategorize`` rewrites an entry
    only while the fingerprint still matches, so an entry a person touched is never rewritten.
    """
    parts = [
        entry.date.isoformat(),
        entry.flag or "",
        entry.payee or "",
        entry.narration or "",
        " ".join(sorted(entry.tags or ())),
        " ".join(sorted(entry.links or ())),
    ]
    parts += sorted(_meta_items(entry.meta))
    for posting in entry.postings:
        units = posting.units
        number = "" if units is None or units.number is None else _num(units.number)
        parts.append(
            "|".join(
                [
                    posting.account,
                    number,
                    getattr(units, "currency", "") or "",
                    posting.flag or "",
                    str(posting.cost or ""),
                    str(posting.price or ""),
                    ";".join(sorted(_meta_items(posting.meta))),
                ]
            )
        )
    return hashlib.sha256("\n".join(parts).encode("utf-8")).hexdigest()[:16]


def _meta_items(meta: Mapping[str, Any] | None) -> list[str]:
    if not meta:
        return []
    return [
        f"{k}={_scalar_text(v)}"
        for k, v in meta.items()
        if k not in _SKIP_META and not str(k).startswith("__")
    ]


def _num(number: Decimal) -> str:
    return format(number.normalize(), "f") if number else "0"


def refine(
    entries: Iterable[data.Transaction],
    bts: Mapping[str, Mapping[str, Any]],
    ruleset: Ruleset,
) -> list[tuple[data.Transaction, Explanation]]:
    """Apply the ruleset to booked entries (``bts`` by id) keeping their order."""
    out = []
    for entry in entries:
        bt = bts[entry.meta["stripe_id"]]
        out.append(apply_rules(entry, bt, ruleset))
    return out


def book_with_rules(
    bts: Iterable[Mapping[str, Any]],
    client: ClientConfig,
    ruleset: Ruleset | None = None,
    filename: str = booking.DEFAULT_FILENAME,
) -> list[tuple[data.Transaction, Explanation]]:
    """Book and refine: what ``sync``, ``import.py extract`` and Fava all write."""
    bts = list(bts)
    entries = booking.book_all(bts, client, filename)
    by_id = {bt["id"]: bt for bt in bts}
    return refine(entries, by_id, ruleset if ruleset is not None else ruleset_for(client))


# -- explaining ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NearMiss:
    """A rule that failed on only one of its conditions."""

    rule: Rule
    held: tuple[str, ...]
    failed: str
    actual: str | None


def near_misses(
    entry: data.Transaction, bt: Mapping[str, Any], ruleset: Ruleset, limit: int = 5
) -> list[NearMiss]:
    """Rules that did not match ``bt`` but whose conditions all held except one."""
    facts = Facts(bt, entry, ruleset)
    out: list[tuple[int, int, NearMiss]] = []
    for order, rule in enumerate(ruleset.rules):
        facts.captures.clear()
        if rule.when.test(facts):
            continue
        parts = rule.when.parts if rule.when.kind == "all" else (rule.when,)
        if len(parts) < 2:
            continue
        held, failed = [], []
        for part in parts:
            facts.captures.clear()
            (held if part.test(facts) else failed).append(part)
        if len(failed) != 1:
            continue
        miss = failed[0]
        actual = None
        if miss.kind == "leaf" and miss.getter is not None and miss.field is not None:
            actual = facts.text(miss.field, miss.getter)
        near = NearMiss(rule, tuple(p.text for p in held), miss.text, actual)
        out.append((-len(held), order, near))
    out.sort(key=lambda item: item[:2])
    return [item[2] for item in out[:limit]]
