"""Windowed totals for one series, in event time, at two resolutions.

Fine buckets (60 s) give exact totals for short windows, and hourly buckets keep
the weeks of history that baselines need. Buckets are stored sparsely in dicts keyed by
bucket start, because most series are idle most of the time: a tenant that sends
one request an hour costs one entry per hour, not sixty. Dicts keep insertion
order, which is event-time order except for late events, so pruning pops from
the front until it meets a bucket that is still inside the retention.

Latency, error, refusal and cache signals are not sums, so they live in separate
``SignalStats`` buckets: request, error and refusal counts, cache and input token
sums, and one quantile sketch per latency signal. A series keeps them only when
a rule needs them (its ``SignalPlan``), and for as long as those rules' windows
need, which is usually much shorter than the totals' retention.

The tiers read every signal through ``window_total`` and ``coarse_total`` with a
measure key (``measure_key``). A total's key is its signal name, and a latency
key also carries the quantile and the minimum request count. Those two return
the quantile or ratio of the window for such a key, and 0 when the window has
fewer requests than the minimum. ``window_reading`` returns the value with its
request count, so a caller can tell "0" from "not enough requests".
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from decimal import Decimal

from detector import sketch
from detector.events import Event

FINE_BUCKET_S = 60
COARSE_BUCKET_S = 3600
_ZERO = Decimal(0)

TOTAL_SIGNALS = ("spend", "tokens", "requests")
# Signals summarised per window by a quantile of their per-request values.
QUANTILE_SIGNALS = (
    "ttft_ms",
    "inter_token_ms",
    "max_inter_token_gap_ms",
    "output_tokens_per_s",
    "duration_ms",
)
# Signals that are one count divided by another over the window.
RATIO_SIGNALS = ("error_rate", "refusal_rate", "cache_hit_rate")
# Ratios keep six decimals: 1 error in 1,000,000 requests still shows.
_RATIO_DIGITS = Decimal("0.000001")
# Latencies and rates keep three decimals of the sketch's float value.
_QUANTILE_DIGITS = Decimal("0.001")
# Latency values a bucket keeps raw before it folds them into its sketches.
_FOLD_AT = 32
_FLOAT_BYTES = sys.getsizeof(1.0)
# Cached hourly readings per series: enough for eight baseline periods and the
# windows beside them, small enough to clear at once when full.
_MAX_HOUR_READINGS = 64


class Totals:
    """The spend, tokens and requests accumulated in one bucket."""

    __slots__ = ("requests", "spend_usd", "tokens")

    def __init__(
        self, spend_usd: Decimal = _ZERO, tokens: int = 0, requests: int = 0
    ) -> None:
        self.spend_usd = spend_usd
        self.tokens = tokens
        self.requests = requests

    def add(self, spend_usd: Decimal, tokens: int) -> None:
        self.spend_usd += spend_usd
        self.tokens += tokens
        self.requests += 1

    def merge(self, other: Totals) -> None:
        self.spend_usd += other.spend_usd
        self.tokens += other.tokens
        self.requests += other.requests

    def subtract(self, other: Totals) -> None:
        self.spend_usd -= other.spend_usd
        self.tokens -= other.tokens
        self.requests -= other.requests

    def value(self, signal: str) -> Decimal:
        if signal == "spend":
            return self.spend_usd
        if signal == "tokens":
            return Decimal(self.tokens)
        return Decimal(self.requests)

    def to_list(self) -> list[str | int]:
        return [str(self.spend_usd), self.tokens, self.requests]

    @classmethod
    def from_list(cls, data: list[str | int]) -> Totals:
        return cls(Decimal(data[0]), int(data[1]), int(data[2]))


def is_total(key: str) -> bool:
    """Return whether a measure key names a sum (spend, tokens, requests)."""
    return key in TOTAL_SIGNALS


@dataclass(frozen=True, slots=True)
class Measure:
    """A latency or ratio signal with its quantile and minimum request count."""

    signal: str
    quantile: float | None
    min_requests: int


_MEASURES: dict[str, Measure] = {}


def measure_key(signal: str, quantile: float | None, min_requests: int | None) -> str:
    """Return the key the window functions take for a signal and its options."""
    if signal in TOTAL_SIGNALS:
        return signal
    q = "" if quantile is None else repr(float(quantile))
    return f"{signal}|{q}|{min_requests or 1}"


def parse_measure(key: str) -> Measure:
    """Parse a key from ``measure_key`` back into its measure."""
    measure = _MEASURES.get(key)
    if measure is None:
        signal, q, minimum = key.split("|")
        measure = Measure(signal, float(q) if q else None, int(minimum))
        _MEASURES[key] = measure
    return measure


class Sample:
    """The values one request adds to the latency and ratio signals.

    ``inter_token_ms`` is the mean gap between output tokens,
    ``(duration_ms - ttft_ms) / (output_tokens - 1)``, defined for streamed
    requests with two or more output tokens. ``output_tokens_per_s`` is output
    tokens over the whole duration, time to first token included. That is the
    rate a client observes, and it exists for requests that were not streamed too.
    A value that is unknown or negative is left out.
    """

    __slots__ = (
        "_entries",
        "_entries_for",
        "_event",
        "cache_read_tokens",
        "input_tokens",
        "is_error",
        "is_refusal",
    )

    def __init__(self, event: Event) -> None:
        self._event = event
        self.is_error = event.is_error
        self.is_refusal = event.is_refusal
        self.input_tokens = event.input_tokens
        self.cache_read_tokens = event.cache_read_tokens
        # The values of the last requested signals, with their bucket keys, because a
        # request joins several buckets and series with the same signals.
        self._entries_for: tuple[str, ...] | None = None
        self._entries: list[tuple[str, int | None, float]] = []

    @property
    def values(self) -> dict[str, float]:
        """The known values by signal."""
        found = {signal: self.value(signal) for signal in QUANTILE_SIGNALS}
        return {signal: value for signal, value in found.items() if value is not None}

    def value(self, signal: str) -> float | None:
        """Return the request's value of a latency signal, or None if unknown."""
        event = self._event
        if signal == "ttft_ms":
            ttft = event.ttft_ms
            return ttft if ttft is not None and ttft >= 0 else None
        if signal == "max_inter_token_gap_ms":
            gap = event.max_inter_token_gap_ms
            return gap if gap is not None and gap >= 0 else None
        duration = event.duration_ms
        if duration is None or duration < 0:
            return None
        if signal == "duration_ms":
            return duration
        output = event.output_tokens
        if signal == "output_tokens_per_s":
            return output * 1000.0 / duration if output is not None and duration > 0 else None
        ttft = event.ttft_ms
        if ttft is not None and output is not None and output >= 2 and duration >= ttft >= 0:
            return (duration - ttft) / (output - 1)
        return None

    def entries(self, signals: tuple[str, ...]) -> list[tuple[str, int | None, float]]:
        """Return (signal, bucket key, value) for each of ``signals`` the request has."""
        if signals is not self._entries_for:
            entries = []
            for signal in signals:
                value = self.value(signal)
                if value is not None:
                    entries.append((signal, sketch.bucket_key(value), value))
            self._entries = entries
            self._entries_for = signals
        return self._entries


