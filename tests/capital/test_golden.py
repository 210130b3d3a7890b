"""Golden files: each CSV style imported into an empty ledger (golden .beancount beside the CSV).

Regenerate with UPDATE_GOLDEN=1 and review the diff.
"""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from beancount import loader
from beancount.core import data, realization

from beancount_stripe import capital, currency
from beancount_stripe.config import ClientConfig, LoanConfig

from .conftest import capital_client

GOLDEN = Path(__file__).resolve().parent / "golden"
YEN_LOAN = LoanConfig("flxln_1TestYenLoan1", "JPY", Decimal(500000), Decimal(55001))
CASES: dict[str, dict[str, Any]] = {
    "balance-report": {},
    "balance-export": {},
    "financing-transactions": {},
    "mapped": {
        "loans": (YEN_LOAN,),
        "timezone": "Asia/Tokyo",
        "columns": (
            ("Date paid", "created"),
            ("Kind", "type"),
            ("Yen", "amount"),
            ("Ref", "id"),
            ("Memo", "description"),
            ("Loan", "loan"),
        ),
    },
}


def new_ledger(client: ClientConfig) -> None:
    client.ledger.parent.mkdir(parents=True, exist_ok=True)
    client.ledger.write_text('option "title" "golden"\ninclude "capital.beancount"\n')


def balances(entries: list[data.Directive], account: str) -> dict[str, Decimal]:
    node = realization.get(realization.realize(entries), account)
    return {p.units.currency: p.units.number for p in node.balance} if node is not None else {}


@pytest.mark.parametrize("name", CASES)
def test_golden(name: str, tmp_path: Path) -> None:
    client = capital_client(tmp_path, **CASES[name])
    assert client.capital is not None
    new_ledger(client)
    source = GOLDEN / f"{name}.csv"
    result = capital.import_file(source, client)
    text = client.capital.output.read_text()
    golden = GOLDEN / f"{name}.beancount"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        golden.write_text(text)
    assert text == golden.read_text(), "run with UPDATE_GOLDEN=1 and review the diff"

    # The result is a valid ledger whose balance assertions hold.
    entries, errors, _ = loader.load_file(str(client.ledger))
    assert errors == [], [e.message for e in errors]
    rows = result.file.rows
    assert result.plan.booked == len(rows)  # nothing synced yet: every row books its money
    clearing = balances(entries, client.accounts.clearing)
    assert clearing == {
        rows[0].commodity: sum(
            (currency.to_decimal(r.amount, r.commodity) for r in rows), Decimal(0)
        )
    }

    # Importing the same file again books nothing and changes no byte.
    before = client.capital.output.read_bytes()
    again = capital.import_file(source, client)
    assert again.plan.already == len(rows) and again.changed_files == []
    assert (again.plan.booked, again.plan.split, again.text) == (0, 0, "")
    assert client.capital.output.read_bytes() == before


def test_golden_files_cover_every_style() -> None:
    styles = set()
    for name, kw in CASES.items():
        client = capital_client(Path("/nonexistent"), **kw)
        styles.add(capital.read_csv(GOLDEN / f"{name}.csv", client).style)
    assert styles == {"balance report", "balance export", "financing transactions", "mapped"}
