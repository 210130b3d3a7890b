"""The fields a rule can read: from the balance transaction, its expanded source, or derived
(customer.*, metadata.*, party); ``Facts`` computes each at most once per transaction."""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from beancount.core import data

from beancount_stripe import booking, currency

if TYPE_CHECKING:
    from beancount_stripe.rules.ruleset import Ruleset

# -- fields ----------------------------------------------------------------------------------------
#
# A field is read from the BT, from its expanded source, or derived (customer.*, metadata.*, party).
# Values are str, Decimal (amounts in major units, with sign), datetime.date, or None when absent.

TEXT, NUMBER, DATE, ANY = "text", "number", "date", "any"
Getter = Callable[["Facts"], Any]


def _bt_text(key: str) -> Getter:
    def get(f: Facts) -> Any:
        value = f.bt.get(key)
        return value if type(value) is str or isinstance(value, str) else None

    return get


def _bt_money(key: str) -> Getter:
    def get(f: Facts) -> Any:
        value = f.bt.get(key)
        if type(value) is not int:
            return None
        return currency.to_decimal(value, f.bt.get("currency"))  # type: ignore[arg-type]

    setattr(get, BT_MONEY, key)  # read inline by the compiled indexes (rules/compiled.py)
    return get


BT_MONEY = "_bt_money"


def _exchange_rate(f: Facts) -> Any:
    value = f.bt.get("exchange_rate")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return Decimal(str(value))
    return None


def _created(f: Facts) -> Any:
    return f.entry.date  # read inline by the compiled indexes (rules/compiled.py)


def _available_on(f: Facts) -> Any:
    value = f.bt.get("available_on")
    if type(value) is not int:
        return None
    return datetime.datetime.fromtimestamp(value, f.ruleset.tz).date()


def _source_id(f: Facts) -> Any:
    source = f.bt.get("source")
    if _is_mapping(source):
        source = source.get("id")
    return source if isinstance(source, str) else None


def _charge(f: Facts) -> Mapping[str, Any] | None:
    """The charge behind the BT: its source, or the charge a refund/dispute expands."""
    found = f._charge
    if found is _MISSING:  # read by most customer fields: found once per BT
        found = f._charge = _find_charge(f.bt)
    return found  # type: ignore[return-value]


_CHARGE_KEY = "\1charge"
_MISSING = object()


def _is_mapping(obj: Any) -> bool:
    return type(obj) is dict or isinstance(obj, Mapping)


CHARGE_TYPES = ("charge", "payment")  # BT types whose source is the charge itself


def _find_charge(bt: Mapping[str, Any]) -> Mapping[str, Any] | None:
    source = bt.get("source")
    if not _is_mapping(source):
        return None
    if source.get("object") == "charge" or bt.get("type") in CHARGE_TYPES:
        return source
    charge = source.get("charge")
    return charge if _is_mapping(charge) else None


charge_of = _charge


def _sub(obj: Any, *keys: str) -> Any:
    for key in keys:
        if type(obj) is not dict and not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def _first_text(*values: Any) -> str | None:
    for value in values:
        if isinstance(value, str) and value.strip():
            return " ".join(value.split())
    return None


def _charge_path(
    *path: str, words: bool = False, absent: str = "", chargeless: bool = True
) -> Callable[[Getter], Getter]:
    """Mark a charge field's usual shape for the compiled indexes (rules/compiled.py): when the
    charge is a dict and ``path`` leads to a str (``words``: whitespace-normalized, not blank),
    that str is the field's value; otherwise the getter decides. ``absent`` says when the
    getter would answer None without being asked: "dict" when the last step's mapping is a dict
    without the key (or None under it), "source" when, besides, the charge is the BT's source.
    ``chargeless``: the field is None for a BT with no charge behind it (a payout, a fee)."""

    def mark(getter: Getter) -> Getter:
        setattr(getter, CHARGE_PATH, (path, words, absent, chargeless))
        return getter

    return mark


CHARGE_PATH = "_charge_path"


def _one_text(value: Any) -> str | None:
    """``_first_text`` of one value, inlined where a field is read for every transaction."""
    if type(value) is str:
        words = value.split()
        return " ".join(words) if words else None
    return _first_text(value)


def _billing_text(charge: Any, key: str) -> str | None:
    """The charge's ``billing_details[key]`` when it is text: the usual shape, in one step."""
    if type(charge) is dict:
        billing = charge.get("billing_details")
        if type(billing) is dict:
            return _one_text(billing.get(key))
    return None


