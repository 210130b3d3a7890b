"""Tests for beancount_stripe.booking: balance transaction → Beancount transaction."""

from __future__ import annotations

import datetime
import json
import os
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from beancount import loader
from beancount.core import data
from beancount.parser import parser, printer
from hypothesis import given, settings
from hypothesis import strategies as st

from beancount_stripe import booking, currency
from beancount_stripe.config import ClientConfig, KeySource, make_accounts
from beancount_stripe.errors import ConfigError, CurrencyError, InputFileError

HERE = Path(__file__).parent / "booking"
# A snapshot of /work/shared/stripe-reference/balance_transaction_type_enum_history.json.
ENUM_HISTORY = HERE / "balance_transaction_type_enum_history.json"
FEE_TAX_ACCOUNT = "Expenses:Acme:Stripe:Fee-Tax"
T0 = int(datetime.datetime(2024, 3, 1, 12, 0, tzinfo=datetime.UTC).timestamp())


def make_client(timezone: str = "UTC", *, fee_tax: bool = False) -> ClientConfig:
    overrides = {"fee_tax": FEE_TAX_ACCOUNT} if fee_tax else None
    return ClientConfig(
        id="acme",
        name="Acme",
        stripe_account="acct_1",
        key=KeySource("env", "X"),
        ledger=Path("l.beancount"),
        output=Path("s.beancount"),
        archive_dir=Path("a"),
        timezone=timezone,
        accounts=make_accounts("Acme", overrides),
    )


CLIENT = make_client()
TAX_CLIENT = make_client(fee_tax=True)


