"""A firm's working folder (`beancount-stripe init DIR`): config, .gitignore, import script,
README of next steps, and the cron and systemd-timer files for the scheduled sync.

The templates ship inside the package (``beancount_stripe/templates``); the scheduling files get
the folder's absolute path and the installed executable's, since cron and systemd run with
neither a working directory nor the user's PATH.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from beancount_stripe.errors import ConfigError

__all__ = ["FILES", "InitResult", "executable", "init_folder"]

# template name → path in the new folder (and its mode)
FILES: tuple[tuple[str, str, int], ...] = (
    ("clients.yaml", "clients.yaml", 0o644),
    ("gitignore", ".gitignore", 0o644),
    ("import.py", "import.py", 0o755),
    ("README.md", "README.md", 0o644),
    ("queries.beancount", "ledgers/queries.beancount", 0o644),
    ("beancount-stripe.cron", "schedule/beancount-stripe.cron", 0o644),
    ("beancount-stripe-sync.service", "schedule/beancount-stripe-sync.service", 0o644),
    ("beancount-stripe-sync.timer", "schedule/beancount-stripe-sync.timer", 0o644),
)
FOLDERS: tuple[tuple[str, int], ...] = (("ledgers", 0o755), ("logs", 0o755), ("secrets", 0o700))


@dataclass
class InitResult:
    """What ``init_folder`` did: files written, files left alone because they existed."""

    folder: Path
    written: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)


def executable() -> Path:
    """The absolute path of the ``beancount-stripe`` command of this installation."""
    beside = Path(sys.executable).parent / "beancount-stripe"
    if beside.exists():
        return beside.absolute()
    found = shutil.which("beancount-stripe")
    return Path(found).absolute() if found else beside.absolute()


def _systemd_quote(text: str) -> str:
    """A path for a systemd unit line: quoted when it has spaces, ``%`` doubled (specifiers)."""
    text = text.replace("%", "%%")
    return f'"{text}"' if any(c.isspace() for c in text) else text


def render(template: str, values: dict[str, str]) -> str:
    """Fill ``{{name}}`` placeholders (the templates are YAML, shell and systemd: no $ or {})."""
    text = resources.files("beancount_stripe").joinpath(f"templates/{template}").read_text("utf-8")
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    return text


def init_folder(
    folder: Path,
    *,
    name: str,
    timezone: str = "UTC",
    currency: str = "USD",
    exe: Path | None = None,
) -> InitResult:
    """Create the firm's folder; an existing file is never overwritten (it is reported kept)."""
    folder = folder.absolute()
    if folder.exists() and not folder.is_dir():
        raise ConfigError(
            f"{folder} exists and is not a folder",
            where="beancount-stripe init",
            fix="give a new or existing folder",
        )
    exe = (exe or executable()).absolute()
    values = {
        "name": name,
        "config": "clients.yaml",
        "timezone": timezone,
        "currency": currency.upper(),
        "dir_sh": shlex.quote(str(folder)),
        "exe_sh": shlex.quote(str(exe)),
        "dir_sd_path": str(folder).replace("%", "%%"),  # WorkingDirectory= takes no quotes
        "exe_sd": _systemd_quote(str(exe)),
    }
    result = InitResult(folder=folder)
    folder.mkdir(parents=True, exist_ok=True)
    for sub, mode in FOLDERS:
        path = folder / sub
        path.mkdir(exist_ok=True)
        os.chmod(path, mode)
    for template, target, mode in FILES:
        path = folder / target
        if path.exists():
            result.kept.append(path)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(template, values), encoding="utf-8")
        os.chmod(path, mode)
        result.written.append(path)
    return result
