"""The evaluations run end to end on small slices of their data.

They read the benchmark data under ``$BURNRATE_SHARED_DATA`` (default
``shared/data`` beside the repository) and fail when it is missing.
"""

from __future__ import annotations

from detector.evaluation import monthend, nab, spikes
from detector.evaluation.cli import render


def test_nab_scores_one_category() -> None:
    """The two jump files have one window each, and both are hit."""
    result = nab.run(pattern="artificialWithAnomaly/art_daily_j*.csv", workers=1)

    assert result["files"] == 2
    assert result["windows"] == 2
    assert set(result["profiles"]) == set(nab.PROFILES)
    assert result["profiles"]["standard"]["windows_hit"] == 2


def test_spikes_on_nine_days() -> None:
    """Nine days give two test days with 100 planted spikes and a full summary."""
    result = spikes.run(days=9)

    assert result["spikes"] == 100
    assert result["test_days"] == 2
    assert set(result["recall_by_size"]) == {"1.5x", "2x", "3x", "5x", "10x"}


def test_monthend_report_renders() -> None:
    """The month-end evaluation covers 22 months and renders into the report."""
    result = monthend.run()

    text = render({"monthend": result})
    assert result["months"] == 22
    assert "from_day_10" in text
    assert 0 <= result["coverage_2012_default_scale"] <= 1
