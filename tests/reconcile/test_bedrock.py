"""Reconciliation against a loopback AWS Cost Explorer, called through boto3."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from detector.reconcile import ReconcileSettings, SpendKey, run_reconciliation
from detector.reconcile.settings import BedrockSettings, RetrySettings
from tests.reconcile.conftest import SleepRecorder
from tests.reconcile.servers import FakeCostExplorer, closed_port_url, serve

DAY = date(2026, 7, 30)
# The day ended 2026-07-31T00:00Z; 48 h later it is settled (settle_s is 36 h).
SETTLED = datetime.fromisoformat("2026-08-02T00:00:00Z")
ENVIRON = {"AWS_ACCESS_KEY_ID": "AKIDLOOPBACK", "AWS_SECRET_ACCESS_KEY": "secret"}
MODEL = "anthropic.claude-3-5-sonnet-20240620-v1:0"


def settings(endpoint_url: str, **bedrock: Any) -> ReconcileSettings:
    return ReconcileSettings(
        bedrock=BedrockSettings(
            endpoint_url=endpoint_url,
            services=("Amazon Bedrock", "Claude 3.5 Sonnet (Amazon Bedrock Edition)"),
            **{"project_tag": "project", **bedrock},
        ),
        retry=RetrySettings(max_attempts=3),
    )


def fake_with_day() -> FakeCostExplorer:
    """2026-07-30: project acme $12.50, search $4.125, untagged $0.005."""
    fake = FakeCostExplorer(page_size=1)
    fake.groups[DAY] = [("acme", "12.5"), ("search", "4.125"), ("", "0.005")]
    return fake


def metered(acme: str) -> dict[SpendKey, Decimal]:
    return {
        SpendKey(DAY, "aws.bedrock", MODEL, "acme"): Decimal(acme),
        SpendKey(DAY, "aws.bedrock", "amazon.nova-pro-v1:0", "search"): Decimal(
            "4.125"
        ),
    }


def test_matching_day(sleeps: SleepRecorder) -> None:
    """Costs per project tag match; the untagged half cent is below the minimum."""
    fake = fake_with_day()

    with serve(fake) as url:
        [outcome] = run_reconciliation(
            DAY, metered("12.50"), settings(url), SETTLED, environ=ENVIRON, sleep=sleeps
        )

    assert outcome.status == "match"
    assert outcome.reported_usd == Decimal("16.630")
    lines = {line.project: line.reported_usd for line in outcome.lines}
    assert lines == {
        "(untagged)": Decimal("0.005"),
        "acme": Decimal("12.5"),
        "search": Decimal("4.125"),
    }


def test_pagination_and_request_shape(sleeps: SleepRecorder) -> None:
    """NextPageToken is followed and the request filters services and groups by tag."""
    fake = fake_with_day()

    with serve(fake) as url:
        run_reconciliation(
            DAY, metered("12.50"), settings(url), SETTLED, environ=ENVIRON, sleep=sleeps
        )

    # Three groups in pages of one.
    assert len(fake.requests) == 3
    bodies = [json.loads(request.body) for request in fake.requests]
    assert "NextPageToken" not in bodies[0]
    assert bodies[1]["NextPageToken"] != bodies[2]["NextPageToken"]
    assert bodies[0]["TimePeriod"] == {"Start": "2026-07-30", "End": "2026-07-31"}
    assert bodies[0]["Granularity"] == "DAILY"
    assert bodies[0]["Metrics"] == ["UnblendedCost"]
    assert bodies[0]["GroupBy"] == [{"Type": "TAG", "Key": "project"}]
    assert bodies[0]["Filter"]["Dimensions"]["Values"] == [
        "Amazon Bedrock",
        "Claude 3.5 Sonnet (Amazon Bedrock Edition)",
    ]


def test_total_without_project_tag(sleeps: SleepRecorder) -> None:
    """Without a project tag the day's Total is compared with all metered spend."""
    fake = FakeCostExplorer()
    fake.groups[DAY] = [("", "16.625")]

    with serve(fake) as url:
        [outcome] = run_reconciliation(
            DAY,
            metered("12.50"),
            settings(url, project_tag=None),
            SETTLED,
            environ=ENVIRON,
            sleep=sleeps,
        )

    assert outcome.status == "match"
    assert [(line.model, line.project) for line in outcome.lines] == [(None, None)]
    assert "GroupBy" not in json.loads(fake.requests[0].body)