def make_bt(
    type: str = "charge",
    category: str | None = None,
    amount: int = 1000,
    fee: int = 59,
    *,
    id: str = "txn_1",
    currency: str = "usd",
    created: int = T0,
    source: Any = "ch_1",
    description: str | None = "Order 42",
    fee_details: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A balance transaction in Stripe's wire shape (STRIPE-FACTS §1.1)."""
    if fee_details is None:
        fee_details = (
            [
                {
                    "amount": fee,
                    "application": None,
                    "currency": currency,
                    "description": "Stripe processing fees",
                    "type": "stripe_fee",
                }
            ]
            if fee
            else []
        )
    bt = {
        "id": id,
        "object": "balance_transaction",
        "amount": amount,
        "available_on": created + 86400 * 2,
        "balance_type": "payments",
        "created": created,
        "currency": currency,
        "description": description,
        "exchange_rate": None,
        "fee": fee,
        "fee_details": fee_details,
        "net": amount - fee,
        "reporting_category": category if category is not None else type,
        "source": source,
        "status": "available",
        "type": type,
    }
    bt.update(extra)
    return bt


# Every type Stripe has documented (all lists in the enum history file) plus two invented future
# types. Columns: type, reporting_category used in the BT, expected counter-leg (Accounts field).
# Where Stripe documents no category for a type, the row uses the type name as category (what
# Stripe does for most newer types); those rows land by type or end up uncategorized.
TYPE_TABLE: list[tuple[str, str, str]] = [
    # latest spec enum
    ("adjustment", "other_adjustment", "adjustments"),
    ("adjustment", "dispute", "disputes"),
    ("adjustment", "dispute_reversal", "disputes"),
    ("advance", "advance", "uncategorized"),
    ("advance_funding", "advance_funding", "uncategorized"),
    ("anticipation_repayment", "anticipation_repayment", "uncategorized"),
    ("application_fee", "platform_earning", "platform_revenue"),
    ("application_fee_refund", "platform_earning_refund", "platform_revenue"),
    ("charge", "charge", "revenue"),
    ("climate_order_purchase", "climate_order_purchase", "uncategorized"),
    ("climate_order_refund", "climate_order_refund", "uncategorized"),
    ("connect_collection_transfer", "connect_collection_transfer", "connect_transfers"),
    ("contribution", "contribution", "uncategorized"),
    ("fee_credit_funding", "fee_credit_funding", "uncategorized"),
    ("inbound_transfer", "inbound_transfer", "uncategorized"),
    ("inbound_transfer_reversal", "inbound_transfer_reversal", "uncategorized"),
    ("issuing_authorization_hold", "issuing_authorization_hold", "uncategorized"),
    ("issuing_authorization_release", "issuing_authorization_release", "uncategorized"),
    ("issuing_dispute", "issuing_dispute", "uncategorized"),
    ("issuing_dispute_provisional_credit", "issuing_dispute_provisional_credit", "uncategorized"),
    (
        "issuing_dispute_provisional_credit_reversal",
        "issuing_dispute_provisional_credit_reversal",
        "uncategorized",
    ),
    ("issuing_transaction", "issuing_transaction", "uncategorized"),
    ("obligation_outbound", "other_adjustment", "adjustments"),  # by category
    ("obligation_reversal_inbound", "other_adjustment", "adjustments"),  # by category
    ("payment", "charge", "revenue"),
    ("payment_failure_refund", "charge_failure", "refunds"),
    ("payment_network_reserve_hold", "payment_network_reserve_hold", "reserve"),
    ("payment_network_reserve_release", "payment_network_reserve_release", "reserve"),
    ("payment_refund", "refund", "refunds"),
    ("payment_reversal", "payment_reversal", "uncategorized"),
    ("payment_unreconciled", "unreconciled_customer_funds", "uncategorized"),
    ("payout", "payout", "transit"),
    ("payout_cancel", "payout_reversal", "transit"),
    ("payout_failure", "payout_reversal", "transit"),
    ("payout_minimum_balance_hold", "payout_minimum_balance_hold", "reserve"),
    ("payout_minimum_balance_release", "payout_minimum_balance_release", "reserve"),
    ("refund", "refund", "refunds"),
    ("refund", "partial_capture_reversal", "adjustments"),
    ("refund_failure", "refund_failure", "refunds"),
    ("reserve_hold", "reserve_hold", "reserve"),
    ("reserve_release", "reserve_release", "reserve"),
    ("reserve_transaction", "connect_reserved_funds", "reserve"),
    ("reserved_funds", "risk_reserved_funds", "reserve"),
    ("stripe_balance_payment_debit", "stripe_balance_payment_debit", "uncategorized"),
    (
        "stripe_balance_payment_debit_reversal",
        "stripe_balance_payment_debit_reversal",
        "uncategorized",
    ),
    ("stripe_fee", "fee", "fees"),
    ("stripe_fx_fee", "fee", "fees"),
    ("tax_fee", "tax", "fees"),
    ("tax_fund", "tax_fund", "uncategorized"),
    ("topup", "topup", "transit"),
    ("topup_reversal", "topup_reversal", "transit"),
    ("transfer", "transfer", "connect_transfers"),
    ("transfer_cancel", "transfer_reversal", "connect_transfers"),
    ("transfer_failure", "transfer_reversal", "connect_transfers"),
    ("transfer_refund", "transfer_reversal", "connect_transfers"),
    # not in the type enum, but a known reporting category of its own
    ("network_cost", "network_cost", "fees"),
    # removed from the spec in 2024-04 (category "obligation" was removed too)
    ("obligation_inbound", "obligation", "uncategorized"),
    ("obligation_payout", "obligation", "uncategorized"),
    ("obligation_payout_failure", "obligation", "uncategorized"),
    ("obligation_reversal_outbound", "obligation", "uncategorized"),
    # documented on the balance-transaction-types page only
    ("balance_transfer_inbound", "balance_transfer_inbound", "uncategorized"),
    ("balance_transfer_outbound", "balance_transfer_outbound", "uncategorized"),
    # legacy types named on the reporting-categories page: land by their category
    ("validation", "charge", "revenue"),
    ("adjusted_for_overdraft_transaction", "dispute", "disputes"),
    ("recipient_transfer", "transfer", "connect_transfers"),
    ("recipient_transfer_cancel", "transfer_reversal", "connect_transfers"),
    ("recipient_transfer_failure", "transfer_reversal", "connect_transfers"),
    ("climate_reservation_purchase", "climate_order_purchase", "uncategorized"),
    ("climate_reservation_refund", "climate_order_refund", "uncategorized"),
    ("transferred_to_balance_transaction", "unreconciled_customer_funds", "uncategorized"),
    ("issuing_disbursement", "issuing_disbursement", "uncategorized"),
    (
        "issuing_dispute_fraud_liability_debit",
        "issuing_dispute_fraud_liability_debit",
        "uncategorized",
    ),
    # Stripe Capital, seen in real data
    ("financing_payout", "financing_payout", "capital_loan"),
    ("financing_paydown", "financing_paydown", "capital_loan"),
    ("financing_payout_reversal", "financing_payout_reversal", "capital_loan"),
    ("financing_paydown_reversal", "financing_paydown_reversal", "capital_loan"),
    # invented future types: one with a known reporting category, one with an unknown one
    ("instant_settlement_fee", "fee", "fees"),
    ("quantum_escrow_hold", "quantum_escrow", "uncategorized"),
]


def _all_documented_types() -> set[str]:
    history = json.loads(ENUM_HISTORY.read_text())
    types: set[str] = set()
    for key, value in history.items():
        if isinstance(value, list) and key != "history":
            types.update(value)
    for step in history["history"]:
        types.update(step.get("initial", []), step.get("added", []), step.get("removed", []))
    return types


def test_enum_snapshot_matches_shared_reference():
    shared = Path("/work/shared/stripe-reference") / ENUM_HISTORY.name
    if not shared.exists():
        pytest.skip("shared stripe-reference not present")
    assert json.loads(shared.read_text()) == json.loads(ENUM_HISTORY.read_text())


def test_type_table_covers_every_documented_type():
    documented = _all_documented_types()
    assert len(documented) >= 70  # 52 latest + 4 removed + 2 docs + 10 legacy + 4 Capital
    missing = documented - {row[0] for row in TYPE_TABLE}
    assert not missing, f"add rows for {sorted(missing)}"


def _sums(entry: data.Transaction) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for posting in entry.postings:
        totals[posting.units.currency] += posting.units.number
    return dict(totals)


@pytest.mark.parametrize(
    ("bt_type", "category", "expected"), TYPE_TABLE, ids=[f"{t}/{c}" for t, c, _ in TYPE_TABLE]
)
def test_every_type_books(bt_type: str, category: str, expected: str):
    source = "po_1ABC" if bt_type.startswith("payout") else "src_1"
    bt = make_bt(bt_type, category, amount=-2500, fee=75, source=source, id="txn_T1")
    assert booking.classify(bt) == expected
    entry = booking.book(bt, CLIENT)

    clearing, fees, counter = entry.postings
    assert clearing.account == "Assets:Acme:Stripe"
    assert clearing.units.number == Decimal("-25.75")
    assert fees.account == "Expenses:Acme:Stripe:Fees"
    assert fees.units.number == Decimal("0.75")
    assert counter.account == getattr(CLIENT.accounts, expected)
    assert counter.units.number == Decimal("25.00")
    assert {p.units.currency for p in entry.postings} == {"USD"}
    assert _sums(entry) == {"USD": Decimal("0")}

    assert entry.flag == ("!" if expected == "uncategorized" else "*")
    meta = {k: v for k, v in entry.meta.items() if k not in ("filename", "lineno")}
    expected_meta = {"stripe_id": "txn_T1", "stripe_source": source, "stripe_type": bt_type}
    if category != bt_type:
        expected_meta["stripe_category"] = category
    if expected == "capital_loan":  # Capital descriptions are ids: metadata, not the payee
        expected_meta["stripe_description"] = bt["description"]
        assert entry.payee == "Stripe Capital"
    assert meta == expected_meta
    assert list(meta) == list(expected_meta)  # order is part of the contract
    assert entry.links == ({"po_1ABC"} if bt_type in booking.PAYOUT_TYPES else set())
    assert entry.tags == set()
    assert entry.narration


def test_mapping_tables_only_name_real_account_fields():
    fields = set(CLIENT.accounts.__dataclass_fields__)
    for table in (booking.TYPE_COUNTER, booking.CATEGORY_COUNTER, booking.PAIR_COUNTER):
        assert set(table.values()) <= fields


def test_classify_tax_fee_with_fee_tax():
    assert booking.classify(make_bt("tax_fee", "tax"), fee_tax=True) == "fee_tax"
    assert booking.classify(make_bt("vat_on_fees_v2", "tax"), fee_tax=True) == "fee_tax"
    assert booking.classify(make_bt("vat_on_fees_v2", "tax")) == "fees"
    assert booking.classify(make_bt("stripe_fee", "fee"), fee_tax=True) == "fees"
    entry = booking.book(make_bt("tax_fee", "tax", amount=-19, fee=0), TAX_CLIENT)
    assert entry.postings[-1].account == FEE_TAX_ACCOUNT


def test_classify_missing_type_and_category():
    bt = make_bt()
    del bt["type"], bt["reporting_category"]
    assert booking.classify(bt) == "uncategorized"
    entry = booking.book(bt, CLIENT)
    assert entry.flag == "!"
    assert entry.narration == "Stripe balance transaction"
    assert "stripe_type" not in entry.meta


# --- dates ---------------------------------------------------------------------------------------


def test_date_in_client_timezone():
    late = int(datetime.datetime(2024, 3, 1, 23, 30, tzinfo=datetime.UTC).timestamp())
    bt = make_bt(created=late)
    assert booking.book(bt, make_client("UTC")).date == datetime.date(2024, 3, 1)
    assert booking.book(bt, make_client("Asia/Tokyo")).date == datetime.date(2024, 3, 2)
    assert booking.book(bt, make_client("America/New_York")).date == datetime.date(2024, 3, 1)


def test_unknown_timezone_is_a_config_error():
    with pytest.raises(ConfigError, match="Mars/Olympus_Mons"):
        booking.book(make_bt(), make_client("Mars/Olympus_Mons"))


# --- payee and narration -------------------------------------------------------------------------


def _charge(**fields: Any) -> dict[str, Any]:
    charge = {
        "id": "ch_9",
        "object": "charge",
        "billing_details": {"email": None, "name": None, "phone": None},
        "customer": None,
        "receipt_email": None,
        "description": "Order 42",
    }
    charge.update(fields)
    return charge


def test_payee_is_billing_name_from_expanded_charge():
    source = _charge(billing_details={"name": "Jenny Rosen", "email": "jenny@example.com"})
    entry = booking.book(make_bt(source=source), CLIENT)
    assert (entry.payee, entry.narration) == ("Jenny Rosen", "Order 42")
    assert entry.meta["stripe_source"] == "ch_9"


def test_payee_prefers_customer_name_over_emails():
    source = _charge(
        billing_details={"name": None, "email": "billing@example.com"},
        customer={"id": "cus_1", "object": "customer", "name": "Acme GmbH", "email": "a@b.c"},
    )
    assert booking.book(make_bt(source=source), CLIENT).payee == "Acme GmbH"


def test_payee_falls_back_to_customer_email_then_receipt_email():
    source = _charge(customer={"id": "cus_1", "name": None, "email": "buyer@example.com"})
    assert booking.book(make_bt(source=source), CLIENT).payee == "buyer@example.com"
    source = _charge(customer="cus_1", receipt_email="receipt@example.com")
    assert booking.book(make_bt(source=source), CLIENT).payee == "receipt@example.com"


def test_expanded_charge_without_party_uses_description():
    entry = booking.book(make_bt(source=_charge()), CLIENT)
    assert (entry.payee, entry.narration) == ("Order 42", "Card charge")


def test_party_without_description_gets_type_label():
    source = _charge(billing_details={"name": "Jenny Rosen"})
    entry = booking.book(make_bt(source=source, description=None), CLIENT)
    assert (entry.payee, entry.narration) == ("Jenny Rosen", "Card charge")


def test_unexpanded_source_uses_description_as_payee():
    entry = booking.book(make_bt(source="ch_1", description="  Order\n 42 "), CLIENT)
    assert (entry.payee, entry.narration) == ("Order 42", "Card charge")


def test_no_description_no_payee_never_empty_narration():
    entry = booking.book(make_bt("payout", amount=-5000, fee=0, description=None), CLIENT)
    assert entry.payee is None
    assert entry.narration == "Stripe payout"
    entry = booking.book(make_bt("quantum_escrow_hold", "x", source=None, description=""), CLIENT)
    assert (entry.payee, entry.narration) == (None, "Quantum escrow hold")
    assert "stripe_source" not in entry.meta


def test_refund_with_expanded_charge_inside_refund_source():
    refund = {
        "id": "re_1",
        "object": "refund",
        "charge": _charge(billing_details={"name": "Jenny Rosen"}),
    }
    bt = make_bt("refund", amount=-1000, fee=0, source=refund, description="REFUND FOR CHARGE")
    entry = booking.book(bt, CLIENT)
    assert (entry.payee, entry.narration) == ("Jenny Rosen", "REFUND FOR CHARGE")
    assert entry.meta["stripe_source"] == "re_1"


@pytest.mark.parametrize(
    ("bt_type", "category", "narration"),
    [
        ("adjustment", "dispute", "Dispute"),
        ("adjustment", "dispute_reversal", "Dispute reversal"),
        ("refund", "refund", "Refund"),
        ("payout", "payout", "Stripe payout"),
        ("stripe_fee", "fee", "Stripe fee"),
    ],
)
def test_labels(bt_type: str, category: str, narration: str):
    entry = booking.book(make_bt(bt_type, category, description=None), CLIENT)
    assert entry.narration == narration


# --- links ---------------------------------------------------------------------------------------


def test_payout_link_from_expanded_payout_and_sanitized():
    payout = {"id": "po_1Pgc79B7WZ01zgkWu1KToYf4", "object": "payout", "amount": 5000}
    entry = booking.book(make_bt("payout", amount=-5000, fee=0, source=payout), CLIENT)
    assert entry.links == {"po_1Pgc79B7WZ01zgkWu1KToYf4"}
    entry = booking.book(make_bt("payout_failure", "payout_reversal", source="po_a b+c"), CLIENT)
    assert entry.links == {"po_a-b-c"}
    assert booking.book(make_bt("payout", source=None), CLIENT).links == set()


# --- fees ----------------------------------------------------------------------------------------

TAX_DETAILS = [
    {
        "amount": 120,
        "application": None,
        "currency": "eur",
        "description": "fee",
        "type": "stripe_fee",
    },
    {"amount": 30, "application": None, "currency": "eur", "description": "VAT", "type": "tax"},
]


def _by_account(entry: data.Transaction) -> dict[str, Decimal]:
    return {p.account: p.units.number for p in entry.postings}


def test_fee_tax_split_when_configured():
    bt = make_bt(amount=10000, fee=150, currency="eur", fee_details=TAX_DETAILS)
    entry = booking.book(bt, TAX_CLIENT)
    assert [p.account for p in entry.postings] == [
        "Assets:Acme:Stripe",
        "Expenses:Acme:Stripe:Fees",
        FEE_TAX_ACCOUNT,
        "Income:Acme:Sales",
    ]
    assert [p.units.number for p in entry.postings] == [
        Decimal("98.50"),
        Decimal("1.20"),
        Decimal("0.30"),
        Decimal("-100.00"),
    ]


def test_fee_tax_not_split_without_fee_tax_account():
    bt = make_bt(amount=10000, fee=150, currency="eur", fee_details=TAX_DETAILS)
    entry = booking.book(bt, CLIENT)
    assert _by_account(entry) == {
        "Assets:Acme:Stripe": Decimal("98.50"),
        "Expenses:Acme:Stripe:Fees": Decimal("1.50"),
        "Income:Acme:Sales": Decimal("-100.00"),
    }


def test_fee_tax_not_split_when_details_do_not_add_up():
    bt = make_bt(amount=10000, fee=170, currency="eur", fee_details=TAX_DETAILS)
    entry = booking.book(bt, TAX_CLIENT)
    assert FEE_TAX_ACCOUNT not in _by_account(entry)
    assert _by_account(entry)["Expenses:Acme:Stripe:Fees"] == Decimal("1.70")


def test_fee_all_tax_omits_zero_fee_posting():
    details = [{"amount": 30, "currency": "eur", "type": "tax"}]
    bt = make_bt(amount=10000, fee=30, currency="eur", fee_details=details)
    entry = booking.book(bt, TAX_CLIENT)
    assert [p.account for p in entry.postings] == [
        "Assets:Acme:Stripe",
        FEE_TAX_ACCOUNT,
        "Income:Acme:Sales",
    ]


def test_zero_fee_omits_fee_posting():
    entry = booking.book(make_bt("refund", amount=-1000, fee=0), CLIENT)
    assert [p.account for p in entry.postings] == ["Assets:Acme:Stripe", "Income:Acme:Refunds"]


def test_legacy_negative_fee_refund():
    # Legacy export row: refund,-249.00,-7.52,-241.48 (Stripe returned the fee)
    bt = make_bt("refund", amount=-24900, fee=-752, fee_details=[])
    entry = booking.book(bt, CLIENT)
    assert _by_account(entry) == {
        "Assets:Acme:Stripe": Decimal("-241.48"),
        "Expenses:Acme:Stripe:Fees": Decimal("-7.52"),
        "Income:Acme:Refunds": Decimal("249.00"),
    }
    assert _sums(entry) == {"USD": 0}


def test_zero_amount_transaction_is_still_booked():
    entry = booking.book(make_bt("adjustment", "other_adjustment", amount=0, fee=0), CLIENT)
    assert [p.units.number for p in entry.postings] == [Decimal("0.00"), Decimal("0.00")]
    assert entry.meta["stripe_id"] == "txn_1"


# --- currencies and bad input --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "amount", "fee", "net_text", "commodity"),
    [
        ("jpy", 5000, 180, "4820", "JPY"),
        ("krw", 100000, 3400, "96600", "KRW"),
        ("kwd", 5120, 150, "4.970", "KWD"),
        ("bhd", 10000, 0, "10.000", "BHD"),
        ("isk", 50000, 1000, "490.00", "ISK"),
        ("huf", 104500, 0, "1045.00", "HUF"),
    ],
)
def test_currency_exponents_in_postings(code, amount, fee, net_text, commodity):
    entry = booking.book(make_bt(amount=amount, fee=fee, currency=code), CLIENT)
    assert str(entry.postings[0].units.number) == net_text
    assert {p.units.currency for p in entry.postings} == {commodity}
    assert _sums(entry) == {commodity: 0}


