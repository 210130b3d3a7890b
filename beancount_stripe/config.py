"""YAML → validated, typed client configs.

The dataclasses below are the contract every other module uses. ``load_config`` validates the YAML
and reports each problem with file, line, key path and the fix (see ``ConfigError``).
"""

from __future__ import annotations

import datetime
import difflib
import os
import re
import stat
import urllib.parse
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from beancount.core import account as bc_account

from beancount_stripe.account_roots import root_problem
from beancount_stripe.errors import ConfigError, KeySourceError

# Every account of the booking model, with its default. ``{client}`` is replaced by the client's
# ``account_name`` (CamelCase of the id unless set), so one ``defaults`` block serves all clients.
DEFAULT_ACCOUNTS: dict[str, str] = {
    "clearing": "Assets:{client}:Stripe",
    "fees": "Expenses:{client}:Stripe:Fees",
    "fee_tax": "",  # optional: tax on Stripe fees; empty means "book it with the fees"
    "revenue": "Income:{client}:Sales",
    "refunds": "Income:{client}:Refunds",
    "disputes": "Expenses:{client}:Stripe:Disputes",
    "adjustments": "Expenses:{client}:Stripe:Adjustments",
    "transit": "Assets:{client}:Transfers:Stripe",
    "platform_revenue": "Income:{client}:Platform-Fees",
    "connect_transfers": "Expenses:{client}:Connect:Transfers",
    "reserve": "Assets:{client}:Reserves:Stripe",
    "capital_loan": "Liabilities:{client}:Stripe-Capital",
    "uncategorized": "Expenses:{client}:Uncategorized",
    # Stripe Capital's flat financing fee, as each paydown repays part of it (capital.py).
    "capital_fees": "Expenses:{client}:Stripe-Capital:Fees",
}


@dataclass(frozen=True)
class Accounts:
    """The accounts of the booking model for one client (``{client}`` already substituted)."""

    clearing: str
    fees: str
    revenue: str
    refunds: str
    disputes: str
    adjustments: str
    transit: str
    platform_revenue: str
    connect_transfers: str
    reserve: str
    capital_loan: str
    uncategorized: str
    fee_tax: str | None = None
    capital_fees: str = "Expenses:Client:Stripe-Capital:Fees"


@dataclass(frozen=True)
class KeySource:
    """Where a client's API key comes from. Never holds the key itself.

    kind is ``env`` (ref = variable name), ``file`` (ref = path, relative to the config file) or
    ``keyring`` (ref = "service/username", default service ``beancount-stripe`` and the client id).
    """

    kind: str
    ref: str

    def describe(self) -> str:
        return f"{self.kind}:{self.ref}"


# What a column of a Capital CSV can mean (capital.py); ``capital.columns`` maps headers to these.
CAPITAL_FIELDS: tuple[str, ...] = (
    "id",  # txn_… (balance transaction) or cptxn_… (financing transaction), told apart by prefix
    "type",  # financing_paydown … (balance transactions) or payment/payout/reversal (financing)
    "reason",
    "created",  # local time in `capital.timezone` (default: the client's time zone)
    "created_utc",  # UTC, or Unix seconds
    "amount",  # signed effect on the Stripe balance, major units (`gross`, `Amount`)
    "net",
    "stripe_fee",  # Stripe's processing fee column (`fee`, `Fee`): zero for Capital rows
    "advance_amount",  # principal part (financing transactions)
    "fee_amount",  # financing-fee part
    "total_amount",  # advance + fee
    "currency",
    "description",
    "source",  # the balance transaction's source (`Source`, `source_id`)
    "loan",  # loan or financing offer id (`financing_offer`, `loan_id`)
    "reversed_transaction",
    "remaining_amount",  # what is left to repay after this row (advance + fee)
    "remaining_principal",  # principal left after this row
    "ignore",
)


@dataclass(frozen=True)
class LoanConfig:
    """One Stripe Capital financing: its ids, currency, advance and flat fee (major units)."""

    id: str  # flxln_… or financingoffer_…: what the exports call the loan
    currency: str  # upper-case ISO code
    advance: Decimal  # principal paid out
    fee: Decimal  # the flat financing fee, repaid over the life of the loan
    aliases: tuple[str, ...] = ()  # other ids the exports use for the same loan

    @property
    def ids(self) -> tuple[str, ...]:
        return (self.id, *self.aliases)


@dataclass(frozen=True)
class PayoutsConfig:
    """How a client's bank lines are matched to its payouts (reconcile.py)."""

    lag_days: int = 3  # business days a bank may post a payout after its arrival date
    bank_accounts: tuple[str, ...] = ()  # accounts of the client's bank importers; () = any
    holidays: tuple[datetime.date, ...] = ()  # bank holidays: not business days


@dataclass(frozen=True)
class CapitalConfig:
    """A client's Stripe Capital: its loans and how to read its CSV exports."""

    loans: tuple[LoanConfig, ...]
    output: Path  # file ``capital import`` appends to (included by the ledger)
    timezone: str | None = None  # zone of local-time CSV columns; None: the client's
    columns: tuple[tuple[str, str], ...] = ()  # (CSV header, field in CAPITAL_FIELDS)


@dataclass(frozen=True)
class ClientConfig:
    """One client: its Stripe account, key source, ledger and booking accounts."""

    id: str
    name: str
    stripe_account: str  # the acct_… the key must open (the connected account in Connect mode)
    key: KeySource
    ledger: Path  # main ledger file (bean-check / Fava target); created if missing
    output: Path  # file sync appends entries to (included by ``ledger``)
    archive_dir: Path  # raw JSON Lines archive of fetched balance transactions
    timezone: str = "UTC"
    accounts: Accounts = field(default_factory=lambda: Accounts(**_substituted("Client")))
    connect: bool = False  # True: ``key`` is the platform's key, sent with Stripe-Account
    platform_account: str | None = None  # optional: verify the platform key opens this account
    api_base: str | None = None  # override https://api.stripe.com (the simulator, in tests/demo)
    operating_currency: str | None = None
    source_file: Path | None = None  # config file the client was defined in
    source_line: int | None = None
    account_name: str | None = None  # what `{client}` stands for in account names
    rules: tuple[Path, ...] = ()  # the client's own rules files (tried first)
    shared_rules: tuple[Path, ...] = ()  # the top-level `rules:` files (tried after the client's)
    capital: CapitalConfig | None = None  # Stripe Capital loans (capital.py), if any
    payouts: PayoutsConfig = field(default_factory=PayoutsConfig)  # bank matching (reconcile)
    archive_keep: str = "minimal"  # `archive: {keep: full}`: store expanded sources whole
    rate_limit: float | None = None  # requests/s to Stripe; None: by the key's mode (sync.py)


