"""Month-end forecasts on the UCI bike-sharing hourly counts (2011-2012).

The hourly rental count stands in for spend: the daily total of ``cnt`` is one
day's spend. The file lacks 165 hours; they count as zero rentals, so a day's
total is the sum of the hours present. For each month from March 2011 on, the
total is forecast on the 10th and on the 20th (with every earlier day complete)
by ``detector.forecast.forecast_period_end`` and compared with three references.
The model configuration is fixed for every month: a multiplicative weekly season
(``SEASONAL``) refitted on the trailing ``HISTORY_DAYS`` days before the cutoff,
so the 2011 months see less history than the 2012 months. The references are:

- seasonal naive: each remaining day repeats the same weekday of the last week;
- run rate: each remaining day is the mean of the month's days so far;
- weather reference: the spend to date plus a least-squares regression of the
  daily count on the recorded weather of the remaining days (see
  ``weather_row``), fitted on the ``WEATHER_FIT_DAYS`` days before the cutoff.
  It is no forecast, because it reads weather that is not known at the cutoff.
  It shows how much of the error this regression removes when it is given the
  weather that a forecast would have to guess.

Errors are absolute percentage errors of the month total. Coverage is the share
of forecasts whose 80 % interval contained the actual total. It is reported on
2012 at the product's default scale (``forecast.INTERVAL_SCALE``), unscaled, and at
a scale calibrated on 2011: the 80th percentile, rounded up to 0.1, of the scale
each 2011 forecast needed to contain its actual. So the calibrated figure is
measured on months the scale did not see. Coverage over both years at the default
scale is reported as well, in total and per year, because the target band of 70 %
to 90 % applies to each year. The scale is applied to the unscaled forecasts
afterwards: the interval edges move away from the mean linearly in the scale, so
one fit per month serves every scale, except that a lower edge clipped at the spend
to date stays clipped.

``run`` reports the MAPE of the model and of each reference, and the ratios of
the model's and the weather reference's MAPE to the seasonal naive's. On this
file the model reaches 0.961 (day 10) / 0.950 (day 20) of the naive's MAPE, and
the weather reference 0.718 / 0.798.

Every other figure below was measured once with one-off scripts that are not in
the repository, on the same 44 forecasts (22 months, days 10 and 20), and
``burnrate evaluate`` does not reproduce it. Each ratio is the variant's MAPE
over the seasonal naive's, from day 10 / from day 20:

- the same model on 28, 42, 56, 84, 112, 182 or 270 days, multiplicative or
  additive, and additive on 365 days: 0.881 to 1.093 / 0.960 to 1.139. The best
  day-10 figure (additive, 84 days, 0.881) is among the worst from day 20 (1.100);
- damping fixed at 0.8, 0.9 or 0.95 on 56, 112 or 365 days: 0.916 to 0.979 /
  0.969 to 1.112;
- the seasonal model without a trend on 56 days: 0.904 / 1.029;
- Holt-Winters on hourly counts with a 168-hour season, 28 or 56 days: 1.446 to
  1.719 / 1.551 to 1.645;
- the mean of the last 7, 14, 28 or 56 days: 0.969 to 1.352 / 0.921 to 1.257,
  and weekday factors of the last 4 or 8 weeks times those means: 0.969 to 1.046
  / 0.940 to 1.097;
- the same days a year earlier, scaled by the last 28 days over the same 28 days a
  year earlier (2012 months only): 1.239 / 1.076 against the naive on 2012.

The model and the naive miss on the same months: the model's and the naive's
signed errors correlate at 0.97 (day 10) and 0.95 (day 20). The four months with the
largest naive error carry 45 % (day 10) and 52 % (day 20) of it. From day 10 they
include September 2011, whose days 5 to 8 were rainy and low, and March 2012, which
turned warm after the 10th. Both days include December 2012, whose last ten days
(Christmas, cold and rain) fell to a third of its first ten. Without those four
months the model is still at 0.96 and 0.99.

The weather reference was also tried with other regressors: working day in place
of weekday and holiday, temperature in place of feeling temperature, the weather
situation as two indicators in place of its mean, every combination of these on
28, 56 or 84 days. Those 24 regressions reached 0.647 to 0.865 / 0.729 to 0.904.
From day 20 none met the target even with the future weather. From day 10, 5 of
them did (all on 56 days), so whether the reference misses there depends on the
regressors chosen.

The weighted MAPE (sum of absolute errors over sum of naive errors) gives 0.958 /
0.966 for this configuration and the RMSE ratio 0.922 / 0.960, so the picture
does not depend on the error measure. The ratio of median absolute percentage
errors is lower, 0.868 / 0.696, because the model beats the naive on quiet
months and both miss the same weather-driven months by similar amounts.
"""

from __future__ import annotations

import csv
import math
import statistics
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

from detector.evaluation.data import dataset
from detector.forecast import INTERVAL_SCALE, SeasonalForm, forecast_period_end

