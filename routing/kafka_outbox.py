"""An outbox over the Kafka alerts topic, with offsets committed by a consumer group.

``burnrate serve`` writes one ``AlertRecord`` JSON per message to the alerts
topic, keyed by tenant. ``KafkaOutbox`` reads that topic with aiokafka in a
consumer group and commits offsets by hand: automatic commits would move the
group past records whose notifications are still queued or being retried.

Each partition is a lane of the ``Outbox`` protocol, and an entry's offset is
the Kafka offset just past its record. Delivery commits, per partition, only
the offset past the longest run of records whose notifications are all done,
so a record still being retried holds back its own partition only. After a
restart the group resumes at those offsets, and the delivery ledger skips
records read again whose notifications were sent.

One delivery process per consumer group is the design. A second member would
take over some partitions, and with them some tenants, so inhibitions and
Slack digests would see only part of the alerts, and the two ledgers would not
know each other's deliveries.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Literal

import msgspec
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import (
    CommitFailedError,
    IllegalStateError,
    KafkaError,
)
from aiokafka.structs import TopicPartition

from detector import alerts
from routing.outbox import OutboxEntry

logger = logging.getLogger(__name__)

OffsetReset = Literal["earliest", "latest"]


class KafkaOutbox:
    """Alert records from a Kafka topic, read in a consumer group (see the module).

    ``read`` waits up to ``wait_s`` for records, so delivery does not sleep
    again after an empty read (``read_waits`` is true). ``offset_reset`` is
    where a group without committed offsets starts: ``earliest`` (the default)
    delivers every alert still on the topic, ``latest`` only new ones.
    """

    read_waits = True

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        group_id: str,
        *,
        wait_s: float = 1.0,
        offset_reset: OffsetReset = "earliest",
        client_id: str = "burnrate-routing",
    ) -> None:
        self.topic = topic
        self.group_id = group_id
        self.wait_s = wait_s
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group_id,
            client_id=client_id,
            enable_auto_commit=False,
            auto_offset_reset=offset_reset,
            isolation_level="read_committed",
        )
        # Offsets that delivery has finished with, and those Kafka has stored.
        self._done: dict[TopicPartition, int] = {}
        self._stored: dict[TopicPartition, int] = {}
        # The next offset to read per partition, to resume there after a rebalance.
        self._positions: dict[TopicPartition, int] = {}
        self._commit_lock = asyncio.Lock()

    async def start(self) -> None:
        """Connect and subscribe; the group is joined on the first ``read``."""
        await self._consumer.start()
        self._consumer.subscribe([self.topic], listener=_Listener(self))
        logger.info(
            "reading alerts topic %s in consumer group %s", self.topic, self.group_id
        )

    async def stop(self, *, commit: bool = True) -> None:
        """Commit finished offsets (unless ``commit`` is false) and leave the group."""
        try:
            if commit:
                await self._flush_commits()
        finally:
            await self._consumer.stop()
        logger.info(
            "left consumer group %s; committed %s",
            self.group_id,
            _describe(self._stored),
        )

    def assignment(self) -> set[TopicPartition]:
        """Return the partitions assigned to this process (none before joining)."""
        return set(self._consumer.assignment())

    def committed(self) -> int:
        """Return the sum of the offsets this process committed, for logs.

        The durable position is the group's committed offset per partition.
        """
        return sum(self._stored.values())

    async def read(self, max_records: int) -> list[OutboxEntry]:
        batches = await self._consumer.getmany(
            timeout_ms=int(self.wait_s * 1000), max_records=max_records
        )
        entries: list[OutboxEntry] = []
        for partition, messages in batches.items():
            for message in messages:
                entries.append(self._entry(partition, message))
        return entries

    def _entry(
        self, partition: TopicPartition, message: ConsumerRecord[Any, Any]
    ) -> OutboxEntry:
        next_offset = message.offset + 1
        self._positions[partition] = next_offset
        where = f"{partition.topic}/{partition.partition}/{message.offset}"
        try:
            record = alerts.decoder.decode(message.value or b"")
        except msgspec.DecodeError as error:
            message_text = f"invalid alert record at {where}: {error}"
            return OutboxEntry(next_offset, None, message_text, partition.partition)
        return OutboxEntry(next_offset, record, lane=partition.partition)

    async def commit(self, offset: int, lane: int = 0) -> None:
        """Commit ``offset`` for partition ``lane``: every record before it is done."""
        partition = TopicPartition(self.topic, lane)
        self._done[partition] = max(offset, self._done.get(partition, 0))
        await self._flush_commits()

    async def _flush_commits(self, only: set[TopicPartition] | None = None) -> None:
        """Send finished offsets of assigned partitions that Kafka does not have."""
        async with self._commit_lock:
            assigned = self._consumer.assignment()
            offsets = {
                tp: offset
                for tp, offset in self._done.items()
                if tp in assigned
                and (only is None or tp in only)
                and offset > self._stored.get(tp, -1)
            }
            if not offsets:
                return
            try:
                await self._consumer.commit(offsets)
            except (CommitFailedError, IllegalStateError) as error:
                # The group is rebalancing. The offsets stay in ``_done`` and go
                # with the next commit if the partitions come back.
                logger.warning(
                    "commit of %s failed, will retry: %s", _describe(offsets), error
                )
                return
            except KafkaError as error:
                logger.error(
                    "commit of %s failed, will retry: %s", _describe(offsets), error
                )
                return
            self._stored.update(offsets)

    async def partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Commit finished offsets of ``revoked`` before another member reads them."""
        await self._flush_commits(only=revoked)
        logger.info("partitions revoked: %s", _partitions(revoked))

    async def partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        """Resume partitions this process read before at its own position.

        Records after the committed offset that this process already handed to
        delivery are still being delivered; reading them again would queue them
        twice. A partition whose committed offset is past that position was
        read by another member meanwhile and resumes at its committed offset.
        """
        for tp in assigned:
            position = self._positions.get(tp)
            if position is None:
                continue
            committed = await self._consumer.committed(tp)
            if committed is None or committed <= position:
                self._consumer.seek(tp, position)
            else:
                self._positions.pop(tp, None)
                self._stored[tp] = committed
        logger.info("partitions assigned: %s", _partitions(assigned))


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Forwards the group's rebalance callbacks to the outbox."""

    def __init__(self, outbox: KafkaOutbox) -> None:
        self.outbox = outbox

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.outbox.partitions_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.outbox.partitions_assigned(set(assigned))


def _partitions(partitions: set[TopicPartition]) -> str:
    return ", ".join(str(tp.partition) for tp in sorted(partitions)) or "none"


def _describe(offsets: dict[TopicPartition, int]) -> str:
    items = sorted(offsets.items())
    return (
        ", ".join(f"{tp.topic}/{tp.partition}@{offset}" for tp, offset in items)
        or "nothing"
    )