def test_unknown_currency_names_the_transaction():
    with pytest.raises(CurrencyError) as info:
        booking.book(make_bt(currency="xyz", id="txn_BAD"), CLIENT)
    assert "balance transaction txn_BAD" in str(info.value)
    assert "'xyz'" in str(info.value)


def test_net_mismatch_is_an_input_error_naming_the_id():
    bt = make_bt(id="txn_BROKEN")
    bt["net"] += 1
    with pytest.raises(InputFileError, match="txn_BROKEN"):
        booking.book(bt, CLIENT)


@pytest.mark.parametrize("field", ["amount", "fee", "net", "created"])
def test_non_integer_fields_are_input_errors(field: str):
    bt = make_bt(id="txn_F")
    bt[field] = "10.00"
    with pytest.raises(InputFileError, match="txn_F"):
        booking.book(bt, CLIENT)


def test_missing_id_is_an_input_error():
    bt = make_bt()
    del bt["id"]
    with pytest.raises(InputFileError, match="no id"):
        booking.book(bt, CLIENT, filename="archive.jsonl")


# --- book_all and balance assertions -------------------------------------------------------------


def test_book_all_sorts_by_date_created_id():
    bts = [
        make_bt(id="txn_c", created=T0 + 10),
        make_bt(id="txn_b", created=T0),
        make_bt(id="txn_a", created=T0 + 10),
        make_bt(id="txn_z", created=T0 - 86400),
    ]
    entries = booking.book_all(bts, CLIENT)
    assert [e.meta["stripe_id"] for e in entries] == ["txn_z", "txn_b", "txn_a", "txn_c"]
    assert booking.book_all([], CLIENT) == []


