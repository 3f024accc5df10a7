"""Planted spend spikes in real multi-tenant traffic.

Traffic is the ServeGen-derived demo traffic (``detector.demo.servegen``, 50 real
tenants, 1 request in 500). The first week is history. Spikes are planted only in
the second week, at random tenants and times drawn with a fixed seed, with sizes
1.5x to 10x and durations of 5 to 120 minutes, at least 12 hours apart within a
tenant. A spike of size ``k`` adds, every minute of its span, extra requests
whose cost is ``k - 1`` times the tenant's mean spend per minute in the same
hour one week earlier (its mean over the first week when that hour was idle), so
spend in the span is about ``k`` times the usual spend at that hour.

The engine runs the rate-of-change rule below on the events. A spike counts as
detected when an alert of its tenant fires between its start and its end plus
one rule window. Every other alert of the second week is a false alert. The delay
is the time from the spike's start to the firing.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np

from detector.alerts import AlertRecord
from detector.config import RuleSet, parse_duration_s
from detector.demo import servegen
from detector.engine import Engine
from detector.events import Event
from detector.pricing import Pricer

SIZES = (Decimal("1.5"), Decimal(2), Decimal(3), Decimal(5), Decimal(10))
DURATIONS_MIN = (5, 15, 30, 60, 120)
SPIKES_PER_CELL = 4
SEED = 7
MIN_GAP_S = 12 * 3600
MAX_DRAWS = 10_000
WEEK_S = 7 * 86400
# TODO: at 1 request in 500 most tenants spend less per 10 minutes than any useful
# floor, so recall is near 0 and false alerts far above target. Planting spikes
# only in tenants with enough sampled traffic, or a denser sample, ends this.
RULES: dict[str, Any] = {
    "rules": [
        {
            "id": "spend-spike",
            "tier": "rate_of_change",
            "window": "10m",
            "baseline_weeks": 1,
            "min_ratio": "2",
            "clear_ratio": "1.5",
            "min_increase": "0.05",
            "evaluate_every": "1m",
        }
    ]
}


@dataclass(frozen=True, slots=True)
class Spike:
    tenant: str
    start_s: int
    duration_s: int
    size: Decimal


def _events(columns: servegen.EventColumns) -> list[Event]:
    origin = servegen.ANCHOR.astimezone(UTC)
    times = columns.time_ms.tolist()
    clients = columns.client.tolist()
    inputs = columns.input_tokens.tolist()
    outputs = columns.output_tokens.tolist()
    return [
        Event(
            timestamp=origin + timedelta(milliseconds=time_ms),
            request_id=f"sg-{index}",
            tenant=f"client-{client}",
            provider=servegen.PROVIDER,
            request_model=servegen.MODEL,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
        )
        for index, (time_ms, client, input_tokens, output_tokens) in enumerate(
            zip(times, clients, inputs, outputs, strict=True)
        )
    ]


def _minute_spend(events: list[Event], pricer: Pricer) -> dict[str, dict[int, Decimal]]:
    spend: dict[str, dict[int, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for event in events:
        cost = pricer.price(event).cost_usd or Decimal(0)
        minute_s = int(event.timestamp_s) // 60 * 60
        spend[event.tenant][minute_s] += cost
    return spend


def plant(
    tenants: list[str], test_start_s: int, days: int, seed: int = SEED
) -> list[Spike]:
    """Draw the spikes: every size and duration ``SPIKES_PER_CELL`` times."""
    rng = np.random.default_rng(seed)
    taken: dict[str, list[int]] = defaultdict(list)
    spikes = []
    for size in SIZES:
        for duration_min in DURATIONS_MIN:
            for _ in range(SPIKES_PER_CELL):
                for _ in range(MAX_DRAWS):
                    tenant = tenants[int(rng.integers(len(tenants)))]
                    start_s = test_start_s + int(rng.integers(days * 86400 - 7200))
                    start_s -= start_s % 60
                    if all(abs(start_s - s) >= MIN_GAP_S for s in taken[tenant]):
                        break
                else:
                    raise ValueError(
                        f"cannot place {len(SIZES) * len(DURATIONS_MIN) * SPIKES_PER_CELL} "
                        f"spikes {MIN_GAP_S} s apart in {days} test days: use more days"
                    )
                taken[tenant].append(start_s)
                spikes.append(Spike(tenant, start_s, duration_min * 60, size))
    return spikes


def _spike_events(
    spikes: list[Spike], spend: dict[str, dict[int, Decimal]], week_start_s: int
) -> list[Event]:
    extra = []
    for number, spike in enumerate(spikes):
        per_minute = spend[spike.tenant]
        hour_s = spike.start_s - WEEK_S
        usual = sum(
            (per_minute.get(hour_s + m * 60, Decimal(0)) for m in range(60)), Decimal(0)
        ) / 60
        if usual == 0:
            first_week = [v for s, v in per_minute.items() if s < week_start_s]
            usual = sum(first_week, Decimal(0)) / (7 * 1440)
        for minute in range(spike.duration_s // 60):
            extra.append(
                Event(
                    timestamp=datetime.fromtimestamp(spike.start_s + minute * 60 + 30, UTC),
                    request_id=f"spike-{number}-{minute}",
                    tenant=spike.tenant,
                    provider=servegen.PROVIDER,
                    request_model=servegen.MODEL,
                    input_tokens=0,
                    output_tokens=0,
                    reported_cost_usd=(usual * (spike.size - 1)).quantize(
                        Decimal("0.000000001")
                    ),
                )
            )
    return extra


def run(days: int = 14, sample_every: int = servegen.DEFAULT_SAMPLE_EVERY) -> dict[str, Any]:
    """Plant the spikes, replay everything and return recall, false alerts, delays."""
    extract = servegen.load_extract()
    columns = servegen.generate_columns(
        extract, sample_every=sample_every, day_count=days
    )
    rules = RuleSet.model_validate(RULES)
    pricer = Pricer(rules.prices)
    base = _events(columns)
    spend = _minute_spend(base, pricer)
    origin_s = int(servegen.ANCHOR.timestamp())
    test_start_s = origin_s + 7 * 86400
    tenants = sorted(spend)
    spikes = plant(tenants, test_start_s, days - 7)
    events = sorted(
        base + _spike_events(spikes, spend, origin_s),
        key=lambda event: event.timestamp,
    )

    engine = Engine(rules, pricer)
    records: list[AlertRecord] = []
    for event in events:
        records.extend(engine.process(event))
    firings = [
        r
        for r in records
        if r.status == "firing" and r.repeat == 0 and r.event_time.timestamp() >= test_start_s
    ]
    window_s = parse_duration_s(RULES["rules"][0]["window"])
    return _summarise(spikes, firings, window_s, len(tenants), days - 7)


def _summarise(
    spikes: list[Spike],
    firings: list[AlertRecord],
    window_s: int,
    tenants: int,
    test_days: int,
) -> dict[str, Any]:
    matched: set[int] = set()
    delays_s: dict[Spike, float] = {}
    for spike in spikes:
        for index, record in enumerate(firings):
            fired_s = record.event_time.timestamp()
            if record.tenant != spike.tenant:
                continue
            if spike.start_s <= fired_s <= spike.start_s + spike.duration_s + window_s:
                matched.add(index)
                delays_s.setdefault(spike, fired_s - spike.start_s)
    recall = {
        f"{size}x": round(
            sum(1 for s in spikes if s.size == size and s in delays_s)
            / sum(1 for s in spikes if s.size == size),
            3,
        )
        for size in SIZES
    }
    target = [s for s in spikes if s.size == 3 and s.duration_s >= 900]
    delays_min = sorted(d / 60 for d in delays_s.values())
    false_alerts = len(firings) - len(matched)
    tenant_weeks = tenants * test_days / 7
    return {
        "spikes": len(spikes),
        "recall_by_size": recall,
        "recall_3x_at_least_15min": round(
            sum(1 for s in target if s in delays_s) / len(target), 3
        ),
        "false_alerts": false_alerts,
        "false_alerts_per_100_tenant_weeks": round(100 * false_alerts / tenant_weeks, 2),
        "delay_median_min": round(statistics.median(delays_min), 1) if delays_min else None,
        "delay_p95_min": round(float(np.percentile(delays_min, 95)), 1) if delays_min else None,
        "tenants": tenants,
        "test_days": test_days,
        "rules": RULES,
    }
