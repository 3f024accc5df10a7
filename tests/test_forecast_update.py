"""Tests for the cheap forecast update, the fallback codes and the forecast checks."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from datetime import date
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from statsmodels.tsa.exponential_smoothing.ets import (  # type: ignore[import-untyped]
    ETSModel,
)

from detector import forecast
from detector.forecast import (
    FALLBACK_CODES,
    SIMULATION_PATHS,
    ModelRun,
    forecast_period_end,
    update_ets,
)
from detector.service.metrics import ServiceMetrics
from tests.support import engine_for, spend

pytestmark = pytest.mark.filterwarnings("error")


def usd(values: Sequence[float]) -> list[Decimal]:
    return [Decimal(str(value)) for value in values]


def weekly_history(days: int, seed: int = 3) -> list[Decimal]:
    """Return ``days`` days of a week of five $100 and two $40 days, noise sd $5."""
    rng = np.random.default_rng(seed)
    values = []
    for offset in range(days):
        mean_usd = 40.0 if offset % 7 in (5, 6) else 100.0
        values.append(round(mean_usd + rng.normal(0.0, 5.0), 2))
    return usd(values)


def constant_run(mean_usd: Sequence[float]) -> ModelRun:
    mean = np.array(mean_usd, dtype=np.float64)
    return ModelRun(
        mean_usd=mean,
        paths_usd=np.tile(mean[:, None], (1, SIMULATION_PATHS)),
        converged=True,
        caught_warnings={},
    )


def series(days: int) -> np.ndarray:
    rng = np.random.default_rng(1)
    steps = np.arange(days)
    seasonal = 20 * np.sin(steps * 2 * np.pi / 7)
    return 100 + seasonal + 0.5 * steps + rng.normal(0, 5, days)


@pytest.mark.parametrize("seasonal", ["add", "mul", None])
def test_recursions_match_statsmodels(seasonal: str | None) -> None:
    """Smoothing 63 days with parameters fitted on 56 equals ETSModel.smooth."""
    observed = series(63)
    periods = 7 if seasonal is not None else None

    def model(endog: np.ndarray) -> Any:
        return ETSModel(
            endog,
            error="add",
            trend="add",
            damped_trend=True,
            seasonal=seasonal,
            seasonal_periods=periods,
        )

    params = model(observed[:56]).fit(disp=False).params
    reference = model(observed).smooth(params)

    run = update_ets(observed, params, seasonal, 7, 10)

    expected_mean = np.asarray(reference.forecast(10))
    expected_paths = np.asarray(
        reference.simulate(10, "end", SIMULATION_PATHS, None, np.random.default_rng(0))
    )
    # The multiplicative recursion in statsmodels differs in the last digits.
    tolerance = 1e-4 if seasonal == "mul" else 1e-9
    assert np.allclose(run.mean_usd, expected_mean, rtol=0, atol=tolerance)
    assert np.allclose(run.paths_usd, expected_paths, rtol=0, atol=tolerance)


def test_update_without_new_days_equals_refit() -> None:
    """Updating with the history the fit saw gives the refit's forecast exactly."""
    history = weekly_history(28)

    # History June 1-28, forecast June 29-30.
    refit = forecast_period_end(history, date(2025, 6, 28), date(2025, 6, 30), Decimal(2400))
    assert refit.fitted is not None
    updated = forecast_period_end(
        history, date(2025, 6, 28), date(2025, 6, 30), Decimal(2400), fitted=refit.fitted
    )

    assert refit.updated is False
    assert updated.updated is True
    assert updated.fitted == refit.fitted
    assert updated.month_end_usd == refit.month_end_usd
    assert updated.lower_usd == refit.lower_usd
    assert updated.upper_usd == refit.upper_usd
    assert updated.fallbacks == ()


def test_update_reanchors_level() -> None:
    """Three new days at twice the spend raise the updated level without a refit."""
    history = weekly_history(28)
    refit = forecast_period_end(history, date(2025, 6, 28), date(2025, 7, 31), Decimal(0))
    assert refit.fitted is not None
    doubled = history + [2 * amount for amount in weekly_history(31)[28:]]

    same = forecast_period_end(
        history + weekly_history(31)[28:], date(2025, 7, 1), date(2025, 7, 31),
        Decimal(0), fitted=refit.fitted,
    )
    higher = forecast_period_end(
        doubled, date(2025, 7, 1), date(2025, 7, 31), Decimal(0), fitted=refit.fitted
    )

    assert same.updated and higher.updated
    assert higher.fitted == refit.fitted
    assert higher.fitted is not None
    assert higher.fitted.fitted_through == date(2025, 6, 28)
    assert higher.month_end_usd > same.month_end_usd
    assert higher.daily_forecast[0][1] > same.daily_forecast[0][1]


