"""The evaluations run end to end on small slices of their data.

They read the benchmark data under ``$BURNRATE_SHARED_DATA`` (default
``shared/data`` beside the repository) and fail when it is missing.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from detector.alerts import AlertRecord, Status
from detector.cli import main
from detector.evaluation import monthend, nab, spikes
from detector.evaluation.cli import (
    REPORT,
    RESULTS,
    _render_coverage,
    _render_limits,
    _render_variants,
    render,
)


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
    assert result["natural_surges"] > 0
    assert 0 < result["natural_surge_share"] < 1
    assert result["natural_surges_alerted"] <= result["natural_surges"]
    assert result["false_alerts_outside_surges"] <= result["false_alerts"]
    assert [variant["overrides"] for variant in result["variants"]] == list(
        spikes.VARIANTS
    )
    assert set(result["variants"][0]) == {"overrides", *spikes.VARIANT_FIGURES}
    assert len(result["threshold_limits"]) == len(spikes.LIMIT_BASELINES)


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
    assert result["false_alerts_outside_surges"] == 1
    assert result["spikes_under_firing_alert"] == 0


def test_spikes_summary_excuses_natural_surges() -> None:
    """An unplanted alert within one window of a natural surge is not ordinary."""
    surges = {"client-1": [(1_100_000, 1_101_200), (1_200_000, 1_200_600)]}
    records = [
        _record("a", "firing", 1_099_500),  # 500 s before the first surge
        _record("b", "firing", 1_101_700),  # 500 s after the first surge ends
        _record("c", "firing", 1_150_000),  # far from both
    ]

    result = spikes.summarise(
        [], records, 999_000, tenants=1, test_days=7, surges=surges
    )

    assert result["false_alerts"] == 3
    assert result["false_alerts_outside_surges"] == 1
    assert result["false_alerts_outside_surges_per_100_tenant_weeks"] == 100.0
    assert result["natural_surges"] == 2
    assert result["natural_surges_alerted"] == 1
    assert result["natural_surge_share"] == round(1_800 / (7 * 86400), 3)


def test_spikes_summary_counts_spike_under_alert() -> None:
    """A spike starting while its tenant's alert fires is missed and counted apart."""
    spike = spikes.Spike("client-1", 1_000_000, 900, Decimal(3))
    records = [
        _record("a", "firing", 999_700),  # 300 s before the spike starts
        _record("a", "resolved", 1_001_500),
    ]

    result = spikes.summarise([spike], records, 999_000, tenants=1, test_days=7)

    assert result["recall_3x_at_least_15min"] == 0.0
    assert result["spikes_under_firing_alert"] == 1
    assert result["false_alerts"] == 0


def test_natural_surges_from_counts() -> None:
    """Windows at twice the median of the day around them form surges."""
    counts = np.full(288, 100, dtype=np.int64)
    counts[150:153] = 250  # three windows at 2.5x
    counts[200] = 199  # just under 2x
    counts[201] = 200  # exactly 2x
    counts[10:12] = 0  # idle windows are never a surge, even with a median of 0

    surges = spikes.natural_surges(counts, origin_s=1_000_000)

    assert surges == [
        (1_000_000 + 150 * 600, 1_000_000 + 153 * 600),
        (1_000_000 + 201 * 600, 1_000_000 + 202 * 600),
    ]


def test_plant_keeps_away_from_surges() -> None:
    """Spikes start and end at least an hour from every natural surge."""
    test_start_s = 1_000_000
    tenants = ["client-1", "client-2", "client-3"]
    # Each tenant has a 6-hour surge around every midnight of the test days.
    nightly = [
        (test_start_s + day * 86400 - 3 * 3600, test_start_s + day * 86400 + 3 * 3600)
        for day in range(8)
    ]
    surges = {tenant: nightly for tenant in tenants}

    planted = spikes.plant(tenants, test_start_s, days=7, per_cell=1, surges=surges)

    assert len(planted) == 25
    for spike in planted:
        for start_s, end_s in nightly:
            gap_before_s = start_s - (spike.start_s + spike.duration_s)
            gap_after_s = spike.start_s - end_s
            assert max(gap_before_s, gap_after_s) >= spikes.SURGE_MARGIN_S, spike


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
    by_year = result["coverage_default_scale_by_year"]
    assert result["months"] == 22
    assert "from_day_10" in text
    assert 0 <= result["coverage_2012_default_scale"] <= 1
    assert set(by_year) == {"2011", "2012"}
    assert by_year["2012"] == result["coverage_2012_default_scale"]
    # 10 months of 2011 and 12 of 2012, two forecasts each.
    both = (by_year["2011"] * 20 + by_year["2012"] * 24) / 44
    assert round(both, 3) == result["coverage_all_default_scale"]
    assert result["from_day_10"]["weather_reference_over_naive"] == 0.718
    assert result["from_day_20"]["weather_reference_over_naive"] == 0.798
    assert "reaches 0.718 of the naive's error from day 10 and 0.798" in text