@dataclass(frozen=True, slots=True)
class SignalPlan:
    """The latency and ratio state one series spec keeps, derived from the rules.

    ``sketch_signals`` are the latency signals some rule reads. Fine buckets are
    kept for ``fine_retention_s`` and carry running sums for ``windows_s``.
    Hourly buckets are kept for ``coarse_retention_s``, and 0 keeps none. Only
    rate-of-change baselines and windows longer than the fine retention read
    them.
    """

    sketch_signals: tuple[str, ...]
    windows_s: tuple[int, ...]
    fine_retention_s: int
    coarse_retention_s: int


class SignalStats:
    """The counts, token sums and latency sketches of one bucket or window.

    A bucket takes requests with ``buffer``, which keeps their latency values
    raw in ``pending`` and folds them into ``sketches`` once there are
    ``_FOLD_AT`` of them. Most minute buckets of a series contain a request or
    two, and for those a list of the values is cheaper to build, to merge into
    a window and to take out of it again than a sketch per signal. A window's
    running stats take requests with ``add``, straight into the sketches,
    because the window is read after every request.
    """

    __slots__ = (
        "cache_read_tokens",
        "errors",
        "input_requests",
        "input_tokens",
        "pending",
        "refusals",
        "requests",
        "sketches",
    )

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.refusals = 0
        # Requests that reported input tokens, and their input and cache sums.
        self.input_requests = 0
        self.input_tokens = 0
        self.cache_read_tokens = 0
        self.sketches: dict[str, sketch.Sketch] = {}
        # (signal, bucket key, value) of latency values not yet in ``sketches``.
        self.pending: list[tuple[str, int | None, float]] = []

    def add(self, sample: Sample, signals: tuple[str, ...]) -> None:
        """Add one request's counts, and its values of ``signals`` to the sketches."""
        # The counting lines repeat in ``buffer``: a call per request costs more.
        self.requests += 1
        self.errors += sample.is_error
        self.refusals += sample.is_refusal
        if sample.input_tokens is not None:
            self.input_requests += 1
            self.input_tokens += sample.input_tokens
            self.cache_read_tokens += sample.cache_read_tokens
        sketches = self.sketches
        for signal, key, value in sample.entries(signals):
            found = sketches.get(signal)
            if found is None:
                found = sketches[signal] = sketch.Sketch()
            found.add_key(key, value)

    def buffer(self, sample: Sample, signals: tuple[str, ...]) -> None:
        """Add one request like ``add``, but keep its values in ``pending`` for now."""
        self.requests += 1
        self.errors += sample.is_error
        self.refusals += sample.is_refusal
        if sample.input_tokens is not None:
            self.input_requests += 1
            self.input_tokens += sample.input_tokens
            self.cache_read_tokens += sample.cache_read_tokens
        pending = self.pending
        pending.extend(sample.entries(signals))
        if len(pending) >= _FOLD_AT:
            self.fold()

    def fold(self) -> None:
        """Move the values of ``pending`` into the sketches."""
        sketches = self.sketches
        for signal, key, value in self.pending:
            found = sketches.get(signal)
            if found is None:
                found = sketches[signal] = sketch.Sketch()
            found.add_key(key, value)
        self.pending = []

    def merge(self, other: SignalStats) -> None:
        self.requests += other.requests
        self.errors += other.errors
        self.refusals += other.refusals
        self.input_requests += other.input_requests
        self.input_tokens += other.input_tokens
        self.cache_read_tokens += other.cache_read_tokens
        sketches = self.sketches
        for signal, part in other.sketches.items():
            found = sketches.get(signal)
            if found is None:
                found = sketches[signal] = sketch.Sketch()
            found.merge(part)
        for signal, key, value in other.pending:
            found = sketches.get(signal)
            if found is None:
                found = sketches[signal] = sketch.Sketch()
            found.add_key(key, value)

    def subtract(self, other: SignalStats) -> None:
        """Remove the data of ``other``, which was merged into these stats before."""
        self.requests -= other.requests
        self.errors -= other.errors
        self.refusals -= other.refusals
        self.input_requests -= other.input_requests
        self.input_tokens -= other.input_tokens
        self.cache_read_tokens -= other.cache_read_tokens
        sketches = self.sketches
        for signal, part in other.sketches.items():
            found = sketches.get(signal)
            if found is not None:
                found.subtract(part)
        for signal, key, value in other.pending:
            found = sketches.get(signal)
            if found is not None:
                found.remove_key(key, value)

    def memory_bytes(self) -> int:
        """Return an estimate of the memory of the sketches and pending values.

        It counts ``Sketch.memory_bytes`` of each sketch, the ``pending`` list,
        and one entry tuple and float per pending value. A minute and an hour
        bucket of one series share their entry tuples, so the sum over both
        counts those twice. The counters and this object itself are not counted.
        """
        total = sum(found.memory_bytes() for found in self.sketches.values())
        pending = self.pending
        if pending:
            entry_bytes = sys.getsizeof(pending[0]) + _FLOAT_BYTES
            total += sys.getsizeof(pending) + entry_bytes * len(pending)
        return total

    def reading(self, measure: Measure) -> Reading:
        """Return the measure's value over this bucket or window, and its count."""
        if self.pending:
            self.fold()
        signal = measure.signal
        if measure.quantile is not None:
            found = self.sketches.get(signal)
            if found is None:
                return Reading(None, 0, False)
            count = int(found.count)
            if count < measure.min_requests:
                # With too few requests the quantile is not needed, and skipping it
                # keeps the check per event cheap on quiet series.
                return Reading(None, count, False)
            key = found.quantile_key(measure.quantile)
            return Reading(_shown_value(key), count, True)
        if signal == "cache_hit_rate":
            count, part, whole = self.input_requests, self.cache_read_tokens, self.input_tokens
        elif signal == "error_rate":
            count, part, whole = self.requests, self.errors, self.requests
        else:
            count, part, whole = self.requests, self.refusals, self.requests
        ratio = _ratio(part, whole) if whole else None
        return Reading(ratio, count, count >= measure.min_requests and ratio is not None)

    def to_list(self) -> list[object]:
        if self.pending:
            self.fold()
        return [
            self.requests,
            self.errors,
            self.refusals,
            self.input_requests,
            self.input_tokens,
            self.cache_read_tokens,
            {signal: sketch.dump(found) for signal, found in self.sketches.items()},
        ]

    @classmethod
    def from_list(cls, data: list[object], signals: tuple[str, ...]) -> SignalStats:
        stats = cls()
        counts = [int(value) for value in data[:6]]  # type: ignore[call-overload]
        (
            stats.requests,
            stats.errors,
            stats.refusals,
            stats.input_requests,
            stats.input_tokens,
            stats.cache_read_tokens,
        ) = counts
        dumped = data[6]
        assert isinstance(dumped, dict)
        stats.sketches = {
            signal: sketch.load(entry)
            for signal, entry in dumped.items()
            if signal in signals
        }
        return stats


