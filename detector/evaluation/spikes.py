"""Planted spend spikes in real multi-tenant traffic.

Traffic. Up to ``TENANT_COUNT`` (50) of the largest demo tenants of the
ServeGen-derived traffic (``detector.demo.servegen``, real per-10-minute request
counts) with requests in the history week, 47 with the full data, are drawn at 1
request in ``SAMPLE_EVERY`` (20), about 11 million requests over 14 days. At the
demo's 1 in 500 most tenants spend a few cents per 10 minutes, so the figures
measured sampling noise rather than the detector. The sampled requests of one
tenant and minute are summed into one event carrying their input and output
tokens. The engine prices that event exactly as it would price the requests one
by one, because the model's price has no long-context tier (linear in tokens),
and the rate tier reads only per-minute totals. This keeps the replay to about
550,000 events.

Natural surges. The tenants' own traffic is not free of anomalies: batch jobs
lift client 61, for one, from under 1 to 45 or 80 requests per second within 10
minutes. Such surges are labelled with hindsight from the ServeGen request
counts alone, by a rule that reads neither the detector nor its parameters. A
10-minute window of a tenant is in a natural surge when it has requests and at
least ``SURGE_RATIO`` (2) times the median count of the 24 hours of windows
centred on it. The centred day makes the label a judgement of the whole day,
the way a person labels a plot, and a median of 144 windows ignores the surge
itself unless it lasts half a day. Back-to-back labelled windows form one surge.

Spikes. The first 7 days are history. Spikes are planted only after them, at
tenants and times drawn with a fixed seed, with sizes 1.5x to 10x and durations
of 5 to 120 minutes, at least ``MIN_GAP_S`` apart within a tenant and at least
``SURGE_MARGIN_S`` (1 hour) away from every natural surge of the tenant, so
they land in ordinary traffic. A spike of size ``k`` adds one event every
minute of its span. The event's reported cost is ``k - 1`` times the tenant's
mean spend per minute over the span itself. So spend in the span is ``k`` times
what the tenant spent there without the spike. When the span was idle, the mean
of the same hour one week earlier is used instead, and when that hour was idle
too, the mean over the first week. The size is relative to the traffic at the time,
not to last week's: a tenant whose spend grew 8x since then still gets a 3x
spike.

Rule. One rate-of-change rule per tenant: a 10-minute window against the median
of the same window one week earlier and the 6 windows of the hour before it. It
fires at a ratio of 2 and at 8 robust standard deviations of those 7 windows. It
clears at 1.2 and stays firing for 20 minutes after the condition was last met,
so a burst that flaps counts as one alert. The absolute floor is relative to the
traffic: ``min_increase`` is ``FLOOR_SHARE`` (0.5) times the tenant's median
10-minute spend in the history week, so a rise must be half a typical 10 minutes
of that tenant's spend. The floor uses the history week only, the way a team
would set it from past spend, and no parameter depends on the planted spikes.

Limit of any threshold. The rule's figures depend on its settings, so the
evaluation also measures what any ratio threshold could reach on this traffic,
whatever its setting. It computes four baselines by hand on aligned 10-minute
windows of the unplanted spend:

- the rule's median of the window one week earlier and the 6 before it,
- the larger of that week-earlier window and the 6 windows' median,
- the median of the same window on the 7 earlier days,
- the larger of that median and the 6 windows' median.

For each it takes every ordinary test window, more than one window from a
natural surge, and its ratio to the baseline. A 3x spike over a whole window
triples that ratio. ``threshold_limits`` reports, per baseline, the highest
ratio threshold that 90 % of such spiked windows would still reach, and how many
runs of back-to-back ordinary windows per 100 tenant-weeks reach it too. It also
reports the runs that rise from a baseline of 0, which any ratio fires on, and
the largest finite ratio of an ordinary window with the share of spiked windows
above it. Any threshold without false alerts here must exceed that ratio. An
ordinary window counts only when its rise over the baseline clears the tenant's
floor, and a spiked window only when the spend the spike adds clears it.
Aligned windows give the detector fewer chances to cross than the rule's sliding
ones, so these figures are, if anything, kind to it.

Scoring. A spike is detected when an alert of its tenant fires between its start
and its end plus one rule window, and the delay is the time from its start to
that firing. A spike that starts while an alert of its tenant is already firing
counts as missed and is also counted apart (``spikes_under_firing_alert``). An
unplanted alert is a firing alert of the test days whose active span (firing to
resolved) overlaps no planted spike of its tenant, extended by one window. Every
unplanted alert is counted (``false_alerts``), and so are those that fire more
than one window away from every natural surge of the tenant
(``false_alerts_outside_surges``, alerts on ordinary traffic, the figure the
target is about). Both are given per 100 tenant-weeks of test traffic. A natural
surge is alerted on when an unplanted alert fires within one window of it.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from detector.alerts import AlertRecord
from detector.config import RuleSet
from detector.demo import servegen
from detector.engine import Engine
from detector.events import Event
from detector.pricing import Pricer

SIZES = (Decimal("1.5"), Decimal(2), Decimal(3), Decimal(5), Decimal(10))
DURATIONS_MIN = (5, 15, 30, 60, 120)
SPIKES_PER_CELL = 4
SEED = 7
TENANT_COUNT = 50
SAMPLE_EVERY = 20
HISTORY_DAYS = 7
# A spike lasts at most 2 hours, so 6 hours apart one alert seldom spans two spikes
# of a tenant.
MIN_GAP_S = 6 * 3600
MAX_DRAWS = 10_000
WEEK_S = 7 * 86400
WINDOW_S = 600
SURGE_RATIO = 2
# 24 hours of 10-minute windows: the natural-surge label compares a window with
# the day around it.
SURGE_CONTEXT_WINDOWS = 144
# A planted spike keeps an hour away from natural surges, so the hour of traffic
# before it, which the rule compares with, is ordinary too.
SURGE_MARGIN_S = 3600
# TODO: ordinary traffic still fires about 6 times per tenant-week (target:
# 0.02). The threshold limits show that no ratio threshold on the baselines
# measured gets near it: ordinary windows rise above the floor from a baseline of
# 0 between 70 and 400 times per 100 tenant-weeks, and any ratio fires on those.
# Traffic whose ordinary 10-minute spend stays near its baseline, or a target set
# against these limits, ends this.
FLOOR_SHARE = Decimal("0.5")
LIMIT_BASELINES = (
    "median of 1 week earlier and 6 recent windows",
    "larger of 1 week earlier and the 6 recent windows' median",
    "median of 7 earlier days",
    "larger of 7 earlier days' median and the 6 recent windows' median",
)
LIMIT_RECALL = 0.9
RULE: dict[str, Any] = {
    "tier": "rate_of_change",
    "window": "10m",
    "baseline_weeks": 1,
    "recent_windows": 6,
    "min_ratio": "2",
    "min_deviations": "8",
    "clear_ratio": "1.2",
    "keep_firing_for": "20m",
    "evaluate_every": "1m",
}
# Settings replayed beside RULE on the same traffic, to show the trade-off
# between false alerts and recall.
VARIANTS: tuple[dict[str, Any], ...] = (
    {"recent_baseline": "separate"},
    {
        "recent_baseline": "separate",
        "baseline_period": "1d",
        "baseline_weeks": 7,
        "recent_windows": 3,
    },
    {
        "recent_baseline": "separate",
        "baseline_period": "1d",
        "baseline_weeks": 7,
        "min_ratio": "2.5",
        "min_deviations": "6",
        "for": "5m",
    },
)
VARIANT_FIGURES = (
    "recall_3x_at_least_15min",
    "false_alerts_outside_surges_per_100_tenant_weeks",
    "false_alerts_per_100_tenant_weeks",
    "delay_median_min",
)
NOTE = (
    "Targets not met. Of the unplanted alerts, 3 in 5 fire in natural surges "
    "(batch jobs and similar, labelled from the request counts), which a spend "
    "detector should report. Many of the others are rises after a quiet spell. "
    "The settings above trade false alerts against recall, and none comes near "
    "the target. The last table shows that no ratio threshold reaches it on "
    "this traffic. Ordinary windows that rise above the floor from a baseline "
    "of 0, on which any ratio fires, alone come to 70 to 400 runs per 100 "
    "tenant-weeks, whichever baseline is used. The threshold column is per "
    "window. A spike that spans several windows needs to cross in only one, so "
    "the threshold that keeps 0.9 of such spikes can be somewhat higher."
)
MinuteSpend = dict[str, dict[int, Decimal]]
# Natural surges per tenant, as (start_s, end_s) spans.
Surges = dict[str, list[tuple[int, int]]]


@dataclass(frozen=True, slots=True)
class Spike:
    tenant: str
    start_s: int
    duration_s: int
    size: Decimal


def natural_surges(
    requests: npt.NDArray[np.int64], origin_s: int
) -> list[tuple[int, int]]:
    """Label one tenant's natural surges from its request counts per 10-minute window.

    A window is part of a surge when it has requests and at least ``SURGE_RATIO``
    times the median count of the ``SURGE_CONTEXT_WINDOWS`` windows centred on it
    (fewer at the ends of the data). Returns the runs of such windows as
    ``(start_s, end_s)`` spans.
    """
    counts = requests.astype(np.float64)
    half = SURGE_CONTEXT_WINDOWS // 2
    padded = np.pad(counts, half, constant_values=np.nan)
    context = sliding_window_view(padded, SURGE_CONTEXT_WINDOWS)[: len(counts)]
    medians = np.nanmedian(context, axis=1)
    labelled = (counts > 0) & (counts >= SURGE_RATIO * medians)
    edges = np.diff(np.concatenate(([0], labelled.astype(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)
    stops = np.flatnonzero(edges == -1)
    return [
        (origin_s + int(start) * WINDOW_S, origin_s + int(stop) * WINDOW_S)
        for start, stop in zip(starts, stops, strict=True)
    ]


def threshold_limits(
    spend: MinuteSpend, surges: Surges, origin_s: int, test_start_s: int, days: int
) -> list[dict[str, Any]]:
    """Return, per baseline, what any ratio threshold reaches on ordinary windows.

    See "Limit of any threshold" in the module docstring.
    """
    windows = days * 86400 // WINDOW_S
    first = (test_start_s - origin_s) // WINDOW_S
    ratios: dict[str, list[npt.NDArray[np.float64]]] = defaultdict(list)
    spiked_ratios: dict[str, list[npt.NDArray[np.float64]]] = defaultdict(list)
    run_starts: list[npt.NDArray[np.bool_]] = []
    for tenant in sorted(spend):
        totals = _window_totals(spend[tenant], origin_s, windows)
        floor = float(FLOOR_SHARE) * float(np.median(totals[:first]))
        ordinary = ~_near_surges(surges.get(tenant, []), origin_s, windows)
        index = np.arange(first, windows)[ordinary[first:]]
        run_starts.append(_run_starts(index))
        actual = totals[index]
        previous_six = np.stack([totals[index - k] for k in range(1, 7)])
        recent = np.median(previous_six, axis=0)
        week = totals[index - WEEK_S // WINDOW_S]
        days7 = np.median(
            np.stack([totals[index - k * 86400 // WINDOW_S] for k in range(1, 8)]),
            axis=0,
        )
        rule = np.median(np.vstack([week, previous_six]), axis=0)
        for name, expected in (
            (LIMIT_BASELINES[0], rule),
            (LIMIT_BASELINES[1], np.maximum(week, recent)),
            (LIMIT_BASELINES[2], days7),
            (LIMIT_BASELINES[3], np.maximum(days7, recent)),
        ):
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(expected > 0, actual / expected, np.inf)
            ratio[(actual == 0) & (expected == 0)] = 1.0
            ratios[name].append(np.where(actual - expected >= floor, ratio, 0.0))
            # A 3x spike adds twice the window's spend, which must clear the floor.
            spiked = np.where((actual > 0) & (2 * actual >= floor), 3 * ratio, np.nan)
            spiked_ratios[name].append(spiked)
    tenant_weeks = len(spend) * (days - HISTORY_DAYS) / 7
    after_gap = np.concatenate(run_starts)
    limits = []
    for name in LIMIT_BASELINES:
        ratio = np.concatenate(ratios[name])
        spiked = np.concatenate(spiked_ratios[name])
        spiked = spiked[~np.isnan(spiked)]
        at_recall = float(np.quantile(spiked, 1 - LIMIT_RECALL))
        finite = ratio[np.isfinite(ratio)]
        largest = float(finite.max())
        limits.append(
            {
                "baseline": name,
                "ordinary_windows": len(ratio),
                "spiked_windows": len(spiked),
                "threshold_for_recall_0_9": round(at_recall, 2),
                "ordinary_runs_over_it_per_100_tenant_weeks": _per_100(
                    _runs(ratio >= at_recall, after_gap), tenant_weeks
                ),
                "ordinary_runs_from_zero_per_100_tenant_weeks": _per_100(
                    _runs(np.isinf(ratio), after_gap), tenant_weeks
                ),
                "largest_finite_ordinary_ratio": round(largest, 2),
                "recall_over_largest": round(
                    float(np.count_nonzero(spiked > largest)) / len(spiked), 3
                ),
            }
        )
    return limits


def _run_starts(index: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
    """Mark the windows that do not directly follow the previous one in ``index``."""
    return np.concatenate(([True], np.diff(index) != 1))


def _runs(flags: npt.NDArray[np.bool_], after_gap: npt.NDArray[np.bool_]) -> int:
    """Count the runs of back-to-back flagged windows: each could be one alert."""
    previous = np.concatenate(([False], flags[:-1])) & ~after_gap
    return int(np.count_nonzero(flags & ~previous))


def _window_totals(
    per_minute: dict[int, Decimal], origin_s: int, windows: int
) -> npt.NDArray[np.float64]:
    totals = np.zeros(windows)
    for minute_s, cost in per_minute.items():
        index = (minute_s - origin_s) // WINDOW_S
        if 0 <= index < windows:
            totals[index] += float(cost)
    return totals


def _near_surges(
    spans: list[tuple[int, int]], origin_s: int, windows: int
) -> npt.NDArray[np.bool_]:
    """Mark the windows of the surges and the one window on either side."""
    near = np.zeros(windows, dtype=bool)
    for start_s, end_s in spans:
        first = max((start_s - origin_s) // WINDOW_S - 1, 0)
        near[first : (end_s - origin_s) // WINDOW_S + 1] = True
    return near


def largest_tenants(extract: servegen.Extract, count: int) -> list[int]:
    """Return the ``count`` demo clients with the most requests over all days.

    Only clients with requests in the history days qualify, because the rule's
    floor is set from that history.
    """
    history = HISTORY_DAYS * servegen.WINDOWS_PER_DAY
    clients = [
        client
        for client in extract.demo_clients
        if extract.requests[extract.row(client), :history].sum() > 0
    ]
    rows = [extract.row(client) for client in clients]
    totals = extract.requests[rows].sum(axis=1)
    order = np.argsort(-totals, kind="stable")[:count]
    return [clients[int(index)] for index in order]


def minute_events(columns: servegen.EventColumns) -> list[Event]:
    """Sum the sampled requests of each tenant and minute into one event."""
    minute = columns.time_ms // 60_000
    keys = np.stack([columns.client, minute], axis=1)
    unique, inverse = np.unique(keys, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    inputs = np.bincount(inverse, weights=columns.input_tokens, minlength=len(unique))
    outputs = np.bincount(inverse, weights=columns.output_tokens, minlength=len(unique))
    origin = servegen.ANCHOR.astimezone(UTC)
    return [
        Event(
            timestamp=origin + timedelta(seconds=int(minute_index) * 60 + 30),
            request_id=f"sg-{client}-{minute_index}",
            tenant=f"client-{client}",
            provider=servegen.PROVIDER,
            request_model=servegen.MODEL,
            input_tokens=int(input_tokens),
            output_tokens=int(output_tokens),
        )
        for (client, minute_index), input_tokens, output_tokens in zip(
            unique.tolist(), inputs.tolist(), outputs.tolist(), strict=True
        )
    ]


def _minute_spend(events: list[Event], pricer: Pricer) -> MinuteSpend:
    spend: MinuteSpend = defaultdict(lambda: defaultdict(Decimal))
    for event in events:
        cost = pricer.price(event).cost_usd or Decimal(0)
        minute_s = int(event.timestamp_s) // 60 * 60
        spend[event.tenant][minute_s] += cost
    return spend


def tenant_rules(
    spend: MinuteSpend, history_end_s: int, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Build one rule per tenant with a floor of ``FLOOR_SHARE`` x its median."""
    rules = []
    for tenant in sorted(spend):
        floor_usd = FLOOR_SHARE * _median_window_spend(spend[tenant], history_end_s)
        rules.append(
            {
                **RULE,
                **(overrides or {}),
                "id": f"spend-spike-{tenant}",
                "tenants": [tenant],
                "min_increase": str(floor_usd.quantize(Decimal("0.000001"))),
            }
        )
    return {"rules": rules}


