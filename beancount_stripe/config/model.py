"""The typed client configuration: accounts, key sources, clients and their sections."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from beancount_stripe.errors import ConfigError

# Every account of the booking model, with its default. ``{client}`` is replaced by the client's
# ``account_name`` (CamelCase of the id unless set), so one ``defaults`` block serves all clients.
DEFAULT_ACCOUNTS: dict[str, str] = {
    "clearing": "Assets:{client}:Stripe",
    "fees": "Expenses:{client}:Stripe:Fees",
    "fee_tax": "",  # optional: tax on Stripe fees; empty means "book it with the fees"
    "revenue": "Income:{client}:Sales",
    "refunds": "Income:{client}:Refunds",
    "disputes": "Expenses:{client}:Stripe:Disputes",
    "adjustments": "Expenses:{client}:Stripe:Adjustments",
    "transit": "Assets:{client}:Transfers:Stripe",
    "platform_revenue": "Income:{client}:Platform-Fees",
    "connect_transfers": "Expenses:{client}:Connect:Transfers",
    "reserve": "Assets:{client}:Reserves:Stripe",
    "capital_loan": "Liabilities:{client}:Stripe-Capital",
    "uncategorized": "Expenses:{client}:Uncategorized",
    # Stripe Capital's flat financing fee, as each paydown repays part of it (capital.py).
    "capital_fees": "Expenses:{client}:Stripe-Capital:Fees",
}


@dataclass(frozen=True)
class Accounts:
    """The accounts of the booking model for one client (``{client}`` already substituted)."""

    clearing: str
    fees: str
    revenue: str
    refunds: str
    disputes: str
    adjustments: str
    transit: str
    platform_revenue: str
    connect_transfers: str
    reserve: str
    capital_loan: str
    uncategorized: str
    fee_tax: str | None = None
    capital_fees: str = "Expenses:Client:Stripe-Capital:Fees"


@dataclass(frozen=True)
class KeySource:
    """Where a client's API key comes from. Never holds the key itself.

    kind is ``env`` (ref = variable name), ``file`` (ref = path, relative to the config file) or
    ``keyring`` (ref = "service/username", default service ``beancount-stripe`` and the client id).
    """

    kind: str
    ref: str

    def describe(self) -> str:
        return f"{self.kind}:{self.ref}"


# What a column of a Capital CSV can mean (capital.py); ``capital.columns`` maps headers to these.
CAPITAL_FIELDS: tuple[str, ...] = (
    "id",  # txn_… (balance transaction) or cptxn_… (financing transaction), told apart by prefix
    "type",  # financing_paydown … (balance transactions) or payment/payout/reversal (financing)
    "reason",
    "created",  # local time in `capital.timezone` (default: the client's time zone)
    "created_utc",  # UTC, or Unix seconds
    "amount",  # signed effect on the Stripe balance, major units (`gross`, `Amount`)
    "net",
    "stripe_fee",  # Stripe's processing fee column (`fee`, `Fee`): zero for Capital rows
    "advance_amount",  # principal part (financing transactions)
    "fee_amount",  # financing-fee part
    "total_amount",  # advance + fee
    "currency",
    "description",
    "source",  # the balance transaction's source (`Source`, `source_id`)
    "loan",  # loan or financing offer id (`financing_offer`, `loan_id`)
    "reversed_transaction",
    "remaining_amount",  # what is left to repay after this row (advance + fee)
    "remaining_principal",  # principal left after this row
    "ignore",
)


@dataclass(frozen=True)
class LoanConfig:
    """One Stripe Capital financing: its ids, currency, advance and flat fee (major units)."""

    id: str  # flxln_… or financingoffer_…: what the exports call the loan
    currency: str  # upper-case ISO code
    advance: Decimal  # principal paid out
    fee: Decimal  # the flat financing fee, repaid over the life of the loan
    aliases: tuple[str, ...] = ()  # other ids the exports use for the same loan

    @property
    def ids(self) -> tuple[str, ...]:
        return (self.id, *self.aliases)


@dataclass(frozen=True)
class PayoutsConfig:
    """How a client's bank lines are matched to its payouts (reconcile.py)."""

    lag_days: int = 3  # business days a bank may post a payout after its arrival date
    bank_accounts: tuple[str, ...] = ()  # accounts of the client's bank importers; () = any
    holidays: tuple[datetime.date, ...] = ()  # bank holidays: not business days


