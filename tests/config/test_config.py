"""Tests for beancount_stripe.config: loading, every validation error, key sources.

Error fixtures mark the line each error must be reported on with a trailing ``# <- NAME``
comment, so expected line numbers come from the fixture text, not from the test.
Literal-looking Stripe keys are built at run time (never stored in a fixture) so secret
scanners don't flag the repository.
"""

from __future__ import annotations

import os
import re
import stat
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from beancount_stripe.config import (
    DEFAULT_ACCOUNTS,
    ClientConfig,
    InvalidConfigError,
    KeySource,
    Problem,
    check_config,
    load_config,
    make_accounts,
    mask_key,
    resolve_key,
)
from beancount_stripe.errors import ConfigError, KeySourceError

HERE = Path(__file__).parent
FIXTURES = HERE / "fixtures"
EXAMPLE = HERE.parent.parent / "config" / "clients.yaml"

try:
    import keyring
    import keyring.backend
    import keyring.backends.fail
except ImportError:  # pragma: no cover - keyring is in the test extras
    keyring = None  # type: ignore[assignment]


def fake_key(kind: str = "sk_live_", body: str = "4eC39HqLyjWDarjtT1zdp7dcWxYz") -> str:
    """A string shaped like a Stripe key, assembled so no literal key sits in the source."""
    return kind + body


def marker_line(path: Path, marker: str) -> int:
    """1-based line of the ``# <- marker`` comment in ``path``."""
    pattern = re.compile(rf"#\s*<-\s*{re.escape(marker)}\s*$")
    hits = [n for n, text in enumerate(path.read_text().splitlines(), 1) if pattern.search(text)]
    assert len(hits) == 1, f"marker {marker!r} must occur once in {path.name}"
    return hits[0]


def config_error(path: Path) -> InvalidConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert isinstance(info.value, InvalidConfigError)
    return info.value


def write(tmp_path: Path, text: str, name: str = "clients.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def client_yaml(
    cid: str = "acme", key: str = "env:ACME_STRIPE_KEY", extra: str = "", indent: str = "    "
) -> str:
    lines = [
        f"  - id: {cid}",
        f"{indent}name: {cid.title()}",
        f"{indent}stripe_account: acct_1{re.sub('[^A-Za-z0-9]', '', cid)}",
        f"{indent}key: {key}",
        f"{indent}ledger: {cid}/ledger.beancount",
    ]
    return "\n".join(lines) + "\n" + extra


# -- one test per error kind ----------------------------------------------------------------

