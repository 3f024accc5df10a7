"""Helpers shared by the tier evaluators: series keys, comparisons, lifecycle keys."""

from __future__ import annotations

from decimal import Decimal

from detector.events import Event
from detector.state import SeriesId

# Separates the parts of a lifecycle key; no id or label value contains it.
KEY_SEPARATOR = "\x1f"


def series_id(event: Event, spec: tuple[str, ...]) -> SeriesId:
    """Return the series an event belongs to for a series spec such as (tenant, model)."""
    values = []
    for name in spec:
        if name == "tenant":
            values.append(event.tenant)
        elif name == "model":
            values.append(event.model)
        else:
            values.append(getattr(event, name))
    return spec, tuple(values)


def series_labels(series: SeriesId) -> dict[str, str]:
    spec, values = series
    return dict(zip(spec, values, strict=True))


def compare(value: Decimal, limit: Decimal, comparison: str) -> bool:
    return value >= limit if comparison == ">=" else value > limit


def make_key(*parts: object) -> str:
    return KEY_SEPARATOR.join(str(part) for part in parts)


def split_key(key: str) -> list[str]:
    return key.split(KEY_SEPARATOR)
