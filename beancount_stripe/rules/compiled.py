"""The rule indexes of one BT type compiled into one generated Python function.

``index.GuardIndex.lookup`` answers per index through a few layers of calls (the index, its
filter, ``Facts.folded``, ``Facts.text``, the field's getter); with a dozen indexes per type that
layering, not the lookups themselves, was most of the rules' cost per transaction. Here the
indexes of one candidate set become straight-line code: each field the indexes read is read once
into a local (and left in the ``Facts`` cache exactly as ``Facts.get/text/folded`` would leave
it, so the conditions tested next find it there), then each index is one dict lookup or one
scan. The answer is the same as ``_Candidates``'s reference ``order`` (tests/rules/test_index.py
and test_compiled.py compare the two).
"""

from __future__ import annotations

import datetime
import itertools
import linecache
import math
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from beancount_stripe import currency
from beancount_stripe.rules.fields import (
    BT_MONEY,
    CHARGE_PATH,
    CHARGE_TYPES,
    FIELDS,
    Facts,
    _scalar_text,
    charge_of,
)
from beancount_stripe.rules.fields import BT_TEXT as _BT_TEXT
from beancount_stripe.rules.index import MEMO_LIMIT, GuardIndex, NeedleIndex

Order = Callable[[Facts], Sequence[int]]


class _Fields:
    """The locals of the generated function: one per field and form (raw, text, folded)."""

    def __init__(self, env: dict[str, Any]) -> None:
        self.env = env
        self.lines: list[str] = []
        self.slots: dict[str, int] = {}
        self.forms: dict[tuple[int, str], str] = {}
        self.charge = False  # ``ch``: the charge behind the BT, read once

    def _slot(self, name: str, getter: Any) -> int:
        slot = self.slots.get(name)
        if slot is None:
            slot = self.slots[name] = len(self.slots)
            self.env[f"G{slot}"] = getter
            self.env[f"K{slot}"] = name
            self.env[f"FK{slot}"] = "\0" + name
            # raw: what ``Facts.get`` caches. Fields are pure functions of the transaction,
            # so each is computed here and stored (no check of the cache first: ``order`` runs
            # on a fresh ``Facts``, and were a value cached, it would be this same value)
            key = _BT_TEXT.get(name)
            if key is not None and getter is FIELDS[name][1]:  # the getter, inlined
                self.env[f"B{slot}"] = key
                self.lines.append(f"r{slot} = facts.bt.get(B{slot})")
                self.lines.append(
                    f"if type(r{slot}) is not str and not isinstance(r{slot}, str): r{slot} = None"
                )
                self.lines.append(f"V[K{slot}] = r{slot}")
            elif getattr(getter, CHARGE_PATH, None) is not None:
                self._charge_field(slot, *getattr(getter, CHARGE_PATH))
            elif getter is FIELDS["created"][1]:  # ``_created``, inlined
                self.lines.append(f"r{slot} = V[K{slot}] = facts.entry.date")
            elif getattr(getter, BT_MONEY, None) is not None:  # ``_bt_money``, inlined
                self.env[f"B{slot}"] = getattr(getter, BT_MONEY)
                self.env["money"], self.env["SCALE"] = _money, _SCALE
                self.env["Decimal"] = Decimal
                r = f"r{slot}"
                self.lines += [
                    f"{r} = facts.bt.get(B{slot})",
                    f"if type({r}) is int:",
                    "    c = facts.bt.get('currency')",
                    "    x = SCALE.get(c) if type(c) is str else None",
                    f"    {r} = Decimal({r}).scaleb(x) if x is not None else money({r}, c)",
                    f"else: {r} = None",
                    f"V[K{slot}] = {r}",
                ]
            else:
                self.lines.append(f"r{slot} = V[K{slot}] = G{slot}(facts)")
        return slot

    def _charge_field(
        self, slot: int, path: tuple[str, ...], words: bool, absent: str, chargeless: bool
    ) -> None:
        """A charge field read inline along its usual path (``fields._charge_path``)."""
        add = self.lines.append
        if not self.charge:  # ``fields._charge`` inlined for a dict source
            self.charge = True
            self.env["charge_of"] = charge_of
            self.env["CHARGE_TYPES"] = CHARGE_TYPES
            add("src = facts.bt.get('source')")
            add(
                "if type(src) is dict and (src.get('object') == 'charge' "
                "or facts.bt.get('type') in CHARGE_TYPES): ch = facts._charge = src"
            )
            add("else: ch = charge_of(facts)")
            add("chd = type(ch) is dict")
        r = f"r{slot}"
        add("p = ch if chd else None")
        for key in path[:-1]:
            add(f"p = p.get({key!r}) if type(p) is dict else None")
        add(f"{r} = p.get({path[-1]!r}) if type(p) is dict else None")
        if words:
            add(f"{r} = ' '.join({r}.split()) or None if type({r}) is str else None")
            add(
                f"if {r} is None{' and ch is not None' if chargeless else ''}: {r} = G{slot}(facts)"
            )
        else:
            # None without asking the getter when ``absent`` (or no charge) says so
            nocharge = " or ch is None" if chargeless else ""
            known = {
                "dict": f"(type(p) is dict{nocharge})",
                "source": "type(p) is dict and ch is src",
            }
            if absent in known:
                add(
                    f"if type({r}) is not str: {r} = None if {r} is None and {known[absent]} "
                    f"else G{slot}(facts)"
                )
            else:
                add(f"if type({r}) is not str: {r} = G{slot}(facts)")
        add(f"V[K{slot}] = {r}")

    def raw(self, name: str, getter: Any) -> str:
        return f"r{self._slot(name, getter)}"

    def text(self, name: str, getter: Any) -> str:
        slot = self._slot(name, getter)
        if (slot, "text") not in self.forms:
            self.forms[slot, "text"] = var = f"t{slot}"
            self.lines.append(
                f"{var} = r{slot} if r{slot} is None or type(r{slot}) is str "
                f"else scalar_text(r{slot})"
            )
        return self.forms[slot, "text"]

    def folded(self, name: str, getter: Any) -> str:
        slot = self._slot(name, getter)
        if (slot, "folded") not in self.forms:
            text = self.text(name, getter)
            self.forms[slot, "folded"] = var = f"f{slot}"
            # what ``Facts.folded`` caches
            self.lines.append(
                f"{var} = V[FK{slot}] = None if {text} is None else {text}.casefold()"
            )
        return self.forms[slot, "folded"]


