"""Latency, error, refusal and prompt-cache signals over windows."""

from __future__ import annotations

import tracemalloc
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from ddsketch import DDSketch, LogarithmicMapping

from detector import sketch
from detector.events import Event
from detector.ruleload import check_rules
from detector.snapshot import dump_tenant, load_tenant
from detector.windows import (
    BucketSeries,
    Sample,
    SignalPlan,
    SignalStats,
    measure_key,
    parse_measure,
)
from tests.support import at, engine_for, firing, run, spend

P95_TTFT = measure_key("ttft_ms", 0.95, 1)
ERROR_RATE_MIN_4 = measure_key("error_rate", None, 4)
PLAN = SignalPlan(
    sketch_signals=("ttft_ms",),
    windows_s=(3600,),
    fine_retention_s=3600 + 360,
    coarse_retention_s=8 * 86400,
)
START_S = int(at("2026-05-04T10:00:00Z").timestamp())


def request(
    offset_s: int = 0,
    *,
    ttft_ms: float | None = None,
    duration_ms: float | None = None,
    output_tokens: int | None = 10,
    input_tokens: int | None = 100,
    cache_read_tokens: int = 0,
    finish_reasons: tuple[str, ...] = ("stop",),
    error_type: str | None = None,
    gap_ms: float | None = None,
) -> Event:
    return Event(
        timestamp=datetime.fromtimestamp(START_S + offset_s, UTC),
        request_id=f"r-{offset_s}-{ttft_ms}-{error_type}-{finish_reasons}",
        tenant="acme",
        provider="openai",
        request_model="gpt-4o",
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read_tokens,
        finish_reasons=finish_reasons,
        error_type=error_type,
        ttft_ms=ttft_ms,
        duration_ms=duration_ms,
        max_inter_token_gap_ms=gap_ms,
    )


def filled_stats(ttfts: list[float]) -> SignalStats:
    stats = SignalStats()
    for value in ttfts:
        stats.add(Sample(request(ttft_ms=value)), ("ttft_ms",))
    return stats


# ---------------------------------------------------------------------------
# Values per request
# ---------------------------------------------------------------------------


def test_sample_latency_values() -> None:
    """TTFT 200 ms, 1,200 ms in all and 11 tokens: 100 ms between tokens, 9.2 tokens/s."""
    sample = Sample(
        request(ttft_ms=200.0, duration_ms=1200.0, output_tokens=11, gap_ms=340.0)
    )

    assert sample.values["ttft_ms"] == 200.0
    assert sample.values["duration_ms"] == 1200.0
    assert sample.values["inter_token_ms"] == 100.0
    assert sample.values["max_inter_token_gap_ms"] == 340.0
    assert sample.values["output_tokens_per_s"] == pytest.approx(11 * 1000 / 1200)


def test_sample_skips_unknown_values() -> None:
    """One output token has no gap between tokens, and an unstreamed request no TTFT."""
    sample = Sample(request(duration_ms=900.0, output_tokens=1))

    assert "inter_token_ms" not in sample.values
    assert "ttft_ms" not in sample.values
    assert "max_inter_token_gap_ms" not in sample.values
    assert sample.values["output_tokens_per_s"] == pytest.approx(1000 / 900)


# ---------------------------------------------------------------------------
# Quantiles and merging
# ---------------------------------------------------------------------------


def test_window_p95_within_one_percent() -> None:
    """The p95 of 2,000 log-normal TTFTs is within 1 % of numpy's lower p95."""
    values = np.random.default_rng(11).lognormal(6.0, 0.7, 2000).tolist()

    reading = filled_stats(values).reading(parse_measure(P95_TTFT))

    exact = float(np.quantile(values, 0.95, method="lower"))
    assert reading.value is not None
    assert abs(float(reading.value) - exact) <= 0.01 * exact
    assert reading.count == 2000
    assert reading.enough


def test_known_quantiles_of_one_to_thousand() -> None:
    """For 1..1000 ms the p50 and p99 are within 1 % of 500 and 990."""
    stats = filled_stats([float(v) for v in range(1, 1001)])

    p50 = stats.reading(parse_measure(measure_key("ttft_ms", 0.5, 1))).value
    p99 = stats.reading(parse_measure(measure_key("ttft_ms", 0.99, 1))).value

    assert p50 is not None and abs(float(p50) - 500) <= 5
    assert p99 is not None and abs(float(p99) - 990) <= 9.9