def _median_window_spend(per_minute: dict[int, Decimal], end_s: int) -> Decimal:
    """Return the median spend of the tenant's 10-minute windows before ``end_s``."""
    first_s = min(per_minute)
    totals = []
    for start_s in range(first_s - first_s % WINDOW_S, end_s, WINDOW_S):
        minutes = range(start_s, start_s + WINDOW_S, 60)
        totals.append(sum((per_minute.get(m, Decimal(0)) for m in minutes), Decimal(0)))
    return statistics.median(totals)


def plant(
    tenants: list[str],
    test_start_s: int,
    days: int,
    seed: int = SEED,
    per_cell: int = SPIKES_PER_CELL,
    surges: Surges | None = None,
) -> list[Spike]:
    """Draw the spikes: every size and duration ``per_cell`` times.

    A spike starts no closer than ``SURGE_MARGIN_S`` to a natural surge of its
    tenant (``surges``) and ends no closer than that before one.
    """
    rng = np.random.default_rng(seed)
    taken: dict[str, list[int]] = defaultdict(list)
    spikes = []
    for size in SIZES:
        for duration_min in DURATIONS_MIN:
            for _ in range(per_cell):
                duration_s = duration_min * 60
                tenant, start_s = _place(
                    rng, tenants, taken, test_start_s, days, duration_s, surges or {}
                )
                taken[tenant].append(start_s)
                spikes.append(Spike(tenant, start_s, duration_s, size))
    return spikes