def test_mismatching_day(sleeps: SleepRecorder) -> None:
    """Metered acme spend 20 % under Cost Explorer's raises an alert."""
    fake = fake_with_day()

    with serve(fake) as url:
        [outcome] = run_reconciliation(
            DAY, metered("10.00"), settings(url), SETTLED, environ=ENVIRON, sleep=sleeps
        )

    assert outcome.status == "mismatch"
    alert = outcome.alert
    assert alert is not None
    assert alert.rule_id == "reconcile:aws.bedrock"
    assert alert.details["line model=* project=acme"] == (
        "DIFFERS: metered $10.00, reported $12.50 (-20.0%)"
    )
    assert alert.details[f"metered model={MODEL} project=acme"] == "$10.00"


def test_unreachable_provider(sleeps: SleepRecorder) -> None:
    """An endpoint that refuses connections is an error with a warning alert."""
    url = closed_port_url()

    [outcome] = run_reconciliation(
        DAY, metered("12.50"), settings(url), SETTLED, environ=ENVIRON, sleep=sleeps
    )

    assert outcome.status == "error"
    assert outcome.alert is not None
    assert outcome.alert.severity == "warning"
    assert "could not be checked" in outcome.alert.summary
    assert sleeps.waits == [2.0, 4.0]


def test_throttling_retried(sleeps: SleepRecorder) -> None:
    """LimitExceededException is retried with the injected sleep, then compared."""
    fake = fake_with_day()
    fake.throttle = 2

    with serve(fake) as url:
        [outcome] = run_reconciliation(
            DAY, metered("12.50"), settings(url), SETTLED, environ=ENVIRON, sleep=sleeps
        )

    assert outcome.status == "match"
    assert sleeps.waits == [2.0, 4.0]


def test_estimated_day_partial_when_not_accepted(sleeps: SleepRecorder) -> None:
    """An Estimated day is partial unless estimates are accepted."""
    fake = fake_with_day()
    fake.estimated.add(DAY)

    with serve(fake) as url:
        [strict] = run_reconciliation(
            DAY,
            metered("1.00"),
            settings(url, accept_estimated=False),
            SETTLED,
            environ=ENVIRON,
            sleep=sleeps,
        )
        [lenient] = run_reconciliation(
            DAY, metered("1.00"), settings(url), SETTLED, environ=ENVIRON, sleep=sleeps
        )

    assert strict.status == "partial"
    assert strict.reason == "Cost Explorer marks the day Estimated"
    assert lenient.status == "mismatch"
    assert lenient.notes["bedrock estimated"] == "Cost Explorer marks the day Estimated"


def test_unsettled_day_partial(sleeps: SleepRecorder) -> None:
    """A day that ended 24 h ago is partial within the 36 h settle time."""
    fake = fake_with_day()
    # 2026-08-01T00:00Z is 24 h after the day's end.
    now = datetime.fromisoformat("2026-08-01T00:00:00Z")

    with serve(fake) as url:
        [outcome] = run_reconciliation(
            DAY, metered("1.00"), settings(url), now, environ=ENVIRON, sleep=sleeps
        )

    assert outcome.status == "partial"
    assert outcome.alert is None


def test_data_unavailable_partial(sleeps: SleepRecorder) -> None:
    """DataUnavailableException is a partial day, not an error."""
    fake = fake_with_day()
    fake.data_unavailable = True

    with serve(fake) as url:
        [outcome] = run_reconciliation(
            DAY, metered("12.50"), settings(url), SETTLED, environ=ENVIRON, sleep=sleeps
        )

    assert outcome.status == "partial"
    assert outcome.reason == "Cost Explorer has no data for the day yet"


def test_missing_credentials(sleeps: SleepRecorder) -> None:
    """Without AWS credentials in the environment no request is made."""
    fake = fake_with_day()

    with serve(fake) as url:
        [outcome] = run_reconciliation(
            DAY, metered("12.50"), settings(url), SETTLED, environ={}, sleep=sleeps
        )

    assert outcome.status == "error"
    assert "AWS_ACCESS_KEY_ID" in outcome.reason
    assert fake.requests == []