@dataclass(frozen=True)
class Config:
    """A whole configuration file."""

    path: Path
    clients: tuple[ClientConfig, ...]

    def client(self, client_id: str) -> ClientConfig:
        for c in self.clients:
            if c.id == client_id:
                return c
        known = ", ".join(c.id for c in self.clients) or "none"
        from beancount_stripe.errors import ConfigError

        raise ConfigError(
            f"no client {client_id!r} in the configuration (known: {known})",
            where=str(self.path),
            fix="use one of the known ids, or add the client under `clients:`",
        )


def zone(name: str, client_id: str) -> ZoneInfo:
    """``ZoneInfo(name)``, or a ConfigError naming the client and the fix."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        from beancount_stripe.errors import ConfigError

        raise ConfigError(
            f"unknown time zone {name!r}",
            where=f"client {client_id}",
            fix="use an IANA name such as UTC, Europe/Berlin or America/New_York",
        ) from None


def camel_case(client_id: str) -> str:
    """Turn ``acme-corp`` / ``acme_corp`` into ``AcmeCorp`` for use in account names."""
    parts = [p for p in client_id.replace("_", "-").split("-") if p]
    return "".join(p[:1].upper() + p[1:] for p in parts)


def _substituted(account_name: str, overrides: dict[str, str] | None = None) -> dict[str, str]:
    merged = {**DEFAULT_ACCOUNTS, **(overrides or {})}
    out = {k: v.replace("{client}", account_name) for k, v in merged.items()}
    out["fee_tax"] = out["fee_tax"] or None  # type: ignore[assignment]
    return out


def make_accounts(account_name: str, overrides: dict[str, str] | None = None) -> Accounts:
    """Accounts for a client: defaults, then ``overrides``, with ``{client}`` substituted."""
    return Accounts(**_substituted(account_name, overrides))  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Loading and validation
# ---------------------------------------------------------------------------------------------
#
# The YAML is composed into nodes (not loaded) so every value keeps the line it came from; the
# nodes are then turned into plain Python values plus a ``key path → line`` table, and every
# check below reports through ``_Report`` so one run lists *all* problems, not just the first.


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


# -- YAML nodes → Python values, remembering lines ---------------------------------------------


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


# -- field checks -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _KeySpec:
    """A parsed ``key:`` value; ``keyring`` without a ref gets the client id later."""

    kind: str
    ref: str | None


def _account_reason(name: str) -> str | None:
    """Why ``name`` is not a valid Beancount account name, or None when it is."""
    if "{" in name or "}" in name:
        return "only the `{client}` placeholder is substituted"
    parts = name.split(":")
    if parts[0] not in ACCOUNT_ROOTS:
        hint = _did_you_mean(parts[0], ACCOUNT_ROOTS)
        extra = f" (did you mean `{hint}`?)" if hint else ""
        return f"it must start with one of {', '.join(ACCOUNT_ROOTS)}{extra}"
    if len(parts) < 2:
        return "it needs at least one component after the root, e.g. `Assets:Stripe`"
    for comp in parts[1:]:
        if not comp:
            return "it has an empty component (`::` or a trailing `:`)"
        if not (comp[0].isupper() or comp[0].isdigit()):
            return f"component `{comp}` must start with an upper-case letter or a digit"
        if not _COMPONENT_RE.fullmatch(comp) or "_" in comp:
            return f"component `{comp}` may contain only letters, digits and `-`"
    if not bc_account.is_valid(name):
        return "it is not a valid Beancount account name"
    return None


def _currency_known(code: str) -> bool:
    try:
        from beancount_stripe import currency
    except ImportError:  # the currency module is optional for config validation
        return True
    return bool(currency.is_known(code))


def _is_str(report: _Report, path: str, value: Any, what: str, fix: str) -> bool:
    if isinstance(value, str) and value.strip():
        return True
    if isinstance(value, str) or value is None:
        report.add(path, f"{what} is empty", fix)
    else:
        quote = " (quote it if it is meant as text)" if isinstance(value, bool | int) else ""
        report.add(path, f"{what} must be a string, not {_type_name(value)}{quote}", fix)
    return False


def _check_key_source(report: _Report, path: str, value: Any, client_id: str | None) -> Any:
    fix = "use `env:NAME`, `file:PATH`, `keyring` or `keyring:SERVICE/USERNAME`"
    if not isinstance(value, str) or not value.strip():
        _is_str(report, path, value, "`key`", fix)
        return None
    if re.fullmatch(r"[A-Z_][A-Z0-9_]*", value):  # a bare variable name: `env:` forgotten
        report.add(path, f"`{value}` is not a key source", f"write `key: env:{value}`")
        return None
    if LITERAL_KEY_RE.search(value) or (":" not in value and value != "keyring"):
        # Looks like the key itself rather than where to find it. Never echo it.
        report.key_reported.add(path)
        env = f"{(client_id or 'client').upper().replace('-', '_')}_STRIPE_KEY"
        report.add(
            path,
            f"`key` must say where the API key is, not contain it (found {mask_key(value)})",
            f"{_FIX_MOVE_KEY}; e.g. `key: env:{env}`",
        )
        return None
    if value == "keyring":
        return _KeySpec("keyring", None)
    scheme, _, ref = value.partition(":")
    if scheme == "env":
        if not ref:
            report.add(
                path, "`env:` needs a variable name", "write e.g. `key: env:ACME_STRIPE_KEY`"
            )
            return None
        if not _ENV_NAME_RE.fullmatch(ref):
            report.add(
                path,
                f"`{ref}` is not a valid environment variable name",
                "use letters, digits and `_`, not starting with a digit, e.g. `ACME_STRIPE_KEY`",
            )
            return None
        return _KeySpec("env", ref)
    if scheme == "file":
        if not ref.strip():
            report.add(path, "`file:` needs a path", "write e.g. `key: file:~/.stripe/acme.key`")
            return None
        return _KeySpec("file", ref)
    if scheme == "keyring":
        service, slash, user = ref.partition("/")
        if not (service and slash and user):
            report.add(
                path,
                f"`keyring:{ref}` must be `keyring:SERVICE/USERNAME`",
                "write e.g. `keyring:beancount-stripe/acme`, or just `keyring`",
            )
            return None
        return _KeySpec("keyring", ref)
    hint = _did_you_mean(scheme.lower(), ("env", "file", "keyring"))
    shown = scheme if re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]{0,20}", scheme) else "…"
    report.add(
        path,
        f"unknown key source `{shown}:`" + (f" (did you mean `{hint}:`?)" if hint else ""),
        fix,
    )
    return None


_BAD = object()  # marks a present-but-invalid field (so defaults don't silently fill it in)


def _check_field(report: _Report, key: str, value: Any, path: str, client_id: str | None) -> Any:
    """Validate one field; return its normalized value or ``_BAD``."""
    if value is _BAD:  # unreadable YAML value, already reported
        return _BAD
    if key == "id":
        fix = "use lower-case letters, digits, `-` and `_`, starting with a letter or digit"
        if not _is_str(report, path, value, "`id`", fix):
            return _BAD
        if not _ID_RE.fullmatch(value):
            slug = re.sub(r"[^a-z0-9_-]+", "-", value.lower()).strip("-_")
            suggestion = f", e.g. `{slug}`" if slug and _ID_RE.fullmatch(slug) else ""
            report.add(path, f"`{value}` is not a valid client id", fix + suggestion)
            return _BAD
        return value
    if key == "name":
        fix = "give the client's display name, e.g. `name: Acme Coffee Roasters`"
        return value.strip() if _is_str(report, path, value, "`name`", fix) else _BAD
    if key in ("stripe_account", "platform_account"):
        fix = (
            "copy the account id (it starts with `acct_`) from the Stripe Dashboard's "
            "account settings"
        )
        if not _is_str(report, path, value, f"`{key}`", fix):
            return _BAD
        if not _STRIPE_ACCOUNT_RE.fullmatch(value):
            report.add(path, f"`{value}` is not a Stripe account id", fix)
            return _BAD
        return value
    if key == "key":
        spec = _check_key_source(report, path, value, client_id)
        return _BAD if spec is None else spec
    if key == "archive" and isinstance(value, dict):
        return _check_archive(report, path, value)
    if key in ("ledger", "output", "archive"):
        fix = "give a path (relative to this configuration file)"
        return Path(value.strip()) if _is_str(report, path, value, f"`{key}`", fix) else _BAD
    if key == "timezone":
        fix = "use an IANA time zone name such as `UTC`, `America/New_York` or `Asia/Tokyo`"
        if not _is_str(report, path, value, "`timezone`", fix):
            return _BAD
        try:
            zoneinfo.ZoneInfo(value)
        except (ValueError, KeyError, OSError):
            hint = _did_you_mean(value, sorted(zoneinfo.available_timezones()))
            report.add(
                path,
                f"unknown time zone `{value}`",
                f"did you mean `{hint}`?" if hint else fix,
            )
            return _BAD
        return value
    if key == "account_name":
        fix = "use CamelCase like `AcmeCoffee` (letters, digits, `-`; start upper-case or digit)"
        if not _is_str(report, path, value, "`account_name`", fix):
            return _BAD
        reason = _account_reason(f"Assets:{value}")
        if reason:
            report.add(path, f"`{value}` cannot be used inside account names: {reason}", fix)
            return _BAD
        return value
    if key == "operating_currency":
        fix = "use an upper-case ISO 4217 code such as `USD`, `EUR`, `JPY`"
        if not _is_str(report, path, value, "`operating_currency`", fix):
            return _BAD
        if not re.fullmatch(r"[A-Z]{3}", value) or not _currency_known(value):
            up = value.upper()
            hint = f"write `{up}`" if up != value and _currency_known(up) else fix
            report.add(path, f"unknown currency `{value}`", hint)
            return _BAD
        return value
    if key == "connect":
        if not isinstance(value, bool):
            report.add(
                path,
                f"`connect` must be true or false, not {_type_name(value)}",
                "write `connect: true` or `connect: false` (without quotes)",
            )
            return _BAD
        return value
    if key == "api_base":
        if value is None:
            return None
        fix = "use an http(s) URL such as `http://127.0.0.1:12111`, or remove the key"
        if not _is_str(report, path, value, "`api_base`", fix):
            return _BAD
        parsed = urllib.parse.urlparse(value)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            report.add(path, f"`{value}` is not an http(s) URL", fix)
            return _BAD
        return value.rstrip("/")
    if key == "rate_limit":
        ok = isinstance(value, int | float) and not isinstance(value, bool) and 0 < value <= 1000
        if not ok:
            report.add(
                path,
                f"`rate_limit` must be a number of requests per second, not {value!r}",
                "write e.g. `rate_limit: 20`, or remove it to follow Stripe's limit for the key",
            )
            return _BAD
        return float(value)
    if key == "accounts":
        return _check_accounts(report, path, value)
    if key == "rules":
        return _check_rules_paths(report, path, value)
    if key == "capital":
        return _check_capital(report, path, value)
    if key == "payouts":
        return _check_payouts(report, path, value)
    raise AssertionError(key)  # pragma: no cover - callers only pass known keys


def _check_accounts(report: _Report, path: str, value: Any) -> Any:
    if value is None:
        return {}
    if not isinstance(value, dict):
        report.add(
            path,
            f"`accounts` must be a mapping, not {_type_name(value)}",
            "write `accounts: {revenue: Income:Acme:Sales}` or one `key: Account` per line",
        )
        return _BAD
    out: dict[str, tuple[str, str]] = {}  # key → (template, path)
    for key, name in value.items():
        sub = _join(path, key)
        if key not in DEFAULT_ACCOUNTS:
            hint = _did_you_mean(key, tuple(DEFAULT_ACCOUNTS))
            report.add(
                sub,
                f"unknown account key `{key}`",
                f"did you mean `{hint}`?" if hint else f"use one of: {', '.join(DEFAULT_ACCOUNTS)}",
            )
            continue
        if name is _BAD:
            continue
        if key == "fee_tax" and (name is None or name == ""):
            out[key] = ("", sub)
            continue
        fix = "write a Beancount account such as `Income:{client}:Sales`"
        if not _is_str(report, sub, name, f"account `{key}`", fix):
            continue
        reason = _account_reason(name.replace("{client}", "Client"))
        if reason:
            report.add(sub, f"`{name}` is not a valid Beancount account name: {reason}", fix)
            continue
        wrong_root = root_problem(key, name, DEFAULT_ACCOUNTS.get(key))
        if wrong_root:
            report.add(sub, *wrong_root)
            continue
        out[key] = (name, sub)
    return out


def _check_mapping_keys(
    report: _Report, data: dict[str, Any], path: str, allowed: tuple[str, ...], where: str
) -> None:
    for key in data:
        if key in allowed:
            continue
        sub = _join(path, key)
        if where == "defaults" and key in CLIENT_KEYS:
            report.add(
                sub,
                f"`{key}` cannot be shared in `defaults`",
                f"move `{key}` into each client under `clients:`",
            )
            continue
        hint = _did_you_mean(key, allowed)
        report.add(
            sub,
            f"unknown key `{key}` in {where}",
            f"did you mean `{hint}`?" if hint else f"remove it; allowed keys: {', '.join(allowed)}",
        )


def _scan_literal_keys(report: _Report, scalars: list[_Scalar], text: str) -> None:
    """Flag any Stripe secret pasted into the file: in values, keys, or comments.

    Runs after the field checks so a `key:` field already reported is not reported twice.
    """
    covered: set[tuple[int, str]] = set()  # (line, secret) already reported or covered by a value
    for path, first, last, value in scalars:
        skip = path in report.key_reported
        for m in LITERAL_KEY_RE.finditer(value):
            covered.update((n, m.group(0)) for n in range(first, last + 1))
            if not skip:
                report.add(
                    path,
                    f"a Stripe API key is written in the configuration ({mask_key(m.group(0))})",
                    _FIX_MOVE_KEY,
                    line=first,
                )
    for lineno, line_text in enumerate(text.splitlines(), start=1):
        for m in LITERAL_KEY_RE.finditer(line_text):
            if (lineno, m.group(0)) in covered:
                continue
            report.add(
                "",
                f"a Stripe API key is written in the file ({mask_key(m.group(0))})",
                _FIX_MOVE_KEY,
                line=lineno,
            )


# -- assembling clients -------------------------------------------------------------------------


@dataclass
class _Built:
    clients: list[ClientConfig]
    keys: list[tuple[str, KeySource, str]]  # (client id, source, key path) for check_config
    shared_rules: tuple[Path, ...] = ()  # top-level `rules:` files, resolved
    rules_files: dict[Path, str] = field(default_factory=dict)  # rules file → key path naming it


@dataclass
class _Partial:
    client: ClientConfig | None  # None when the client has problems
    id: str | None
    output: Path | None
    archive: Path | None
    capital_output: Path | None = None


def _resolve_path(base: Path, p: Path) -> Path:
    p = p.expanduser()
    return Path(os.path.normpath(p if p.is_absolute() else base / p))


def _build(report: _Report, config_path: Path, data: Any) -> _Built:
    built = _Built([], [])
    if data is None:
        return built
    if not isinstance(data, dict):
        report.add(
            "",
            f"the top level must be a mapping with `clients:`, not {_type_name(data)}",
            "start the file with `clients:` followed by a list of clients",
        )
        return built
    _check_mapping_keys(report, data, "", TOP_LEVEL_KEYS, "the top level")
    if "rules" in data:
        shared = _check_field(report, "rules", data["rules"], "rules", None)
        if shared is not _BAD:
            built.shared_rules = _rules_files(report, config_path, shared, "rules", built)

    defaults: dict[str, tuple[Any, str]] = {}
    raw_defaults = data.get("defaults")
    if raw_defaults is not None and not isinstance(raw_defaults, dict):
        report.add(
            "defaults",
            f"`defaults` must be a mapping, not {_type_name(raw_defaults)}",
            "indent `timezone:`, `accounts:` … under `defaults:`",
        )
    elif isinstance(raw_defaults, dict):
        _check_mapping_keys(report, raw_defaults, "defaults", DEFAULTS_KEYS, "defaults")
        for key in DEFAULTS_KEYS:
            if key in raw_defaults:
                sub = _join("defaults", key)
                defaults[key] = (_check_field(report, key, raw_defaults[key], sub, None), sub)

    if "clients" not in data:
        hint = next((k for k in data if _did_you_mean(k, ("clients",))), None)
        if hint is None:  # a near-miss key was already reported with its suggestion
            report.add(
                "",
                "no `clients:` list",
                "add `clients:` with one entry per Stripe account (see config/clients.yaml)",
                line=1,
            )
        return built
    clients = data["clients"]
    if not isinstance(clients, list):
        report.add(
            "clients",
            f"`clients` must be a list, not {_type_name(clients)}",
            "start each client with `- id: …` under `clients:`",
        )
        return built
    if not clients:
        report.add("clients", "`clients` is empty", "add at least one client (`- id: …`)")
        return built

    base = config_path.absolute().parent
    seen_ids: dict[str, str] = {}
    seen_output: dict[Path, str] = {}
    seen_archive: dict[Path, str] = {}
    for index, raw in enumerate(clients):
        cpath = _join("clients", index)
        if not isinstance(raw, dict):
            report.add(
                cpath,
                f"each client must be a mapping of keys, not {_type_name(raw)}",
                "write the client as `- id: …` followed by indented `name:`, `key:` … lines",
            )
            continue
        part = _build_client(report, base, config_path, raw, cpath, defaults, built)
        if part.id is not None:
            if part.id in seen_ids:
                first = seen_ids[part.id]
                report.add(
                    _join(cpath, "id"),
                    f"duplicate client id `{part.id}` (also used by {first} on line "
                    f"{report.line(_join(first, 'id'))})",
                    "give every client a unique id",
                )
            else:
                seen_ids[part.id] = cpath
        for key, target, seen, label in (
            ("output", part.output, seen_output, "output file"),
            ("archive", part.archive, seen_archive, "archive directory"),
            ("capital", part.capital_output, seen_output, "output file (of `capital`)"),
        ):
            if target is None:
                continue
            target = target.resolve()
            explicit = key in raw
            if target in seen:
                other = seen[target]
                report.add(
                    _join(cpath, key) if explicit else _join(cpath, "ledger"),
                    f"same {label} as {other}: {target}",
                    f"give each client its own `{key}:`"
                    + ("" if explicit else " (by default it lies beside `ledger`)"),
                )
            else:
                at = report.line(_join(cpath, key) if explicit else _join(cpath, "ledger"))
                name = f" `{part.id}`" if part.id else ""
                seen[target] = f"{cpath}{name} (line {at})"
        if part.client is not None:
            built.clients.append(part.client)
    return built


def _build_client(
    report: _Report,
    base: Path,
    config_path: Path,
    raw: dict[str, Any],
    cpath: str,
    defaults: dict[str, tuple[Any, str]],
    built: _Built,
) -> _Partial:
    """Validate one client; the partial result feeds the cross-client checks even if invalid."""
    _check_mapping_keys(report, raw, cpath, CLIENT_KEYS, "a client")
    raw_id = raw.get("id")
    cid = raw_id if isinstance(raw_id, str) and _ID_RE.fullmatch(raw_id) else None
    vals: dict[str, tuple[Any, str]] = dict(defaults)
    for key in CLIENT_KEYS:
        if key in raw:
            sub = _join(cpath, key)
            vals[key] = (_check_field(report, key, raw[key], sub, cid), sub)
    ok = True
    for key in REQUIRED_CLIENT_KEYS:
        if key not in vals:
            example = {
                "id": "acme",
                "name": "Acme Coffee Roasters",
                "stripe_account": "acct_…",
                "key": "env:ACME_STRIPE_KEY",
                "ledger": "ledgers/acme/ledger.beancount",
            }[key]
            report.add(
                _join(cpath, key),
                f"missing required key `{key}`",
                f"add `{key}: {example}` to this client",
                line=report.line(cpath),
            )
            ok = False
    if any(v is _BAD for v, _ in vals.values()):
        ok = False

    connect = vals.get("connect", (False, ""))[0]
    if "platform_account" in vals and connect is not True and connect is not _BAD:
        report.add(
            vals["platform_account"][1],
            "`platform_account` is only used with `connect: true`"
            + (f" (client `{cid}`)" if vals["platform_account"][1].startswith("defaults") else ""),
            "add `connect: true` if the key is the platform's key, otherwise remove "
            "`platform_account`",
        )
        ok = False
    if (
        connect is True
        and "platform_account" in vals
        and vals["platform_account"][0] == vals.get("stripe_account", (None, ""))[0]
    ):
        report.add(
            vals["platform_account"][1],
            "`platform_account` equals `stripe_account`",
            "set `stripe_account` to the connected account and `platform_account` to the "
            "platform's own account",
        )
        ok = False

    key_source: KeySource | None = None
    spec = vals.get("key", (None, ""))[0]
    if isinstance(spec, _KeySpec):
        if spec.kind == "file":
            assert spec.ref is not None
            key_source = KeySource("file", str(_resolve_path(base, Path(spec.ref))))
        elif spec.kind == "keyring" and spec.ref is None:
            if cid is not None:
                key_source = KeySource("keyring", f"{DEFAULT_KEYRING_SERVICE}/{cid}")
        else:
            key_source = KeySource(spec.kind, spec.ref or "")
        if key_source is not None and cid is not None:
            built.keys.append((cid, key_source, vals["key"][1]))

    ledger = _resolve_path(base, vals["ledger"][0]) if _ok(vals, "ledger") else None
    paths: dict[str, Path | None] = {}
    archive_keep = "minimal"
    if _ok(vals, "archive") and isinstance(vals["archive"][0], _ArchiveSpec):
        spec_a = vals["archive"][0]
        archive_keep = spec_a.keep
        if spec_a.path is None:
            vals.pop("archive")
        else:
            vals["archive"] = (spec_a.path, vals["archive"][1])
    for key, default in (("output", "stripe.beancount"), ("archive", "archive")):
        if key in vals:  # only clients set these (not allowed in defaults)
            paths[key] = _resolve_path(base, vals[key][0]) if _ok(vals, key) else None
        else:
            paths[key] = ledger.parent / default if ledger else None
    output, archive = paths["output"], paths["archive"]

    if not ok or cid is None or key_source is None or not ledger or not output or not archive:
        return _Partial(None, cid, output, archive)

    account_name = vals.get("account_name", (camel_case(cid), ""))[0]
    overrides: dict[str, str] = {}
    if "accounts" in defaults:
        overrides.update({k: t for k, (t, _) in defaults["accounts"][0].items()})
    if "accounts" in raw:
        overrides.update({k: t for k, (t, _) in vals["accounts"][0].items()})
    accounts = make_accounts(account_name, overrides)
    clearing = accounts.clearing + ":"
    for field_name, acc in vars(accounts).items():
        # Beancount's balance assertion sums an account with its sub-accounts, so an account
        # under the clearing account would make every Stripe balance assertion fail.
        if acc and acc.startswith(clearing):
            report.add(
                _join(_join(cpath, "accounts"), field_name),
                f"`{acc}` lies under the clearing account `{accounts.clearing}`; Beancount's "
                "balance assertions include sub-accounts, so Stripe balances never tie out",
                f"move it out, e.g. `{acc.replace(clearing, accounts.clearing + '-', 1)}`",
            )
            return _Partial(None, cid, output, archive)
    client = ClientConfig(
        id=cid,
        name=vals["name"][0],
        stripe_account=vals["stripe_account"][0],
        key=key_source,
        ledger=ledger,
        output=output,
        archive_dir=archive,
        timezone=vals.get("timezone", ("UTC", ""))[0],
        accounts=accounts,
        connect=bool(connect),
        platform_account=vals.get("platform_account", (None, ""))[0],
        api_base=vals.get("api_base", (None, ""))[0],
        rate_limit=vals.get("rate_limit", (None, ""))[0],
        operating_currency=vals.get("operating_currency", (None, ""))[0],
        source_file=config_path.absolute(),
        source_line=report.line(cpath),
        account_name=account_name,
        rules=_rules_files(report, config_path, vals["rules"][0], vals["rules"][1], built)
        if "rules" in vals
        else (),
        shared_rules=built.shared_rules,
        archive_keep=archive_keep,
    )
    if "payouts" in vals:
        client = replace(client, payouts=vals["payouts"][0])
    if "capital" in vals:
        capital = _capital_config(report, base, vals["capital"], ledger, output)
        if capital is None:
            return _Partial(None, cid, output, archive)
        client = replace(client, capital=capital)
        return _Partial(client, cid, output, archive, capital.output)
    return _Partial(client, cid, output, archive)


@dataclass(frozen=True)
class _ArchiveSpec:
    """`archive: {path: …, keep: …}`, the mapping form of `archive: PATH`."""

    path: Path | None
    keep: str


def _check_archive(report: _Report, path: str, value: dict[str, Any]) -> Any:
    """`archive:` as a mapping: `path` (optional, default beside the ledger) and `keep`."""
    _check_mapping_keys(report, value, path, ("path", "keep"), "`archive`")
    ok = True
    folder: Path | None = None
    if "path" in value:
        fix = "give a path (relative to this configuration file), or remove `path`"
        if _is_str(report, _join(path, "path"), value["path"], "`archive.path`", fix):
            folder = Path(value["path"].strip())
        else:
            ok = False
    keep = value.get("keep", "minimal")
    if keep not in ("minimal", "full"):
        shown = keep if isinstance(keep, str) else _type_name(keep)
        report.add(
            _join(path, "keep"),
            f"`archive.keep` must be `minimal` or `full`, not `{shown}`",
            "write `keep: minimal` (the default: no customer addresses or card details in the "
            "archive) or `keep: full` (store expanded sources exactly as Stripe sent them)",
        )
        ok = False
    return _ArchiveSpec(folder, keep) if ok else _BAD


def _check_rules_paths(report: _Report, path: str, value: Any) -> Any:
    """A `rules:` value: one path or a list of paths → ((path, key path), …)."""
    fix = "give a rules file path (relative to this configuration file), or a list of them"
    if isinstance(value, list) and not value:
        report.add(path, "`rules` is an empty list", fix)
        return _BAD
    items = value if isinstance(value, list) else [value]
    out = []
    for i, item in enumerate(items):
        sub = _join(path, i) if isinstance(value, list) else path
        if item is _BAD or not _is_str(report, sub, item, "a rules file path", fix):
            return _BAD
        out.append((Path(item.strip()), sub))
    return tuple(out)


def _rules_files(
    report: _Report,
    config_path: Path,
    paths: tuple[tuple[Path, str], ...],
    key_path: str,
    built: _Built,
) -> tuple[Path, ...]:
    """Resolve rules file paths; a missing file is reported at the key naming it."""
    base = config_path.absolute().parent
    out = []
    for path, sub in paths:
        resolved = _resolve_path(base, path)
        if not resolved.is_file():
            report.add(
                sub or key_path,
                f"rules file {resolved} not found",
                "create it (start from config/rules.yaml, the default rules) or fix the path",
            )
        else:
            built.rules_files.setdefault(resolved, sub or key_path)
        out.append(resolved)
    return tuple(out)


def _check_rules_files(report: _Report, built: _Built) -> None:
    """Validate every rules file the configuration names (once each), in its own file/lines."""
    from beancount_stripe import rules  # rules imports this module

    for path in built.rules_files:
        report.problems.extend(rules.check_rules(path))


def _ok(vals: dict[str, tuple[Any, str]], key: str) -> bool:
    return key in vals and vals[key][0] is not _BAD


def _analyse(path: str | Path) -> tuple[Path, _Report, _Built]:
    config_path = Path(path)
    report = _Report(str(path))
    data, scalars, text = _parse(config_path, report)
    report.texts = {path: value for path, _first, _last, value in scalars}
    built = _build(report, config_path, data)
    _check_rules_files(report, built)
    _scan_literal_keys(report, scalars, text)
    return config_path, report, built


def load_config(path: str | Path) -> Config:
    """Parse and validate a configuration file; raise one ``ConfigError`` listing every problem."""
    config_path, report, built = _analyse(path)
    problems = [p for p in report.sorted_problems() if p.severity == "error"]
    if problems:
        raise InvalidConfigError(str(path), problems)
    return Config(path=config_path.absolute(), clients=tuple(built.clients))


# -- key sources ------------------------------------------------------------------------------


def check_config(path: str | Path) -> list[Problem]:
    """Everything ``load_config`` checks, plus whether each key source is usable.

    Keys may be read into memory to check their shape, but never into any output.
    """
    _config_path, report, built = _analyse(path)
    for cid, source, key_path in built.keys:
        for message, fix, severity in _key_source_findings(source, cid):
            report.add(key_path, f"client `{cid}`: {message}", fix, severity=severity)
    return report.sorted_problems()


def _key_source_findings(source: KeySource, client_id: str) -> list[tuple[str, str, str]]:
    """(message, fix, severity) for one key source; reads the key only to check its shape."""
    try:
        secret = _read_key(source, client_id)
    except KeySourceError as exc:
        return [(exc.what, exc.fix or "", "error")]
    findings = []
    shape = _key_shape_problem(secret)
    if shape is not None:
        findings.append((f"the key from {source.describe()} {shape[0]}", shape[1], "error"))
    elif secret.startswith("sk_live_"):
        findings.append(
            (
                f"{source.describe()} holds an unrestricted live secret key",
                "create a restricted key (`rk_live_…`) with Read on the resources the README "
                "lists (The restricted key), use that instead, and check it with "
                "`config check --online`",
                "warning",
            )
        )
    if source.kind == "file" and os.name == "posix":
        mode = os.stat(source.ref).st_mode
        if mode & stat.S_IROTH:
            findings.append(
                (
                    f"key file {source.ref} is readable by every user on this machine",
                    f"run `chmod 600 {source.ref}`",
                    "warning",
                )
            )
    return findings


def _key_shape_problem(secret: str) -> tuple[str, str] | None:
    if _KEY_SHAPE_RE.fullmatch(secret):
        return None
    if secret.startswith("pk_"):
        return (
            f"is a publishable key ({mask_key(secret)}), which cannot read balance transactions",
            "use a restricted key (`rk_…`) or a secret key (`sk_…`)",
        )
    return (
        f"does not look like a Stripe secret or restricted key ({mask_key(secret)})",
        "store the key exactly as the Dashboard shows it: `rk_…` or `sk_…`, nothing else",
    )


def _read_key(source: KeySource, client_id: str) -> str:
    where = f"client {client_id}, key {source.describe()}"
    if source.kind == "env":
        value = os.environ.get(source.ref)
        if value is None:
            raise KeySourceError(
                f"environment variable {source.ref} is not set",
                where=where,
                fix=f"export {source.ref}=rk_live_… (a restricted read-only key) before running",
            )
        if not value.strip():
            raise KeySourceError(
                f"environment variable {source.ref} is empty",
                where=where,
                fix=f"set {source.ref} to the client's Stripe key (rk_… or sk_…)",
            )
        return value.strip()
    if source.kind == "file":
        p = Path(source.ref)
        try:
            value = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise KeySourceError(
                f"key file {p} does not exist",
                where=where,
                fix=f"write the key into {p} (then `chmod 600 {p}`), or fix the path in `key:`",
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise KeySourceError(
                f"cannot read key file {p}: {reason}",
                where=where,
                fix="make the file readable by this user and containing only the key",
            ) from None
        if not value.strip():
            raise KeySourceError(
                f"key file {p} is empty",
                where=where,
                fix=f"write the client's Stripe key (rk_… or sk_…) into {p}",
            )
        return value.strip()
    if source.kind == "keyring":
        service, _, username = source.ref.partition("/")
        try:
            import keyring
            import keyring.errors
        except ImportError:
            raise KeySourceError(
                "the `keyring` package is not installed",
                where=where,
                fix="pip install 'beancount-stripe[keyring]', or use `key: env:NAME`",
            ) from None
        try:
            value = keyring.get_password(service, username)
        except keyring.errors.KeyringError as exc:
            raise KeySourceError(
                f"no usable keyring backend ({type(exc).__name__})",
                where=where,
                fix="install/unlock a system keyring (see `keyring --list-backends`), "
                "or use `key: env:NAME` or `key: file:PATH`",
            ) from None
        if value is None or not value.strip():
            raise KeySourceError(
                f"the keyring has no entry for service {service!r}, user {username!r}",
                where=where,
                fix=f"run `keyring set {service} {username}` and paste the key",
            )
        return value.strip()
    raise KeySourceError(
        f"unknown key source kind {source.kind!r}",
        where=where,
        fix="use env:, file: or keyring in the configuration",
    )


def resolve_key(client: ClientConfig) -> str:
    """Read the client's API key from its source. Errors never contain the key."""
    source = client.key
    if source.kind == "file" and not Path(source.ref).is_absolute() and client.source_file:
        source = KeySource("file", str(client.source_file.parent / source.ref))
    secret = _read_key(source, client.id)
    shape = _key_shape_problem(secret)
    if shape is not None:
        where = f"client {client.id}, key {source.describe()}"
        raise KeySourceError(f"the key {shape[0]}", where=where, fix=shape[1])
    return secret


