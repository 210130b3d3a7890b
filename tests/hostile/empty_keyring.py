"""A keyring backend with no entries, loaded by the CLI via ``PYTHON_KEYRING_BACKEND``.

keyring's own mechanism for choosing a backend, so the hostile case runs the real lookup path.
"""

from __future__ import annotations

from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError, PasswordSetError


class EmptyKeyring(KeyringBackend):
    priority = 1  # type: ignore[assignment]

    def get_password(self, service: str, username: str) -> str | None:
        return None

    def set_password(self, service: str, username: str, password: str) -> None:
        raise PasswordSetError("read-only test keyring")

    def delete_password(self, service: str, username: str) -> None:
        raise PasswordDeleteError("read-only test keyring")