def _place(
    rng: np.random.Generator,
    tenants: list[str],
    taken: dict[str, list[int]],
    test_start_s: int,
    days: int,
    duration_s: int,
    surges: Surges,
) -> tuple[str, int]:
    for _ in range(MAX_DRAWS):
        tenant = tenants[int(rng.integers(len(tenants)))]
        start_s = test_start_s + int(rng.integers(days * 86400 - 7200))
        start_s -= start_s % 60
        if any(abs(start_s - s) < MIN_GAP_S for s in taken[tenant]):
            continue
        first_s = start_s - SURGE_MARGIN_S
        last_s = start_s + duration_s + SURGE_MARGIN_S
        if all(
            end_s <= first_s or begin_s >= last_s
            for begin_s, end_s in surges.get(tenant, [])
        ):
            return tenant, start_s
    raise ValueError(
        f"cannot place another spike {MIN_GAP_S} s apart from the others and "
        f"{SURGE_MARGIN_S} s from every natural surge in {days} test days of "
        f"{len(tenants)} tenants: use more days or tenants"
    )


def _spike_events(spikes: list[Spike], spend: MinuteSpend, first_s: int) -> list[Event]:
    extra = []
    for number, spike in enumerate(spikes):
        per_minute = spend[spike.tenant]
        span_min = spike.duration_s // 60
        during = (
            per_minute.get(spike.start_s + m * 60, Decimal(0)) for m in range(span_min)
        )
        usual = sum(during, Decimal(0)) / span_min
        if usual == 0:
            hour_s = spike.start_s - WEEK_S
            minutes = (per_minute.get(hour_s + m * 60, Decimal(0)) for m in range(60))
            usual = sum(minutes, Decimal(0)) / 60
        if usual == 0:
            first_week = [v for s, v in per_minute.items() if s < first_s + WEEK_S]
            usual = sum(first_week, Decimal(0)) / (7 * 1440)
        cost_usd = (usual * (spike.size - 1)).quantize(Decimal("0.000000001"))
        for minute in range(span_min):
            extra.append(
                Event(
                    timestamp=datetime.fromtimestamp(
                        spike.start_s + minute * 60 + 30, UTC
                    ),
                    request_id=f"spike-{number}-{minute}",
                    tenant=spike.tenant,
                    provider=servegen.PROVIDER,
                    request_model=servegen.MODEL,
                    input_tokens=0,
                    output_tokens=0,
                    reported_cost_usd=cost_usd,
                )
            )
    return extra


