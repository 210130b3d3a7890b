"""Sorted indexes over one account's balance transactions, so each list request is cheap.

Rows are kept in ascending ``(created, id)`` order; Stripe's newest-first order is that order
read backwards, with ``id`` as the deterministic tiebreak for BTs created in the same second.
A ``created`` window or a cursor narrows a position range with ``bisect``; ``type``,
``currency``, ``source`` and ``payout`` filters start from per-value position lists. Nothing
scans the whole history per request, so a 100k-BT history pages as fast as a small one.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Query:
    """A parsed list request (all bounds in unix seconds)."""

    gte: int | None = None
    lte: int | None = None
    type: str | None = None
    currency: str | None = None
    source: str | None = None
    members: Sequence[str] | None = None  # the BT ids a payout paid out
    starting_after: str | None = None
    ending_before: str | None = None
    limit: int = 10


class UnknownCursor(LookupError):
    """A ``starting_after`` / ``ending_before`` id that is not in this account's history."""

    def __init__(self, param: str, value: str) -> None:
        super().__init__(value)
        self.param = param
        self.value = value


class TransactionIndex:
    """Positions of BTs by time and by filter value; append-only for newer BTs."""

    def __init__(self, transactions: Iterable[dict[str, Any]] = ()) -> None:
        self._reset(sorted(transactions, key=_key))

    def _reset(self, rows: list[dict[str, Any]]) -> None:
        self._rows: list[dict[str, Any]] = []
        self._created: list[int] = []
        self._pos: dict[str, int] = {}
        self._by: dict[str, dict[str, list[int]]] = {"type": {}, "currency": {}, "source": {}}
        self._cum: dict[str, list[int]] = {}  # currency -> prefix sums of net over positions
        self._max_pending = 0  # the longest available_on - created seen
        self._add(rows)

    def __len__(self) -> int:
        return len(self._rows)

    def _add(self, rows: list[dict[str, Any]]) -> None:
        start = len(self._rows)
        for bt in rows:
            if bt["id"] in self._pos:
                continue
            i = len(self._rows)
            self._rows.append(bt)
            self._created.append(bt["created"])
            self._pos[bt["id"]] = i
            for field in ("type", "currency", "source"):
                value = bt.get(field)
                if isinstance(value, dict):
                    value = value.get("id")
                if isinstance(value, str):
                    self._by[field].setdefault(value, []).append(i)
            self._max_pending = max(self._max_pending, bt["available_on"] - bt["created"])
        # prefix sums of net per currency, extended over the rows just added
        for cur in {bt["currency"] for bt in self._rows[start:]} - set(self._cum):
            self._cum[cur] = [0] * (start + 1)
        for cur, sums in self._cum.items():
            total = sums[-1]
            for bt in self._rows[start:]:
                if bt["currency"] == cur:
                    total += bt["net"]
                sums.append(total)

    def append(self, transactions: Iterable[dict[str, Any]]) -> None:
        """Add BTs; newer ones are appended in place, anything older forces a rebuild."""
        new = sorted(transactions, key=_key)
        if not new:
            return
        if self._rows and _key(new[0]) <= _key(self._rows[-1]):
            self._reset(sorted(self._rows + new, key=_key))
            return
        self._add(new)

    def get(self, bt_id: str) -> dict[str, Any] | None:
        i = self._pos.get(bt_id)
        return None if i is None else self._rows[i]

    def newest_created(self) -> int | None:
        return self._created[-1] if self._created else None

    def currencies(self) -> list[str]:
        return sorted(self._cum)

    def query(self, q: Query, *, now: int | None = None) -> tuple[list[dict[str, Any]], bool]:
        """The page for ``q`` (newest first) and Stripe's ``has_more``.

        BTs created after ``now`` are not visible yet, as on a real account.
        """
        lo, hi = 0, len(self._rows)
        if q.gte is not None:
            lo = max(lo, bisect.bisect_left(self._created, q.gte))
        upper = q.lte if now is None else (now if q.lte is None else min(q.lte, now))
        if upper is not None:
            hi = min(hi, bisect.bisect_right(self._created, upper))
        if q.starting_after is not None:
            p = self._pos.get(q.starting_after)
            if p is None:
                raise UnknownCursor("starting_after", q.starting_after)
            hi = min(hi, p)
        if q.ending_before is not None:
            p = self._pos.get(q.ending_before)
            if p is None:
                raise UnknownCursor("ending_before", q.ending_before)
            lo = max(lo, p + 1)
        if lo >= hi:
            return [], False

        # each filter yields the sorted positions it allows; the shortest list drives the scan
        candidates: list[Sequence[int]] = []
        for field in ("type", "currency", "source"):
            value = getattr(q, field)
            if value is not None:
                candidates.append(self._by[field].get(value, []))
        if q.members is not None:
            candidates.append(sorted(self._pos[m] for m in q.members if m in self._pos))
        if any(not c for c in candidates):
            return [], False
        member_set = None if q.members is None else set(q.members)

        def matches(bt: dict[str, Any]) -> bool:
            src = bt.get("source")
            src = src.get("id") if isinstance(src, dict) else src
            return (
                (q.type is None or bt.get("type") == q.type)
                and (q.currency is None or bt["currency"] == q.currency)
                and (q.source is None or src == q.source)
                and (member_set is None or bt["id"] in member_set)
            )

        forward = q.ending_before is not None and q.starting_after is None
        want = q.limit + 1
        found: list[int] = []
        if not candidates:
            if forward:
                found = list(range(lo, min(hi, lo + want)))
            else:
                found = list(range(hi - 1, max(lo, hi - want) - 1, -1))
        else:
            base = min(candidates, key=len)
            a, b = bisect.bisect_left(base, lo), bisect.bisect_left(base, hi)
            positions = range(a, b) if forward else range(b - 1, a - 1, -1)
            for j in positions:
                i = base[j]
                if len(candidates) == 1 or matches(self._rows[i]):
                    found.append(i)
                    if len(found) == want:
                        break
        has_more = len(found) > q.limit
        found = found[: q.limit]
        if forward:
            found.reverse()
        return [self._rows[i] for i in found], has_more

    def balance_sums(self, now: int) -> tuple[dict[str, int], dict[str, int]]:
        """(available, pending) Σ net per currency over BTs created at or before ``now``."""
        hi = bisect.bisect_right(self._created, now)
        total = {c: sums[hi] for c, sums in self._cum.items()}
        pending = dict.fromkeys(total, 0)
        i = hi - 1
        horizon = now - self._max_pending
        while i >= 0 and self._created[i] >= horizon:
            bt = self._rows[i]
            if bt["available_on"] > now:
                pending[bt["currency"]] += bt["net"]
            i -= 1
        available = {c: total[c] - pending[c] for c in total}
        return available, pending


def _key(bt: dict[str, Any]) -> tuple[int, str]:
    return (bt["created"], bt["id"])
