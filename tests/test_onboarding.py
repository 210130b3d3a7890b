"""From nothing to a synced firm: `init`, then `connect` (keyring, file, Connect mode), then
`sync --json`. The commands run as a user runs them (the installed executable, in a process of
their own) against the simulator over HTTP; keys come from --key-env, stdin, or a file.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from beancount_stripe.cli import main
from beancount_stripe.monitor import schema
from beancount_stripe.simulator import Simulator, World

REPO = Path(__file__).resolve().parent.parent
EXE = str(Path(sys.executable).parent / "beancount-stripe")
ACME = "acct_1TestAcme00001"
CHILD = "acct_1TestChild0003"
PLATFORM = "acct_1TestPlatform04"


def _env(tmp_path: Path, world: World) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BEANCOUNT_STRIPE")}
    env.update(
        PYTHONPATH=str(REPO),
        PYTHON_KEYRING_BACKEND="tests.keyring_folder.FolderKeyring",
        TEST_KEYRING_DIR=str(tmp_path / "keyring"),
        ACME_KEY=world.accounts[ACME].key,
        PLATFORM_KEY=world.accounts[PLATFORM].key,
    )
    return env


def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EXE, *args], env=env, cwd=cwd, capture_output=True, text=True, check=False, timeout=300
    )


def _comments(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip().startswith("#")] + [
        "#" + line.split("#", 1)[1] for line in text.splitlines() if "  #" in line
    ]


def test_init_connect_sync(tmp_path: Path, sim: Simulator, world: World) -> None:
    env = _env(tmp_path, world)
    firm = tmp_path / "firm"
    init = _run(["init", str(firm), "--name", "Test & Co"], env, tmp_path)
    assert init.returncode == 0, init.stderr
    for name in ("clients.yaml", ".gitignore", "import.py", "README.md", "schedule"):
        assert (firm / name).exists(), name
    original = (firm / "clients.yaml").read_text()

    # a direct account, key from an env var, stored in the (test) keyring
    acme = _run(
        [
            "-c",
            "clients.yaml",
            "connect",
            "acme",
            "--key-env",
            "ACME_KEY",
            "--store",
            "keyring",
            "--api-base",
            sim.url,
            "--yes",
        ],
        env,
        firm,
    )
    assert acme.returncode == 0, acme.stdout + acme.stderr
    for shown in (ACME, "Test acct_1TestAcme00001", "US", "USD"):
        assert shown in acme.stdout
    # Connect mode: the platform's key, stored in a 0600 file
    gulf = _run(
        [
            "-c",
            "clients.yaml",
            "connect",
            "gulf",
            "--connect",
            "--account",
            CHILD,
            "--key-env",
            "PLATFORM_KEY",
            "--store",
            "file",
            "--api-base",
            sim.url,
            "--yes",
        ],
        env,
        firm,
    )
    assert gulf.returncode == 0, gulf.stdout + gulf.stderr
    assert PLATFORM in gulf.stdout and CHILD in gulf.stdout
    key_file = firm / "secrets" / "gulf.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((firm / "secrets").stat().st_mode) == 0o700

    edited = (firm / "clients.yaml").read_text()
    # every comment survived, in order, and the clients were appended in order
    kept = _comments(edited)
    assert [c for c in kept if c in _comments(original)] == _comments(original)
    assert edited.index("id: acme") < edited.index("id: gulf")
    assert "key: keyring" in edited and "key: file:secrets/gulf.key" in edited
    assert f"platform_account: {PLATFORM}" in edited

    check = _run(["-c", "clients.yaml", "config", "check"], env, firm)
    assert check.returncode == 0, check.stderr
    assert "OK, 2 client(s)" in check.stdout

    sync = _run(["-c", "clients.yaml", "sync", "--all", "--json", "--check"], env, firm)
    assert sync.returncode == 0, sync.stdout + sync.stderr
    summary = json.loads(sync.stdout)
    jsonschema.validate(summary, schema())
    by_id = {c["id"]: c for c in summary["clients"]}
    assert by_id["acme"]["booked"] == len(world.accounts[ACME].history.transactions)
    assert by_id["gulf"]["booked"] == len(world.accounts[CHILD].history.transactions)
    assert all(c["bean_check"]["ok"] for c in summary["clients"])
    assert all(t["ties_out"] for c in summary["clients"] for t in c["tie_out"])

    # The keys are nowhere in the folder: not in the config, the ledgers, the archive, the
    # schedules; the file-stored key only in its own secrets file.
    keys = {world.accounts[ACME].key, world.accounts[PLATFORM].key}
    for path in firm.rglob("*"):
        if path.is_file() and path != key_file:
            content = path.read_bytes()
            assert not any(k.encode() in content for k in keys), path
    for output in (init, acme, gulf, check, sync):
        assert not any(k in output.stdout + output.stderr for k in keys)


def test_connect_asks_for_the_key_hidden_and_keeps_it_out_of_the_output(
    tmp_path: Path, sim: Simulator, world: World
) -> None:
    firm = tmp_path / "firm"
    assert CliRunner().invoke(main, ["init", str(firm)]).exit_code == 0
    key = world.accounts[ACME].key
    result = CliRunner().invoke(
        main,
        [
            "-c",
            str(firm / "clients.yaml"),
            "connect",
            "acme",
            "--store",
            "file",
            "--api-base",
            sim.url,
        ],
        input=f"{key}\ny\n",
    )
    assert result.exit_code == 0, result.output
    assert "input hidden" in result.output and key not in result.output
    assert "Book this account as client 'acme'?" in result.output
    # answering no changes nothing
    before = (firm / "clients.yaml").read_text()
    no = CliRunner().invoke(
        main,
        [
            "-c",
            str(firm / "clients.yaml"),
            "connect",
            "other",
            "--store",
            "file",
            "--api-base",
            sim.url,
        ],
        input=f"{world.accounts['acct_1TestOther0002'].key}\nn\n",
    )
    assert no.exit_code == 1 and "Nothing changed" in no.output
    assert (firm / "clients.yaml").read_text() == before
    assert not (firm / "secrets" / "other.key").exists()


def test_connect_refuses_a_wrong_key_and_a_duplicate(
    tmp_path: Path, sim: Simulator, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    firm = tmp_path / "firm"
    CliRunner().invoke(main, ["init", str(firm)])
    cfg = str(firm / "clients.yaml")
    monkeypatch.setenv("WRONG_KEY", "sk_test_" + "x" * 24)
    wrong = CliRunner().invoke(
        main,
        [
            "-c",
            cfg,
            "connect",
            "acme",
            "--key-env",
            "WRONG_KEY",
            "--store",
            "file",
            "--api-base",
            sim.url,
            "--yes",
        ],
    )
    assert wrong.exit_code == 3 and "401" in wrong.output
    assert "x" * 24 not in wrong.output
    monkeypatch.setenv("ACME_KEY", world.accounts[ACME].key)
    args = [
        "-c",
        cfg,
        "connect",
        "acme",
        "--key-env",
        "ACME_KEY",
        "--store",
        "env",
        "--api-base",
        sim.url,
        "--yes",
    ]
    assert CliRunner().invoke(main, args).exit_code == 0
    again = CliRunner().invoke(main, args)
    assert again.exit_code != 0 and "already" in again.output


CRON_FIELD = re.compile(r"^(\*|\d+(-\d+)?)(/\d+)?(,(\d+(-\d+)?))*$")
CRON_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))


def test_init_schedules_are_valid(tmp_path: Path) -> None:
    firm = tmp_path / "my firm"  # a space: the paths must be quoted for cron and systemd
    assert CliRunner().invoke(main, ["init", str(firm)]).exit_code == 0
    cron = (firm / "schedule" / "beancount-stripe.cron").read_text()
    jobs = [
        line
        for line in cron.splitlines()
        if line.strip() and not line.startswith("#") and "=" not in line.split()[0]
    ]
    assert len(jobs) == 1
    fields = jobs[0].split(None, 5)
    for value, (low, high) in zip(fields[:5], CRON_RANGES, strict=True):
        assert CRON_FIELD.match(value), value
        for number in re.findall(r"\d+", value.split("/")[0]):
            assert low <= int(number) <= high
    command = fields[5]
    assert f"cd '{firm}'" in command and "sync --all" in command
    # the command line is valid shell and names the installed executable
    assert subprocess.run(["sh", "-n", "-c", command], check=False).returncode == 0
    assert EXE in command

    service = firm / "schedule" / "beancount-stripe-sync.service"
    timer = firm / "schedule" / "beancount-stripe-sync.timer"
    assert f'ExecStart="{EXE}"' in service.read_text() or f"ExecStart={EXE}" in service.read_text()
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed; the cron line was checked")
    proc = subprocess.run(
        [analyze, "verify", "--man=no", str(service), str(timer)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr
    cal = subprocess.run([analyze, "calendar", "hourly"], capture_output=True, check=False)
    assert cal.returncode == 0


def test_init_never_overwrites(tmp_path: Path) -> None:
    firm = tmp_path / "firm"
    CliRunner().invoke(main, ["init", str(firm)])
    (firm / "clients.yaml").write_text("# mine\n")
    result = CliRunner().invoke(main, ["init", str(firm)])
    assert result.exit_code == 0 and "kept    clients.yaml" in result.output
    assert (firm / "clients.yaml").read_text() == "# mine\n"


def test_add_client_keeps_a_hand_written_config_byte_for_byte(tmp_path: Path) -> None:
    """The example config (comments inside and after the client list) only gains the client."""
    from beancount_stripe.connect import add_client

    cfg = tmp_path / "clients.yaml"
    original = (REPO / "config" / "clients.yaml").read_text()
    cfg.write_text(original)
    add_client(
        cfg,
        {
            "id": "new-one",
            "name": "New One",
            "stripe_account": "acct_1NewOne",
            "key": "keyring",
            "ledger": "ledgers/new-one/ledger.beancount",
        },
    )
    edited = cfg.read_text()
    added = [line for line in edited.splitlines() if line not in original.splitlines()]
    assert added == [
        "  - id: new-one",
        "    name: New One",
        "    stripe_account: acct_1NewOne",
        "    key: keyring",
        "    ledger: ledgers/new-one/ledger.beancount",
    ]
    assert [line for line in original.splitlines() if line not in edited.splitlines()] == []
    # the comment about `rules:` after the list still comes after the list, new client included
    assert edited.index("  - id: new-one") < edited.index("# Categorization rules shared")


def test_connect_names_a_missing_permission_and_stores_nothing(
    tmp_path: Path, sim: Simulator, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from beancount_stripe.stripe_api import PERMISSION_NAMES

    firm = tmp_path / "firm"
    CliRunner().invoke(main, ["init", str(firm)])
    cfg = firm / "clients.yaml"
    before = cfg.read_text()
    held = set(PERMISSION_NAMES) - {"rak_charge_read"}
    key = world.add_restricted_key(ACME, "rk_test_" + "Onboard" * 4, held)
    monkeypatch.setenv("RK_KEY", key)
    result = CliRunner().invoke(
        main,
        [
            "-c",
            str(cfg),
            "connect",
            "acme",
            "--key-env",
            "RK_KEY",
            "--store",
            "file",
            "--api-base",
            sim.url,
            "--yes",
        ],
    )
    assert result.exit_code == 3, result.output
    assert "Charges: Read (rak_charge_read)" in result.output and ACME in result.output
    assert key not in result.output
    assert cfg.read_text() == before and not (firm / "secrets" / "acme.key").exists()
    # with every permission it connects
    full = world.add_restricted_key(ACME, "rk_test_" + "Complete" * 4, PERMISSION_NAMES)
    monkeypatch.setenv("RK_KEY", full)
    ok = CliRunner().invoke(
        main,
        [
            "-c",
            str(cfg),
            "connect",
            "acme",
            "--key-env",
            "RK_KEY",
            "--store",
            "file",
            "--api-base",
            sim.url,
            "--yes",
        ],
    )
    assert ok.exit_code == 0, ok.output
    assert "every read permission sync needs ✔" in ok.output


def test_connect_reads_the_key_from_a_file(tmp_path: Path, sim: Simulator, world: World) -> None:
    firm = tmp_path / "firm"
    CliRunner().invoke(main, ["init", str(firm)])
    handed_over = tmp_path / "from-the-client.txt"
    handed_over.write_text(world.accounts[ACME].key + "\n")
    result = CliRunner().invoke(
        main,
        [
            "-c",
            str(firm / "clients.yaml"),
            "connect",
            "acme",
            "--key-file",
            str(handed_over),
            "--store",
            "file",
            "--api-base",
            sim.url,
            "--yes",
        ],
    )
    assert result.exit_code == 0, result.output
    stored = firm / "secrets" / "acme.key"
    assert stored.read_text().strip() == world.accounts[ACME].key
    assert "key: file:secrets/acme.key" in (firm / "clients.yaml").read_text()