# -- Stripe Capital ----------------------------------------------------------------------------

CAPITAL_KEYS = ("loans", "output", "timezone", "columns")
LOAN_KEYS = ("id", "currency", "advance", "fee", "aliases")
_LOAN_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_]*")
_AMOUNT_TEXT_RE = re.compile(r"\d+(?:\.\d+)?")
_CAPITAL_EXAMPLE = (
    "write e.g. `capital: {loans: [{id: flxln_…, currency: USD, advance: 10000.00, fee: 1000.00}]}`"
)


@dataclass(frozen=True)
class _CapitalDraft:
    loans: tuple[LoanConfig, ...]
    output: tuple[Path, str] | None  # (path as written, key path)
    timezone: str | None
    columns: tuple[tuple[str, str], ...]


_PAYOUTS_EXAMPLE = (
    "write e.g. `payouts: {lag_days: 3, bank_accounts: [Assets:Acme:Bank:Checking], "
    "holidays: [2025-12-25]}`"
)


def _check_payouts(report: _Report, path: str, value: Any) -> Any:
    """A client's `payouts:` block (bank matching, reconcile.py) → ``PayoutsConfig`` or ``_BAD``."""
    if not isinstance(value, dict):
        report.add(path, f"`payouts` must be a mapping, not {_type_name(value)}", _PAYOUTS_EXAMPLE)
        return _BAD
    ok = True
    for key in value:
        if key not in ("lag_days", "bank_accounts", "holidays"):
            report.add(_join(path, key), f"unknown key `{key}` in `payouts`", _PAYOUTS_EXAMPLE)
            ok = False
    lag = value.get("lag_days", 3)
    if not isinstance(lag, int) or isinstance(lag, bool) or not 0 <= lag <= 30:
        report.add(
            _join(path, "lag_days"), "`lag_days` must be a whole number 0..30", _PAYOUTS_EXAMPLE
        )
        ok = False
    banks = value.get("bank_accounts", []) or []
    if not isinstance(banks, list) or not all(
        isinstance(b, str) and bc_account.is_valid(b) for b in banks
    ):
        report.add(
            _join(path, "bank_accounts"),
            "`bank_accounts` must be a list of Beancount account names",
            _PAYOUTS_EXAMPLE,
        )
        ok = False
    holidays = value.get("holidays", []) or []
    if not isinstance(holidays, list) or not all(
        isinstance(d, datetime.date) and not isinstance(d, datetime.datetime) for d in holidays
    ):
        report.add(
            _join(path, "holidays"),
            "`holidays` must be a list of dates (YYYY-MM-DD)",
            _PAYOUTS_EXAMPLE,
        )
        ok = False
    if not ok:
        return _BAD
    return PayoutsConfig(lag_days=lag, bank_accounts=tuple(banks), holidays=tuple(sorted(holidays)))


