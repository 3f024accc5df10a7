"""Forecast a tenant's spend at the end of a budget period, with an interval.

``forecast_period_end`` is a pure function: it receives the daily spend history and
the spend so far, and returns a ``MonthEndForecast``. It keeps no state, so the
predictive tier can call it for any tenant at any time.

The forecast covers the days ``last_day + 1 .. period_end``. The first of them is
the current, incomplete day ("today"), whose partial spend ``today_usd`` is already in
``spent_to_date_usd``, so the month-end mean is::

    spent_to_date + max(0, f(today) - today_usd) + sum(f(day) for the days after today)

The model has a fixed form, chosen by rule and never by automatic selection: an ETS
model (``statsmodels.tsa.exponential_smoothing.ets.ETSModel``) with additive errors,
an additive damped trend and a weekly season of ``season_days`` days whose form,
additive or multiplicative, comes from the rule. A full refit estimates the
parameters on the trailing ``history_days`` days. When the model cannot be used, the
function falls back one step at a time, records why in ``fallback_reason`` and adds
one code from ``FALLBACK_CODES`` per step to ``fallbacks``, for counting:

1. A multiplicative season needs strictly positive data. When the history contains a
   zero or negative day, the seasonal model is fitted in additive form instead
   (``nonpositive_history``).
2. With fewer than two full seasons of history (14 days for a weekly season) no
   seasonal model is fitted (``short_history_for_season``). With at least 5 days a
   damped-trend model without a season (``holt_damped``) is fitted, and the result
   is flagged ``low_confidence``.
3. With fewer than 5 days (``short_history``), or when the fits fail
   (``fit_failed``), do not converge (``fit_not_converged``) or are rejected, the
   forecast is the run rate: the mean of the last ``season_days`` days for each
   remaining day, flagged ``low_confidence``. A seasonal fit that fails or is
   rejected is followed by the damped-trend model before the run rate.
4. A cheap update (below) that fails or is rejected is followed by a refit
   (``update_rejected``).

Every model forecast is checked before use, and a rejected forecast falls back to the
next step. A forecast is rejected when it contains a non-finite value
(``forecast_non_finite``), when its total for the remaining days is negative, so the
month-end would fall below the spend to date (``forecast_below_spend``), or when that
total exceeds 10 times the run-rate projection for the same days
(``forecast_above_run_rate``). Negative daily forecasts that pass the check are
clipped to 0, because spend cannot be negative.

Refit and cheap update. The optimiser is the expensive part of a fit (about 70 ms
for 56 days of history on one core). A caller that passes the ``FittedModel`` of an
earlier forecast gets a cheap update instead. The stored parameters (smoothing
weights, damping and initial states) are kept, and the smoothing recursions run
again over the history from the same first day, now including the days since the
fit. The forecast starts from the resulting states, so the level, trend and season
are re-anchored on the new data without re-optimising. An update is used only when
the model the chain would fit first has the same method and form. When the update's
forecast is rejected, the function records the reason and refits. The caller
decides how old a fit may get before a refit
(``detector.tiers.predictive.REFIT_DAYS``).

The recursions and the simulation are written here rather than taken from
statsmodels, because ``ETSModel.smooth`` followed by ``simulate`` builds a full
results object and takes about 9 ms per series, too slow for updating ten thousand
tenants between refits. They are the ETS state equations with additive errors
(Hyndman and Athanasopoulos, *Forecasting: Principles and Practice*, 3rd ed., section
8.5) in the parametrisation of ``ETSModel`` 0.14 and 0.15, and a test checks them
against ``ETSModel.smooth`` and ``ETSResults.forecast``. A full refit uses the same
code after ``ETSModel.fit``, so a refit and an update on the same data agree.

Interval of the month-end total. The daily forecast errors are correlated: summing
the daily edges overstates the width, and adding the variances as if the days were
independent understates it. The interval of the sum therefore comes from simulation:
1,000 sample paths of the remaining days are drawn (Gaussian errors with the
variance of the one-step residuals, fixed seed so equal inputs give equal outputs),
each path is clipped at 0 and summed like the mean, and the edges are quantiles of
those sums. The paths keep the parameters and the final state fixed, so the interval
leaves out their estimation error and is narrower than the true one. On synthetic
months with a noisy weekly pattern and 8 weeks of history, the nominal 80 % interval
contained the true total in 40 of 60 months. The simulated edges are therefore moved
away from the mean by ``INTERVAL_SCALE``. ``detector.evaluation.monthend`` measures
the factor that the 2011 bike-sharing months need and the coverage on 2012. The
run-rate interval is the Student-t prediction interval of a sum of ``h`` future days
drawn from the recent days' mean and standard deviation, ``t * s * sqrt(h + h**2 /
k)`` with ``k`` recent days.

Money stays in ``Decimal`` except inside the model, which works in float. Forecast
amounts are quantized to 1e-6 USD rather than to cents: per-request costs and
``spent_to_date_usd`` carry sub-cent digits, and rounding the forecast to cents would
lose small tenants' spend. The month-end edges are ``spent_to_date_usd`` plus those
amounts, so they keep any finer digits that ``spent_to_date_usd`` carries.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import Decimal
from typing import Literal, get_args

import numpy as np
import numpy.typing as npt
from scipy import stats  # type: ignore[import-untyped]
from statsmodels.tools.sm_exceptions import (  # type: ignore[import-untyped]
    ConvergenceWarning,
    ValueWarning,
)
from statsmodels.tsa.exponential_smoothing.ets import (  # type: ignore[import-untyped]
    ETSModel,
)
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

Method = Literal["holt_winters", "holt_damped", "run_rate"]
ModelMethod = Literal["holt_winters", "holt_damped"]
SeasonalForm = Literal["additive", "multiplicative"]
Edge = Literal["lower", "mean", "upper"]
EtsSeasonal = Literal["add", "mul"]
FallbackCode = Literal[
    "short_history",
    "short_history_for_season",
    "nonpositive_history",
    "fit_failed",
    "fit_not_converged",
    "forecast_non_finite",
    "forecast_below_spend",
    "forecast_above_run_rate",
    "update_rejected",
]
FloatArray = npt.NDArray[np.float64]

# The bounded set of fallback codes, one per reason a step of the chain is skipped.
FALLBACK_CODES: tuple[FallbackCode, ...] = get_args(FallbackCode)
MIN_SEASONS = 2
MIN_TREND_DAYS = 5
# The longest history a refit uses, equal to the maximum history_days of a rule.
# Fit time grows with the history length.
MAX_HISTORY_DAYS = 366
SIMULATION_PATHS = 1000
SIMULATION_SEED = 0
# Simulated interval edges are moved away from the mean by this factor, because the
# paths leave out parameter and state estimation error (see the module docstring).
INTERVAL_SCALE = 1.5
ABSURD_RUN_RATE_FACTOR = 10
USD_QUANTUM_DECIMALS = 6

# Warnings that statsmodels and numpy emit while an ETS fit searches degenerate
# parameter regions. They are counted, and the fit is judged by its convergence flag
# and by the forecast checks. Every other warning is re-emitted to the caller.
EXPECTED_FIT_WARNINGS: tuple[type[Warning], ...] = (
    ConvergenceWarning,
    ValueWarning,
    RuntimeWarning,
)

_ETS_SEASONAL: dict[SeasonalForm, EtsSeasonal] = {
    "additive": "add",
    "multiplicative": "mul",
}

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FittedModel:
    """Parameters of an accepted ETS fit, reused by cheap updates until a refit."""

    method: ModelMethod
    seasonal: SeasonalForm | None
    season_days: int
    # In the order of ETSModel.param_names: smoothing_level, smoothing_trend,
    # smoothing_seasonal (seasonal models only), damping_trend, initial_level,
    # initial_trend and initial_seasonal.0 .. initial_seasonal.<m-1>.
    params: tuple[float, ...]
    # The initial states belong to the day before first_day, so an update must run
    # the recursions from first_day on.
    first_day: date
    # The last day of the history the parameters were estimated on.
    fitted_through: date


@dataclass(frozen=True, slots=True)
class MonthEndForecast:
    """Forecast of the total spend of a budget period at its last day."""

    month_end_usd: Decimal
    lower_usd: Decimal
    upper_usd: Decimal
    interval_pct: int
    method: Method
    seasonal: SeasonalForm | None
    low_confidence: bool
    fallback_reason: str | None
    # One entry per remaining day of the period, clipped at 0. The first entry, for
    # the current day, is the spend still expected on it: its forecast minus
    # today_usd, at least 0. So month_end_usd is spent_to_date_usd plus the sum of
    # these amounts.
    daily_forecast: tuple[tuple[date, Decimal], ...]
    # One code per fallback step taken, in order, for counting by reason.
    fallbacks: tuple[FallbackCode, ...] = ()
    # The parameters behind a model forecast, for the next cheap update, or None
    # for the run rate.
    fitted: FittedModel | None = None
    # True when the forecast reused earlier parameters instead of refitting.
    updated: bool = False

    def edge(self, which: Edge) -> Decimal:
        """Return the lower interval edge, the mean or the upper edge of the total."""
        if which == "lower":
            return self.lower_usd
        if which == "upper":
            return self.upper_usd
        return self.month_end_usd

    def exhaustion_day(
        self, spent_to_date_usd: Decimal, budget_usd: Decimal
    ) -> date | None:
        """Find the first day on which the cumulative mean forecast reaches the budget.

        Returns the current day when the spend to date already reaches the budget,
        and None when the budget is not reached before the period ends or no day of
        the period remains.
        """
        cumulative_usd = spent_to_date_usd
        for day, amount_usd in self.daily_forecast:
            cumulative_usd += amount_usd
            if cumulative_usd >= budget_usd:
                return day
        return None


@dataclass(frozen=True, slots=True)
class ModelRun:
    """Output of one ETS fit or update: mean forecasts and paths, in USD per day."""

    mean_usd: FloatArray  # shape (steps,)
    paths_usd: FloatArray  # shape (steps, SIMULATION_PATHS)
    converged: bool
    caught_warnings: dict[str, int]
    # The parameters the run used, in ETSModel.param_names order.
    params: tuple[float, ...] = ()


def fit_ets(
    history_usd: FloatArray,
    seasonal: EtsSeasonal | None,
    season_days: int,
    steps: int,
) -> ModelRun:
    """Fit the fixed-form ETS model and forecast and simulate ``steps`` days ahead.

    This is the only call into statsmodels, so tests replace it to inject bad fits.
    Raises what statsmodels raises for data it cannot fit (ValueError and
    subclasses such as LinAlgError).
    """
    # The fit's matrices are tiny, so BLAS threads only contend with each other and
    # with other fits. With one thread a 56-day fit took 70 ms instead of 800 ms on
    # a busy 2-core machine.
    caught: list[warnings.WarningMessage] = []
    try:
        with (
            threadpool_limits(limits=1, user_api="blas"),
            warnings.catch_warnings(record=True) as recorded,
        ):
            warnings.simplefilter("always")
            caught = recorded
            model = ETSModel(
                history_usd,
                error="add",
                trend="add",
                damped_trend=True,
                seasonal=seasonal,
                seasonal_periods=season_days if seasonal is not None else None,
            )
            result = model.fit(disp=False)
    finally:
        # Runs after the recording ends, so re-emitted warnings reach the caller,
        # also when the fit raises.
        counts = _count_and_reemit(caught)

    retvals = result.mle_retvals or {}
    converged = bool(retvals.get("converged", True))
    params = tuple(float(value) for value in np.asarray(result.params))
    run = update_ets(history_usd, params, seasonal, season_days, steps)
    return ModelRun(
        mean_usd=run.mean_usd,
        paths_usd=run.paths_usd,
        converged=converged and counts.get("ConvergenceWarning", 0) == 0,
        caught_warnings=counts,
        params=params,
    )


def update_ets(
    history_usd: FloatArray,
    params: Sequence[float],
    seasonal: EtsSeasonal | None,
    season_days: int,
    steps: int,
) -> ModelRun:
    """Run the ETS recursions with fixed parameters, then forecast and simulate.

    ``history_usd`` must start on the day the parameters' initial states precede.
    Raises ArithmeticError when a multiplicative recursion divides by zero.
    """
    smoothed = _smooth(history_usd, params, seasonal, season_days)
    rng = np.random.default_rng(SIMULATION_SEED)
    # Drawn in the shape ETSResults.simulate draws them, (steps, paths).
    errors_usd = rng.standard_normal((steps, SIMULATION_PATHS)) * smoothed.sigma_usd
    with np.errstate(all="ignore"):
        mean_usd = _project(smoothed, np.zeros((steps, 1)))[:, 0]
        paths_usd = _project(smoothed, errors_usd)
    return ModelRun(
        mean_usd=mean_usd,
        paths_usd=paths_usd,
        converged=True,
        caught_warnings={},
        params=tuple(float(value) for value in params),
    )


@dataclass(frozen=True, slots=True)
class _Smoothed:
    """Final states and parameters after the recursions ran over the history."""

    seasonal: EtsSeasonal | None
    alpha: float
    beta: float
    gamma: float
    phi: float
    level: float
    trend: float
    # The last season_days seasonal states, oldest first: season[0] is the state
    # of the day one season before the first forecast day.
    season: tuple[float, ...]
    sigma_usd: float


def _smooth(
    history_usd: FloatArray,
    params: Sequence[float],
    seasonal: EtsSeasonal | None,
    season_days: int,
) -> _Smoothed:
    """Run the state equations over the history and return the final states."""
    if seasonal is None:
        alpha, beta, phi, level, trend = params[:5]
        gamma = 0.0
        season = [0.0]
    else:
        alpha, beta, gamma, phi, level, trend = params[:6]
        # initial_seasonal.0 is the most recent initial state, so reverse them.
        season = list(params[6 : 6 + season_days])[::-1]
    squared_error_sum = 0.0
    for index, observed in enumerate(history_usd.tolist()):
        slot = index % len(season)
        base = level + phi * trend
        if seasonal == "mul":
            factor = season[slot]
            error = observed - base * factor
            level = base + alpha * error / factor
            trend = phi * trend + beta * error / factor
            season[slot] = factor + gamma * error / base
        else:
            error = observed - base - season[slot]
            level = base + alpha * error
            trend = phi * trend + beta * error
            season[slot] = season[slot] + gamma * error
        squared_error_sum += error * error
    # Rotate so the state used by the next day comes first.
    start = history_usd.size % len(season)
    ordered = season[start:] + season[:start]
    return _Smoothed(
        seasonal=seasonal,
        alpha=float(alpha),
        beta=float(beta),
        gamma=float(gamma),
        phi=float(phi),
        level=float(level),
        trend=float(trend),
        season=tuple(float(value) for value in ordered),
        sigma_usd=math.sqrt(squared_error_sum / max(history_usd.size, 1)),
    )


def _project(smoothed: _Smoothed, errors_usd: FloatArray) -> FloatArray:
    """Run the state equations forward with the given errors, one column per path.

    Zero errors give the point forecast, which equals ``ETSResults.forecast``.
    """
    steps, paths = errors_usd.shape
    level = np.full(paths, smoothed.level)
    trend = np.full(paths, smoothed.trend)
    season = np.tile(np.array(smoothed.season)[:, None], (1, paths))
    out = np.empty((steps, paths))
    alpha, beta, gamma, phi = smoothed.alpha, smoothed.beta, smoothed.gamma, smoothed.phi
    for step in range(steps):
        slot = step % len(smoothed.season)
        error = errors_usd[step]
        base = level + phi * trend
        factor = season[slot]
        if smoothed.seasonal == "mul":
            out[step] = base * factor + error
            level = base + alpha * error / factor
            trend = phi * trend + beta * error / factor
            season[slot] = factor + gamma * error / base
        else:
            out[step] = base + factor + error
            level = base + alpha * error
            trend = phi * trend + beta * error
            season[slot] = factor + gamma * error
    return out


@dataclass(frozen=True, slots=True)
class _Request:
    """The arguments every step of the fallback chain shares."""

    days: tuple[date, ...]
    spent_to_date_usd: Decimal
    today_usd: Decimal
    interval_pct: int
    season_days: int
    run_rate_rest_usd: float
    interval_scale: float


def forecast_period_end(
    daily_usd: Sequence[Decimal],
    last_day: date,
    period_end: date,
    spent_to_date_usd: Decimal,
    today_usd: Decimal = Decimal(0),
    *,
    seasonal: SeasonalForm = "additive",
    interval_pct: int = 80,
    season_days: int = 7,
    interval_scale: float = INTERVAL_SCALE,
    history_days: int = MAX_HISTORY_DAYS,
    fitted: FittedModel | None = None,
) -> MonthEndForecast:
    """Forecast the total spend of the period ending on ``period_end`` (inclusive).

    ``daily_usd`` contains complete days, oldest first and contiguous, with zeros for
    days without spend, and ``daily_usd[-1]`` is the spend of ``last_day``. A refit
    uses the last ``history_days`` of them (at most ``MAX_HISTORY_DAYS``). With
    ``fitted``, the forecast reuses its parameters when ``daily_usd`` reaches back
    to ``fitted.first_day``, and refits otherwise. Raises ValueError for
    inconsistent arguments.
    """
    _validate(
        daily_usd,
        last_day,
        period_end,
        spent_to_date_usd,
        today_usd,
        seasonal,
        interval_pct,
        season_days,
        history_days,
    )
    if last_day == period_end:
        return _period_over(spent_to_date_usd, interval_pct)

    days = tuple(
        last_day + timedelta(days=i) for i in range(1, (period_end - last_day).days + 1)
    )
    window = min(history_days, MAX_HISTORY_DAYS)
    history_usd = np.array([float(v) for v in daily_usd[-window:]], dtype=np.float64)
    request = _Request(
        days=days,
        spent_to_date_usd=spent_to_date_usd,
        today_usd=today_usd,
        interval_pct=interval_pct,
        season_days=season_days,
        run_rate_rest_usd=_run_rate_usd(history_usd, season_days) * len(days),
        interval_scale=interval_scale,
    )
    reasons: list[str] = []
    codes: list[FallbackCode] = []
    plans = _plan_models(history_usd, seasonal, season_days, reasons, codes)

    if fitted is not None and plans:
        forecast = _try_update(
            fitted, plans[0], daily_usd, last_day, request, reasons, codes
        )
        if forecast is not None:
            return _with_fallbacks(forecast, codes)

    first_day = last_day - timedelta(days=history_usd.size - 1)
    for method, form in plans:
        forecast = _try_fit(method, form, history_usd, first_day, request, reasons, codes)
        if forecast is not None:
            return _with_fallbacks(forecast, codes)

    return _with_fallbacks(_run_rate_forecast(history_usd, request, reasons), codes)


def _validate(
    daily_usd: Sequence[Decimal],
    last_day: date,
    period_end: date,
    spent_to_date_usd: Decimal,
    today_usd: Decimal,
    seasonal: str,
    interval_pct: int,
    season_days: int,
    history_days: int,
) -> None:
    if last_day > period_end:
        raise ValueError(
            f"last_day {last_day} is after period_end {period_end}. Pass the end "
            "of the period that contains the current day."
        )
    if seasonal not in _ETS_SEASONAL:
        raise ValueError(
            f"invalid seasonal {seasonal!r}: use 'additive' or 'multiplicative'"
        )
    if not 1 <= interval_pct <= 99:
        raise ValueError(f"invalid interval_pct {interval_pct}: use 1 to 99")
    if season_days < 2:
        raise ValueError(f"invalid season_days {season_days}: use 2 or more")
    if history_days < 1:
        raise ValueError(f"invalid history_days {history_days}: use 1 or more")
    for name, value in (
        ("spent_to_date_usd", spent_to_date_usd),
        ("today_usd", today_usd),
    ):
        if not value.is_finite():
            raise ValueError(f"invalid {name} {value}: must be a finite amount")
    if not Decimal(0) <= today_usd <= spent_to_date_usd:
        raise ValueError(
            f"invalid today_usd {today_usd}: must be between 0 and spent_to_date_usd "
            f"{spent_to_date_usd}, which already contains it"
        )
    for index, value in enumerate(daily_usd):
        if not value.is_finite():
            raise ValueError(
                f"invalid daily_usd[{index}] {value}: must be a finite amount"
            )


def _period_over(spent_to_date_usd: Decimal, interval_pct: int) -> MonthEndForecast:
    # NOTE: MonthEndForecast.method has no value for "actual spend", so a period
    # that is over reports "run_rate" with no remaining days and the reason below.
    return MonthEndForecast(
        month_end_usd=spent_to_date_usd,
        lower_usd=spent_to_date_usd,
        upper_usd=spent_to_date_usd,
        interval_pct=interval_pct,
        method="run_rate",
        seasonal=None,
        low_confidence=False,
        fallback_reason="The period has ended, so the total is the actual spend.",
        daily_forecast=(),
    )


def _with_fallbacks(
    forecast: MonthEndForecast, codes: list[FallbackCode]
) -> MonthEndForecast:
    return replace(forecast, fallbacks=tuple(codes))


def _run_rate_usd(history_usd: FloatArray, season_days: int) -> float:
    """Return the mean of the last ``season_days`` days, at least 0."""
    recent_usd = history_usd[-season_days:]
    if recent_usd.size == 0:
        return 0.0
    return max(0.0, float(recent_usd.mean()))


def _plan_models(
    history_usd: FloatArray,
    seasonal: SeasonalForm,
    season_days: int,
    reasons: list[str],
    codes: list[FallbackCode],
) -> list[tuple[ModelMethod, SeasonalForm | None]]:
    """List the models to try, best first, and record why others are skipped."""
    days = history_usd.size
    plans: list[tuple[ModelMethod, SeasonalForm | None]] = []

    if days < MIN_TREND_DAYS:
        reasons.append(
            f"Only {days} complete days of history, fewer than {MIN_TREND_DAYS}, so "
            "neither a seasonal nor a trend model was fitted."
        )
        codes.append("short_history")
        return plans

    if days < MIN_SEASONS * season_days:
        reasons.append(
            f"Only {days} complete days of history, fewer than {MIN_SEASONS} seasons "
            f"of {season_days} days, so no seasonal model was fitted."
        )
        codes.append("short_history_for_season")
    elif seasonal == "multiplicative" and bool((history_usd <= 0).any()):
        reasons.append(
            "Multiplicative seasonality needs strictly positive daily spend and the "
            "history contains zero or negative days, so the seasonal model was "
            "fitted in additive form."
        )
        codes.append("nonpositive_history")
        plans.append(("holt_winters", "additive"))
    else:
        plans.append(("holt_winters", seasonal))

    plans.append(("holt_damped", None))
    return plans


def _try_update(
    fitted: FittedModel,
    plan: tuple[ModelMethod, SeasonalForm | None],
    daily_usd: Sequence[Decimal],
    last_day: date,
    request: _Request,
    reasons: list[str],
    codes: list[FallbackCode],
) -> MonthEndForecast | None:
    """Forecast with the stored parameters, or return None when a refit is needed.

    A refit is needed when the chain would now fit another model, when the history
    no longer reaches back to the fit's first day, or when the update fails or its
    forecast is rejected. Only the last two are fallbacks (``update_rejected``).
    """
    method, form = plan
    offset = len(daily_usd) - 1 - (last_day - fitted.first_day).days
    if (
        (fitted.method, fitted.seasonal) != plan
        or fitted.season_days != request.season_days
        or fitted.fitted_through > last_day
        or offset < 0
    ):
        return None

    history_usd = np.array([float(v) for v in daily_usd[offset:]], dtype=np.float64)
    ets_seasonal = _ETS_SEASONAL[form] if form is not None else None
    label = f"{method} update with the parameters fitted on {fitted.fitted_through}"
    try:
        run = update_ets(
            history_usd, fitted.params, ets_seasonal, request.season_days, len(request.days)
        )
    except ArithmeticError as error:
        reasons.append(f"The {label} failed: {error}, so the model was refitted.")
        codes.append("update_rejected")
        logger.debug("forecast: %s failed: %s", label, error)
        return None

    rejection = _check_run(run, request.run_rate_rest_usd)
    if rejection is not None:
        reasons.append(
            f"The {label} was rejected: {rejection[1]}, so the model was refitted."
        )
        codes.append("update_rejected")
        logger.debug("forecast: %s rejected: %s", label, rejection[1])
        return None
    return _forecast_from_run(run, method, form, request, reasons, fitted, updated=True)


def _try_fit(
    method: ModelMethod,
    form: SeasonalForm | None,
    history_usd: FloatArray,
    first_day: date,
    request: _Request,
    reasons: list[str],
    codes: list[FallbackCode],
) -> MonthEndForecast | None:
    """Fit one model and return its checked forecast, or record why and return None."""
    ets_seasonal = _ETS_SEASONAL[form] if form is not None else None
    try:
        run = fit_ets(history_usd, ets_seasonal, request.season_days, len(request.days))
    except (ValueError, ArithmeticError) as error:
        reasons.append(f"The {method} fit failed: {error}.")
        codes.append("fit_failed")
        logger.debug("forecast: %s fit failed: %s", method, error)
        return None

    if run.caught_warnings:
        logger.debug(
            "forecast: %s fit emitted warnings %s", method, run.caught_warnings
        )
    rejection = _check_run(run, request.run_rate_rest_usd)
    if rejection is not None:
        code, text = rejection
        reasons.append(f"The {method} forecast was rejected: {text}.")
        codes.append(code)
        logger.debug("forecast: %s forecast rejected: %s", method, text)
        return None

    fitted = FittedModel(
        method=method,
        seasonal=form,
        season_days=request.season_days,
        params=run.params,
        first_day=first_day,
        fitted_through=first_day + timedelta(days=history_usd.size - 1),
    )
    return _forecast_from_run(run, method, form, request, reasons, fitted, updated=False)


def _check_run(
    run: ModelRun, run_rate_rest_usd: float
) -> tuple[FallbackCode, str] | None:
    """Return the code and reason a model run is unusable, or None when it passes."""
    if not run.converged:
        return (
            "fit_not_converged",
            f"the fit did not converge (caught warnings: {run.caught_warnings})",
        )
    if not (np.isfinite(run.mean_usd).all() and np.isfinite(run.paths_usd).all()):
        return "forecast_non_finite", "the forecast contains non-finite values"

    rest_usd = float(run.mean_usd.sum())
    if rest_usd < 0:
        text = (
            f"the remaining days sum to {rest_usd:.2f} USD, which would put the "
            "month-end below the spend to date"
        )
        return "forecast_below_spend", text
    limit_usd = ABSURD_RUN_RATE_FACTOR * run_rate_rest_usd
    if rest_usd > limit_usd:
        text = (
            f"the remaining days sum to {rest_usd:.2f} USD, more than "
            f"{ABSURD_RUN_RATE_FACTOR} times the run-rate projection of "
            f"{run_rate_rest_usd:.2f} USD"
        )
        return "forecast_above_run_rate", text
    return None


def _forecast_from_run(
    run: ModelRun,
    method: ModelMethod,
    form: SeasonalForm | None,
    request: _Request,
    reasons: list[str],
    fitted: FittedModel,
    *,
    updated: bool,
) -> MonthEndForecast:
    """Clip a checked model run at 0 and turn it into the month-end forecast."""
    mean_usd = _remaining_spend(run.mean_usd, request.today_usd)
    rest_paths_usd = _remaining_spend(run.paths_usd, request.today_usd).sum(axis=0)
    # TODO: INTERVAL_SCALE is one factor for every tenant and horizon, measured on
    # two data sets. A factor fitted per tenant on its own held-out months would
    # end the gap between them.
    tail = (1 - request.interval_pct / 100) / 2
    lower_rest_usd, upper_rest_usd = np.quantile(rest_paths_usd, [tail, 1 - tail])
    rest_usd = float(mean_usd.sum())
    scale = request.interval_scale
    lower_rest_usd = rest_usd - scale * (rest_usd - lower_rest_usd)
    upper_rest_usd = rest_usd + scale * (upper_rest_usd - rest_usd)

    return _assemble(
        mean_usd,
        float(lower_rest_usd),
        float(upper_rest_usd),
        request,
        method,
        form,
        low_confidence=method != "holt_winters",
        reasons=reasons,
        fitted=fitted,
        updated=updated,
    )


def _remaining_spend(forecast_usd: FloatArray, today_usd: Decimal) -> FloatArray:
    """Clip daily forecasts at 0 and take today's spend so far off the first day.

    Works on a vector of days or on a (days, paths) matrix.
    """
    remaining_usd = np.clip(forecast_usd, 0.0, None)
    remaining_usd[0] = np.clip(remaining_usd[0] - float(today_usd), 0.0, None)
    return remaining_usd


def _run_rate_forecast(
    history_usd: FloatArray, request: _Request, reasons: list[str]
) -> MonthEndForecast:
    """Forecast each remaining day as the mean of the last ``season_days`` days."""
    season_days = request.season_days
    rate_usd = _run_rate_usd(history_usd, season_days)
    mean_usd = _remaining_spend(np.full(len(request.days), rate_usd), request.today_usd)
    rest_usd = float(mean_usd.sum())
    half_width_usd = _run_rate_half_width(
        history_usd[-season_days:], len(request.days), request.interval_pct
    )

    return _assemble(
        mean_usd,
        max(0.0, rest_usd - half_width_usd),
        rest_usd + half_width_usd,
        request,
        "run_rate",
        None,
        low_confidence=True,
        reasons=reasons,
        fitted=None,
        updated=False,
    )


def _run_rate_half_width(
    recent_usd: FloatArray, horizon_days: int, interval_pct: int
) -> float:
    """Return the half width of the prediction interval of a sum of future days.

    For ``k`` recent days with standard deviation ``s``, the sum of ``h`` future
    days drawn from the same distribution lies within ``t * s * sqrt(h + h**2 / k)``
    of ``h`` times the mean. The ``h`` term is the spread of the days themselves
    and ``h**2 / k`` the error of the estimated mean. With a single day the spread
    is unknown, so ``s`` is the day's own amount and ``t`` the normal quantile.
    """
    k = recent_usd.size
    coverage = (1 + interval_pct / 100) / 2
    if k == 0:
        # NOTE: without any complete day there is nothing to measure a spread on,
        # so the forecast is the spend to date with a zero-width interval.
        return 0.0
    if k == 1:
        spread_usd = abs(float(recent_usd[0]))
        quantile = float(stats.norm.ppf(coverage))
    else:
        spread_usd = float(recent_usd.std(ddof=1))
        quantile = float(stats.t.ppf(coverage, k - 1))
    return quantile * spread_usd * math.sqrt(horizon_days + horizon_days**2 / k)



def _assemble(
    mean_usd: FloatArray,
    lower_rest_usd: float,
    upper_rest_usd: float,
    request: _Request,
    method: Method,
    form: SeasonalForm | None,
    *,
    low_confidence: bool,
    reasons: list[str],
    fitted: FittedModel | None,
    updated: bool,
) -> MonthEndForecast:
    """Convert to Decimal and order the edges so lower <= mean <= upper holds."""
    spent_to_date_usd = request.spent_to_date_usd
    daily = tuple(
        (day, _to_usd(amount))
        for day, amount in zip(request.days, mean_usd, strict=True)
    )
    month_end_usd = spent_to_date_usd + sum((amount for _, amount in daily), Decimal(0))
    lower_usd = max(
        spent_to_date_usd,
        min(month_end_usd, spent_to_date_usd + _to_usd(lower_rest_usd)),
    )
    upper_usd = max(month_end_usd, spent_to_date_usd + _to_usd(upper_rest_usd))

    return MonthEndForecast(
        month_end_usd=month_end_usd,
        lower_usd=lower_usd,
        upper_usd=upper_usd,
        interval_pct=request.interval_pct,
        method=method,
        seasonal=form,
        low_confidence=low_confidence,
        fallback_reason=" ".join(reasons) if reasons else None,
        daily_forecast=daily,
        fitted=fitted,
        updated=updated,
    )


def _to_usd(amount: float) -> Decimal:
    # Formatting rounds the binary value correctly and, unlike Decimal.quantize,
    # cannot overflow the context precision for large amounts.
    return Decimal(f"{amount:.{USD_QUANTUM_DECIMALS}f}")


def _count_and_reemit(caught: list[warnings.WarningMessage]) -> dict[str, int]:
    """Count the expected fit warnings and re-emit every other warning."""
    counts: Counter[str] = Counter()
    for message in caught:
        if issubclass(message.category, EXPECTED_FIT_WARNINGS):
            counts[message.category.__name__] += 1
        else:
            warnings.warn_explicit(
                message.message, message.category, message.filename, message.lineno
            )
    return dict(counts)