def test_partitions_merge_to_union() -> None:
    """Two partitions' stats merged give the same p95 and counts as one of the union."""
    rng = np.random.default_rng(5)
    first, second = rng.lognormal(5.5, 0.4, 700), rng.lognormal(7.0, 0.9, 300)
    merged = filled_stats(first.tolist())
    merged.merge(filled_stats(second.tolist()))

    union = filled_stats(first.tolist() + second.tolist())

    for q in (0.5, 0.95, 0.99):
        measure = parse_measure(measure_key("ttft_ms", q, 1))
        assert merged.reading(measure) == union.reading(measure)
    assert merged.sketches["ttft_ms"].count == 1000


def test_rolling_window_equals_summed_window() -> None:
    """After two hours of sliding, the running p95 equals the p95 summed anew."""
    series = BucketSeries(7200 + 300, 8 * 86400, (3600,), PLAN)
    rng = np.random.default_rng(9)
    for offset_s in range(0, 7200, 20):
        event = request(offset_s, ttft_ms=float(rng.lognormal(6.0, 0.5)))
        series.add(START_S + offset_s, Decimal(0), 0)
        series.add_signals(START_S + offset_s, Sample(event))
    end_s = START_S + 7200

    rolling = series.window_reading(P95_TTFT, end_s, 3600)
    series.rolling.clear()
    summed = series.window_reading(P95_TTFT, end_s, 3600)

    assert rolling == summed
    assert rolling.count == 180


def test_two_hours_merge_in_coarse_buckets() -> None:
    """A window read from hourly buckets merges whole hours: 120 requests."""
    series = BucketSeries(7200 + 300, 8 * 86400, (3600,), PLAN)
    for minute in range(120):
        series.add(START_S + 60 * minute, Decimal(0), 0)
        series.add_signals(START_S + 60 * minute, Sample(request(ttft_ms=100.0 + minute)))

    total = series.coarse_total(P95_TTFT, START_S, START_S + 7200)
    reading = series.window_reading(measure_key("ttft_ms", 0.95, 1), START_S + 7200, 7200)

    assert abs(total - Decimal(214)) <= Decimal("2.14")
    assert reading.count == 120


def test_late_event_updates_past_hour() -> None:
    """A late request in a past hour changes that hour's cached reading."""
    series = BucketSeries(7200 + 300, 8 * 86400, (3600,), PLAN)
    count_key = measure_key("ttft_ms", 0.5, 1)
    for offset_s in (0, 600, 3700):
        series.add(START_S + offset_s, Decimal(0), 0)
        series.add_signals(START_S + offset_s, Sample(request(offset_s, ttft_ms=100.0)))
    before = series.window_reading(count_key, START_S + 3600, 7200)

    series.add(START_S + 3500, Decimal(0), 0)
    series.add_signals(START_S + 3500, Sample(request(3500, ttft_ms=100.0)))
    after = series.window_reading(count_key, START_S + 3600, 7200)

    assert before.count == 2
    assert after.count == 3


def test_quantile_matches_package() -> None:
    """The quantile equals DDSketch.get_quantile_value, zeros included."""
    values = [0.0] * 30 + np.random.default_rng(4).lognormal(3.0, 1.5, 500).tolist()
    part = sketch.new_sketch()
    reference = DDSketch(sketch.RELATIVE_ACCURACY)
    for value in values:
        sketch.add(part, value)
        reference.add(value)

    for q in (0.0, 0.01, 0.05, 0.06, 0.5, 0.95, 0.999, 1.0):
        assert sketch.quantile(part, q) == reference.get_quantile_value(q)


def test_bucket_key_matches_package() -> None:
    """``bucket_key`` gives the package mapping's key, and None for zero."""
    mapping = LogarithmicMapping(sketch.RELATIVE_ACCURACY)
    values = np.random.default_rng(6).lognormal(4.0, 3.0, 2000).tolist() + [1e-300, 1.0]

    for value in values:
        assert sketch.bucket_key(value) == mapping.key(value)
    assert sketch.bucket_key(0.0) is None
    with pytest.raises(ValueError, match="invalid latency -1.0"):
        sketch.bucket_key(-1.0)