def run(
    days: int = 14,
    sample_every: int = SAMPLE_EVERY,
    tenant_count: int = TENANT_COUNT,
    per_cell: int = SPIKES_PER_CELL,
) -> dict[str, Any]:
    """Plant the spikes, replay everything and return recall, false alerts, delays."""
    extract = servegen.load_extract()
    clients = largest_tenants(extract, tenant_count)
    origin_s = int(servegen.ANCHOR.timestamp())
    pricer = Pricer(RuleSet.model_validate({"rules": []}).prices)
    base: list[Event] = []
    requests = 0
    surges: Surges = {}
    for client in clients:
        # One client at a time keeps only its sampled requests in memory.
        columns = servegen.generate_columns(
            extract, sample_every=sample_every, day_count=days, clients=[client]
        )
        base += minute_events(columns)
        requests += len(columns)
        counts = extract.requests[
            extract.row(client), : days * servegen.WINDOWS_PER_DAY
        ]
        surges[f"client-{client}"] = natural_surges(counts, origin_s)

    spend = _minute_spend(base, pricer)
    test_start_s = origin_s + HISTORY_DAYS * 86400
    document = tenant_rules(spend, test_start_s)

    tenants = sorted(spend)
    test_days = days - HISTORY_DAYS
    spikes = plant(tenants, test_start_s, test_days, per_cell=per_cell, surges=surges)

    events = sorted(
        base + _spike_events(spikes, spend, origin_s), key=lambda event: event.timestamp
    )
    records = _replay(RuleSet.model_validate(document), pricer, events)
    summary = summarise(spikes, records, test_start_s, len(tenants), test_days, surges)
    summary["threshold_limits"] = threshold_limits(
        spend, surges, origin_s, test_start_s, days
    )
    summary["variants"] = []
    for overrides in VARIANTS:
        rules = RuleSet.model_validate(tenant_rules(spend, test_start_s, overrides))
        varied = summarise(
            spikes,
            _replay(rules, pricer, events),
            test_start_s,
            len(tenants),
            test_days,
            surges,
        )
        summary["variants"].append(
            {"overrides": overrides, **{key: varied[key] for key in VARIANT_FIGURES}}
        )

    summary["sample_every"] = sample_every
    summary["events"] = len(events)
    summary["requests"] = requests
    summary["rule"] = {**RULE, "min_increase": f"{FLOOR_SHARE} x median 10-min spend"}
    summary["note"] = NOTE
    summary["floors_usd"] = {
        rule["tenants"][0]: rule["min_increase"] for rule in document["rules"]
    }
    return summary


