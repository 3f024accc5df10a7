"""Tests for the month-end spend forecast and its fallback chain."""

from __future__ import annotations

import calendar
import math
import warnings
from collections.abc import Sequence
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import pytest
from scipy import stats  # type: ignore[import-untyped]
from statsmodels.tools.sm_exceptions import (  # type: ignore[import-untyped]
    ConvergenceWarning,
)
from statsmodels.tsa.exponential_smoothing.ets import (  # type: ignore[import-untyped]
    ETSModel,
)

from detector import forecast
from detector.forecast import (
    SIMULATION_PATHS,
    ModelRun,
    MonthEndForecast,
    forecast_period_end,
)

# Any warning that leaks out of the forecast fails the test.
pytestmark = pytest.mark.filterwarnings("error")


def usd(values: Sequence[float]) -> list[Decimal]:
    return [Decimal(str(value)) for value in values]


def weekday_spend(first_day: date, days: int, weekday_usd: float) -> list[Decimal]:
    """Return ``weekday_usd`` for Monday to Friday and 0 for weekends."""
    values = []
    for offset in range(days):
        day = first_day + timedelta(days=offset)
        values.append(weekday_usd if day.weekday() < 5 else 0.0)
    return usd(values)


def steady_history() -> list[Decimal]:
    """Return 21 days that repeat 40, 41, 42 USD: no trend and no weekly season."""
    return usd([40.0 + (day % 3) for day in range(21)])


def constant_run(mean_usd: Sequence[float]) -> ModelRun:
    """Return a model run whose simulated paths all equal the mean forecast."""
    mean = np.array(mean_usd, dtype=np.float64)
    return ModelRun(
        mean_usd=mean,
        paths_usd=np.tile(mean[:, None], (1, SIMULATION_PATHS)),
        converged=True,
        caught_warnings={},
    )


def test_june_multiplicative_zero_days_fall_back_to_additive() -> None:
    """Weekend zeros rule out a multiplicative season, so the additive one is fitted."""
    # June 1 2025 is a Sunday: June 1-28 are four weeks of $50 weekdays ($1,000).
    history_usd = weekday_spend(date(2025, 6, 1), 28, 50.0)

    result = forecast_period_end(
        history_usd,
        last_day=date(2025, 6, 28),
        period_end=date(2025, 6, 30),
        spent_to_date_usd=Decimal(1000),
        seasonal="multiplicative",
    )

    assert result.method == "holt_winters"
    assert result.seasonal == "additive"
    assert result.fallback_reason is not None
    assert "additive" in result.fallback_reason
    # June 29 is a Sunday, June 30 a Monday.
    days = [day for day, _ in result.daily_forecast]
    assert days == [date(2025, 6, 29), date(2025, 6, 30)]
    sunday_usd = result.daily_forecast[0][1]
    monday_usd = result.daily_forecast[1][1]
    assert sunday_usd < Decimal(5)
    assert abs(monday_usd - Decimal(50)) < Decimal(5)
    assert abs(result.month_end_usd - Decimal(1050)) <= Decimal(25)
    assert abs(result.month_end_usd - Decimal(1100)) > Decimal(25)


def test_march_nine_days_skip_seasonal_fit() -> None:
    """Nine days are too few for a weekly season, so a trend model is used."""
    # Onboarded March 22: history March 22-30, forecast March 31 only.
    history_usd = usd([10, 12, 11, 13, 12, 14, 13, 15, 14])

    result = forecast_period_end(
        history_usd,
        last_day=date(2025, 3, 30),
        period_end=date(2025, 3, 31),
        spent_to_date_usd=Decimal(114),
    )

    assert result.method != "holt_winters"
    assert result.seasonal is None
    assert result.low_confidence
    assert result.fallback_reason is not None
    assert "no seasonal model" in result.fallback_reason
    assert [day for day, _ in result.daily_forecast] == [date(2025, 3, 31)]
    assert Decimal(125) <= result.month_end_usd <= Decimal(130)


INTERVAL_CASES = {
    "june weekdays": (
        weekday_spend(date(2025, 6, 1), 28, 50.0),
        Decimal(1000),
        Decimal(0),
    ),
    "march nine days": (
        usd([10, 12, 11, 13, 12, 14, 13, 15, 14]),
        Decimal(114),
        Decimal(0),
    ),
    "three days": (usd([10, 20, 30]), Decimal(65), Decimal(5)),
    "steady with today": (steady_history(), Decimal(900), Decimal(300)),
    "steep decline": (
        usd([200 - 20 * day for day in range(10)]),
        Decimal(1100),
        Decimal(0),
    ),
}


