"""Kafka helpers of the routing tests: topics, alert records, group offsets."""

from __future__ import annotations

import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition

from detector import alerts
from detector.alerts import AlertRecord


def unique_name(label: str) -> str:
    """Return a topic or group name that no other test on the shared broker uses."""
    return f"t-routing-{label}-{uuid.uuid4().hex[:8]}"


async def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()


async def produce(
    bootstrap: str, topic: str, records: list[tuple[int, AlertRecord]]
) -> list[tuple[int, int]]:
    """Send (partition, record) pairs in order; return (partition, offset) of each."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        placed = []
        for partition, record in records:
            metadata = await producer.send_and_wait(
                topic,
                alerts.encoder.encode(record),
                key=record.tenant.encode(),
                partition=partition,
            )
            placed.append((metadata.partition, metadata.offset))
        return placed
    finally:
        await producer.stop()


async def committed(
    bootstrap: str, group_id: str, topic: str, partitions: int
) -> dict[int, int]:
    """Return the group's committed offset per partition (0 where none is)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group_id, enable_auto_commit=False
    )
    await consumer.start()
    try:
        offsets = {}
        for partition in range(partitions):
            offset = await consumer.committed(TopicPartition(topic, partition))
            offsets[partition] = offset or 0
        return offsets
    finally:
        await consumer.stop()
