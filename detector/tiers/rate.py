"""Rate-of-change tier: a windowed total against the same window in earlier periods.

Baseline. For the window ``[t - W, t)`` the baseline is the median of the same
interval one, two, ... ``baseline_weeks`` periods earlier (``baseline_period``,
one week by default), read from hourly buckets. Lining up whole weeks makes the
baseline respect both the time of day and the day of week, so a quiet Sunday is
compared with earlier Sundays and never looks like a drop from Friday.

Outliers in the baseline's own history. A median over three or more periods
ignores one past spike. With one or two periods a single spike would be the
baseline (or half of it) and would hide the next spike at the same hour, so each
earlier window is first capped at a robust level of its own day: the 90th
percentile of the hourly totals in the 24 hours around it, scaled to the window
length (the 10th percentile, as a lower bound, for ``direction: down``). A spike
that lasts up to two hours is above that percentile and is cut off, while a
daily peak that lasts three hours or more is not. The cap applies to windows of
up to ``WARMUP_MAX_WINDOW_S`` (6 hours): hourly totals say nothing about whether
a longer window was unusual.

Recent windows. With ``recent_windows: n`` the ``n`` back-to-back windows just
before the current one join the earlier periods' windows, and the baseline is
the median of them all. The baseline then follows a level that has changed since
last week, and one past spike among the windows does not move the median much.
Recent windows are summed from minute buckets while those are kept (two hours
and the longest short window) and from hourly buckets before that. With
``recent_baseline: separate`` the two groups are not pooled: the baseline is the
larger of the periods' median and the recent windows' median (the smaller for
``direction: down``), so a rise must clear both the usual level at that time and
the level of the last windows. A tenant back to its usual spend after a quiet
hour stays under the first. A tenant that grew days ago stays under the second.

Latency and ratio signals. An earlier or recent window with fewer requests than
the rule's ``min_requests`` has no quantile or ratio. It is left out of the
median rather than read as 0, because 0 would make any later value a rise. With
no window left there is no baseline, and the rule waits.

Spread. The spread of the baseline is 1.4826 times the median absolute deviation
of its windows from their median. It estimates a standard deviation for normal
noise, and one outlying window hardly changes it. With one window it is 0.

Condition. ``direction: up`` fires when the current total is at least
``min_ratio`` times the baseline and at least ``min_increase`` above it; ``down``
fires when the total is at most the baseline divided by ``min_ratio`` and at
least ``min_increase`` below it. The ratio alone would fire on cents, the
difference alone on every busy hour. With ``min_deviations: k`` the change must
also be at least ``k`` times the spread, so a series that often moves by half
needs a larger move than a steady one with the same ratio. The alert must hold
for ``for`` before it fires, and a firing alert resolves only when the ratio falls back past
``clear_ratio`` (default ``min_ratio``), so a value hovering at the threshold
does not flap.

Warm-up. A series with less than one baseline period of history (plus the window)
has no earlier window to compare with. Once it has a full day before the window,
it is compared with its trailing day instead: the baseline is the mean hourly
total of the 24 hours before the window without its two largest hours (so one
past spike of up to two hours does not count), scaled to the window length. The
ratio needed is ``warmup_min_ratio`` (default twice ``min_ratio``), because that
baseline ignores the time of day and the day of week. A series younger than one
day plus the window, and a rule whose window is longer than ``WARMUP_MAX_WINDOW_S``
(6 hours: a longer window against the trailing day mostly measures the day of
week), are not evaluated in warm-up; the absolute tier still covers them.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from detector.alerts import (
    UNIT_OF_SIGNAL,
    AlertRecord,
    Status,
    Unit,
    format_amount,
)
from detector.config import RateOfChangeRule
from detector.lifecycle import AlertState, RecordBuilder
from detector.state import SeriesId, TenantState
from detector.tiers.common import make_key, series_labels
from detector.windows import COARSE_BUCKET_S, BucketSeries, is_total

WEEK_S = 7 * 86400
DAY_S = 86400
# With this many earlier periods or more, the median alone ignores one outlier.
ROBUST_MEDIAN_PERIODS = 3
# Scales a median absolute deviation to a standard deviation for normal noise.
MAD_TO_STD = Decimal("1.4826")
CAP_QUANTILE_UP = 0.9
CAP_QUANTILE_DOWN = 0.1
WARMUP_MAX_WINDOW_S = 6 * 3600
WARMUP_TRIMMED_HOURS = 2
_PREFIX = "rate"
_HOURS_PER_DAY = 24


@dataclass(frozen=True, slots=True)
class Baseline:
    """The reference value of one evaluation and how it was obtained."""

    value: Decimal
    # Earlier periods the median used; 0 means the warm-up trailing-day level.
    periods: int
    # Recent windows the median used besides the periods.
    recent: int = 0
    # 1.4826 x the median absolute deviation of the windows. It is 0 in warm-up
    # and for a rule without ``min_deviations``, which does not read it.
    spread: Decimal = Decimal(0)

    @property
    def warmup(self) -> bool:
        return self.periods == 0


def baseline(
    series: BucketSeries, signal: str, end_s: int, window_s: int, weeks: int
) -> Decimal | None:
    """Return the median of the same window in earlier weeks, or None in warm-up."""
    found = _periodic_windows(series, signal, end_s, window_s, weeks, WEEK_S, "up")
    return statistics.median(found) if found is not None else None


def reference(
    series: BucketSeries, rule: RateOfChangeRule, end_s: int
) -> Baseline | None:
    """Return the baseline of the window ending at ``end_s``, warm-up included."""
    periodic = _periodic_windows(
        series,
        rule.measure,
        end_s,
        rule.window_s,
        rule.baseline_weeks,
        rule.baseline_period_s,
        rule.direction,
    )
    if periodic is None:
        return _warmup_baseline(series, rule.measure, end_s, rule.window_s)
    recent = _recent_windows(
        series, rule.measure, end_s, rule.window_s, rule.recent_windows
    )
    windows = periodic + recent
    pooled = statistics.median(windows)
    spread = Decimal(0)
    if rule.min_deviations is not None:
        deviation = statistics.median(abs(total - pooled) for total in windows)
        spread = MAD_TO_STD * deviation
    value = pooled
    if rule.recent_baseline == "separate" and recent:
        levels = (statistics.median(periodic), statistics.median(recent))
        value = max(levels) if rule.direction == "up" else min(levels)
    return Baseline(value, len(periodic), len(recent), spread)


def _periodic_windows(
    series: BucketSeries,
    signal: str,
    end_s: int,
    window_s: int,
    count: int,
    period_s: int,
    direction: str,
) -> list[Decimal] | None:
    """Return the totals of the same window in earlier periods, or None if none."""
    if not series.coarse:
        return None
    first_s = next(iter(series.coarse))
    starts = [
        end_s - window_s - k * period_s
        for k in range(1, count + 1)
        if end_s - window_s - k * period_s >= first_s
    ]
    # A latency or ratio window with too few requests has no value and is left out.
    found = [
        (start, value)
        for start in starts
        if (value := series.known_total(signal, start, start + window_s)) is not None
    ]
    if not found:
        return None
    starts = [start for start, _ in found]
    past = [value for _, value in found]
    capped = window_s <= WARMUP_MAX_WINDOW_S and is_total(signal)
    if len(past) < ROBUST_MEDIAN_PERIODS and capped:
        known_s = (first_s, end_s - window_s)
        past = [
            _capped(series, signal, start, window_s, value, direction, known_s)
            for start, value in zip(starts, past, strict=True)
        ]
    return past


def _recent_windows(
    series: BucketSeries, signal: str, end_s: int, window_s: int, count: int
) -> list[Decimal]:
    """Return the totals of the ``count`` windows just before ``[end_s - window_s, end_s)``.

    A window whose minute buckets may be pruned already (it starts before the
    fine retention) is read from hourly buckets instead, which spread each hour
    evenly over its minutes.
    """
    first_s = next(iter(series.coarse))
    fine_from_s = end_s - series.fine_retention_s
    totals = []
    for back in range(1, count + 1):
        stop_s = end_s - back * window_s
        start_s = stop_s - window_s
        if start_s < first_s:
            break  # before the series began: unknown, not zero
        if start_s >= fine_from_s:
            value = series.known_window(signal, stop_s, window_s)
        else:
            value = series.known_total(signal, start_s, stop_s)
        if value is not None:
            totals.append(value)
    return totals


def _capped(
    series: BucketSeries,
    signal: str,
    start_s: int,
    window_s: int,
    value: Decimal,
    direction: str,
    known_s: tuple[int, int],
) -> Decimal:
    """Bound one earlier window by a percentile of the hourly totals around it.

    Only whole hours between the series' first bucket and the current window
    count (``known_s``): hours before the series began are unknown, not zero.
    With fewer than half a day of such hours the value is returned uncapped.
    """
    middle_s = start_s + window_s // 2
    first_hour_s = middle_s - middle_s % COARSE_BUCKET_S - 12 * COARSE_BUCKET_S
    hours_s = [first_hour_s + hour * COARSE_BUCKET_S for hour in range(_HOURS_PER_DAY)]
    hourly = sorted(
        _hour_total(series, signal, hour_s)
        for hour_s in hours_s
        if known_s[0] <= hour_s and hour_s + COARSE_BUCKET_S <= known_s[1]
    )
    if len(hourly) < _HOURS_PER_DAY // 2:
        return value
    if direction == "up":
        level = hourly[int(CAP_QUANTILE_UP * (len(hourly) - 1))]
        return min(value, level * window_s / COARSE_BUCKET_S)
    level = hourly[int(CAP_QUANTILE_DOWN * (len(hourly) - 1))]
    return max(value, level * window_s / COARSE_BUCKET_S)


def _warmup_baseline(
    series: BucketSeries, signal: str, end_s: int, window_s: int
) -> Baseline | None:
    if not series.coarse or window_s > WARMUP_MAX_WINDOW_S or not is_total(signal):
        return None
    start_s = end_s - window_s
    if next(iter(series.coarse)) > start_s - DAY_S:
        return None
    last_hour_s = start_s - start_s % COARSE_BUCKET_S
    hourly = sorted(
        _hour_total(series, signal, last_hour_s - hour * COARSE_BUCKET_S)
        for hour in range(1, _HOURS_PER_DAY + 1)
    )
    kept = hourly[: _HOURS_PER_DAY - WARMUP_TRIMMED_HOURS]
    level = sum(kept, Decimal(0)) / len(kept)
    return Baseline(level * window_s / COARSE_BUCKET_S, 0)


def _hour_total(series: BucketSeries, signal: str, hour_s: int) -> Decimal:
    totals = series.coarse.get(hour_s)
    return totals.value(signal) if totals is not None else Decimal(0)


def evaluate(
    state: TenantState, rule: RateOfChangeRule, now: datetime
) -> Iterator[AlertRecord]:
    """Evaluate one rule for every series of the tenant that it covers."""
    now_s = int(now.timestamp())
    # A rise needs recent requests. A fall is checked for a day after the last
    # request, so a source that stops is caught within that day.
    idle_limit_s = rule.window_s if rule.direction == "up" else rule.window_s + DAY_S
    alerts = state.alerts.alerts
    for series_id, series in state.series_of(rule.series).items():
        last_s = series.newest_s
        recent = last_s is not None and last_s >= now_s - idle_limit_s
        if not recent and not alerts:
            continue  # the common case on a quiet tick: no key to build
        if recent and not series.has_enough(rule.measure, now_s, rule.window_s):
            continue  # as in _evaluate_series, before building the key
        key = make_key(_PREFIX, rule.id, *series_id[1])
        if not recent and key not in alerts:
            continue
        record = _evaluate_series(state, rule, series_id, series, key, now, now_s)
        if record is not None:
            yield record


def _evaluate_series(
    state: TenantState,
    rule: RateOfChangeRule,
    series_id: SeriesId,
    series: BucketSeries,
    key: str,
    now: datetime,
    now_s: int,
) -> AlertRecord | None:
    current = series.known_window(rule.measure, now_s, rule.window_s)
    if current is None:
        return None  # fewer than min_requests: a latency or ratio alert keeps its state
    tracked = key in state.alerts.alerts
    if not tracked and rule.direction == "up" and current < rule.min_increase:
        return None  # cannot rise by min_increase: skips the baseline lookups
    past = reference(series, rule, now_s)
    if past is None:
        return None
    if state.alerts.is_firing(key):
        active = _beyond(current, past.value, rule.clear_level, rule.direction)
    else:
        ratio = rule.warmup_ratio if past.warmup else rule.min_ratio
        # A total equal to its baseline (0 against 0) is no change at any ratio.
        active = (
            current != past.value
            and _beyond(current, past.value, ratio, rule.direction)
            and abs(current - past.value) >= _min_change(rule, past)
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


def _min_change(rule: RateOfChangeRule, past: Baseline) -> Decimal:
    """Return the change the rule needs: ``min_increase`` or the spread floor."""
    if rule.min_deviations is None:
        return rule.min_increase
    return max(rule.min_increase, rule.min_deviations * past.spread)


def _beyond(current: Decimal, past: Decimal, ratio: Decimal, direction: str) -> bool:
    """Return whether ``current`` is ``ratio`` times above (or below) ``past``."""
    if direction == "up":
        return current >= past * ratio
    return current * ratio <= past


def _describe_period(rule: RateOfChangeRule, past: Baseline) -> str:
    if past.warmup:
        return "trimmed mean hour of the trailing day, warm-up"
    names = {WEEK_S: "week", DAY_S: "day", 3600: "hour"}
    name = names.get(rule.baseline_period_s, f"{rule.baseline_period_s} s period")
    if past.recent and rule.recent_baseline == "separate":
        side = "higher" if rule.direction == "up" else "lower"
        return (
            f"the {side} of the median of the same window in the previous "
            f"{past.periods} {name}(s) and the median of the {past.recent} "
            "window(s) before it"
        )
    if past.recent:
        return (
            f"median of the same window in the previous {past.periods} {name}(s) "
            f"and the {past.recent} window(s) before it"
        )
    if past.periods == 1:
        article = "an" if name == "hour" else "a"
        return f"same window {article} {name} earlier, from hourly totals"
    return (
        f"same window, median of the previous {past.periods} {name}s, "
        "from hourly totals"
    )


def _builder(
    state: TenantState,
    rule: RateOfChangeRule,
    series_id: SeriesId,
    current: Decimal,
    past: Baseline,
) -> RecordBuilder:
    # Every tick builds one, and most are never called, so the texts are made
    # only when the lifecycle emits a record.
    def build(alert: AlertState, status: Status, now: datetime) -> AlertRecord:
        return _record(state, rule, series_id, current, past, alert, status, now)

    return build


def _record(
    state: TenantState,
    rule: RateOfChangeRule,
    series_id: SeriesId,
    current: Decimal,
    past: Baseline,
    alert: AlertState,
    status: Status,
    now: datetime,
) -> AlertRecord:
    unit = UNIT_OF_SIGNAL[rule.signal]
    labels = series_labels(series_id)
    where = " ".join(f"{name}={label}" for name, label in labels.items())
    value = past.value
    if value > 0:
        against = f"{current / value:.1f}x the baseline {_baseline_amount(value, unit)}"
    else:
        against = f"against a baseline of {_baseline_amount(value, unit)}"
    ratio = rule.warmup_ratio if past.warmup else rule.min_ratio
    details = {
        "min_ratio": str(rule.min_ratio),
        "clear_ratio": str(rule.clear_level),
        "direction": rule.direction,
        "weeks": str(rule.baseline_weeks),
        "baseline_periods": str(past.periods),
        "warmup": str(past.warmup).lower(),
    }
    if past.warmup:
        # The ratio this alert needed: warm-up compares with the trailing day.
        details["warmup_min_ratio"] = str(ratio)
    if rule.recent_windows:
        details["recent_windows"] = str(past.recent)
        details["recent_baseline"] = rule.recent_baseline
    if rule.min_deviations is not None:
        details["min_deviations"] = str(rule.min_deviations)
        details["spread"] = str(past.spread)
    if rule.summary:
        details["description"] = rule.summary
    floor = _min_change(rule, past)
    if rule.direction == "up":
        threshold = max(value * ratio, value + floor)
        moved = f"{format_amount(current - value, unit)} above it"
    else:
        threshold = min(value / ratio, value - floor)
        moved = f"{format_amount(value - current, unit)} below it"
    window = f"{rule.signal_label} in the last {rule.window_s // 60} min"

    if status == "firing":
        summary = (
            f"{window} is {format_amount(current, unit)}, {against} "
            f"({_describe_period(rule, past)}) and {moved}, for {where}"
        )
    else:
        summary = (
            f"{window} is back to {format_amount(current, unit)} against a "
            f"baseline of {format_amount(value, unit)}, for {where}"
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
        baseline=value,
        threshold=threshold,
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


def _baseline_amount(value: Decimal, unit: Unit) -> str:
    """Format a baseline so the ratio next to it can be checked by eye.

    A baseline under a dollar rounded to the cent would misstate the ratio
    (198x of "$0.01"), so it keeps four decimals.
    """
    if unit == "usd" and 0 < value < 1:
        return f"${value.quantize(Decimal('0.0001'))}"
    return format_amount(value, unit)
