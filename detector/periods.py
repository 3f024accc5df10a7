"""Calendar periods in a tenant's time zone.

A budget period starts at local midnight of its first day and ends at local
midnight of the day after its last day, so its length in UTC changes across
daylight-saving transitions. Bounds are returned as UTC datetimes, half open:
``start <= t < end``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo

Period = Literal["daily", "monthly"]


@lru_cache(maxsize=512)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    """Return the UTC instant of local midnight that starts ``day``."""
    return datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)


def local_date(instant: datetime, tz: ZoneInfo) -> date:
    return instant.astimezone(tz).date()


def first_day(day: date, period: Period) -> date:
    if period == "daily":
        return day
    return day.replace(day=1)


def next_first_day(day: date, period: Period) -> date:
    """Return the first day of the period after the one containing ``day``."""
    if period == "daily":
        return day + timedelta(days=1)
    if day.month == 12:
        return date(day.year + 1, 1, 1)
    return date(day.year, day.month + 1, 1)


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
