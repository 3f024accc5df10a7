"""Rules reload: alerts whose rule or budget the new rules no longer have are closed."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from detector.alerts import AlertRecord
from detector.config import RuleSet
from detector.engine import Engine, EngineSettings
from detector.forecast import MonthEndForecast
from detector.pricing import Pricer
from detector.tiers.predictive import ForecastJob
from routing import content
from tests.support import at, engine_for, firing, run, spend

SPIKE = {
    "id": "spend-spike",
    "tier": "rate_of_change",
    "window": "10m",
    "baseline_period": "1h",
    "min_ratio": 2,
    "min_increase": 5,
    "severity": "critical",
    "labels": {"team": "ml"},
    "runbook_url": "https://runbooks.example/spend-spike",
}
HOURLY_HIGH = {
    "id": "hourly-high",
    "tier": "absolute",
    "window": "1h",
    "threshold": 100,
}
MONTHLY = {"id": "monthly-spend", "limit_usd": "100", "thresholds_pct": [50, 100]}
SPIKE_FIRED_AT = at("2026-05-04T10:01:00Z")
RELOAD_AT = at("2026-05-04T10:02:00Z")


def _spike(engine: Engine) -> list[AlertRecord]:
    """Send $1 a minute for two hours, then $20 at 10:00, and tick to 10:02.

    The 10-minute window at 10:01 contains $29 against $10 an hour earlier, so
    the spike rule fires at 10:01.
    """
    steady = [
        spend("acme", f"2026-05-04T{8 + minute // 60:02d}:{minute % 60:02d}:00Z", "1")
        for minute in range(120)
    ]
    records = run(engine, [*steady, spend("acme", "2026-05-04T10:00:00Z", "20")])
    return records + engine.advance_to(RELOAD_AT)


def _rules(**sections: Any) -> RuleSet:
    return RuleSet.model_validate(sections)


def _alert_keys(engine: Engine) -> list[str]:
    return [key.replace("\x1f", "/") for key in engine.tenants["acme"].alerts.alerts]


def test_removed_rate_rule_resolves() -> None:
    """A firing rate-of-change alert resolves at the reload with the same id."""
    engine = engine_for({"rules": [SPIKE]})
    fired = firing(_spike(engine))

    records = engine.replace_rules(_rules(rules=[]))
    later = engine.advance_to(at("2026-05-04T11:00:00Z"))

    assert len(fired) == 1
    assert len(records) == 1
    record = records[0]
    assert record.status == "resolved"
    assert record.alert_id == fired[0].alert_id
    assert record.tier == "rate_of_change"
    assert record.severity == "critical"
    assert record.rule_id == "spend-spike"
    assert record.tenant == "acme"
    assert record.signal == "spend"
    assert record.series == {"tenant": "acme"}
    assert record.labels == {"team": "ml"}
    assert record.runbook_url == "https://runbooks.example/spend-spike"
    assert record.started_at == SPIKE_FIRED_AT
    assert record.event_time == RELOAD_AT
    assert record.window_s == 600
    assert record.summary == (
        "rule spend-spike was removed from the rules, so its alert for "
        "tenant=acme is closed"
    )
    assert record.observed == Decimal(0)
    assert record.details == {"observed": "unknown"}
    assert record.baseline is None
    assert record.threshold is None
    assert engine.tenants["acme"].alerts.alerts == {}
    assert engine.stats.alerts[("rate_of_change", "resolved")] == 1
    assert later == []


def test_removed_pending_alert_dropped() -> None:
    """A pending alert of a removed rule is dropped without a record."""
    engine = engine_for({"rules": [{**SPIKE, "for": "30m"}]})
    fired = firing(_spike(engine))
    pending = [alert.status for alert in engine.tenants["acme"].alerts.alerts.values()]
    engine.touched.clear()

    records = engine.replace_rules(_rules(rules=[]))

    assert fired == []
    assert pending == ["pending"]
    assert records == []
    assert engine.tenants["acme"].alerts.alerts == {}
    # The dropped alert changed the tenant's state, so its snapshot is due.
    assert engine.touched == {"acme"}


def test_kept_rule_stays_firing() -> None:
    """Removing the threshold rule resolves only its alert, and the spike keeps firing."""
    # The hour to 10:00 contains $80, so a $70 threshold fires with the spike.
    engine = engine_for({"rules": [SPIKE, {**HOURLY_HIGH, "threshold": 70}]})
    fired = firing(_spike(engine))

    records = engine.replace_rules(_rules(rules=[SPIKE]))
    keys = _alert_keys(engine)

    assert sorted(r.rule_id for r in fired) == ["hourly-high", "spend-spike"]
    assert [r.rule_id for r in records] == ["hourly-high"]
    record = records[0]
    threshold_fired = next(r for r in fired if r.rule_id == "hourly-high")
    assert record.status == "resolved"
    assert record.alert_id == threshold_fired.alert_id
    assert record.tier == "absolute"
    assert record.severity == "critical"
    assert record.threshold == Decimal(70)
    assert record.window_s == 3600
    assert record.started_at == threshold_fired.started_at
    assert record.summary == (
        "rule hourly-high was removed from the rules, so its alert for "
        "tenant=acme is closed"
    )
    assert keys == ["rate/spend-spike/acme"]
    assert engine.tenants["acme"].alerts.is_firing("rate\x1fspend-spike\x1facme")


@pytest.mark.parametrize(
    ("changed", "summary"),
    [
        (
            {**HOURLY_HIGH, "tenants": ["globex"]},
            (
                "rule hourly-high no longer applies to tenant acme, so its alert for "
                "tenant=acme is closed"
            ),
        ),
        (
            {**HOURLY_HIGH, "series": ["tenant", "model"]},
            (
                "rule hourly-high now groups series by tenant, model, so its alert for "
                "tenant=acme is closed"
            ),
        ),
        (
            {**SPIKE, "id": "hourly-high", "min_increase": 1000},
            (
                "rule hourly-high moved to the rate_of_change tier, so its alert for "
                "tenant=acme is closed"
            ),
        ),
    ],
    ids=["scoped-away", "other-series", "other-tier"],
)
def test_threshold_rule_changed_away(changed: dict[str, Any], summary: str) -> None:
    """A rule that keeps its id but no longer builds the alert's key closes it."""
    engine = engine_for({"rules": [HOURLY_HIGH]})
    fired = firing(
        run(
            engine,
            [spend("acme", f"2026-05-04T10:{m:02d}:00Z", "30") for m in range(4)],
        )
    )

    records = engine.replace_rules(_rules(rules=[changed]))
    later = engine.advance_to(at("2026-05-04T11:30:00Z"))

    assert len(fired) == 1
    assert [(r.status, r.alert_id) for r in records] == [
        ("resolved", fired[0].alert_id)
    ]
    assert records[0].summary == summary
    assert engine.tenants["acme"].alerts.alerts == {}
    assert later == []