# (fixture, marker, key path, fragment of the message, fragment of the fix)
ERROR_CASES = [
    ("unknown_keys.yaml", "top", "client", "unknown key `client`", "did you mean `clients`"),
    ("unknown_keys.yaml", "defaults", "defaults.timezon", "unknown key", "`timezone`"),
    (
        "unknown_keys.yaml",
        "client",
        "clients[0].operating_curency",
        "unknown key `operating_curency`",
        "did you mean `operating_currency`",
    ),
    ("defaults_client_key.yaml", "ledger", "defaults.ledger", "cannot be shared", "each client"),
    ("missing_required.yaml", "client", "clients[1].name", "missing required key", "add `name:"),
    ("missing_required.yaml", "client", "clients[1].ledger", "missing required", "`ledger:"),
    (
        "bad_accounts.yaml",
        "root",
        "defaults.accounts.fees",
        "must start with one of Assets, Liabilities, Equity, Income, Expenses",
        "Beancount account",
    ),
    (
        "bad_accounts.yaml",
        "lower",
        "clients[0].accounts.revenue",
        "component `acme` must start with an upper-case letter",
        "Beancount account",
    ),
    (
        "bad_accounts.yaml",
        "space",
        "clients[0].accounts.refunds",
        "may contain only letters, digits and `-`",
        "Beancount account",
    ),
    (
        "bad_accounts.yaml",
        "placeholder",
        "clients[0].accounts.clearing",
        "only the `{client}` placeholder",
        "Beancount account",
    ),
    (
        "bad_accounts.yaml",
        "unknown",
        "clients[0].accounts.revenu",
        "unknown account key `revenu`",
        "did you mean `revenue`",
    ),
    ("bad_accounts.yaml", "type", "clients[0].accounts.transit", "must be a string", "account"),
    (
        "bad_account_name.yaml",
        "name",
        "clients[0].account_name",
        "cannot be used inside account names",
        "CamelCase",
    ),
    ("duplicate_ids.yaml", "second", "clients[1].id", "duplicate client id `acme`", "unique id"),
    ("bad_key_sources.yaml", "empty", "clients[0].key", "needs a variable name", "key: env:"),
    (
        "bad_key_sources.yaml",
        "badname",
        "clients[1].key",
        "`1-BAD` is not a valid environment variable name",
        "letters, digits and `_`",
    ),
    (
        "bad_key_sources.yaml",
        "scheme",
        "clients[2].key",
        "unknown key source `vault:`",
        "`env:NAME`, `file:PATH`, `keyring`",
    ),
    (
        "bad_key_sources.yaml",
        "keyring",
        "clients[3].key",
        "must be `keyring:SERVICE/USERNAME`",
        "keyring:beancount-stripe/acme",
    ),
    ("bad_key_sources.yaml", "bare", "clients[4].key", "not a key source", "env:E_STRIPE_KEY"),
    ("bad_values.yaml", "api", "defaults.api_base", "not an http(s) URL", "http://127.0.0.1"),
    ("bad_values.yaml", "id", "clients[0].id", "not a valid client id", "e.g. `acme-co`"),
    ("bad_values.yaml", "acct", "clients[0].stripe_account", "not a Stripe account id", "acct_"),
    (
        "bad_values.yaml",
        "tz",
        "clients[0].timezone",
        "unknown time zone `America/New_Yrok`",
        "did you mean `America/New_York`",
    ),
    (
        "bad_values.yaml",
        "cur",
        "clients[0].operating_currency",
        "unknown currency `DOLLARS`",
        "ISO 4217",
    ),
    ("bad_values.yaml", "connect", "clients[0].connect", "must be true or false", "connect: true"),
    (
        "bad_values.yaml",
        "platform",
        "clients[1].platform_account",
        "only used with `connect: true`",
        "add `connect: true`",
    ),
    ("bad_values.yaml", "lower", "clients[1].operating_currency", "`jpy`", "write `JPY`"),
    ("wrong_types.yaml", "name", "clients[0].name", "must be a string, not a number", "name:"),
    ("wrong_types.yaml", "tz", "clients[0].timezone", "must be a string, not a list", "IANA"),
    ("wrong_types.yaml", "item", "clients[1]", "must be a mapping", "- id:"),
    ("clients_not_list.yaml", "clients", "clients", "must be a list, not a mapping", "- id:"),
    (
        "shared_paths.yaml",
        "default-collision",
        "clients[1].ledger",
        "same output file as clients[0] `acme`",
        "own `output:`",
    ),
    (
        "shared_paths.yaml",
        "default-collision",
        "clients[1].ledger",
        "same archive directory as clients[0] `acme`",
        "own `archive:`",
    ),
    ("shared_paths.yaml", "output", "clients[2].output", "same output file", "own `output:`"),
    ("shared_paths.yaml", "archive", "clients[2].archive", "same archive directory", "archive:"),
    ("malformed.yaml", "here", "", "malformed YAML: expected <block end>", "indentation"),
    ("duplicate_key.yaml", "dup", "clients[0].timezone", "duplicate key `timezone`", "only one"),
]