def test_rejected_update_refits() -> None:
    """An update whose forecast fails a check is counted and followed by a refit."""
    history = weekly_history(28)
    refit = forecast_period_end(history, date(2025, 6, 28), date(2025, 6, 30), Decimal(0))
    assert refit.fitted is not None
    # An initial level of $1e9 that the smoothing barely moves: absurd forecast.
    params = list(refit.fitted.params)
    params[0], params[4] = 1e-6, 1e9
    absurd = replace(refit.fitted, params=tuple(params))

    result = forecast_period_end(
        history, date(2025, 6, 28), date(2025, 6, 30), Decimal(0), fitted=absurd
    )

    assert result.fallbacks == ("update_rejected",)
    assert result.updated is False
    assert result.method == "holt_winters"
    assert result.fitted == refit.fitted
    assert result.month_end_usd == refit.month_end_usd
    assert result.fallback_reason is not None
    assert "holt_winters update with the parameters fitted on 2025-06-28 was " \
        "rejected" in result.fallback_reason
    assert "so the model was refitted" in result.fallback_reason


def test_update_skipped_when_model_changes() -> None:
    """A trend fit from 10 days is refitted once 14 days allow a weekly season."""
    history = weekly_history(14)
    short = forecast_period_end(history[:10], date(2025, 6, 10), date(2025, 6, 30), Decimal(0))
    assert short.fitted is not None
    assert short.fitted.method == "holt_damped"

    result = forecast_period_end(
        history, date(2025, 6, 14), date(2025, 6, 30), Decimal(0), fitted=short.fitted
    )

    assert result.method == "holt_winters"
    assert result.updated is False
    assert result.fallbacks == ()
    assert result.fitted is not None
    assert result.fitted.first_day == date(2025, 6, 1)


def test_update_skipped_without_first_day() -> None:
    """History that no longer reaches the fit's first day forces a refit."""
    history = weekly_history(35)
    refit = forecast_period_end(history[:28], date(2025, 6, 28), date(2025, 7, 31), Decimal(0))
    assert refit.fitted is not None

    # The window now starts July 2, after the fit's first day, June 1.
    result = forecast_period_end(
        history[1:], date(2025, 7, 5), date(2025, 7, 31), Decimal(0), fitted=refit.fitted
    )

    assert result.updated is False
    assert result.fitted is not None
    assert result.fitted.first_day == date(2025, 6, 2)
    assert result.fitted.fitted_through == date(2025, 7, 5)


def test_refit_uses_last_history_days() -> None:
    """history_days bounds the refit window, and the fit records its first day."""
    history = weekly_history(60)

    result = forecast_period_end(
        history, date(2025, 6, 30), date(2025, 7, 31), Decimal(0), history_days=21
    )

    assert result.fitted is not None
    assert result.fitted.first_day == date(2025, 6, 10)
    assert result.fitted.fitted_through == date(2025, 6, 30)


def fit_constant(value: float) -> Any:
    def fit(history_usd: Any, seasonal: Any, season_days: int, steps: int) -> ModelRun:
        return constant_run([value] * steps)

    return fit


def test_check_accepts_ten_times_run_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    """A forecast at exactly 10 times the run rate passes, one cent a day more fails."""
    # History June 1-21 at $40 a day: the run rate of June 22-30 is $360.
    history = usd([40] * 21)
    monkeypatch.setattr(forecast, "fit_ets", fit_constant(400.0))

    at_limit = forecast_period_end(history, date(2025, 6, 21), date(2025, 6, 30), Decimal(840))

    assert at_limit.method == "holt_winters"
    assert at_limit.fallbacks == ()
    assert at_limit.month_end_usd == Decimal(840 + 9 * 400)

    monkeypatch.setattr(forecast, "fit_ets", fit_constant(400.01))
    above = forecast_period_end(history, date(2025, 6, 21), date(2025, 6, 30), Decimal(840))

    assert above.method == "run_rate"
    assert above.fallbacks == ("forecast_above_run_rate", "forecast_above_run_rate")
    assert above.month_end_usd == Decimal(840 + 9 * 40)
    assert above.fitted is None


def test_check_accepts_zero_total(monkeypatch: pytest.MonkeyPatch) -> None:
    """A forecast of no further spend equals the spend to date, a negative one fails."""
    history = usd([40] * 21)
    monkeypatch.setattr(forecast, "fit_ets", fit_constant(0.0))

    zero = forecast_period_end(history, date(2025, 6, 21), date(2025, 6, 30), Decimal(840))

    assert zero.method == "holt_winters"
    assert zero.month_end_usd == Decimal(840)
    assert zero.lower_usd == Decimal(840)

    monkeypatch.setattr(forecast, "fit_ets", fit_constant(-0.01))
    below = forecast_period_end(history, date(2025, 6, 21), date(2025, 6, 30), Decimal(840))

    assert below.fallbacks == ("forecast_below_spend", "forecast_below_spend")
    assert below.month_end_usd == Decimal(840 + 9 * 40)


def test_check_rejects_infinite_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """One infinite simulated value rejects the run even when the mean is finite."""

    def fit_infinite_path(
        history_usd: Any, seasonal: Any, season_days: int, steps: int
    ) -> ModelRun:
        run = constant_run([40.0] * steps)
        run.paths_usd[0, 0] = math.inf
        return run

    monkeypatch.setattr(forecast, "fit_ets", fit_infinite_path)

    result = forecast_period_end(
        usd([40] * 21), date(2025, 6, 21), date(2025, 6, 30), Decimal(840)
    )

    assert result.fallbacks == ("forecast_non_finite", "forecast_non_finite")
    assert result.method == "run_rate"
    assert result.month_end_usd == Decimal(1200)


