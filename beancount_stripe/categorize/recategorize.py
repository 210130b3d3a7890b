"""`recategorize`: new rules reach entries still under review, never entries a person edited;
and the rule summary a sync prints."""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from beancount.core import data
from beancount.parser import parser

from beancount_stripe import booking, ledger, rules
from beancount_stripe.atomic import write_atomic
from beancount_stripe.categorize.explain import read_archive
from beancount_stripe.config import ClientConfig
from beancount_stripe.rules import Explanation, Ruleset

# -- recategorize ----------------------------------------------------------------------------------


@dataclass
class Recategorized:
    client: ClientConfig
    candidates: int = 0  # entries still flagged `!` or on the uncategorized account
    changed: list[str] = field(default_factory=list)  # stripe ids rewritten
    unchanged: int = 0  # current rules give the same entry
    edited: list[str] = field(default_factory=list)  # fingerprint differs: a person edited it
    unfingerprinted: list[str] = field(default_factory=list)  # no stripe_hash: never touched
    missing: list[str] = field(default_factory=list)  # not in the archive
    opened: list[str] = field(default_factory=list)
    diff: str = ""
    written: bool = False


def recategorize(
    client: ClientConfig, *, dry_run: bool = False, ruleset: Ruleset | None = None
) -> Recategorized:
    """Re-apply the current rules to entries still awaiting review, never to edited ones.

    An entry is rewritten only when it is flagged ``!`` or on the uncategorized account, carries a
    ``stripe_hash`` fingerprint and the fingerprint still matches its content (see
    ``rules.entry_hash``): i.e. nobody changed it since it was booked. The output file is replaced
    in one atomic rename.
    """
    ruleset = ruleset or rules.ruleset_for(client)
    # under the client's lock: a sync appending meanwhile would otherwise be overwritten
    with ledger.locked(client.ledger):
        return _recategorize_locked(client, ruleset, dry_run=dry_run)


def _recategorize_locked(client: ClientConfig, ruleset: Ruleset, *, dry_run: bool) -> Recategorized:
    result = Recategorized(client)
    path = client.output
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return result
    entries, _errors, _opts = parser.parse_string(text, report_filename=str(path))
    lines = text.splitlines(keepends=True)
    bts: dict[str, dict[str, Any]] | None = None
    replacements: list[tuple[int, int, str, data.Transaction]] = []
    for entry in entries:
        if not isinstance(entry, data.Transaction):
            continue
        txn_id = entry.meta.get("stripe_id")
        if not txn_id or not rules.needs_review(entry, client.accounts.uncategorized):
            continue
        result.candidates += 1
        stamp = entry.meta.get(rules.HASH_KEY)
        if not stamp:
            result.unfingerprinted.append(txn_id)
            continue
        if stamp != rules.entry_hash(entry):
            result.edited.append(txn_id)
            continue
        if bts is None:
            bts = read_archive(client)
        bt = bts.get(txn_id)
        if bt is None:
            result.missing.append(txn_id)
            continue
        new, _why = rules.apply_rules(booking.book(bt, client), bt, ruleset)
        if rules.entry_hash(new) == stamp or _same(new, entry):
            result.unchanged += 1
            continue
        start = entry.meta["lineno"] - 1
        end = _entry_end(lines, start)
        block = "".join(lines[start:end])
        if not _is_exactly(block, txn_id, stamp):
            result.edited.append(txn_id)
            continue
        replacements.append((start, end, ledger.format_entries([new]), new))
        result.changed.append(txn_id)
    if not replacements:
        return result
    new_lines = list(lines)
    for start, end, block, _new in sorted(replacements, reverse=True):
        new_lines[start:end] = [block if block.endswith("\n") else block + "\n"]
    new_text = "".join(new_lines)
    state = ledger.scan(client.ledger, client.output)
    first_use: dict[str, Any] = {}
    for _s, _e, _b, new in replacements:
        for posting in new.postings:
            if posting.account not in state.open_accounts:
                first_use[posting.account] = min(first_use.get(posting.account, new.date), new.date)
    opens = [
        op
        for account, date in sorted(first_use.items())
        for op in ledger.open_directives([account], state.open_accounts, date)
    ]
    if opens:
        result.opened = [o.account for o in opens]
        body = new_text if new_text.endswith("\n") else new_text + "\n"
        new_text = body + "\n" + ledger.format_entries(opens)
    result.diff = "".join(
        difflib.unified_diff(
            text.splitlines(keepends=True),
            new_text.splitlines(keepends=True),
            fromfile=f"{path} (before)",
            tofile=f"{path} (after)",
            n=2,
        )
    )
    if not dry_run:
        result.written = write_atomic(path, new_text)
    return result


def _same(a: data.Transaction, b: data.Transaction) -> bool:
    return rules.entry_hash(a) == rules.entry_hash(b)


def _entry_end(lines: Sequence[str], start: int) -> int:
    """The line after an entry: its header, then its indented lines (no blank line inside)."""
    end = start + 1
    while end < len(lines) and lines[end][:1] in (" ", "\t") and lines[end].strip():
        end += 1
    return end


def _is_exactly(block: str, txn_id: str, stamp: str) -> bool:
    """The text span is exactly this entry as the tool wrote it (safe to replace).

    It parses to just this entry, with this fingerprint, and reads character for character as
    the tool formats it: a comment or any other change to the text counts as an edit too.
    """
    parsed, errors, _ = parser.parse_string(block)
    return (
        not errors
        and len(parsed) == 1
        and isinstance(parsed[0], data.Transaction)
        and parsed[0].meta.get("stripe_id") == txn_id
        and rules.entry_hash(parsed[0]) == stamp
        and block.rstrip("\n") == ledger.format_entries(parsed).rstrip("\n")
    )


def format_recategorized(r: Recategorized, dry_run: bool) -> str:
    verb = "would rewrite" if dry_run else "rewrote"
    lines = [
        f"{r.client.id}: {r.candidates:,} entr{'y' if r.candidates == 1 else 'ies'} awaiting "
        f"review; {verb} {len(r.changed):,}, {r.unchanged:,} unchanged by the current rules",
    ]
    if r.edited:
        lines.append(
            f"  {len(r.edited):,} left alone: edited by hand since booking "
            f"(e.g. {', '.join(r.edited[:3])})"
        )
    if r.unfingerprinted:
        lines.append(
            f"  {len(r.unfingerprinted):,} left alone: no {rules.HASH_KEY} fingerprint "
            "(booked by an older version or written by hand)"
        )
    if r.missing:
        lines.append(f"  {len(r.missing):,} not in the archive (run `beancount-stripe fetch`)")
    if r.opened:
        lines.append(
            f"  {verb.split()[-1] if dry_run else 'added'} open for: {', '.join(r.opened)}"
        )
    return "\n".join(lines)


# -- summary for sync ------------------------------------------------------------------------------


def rule_summary(
    pairs: Iterable[tuple[data.Transaction, Explanation]], uncategorized: str
) -> tuple[int, int, Counter[str]]:
    """(entries, entries whose counter-account a rule decided, count per deciding rule)."""
    total = 0
    by_rule: Counter[str] = Counter()
    for _entry, why in pairs:
        total += 1
        rule = why.account_rule
        if rule is not None and uncategorized not in why.accounts:
            by_rule[rule.name] += 1
    return total, sum(by_rule.values()), by_rule
