"""Keep customers' personal data out of the archive (and so out of git) unless the firm asks.

Stripe expands a balance transaction's ``source`` into the whole charge, refund, dispute or
payout: billing address, card expiry, fingerprint, last4, card country, IP-derived risk data…
Booking and rules read only a few of those fields. ``minimise`` keeps exactly those, by an
allow-list applied recursively to the expanded source, so what the archive stores is what the
books can use:

- every field of the balance transaction itself (ids, amounts, currencies, dates, type,
  description; none of them is personal);
- of the source (and of the charge a refund or dispute expands): ids (``object``/``id``
  everywhere, linked ids such as ``payment_intent`` or ``destination``), amounts, currency,
  dates, status, type and reason, description, statement descriptors, metadata;
- the customer's name and email (billing details, an expanded customer, the receipt email):
  the payee of every charge, and what party rules match on;
- the payment method's type, and of a card its brand and funding (credit/debit);
- any further ``source.…`` or ``card.…`` field the client's own rules read (found by
  ``rule_paths``), so a rule never silently loses what it matches on.

A client with ``archive: {keep: full}`` stores sources as Stripe sent them. Archives written
before this existed keep working: reading never needed more than this keeps.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

KEEP_MINIMAL = "minimal"
KEEP_FULL = "full"
KEEP_CHOICES = (KEEP_MINIMAL, KEEP_FULL)

Path_ = tuple[str, ...]

# Scalar fields of any expanded source worth keeping: ids, amounts, dates, states, descriptors.
_SCALARS = frozenset(
    {
        "id",
        "object",
        "account",
        "amount",
        "amount_captured",
        "amount_refunded",
        "amount_reversed",
        "application",
        "application_fee",
        "application_fee_amount",
        "arrival_date",
        "automatic",
        "balance_transaction",
        "calculated_statement_descriptor",
        "captured",
        "charge",
        "created",
        "currency",
        "customer",
        "description",
        "destination",
        "destination_payment_refund",
        "disputed",
        "exchange_rate",
        "failure_balance_transaction",
        "failure_code",
        "failure_reason",
        "fee",
        "is_charge_refundable",
        "livemode",
        "method",
        "net",
        "original_payout",
        "paid",
        "payment_intent",
        "payment_method",
        "payout",
        "reason",
        "receipt_email",
        "reconciliation_status",
        "refunded",
        "reversed",
        "reversed_by",
        "source_refund",
        "source_transaction",
        "source_type",
        "statement_descriptor",
        "statement_descriptor_suffix",
        "status",
        "transfer",
        "transfer_group",
        "type",
    }
)
_CUSTOMER = frozenset({"id", "object", "name", "email", "description", "metadata"})
_BILLING = frozenset({"name", "email"})
_METHOD = frozenset({"brand", "funding"})
_ID_ONLY = frozenset({"id", "object"})

# `source.a.b` and `card.x` in a rules file: the paths a client's rules may read.
_RULE_FIELD = re.compile(r"(?<![\w.])(source|card)\.([A-Za-z_][\w]*(?:\.[A-Za-z_][\w]*)*)")


def minimise(bt: Mapping[str, Any], extra: Iterable[Path_] = ()) -> dict[str, Any]:
    """``bt`` with its expanded source reduced to what booking and rules use (plus ``extra``).

    ``extra`` holds paths inside the source (``("reason",)``, ``("payment_method_details",
    "card", "country")``) to keep as well; a path is also tried inside an expanded ``charge``.
    Pure: ``bt`` is not modified.
    """
    out = dict(bt)
    source = bt.get("source")
    if isinstance(source, Mapping):
        kept = _source(source)
        for path in extra:
            _copy_path(kept, source, path)
            charge = source.get("charge")
            if isinstance(charge, Mapping) and isinstance(kept.get("charge"), dict):
                _copy_path(kept["charge"], charge, path)
        out["source"] = kept
    return out


_PLAIN_TYPES = frozenset({str, int, float, bool, type(None)})


def _source(obj: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in obj.items():
        kind = type(value)
        if kind in _PLAIN_TYPES:  # most fields: decided without the slow ABC checks
            if key in _SCALARS:
                out[key] = value
        elif kind is dict or isinstance(value, Mapping):
            if key == "metadata":
                out[key] = _plain(value)
            elif key == "billing_details":
                out[key] = _pick(value, _BILLING)
            elif key == "payment_method_details":
                out[key] = _method(value)
            elif key == "customer":
                out[key] = _pick(value, _CUSTOMER)
            elif key == "charge":
                out[key] = _source(value)
            elif key in _SCALARS:  # an expanded link (destination, payout…): its id is enough
                out[key] = _pick(value, _ID_ONLY)
        elif key in _SCALARS and _is_scalar(value):
            out[key] = value
    return out


def _method(details: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    kind = details.get("type")
    if _is_scalar(kind):
        out["type"] = kind
    if isinstance(kind, str) and _is_map(details.get(kind)):
        out[kind] = _pick(details[kind], _METHOD)
    return out


def _pick(obj: Mapping[str, Any], keys: frozenset[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in keys:
        if k in obj:
            value = obj[k]
            if k == "metadata" and _is_map(value):
                out[k] = _plain(value)
            elif _is_scalar(value):
                out[k] = value
    return out


def _plain(obj: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k): v for k, v in obj.items() if _is_scalar(v)}


def _is_scalar(value: Any) -> bool:
    return type(value) in _PLAIN_TYPES or isinstance(value, str | int | float | bool)


def _is_map(value: Any) -> bool:
    return type(value) is dict or isinstance(value, Mapping)


def _copy_path(dst: dict[str, Any], src: Mapping[str, Any], path: Path_) -> None:
    """Copy ``src[path]`` into ``dst`` (creating the dicts on the way) when it exists."""
    value: Any = src
    for key in path:
        if not isinstance(value, Mapping) or key not in value:
            return
        value = value[key]
    if isinstance(value, Mapping | list):
        return  # a rule reads scalars (or an expanded object's id, which is kept anyway)
    node = dst
    for key in path[:-1]:
        nxt = node.get(key)
        if not isinstance(nxt, dict):
            nxt = {}
            node[key] = nxt
        node = nxt
    node[path[-1]] = value


def rule_paths(texts: Iterable[str]) -> frozenset[Path_]:
    """Source paths named in rules texts: ``source.reason`` → ("reason",), ``card.country`` →
    ("payment_method_details", "card", "country").

    A plain text scan, not a rules parse: a name quoted in a description only keeps a little
    more, never less.
    """
    out: set[Path_] = set()
    for text in texts:
        for head, rest in _RULE_FIELD.findall(text):
            parts = tuple(rest.split("."))
            out.add(("payment_method_details", "card", *parts) if head == "card" else parts)
    return frozenset(out)


def keep_paths_for(rule_files: Iterable[Path]) -> frozenset[Path_]:
    """``rule_paths`` of the client's rules files (unreadable files are reported elsewhere)."""
    texts = []
    for path in rule_files:
        try:
            texts.append(Path(path).read_text(encoding="utf-8", errors="replace"))
        except OSError:
            continue
    return rule_paths(texts)


def minimiser_for(client: Any) -> Callable[[Mapping[str, Any]], dict[str, Any]] | None:
    """The archive filter of a client: None with `keep: full`, else ``minimise`` plus the
    source paths its rules read."""
    if getattr(client, "archive_keep", KEEP_MINIMAL) == KEEP_FULL:
        return None
    files = (*(getattr(client, "rules", ()) or ()), *(getattr(client, "shared_rules", ()) or ()))
    extra = keep_paths_for(files)
    return lambda bt: minimise(bt, extra)
