"""Predictive tier: the period-end spend forecast against the budget.

Planning and concluding are split so the model fit in between can run wherever
the caller likes: inline in a backtest, in an executor in the service. Each
tenant is forecast at most once per local day, after the day completes, on the
daily totals of its time zone with idle days as zeros.

Between refits the forecast is a cheap update: the engine keeps the parameters
of each tenant's last accepted fit (``MonthEndForecast.fitted``) and hands them
to the next job, which re-runs the smoothing recursions over the history since
the fit's first day instead of re-optimising. A fit older than ``REFIT_DAYS``
days is refitted on the trailing ``history_days``. The parameters live only in
memory, so a restart or a partition move starts with a refit.

A fit is skipped while the run-rate projection for the period stays below
``SCREEN_SHARE`` of the budget: a forecast that far below cannot reach the budget
within the checks the forecaster applies, and skipping it keeps thousands of
quiet tenants cheap. A tenant whose alert is firing is forecast all the same, so
the alert resolves once the forecast is back within the budget.

An alert belongs to one budget period. When the period ends it resolves with the
period's final spend (``close_ended``): the next period's forecast is a new alert.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from detector.alerts import UNKNOWN_OBSERVED, AlertRecord, Status, format_amount
from detector.config import Budget, ForecastRule
from detector.forecast import FittedModel, MonthEndForecast, forecast_period_end
from detector.lifecycle import AlertState, RecordBuilder
from detector.periods import last_day, local_date, period_bounds
from detector.state import PeriodTotal, TenantState
from detector.tiers.common import compare, make_key, split_key

SCREEN_SHARE = Decimal("0.5")
# A weekly refit tracks changes in the weekly pattern; the daily updates between
# refits keep the level current.
REFIT_DAYS = 7
_RUN_RATE_DAYS = 7
_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class ForecastJob:
    """The inputs of one fit, taken from state at planning time."""

    tenant: str
    rule: ForecastRule
    budget: Budget
    period_start: datetime
    daily_usd: tuple[Decimal, ...]
    last_day: date
    period_end: date
    spent_to_date_usd: Decimal
    today_usd: Decimal
    # The parameters to update with, or None for a full refit.
    fitted: FittedModel | None = None

    def run(self) -> MonthEndForecast:
        return forecast_period_end(
            self.daily_usd,
            self.last_day,
            self.period_end,
            self.spent_to_date_usd,
            self.today_usd,
            seasonal=self.rule.model,
            interval_pct=self.rule.interval_pct,
            history_days=self.rule.history_days,
            fitted=self.fitted,
        )


def plan(
    state: TenantState,
    rule: ForecastRule,
    budget: Budget,
    now: datetime,
    fitted: FittedModel | None = None,
) -> ForecastJob | None:
    """Return the fit due for this tenant at ``now``, if one is due.

    ``fitted`` is the tenant's last accepted fit for this rule. The job updates it
    while it is younger than ``REFIT_DAYS`` and the state still contains its
    history, and refits otherwise.
    """
    if budget.limit_usd is None or not state.daily_usd:
        return None
    today = local_date(now, state.timezone)
    if state.fitted_day.get(rule.id) == today:
        return None
    state.fitted_day[rule.id] = today

    first = min(state.daily_usd)
    yesterday = today - timedelta(days=1)
    if yesterday < first:
        return None
    total = state.period_total(budget.id, budget.period_spec, now)
    period_last = last_day(
        total.start.astimezone(state.timezone).date(), budget.period_spec
    )
    start = max(first, yesterday - timedelta(days=rule.history_days - 1))
    if fitted is not None and _updatable(fitted, first, yesterday):
        start = fitted.first_day
    else:
        fitted = None
    days = _daily(state, start, yesterday)
    projection = _run_rate_projection(days, total, yesterday, period_last)
    firing = state.alerts.is_firing(_key(rule, budget, total.start))
    if projection < budget.limit_usd * SCREEN_SHARE and not firing:
        return None
    return ForecastJob(
        tenant=state.tenant,
        rule=rule,
        budget=budget,
        period_start=total.start,
        daily_usd=days,
        last_day=yesterday,
        period_end=period_last,
        spent_to_date_usd=total.spend_usd,
        today_usd=state.daily_usd.get(today, _ZERO),
        fitted=fitted,
    )


def conclude(
    state: TenantState, job: ForecastJob, forecast: MonthEndForecast, now: datetime
) -> AlertRecord | None:
    """Compare a finished forecast with the budget and update the alert."""
    limit = job.budget.limit_usd or _ZERO
    edge = forecast.edge(job.rule.edge)
    active = compare(edge, limit, job.budget.comparison)
    key = _key(job.rule, job.budget, job.period_start)
    build = _builder(state, job, forecast, edge, limit)
    return state.alerts.update(
        key, active, now, build, repeat_s=job.rule.repeat_interval_s
    )


def close_ended(
    state: TenantState, rule: ForecastRule, budget: Budget, now: datetime
) -> list[AlertRecord]:
    """Resolve the rule's alerts of budget periods that ended before ``now``."""
    prefix = make_key("forecast", rule.id, budget.id, "")
    records = []
    for key in state.alerts.keys_with_prefix(prefix):
        start = datetime.fromisoformat(split_key(key)[-1])
        end = period_bounds(start, state.timezone, budget.period_spec)[1]
        if end > now:
            continue
        total = state.periods.get(budget.id, {}).get(start)
        build = _ended_builder(state, rule, budget, start, end, total)
        record = state.alerts.update(key, False, now, build)
        if record is not None:
            records.append(record)
    return records


