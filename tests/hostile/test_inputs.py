"""Hostile inputs: bad configurations, bad Capital CSVs, bad files handed to beangulp.

Each case runs the real command in a subprocess and ends in ``assert_refused`` (exit status,
the problem and its fix named, no traceback, no file changed, no key shown), or, for a file that
is not Stripe data at all, in ``assert_not_identified``: beangulp passes it by in silence.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from .conftest import CONFIG, Workspace
from .harness import Run, assert_refused, digest, run

BEANGULP_ERROR = 1  # beangulp's exit status when a file could not be processed

# -- configuration -------------------------------------------------------------------------------


def _with(ws: Workspace, extra: str, *, defaults: str = "") -> None:
    """The workspace's config with ``extra`` lines added to the client (and to ``defaults``)."""
    body = CONFIG.format(url=ws.sim_url)
    if defaults:
        body = body.replace("defaults:\n", "defaults:\n" + defaults, 1)
    ws.write_config(body + extra)


def _check(ws: Workspace, *mentions: str, code: int = 2, keys: tuple[str, ...] = ()) -> Run:
    before = ws.snapshot()
    result = ws.cli("config", "check")
    assert_refused(
        result,
        code=code,
        mentions=[str(ws.config), *mentions],
        before=before,
        roots=[ws.root],
        keys=(ws.key, *keys),
    )
    return result


@pytest.mark.parametrize(
    ("key", "account", "root"),
    [
        ("clearing", "Income:Acme:Stripe", "Assets"),  # failure 11
        ("revenue", "Assets:Acme:Sales", "Income"),  # failure 12
        ("transit", "Expenses:Acme:Transit", "Assets"),
        ("reserve", "Liabilities:Acme:Reserve", "Assets"),
        ("fees", "Income:Acme:Fees", "Expenses"),
        ("capital_loan", "Assets:Acme:Loan", "Liabilities"),
        ("capital_fees", "Liabilities:Acme:Capital-Fees", "Expenses"),
        ("platform_revenue", "Expenses:Acme:Platform", "Income"),
        ("refunds", "Assets:Acme:Refunds", "Income"),
        ("uncategorized", "Liabilities:Acme:Unknown", "Expenses"),
    ],
)
def test_account_under_the_wrong_root(ws: Workspace, key: str, account: str, root: str) -> None:
    _with(ws, f"    accounts:\n      {key}: {account}\n")
    result = _check(ws, f"clients[0].accounts.{key}", account, root)
    assert ":12:" in result.output, "names the line of the account"


def test_account_under_the_wrong_root_in_defaults(ws: Workspace) -> None:
    _with(ws, "", defaults="  accounts:\n    clearing: 'Income:{client}:Stripe'\n")
    _check(ws, "defaults.accounts.clearing", "Assets")


def test_unknown_config_key(ws: Workspace) -> None:
    _with(ws, "    timezon: Europe/Paris\n")
    _check(ws, "clients[0].timezon", "did you mean `timezone`")


def test_bad_yaml(ws: Workspace) -> None:
    ws.write_config(CONFIG.format(url=ws.sim_url) + "    accounts: {revenue: [\n")
    _check(ws, "yaml")


def test_duplicate_client_ids(ws: Workspace) -> None:
    body = CONFIG.format(url=ws.sim_url)
    second = body.split("clients:\n", 1)[1].replace("books/acme", "books/acme2")
    ws.write_config(body + second)
    _check(ws, "clients[1].id", "acme")


def test_pasted_key_is_refused_and_masked(ws: Workspace) -> None:
    pasted = "sk_" + "live_" + "Q7" * 14
    ws.write_config(CONFIG.format(url=ws.sim_url).replace("env:HOSTILE_ACME_KEY", pasted))
    result = _check(ws, "clients[0].key", "environment variable")
    assert pasted not in result.output, "the pasted key is masked"


def test_bad_timezone(ws: Workspace) -> None:
    ws.write_config(CONFIG.format(url=ws.sim_url).replace("Europe/Berlin", "Europe/Berlinn"))
    _check(ws, "defaults.timezone", "Europe/Berlinn")


def test_bad_currency(ws: Workspace) -> None:
    ws.write_config(CONFIG.format(url=ws.sim_url).replace("currency: EUR", "currency: EURO"))
    _check(ws, "operating_currency", "EURO")


def test_missing_environment_variable(ws: Workspace) -> None:
    del ws.env["HOSTILE_ACME_KEY"]
    before = ws.snapshot()
    result = ws.cli("sync", "acme")
    assert_refused(
        result, code=2, mentions=["HOSTILE_ACME_KEY"], before=before, roots=[ws.root], keys=[ws.key]
    )


# -- Stripe Capital CSVs ---------------------------------------------------------------------------