CUTOFF_DAYS = (10, 20)
INTERVAL_PCT = 80
# Counts have a weekly pattern that scales with the annual level, so the season
# is multiplicative, and a year of history estimates it from every season.
SEASONAL: SeasonalForm = "multiplicative"
HISTORY_DAYS = 365
# TODO: the model's MAPE is 0.96 (day 10) and 0.95 (day 20) of the seasonal
# naive's, against a target of at most 0.7. The misses are weather-driven level
# shifts that no variant of the model predicts (see the module docstring). This
# ends when the target is restated for a forecast from spend history alone, or
# when the evaluation uses a trace whose level shifts the history can predict.
COVERAGE_TARGET = (0.7, 0.9)
# A short window lets the weather reference follow the level of the counts, which
# moves with the season and grows from one year to the next, without a trend term.
WEATHER_FIT_DAYS = 56


@dataclass(frozen=True)
class DayWeather:
    """Calendar columns of one day and the means of its hourly weather readings."""

    weekday: int  # 0 is Sunday, as in the file
    holiday: bool
    weathersit: float  # 1 clear to 4 heavy rain, snow or fog
    atemp: float  # feeling temperature in Celsius divided by 50, as in the file
    hum: float  # relative humidity divided by 100
    windspeed: float  # divided by 67


def daily_counts(path: Path) -> dict[date, Decimal]:
    totals: dict[date, Decimal] = defaultdict(Decimal)
    with path.open(newline="") as stream:
        for row in csv.DictReader(stream):
            totals[date.fromisoformat(row["dteday"])] += Decimal(row["cnt"])
    return dict(totals)


def daily_weather(path: Path) -> dict[date, DayWeather]:
    """Read the weekday, holiday and mean hourly weather of each day in the file."""
    hours: dict[date, list[dict[str, str]]] = defaultdict(list)
    with path.open(newline="") as stream:
        for row in csv.DictReader(stream):
            hours[date.fromisoformat(row["dteday"])].append(row)
    return {
        day: DayWeather(
            weekday=int(rows[0]["weekday"]),
            holiday=rows[0]["holiday"] == "1",
            weathersit=statistics.fmean(float(row["weathersit"]) for row in rows),
            atemp=statistics.fmean(float(row["atemp"]) for row in rows),
            hum=statistics.fmean(float(row["hum"]) for row in rows),
            windspeed=statistics.fmean(float(row["windspeed"]) for row in rows),
        )
        for day, rows in hours.items()
    }


def weather_row(day: DayWeather) -> list[float]:
    """Return the regressors of one day for the weather reference.

    They are an intercept, indicators for Monday to Saturday (Sunday is the base),
    the holiday flag, the feeling temperature and its square (rentals fall in the
    heat as well as in the cold), humidity, wind speed and the weather situation.
    """
    weekdays = [float(day.weekday == weekday) for weekday in range(1, 7)]
    return [
        1.0,
        *weekdays,
        float(day.holiday),
        day.atemp,
        day.atemp**2,
        day.hum,
        day.windspeed,
        day.weathersit,
    ]


def predict_remaining(
    known: np.ndarray, counts: np.ndarray, remaining: np.ndarray
) -> float:
    """Fit ``counts`` on ``known`` by least squares and sum the fit over ``remaining``.

    Each row is one day's regressors. ``numpy.linalg.lstsq`` returns the
    minimum-norm solution when columns are collinear. So a column that is constant zero in the fit, such as the holiday
    flag in a window without a holiday, gets a coefficient of 0.
    """
    coefficients, *_ = np.linalg.lstsq(known, counts, rcond=None)
    return float((remaining @ coefficients).sum())


def weather_reference(
    daily: dict[date, Decimal],
    weather: dict[date, DayWeather],
    cutoff: date,
    end: date,
    spent: Decimal,
) -> Decimal:
    """Return the spend to date plus the remaining days predicted from their weather.

    The regression is fitted on the counts of the ``WEATHER_FIT_DAYS`` days before
    ``cutoff`` only. The recorded weather of ``cutoff`` to ``end`` is the one input
    from the future, which is why this is a reference and not a forecast.
    """
    fit_days = [
        day
        for day in (cutoff - timedelta(days=i) for i in range(WEATHER_FIT_DAYS, 0, -1))
        if day in weather
    ]
    remaining_days = [
        cutoff + timedelta(days=i) for i in range((end - cutoff).days + 1)
    ]
    known = np.array([weather_row(weather[day]) for day in fit_days])
    counts = np.array([float(daily.get(day, Decimal(0))) for day in fit_days])
    remaining = np.array([weather_row(weather[day]) for day in remaining_days])
    return spent + Decimal(predict_remaining(known, counts, remaining))


def _month_end(day: date) -> date:
    following = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
    return following - timedelta(days=1)


def _cases(daily: dict[date, Decimal]) -> list[tuple[date, date]]:
    """Return (cutoff day, month end) pairs: the cutoff day is the first unknown day."""
    first, last = min(daily), max(daily)
    cases = []
    month = date(first.year, 3, 1)
    while month <= last:
        for cutoff in CUTOFF_DAYS:
            cases.append((month.replace(day=cutoff), _month_end(month)))
        month = _month_end(month) + timedelta(days=1)
    return cases