@pytest.mark.parametrize(
    ("fixture", "marker", "key_path", "message", "fix"),
    ERROR_CASES,
    ids=[f"{c[0].removesuffix('.yaml')}-{c[1]}-{c[2] or 'file'}" for c in ERROR_CASES],
)
def test_error_names_file_line_key_path_and_fix(
    fixture: str, marker: str, key_path: str, message: str, fix: str
) -> None:
    path = FIXTURES / fixture
    line = marker_line(path, marker)
    text = str(config_error(path))
    prefix = f"{path}:{line}: {key_path}: " if key_path else f"{path}:{line}: "
    candidates = [row for row in text.splitlines() if row.startswith(prefix) and message in row]
    assert candidates, f"no line starting {prefix!r} containing {message!r} in:\n{text}"
    assert any(fix in row.split("(fix: ", 1)[1] for row in candidates if "(fix: " in row), text
    # check_config reports the same problem, as a structured error.
    found = [
        p
        for p in check_config(path)
        if p.line == line and p.key_path == key_path and message in p.message
    ]
    assert found and all(p.severity == "error" and fix in p.fix for p in found)


def test_duplicate_ids_name_both_lines() -> None:
    path = FIXTURES / "duplicate_ids.yaml"
    first, second = marker_line(path, "first"), marker_line(path, "second")
    (problem,) = [p for p in config_error(path).problems if "duplicate client id" in p.message]
    assert problem.line == second
    assert f"line {first}" in problem.message and "clients[0]" in problem.message


@pytest.mark.parametrize("fixture", ["empty.yaml", "comment_only.yaml"])
def test_empty_file_is_an_error(fixture: str) -> None:
    path = FIXTURES / fixture
    err = config_error(path)
    assert [(p.file, p.line) for p in err.problems] == [(str(path), 1)]
    assert "empty" in err.problems[0].message and "clients:" in err.problems[0].fix


def test_all_problems_are_listed_one_per_line() -> None:
    path = FIXTURES / "bad_values.yaml"
    err = config_error(path)
    markers = ["api", "id", "acct", "tz", "cur", "connect", "platform", "lower"]
    assert {marker_line(path, m) for m in markers} <= {p.line for p in err.problems}
    listed = [
        row for row in str(err).splitlines() if re.match(rf"{re.escape(str(path))}:\d+: ", row)
    ]
    assert len(listed) == len(err.problems) >= len(markers)
    assert f"{len(err.problems)} problems" in str(err)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    err = config_error(path)
    assert "not found" in str(err) and str(path) in str(err)
    assert [p.message for p in check_config(path)] == ["configuration file not found"]


def test_top_level_not_a_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "- id: acme\n")
    (problem,) = config_error(path).problems
    assert problem.line == 1 and "must be a mapping" in problem.message


def test_missing_clients_key(tmp_path: Path) -> None:
    path = write(tmp_path, "defaults:\n  timezone: UTC\n")
    (problem,) = config_error(path).problems
    assert "no `clients:` list" in problem.message


def test_empty_clients_list(tmp_path: Path) -> None:
    path = write(tmp_path, "defaults:\n  timezone: UTC\nclients: []\n")
    (problem,) = config_error(path).problems
    assert (problem.line, problem.key_path) == (3, "clients") and "empty" in problem.message


def test_key_in_defaults_connect_problem_names_client(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "defaults:\n  platform_account: acct_1Platform\nclients:\n" + client_yaml("acme"),
    )
    (problem,) = config_error(path).problems
    assert (problem.line, problem.key_path) == (2, "defaults.platform_account")
    assert "client `acme`" in problem.message


def test_platform_account_equal_to_stripe_account(tmp_path: Path) -> None:
    extra = "    connect: true\n    platform_account: acct_1acme\n"
    path = write(tmp_path, "clients:\n" + client_yaml("acme", extra=extra))
    (problem,) = config_error(path).problems
    assert (problem.line, problem.key_path) == (8, "clients[0].platform_account")
    assert "equals `stripe_account`" in problem.message


# -- literal keys ---------------------------------------------------------------------------


