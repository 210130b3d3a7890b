"""A keyring backend that keeps passwords in a folder, for tests (never a real keyring).

Selected the way keyring selects any backend: ``PYTHON_KEYRING_BACKEND=tests.keyring_folder.
FolderKeyring``, with the folder in ``TEST_KEYRING_DIR``.
"""

from __future__ import annotations

import os
from pathlib import Path

from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError


class FolderKeyring(KeyringBackend):
    """One file per (service, username) under $TEST_KEYRING_DIR."""

    priority = 1  # type: ignore[assignment]

    def _path(self, service: str, username: str) -> Path:
        folder = Path(os.environ["TEST_KEYRING_DIR"])
        folder.mkdir(parents=True, exist_ok=True)
        return folder / f"{service}__{username}"

    def get_password(self, service: str, username: str) -> str | None:
        path = self._path(service, username)
        return path.read_text(encoding="utf-8") if path.exists() else None

    def set_password(self, service: str, username: str, password: str) -> None:
        self._path(service, username).write_text(password, encoding="utf-8")

    def delete_password(self, service: str, username: str) -> None:
        path = self._path(service, username)
        if not path.exists():
            raise PasswordDeleteError(username)
        path.unlink()