@dataclass(slots=True)
class Reading:
    """A latency or ratio value over a window and the requests behind it.

    ``value`` is None when no request reported the signal, and for a quantile
    also when fewer than ``min_requests`` did. ``enough`` is false when fewer
    than the measure's ``min_requests`` requests count. Windows cache and share
    readings, so a reading must not be changed. It is not frozen because a
    frozen dataclass is slower to build, and one is built on most requests.
    """

    value: Decimal | None
    count: int
    enough: bool


class RollingWindow:
    """The running total of one window length over fine buckets.

    The window ``[end_s - window_s, end_s)`` slides forward one fine bucket at a
    time: buckets that leave are subtracted, so a check per event costs a few
    additions instead of a sum over every bucket of the window. ``stats`` is the
    running ``SignalStats`` of the window when a latency or ratio rule uses this
    window length, and None otherwise. ``readings`` caches readings of ``stats``
    by measure key until ``stats`` changes, because a quiet series' window is read on
    every tick and mostly contains the same requests as a minute before.
    """

    __slots__ = ("end_s", "readings", "stats", "totals", "window_s")

    def __init__(self, window_s: int, with_stats: bool = False) -> None:
        self.window_s = window_s
        self.end_s = 0
        self.totals = Totals()
        self.stats: SignalStats | None = SignalStats() if with_stats else None
        self.readings: dict[str, Reading] = {}

    def slide(
        self,
        fine: dict[int, Totals],
        end_s: int,
        fine_stats: dict[int, SignalStats] | None = None,
    ) -> None:
        """Move the window end forward to ``end_s``."""
        if end_s <= self.end_s:
            return
        stats = self.stats if fine_stats is not None else None
        if end_s - self.end_s >= self.window_s:
            self.totals = _sum_totals(fine, end_s - self.window_s, end_s)
            if stats is not None and fine_stats is not None:
                self.stats = _sum_stats(fine_stats, end_s - self.window_s, end_s)
                self.readings.clear()
            self.end_s = end_s
            return
        leaving = self.end_s - self.window_s
        entering = self.end_s
        while entering < end_s:
            gone = fine.get(leaving)
            if gone is not None:
                self.totals.subtract(gone)
            joined = fine.get(entering)
            if joined is not None:
                self.totals.merge(joined)
            if stats is not None and fine_stats is not None:
                gone_stats = fine_stats.get(leaving)
                if gone_stats is not None:
                    stats.subtract(gone_stats)
                    self.readings.clear()
                joined_stats = fine_stats.get(entering)
                if joined_stats is not None:
                    stats.merge(joined_stats)
                    self.readings.clear()
            leaving += FINE_BUCKET_S
            entering += FINE_BUCKET_S
        self.end_s = end_s


