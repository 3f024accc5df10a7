"""Core throughput with and without latency rules, side by side.

Every run decodes the same demo events (ServeGen-derived, with time to first
token and duration per request) and calls ``Engine.process``. The rule sets are
the demo rules alone, the demo rules plus a p95 TTFT threshold and an error-rate
threshold per tenant, route and model, and those plus a rate-of-change rule on
the p95 TTFT, which also keeps hourly sketches. Runs alternate, three per rule
set, and the medians are printed with the sketch memory of the last run, then
the memory of one day of latencies in one sketch, by tracemalloc and by
``sketch.memory_bytes``. Run:

    .venv/bin/python tests/benchmarks/bench_signals.py [--days N]
"""

from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc
from typing import Any

import numpy as np

from detector import sketch
from detector.config import RateOfChangeRule, RuleSet, ThresholdRule
from detector.decode import decode_record
from detector.demo import servegen
from detector.engine import Engine
from detector.pricing import Pricer
from detector.ruleload import load_rules

SERIES = ["tenant", "route", "model"]
TTFT_THRESHOLD: dict[str, Any] = {
    "id": "bench-ttft-p95",
    "tier": "absolute",
    "signal": "ttft_ms",
    "quantile": 0.95,
    "min_requests": 20,
    "series": SERIES,
    "window": "15m",
    "threshold": 5000,
}
ERROR_RATE: dict[str, Any] = {
    "id": "bench-error-rate",
    "tier": "absolute",
    "signal": "error_rate",
    "min_requests": 50,
    "series": SERIES,
    "window": "15m",
    "threshold": "0.05",
}
TTFT_RISE: dict[str, Any] = {
    "id": "bench-ttft-rise",
    "tier": "rate_of_change",
    "signal": "ttft_ms",
    "quantile": 0.95,
    "min_requests": 20,
    "series": SERIES,
    "window": "1h",
    "min_ratio": 2,
    "min_increase": 500,
}


def rule_sets() -> dict[str, RuleSet]:
    demo = load_rules(servegen.DEMO_RULES)
    thresholds = (
        ThresholdRule.model_validate(TTFT_THRESHOLD),
        ThresholdRule.model_validate(ERROR_RATE),
    )
    rise = (RateOfChangeRule.model_validate(TTFT_RISE),)
    return {
        "demo rules": demo,
        "+ p95 TTFT and error-rate thresholds": demo.model_copy(
            update={"rules": demo.rules + thresholds}
        ),
        "+ those and p95 TTFT rate of change": demo.model_copy(
            update={"rules": demo.rules + thresholds + rise}
        ),
    }


def run_core(rules: RuleSet, lines: list[bytes]) -> tuple[float, Engine]:
    engine = Engine(rules, Pricer(rules.prices))
    count = 0
    started = time.perf_counter()
    for line in lines:
        events, _ = decode_record(line)
        for event in events:
            engine.process(event)
            count += 1
    return count / (time.perf_counter() - started), engine


def sketch_memory_mib(engine: Engine) -> float:
    """Return the estimated memory of the latency values kept in buckets.

    That is ``SignalStats.memory_bytes`` of every minute and hour bucket: the
    sketches and the values not yet folded into them. Running window stats and
    the counters are left out.
    """
    total = 0
    for state in engine.tenants.values():
        for series in state.series.values():
            for buckets in (series.fine_stats, series.coarse_stats):
                for stats in buckets.values():
                    total += stats.memory_bytes()
    return total / 2**20


def day_sketch_memory() -> tuple[int, int, int]:
    """Return tracemalloc bytes, ``sketch.memory_bytes`` and buckets of one day.

    The day is 86,400 log-normal latencies (median 1.2 s, log standard
    deviation 0.9) added to one sketch, and its p95 is read once.
    """
    latencies_ms = np.random.default_rng(7).lognormal(np.log(1200.0), 0.9, 86_400)
    values = latencies_ms.tolist()
    tracemalloc.start()
    before, _ = tracemalloc.get_traced_memory()
    day = sketch.new_sketch()
    for value in values:
        sketch.add(day, value)
    day.quantile(0.95)
    traced = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return traced, sketch.memory_bytes(day), len(day.bins)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=7, help="days of demo traffic")
    args = parser.parse_args()

    lines = list(servegen.generate_events(day_count=args.days))
    print(f"{len(lines):,} events ({args.days} days of the demo traffic), one core")
    sets = rule_sets()
    rates: dict[str, list[float]] = {name: [] for name in sets}
    engines: dict[str, Engine] = {}
    for _ in range(3):
        for name, rules in sets.items():
            rate, engines[name] = run_core(rules, lines)
            rates[name].append(rate)
    base = statistics.median(rates["demo rules"])
    print(f"{'rules':<40} {'events/s':>10} {'x demo':>7} {'sketch MiB':>11}")
    for name, measured in rates.items():
        median = statistics.median(measured)
        memory = sketch_memory_mib(engines[name])
        print(f"{name:<40} {median:>10,.0f} {median / base:>7.2f} {memory:>11.1f}")
    traced, estimated, buckets = day_sketch_memory()
    print(
        f"one day of latencies in one sketch: {traced:,} bytes by tracemalloc, "
        f"{estimated:,} by sketch.memory_bytes, {buckets} buckets"
    )


if __name__ == "__main__":
    main()
