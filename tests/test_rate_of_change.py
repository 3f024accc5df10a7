"""Rate-of-change tier: spend against the same window in earlier weeks."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from tests.support import engine_for, firing, run, spend

SPIKE_RULE = {
    "id": "daily-spike",
    "tier": "rate_of_change",
    "signal": "spend",
    "window": "1d",
    "baseline_weeks": 3,
    "min_ratio": 2,
    "min_increase": 25,
    "evaluate_every": "1h",
}


def weekday_tenant_history(first: date, days: int) -> list:
    """About $200 on weekdays and $2 on weekend days, one request at noon UTC."""
    events = []
    for offset in range(days):
        day = first + timedelta(days=offset)
        amount = "2" if day.weekday() >= 5 else "200"
        events.append(spend("shop", f"{day.isoformat()}T12:00:00Z", amount))
    return events


def test_weekend_dip_and_spike_against_same_weekday() -> None:
    """Sunday $4 and Monday $210 stay quiet; Wednesday $450 fires once."""
    engine = engine_for({"rules": [SPIKE_RULE]})
    history = weekday_tenant_history(date(2026, 2, 8), 21)  # Sun Feb 8 - Sat Feb 28
    test_week = [
        spend("shop", "2026-03-01T12:00:00Z", "4"),  # Sunday, baseline $2
        spend("shop", "2026-03-02T12:00:00Z", "210"),  # Monday, baseline $200
        spend("shop", "2026-03-03T12:00:00Z", "200"),
        spend("shop", "2026-03-04T12:00:00Z", "450"),  # Wednesday, baseline $200
        spend("shop", "2026-03-05T12:00:00Z", "200"),
        spend("shop", "2026-03-06T12:00:00Z", "200"),
    ]

    quiet = run(engine, history)
    records = run(engine, test_week)

    assert firing(quiet, "rate_of_change") == []
    alerts = firing(records, "rate_of_change")
    assert len(alerts) == 1
    assert alerts[0].observed == Decimal("450")
    assert alerts[0].baseline == Decimal("200")
    assert alerts[0].event_time.date() == date(2026, 3, 4)
    resolved = [r for r in records if r.status == "resolved"]
    assert [r.alert_id for r in resolved] == [alerts[0].alert_id]


def test_floor_blocks_small_ratio_spikes() -> None:
    """A weekend tripling from $2 to $6 stays below the $25 floor."""
    engine = engine_for({"rules": [SPIKE_RULE]})
    history = weekday_tenant_history(date(2026, 2, 8), 21)

    records = run(engine, [*history, spend("shop", "2026-03-01T12:00:00Z", "6")])
    records += engine.advance_to_s(int(history[-1].timestamp_s) + 3 * 86400)

    assert firing(records, "rate_of_change") == []


def test_warm_up_without_a_week_of_history() -> None:
    """A series younger than a week has no baseline, so even 100x does not fire."""
    engine = engine_for({"rules": [SPIKE_RULE]})
    events = [
        spend("new", "2026-03-01T12:00:00Z", "1"),
        spend("new", "2026-03-03T12:00:00Z", "100"),
    ]

    records = run(engine, events)
    records += engine.advance_to_s(int(events[-1].timestamp_s) + 3600)

    assert firing(records, "rate_of_change") == []


def test_minimum_duration_keeps_alert_pending() -> None:
    """With for: 2h, a spike that clears after one hour never fires."""
    rule = {**SPIKE_RULE, "window": "1h", "for": "2h", "evaluate_every": "1m"}
    engine = engine_for({"rules": [rule]})
    history = [
        spend("svc", f"2026-02-{day:02d}T{hour:02d}:30:00Z", "10")
        for day in range(20, 28)
        for hour in range(24)
    ]
    spike = [spend("svc", "2026-02-28T10:30:00Z", "500")]

    records = run(engine, [*history, *spike])
    records += engine.advance_to_s(int(spike[0].timestamp_s) + 4 * 3600)

    assert firing(records, "rate_of_change") == []
