"""Reconciliation against a loopback Anthropic Admin API cost report."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from detector.reconcile import ReconcileSettings, SpendKey, run_reconciliation
from detector.reconcile.settings import AnthropicSettings, RetrySettings
from tests.reconcile.conftest import SleepRecorder
from tests.reconcile.servers import FakeAnthropic, closed_port_url, serve

DAY = date(2026, 7, 30)
# The day ended 2026-07-31T00:00Z; 48 h later it is settled (settle_s is 12 h).
SETTLED = datetime.fromisoformat("2026-08-02T00:00:00Z")
ENVIRON = {"ANTHROPIC_ADMIN_KEY": "sk-ant-admin-loopback"}
SONNET = "claude-sonnet-4-20250514"
HAIKU = "claude-haiku-4-5-20251001"


def settings(base_url: str, **extra: Any) -> ReconcileSettings:
    return ReconcileSettings(
        anthropic=AnthropicSettings(base_url=base_url),
        retry=RetrySettings(max_attempts=3),
        **extra,
    )


def token_cost(model: str, workspace: str | None, cents: str) -> dict[str, Any]:
    return {
        "currency": "USD",
        "amount": cents,
        "workspace_id": workspace,
        "description": f"{model} input tokens",
        "cost_type": "tokens",
        "context_window": "0-200k",
        "model": model,
        "service_tier": "standard",
        "token_type": "uncached_input_tokens",
    }


def fake_with_day() -> FakeAnthropic:
    """2026-07-30: Sonnet $12.50 in wrkspc_acme, Haiku $0.75 in the default
    workspace, and $0.40 of web search that metering cannot see."""
    fake = FakeAnthropic()
    fake.costs[DAY] = [
        token_cost(SONNET, "wrkspc_acme", "1000.00"),
        token_cost(SONNET, "wrkspc_acme", "250"),
        token_cost(HAIKU, None, "75.0"),
        {
            "currency": "USD",
            "amount": "40",
            "workspace_id": "wrkspc_acme",
            "description": "Web search",
            "cost_type": "web_search",
            "model": None,
        },
    ]
    return fake


def metered(sonnet: str, haiku: str) -> dict[SpendKey, Decimal]:
    return {
        SpendKey(DAY, "anthropic", SONNET, "wrkspc_acme"): Decimal(sonnet),
        SpendKey(DAY, "anthropic", HAIKU, "(default workspace)"): Decimal(haiku),
    }


def test_matching_day(sleeps: SleepRecorder) -> None:
    """Token costs per model and workspace match; web search is left out."""
    fake = fake_with_day()

    with serve(fake) as url:
        [outcome] = run_reconciliation(
            DAY,
            metered("12.50", "0.75"),
            settings(url),
            SETTLED,
            environ=ENVIRON,
            sleep=sleeps,
        )

    assert outcome.status == "match"
    assert outcome.alert is None
    # Cents strings: 1000.00 + 250 + 75.0 cents is $13.25 exactly.
    assert outcome.reported_usd == Decimal("13.25")
    lines = {(line.model, line.project): line.reported_usd for line in outcome.lines}
    assert lines == {
        (HAIKU, "(default workspace)"): Decimal("0.75"),
        (SONNET, "wrkspc_acme"): Decimal("12.50"),
    }


def test_pagination_and_headers(sleeps: SleepRecorder) -> None:
    """All pages are read, with the admin key, version and grouping sent."""
    fake = fake_with_day()

    with serve(fake) as url:
        run_reconciliation(
            DAY,
            metered("12.50", "0.75"),
            settings(url),
            SETTLED,
            environ=ENVIRON,
            sleep=sleeps,
        )

    # Four results in pages of two.
    assert len(fake.requests) == 2
    first, second = fake.requests
    assert first.headers["x-api-key"] == "sk-ant-admin-loopback"
    assert first.headers["anthropic-version"] == "2023-06-01"
    assert first.query["starting_at"] == ["2026-07-30T00:00:00Z"]
    assert first.query["ending_at"] == ["2026-07-31T00:00:00Z"]
    assert first.query["group_by[]"] == ["workspace_id", "description"]
    assert "page" not in first.query
    assert len(second.query["page"]) == 1


def test_mismatching_day(sleeps: SleepRecorder) -> None:
    """Metered Haiku spend with no reported cost makes that line and the day differ."""
    fake = fake_with_day()
    spend = metered("12.50", "0.75")
    spend[SpendKey(DAY, "anthropic", HAIKU, "wrkspc_acme")] = Decimal("2.00")

    with serve(fake) as url:
        [outcome] = run_reconciliation(
            DAY, spend, settings(url), SETTLED, environ=ENVIRON, sleep=sleeps
        )

    assert outcome.status == "mismatch"
    alert = outcome.alert
    assert alert is not None
    assert alert.rule_id == "reconcile:anthropic"
    assert alert.tier == "predictive"
    assert alert.observed == Decimal("15.25")
    assert alert.baseline == Decimal("13.25")
    assert "1 of 3 lines differ" in alert.summary
    key = f"line model={HAIKU} project=wrkspc_acme"
    assert alert.details[key] == "DIFFERS: metered $2.00, reported $0.00 (reported $0)"
    assert alert.details["excluded_usd"] == "0.40"


def test_model_names_mapped(sleeps: SleepRecorder) -> None:
    """A metered model alias is mapped to the report's model name before comparing."""
    fake = fake_with_day()
    spend = {
        SpendKey(DAY, "anthropic", "claude-sonnet-4", "wrkspc_acme"): Decimal("12.5"),
        SpendKey(DAY, "anthropic", HAIKU, "(default workspace)"): Decimal("0.75"),
    }
    mapped = settings("", models={"anthropic": {"claude-sonnet-4": SONNET}})

    with serve(fake) as url:
        config = mapped.model_copy(
            update={"anthropic": AnthropicSettings(base_url=url)}
        )
        [outcome] = run_reconciliation(
            DAY, spend, config, SETTLED, environ=ENVIRON, sleep=sleeps
        )

    assert outcome.status == "match"


