"""One partition's share of the service: its engine, offsets and outputs.

A ``PartitionRunner`` owns the engine for one source partition. It restores a
tenant's state from the durable table the first time the tenant appears. It
skips records at or below the offset a tenant had already applied, because Kafka
redelivers after a rebalance or a crash. It reports what the caller must
publish: alert records, rejected inputs and the snapshots of tenants that
changed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from detector.alerts import AlertRecord
from detector.config import RuleSet
from detector.decode import Rejection, decode_record, too_far_ahead
from detector.engine import Engine, EngineSettings
from detector.events import Event
from detector.pricing import Pricer
from detector.service.budget_state import PeriodEnds
from detector.service.settings import ServiceSettings

logger = logging.getLogger("burnrate.service")

SnapshotLookup = Callable[[str], bytes | None]


@dataclass(slots=True)
class Output:
    """Alert records and rejections from records or a tick, for the caller to publish."""

    alerts: list[AlertRecord] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)

    def extend(self, other: Output) -> None:
        self.alerts.extend(other.alerts)
        self.rejections.extend(other.rejections)


@dataclass(slots=True)
class PartitionCounters:
    records: int = 0
    redelivered: int = 0
    rejected: int = 0
    last_offset: int = -1
    # Offsets skipped between two records handled in a row. Compaction and
    # transaction markers leave such gaps legitimately; on a plain events
    # topic a gap means records were consumed without being handled.
    offset_gaps: int = 0


class PartitionRunner:
    """The engine and bookkeeping of one source partition."""

    def __init__(
        self,
        partition: int,
        rules: RuleSet,
        settings: ServiceSettings,
        lookup: SnapshotLookup,
    ) -> None:
        self.partition = partition
        self.settings = settings
        self.engine = Engine(
            rules,
            Pricer(rules.prices),
            EngineSettings(
                allowed_lateness_s=settings.allowed_lateness_s,
                dedup_horizon_s=settings.dedup_horizon_s,
                dedup_max_ids_per_tenant=settings.dedup_max_ids_per_tenant,
            ),
            defer_forecasts=True,
        )
        self.counters = PartitionCounters()
        self._lookup = lookup
        self._anchor_event_s = 0
        self._anchor_wall_s = time.monotonic()
        self._ticked_to_s: int | None = None
        # Called with each applied event and its cost; the service's metrics
        # aggregate them per batch.
        self.observe: Callable[[Event, Decimal], None] | None = None
        # When the budget state published for each tenant goes out of date.
        self.period_ends = PeriodEnds()

    def restore(self, tenants: Iterable[str]) -> int:
        """Load the snapshots of ``tenants`` and return how many were loaded.

        The engine's watermark starts at the latest tick any of them evaluated,
        so ticks go on from where the previous owner stopped rather than
        waiting for the partition's next event.
        """
        count = 0
        for tenant in tenants:
            if tenant not in self.engine.tenants and self._tenant(tenant) is not None:
                count += 1
        evaluated = [state.evaluated_s for state in self.engine.tenants.values()]
        if evaluated and max(evaluated) > 0 and self.engine.watermark_s is None:
            self.engine.watermark_s = max(evaluated)
        return count

    def handle(
        self, value: bytes, offset: int, wall_s: float, key: bytes | None = None
    ) -> Output:
        """Apply one source record (one event or a batch) at ``offset``.

        An event whose tenant is not the record key is rejected: all of a
        tenant's state lives with one partition, and only records keyed by the
        tenant are sure to reach that partition.
        """
        output = Output()
        self.counters.records += 1
        last_offset = self.counters.last_offset
        if last_offset >= 0 and offset > last_offset + 1:
            self.counters.offset_gaps += offset - last_offset - 1
            logger.warning(
                "partition %d: offsets %d-%d were not handled",
                self.partition, last_offset + 1, offset - 1,
            )
        self.counters.last_offset = max(last_offset, offset)
        events, rejections = decode_record(value)
        output.rejections.extend(rejections)
        applied: set[str] = set()
        for event in events:
            if key != event.tenant.encode():
                output.rejections.append(_wrong_key(event.tenant, key, value))
                continue
            if event.timestamp_s > wall_s + self.settings.max_future_s:
                output.rejections.append(too_far_ahead(event.timestamp, wall_s, value))
                continue
            if event.timestamp_s < wall_s - self.settings.max_past_s:
                output.rejections.append(
                    _too_far_behind(event.timestamp, wall_s, self.settings.max_past_s, value)
                )
                continue
            state = self._tenant(event.tenant)
            if state is not None and offset <= state.applied_offset:
                self.counters.redelivered += 1
                continue
            stats = self.engine.stats
            events_before, spend_before = stats.events, stats.spend_usd
            output.alerts.extend(self.engine.process(event))
            if self.observe is not None and stats.events > events_before:
                self.observe(event, stats.spend_usd - spend_before)
            applied.add(event.tenant)
        for tenant in applied:
            self.engine.tenants[tenant].applied_offset = offset
        self.counters.rejected += len(output.rejections)
        return output

    def tick(self, wall_monotonic_s: float) -> list[AlertRecord]:
        """Advance event time with the wall clock while the partition is quiet.

        The event clock is the watermark events last set, plus the wall time
        since then, less a grace period for events still in flight.
        """
        watermark_s = self.engine.watermark_s
        if watermark_s is None:
            return []
        if watermark_s != self._ticked_to_s:
            # Events moved the watermark, so the clock restarts from it. Recording
            # it keeps this anchor until events move the watermark again, so
            # idle time adds up over the ticks.
            self._anchor_event_s = watermark_s
            self._anchor_wall_s = wall_monotonic_s
            self._ticked_to_s = watermark_s
        idle_s = int(wall_monotonic_s - self._anchor_wall_s)
        clock_s = self._anchor_event_s + idle_s - self.settings.tick_grace_s
        if clock_s <= watermark_s:
            return []
        records = self.engine.advance_to_s(clock_s)
        self._ticked_to_s = self.engine.watermark_s
        return records

    def take_snapshots(self) -> dict[str, bytes]:
        """Return the snapshots of tenants changed since the last call."""
        touched, self.engine.touched = self.engine.touched, set()
        return {
            tenant: self.engine.dump_tenant(tenant)
            for tenant in touched
            if tenant in self.engine.tenants
        }

    def _tenant(self, tenant: str):  # type: ignore[no-untyped-def]
        state = self.engine.tenants.get(tenant)
        if state is not None:
            return state
        data = self._lookup(tenant)
        if data is None:
            return None
        self.engine.load_tenant(data)
        return self.engine.tenants[tenant]


def _too_far_behind(
    timestamp: datetime, wall_s: float, max_past_s: int, raw: bytes
) -> Rejection:
    wall = datetime.fromtimestamp(wall_s, UTC).isoformat()
    return Rejection(
        "timestamp_too_old",
        "timestamp",
        f"timestamp {timestamp.isoformat()} is more than {max_past_s} s "
        f"behind the service clock {wall}",
        raw,
    )


def _wrong_key(tenant: str, key: bytes | None, raw: bytes) -> Rejection:
    shown = "no key" if key is None else f"key {key.decode(errors='replace')!r}"
    return Rejection(
        "wrong_key",
        None,
        f"record has {shown}, not the event's tenant {tenant!r}; key each record "
        "by its tenant so that all of a tenant's events reach one partition",
        raw,
    )
