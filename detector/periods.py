"""Calendar periods in a tenant's time zone: daily, weekly and monthly budgets.

A budget period starts at local midnight of its first day and ends at local
midnight of the day after its last day, so its length in UTC changes across
daylight-saving transitions (23 or 25 hours for a day). It never starts at the
time of a tenant's first request. Bounds are returned as UTC datetimes, half
open: ``start <= t < end``.

- ``daily``: one local calendar day.
- ``weekly``: seven days from ``week_start`` (Monday by default, as in ISO 8601).
- ``monthly``: from ``anchor_day`` of one month to ``anchor_day`` of the next
  (the 1st by default, a calendar month). In a month shorter than the anchor,
  the period starts on that month's last day instead: with anchor 31 the periods
  start on 31 January, 28 (or 29) February, 31 March, 30 April, and so on.

Where local midnight does not exist because the clocks jump forward at 00:00,
the period starts at the first local instant of that day.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo

PeriodKind = Literal["daily", "weekly", "monthly"]
Weekday = Literal[
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"
]
WEEKDAYS: tuple[Weekday, ...] = (
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
)


@dataclass(frozen=True, slots=True)
class PeriodSpec:
    """A budget period: its kind, the monthly anchor day and the weekly start day.

    ``anchor_day`` (1-31) applies to monthly periods and ``week_start`` (0 for
    Monday to 6 for Sunday, as ``date.weekday`` counts) to weekly ones.
    """

    kind: PeriodKind
    anchor_day: int = 1
    week_start: int = 0


# A plain kind means its defaults: calendar months, ISO weeks.
Period = PeriodKind | PeriodSpec


@lru_cache(maxsize=512)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    """Return the UTC instant of local midnight that starts ``day``.

    A midnight skipped by a forward clock change resolves, with ``fold=0``, to
    the offset before the change, which is the first existing instant of ``day``.
    """
    return datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)


def local_date(instant: datetime, tz: ZoneInfo) -> date:
    return instant.astimezone(tz).date()


def spec_of(period: Period) -> PeriodSpec:
    """Return ``period`` as a ``PeriodSpec``, filling in the defaults of a bare kind."""
    if isinstance(period, PeriodSpec):
        return period
    return PeriodSpec(period)


def anchored_day(year: int, month: int, anchor_day: int) -> date:
    """Return ``anchor_day`` of the month, clamped to the month's last day."""
    days_in_month = calendar.monthrange(year, month)[1]
    return date(year, month, min(anchor_day, days_in_month))


def _add_months(year: int, month: int, months: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) + months
    return index // 12, index % 12 + 1


def first_day(day: date, period: Period) -> date:
    """Return the first local day of the period that contains ``day``."""
    spec = spec_of(period)
    if spec.kind == "daily":
        return day
    if spec.kind == "weekly":
        return day - timedelta(days=(day.weekday() - spec.week_start) % 7)
    start = anchored_day(day.year, day.month, spec.anchor_day)
    if day >= start:
        return start
    year, month = _add_months(day.year, day.month, -1)
    return anchored_day(year, month, spec.anchor_day)


def next_first_day(day: date, period: Period) -> date:
    """Return the first day of the period after the one containing ``day``."""
    spec = spec_of(period)
    start = first_day(day, spec)
    if spec.kind == "daily":
        return start + timedelta(days=1)
    if spec.kind == "weekly":
        return start + timedelta(days=7)
    # The start's month is the month the anchor fell in, even when it was clamped.
    year, month = _add_months(start.year, start.month, 1)
    return anchored_day(year, month, spec.anchor_day)


def period_bounds(
    instant: datetime, tz: ZoneInfo, period: Period
) -> tuple[datetime, datetime]:
    """Return the UTC bounds ``[start, end)`` of the period containing ``instant``."""
    day = local_date(instant, tz)
    start = first_day(day, period)
    return local_midnight(start, tz), local_midnight(next_first_day(day, period), tz)


def last_day(start: date, period: Period) -> date:
    """Return the last calendar day of the period that starts on ``start``."""
    return next_first_day(start, period) - timedelta(days=1)