def _key(rule: ForecastRule, budget: Budget, period_start: datetime) -> str:
    return make_key("forecast", rule.id, budget.id, period_start.isoformat())


def _ended_builder(
    state: TenantState,
    rule: ForecastRule,
    budget: Budget,
    start: datetime,
    end: datetime,
    total: PeriodTotal | None,
) -> RecordBuilder:
    """Build the resolved record of an alert whose budget period has ended."""
    limit = budget.limit_usd or _ZERO
    first = local_date(start, state.timezone)
    last = local_date(end, state.timezone) - timedelta(days=1)

    def build(alert: AlertState, status: Status, now: datetime) -> AlertRecord:
        if total is not None:
            spent = (
                f"ended with {format_amount(total.spend_usd, 'usd')} spent against "
                f"the {format_amount(limit, 'usd')} budget {budget.id}"
            )
        else:
            spent = f"of the {format_amount(limit, 'usd')} budget {budget.id} ended"
        summary = f"{budget.period} period {first} to {last} {spent}, so its forecast alert is closed"
        return closed_record(
            state, rule, alert, now, summary, start, total, limit, period_end=end
        )

    return build


def closed_record(
    state: TenantState,
    rule: ForecastRule,
    alert: AlertState,
    now: datetime,
    summary: str,
    period_start: datetime,
    total: PeriodTotal | None,
    limit: Decimal | None,
    *,
    period_end: datetime | None = None,
) -> AlertRecord:
    """Return the resolved record of a forecast alert that no forecast will resolve.

    Its period ended, or a reload removed its rule. The period's spend is the
    observed value when the state still contains it.
    """
    details = {} if total is not None else dict(UNKNOWN_OBSERVED)
    if rule.summary:
        details["description"] = rule.summary
    return AlertRecord(
        alert_id=alert.alert_id,
        status="resolved",
        tier="predictive",
        severity=rule.severity,
        rule_id=rule.id,
        tenant=state.tenant,
        signal="spend",
        unit="usd",
        observed=total.spend_usd if total is not None else _ZERO,
        threshold=limit,
        event_time=now,
        started_at=alert.started_at,
        summary=summary,
        series={"tenant": state.tenant},
        period_start=period_start,
        period_end=period_end,
        runbook_url=str(rule.runbook_url) if rule.runbook_url else None,
        labels=dict(rule.labels),
        details=details,
    )