def test_literal_key_anywhere_is_reported_masked(tmp_path: Path) -> None:
    secret = fake_key("sk_live_")
    restricted = fake_key("rk_test_", "51HxQ2eZvKYlo2C0aBcDeFgH9876")
    text = (
        "defaults:\n"
        "  timezone: UTC\n"
        "clients:\n"
        f"  - id: acme\n"  # line 4
        f"    name: Acme {restricted}\n"  # line 5: in an ordinary value
        "    stripe_account: acct_1Acme\n"
        f"    key: {secret}\n"  # line 7: pasted where the key source goes
        "    ledger: acme/ledger.beancount\n"
        f"# old key was {secret}\n"  # line 9: in a comment
        "rules:\n"
        f"  - note: {restricted}\n"  # line 11: under the reserved `rules`
    )
    path = write(tmp_path, text)
    err = config_error(path)
    rendered = str(err)
    checked = "\n".join(str(p) for p in check_config(path))
    for output in (rendered, checked, repr(err.problems)):
        assert secret not in output and restricted not in output
        assert secret[8:] not in output and restricted[8:] not in output
    by_line = {
        p.line: p for p in err.problems if "Stripe API key" in p.message or "`key`" in p.message
    }
    assert set(by_line) == {5, 7, 9, 11}
    assert by_line[5].key_path == "clients[0].name"
    assert by_line[7].key_path == "clients[0].key"
    assert by_line[11].key_path == "rules[0].note"
    assert f"sk_live_…{secret[-4:]}" in by_line[7].message
    assert f"rk_test_…{restricted[-4:]}" in by_line[5].message
    for p in by_line.values():
        assert "environment variable" in p.fix and "keyring" in p.fix
    assert "env:ACME_STRIPE_KEY" in by_line[7].fix


def test_literal_key_found_even_when_yaml_is_malformed(tmp_path: Path) -> None:
    secret = fake_key("sk_test_")
    path = write(tmp_path, f"clients:\n  - id: acme\n    key: {secret}\n   bad: indent\n")
    err = config_error(path)
    assert secret not in str(err)
    assert any(p.line == 3 and "sk_test_…" in p.message for p in err.problems)
    assert any("malformed YAML" in p.message for p in err.problems)


def test_literal_key_in_a_tagged_value_is_not_echoed(tmp_path: Path) -> None:
    """`!!int` makes PyYAML raise ValueError quoting the value; that text must not leak."""
    secret = fake_key("sk_live_")
    path = write(
        tmp_path, "clients:\n" + client_yaml("acme").replace("name: Acme", f"name: !!int {secret}")
    )
    err = config_error(path)
    assert secret not in str(err) and secret not in "\n".join(map(str, check_config(path)))
    messages = [p.message for p in err.problems if p.key_path == "clients[0].name"]
    assert any("cannot read this value" in m for m in messages)
    assert any("sk_live_…" in m for m in messages)


def test_key_value_that_is_not_a_source_is_masked(tmp_path: Path) -> None:
    not_a_source = "hunter2-correct-horse-battery"
    path = write(tmp_path, "clients:\n" + client_yaml("acme", key=not_a_source))
    err = config_error(path)
    assert not_a_source not in str(err)
    (problem,) = err.problems
    assert problem.line == 5 and problem.key_path == "clients[0].key"
    assert f"…{not_a_source[-4:]}" in problem.message


@pytest.mark.parametrize(
    ("secret", "masked"),
    [
        ("sk_live_" + "abcdefghijklmnop1234", "sk_live_…1234"),
        ("rk_test_" + "ABCDEFGHIJKLwxyz", "rk_test_…wxyz"),
        ("sk_test_" + "short", "sk_test_…"),
        ("password", "…"),
    ],
)
def test_mask_key(secret: str, masked: str) -> None:
    assert mask_key(secret) == masked


# -- a valid file -----------------------------------------------------------------------------


