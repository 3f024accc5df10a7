"""The budget API that gateways call before each request: allow, warn, degrade or block.

``GET /v1/budget/{tenant}`` with ``Authorization: Bearer <BURNRATE_API_TOKEN>``
returns the tenant's decision and the figures behind it: used amount, limit,
forecast of the period's total, and the period. The decision of each budget
follows the budget's ``gateway`` policy in the rules (see
``detector.config.GatewayPolicy``). The tenant's decision is the most severe of
its budgets, and ``degrade`` comes with the model mapping to apply.

Responses come from memory. ``BudgetBoard.update`` runs when a tenant's state is
persisted, which already computes the budget-state record, and at the tick that
ends one of the tenant's budget periods. It stores the encoded response, so a
request costs a token compare and a dictionary lookup.
Each change of a tenant's decision is appended to a JSON lines audit log.

Status codes: 200 with the answer, 401 for a missing or wrong token, 404 for a
tenant this worker has no state for (no request seen, or its partition is
owned by another worker; gateways treat it as allow), 503 when no token is
configured.

TODO: with several replicas a gateway must call the tenant's owner or read the
budget-state topic; that ends when a worker forwards the request to the owner
of the tenant's partition (Faust's table_route).
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from detector.config import GatewayPolicy
from detector.forecast import MonthEndForecast
from detector.tiers.predictive import ForecastJob

logger = logging.getLogger("burnrate.budget_api")

Decision = Literal["allow", "warn", "degrade", "block"]
SEVERITY: dict[str, int] = {"allow": 0, "warn": 1, "degrade": 2, "block": 3}
JSON_CONTENT_TYPE = "application/json"
# The run rate is not projected from less than this share of a period, because
# the first minutes of a day predict little of the rest.
_MIN_ELAPSED_FRACTION = Decimal("0.02")


@dataclass(frozen=True, slots=True)
class BudgetFigures:
    """One budget's current period, as the decision needs it."""

    limit: Decimal
    used: Decimal
    forecast: Decimal | None


def decide(figures: BudgetFigures, policy: GatewayPolicy) -> Decision:
    """Return the decision for one budget from its used share and forecast."""
    if figures.limit > 0:
        used_pct = figures.used * 100 / figures.limit
    else:
        used_pct = Decimal("Infinity") if figures.used > 0 else Decimal(0)
    if policy.block_at_pct is not None and used_pct >= policy.block_at_pct:
        return "block"
    if policy.degrade_at_pct is not None and used_pct >= policy.degrade_at_pct:
        return "degrade"
    if policy.warn_at_pct is not None and used_pct >= policy.warn_at_pct:
        return "warn"
    forecast = figures.forecast
    if policy.warn_on_forecast and forecast is not None and forecast >= figures.limit > 0:
        return "warn"
    return "allow"


def run_rate_forecast(
    used: Decimal, period_start: datetime, period_end: datetime, now: datetime
) -> Decimal | None:
    """Project the period's total from the run rate so far, or None this early."""
    length_s = Decimal((period_end - period_start).total_seconds())
    elapsed_s = Decimal((now - period_start).total_seconds())
    if length_s <= 0 or elapsed_s < length_s * _MIN_ELAPSED_FRACTION:
        return None
    return used * length_s / min(elapsed_s, length_s)


def tenant_decision(budgets: list[dict[str, Any]]) -> dict[str, Any]:
    """Return the tenant-level fields: the decision, its budget and the model mapping.

    The binding budget is the one with the most severe decision, then the
    highest used share.
    """
    if not budgets:
        return {"decision": "allow", "binding_budget": None, "degrade_to": {}}
    binding: dict[str, Any] = max(
        budgets,
        key=lambda b: (SEVERITY[b["decision"]], Decimal(b["used_pct"] or "0")),
    )
    degrade_to: dict[str, str] = {}
    for entry in budgets:
        if entry["decision"] == "degrade":
            degrade_to.update(entry["degrade_to"])
    decision = binding["decision"]
    return {
        "decision": decision,
        "binding_budget": binding["budget_id"],
        "degrade_to": degrade_to if decision == "degrade" else {},
    }


