"""The review queue: the `!` entries of a client's Stripe output, why each is there, and the
text edits that settle one (accept, change account) or many (a suggested rule).

Pure functions over Beancount entries and source text, plus a small archive cache; the Fava
page and the CLI share them. Editing the ledger file itself is the caller's job (Fava's
``save_entry_slice`` with its sha256 conflict check), so nothing here writes a ledger.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from beancount.core import data

from beancount_stripe import archive, booking, categorize, rules
from beancount_stripe.atomic import write_atomic
from beancount_stripe.config import ClientConfig
from beancount_stripe.errors import BeancountStripeError, ConfigError, InputFileError
from beancount_stripe.rules import Ruleset

# -- the queue -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueItem:
    """One entry awaiting review, as the page shows it."""

    entry: data.Transaction
    stripe_id: str
    account: str  # the counter-account (what a bookkeeper decides)
    amount: Decimal  # the counter-leg's units, sign as in the ledger
    currency: str


def own_accounts(client: ClientConfig) -> set[str]:
    """The accounts every Stripe entry posts to besides its counter-leg."""
    acc = client.accounts
    return {a for a in (acc.clearing, acc.fees, acc.fee_tax) if a}


def counter_posting(entry: data.Transaction, client: ClientConfig) -> data.Posting:
    """The counter-leg: the largest posting not on the clearing/fee accounts (else the last)."""
    own = own_accounts(client)
    others = [p for p in entry.postings if p.account not in own and p.units is not None]
    if not others:
        return entry.postings[-1]
    return max(others, key=lambda p: abs(p.units.number or 0))


def queue(entries: Iterable[data.Directive], client: ClientConfig) -> list[QueueItem]:
    """Every `!` entry booked from Stripe (it has a ``stripe_id``), newest first."""
    out = []
    for entry in entries:
        if not isinstance(entry, data.Transaction) or entry.flag != "!":
            continue
        txn_id = (entry.meta or {}).get("stripe_id")
        if not txn_id or not entry.postings:
            continue
        counter = counter_posting(entry, client)
        units = counter.units
        number = units.number if units is not None else None
        out.append(
            QueueItem(
                entry=entry,
                stripe_id=str(txn_id),
                account=counter.account,
                amount=number if number is not None else Decimal(0),
                currency=units.currency if units is not None else "",
            )
        )
    out.sort(key=lambda i: (i.entry.date, i.entry.meta.get("lineno", 0)), reverse=True)
    return out


# -- why: the rules' explanation -----------------------------------------------------------------


def reason(client: ClientConfig, bt: Mapping[str, Any], ruleset: Ruleset) -> str:
    """A one-line why: the rule that flagged it, or that no rule decided its account."""
    booked = booking.book(bt, client)
    entry, why = rules.apply_rules(booked, bt, ruleset)
    flag_rule = why.deciders.get("flag")
    if flag_rule is not None and entry.flag == "!":
        return f"rule {flag_rule.name!r} ({categorize.where(flag_rule)}) flags it for review"
    account_rule = why.deciders.get("account")
    if ruleset.uncategorized in why.accounts:
        if account_rule is not None:
            return f"rule {account_rule.name!r} puts it on the uncategorized account"
        kind = f"{bt.get('type')} / {bt.get('reporting_category')}"
        return f"no rule matched ({kind}): booked to the uncategorized account"
    if entry.flag != "!":
        return "the current rules would book it without review (recategorize to apply them)"
    return "flagged for review by the booking default"


def explain(client: ClientConfig, bt: Mapping[str, Any], ruleset: Ruleset) -> str:
    """The full ``rules explain`` answer (same text as the CLI)."""
    return categorize.explain(client, bt, ruleset)


class _Except:
    """A container of every id but ``wanted``: ``read_transactions`` then parses only those."""

    def __init__(self, wanted: set[str]) -> None:
        self.wanted = wanted

    def __contains__(self, txn_id: object) -> bool:
        return txn_id not in self.wanted


class ArchiveCache:
    """Archived balance transactions by id, kept per month file until its mtime changes.

    The page must never re-read a client's whole archive per request: ``find`` parses only the
    lines of the wanted ids, in the months their entries are dated, once per change of a file.
    """

    def __init__(self) -> None:
        self._found: dict[Path, tuple[int, dict[str, dict[str, Any]]]] = {}
        self._lock = threading.Lock()

    def _month(self, path: Path, wanted: set[str]) -> dict[str, dict[str, Any]]:
        try:
            mtime = path.stat().st_mtime_ns
        except OSError:
            return {}
        with self._lock:
            cached = self._found.get(path)
            known = cached[1] if cached is not None and cached[0] == mtime else {}
        todo = wanted - set(known)
        if todo:
            rows = archive.read_transactions(path, skip_ids=_Except(todo))
            known = {**known, **{bt["id"]: bt for bt in rows}}
            with self._lock:
                self._found[path] = (mtime, known)
        return known

    def find(self, client: ClientConfig, wanted: Mapping[str, str]) -> dict[str, dict[str, Any]]:
        """``wanted``: stripe id → its entry's month (YYYY-MM); a miss looks in every month."""
        files = dict(archive.month_files(client.archive_dir))
        by_month: dict[str, set[str]] = {}
        for txn_id, month in wanted.items():
            by_month.setdefault(month, set()).add(txn_id)
        out: dict[str, dict[str, Any]] = {}
        for month, ids in by_month.items():
            path = files.get(month)
            if path is not None:
                found = self._month(path, ids)
                out.update({i: found[i] for i in ids if i in found})
        missing = set(wanted) - set(out)
        if missing:
            for path in files.values():
                found = self._month(path, missing)
                out.update({i: found[i] for i in missing if i in found})
                missing -= set(out)
                if not missing:
                    break
        return out

    def all(self, client: ClientConfig) -> dict[str, dict[str, Any]]:
        """Every archived transaction (for `rules suggest`, on demand only; not cached)."""
        return categorize.read_archive(client)


