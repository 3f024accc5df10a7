"""Absolute tier, budgets: period-to-date spend or tokens against a limit.

Every event updates the totals of the periods it falls in, and each threshold of
each budget fires at most once per (tenant, budget, threshold, period): at the
event that crosses it. Budget alerts stay firing until their period ends, then
resolve. The comparison is exact because totals are ``Decimal`` sums.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

import msgspec

from detector.alerts import AlertRecord, Status, Unit, format_amount
from detector.config import Budget
from detector.lifecycle import AlertState, RecordBuilder
from detector.periods import PeriodSpec
from detector.state import PeriodTotal, TenantState
from detector.tiers.common import compare, make_key, split_key

_HUNDRED = Decimal(100)
_PREFIX = "budget"


@dataclass(frozen=True, slots=True)
class HotBudget:
    """A budget's fields that every event reads, copied out of the pydantic model.

    Reading a pydantic model's private attributes costs microseconds each, which
    the per-event path cannot afford.
    """

    budget: Budget
    id: str
    period: PeriodSpec
    values: tuple[tuple[Decimal, Decimal], ...]
    spend: bool
    comparison: str

    @classmethod
    def of(cls, budget: Budget) -> HotBudget:
        return cls(
            budget,
            budget.id,
            budget.period_spec,
            budget.threshold_values,
            budget.signal == "spend",
            budget.comparison,
        )


def add_and_check(
    state: TenantState,
    budgets: list[HotBudget],
    instant: datetime,
    instant_s: int,
    cost_usd: Decimal | None,
    tokens: int,
) -> list[AlertRecord]:
    """Add one request to its budget periods and fire the thresholds it crosses."""
    records: list[AlertRecord] = []
    for hot in budgets:
        total = state.period_total_s(hot.id, hot.period, instant_s)
        if cost_usd is not None:
            total.spend_usd += cost_usd
        total.tokens += tokens
        fired = len(total.fired_pct)
        if fired < len(hot.values):
            value = total.spend_usd if hot.spend else Decimal(total.tokens)
            if compare(value, hot.values[fired][1], hot.comparison):
                records.extend(_fire(state, hot.budget, total, instant))
    return records


def _fire(
    state: TenantState, budget: Budget, total: PeriodTotal, instant: datetime
) -> Iterator[AlertRecord]:
    value = total.value(budget.signal)
    for pct, limit in budget.threshold_values:
        if pct in total.fired_pct:
            continue
        if not compare(value, limit, budget.comparison):
            break
        total.fired_pct.add(pct)
        if state.budget_alert_end_s is None or total.end_s < state.budget_alert_end_s:
            state.budget_alert_end_s = total.end_s
        key = make_key(_PREFIX, budget.id, pct, total.start.isoformat())
        record = state.alerts.update(
            key, True, instant, _builder(state, budget, total, pct, value)
        )
        if record is not None:
            yield record


def resolve_ended(
    state: TenantState, budgets: list[Budget], now: datetime
) -> Iterator[AlertRecord]:
    """Resolve the budget alerts of periods that ended at or before ``now``."""
    state.budget_alert_end_s = None
    by_id = {budget.id: budget for budget in budgets}
    for key in state.alerts.keys_with_prefix(_PREFIX):
        _, budget_id, pct, start = split_key(key)
        budget = by_id.get(budget_id)
        total = state.periods.get(budget_id, {}).get(datetime.fromisoformat(start))
        if budget is None or total is None:
            continue
        if total.end > now:
            if state.budget_alert_end_s is None or total.end_s < state.budget_alert_end_s:
                state.budget_alert_end_s = total.end_s
            continue
        value = total.value(budget.signal)
        build = _builder(state, budget, total, Decimal(pct), value)
        record = state.alerts.update(key, False, now, build)
        if record is not None:
            yield record


def _builder(
    state: TenantState,
    budget: Budget,
    total: PeriodTotal,
    pct: Decimal,
    value: Decimal,
) -> RecordBuilder:
    unit: Unit = "usd" if budget.signal == "spend" else "tokens"
    limit = budget.limit * pct / _HUNDRED
    severity = budget.severity if pct >= _HUNDRED else "warning"
    local_start = total.start.astimezone(state.timezone).date()
    last_local_day = total.end.astimezone(state.timezone).date() - timedelta(days=1)

    def build(alert: AlertState, status: Status, now: datetime) -> AlertRecord:
        if status == "firing":
            summary = (
                f"{budget.period} {budget.signal} {format_amount(value, unit)} "
                f"reached {pct.normalize():f}% of the "
                f"{format_amount(budget.limit, unit)} budget {budget.id} "
                f"(period from {local_start}, {state.timezone.key})"
            )
        else:
            summary = (
                f"{budget.period} period of budget {budget.id} ended with {last_local_day}; "
                f"final {budget.signal} {format_amount(total.value(budget.signal), unit)}"
            )
        return AlertRecord(
            alert_id=alert.alert_id,
            status=status,
            tier="absolute",
            severity=severity,
            rule_id=budget.id,
            tenant=state.tenant,
            signal=budget.signal,
            unit=unit,
            observed=value if status == "firing" else total.value(budget.signal),
            threshold=limit,
            event_time=now,
            started_at=alert.started_at,
            summary=summary,
            series={"tenant": state.tenant},
            period_start=total.start,
            period_end=total.end,
            runbook_url=str(budget.runbook_url) if budget.runbook_url else None,
            labels=dict(budget.labels),
            details={"threshold_pct": f"{pct.normalize():f}", "period": budget.period},
        )

    return build


def resolve_uncrossed(
    state: TenantState, budgets: list[Budget], now: datetime
) -> list[AlertRecord]:
    """Resolve firing thresholds that the current totals no longer reach.

    Runs after the rules change: a raised limit moves a threshold above the
    period's total, so its alert resolves now instead of at the period end, and
    the threshold can fire again if the total reaches the new value.
    """
    records: list[AlertRecord] = []
    by_id = {budget.id: budget for budget in budgets}
    for key in state.alerts.keys_with_prefix(_PREFIX):
        _, budget_id, pct_text, start = split_key(key)
        budget = by_id.get(budget_id)
        total = state.periods.get(budget_id, {}).get(datetime.fromisoformat(start))
        if budget is None or total is None:
            continue
        pct = Decimal(pct_text)
        value = total.value(budget.signal)
        limit = budget.limit * pct / _HUNDRED
        if compare(value, limit, budget.comparison):
            continue
        total.fired_pct.discard(pct)
        record = state.alerts.update(key, False, now, _builder(state, budget, total, pct, value))
        if record is not None:
            unit: Unit = "usd" if budget.signal == "spend" else "tokens"
            summary = (
                f"{budget.period} {budget.signal} {format_amount(value, unit)} is below "
                f"{pct.normalize():f}% of the {format_amount(budget.limit, unit)} "
                f"budget {budget.id} after the budget changed"
            )
            records.append(msgspec.structs.replace(record, summary=summary, threshold=limit))
    return records
