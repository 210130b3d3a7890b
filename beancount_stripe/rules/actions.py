"""Compiling the actions of a rule (account, split, templates, tags, links, meta) and the
parties table; the base of the rules-file compiler."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Any

from beancount_stripe.config import (
    DEFAULT_ACCOUNTS,
    _account_reason,
    _did_you_mean,
    _join,
    _Report,
    _type_name,
)
from beancount_stripe.rules.fields import FIELDS, Getter, _number, field_spec
from beancount_stripe.rules.model import (
    _META_KEY_RE,
    _TEMPLATE_RE,
    _TOKEN_BAD,
    PARTY_KEYS,
    RESERVED_META,
    Leg,
    Party,
    Template,
)


class _Actions:
    """The compiler's half that reads actions and parties; problems go to ``report``."""

    def __init__(self, report: _Report, path: Path) -> None:
        self.report = report
        self.path = path
        self.file_label = str(path)

    def add(self, key_path: str, message: str, fix: str, rule: str | None = None) -> None:
        prefix = f"rule `{rule}`: " if rule else ""
        self.report.add(key_path, prefix + message, fix)

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
