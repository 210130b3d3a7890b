"""Invalid rules are errors with file, line and rule name; `config check` reports them.

Fixtures mark the line an error must be reported on with a trailing ``# <- NAME`` comment.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from beancount_stripe import rules
from beancount_stripe.cli import main
from beancount_stripe.config import InvalidConfigError, check_config, load_config

from .conftest import DEFAULT_RULES, write_rules

BAD = """\
rules:
  - name: bad regex
    when:
      description: {regex: '(unclosed'}            # <- regex
    account: revenue
  - name: unknown field
    when: {descripton: Wholesale}                  # <- field
    account: revenue
  - name: malformed account
    when: {type: charge}
    account: "income:{client}:sales"               # <- account
  - name: unknown template field
    when: {type: charge}
    payee: "{customer.nmae}"                       # <- template
  - name: group out of range
    when: {description: {regex: '^Order (\\d+)'}}
    narration: "Order {2}"                         # <- group
  - name: unknown operator
    when: {amount: {greater: 5}}                   # <- operator
    account: revenue
  - name: text op on a number
    when: {amount: {contains: "5"}}                # <- textop
    account: revenue
  - name: not a number
    when: {amount: {gt: lots}}                     # <- number
    account: revenue
  - name: not a date
    when: {created: {gte: last tuesday}}           # <- date
    account: revenue
  - name: unknown account key
    account: revenu                                # <- accountkey
  - name: bad flag
    flag: "?"                                      # <- flag
  - name: reserved meta
    meta: {stripe_id: "x"}                         # <- meta
  - name: percent over 100
    split:                                         # <- percent
      - {account: revenue, percent: 70}
      - {account: refunds, percent: 40}
  - name: does nothing                             # <- nothing
    when: {type: charge}
  - name: unknown key
    acount: revenue                                # <- key
  - name: bad flag                                 # <- duplicate
    tags: [ok]
  - when: {type: charge}                           # <- noname
    account: revenue
parties:
  - payee: Kim Espresso Bar
    emails: [kim@example.com]
  - payee: Somebody Else
    emails: [KIM@example.com]                      # <- party
