"""Mergeable quantile sketches for latency signals, and their snapshot form.

Latency percentiles over windows and partitions need a summary that merges: the
p95 of an hour is not a combination of the p95s of its minutes. ``DDSketch`` (the
``ddsketch`` package, a port of Datadog's sketch) maps each value to a
logarithmic bucket so that every quantile it returns is within
``RELATIVE_ACCURACY`` of a true value of the data, and two sketches with the same
accuracy merge by adding bucket counts. Merging is therefore exact with respect
to the sketch: the merged sketch equals the sketch of the union of the inputs.

``dump`` and ``load`` turn a sketch into plain lists (bucket offset and counts of
the positive store, the zero count, count, sum, min and max) for the MessagePack
tenant snapshots. The package ships a protobuf form, but it needs the protobuf
runtime, which the core does not otherwise use. Values are latencies, so the
negative store is not kept: ``add`` rejects negative values.
"""

from __future__ import annotations

from typing import Any

from ddsketch import DDSketch

RELATIVE_ACCURACY = 0.01


def new_sketch() -> DDSketch:
    return DDSketch(RELATIVE_ACCURACY)


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


def quantile(sketch: DDSketch, q: float) -> float | None:
    """Return the ``q`` quantile, or None for an empty sketch."""
    if not sketch.count:
        return None
    value = sketch.get_quantile_value(q)
    return float(value) if value is not None else None


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
