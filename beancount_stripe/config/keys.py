"""Where an API key comes from (env, file, keyring): read only when needed, never printed."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from beancount_stripe.config.model import (
    ClientConfig,
    KeySource,
)
from beancount_stripe.config.report import (
    _KEY_SHAPE_RE,
    mask_key,
)
from beancount_stripe.errors import KeySourceError


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
