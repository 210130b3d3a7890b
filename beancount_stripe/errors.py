"""Typed errors a user can hit.

Every error says what went wrong, where (file, line, key path, client, transaction) and how to fix
it. The CLI prints ``str(error)`` without a traceback and exits non-zero. Messages must never
contain an API key.
"""

from __future__ import annotations


class BeancountStripeError(Exception):
    """Base class of every error the CLI reports without a traceback."""

    exit_code = 1

    def __init__(self, what: str, *, where: str | None = None, fix: str | None = None) -> None:
        self.what = what
        self.where = where
        self.fix = fix
        super().__init__(self.render())

    def render(self) -> str:
        text = f"{self.where}: {self.what}" if self.where else self.what
        if self.fix:
            text += f"\n  fix: {self.fix}"
        return text


class ConfigError(BeancountStripeError):
    """The YAML configuration is invalid (names file, line and key path)."""

    exit_code = 2


class KeySourceError(BeancountStripeError):
    """An API key could not be read from its configured source."""

    exit_code = 2


class StripeAccessError(BeancountStripeError):
    """Stripe refused the key, or the key opens a different account than configured."""

    exit_code = 3


class StripeUnavailableError(BeancountStripeError):
    """Stripe (or the simulator) could not be reached or kept failing after retries."""

    exit_code = 4


class CurrencyError(BeancountStripeError):
    """A currency code is not a known ISO 4217 code, or an amount is not exact in it."""

    exit_code = 2


class InputFileError(BeancountStripeError):
    """A file given to an importer or command is malformed."""

    exit_code = 2


class LedgerError(BeancountStripeError):
    """A ledger file cannot be read or written safely."""

    exit_code = 5


class MissingPermissionError(StripeAccessError):
    """A restricted key lacks one permission the sync needs (``permission`` names it)."""

    def __init__(
        self, what: str, *, permission: str, where: str | None = None, fix: str | None = None
    ) -> None:
        self.permission = permission
        super().__init__(what, where=where, fix=fix)
