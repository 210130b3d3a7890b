"""Checks of single fields and of a client's sections (archive, rules, capital, payouts,
booking): each returns the typed value or reports what is wrong."""

from __future__ import annotations

import datetime
import re
import urllib.parse
import zoneinfo
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from beancount.core import account as bc_account

from beancount_stripe.account_roots import root_problem
from beancount_stripe.config.model import (
    BOOKING_MODES,
    CAPITAL_FIELDS,
    DEFAULT_ACCOUNTS,
    BookingConfig,
    CapitalConfig,
    LoanConfig,
    PayoutsConfig,
)
from beancount_stripe.config.report import (
    _BAD,
    _COMPONENT_RE,
    _ENV_NAME_RE,
    _FIX_MOVE_KEY,
    _ID_RE,
    _STRIPE_ACCOUNT_RE,
    ACCOUNT_ROOTS,
    CLIENT_KEYS,
    LITERAL_KEY_RE,
    _did_you_mean,
    _join,
    _Report,
    _resolve_path,
    _Scalar,
    _type_name,
    mask_key,
)


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
    if key == "booking":
        return _check_booking(report, path, value)
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


_BOOKING_EXAMPLE = "write e.g. `booking: {mode: daily, since: 2025-04-01}`"


def _check_booking(report: _Report, path: str, value: Any) -> Any:
    """A client's `booking:` block (summary modes, summary.py) → ``BookingConfig`` or ``_BAD``."""
    if not isinstance(value, dict):
        report.add(path, f"`booking` must be a mapping, not {_type_name(value)}", _BOOKING_EXAMPLE)
        return _BAD
    ok = True
    for key in value:
        if key not in ("mode", "since"):
            hint = _did_you_mean(str(key), ("mode", "since"))
            fix = f"did you mean `{hint}`?" if hint else _BOOKING_EXAMPLE
            report.add(_join(path, key), f"unknown key `{key}` in `booking`", fix)
            ok = False
    mode = value.get("mode", "transaction")
    if mode not in BOOKING_MODES:
        report.add(
            _join(path, "mode"),
            f"`mode` is {mode!r}, not one of {', '.join(BOOKING_MODES)}",
            _BOOKING_EXAMPLE,
        )
        ok = False
    since = value.get("since")
    if since is not None and (
        not isinstance(since, datetime.date) or isinstance(since, datetime.datetime)
    ):
        report.add(
            _join(path, "since"),
            f"`since` must be a date (YYYY-MM-DD), not {_type_name(since)}",
            _BOOKING_EXAMPLE,
        )
        ok = False
    if not ok:
        return _BAD
    return BookingConfig(mode=str(mode), since=since)


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