"""

# marker → (fragment of the message, rule name or None)
EXPECTED = {
    "regex": ("invalid regular expression", "bad regex"),
    "field": ("unknown field `descripton` did you mean `description`?", "unknown field"),
    "account": ("not a valid Beancount account name", "malformed account"),
    "template": ("unknown template field `{customer.nmae}`", "unknown template field"),
    "group": ("at most 1 group", "group out of range"),
    "operator": ("unknown operator `greater`", "unknown operator"),
    "textop": ("`contains` compares text, but `amount` is a number", "text op on a number"),
    "number": ("'lots' is not a number", "not a number"),
    "date": ("'last tuesday' is not a date", "not a date"),
    "accountkey": ("did you mean `revenue`?", "unknown account key"),
    "flag": ('flag must be "*" or "!"', "bad flag"),
    "meta": ("`stripe_id` is written by beancount-stripe", "reserved meta"),
    "percent": ("add up to 110", "percent over 100"),
    "nothing": ("the rule does nothing", "does nothing"),
    "key": ("unknown key `acount` in a rule", "unknown key"),
    "duplicate": ("duplicate rule name `bad flag`", None),
    "noname": ("a rule needs a `name`", None),
    "party": ("already belongs to party `Kim Espresso Bar`", None),
}


def marker_line(text: str, marker: str) -> int:
    pattern = re.compile(rf"#\s*<-\s*{re.escape(marker)}\s*$")
    hits = [n for n, line in enumerate(text.splitlines(), 1) if pattern.search(line)]
    assert len(hits) == 1, marker
    return hits[0]


@pytest.fixture
def bad(tmp_path: Path) -> Path:
    return write_rules(tmp_path, BAD, "bad.yaml")


def test_every_problem_is_reported_with_file_line_and_rule(bad: Path) -> None:
    with pytest.raises(InvalidConfigError) as err:
        rules.load_rules(bad)
    problems = err.value.problems
    for marker, (fragment, rule_name) in EXPECTED.items():
        line = marker_line(BAD, marker)
        found = [p for p in problems if p.line == line and fragment in f"{p.message} {p.fix}"]
        assert found, f"{marker}: no problem on line {line} with {fragment!r}: {problems}"
        assert all(p.file == str(bad) for p in found)
        if rule_name:
            assert f"rule `{rule_name}`" in found[0].message
        assert found[0].fix
    rendered = str(err.value)
    assert f"{bad}:{marker_line(BAD, 'regex')}: rules[0].when.description.regex:" in rendered
    assert len(problems) == len(EXPECTED)


def test_check_rules_lists_the_same_problems_without_raising(bad: Path) -> None:
    assert len(rules.check_rules(bad)) == len(EXPECTED)
    assert rules.check_rules(DEFAULT_RULES) == []


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("rules: {name: x}\n", "`rules` must be a list"),
        ("rulez: []\n", "did you mean `rules`?"),
        ("- name: x\n", "must be a mapping with `rules:`"),
        ("rules:\n  - name: x\n    when: [type]\n    account: revenue\n", "`when` must be a map"),
        ("rules:\n  - {name: x, when: {any: {type: x}}, tags: [t]}\n", "takes a list"),
        ("rules:\n  - {name: x, when: {type: {between: [1]}}, tags: [t]}\n", "between"),
        ("rules:\n  - {name: x, when: {amount: {between: [5, 1]}}, tags: [t]}\n", "swap them"),
        ("rules:\n  - {name: x, when: {amount: {sign: up}}, tags: [t]}\n", "`sign` must be"),
        ("rules:\n  - {name: x, when: {type: {one_of: []}}, tags: [t]}\n", "non-empty list"),
        ("rules:\n  - {name: x, when: {x.y: 1}, tags: [t]}\n", "unknown field `x.y`"),
        ("rules:\n  - {name: x, account: clearing}\n", "clearing account cannot"),
        ("rules:\n  - {name: x, account: revenue, split: []}\n", "either `account` or"),
        ("rules:\n  - {name: x, tags: ['has space']}\n", "a tag may contain only"),
        ("rules:\n  - {name: x, payee: 'a {b'}\n", "unbalanced"),
        ("rules:\n  - {name: x, payee: '{1}'}\n", "no `regex` condition"),
        (
            "rules:\n  - name: x\n    split:\n      - {account: revenue}\n"
            "      - {account: refunds}\n",
            "only the last leg may omit",
        ),
        (
            "rules:\n  - name: x\n    split:\n      - {account: revenue, percent: 50}\n"
            "      - {account: refunds, amount: 5}\n",
            "cannot have a fixed `amount`",
        ),
        (
            "rules:\n  - name: x\n    split:\n      - {account: revenue, percent: 50}\n"
            "      - {account: refunds, percent: 40}\n",
            "not 100",
        ),
        ("parties:\n  - {payee: P}\n", "lists no identity"),
        ("parties:\n  - {payee: P, descriptions: ['(']}\n", "invalid regular expression"),
        (f"rules:\n  - {{name: x, note: {'sk_' + 'live_' + 'a' * 24}}}\n", "Stripe API key"),
    ],
)
def test_more_errors(tmp_path: Path, text: str, fragment: str) -> None:
    problems = rules.check_rules(write_rules(tmp_path, text))
    assert any(fragment in f"{p.message} {p.fix}" for p in problems), problems
    assert all(p.line for p in problems)


def test_an_empty_rules_file_is_fine(tmp_path: Path) -> None:
    assert rules.load_rules(write_rules(tmp_path, "# nothing yet\n")).rules == ()


def config_text(rules_line: str, client_rules: str = "") -> str:
    return (
        f"{rules_line}\n"
        "clients:\n"
        "  - id: acme\n"
        "    name: Acme\n"
        "    stripe_account: acct_1Acme\n"
        "    key: env:ACME_KEY\n"
        "    ledger: acme/ledger.beancount\n"
        f"{client_rules}"
    )


def test_config_check_covers_rules_files(tmp_path: Path, bad: Path) -> None:
    cfg = tmp_path / "clients.yaml"
    cfg.write_text(config_text("rules: bad.yaml", "    rules: [missing.yaml]\n"))
    problems = check_config(cfg)
    in_rules = [p for p in problems if p.file == str(bad)]
    assert len(in_rules) == len(EXPECTED)
    missing = [p for p in problems if "not found" in p.message]
    assert missing and missing[0].file == str(cfg) and missing[0].line == 8
    assert missing[0].key_path == "clients[0].rules[0]"
    with pytest.raises(InvalidConfigError):
        load_config(cfg)
    result = CliRunner().invoke(main, ["-c", str(cfg), "config", "check"])
    assert result.exit_code == 2
    assert f"{bad}:{marker_line(BAD, 'field')}:" in result.output
    assert "unknown field `descripton`" in result.output


def test_config_rules_paths_resolve_relative_to_the_config(tmp_path: Path) -> None:
    write_rules(tmp_path, "rules:\n  - {name: a, tags: [a]}\n", "shared.yaml")
    (tmp_path / "per").mkdir()
    write_rules(tmp_path / "per", "rules:\n  - {name: b, tags: [b]}\n", "acme.yaml")
    cfg = tmp_path / "clients.yaml"
    cfg.write_text(config_text("rules: [shared.yaml]", "    rules: per/acme.yaml\n"))
    (client,) = load_config(cfg).clients
    assert client.rules == (tmp_path / "per" / "acme.yaml",)
    assert client.shared_rules == (tmp_path / "shared.yaml",)
    assert [r.name for r in rules.ruleset_for(client).rules] == ["b", "a"]


@pytest.mark.parametrize("value", ["[]", "42", "[ok.yaml, {x: 1}]"])
def test_config_rules_value_must_be_paths(tmp_path: Path, value: str) -> None:
    write_rules(tmp_path, "rules: []\n", "ok.yaml")
    cfg = tmp_path / "clients.yaml"
    cfg.write_text(config_text(f"rules: {value}"))
    assert any(p.key_path.startswith("rules") for p in check_config(cfg))