def test_monthend_coverage_names_years_outside() -> None:
    """A year above or below the coverage target gets its own line in the report."""
    month = {
        "coverage_target": [0.7, 0.9],
        "interval_scale_default": 1.5,
        "coverage_default_scale_by_year": {"2011": 0.65, "2012": 0.917},
        "coverage_all_default_scale": 0.8,
        "coverage_2012_unscaled": 0.792,
        "coverage_2012_calibrated_scale": 0.958,
        "interval_scale_calibrated_2011": 1.8,
    }

    lines = _render_coverage(month)

    assert lines[0] == (
        "- 80 % interval coverage at the default scale 1.5: 0.65 in 2011, 0.917 in "
        "2012, 0.8 over both years (target 0.7 to 0.9 in each year)"
    )
    assert lines[2] == (
        "- Coverage target not met in 2011: 0.65 is below 0.7, so the intervals at "
        "the default scale are too narrow for that year."
    )
    assert lines[3] == (
        "- Coverage target not met in 2012: 0.917 is above 0.9, so the intervals at "
        "the default scale are too wide for that year."
    )
    assert len(lines) == 5


def test_monthend_coverage_inside_target() -> None:
    """Years inside the coverage target, edges included, add no line."""
    month = {
        "coverage_target": [0.7, 0.9],
        "interval_scale_default": 1.5,
        "coverage_default_scale_by_year": {"2011": 0.7, "2012": 0.9},
        "coverage_all_default_scale": 0.8,
        "coverage_2012_unscaled": 0.792,
        "coverage_2012_calibrated_scale": 0.958,
        "interval_scale_calibrated_2011": 1.8,
    }

    lines = _render_coverage(month)

    assert lines[1] == (
        "- 2012 at other scales: 0.792 unscaled, 0.958 at the scale 1.8 calibrated "
        "on 2011"
    )
    assert lines[2] == ""
    assert len(lines) == 3


def _month_figures(ratio_day_10: float, ratio_day_20: float) -> dict[str, object]:
    """Month-end figures with the given weather reference ratios, the rest fixed."""
    days = {
        f"from_day_{day}": {
            "mape_model": 0.09,
            "mape_seasonal_naive": 0.1,
            "mape_run_rate": 0.1,
            "model_over_naive": 0.9,
            "mape_weather_reference": round(ratio / 10, 4),
            "weather_reference_over_naive": ratio,
        }
        for day, ratio in ((10, ratio_day_10), (20, ratio_day_20))
    }
    return {
        **days,
        "seasonal": "multiplicative",
        "history_days": 365,
        "weather_fit_days": 56,
        "coverage_target": [0.7, 0.9],
        "interval_scale_default": 1.5,
        "coverage_default_scale_by_year": {"2011": 0.8, "2012": 0.8},
        "coverage_all_default_scale": 0.8,
        "coverage_2012_unscaled": 0.792,
        "coverage_2012_calibrated_scale": 0.958,
        "interval_scale_calibrated_2011": 1.8,
    }


def test_monthend_weather_reference_verdict() -> None:
    """The report states whether the weather reference meets the target, per day."""
    missed = render({"monthend": _month_figures(0.72, 0.8)})
    met = render({"monthend": _month_figures(0.65, 0.8)})

    assert (
        "  - weather reference (reads the recorded weather of the remaining days, "
        "so not a forecast): MAPE 0.072, reference / naive 0.72"
    ) in missed
    assert "reaches 0.72 of the naive's error from day 10 and 0.8 from day 20" in missed
    assert "no forecast has, yet it still misses the target." in missed
    assert "no forecast has, and so it meets the target from day 10." in met


def test_predict_remaining_least_squares() -> None:
    """The fit is least squares, not interpolation: y = 0.5 + 1.5 x on 3 points."""
    known = np.array([[1.0, 0.0], [1.0, 1.0], [1.0, 2.0]])
    counts = np.array([1.0, 1.0, 4.0])
    remaining = np.array([[1.0, 3.0], [1.0, 4.0]])

    total = monthend.predict_remaining(known, counts, remaining)

    assert round(total, 9) == 11.5