def test_running_quantiles_match_package() -> None:
    """Quantiles read between merges, subtractions and adds equal a fresh DDSketch."""
    rng = np.random.default_rng(8)
    minutes = [
        rng.lognormal(5.0 + n % 3, 1.0, 40).tolist() + [0.0] * (n % 2) for n in range(30)
    ]
    parts = []
    for values in minutes:
        part = sketch.new_sketch()
        for value in values:
            sketch.add(part, value)
        parts.append(part)
    window = sketch.new_sketch()
    added: list[float] = []

    for n, part in enumerate(parts):
        window.merge(part)
        if n >= 5:
            window.subtract(parts[n - 5])
        for value in minutes[n][:3]:
            window.add(value)
            added.append(value)
        reference = DDSketch(sketch.RELATIVE_ACCURACY)
        for value in [v for m in minutes[max(0, n - 4) : n + 1] for v in m] + added:
            reference.add(value)
        for q in (0.0, 0.5, 0.9, 0.95, 0.99, 1.0):
            assert window.quantile(q) == reference.get_quantile_value(q), (n, q)
        assert window.count == reference.count


def test_subtract_undoes_merge() -> None:
    """Merging a sketch and subtracting it leaves the first sketch's quantiles."""
    base = sketch.new_sketch()
    extra = sketch.new_sketch()
    for value in (10.0, 20.0, 30.0):
        sketch.add(base, value)
    for value in (5000.0, 0.0):
        sketch.add(extra, value)
    expected = [sketch.quantile(base, q) for q in (0.0, 0.5, 1.0)]

    base.merge(extra)
    sketch.subtract(base, extra)

    assert [sketch.quantile(base, q) for q in (0.0, 0.5, 1.0)] == expected
    assert base.count == 3


# ---------------------------------------------------------------------------
# Ratios
# ---------------------------------------------------------------------------


def test_error_rate_with_min_requests() -> None:
    """One error in four requests is 0.25 once four requests are in."""
    stats = SignalStats()
    for error in (None, "timeout", None, None):
        stats.add(Sample(request(error_type=error)), ())

    reading = stats.reading(parse_measure(ERROR_RATE_MIN_4))

    assert reading.value == Decimal("0.25")
    assert reading.count == 4
    assert reading.enough


def test_error_rate_below_min_requests() -> None:
    """Two of three requests failing is not enough with min_requests 4."""
    stats = SignalStats()
    for error in ("timeout", "rate_limit", None):
        stats.add(Sample(request(error_type=error)), ())

    reading = stats.reading(parse_measure(ERROR_RATE_MIN_4))

    assert reading.value == Decimal("0.666667")
    assert not reading.enough


def test_refusal_rate_counts_content_filter() -> None:
    """content_filter and refusal both count: 2 of 5 requests is 0.4."""
    stats = SignalStats()
    for reasons in (("stop",), ("content_filter",), ("length",), ("refusal",), ()):
        stats.add(Sample(request(finish_reasons=reasons)), ())

    reading = stats.reading(parse_measure(measure_key("refusal_rate", None, 5)))

    assert reading.value == Decimal("0.4")
    assert reading.enough


def test_cache_hit_rate_is_token_share() -> None:
    """600 cached of 1,000 and 0 of 1,000 input tokens is 0.3. Unknown input is left out."""
    stats = SignalStats()
    stats.add(Sample(request(input_tokens=1000, cache_read_tokens=600)), ())
    stats.add(Sample(request(input_tokens=1000)), ())
    stats.add(Sample(request(input_tokens=None)), ())

    reading = stats.reading(parse_measure(measure_key("cache_hit_rate", None, 2)))

    assert reading.value == Decimal("0.3")
    assert reading.count == 2
    assert reading.enough


# ---------------------------------------------------------------------------
# The engine: thresholds on p95 TTFT and error rate
# ---------------------------------------------------------------------------

TTFT_SLO: dict[str, Any] = {
    "id": "ttft-p95",
    "tier": "absolute",
    "signal": "ttft_ms",
    "quantile": 0.95,
    "min_requests": 10,
    "series": ["tenant", "route", "model"],
    "window": "10m",
    "threshold": 1000,
}