CAPITAL = """\
    capital:
      loans:
        - id: flxln_1TestLoan0001
          aliases: [financingoffer_1TestOffer01]
          currency: USD
          advance: 1000.00
          fee: 100.00
"""
FINANCING_HEADER = (
    "id,created_at,type,reason,financing_offer,advance_amount,fee_amount,total_amount,currency"
)


def _financing(*rows: str) -> str:
    return "\n".join([FINANCING_HEADER, *rows]) + "\n"


def _paydown(
    cptxn: str = "cptxn_1A",
    advance: str = "3.99",
    fee: str = "0.40",
    total: str = "4.39",
    when: str = "2024-11-08 03:23:51",
    offer: str = "financingoffer_1TestOffer01",
) -> str:
    return f"{cptxn},{when},payment,automatic_withholding,{offer},{advance},{fee},{total},usd"


def _capital_ws(synced: Workspace) -> Workspace:
    _with(synced, CAPITAL)
    synced.ledger.write_text(synced.ledger.read_text() + 'include "capital.beancount"\n')
    return synced


def _import(ws: Workspace, name: str, content: bytes | str, *mentions: str) -> Run:
    """``capital import`` of a CSV saved as ``name``: refused, nothing written."""
    csv = ws.root / "downloads" / name
    csv.parent.mkdir(exist_ok=True)
    csv.write_bytes(content.encode() if isinstance(content, str) else content)
    roots = [ws.books, csv]  # not the folder itself: the lock may live there
    before = digest(*roots)
    result = ws.cli("capital", "import", str(csv), "--client", "acme")
    assert_refused(
        result, code=2, mentions=[str(csv), *mentions], before=before, roots=roots, keys=[ws.key]
    )
    return result


@pytest.fixture
def cap(synced: Workspace) -> Workspace:
    return _capital_ws(synced)


def test_capital_negative_advance(cap: Workspace) -> None:  # failure 10
    result = _import(
        cap, "neg.csv", _financing(_paydown(advance="-3.99")), "row 2", "advance_amount"
    )
    assert ":2" in result.output, "names the file's line"


def test_capital_split_does_not_add_up(cap: Workspace) -> None:
    _import(cap, "sum.csv", _financing(_paydown(total="4.50")), "row 2", "4.50", "total_amount")


def test_capital_negative_fee(cap: Workspace) -> None:
    _import(cap, "fee.csv", _financing(_paydown(fee="-0.40")), "row 2", "fee_amount")


def test_capital_payout_with_negative_advance(cap: Workspace) -> None:
    row = "cptxn_1P,2024-11-01 12:00:00,payout,,financingoffer_1TestOffer01,-1000.00,100.00,,usd"
    _import(cap, "payout.csv", _financing(row), "row 2", "advance_amount")


def test_capital_missing_column(cap: Workspace) -> None:
    text = "id,type,advance_amount,fee_amount,total_amount,currency\ncptxn_1,payment,1,0,1,usd\n"
    _import(cap, "nodate.csv", text, "no column gives the date", "capital.columns")


def test_capital_bad_date(cap: Workspace) -> None:
    _import(cap, "date.csv", _financing(_paydown(when="2025-13-45 10:00")), "row 2", "2025-13-45")


def test_capital_unknown_loan(cap: Workspace) -> None:
    _import(
        cap, "loan.csv", _financing(_paydown(offer="financingoffer_1Nope")), "financingoffer_1Nope"
    )


def test_capital_not_utf8(cap: Workspace) -> None:
    text = _financing(_paydown()).replace("automatic_withholding", "caf\xe9").encode("latin-1")
    _import(cap, "latin1.csv", text, "utf-8")


def test_capital_empty_file(cap: Workspace) -> None:
    _import(cap, "empty.csv", "", "empty")


def test_capital_duplicate_row(cap: Workspace) -> None:
    _import(cap, "dup.csv", _financing(_paydown(), _paydown()), "cptxn_1A", "row 3")


def test_capital_positive_paydown_amount(cap: Workspace) -> None:
    text = "id,Type,Source,Amount,Fee,Net,Currency,Created (UTC)\n"
    text += "txn_1X,financing_paydown,flxln_1TestLoan0001,5.00,0.00,5.00,usd,3/2/2025 3:30\n"
    _import(cap, "sign.csv", text, "row 2", "sign")


# -- the beangulp path: import.py identify / extract -------------------------------------------

IMPORTER = "beancount_stripe.acme"


def _script(ws: Workspace) -> Path:
    script = ws.root / "import.py"
    script.write_text(
        "import beangulp\n"
        "from beancount_stripe.importer import importers_from_config\n"
        f"CONFIG = importers_from_config({str(ws.config)!r})\n"
        "if __name__ == '__main__':\n"
        "    beangulp.Ingest(CONFIG, [])()\n"
    )
    return script


def _inbox(ws: Workspace, name: str, content: bytes | str) -> Path:
    path = ws.books / "acme" / "inbox" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    _script(ws)
    return path