def _replay(rules: RuleSet, pricer: Pricer, events: list[Event]) -> list[AlertRecord]:
    engine = Engine(rules, pricer)
    records: list[AlertRecord] = []
    for event in events:
        records.extend(engine.process(event))
    return records


def _firing_spans(
    records: Sequence[AlertRecord], test_start_s: int
) -> list[tuple[str, float, float]]:
    """Return (tenant, fired, resolved) of every alert that fired in the test days."""
    fired: dict[str, tuple[str, float]] = {}
    resolved: dict[str, float] = {}
    for record in records:
        at_s = record.event_time.timestamp()
        if record.status == "firing" and record.repeat == 0:
            fired.setdefault(record.alert_id, (record.tenant, at_s))
        elif record.status == "resolved":
            resolved.setdefault(record.alert_id, at_s)
    return [
        (tenant, at_s, resolved.get(alert_id, float("inf")))
        for alert_id, (tenant, at_s) in fired.items()
        if at_s >= test_start_s
    ]


def summarise(
    spikes: list[Spike],
    records: Sequence[AlertRecord],
    test_start_s: int,
    tenants: int,
    test_days: int,
    surges: Surges | None = None,
) -> dict[str, Any]:
    """Return recall per size and duration, false alerts, natural surges and delays."""
    spans = _firing_spans(records, test_start_s)
    delays_s: dict[Spike, float] = {}
    unplanted: list[tuple[str, float]] = []
    under_alert: set[Spike] = set()
    for tenant, fired_s, resolved_s in spans:
        overlaps = False
        for spike in spikes:
            end_s = spike.start_s + spike.duration_s + WINDOW_S
            if spike.tenant != tenant or resolved_s < spike.start_s or fired_s > end_s:
                continue
            overlaps = True
            if fired_s >= spike.start_s:
                delays_s.setdefault(spike, fired_s - spike.start_s)
            else:
                under_alert.add(spike)
        if not overlaps:
            unplanted.append((tenant, fired_s))
    tenant_weeks = tenants * test_days / 7
    test_surges = [
        (tenant, start_s, end_s)
        for tenant, spans_s in (surges or {}).items()
        for start_s, end_s in spans_s
        if end_s > test_start_s
    ]
    surges_by_tenant: dict[str, list[tuple[str, int, int]]] = defaultdict(list)
    for surge in test_surges:
        surges_by_tenant[surge[0]].append(surge)
    alerted: set[tuple[str, int, int]] = set()
    ordinary = []
    for tenant, fired_s in unplanted:
        hits = [
            surge
            for surge in surges_by_tenant[tenant]
            if _in_surge(tenant, fired_s, surge)
        ]
        alerted.update(hits)
        if not hits:
            ordinary.append((tenant, fired_s))
    return {
        "spikes": len(spikes),
        **_recall(spikes, delays_s),
        "spikes_under_firing_alert": len(under_alert - delays_s.keys()),
        "false_alerts": len(unplanted),
        "false_alerts_per_100_tenant_weeks": _per_100(len(unplanted), tenant_weeks),
        "false_alerts_outside_surges": len(ordinary),
        "false_alerts_outside_surges_per_100_tenant_weeks": _per_100(
            len(ordinary), tenant_weeks
        ),
        "natural_surges": len(test_surges),
        "natural_surges_alerted": len(alerted),
        "natural_surge_share": _surge_share(
            test_surges, test_start_s, tenants, test_days
        ),
        **_delays(spikes, delays_s),
        "tenants": tenants,
        "test_days": test_days,
    }


