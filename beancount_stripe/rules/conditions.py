"""Compiled conditions: each operator of the language becomes a closure over precompiled
values (regexes, casefolded needles, bounds) that tests one transaction's ``Facts``."""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable
from typing import Any

from beancount_stripe.rules.fields import DATE, Facts, Getter, _number
from beancount_stripe.rules.model import Cond, Pred

_MISSING = object()
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

    return Cond(
        f"{name} matches /{pattern.pattern}/", test, name, getter, op="regex", pattern=pattern
    )


def _text_op(name: str, getter: Getter, op: str, needle: str, cs: bool) -> Cond:
    verb = {"prefix": "starts with", "suffix": "ends with"}.get(op, op)
    text = f'{name} {verb} "{needle}"'
    if cs:
        if op == "contains":
            return Cond(
                text,
                lambda f: needle in (f.text(name, getter) or "\0"),
                name,
                getter,
                op=op,
                needle=needle,
                cs=True,
            )

        def test(f: Facts) -> bool:
            v = f.text(name, getter)
            if v is None:
                return False
            return v.startswith(needle) if op == "prefix" else v.endswith(needle)

        return Cond(text, test, name, getter, op=op, needle=needle, cs=True)
    folded = needle.casefold()
    fkey = "\0" + name
    if op == "contains":

        def contains(f: Facts) -> bool:
            v = f._values.get(fkey, _MISSING)
            if v is _MISSING:
                v = f.folded(name, getter)
            return v is not None and folded in v

        return Cond(text, contains, name, getter, op=op, needle=folded)

    def fold_test(f: Facts) -> bool:
        v = f.folded(name, getter)
        if v is None:
            return False
        return v.startswith(folded) if op == "prefix" else v.endswith(folded)

    return Cond(text, fold_test, name, getter, op=op, needle=folded)


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

        return Cond(text, between, name, getter, op=op, bound=bound, dates=kind == DATE)
    cmp: Callable[[Any, Any], bool] = {
        "gt": lambda a, b: a > b,
        "gte": lambda a, b: a >= b,
        "lt": lambda a, b: a < b,
        "lte": lambda a, b: a <= b,
    }[op]

    def test(f: Facts) -> bool:
        v = convert(f.get(name, getter))
        return v is not None and cmp(v, bound)

    shown = f"{name} {_OP_TEXT[op]} {bound}"
    return Cond(shown, test, name, getter, op=op, bound=bound, dates=kind == DATE)


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


def residual(when: Cond, rest: Pred | None, sure: tuple[Cond, ...]) -> Pred | None:
    """What is left to test of ``when`` for a rule offered by an index that proves the leaves
    ``sure`` (and, when the rule has a ``rest``, by the type index that proves its ``type``
    leaf); None when nothing is left. The leaves dropped are equalities and needles: they
    capture nothing, so the regex captures a template reads are the same."""
    if not sure:
        test = when.test if rest is None else rest
        return None if test is _always else test
    parts = when.parts if when.kind == "all" else (when,)
    drop = {id(p) for p in sure}
    if rest is not None:  # the leaf ``_type_index`` took
        for part in parts:
            if part.kind == "leaf" and part.field == "type" and part.values is not None:
                drop.add(id(part))
                break
    others = [p for p in parts if id(p) not in drop and p.test is not _always]
    if not others:
        return None
    return others[0].test if len(others) == 1 else _all(others).test
