"""Connect a client (`beancount-stripe connect`): look the key's account up, check what the key
may read, store the key, and add the client to the configuration file.

The configuration is edited with ruamel.yaml's round-trip mode, so the firm's comments, key
order and blank lines survive; the new client is appended at the end of ``clients:``. The key is
held in memory only until it is stored (system keyring or a 0600 file) and is never written to
the configuration, printed, or put in an error message.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from beancount_stripe.errors import BeancountStripeError, ConfigError, KeySourceError
from beancount_stripe.stripe_api import REQUIRED_PERMISSIONS, StripeGateway

__all__ = [
    "STORES",
    "AccountInfo",
    "add_client",
    "inspect_account",
    "keyring_usable",
    "read_key",
    "store_key",
]

KEYRING_SERVICE = "beancount-stripe"
STORES = ("keyring", "file", "env")
_ID_RE = re.compile(r"[a-z0-9][a-z0-9-]*")
_ACCOUNT_RE = re.compile(r"acct_[A-Za-z0-9]+")

ACCOUNT_PERMISSION = "rak_connected_account_read"


@dataclass
class AccountInfo:
    """What the key opens, for the confirmation prompt and the new client entry."""

    id: str
    name: str
    country: str
    default_currency: str
    timezone: str | None
    platform: str | None = None  # Connect mode: the platform account the key belongs to
    missing: list[str] = field(default_factory=list)  # permissions the key lacks


def read_key(key_env: str | None, key_file: Path | None) -> str | None:
    """The key from ``--key-env`` or ``--key-file``; None means: ask for it (hidden input)."""
    if key_env and key_file:
        raise ConfigError(
            "give --key-env or --key-file, not both", where="connect", fix="choose one source"
        )
    if key_env:
        value = os.environ.get(key_env, "").strip()
        if not value:
            raise KeySourceError(
                f"environment variable {key_env} is not set or empty",
                where="connect --key-env",
                fix=f"export {key_env}=rk_live_… first, or leave --key-env out to type the key",
            )
        return value
    if key_file:
        try:
            value = key_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as e:
            raise KeySourceError(
                f"cannot read key file {key_file} ({type(e).__name__})",
                where="connect --key-file",
                fix="give a readable file holding only the key",
            ) from None
        if not value:
            raise KeySourceError(
                f"key file {key_file} is empty",
                where="connect --key-file",
                fix="write the key in it",
            )
        return value
    return None


def check_key_shape(key: str) -> None:
    """Refuse what cannot be a Stripe secret or restricted key, without echoing it."""
    from beancount_stripe.config import _key_shape_problem

    problem = _key_shape_problem(key)
    if problem is not None:
        raise KeySourceError(f"the key {problem[0]}", where="connect", fix=problem[1])


def inspect_account(
    key: str,
    client_id: str,
    *,
    api_base: str | None = None,
    connected_account: str | None = None,
) -> AccountInfo:
    """Look up the account the key opens and check each permission sync needs.

    In Connect mode (``connected_account``) the key is the platform's: the platform is looked up
    too, and the connected account is read through the ``Stripe-Account`` header.
    """
    if connected_account is not None and not _ACCOUNT_RE.fullmatch(connected_account):
        raise ConfigError(
            f"{connected_account!r} is not a Stripe account id",
            where="connect --account",
            fix="give the connected account's id, e.g. acct_1Gulf…",
        )
    gateway = StripeGateway(
        key,
        client_id=client_id,
        api_base=api_base,
        stripe_account=connected_account,
        max_retries=2,
        rate_limit=None,
    )
    platform = None
    if connected_account is not None:
        platform = str(gateway.account(as_connected=False).get("id") or "")
    # One small request per permission sync needs (stripe_api.REQUIRED_PERMISSIONS); a 401 or
    # an outage raises. Without Account read there is nothing to show: that one is an error.
    missing = gateway.probe_permissions()
    if ACCOUNT_PERMISSION in missing:
        raise missing[ACCOUNT_PERMISSION]
    acct = gateway.account()
    settings = acct.get("settings") or {}
    dashboard = settings.get("dashboard") or {}
    profile = acct.get("business_profile") or {}
    labels = {p.name: p.resource for p in REQUIRED_PERMISSIONS}
    return AccountInfo(
        id=str(acct.get("id") or ""),
        name=str(dashboard.get("display_name") or profile.get("name") or acct.get("id")),
        country=str(acct.get("country") or "?"),
        default_currency=str(acct.get("default_currency") or "").upper(),
        timezone=dashboard.get("timezone") or None,
        platform=platform,
        missing=[f"{labels.get(name, name)}: Read ({name})" for name in sorted(missing)],
    )


def keyring_usable() -> bool:
    """True when a real keyring backend is available (not keyring's fail/null backends)."""
    try:
        import keyring
        from keyring.backends import fail
    except ImportError:
        return False
    backend = keyring.get_keyring()
    if isinstance(backend, fail.Keyring):
        return False
    if type(backend).__name__ == "ChainerBackend" and not getattr(backend, "backends", None):
        return False
    return float(getattr(backend, "priority", 1) or 0) > 0


def store_key(
    store: str, client_id: str, key: str, config_path: Path, key_env: str | None = None
) -> str:
    """Put the key where sync will read it; returns the config's ``key:`` text (never the key)."""
    if store == "env":
        if not key_env:
            raise ConfigError(
                "--store env needs --key-env NAME (the variable sync will read the key from)",
                where="connect",
                fix="pass --key-env NAME, or --store keyring / --store file",
            )
        return f"env:{key_env}"
    if store == "keyring":
        try:
            import keyring
            import keyring.errors
        except ImportError:
            raise KeySourceError(
                "the keyring package is not installed",
                where="connect --store keyring",
                fix="pip install keyring, or use --store file",
            ) from None
        if not keyring_usable():
            raise KeySourceError(
                "no usable system keyring (no Secret Service, Keychain or Windows vault found)",
                where="connect --store keyring",
                fix="use --store file (a 0600 file under secrets/), or set up a keyring backend",
            )
        try:
            keyring.set_password(KEYRING_SERVICE, client_id, key)
        except keyring.errors.KeyringError as e:
            raise KeySourceError(
                f"the keyring refused to store the key ({type(e).__name__})",
                where="connect --store keyring",
                fix="unlock the keyring, or use --store file",
            ) from None
        return "keyring"
    if store == "file":
        secrets = config_path.parent / "secrets"
        secrets.mkdir(mode=0o700, exist_ok=True)
        os.chmod(secrets, 0o700)
        path = secrets / f"{client_id}.key"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(key + "\n")
        os.chmod(path, 0o600)
        return f"file:{path.relative_to(config_path.parent)}"
    raise ConfigError(f"unknown --store {store!r}", where="connect", fix=f"one of {STORES}")


def check_client_id(client_id: str) -> None:
    if not _ID_RE.fullmatch(client_id):
        raise ConfigError(
            f"client id {client_id!r} must be lower-case letters, digits and dashes",
            where="connect",
            fix="e.g. `acme` or `kyoto-tea`",
        )


def _yaml() -> Any:
    from ruamel.yaml import YAML

    yaml = YAML()  # round-trip: comments, order and blank lines are kept
    yaml.preserve_quotes = True
    yaml.width = 100
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def existing_ids(config_path: Path) -> list[str]:
    """Client ids already in the configuration file."""
    doc = _yaml().load(config_path.read_text(encoding="utf-8")) or {}
    return [str(c.get("id")) for c in (doc.get("clients") or []) if isinstance(c, dict)]


def add_client(config_path: Path, entry: dict[str, Any]) -> None:
    """Append ``entry`` to ``clients:`` of the file, keeping every comment and the key order.

    The file is replaced in one atomic rename, and only after the result reads back with the
    new client in it.
    """
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    from beancount_stripe.atomic import write_atomic

    yaml = _yaml()
    try:
        doc = yaml.load(config_path.read_text(encoding="utf-8"))
    except Exception as e:  # ruamel raises many error types; all mean "not YAML we can edit"
        raise ConfigError(
            f"cannot read the configuration to add the client ({type(e).__name__})",
            where=str(config_path),
            fix="run `beancount-stripe config check` and fix the file first",
        ) from None
    if doc is None:
        doc = CommentedMap()
    if not isinstance(doc, CommentedMap):
        raise ConfigError(
            "the configuration is not a mapping", where=str(config_path), fix="start from `init`"
        )
    clients = doc.get("clients")
    if clients is None or not isinstance(clients, list):
        clients = CommentedSeq()
        doc["clients"] = clients
    if any(isinstance(c, dict) and c.get("id") == entry["id"] for c in clients):
        raise ConfigError(
            f"client {entry['id']!r} is already configured",
            where=str(config_path),
            fix="choose another id, or edit the existing entry",
        )
    if isinstance(clients, CommentedSeq):
        clients.fa.set_block_style()  # `clients: []` from init becomes a block list
    new = CommentedMap(entry)
    if clients:
        # ruamel keeps the lines after the list on its last item: they belong after the new one
        trailing = _take_trailing_comment(clients[-1])
        if trailing is not None:
            new.ca.items[list(entry)[-1]] = [None, None, trailing, None]
    clients.append(new)
    from io import StringIO

    out = StringIO()
    yaml.dump(doc, out)
    text = out.getvalue()
    if entry["id"] not in [str(c.get("id")) for c in (_yaml().load(text).get("clients") or [])]:
        raise BeancountStripeError(  # pragma: no cover - a ruamel bug, not a user error
            "the edited configuration does not read back", where=str(config_path)
        )
    write_atomic(config_path, text)


def _take_trailing_comment(node: Any) -> Any:
    """Detach the comment lines that follow ``node`` (its own end-of-line comment stays)."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq
    from ruamel.yaml.tokens import CommentToken

    while True:
        if isinstance(node, CommentedMap) and node:
            key: Any = list(node)[-1]
            value = node[key]
        elif isinstance(node, CommentedSeq) and node:
            key, value = len(node) - 1, node[-1]
        else:
            return None
        if isinstance(value, CommentedMap | CommentedSeq) and value:
            node = value
            continue
        slot = node.ca.items.get(key)
        token = slot[2] if slot and len(slot) > 2 else None
        if not isinstance(token, CommentToken):
            return None
        text = token.value
        own, sep, rest = text.partition("\n") if not text.startswith("\n") else ("", "", text)
        if not text.startswith("\n"):
            token.value = own + sep
            rest = "\n" + rest if rest else ""
        else:
            slot[2] = None
        if not rest.strip():
            return None
        return CommentToken(rest, token.start_mark, None)
