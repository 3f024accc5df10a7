"""Mergeable quantile sketches for latency signals, and their snapshot form.

Latency percentiles over windows and partitions need a summary that merges: the
p95 of an hour is not a combination of the p95s of its minutes. A DDSketch maps
each value to a logarithmic bucket so that every quantile it returns is within
``RELATIVE_ACCURACY`` of a true value of the data, and two sketches with the same
accuracy merge by adding bucket counts. Merging is therefore exact with respect
to the sketch: the merged sketch equals the sketch of the union of the inputs.

The bucket mapping is the ``ddsketch`` package's ``LogarithmicMapping`` (a port
of Datadog's sketch), and ``bucket_key`` computes the same key as its ``key``.
The sketch around it is written here, for three reasons. ``DDSketch.add`` and its
dense store cost several microseconds per value in pure Python, and the windowed
state adds each request to three or four sketches. Sliding windows need
``subtract``, which the package lacks. A check per event reads a quantile of a
window that changed by one value, and a full pass over the buckets for that
dominated the cost. So a ``Sketch`` keeps its bucket counts as integers in a
dict (most minute buckets contain a few values), computes a value's key once per
request, and keeps, per quantile read, the bucket the quantile fell in and the
count below it. Adding or removing a value moves that position by a few buckets
at most, so reading the quantile again is a short walk instead of a sort.
Quantiles equal ``DDSketch.get_quantile_value`` for the same values (a test
compares them).

``dump`` and ``load`` turn a sketch into plain lists (first key, lowest and
highest key, dense counts from the first key, the zero count, count, sum, min and
max) for the MessagePack tenant snapshots. That is the layout earlier versions
wrote from the package's dense store, so their snapshots still load. The package
ships a protobuf form, but it needs the protobuf runtime, which the core does not
otherwise use. Values are latencies, so negative values are rejected.
"""

from __future__ import annotations

import math
import sys
from typing import Any

from ddsketch import LogarithmicMapping

RELATIVE_ACCURACY = 0.01
_MAPPING = LogarithmicMapping(RELATIVE_ACCURACY)
# The mapping's key is ceil(log2(value) * multiplier). Values at or below
# ``min_possible`` count as zero, as in ``DDSketch.add``.
_MULTIPLIER: float = _MAPPING._multiplier
_MIN_POSSIBLE: float = _MAPPING.min_possible
_INF = float("inf")
# CPython keeps the integers -5 to 256 as shared objects, so a dict entry containing
# one costs no extra object.
_SHARED_INT_MAX = 256
_INT_BYTES = sys.getsizeof(1000)
_FLOAT_BYTES = sys.getsizeof(1.0)


def bucket_key(value: float) -> int | None:
    """Return the bucket key of a value, or None for the zero bucket.

    Raises ValueError for a negative value.
    """
    if value > _MIN_POSSIBLE:
        # The same expression as ``LogarithmicMapping.key``, so keys are equal.
        # ``math.log2`` can differ in the last bit, which would move a key.
        return math.ceil(math.log(value, 2) * _MULTIPLIER)  # noqa: FURB163
    if value < 0:
        raise ValueError(f"invalid latency {value}: must be 0 or more")
    return None


def bucket_value(key: int) -> float:
    """Return the value of a bucket, as ``LogarithmicMapping.value`` does."""
    return float(_MAPPING.value(key))


