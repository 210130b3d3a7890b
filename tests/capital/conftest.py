"""Capital test helpers: a client with one configured loan, and CSV text builders."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import pytest

from beancount_stripe.config import (
    CapitalConfig,
    ClientConfig,
    KeySource,
    LoanConfig,
    make_accounts,
)

LOAN = LoanConfig(
    id="flxln_1TestLoan0001",
    currency="USD",
    advance=Decimal("1000.00"),
    fee=Decimal("100.00"),
    aliases=("financingoffer_1TestOffer01",),
)


def capital_client(
    base: Path,
    *,
    loans: Sequence[LoanConfig] = (LOAN,),
    columns: Sequence[tuple[str, str]] = (),
    timezone: str = "America/New_York",
    csv_timezone: str | None = None,
    client_id: str = "acme",
) -> ClientConfig:
    root = base / client_id
    return ClientConfig(
        id=client_id,
        name=f"Client {client_id}",
        stripe_account="acct_1TestAcme00001",
        key=KeySource("env", "TEST_KEY_ACME"),
        ledger=root / "ledger.beancount",
        output=root / "stripe.beancount",
        archive_dir=root / "archive",
        timezone=timezone,
        accounts=make_accounts("Acme"),
        capital=CapitalConfig(
            loans=tuple(loans),
            output=root / "capital.beancount",
            timezone=csv_timezone,
            columns=tuple(columns),
        ),
    )


def csv_text(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([[str(v) for v in row] for row in rows])
    return out.getvalue()


REPORT_HEADER = (
    "balance_transaction_id",
    "created_utc",
    "created",
    "available_on_utc",
    "currency",
    "gross",
    "fee",
    "net",
    "reporting_category",
    "source_id",
    "description",
    "customer_email",
)
EXPORT_HEADER = (
    "id",
    "Type",
    "Source",
    "Amount",
    "Fee",
    "Destination Platform Fee",
    "Destination Platform Fee Currency",
    "Net",
    "Currency",
    "Created (UTC)",
    "Available On (UTC)",
    "Description",
    "Customer Facing Amount",
    "Customer Facing Currency",
    "Transfer",
    "Transfer Date (UTC)",
    "Transfer Group",
    "order_id (metadata)",
)
FINANCING_HEADER = (
    "id",
    "created_at",
    "type",
    "reason",
    "financing_offer",
    "advance_amount",
    "fee_amount",
    "total_amount",
    "currency",
    "reversed_transaction",
    "remaining_amount",
)


@pytest.fixture
def client(tmp_path: Path) -> ClientConfig:
    return capital_client(tmp_path)
