"""The per-tenant budget state published to the compacted budget-state topic.

Gateways keep a local copy of this topic to decide whether a tenant may send
more requests. One record per tenant holds every budget's current period, the
forecast of the period's total, and the gateway decision (allow, warn, degrade
or block) that ``detector.service.budget_api`` also returns over HTTP, so the
topic and the API never disagree. A tenant's record is published after each
batch that changes the tenant, and again at the tick that ends one of its
periods (``PeriodEnds``), so a silent tenant's decision follows the new period.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping
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


class PeriodEnds:
    """The earliest budget period end in each tenant's published state.

    A published decision is valid only until one of its periods ends. After
    midnight, a tenant blocked the day before has a new day's spend of 0. A
    tenant that sends nothing more is not republished by events, so the
    service's tick republishes each tenant returned by ``due``. Tenants are kept
    in a heap by period end, so a tick only compares the earliest end.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[int, str]] = []
        self._end_s: dict[str, int] = {}

    def note(self, view: Mapping[str, Any]) -> None:
        """Record when the periods of a tenant's just-published state end."""
        tenant = view["tenant"]
        ends_s = [
            int(datetime.fromisoformat(entry["period_end"]).timestamp())
            for entry in view["budgets"]
        ]
        if not ends_s:
            self._end_s.pop(tenant, None)
            return
        end_s = min(ends_s)
        if self._end_s.get(tenant) == end_s:
            return
        self._end_s[tenant] = end_s
        heapq.heappush(self._heap, (end_s, tenant))

    def due(self, now_s: int) -> list[str]:
        """Remove and return the tenants whose recorded period end is at or before ``now_s``."""
        tenants: list[str] = []
        while self._heap and self._heap[0][0] <= now_s:
            end_s, tenant = heapq.heappop(self._heap)
            # An entry whose tenant was noted again since then is out of date.
            if self._end_s.get(tenant) == end_s:
                del self._end_s[tenant]
                tenants.append(tenant)
        return tenants
