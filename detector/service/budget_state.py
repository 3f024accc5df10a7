"""The per-tenant budget state published to the compacted budget-state topic.

Gateways keep a local copy of this topic to decide whether a tenant may send
more requests. One record per tenant holds every budget's current period, the
forecast of the period's total, and the gateway decision (allow, warn, degrade
or block) that ``detector.service.budget_api`` also returns over HTTP, so the
topic and the API never disagree.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from detector.config import Budget, RuleSet
from detector.engine import Engine
from detector.service.budget_api import (
    BudgetFigures,
    decide,
    run_rate_forecast,
    tenant_decision,
)
from detector.state import TenantState

# (tenant, budget id, period start in ISO 8601) -> model forecast of the total.
ForecastLookup = Callable[[str, str, str], Decimal | None]


def budget_state(
    state: TenantState,
    rules: RuleSet,
    engine: Engine,
    forecast_of: ForecastLookup | None = None,
) -> dict[str, Any]:
    """Return the tenant's current budget periods and decision as a JSON-ready mapping."""
    watermark_s = engine.watermark_s or 0
    now = datetime.fromtimestamp(watermark_s, UTC)
    budgets = [
        _budget_entry(state, budget, now, forecast_of)
        for budget in rules.budgets_for(state.tenant)
    ]
    return {
        "tenant": state.tenant,
        "as_of": now.isoformat(),
        "timezone": state.timezone.key,
        "budgets": budgets,
        **tenant_decision(budgets),
    }


def _budget_entry(
    state: TenantState,
    budget: Budget,
    now: datetime,
    forecast_of: ForecastLookup | None,
) -> dict[str, Any]:
    total = state.period_total(budget.id, budget.period_spec, now)
    value = total.value(budget.signal)
    start = total.start.isoformat()
    forecast = forecast_of(state.tenant, budget.id, start) if forecast_of else None
    method = "model" if forecast is not None else "run_rate"
    if forecast is None:
        forecast = run_rate_forecast(value, total.start, total.end, now)
    decision = decide(BudgetFigures(budget.limit, value, forecast), budget.gateway)
    return {
        "budget_id": budget.id,
        "period": budget.period,
        "period_start": start,
        "period_end": total.end.isoformat(),
        "signal": budget.signal,
        "used": str(value),
        "limit": str(budget.limit),
        "used_pct": str((value * 100 / budget.limit).quantize(1)) if budget.limit else None,
        "thresholds_fired_pct": [f"{pct.normalize():f}" for pct in sorted(total.fired_pct)],
        "forecast": str(forecast.quantize(Decimal("0.000001"))) if forecast is not None else None,
        "forecast_method": method if forecast is not None else None,
        "decision": decision,
        "degrade_to": dict(budget.gateway.degrade_to),
    }