def _updatable(fitted: FittedModel, first: date, yesterday: date) -> bool:
    age_days = (yesterday - fitted.fitted_through).days
    return 0 <= age_days < REFIT_DAYS and fitted.first_day >= first


def _daily(state: TenantState, first: date, last: date) -> tuple[Decimal, ...]:
    count = (last - first).days + 1
    return tuple(
        state.daily_usd.get(first + timedelta(days=offset), _ZERO)
        for offset in range(count)
    )


def _run_rate_projection(
    days: tuple[Decimal, ...], total: PeriodTotal, yesterday: date, period_last: date
) -> Decimal:
    recent = days[-_RUN_RATE_DAYS:]
    per_day = sum(recent, _ZERO) / len(recent)
    remaining = (period_last - yesterday).days
    return total.spend_usd + per_day * remaining


def _builder(
    state: TenantState,
    job: ForecastJob,
    forecast: MonthEndForecast,
    edge: Decimal,
    limit: Decimal,
) -> RecordBuilder:
    spent_out = job.spent_to_date_usd >= limit
    exhausted = (
        None if spent_out else forecast.exhaustion_day(job.spent_to_date_usd, limit)
    )
    method = forecast.method + (" (low confidence)" if forecast.low_confidence else "")

    def build(alert: AlertState, status: Status, now: datetime) -> AlertRecord:
        interval = (
            f"{forecast.interval_pct}% interval "
            f"{format_amount(forecast.lower_usd, 'usd')} to "
            f"{format_amount(forecast.upper_usd, 'usd')}"
        )
        if status == "firing":
            over = format_amount(edge - limit, "usd")
            if spent_out:
                runs_out = "; the budget is already used up"
            elif exhausted:
                runs_out = f"; budget projected to run out on {exhausted}"
            else:
                runs_out = ""
            summary = (
                f"{job.budget.period} spend forecast for {job.period_end} is "
                f"{format_amount(forecast.month_end_usd, 'usd')} ({interval}, {method}); "
                f"the {job.rule.edge} edge exceeds the "
                f"{format_amount(limit, 'usd')} budget {job.budget.id} by {over}"
                f"{runs_out}"
            )
        else:
            summary = (
                f"{job.budget.period} spend forecast for {job.period_end} is "
                f"{format_amount(forecast.month_end_usd, 'usd')} ({interval}), and "
                f"the {job.rule.edge} edge is back within the "
                f"{format_amount(limit, 'usd')} budget {job.budget.id}"
            )
        details = {
            "method": forecast.method,
            "low_confidence": str(forecast.low_confidence).lower(),
        }
        if exhausted:
            details["exhaustion_day"] = exhausted.isoformat()
        if forecast.fitted is not None:
            # The last day of the history the model parameters were estimated on.
            # A day before the forecast's last history day means a cheap update.
            details["fitted_through"] = forecast.fitted.fitted_through.isoformat()
        if forecast.fallback_reason:
            details["fallback_reason"] = forecast.fallback_reason
        if job.rule.summary:
            details["description"] = job.rule.summary
        return AlertRecord(
            alert_id=alert.alert_id,
            status=status,
            tier="predictive",
            severity=job.rule.severity,
            rule_id=job.rule.id,
            tenant=state.tenant,
            signal="spend",
            unit="usd",
            observed=job.spent_to_date_usd,
            threshold=limit,
            forecast=forecast.month_end_usd,
            forecast_lower=forecast.lower_usd,
            forecast_upper=forecast.upper_usd,
            interval_pct=forecast.interval_pct,
            event_time=now,
            started_at=alert.started_at,
            summary=summary,
            series={"tenant": state.tenant},
            period_start=job.period_start,
            runbook_url=str(job.rule.runbook_url) if job.rule.runbook_url else None,
            labels=dict(job.rule.labels),
            repeat=alert.repeats if status == "firing" else 0,
            details=details,
        )

    return build
