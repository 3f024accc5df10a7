"""Tests of the budget API: decisions, answers, tokens and the audit log, without Kafka."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from detector.config import GatewayPolicy, RuleSet
from detector.engine import Engine
from detector.events import Event
from detector.pricing import Pricer
from detector.service.budget_api import (
    AuditLog,
    BudgetBoard,
    BudgetFigures,
    decide,
    respond,
    run_rate_forecast,
    token_matches,
)
from detector.service.budget_state import budget_state

TOKEN = "s3cret-token-for-tests"
POLICY = GatewayPolicy(
    warn_at_pct=Decimal(50),
    degrade_at_pct=Decimal(80),
    block_at_pct=Decimal(100),
    degrade_to={"gpt-4o": "gpt-4o-mini"},
)
RULES = RuleSet.model_validate(
    {
        "budgets": [
            {
                "id": "monthly",
                "tenant": "acme",
                "limit_usd": "10",
                "gateway": {
                    "warn_at_pct": 50,
                    "degrade_at_pct": 80,
                    "block_at_pct": 100,
                    "degrade_to": {"gpt-4o": "gpt-4o-mini"},
                },
            }
        ]
    }
)


@pytest.mark.parametrize(
    ("used", "forecast", "expected"),
    [
        ("0", None, "allow"),
        ("4.99", None, "allow"),
        ("5", None, "warn"),
        ("7.99", None, "warn"),
        ("8", None, "degrade"),
        ("9.99", None, "degrade"),
        ("10", None, "block"),
        ("25", None, "block"),
        ("1", "10", "warn"),
        ("1", "9.99", "allow"),
    ],
)
def test_decide_levels(used: str, forecast: str | None, expected: str) -> None:
    """Each used share and forecast of a $10 budget maps to its decision."""
    figures = BudgetFigures(
        Decimal(10), Decimal(used), Decimal(forecast) if forecast else None
    )

    decision = decide(figures, POLICY)

    assert decision == expected


def test_decide_default_policy_never_blocks() -> None:
    """A budget without a gateway section warns at 80 % and never degrades or blocks."""
    figures = BudgetFigures(Decimal(10), Decimal(50), None)

    decision = decide(figures, GatewayPolicy())

    assert decision == "warn"


def test_decide_forecast_warning_off() -> None:
    """With warn_on_forecast off, a forecast over the limit alone allows."""
    policy = GatewayPolicy(warn_on_forecast=False)

    decision = decide(BudgetFigures(Decimal(10), Decimal(1), Decimal(30)), policy)

    assert decision == "allow"


def test_policy_rejects_unordered_levels() -> None:
    """A block level below the warn level is invalid."""
    with pytest.raises(ValueError, match="levels must rise"):
        GatewayPolicy(warn_at_pct=Decimal(90), block_at_pct=Decimal(50))


def test_run_rate_forecast_projects_period() -> None:
    """$3 spent in the first 3 days of a 30-day period projects $30."""
    start = datetime(2026, 4, 1, tzinfo=UTC)
    end = datetime(2026, 5, 1, tzinfo=UTC)
    now = datetime(2026, 4, 4, tzinfo=UTC)

    forecast = run_rate_forecast(Decimal(3), start, end, now)

    assert forecast == Decimal(30)


def test_run_rate_forecast_too_early() -> None:
    """Ten minutes into a month give no projection."""
    start = datetime(2026, 4, 1, tzinfo=UTC)

    forecast = run_rate_forecast(
        Decimal(3), start, datetime(2026, 5, 1, tzinfo=UTC),
        datetime(2026, 4, 1, 0, 10, tzinfo=UTC),
    )

    assert forecast is None


def engine_with_spend(cost_usd: str) -> Engine:
    engine = Engine(RULES, Pricer(RULES.prices))
    engine.process(
        Event(
            # In the April 2026 period of the monthly budget.
            timestamp=datetime(2026, 4, 20, 12, tzinfo=UTC),
            request_id="r1",
            tenant="acme",
            provider="openai",
            request_model="gpt-4o",
            input_tokens=10,
            output_tokens=10,
            reported_cost_usd=Decimal(cost_usd),
        )
    )
    return engine


def board_for(tmp_path: Path, cost_usd: str) -> tuple[BudgetBoard, dict[str, Any]]:
    engine = engine_with_spend(cost_usd)
    board = BudgetBoard(AuditLog(tmp_path / "audit.jsonl"))
    view = budget_state(engine.tenants["acme"], RULES, engine)
    board.update(view, wall=datetime(2026, 4, 20, 12, 0, 1, tzinfo=UTC))
    return board, view


@pytest.mark.parametrize(
    ("cost_usd", "expected"),
    [("1", "allow"), ("6", "warn"), ("8.5", "degrade"), ("10", "block")],
)
def test_answer_for_each_decision(tmp_path: Path, cost_usd: str, expected: str) -> None:
    """The API returns the tenant's decision with spend, budget, forecast and period."""
    board, _ = board_for(tmp_path, cost_usd)

    status, body, outcome = respond(board, TOKEN, "acme", f"Bearer {TOKEN}")
    answer = json.loads(body)
    budget = answer["budgets"][0]

    assert status == 200
    assert outcome == expected
    assert answer["decision"] == expected
    assert budget["used"] == cost_usd
    assert budget["limit"] == "10"
    assert budget["period_start"] == "2026-04-01T00:00:00+00:00"
    assert budget["period_end"] == "2026-05-01T00:00:00+00:00"
    assert budget["forecast"] is not None
    if expected == "degrade":
        assert answer["degrade_to"] == {"gpt-4o": "gpt-4o-mini"}
    else:
        assert answer["degrade_to"] == {}


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x"],
)
def test_missing_or_wrong_token(tmp_path: Path, authorization: str | None) -> None:
    """A request without the exact bearer token gets 401 and no budget figures."""
    board, _ = board_for(tmp_path, "1")

    status, body, outcome = respond(board, TOKEN, "acme", authorization)

    assert status == 401
    assert outcome == "unauthorized"
    assert b"budgets" not in body


