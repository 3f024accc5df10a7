"""Print Pricer.price and genai_prices.calc_price timings in microseconds per call.

Run: .venv/bin/python tests/benchmarks/bench_pricing.py

Each case prices the same usage both ways after one warm-up call, so the Pricer
timing is its cached path. The figures are the fastest of three repeats and depend
on the machine; the script prints them and asserts nothing about them.
"""

from __future__ import annotations

import timeit
from datetime import UTC, datetime
from typing import Any

import genai_prices
from genai_prices import Usage

from detector.events import Event
from detector.pricing import Pricer

# calc_price is more than ten times slower, so it gets fewer calls per repeat.
PRICER_CALLS = 20_000
CALC_PRICE_CALLS = 1_000
REPEATS = 3

# (label, provider, model, usage, event time)
CASES: list[tuple[str, str, str, dict[str, int], datetime]] = [
    (
        "gpt-4o, cached prompt",
        "openai",
        "gpt-4o",
        {"input_tokens": 2006, "cache_read_tokens": 1920, "output_tokens": 300},
        datetime(2025, 6, 2, 10, 0, tzinfo=UTC),
    ),
    (
        "o3, dated prices",
        "openai",
        "o3",
        {"input_tokens": 10_000, "output_tokens": 1_000},
        datetime(2025, 6, 12, 10, 0, tzinfo=UTC),
    ),
    (
        "deepseek-chat, time of day",
        "deepseek",
        "deepseek-chat",
        {"input_tokens": 10_000, "output_tokens": 1_000},
        datetime(2025, 6, 2, 3, 0, tzinfo=UTC),
    ),
    (
        "claude-sonnet-4-5, 250k tier",
        "anthropic",
        "claude-sonnet-4-5",
        {"input_tokens": 250_000, "cache_read_tokens": 40_000, "output_tokens": 2_000},
        datetime(2025, 6, 2, 10, 0, tzinfo=UTC),
    ),
]


def _microseconds_per_call(function: Any, calls: int) -> float:
    seconds = min(timeit.repeat(function, number=calls, repeat=REPEATS))
    return seconds / calls * 1e6


def main() -> None:
    pricer = Pricer()
    print(f"{'case':32} {'Pricer.price':>14} {'calc_price':>12}  (us per call)")
    for label, provider, model, usage, timestamp in CASES:
        event = Event(
            timestamp=timestamp,
            request_id="bench",
            tenant="acme",
            provider=provider,
            request_model=model,
            input_tokens=usage["input_tokens"],
            output_tokens=usage["output_tokens"],
            cache_read_tokens=usage.get("cache_read_tokens", 0),
        )
        genai_usage = Usage(**usage)

        def price_event(event: Event = event) -> object:
            return pricer.price(event)

        def calc_price(
            genai_usage: Usage = genai_usage,
            model: str = model,
            provider: str = provider,
            timestamp: datetime = timestamp,
        ) -> object:
            return genai_prices.calc_price(
                genai_usage,
                model,
                provider_id=provider,
                genai_request_timestamp=timestamp,
            )

        price_event()
        pricer_us = _microseconds_per_call(price_event, PRICER_CALLS)
        calc_price_us = _microseconds_per_call(calc_price, CALC_PRICE_CALLS)
        print(f"{label:32} {pricer_us:14.2f} {calc_price_us:12.2f}")


if __name__ == "__main__":
    main()