def test_balance_assertions():
    when = datetime.date(2024, 3, 2)
    out = booking.balance_assertions(CLIENT, when, {"usd": 123456, "jpy": 500, "KWD": 5120})
    assert [(b.account, b.date, str(b.amount)) for b in out] == [
        ("Assets:Acme:Stripe", when, "500 JPY"),
        ("Assets:Acme:Stripe", when, "5.120 KWD"),
        ("Assets:Acme:Stripe", when, "1234.56 USD"),
    ]
    assert all(b.meta["stripe_balance_source"] == "v1/balance" for b in out)
    with pytest.raises(CurrencyError):
        booking.balance_assertions(CLIENT, when, {"usdd": 1})


# --- Beancount round trip ------------------------------------------------------------------------


def _opens(client: ClientConfig) -> str:
    accounts = {v for v in vars(client.accounts).values() if v}
    return "".join(f"2000-01-01 open {a}\n" for a in sorted(accounts))


def _strip_meta(meta: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in meta.items() if k not in ("filename", "lineno")}


def _assert_round_trip(entries: list[data.Transaction], client: ClientConfig) -> None:
    text = "\n".join(printer.format_entry(e) for e in entries)
    parsed, errors, _ = parser.parse_string(text)
    assert not errors, errors
    assert len(parsed) == len(entries)
    for original, back in zip(entries, parsed, strict=True):
        assert (back.date, back.flag, back.payee, back.narration) == (
            original.date,
            original.flag,
            original.payee,
            original.narration,
        )
        assert (back.tags, back.links) == (original.tags, original.links)
        assert _strip_meta(back.meta) == _strip_meta(original.meta)
        assert [(p.account, p.units) for p in back.postings] == [
            (p.account, p.units) for p in original.postings
        ]
    loaded, errors, _ = loader.load_string(_opens(client) + text)
    assert not errors, [e.message for e in errors]
    assert len([e for e in loaded if isinstance(e, data.Transaction)]) == len(entries)


