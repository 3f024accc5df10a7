"""Absolute tier, windowed thresholds: "spend per hour >= $100" and the like.

A window ends at the end of the fine bucket containing the evaluation time, so
an event is checked against the window it just joined and fires at once. A
window's total rises only when an event arrives, so crossings are checked on
events. Ticks re-evaluate only alerts that are pending or firing, to promote or
resolve them.

Latency and ratio signals (a p95 time to first token, an error rate) are read
the same way from the window's sketches and counts. They count only when the
window contains ``min_requests`` requests that report them, and they may also fire
on a low value (``comparison: "<="``). A firing alert whose window falls under
``min_requests`` resolves, because nothing in the window confirms it any more.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal

from detector.alerts import (
    UNIT_OF_SIGNAL,
    AlertRecord,
    Status,
    format_pair,
)
from detector.config import ThresholdRule
from detector.lifecycle import AlertState, RecordBuilder
from detector.state import SeriesId, TenantState
from detector.tiers.common import make_key, series_labels, split_key
from detector.windows import FINE_BUCKET_S, BucketSeries, Reading

_ZERO = Decimal(0)

_PREFIX = "absolute"


def check_on_event(
    state: TenantState,
    rule: ThresholdRule,
    series: SeriesId,
    instant: datetime,
    instant_s: int,
) -> AlertRecord | None:
    """Fire the rule if the window that ``instant`` just joined crosses it."""
    end_s = instant_s - instant_s % FINE_BUCKET_S + FINE_BUCKET_S
    found = state.series.get(series) or state.series_for(series)
    if rule.measured:
        # Most checks on a quiet series end here, so the value is not built.
        reading = found.window_reading(rule.measure, end_s, rule.window_s)
        if not reading.enough or reading.value is None:
            return None
        value = reading.value
    else:
        value, reading = found.window_total(rule.signal, end_s, rule.window_s), None
    if not _crosses(value, reading, rule):
        return None
    key = make_key(_PREFIX, rule.id, *series[1])
    if key in state.alerts.alerts:
        return None
    return state.alerts.update(
        key, True, instant, _builder(state, rule, series, value, reading),
        for_s=rule.for_s, repeat_s=rule.repeat_interval_s,
        keep_firing_s=rule.keep_firing_for_s,
    )


def check_on_tick(
    state: TenantState, rules: dict[str, ThresholdRule], now: datetime
) -> Iterator[AlertRecord]:
    """Re-evaluate pending and firing threshold alerts at ``now``."""
    now_s = int(now.timestamp())
    for key in state.alerts.keys_with_prefix(_PREFIX):
        _, rule_id, *values = split_key(key)
        rule = rules.get(rule_id)
        if rule is None:
            continue
        series = (rule.series, tuple(values))
        value, reading = _read(state.series_for(series), rule, now_s)
        active = _crosses(value, reading, rule)
        record = state.alerts.update(
            key, active, now, _builder(state, rule, series, value, reading),
            for_s=rule.for_s, repeat_s=rule.repeat_interval_s,
        keep_firing_s=rule.keep_firing_for_s,
        )
        if record is not None:
            yield record


def _read(
    series: BucketSeries, rule: ThresholdRule, end_s: int
) -> tuple[Decimal, Reading | None]:
    """Return the rule's value in the window ending at ``end_s``.

    The reading is None for totals. For a latency or ratio signal the value is 0
    when no request in the window reported it.
    """
    if not rule.measured:
        return series.window_total(rule.signal, end_s, rule.window_s), None
    reading = series.window_reading(rule.measure, end_s, rule.window_s)
    value = reading.value if reading.value is not None else _ZERO
    return value, reading


def _crosses(value: Decimal, reading: Reading | None, rule: ThresholdRule) -> bool:
    if reading is not None and not reading.enough:
        return False
    comparison, limit = rule.comparison, rule.threshold
    if comparison == ">=":
        return value >= limit
    if comparison == ">":
        return value > limit
    if comparison == "<=":
        return value <= limit
    return value < limit


def _builder(
    state: TenantState,
    rule: ThresholdRule,
    series: SeriesId,
    value: Decimal,
    reading: Reading | None = None,
) -> RecordBuilder:
    unit = UNIT_OF_SIGNAL[rule.signal]
    labels = series_labels(series)
    where = " ".join(f"{name}={label}" for name, label in labels.items())
    details = {"description": rule.summary} if rule.summary else {}
    if rule.quantile is not None:
        details["quantile"] = str(rule.quantile)
    if reading is not None:
        details["requests"] = str(reading.count)
        details["min_requests"] = str(rule.min_requests or 1)

    def build(alert: AlertState, status: Status, now: datetime) -> AlertRecord:
        shown, limit = format_pair(value, rule.threshold, unit)
        window = f"{rule.signal_label} over the last {_duration(rule.window_s)}"
        if status == "firing":
            summary = f"{window} is {shown} ({rule.comparison} {limit}) for {where}"
        elif reading is not None and not reading.enough:
            summary = (
                f"{window} has {reading.count} requests, fewer than min_requests "
                f"{rule.min_requests or 1}, so the alert resolves for {where}"
            )
        else:
            relation = "below" if rule.comparison in (">=", ">") else "above"
            summary = f"{window} is back to {shown} ({relation} {limit}) for {where}"
        return AlertRecord(
            alert_id=alert.alert_id,
            status=status,
            tier="absolute",
            severity=rule.severity,
            rule_id=rule.id,
            tenant=state.tenant,
            signal=rule.signal,
            unit=unit,
            observed=value,
            threshold=rule.threshold,
            event_time=now,
            started_at=alert.started_at,
            summary=summary,
            series=labels,
            window_s=rule.window_s,
            runbook_url=str(rule.runbook_url) if rule.runbook_url else None,
            labels=dict(rule.labels),
            repeat=alert.repeats if status == "firing" else 0,
            details=details,
        )

    return build


def _duration(seconds: int) -> str:
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"
