"""Stripe Capital: loan CSV exports → entries against the loan liability, reconciled with sync.

Stripe does not report the principal/fee split of a Capital repayment in its balance transactions
(STRIPE-FACTS §5.4), so users export their Capital transactions as CSV and import them here. The
money itself is also in the synced balance transactions (``financing_payout``,
``financing_paydown`` and their reversals), which ``booking.py`` books whole against the loan. The
two must meet without counting anything twice:

* **Stripe's balance transaction owns the money** (amount, date, clearing posting, ``stripe_id``):
  the clearing account must keep tying out with ``/v1/balance``.
* **The CSV owns the split** (principal vs financing fee) and names the loan.

So a CSV row whose balance transaction the ledger already holds adds only a small linked entry
moving the fee part from the liability to the fee expense (the ledger is append-only); a row
imported before its balance transaction is synced books the money and the split in one entry that
carries the transaction's ``stripe_id`` when it is known (from the CSV, or found in the client's
local archive), so sync skips it; and for a row without one, sync asks ``covered_by_capital`` and
skips the balance transaction that is the same money (same kind, currency and amount, within
``MATCH_DAYS`` days). Matching is by ids first (``txn_…``, ``cptxn_…``), then amount + date.

The package, by concern: ``kinds`` (what a Capital transaction is), ``parse`` (CSV → rows),
``held`` (what the ledger holds, each loan's state), ``plan`` (what a CSV adds; sync's hook),
all pure, and ``edge`` (``import_file``/``status_of``, the I/O used by the CLI). Callers use
``from beancount_stripe import capital`` and the names re-exported here.
"""

from __future__ import annotations

from beancount_stripe.capital.edge import (
    OUTPUT_HEADER,
    ImportResult,
    LoanStatus,
    archive_for,
    import_file,
    loan_status,
    status_of,
)
from beancount_stripe.capital.held import (
    LedgerItem,
    LoanState,
    ledger_items,
    scanned_from_entries,
)
from beancount_stripe.capital.kinds import (
    BT_TYPES,
    CAPITAL_PAYEE,
    KIND_OF_BT,
    KINDS,
    LABELS,
    MATCH_DAYS,
    PAYDOWN,
    PAYDOWN_REVERSAL,
    PAYOUT,
    PAYOUT_REVERSAL,
    SIGN,
    WITHHOLDING_REASON,
)
from beancount_stripe.capital.parse import (
    HEADER_FIELDS,
    KNOWN_IGNORED,
    CapitalFile,
    CapitalRow,
    looks_like_capital,
    parse_csv,
    read_csv,
    require_capital,
)
from beancount_stripe.capital.parse import (
    _BadNumber as _BadNumber,  # for the tests
)
from beancount_stripe.capital.parse import (
    _parse_amount as _parse_amount,  # for the tests
)
from beancount_stripe.capital.parse import (
    _parse_when as _parse_when,  # for the tests
)
from beancount_stripe.capital.plan import (
    Plan,
    covered_by_capital,
    plan_import,
)
from beancount_stripe.errors import BeancountStripeError  # what every refusal here is

__all__ = [
    "BT_TYPES",
    "CAPITAL_PAYEE",
    "HEADER_FIELDS",
    "KINDS",
    "KIND_OF_BT",
    "KNOWN_IGNORED",
    "LABELS",
    "MATCH_DAYS",
    "OUTPUT_HEADER",
    "PAYDOWN",
    "PAYDOWN_REVERSAL",
    "PAYOUT",
    "PAYOUT_REVERSAL",
    "SIGN",
    "WITHHOLDING_REASON",
    "BeancountStripeError",
    "CapitalFile",
    "CapitalRow",
    "ImportResult",
    "LedgerItem",
    "LoanState",
    "LoanStatus",
    "Plan",
    "archive_for",
    "covered_by_capital",
    "import_file",
    "ledger_items",
    "loan_status",
    "looks_like_capital",
    "parse_csv",
    "plan_import",
    "read_csv",
    "require_capital",
    "scanned_from_entries",
    "status_of",
]