def _check_capital(report: _Report, path: str, value: Any) -> Any:
    """Validate a client's `capital:` block; return a ``_CapitalDraft`` or ``_BAD``."""
    if not isinstance(value, dict):
        report.add(path, f"`capital` must be a mapping, not {_type_name(value)}", _CAPITAL_EXAMPLE)
        return _BAD
    _check_mapping_keys(report, value, path, CAPITAL_KEYS, "`capital`")
    ok = not any(k not in CAPITAL_KEYS for k in value)
    loans = _check_loans(report, _join(path, "loans"), value.get("loans", _MISSING))
    ok = ok and loans is not None
    output = None
    if "output" in value:
        sub = _join(path, "output")
        fix = "give a path (relative to this configuration file), e.g. `capital.beancount`"
        if _is_str(report, sub, value["output"], "`capital.output`", fix):
            output = (Path(value["output"].strip()), sub)
        else:
            ok = False
    timezone = None
    if "timezone" in value:
        timezone = _check_field(
            report, "timezone", value["timezone"], _join(path, "timezone"), None
        )
        ok = ok and timezone is not _BAD
    columns = _check_columns(report, _join(path, "columns"), value.get("columns"))
    ok = ok and columns is not None
    if not ok or loans is None or columns is None:
        return _BAD
    return _CapitalDraft(loans, output, timezone, columns)


