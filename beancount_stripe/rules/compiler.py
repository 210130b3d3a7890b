"""Reading and validating rules files: every problem names file, line, key path and rule;
valid files compile (once per distinct content) into ``RuleFile``s."""

from __future__ import annotations

import datetime
import hashlib
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

from beancount_stripe.config import (
    InvalidConfigError,
    Problem,
    _did_you_mean,
    _join,
    _parse,
    _Report,
    _scan_literal_keys,
    _type_name,
)
from beancount_stripe.rules.actions import _Actions
from beancount_stripe.rules.conditions import (
    _INVALID,
    _all,
    _always,
    _any,
    _compare,
    _exists,
    _not,
    _one_of_ordered,
    _one_of_text,
    _regex,
    _sign,
    _text_op,
    _type_index,
)
from beancount_stripe.rules.fields import (
    ANY,
    DATE,
    FIELDS,
    NUMBER,
    TEXT,
    Getter,
    _number,
    _scalar_text,
    field_spec,
)
from beancount_stripe.rules.model import (
    _ORDER_OPS,
    _SIGNS,
    _TEXT_OPS,
    ACTION_KEYS,
    COMBINATORS,
    FILE_KEYS,
    FLAGS,
    OPERATORS,
    RULE_KEYS,
    Cond,
    Leg,
    Party,
    Rule,
    RuleFile,
    Template,
)

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


class _Compiler(_Actions):
    """Rules, conditions and whole files; actions and parties come from ``_Actions``."""

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


_FIX_RULE = "write each rule as `- name: …` with `when:` conditions and actions (account, payee, …)"
