"""The service's own alert for a partition that stopped making progress.

A partition is stalled when its end offset has moved past the last record the
service handled and no record was handled for ``stall_after_s``. The alert
resolves once records are handled again.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from detector.alerts import AlertRecord, alert_id

SERVICE_TENANT = "burnrate"
RULE_ID = "burnrate:partition-stalled"


class StallWatch:
    """Tracks handled offsets per partition and raises or resolves stall alerts."""

    def __init__(self, stall_after_s: float) -> None:
        self.stall_after_s = stall_after_s
        self._offset: dict[int, int] = {}
        self._progress_at: dict[int, float] = {}
        self._firing: dict[int, tuple[str, datetime]] = {}

    def progress(self, partition: int, offset: int, monotonic_s: float) -> None:
        self._offset[partition] = offset
        self._progress_at[partition] = monotonic_s

    def forget(self, partition: int) -> None:
        self._offset.pop(partition, None)
        self._progress_at.pop(partition, None)
        self._firing.pop(partition, None)

    def check(self, end_offsets: dict[int, int], monotonic_s: float) -> list[AlertRecord]:
        """Compare end offsets with handled ones; return alerts that changed state."""
        records = []
        for partition, end_offset in end_offsets.items():
            handled = self._offset.get(partition, -1)
            since = self._progress_at.setdefault(partition, monotonic_s)
            behind = end_offset - 1 - handled
            stalled = behind > 0 and monotonic_s - since >= self.stall_after_s
            firing = self._firing.get(partition)
            if stalled and firing is None:
                now = datetime.now(UTC)
                self._firing[partition] = (alert_id(RULE_ID, partition, now.isoformat()), now)
                records.append(self._record(partition, "firing", behind, monotonic_s - since))
            elif not stalled and firing is not None and behind <= 0:
                records.append(self._record(partition, "resolved", behind, 0.0))
                del self._firing[partition]
        return records

    def _record(self, partition: int, status: str, behind: int, idle_s: float) -> AlertRecord:
        identifier, started = self._firing[partition]
        if status == "firing":
            summary = (
                f"partition {partition} has {behind} unread records and handled none "
                f"for {idle_s:.0f} s"
            )
        else:
            summary = f"partition {partition} is making progress again"
        return AlertRecord(
            alert_id=identifier,
            status=status,  # type: ignore[arg-type]
            tier="service",
            severity="critical",
            rule_id=RULE_ID,
            tenant=SERVICE_TENANT,
            signal="consumer_progress",
            unit="requests",
            observed=Decimal(max(behind, 0)),
            event_time=datetime.now(UTC),
            started_at=started,
            summary=summary,
            series={"partition": str(partition)},
        )