def compile_order(unguarded: Sequence[int], guards: Sequence[GuardIndex]) -> Order:
    """``order(facts)``: positions of the rules worth testing, in precedence order."""
    env: dict[str, Any] = {"M": _MISSING, "scalar_text": _scalar_text}
    fields = _Fields(env)
    body: list[str] = []
    for k, guard in enumerate(guards):
        body += _guard_lines(k, guard, fields, env)
    env["U"] = list(unguarded)
    lines = ["def order(facts):", "    V = facts._values", "    picked = U.copy()"]
    lines += ["    " + line for line in fields.lines + body]
    lines += ["    picked.sort()", "    return picked"]
    source = "\n".join(lines) + "\n"
    namespace: dict[str, Any] = {}
    filename = f"<rules: compiled indexes {next(_SERIAL)}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), env, namespace)  # tracebacks show the source
    order: Order = namespace["order"]
    order.__doc__ = source  # what was generated, for debugging
    return order


_MISSING = object()
_SERIAL = itertools.count()
_SCALE: dict[str, int] = {}  # currency code → the ``scaleb`` of its minor unit (``_money``)


def _money(minor: int, code: Any) -> Decimal:
    """``currency.to_decimal`` (same value, same errors), remembering the code's scale so
    that the generated code converts the next amounts in that currency itself."""
    value = currency.to_decimal(minor, code)
    _SCALE[code] = -currency.exponent(code)
    return value


def _guard_lines(k: int, guard: GuardIndex, fields: _Fields, env: dict[str, Any]) -> list[str]:
    """The lines that add index ``k``'s positions for the transaction to ``picked``."""
    name, getter = guard.name, guard.getter
    out: list[str] = []
    if guard.kind == "equals":
        env[f"T{k}"] = guard.table
        if guard.fields:
            key = ", ".join(fields.folded(n, g) for n, g in guard.fields)
            out.append(f"h = T{k}.get(({key},))")
        else:
            out.append(f"h = T{k}.get({fields.folded(name, getter)})")
    elif guard.kind == "range":
        env[f"R{k}"] = guard.range_hits_of_raw
        raw = fields.raw(name, getter)
        if guard.lows or guard.highs:
            out.append(f"h = R{k}({raw})")
        else:  # buckets only: ``range_hits_of_raw``'s usual case inlined (None: no bucket)
            env["floor"], env["Decimal"], env["date"] = math.floor, Decimal, datetime.date
            buckets = f"BK{k}"
            env[buckets] = guard.buckets
            also = {(f, g) for f, g, _v in guard.filters.values()}
            if len(also) == 1:  # one filter field: the buckets its value lets through
                ((fname, fgetter),) = also
                filters = guard.filters

                def passing(value: str | None) -> dict[int, list[int]]:
                    out: dict[int, list[int]] = {}
                    for unit, positions in guard.buckets.items():
                        kept = [i for i in positions if i not in filters or value in filters[i][2]]
                        if kept:
                            out[unit] = kept
                    return out

                wanted = {v for _f, _g, values in filters.values() for v in values}
                env[f"PB{k}"] = {v: passing(v) for v in sorted(wanted)}
                env[f"DB{k}"] = passing(None)
                out.append(f"bk = PB{k}.get({fields.folded(fname, fgetter)}, DB{k})")
                buckets = "bk"
            if guard.dates:
                fast, unit = f"type({raw}) is date", f"{raw}.toordinal()"
            else:
                fast, unit = f"type({raw}) is Decimal and {raw}.is_finite()", f"floor({raw})"
            out.append(f"if {fast}: h = {buckets}.get({unit})")
            if buckets == "bk":  # the buckets were filtered; the general answer is not
                out.append("else:")
                out.append(f"    h = R{k}({raw})")
                out += ["    " + line for line in _filter_lines(k, guard, fields, env)]
                out.append("if h: picked += h")
                return out
            out.append(f"else: h = R{k}({raw})")
    elif _split_by_filter(k, guard, fields, env, out):
        out.append("if h: picked += h")
        return out
    else:
        assert guard.index is not None
        env[f"N{k}"], env[f"NM{k}"] = guard.index.scan, guard.index.memo
        env[f"E{k}"] = guard.everyone
        out += _needle_lines(guard, fields, f"N{k}", f"NM{k}", f"E{k}", "")
    out += _filter_lines(k, guard, fields, env)
    out.append("if h: picked += h")
    return out


