"""What the ledger already holds of Capital (``LedgerItem``s from scanned entries), and each
loan's running state that splits a repayment into principal and fee."""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from beancount.core import data

from beancount_stripe import currency
from beancount_stripe.capital.kinds import (
    _WITHHELD_PREFIX,
    KIND_OF_BT,
    KINDS,
    PAYDOWN,
    PAYDOWN_REVERSAL,
    PAYOUT_REVERSAL,
    WITHHOLDING_REASON,
)
from beancount_stripe.capital.parse import _LOAN_REF
from beancount_stripe.config import ClientConfig, LoanConfig
from beancount_stripe.ledger import ScannedEntry

# -- what the ledger already holds ------------------------------------------------------------


@dataclass
class LedgerItem:
    """One Capital movement the ledger holds: a synced balance transaction, a Capital CSV entry
    booking the money, or a split entry adding the fee part to a synced one."""

    date: datetime.date
    kind: str
    origin: str  # "sync" | "capital" (money and split) | "split" (fee part of a synced BT)
    commodity: str
    amount: int | None  # signed effect on the Stripe balance; None: unknown (a split without BT)
    loan: str | None  # primary id of the configured loan
    txn: str | None  # the balance transaction (stripe_id, or capital_for of a split)
    cptxn: str | None
    fee: int  # signed posting on the fee account (+ for a paydown)
    principal: int  # signed posting on the loan account
    reverses: str | None
    where: str
    withheld: bool = False
    split: bool = False  # a synced BT whose fee part is booked by a split entry


def scanned_from_entries(entries: Iterable[data.Directive] | None) -> list[ScannedEntry]:
    """The Capital-related transactions of loaded entries, shaped like ``ledger.scan`` finds them.

    Lets the beangulp importers (which get Beancount entries) share the logic of the CLI (which
    scans text).
    """
    out = []
    for entry in entries or ():
        if not isinstance(entry, data.Transaction) or not entry.meta:
            continue
        keys = entry.meta.keys()
        stripe_type = str(entry.meta.get("stripe_type", ""))
        if not stripe_type.startswith("financing_") and not any(
            k.startswith("capital_") for k in keys
        ):
            continue
        meta = {str(k): str(v) for k, v in entry.meta.items() if k not in ("filename", "lineno")}
        postings = tuple(
            (p.account, p.units.number, p.units.currency)
            for p in entry.postings
            if p.units is not None and p.units.number is not None
        )
        header = f"{entry.payee or ''} {entry.narration or ''}"
        out.append(
            ScannedEntry(
                entry.date,
                meta,
                postings,
                Path(str(entry.meta.get("filename", "<entries>"))),
                int(entry.meta.get("lineno", 0) or 0),
                header,
            )
        )
    return out


def _loan_ids(client: ClientConfig) -> dict[str, str]:
    loans = client.capital.loans if client.capital else ()
    return {loan_id: loan.id for loan in loans for loan_id in loan.ids}


def _loan_of(
    texts: Iterable[str], commodity: str, client: ClientConfig, ids: Mapping[str, str]
) -> str | None:
    for text in texts:
        if text in ids:
            return ids[text]
        for ref in _LOAN_REF.findall(text):
            if ref in ids:
                return ids[ref]
    loans = client.capital.loans if client.capital else ()
    candidates = [loan.id for loan in loans if loan.currency == commodity]
    return candidates[0] if len(candidates) == 1 else None


def _sum_minor(entry: ScannedEntry, account: str, commodity: str) -> int:
    total = Decimal(0)
    for acc, number, com in entry.postings:
        if acc == account and com == commodity:
            total += number
    return currency.to_minor(total, commodity) if currency.is_known(commodity) else 0