def test_weather_row_regressors() -> None:
    """A day's row: intercept, Monday to Saturday, holiday, then the weather."""
    wednesday = monthend.DayWeather(
        weekday=3, holiday=True, weathersit=2.0, atemp=0.5, hum=0.6, windspeed=0.25
    )
    sunday = monthend.DayWeather(
        weekday=0, holiday=False, weathersit=1.0, atemp=0.2, hum=0.4, windspeed=0.1
    )

    assert monthend.weather_row(wednesday) == [
        1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.5, 0.25, 0.6, 0.25, 2.0,
    ]  # fmt: skip
    assert monthend.weather_row(sunday)[:8] == [1.0] + [0.0] * 7


def test_daily_weather_means_hours(tmp_path: Path) -> None:
    """Each day's weather is the mean over the hours present in the file."""
    path = tmp_path / "hour.csv"
    path.write_text(
        "dteday,holiday,weekday,weathersit,atemp,hum,windspeed,cnt\n"
        "2012-01-02,1,1,1,0.2,0.5,0.1,10\n"
        "2012-01-02,1,1,3,0.4,0.7,0.3,20\n"
        "2012-01-03,0,2,2,0.3,0.6,0.2,30\n"
    )

    weather = monthend.daily_weather(path)

    first = weather[date(2012, 1, 2)]
    assert first.weekday == 1
    assert first.holiday is True
    assert first.weathersit == 2.0
    assert round(first.atemp, 9) == 0.3
    assert round(first.hum, 9) == 0.6
    assert round(first.windspeed, 9) == 0.2
    assert weather[date(2012, 1, 3)].holiday is False
    assert len(weather) == 2


def _synthetic_weather(
    cutoff: date,
) -> tuple[dict[date, Decimal], dict[date, monthend.DayWeather]]:
    """Build three months whose counts fit the weather only in the fit window.

    Counts are 1000 + 2000 * atemp in the 56 days before the cutoff, zero before
    them and five times as many from the cutoff on. From the cutoff on, the feeling
    temperature is 0.5.
    """
    daily: dict[date, Decimal] = {}
    weather: dict[date, monthend.DayWeather] = {}
    day = date(2024, 1, 1)
    while day <= date(2024, 3, 31):
        atemp = 0.5 if day >= cutoff else 0.2 + 0.1 * (day.toordinal() % 5)
        weather[day] = monthend.DayWeather(
            weekday=day.isoweekday() % 7,
            holiday=day == date(2024, 3, 15),
            weathersit=1.0,
            atemp=atemp,
            hum=0.5,
            windspeed=0.1,
        )
        count = Decimal(1000 + 2000 * atemp)
        if (cutoff - day).days > monthend.WEATHER_FIT_DAYS:
            count = Decimal(0)
        elif day >= cutoff:
            count *= 5
        daily[day] = count
        day += timedelta(days=1)
    return daily, weather


def test_weather_reference_fits_before_cutoff() -> None:
    """Only the 56 days before the cutoff are fitted, then the weather after it is read.

    22 remaining days at atemp 0.5 predict 2000 each. The holiday on the 15th
    predicts like any day, because the fit window contains no holiday.
    """
    cutoff = date(2024, 3, 10)
    daily, weather = _synthetic_weather(cutoff)

    total = monthend.weather_reference(
        daily, weather, cutoff, date(2024, 3, 31), Decimal(1234)
    )

    assert round(float(total), 6) == 1234 + 22 * 2000


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


def test_evaluate_help_describes_command(capsys: pytest.CaptureFixture[str]) -> None:
    """The help of evaluate describes what it measures and which files it writes."""
    with pytest.raises(SystemExit) as exited:
        main(["evaluate", "--help"])
    text = " ".join(capsys.readouterr().out.split())

    assert exited.value.code == 0
    assert (
        "Measure detection quality on the NAB, planted-spike and month-end "
        "benchmarks, print the figures and write them to "
        "detector/evaluation/results.json and QUALITY.md unless --no-write is "
        "given."
    ) in text


def _steady_spend(values: dict[int, str], days: int) -> dict[int, Decimal]:
    """Spend per minute: $1 per 10-minute window, except the windows in ``values``."""
    per_minute = {}
    for window in range(days * 144):
        amount = Decimal(values.get(window, "1")) / 10
        for minute in range(10):
            per_minute[window * 600 + minute * 60] = amount
    return per_minute


