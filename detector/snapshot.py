"""Serialise a tenant's state to bytes and back, for durable tables.

The service keeps one snapshot per tenant in a changelog-backed table and
restores it when a partition moves to another worker. The format is MessagePack
with money as decimal strings, so a restore gives back exactly the same totals.
Rolling window sums are not stored: they are rebuilt from the fine buckets on
first use. Latency and ratio buckets (counts and sketches) follow a series'
totals as two extra list items. Snapshots written before those existed have no
such items and load with empty latency state. Items for signals that no loaded
rule reads are dropped on load.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import msgspec

from detector.lifecycle import AlertState
from detector.periods import zone
from detector.state import PeriodTotal, Retention, TenantState
from detector.windows import BucketSeries, SignalStats, Totals

FORMAT_VERSION = 1

_encoder = msgspec.msgpack.Encoder(decimal_format="string")
_decoder = msgspec.msgpack.Decoder()


class SnapshotError(ValueError):
    """A snapshot could not be read: wrong format version or damaged bytes."""


def dump_tenant(state: TenantState) -> bytes:
    """Return the snapshot bytes of one tenant's state."""
    # TODO: every stored request id goes into each snapshot, and the service
    # writes one per batch a tenant appears in, so a tenant with tens of
    # thousands of ids in the dedup horizon writes megabytes per batch. Storing
    # the ids in time buckets under keys of their own, written once, ends this.
    document = {
        "v": FORMAT_VERSION,
        "tenant": state.tenant,
        "timezone": state.timezone.key,
        "series": [_dump_series(sid, series) for sid, series in state.series.items()],
        "periods": {
            budget_id: [_dump_period(total) for total in periods.values()]
            for budget_id, periods in state.periods.items()
        },
        "daily": {day.isoformat(): str(usd) for day, usd in state.daily_usd.items()},
        "seen": [[request_id, ts] for request_id, ts in state.seen_ids.items()],
        "alerts": {key: _dump_alert(alert) for key, alert in state.alerts.alerts.items()},
        "fitted": {rule: day.isoformat() for rule, day in state.fitted_day.items()},
        "evaluated_s": state.evaluated_s,
        "applied_offset": state.applied_offset,
    }
    return _encoder.encode(document)


def load_tenant(data: bytes, retention: Retention) -> TenantState:
    """Rebuild a tenant's state from snapshot bytes."""
    try:
        document: dict[str, Any] = _decoder.decode(data)
    except msgspec.DecodeError as error:
        raise SnapshotError(f"snapshot is not valid MessagePack: {error}") from None
    if document.get("v") != FORMAT_VERSION:
        raise SnapshotError(
            f"snapshot format {document.get('v')!r} is not {FORMAT_VERSION}"
        )
    state = TenantState(document["tenant"], zone(document["timezone"]), retention)
    for entry in document["series"]:
        spec, values = tuple(entry[0]), tuple(entry[1])
        _load_series(state.series_for((spec, values)), entry)
    for budget_id, periods in document["periods"].items():
        loaded = [_load_period(entry) for entry in periods]
        state.periods[budget_id] = {total.start: total for total in loaded}
        for total in loaded:
            if total.fired_pct and (
                state.budget_alert_end_s is None
                or total.end_s < state.budget_alert_end_s
            ):
                state.budget_alert_end_s = total.end_s
    state.daily_usd = {
        date.fromisoformat(day): Decimal(usd) for day, usd in document["daily"].items()
    }
    for request_id, ts in document["seen"]:
        state.seen_ids[request_id] = ts
    state.alerts.alerts = {
        key: _load_alert(entry) for key, entry in document["alerts"].items()
    }
    state.fitted_day = {
        rule: date.fromisoformat(day) for rule, day in document["fitted"].items()
    }
    state.evaluated_s = document["evaluated_s"]
    state.applied_offset = document["applied_offset"]
    return state


def _dump_series(series_id: tuple[tuple[str, ...], tuple[str, ...]], series: BucketSeries) -> list[Any]:
    return [
        list(series_id[0]),
        list(series_id[1]),
        [[start, *totals.to_list()] for start, totals in series.fine.items()],
        [[start, *totals.to_list()] for start, totals in series.coarse.items()],
        series.newest_s,
        [[start, *stats.to_list()] for start, stats in series.fine_stats.items()],
        [[start, *stats.to_list()] for start, stats in series.coarse_stats.items()],
    ]


def _load_series(series: BucketSeries, entry: list[Any]) -> None:
    series.fine = {row[0]: Totals.from_list(row[1:]) for row in entry[2]}
    series.coarse = {row[0]: Totals.from_list(row[1:]) for row in entry[3]}
    series.newest_s = entry[4]
    plan = series.plan
    if plan is None or len(entry) < 7:
        return
    signals = plan.sketch_signals
    series.fine_stats = {row[0]: SignalStats.from_list(row[1:], signals) for row in entry[5]}
    if plan.coarse_retention_s:
        series.coarse_stats = {
            row[0]: SignalStats.from_list(row[1:], signals) for row in entry[6]
        }


def _dump_period(total: PeriodTotal) -> list[Any]:
    return [
        total.start_s,
        total.end_s,
        str(total.spend_usd),
        total.tokens,
        sorted(str(pct) for pct in total.fired_pct),
    ]


def _load_period(entry: list[Any]) -> PeriodTotal:
    return PeriodTotal(
        start=datetime.fromtimestamp(entry[0], UTC),
        end=datetime.fromtimestamp(entry[1], UTC),
        spend_usd=Decimal(entry[2]),
        tokens=entry[3],
        fired_pct={Decimal(pct) for pct in entry[4]},
    )


def _dump_alert(alert: AlertState) -> list[Any]:
    sent = alert.last_sent_at.isoformat() if alert.last_sent_at else None
    active = alert.last_active_at.isoformat() if alert.last_active_at else None
    return [
        alert.alert_id,
        alert.status,
        alert.started_at.isoformat(),
        sent,
        alert.repeats,
        active,
    ]


def _load_alert(entry: list[Any]) -> AlertState:
    sent = datetime.fromisoformat(entry[3]) if entry[3] else None
    active = datetime.fromisoformat(entry[5]) if entry[5] else None
    return AlertState(
        alert_id=entry[0],
        status=entry[1],
        started_at=datetime.fromisoformat(entry[2]),
        last_sent_at=sent,
        repeats=entry[4],
        last_active_at=active,
    )
