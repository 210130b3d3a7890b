"""Indexes that offer a transaction only the rules that can match it.

A rule's condition is a conjunction; any top-level leaf of it is a *guard*: without it the rule
cannot match. Each rule is filed under its most selective guard, and per transaction each index
answers in one step which of its rules are worth testing:

- ``field = value`` / ``one_of``: a dict from the (casefolded) value to the rules;
- ``contains`` / ``prefix`` / ``suffix``: all needles of one field in one trie-shaped regular
  expression, so one scan of the text finds every needle it holds (see ``NeedleIndex``);
- ``regex``: the longest literal run the pattern cannot match without (``^Order #(\\d+)``
  needs "Order #"), filed like a ``contains`` needle.

The per-transaction cost then grows with the rules that can match, not with the rules written.
An index never decides a match: the engine still tests each offered rule's whole condition.
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime
import itertools
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from beancount_stripe.rules.fields import Facts, Getter, _number
from beancount_stripe.rules.model import Cond, Rule

try:  # the standard library's regex parser, to find the literals a pattern needs
    from re import _constants as _sre_constants  # type: ignore[attr-defined]
    from re import _parser as _sre_parser  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - other Pythons: regexes simply stay unindexed
    _sre_parser = None
    _sre_constants = None

# Equality on these fields picks a handful of transactions: the best guard there is.
_SELECTIVE = ("customer.id", "customer.email", "destination", "source", "customer.name")
# Equality on these picks a large share of transactions: a needle is usually better.
_BROAD = (
    "payment_method",
    "card.brand",
    "card.country",
    "currency",
    "status",
    "reporting_category",
    "category",
)


@dataclass(frozen=True)
class Guard:
    """How a rule is filed: ``kind`` is equals, contains, prefix, suffix, regex or range."""

    kind: str
    field: str  # for a composite equality: the field names joined by "&"
    getter: Getter
    cs: bool = False  # compared on the text as is, not casefolded
    values: frozenset[Any] = frozenset()  # equals: casefolded values (tuples when composite)
    needle: str = ""  # contains/prefix/suffix/regex: the text that must occur
    fields: tuple[tuple[str, Getter], ...] = ()  # a composite equality's fields
    op: str = ""  # range: between, gte (also gt) or lte (also lt)
    bound: Any = None  # range: (low, high) for between, else the bound
    dates: bool = False
    # a second, broad ``field = value`` leaf checked before the rule is offered: (field, getter,
    # casefolded values); "Gift" in the description *and* currency EUR
    also: tuple[str, Getter, frozenset[str]] | None = None
    # the leaves of the condition that hold whenever this index offers the rule (its equality,
    # its needle, its ``also``): the engine need not test them again (``conditions.residual``)
    sure: tuple[Cond, ...] = ()


def regex_literals(pattern: re.Pattern[str]) -> list[str]:
    """Literal runs every match of ``pattern`` contains (empty when none is certain).

    The pattern's sequence is read through plain groups (``(…)``, ``(?:…)``); a repeat, an
    alternation, a class or a group that changes flags ends a run. Case-insensitive patterns
    give ASCII runs only, lower-cased: they are looked for in the casefolded text of ASCII
    values (see ``GuardIndex.hits``).
    """
    if _sre_parser is None or _sre_constants is None:
        return []
    try:
        parsed = _sre_parser.parse(pattern.pattern, pattern.flags)
    except Exception:
        return []
    literal, subpattern = _sre_constants.LITERAL, _sre_constants.SUBPATTERN
    ignore_case = bool(pattern.flags & re.IGNORECASE)
    runs: list[str] = []
    run: list[str] = []

    def walk(items: Iterable[tuple[Any, Any]]) -> None:
        for op, arg in items:
            if op is literal:
                run.append(chr(arg))
            elif op is subpattern and not arg[1] and not arg[2]:
                walk(arg[3])
            else:
                end()

    def end() -> None:
        text = "".join(run)
        run.clear()
        if text and (not ignore_case or text.isascii()):
            runs.append(text.lower() if ignore_case else text)

    walk(parsed)
    end()
    return runs


def regex_literal(pattern: re.Pattern[str]) -> str | None:
    """The longest literal run every match of ``pattern`` contains, or None."""
    return max(regex_literals(pattern), key=len, default=None)


def guard_of(rule_when: Cond, counts: Mapping[str, int] | None = None) -> Guard | None:
    """The most selective guard of a condition, with a broad equality to check as well."""
    guard = _guard_of(rule_when, counts)
    if guard is None or guard.kind == "equals":
        return guard
    parts = rule_when.parts if rule_when.kind == "all" else (rule_when,)
    for name in _BROAD:
        for p in parts:
            if p.kind == "leaf" and p.field == name and p.values is not None and p.getter:
                return dataclasses.replace(
                    guard, also=(name, p.getter, p.values), sure=(*guard.sure, p)
                )
    return guard


def _guard_of(rule_when: Cond, counts: Mapping[str, int] | None = None) -> Guard | None:
    """The most selective guard of a condition (see the module docstring), or None.

    Among needles and regex literals, the one fewest other rules need (``counts``) wins, then
    the longest: ``Order #(\\d+): Gift`` is filed under "gift" when many rules need "order #".
    """
    counts = counts or {}
    parts = rule_when.parts if rule_when.kind == "all" else (rule_when,)
    leaves = [p for p in parts if p.kind == "leaf" and p.field and p.getter is not None]
    leaves = [p for p in leaves if p.field != "type"]  # the type has its own index

    def equals(p: Cond) -> Guard:
        assert p.field is not None and p.getter is not None and p.values is not None
        return Guard("equals", p.field, p.getter, values=p.values, sure=(p,))

    eq = [p for p in leaves if p.values is not None]
    for name in _SELECTIVE:
        for p in eq:
            if p.field == name:
                return equals(p)
    for p in eq:
        if p.field not in _BROAD:
            return equals(p)
    needles = [
        p
        for p in leaves
        if p.op in ("contains", "prefix", "suffix") and p.needle and "\0" not in p.needle
    ]
    if needles:
        p = min(needles, key=lambda p: (counts.get(p.needle or "", 0), -len(p.needle or "")))
        assert p.field is not None and p.getter is not None and p.op is not None
        return Guard(p.op, p.field, p.getter, cs=p.cs, needle=p.needle or "", sure=(p,))
    literals = []
    for p in leaves:
        if p.op == "regex" and p.pattern is not None:
            for literal in regex_literals(p.pattern):
                literals.append(((counts.get(literal, 0), -len(literal)), literal, p))
    if literals:
        _key, literal, p = min(literals, key=lambda item: item[0])
        cs = not p.pattern.flags & re.IGNORECASE  # type: ignore[union-attr]
        assert p.field is not None and p.getter is not None
        return Guard("regex", p.field, p.getter, cs=cs, needle=literal)
    ranges = [p for p in leaves if p.op in _ORDER_OPS and p.bound is not None]
    narrow = [p for p in ranges if p.op == "between" and _span(p.bound, p.dates) <= _MAX_SPAN]
    if narrow:
        return _range(min(narrow, key=lambda p: _span(p.bound, p.dates)))
    broad = [p for p in eq if p.field in _BROAD]
    if len(broad) > 1:
        keys = list(itertools.product(*(sorted(p.values or ()) for p in broad)))
        if len(keys) <= _MAX_KEYS:
            fields = tuple((p.field or "", p.getter) for p in broad)
            name = "&".join(f for f, _g in fields)
            return Guard(
                "equals",
                name,
                broad[0].getter,  # type: ignore[arg-type]
                values=frozenset(keys),
                fields=fields,  # type: ignore[arg-type]
                sure=tuple(broad),
            )
    if broad:
        return equals(min(broad, key=lambda p: _BROAD.index(p.field or "")))
    if ranges:
        return _range(ranges[0])
    return None


_MISSING = object()
_ORDER_OPS = ("between", "gt", "gte", "lt", "lte")
_MAX_SPAN = 32  # a `between` spanning at most this many units (or days) is bucketed
_MAX_KEYS = 64  # a composite equality with at most this many value combinations


def _unit(value: Any, dates: bool) -> int:
    """The bucket of a number (its floor) or a date (its ordinal)."""
    return value.toordinal() if dates else math.floor(value)


def _span(bound: Any, dates: bool) -> int:
    lo, hi = bound
    return _unit(hi, dates) - _unit(lo, dates)


def _range(p: Cond) -> Guard:
    assert p.field is not None and p.getter is not None and p.op is not None
    op, bound = p.op, p.bound
    if op == "between" and _span(bound, p.dates) > _MAX_SPAN:
        op, bound = "gte", bound[0]  # wide: only its low end narrows the choice
    op = {"gt": "gte", "lt": "lte"}.get(op, op)
    return Guard("range", p.field, p.getter, op=op, bound=bound, dates=p.dates)


def _trie(words: Iterable[str]) -> str:
    """A regular expression matching any of ``words``, shaped as a trie (one branch per next
    character), greedy so that at a position it matches the longest word starting there."""
    root: dict[str, Any] = {}
    for word in words:
        node = root
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = True

    def render(node: dict[str, Any]) -> str:
        alts = [re.escape(ch) + render(sub) for ch, sub in sorted(node.items()) if ch]
        if not alts:
            return ""
        body = alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"
        return f"(?:{body})?" if "" in node else body

    return render(root)


MEMO_LIMIT = 1024  # answers an index remembers (then it starts over): bounded memory


class NeedleIndex:
    """Which of many needles (``contains``, ``prefix`` or ``suffix``) a text holds, in one scan.

    At each position the trie regex matches the longest needle starting there; every shorter
    needle starting there is a prefix of it, so ``closure`` of the found needle lists them all.
    """

    __slots__ = ("closure", "memo", "mode", "regex")

    def __init__(self, needles: Mapping[str, Sequence[int]], mode: str) -> None:
        self.mode = mode
        flip = mode == "suffix"
        keys = {(w[::-1] if flip else w): ix for w, ix in needles.items()}
        self.closure: dict[str, tuple[int, ...]] = {}
        for word in keys:
            found: set[int] = set()
            for other, ix in keys.items():
                if word.startswith(other):
                    found.update(ix)
            self.closure[word] = tuple(sorted(found))
        pattern = _trie(keys)
        self.regex = re.compile(f"(?=({pattern}))" if mode == "contains" else pattern)
        # answers by text: texts repeat across a history (customers, products, descriptions)
        # and a dict lookup of a str (its hash is cached) is far cheaper than a scan
        self.memo: dict[str, Iterable[int]] = {}

    def hits(self, text: str) -> Iterable[int]:
        """Positions of the needles ``text`` holds (do not modify the answer: it is shared)."""
        found = self.memo.get(text)
        if found is None:
            found = self.scan(text)
            if len(self.memo) >= MEMO_LIMIT:
                self.memo.clear()
            self.memo[text] = found
        return found

    def scan(self, text: str) -> Iterable[int]:
        """``hits`` without the memo (the compiled indexes read the memo themselves)."""
        if self.mode == "contains":
            found = self.regex.findall(text)
            if not found:
                return ()
            if len(found) == 1:
                return self.closure[found[0]]
            out: set[int] = set()
            closure = self.closure
            for word in set(found):
                out.update(closure[word])
            return out
        m = self.regex.match(text[::-1] if self.mode == "suffix" else text)
        return self.closure[m.group(0)] if m else ()


class GuardIndex:
    """The rules (candidate positions) filed under guards of one kind on one field."""

    __slots__ = (
        "ascii_only",
        "buckets",
        "cs",
        "dates",
        "everyone",
        "fields",
        "filters",
        "getter",
        "high_bounds",
        "high_positions",
        "highs",
        "index",
        "kind",
        "lookup",
        "low_bounds",
        "low_positions",
        "lows",
        "name",
        "sure",
        "table",
    )

    def __init__(self, guard: Guard) -> None:
        self.kind, self.name, self.getter, self.cs = guard.kind, guard.field, guard.getter, guard.cs
        self.fields = guard.fields
        self.dates = guard.dates
        self.table: dict[Any, list[int]] = {}
        self.index: NeedleIndex | None = None
        # a case-insensitive regex's literal is only looked for in ASCII text (see regex_literal)
        self.ascii_only = guard.kind == "regex" and not guard.cs
        self.everyone: tuple[int, ...] = ()
        self.buckets: dict[int, list[int]] = {}  # range: `between` rules by unit
        self.lows: list[tuple[Any, int]] = []  # range: (bound, position) of `gte` rules
        self.highs: list[tuple[Any, int]] = []  # range: (bound, position) of `lte` rules
        self.filters: dict[int, tuple[str, Getter, frozenset[str]]] = {}  # position → ``also``
        self.sure: dict[int, tuple[Cond, ...]] = {}  # position → the leaves its offer proves

    def add(self, guard: Guard, position: int) -> None:
        if guard.sure:
            self.sure[position] = guard.sure
        if guard.also is not None:
            self.filters[position] = guard.also
        if self.kind == "range":
            if guard.op == "between":
                lo, hi = (_unit(b, self.dates) for b in guard.bound)
                for unit in range(lo, hi + 1):
                    self.buckets.setdefault(unit, []).append(position)
            elif guard.op == "gte":
                self.lows.append((guard.bound, position))
            else:
                self.highs.append((guard.bound, position))
            self.table.setdefault("", []).append(position)
            return
        keys = guard.values if self.kind == "equals" else (guard.needle,)
        for key in keys:
            self.table.setdefault(key, []).append(position)

    def seal(self) -> None:
        if self.kind not in ("equals", "range"):
            mode = "contains" if self.kind == "regex" else self.kind
            self.index = NeedleIndex(self.table, mode)
        self.lows.sort(key=lambda item: item[0])
        self.highs.sort(key=lambda item: item[0])
        self.low_bounds = [bound for bound, _p in self.lows]
        self.low_positions = [position for _b, position in self.lows]
        self.high_bounds = [bound for bound, _p in self.highs]
        self.high_positions = [position for _b, position in self.highs]
        self.everyone = tuple(sorted({i for ix in self.table.values() for i in ix}))
        lookup = self._lookup()
        filters = self.filters
        if filters:

            def filtered(facts: Facts) -> Iterable[int]:
                out = []
                for i in lookup(facts):
                    also = filters.get(i)
                    if also is None or facts.folded(also[0], also[1]) in also[2]:
                        out.append(i)
                return out

            self.lookup = filtered
        else:
            self.lookup = lookup

    def hits(self, facts: Facts) -> Iterable[int]:
        """Positions of the rules worth testing for ``facts`` (any order, no duplicates)."""
        return self.lookup(facts)

    def _lookup(self) -> Callable[[Facts], Iterable[int]]:
        """``hits`` specialized once per index: it runs for every transaction."""
        name, getter, table = self.name, self.getter, self.table
        fkey = "\0" + name
        missing = _MISSING
        if self.kind == "equals":
            if self.fields:
                fields = self.fields

                def composite(facts: Facts) -> Iterable[int]:
                    key = tuple(facts.folded(n, g) for n, g in fields)
                    return table.get(key) or ()

                return composite

            def equals(facts: Facts) -> Iterable[int]:
                value = facts._values.get(fkey, missing)
                if value is missing:
                    value = facts.folded(name, getter)
                return table.get(value) or ()  # type: ignore[arg-type]

            return equals
        if self.kind == "range":
            return self._range_hits
        assert self.index is not None
        needles = self.index.hits
        if self.ascii_only:
            everyone = self.everyone

            def ascii_regex(facts: Facts) -> Iterable[int]:
                text = facts.text(name, getter)
                if not text:
                    return ()
                if not text.isascii():
                    return everyone
                return needles(facts.folded(name, getter) or "")

            return ascii_regex
        if self.cs:

            def exact(facts: Facts) -> Iterable[int]:
                text = facts.text(name, getter)
                return needles(text) if text else ()

            return exact

        def folded(facts: Facts) -> Iterable[int]:
            text = facts._values.get(fkey, missing)
            if text is missing:
                text = facts.folded(name, getter)
            return needles(text) if text else ()  # type: ignore[arg-type]

        return folded

    def _range_hits(self, facts: Facts) -> Iterable[int]:
        return self.range_hits_of_raw(facts.get(self.name, self.getter))

    def range_hits_of_raw(self, raw: Any) -> Iterable[int]:
        """A range index's answer for the field's value as ``Facts.get`` gives it."""
        if self.dates:
            value = raw if isinstance(raw, datetime.date) else None
        else:
            value = _number(raw)
            if value is not None and not value.is_finite():
                return self.everyone  # the conditions themselves decide what NaN means
        if value is None:
            return ()
        found = self.buckets.get(value.toordinal() if self.dates else math.floor(value))
        if not self.lows and not self.highs:
            return found or ()
        out = list(found or ())
        if self.lows:  # bounds sorted: the rules whose low bound is at most the value
            out += self.low_positions[: bisect.bisect_right(self.low_bounds, value)]
        if self.highs:
            out += self.high_positions[bisect.bisect_left(self.high_bounds, value) :]
        return out


def build(rules: Sequence[Rule]) -> tuple[tuple[int, ...], tuple[GuardIndex, ...]]:
    """(positions of rules no index can file, the indexes) for rules in precedence order."""
    unguarded: list[int] = []
    indexes: dict[tuple[str, str, bool], GuardIndex] = {}
    counts: Counter[str] = Counter()
    for rule in rules:
        parts = rule.when.parts if rule.when.kind == "all" else (rule.when,)
        needed: set[str] = set()
        for p in parts:
            if p.kind == "leaf" and p.needle:
                needed.add(p.needle)
            if p.kind == "leaf" and p.op == "regex" and p.pattern is not None:
                needed.update(regex_literals(p.pattern))
        counts.update(needed)
    for position, rule in enumerate(rules):
        guard = guard_of(rule.when, counts)
        if guard is None:
            unguarded.append(position)
            continue
        key = (guard.kind, guard.field, guard.cs)
        found = indexes.get(key)
        if found is None:
            found = indexes[key] = GuardIndex(guard)
        found.add(guard, position)
    for index in indexes.values():
        index.seal()
    return tuple(unguarded), tuple(indexes.values())