def test_unknown_tenant_not_found(tmp_path: Path) -> None:
    """A tenant without state on this worker gets 404 naming the tenant."""
    board, _ = board_for(tmp_path, "1")

    status, body, outcome = respond(board, TOKEN, "initech", f"Bearer {TOKEN}")

    assert status == 404
    assert outcome == "not_found"
    assert json.loads(body)["tenant"] == "initech"


def test_disabled_without_token(tmp_path: Path) -> None:
    """Without a configured token every request gets 503."""
    board, _ = board_for(tmp_path, "1")

    status, _, outcome = respond(board, None, "acme", "Bearer anything")

    assert status == 503
    assert outcome == "disabled"


def test_token_compare_scheme_case() -> None:
    """The Bearer scheme is case-insensitive, the token is not."""
    assert token_matches(f"bearer {TOKEN}", TOKEN)
    assert not token_matches(f"Bearer {TOKEN.upper()}", TOKEN)


def test_audit_logs_each_change(tmp_path: Path) -> None:
    """Changes allow to warn to block are audited once each; a repeat is not."""
    engine = engine_with_spend("1")
    board = BudgetBoard(AuditLog(tmp_path / "audit.jsonl"))
    state = engine.tenants["acme"]
    wall = datetime(2026, 4, 20, 12, tzinfo=UTC)

    board.update(budget_state(state, RULES, engine), wall)
    for index, cost in enumerate(("5", "0.5", "5")):
        engine.process(
            Event(
                timestamp=datetime(2026, 4, 20, 12, 1, tzinfo=UTC),
                request_id=f"r-{index}",
                tenant="acme", provider="openai", request_model="gpt-4o",
                input_tokens=1, output_tokens=1, reported_cost_usd=Decimal(cost),
            )
        )
        board.update(budget_state(state, RULES, engine), wall)
    lines = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]

    # $1 allow (not logged), $6 warn, $6.50 warn (same), $11.50 block.
    assert [(e["previous"], e["decision"]) for e in lines] == [
        ("allow", "warn"), ("warn", "block")
    ]
    assert lines[1]["used"] == "11.5"
    assert lines[1]["tenant"] == "acme"


def test_budget_state_orders_fired_thresholds() -> None:
    """$6, $3 and $2 of a $10 budget list 50, 80 and 100 by size, not as text."""
    rules = RuleSet.model_validate(
        {"budgets": [{"id": "monthly", "limit_usd": "10", "thresholds_pct": [50, 80, 100]}]}
    )
    engine = Engine(rules, Pricer(rules.prices))
    for index, cost in enumerate(("6", "3", "2")):
        engine.process(
            Event(
                timestamp=datetime(2026, 4, 20, 12, index, tzinfo=UTC),
                request_id=f"r-{index}",
                tenant="acme", provider="openai", request_model="gpt-4o",
                input_tokens=1, output_tokens=1, reported_cost_usd=Decimal(cost),
            )
        )

    view = budget_state(engine.tenants["acme"], rules, engine)

    assert view["budgets"][0]["thresholds_fired_pct"] == ["50", "80", "100"]
