"""What a Capital transaction is: its kinds, their balance-transaction types and signs."""

from __future__ import annotations

# -- what a Capital transaction is ------------------------------------------------------------

PAYOUT = "payout"
PAYDOWN = "paydown"
PAYOUT_REVERSAL = "payout_reversal"
PAYDOWN_REVERSAL = "paydown_reversal"
KINDS = (PAYOUT, PAYDOWN, PAYOUT_REVERSAL, PAYDOWN_REVERSAL)
BT_TYPES: dict[str, str] = {kind: f"financing_{kind}" for kind in KINDS}
KIND_OF_BT: dict[str, str] = {bt_type: kind for kind, bt_type in BT_TYPES.items()}
# The sign of each kind's effect on the Stripe balance.
SIGN: dict[str, int] = {PAYOUT: 1, PAYDOWN: -1, PAYOUT_REVERSAL: -1, PAYDOWN_REVERSAL: 1}
_REPAYMENT_KINDS = frozenset({PAYDOWN, PAYDOWN_REVERSAL})  # kinds with a principal/fee split
LABELS: dict[str, str] = {
    PAYOUT: "Stripe Capital financing",
    PAYDOWN: "Stripe Capital paydown",
    PAYOUT_REVERSAL: "Stripe Capital financing reversal",
    PAYDOWN_REVERSAL: "Stripe Capital paydown reversal",
}
# A CSV row and a balance transaction are the same money when kind, currency and amount are equal
# and their dates (in the client's time zone) are at most this many days apart.
MATCH_DAYS = 2
WITHHOLDING_REASON = "automatic_withholding"
CAPITAL_PAYEE = "Stripe Capital"  # the payee of every Capital entry (booking.py agrees)
_WITHHELD_PREFIX = "Withheld funds from"  # balance transaction description of a withholding
