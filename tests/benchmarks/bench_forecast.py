"""Measure the cost of one month-end forecast on 56 days of history.

Run with ``.venv/bin/python tests/benchmarks/bench_forecast.py``. It prints the
time of one forecast (a weekly-seasonal ETS fit plus the simulated interval), the
extrapolated capacity of one core, and the throughput of 200 forecasts on a pool of
2 worker processes. It prints figures only and asserts nothing about timings.

Wall time includes waiting for the CPU when other processes share the machine, so
the CPU time of the forecasting process is printed next to it.

OpenBLAS starts one thread per core by default. An ETS fit gains no speed from them
but spends about twice the CPU time, and a process pool then oversubscribes the
cores, so the benchmark sets OPENBLAS_NUM_THREADS=1 unless the environment sets it.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import platform
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import date, timedelta
from decimal import Decimal

import numpy as np
import statsmodels  # type: ignore[import-untyped]

from detector.forecast import forecast_period_end

HISTORY_DAYS = 56
LAST_DAY = date(2025, 6, 20)
PERIOD_END = date(2025, 6, 30)
SINGLE_RUNS = 7
POOL_FITS = 200
POOL_WORKERS = 2


def history_usd(seed: int) -> list[Decimal]:
    """Return 56 days of weekly spend: $100 weekdays, $30 weekends, noise sd $12."""
    rng = np.random.default_rng(seed)
    first_day = LAST_DAY - timedelta(days=HISTORY_DAYS - 1)
    values = []
    for offset in range(HISTORY_DAYS):
        day = first_day + timedelta(days=offset)
        mean_usd = 100.0 if day.weekday() < 5 else 30.0
        values.append(Decimal(str(round(mean_usd + rng.normal(0.0, 12.0), 2))))
    return values


def run_forecast(seed: int) -> tuple[str, float]:
    """Forecast one synthetic tenant and return the method used and the CPU seconds."""
    history = history_usd(seed)
    spent_usd = sum(history[-20:], Decimal(0))
    started_cpu_s = time.process_time()
    method = forecast_period_end(history, LAST_DAY, PERIOD_END, spent_usd).method
    return method, time.process_time() - started_cpu_s


def time_single_fits() -> tuple[float, float]:
    """Return the median wall and CPU seconds of one forecast, after a warm-up call."""
    run_forecast(0)
    wall_s = []
    cpu_s = []
    for seed in range(1, SINGLE_RUNS + 1):
        started = time.perf_counter()
        _, fit_cpu_s = run_forecast(seed)
        wall_s.append(time.perf_counter() - started)
        cpu_s.append(fit_cpu_s)
    return statistics.median(wall_s), statistics.median(cpu_s)


def time_pool_fits() -> tuple[float, float, dict[str, int]]:
    """Return the wall seconds and mean CPU seconds of POOL_FITS pooled forecasts."""
    with ProcessPoolExecutor(max_workers=POOL_WORKERS) as pool:
        list(pool.map(run_forecast, range(POOL_WORKERS)))  # start and warm the workers
        started = time.perf_counter()
        results = list(pool.map(run_forecast, range(POOL_FITS), chunksize=10))
        elapsed_s = time.perf_counter() - started
    counts: dict[str, int] = {}
    for method, _ in results:
        counts[method] = counts.get(method, 0) + 1
    mean_cpu_s = statistics.mean(cpu_s for _, cpu_s in results)
    return elapsed_s, mean_cpu_s, counts


def main() -> None:
    print(
        f"python {platform.python_version()}, statsmodels {statsmodels.__version__}, "
        f"{platform.machine()}, os.cpu_count() = {os.cpu_count()}"
    )
    print(f"history {HISTORY_DAYS} days, forecast {(PERIOD_END - LAST_DAY).days} days")
    print(f"OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}")

    print(f"load average before: {os.getloadavg()[0]:.2f}")

    single_s, single_cpu_s = time_single_fits()
    print(
        f"one forecast (median of {SINGLE_RUNS}): {single_s * 1000:.1f} ms wall, "
        f"{single_cpu_s * 1000:.1f} ms CPU"
    )
    print(f"extrapolated, one core: {3600 / single_cpu_s:,.0f} forecasts per CPU hour")
    for tenants in (1_000, 10_000):
        print(
            f"extrapolated, one core: {tenants:,} tenants in "
            f"{tenants * single_cpu_s:,.0f} CPU s"
        )

    pool_s, pool_cpu_s, methods = time_pool_fits()
    fits_per_s = POOL_FITS / pool_s
    print(
        f"{POOL_FITS} forecasts on {POOL_WORKERS} processes: {pool_s:.2f} s wall, "
        f"{fits_per_s:.2f} forecasts/s, {fits_per_s / POOL_WORKERS:.2f} per core, "
        f"{pool_cpu_s * 1000:.1f} ms CPU per forecast (methods {methods})"
    )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