def _beangulp(ws: Workspace, *args: str) -> Run:
    script = ws.root / "import.py"
    return run(list(args), env=ws.env, cwd=ws.root, program=(sys.executable, str(script)))


def _extract(ws: Workspace, path: Path, *mentions: str) -> Run:
    before = ws.snapshot()
    result = _beangulp(ws, "extract", str(path))
    assert_refused(
        result,
        code=BEANGULP_ERROR,
        mentions=[str(path), *mentions],
        before=before,
        roots=[ws.root],
        keys=[ws.key],
    )
    assert "Exception in importer code" not in result.output
    return result


def assert_not_identified(ws: Workspace, path: Path) -> None:
    before = ws.snapshot()
    for command in ("identify", "extract"):
        result = _beangulp(ws, command, str(path))
        assert result.code == 0, result.output
        assert "Traceback" not in result.output and "ERROR" not in result.output, result.output
        assert IMPORTER not in result.output and "txn_" not in result.output, result.output
    assert ws.snapshot() == before


BT = (
    '{"id": "txn_1Hostile", "object": "balance_transaction", "amount": 1000, "fee": 59, '
    '"net": 941, "currency": "eur", "type": "charge", "created": 1740000000}'
)


def test_extract_truncated_json(ws: Workspace) -> None:  # failure 8
    path = _inbox(ws, "truncated.json", '{"object": "list", "data": [' + BT[:60])
    _extract(ws, path, "invalid JSON", "complete response")


def test_extract_list_of_junk(ws: Workspace) -> None:  # failure 9
    text = '{"object":"list","url":"/v1/balance_transactions","data":[1,"x",{},null]}'
    _extract(ws, _inbox(ws, "junk.json", text), "data[0]", "not a balance transaction")


def test_extract_junk_after_a_good_transaction(ws: Workspace) -> None:
    path = _inbox(ws, "mixed.json", f'{{"object": "list", "data": [{BT}, "x", null]}}')
    _extract(ws, path, "data[1]", "not a balance transaction")


def test_extract_transaction_without_created(ws: Workspace) -> None:
    path = _inbox(ws, "nocreated.json", "[" + BT.replace(', "created": 1740000000', "") + "]")
    _extract(ws, path, "txn_1Hostile", "created")


def test_extract_amount_as_text(ws: Workspace) -> None:
    path = _inbox(ws, "text.json", "[" + BT.replace('"amount": 1000', '"amount": "10.00"') + "]")
    _extract(ws, path, "txn_1Hostile", "amount", "minor units")


def test_extract_created_out_of_range(ws: Workspace) -> None:
    path = _inbox(ws, "far.json", "[" + BT.replace("1740000000", "1000000000000000") + "]")
    _extract(ws, path, "txn_1Hostile", "created", "plausible unix time")


def test_extract_id_that_is_not_a_stripe_id(ws: Workspace) -> None:
    """A newline in an id would hide it from the ledger scan: booked again on every sync."""
    weird = BT.replace('"txn_1Hostile"', '"txn_1\\n;include \\"x\\""')
    _extract(ws, _inbox(ws, "id.json", f"[{weird}]"), "is not a Stripe id")


def test_extract_broken_archive_line(synced: Workspace) -> None:
    month = sorted(synced.archive.glob("*.jsonl"))[0]
    lines = month.read_text().splitlines(keepends=True)
    copy = _inbox(synced, f"acme-{month.name}", "".join(lines[:2]) + lines[2][:40] + "\n")
    _extract(synced, copy, f"{copy}:3", "not valid JSON")


def test_extract_bad_capital_csv(cap: Workspace) -> None:
    path = _inbox(cap, "capital.csv", _financing(_paydown(advance="-3.99")))
    _extract(cap, path, "row 2", "advance_amount")


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("notes.json", '{"hello": "world", "data": [{"note": "txn_ is not enough"}]}'),
        ("bare-junk.json", '{"object":"list","data":[1,"x",{},null]}'),
        ("numbers.json", '[1, "x", {}, null, "txn_1"]'),
        ("empty.json", ""),
        ("sales.csv", "date,amount,description\n2025-01-01,10.00,coffee\n"),
        ("statement.pdf", b"%PDF-1.7\n\x00\xff\xfe binary \x00 txn_1 \x00"),
        ("random.bin", bytes(range(256)) * 4),
    ],
)
def test_not_stripe_data_is_not_identified(ws: Workspace, name: str, content: str | bytes) -> None:
    assert_not_identified(ws, _inbox(ws, name, content))


def test_output_moved_outside_the_ledger_folder(synced: Workspace) -> None:
    """The ledger does not read the new output file: appending there would book nothing."""
    _with(synced, "    output: ../elsewhere/stripe.beancount\n")
    before = synced.snapshot()
    result = synced.cli("sync", "acme")
    assert_refused(
        result,
        code=(2, 5),
        mentions=["elsewhere/stripe.beancount", "include"],
        before=before,
        roots=[synced.root],
        keys=[synced.key],
    )
