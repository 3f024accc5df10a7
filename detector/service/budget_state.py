"""The per-tenant budget state published to the compacted budget-state topic.

Gateways keep a local copy of this topic to decide whether a tenant may send
more requests. One record per tenant holds every budget's current period.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from detector.config import RuleSet
from detector.engine import Engine
from detector.state import TenantState


def budget_state(state: TenantState, rules: RuleSet, engine: Engine) -> dict[str, Any]:
    """Return the tenant's current budget periods as a JSON-ready mapping."""
    watermark_s = engine.watermark_s or 0
    now = datetime.fromtimestamp(watermark_s, UTC)
    budgets = []
    for budget in rules.budgets_for(state.tenant):
        total = state.period_total(budget.id, budget.period, now)
        value = total.value(budget.signal)
        budgets.append(
            {
                "budget_id": budget.id,
                "period": budget.period,
                "period_start": total.start.isoformat(),
                "period_end": total.end.isoformat(),
                "signal": budget.signal,
                "used": str(value),
                "limit": str(budget.limit),
                "used_pct": str((value * 100 / budget.limit).quantize(1)) if budget.limit else None,
                "thresholds_fired_pct": sorted(f"{pct.normalize():f}" for pct in total.fired_pct),
            }
        )
    return {
        "tenant": state.tenant,
        "as_of": now.isoformat(),
        "timezone": state.timezone.key,
        "budgets": budgets,
    }