class BucketSeries:
    """Fine and hourly buckets of one series with bounded retention."""

    __slots__ = (
        "_hour_readings",
        "_last_reading",
        "coarse",
        "coarse_retention_s",
        "coarse_stats",
        "fine",
        "fine_retention_s",
        "fine_stats",
        "newest_s",
        "plan",
        "rolling",
    )

    def __init__(
        self,
        fine_retention_s: int,
        coarse_retention_s: int,
        rolling_windows_s: tuple[int, ...] = (),
        plan: SignalPlan | None = None,
    ) -> None:
        self.fine: dict[int, Totals] = {}
        self.coarse: dict[int, Totals] = {}
        self.fine_stats: dict[int, SignalStats] = {}
        self.coarse_stats: dict[int, SignalStats] = {}
        self.fine_retention_s = fine_retention_s
        self.coarse_retention_s = coarse_retention_s
        self.newest_s: int | None = None
        self.plan = plan
        # The last reading of a window that is not rolling, because a
        # rate-of-change evaluation reads the same window twice. ``add_signals``
        # clears it. Rolling windows cache their own readings.
        self._last_reading: tuple[str, int, int, Reading] | None = None
        # Readings of whole past hours by (key, first hour, end hour). Baselines
        # read the same hours on every tick of an hour, and those hours change
        # only when a late event reaches one of them.
        self._hour_readings: dict[tuple[str, int, int], Reading] = {}
        stats_windows = plan.windows_s if plan is not None else ()
        self.rolling = {
            window_s: RollingWindow(window_s, window_s in stats_windows)
            for window_s in rolling_windows_s
            if window_s <= fine_retention_s
        }

    def add(self, timestamp_s: int, spend_usd: Decimal, tokens: int) -> None:
        """Add one request to its fine and hourly buckets."""
        fine_start = timestamp_s - timestamp_s % FINE_BUCKET_S
        _bucket(self.fine, fine_start).add(spend_usd, tokens)
        if self.newest_s is None or timestamp_s > self.newest_s:
            self.newest_s = timestamp_s
        _bucket(self.coarse, timestamp_s - timestamp_s % COARSE_BUCKET_S).add(
            spend_usd, tokens
        )
        for window in self.rolling.values():
            if fine_start >= window.end_s:
                # The new bucket is in the fine dict already: sliding adds it.
                window.slide(self.fine, fine_start + FINE_BUCKET_S, self.fine_stats)
            elif fine_start >= window.end_s - window.window_s:
                window.totals.add(spend_usd, tokens)

    def add_signals(self, timestamp_s: int, sample: Sample) -> None:
        """Add one request's latency and ratio values; call after ``add``.

        ``add`` has moved the rolling windows to the request's bucket already,
        so the sample joins the running stats of every window that contains it.
        """
        plan = self.plan
        if plan is None:
            return
        self._last_reading = None
        signals = plan.sketch_signals
        fine_start = timestamp_s - timestamp_s % FINE_BUCKET_S
        _stats_bucket(self.fine_stats, fine_start).buffer(sample, signals)
        if plan.coarse_retention_s:
            hour_start = timestamp_s - timestamp_s % COARSE_BUCKET_S
            _stats_bucket(self.coarse_stats, hour_start).buffer(sample, signals)
            newest_s = self.newest_s if self.newest_s is not None else timestamp_s
            if hour_start < newest_s - newest_s % COARSE_BUCKET_S:
                self._hour_readings.clear()
        for window in self.rolling.values():
            stats = window.stats
            if stats is None:
                continue
            if fine_start >= window.end_s:
                window.slide(self.fine, fine_start + FINE_BUCKET_S, self.fine_stats)
            elif fine_start >= window.end_s - window.window_s:
                stats.add(sample, signals)
                window.readings.clear()

    def set_plan(self, plan: SignalPlan | None) -> None:
        """Switch to another plan after a rule reload, dropping what is not needed."""
        self.plan = plan
        self._last_reading = None
        self._hour_readings.clear()
        if plan is None:
            self.fine_stats.clear()
            self.coarse_stats.clear()
        elif not plan.coarse_retention_s:
            self.coarse_stats.clear()
        windows = plan.windows_s if plan is not None else ()
        for window in self.rolling.values():
            if window.window_s not in windows:
                window.stats = None
                window.readings.clear()
            # A window that newly needs stats reads the fine buckets until the
            # series is rebuilt, because its running stats would miss the past.

    def prune(self, watermark_s: int) -> None:
        _prune(self.fine, watermark_s - self.fine_retention_s)
        _prune(self.coarse, watermark_s - self.coarse_retention_s)
        if self.plan is not None:
            _prune(self.fine_stats, watermark_s - self.plan.fine_retention_s)
            _prune(self.coarse_stats, watermark_s - self.plan.coarse_retention_s)

    def window_total(self, signal: str, end_s: int, window_s: int) -> Decimal:
        """Return the total in ``[end_s - window_s, end_s)``.

        Windows that fit in the fine retention are summed from fine buckets.
        Longer ones come from hourly buckets, where the first and last hour count
        in proportion to their overlap, taking spend as spread evenly inside an
        hour, so the result is an estimate at the edges. For a latency or ratio
        key this is the window's quantile or ratio, or 0 when the window has
        fewer requests than the key's minimum.
        """
        if signal not in TOTAL_SIGNALS:
            return _value_or_zero(self.window_reading(signal, end_s, window_s))
        window = self.rolling.get(window_s)
        if window is not None and end_s >= window.end_s:
            window.slide(self.fine, end_s, self.fine_stats)
            return window.totals.value(signal)
        if window_s <= self.fine_retention_s:
            return _sum_totals(self.fine, end_s - window_s, end_s).value(signal)
        return self.coarse_total(signal, end_s - window_s, end_s)

    def known_total(self, signal: str, start_s: int, end_s: int) -> Decimal | None:
        """Return ``coarse_total``, or None where its 0 would mean "no data".

        A latency or ratio key whose hours contain fewer requests than its minimum
        has no value. A 0 there would read as a rise to any later value.
        """
        if signal in TOTAL_SIGNALS:
            return self.coarse_total(signal, start_s, end_s)
        return _value_or_none(self._hours_reading(signal, start_s, end_s))

    def known_window(self, signal: str, end_s: int, window_s: int) -> Decimal | None:
        """Return ``window_total``, or None for a key with too few requests."""
        if signal in TOTAL_SIGNALS:
            return self.window_total(signal, end_s, window_s)
        return _value_or_none(self.window_reading(signal, end_s, window_s))

    def has_enough(self, key: str, end_s: int, window_s: int) -> bool:
        """Return whether the window contains the key's minimum number of requests.

        Always true for totals, which need no minimum.
        """
        if key in TOTAL_SIGNALS:
            return True
        return self.window_reading(key, end_s, window_s).enough

    def window_reading(self, key: str, end_s: int, window_s: int) -> Reading:
        """Return a latency or ratio key's value in ``[end_s - window_s, end_s)``.

        Windows that fit in the plan's fine retention are exact with respect to
        the sketch. Longer ones merge whole hours, so they start up to an hour
        before ``end_s - window_s``.
        """
        window = self.rolling.get(window_s)
        if window is not None and window.stats is not None and end_s >= window.end_s:
            if end_s > window.end_s:
                window.slide(self.fine, end_s, self.fine_stats)
            found = window.readings.get(key)
            if found is None:
                measure = _MEASURES.get(key) or parse_measure(key)
                found = window.readings[key] = window.stats.reading(measure)
            return found
        last = self._last_reading
        if last is not None and last[:3] == (key, end_s, window_s):
            return last[3]
        reading = self._read_window(parse_measure(key), key, end_s, window_s)
        self._last_reading = (key, end_s, window_s, reading)
        return reading

    def _read_window(self, measure: Measure, key: str, end_s: int, window_s: int) -> Reading:
        plan = self.plan
        if plan is not None and window_s <= plan.fine_retention_s:
            return _sum_stats(self.fine_stats, end_s - window_s, end_s).reading(measure)
        return self._hours_reading(key, end_s - window_s, end_s)

    def coarse_total(self, signal: str, start_s: int, end_s: int) -> Decimal:
        """Return the hourly-bucket estimate of the total in ``[start_s, end_s)``.

        For a latency or ratio key the hours that overlap the interval are merged
        whole, because a quantile or ratio cannot be split in proportion. The
        result is 0 when they contain fewer requests than the key's minimum.
        """
        if signal not in TOTAL_SIGNALS:
            return _value_or_zero(self._hours_reading(signal, start_s, end_s))
        total = _ZERO
        bucket_start = start_s - start_s % COARSE_BUCKET_S
        while bucket_start < end_s:
            totals = self.coarse.get(bucket_start)
            if totals is not None:
                overlap_s = min(end_s, bucket_start + COARSE_BUCKET_S) - max(
                    start_s, bucket_start
                )
                value = totals.value(signal)
                if overlap_s == COARSE_BUCKET_S:
                    total += value
                else:
                    total += value * overlap_s / COARSE_BUCKET_S
            bucket_start += COARSE_BUCKET_S
        return total

    def _hours_reading(self, key: str, start_s: int, end_s: int) -> Reading:
        """Return a key's reading over the whole hours that overlap the interval."""
        first_s = start_s - start_s % COARSE_BUCKET_S
        stop_s = end_s - end_s % COARSE_BUCKET_S
        if stop_s < end_s:
            stop_s += COARSE_BUCKET_S
        newest_s = self.newest_s if self.newest_s is not None else 0
        complete = stop_s <= newest_s - newest_s % COARSE_BUCKET_S
        cache_key = (key, first_s, stop_s)
        if complete:
            found = self._hour_readings.get(cache_key)
            if found is not None:
                return found
        reading = self._coarse_stats(first_s, stop_s).reading(parse_measure(key))
        if complete:
            if len(self._hour_readings) >= _MAX_HOUR_READINGS:
                self._hour_readings.clear()
            self._hour_readings[cache_key] = reading
        return reading

    def _coarse_stats(self, start_s: int, end_s: int) -> SignalStats:
        stats = SignalStats()
        bucket_start = start_s - start_s % COARSE_BUCKET_S
        while bucket_start < end_s:
            found = self.coarse_stats.get(bucket_start)
            if found is not None:
                stats.merge(found)
            bucket_start += COARSE_BUCKET_S
        return stats

    def last_activity_s(self) -> int | None:
        """Return the time of the newest request, or None for an empty series."""
        return self.newest_s