class Sketch:
    """Bucket counts of non-negative values, with running quantile positions.

    ``bins`` maps a bucket key to its count and contains no zero counts.
    ``_positions`` maps a quantile to ``[key, count of values in buckets below
    key]``, a start for the next read that ``add_key``, ``merge`` and
    ``subtract`` keep consistent with ``bins``.
    """

    __slots__ = ("_positions", "bins", "count", "max", "min", "sum", "zero_count")

    def __init__(self) -> None:
        self.bins: dict[int, int] = {}
        self.zero_count = 0
        self.count = 0
        self.sum = 0.0
        self.min = _INF
        self.max = -_INF
        # Created on the first quantile read: most minute buckets are never read.
        self._positions: dict[float, list[int]] | None = None

    def add(self, value: float) -> None:
        """Add one value, raising ValueError for a negative one."""
        self.add_key(bucket_key(value), value)

    def add_key(self, key: int | None, value: float) -> None:
        """Add one value whose ``bucket_key`` the caller computed already."""
        self.count += 1
        self.sum += value
        # Comparisons rather than min() and max(): this runs for every value added.
        if value < self.min:  # noqa: PLR1730
            self.min = value
        if value > self.max:  # noqa: PLR1730
            self.max = value
        if key is None:
            self.zero_count += 1
            return
        bins = self.bins
        bins[key] = bins.get(key, 0) + 1
        if self._positions is not None:
            for position in self._positions.values():
                if key < position[0]:
                    position[1] += 1

    def remove_key(self, key: int | None, value: float) -> None:
        """Remove one value that ``add_key`` added before with the same key."""
        self.count -= 1
        if self.count <= 0:
            self.clear()
            return
        self.sum -= value
        if key is None:
            self.zero_count -= 1
            return
        bins = self.bins
        left = bins.get(key, 0) - 1
        if left > 0:
            bins[key] = left
        else:
            bins.pop(key, None)
        if self._positions is not None:
            for position in self._positions.values():
                if key < position[0]:
                    position[1] -= 1

    def merge(self, other: Sketch) -> None:
        """Add the data of ``other``."""
        if not other.count:
            return
        bins = self.bins
        positions = list(self._positions.values()) if self._positions else ()
        for key, count in other.bins.items():
            bins[key] = bins.get(key, 0) + count
            for position in positions:
                if key < position[0]:
                    position[1] += count
        self.zero_count += other.zero_count
        self.count += other.count
        self.sum += other.sum
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)

    def subtract(self, part: Sketch) -> None:
        """Remove the data of ``part``, which was merged into this sketch before.

        The minimum and maximum are not restored, and quantiles do not use them.
        """
        if not part.count:
            return
        self.count -= part.count
        if self.count <= 0:
            self.clear()
            return
        bins = self.bins
        positions = list(self._positions.values()) if self._positions else ()
        for key, count in part.bins.items():
            left = bins.get(key, 0) - count
            if left > 0:
                bins[key] = left
            else:
                bins.pop(key, None)
            for position in positions:
                if key < position[0]:
                    position[1] -= count
        self.zero_count -= part.zero_count
        self.sum -= part.sum

    def clear(self) -> None:
        self.bins = {}
        self.zero_count = 0
        self.count = 0
        self.sum = 0.0
        self.min = _INF
        self.max = -_INF
        self._positions = None

    def quantile(self, q: float) -> float | None:
        """Return the ``q`` quantile, or None for an empty sketch or q outside [0, 1].

        The quantile is the value of the lowest bucket whose cumulative count
        exceeds ``q * (count - 1)`` (zeros first), as in
        ``DDSketch.get_quantile_value``.
        """
        key = self.quantile_key(q)
        if key is None:
            return None if not self.count or not 0 <= q <= 1 else 0.0
        return bucket_value(key)

    def quantile_key(self, q: float) -> int | None:
        """Return the bucket key of the ``q`` quantile, or None for the zero bucket.

        None is also returned for an empty sketch or q outside [0, 1], cases that
        ``quantile`` distinguishes.
        """
        count = self.count
        if not count or not 0 <= q <= 1:
            return None
        rank = q * (count - 1)
        if rank < self.zero_count:
            return None
        target = rank - self.zero_count
        bins = self.bins
        positions = self._positions
        if positions is None:
            positions = self._positions = {}
        position = positions.get(q)
        if position is None:
            position = positions[q] = [min(bins), 0]
        key, below = position
        # Walk up while the buckets up to ``key`` contain no more values than
        # the target, then down while the buckets below ``key`` contain more.
        # The target is below the number of values in ``bins``, so the walk
        # stops within the lowest and highest key.
        here = bins.get(key, 0)
        while below + here <= target:
            below += here
            key += 1
            here = bins.get(key, 0)
        while below > target:
            key -= 1
            below -= bins.get(key, 0)
        position[0] = key
        position[1] = below
        return key

    def memory_bytes(self) -> int:
        """Return an estimate of the memory this sketch uses, in bytes.

        It counts the object, the ``bins`` dict (``sys.getsizeof``), one int
        object per key and per count above 256 (smaller ints are shared by
        CPython), the sum, min and max floats, and the quantile positions.
        Interpreter and allocator overhead outside these objects is not counted.
        """
        total = sys.getsizeof(self) + sys.getsizeof(self.bins) + 3 * _FLOAT_BYTES
        for key, count in self.bins.items():
            if not -5 <= key <= _SHARED_INT_MAX:
                total += _INT_BYTES
            if count > _SHARED_INT_MAX:
                total += _INT_BYTES
        if self._positions:
            total += sys.getsizeof(self._positions)
            for position in self._positions.values():
                total += sys.getsizeof(position) + _FLOAT_BYTES + 2 * _INT_BYTES
        return total


def new_sketch() -> Sketch:
    return Sketch()


def add(sketch: Sketch, value: float) -> None:
    """Add one non-negative value, raising ValueError for a negative one."""
    sketch.add(value)


def merged(sketches: list[Sketch]) -> Sketch:
    """Return a new sketch of the union of the inputs' data."""
    result = Sketch()
    for sketch in sketches:
        result.merge(sketch)
    return result


def subtract(sketch: Sketch, part: Sketch) -> None:
    """Remove the data of ``part`` from ``sketch`` (see ``Sketch.subtract``)."""
    sketch.subtract(part)


def quantile(sketch: Sketch, q: float) -> float | None:
    """Return the ``q`` quantile, or None for an empty sketch."""
    return sketch.quantile(q)


def dump(sketch: Sketch) -> list[Any]:
    bins = sketch.bins
    if bins:
        low, high = min(bins), max(bins)
        counts = [bins.get(key, 0) for key in range(low, high + 1)]
        first: float = low
        lowest: float = low
        highest: float = high
    else:
        # An empty dense store of the package wrote these bounds.
        counts, first, lowest, highest = [], 0, _INF, -_INF
    return [
        first,
        lowest,
        highest,
        counts,
        sketch.zero_count,
        sketch.count,
        float(sketch.sum),
        float(sketch.min),
        float(sketch.max),
    ]


def load(entry: list[Any]) -> Sketch:
    """Rebuild a sketch from ``dump`` output, including that of earlier versions.

    Earlier versions wrote counts as floats and may have kept zero counts
    outside the lowest and highest key, so zeros are skipped.
    """
    sketch = Sketch()
    first = int(entry[0])
    sketch.bins = {
        first + index: int(count) for index, count in enumerate(entry[3]) if count
    }
    sketch.zero_count = int(entry[4])
    sketch.count = int(entry[5])
    sketch.sum = float(entry[6])
    sketch.min = float(entry[7])
    sketch.max = float(entry[8])
    return sketch


def memory_bytes(sketch: Sketch) -> int:
    """Return an estimate of the sketch's memory (see ``Sketch.memory_bytes``)."""
    return sketch.memory_bytes()
