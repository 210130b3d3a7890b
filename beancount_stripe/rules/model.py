"""The rule language: its keys and operators, and the compiled forms of rules, conditions,
templates, split legs and parties that the compiler produces and the engine runs."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from beancount_stripe.rules.fields import Facts, Getter

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
    # what the rule indexes read (rules/index.py): the operator of a text leaf, its needle
    # (casefolded unless ``cs``), and the pattern of a regex leaf
    op: str | None = None
    needle: str | None = None
    cs: bool = False
    pattern: re.Pattern[str] | None = None
    bound: Any = None  # gt/gte/lt/lte: the bound; between: (low, high)
    dates: bool = False  # an ordering leaf on a date field


@dataclass(frozen=True)
class Template:
    """A payee/narration/tag/meta template: literal text and ``{field}`` / ``{1}`` slots."""

    source: str
    pieces: tuple[tuple[str, str | None, Getter | None], ...]  # (literal, slot, getter)
    # the rendered text when the template has no slots (``tags: [vip]``): rendered once
    fixed: str | None = field(default=None, init=False, compare=False, repr=False)
    # (head, field, getter, tail) when the template is one field slot between two literals
    # (``{description} #4``, ``Key 5 ({customer.name})``): rendered without the general loop
    single: tuple[str, str, Getter, str] | None = field(
        default=None, init=False, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        if all(slot is None for _literal, slot, _getter in self.pieces):
            text = " ".join("".join(literal for literal, _s, _g in self.pieces).split())
            object.__setattr__(self, "fixed", text)
            return
        head, slot, getter = self.pieces[0]
        rest = self.pieces[1:]
        if slot is not None and getter is not None and all(s is None for _l, s, _g in rest):
            tail = "".join(literal for literal, _s, _g in rest)
            object.__setattr__(self, "single", (head, slot, getter, tail))

    def render(self, facts: Facts) -> str:
        if self.fixed is not None:
            return self.fixed
        single = self.single
        if single is not None:
            head, slot, getter, tail = single
            value = facts._values.get(slot)
            if type(value) is not str:
                value = facts.text(slot, getter)
            return " ".join((head + value + tail if value else head + tail).split())
        out: list[str] = []
        values = facts._values
        for literal, slot, getter in self.pieces:
            out.append(literal)
            if slot is None:
                continue
            if getter is not None:
                value = values.get(slot)  # a str cached by ``Facts``: its text as is
                if type(value) is not str:
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
