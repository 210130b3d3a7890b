"""What a client's books say after a sync: open `!` entries, tie-out, payouts in transit, errors.

One full Beancount load of the client's main ledger (every file it includes), so the figures are
the books' own, not the tool's memory of what it wrote: an entry a bookkeeper cleared of its `!`
no longer counts, and a hand-made entry on the clearing account moves the tie-out. The load runs
Beancount's validations, so its errors are exactly what ``bean-check`` prints.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from beancount.core import data

from beancount_stripe import currency
from beancount_stripe.config import ClientConfig

__all__ = ["Health", "TieOut", "Transit", "ledger_health", "tie_out"]


@dataclass(frozen=True)
class TieOut:
    """The clearing account against Stripe's balance (available + pending) for one currency."""

    currency: str
    ledger: Decimal
    stripe: Decimal

    @property
    def difference(self) -> Decimal:
        return self.ledger - self.stripe

    @property
    def ties_out(self) -> bool:
        return self.difference == 0


@dataclass(frozen=True)
class Transit:
    """Money on the transit account in one currency: payouts no bank entry has cleared yet."""

    currency: str
    amount: Decimal
    payouts: int  # payouts (by ``^po_…`` link) whose transit postings do not net to zero


@dataclass
class Health:
    """The books of one client, as Beancount loads them."""

    ledger: Path
    open_flagged: int = 0
    clearing: dict[str, Decimal] = field(default_factory=dict)  # commodity → balance
    transit: list[Transit] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # bean-check's messages, empty when clean


def ledger_health(client: ClientConfig) -> Health:
    """Load ``client.ledger`` with Beancount and read what a bookkeeper would check first."""
    from beancount import loader
    from beancount.parser import printer

    health = Health(ledger=client.ledger)
    if not client.ledger.exists():
        return health
    entries, errors, _options = loader.load_file(str(client.ledger))
    health.errors = [printer.format_error(e).strip() for e in errors]
    accounts = client.accounts
    clearing: dict[str, Decimal] = defaultdict(Decimal)
    transit: dict[str, Decimal] = defaultdict(Decimal)
    by_payout: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for entry in entries:
        if not isinstance(entry, data.Transaction):
            continue
        if entry.flag == "!":
            health.open_flagged += 1
        payouts = [link for link in entry.links or () if link.startswith("po_")]
        for posting in entry.postings:
            units = posting.units
            if units is None or units.number is None:
                continue
            if posting.account == accounts.clearing:
                clearing[units.currency] += units.number
            elif posting.account == accounts.transit:
                transit[units.currency] += units.number
                for link in payouts:
                    by_payout[(link, units.currency)] += units.number
    health.clearing = dict(clearing)
    open_payouts: dict[str, int] = defaultdict(int)
    for (_link, com), amount in by_payout.items():
        if amount != 0:
            open_payouts[com] += 1
    health.transit = [
        Transit(currency=com, amount=amount, payouts=open_payouts.get(com, 0))
        for com, amount in sorted(transit.items())
        if amount != 0 or open_payouts.get(com)
    ]
    return health


def tie_out(
    stripe_balance: Mapping[str, int],
    clearing: Mapping[str, Decimal],
    pending: Iterable[data.Transaction] = (),
    clearing_account: str = "",
    waiting: Mapping[str, int] | None = None,
) -> list[TieOut]:
    """Per currency Stripe reports: the books' clearing balance against Stripe's.

    ``pending`` are entries not in the books yet (a dry run) whose clearing postings count too;
    so do ``waiting`` nets (minor units per currency): what a summary mode leaves in the archive.
    """
    books: dict[str, Decimal] = defaultdict(Decimal, clearing)
    for code, minor in (waiting or {}).items():
        books[currency.commodity(code, "the archive")] += currency.to_decimal(minor, code)
    for entry in pending:
        for posting in entry.postings:
            if posting.account == clearing_account and posting.units.number is not None:
                books[posting.units.currency] += posting.units.number
    out = []
    for code in sorted(stripe_balance):
        com = currency.commodity(code, "the Stripe balance")
        stripe = currency.to_decimal(stripe_balance[code], code)
        out.append(TieOut(currency=com, ledger=books.get(com, Decimal(0)), stripe=stripe))
    return out
