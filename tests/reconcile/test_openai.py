"""Reconciliation against a loopback OpenAI organization costs and usage API."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from detector.reconcile import ReconcileSettings, SpendKey, run_reconciliation
from detector.reconcile.settings import OpenAISettings, RetrySettings
from tests.reconcile.conftest import SleepRecorder
from tests.reconcile.servers import FakeOpenAI, closed_port_url, serve

DAY = date(2026, 7, 30)
# The day ended 2026-07-31T00:00Z; 48 h later it is settled (settle_s is 12 h).
SETTLED = datetime.fromisoformat("2026-08-02T00:00:00Z")
ENVIRON = {"OPENAI_ADMIN_KEY": "sk-admin-loopback"}


def settings(base_url: str, **retry: float) -> ReconcileSettings:
    return ReconcileSettings(
        openai=OpenAISettings(base_url=base_url),
        retry=RetrySettings(**retry),  # type: ignore[arg-type]
    )


def fake_with_day() -> FakeOpenAI:
    """Costs for 2026-07-30: acme $12.50 in two line items, globex $3.20."""
    fake = FakeOpenAI()
    fake.costs[DAY] = [
        ("proj_acme", "gpt-4o-2024-08-06, input", "10.00"),
        ("proj_acme", "gpt-4o-2024-08-06, output", "2.50"),
        ("proj_globex", "gpt-4o-mini-2024-07-18, input", "3.2"),
    ]
    fake.usage[DAY] = [
        {
            "object": "organization.usage.completions.result",
            "input_tokens": 1000,
            "output_tokens": 500,
            "input_cached_tokens": 800,
            "num_model_requests": 5,
            "project_id": "proj_acme",
            "model": "gpt-4o-2024-08-06",
        }
    ]
    return fake


def metered(acme: str, globex: str) -> dict[SpendKey, Decimal]:
    return {
        SpendKey(DAY, "openai", "gpt-4o-2024-08-06", "proj_acme"): Decimal(acme),
        SpendKey(DAY, "openai", "gpt-4o-mini-2024-07-18", "proj_globex"): Decimal(
            globex
        ),
        # Another provider and another day are not part of this comparison.
        SpendKey(DAY, "anthropic", "claude", "proj_acme"): Decimal(99),
        SpendKey(date(2026, 7, 29), "openai", "gpt-4o", "proj_acme"): Decimal(99),
    }


def test_matching_day(sleeps: SleepRecorder) -> None:
    """Metered spend within 3 % of OpenAI's costs matches and raises no alert."""
    fake = fake_with_day()

    with serve(fake) as url:
        [outcome] = run_reconciliation(
            DAY,
            metered("12.45", "3.20"),
            settings(url),
            SETTLED,
            environ=ENVIRON,
            sleep=sleeps,
        )

    assert outcome.status == "match"
    assert outcome.alert is None
    assert outcome.reported_usd == Decimal("15.70")
    assert outcome.metered_usd == Decimal("15.65")
    assert [(line.project, line.reported_usd) for line in outcome.lines] == [
        ("proj_acme", Decimal("12.50")),
        ("proj_globex", Decimal("3.2")),
    ]
    assert sleeps.waits == []


def test_pagination_and_request_shape(sleeps: SleepRecorder) -> None:
    """Every page is read, and requests carry the bearer key, range and grouping."""
    fake = fake_with_day()

    with serve(fake) as url:
        run_reconciliation(
            DAY,
            metered("12.50", "3.20"),
            settings(url),
            SETTLED,
            environ=ENVIRON,
            sleep=sleeps,
        )

    cost_requests = [r for r in fake.requests if r.path == "/v1/organization/costs"]
    # Three results in pages of two: two pages, the second with the page token.
    assert len(cost_requests) == 2
    assert "page" not in cost_requests[0].query
    assert cost_requests[1].query["page"] != []
    first = cost_requests[0].query
    # 2026-07-30T00:00Z is 1785369600 s after the epoch.
    assert first["start_time"] == ["1785369600"]
    assert first["end_time"] == ["1785456000"]
    assert first["group_by"] == ["project_id"]
    usage = [r for r in fake.requests if r.path.endswith("/usage/completions")]
    assert usage[0].query["group_by"] == ["model", "project_id"]


def test_amounts_parsed_exactly(sleeps: SleepRecorder) -> None:
    """JSON amounts 0.1 and 0.2 sum to exactly 0.3, as no float is involved."""
    fake = FakeOpenAI()
    fake.costs[DAY] = [("proj_acme", "a", "0.1"), ("proj_acme", "b", "0.2")]
    spend = {SpendKey(DAY, "openai", "gpt-4o", "proj_acme"): Decimal("0.3")}

    with serve(fake) as url:
        [outcome] = run_reconciliation(
            DAY, spend, settings(url), SETTLED, environ=ENVIRON, sleep=sleeps
        )

    assert outcome.reported_usd == Decimal("0.3")
    assert outcome.status == "match"


