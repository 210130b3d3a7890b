"""Parse only the parts of an archived balance transaction that booking and rules read.

An archive line is ~1.5 KB of JSON, most of it the expanded source (a charge's billing address,
card details, statement descriptors…): some 60 objects per line, of which booking and the rules
read a dozen. Parsing them all and freeing them again was a third of the time of the extract
path (bench/bench_booking.py). ``decoder`` returns a msgspec decoder that builds the same plain
dicts ``orjson.loads`` builds, but keeps of the source only what is read:

- every field of the balance transaction itself (Stripe's 16), of its fee details the amount,
  currency and type;
- of the source, and of the charge a refund or dispute expands: the fields ``booking`` and
  ``rules.fields`` read (``_SOURCE`` below: ids, amount and currency, the payee's name and
  email, the customer, statement descriptors, payment method and card, destination, account,
  metadata);
- whatever ``source.…`` path the client's rules name (``privacy.rule_paths``: a text scan that
  only ever keeps more), kept whole from its first key.

The decoder refuses (``msgspec.MsgspecError``) anything outside that common shape: a required
field missing, a field of another JSON type than ``bt_check.common_shape`` accepts, or a
``created`` or ``object`` it refuses (``bt_check.projected_shape`` tests the rest: the sums, the
currency, the id and a blank type); callers parse such a line with the full parser and check it
as before. The kept values are what ``json.loads`` returns; a top-level integer beyond a signed
64-bit one is left to the full parser (orjson reads those as floats, which the check refuses, as
before).
tests/test_extract_fast_paths.py compares every rule field and the booked text with the full parse.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Annotated, Any, Literal, Required, TypedDict, Union

import msgspec

from beancount_stripe.bt_check import CREATED_RANGE

__all__ = ["Refused", "array_decoder", "decoder"]

Refused = msgspec.MsgspecError  # what a decoder raises for a line it does not take

# What booking (``_book``, ``_party``, ``_presentment``) and the rule fields (``rules.fields``:
# customer.*, statement_descriptor, payment_method, card.*, destination, source.account,
# metadata.*, source) read from an expanded source, or from the charge a refund or dispute
# expands. A dict value is a sub-object of which only those keys are read; None keeps the value
# whole, whatever it is.
_Spec = dict[str, Any]
_SOURCE: _Spec = {
    "id": None,
    "object": None,
    "amount": None,
    "currency": None,
    "billing_details": {"name": None, "email": None},
    "customer": None,
    "receipt_email": None,
    "statement_descriptor": None,
    "calculated_statement_descriptor": None,
    "payment_method_details": {
        "type": None,
        "card": {"brand": None, "country": None, "funding": None},
    },
    "destination": None,
    "account": None,
    "metadata": None,
}


class _FeeDetail(TypedDict, total=False):
    amount: Any
    currency: Any
    type: Any


_I64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]  # beyond: the full parser decides
# what ``bt_check.common_shape`` tests of these values, tested by the decoder (not the id's
# pattern nor a blank type: msgspec's pattern constraints cost more than ``projected_shape``)
_CREATED = Annotated[int, msgspec.Meta(ge=CREATED_RANGE[0], lt=CREATED_RANGE[1])]
_TEXT_OR_NULL = Union[str, None]  # noqa: UP007 - msgspec reads typing unions


def _covered(spec: _Spec, path: tuple[str, ...]) -> bool:
    node: Any = spec
    for key in path:
        if node is None:
            return True
        if key not in node:
            return False
        node = node[key]
    return True


def _typed(name: str, spec: _Spec) -> Any:
    """A TypedDict of ``spec``: a sub-object may also be null (anything else is refused)."""
    fields: dict[str, Any] = {}
    for key, sub in spec.items():
        fields[key] = Any if sub is None else Union[_typed(f"{name}_{key}", sub), None]  # noqa: UP007
    return TypedDict(name, fields, total=False)  # type: ignore[operator]


@lru_cache(maxsize=32)
def _decoder(extra: frozenset[tuple[str, ...]]) -> Callable[[bytes], dict[str, Any]]:
    return msgspec.json.Decoder(_bt_type(extra)).decode


@lru_cache(maxsize=32)
def _array_decoder(extra: frozenset[tuple[str, ...]]) -> Callable[[bytes], list[dict[str, Any]]]:
    return msgspec.json.Decoder(list[_bt_type(extra)]).decode  # type: ignore[misc]


@lru_cache(maxsize=32)
def _bt_type(extra: frozenset[tuple[str, ...]]) -> Any:
    spec = dict(_SOURCE)
    for path in sorted(extra):
        if path and not _covered(spec, path):
            spec[path[0]] = None  # a rule reads below it: keep the whole value
    source = dict(_typed("Source", spec).__annotations__)
    if "charge" not in spec:  # a refund's or dispute's charge: a str id, or read like a source
        source["charge"] = Union[str, _typed("Charge", spec), None]  # noqa: UP007
    bt: dict[str, Any] = {
        "id": Required[str],  # the id and a blank type: ``projected_shape`` (faster there)
        "object": Literal["balance_transaction"],
        "amount": Required[_I64],
        "fee": Required[_I64],
        "net": Required[_I64],
        "currency": Required[str],
        "created": Required[_CREATED],
        "type": Required[str],
        "description": _TEXT_OR_NULL,
        "reporting_category": _TEXT_OR_NULL,
        "status": _TEXT_OR_NULL,
        "available_on": Union[_I64, None],  # noqa: UP007
        # booking reads a fee detail's amount, currency and type (``booking._tax_part``)
        "fee_details": Union[list[_FeeDetail], None],  # noqa: UP007
        "exchange_rate": Any,
        "balance_type": Any,
        "source": Union[str, TypedDict("Source", source, total=False), None],  # type: ignore[operator]  # noqa: UP007
    }
    return TypedDict("BalanceTransaction", bt, total=False)  # type: ignore[operator]


def decoder(extra: Iterable[tuple[str, ...]] = ()) -> Callable[[bytes], dict[str, Any]]:
    """``bytes -> dict`` of an archive line, keeping what booking, rules and the source paths
    ``extra`` (``privacy.rule_paths``) read; raises ``msgspec.MsgspecError`` for any other line."""
    return _decoder(frozenset(tuple(p) for p in extra))


def array_decoder(
    extra: Iterable[tuple[str, ...]] = (),
) -> Callable[[bytes], list[dict[str, Any]]]:
    """``decoder``'s for a JSON array of such lines: ``b"[" + b",".join(lines) + b"]"`` decodes
    to what each line decodes to, in one call, or is refused if any line is refused (or is not
    exactly one JSON value); the archive reader then takes the lines one by one."""
    return _array_decoder(frozenset(tuple(p) for p in extra))
