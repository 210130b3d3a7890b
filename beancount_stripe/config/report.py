"""Reading the YAML while remembering lines, and reporting problems with file, line, key path
and the fix."""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from beancount_stripe.errors import ConfigError

TOP_LEVEL_KEYS = ("defaults", "clients", "rules")  # ``rules``: the shared rules file(s)


CLIENT_KEYS = (
    "id",
    "name",
    "stripe_account",
    "key",
    "ledger",
    "output",
    "archive",
    "timezone",
    "account_name",
    "operating_currency",
    "connect",
    "platform_account",
    "api_base",
    "accounts",
    "rules",
    "capital",
    "payouts",
    "booking",
    "rate_limit",
)


# Keys that make sense for many clients at once; per-client identity and files do not.
DEFAULTS_KEYS = (
    "timezone",
    "operating_currency",
    "api_base",
    "accounts",
    "key",
    "connect",
    "platform_account",
    "rate_limit",
)


REQUIRED_CLIENT_KEYS = ("id", "name", "stripe_account", "key", "ledger")


ACCOUNT_ROOTS = ("Assets", "Liabilities", "Equity", "Income", "Expenses")


DEFAULT_KEYRING_SERVICE = "beancount-stripe"


_ID_RE = re.compile(r"[a-z0-9][a-z0-9_-]*")


_STRIPE_ACCOUNT_RE = re.compile(r"acct_[A-Za-z0-9]+")


_ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


_COMPONENT_RE = re.compile(r"[\w-]+")


# A Stripe secret/restricted key as it would be pasted into a file.
LITERAL_KEY_RE = re.compile(r"(?:sk|rk)_(?:test|live)_[0-9A-Za-z]{6,}")


# What ``resolve_key`` accepts: secret or restricted keys (the simulator takes ``sk_test_x``).
_KEY_SHAPE_RE = re.compile(r"(?:sk|rk)_[0-9A-Za-z_]+")


_KEY_FIELD_RE = re.compile(r"(?:defaults|clients\[\d+\])\.key")  # validated `key:` fields


_KEY_PREFIX_RE = re.compile(r"(?:sk|rk|pk)_(?:test|live)_|(?:sk|rk|pk)_")


_FIX_MOVE_KEY = (
    "remove the key from this file and put it in an environment variable (`key: env:NAME`), "
    "a key file (`key: file:PATH`) or the keyring (`key: keyring`); roll the key in the Stripe "
    "Dashboard if this file was ever shared or committed"
)


@dataclass(frozen=True)
class Problem:
    """One configuration problem: where it is, what is wrong, and how to fix it."""

    file: str
    line: int | None
    key_path: str
    message: str
    fix: str
    severity: str = "error"  # "error" fails loading/checking; "warning" is only reported

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        path = f" {self.key_path}:" if self.key_path else ""
        label = "" if self.severity == "error" else f"{self.severity}: "
        return f"{where}:{path} {label}{self.message} (fix: {self.fix})"


class InvalidConfigError(ConfigError):
    """A ``ConfigError`` that also carries the individual problems (for callers and tests)."""

    def __init__(self, path: str, problems: list[Problem]) -> None:
        self.problems = tuple(problems)
        count = len(problems)
        noun = "problem" if count == 1 else "problems"
        lines = "\n".join(str(p) for p in problems)
        super().__init__(
            f"{count} {noun} in the configuration:\n{lines}",
            where=path,
            fix="correct each problem listed above, then run `beancount-stripe config check`",
        )


def mask_key(secret: str) -> str:
    """Show a key the way Stripe does: its prefix and at most the last 4 characters."""
    m = _KEY_PREFIX_RE.match(secret)
    prefix = m.group(0) if m else ""
    rest = secret[len(prefix) :]
    tail = rest[-4:] if len(rest) >= 12 else ""  # short strings: revealing 4 would reveal most
    return f"{prefix}…{tail}"


def _did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    matches = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return matches[0] if matches else None


def _type_name(value: object) -> str:
    if value is _BAD:
        return "an unreadable value"
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, int | float):
        return f"a number ({value})"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


