"""Offset order of each events partition, and the seek back over a hole.

With faust-streaming 0.15.3 a restarted worker now and then never delivers one
record to the agent. The group's committed offsets are right and the records
after it arrive. Once those are acked, the offset commit passes over the missing
record, so its spend would be lost. The service therefore checks that each
partition's offsets continue from the committed offset it started at. On a hole
it seeks the consumer back to the first missing offset and skips the records
that were fetched before the seek, because they arrive again after the missing
one.

A hole can also be real: transaction markers and compaction leave offsets
without a record. A seek back over such a hole delivers the same offsets again,
so a hole that is still there after one seek back is accepted and logged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum

logger = logging.getLogger("burnrate.service")


class Verdict(Enum):
    """The action a caller takes on one record."""

    HANDLE = "handle"
    # Skip the record: it was fetched before a seek back and arrives again.
    SKIP = "skip"
    # Seek the partition back to ``OffsetSequence.rewind_to`` and skip the record.
    REWIND = "rewind"


@dataclass
class _Rewind:
    # The first missing offset, where the consumer was sent back to.
    hole_start: int
    # The offset that revealed the hole. Later ones were fetched before the seek.
    found_at: int


class OffsetSequence:
    """The next expected offset of each partition of the current assignment."""

    def __init__(self) -> None:
        self.expected: dict[int, int] = {}
        # Partitions whose committed offset was looked up in this assignment.
        self.started: set[int] = set()
        self.rewinds: dict[int, _Rewind] = {}
        # Seeks back over a hole, by partition, since the worker started.
        self.rewind_counts: dict[int, int] = {}
        # Offsets accepted as missing after a seek back, by partition.
        self.accepted_gaps: dict[int, int] = {}

    def is_started(self, partition: int) -> bool:
        return partition in self.started

    def start(self, partition: int, committed: int | None) -> None:
        """Set where a newly owned partition continues: its committed offset.

        ``None`` (no committed offset) leaves the first record to set it,
        because the consumer's reset policy then chooses the start.
        """
        self.started.add(partition)
        if committed is not None:
            self.expected.setdefault(partition, committed)

    def forget(self, partition: int) -> None:
        """Drop a partition that is no longer owned."""
        self.started.discard(partition)
        self.expected.pop(partition, None)
        self.rewinds.pop(partition, None)

    def check(self, partition: int, offset: int) -> Verdict:
        """Return what to do with the record at ``offset``.

        An offset below the expected one is a redelivery and is handled: the
        tenants' stored offsets skip what was applied before.
        """
        rewind = self.rewinds.get(partition)
        if rewind is not None:
            if offset > rewind.found_at:
                return Verdict.SKIP
            del self.rewinds[partition]
            if offset > rewind.hole_start:
                missing = offset - rewind.hole_start
                self.accepted_gaps[partition] = (
                    self.accepted_gaps.get(partition, 0) + missing
                )
                logger.warning(
                    "partition %d: offsets %d-%d contain no record after a seek back, "
                    "so the partition continues at %d",
                    partition, rewind.hole_start, offset - 1, offset,
                )
            self.expected[partition] = offset + 1
            return Verdict.HANDLE
        expected = self.expected.get(partition)
        if expected is None or offset == expected:
            self.expected[partition] = offset + 1
            return Verdict.HANDLE
        if offset < expected:
            return Verdict.HANDLE
        self.rewinds[partition] = _Rewind(hole_start=expected, found_at=offset)
        self.rewind_counts[partition] = self.rewind_counts.get(partition, 0) + 1
        logger.warning(
            "partition %d: offsets %d-%d were not delivered, seeking back to %d",
            partition, expected, offset - 1, expected,
        )
        return Verdict.REWIND

    def rewind_to(self, partition: int) -> int:
        """Return the offset a REWIND verdict sends the partition back to."""
        return self.rewinds[partition].hole_start
