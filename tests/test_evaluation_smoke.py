"""The evaluations run end to end on small slices of their data.

They read the benchmark data under ``$BURNRATE_SHARED_DATA`` (default
``shared/data`` beside the repository) and fail when it is missing.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from detector.alerts import AlertRecord, Status
from detector.evaluation import monthend, nab, spikes
from detector.cli import main
from detector.evaluation.cli import RESULTS, render


def test_nab_scores_one_category() -> None:
    """The two jump files have one window each, and both are hit."""
    result = nab.run(pattern="artificialWithAnomaly/art_daily_j*.csv", workers=1)

    assert result["files"] == 2
    assert result["windows"] == 2
    assert set(result["profiles"]) == set(nab.PROFILES)
    assert result["profiles"]["standard"]["windows_hit"] == 2


def test_spikes_on_nine_days() -> None:
    """Nine days of 8 tenants give two test days, 25 spikes and a full summary."""
    result = spikes.run(days=9, sample_every=100, tenant_count=8, per_cell=1)

    assert result["spikes"] == 25
    assert result["tenants"] == 8
    assert result["test_days"] == 2
    assert set(result["recall_by_size"]) == {"1.5x", "2x", "3x", "5x", "10x"}
    assert len(result["recall_by_size_and_duration"]) == 25
    assert len(result["floors_usd"]) == 8


def test_spikes_summary_counts_overlap() -> None:
    """An alert firing inside a spike detects it, and one far from every spike is false."""
    spike = spikes.Spike("client-1", 1_000_000, 900, Decimal(3))
    records = [
        _record("a", "firing", 1_000_300),  # 5 min after the spike's start
        _record("a", "resolved", 1_001_500),
        _record("b", "firing", 1_050_000),  # 50,000 s after it: no spike near
    ]

    result = spikes.summarise([spike], records, 999_000, tenants=1, test_days=7)

    assert result["recall_3x_at_least_15min"] == 1.0
    assert result["delay_median_min"] == 5.0
    assert result["false_alerts"] == 1
    assert result["false_alerts_per_100_tenant_weeks"] == 100.0


def _record(alert_id: str, status: Status, at_s: int) -> AlertRecord:
    at = datetime.fromtimestamp(at_s, UTC)
    return AlertRecord(
        alert_id=alert_id,
        status=status,
        tier="rate_of_change",
        severity="warning",
        rule_id="spend-spike",
        tenant="client-1",
        signal="spend",
        unit="usd",
        observed=Decimal(2),
        baseline=Decimal(1),
        threshold=Decimal(2),
        event_time=at,
        started_at=at,
        summary="test",
        series={"tenant": "client-1"},
        window_s=600,
        runbook_url=None,
        labels={},
        repeat=0,
        details={},
    )


def test_monthend_report_renders() -> None:
    """The month-end evaluation covers 22 months and renders into the report."""
    result = monthend.run()

    text = render({"monthend": result})
    assert result["months"] == 22
    assert "from_day_10" in text
    assert 0 <= result["coverage_2012_default_scale"] <= 1


def test_evaluate_prints_report_or_json(capsys: pytest.CaptureFixture[str]) -> None:
    """The command prints the markdown report, or JSON with --json, and writes nothing."""
    before = RESULTS.read_text()

    report_code = main(["evaluate", "--only", "monthend", "--no-write"])
    report = capsys.readouterr().out
    json_code = main(["evaluate", "--only", "monthend", "--no-write", "--json"])
    figures = json.loads(capsys.readouterr().out)

    assert report_code == 0
    assert "## Month-end forecasts (UCI bike sharing)" in report
    assert json_code == 0
    assert set(figures) == {"monthend"}
    assert "from_day_10" in figures["monthend"]
    assert RESULTS.read_text() == before