def test_removed_budget_resolves_thresholds() -> None:
    """Both firing thresholds of a removed budget resolve, and adding it back fires again."""
    engine = engine_for({"budgets": [MONTHLY]})
    events = [spend("acme", f"2026-05-04T10:{m:02d}:00Z", "10") for m in range(12)]
    fired = firing(run(engine, events))

    records = engine.replace_rules(_rules(budgets=[]))
    engine.replace_rules(_rules(budgets=[MONTHLY]))
    again = run(engine, [spend("acme", "2026-05-04T10:20:00Z", "1")])

    assert [r.details["threshold_pct"] for r in fired] == ["50", "100"]
    assert [r.status for r in records] == ["resolved", "resolved"]
    assert [r.alert_id for r in records] == [r.alert_id for r in fired]
    assert [r.details["threshold_pct"] for r in records] == ["50", "100"]
    assert [r.severity for r in records] == ["warning", "critical"]
    assert [r.threshold for r in records] == [Decimal(50), Decimal(100)]
    assert [r.observed for r in records] == [Decimal(120), Decimal(120)]
    assert records[0].rule_id == "monthly-spend"
    assert records[0].tier == "absolute"
    assert records[0].started_at == at("2026-05-04T10:04:00Z")
    assert records[0].event_time == at("2026-05-04T10:11:00Z")
    assert records[0].period_start == at("2026-05-01T00:00:00Z")
    assert records[0].period_end == at("2026-06-01T00:00:00Z")
    assert records[0].details == {"threshold_pct": "50", "period": "monthly"}
    assert records[1].summary == (
        "budget monthly-spend was removed from the rules, so its alert for the "
        "100% threshold is closed"
    )
    # Closing the alerts cleared the period's fired thresholds, so the budget
    # added back fires both again as new episodes.
    assert [r.details["threshold_pct"] for r in firing(again)] == ["50", "100"]
    assert {r.alert_id for r in firing(again)}.isdisjoint(r.alert_id for r in fired)