@pytest.mark.parametrize("case", sorted(INTERVAL_CASES))
def test_interval_ordered_and_above_spent(case: str) -> None:
    """Every forecast satisfies spent <= lower <= mean <= upper."""
    history_usd, spent_usd, today_usd = INTERVAL_CASES[case]

    # History ends June 10, the period ends June 30: 20 days to forecast.
    result = forecast_period_end(
        history_usd, date(2025, 6, 10), date(2025, 6, 30), spent_usd, today_usd
    )

    assert spent_usd <= result.lower_usd
    assert result.lower_usd <= result.month_end_usd
    assert result.month_end_usd <= result.upper_usd
    assert all(amount >= 0 for _, amount in result.daily_forecast)


def test_steep_decline_rejected_for_run_rate() -> None:
    """A fitted trend whose remaining days sum below zero gives way to the run rate."""
    # 200, 180, ..., 20 USD on June 1-10; the forecast covers June 11-30.
    history_usd = usd([200 - 20 * day for day in range(10)])

    result = forecast_period_end(
        history_usd, date(2025, 6, 10), date(2025, 6, 30), Decimal(1100)
    )

    assert result.method == "run_rate"
    assert result.fallback_reason is not None
    assert "holt_damped forecast was rejected" in result.fallback_reason
    assert "below the spend to date" in result.fallback_reason
    # The run rate is the mean of June 4-10: 140, 120, ..., 20 USD.
    assert {amount for _, amount in result.daily_forecast} == {Decimal(80)}


def test_run_rate_for_three_days() -> None:
    """Three days of history give the run rate and its Student-t interval."""
    # History March 27-29 (10, 20, 30 USD), today March 30 with $5 so far, period
    # ends March 31.
    history_usd = usd([10, 20, 30])
    spent_usd = Decimal(65)

    result = forecast_period_end(
        history_usd, date(2025, 3, 29), date(2025, 3, 31), spent_usd, Decimal(5)
    )

    assert result.method == "run_rate"
    assert result.low_confidence
    assert result.fallback_reason is not None
    assert "fewer than 5" in result.fallback_reason
    # Mean 20 USD a day: 20 - 5 still expected today, 20 tomorrow.
    assert result.daily_forecast == (
        (date(2025, 3, 30), Decimal(15)),
        (date(2025, 3, 31), Decimal(20)),
    )
    assert result.month_end_usd == Decimal(100)
    half_width_usd = stats.t.ppf(0.9, 2) * 10.0 * math.sqrt(2 + 2**2 / 3)
    assert float(result.upper_usd) == pytest.approx(100 + half_width_usd, abs=1e-5)
    assert float(result.lower_usd) == pytest.approx(100 - half_width_usd, abs=1e-5)


def test_today_spend_above_forecast() -> None:
    """Once today's spend exceeds its forecast, nothing more is expected today."""
    # History March 27-29, today March 30 with $25 so far (above the $20 run rate).
    history_usd = usd([10, 20, 30])

    result = forecast_period_end(
        history_usd, date(2025, 3, 29), date(2025, 3, 31), Decimal(85), Decimal(25)
    )

    assert result.daily_forecast[0] == (date(2025, 3, 30), Decimal(0))
    assert result.month_end_usd == Decimal(105)


def test_check_rejects_non_finite_forecast(monkeypatch: pytest.MonkeyPatch) -> None:
    """A model run with NaN values is rejected and the run rate is used."""

    def fit_nan(
        history_usd: Any, seasonal: Any, season_days: int, steps: int
    ) -> ModelRun:
        return constant_run([math.nan] * steps)

    monkeypatch.setattr(forecast, "fit_ets", fit_nan)

    # History June 1-21, forecast June 22-30.
    result = forecast_period_end(
        steady_history(), date(2025, 6, 21), date(2025, 6, 30), Decimal(861)
    )

    assert result.method == "run_rate"
    assert result.fallback_reason is not None
    assert "holt_winters forecast was rejected" in result.fallback_reason
    assert "holt_damped forecast was rejected" in result.fallback_reason
    assert "non-finite" in result.fallback_reason
    assert result.month_end_usd.is_finite()


def test_check_rejects_absurd_forecast(monkeypatch: pytest.MonkeyPatch) -> None:
    """A seasonal forecast above 10 times the run rate falls back to the trend model."""
    real_fit_ets = forecast.fit_ets

    def fit_absurd_season(
        history_usd: Any, seasonal: Any, season_days: int, steps: int
    ) -> ModelRun:
        if seasonal is not None:
            return constant_run([1_000_000.0] * steps)
        return real_fit_ets(history_usd, seasonal, season_days, steps)

    monkeypatch.setattr(forecast, "fit_ets", fit_absurd_season)

    # History June 1-21 (about $41 a day), forecast June 22-30.
    result = forecast_period_end(
        steady_history(), date(2025, 6, 21), date(2025, 6, 30), Decimal(861)
    )

    assert result.method == "holt_damped"
    assert result.fallback_reason is not None
    assert "10 times the run-rate projection" in result.fallback_reason
    assert result.month_end_usd < Decimal(861 + 9 * 50)