def test_unreachable_provider(sleeps: SleepRecorder) -> None:
    """A provider that refuses connections is an error with a warning alert."""
    url = closed_port_url()

    [outcome] = run_reconciliation(
        DAY,
        metered("12.50", "0.75"),
        settings(url),
        SETTLED,
        environ=ENVIRON,
        sleep=sleeps,
    )

    assert outcome.status == "error"
    assert outcome.alert is not None
    assert outcome.alert.severity == "warning"
    assert outcome.alert.rule_id == "reconcile:anthropic"
    assert outcome.alert.details["metered_usd"] == "13.25"
    assert sleeps.waits == [2.0, 4.0]


def test_rate_limit_retry_after(sleeps: SleepRecorder) -> None:
    """A 429 with Retry-After: 7 is waited out once and the day compared."""
    fake = fake_with_day()
    fake.throttle = 1

    with serve(fake) as url:
        [outcome] = run_reconciliation(
            DAY,
            metered("12.50", "0.75"),
            settings(url),
            SETTLED,
            environ=ENVIRON,
            sleep=sleeps,
        )

    assert outcome.status == "match"
    assert sleeps.waits == [7.0]


def test_rate_limit_without_retry_after(sleeps: SleepRecorder) -> None:
    """A 429 without Retry-After backs off from backoff_s, doubling."""
    fake = fake_with_day()
    fake.throttle = 2
    fake.retry_after = None

    with serve(fake) as url:
        [outcome] = run_reconciliation(
            DAY,
            metered("12.50", "0.75"),
            settings(url),
            SETTLED,
            environ=ENVIRON,
            sleep=sleeps,
        )

    assert outcome.status == "match"
    assert sleeps.waits == [2.0, 4.0]


def test_partial_day_not_compared(sleeps: SleepRecorder) -> None:
    """The current day is partial and raises no alert whatever the amounts."""
    fake = fake_with_day()
    # 2026-07-30T18:00Z is inside the day itself.
    now = datetime.fromisoformat("2026-07-30T18:00:00Z")

    with serve(fake) as url:
        [outcome] = run_reconciliation(
            DAY,
            metered("1.00", "0.75"),
            settings(url),
            now,
            environ=ENVIRON,
            sleep=sleeps,
        )

    assert outcome.status == "partial"
    assert outcome.alert is None
    assert outcome.reported_usd == Decimal("13.25")


def test_wrong_version_is_error(sleeps: SleepRecorder) -> None:
    """An API error answer is an error result naming the HTTP status."""
    fake = fake_with_day()
    fake.version = "2099-01-01"

    with serve(fake) as url:
        [outcome] = run_reconciliation(
            DAY,
            metered("12.50", "0.75"),
            settings(url),
            SETTLED,
            environ=ENVIRON,
            sleep=sleeps,
        )

    assert outcome.status == "error"
    assert "HTTP 400" in outcome.reason
