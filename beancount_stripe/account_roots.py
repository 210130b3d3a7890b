"""Which root each booking account belongs under, checked by ``config check`` and every load.

A booking account under the wrong root still balances, so Beancount never complains: the Stripe
balance booked to ``Income`` or the sales booked to ``Assets`` would only show up as nonsense in
the balance sheet and income statement. The roots follow Beancount's conventions and the
defaults (``config.DEFAULT_ACCOUNTS``): contra-revenue (refunds) under Income, chargebacks and
other adjustments as Expenses, and where books legitimately differ, each accepted choice listed.
Rules' ``account:`` targets are not checked: a rule may book to any root.
"""

from __future__ import annotations

# key → (the roots it may be under, what the account holds: why that root)
ROOTS: dict[str, tuple[tuple[str, ...], str]] = {
    "clearing": (("Assets",), "it holds the Stripe balance"),
    "transit": (("Assets",), "it holds payouts on their way to the bank"),
    "reserve": (("Assets",), "it holds funds Stripe keeps in reserve, still the client's"),
    "fees": (("Expenses",), "Stripe's fees are a cost"),
    "fee_tax": (("Expenses",), "tax on Stripe's fees is a cost"),
    "capital_fees": (("Expenses",), "the Capital financing fee is a cost"),
    "revenue": (("Income",), "it books sales"),
    "platform_revenue": (("Income",), "it books application fees earned"),
    "refunds": (("Income", "Expenses"), "refunds reduce revenue (contra-revenue)"),
    "disputes": (("Expenses", "Income"), "chargebacks are a loss or reduce revenue"),
    "adjustments": (("Expenses", "Income"), "adjustments are a cost or reduce revenue"),
    "connect_transfers": (
        ("Expenses", "Liabilities"),
        "transfers to connected accounts are a cost or settle what the platform owes them",
    ),
    "capital_loan": (("Liabilities",), "the Capital loan is owed to Stripe"),
    "uncategorized": (
        ("Expenses", "Income", "Equity"),
        "it holds what no rule categorizes yet, in and out",
    ),
}


def root_problem(key: str, account: str, default: str | None = None) -> tuple[str, str] | None:
    """(message, fix) when booking account ``key`` is under a root it does not belong under."""
    if key not in ROOTS or not account:
        return None
    roots, why = ROOTS[key]
    root = account.split(":", 1)[0]
    if root in roots:
        return None
    allowed = " or ".join(roots)
    example = f" such as the default `{default}`" if default and default.startswith(roots) else ""
    return (
        f"`{account}` is under {root}, but `{key}` belongs under {allowed}: {why}",
        f"book `{key}` to an account under {allowed}{example}",
    )