_MISSING = object()


def _check_loans(report: _Report, path: str, value: Any) -> tuple[LoanConfig, ...] | None:
    fix = "list each Capital financing: `- {id: flxln_…, currency: USD, advance: …, fee: …}`"
    if value is _MISSING:
        report.add(path, "`capital` needs `loans`", fix, line=report.line(path))
        return None
    if not isinstance(value, list) or not value:
        what = "is empty" if isinstance(value, list) else f"must be a list, not {_type_name(value)}"
        report.add(path, f"`loans` {what}", fix)
        return None
    loans: list[LoanConfig] = []
    seen: dict[str, str] = {}
    ok = True
    for index, raw in enumerate(value):
        lpath = _join(path, index)
        loan = _check_loan(report, lpath, raw)
        if loan is None:
            ok = False
            continue
        for n, loan_id in enumerate(loan.ids):
            sub = _join(lpath, "id") if n == 0 else _join(_join(lpath, "aliases"), n - 1)
            if loan_id in seen:
                report.add(
                    sub,
                    f"loan id `{loan_id}` is also given at {seen[loan_id]}",
                    "name every loan once; put other ids of the same loan under its `aliases`",
                )
                ok = False
            seen.setdefault(loan_id, sub)
        loans.append(loan)
    return tuple(loans) if ok else None