@dataclass(frozen=True)
class BookingConfig:
    """How many entries a client's transactions become (summary.py): one each, per day, per payout.

    ``since``: the first day (client's zone) booked in ``mode``; earlier days are booked one entry
    per transaction, so a switch never re-books what is booked and books old gaps plainly.
    """

    mode: str = "transaction"  # transaction | daily | payout
    since: datetime.date | None = None


BOOKING_MODES = ("transaction", "daily", "payout")


@dataclass(frozen=True)
class CapitalConfig:
    """A client's Stripe Capital: its loans and how to read its CSV exports."""

    loans: tuple[LoanConfig, ...]
    output: Path  # file ``capital import`` appends to (included by the ledger)
    timezone: str | None = None  # zone of local-time CSV columns; None: the client's
    columns: tuple[tuple[str, str], ...] = ()  # (CSV header, field in CAPITAL_FIELDS)


@dataclass(frozen=True)
class ClientConfig:
    """One client: its Stripe account, key source, ledger and booking accounts."""

    id: str
    name: str
    stripe_account: str  # the acct_… the key must open (the connected account in Connect mode)
    key: KeySource
    ledger: Path  # main ledger file (bean-check / Fava target); created if missing
    output: Path  # file sync appends entries to (included by ``ledger``)
    archive_dir: Path  # raw JSON Lines archive of fetched balance transactions
    timezone: str = "UTC"
    accounts: Accounts = field(default_factory=lambda: Accounts(**_substituted("Client")))
    connect: bool = False  # True: ``key`` is the platform's key, sent with Stripe-Account
    platform_account: str | None = None  # optional: verify the platform key opens this account
    api_base: str | None = None  # override https://api.stripe.com (the simulator, in tests/demo)
    operating_currency: str | None = None
    source_file: Path | None = None  # config file the client was defined in
    source_line: int | None = None
    account_name: str | None = None  # what `{client}` stands for in account names
    rules: tuple[Path, ...] = ()  # the client's own rules files (tried first)
    shared_rules: tuple[Path, ...] = ()  # the top-level `rules:` files (tried after the client's)
    capital: CapitalConfig | None = None  # Stripe Capital loans (capital.py), if any
    payouts: PayoutsConfig = field(default_factory=PayoutsConfig)  # bank matching (reconcile)
    booking: BookingConfig = field(default_factory=BookingConfig)  # summary modes (summary.py)
    archive_keep: str = "minimal"  # `archive: {keep: full}`: store expanded sources whole
    rate_limit: float | None = None  # requests/s to Stripe; None: by the key's mode (sync.py)


@dataclass(frozen=True)
class Config:
    """A whole configuration file."""

    path: Path
    clients: tuple[ClientConfig, ...]

    def client(self, client_id: str) -> ClientConfig:
        for c in self.clients:
            if c.id == client_id:
                return c
        known = ", ".join(c.id for c in self.clients) or "none"

        raise ConfigError(
            f"no client {client_id!r} in the configuration (known: {known})",
            where=str(self.path),
            fix="use one of the known ids, or add the client under `clients:`",
        )


def zone(name: str, client_id: str) -> ZoneInfo:
    """``ZoneInfo(name)``, or a ConfigError naming the client and the fix."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        from beancount_stripe.errors import ConfigError

        raise ConfigError(
            f"unknown time zone {name!r}",
            where=f"client {client_id}",
            fix="use an IANA name such as UTC, Europe/Berlin or America/New_York",
        ) from None


def camel_case(client_id: str) -> str:
    """Turn ``acme-corp`` / ``acme_corp`` into ``AcmeCorp`` for use in account names."""
    parts = [p for p in client_id.replace("_", "-").split("-") if p]
    return "".join(p[:1].upper() + p[1:] for p in parts)


def _substituted(account_name: str, overrides: dict[str, str] | None = None) -> dict[str, str]:
    merged = {**DEFAULT_ACCOUNTS, **(overrides or {})}
    out = {k: v.replace("{client}", account_name) for k, v in merged.items()}
    out["fee_tax"] = out["fee_tax"] or None  # type: ignore[assignment]
    return out


def make_accounts(account_name: str, overrides: dict[str, str] | None = None) -> Accounts:
    """Accounts for a client: defaults, then ``overrides``, with ``{client}`` substituted."""
    return Accounts(**_substituted(account_name, overrides))  # type: ignore[arg-type]
