"""Rate-of-change tier: recent windows in the baseline and the spread floor."""

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


def hourly(tenant: str, day: int, amounts: dict[int, str]) -> list:
    """One request at half past each given hour of 2026-02-<day>."""
    return [
        spend(tenant, f"2026-02-{day:02d}T{hour:02d}:30:00Z", amount)
        for hour, amount in sorted(amounts.items())
    ]


def week_of(tenant: str, amount: str) -> list:
    """$amount every hour from 2026-02-01 to 2026-02-07."""
    every_hour = dict.fromkeys(range(24), amount)
    return [e for day in range(1, 8) for e in hourly(tenant, day, every_hour)]


def test_recent_windows_follow_new_level() -> None:
    """$10 to $30 an hour fires once, then resolves when the recent hours reach $30."""
    rule = {**HOURLY, "recent_windows": 3}
    engine = engine_for({"rules": [rule]})
    test_day = hourly("shop", 8, {**dict.fromkeys(range(6), "10"), 6: "30", 7: "30", 8: "30"})

    records = run(engine, [*week_of("shop", "10"), *test_day])
    records += engine.advance_to_s(int(test_day[-1].timestamp_s) + 1800)

    changes = [(r.status, r.event_time.hour) for r in records if r.tier == "rate_of_change"]
    # 07:00: median(10, 10, 10, 10). 08:00: median(10, 30, 10, 10) = 10, still
    # firing. 09:00: median(10, 30, 30, 10) = 20, so $30 is 1.5x and resolves.
    assert changes == [("firing", 7), ("resolved", 9)]
    alerts = firing(records, "rate_of_change")
    assert alerts[0].baseline == Decimal(10)
    assert alerts[0].details["recent_windows"] == "3"


def test_joined_baseline_fires_after_quiet_hours() -> None:
    """Back to $10 after three $1 hours: median(10, 1, 1, 1) = 1, so $10 is 10x."""
    rule = {**HOURLY, "recent_windows": 3}
    engine = engine_for({"rules": [rule]})
    quiet = {**dict.fromkeys(range(6), "10"), 6: "1", 7: "1", 8: "1", 9: "10"}
    test_day = hourly("shop", 8, quiet)

    records = run(engine, [*week_of("shop", "10"), *test_day])
    records += engine.advance_to_s(int(test_day[-1].timestamp_s) + 1800)

    alerts = firing(records, "rate_of_change")
    assert [(a.event_time.hour, a.baseline) for a in alerts] == [(10, Decimal(1))]


def test_separate_baseline_ignores_quiet_hours() -> None:
    """The same day against max(last week's $10, recent median $1) = $10: no rise."""
    rule = {**HOURLY, "recent_windows": 3, "recent_baseline": "separate"}
    engine = engine_for({"rules": [rule]})
    quiet = {**dict.fromkeys(range(6), "10"), 6: "1", 7: "1", 8: "1", 9: "10"}
    test_day = hourly("shop", 8, quiet)

    records = run(engine, [*week_of("shop", "10"), *test_day])
    records += engine.advance_to_s(int(test_day[-1].timestamp_s) + 1800)

    assert firing(records, "rate_of_change") == []


def test_separate_baseline_fires_above_both_levels() -> None:
    """$45 after $15 hours against last week's $10: baseline max(10, 15) = 15, 3x."""
    rule = {**HOURLY, "recent_windows": 3, "recent_baseline": "separate"}
    engine = engine_for({"rules": [rule]})
    test_day = hourly("shop", 8, {**dict.fromkeys(range(6), "15"), 6: "45"})

    records = run(engine, [*week_of("shop", "10"), *test_day])
    records += engine.advance_to_s(int(test_day[-1].timestamp_s) + 1800)

    alerts = firing(records, "rate_of_change")
    assert [(a.event_time.hour, a.baseline) for a in alerts] == [(7, Decimal(15))]
    assert alerts[0].details["recent_baseline"] == "separate"
    assert "the higher of the median" in alerts[0].summary


def test_separate_baseline_fall_uses_lower_level() -> None:
    """After $10 hours, last week $4: $4 is no fall, $1 is one against min(4, 10)."""
    rule = {
        **HOURLY,
        "recent_windows": 3,
        "recent_baseline": "separate",
        "direction": "down",
        "min_increase": 1,
    }
    engine = engine_for({"rules": [rule]})
    busy = dict.fromkeys(range(6), "10")
    test_day = hourly("shop", 8, {**busy, 6: "4", 7: "10", 8: "10", 9: "10", 10: "1"})

    records = run(engine, [*week_of("shop", "4"), *test_day])
    records += engine.advance_to_s(int(test_day[-1].timestamp_s) + 1800)

    alerts = firing(records, "rate_of_change")
    assert [(a.event_time.hour, a.baseline) for a in alerts] == [(11, Decimal(4))]