def _check_loan(report: _Report, path: str, raw: Any) -> LoanConfig | None:
    example = "`- {id: flxln_…, currency: USD, advance: 10000.00, fee: 1000.00}`"
    if not isinstance(raw, dict):
        report.add(path, f"a loan must be a mapping, not {_type_name(raw)}", f"write {example}")
        return None
    _check_mapping_keys(report, raw, path, LOAN_KEYS, "a loan")
    ok = not any(k not in LOAN_KEYS for k in raw)
    for key in ("id", "currency", "advance", "fee"):
        if key not in raw:
            report.add(
                _join(path, key),
                f"missing required key `{key}`",
                f"give the loan its `{key}` ({example}); the Capital page of the Stripe "
                "Dashboard shows the loan id, advance (financing amount) and fee",
                line=report.line(path),
            )
            ok = False
    ids: list[str] = []
    for key, items in (("id", [raw.get("id")]), ("aliases", raw.get("aliases", []))):
        if key not in raw:
            continue
        if key == "aliases" and not isinstance(items, list):
            report.add(
                _join(path, key),
                f"`aliases` must be a list, not {_type_name(items)}",
                "write `aliases: [financingoffer_…]`",
            )
            ok = False
            continue
        for n, item in enumerate(items):
            sub = _join(path, "id") if key == "id" else _join(_join(path, key), n)
            fix = "copy the id from the export or the Dashboard, e.g. `flxln_1AbC…`"
            if not _is_str(report, sub, item, "a loan id", fix):
                ok = False
            elif not _LOAN_ID_RE.fullmatch(item.strip()):
                report.add(sub, f"`{item}` is not a Stripe id (letters, digits and `_`)", fix)
                ok = False
            else:
                ids.append(item.strip())
    code = None
    if "currency" in raw:
        code = _loan_currency(report, _join(path, "currency"), raw["currency"])
        ok = ok and code is not None
    amounts: dict[str, Decimal] = {}
    for key in ("advance", "fee"):
        if key not in raw:
            continue
        amount = _loan_amount(report, _join(path, key), raw[key], code, positive=key == "advance")
        if amount is None:
            ok = False
        else:
            amounts[key] = amount
    if not ok or code is None or code is _BAD or len(ids) < 1:
        return None
    return LoanConfig(ids[0], code, amounts["advance"], amounts["fee"], tuple(ids[1:]))


