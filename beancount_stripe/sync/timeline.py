"""Time in the client's zone: months, days, and the month windows a fetch covers."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo


def _local(ts: int, tz: ZoneInfo) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(ts, tz)


def month_of(ts: int, tz: ZoneInfo) -> str:
    return _local(ts, tz).strftime("%Y-%m")


def _month_start(year: int, month: int, tz: ZoneInfo) -> int:
    return int(datetime.datetime(year, month, 1, tzinfo=tz).timestamp())


def _next_month(year: int, month: int) -> tuple[int, int]:
    return (year + 1, 1) if month == 12 else (year, month + 1)


def start_of_day(day: datetime.date, tz: ZoneInfo) -> int:
    return int(datetime.datetime(day.year, day.month, day.day, tzinfo=tz).timestamp())


@dataclass(frozen=True)
class Window:
    month: str
    gte: int
    lt: int
    complete_after: int  # the month's end + overlap: fetched after this, the month is complete


def plan_windows(
    lower: int,
    now: int,
    tz: ZoneInfo,
    complete_months: set[str],
    newest_in_month: Mapping[str, int],
    overlap: datetime.timedelta,
) -> tuple[list[Window], int]:
    """Month windows covering [lower, now], minus complete months; (windows, months skipped).

    A month with archived transactions is fetched from the start of the day ``overlap`` before its
    newest one: earlier transactions are already in the archive.
    """
    first = _local(lower, tz)
    year, month = first.year, first.month
    windows: list[Window] = []
    skipped = 0
    while True:
        start = _month_start(year, month, tz)
        if start > now:
            break
        ny, nm = _next_month(year, month)
        end = _month_start(ny, nm, tz)
        key = f"{year:04d}-{month:02d}"
        if key in complete_months:
            skipped += 1
        else:
            gte = max(start, _day_floor(lower, tz))
            if key in newest_in_month:
                resume = _day_floor(newest_in_month[key] - int(overlap.total_seconds()), tz)
                gte = max(gte, resume)
            windows.append(Window(key, gte, end, complete_after=end + int(overlap.total_seconds())))
        year, month = ny, nm
    return windows, skipped


def _day_floor(ts: int, tz: ZoneInfo) -> int:
    return start_of_day(_local(ts, tz).date(), tz)