# -- editing one entry's text --------------------------------------------------------------------

_HEADER = re.compile(r"^(\d{4}-\d{2}-\d{2}[ \t]+)(!|txn[ \t]+!)([ \t])")


def accepted_slice(source: str) -> str:
    """The entry's text with its flag turned from ``!`` to ``*`` (nothing else changes)."""
    lines = source.split("\n")
    m = _HEADER.match(lines[0])
    if m is None:
        raise InputFileError(
            "the entry is not flagged `!` any more",
            where=lines[0][:80],
            fix="reload the page: someone else already reviewed it",
        )
    flag = "*" if m.group(2) == "!" else "txn *"
    lines[0] = m.group(1) + flag + m.group(3) + lines[0][m.end() :]
    return "\n".join(lines)


def rebooked_slice(source: str, old_account: str, new_account: str) -> str:
    """The entry's text with its ``old_account`` posting moved to ``new_account``, and accepted.

    Choosing the account is the review, so the entry also leaves the queue (flag ``*``).
    """
    if not re.fullmatch(r"[A-Z][A-Za-z0-9-]*(?::[A-Z0-9][A-Za-z0-9-]*)+", new_account):
        raise InputFileError(
            f"{new_account!r} is not an account name", fix="pick one of the ledger's accounts"
        )
    pattern = re.compile(r"^([ \t]+(?:[!*][ \t]+)?)" + re.escape(old_account) + r"(?=[ \t]|$)")
    lines = source.split("\n")
    for index, line in enumerate(lines[1:], start=1):
        m = pattern.match(line)
        if m:
            rest = line[m.end() :]
            # keep the amount column where it was when the new name is not longer
            pad = len(old_account) - len(new_account)
            if pad > 0 and rest.startswith(" "):
                rest = " " * pad + rest
            elif pad < 0:
                stripped = rest.lstrip(" ")
                spaces = max(2, len(rest) - len(stripped) + pad)
                rest = " " * spaces + stripped if stripped else ""
            lines[index] = m.group(1) + new_account + rest
            return accepted_slice("\n".join(lines))
    raise InputFileError(
        f"the entry has no posting on {old_account}",
        where=lines[0][:80],
        fix="reload the page: the entry was changed meanwhile",
    )


# -- suggest a rule ------------------------------------------------------------------------------


@dataclass
class RuleProposal:
    """A rule `rules suggest` learns from the ledger that also decides the entry under review."""

    yaml: str  # one list item for the `rules:` list of the client's own rules file
    name: str
    account: str
    settles: list[str]  # stripe ids of open entries it would take off the queue
    decides_as_ledger: int  # ledger entries it decides as the bookkeeper did
    conflicts: int