def _loan_currency(report: _Report, path: str, value: Any) -> str | None:
    fix = "give the loan's currency as an upper-case ISO 4217 code such as `USD`, `EUR`, `JPY`"
    if not _is_str(report, path, value, "the loan's `currency`", fix):
        return None
    code = value.strip()
    if re.fullmatch(r"[A-Za-z]{3}", code) and _currency_known(code.upper()):
        return code.upper()
    report.add(path, f"unknown currency `{code}`", fix)
    return None


def _loan_amount(
    report: _Report, path: str, value: Any, code: Any, *, positive: bool
) -> Decimal | None:
    """A loan amount in major units, read from the text as written (YAML floats are inexact)."""
    fix = "write the amount in major units as a plain decimal, e.g. `2500.00` (no separators)"
    if value is _BAD:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        report.add(path, f"the amount must be a number, not {_type_name(value)}", fix)
        return None
    text = report.texts.get(path, str(value)).strip()
    if not _AMOUNT_TEXT_RE.fullmatch(text):
        shown = text if len(text) <= 30 else text[:30] + "…"
        report.add(path, f"`{shown}` is not a plain non-negative decimal", fix)
        return None
    try:
        amount = Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern only lets decimals through
        report.add(path, f"`{text}` is not a number", fix)
        return None
    if positive and amount == 0:
        report.add(path, "the advance must be more than zero", fix)
        return None
    if isinstance(code, str):
        from beancount_stripe import currency  # imported here: currency is optional for config

        places = currency.exponent(code)
        if amount != amount.quantize(Decimal(1).scaleb(-places)):
            report.add(
                path,
                f"`{text}` has more than {places} decimal places, which {code} cannot hold",
                f"round it to {places} decimal places" if places else "use a whole number",
            )
            return None
    return amount


