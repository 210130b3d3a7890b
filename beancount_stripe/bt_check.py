"""The shape a balance transaction must have before anything reads it.

One check, used wherever balance transactions enter the program: pages fetched from the API
(``stripe_api``, before anything is archived) and files read back (``archive``: the archive, a
saved list response, a JSON array; the beangulp importers read through it). Booking, rules and
the balance assertion then rely on the fields below without re-checking, so a malformed
transaction ends in one clear ``InputFileError`` (exit 2) naming it, never in a ``KeyError``.

Required and non-null (Stripe's schema, ``balance_transaction_schema_latest.json``, limited to
what booking reads): ``id``, ``amount``, ``fee``, ``net``, ``currency``, ``created``, ``type``.
``object`` may be absent in a hand-saved file; if present it must be ``balance_transaction``.
Optional fields booking reads are type-checked when present.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from beancount_stripe import currency
from beancount_stripe.errors import CurrencyError, InputFileError

ID_PATTERN = r"txn_[0-9A-Za-z_]+"
_ID_RE = re.compile(ID_PATTERN)
REQUIRED = ("id", "amount", "fee", "net", "currency", "created", "type")
_INTEGERS = ("amount", "fee", "net", "created")
#: Optional fields booking or rules read: the JSON types each may have besides null.
_OPTIONAL: dict[str, tuple[type, ...]] = {
    "description": (str,),
    "reporting_category": (str,),
    "status": (str,),
    "source": (str, Mapping),
    "fee_details": (list,),
    "available_on": (int,),
}
#: ``created`` must be a plausible unix time: after 2000-01-01, before 2100-01-01.
CREATED_RANGE = (946_684_800, 4_102_444_800)
DEFAULT_FIX = "use the balance transactions exactly as the Stripe API returned them (re-fetch)"

_JSON_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number with a fraction",
    bool: "a boolean",
    dict: "an object",
    list: "an array",
    type(None): "null",
}


def json_type(value: Any) -> str:
    """How ``value`` reads in JSON terms, for messages ("a string", "null", …)."""
    if isinstance(value, Mapping):
        return "an object"
    return _JSON_NAMES.get(type(value), type(value).__name__)


#: Exact JSON types (``type(value) is``) of the optional fields (``_OPTIONAL``) in the common
#: shape: no bool, no Mapping subclass, so what passes ``common_shape`` passes the full check.
_TEXT_OR_NULL = frozenset({str, type(None)})
_SOURCE_TYPES = frozenset({str, dict, type(None)})
_LIST_OR_NULL = frozenset({list, type(None)})
_INT_OR_NULL = frozenset({int, type(None)})
_KNOWN_CODES: set[str] = set()  # currency codes ``currency.is_known`` accepted (a cache)
_id_match = _ID_RE.fullmatch


def check_bt(
    obj: Any, *, where: str, index: int | None = None, fix: str = DEFAULT_FIX
) -> dict[str, Any]:
    """Return ``obj`` if it is a well-formed balance transaction, else raise InputFileError.

    ``where`` says where it came from (file:line, or endpoint and page); ``index`` is its position
    there, named when the transaction has no usable id.

    A big history is checked here transaction by transaction: the common shape (a plain dict of
    exact JSON types, as a parser returns it) is accepted by one pass of cheap tests; anything
    else, valid or not, goes through the full check, which alone words the refusals.
    """
    if common_shape(obj):
        return obj  # type: ignore[no-any-return]
    return _check_full(obj, where, index, fix)


def common_shape(obj: Any) -> bool:
    """True when ``obj`` is a well-formed balance transaction of the common shape (a plain dict
    of exact JSON types, as a parser returns it): ``check_bt`` would return it. False says
    nothing: ``check_bt`` decides, and words the refusal."""
    if type(obj) is dict:
        get = obj.get
        txn_id, amount, fee, net = get("id"), get("amount"), get("fee"), get("net")
        created, code, bt_type = get("created"), get("currency"), get("type")
        if (
            type(txn_id) is str
            and type(amount) is int
            and type(fee) is int
            and type(net) is int
            and type(created) is int
            and type(bt_type) is str
            and net == amount - fee
            and CREATED_RANGE[0] <= created < CREATED_RANGE[1]
            and type(code) is str
            and code in _KNOWN_CODES
            and get("object", "balance_transaction") == "balance_transaction"
            and _id_match(txn_id)
            and bt_type.strip()
            and type(get("description")) in _TEXT_OR_NULL
            and type(get("reporting_category")) in _TEXT_OR_NULL
            and type(get("status")) in _TEXT_OR_NULL
            and type(get("source")) in _SOURCE_TYPES
            and type(get("fee_details")) in _LIST_OR_NULL
            and type(get("available_on")) in _INT_OR_NULL
        ):
            return True
    return False


def projected_shape(obj: dict[str, Any]) -> bool:
    """``common_shape`` of a row ``bt_projection`` decoded: its decoder checked the keys, the
    JSON types, ``created`` and ``object``; the sums, the currency, the id and a blank type are
    tested here (``common_shape``'s tests: msgspec's pattern constraints for the last two cost
    ~0.7 µs a row, bench_booking)."""
    return (
        obj["net"] == obj["amount"] - obj["fee"]
        and obj["currency"] in _KNOWN_CODES
        and _id_match(obj["id"]) is not None
        and bool(obj["type"].strip())
    )


def _check_full(obj: Any, where: str, index: int | None, fix: str) -> dict[str, Any]:
    """``check_bt`` for any object: the tests in the order their refusals are worded."""
    at = f"#{index}" if index is not None else "(no id)"
    if not isinstance(obj, Mapping):
        raise InputFileError(
            f"item {at} is {json_type(obj)}, not a balance transaction object",
            where=where,
            fix=fix,
        )
    txn_id = obj.get("id")
    name = f"balance transaction {txn_id}" if _is_text(txn_id) else f"balance transaction {at}"
    if "object" in obj and obj["object"] != "balance_transaction":
        raise InputFileError(
            f"{name} has `object` {obj['object']!r}, not 'balance_transaction'",
            where=where,
            fix=fix,
        )
    missing = [k for k in REQUIRED if k not in obj]
    if missing:
        s = "s" if len(missing) > 1 else ""
        raise InputFileError(
            f"{name} lacks the required field{s} {', '.join(f'`{k}`' for k in missing)}",
            where=where,
            fix=fix,
        )
    if not _is_text(txn_id):
        raise InputFileError(
            f"{name}: `id` is {json_type(txn_id)} ({txn_id!r}), not a non-empty string",
            where=where,
            fix=fix,
        )
    if not _ID_RE.fullmatch(txn_id):  # the ledger scan must find the id again, as written
        raise InputFileError(
            f"balance transaction id {txn_id!r} is not a Stripe id (`txn_` and letters, digits)",
            where=where,
            fix=fix,
        )
    for key in _INTEGERS:
        value = obj[key]
        if type(value) is not int:
            raise InputFileError(
                f"{name}: `{key}` is {json_type(value)} ({value!r}), not an integer"
                + (" number of minor units" if key != "created" else " unix time"),
                where=where,
                fix=fix,
            )
    if obj["net"] != obj["amount"] - obj["fee"]:
        raise InputFileError(
            f"{name}: `net` {obj['net']} is not `amount` {obj['amount']} minus `fee` {obj['fee']}",
            where=where,
            fix=fix,
        )
    low, high = CREATED_RANGE
    if not low <= obj["created"] < high:
        raise InputFileError(
            f"{name}: `created` {obj['created']} is not a plausible unix time (2000–2099)",
            where=where,
            fix=fix,
        )
    code = obj["currency"]
    if not isinstance(code, str) or not currency.is_known(code):
        raise CurrencyError(
            f"{name}: `currency` {code!r} is not a known ISO 4217 currency code",
            where=where,
            fix=fix,
        )
    if not _is_text(obj["type"]):
        raise InputFileError(
            f"{name}: `type` is {json_type(obj['type'])} ({obj['type']!r}), not a string",
            where=where,
            fix=fix,
        )
    for key, allowed in _OPTIONAL.items():
        value = obj.get(key)
        if value is None or (isinstance(value, allowed) and not isinstance(value, bool)):
            continue
        raise InputFileError(
            f"{name}: `{key}` is {json_type(value)} ({_short(value)})",
            where=where,
            fix=fix,
        )
    if type(code) is str and len(_KNOWN_CODES) < 1024:
        _KNOWN_CODES.add(code)  # the fast path accepts it from now on
    return obj


def _is_text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