def _filter_lines(k: int, guard: GuardIndex, fields: _Fields, env: dict[str, Any]) -> list[str]:
    """The lines that keep of index ``k``'s answer ``h`` the rules its ``also`` filters pass."""
    if not guard.filters:
        return []
    also = list(dict.fromkeys((f, g) for f, g, _v in guard.filters.values()))
    where = {f: j for j, (f, _g) in enumerate(also)}
    env[f"A{k}"] = {i: (where[f], values) for i, (f, _g, values) in guard.filters.items()}
    seen = ", ".join(fields.folded(f, g) for f, g in also)
    return [
        "if h:",
        f"    a = ({seen},)",
        f"    h = [i for i in h if (c := A{k}.get(i)) is None or a[c[0]] in c[1]]",
    ]


def _split_by_filter(
    k: int, guard: GuardIndex, fields: _Fields, env: dict[str, Any], out: list[str]
) -> bool:
    """A needle index whose rules also need one broad field (``currency: usd``): one needle
    index per value of that field, so a transaction scans only the needles of rules its value
    lets through and no filter runs afterwards. False when the filters are on several fields."""
    filters = guard.filters
    also = {(f, g) for f, g, _v in filters.values()}
    if not filters or len(also) != 1:
        return False
    ((fname, fgetter),) = also
    mode = "contains" if guard.kind == "regex" else guard.kind

    def passing(value: str | None) -> tuple[Any, tuple[int, ...], dict[str, Any] | None]:
        table: dict[str, list[int]] = {}
        for needle, positions in guard.table.items():
            kept = [i for i in positions if i not in filters or value in filters[i][2]]
            if kept:
                table[needle] = kept
        everyone = tuple(i for i in guard.everyone if i not in filters or value in filters[i][2])
        if not table:
            return None, everyone, None
        needles = NeedleIndex(table, mode)
        return needles.scan, everyone, needles.memo

    wanted = {v for _f, _g, values in filters.values() for v in values}
    env[f"P{k}"] = {v: passing(v) for v in sorted(wanted)}
    env[f"D{k}"] = passing(None)  # a value no filter lets through: the unfiltered rules only
    key = fields.folded(fname, fgetter)
    out.append(f"n, e, m = P{k}.get({key}, D{k})")
    out += _needle_lines(guard, fields, "n", "m", "e", " and n")
    return True


def _needle_lines(
    guard: GuardIndex, fields: _Fields, hits: str, memo: str, everyone: str, extra: str
) -> list[str]:
    """``h = NeedleIndex.hits(text)`` for a needle index, inlined: its memo is read and
    filled here (``hits`` is the scan): the texts of a history repeat, and a dict lookup is
    cheaper than a call."""
    name, getter = guard.name, guard.getter
    text = fields.text(name, getter)
    arg = text if guard.cs else fields.folded(name, getter)
    fields.env["MEMO_LIMIT"] = MEMO_LIMIT
    lookup = [
        f"h = {memo}.get({arg})",
        "if h is None:",
        f"    if len({memo}) >= MEMO_LIMIT: {memo}.clear()",
        f"    h = {memo}[{arg}] = {hits}({arg})",
    ]
    if guard.ascii_only:  # a case-insensitive regex literal: ASCII text only
        test = text
        lookup = [
            f"if {text}.isascii():",
            *("    " + line for line in lookup),
            f"else: h = {everyone}",
        ]
    else:
        test = arg
    return [f"if {test}{extra}:", *("    " + line for line in lookup), "else: h = ()"]
