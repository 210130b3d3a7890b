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
_Posting = data.Posting
_Open = data.Open
_Commodity = data.Commodity
_Balance = data.Balance
_META_IGNORE = frozenset({"filename", "lineno"})
_UPPER = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_CURRENCIES_SEEN: set[str] = set()  # currencies already found to start with a capital letter


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
    append = parts.append
    prev_single = False
    dates: dict[datetime.date, str] = {}  # a big history has a few thousand distinct dates
    for entry in entries:
        if type(entry) is _Transaction:  # the hot path: written directly, several lines
            try:
                text = _transaction(entry, dates)
                single = False
            except _Fallback:
                text = printer.format_entry(entry)
                single = text.count("\n") == 1
        else:
            text = format_entry(entry)
            single = text.count("\n") == 1
        if parts and not (single and prev_single):
            append("\n")
        append(text)
        prev_single = single
    return "".join(parts)


def _escape(text: str) -> str:
    if "\\" in text:
        text = text.replace("\\", "\\\\")
    if '"' in text:
        text = text.replace('"', '\\"')
    return text


def _number(number: Decimal) -> str:
    """``f"{number:f}"``, as the printer writes it: ``str`` is the same text, 4x faster, unless
    it chose scientific notation (an ``E``)."""
    text = str(number)
    return f"{number:f}" if "E" in text else text


def _meta(meta: Mapping[str, Any] | None, prefix: str) -> str:
    if not meta:
        return ""
    out: list[str] = []
    _meta_lines(meta, prefix, out)
    return "".join(out)


# prefix -> metadata key -> the line's start ("  key: "), or "" for a key not written
_HEADS: dict[str, dict[str, str]] = {}
_HEADS_MAX = 1024  # keys remembered per prefix (a ledger has a few dozen)


def _meta_lines(meta: Mapping[str, Any], prefix: str, out: list[str]) -> None:
    """Append the lines of ``meta`` to ``out``; a key's line start is built once per run."""
    heads = _HEADS.get(prefix)
    if heads is None:
        heads = _HEADS[prefix] = {}
    append = out.append
    for key, value in meta.items():
        head = heads.get(key)
        if head is None:
            head = "" if key in _META_IGNORE or key.startswith("__") else f"{prefix}{key}: "
            if len(heads) < _HEADS_MAX:
                heads[key] = head
        if not head:
            continue
        kind = type(value)
        if kind is str:
            if '"' in value or "\\" in value:
                value = _escape(value)
            append(f'{head}"{value}"\n')
        elif kind is Decimal or kind is datetime.date or kind is Amount:
            append(f"{head}{value}\n")
        elif kind is bool:
            append(f"{head}{'TRUE' if value else 'FALSE'}\n")
        elif value is None:
            append(f"{head}\n")
        else:
            raise _Fallback  # subclasses, enums, dicts, invalid values: the printer decides


def _transaction(entry: data.Transaction, dates: dict[datetime.date, str] | None = None) -> str:
    meta, date, flag, payee, narration, tags, links, postings = entry
    if not postings:
        raise _Fallback
    # printer.align_position_strings: "number " right-aligned, currencies left-aligned
    rows = []
    width_account = width_number = 0
    for posting in postings:
        if type(posting) is not _Posting:
            raise _Fallback
        account, units, cost, price, posting_flag, posting_meta = posting
        if cost is not None or price is not None or posting_meta or type(units) is not Amount:
            raise _Fallback
        number, cur = units
        if type(number) is not Decimal or cur not in _CURRENCIES_SEEN:
            if type(number) is not Decimal or not cur or cur[0] not in _UPPER:
                raise _Fallback
            if len(_CURRENCIES_SEEN) < 1024:
                _CURRENCIES_SEEN.add(cur)
        if posting_flag:
            account = f"{posting_flag} {account}"
        number = str(number)  # ``_number``, inline
        if "E" in number:
            number = f"{units[0]:f}"
        if len(account) > width_account:
            width_account = len(account)
        if len(number) > width_number:
            width_number = len(number)
        rows.append((account, number, cur))

    if payee:
        if '"' in payee or "\\" in payee:
            payee = _escape(payee)
        if narration:
            if '"' in narration or "\\" in narration:
                narration = _escape(narration)
            words = f'"{payee}" "{narration}"'
        else:
            words = f'"{payee}" ""'
    elif narration:
        if '"' in narration or "\\" in narration:
            narration = _escape(narration)
        words = f'"{narration}"'
    else:
        words = ""
    if tags or links:
        tokens = [words] if words else []
        tokens += ["#" + tag for tag in sorted(tags or ())]
        tokens += ["^" + link for link in sorted(links or ())]
        words = " ".join(tokens)
    if dates is None or type(date) is not datetime.date:
        day = f"{date}"
    else:
        day = dates.get(date)  # type: ignore[assignment]
        if day is None:
            day = dates[date] = date.isoformat()
    lines = [f"{day} {flag or ''} {words}\n"]
    if meta:
        _meta_lines(meta, "  ", lines)
    for account, number, cur in rows:
        lines.append(f"  {account.ljust(width_account)}  {number.rjust(width_number)} {cur}\n")
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