def test_budget_scoped_away_resolves() -> None:
    """A budget rewritten for another tenant closes the alerts of the old one."""
    engine = engine_for({"budgets": [{**MONTHLY, "thresholds_pct": [100]}]})
    events = [spend("acme", f"2026-05-04T10:{m:02d}:00Z", "10") for m in range(12)]
    fired = firing(run(engine, events))

    records = engine.replace_rules(
        _rules(budgets=[{**MONTHLY, "tenant": "globex", "thresholds_pct": [100]}])
    )

    assert len(fired) == 1
    assert [r.alert_id for r in records] == [fired[0].alert_id]
    assert records[0].summary == (
        "budget monthly-spend no longer applies to tenant acme, so its alert for "
        "the 100% threshold is closed"
    )


def test_renamed_rule_resolves_old_id() -> None:
    """Renaming the rule resolves the old alert, and the new id fires a new one."""
    engine = engine_for({"rules": [SPIKE]})
    fired = firing(_spike(engine))

    records = engine.replace_rules(_rules(rules=[{**SPIKE, "id": "spend-surge"}]))
    later = engine.advance_to(at("2026-05-04T10:03:00Z"))

    assert [(r.status, r.rule_id) for r in records] == [("resolved", "spend-spike")]
    assert records[0].alert_id == fired[0].alert_id
    assert records[0].summary == (
        "rule spend-spike was removed from the rules, so its alert for "
        "tenant=acme is closed"
    )
    assert [(r.status, r.rule_id) for r in later] == [("firing", "spend-surge")]
    assert later[0].alert_id != fired[0].alert_id
    assert _alert_keys(engine) == ["rate/spend-surge/acme"]


FORECAST_RULES: dict[str, Any] = {
    "budgets": [{"id": "monthly", "limit_usd": "1000"}],
    "rules": [
        {
            "id": "month-end",
            "tier": "predictive",
            "budget": "monthly",
            "severity": "error",
            "history_days": 14,
        }
    ],
}


def _over_budget(job: ForecastJob) -> MonthEndForecast:
    """Forecast $3,000 (80 % interval $2,800 to $3,200) whatever the history."""
    return MonthEndForecast(
        month_end_usd=Decimal(3000),
        lower_usd=Decimal(2800),
        upper_usd=Decimal(3200),
        interval_pct=80,
        method="run_rate",
        seasonal=None,
        low_confidence=False,
        fallback_reason=None,
        daily_forecast=(),
    )


def test_removed_forecast_rule_resolves() -> None:
    """A firing forecast alert resolves with the period's spend and the old budget."""
    ruleset = RuleSet.model_validate(FORECAST_RULES)
    engine = Engine(
        ruleset, Pricer(ruleset.prices, posted=False), EngineSettings(), _over_budget
    )
    events = [spend("acme", f"2026-06-0{day}T12:00:00Z", "100") for day in (1, 2, 3)]
    fired = firing(run(engine, events))

    records = engine.replace_rules(_rules(budgets=FORECAST_RULES["budgets"]))

    assert [(r.tier, r.rule_id) for r in fired] == [("predictive", "month-end")]
    assert len(records) == 1
    record = records[0]
    assert record.status == "resolved"
    assert record.alert_id == fired[0].alert_id
    assert record.tier == "predictive"
    assert record.severity == "error"
    assert record.observed == Decimal(300)
    assert record.threshold == Decimal(1000)
    assert record.forecast is None
    assert record.period_start == datetime(2026, 6, 1, tzinfo=UTC)
    assert record.event_time == at("2026-06-03T12:00:00Z")
    assert record.details == {}
    assert record.summary == (
        "rule month-end was removed from the rules, so its forecast alert for "
        "budget monthly is closed"
    )
    assert engine.tenants["acme"].alerts.alerts == {}


def test_notification_shows_unknown_observed() -> None:
    """Receivers show the reason, not a made-up $0.00, for a removed rule."""
    engine = engine_for({"rules": [SPIKE]})
    _spike(engine)
    record = engine.replace_rules(_rules(rules=[]))[0]

    facts = dict(content.facts(record, None))

    assert content.headline(record) == (
        "[RESOLVED] acme: spend-spike (rate of change, critical): rule spend-spike "
        "was removed from the rules, so its alert for tenant=acme is closed"
    )
    assert facts["Observed"] == "unknown"
    assert "Threshold" not in facts