class AuditLog:
    """Append-only JSON lines file of decision changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, entry: Mapping[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as file:
            file.write(json.dumps(entry, sort_keys=True) + "\n")


class BudgetBoard:
    """The latest response per tenant, its forecasts, and the audit of changes."""

    def __init__(self, audit: AuditLog, metrics: Any = None) -> None:
        self.audit = audit
        self.metrics = metrics
        self._answers: dict[str, tuple[bytes, str]] = {}
        self._decisions: dict[str, str] = {}
        self._forecasts: dict[tuple[str, str, str], Decimal] = {}

    def record_forecast(self, job: ForecastJob, result: MonthEndForecast) -> None:
        """Keep the model forecast of a budget period for the next responses."""
        key = (job.tenant, job.budget.id, job.period_start.isoformat())
        self._forecasts[key] = result.month_end_usd

    def forecast_of(self, tenant: str, budget_id: str, period_start: str) -> Decimal | None:
        """Return the model forecast of a period, if one was fitted."""
        return self._forecasts.get((tenant, budget_id, period_start))

    def update(
        self,
        view: Mapping[str, Any],
        wall: datetime | None = None,
        body: bytes | None = None,
    ) -> None:
        """Store a tenant's budget-state record as its response and audit a changed decision.

        ``body`` is the record already encoded as JSON, which spares encoding it twice.
        """
        tenant = view["tenant"]
        decision = view["decision"]
        encoded = body if body is not None else json.dumps(view).encode()
        self._answers[tenant] = (encoded, decision)
        previous = self._decisions.get(tenant)
        if previous == decision or (previous is None and decision == "allow"):
            self._decisions[tenant] = decision
            return
        self._decisions[tenant] = decision
        self._audit_change(view, previous, wall or datetime.now(UTC))

    def restore(self, view: Mapping[str, Any]) -> None:
        """Store the response of a tenant restored from the table, without an audit entry.

        The decision was audited when it changed under the previous owner.
        """
        tenant = view["tenant"]
        self._answers[tenant] = (json.dumps(view).encode(), view["decision"])
        self._decisions[tenant] = view["decision"]

    def _audit_change(
        self, view: Mapping[str, Any], previous: str | None, wall: datetime
    ) -> None:
        binding: dict[str, Any] = next(
            (b for b in view["budgets"] if b["budget_id"] == view["binding_budget"]), {}
        )
        entry = {
            "time": wall.isoformat(),
            "tenant": view["tenant"],
            "previous": previous,
            "decision": view["decision"],
            "budget_id": view["binding_budget"],
            "used": binding.get("used"),
            "limit": binding.get("limit"),
            "forecast": binding.get("forecast"),
            "period_start": binding.get("period_start"),
            "degrade_to": view["degrade_to"],
            "as_of": view["as_of"],
        }
        try:
            self.audit.write(entry)
        except OSError as error:
            logger.error(
                "budget decision audit write failed: %s", error,
                extra={"tenant": view["tenant"], "path": str(self.audit.path)},
            )
        logger.info(
            "budget decision changed from %s to %s", previous, view["decision"],
            extra={"tenant": view["tenant"], "budget_id": view["binding_budget"]},
        )
        if self.metrics is not None:
            self.metrics.count_decision_change(view["decision"])

    def answer(self, tenant: str) -> tuple[bytes, str] | None:
        """Return the encoded answer and decision of a tenant, or None if unknown here."""
        return self._answers.get(tenant)


def token_matches(authorization: str | None, token: str) -> bool:
    """Compare a ``Bearer`` header with the token in constant time."""
    if not authorization:
        return False
    scheme, _, presented = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(presented.strip().encode(), token.encode())


def respond(
    board: BudgetBoard, token: str | None, tenant: str, authorization: str | None
) -> tuple[int, bytes, str]:
    """Return the status, body and outcome label of one budget API request."""
    if token is None:
        body = {"error": "budget API disabled: set BURNRATE_API_TOKEN to enable it"}
        return 503, json.dumps(body).encode(), "disabled"
    if not token_matches(authorization, token):
        body = {"error": "missing or invalid bearer token"}
        return 401, json.dumps(body).encode(), "unauthorized"
    answer = board.answer(tenant)
    if answer is None:
        body = {
            "error": f"tenant {tenant!r} not found: this worker holds no spend for it",
            "tenant": tenant,
        }
        return 404, json.dumps(body).encode(), "not_found"
    body_bytes, decision = answer
    return 200, body_bytes, decision


def register_page(app: Any, board: BudgetBoard, token: str | None) -> None:
    """Add ``GET /v1/budget/{tenant}`` to the Faust web server."""

    @app.page("/v1/budget/{tenant}")  # type: ignore[untyped-decorator]
    async def budget(web: Any, request: Any, tenant: str) -> Any:
        authorization = request.headers.get("Authorization")
        status, body, outcome = respond(board, token, tenant, authorization)
        if board.metrics is not None:
            board.metrics.count_budget_request(outcome)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return web.bytes(
            body, content_type=JSON_CONTENT_TYPE, status=status, headers=headers
        )