def test_check_rejects_negative_total(monkeypatch: pytest.MonkeyPatch) -> None:
    """A forecast whose remaining days sum below zero is rejected."""

    def fit_negative(
        history_usd: Any, seasonal: Any, season_days: int, steps: int
    ) -> ModelRun:
        return constant_run([-5.0] * steps)

    monkeypatch.setattr(forecast, "fit_ets", fit_negative)

    # History June 1-21, forecast June 22-30.
    result = forecast_period_end(
        steady_history(), date(2025, 6, 21), date(2025, 6, 30), Decimal(861)
    )

    assert result.method == "run_rate"
    assert result.fallback_reason is not None
    assert "below the spend to date" in result.fallback_reason


def test_negative_model_days_clipped(monkeypatch: pytest.MonkeyPatch) -> None:
    """A negative day in an accepted model forecast becomes zero spend."""

    def fit_one_negative(
        history_usd: Any, seasonal: Any, season_days: int, steps: int
    ) -> ModelRun:
        return constant_run([40.0, -3.0] + [40.0] * (steps - 2))

    monkeypatch.setattr(forecast, "fit_ets", fit_one_negative)

    # History June 1-21, forecast June 22-24.
    result = forecast_period_end(
        steady_history(), date(2025, 6, 21), date(2025, 6, 24), Decimal(861)
    )

    assert result.method == "holt_winters"
    assert result.daily_forecast[1] == (date(2025, 6, 23), Decimal(0))
    assert result.month_end_usd == Decimal(861 + 80)


def test_failed_fit_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fit that raises is recorded and the last week's run rate is used."""

    def fit_raises(
        history_usd: Any, seasonal: Any, season_days: int, steps: int
    ) -> ModelRun:
        raise np.linalg.LinAlgError("singular matrix")

    monkeypatch.setattr(forecast, "fit_ets", fit_raises)
    # June 1-14 at $10 a day, June 15-21 at $30 a day.
    history_usd = usd([10] * 14 + [30] * 7)

    # Forecast June 22-30.
    result = forecast_period_end(
        history_usd, date(2025, 6, 21), date(2025, 6, 30), Decimal(350)
    )

    assert result.method == "run_rate"
    assert result.fallback_reason is not None
    assert "holt_winters fit failed: singular matrix" in result.fallback_reason
    assert "holt_damped fit failed: singular matrix" in result.fallback_reason
    assert len(result.daily_forecast) == 9
    assert {amount for _, amount in result.daily_forecast} == {Decimal(30)}
    assert result.month_end_usd == Decimal(350 + 9 * 30)


class NoisyETSModel(ETSModel):  # type: ignore[misc]
    """ETS model whose fit emits one ConvergenceWarning and one UserWarning."""

    def fit(self, *args: Any, **kwargs: Any) -> Any:
        warnings.warn("test convergence failure", ConvergenceWarning, stacklevel=2)
        warnings.warn("unrelated warning", UserWarning, stacklevel=2)
        return super().fit(*args, **kwargs)


def test_fit_warnings_counted_or_reemitted(monkeypatch: pytest.MonkeyPatch) -> None:
    """A ConvergenceWarning rejects the fit quietly, others reach the caller."""
    monkeypatch.setattr(forecast, "ETSModel", NoisyETSModel)

    # History June 1-21, forecast June 22-30.
    with pytest.warns(UserWarning, match="unrelated warning") as caught:
        result = forecast_period_end(
            steady_history(), date(2025, 6, 21), date(2025, 6, 30), Decimal(861)
        )

    assert not [w for w in caught if issubclass(w.category, ConvergenceWarning)]
    assert result.method == "run_rate"
    assert result.fallback_reason is not None
    assert "did not converge" in result.fallback_reason


def test_exhaustion_day_three_days_ahead() -> None:
    """At $40 a day, $900 spent of a $1,000 budget on June 20 runs out on June 23."""
    # History June 11-20 at $40 a day, forecast June 21-30.
    result = forecast_period_end(
        usd([40] * 10), date(2025, 6, 20), date(2025, 6, 30), Decimal(900)
    )

    # Cumulative mean: June 21 $940, June 22 $980, June 23 $1,020.
    assert result.exhaustion_day(Decimal(900), Decimal(1000)) == date(2025, 6, 23)
    assert result.exhaustion_day(Decimal(900), Decimal(5000)) is None
    assert result.exhaustion_day(Decimal(1000), Decimal(1000)) == date(2025, 6, 21)


