"""Tests for budget periods: daily, weekly, monthly with anchors, across DST changes."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from pydantic import ValidationError

from detector.config import Budget
from detector.periods import PeriodSpec, first_day, last_day, period_bounds, zone

NEW_YORK = zone("America/New_York")
BERLIN = zone("Europe/Berlin")


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_daily_spring_forward_new_york() -> None:
    """The New York day of the spring change lasts 23 hours, midnight to midnight."""
    instant = _utc("2026-03-08T12:00:00")  # 08:00 EDT on Sunday 8 March

    start, end = period_bounds(instant, NEW_YORK, "daily")

    assert start == _utc("2026-03-08T05:00:00")  # 00:00 EST
    assert end == _utc("2026-03-09T04:00:00")  # 00:00 EDT
    assert (end - start).total_seconds() == 23 * 3600


def test_daily_fall_back_new_york() -> None:
    """The New York day of the autumn change lasts 25 hours."""
    instant = _utc("2026-11-01T05:30:00")  # 01:30 EDT, before the repeated hour

    start, end = period_bounds(instant, NEW_YORK, "daily")

    assert start == _utc("2026-11-01T04:00:00")  # 00:00 EDT
    assert end == _utc("2026-11-02T05:00:00")  # 00:00 EST
    assert (end - start).total_seconds() == 25 * 3600


def test_daily_spring_forward_berlin() -> None:
    """The Berlin day of the spring change starts at 23:00 UTC and lasts 23 hours."""
    instant = _utc("2026-03-29T01:30:00")  # 03:30 CEST, just after the jump

    start, end = period_bounds(instant, BERLIN, "daily")

    assert start == _utc("2026-03-28T23:00:00")  # 00:00 CET
    assert end == _utc("2026-03-29T22:00:00")  # 00:00 CEST
    assert (end - start).total_seconds() == 23 * 3600


def test_weekly_across_berlin_fall_back() -> None:
    """An ISO week containing the Berlin autumn change is 7 days and 1 hour long."""
    instant = _utc("2026-10-25T12:00:00")  # Sunday 25 October, 13:00 CET

    start, end = period_bounds(instant, BERLIN, "weekly")

    assert start == _utc("2026-10-18T22:00:00")  # Monday 19 October 00:00 CEST
    assert end == _utc("2026-10-25T23:00:00")  # Monday 26 October 00:00 CET
    assert (end - start).total_seconds() == 7 * 86400 + 3600


def test_weekly_configured_start_day() -> None:
    """A week starting on Sunday begins at the tenant's Sunday midnight."""
    spec = PeriodSpec("weekly", week_start=6)
    instant = _utc("2026-03-11T15:00:00")  # Wednesday 11 March, 11:00 EDT

    start, end = period_bounds(instant, NEW_YORK, spec)

    assert start == _utc("2026-03-08T05:00:00")  # Sunday 8 March 00:00 EST
    assert end == _utc("2026-03-15T04:00:00")  # Sunday 15 March 00:00 EDT


def test_monthly_new_york_dst_month() -> None:
    """The New York March spans the spring change: 31 days less one hour."""
    instant = _utc("2026-03-20T12:00:00")

    start, end = period_bounds(instant, NEW_YORK, "monthly")

    assert start == _utc("2026-03-01T05:00:00")  # 1 March 00:00 EST
    assert end == _utc("2026-04-01T04:00:00")  # 1 April 00:00 EDT
    assert (end - start).total_seconds() == 31 * 86400 - 3600


@pytest.mark.parametrize(
    ("day", "expected_first", "expected_last"),
    [
        (date(2026, 1, 31), date(2026, 1, 31), date(2026, 2, 27)),
        (date(2026, 2, 27), date(2026, 1, 31), date(2026, 2, 27)),
        (date(2026, 2, 28), date(2026, 2, 28), date(2026, 3, 30)),
        (date(2026, 3, 30), date(2026, 2, 28), date(2026, 3, 30)),
        (date(2026, 3, 31), date(2026, 3, 31), date(2026, 4, 29)),
        (date(2026, 4, 30), date(2026, 4, 30), date(2026, 5, 30)),
        (date(2026, 5, 31), date(2026, 5, 31), date(2026, 6, 29)),
    ],
)
def test_anchor_31_clamps_to_month_end(
    day: date, expected_first: date, expected_last: date
) -> None:
    """Anchor 31 starts periods on the last day of February and April."""
    spec = PeriodSpec("monthly", anchor_day=31)

    first = first_day(day, spec)

    assert first == expected_first
    assert last_day(first, spec) == expected_last


def test_anchor_31_leap_year() -> None:
    """In a leap year anchor 31 starts the February period on the 29th."""
    spec = PeriodSpec("monthly", anchor_day=31)

    assert first_day(date(2028, 2, 28), spec) == date(2028, 1, 31)
    assert first_day(date(2028, 2, 29), spec) == date(2028, 2, 29)
    assert last_day(date(2028, 1, 31), spec) == date(2028, 2, 28)
    assert last_day(date(2028, 2, 29), spec) == date(2028, 3, 30)


def test_anchor_15_bounds_new_york() -> None:
    """A billing anchor on the 15th runs from local midnight to local midnight."""
    spec = PeriodSpec("monthly", anchor_day=15)
    instant = _utc("2026-03-10T12:00:00")  # before the 15th, so February's period

    start, end = period_bounds(instant, NEW_YORK, spec)

    assert start == _utc("2026-02-15T05:00:00")  # 15 February 00:00 EST
    assert end == _utc("2026-03-15T04:00:00")  # 15 March 00:00 EDT


def test_anchor_year_boundary() -> None:
    """A December anchor period ends in January of the next year."""
    spec = PeriodSpec("monthly", anchor_day=15)

    assert first_day(date(2026, 1, 3), spec) == date(2025, 12, 15)
    assert last_day(date(2025, 12, 15), spec) == date(2026, 1, 14)


def test_leap_year_calendar_month() -> None:
    """February of a leap year has 29 days, of a common year 28."""
    assert last_day(date(2028, 2, 1), "monthly") == date(2028, 2, 29)
    assert last_day(date(2026, 2, 1), "monthly") == date(2026, 2, 28)


def test_budget_period_spec_from_config() -> None:
    """A budget's anchor_day and week_start reach its period spec."""
    monthly = Budget(id="b", limit_usd=Decimal(10), anchor_day=15)
    weekly = Budget(id="w", limit_usd=Decimal(10), period="weekly", week_start="sunday")
    plain = Budget(id="p", limit_usd=Decimal(10))

    assert monthly.period_spec == PeriodSpec("monthly", anchor_day=15)
    assert weekly.period_spec == PeriodSpec("weekly", week_start=6)
    assert plain.period_spec == PeriodSpec("monthly")


def test_budget_rejects_misplaced_period_fields() -> None:
    """anchor_day on a weekly budget and week_start on a monthly one are errors."""
    with pytest.raises(ValidationError) as anchored:
        Budget(id="w", limit_usd=Decimal(10), period="weekly", anchor_day=15)
    with pytest.raises(ValidationError) as weekly:
        Budget(id="m", limit_usd=Decimal(10), week_start="monday")

    assert "anchor_day applies to monthly periods only" in str(anchored.value)
    assert "week_start applies to weekly periods only" in str(weekly.value)