def test_valid_multi_client_file_loads() -> None:
    path = FIXTURES / "valid.yaml"
    config = load_config(path)
    assert config.path == path.absolute()
    acme, kyoto, gulf = config.clients
    lines = path.read_text().splitlines()

    assert acme == ClientConfig(
        id="acme",
        name="Acme Coffee Roasters",
        stripe_account="acct_1AcmeCoffee0",
        key=KeySource("env", "ACME_STRIPE_KEY"),
        ledger=FIXTURES / "ledgers/acme/ledger.beancount",
        output=FIXTURES / "ledgers/acme/stripe.beancount",
        archive_dir=FIXTURES / "ledgers/acme/archive",
        timezone="America/New_York",
        accounts=make_accounts(
            "Acme",
            {
                "fees": "Expenses:{client}:Bank-Fees",
                "fee_tax": "Expenses:{client}:Fee-Tax",
                "revenue": "Income:Acme:Coffee",
            },
        ),
        connect=False,
        platform_account=None,
        api_base="http://127.0.0.1:12111",
        operating_currency="USD",
        source_file=path.absolute(),
        source_line=lines.index("  - id: acme") + 1,
        account_name="Acme",
        rules=(),
        shared_rules=(FIXTURES / "shared-rules.yaml",),
    )
    # Substitution and the three-level merge, spelled out.
    assert acme.accounts.fees == "Expenses:Acme:Bank-Fees"  # from defaults
    assert acme.accounts.fee_tax == "Expenses:Acme:Fee-Tax"  # from defaults
    assert acme.accounts.revenue == "Income:Acme:Coffee"  # client override
    assert acme.accounts.clearing == "Assets:Acme:Stripe"  # built-in default

    assert kyoto.key == KeySource("file", str(FIXTURES / "secrets/kyoto.key"))
    assert kyoto.ledger == FIXTURES / "ledgers/kyoto/main.beancount"
    assert kyoto.output == FIXTURES / "ledgers/kyoto/synced/stripe.beancount"
    assert kyoto.archive_dir == HERE / "outside/kyoto-archive"
    assert (kyoto.timezone, kyoto.operating_currency) == ("Europe/Berlin", "EUR")  # defaults
    assert kyoto.accounts.clearing == "Assets:Kyoto:Stripe"  # account_name
    assert kyoto.accounts.fees == "Expenses:Kyoto:Bank-Fees"
    assert kyoto.accounts.fee_tax is None  # client's "" cancels the default
    assert kyoto.api_base == "http://127.0.0.1:12111"
    # a client's own rules first, then the shared ones
    assert kyoto.rules == (FIXTURES / "kyoto-rules.yaml",)
    assert kyoto.shared_rules == (FIXTURES / "shared-rules.yaml",)

    assert gulf.id == "gulf_trading"
    assert gulf.key == KeySource("keyring", "beancount-stripe/gulf_trading")
    assert (gulf.connect, gulf.platform_account) == (True, "acct_1Platform")
    assert gulf.api_base is None  # explicit null overrides the default
    assert gulf.accounts.revenue == "Income:GulfTrading:Sales"
    assert config.client("kyoto-tea") is kyoto
    assert [p for p in check_config(path) if "client `" not in p.message] == []


def test_yaml_merge_keys_are_supported(tmp_path: Path) -> None:
    text = (
        "clients:\n"
        + client_yaml("kyoto", extra='    accounts: &tea\n      revenue: "Income:Tea:Sales"\n')
        + client_yaml("osaka", extra="    accounts:\n      <<: *tea\n")
    )
    kyoto, osaka = load_config(write(tmp_path, text)).clients
    assert osaka.accounts.revenue == kyoto.accounts.revenue == "Income:Tea:Sales"


def test_unknown_currency_per_currency_module(tmp_path: Path) -> None:
    """`ABC` has the right shape, so only the currency module can reject it."""
    pytest.importorskip("beancount_stripe.currency")
    extra = "    operating_currency: ABC\n"
    path = write(tmp_path, "clients:\n" + client_yaml("acme", extra=extra))
    (problem,) = config_error(path).problems
    assert (problem.line, problem.key_path) == (7, "clients[0].operating_currency")