class _Report:
    """Collects problems and knows the line of every key path of one file."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.lines: dict[str, int] = {}
        self.problems: list[Problem] = []
        self.key_reported: set[str] = set()  # `key:` paths whose literal key is already reported
        self.texts: dict[str, str] = {}  # key path → the scalar as written (exact decimals)

    def line(self, path: str) -> int | None:
        while True:
            if path in self.lines:
                return self.lines[path]
            if not path:
                return None
            cut = max(path.rfind("."), path.rfind("["))
            path = path[:cut] if cut > 0 else ""

    def add(
        self,
        path: str,
        message: str,
        fix: str,
        *,
        severity: str = "error",
        line: int | None = None,
    ) -> None:
        at = line if line is not None else self.line(path)
        self.problems.append(Problem(self.file, at, path, message, fix, severity))

    def sorted_problems(self) -> list[Problem]:
        seen: set[tuple[Any, ...]] = set()
        out = []
        for p in self.problems:
            k = (p.line, p.key_path, p.message, p.severity)
            if k not in seen:
                seen.add(k)
                out.append(p)
        # this file's problems first, then those of files it refers to (rules files)
        return sorted(out, key=lambda p: (p.file != self.file, p.file, p.line or 0, p.key_path))


_Scalar = tuple[str, int, int, str]  # (key path, first line, last line, text) of a scalar


class _Converter:
    def __init__(self, report: _Report) -> None:
        self.report = report
        self.constructor = yaml.constructor.SafeConstructor()
        self.active: set[int] = set()
        self.scalars: list[_Scalar] = []

    def convert(self, node: yaml.Node, path: str) -> Any:
        self.report.lines.setdefault(path, node.start_mark.line + 1)
        if id(node) in self.active:
            self.report.add(path, "recursive YAML alias", "remove the alias that refers to itself")
            return None
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, path)
            if isinstance(node, yaml.SequenceNode):
                return [self.convert(item, _join(path, i)) for i, item in enumerate(node.value)]
            span = (node.start_mark.line + 1, node.end_mark.line + 1)
            self.scalars.append((path, *span, str(node.value)))
            try:
                return self.constructor.construct_object(node, deep=True)
            except Exception as exc:  # e.g. `!!int abc` raises ValueError; never echo the value
                why = exc.problem if isinstance(exc, yaml.MarkedYAMLError) else None
                self.report.add(
                    path,
                    f"cannot read this value ({why or 'it does not fit its YAML tag'})",
                    "write a plain value without a `!tag`",
                )
                return _BAD
        finally:
            self.active.discard(id(node))

    def _mapping(self, node: yaml.MappingNode, path: str) -> dict[str, Any]:
        try:
            self.constructor.flatten_mapping(node)  # resolve `<<: *anchor` merges in place
        except yaml.YAMLError:
            self.report.add(path, "invalid merge key `<<`", "merge only mappings with `<<: *name`")
        out: dict[str, Any] = {}
        first_line: dict[str, int] = {}
        for knode, vnode in node.value:
            line = knode.start_mark.line + 1
            if not isinstance(knode, yaml.ScalarNode):
                self.report.add(path, "a key must be a plain name", "use `name: value`", line=line)
                continue
            key = str(knode.value)
            child = _join(path, key)
            self.scalars.append((child, line, knode.end_mark.line + 1, key))
            if key in out:
                self.report.add(
                    child,
                    f"duplicate key `{key}` (first given on line {first_line[key]})",
                    "keep only one of them; YAML would silently use the last",
                    line=line,
                )
                continue
            first_line[key] = line
            self.report.lines[child] = line
            out[key] = self.convert(vnode, child)
        return out


def _parse(path: Path, report: _Report) -> tuple[Any, list[_Scalar], str]:
    """Read and compose the file. Returns (data, scalars, text); data is None on failure."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        report.add(
            "",
            "configuration file not found",
            "create it (copy config/clients.yaml from the project) or pass the right path",
        )
        return None, [], ""
    except UnicodeDecodeError as exc:
        report.add("", f"not UTF-8 text ({exc.reason})", "save the file as UTF-8", line=1)
        return None, [], ""
    except OSError as exc:
        report.add("", f"cannot read the file: {exc.strerror}", "check the path and permissions")
        return None, [], ""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or "invalid YAML"
        context = f" ({exc.context})" if exc.context else ""
        report.add(
            "",
            f"malformed YAML: {problem}{context}",
            "check indentation (spaces, not tabs), colons and quotes here and on the line above",
            line=line,
        )
        return None, [], text
    except yaml.YAMLError as exc:
        report.add("", f"malformed YAML ({type(exc).__name__})", "check the YAML syntax", line=1)
        return None, [], text
    if root is None:
        report.add(
            "",
            "the configuration file is empty",
            "add a `clients:` list (see config/clients.yaml for an example)",
            line=1,
        )
        return None, [], text
    conv = _Converter(report)
    return conv.convert(root, ""), conv.scalars, text


_BAD = object()  # marks a present-but-invalid field (so defaults don't silently fill it in)


def _resolve_path(base: Path, p: Path) -> Path:
    p = p.expanduser()
    return Path(os.path.normpath(p if p.is_absolute() else base / p))