def timed(offset_s: int, ttft_ms: float, route: str = "/chat", **fields: Any) -> Event:
    when = datetime.fromtimestamp(START_S + offset_s, UTC).isoformat()
    return spend("acme", when, "0.01", ttft_ms=ttft_ms, route=route, **fields)


def test_p95_ttft_fires_and_resolves() -> None:
    """Slow first tokens fire the p95 SLO, which resolves once they leave the window.

    At 10:10:30 the window [10:01, 10:11) contains 18 fast requests and 2 slow
    ones, so the p95 (rank 18.05 of 20) is a slow one. The last slow request,
    at 10:11:30, leaves the window at the 10:22 tick, while fast requests go on.
    """
    engine = engine_for({"rules": [TTFT_SLO]})
    fast = [timed(30 * n, 300.0) for n in range(20)]
    slow = [timed(600 + 30 * n, 2500.0) for n in range(4)]
    later = [timed(720 + 30 * n, 300.0) for n in range(40)]

    records = run(engine, fast + slow + later)

    fired = firing(records)
    assert len(fired) == 1
    assert fired[0].event_time == at("2026-05-04T10:10:30Z")
    assert fired[0].unit == "ms"
    assert fired[0].series == {"tenant": "acme", "route": "/chat", "model": "gpt-4o"}
    assert abs(fired[0].observed - Decimal(2500)) <= 25
    assert fired[0].details["requests"] == "20"
    assert fired[0].summary.startswith("p95 ttft_ms over the last 10 min is 2,")
    resolved = [r for r in records if r.status == "resolved"]
    assert len(resolved) == 1
    assert resolved[0].event_time == at("2026-05-04T10:22:00Z")
    assert "is back to" in resolved[0].summary
    assert "(below 1,000 ms)" in resolved[0].summary


def test_p95_ttft_waits_for_min_requests() -> None:
    """Nine slow requests stay under min_requests 10, and the tenth fires."""
    engine = engine_for({"rules": [TTFT_SLO]})

    nine = run(engine, [timed(10 * n, 3000.0) for n in range(9)])
    tenth = run(engine, [timed(95, 3000.0)])

    assert firing(nine) == []
    assert len(firing(tenth)) == 1


def test_ttft_series_split_by_route() -> None:
    """Only the slow route fires."""
    engine = engine_for({"rules": [TTFT_SLO]})
    events = [timed(10 * n, 3000.0, route="/slow") for n in range(10)]
    events += [timed(10 * n + 5, 100.0, route="/fast") for n in range(10)]

    records = run(engine, events)

    assert [r.series["route"] for r in firing(records)] == ["/slow"]


def test_error_rate_threshold_through_engine() -> None:
    """Three errors in 20 requests reach an error rate of 0.15 >= 0.1."""
    rule = {
        "id": "errors",
        "tier": "absolute",
        "signal": "error_rate",
        "min_requests": 20,
        "window": "1h",
        "threshold": "0.1",
    }
    engine = engine_for({"rules": [rule]})
    events = [timed(30 * n, 200.0, error_type="timeout" if n < 3 else None) for n in range(20)]

    records = run(engine, events)

    fired = firing(records)
    assert len(fired) == 1
    assert fired[0].observed == Decimal("0.15")
    assert fired[0].unit == "ratio"
    assert fired[0].summary == (
        "error_rate over the last 1 h is 15% (>= 10%) for tenant=acme"
    )


def test_cache_hit_rate_fires_below_floor() -> None:
    """A cache hit rate of 0.1 fires a rule with comparison <= 0.5."""
    rule = {
        "id": "cache",
        "tier": "absolute",
        "signal": "cache_hit_rate",
        "min_requests": 5,
        "window": "1h",
        "threshold": "0.5",
        "comparison": "<=",
    }
    engine = engine_for({"rules": [rule]})
    events = [
        timed(60 * n, 200.0, input_tokens=1000, cache_read_tokens=100) for n in range(5)
    ]

    records = run(engine, events)

    assert [r.observed for r in firing(records)] == [Decimal("0.1")]