def test_every_type_round_trips_through_beancount():
    bts = [
        make_bt(
            t,
            c,
            amount=-2500 + i,
            fee=75,
            id=f"txn_{i}",
            created=T0 + i,
            source="po_1" if t.startswith("payout") else f"src_{i}",
        )
        for i, (t, c, _) in enumerate(TYPE_TABLE)
    ]
    _assert_round_trip(booking.book_all(bts, CLIENT), CLIENT)


def test_awkward_text_round_trips():
    bts = [
        make_bt(id="txn_q", description='He said "hi" \\ bye', source=_charge()),
        make_bt(id="txn_u", description="Café Zürich — 東京", source="ch_ü"),
        make_bt("payout", id="txn_p", source="po_x y", description=None),
        make_bt(id="txn_t", amount=10000, fee=150, currency="eur", fee_details=TAX_DETAILS),
    ]
    _assert_round_trip(booking.book_all(bts, TAX_CLIENT), TAX_CLIENT)


BT_TYPES = st.sampled_from([row[:2] for row in TYPE_TABLE])
CURRENCIES = st.sampled_from(["usd", "eur", "jpy", "krw", "kwd", "bhd", "isk", "huf", "ugx"])


@settings(max_examples=60, deadline=None)
@given(
    kind=BT_TYPES,
    code=CURRENCIES,
    amount=st.integers(-(10**10), 10**10),
    fee=st.integers(-(10**6), 10**6),
    tax=st.integers(0, 10**4),
    created=st.integers(0, 4_000_000_000),
)
def test_postings_always_balance(kind, code, amount, fee, tax, created):
    details = [
        {"amount": fee - tax, "currency": code, "type": "stripe_fee"},
        {"amount": tax, "currency": code, "type": "tax"},
    ]
    bt = make_bt(*kind, amount=amount, fee=fee, currency=code, created=created, fee_details=details)
    for client in (CLIENT, TAX_CLIENT):
        entry = booking.book(bt, client)
        assert _sums(entry) == {code.upper(): 0}
        assert entry.postings[0].units.number == currency.to_decimal(amount - fee, code)
        assert entry.postings[-1].units.number == currency.to_decimal(-amount, code)
        assert all(p.units.number != 0 for p in entry.postings[1:-1])  # zero fee legs omitted
        assert entry.date == datetime.datetime.fromtimestamp(created, datetime.UTC).date()


# --- golden file ---------------------------------------------------------------------------------

GOLDEN_INPUT = HERE / "golden_bts.json"
GOLDEN_OUTPUT = HERE / "golden_bts.beancount"


def _golden_text() -> str:
    bts = json.loads(GOLDEN_INPUT.read_text())
    client = make_client("Europe/Berlin", fee_tax=True)
    entries: list[data.Directive] = list(booking.book_all(bts, client))
    totals: dict[str, int] = defaultdict(int)
    for bt in bts:
        totals[bt["currency"]] += bt["net"]
    last = max(e.date for e in entries)
    entries += booking.balance_assertions(client, last + datetime.timedelta(days=1), totals)
    return _opens(client) + "\n" + "\n".join(printer.format_entry(e) for e in entries)


def test_golden():
    text = _golden_text()
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN_OUTPUT.write_text(text)
    assert text == GOLDEN_OUTPUT.read_text(), "run with UPDATE_GOLDEN=1 and review the diff"
    # The golden ledger is valid Beancount, and its balance assertions (Σ net) hold.
    _, errors, _ = loader.load_string(text)
    assert not errors, [e.message for e in errors]