def test_every_default_account_is_valid_for_any_client_id(tmp_path: Path) -> None:
    path = write(tmp_path, "clients:\n" + client_yaml("9-lives_co"))
    (client,) = load_config(path).clients
    assert client.accounts.clearing == "Assets:9LivesCo:Stripe"
    assert len([v for v in vars(client.accounts).values() if v]) == len(DEFAULT_ACCOUNTS) - 1


def test_example_config_loads() -> None:
    config = load_config(EXAMPLE)
    ids = [c.id for c in config.clients]
    assert ids == ["acme", "kyoto-tea", "gulf-trading"]
    acme, kyoto, gulf = config.clients
    example_ledger = EXAMPLE.parent.parent / "example-ledger"
    for c in config.clients:
        assert c.ledger == example_ledger / c.id / "ledger.beancount"
        assert c.key.kind == "env"
    assert (acme.timezone, kyoto.timezone, gulf.timezone) == (
        "America/New_York",
        "Asia/Tokyo",
        "Asia/Bahrain",
    )
    assert (gulf.connect, gulf.platform_account) == (True, "acct_1FirmPlatform0001")
    assert gulf.key == KeySource("env", "FIRM_PLATFORM_STRIPE_KEY")
    assert not acme.connect and not kyoto.connect
    assert not re.search(r"(sk|rk)_(test|live)_[0-9A-Za-z]{6,}", EXAMPLE.read_text())


# -- Problem ----------------------------------------------------------------------------------


def test_problem_str() -> None:
    p = Problem("c.yaml", 7, "clients[1].accounts.revenue", "bad name", "rename it")
    assert str(p) == "c.yaml:7: clients[1].accounts.revenue: bad name (fix: rename it)"
    assert p.severity == "error"
    w = Problem("c.yaml", None, "clients[0].key", "readable by others", "chmod 600", "warning")
    assert str(w) == "c.yaml: clients[0].key: warning: readable by others (fix: chmod 600)"


# -- resolve_key ------------------------------------------------------------------------------


def client_with(key: KeySource, tmp_path: Path) -> ClientConfig:
    return ClientConfig(
        id="acme",
        name="Acme",
        stripe_account="acct_1Acme",
        key=key,
        ledger=tmp_path / "ledger.beancount",
        output=tmp_path / "stripe.beancount",
        archive_dir=tmp_path / "archive",
    )


def test_resolve_key_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = fake_key("rk_live_")
    monkeypatch.setenv("BS_TEST_KEY", f"  {secret}\n")
    assert resolve_key(client_with(KeySource("env", "BS_TEST_KEY"), tmp_path)) == secret


@pytest.mark.parametrize("value", [None, "", "   \n"])
def test_resolve_key_env_missing_or_empty(
    value: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if value is None:
        monkeypatch.delenv("BS_TEST_KEY", raising=False)
    else:
        monkeypatch.setenv("BS_TEST_KEY", value)
    with pytest.raises(KeySourceError) as info:
        resolve_key(client_with(KeySource("env", "BS_TEST_KEY"), tmp_path))
    text = str(info.value)
    assert "BS_TEST_KEY" in text and "acme" in text
    assert ("not set" if value is None else "empty") in text
    assert "fix:" in text


def test_resolve_key_from_file(tmp_path: Path) -> None:
    secret = fake_key("sk_test_")
    key_file = tmp_path / "acme.key"
    key_file.write_text(secret + "\n")
    assert resolve_key(client_with(KeySource("file", str(key_file)), tmp_path)) == secret


def test_resolve_key_relative_file_uses_config_dir(tmp_path: Path) -> None:
    secret = fake_key("sk_test_")
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "acme.key").write_text(secret)
    path = write(tmp_path, "clients:\n" + client_yaml("acme", key="file:keys/acme.key"))
    (client,) = load_config(path).clients
    assert resolve_key(client) == secret