# Readings are Decimals built from a sketch bucket's value or from two counts.
# Both repeat from one request to the next, so the Decimals are cached, up to
# this many of each: latencies of 1 ms to 10 minutes span about 660 buckets.
_MAX_CACHED = 4096
_SHOWN_VALUES: dict[int | None, Decimal] = {None: Decimal(0).quantize(_QUANTILE_DIGITS)}


def _shown_value(key: int | None) -> Decimal:
    """Return the value of a sketch bucket (None: the zero bucket) to three decimals."""
    found = _SHOWN_VALUES.get(key)
    if found is None:
        assert key is not None
        if len(_SHOWN_VALUES) >= _MAX_CACHED:
            del _SHOWN_VALUES[next(reversed(_SHOWN_VALUES))]
        value = Decimal(sketch.bucket_value(key)).quantize(_QUANTILE_DIGITS)
        found = _SHOWN_VALUES[key] = value
    return found


_RATIOS: dict[tuple[int, int], Decimal] = {}


def _ratio(part: int, whole: int) -> Decimal:
    """Return ``part / whole`` rounded to six decimals."""
    found = _RATIOS.get((part, whole))
    if found is None:
        if len(_RATIOS) >= _MAX_CACHED:
            _RATIOS.clear()
        found = _RATIOS[(part, whole)] = (Decimal(part) / whole).quantize(_RATIO_DIGITS)
    return found