def ledger_items(scanned: Iterable[ScannedEntry], client: ClientConfig) -> list[LedgerItem]:
    """Every Capital movement in the scanned entries, with split entries joined to their BT."""
    accounts = client.accounts
    ids = _loan_ids(client)
    items: list[LedgerItem] = []
    for entry in scanned:
        meta = entry.meta
        if "capital_kind" in meta:
            kind = meta["capital_kind"]
        else:
            kind = KIND_OF_BT.get(meta.get("stripe_type", ""), "")
        if kind not in KINDS:
            continue
        commodity = next(
            (
                com
                for acc, _n, com in entry.postings
                if acc in (accounts.clearing, accounts.capital_loan, accounts.capital_fees)
            ),
            "",
        )
        if not currency.is_known(commodity):
            continue
        if "capital_for" in meta:
            origin, txn = "split", meta["capital_for"]
            amount: int | None = None
        else:
            origin = "capital" if "capital_kind" in meta else "sync"
            txn = meta.get("stripe_id") or None
            amount = _sum_minor(entry, accounts.clearing, commodity)
        loan = meta.get("capital_loan")
        loan = ids.get(loan, loan) if loan else None
        if loan is None:
            loan = _loan_of((meta.get("stripe_source", ""), entry.header), commodity, client, ids)
        reason = meta.get("capital_reason")
        items.append(
            LedgerItem(
                date=entry.date,
                kind=kind,
                origin=origin,
                commodity=commodity,
                amount=amount,
                loan=loan,
                txn=txn,
                cptxn=meta.get("capital_txn") or None,
                fee=_sum_minor(entry, accounts.capital_fees, commodity),
                principal=_sum_minor(entry, accounts.capital_loan, commodity),
                reverses=meta.get("capital_reverses") or None,
                where=f"{entry.path}:{entry.line}",
                withheld=reason == WITHHOLDING_REASON
                or (
                    reason is None
                    and _WITHHELD_PREFIX in f"{entry.header} {meta.get('stripe_description', '')}"
                ),
            )
        )
    by_txn = {i.txn: i for i in items if i.origin == "sync" and i.txn}
    for item in items:
        if item.origin == "split" and item.txn in by_txn:
            bt = by_txn[item.txn]
            bt.split = True
            item.amount = bt.amount
            item.withheld = item.withheld or bt.withheld
            item.loan = item.loan or bt.loan
    return items


# -- the split of each repayment ----------------------------------------------------------------


def _round_div(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded half up, exactly (integers only)."""
    return (2 * numerator + denominator) // (2 * denominator)


@dataclass
class _Repayment:
    key: str | None  # txn_… or cptxn_…, when known
    magnitude: int
    fee: int  # magnitude of the fee part
    reversed: bool = False


@dataclass
class LoanState:
    """A loan's running totals, in minor units: enough to split the next repayment.

    Fee parts use cumulative rounding: after repaying C of the total T = advance + fee, the fee
    booked so far is round(C × fee / T), so the parts sum exactly to the fee when C reaches T. A
    reversal undoes exactly the split of the repayment it reverses.
    """

    loan: LoanConfig
    advance: int
    fee_total: int
    repaid: int = 0  # repaid with a booked split, net of reversals (C)
    fees: int = 0  # fee parts booked so far
    advance_reversed: int = 0  # payouts reversed (financing cancelled)
    repayments: list[_Repayment] = field(default_factory=list)

    @classmethod
    def for_loan(cls, loan: LoanConfig) -> LoanState:
        return cls(
            loan,
            currency.to_minor(loan.advance, loan.currency),
            currency.to_minor(loan.fee, loan.currency),
        )

    @property
    def owed(self) -> int:
        """Advance (less reversed payouts) plus the fee: what the repayments must add up to."""
        return self.advance - self.advance_reversed + self.fee_total

    def fee_for_paydown(self, magnitude: int) -> int:
        """The fee part of a repayment of ``magnitude``, by cumulative pro-rata rounding."""
        owed = self.owed
        if owed <= 0 or self.fee_total == 0:
            return 0
        after = self.repaid + magnitude
        if after >= owed:  # the repayment that completes the loan takes the rest, exactly
            return self.fee_total - self.fees
        fee = _round_div(after * self.fee_total, owed) - self.fees
        return min(max(fee, 0), magnitude)

    def fee_for_reversal(self, magnitude: int, reverses: str | None) -> tuple[int, str | None]:
        """(fee part to undo, key of the repayment undone) for a reversal of ``magnitude``."""
        undone = self._reversed_repayment(magnitude, reverses)
        if undone is not None:
            undone.reversed = True
            return undone.fee, undone.key
        owed = self.owed
        if owed <= 0:
            return 0, None
        fee = self.fees - _round_div((self.repaid - magnitude) * self.fee_total, owed)
        return min(max(fee, 0), magnitude), None

    def _reversed_repayment(self, magnitude: int, key: str | None) -> _Repayment | None:
        if key:
            for rep in self.repayments:
                if rep.key == key and not rep.reversed:
                    return rep
        same = [r for r in self.repayments if r.magnitude == magnitude and not r.reversed]
        return same[-1] if same else None

    def apply(self, kind: str, magnitude: int, fee: int, key: str | None) -> None:
        """Record a movement whose split is booked (``fee`` is the fee part's magnitude)."""
        if kind == PAYDOWN:
            self.repaid += magnitude
            self.fees += fee
            self.repayments.append(_Repayment(key, magnitude, fee))
        elif kind == PAYDOWN_REVERSAL:
            self.repaid -= magnitude
            self.fees -= fee
        elif kind == PAYOUT_REVERSAL:
            self.advance_reversed += magnitude