def test_threshold_limits_exact() -> None:
    """A 5x window and a return from six idle windows, on two test days."""
    idle = dict.fromkeys(range(1200, 1206), "0")
    spend = {"shop": _steady_spend({1100: "5", **idle}, days=9)}

    limits = spikes.threshold_limits(
        spend, {}, origin_s=0, test_start_s=7 * 86400, days=9
    )

    joined, separate, *_ = limits
    assert joined["ordinary_windows"] == 288
    # Six idle windows cannot be spiked. The other 282 become 3x their ratio.
    assert joined["spiked_windows"] == 282
    assert joined["threshold_for_recall_0_9"] == 3.0
    # Two runs reach 3 in 2/7 of a tenant-week: the 5x window and windows 1206-1208.
    assert joined["ordinary_runs_over_it_per_100_tenant_weeks"] == 700.0
    # Windows 1206 to 1208 rise from a median of 0: one run, fired at any ratio.
    assert joined["ordinary_runs_from_zero_per_100_tenant_weeks"] == 350.0
    assert joined["largest_finite_ordinary_ratio"] == 5.0
    assert joined["recall_over_largest"] == round(4 / 282, 3)
    # Last week's $1 keeps the separate baseline at $1 after the idle hour.
    assert separate["ordinary_runs_over_it_per_100_tenant_weeks"] == 350.0
    assert separate["ordinary_runs_from_zero_per_100_tenant_weeks"] == 0.0
    assert separate["recall_over_largest"] == round(1 / 282, 3)


def test_nab_halves_alternate_within_category() -> None:
    """Each category is split by alternate files in name order."""
    files = ["a/1.csv", "a/2.csv", "a/3.csv", "b/1.csv", "b/2.csv"]

    first, second = nab._halves(files)

    assert first == ["a/1.csv", "a/3.csv", "b/1.csv"]
    assert second == ["a/2.csv", "b/2.csv"]


def test_nab_best_point_on_half() -> None:
    """The grid point with the highest raw sum on the half wins, the first on ties."""
    per_file = [
        {"a/1.csv": 1.0, "a/2.csv": -3.0},
        {"a/1.csv": 0.5, "a/2.csv": 2.0},
        {"a/1.csv": 1.0, "a/2.csv": 0.0},
    ]

    assert nab._best_point(per_file, ["a/1.csv"]) == 0
    assert nab._best_point(per_file, ["a/2.csv"]) == 1
    assert nab._best_point(per_file, ["a/1.csv", "a/2.csv"]) == 1


def test_nab_report_shows_target_and_held_out() -> None:
    """The NAB section states whether the target is met and gives the held-out score."""
    entry = {
        "score": 63.38,
        "windows_hit": 28,
        "windows_missed": 6,
        "false_alert_rows": 86,
    }
    held_out_entry = {
        "score": 58.96,
        "windows_hit": 27,
        "windows_missed": 7,
        "false_alert_rows": 95,
    }
    results = {
        "nab": {
            "profiles": dict.fromkeys(nab.PROFILES, entry),
            "held_out": {
                "grid_points": 16,
                "halves": [13, 11],
                "chosen": [{"window": "75m"}, {"window": "90m"}],
                "profiles": dict.fromkeys(nab.PROFILES, held_out_entry),
            },
        }
    }

    lines = render(results).splitlines()

    assert "Target: standard >= 55: met." in lines
    assert (
        "Held out: chosen from 16 grid points on one half of the files (13 and 11 "
        "files) and scored on the other, standard 58.96, reward_low_FP_rate 58.96, "
        "reward_low_FN_rate 58.96 (chosen: window 75m; window 90m)."
    ) in lines


def test_limits_table_rows() -> None:
    """Each baseline is one row of the threshold-limit table."""
    limit = {
        "baseline": "median of 7 earlier days",
        "threshold_for_recall_0_9": 1.35,
        "ordinary_runs_over_it_per_100_tenant_weeks": 4002.13,
        "ordinary_runs_from_zero_per_100_tenant_weeks": 404.26,
        "largest_finite_ordinary_ratio": 15824.04,
        "recall_over_largest": 0.065,
    }

    lines = _render_limits([limit])

    assert (
        lines[-2]
        == "| median of 7 earlier days | 1.35 | 4002.13 | 404.26 | 15824.04 | 0.065 |"
    )
    assert lines[-1] == ""


def test_variants_table_rows() -> None:
    """The rule comes first, then each variant named by its changed settings."""
    figures = {
        "recall_3x_at_least_15min": 0.75,
        "false_alerts_outside_surges_per_100_tenant_weeks": 587.23,
        "false_alerts_per_100_tenant_weeks": 1491.49,
        "delay_median_min": 3.0,
    }
    variant = {**figures, "overrides": {"recent_baseline": "separate"}}

    lines = _render_variants({**figures, "variants": [variant]})

    assert lines[-3] == "| the rule above | 0.75 | 587.23 | 1491.49 | 3.0 |"
    assert lines[-2] == (
        "| the rule with recent_baseline separate | 0.75 | 587.23 | 1491.49 | 3.0 |"
    )
    assert lines[-1] == ""


def test_quality_page_matches_results() -> None:
    """The checked-in QUALITY.md is the rendering of the checked-in results.json."""
    results = json.loads(RESULTS.read_text())

    assert REPORT.read_text() == render(results)