FALLBACK_CASES = {
    # name: (history, seasonal, expected method, expected codes)
    "three days": (usd([10, 20, 30]), "additive", "run_rate", ("short_history",)),
    "nine days": (
        usd([10, 12, 11, 13, 12, 14, 13, 15, 14]),
        "additive",
        "holt_damped",
        ("short_history_for_season",),
    ),
    "zero weekend days": (
        [Decimal(0) if day % 7 in (5, 6) else amount
         for day, amount in enumerate(weekly_history(28))],
        "multiplicative",
        "holt_winters",
        ("nonpositive_history",),
    ),
    "steep decline": (
        usd([200 - 20 * day for day in range(10)]),
        "additive",
        "run_rate",
        ("short_history_for_season", "forecast_below_spend"),
    ),
}


@pytest.mark.parametrize("case", sorted(FALLBACK_CASES))
def test_fallback_codes(case: str) -> None:
    """Each fallback step adds its code, in the order the chain takes them."""
    history, seasonal, method, codes = FALLBACK_CASES[case]
    last_day = date(2025, 6, len(history))

    result = forecast_period_end(
        history, last_day, date(2025, 6, 30), Decimal(1100), seasonal=seasonal
    )

    assert result.method == method
    assert result.fallbacks == codes
    assert set(result.fallbacks) <= set(FALLBACK_CODES)


def test_failed_fits_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fit that raises adds fit_failed for each model tried."""

    def fit_raises(history_usd: Any, seasonal: Any, season_days: int, steps: int) -> ModelRun:
        raise np.linalg.LinAlgError("singular matrix")

    monkeypatch.setattr(forecast, "fit_ets", fit_raises)

    result = forecast_period_end(
        usd([40] * 21), date(2025, 6, 21), date(2025, 6, 30), Decimal(840)
    )

    assert result.fallbacks == ("fit_failed", "fit_failed")
    assert result.month_end_usd == Decimal(1200)


FORECAST_RULES = {
    "tenants": [{"id": "acme", "timezone": "UTC"}],
    "budgets": [{"id": "monthly", "tenant": "acme", "limit_usd": "1000"}],
    "rules": [
        {
            "id": "month-end",
            "tier": "predictive",
            "budget": "monthly",
            "history_days": 14,
            "edge": "upper",
        }
    ],
}


def test_engine_updates_and_counts_fallbacks() -> None:
    """The engine refits weekly, updates in between and counts fallbacks by code."""
    engine = engine_for(FORECAST_RULES)
    amounts = weekly_history(25)
    events = [
        spend("acme", f"2025-06-{day + 1:02d}T12:00:00Z", str(amount))
        for day, amount in enumerate(amounts)
    ]
    fitted_through = []
    records = []
    for event in events:
        records.extend(engine.process(event))
        fitted = engine.fitted_models.get("acme", {}).get("month-end")
        fitted_through.append(fitted.fitted_through if fitted else None)

    # The event of June d ticks past midnight first, so a forecast on the days
    # before it runs: June 2 to 25. Up to June 5 fewer than 5 days exist, so the
    # forecast is the run rate. From June 6 a damped trend is fitted on the days
    # through June 5, updated, and refitted 7 days later on June 12. On June 14
    # the 14 days allow a weekly season, so the seasonal model is fitted, and it
    # is refitted on June 21.
    assert engine.stats.forecasts == 24
    assert engine.stats.forecast_fallback_reasons == {
        "short_history": 4,
        "short_history_for_season": 9,
    }
    assert fitted_through[4] is None
    assert fitted_through[5] == date(2025, 6, 5)
    assert fitted_through[11] == date(2025, 6, 5)
    assert fitted_through[12] == date(2025, 6, 12)
    assert fitted_through[13] == date(2025, 6, 12)
    assert fitted_through[14] == date(2025, 6, 14)
    assert fitted_through[20] == date(2025, 6, 14)
    assert fitted_through[21] == date(2025, 6, 21)
    assert fitted_through[24] == date(2025, 6, 21)
    assert records


def test_service_exports_fallback_steps() -> None:
    """Fallback steps reach /metrics by reason, as counters of the growth."""
    engine = engine_for(FORECAST_RULES)
    metrics = ServiceMetrics(engine.rules)
    runner = SimpleNamespace(partition=0, engine=engine)
    engine.stats.forecast_fallback_reasons.update(["short_history"] * 2)
    metrics.sync_runner(runner)  # type: ignore[arg-type]
    engine.stats.forecast_fallback_reasons.update(["short_history", "fit_failed"])
    metrics.sync_runner(runner)  # type: ignore[arg-type]

    def value(reason: str) -> float | None:
        return metrics.registry.get_sample_value(
            "burnrate_forecast_fallback_steps_total", {"reason": reason}
        )

    assert value("short_history") == 3.0
    assert value("fit_failed") == 1.0
    assert value("forecast_non_finite") is None