def _check_columns(report: _Report, path: str, value: Any) -> tuple[tuple[str, str], ...] | None:
    if value is None:
        return ()
    fix = 'map each CSV header to a field: `columns: {"Paid on": created, Amount: amount}`'
    if not isinstance(value, dict):
        report.add(path, f"`columns` must be a mapping, not {_type_name(value)}", fix)
        return None
    out: list[tuple[str, str]] = []
    seen: dict[str, str] = {}
    ok = True
    for header, target in value.items():
        sub = _join(path, header)
        norm = " ".join(str(header).split()).casefold()
        if norm in seen:
            report.add(sub, f"header `{header}` is mapped twice (also as `{seen[norm]}`)", fix)
            ok = False
            continue
        seen[norm] = str(header)
        if target is _BAD:
            ok = False
            continue
        if not isinstance(target, str) or target not in CAPITAL_FIELDS:
            hint = _did_you_mean(str(target), CAPITAL_FIELDS) if isinstance(target, str) else None
            shown = target if isinstance(target, str) else _type_name(target)
            report.add(
                sub,
                f"`{shown}` is not a Capital CSV field",
                f"did you mean `{hint}`?" if hint else f"use one of: {', '.join(CAPITAL_FIELDS)}",
            )
            ok = False
            continue
        out.append((str(header), target))
    return tuple(out) if ok else None


def _capital_config(
    report: _Report,
    base: Path,
    entry: tuple[Any, str],
    ledger: Path,
    output: Path,
) -> CapitalConfig | None:
    draft, path = entry
    if not isinstance(draft, _CapitalDraft):  # pragma: no cover - _BAD is caught earlier
        return None
    if draft.output is None:
        target = ledger.parent / "capital.beancount"
        where = path
    else:
        target = _resolve_path(base, draft.output[0])
        where = draft.output[1]
    for other, label in ((output, "`output`"), (ledger, "`ledger`")):
        if target.resolve() == other.resolve():
            report.add(
                where,
                f"the Capital output file {target} is the same file as the client's {label}",
                "set `capital.output` to a file of its own, e.g. `capital.beancount`",
            )
            return None
    return CapitalConfig(
        loans=draft.loans, output=target, timezone=draft.timezone, columns=draft.columns
    )