@_charge_path("billing_details", "name", words=True)
def _customer_name(f: Facts) -> Any:
    charge = _charge(f)
    name = _billing_text(charge, "name")
    if name is not None:
        return name
    return _first_text(_sub(charge, "billing_details", "name"), _sub(charge, "customer", "name"))


@_charge_path("billing_details", "email", words=True)
def _customer_email(f: Facts) -> Any:
    charge = _charge(f)
    email = _billing_text(charge, "email")
    if email is not None:
        return email
    return _first_text(
        _sub(charge, "billing_details", "email"),
        _sub(charge, "customer", "email"),
        _sub(charge, "receipt_email"),
    )


@_charge_path("customer", absent="dict")
def _customer_id(f: Facts) -> Any:
    charge = _charge(f)
    if type(charge) is dict:
        customer = charge.get("customer")
        if type(customer) is str:
            return customer
    customer = _sub(charge, "customer")
    if _is_mapping(customer):
        customer = customer.get("id")
    return customer if isinstance(customer, str) else None


def _statement_descriptor(f: Facts) -> Any:
    charge = _charge(f)
    source = f.bt.get("source")
    return _first_text(
        _sub(charge, "statement_descriptor"),
        _sub(charge, "calculated_statement_descriptor"),
        _sub(source, "statement_descriptor"),
    )


@_charge_path("payment_method_details", "type", words=True)
def _payment_method(f: Facts) -> Any:
    charge = _charge(f)
    if type(charge) is dict:
        details = charge.get("payment_method_details")
        if type(details) is dict:
            return _one_text(details.get("type"))
    return _first_text(_sub(charge, "payment_method_details", "type"))


def _card(key: str) -> Getter:
    @_charge_path("payment_method_details", "card", key, absent="dict")
    def get(f: Facts) -> Any:
        value = _sub(_charge(f), "payment_method_details", "card", key)
        return value if isinstance(value, str) else None

    return get


def _destination(f: Facts) -> Any:
    source = f.bt.get("source")
    if type(source) is dict:  # the usual shapes, in one step: no destination, or its id
        value = source.get("destination")
        if value is None or type(value) is str:
            return value
    value = _sub(source, "destination")
    if _is_mapping(value):
        value = value.get("id")
    return value if isinstance(value, str) else None


def _party(f: Facts) -> Any:
    return f.party()[0]


def _booked(attr: str) -> Getter:
    def get(f: Facts) -> Any:
        value = getattr(f.entry, attr)
        return value if isinstance(value, str) else None

    return get


def _label(f: Facts) -> Any:
    return booking.label(f.bt)


FIELDS: dict[str, tuple[str, Getter, str]] = {
    "id": (TEXT, _bt_text("id"), "the balance transaction id (txn_…)"),
    "type": (TEXT, _bt_text("type"), "charge, refund, payout, …"),
    "reporting_category": (TEXT, _bt_text("reporting_category"), "charge, dispute, fee, …"),
    "category": (TEXT, _bt_text("reporting_category"), "alias of reporting_category"),
    "description": (TEXT, _bt_text("description"), "the BT description"),
    "currency": (TEXT, _bt_text("currency"), "ISO code (case does not matter)"),
    "status": (TEXT, _bt_text("status"), "available or pending"),
    "balance_type": (TEXT, _bt_text("balance_type"), "payments, issuing, …"),
    "amount": (NUMBER, _bt_money("amount"), "gross, major units, with sign"),
    "net": (NUMBER, _bt_money("net"), "net, major units, with sign"),
    "fee": (NUMBER, _bt_money("fee"), "Stripe's fee, major units"),
    "exchange_rate": (NUMBER, _exchange_rate, "FX rate of a converted charge"),
    "created": (DATE, _created, "date in the client's time zone"),
    "available_on": (DATE, _available_on, "date in the client's time zone"),
    "source": (TEXT, _source_id, "the source id (ch_…, re_…, po_…)"),
    "customer.name": (TEXT, _customer_name, "billing name, else the customer's name"),
    "customer.email": (TEXT, _customer_email, "billing, customer or receipt email"),
    "customer.id": (TEXT, _customer_id, "cus_… of the charge"),
    "statement_descriptor": (TEXT, _statement_descriptor, "what the card statement shows"),
    "payment_method": (TEXT, _payment_method, "card, sepa_debit, us_bank_account, …"),
    "card.brand": (TEXT, _card("brand"), "visa, mastercard, amex, …"),
    "card.country": (TEXT, _card("country"), "issuing country of the card"),
    "card.funding": (TEXT, _card("funding"), "credit, debit, prepaid"),
    "destination": (TEXT, _destination, "payout bank account / transfer account"),
    "party": (TEXT, _party, "canonical payee from the parties table"),
    "payee": (TEXT, _booked("payee"), "payee as booked before rules"),
    "narration": (TEXT, _booked("narration"), "narration as booked before rules"),
    "label": (TEXT, _label, "readable type: Card charge, Stripe payout, …"),
}
_PREFIXED = ("source.", "metadata.")
# Fields that are a text value of the BT itself (``_bt_text``): field → key in the BT
_BT_TEXT_FIELDS = ("id", "type", "reporting_category", "description", "currency", "status")
BT_TEXT = {name: name for name in (*_BT_TEXT_FIELDS, "balance_type")}
BT_TEXT["category"] = "reporting_category"