def test_spread_floor_blocks_noisy_rise() -> None:
    """$25 is 2.5x a baseline of $10 but less than 3 spreads above it."""
    rule = {**HOURLY, "recent_windows": 4, "min_deviations": 3}
    engine = engine_for({"rules": [rule]})
    noisy = {**dict.fromkeys(range(6), "10"), 6: "14", 7: "6", 8: "18", 9: "10"}
    test_day = hourly("shop", 8, {**noisy, 10: "25"})

    records = run(engine, [*week_of("shop", "10"), *test_day])
    records += engine.advance_to_s(int(test_day[-1].timestamp_s) + 1800)

    assert firing(records, "rate_of_change") == []


def test_spread_floor_lets_large_rise_fire() -> None:
    """$30 clears 3 spreads: windows 10, 14, 6, 18, 10 have a spread of 1.4826 x 4."""
    rule = {**HOURLY, "recent_windows": 4, "min_deviations": 3}
    engine = engine_for({"rules": [rule]})
    noisy = {**dict.fromkeys(range(6), "10"), 6: "14", 7: "6", 8: "18", 9: "10"}
    test_day = hourly("shop", 8, {**noisy, 10: "30"})

    records = run(engine, [*week_of("shop", "10"), *test_day])
    records += engine.advance_to_s(int(test_day[-1].timestamp_s) + 1800)

    alerts = firing(records, "rate_of_change")
    assert len(alerts) == 1
    assert alerts[0].event_time.hour == 11
    assert alerts[0].baseline == Decimal(10)
    assert alerts[0].details["spread"] == "5.9304"
    assert alerts[0].details["min_deviations"] == "3"
    assert alerts[0].threshold == Decimal("27.7912")


def test_spread_of_one_window_is_zero() -> None:
    """Without recent windows the floor is min_increase alone: $25 fires."""
    rule = {**HOURLY, "min_deviations": 3}
    engine = engine_for({"rules": [rule]})
    test_day = hourly("shop", 8, {10: "25"})

    records = run(engine, [*week_of("shop", "10"), *test_day])
    records += engine.advance_to_s(int(test_day[-1].timestamp_s) + 1800)

    alerts = firing(records, "rate_of_change")
    assert len(alerts) == 1
    assert alerts[0].details["spread"] == "0.0000"
    assert alerts[0].threshold == Decimal(20)


def test_zero_against_zero_is_quiet() -> None:
    """Without a floor, $0 against a baseline of $0 is no rise."""
    rule = {**HOURLY, "min_increase": 0}
    engine = engine_for({"rules": [rule]})
    test_day = hourly("idle", 8, {10: "0"})

    records = run(engine, [*week_of("idle", "0"), *test_day])
    records += engine.advance_to_s(int(test_day[-1].timestamp_s) + 1800)

    assert firing(records, "rate_of_change") == []


def test_recent_windows_beyond_history_rejected() -> None:
    """20 nine-hour windows reach past the one week of kept history. 200 is over 24."""
    with pytest.raises(ValidationError, match="recent_windows 20 of 32400s"):
        RateOfChangeRule.model_validate({**HOURLY, "recent_windows": 20, "window": "9h"})
    with pytest.raises(ValidationError, match="less than or equal to 24"):
        RateOfChangeRule.model_validate({**HOURLY, "recent_windows": 200})


def test_hourly_period_summary_reads_an_hour() -> None:
    """A baseline one hour back is described as "an hour earlier"."""
    rule = {**HOURLY, "window": "10m", "baseline_period": "1h", "evaluate_every": "10m"}
    engine = engine_for({"rules": [rule]})
    quiet = [spend("shop", f"2026-02-08T09:{minute:02d}:00Z", "1") for minute in range(60)]
    busy = [spend("shop", f"2026-02-08T10:{minute:02d}:00Z", "10") for minute in range(10)]

    records = run(engine, [*quiet, *busy])
    records += engine.advance_to_s(int(busy[-1].timestamp_s) + 60)

    alerts = firing(records, "rate_of_change")
    assert len(alerts) == 1
    assert "(same window an hour earlier, from hourly totals)" in alerts[0].summary