def test_edge_selects_interval_values() -> None:
    """edge() returns the lower edge, the mean and the upper edge by name."""
    result = MonthEndForecast(
        month_end_usd=Decimal(2),
        lower_usd=Decimal(1),
        upper_usd=Decimal(3),
        interval_pct=80,
        method="run_rate",
        seasonal=None,
        low_confidence=True,
        fallback_reason=None,
        daily_forecast=(),
    )

    assert result.edge("lower") == Decimal(1)
    assert result.edge("mean") == Decimal(2)
    assert result.edge("upper") == Decimal(3)


def test_period_over_returns_actual() -> None:
    """On the last day of the period the forecast is the actual spend."""
    # History ends June 30, the last day of the period.
    result = forecast_period_end(
        usd([40] * 10), date(2025, 6, 30), date(2025, 6, 30), Decimal("1234.56")
    )

    assert result.month_end_usd == Decimal("1234.56")
    assert result.lower_usd == Decimal("1234.56")
    assert result.upper_usd == Decimal("1234.56")
    assert result.daily_forecast == ()
    assert result.exhaustion_day(Decimal("1234.56"), Decimal(1000)) is None


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"last_day": date(2025, 7, 1)}, "after period_end"),
        ({"today_usd": Decimal(1000)}, "invalid today_usd"),
        ({"interval_pct": 100}, "invalid interval_pct"),
        ({"season_days": 1}, "invalid season_days"),
        ({"spent_to_date_usd": Decimal("NaN")}, "invalid spent_to_date_usd"),
        ({"daily_usd": [Decimal("Infinity")]}, r"invalid daily_usd\[0\]"),
    ],
)
def test_invalid_arguments_raise(arguments: dict[str, Any], message: str) -> None:
    """Inconsistent arguments raise ValueError naming the value."""
    valid: dict[str, Any] = {
        "daily_usd": usd([40] * 10),
        "last_day": date(2025, 6, 20),
        "period_end": date(2025, 6, 30),
        "spent_to_date_usd": Decimal(900),
    }

    with pytest.raises(ValueError, match=message):
        forecast_period_end(**(valid | arguments))


def synthetic_month(seed: int) -> tuple[list[Decimal], date, date, Decimal, Decimal]:
    """Return 8 weeks of noisy weekly spend ending on the 20th and the true month total.

    Weekdays average $100 and weekend days $30, with Gaussian noise of sd $12.
    """
    rng = np.random.default_rng(seed)
    year, month = 2024 + seed // 12, seed % 12 + 1
    last_day = date(year, month, 20)
    period_end = date(year, month, calendar.monthrange(year, month)[1])

    def spend_on(day: date) -> Decimal:
        mean_usd = 100.0 if day.weekday() < 5 else 30.0
        return Decimal(str(round(mean_usd + rng.normal(0.0, 12.0), 2)))

    history_days = [last_day - timedelta(days=55 - offset) for offset in range(56)]
    history_usd = [spend_on(day) for day in history_days]
    future_days = (period_end - last_day).days
    future_usd = [
        spend_on(last_day + timedelta(days=i)) for i in range(1, future_days + 1)
    ]
    spent_usd = sum(
        (v for d, v in zip(history_days, history_usd, strict=True) if d.month == month),
        Decimal(0),
    )
    return history_usd, last_day, period_end, spent_usd, spent_usd + sum(future_usd)


def test_seasonal_interval_coverage() -> None:
    """The 80 % interval of a weekly-seasonal fit contains most true month totals."""
    hits = 0
    width_ratios = []

    # 20 months, January 2024 to August 2025, each forecast from its 20th.
    for seed in range(20):
        history_usd, last_day, period_end, spent_usd, true_total_usd = synthetic_month(
            seed
        )
        result = forecast_period_end(history_usd, last_day, period_end, spent_usd)
        assert result.method == "holt_winters"
        hits += result.lower_usd <= true_total_usd <= result.upper_usd
        width_ratios.append(
            (result.upper_usd - result.lower_usd) / (true_total_usd - spent_usd)
        )

    # The interval leaves out parameter uncertainty, so it covers fewer than 80 %
    # of the months: 40 of 60 seeded months in a longer run of this setup.
    assert hits >= 12
    # An interval inflated to pass the coverage check would fail here: the noise
    # alone gives a width of about 12 % of the remaining spend.
    assert sum(width_ratios) / len(width_ratios) < Decimal("0.25")
