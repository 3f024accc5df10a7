"""Windowed totals for one series, in event time, at two resolutions.

Fine buckets (60 s) give exact totals for short windows, and hourly buckets keep
the weeks of history that baselines need. Buckets are stored sparsely in dicts keyed by
bucket start, because most series are idle most of the time: a tenant that sends
one request an hour costs one entry per hour, not sixty. Dicts keep insertion
order, which is event-time order except for late events, so pruning pops from
the front until it meets a bucket that is still inside the retention.
"""

from __future__ import annotations

from decimal import Decimal

FINE_BUCKET_S = 60
COARSE_BUCKET_S = 3600
_ZERO = Decimal(0)


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


class RollingWindow:
    """The running total of one window length over fine buckets.

    The window ``[end_s - window_s, end_s)`` slides forward one fine bucket at a
    time: buckets that leave are subtracted, so a check per event costs a few
    additions instead of a sum over every bucket of the window.
    """

    __slots__ = ("end_s", "totals", "window_s")

    def __init__(self, window_s: int) -> None:
        self.window_s = window_s
        self.end_s = 0
        self.totals = Totals()

    def slide(self, fine: dict[int, Totals], end_s: int) -> None:
        """Move the window end forward to ``end_s``."""
        if end_s <= self.end_s:
            return
        if end_s - self.end_s >= self.window_s:
            self.totals = _sum_totals(fine, end_s - self.window_s, end_s)
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
            leaving += FINE_BUCKET_S
            entering += FINE_BUCKET_S
        self.end_s = end_s


class BucketSeries:
    """Fine and hourly buckets of one series with bounded retention."""

    __slots__ = (
        "coarse",
        "coarse_retention_s",
        "fine",
        "fine_retention_s",
        "newest_s",
        "rolling",
    )

    def __init__(
        self,
        fine_retention_s: int,
        coarse_retention_s: int,
        rolling_windows_s: tuple[int, ...] = (),
    ) -> None:
        self.fine: dict[int, Totals] = {}
        self.coarse: dict[int, Totals] = {}
        self.fine_retention_s = fine_retention_s
        self.coarse_retention_s = coarse_retention_s
        self.newest_s: int | None = None
        self.rolling = {
            window_s: RollingWindow(window_s)
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
                window.slide(self.fine, fine_start + FINE_BUCKET_S)
            elif fine_start >= window.end_s - window.window_s:
                window.totals.add(spend_usd, tokens)

    def prune(self, watermark_s: int) -> None:
        _prune(self.fine, watermark_s - self.fine_retention_s)
        _prune(self.coarse, watermark_s - self.coarse_retention_s)

    def window_total(self, signal: str, end_s: int, window_s: int) -> Decimal:
        """Return the total in ``[end_s - window_s, end_s)``.

        Windows that fit in the fine retention are summed from fine buckets.
        Longer ones come from hourly buckets, where the first and last hour count
        in proportion to their overlap, taking spend as spread evenly inside an
        hour, so the result is an estimate at the edges.
        """
        window = self.rolling.get(window_s)
        if window is not None and end_s >= window.end_s:
            window.slide(self.fine, end_s)
            return window.totals.value(signal)
        if window_s <= self.fine_retention_s:
            return _sum_totals(self.fine, end_s - window_s, end_s).value(signal)
        return self.coarse_total(signal, end_s - window_s, end_s)

    def coarse_total(self, signal: str, start_s: int, end_s: int) -> Decimal:
        """Return the hourly-bucket estimate of the total in ``[start_s, end_s)``."""
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

    def last_activity_s(self) -> int | None:
        """Return the time of the newest request, or None for an empty series."""
        return self.newest_s


def _bucket(buckets: dict[int, Totals], start_s: int) -> Totals:
    totals = buckets.get(start_s)
    if totals is None:
        totals = buckets[start_s] = Totals()
    return totals


def _prune(buckets: dict[int, Totals], cutoff_s: int) -> None:
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