@pytest.mark.parametrize("content", [None, "", "\n \n"])
def test_resolve_key_file_missing_or_empty(content: str | None, tmp_path: Path) -> None:
    key_file = tmp_path / "acme.key"
    if content is not None:
        key_file.write_text(content)
    with pytest.raises(KeySourceError) as info:
        resolve_key(client_with(KeySource("file", str(key_file)), tmp_path))
    assert str(key_file) in str(info.value)
    assert ("does not exist" if content is None else "is empty") in str(info.value)


@pytest.mark.parametrize(
    "value",
    [
        "pk_live_" + "Abcdefghijklmnop1234",
        "Bearer sk_live_" + "x1234567890abcdef",
        "whsec_" + "0123456789abcdefgh",
    ],
)
def test_resolve_key_rejects_non_keys_without_echoing(
    value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BS_TEST_KEY", value)
    with pytest.raises(KeySourceError) as info:
        resolve_key(client_with(KeySource("env", "BS_TEST_KEY"), tmp_path))
    text = str(info.value)
    assert value not in text and value[:-4] not in text
    assert "rk_" in text and "sk_" in text  # the fix says what a key looks like


# -- keyring (a real in-memory backend, selected explicitly) ----------------------------------

if keyring is not None:

    class MemoryKeyring(keyring.backend.KeyringBackend):
        """A real keyring backend that keeps entries in a dict.

        Its negative priority keeps keyring's auto-detection from ever choosing it.
        """

        priority = -1  # type: ignore[assignment]

        def __init__(self) -> None:
            super().__init__()
            self.entries: dict[tuple[str, str], str] = {}

        def get_password(self, service: str, username: str) -> str | None:
            return self.entries.get((service, username))

        def set_password(self, service: str, username: str, password: str) -> None:
            self.entries[(service, username)] = password

        def delete_password(self, service: str, username: str) -> None:
            del self.entries[(service, username)]


@pytest.fixture
def use_keyring() -> Iterator[Callable[[Any], None]]:
    """Select a keyring backend for one test and restore the previous one afterwards."""
    if keyring is None:
        pytest.skip("keyring not installed")
    previous = keyring.get_keyring()
    yield keyring.set_keyring
    keyring.set_keyring(previous)


def test_resolve_key_from_keyring(tmp_path: Path, use_keyring: Callable[[Any], None]) -> None:
    backend = MemoryKeyring()
    use_keyring(backend)
    secret = fake_key("rk_live_")
    keyring.set_password("beancount-stripe", "acme", secret)
    assert backend.entries == {("beancount-stripe", "acme"): secret}
    client = client_with(KeySource("keyring", "beancount-stripe/acme"), tmp_path)
    assert resolve_key(client) == secret


def test_resolve_key_keyring_without_entry(
    tmp_path: Path, use_keyring: Callable[[Any], None]
) -> None:
    use_keyring(MemoryKeyring())
    with pytest.raises(KeySourceError) as info:
        resolve_key(client_with(KeySource("keyring", "beancount-stripe/acme"), tmp_path))
    assert "no entry" in str(info.value) and "keyring set beancount-stripe acme" in str(info.value)


def test_resolve_key_keyring_unavailable(
    tmp_path: Path, use_keyring: Callable[[Any], None]
) -> None:
    use_keyring(keyring.backends.fail.Keyring())
    with pytest.raises(KeySourceError) as info:
        resolve_key(client_with(KeySource("keyring", "beancount-stripe/acme"), tmp_path))
    assert "no usable keyring backend" in str(info.value)
    assert "env:" in str(info.value)


def test_resolve_key_keyring_not_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "keyring", None)  # makes `import keyring` fail
    with pytest.raises(KeySourceError) as info:
        resolve_key(client_with(KeySource("keyring", "beancount-stripe/acme"), tmp_path))
    assert "not installed" in str(info.value) and "beancount-stripe[keyring]" in str(info.value)


