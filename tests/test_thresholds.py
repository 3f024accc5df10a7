"""Absolute tier: windowed totals against a fixed threshold."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from tests.support import at, engine_for, firing, run, spend

HOURLY = {
    "id": "hourly-spend",
    "tier": "absolute",
    "signal": "spend",
    "window": "1h",
    "threshold": 100,
}


def test_hourly_spend_fires_once_at_crossing() -> None:
    """$40 at 10:05, $30 at 10:20 and $35 at 10:40 make $105 in the hour: one alert."""
    engine = engine_for({"rules": [HOURLY]})

    records = run(
        engine,
        [
            spend("t", "2026-05-04T10:05:00Z", "40"),
            spend("t", "2026-05-04T10:20:00Z", "30"),
            spend("t", "2026-05-04T10:40:00Z", "35"),
            spend("t", "2026-05-04T10:41:00Z", "1"),
        ],
    )

    alerts = firing(records)
    assert len(alerts) == 1
    assert alerts[0].observed == Decimal("105")
    assert alerts[0].event_time == at("2026-05-04T10:40:00Z")


def test_minute_rule_fires_on_first_event() -> None:
    """A single $12 event at 10:00:05 crosses "spend per minute >= $10" at once."""
    rule = {**HOURLY, "id": "per-minute", "window": "1m", "threshold": 10}
    engine = engine_for({"rules": [rule]})

    records = run(engine, [spend("quiet", "2026-05-04T10:00:05Z", "12")])

    assert len(firing(records)) == 1
    assert firing(records)[0].window_s == 60


def test_threshold_resolves_when_window_drops() -> None:
    """The minute alert resolves at 10:02, the first tick whose minute is empty."""
    rule = {**HOURLY, "id": "per-minute", "window": "1m", "threshold": 10}
    engine = engine_for({"rules": [rule]})
    run(engine, [spend("quiet", "2026-05-04T10:00:05Z", "12")])

    records = engine.advance_to(datetime(2026, 5, 4, 10, 2, tzinfo=UTC))

    assert [r.status for r in records] == ["resolved"]
    assert records[0].event_time == at("2026-05-04T10:02:00Z")


def test_series_per_route_and_model() -> None:
    """A rule on (tenant, route) fires for the busy route only."""
    rule = {**HOURLY, "series": ["tenant", "route"], "threshold": 50}
    engine = engine_for({"rules": [rule]})

    records = run(
        engine,
        [
            spend("t", "2026-05-04T10:00:00Z", "30", route="/chat"),
            spend("t", "2026-05-04T10:01:00Z", "30", route="/search"),
            spend("t", "2026-05-04T10:02:00Z", "30", route="/chat"),
        ],
    )

    assert [r.series for r in firing(records)] == [{"tenant": "t", "route": "/chat"}]


def test_late_event_outside_bound_counts_in_month_only() -> None:
    """An event 10 minutes late is counted as late and still adds to month-to-date."""
    rules = {"rules": [HOURLY], "budgets": [{"id": "monthly", "limit_usd": 1000}]}
    engine = engine_for(rules, allowed_lateness_s=300)
    run(engine, [spend("t", "2026-05-04T10:30:00Z", "60")])

    records = run(engine, [spend("t", "2026-05-04T10:20:00Z", "60")])

    assert firing(records) == []
    assert engine.stats.late == 1
    total = engine.tenants["t"].period_total(
        "monthly", "monthly", at("2026-05-04T00:00:00Z")
    )
    assert total.spend_usd == Decimal("120")


def test_late_event_within_bound_joins_its_window() -> None:
    """An event two minutes late still joins its hour and can fire the rule."""
    engine = engine_for({"rules": [HOURLY]}, allowed_lateness_s=300)
    run(engine, [spend("t", "2026-05-04T10:30:00Z", "60")])

    records = run(engine, [spend("t", "2026-05-04T10:28:00Z", "60")])

    assert len(firing(records)) == 1
    assert engine.stats.late == 0
