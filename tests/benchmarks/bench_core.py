"""Core throughput next to a plain loop, and the demo's peak memory.

Both loops read the same ServeGen-derived events from memory. The plain loop only
decodes each line with the same decoder and adds its cost (tokens times a fixed
price) into a dict keyed by tenant; the core loop decodes and calls
``Engine.process`` with the demo rules (pricing, dedup, windows, periods, all
tiers, ticks and forecasts). The runs alternate, three each, and the medians are
compared, so both see the same machine load. Run:

    .venv/bin/python tests/benchmarks/bench_core.py [--days N]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

from detector.decode import decode_record
from detector.demo import servegen
from detector.engine import Engine
from detector.pricing import Pricer
from detector.ruleload import load_rules

INPUT_USD_PER_TOKEN = Decimal("1.60") / 1_000_000
OUTPUT_USD_PER_TOKEN = Decimal("6.40") / 1_000_000


def plain_loop(lines: list[bytes]) -> int:
    totals: dict[str, Decimal] = {}
    count = 0
    for line in lines:
        events, _ = decode_record(line)
        for event in events:
            cost = (event.input_tokens or 0) * INPUT_USD_PER_TOKEN + (
                event.output_tokens or 0
            ) * OUTPUT_USD_PER_TOKEN
            totals[event.tenant] = totals.get(event.tenant, Decimal(0)) + cost
            count += 1
    return count


def core_loop(lines: list[bytes]) -> int:
    rules = load_rules(servegen.DEMO_RULES)
    engine = Engine(rules, Pricer(rules.prices))
    count = 0
    for line in lines:
        events, _ = decode_record(line)
        for event in events:
            engine.process(event)
            count += 1
    return count


def timed(loop: Callable[[list[bytes]], int], lines: list[bytes]) -> float:
    started = time.perf_counter()
    count = loop(lines)
    return count / (time.perf_counter() - started)


def demo_peak_memory_mib() -> float:
    """Run the full demo in a child process and return its peak resident memory."""
    with tempfile.TemporaryDirectory() as out:
        subprocess.run(
            [sys.executable, "-m", "detector.cli", "demo", "--quiet", "--no-progress",
             "--out", out],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=7, help="days of demo traffic")
    parser.add_argument("--no-memory", action="store_true", help="skip the demo run")
    args = parser.parse_args()

    lines = list(servegen.generate_events(day_count=args.days))
    print(f"{len(lines):,} events ({args.days} days of the demo traffic), one core")
    plain: list[float] = []
    core: list[float] = []
    for _ in range(3):
        plain.append(timed(plain_loop, lines))
        core.append(timed(core_loop, lines))
    plain_rate = statistics.median(plain)
    core_rate = statistics.median(core)
    print(f"plain loop (decode + cost into a dict): {plain_rate:10,.0f} events/s")
    print(f"backtest core (decode + Engine.process): {core_rate:10,.0f} events/s")
    print(f"core / plain: {core_rate / plain_rate:.2f} (target >= 0.2)")
    if not args.no_memory:
        print(f"demo peak memory (14 days, 437k events): {demo_peak_memory_mib():.0f} MiB")


if __name__ == "__main__":
    main()