def _in_surge(tenant: str, fired_s: float, surge: tuple[str, int, int]) -> bool:
    """Return whether an alert fired during a surge or within one window of it.

    The labels have the resolution of the data's 10-minute windows, while the
    rule's sliding window can cross its ratio a few minutes before the first
    labelled window starts.
    """
    surge_tenant, start_s, end_s = surge
    return tenant == surge_tenant and start_s - WINDOW_S <= fired_s <= end_s + WINDOW_S


def _per_100(count: int, tenant_weeks: float) -> float:
    return round(100 * count / tenant_weeks, 2)


def _surge_share(
    surges: list[tuple[str, int, int]], test_start_s: int, tenants: int, test_days: int
) -> float:
    """Return the share of the test days' tenant time inside natural surges."""
    covered_s = sum(end_s - max(start_s, test_start_s) for _, start_s, end_s in surges)
    return round(covered_s / (tenants * test_days * 86400), 3)


def _share(chosen: list[Spike], delays_s: dict[Spike, float]) -> float | None:
    if not chosen:
        return None
    return round(sum(1 for s in chosen if s in delays_s) / len(chosen), 3)


def _recall(spikes: list[Spike], delays_s: dict[Spike, float]) -> dict[str, Any]:
    by_cell = {
        f"{size}x/{minutes}min": _share(
            [s for s in spikes if s.size == size and s.duration_s == minutes * 60],
            delays_s,
        )
        for size in SIZES
        for minutes in DURATIONS_MIN
    }
    target = [s for s in spikes if s.size == 3 and s.duration_s >= 900]
    return {
        "recall_by_size": {
            f"{size}x": _share([s for s in spikes if s.size == size], delays_s)
            for size in SIZES
        },
        "recall_by_duration": {
            f"{minutes}min": _share(
                [s for s in spikes if s.duration_s == minutes * 60], delays_s
            )
            for minutes in DURATIONS_MIN
        },
        "recall_by_size_and_duration": by_cell,
        "recall_3x_at_least_15min": _share(target, delays_s),
    }


def _delays(spikes: list[Spike], delays_s: dict[Spike, float]) -> dict[str, Any]:
    delays_min = sorted(d / 60 for d in delays_s.values())
    target_min = sorted(
        d / 60 for s, d in delays_s.items() if s.size == 3 and s.duration_s >= 900
    )
    p95_min = round(float(np.percentile(delays_min, 95)), 1) if delays_min else None
    return {
        "delay_median_min": _median(delays_min),
        "delay_p95_min": p95_min,
        "delay_median_3x_at_least_15min": _median(target_min),
    }


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None
