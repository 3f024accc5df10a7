"""Rate-of-change tier: warm-up, floor, clear level, direction, robust baseline."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from detector.config import RateOfChangeRule
from tests.support import engine_for, firing, run, spend

HOURLY = {
    "id": "hourly-spike",
    "tier": "rate_of_change",
    "window": "1h",
    "baseline_weeks": 1,
    "min_ratio": 2,
    "min_increase": 5,
    "evaluate_every": "1h",
}


def hourly(tenant: str, day: int, hours: range, amount: str, month: int = 2) -> list:
    """One request at half past each hour of one day, all for the same amount."""
    return [
        spend(tenant, f"2026-{month:02d}-{day:02d}T{hour:02d}:30:00Z", amount)
        for hour in hours
    ]


def test_warm_up_compares_with_trailing_day() -> None:
    """On day 2, $50 against a trailing level of $10 fires at the warm-up ratio 4."""
    engine = engine_for({"rules": [HOURLY]})
    history = hourly("new", 1, range(24), "10")  # 2026-02-01, $10 every hour
    spike = hourly("new", 2, range(1), "50")  # 2026-02-02 00:30, window 00:00-01:00

    records = run(engine, [*history, *spike])
    records += engine.advance_to_s(int(spike[0].timestamp_s) + 1800)

    alerts = firing(records, "rate_of_change")
    assert len(alerts) == 1
    assert alerts[0].baseline == Decimal("10")
    assert alerts[0].details["warmup"] == "true"
    assert alerts[0].details["warmup_min_ratio"] == "4"
    assert alerts[0].details["min_ratio"] == "2"


def test_warm_up_needs_the_higher_ratio() -> None:
    """In warm-up, 3x the trailing level stays quiet although min_ratio is 2."""
    engine = engine_for({"rules": [HOURLY]})
    history = hourly("new", 1, range(24), "10")
    spike = hourly("new", 2, range(1), "30")  # window 2026-02-02 00:00-01:00

    records = run(engine, [*history, *spike])
    records += engine.advance_to_s(int(spike[0].timestamp_s) + 1800)

    assert firing(records, "rate_of_change") == []


def test_younger_than_a_day_is_not_evaluated() -> None:
    """A series with six hours of history has no baseline at all."""
    engine = engine_for({"rules": [HOURLY]})
    events = [*hourly("new", 1, range(6), "1"), *hourly("new", 1, range(6, 7), "500")]

    records = run(engine, events)
    records += engine.advance_to_s(int(events[-1].timestamp_s) + 3600)

    assert firing(records, "rate_of_change") == []


def week_of(tenant: str, amount: str) -> list:
    """$amount every hour from 2026-02-01 to 2026-02-07."""
    return [e for day in range(1, 8) for e in hourly(tenant, day, range(24), amount)]


def test_floor_blocks_small_increase() -> None:
    """$1 to $4 an hour is four times the baseline but only $3 above it."""
    engine = engine_for({"rules": [HOURLY]})
    spike = hourly("shop", 8, range(10, 11), "4")  # window 2026-02-08 10:00-11:00

    records = run(engine, [*week_of("shop", "1"), *spike])
    records += engine.advance_to_s(int(spike[0].timestamp_s) + 1800)

    assert firing(records, "rate_of_change") == []


def test_clear_level_keeps_alert_firing() -> None:
    """With clear_ratio 1.5, 1.8x after a 3x spike stays firing; 1.2x resolves."""
    rule = {**HOURLY, "clear_ratio": "1.5"}
    engine = engine_for({"rules": [rule]})
    test_day = [
        *hourly("shop", 8, range(10, 11), "30"),  # 3x, fires at 11:00
        *hourly("shop", 8, range(11, 12), "18"),  # 1.8x, below min_ratio, above clear
        *hourly("shop", 8, range(12, 13), "12"),  # 1.2x, below clear
        *hourly("shop", 8, range(13, 14), "10"),
    ]

    records = run(engine, [*week_of("shop", "10"), *test_day])

    changes = [(r.status, r.event_time.hour) for r in records if r.tier == "rate_of_change"]
    assert changes == [("firing", 11), ("resolved", 13)]


def test_without_clear_level_resolves_at_once() -> None:
    """Without clear_ratio the same 1.8x hour resolves the alert."""
    engine = engine_for({"rules": [HOURLY]})
    test_day = [
        *hourly("shop", 8, range(10, 11), "30"),
        *hourly("shop", 8, range(11, 12), "18"),
        *hourly("shop", 8, range(12, 13), "12"),
    ]

    records = run(engine, [*week_of("shop", "10"), *test_day])

    changes = [(r.status, r.event_time.hour) for r in records if r.tier == "rate_of_change"]
    assert changes == [("firing", 11), ("resolved", 12)]


def test_direction_down_fires_on_stall() -> None:
    """A source that stops sending fires a down alert within the next window."""
    rule = {**HOURLY, "direction": "down"}
    engine = engine_for({"rules": [rule]})
    history = week_of("feed", "10")
    last = hourly("feed", 8, range(0, 10), "10")  # stops after 2026-02-08 09:30

    records = run(engine, [*history, *last])
    records += engine.advance_to_s(int(last[-1].timestamp_s) + 3 * 3600)

    alerts = firing(records, "rate_of_change")
    assert len(alerts) == 1
    assert alerts[0].event_time.hour == 11  # window 10:00-11:00 is empty
    assert alerts[0].observed == Decimal(0)
    assert alerts[0].baseline == Decimal(10)
    assert "below it" in alerts[0].summary


def test_direction_up_ignores_stall() -> None:
    """The same stall does not fire an up rule."""
    engine = engine_for({"rules": [HOURLY]})
    last = hourly("feed", 8, range(0, 10), "10")

    records = run(engine, [*week_of("feed", "10"), *last])
    records += engine.advance_to_s(int(last[-1].timestamp_s) + 3 * 3600)

    assert firing(records, "rate_of_change") == []


def test_past_spike_does_not_hide_next() -> None:
    """A 10x hour last week is capped, so the same spike this week still fires."""
    engine = engine_for({"rules": [HOURLY]})
    history = week_of("shop", "10")
    history = [e for e in history if e.timestamp.isoformat() != "2026-02-01T10:30:00+00:00"]
    history += hourly("shop", 1, range(10, 11), "100")  # 2026-02-01 10:30, 10x
    history.sort(key=lambda event: event.timestamp)
    spike = hourly("shop", 8, range(10, 11), "100")  # one week later, same hour

    records = run(engine, [*history, *spike])
    records += engine.advance_to_s(int(spike[0].timestamp_s) + 1800)

    alerts = firing(records, "rate_of_change")
    assert [a.event_time.isoformat() for a in alerts] == ["2026-02-08T11:00:00+00:00"]
    assert alerts[0].baseline == Decimal(10)


def test_clear_ratio_above_min_ratio_rejected() -> None:
    """A clear level above the firing level is a rule error."""
    with pytest.raises(ValidationError, match="clear_ratio 3 is above min_ratio 2"):
        RateOfChangeRule.model_validate({**HOURLY, "clear_ratio": 3})