def _forecasts(
    daily: dict[date, Decimal],
    weather: dict[date, DayWeather],
    cutoff: date,
    end: date,
    scale: float,
) -> dict[str, Any]:
    first = min(daily)
    history = [
        daily.get(first + timedelta(days=i), Decimal(0))
        for i in range((cutoff - first).days)
    ]
    month_start = cutoff.replace(day=1)
    spent = sum(
        (
            daily.get(month_start + timedelta(days=i), Decimal(0))
            for i in range((cutoff - month_start).days)
        ),
        Decimal(0),
    )
    result = forecast_period_end(
        history,
        cutoff - timedelta(days=1),
        end,
        spent,
        seasonal=SEASONAL,
        interval_scale=scale,
        history_days=HISTORY_DAYS,
    )
    remaining = (end - cutoff).days + 1
    naive = spent + sum(history[-7 + (i % 7)] for i in range(remaining))
    run_rate = spent / (cutoff - month_start).days * ((end - month_start).days + 1)
    actual = sum(
        (
            daily.get(month_start + timedelta(days=i), Decimal(0))
            for i in range((end - month_start).days + 1)
        ),
        Decimal(0),
    )
    return {
        "actual": actual,
        "model": result.month_end_usd,
        "lower": result.lower_usd,
        "upper": result.upper_usd,
        "method": result.method,
        "naive": naive,
        "run_rate": run_rate,
        "weather_reference": weather_reference(daily, weather, cutoff, end, spent),
    }


def _error(forecast: Decimal, actual: Decimal) -> float:
    return float(abs(forecast - actual) / actual)


def run() -> dict[str, Any]:
    """Forecast every month, calibrate the scale on 2011 and report 2012 coverage."""
    path = dataset("traces/uci-bike-sharing/hour.csv")
    daily = daily_counts(path)
    weather = daily_weather(path)
    cases = _cases(daily)
    rows = [
        (cutoff, _forecasts(daily, weather, cutoff, end, 1.0)) for cutoff, end in cases
    ]
    needed = [_needed_scale(row) for cutoff, row in rows if cutoff.year == 2011]
    calibrated = _round_up(float(np.quantile(needed, INTERVAL_PCT / 100)))
    held_out = [row for cutoff, row in rows if cutoff.year == 2012]
    report: dict[str, Any] = {
        "months": len(cases) // len(CUTOFF_DAYS),
        "seasonal": SEASONAL,
        "history_days": HISTORY_DAYS,
        "weather_fit_days": WEATHER_FIT_DAYS,
        "interval_scale_default": INTERVAL_SCALE,
        "interval_scale_calibrated_2011": calibrated,
        "coverage_2012_default_scale": round(_coverage(held_out, INTERVAL_SCALE), 3),
        "coverage_2012_calibrated_scale": round(_coverage(held_out, calibrated), 3),
        "coverage_2012_unscaled": round(_coverage(held_out, 1.0), 3),
        "coverage_all_default_scale": round(
            _coverage([row for _, row in rows], INTERVAL_SCALE), 3
        ),
        "coverage_default_scale_by_year": {
            str(year): round(
                _coverage(
                    [row for cutoff, row in rows if cutoff.year == year],
                    INTERVAL_SCALE,
                ),
                3,
            )
            for year in sorted({cutoff.year for cutoff, _ in rows})
        },
        "coverage_target": list(COVERAGE_TARGET),
    }
    for cutoff_day in CUTOFF_DAYS:
        chosen = [row for cutoff, row in rows if cutoff.day == cutoff_day]
        model = statistics.mean(_error(r["model"], r["actual"]) for r in chosen)
        naive = statistics.mean(_error(r["naive"], r["actual"]) for r in chosen)
        run_rate = statistics.mean(_error(r["run_rate"], r["actual"]) for r in chosen)
        weather_ref = statistics.mean(
            _error(r["weather_reference"], r["actual"]) for r in chosen
        )
        report[f"from_day_{cutoff_day}"] = {
            "mape_model": round(model, 4),
            "mape_seasonal_naive": round(naive, 4),
            "mape_run_rate": round(run_rate, 4),
            "model_over_naive": round(model / naive, 3),
            "mape_weather_reference": round(weather_ref, 4),
            "weather_reference_over_naive": round(weather_ref / naive, 3),
        }
    return report


def _needed_scale(row: dict[str, Any]) -> float:
    """Return the smallest scale of the unscaled interval that contains the actual."""
    mean, actual = row["model"], row["actual"]
    half = row["upper"] - mean if actual >= mean else mean - row["lower"]
    if half <= 0:
        return 0.0 if actual == mean else float("inf")
    return float(abs(actual - mean) / half)


def _coverage(rows: list[dict[str, Any]], scale: float) -> float:
    inside = sum(1 for row in rows if _needed_scale(row) <= scale)
    return inside / len(rows)


def _round_up(scale: float) -> float:
    return max(1.0, math.ceil(scale * 10) / 10)