def _rule_yaml(sug: categorize.Suggestion) -> str:
    q = categorize._q
    types = sug.types[0] if len(sug.types) == 1 else "[" + ", ".join(sug.types) + "]"
    cond = q(sug.value) if sug.op == "equals" else "{" + f"{sug.op}: {q(sug.value)}" + "}"
    when = f"type: {types}, " if sug.types else ""
    return (
        f"  - name: {q(sug.name)}\n"
        f"    when: {{{when}{sug.field}: {cond}}}\n"
        f"    account: {q(sug.account)}\n"
    )


def _matches(
    sug: categorize.Suggestion, client: ClientConfig, bt: Mapping[str, Any], ruleset: Ruleset
) -> bool:
    if sug.types and str(bt.get("type") or "").casefold() not in sug.types:
        return False
    facts = rules.Facts(bt, booking.book(bt, client), ruleset)
    return (sug.field, sug.op, sug.value.casefold()) in categorize._features(facts)


def propose_rules(
    client: ClientConfig,
    stripe_id: str,
    entries: Sequence[data.Directive],
    bts: Mapping[str, Mapping[str, Any]],
    ruleset: Ruleset | None = None,
    min_count: int = 2,
) -> list[RuleProposal]:
    """The rules `rules suggest` would add that match ``stripe_id``'s transaction.

    Learned from the decided entries (open `!` entries are left out: they are undecided);
    each proposal counts the open entries it would settle.

    ``min_count``: hand-categorized entries a rule must be learned from (as `--min-count`).
    """
    ruleset = ruleset or rules.ruleset_for(client)
    bt = bts.get(stripe_id)
    if bt is None:
        return []
    open_items = queue(entries, client)
    # Entries still awaiting review are undecided, not evidence against a rule: they are what
    # the proposal is for. The decided ones are what `rules suggest` learns from.
    waiting = {id(i.entry) for i in open_items}
    decided = [e for e in entries if id(e) not in waiting]
    found = categorize.suggest(
        client, entries=decided, bts=bts, ruleset=ruleset, min_count=min_count
    )
    out = []
    for sug in found.rules:
        if not _matches(sug, client, bt, ruleset):
            continue
        settles = [
            i.stripe_id
            for i in open_items
            if i.stripe_id in bts and _matches(sug, client, bts[i.stripe_id], ruleset)
        ]
        out.append(
            RuleProposal(
                yaml=_rule_yaml(sug),
                name=sug.name,
                account=sug.account,
                settles=settles,
                decides_as_ledger=sug.count,
                conflicts=len(sug.conflicts),
            )
        )
    return out


def own_rules_file(client: ClientConfig) -> Path:
    """The client's own rules file, where a suggested rule goes (tried before shared rules)."""
    if not client.rules:
        raise ConfigError(
            f"client {client.id} has no rules file of its own",
            where=str(client.source_file or f"client {client.id}"),
            fix="add `rules: rules/<client>.yaml` to the client in the config, then try again",
        )
    return client.rules[0]


def append_rule(path: Path, item: str) -> None:
    """Append one rule (a ``rules:`` list item) to ``path``, only if the result still loads.

    The text is appended, so comments stay; when ``rules:`` is not the file's last top-level
    key the list cannot be extended at its end, and the user is told to paste it by hand.
    """
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    keys = [ln for ln in text.splitlines() if ln[:1].isalpha()]
    if not keys:
        new = text + ("" if text.endswith("\n") or not text else "\n") + "rules:\n" + item
    elif keys[-1].split(":", 1)[0].strip() == "rules":
        if keys[-1].strip() == "rules: []":
            raise InputFileError(
                "the rules list is written inline (`rules: []`)",
                where=str(path),
                fix="write `rules:` on its own line, then add the rule again",
            )
        new = text + ("" if text.endswith("\n") else "\n") + item
    else:
        raise InputFileError(
            "`rules:` is not the last key of the file, so the rule cannot be appended",
            where=str(path),
            fix="paste the rule into the `rules:` list by hand, or move `rules:` to the end",
        )
    fd, tmp = tempfile.mkstemp(prefix=".check-", suffix=".yaml", dir=path.parent)
    os.close(fd)
    try:
        Path(tmp).write_text(new, encoding="utf-8")
        rules.load_rules(tmp)
    except BeancountStripeError as e:
        raise InputFileError(
            "with the rule added, the rules file would not load: " + str(e).replace(tmp, str(path)),
            where=str(path),
            fix="add the rule by hand and run `beancount-stripe config check`",
        ) from None
    finally:
        Path(tmp).unlink(missing_ok=True)
    write_atomic(path, new)