def _value_or_none(reading: Reading) -> Decimal | None:
    return reading.value if reading.enough else None


def _value_or_zero(reading: Reading) -> Decimal:
    if not reading.enough or reading.value is None:
        return _ZERO
    return reading.value


def _stats_bucket(buckets: dict[int, SignalStats], start_s: int) -> SignalStats:
    stats = buckets.get(start_s)
    if stats is None:
        stats = buckets[start_s] = SignalStats()
    return stats


def _sum_stats(buckets: dict[int, SignalStats], start_s: int, end_s: int) -> SignalStats:
    stats = SignalStats()
    bucket_start = start_s - start_s % FINE_BUCKET_S
    while bucket_start < end_s:
        found = buckets.get(bucket_start)
        if found is not None:
            stats.merge(found)
        bucket_start += FINE_BUCKET_S
    return stats


def _bucket(buckets: dict[int, Totals], start_s: int) -> Totals:
    totals = buckets.get(start_s)
    if totals is None:
        totals = buckets[start_s] = Totals()
    return totals


def _prune(buckets: dict[int, Totals] | dict[int, SignalStats], cutoff_s: int) -> None:
    while buckets:
        oldest = next(iter(buckets))
        if oldest >= cutoff_s:
            return
        del buckets[oldest]


def _sum_totals(buckets: dict[int, Totals], start_s: int, end_s: int) -> Totals:
    totals = Totals()
    bucket_start = start_s - start_s % FINE_BUCKET_S
    while bucket_start < end_s:
        found = buckets.get(bucket_start)
        if found is not None:
            totals.merge(found)
        bucket_start += FINE_BUCKET_S
    return totals
