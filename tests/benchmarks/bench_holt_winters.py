"""Refit and cheap update of 10,000 tenant forecasts, and DDSketch memory per series.

Run with ``.venv/bin/python tests/benchmarks/bench_holt_winters.py``. It prints:

- the wall time of a full refit (``forecast_period_end`` without a fitted model:
  ETS fit, checks and simulated interval) of 10,000 synthetic tenants on a pool of
  2 worker processes. ``--sample N`` refits only the first N tenants and
  extrapolates linearly to 10,000, and the output marks the figure as an
  extrapolation and prints N;
- the wall time of the cheap update of all 10,000 tenants three days later
  (``forecast_period_end`` with the fitted model, no optimiser) on the same pool
  and on one core. In sample mode tenant i repeats the history and parameters of
  sampled tenant i mod N;
- the memory of one DDSketch (``detector.sketch``) holding one day of latencies,
  measured with tracemalloc, next to ``sketch.memory_bytes``.

Each tenant has 56 days of daily spend ending on June 20, 2025. Its level is drawn
log-normally between about $1 and $1,000 a day, with a weekend share of 20 % to
100 % of weekday spend, a trend of -1 % to +1 % a day and Gaussian noise of 5 % to
30 %. One tenant in ten also has idle days with zero spend. The latencies are 86,400 log-normal
values (one request a second) with a median of 1.2 s and a log standard deviation
of 0.9, roughly the spread of LLM request durations.

It prints figures only and asserts nothing about timings. Wall time includes waiting
for the CPU when other processes share the machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import tracemalloc
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import date, timedelta
from decimal import Decimal

import numpy as np

from detector import sketch
from detector.forecast import FittedModel, forecast_period_end

TENANTS = 10_000
HISTORY_DAYS = 56
UPDATE_AFTER_DAYS = 3
LAST_DAY = date(2025, 6, 20)
PERIOD_END = date(2025, 6, 30)
WORKERS = 2
CHUNK = 50
LATENCIES_PER_DAY = 86_400


def tenant_history(seed: int, days: int) -> list[Decimal]:
    """Return ``days`` days of daily spend for one synthetic tenant, oldest first."""
    rng = np.random.default_rng(seed)
    level_usd = float(np.exp(rng.uniform(0.0, 6.9)))
    weekend_share = rng.uniform(0.2, 1.0)
    trend = rng.uniform(-0.01, 0.01)
    noise = rng.uniform(0.05, 0.3)
    idle = rng.random() < 0.1
    first_day = LAST_DAY - timedelta(days=HISTORY_DAYS - 1)
    values = []
    for offset in range(days):
        day = first_day + timedelta(days=offset)
        mean_usd = level_usd * (1 + trend) ** offset
        if day.weekday() >= 5:
            mean_usd *= weekend_share
        amount_usd = max(0.0, mean_usd * (1 + rng.normal(0.0, noise)))
        if idle and rng.random() < 0.15:
            amount_usd = 0.0
        values.append(Decimal(f"{amount_usd:.6f}"))
    return values


def month_to_date(history: Sequence[Decimal], last_day: date) -> Decimal:
    return sum(history[-last_day.day :], Decimal(0))


def refit(seeds: Sequence[int]) -> list[tuple[str, tuple[str, ...], FittedModel | None]]:
    """Refit each tenant and return its method, fallback codes and fitted model."""
    results: list[tuple[str, tuple[str, ...], FittedModel | None]] = []
    for seed in seeds:
        history = tenant_history(seed, HISTORY_DAYS)
        forecast = forecast_period_end(
            history,
            LAST_DAY,
            PERIOD_END,
            month_to_date(history, LAST_DAY),
            history_days=HISTORY_DAYS,
        )
        results.append((forecast.method, forecast.fallbacks, forecast.fitted))
    return results


def update(
    jobs: Sequence[tuple[list[Decimal], FittedModel | None]],
) -> list[tuple[str, bool]]:
    """Forecast each tenant three days later with its fitted model."""
    last_day = LAST_DAY + timedelta(days=UPDATE_AFTER_DAYS)
    results: list[tuple[str, bool]] = []
    for history, fitted in jobs:
        forecast = forecast_period_end(
            history,
            last_day,
            PERIOD_END,
            month_to_date(history, last_day),
            history_days=HISTORY_DAYS,
            fitted=fitted,
        )
        results.append((forecast.method, forecast.updated))
    return results


def chunks(items: Sequence[object], size: int) -> list[Sequence[object]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


def sketch_memory() -> tuple[int, int, int]:
    """Return tracemalloc bytes, memory_bytes and bucket count of one day's sketch."""
    rng = np.random.default_rng(7)
    latencies_s = rng.lognormal(np.log(1.2), 0.9, LATENCIES_PER_DAY).tolist()
    tracemalloc.start()
    before, _ = tracemalloc.get_traced_memory()
    day = sketch.new_sketch()
    for value in latencies_s:
        sketch.add(day, value)
    after, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return after - before, sketch.memory_bytes(day), len(day.bins)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sample",
        type=int,
        default=TENANTS,
        help=f"refit only this many tenants and extrapolate to {TENANTS} (default: all)",
    )
    args = parser.parse_args()
    sample = max(1, min(args.sample, TENANTS))

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()}")
    with ProcessPoolExecutor(max_workers=WORKERS) as pool:
        list(pool.map(refit, [[0], [1]]))  # start and warm the workers

        started = time.perf_counter()
        refits = [
            row
            for part in pool.map(refit, chunks(list(range(sample)), CHUNK))
            for row in part
        ]
        refit_s = time.perf_counter() - started
        methods = Counter(method for method, _, _ in refits)
        fallbacks = Counter(code for _, codes, _ in refits for code in codes)
        if sample < TENANTS:
            estimate_s = refit_s * TENANTS / sample
            print(
                f"full refit, {WORKERS} processes: {sample} tenants in {refit_s:.1f} s; "
                f"EXTRAPOLATED to {TENANTS} tenants: {estimate_s:.0f} s "
                f"({estimate_s / 60:.1f} min), sample size {sample}"
            )
        else:
            print(
                f"full refit, {WORKERS} processes: {TENANTS} tenants in {refit_s:.1f} s "
                f"({refit_s / 60:.1f} min), {1000 * refit_s * WORKERS / TENANTS:.1f} "
                "ms per tenant per core"
            )
        print(f"  methods {dict(methods)}, fallback steps {dict(fallbacks)}")

        # Histories are generated before the clock starts. Sending them to the
        # workers is timed, because the service sends each job to its executor.
        jobs = [
            (
                tenant_history(seed % sample, HISTORY_DAYS + UPDATE_AFTER_DAYS),
                refits[seed % sample][2],
            )
            for seed in range(TENANTS)
        ]
        started = time.perf_counter()
        updates = [row for part in pool.map(update, chunks(jobs, 500)) for row in part]
        pool_update_s = time.perf_counter() - started

    started = time.perf_counter()
    update(jobs)
    core_update_s = time.perf_counter() - started
    updated = sum(1 for _, was_update in updates if was_update)
    note = "" if sample == TENANTS else f" (tenant i repeats sampled tenant i mod {sample})"
    print(
        f"cheap update of {TENANTS} tenants {UPDATE_AFTER_DAYS} days later{note}: "
        f"{pool_update_s:.1f} s on {WORKERS} processes, {core_update_s:.1f} s on one "
        f"core; {updated} updated, {TENANTS - updated} refitted or run rate"
    )

    traced, estimated, buckets = sketch_memory()
    print(
        f"DDSketch of one day ({LATENCIES_PER_DAY} log-normal latencies): "
        f"{traced} bytes by tracemalloc, {estimated} bytes by sketch.memory_bytes, "
        f"{buckets} buckets"
    )


if __name__ == "__main__":
    main()
