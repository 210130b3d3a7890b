"""Beancount text for the entries this tool writes, byte for byte what Beancount's printer writes.

``beancount.parser.printer.format_entry`` builds a display context, a StringIO, an Amount
string and two alignment passes per entry: most of the time of booking a big history went
there. ``format_entry`` here writes the shapes booking, rules, sync and Capital produce
(transactions whose postings carry a plain amount, ``open``, ``commodity``, ``balance``)
directly, with the printer's default display context (numbers as ``{:f}``, no commas), and
hands anything else (costs, prices, posting metadata, unusual metadata values, other
directives) to Beancount's printer, so its output never differs. tests/test_entry_text.py
compares the two on every balance-transaction type and every currency.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from beancount.core import data
from beancount.core.amount import Amount
from beancount.parser import printer

__all__ = ["direct", "format_entries", "format_entry"]

_Transaction = data.Transaction
_Open = data.Open
_Commodity = data.Commodity
_Balance = data.Balance
_META_IGNORE = frozenset({"filename", "lineno"})
_UPPER = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")


class _Fallback(Exception):
    """The entry has a shape this module does not write; Beancount's printer does."""


def format_entry(entry: data.Directive) -> str:
    """The text ``printer.format_entry(entry)`` returns, written without the printer."""
    text = direct(entry)
    return text if text is not None else printer.format_entry(entry)


def direct(entry: data.Directive) -> str | None:
    """``entry`` written directly, or None when its shape is left to Beancount's printer."""
    try:
        kind = type(entry)
        if kind is _Transaction:
            return _transaction(entry)  # type: ignore[arg-type]
        if kind is _Open:
            return _open(entry)  # type: ignore[arg-type]
        if kind is _Commodity:
            return f"{entry.date} commodity {entry.currency}\n" + _meta(entry.meta, "  ")  # type: ignore[union-attr]
        if kind is _Balance:
            return _balance(entry)  # type: ignore[arg-type]
    except _Fallback:
        pass
    return None


def format_entries(entries: Iterable[data.Directive]) -> str:
    """Beancount text for ``entries``: a blank line between entries, none between one-liners
    (a run of ``open`` directives reads as one block)."""
    parts: list[str] = []
    prev_single = False
    for entry in entries:
        text = format_entry(entry)
        single = text.count("\n") == 1
        if parts and not (single and prev_single):
            parts.append("\n")
        parts.append(text)
        prev_single = single
    return "".join(parts)


def _escape(text: str) -> str:
    if "\\" in text:
        text = text.replace("\\", "\\\\")
    if '"' in text:
        text = text.replace('"', '\\"')
    return text


def _meta(meta: Mapping[str, Any] | None, prefix: str) -> str:
    if not meta:
        return ""
    out = []
    for key, value in meta.items():
        if key in _META_IGNORE or key.startswith("__"):
            continue
        kind = type(value)
        if kind is str:
            out.append(f'{prefix}{key}: "{_escape(value)}"\n')
        elif kind is Decimal or kind is datetime.date or kind is Amount:
            out.append(f"{prefix}{key}: {value}\n")
        elif kind is bool:
            out.append(f"{prefix}{key}: {'TRUE' if value else 'FALSE'}\n")
        elif value is None:
            out.append(f"{prefix}{key}: \n")
        else:
            raise _Fallback  # subclasses, enums, dicts, invalid values: the printer decides
    return "".join(out)


def _transaction(entry: data.Transaction) -> str:
    payee, narration = entry.payee, entry.narration
    words = []
    if payee:
        words.append(f'"{_escape(payee)}"')
    if narration:
        words.append(f'"{_escape(narration)}"')
    elif payee:
        words.append('""')
    if entry.tags:
        words += ["#" + tag for tag in sorted(entry.tags)]
    if entry.links:
        words += ["^" + link for link in sorted(entry.links)]
    head = f"{entry.date} {entry.flag or ''} {' '.join(words)}\n"
    meta = _meta(entry.meta, "  ")

    postings = entry.postings
    if not postings:
        raise _Fallback
    accounts = []
    numbers = []
    currencies = []
    for posting in postings:
        units = posting.units
        if (
            posting.cost is not None
            or posting.price is not None
            or posting.meta
            or type(units) is not Amount
            or type(units.number) is not Decimal
        ):
            raise _Fallback
        cur = units.currency
        if not cur or cur[0] not in _UPPER:
            raise _Fallback
        flag = posting.flag
        accounts.append(f"{flag} {posting.account}" if flag else posting.account)
        numbers.append(f"{units.number:f}")
        currencies.append(cur)
    # printer.align_position_strings: "number " right-aligned, currencies left-aligned
    width_account = max(map(len, accounts))
    width_number = max(map(len, numbers))
    lines = [head, meta]
    for account, number, cur in zip(accounts, numbers, currencies, strict=True):
        lines.append(f"  {account:{width_account}}  {number:>{width_number}} {cur}\n")
    return "".join(lines)


def _open(entry: data.Open) -> str:
    currencies = ",".join(entry.currencies or [])
    booking = f'"{entry.booking.name}"' if entry.booking is not None else ""
    line = f"{entry.date} open {entry.account:47} {currencies} {booking}".rstrip()
    return line + "\n" + _meta(entry.meta, "  ")


def _balance(entry: data.Balance) -> str:
    units = entry.amount
    if (
        type(units) is not Amount
        or type(units.number) is not Decimal
        or entry.tolerance is not None
        or entry.diff_amount
    ):
        raise _Fallback
    line = f"{entry.date} balance {entry.account:47} {units.number:f} {units.currency}\n"
    return line + _meta(entry.meta, "  ")
