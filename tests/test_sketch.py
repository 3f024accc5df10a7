"""Latency sketches: merging and the snapshot form."""

from __future__ import annotations

import numpy as np

from detector import sketch


def test_merged_p95_matches_union() -> None:
    """The p95 of two merged sketches is within 1 % of the union's exact p95."""
    rng = np.random.default_rng(3)
    first = rng.lognormal(6.0, 0.5, 5000)
    second = rng.lognormal(7.0, 0.8, 3000)
    parts = [sketch.new_sketch(), sketch.new_sketch()]
    for part, values in zip(parts, (first, second), strict=True):
        for value in values:
            sketch.add(part, float(value))

    combined = sketch.merged(parts)

    union = np.concatenate([first, second])
    exact = float(np.quantile(union, 0.95, method="lower"))
    estimate = sketch.quantile(combined, 0.95)
    assert estimate is not None
    assert abs(estimate - exact) <= sketch.RELATIVE_ACCURACY * exact + 1e-9
    assert combined.count == len(union)


def test_dump_and_load_round_trip() -> None:
    """A loaded sketch returns the same quantiles as the dumped one."""
    original = sketch.new_sketch()
    for value in (0.0, 12.5, 40.0, 41.0, 900.0):
        sketch.add(original, value)

    restored = sketch.load(sketch.dump(original))

    for q in (0.0, 0.5, 0.95, 1.0):
        assert sketch.quantile(restored, q) == sketch.quantile(original, q)
    assert restored.count == 5


def test_empty_sketch_has_no_quantile() -> None:
    """An empty sketch returns None rather than a made-up latency."""
    empty = sketch.new_sketch()

    result = sketch.quantile(empty, 0.95)

    assert result is None
