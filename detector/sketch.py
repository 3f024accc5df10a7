"""Mergeable quantile sketches for latency signals, and their snapshot form.

Latency percentiles over windows and partitions need a summary that merges: the
p95 of an hour is not a combination of the p95s of its minutes. ``DDSketch`` (the
``ddsketch`` package, a port of Datadog's sketch) maps each value to a
logarithmic bucket so that every quantile it returns is within
``RELATIVE_ACCURACY`` of a true value of the data, and two sketches with the same
accuracy merge by adding bucket counts. Merging is therefore exact with respect
to the sketch: the merged sketch equals the sketch of the union of the inputs.

Sliding windows also need the reverse: ``subtract`` takes a bucket's sketch out
of a window's running sketch by decrementing the same bucket counts. The package
has no such operation, so it is written here against the dense store that
``DDSketch`` uses. Counts are whole numbers held in floats, so adding and
subtracting them is exact.

``dump`` and ``load`` turn a sketch into plain lists (bucket offset and counts of
the positive store, the zero count, count, sum, min and max) for the MessagePack
tenant snapshots. The package ships a protobuf form, but it needs the protobuf
runtime, which the core does not otherwise use. Values are latencies, so the
negative store is not kept: ``add`` rejects negative values.
"""

from __future__ import annotations

from bisect import bisect_right
from itertools import accumulate
from typing import Any

from ddsketch import DDSketch, LogarithmicMapping
from ddsketch.ddsketch import BaseDDSketch
from ddsketch.store import DenseStore

RELATIVE_ACCURACY = 0.01
# One mapping for every sketch: it is immutable, and building one per sketch
# cost more than the sketch's first values in the windowed state.
_MAPPING = LogarithmicMapping(RELATIVE_ACCURACY)


class _SharedMappingSketch(DDSketch):
    """A ``DDSketch`` at ``RELATIVE_ACCURACY`` built on the shared mapping."""

    def __init__(self) -> None:
        BaseDDSketch.__init__(self, _MAPPING, DenseStore(), DenseStore(), 0.0)


def new_sketch() -> DDSketch:
    return _SharedMappingSketch()


def add(sketch: DDSketch, value: float) -> None:
    """Add one non-negative value; raises ValueError for a negative one."""
    if value < 0:
        raise ValueError(f"invalid latency {value}: must be 0 or more")
    sketch.add(value)


def merged(sketches: list[DDSketch]) -> DDSketch:
    """Return a new sketch of the union of the inputs' data."""
    result = new_sketch()
    for sketch in sketches:
        if sketch.count:
            result.merge(sketch)
    return result


def subtract(sketch: DDSketch, part: DDSketch) -> None:
    """Remove the data of ``part`` from ``sketch``.

    ``part`` must have been merged into ``sketch`` before (or be a copy of what
    was), so every bucket of ``part`` is inside the range of ``sketch``. The
    minimum and maximum are not restored, and quantiles do not use them.
    """
    if not part.count:
        return
    store, other = sketch._store, part._store
    if other.count:
        for key in range(other.min_key, other.max_key + 1):
            count = other.bins[key - other.offset]
            if count:
                store.bins[key - store.offset] -= count
        store.count -= other.count
    sketch._zero_count -= part._zero_count
    sketch._count -= part._count
    sketch._sum -= part._sum
    if sketch._count <= 0:
        _reset(sketch)


def _reset(sketch: DDSketch) -> None:
    empty = new_sketch()
    sketch._store = empty._store
    sketch._zero_count = 0.0
    sketch._count = 0.0
    sketch._sum = 0.0
    sketch._min = float("+inf")
    sketch._max = float("-inf")


def quantile(sketch: DDSketch, q: float) -> float | None:
    """Return the ``q`` quantile, or None for an empty sketch.

    The result equals ``DDSketch.get_quantile_value`` for sketches without
    negative values, which ``add`` ensures. The bucket counts are summed with
    ``itertools.accumulate`` and searched with ``bisect`` instead of the
    package's loop over buckets in Python, which dominated a check per event.
    """
    count = sketch._count
    if not count or not 0 <= q <= 1:
        return None
    rank = q * (count - 1)
    if rank < sketch._zero_count:
        return 0.0
    store = sketch._store
    index = bisect_right(list(accumulate(store.bins)), rank - sketch._zero_count)
    key = min(index + store.offset, store.max_key)
    return float(sketch._mapping.value(key))


def dump(sketch: DDSketch) -> list[Any]:
    store = sketch._store
    bins = [float(count) for count in store.bins]
    return [
        store.offset,
        store.min_key,
        store.max_key,
        bins,
        float(sketch._zero_count),
        float(sketch._count),
        float(sketch._sum),
        float(sketch._min),
        float(sketch._max),
    ]


def load(entry: list[Any]) -> DDSketch:
    sketch = new_sketch()
    store = sketch._store
    store.offset, store.min_key, store.max_key = entry[0], entry[1], entry[2]
    store.bins = list(entry[3])
    store.count = sum(store.bins)
    sketch._zero_count = entry[4]
    sketch._count = entry[5]
    sketch._sum = entry[6]
    sketch._min = entry[7]
    sketch._max = entry[8]
    return sketch


def memory_bytes(sketch: DDSketch) -> int:
    """Return an estimate of the sketch's memory: 8 bytes per bucket plus 200."""
    return 8 * len(sketch._store.bins) + 200