def _path_getter(path: tuple[str, ...]) -> Getter:
    def get(f: Facts) -> Any:
        source = f.bt.get("source")
        if type(source) is dict and len(path) == 1 and source.get(path[0]) is None:
            return None  # the usual case for ``source.account`` (a party id field)
        value = _sub(source, *path)
        if _is_mapping(value):
            value = value.get("id")
        return value if isinstance(value, str | int | float | bool) else None

    return get


def _metadata_getter(key: str) -> Getter:
    @_charge_path("metadata", key, absent="source", chargeless=False)  # the source's, then
    def get(f: Facts) -> Any:
        charge = _charge(f)
        if type(charge) is dict:  # the usual shape: the charge's own metadata has the key
            meta = charge.get("metadata")
            if type(meta) is dict:
                value = meta.get(key)
                if type(value) is str:
                    return value
        for obj in (charge, f.bt.get("source")):
            value = _sub(obj, "metadata", key)
            if isinstance(value, str | int | float | bool):
                return value
        return None

    return get


# Where a party's `ids` are looked for: the customer, a payout's or transfer's destination, and
# the connected account an application fee came from.
_PARTY_ID_FIELDS: tuple[tuple[str, Getter], ...] = (
    ("customer.id", _customer_id),
    ("destination", _destination),
    ("source.account", _path_getter(("account",))),
)


def field_spec(name: str) -> tuple[str, Getter] | None:
    """(kind, getter) of a field name, or None when no such field exists."""
    if name in FIELDS:
        kind, getter, _doc = FIELDS[name]
        return kind, getter
    if name.startswith("source.") and len(name) > 7:
        parts = tuple(name[7:].split("."))
        if all(parts):
            return ANY, _path_getter(parts)
    if name.startswith("metadata.") and len(name) > 9:
        return ANY, _metadata_getter(name[9:])
    return None


class Facts:
    """One BT (and its booked entry) as rules see it; every field is computed at most once."""

    __slots__ = ("_charge", "_party", "_values", "bt", "captures", "entry", "ruleset")

    def __init__(self, bt: Mapping[str, Any], entry: data.Transaction, ruleset: Ruleset) -> None:
        self.bt = bt
        self.entry = entry
        self.ruleset = ruleset
        self._values: dict[str, Any] = {}
        self._party: tuple[str | None, str] | None = None
        self._charge: Any = _MISSING  # the charge behind the BT (``_charge``), found once
        self.captures: list[re.Match[str]] = []

    def get(self, key: str, getter: Getter) -> Any:
        values = self._values
        value = values.get(key, _MISSING)
        if value is _MISSING:
            value = values[key] = getter(self)
        return value

    def text(self, key: str, getter: Getter) -> str | None:
        values = self._values
        value = values.get(key, _MISSING)
        if value is _MISSING:
            value = values[key] = getter(self)
        if value is None or type(value) is str:
            return value
        return _scalar_text(value)

    def folded(self, key: str, getter: Getter) -> str | None:
        fkey = "\0" + key
        values = self._values
        folded = values.get(fkey, _MISSING)
        if folded is _MISSING:
            text = self.text(key, getter)
            folded = values[fkey] = None if text is None else text.casefold()
        return folded

    def party(self) -> tuple[str | None, str]:
        """(canonical payee or None, how it was recognized)."""
        if self._party is None:
            self._party = self.ruleset.resolve_party(self)
        return self._party


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime.date):
        return value.isoformat()
    return str(value)


def _number(value: Any) -> Decimal | None:
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = Decimal(str(value).strip().replace(",", ""))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None  # "NaN" in metadata compares to nothing
