"""The install path of the README: build the wheel, install it in a fresh venv, run the tool.

This is what a firm does outside the demo, so it must work from the built wheel alone (no
editable install, no source tree on the path): package data such as the simulator world, the
`sync --json` schema and the `init` templates must be inside the wheel.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]


@pytest.mark.slow
def test_wheel_installs_in_a_fresh_venv_and_runs(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    build = _run(
        # -v shows the build backend's own output, where setuptools prints its warnings
        [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "-w", str(dist), str(ROOT)],
        cwd=tmp_path,
    )
    assert build.returncode == 0, build.stderr
    # The packaging warnings `make demo` used to print (license as a TOML table) are gone.
    assert "SetuptoolsDeprecationWarning" not in build.stdout + build.stderr
    (wheel,) = dist.glob("beancount_stripe-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "beancount_stripe/schemas/sync-report.schema.json" in names
    assert any(n.startswith("beancount_stripe/templates/") for n in names)

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    bin_dir = env_dir / "bin"
    install = _run([str(bin_dir / "python"), "-m", "pip", "install", "-q", str(wheel)])
    assert install.returncode == 0, install.stderr

    exe = str(bin_dir / "beancount-stripe")
    version = _run([exe, "--version"], cwd=tmp_path)
    assert version.returncode == 0, version.stderr
    assert "beancount-stripe, version" in version.stdout

    env = {
        **os.environ,
        "ACME_STRIPE_KEY": "rk_test_placeholder",
        "KYOTO_TEA_STRIPE_KEY": "rk_test_placeholder",
        "FIRM_PLATFORM_STRIPE_KEY": "rk_test_placeholder",
    }
    env.pop("BEANCOUNT_STRIPE_CONFIG", None)
    check = _run([exe, "-c", str(ROOT / "config" / "clients.yaml"), "config", "check"], env=env)
    assert check.returncode == 0, check.stderr
    assert "OK, 3 client(s)" in check.stdout

    # The installed tool is the wheel's, not this source tree's.
    where = _run(
        [str(bin_dir / "python"), "-c", "import beancount_stripe as b; print(b.__file__)"],
        cwd=tmp_path,
    )
    assert str(env_dir) in where.stdout
