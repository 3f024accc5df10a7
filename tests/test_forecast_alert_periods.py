"""Predictive tier: a forecast alert belongs to one budget period and resolves after it."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from detector.alerts import AlertRecord
from detector.config import RuleSet
from detector.engine import Engine, EngineSettings
from detector.forecast import MonthEndForecast
from detector.pricing import Pricer
from detector.tiers.predictive import ForecastJob
from tests.support import at, firing, run, spend

RULES: dict[str, Any] = {
    "budgets": [{"id": "monthly", "limit_usd": "1000"}],
    "rules": [
        {
            "id": "month-end",
            "tier": "predictive",
            "budget": "monthly",
            "history_days": 14,
        }
    ],
}


def _forecast(total: int) -> MonthEndForecast:
    return MonthEndForecast(
        month_end_usd=Decimal(total),
        lower_usd=Decimal(total - 200),
        upper_usd=Decimal(total + 200),
        interval_pct=80,
        method="run_rate",
        seasonal=None,
        low_confidence=False,
        fallback_reason=None,
        daily_forecast=(),
    )


def _june_over_budget(job: ForecastJob) -> MonthEndForecast:
    """$3,000 for June, $100 for any later month."""
    return _forecast(3000 if job.period_start.month == 6 else 100)


def _while_spending(job: ForecastJob) -> MonthEndForecast:
    """$3,000 while the last 10 days had spend, $400 once they had none."""
    return _forecast(3000 if sum(job.daily_usd[-10:]) > 0 else 400)


def _engine(forecaster: Any) -> Engine:
    rules = RuleSet.model_validate(RULES)
    return Engine(
        rules, Pricer(rules.prices, posted=False), EngineSettings(), forecaster
    )


def _changes(records: list[AlertRecord]) -> list[tuple[str, str]]:
    return [(r.status, r.event_time.date().isoformat()) for r in records]


def test_alert_resolves_when_period_ends() -> None:
    """June's firing alert resolves on July 1 with June's spend; July opens none."""
    engine = _engine(_june_over_budget)
    june = [spend("acme", f"2026-06-0{day}T12:00:00Z", "100") for day in (1, 2, 3)]
    fired = firing(run(engine, june))

    later = run(engine, [spend("acme", "2026-07-02T12:00:00Z", "1")])

    assert _changes(fired) == [("firing", "2026-06-02")]
    resolved = [r for r in later if r.status == "resolved"]
    assert len(later) == 1
    assert resolved[0].alert_id == fired[0].alert_id
    assert resolved[0].observed == Decimal(300)
    assert resolved[0].threshold == Decimal(1000)
    assert resolved[0].period_start == datetime(2026, 6, 1, tzinfo=UTC)
    assert resolved[0].period_end == datetime(2026, 7, 1, tzinfo=UTC)
    assert resolved[0].event_time.date().isoformat() == "2026-07-01"
    assert resolved[0].summary == (
        "monthly period 2026-06-01 to 2026-06-30 ended with $300.00 spent against "
        "the $1,000.00 budget monthly, so its forecast alert is closed"
    )
    assert engine.tenants["acme"].alerts.alerts == {}


def test_next_period_opens_new_alert() -> None:
    """Over budget in June and July: two alerts with different ids."""
    engine = _engine(lambda job: _forecast(3000))
    june = [spend("acme", f"2026-06-0{day}T12:00:00Z", "100") for day in (1, 2, 3)]
    fired = firing(run(engine, june))

    july = [spend("acme", f"2026-07-0{day}T12:00:00Z", "300") for day in (1, 2, 3)]
    later = run(engine, july)

    assert [r.status for r in later] == ["resolved", "firing"]
    assert later[0].alert_id == fired[0].alert_id
    assert later[1].alert_id != fired[0].alert_id
    assert later[1].period_start == datetime(2026, 7, 1, tzinfo=UTC)


def test_firing_alert_forecast_below_screen() -> None:
    """Spend stops after June 3, so from June 11 the run rate projects $300, under
    the $500 screen, and the forecast of June 14 is the first under the budget."""
    engine = _engine(_while_spending)
    june = [spend("acme", f"2026-06-0{day}T12:00:00Z", "100") for day in (1, 2, 3)]
    fired = firing(run(engine, june))

    later = engine.advance_to_s(int(at("2026-06-20T12:00:00Z").timestamp()))

    assert _changes(fired) == [("firing", "2026-06-02")]
    assert _changes(later) == [("resolved", "2026-06-14")]
    assert later[0].alert_id == fired[0].alert_id
    assert later[0].forecast == Decimal(400)