def test_mismatching_day(sleeps: SleepRecorder) -> None:
    """Metered acme spend 10 % over OpenAI's costs raises a predictive alert."""
    fake = fake_with_day()

    with serve(fake) as url:
        [outcome] = run_reconciliation(
            DAY,
            metered("13.75", "3.20"),
            settings(url),
            SETTLED,
            environ=ENVIRON,
            sleep=sleeps,
        )

    assert outcome.status == "mismatch"
    alert = outcome.alert
    assert alert is not None
    assert alert.tier == "predictive"
    assert alert.signal == "spend"
    assert alert.rule_id == "reconcile:openai"
    assert alert.severity == "warning"
    assert alert.observed == Decimal("16.95")
    assert alert.baseline == Decimal("15.70")
    # The alert covers the day 2026-07-30T00:00Z to 2026-07-31T00:00Z.
    assert alert.period_start == datetime.fromisoformat("2026-07-30T00:00:00Z")
    assert alert.period_end == datetime.fromisoformat("2026-07-31T00:00:00Z")
    assert "metered $16.95 vs invoiced $15.70 (+8.0%" in alert.summary
    assert alert.details["line model=* project=proj_acme"].startswith("DIFFERS")
    assert "+10.0%" in alert.details["line model=* project=proj_acme"]
    assert not alert.details["line model=* project=proj_globex"].startswith("DIFFERS")
    assert (
        alert.details["metered model=gpt-4o-2024-08-06 project=proj_acme"] == "$13.75"
    )
    assert alert.details["openai usage gpt-4o-2024-08-06 / proj_acme"] == (
        "input 1000 tokens (800 cached), output 500 tokens, 5 requests"
    )


def test_unreachable_provider(sleeps: SleepRecorder) -> None:
    """A provider that refuses connections is an error with a warning, not zero."""
    url = closed_port_url()

    [outcome] = run_reconciliation(
        DAY,
        metered("12.50", "3.20"),
        settings(url, max_attempts=3),
        SETTLED,
        environ=ENVIRON,
        sleep=sleeps,
    )

    assert outcome.status == "error"
    assert outcome.reported_usd is None
    assert outcome.alert is not None
    assert outcome.alert.severity == "warning"
    assert "could not be checked" in outcome.alert.summary
    assert outcome.alert.baseline is None
    # Three attempts, with the 2 s backoff doubling between them.
    assert sleeps.waits == [2.0, 4.0]


def test_rate_limit_retry_after(sleeps: SleepRecorder) -> None:
    """Two 429 answers with Retry-After: 7 are waited out and the day compared."""
    fake = fake_with_day()
    fake.throttle = 2

    with serve(fake) as url:
        [outcome] = run_reconciliation(
            DAY,
            metered("12.50", "3.20"),
            settings(url),
            SETTLED,
            environ=ENVIRON,
            sleep=sleeps,
        )

    assert outcome.status == "match"
    assert sleeps.waits == [7.0, 7.0]


def test_rate_limit_exhausts_attempts(sleeps: SleepRecorder) -> None:
    """A provider that keeps answering 429 is reported as not checked."""
    fake = fake_with_day()
    fake.throttle = 100

    with serve(fake) as url:
        [outcome] = run_reconciliation(
            DAY,
            metered("12.50", "3.20"),
            settings(url, max_attempts=4),
            SETTLED,
            environ=ENVIRON,
            sleep=sleeps,
        )

    assert outcome.status == "error"
    assert "HTTP 429 on all 4 attempts" in outcome.reason
    assert sleeps.waits == [7.0, 7.0, 7.0]
    assert len(fake.requests) == 4


def test_retry_after_above_limit(sleeps: SleepRecorder) -> None:
    """A Retry-After longer than max_retry_after_s fails at once without waiting."""
    fake = fake_with_day()
    fake.throttle = 1
    fake.retry_after = "3600"

    with serve(fake) as url:
        [outcome] = run_reconciliation(
            DAY,
            metered("12.50", "3.20"),
            settings(url),
            SETTLED,
            environ=ENVIRON,
            sleep=sleeps,
        )

    assert outcome.status == "error"
    assert "asked to wait 3600 s" in outcome.reason
    assert sleeps.waits == []


def test_partial_day_not_compared(sleeps: SleepRecorder) -> None:
    """A day that ended 6 h ago is partial, even though its amounts differ."""
    fake = fake_with_day()
    # 2026-07-31T06:00Z is 6 h after the day's end, inside the 12 h settle time.
    now = datetime.fromisoformat("2026-07-31T06:00:00Z")

    with serve(fake) as url:
        [outcome] = run_reconciliation(
            DAY,
            metered("99.00", "3.20"),
            settings(url),
            now,
            environ=ENVIRON,
            sleep=sleeps,
        )

    assert outcome.status == "partial"
    assert outcome.alert is None
    assert "less than 12 h ago" in outcome.reason


def test_missing_bucket_is_partial(sleeps: SleepRecorder) -> None:
    """A day for which OpenAI returns no bucket is partial, not a zero cost."""
    fake = FakeOpenAI()

    with serve(fake) as url:
        [outcome] = run_reconciliation(
            DAY,
            metered("12.50", "3.20"),
            settings(url),
            SETTLED,
            environ=ENVIRON,
            sleep=sleeps,
        )

    assert outcome.status == "partial"
    assert "no cost bucket" in outcome.reason


def test_wrong_key_is_error(sleeps: SleepRecorder) -> None:
    """A rejected admin key is an error naming the HTTP status."""
    fake = fake_with_day()

    with serve(fake) as url:
        [outcome] = run_reconciliation(
            DAY,
            metered("12.50", "3.20"),
            settings(url),
            SETTLED,
            environ={"OPENAI_ADMIN_KEY": "sk-wrong"},
            sleep=sleeps,
        )

    assert outcome.status == "error"
    assert "HTTP 401" in outcome.reason


def test_missing_key_is_error(sleeps: SleepRecorder) -> None:
    """Without the admin key variable the provider is reported as not checked."""
    fake = fake_with_day()

    with serve(fake) as url:
        [outcome] = run_reconciliation(
            DAY,
            metered("12.50", "3.20"),
            settings(url),
            SETTLED,
            environ={},
            sleep=sleeps,
        )

    assert outcome.status == "error"
    assert outcome.reason == "OPENAI_ADMIN_KEY is not set"
    assert fake.requests == []
