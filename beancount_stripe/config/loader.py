"""Assembling validated clients from the YAML: ``load_config`` and ``check_config``."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from beancount_stripe.config.fields import (
    _ArchiveSpec,
    _capital_config,
    _check_field,
    _check_mapping_keys,
    _KeySpec,
    _scan_literal_keys,
)
from beancount_stripe.config.keys import (
    _key_source_findings,
)
from beancount_stripe.config.model import (
    ClientConfig,
    Config,
    KeySource,
    camel_case,
    make_accounts,
)
from beancount_stripe.config.report import (
    _BAD,
    _ID_RE,
    CLIENT_KEYS,
    DEFAULT_KEYRING_SERVICE,
    DEFAULTS_KEYS,
    REQUIRED_CLIENT_KEYS,
    TOP_LEVEL_KEYS,
    InvalidConfigError,
    Problem,
    _did_you_mean,
    _join,
    _parse,
    _Report,
    _resolve_path,
    _type_name,
)


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
    if "booking" in vals:
        client = replace(client, booking=vals["booking"][0])
    if "capital" in vals:
        capital = _capital_config(report, base, vals["capital"], ledger, output)
        if capital is None:
            return _Partial(None, cid, output, archive)
        client = replace(client, capital=capital)
        return _Partial(client, cid, output, archive, capital.output)
    return _Partial(client, cid, output, archive)


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


def check_config(path: str | Path) -> list[Problem]:
    """Everything ``load_config`` checks, plus whether each key source is usable.

    Keys may be read into memory to check their shape, but never into any output.
    """
    _config_path, report, built = _analyse(path)
    for cid, source, key_path in built.keys:
        for message, fix, severity in _key_source_findings(source, cid):
            report.add(key_path, f"client `{cid}`: {message}", fix, severity=severity)
    return report.sorted_problems()