# -- check_config: key sources, errors vs warnings --------------------------------------------


def test_check_config_env_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "clients:\n" + client_yaml("acme", key="env:BS_CHECK_KEY"))
    monkeypatch.delenv("BS_CHECK_KEY", raising=False)
    (problem,) = check_config(path)
    assert (problem.line, problem.key_path, problem.severity) == (5, "clients[0].key", "error")
    assert "BS_CHECK_KEY is not set" in problem.message
    secret = fake_key("rk_live_")
    monkeypatch.setenv("BS_CHECK_KEY", secret)
    assert check_config(path) == []
    load_config(path)  # load_config never looks at the key source


def test_check_config_warnings_do_not_fail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if os.name != "posix":
        pytest.skip("file modes are POSIX-only")
    secret = fake_key("sk_live_")
    key_file = tmp_path / "acme.key"
    key_file.write_text(secret)
    key_file.chmod(0o644)
    path = write(tmp_path, "clients:\n" + client_yaml("acme", key="file:acme.key"))
    problems = check_config(path)
    assert {p.severity for p in problems} == {"warning"}
    readable = [p for p in problems if "readable by every user" in p.message]
    assert len(readable) == 1 and f"chmod 600 {key_file}" in readable[0].fix
    assert any("unrestricted live secret key" in p.message for p in problems)
    assert all(secret not in str(p) for p in problems)
    load_config(path)  # warnings never fail loading

    key_file.chmod(0o600)
    key_file.write_text(fake_key("rk_live_"))
    assert check_config(path) == []
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_check_config_key_file_problems(tmp_path: Path) -> None:
    path = write(tmp_path, "clients:\n" + client_yaml("acme", key="file:acme.key"))
    (missing,) = check_config(path)
    assert missing.severity == "error" and "does not exist" in missing.message
    bad = "not-a-stripe-key-0123456789"
    (tmp_path / "acme.key").write_text(bad)
    (tmp_path / "acme.key").chmod(0o600)
    (shape,) = check_config(path)
    assert shape.severity == "error" and "does not look like" in shape.message
    assert bad not in str(shape)


def test_check_config_keyring(tmp_path: Path, use_keyring: Callable[[Any], None]) -> None:
    path = write(tmp_path, "clients:\n" + client_yaml("acme", key="keyring"))
    use_keyring(keyring.backends.fail.Keyring())
    (problem,) = check_config(path)
    assert problem.severity == "error" and "no usable keyring backend" in problem.message
    backend = MemoryKeyring()
    use_keyring(backend)
    (problem,) = check_config(path)
    assert "no entry" in problem.message
    backend.set_password("beancount-stripe", "acme", fake_key("rk_test_"))
    assert check_config(path) == []


def test_check_config_includes_load_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BS_CHECK_KEY", raising=False)
    extra = "    timezone: Mars/Olympus\n"
    path = write(tmp_path, "clients:\n" + client_yaml("acme", key="env:BS_CHECK_KEY", extra=extra))
    problems = check_config(path)
    assert [(p.line, p.key_path) for p in problems] == [
        (5, "clients[0].key"),
        (7, "clients[0].timezone"),
    ]


def test_every_booking_account_has_a_root_its_default_obeys() -> None:
    from beancount_stripe.account_roots import ROOTS, root_problem
    from beancount_stripe.config import DEFAULT_ACCOUNTS

    assert set(ROOTS) == set(DEFAULT_ACCOUNTS), "a new booking account needs its root(s)"
    for key, default in DEFAULT_ACCOUNTS.items():
        assert root_problem(key, default, default) is None, key
    assert root_problem("clearing", "Income:Acme:Stripe") is not None
    assert root_problem("revenue", "Assets:Acme:Sales") is not None