def test_too_few_requests_resolves() -> None:
    """A firing error-rate alert resolves when its window falls under min_requests.

    The requests at 10:00:00 and 10:00:30 leave the window at the 10:11 tick.
    """
    rule = {
        "id": "errors",
        "tier": "absolute",
        "signal": "error_rate",
        "min_requests": 4,
        "window": "10m",
        "threshold": "0.5",
    }
    engine = engine_for({"rules": [rule]})
    run(engine, [timed(30 * n, 200.0, error_type="timeout") for n in range(4)])

    records = engine.advance_to(datetime.fromtimestamp(START_S + 900, UTC))

    assert [r.status for r in records] == ["resolved"]
    assert records[0].event_time == at("2026-05-04T10:11:00Z")
    assert records[0].summary == (
        "error_rate over the last 10 min has 2 requests, fewer than min_requests 4, "
        "so the alert resolves for tenant=acme"
    )


TTFT_RISE = {
    "id": "ttft-rise",
    "tier": "rate_of_change",
    "signal": "ttft_ms",
    "quantile": 0.95,
    "min_requests": 5,
    "window": "1h",
    "min_ratio": 2,
    "min_increase": 200,
}


def test_rate_of_change_on_p95_ttft() -> None:
    """A week of 300 ms first tokens, then 1,500 ms: a p95 rise of 5x fires."""
    rule = TTFT_RISE
    engine = engine_for({"rules": [rule]})
    week_s = 7 * 86400
    events = [timed(600 * n, 300.0) for n in range(week_s // 600 + 6)]
    slow = [timed(week_s + 3600 + 120 * n, 1500.0) for n in range(30)]

    records = run(engine, events + slow)

    fired = firing(records, "rate_of_change")
    assert len(fired) == 1
    assert fired[0].unit == "ms"
    assert abs(fired[0].observed - Decimal(1500)) <= 15
    assert abs(fired[0].baseline - Decimal(300)) <= 3
    assert fired[0].summary.startswith("p95 ttft_ms in the last 60 min is 1,")


def test_rate_of_change_skips_sparse_baseline_hours() -> None:
    """Two requests an hour last week give no p95 baseline: 300 ms now is no rise."""
    rule = TTFT_RISE
    engine = engine_for({"rules": [rule]})
    week_s = 7 * 86400
    sparse = [timed(1800 * n, 300.0) for n in range(week_s // 1800 + 2)]
    busy = [timed(week_s + 3600 + 120 * n, 300.0) for n in range(30)]

    records = run(engine, sparse + busy)

    assert firing(records, "rate_of_change") == []


def test_rate_of_change_uses_known_baseline_hours() -> None:
    """Sparse hours are left out; the busy ones of last week still form the baseline."""
    rule = {**TTFT_RISE, "recent_windows": 3}
    engine = engine_for({"rules": [rule]})
    week_s = 7 * 86400
    # Every 10 minutes for the first week, then 2 requests an hour for 4 hours:
    # the 3 recent windows are all sparse when the slow hour begins.
    steady = [timed(600 * n, 300.0) for n in range(week_s // 600)]
    sparse = [timed(week_s + 1800 * n, 300.0) for n in range(8)]
    slow = [timed(week_s + 4 * 3600 + 120 * n, 1500.0) for n in range(30)]

    records = run(engine, steady + sparse + slow)

    fired = firing(records, "rate_of_change")
    assert len(fired) == 1
    assert abs(fired[0].baseline - Decimal(300)) <= 3
    assert fired[0].details["recent_windows"] == "0"


# ---------------------------------------------------------------------------
# Memory and snapshots
# ---------------------------------------------------------------------------


def test_memory_estimate_near_tracemalloc() -> None:
    """``memory_bytes`` of one day of latencies is within 10 % of tracemalloc."""
    values = np.random.default_rng(7).lognormal(np.log(1200.0), 0.9, 86_400).tolist()
    tracemalloc.start()
    before, _ = tracemalloc.get_traced_memory()
    day = sketch.new_sketch()
    for value in values:
        sketch.add(day, value)
    assert day.quantile(0.95) is not None
    traced = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()

    estimate = sketch.memory_bytes(day)

    assert abs(estimate - traced) <= 0.1 * traced, (estimate, traced)


def test_pending_values_fold_into_sketch() -> None:
    """A bucket keeps its first values raw and reads the same p95 either way."""
    series = BucketSeries(7200 + 300, 8 * 86400, (), PLAN)
    for offset_s in range(40):
        series.add(START_S + offset_s, Decimal(0), 0)
        series.add_signals(START_S + offset_s, Sample(request(offset_s, ttft_ms=10.0 + offset_s)))
    bucket = series.fine_stats[START_S]

    assert len(bucket.pending) == 40 - 32
    assert bucket.sketches["ttft_ms"].count == 32
    reading = series.window_reading(P95_TTFT, START_S + 60, 60)
    assert reading.count == 40
    assert reading.value == filled_stats([10.0 + n for n in range(40)]).reading(
        parse_measure(P95_TTFT)
    ).value


def test_plan_only_for_rule_series() -> None:
    """Latency state is kept for the route-and-model spec only, one hour and a bit."""
    engine = engine_for({"rules": [TTFT_SLO]})
    run(engine, [timed(0, 300.0)])

    state = engine.tenants["acme"]
    planned = {spec for (spec, _), series in state.series.items() if series.plan}
    plan = state.retention.signal_plans[("tenant", "route", "model")]

    assert planned == {("tenant", "route", "model")}
    assert plan.sketch_signals == ("ttft_ms",)
    assert plan.fine_retention_s == 600 + 300 + 60
    assert plan.coarse_retention_s == 0


def test_fine_sketches_pruned_after_window() -> None:
    """Two hours on, only the minute buckets of the last 16 minutes keep sketches."""
    engine = engine_for({"rules": [TTFT_SLO]})
    run(engine, [timed(60 * n, 300.0) for n in range(121)])

    state = engine.tenants["acme"]
    series = next(s for s in state.series.values() if s.plan is not None)

    assert min(series.fine_stats) == START_S + 7200 - 960
    assert series.coarse_stats == {}


def test_reload_adds_and_drops_latency_state() -> None:
    """A reload that adds the SLO starts sketches. One that removes it drops them."""
    from detector.config import RuleSet

    engine = engine_for({"rules": []})
    run(engine, [timed(10 * n, 3000.0) for n in range(5)])

    engine.replace_rules(RuleSet.model_validate({"rules": [TTFT_SLO]}))
    records = run(engine, [timed(60 + 10 * n, 3000.0) for n in range(10)])

    assert [r.rule_id for r in firing(records)] == ["ttft-p95"]
    assert firing(records)[0].details["requests"] == "10"
    engine.replace_rules(RuleSet.model_validate({"rules": []}))
    series = engine.tenants["acme"].series.values()
    assert all(s.plan is None and not s.fine_stats for s in series)


def test_snapshot_round_trip_keeps_signals() -> None:
    """A restored tenant returns the same p95 and error rate as the original."""
    engine = engine_for({"rules": [TTFT_SLO]})
    rng = np.random.default_rng(2)
    events = [
        timed(7 * n, float(rng.lognormal(6.0, 0.5)), error_type="x" if n % 9 == 0 else None)
        for n in range(80)
    ]
    run(engine, events)
    original = engine.tenants["acme"]

    restored = load_tenant(dump_tenant(original), original.retention)

    end_s = START_S + 600
    errors = measure_key("error_rate", None, 1)
    for series_id, series in original.series.items():
        copy = restored.series[series_id]
        assert copy.fine_stats.keys() == series.fine_stats.keys()
        if series.plan is None:
            continue
        for key in (P95_TTFT, errors):
            assert copy.window_reading(key, end_s, 600) == series.window_reading(
                key, end_s, 600
            )
    assert dump_tenant(restored) == dump_tenant(original)


def test_old_snapshot_without_signals_loads() -> None:
    """A snapshot written before latency state existed loads with empty state."""
    import msgspec

    engine = engine_for({"rules": [TTFT_SLO]})
    run(engine, [timed(30 * n, 300.0) for n in range(5)])
    state = engine.tenants["acme"]
    document = msgspec.msgpack.decode(dump_tenant(state))
    for entry in document["series"]:
        del entry[5:]
    old = msgspec.msgpack.encode(document)

    restored = load_tenant(old, state.retention)

    route_series = [s for s in restored.series.values() if s.plan is not None]
    assert len(route_series) == 1
    assert route_series[0].fine_stats == {}
    assert sum(t.requests for t in route_series[0].fine.values()) == 5


# ---------------------------------------------------------------------------
# Rule validation
# ---------------------------------------------------------------------------

INVALID_RULES = """\
rules:
  - id: no-quantile
    tier: absolute
    signal: ttft_ms
    window: 1h
    threshold: 1000
  - id: quantile-on-spend
    tier: absolute
    signal: spend
    quantile: 0.95
    window: 1h
    threshold: 10
  - id: no-min-requests
    tier: rate_of_change
    signal: error_rate
    window: 1h
    min_ratio: 2
    min_increase: 0.05
  - id: percent-not-ratio
    tier: absolute
    signal: error_rate
    min_requests: 20
    window: 1h
    threshold: 5
  - id: spend-below
    tier: absolute
    signal: spend
    window: 1h
    threshold: 10
    comparison: "<="
  - id: quantile-above-one
    tier: absolute
    signal: duration_ms
    quantile: 95
    window: 1h
    threshold: 10
"""


def test_invalid_signal_options_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each bad signal option is reported with its file, line, field and value."""
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "alerts.yaml").write_text(INVALID_RULES)
    monkeypatch.chdir(tmp_path)

    ruleset, problems = check_rules(Path("rules"))

    assert ruleset is None
    assert [str(problem) for problem in problems] == [
        (
            "rules/alerts.yaml:2:5: error: rules[0].quantile: missing required field "
            "'quantile' for signal ttft_ms: add quantile: 0.95 (above 0 and at most 1) "
            "for the p95"
        ),
        (
            "rules/alerts.yaml:10:5: error: rules[1].quantile: quantile 0.95 is set but "
            "signal is spend: quantile applies to ttft_ms, inter_token_ms, "
            "max_inter_token_gap_ms, output_tokens_per_s, duration_ms only, so remove it"
        ),
        (
            "rules/alerts.yaml:13:5: error: rules[2].min_requests: missing required "
            "field 'min_requests' for signal error_rate: add the fewest requests a "
            "window must hold before its ratio counts, for example min_requests: 20"
        ),
        (
            "rules/alerts.yaml:24:5: error: rules[3].threshold: threshold 5 is above 1 "
            "but error_rate is a ratio from 0 to 1: write 5 % as 0.05"
        ),
        (
            "rules/alerts.yaml:30:5: error: rules[4].comparison: comparison '<=' is set "
            "but signal is spend: a total is checked as it rises, so use >= or >; a "
            "falling total is a rate_of_change rule with direction: down"
        ),
        (
            "rules/alerts.yaml:34:5: error: rules[5].quantile: invalid value 95: input "
            "should be less than or equal to 1"
        ),
    ]


def test_shipped_rules_load_signal_slo() -> None:
    """The example rules include a p95 TTFT SLO and an error-rate rule."""
    ruleset, problems = check_rules(Path(__file__).parent.parent / "rules")

    assert ruleset is not None
    assert [p for p in problems if p.severity == "error"] == []
    signals = {rule.id: getattr(rule, "signal", None) for rule in ruleset.rules}
    assert signals["ttft-p95-slo"] == "ttft_ms"
    assert signals["error-rate-high"] == "error_rate"


def test_quantile_label_in_rule() -> None:
    """A rule shows its quantile as p95 or p99.9 in alert texts."""
    rules = engine_for(
        {
            "rules": [
                TTFT_SLO,
                {**TTFT_SLO, "id": "ttft-p999", "quantile": 0.999},
            ]
        }
    ).rules.rules

    assert [rule.signal_label for rule in rules] == ["p95 ttft_ms", "p99.9 ttft_ms"]


def test_measure_key_round_trip() -> None:
    """A measure key parses back to its signal, quantile and minimum."""
    measure = parse_measure(measure_key("inter_token_ms", 0.99, 25))

    assert measure.signal == "inter_token_ms"
    assert measure.quantile == 0.99
    assert measure.min_requests == 25
    assert measure_key("spend", None, None) == "spend"

