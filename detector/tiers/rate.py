"""Rate-of-change tier: a windowed total against the same window in earlier weeks.

The baseline for the window ``[t - W, t)`` is the median of the same interval
one, two, ... ``baseline_weeks`` weeks earlier, read from hourly buckets. Lining
up whole weeks makes the baseline respect both the time of day and the day of
week, so a quiet Sunday is compared with earlier Sundays and never looks like a
drop from Friday. An alert needs the ratio and the absolute increase together:
the ratio alone would fire on cents, the increase alone on every busy hour.

Warm-up: a series whose first hourly bucket is younger than one week plus the
window has no baseline yet and is not evaluated by this tier; the absolute tier
still covers it.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal

from detector.alerts import UNIT_OF_SIGNAL, AlertRecord, Status, format_amount
from detector.config import RateOfChangeRule
from detector.lifecycle import AlertState
from detector.state import SeriesId, TenantState
from detector.tiers.common import make_key, series_labels
from detector.windows import BucketSeries

WEEK_S = 7 * 86400
_PREFIX = "rate"


def baseline(
    series: BucketSeries, signal: str, end_s: int, window_s: int, weeks: int
) -> Decimal | None:
    """Return the median of the same window in earlier weeks, or None in warm-up."""
    if not series.coarse:
        return None
    first_s = next(iter(series.coarse))
    past = [
        series.coarse_total(signal, end_s - window_s - k * WEEK_S, end_s - k * WEEK_S)
        for k in range(1, weeks + 1)
        if end_s - window_s - k * WEEK_S >= first_s
    ]
    if not past:
        return None
    return statistics.median(past)


def evaluate(
    state: TenantState, rule: RateOfChangeRule, now: datetime
) -> Iterator[AlertRecord]:
    """Evaluate one rule for every series of the tenant that it covers."""
    now_s = int(now.timestamp())
    for series_id, series in state.series.items():
        if series_id[0] != rule.series:
            continue
        key = make_key(_PREFIX, rule.id, *series_id[1])
        last_s = series.last_activity_s()
        if key not in state.alerts.alerts and (
            last_s is None or last_s < now_s - rule.window_s
        ):
            continue
        record = _evaluate_series(state, rule, series_id, series, key, now)
        if record is not None:
            yield record


def _evaluate_series(
    state: TenantState,
    rule: RateOfChangeRule,
    series_id: SeriesId,
    series: BucketSeries,
    key: str,
    now: datetime,
) -> AlertRecord | None:
    now_s = int(now.timestamp())
    current = series.window_total(rule.signal, now_s, rule.window_s)
    past = baseline(series, rule.signal, now_s, rule.window_s, rule.baseline_weeks)
    if past is None:
        return None
    active = (
        current >= past * rule.min_ratio and current - past >= rule.min_increase
    )
    build = _builder(state, rule, series_id, current, past)
    return state.alerts.update(
        key,
        active,
        now,
        build,
        for_s=rule.for_s,
        repeat_s=rule.repeat_interval_s,
        keep_firing_s=rule.keep_firing_for_s,
    )


def _builder(
    state: TenantState,
    rule: RateOfChangeRule,
    series_id: SeriesId,
    current: Decimal,
    past: Decimal,
):  # type: ignore[no-untyped-def]
    unit = UNIT_OF_SIGNAL[rule.signal]
    labels = series_labels(series_id)
    where = " ".join(f"{name}={label}" for name, label in labels.items())
    if past > 0:
        against = f"{current / past:.1f}x the baseline {format_amount(past, unit)}"
    else:
        against = f"against a baseline of {format_amount(past, unit)}"
    details = {"min_ratio": str(rule.min_ratio), "weeks": str(rule.baseline_weeks)}
    if rule.summary:
        details["description"] = rule.summary

    def build(alert: AlertState, status: Status, now: datetime) -> AlertRecord:
        weeks = "week" if rule.baseline_weeks == 1 else f"{rule.baseline_weeks} weeks"
        if status == "firing":
            summary = (
                f"{rule.signal} in the last {rule.window_s // 60} min is "
                f"{format_amount(current, unit)}, {against} "
                f"(same window, previous {weeks}) "
                f"and {format_amount(current - past, unit)} above it, for {where}"
            )
        else:
            summary = (
                f"{rule.signal} in the last {rule.window_s // 60} min is back to "
                f"{format_amount(current, unit)} against a baseline of "
                f"{format_amount(past, unit)}, for {where}"
            )
        return AlertRecord(
            alert_id=alert.alert_id,
            status=status,
            tier="rate_of_change",
            severity=rule.severity,
            rule_id=rule.id,
            tenant=state.tenant,
            signal=rule.signal,
            unit=unit,
            observed=current,
            baseline=past,
            threshold=max(past * rule.min_ratio, past + rule.min_increase),
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
