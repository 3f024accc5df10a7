"""Tests of the loopback Kafka broker that tests and developers run.

They produce and consume with aiokafka, the client the service uses, against
the real broker from deploy/kafka/launch.py (or $BURNRATE_TEST_KAFKA).
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections import defaultdict
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition

from tests.kafka_broker import KafkaBroker, KafkaBrokerError, free_loopback_port

# Upper bound on how long a consumer polls for the records it expects. The
# loops stop as soon as every record has arrived.
CONSUME_DEADLINE_S = 60.0

# Offset and sequence number of each record, per partition.
PartitionLog = dict[int, list[tuple[int, int]]]


async def create_topic(bootstrap: str, partition_count: int) -> str:
    """Create a topic with a unique name and return the name."""
    topic = f"test-{uuid.uuid4().hex[:12]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(topic, num_partitions=partition_count, replication_factor=1)]
        )
    finally:
        await admin.close()
    return topic


async def produce_sequence(bootstrap: str, topic: str, count: int) -> PartitionLog:
    """Send records 0..count-1 over 10 keys and return the offset of each."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        futures = []
        for sequence in range(count):
            key = f"key-{sequence % 10}".encode()
            value = str(sequence).encode()
            futures.append(await producer.send(topic, value=value, key=key))
        metadata = await asyncio.gather(*futures)
    finally:
        await producer.stop()

    produced: PartitionLog = defaultdict(list)
    for sequence, record in enumerate(metadata):
        produced[record.partition].append((record.offset, sequence))
    return dict(produced)


async def consume_with_group(
    bootstrap: str, topic: str, group_id: str, expected_count: int
) -> tuple[PartitionLog, dict[int, int | None]]:
    """Consume until expected_count records arrive, commit, return records and offsets."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group_id,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        consumed = await _poll_until(consumer, expected_count)
        await consumer.commit()
        committed = {
            partition: await consumer.committed(TopicPartition(topic, partition))
            for partition in consumed
        }
    finally:
        await consumer.stop()
    return consumed, committed


async def consume_from_start(
    bootstrap: str, topic: str, partition_count: int, expected_count: int
) -> PartitionLog:
    """Read every partition of topic from offset 0 without a consumer group."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        assignment = [
            TopicPartition(topic, partition) for partition in range(partition_count)
        ]
        consumer.assign(assignment)
        await consumer.seek_to_beginning(*assignment)
        return await _poll_until(consumer, expected_count)
    finally:
        await consumer.stop()


async def _poll_until(consumer: AIOKafkaConsumer, expected_count: int) -> PartitionLog:
    consumed: PartitionLog = defaultdict(list)
    received_count = 0
    deadline = time.monotonic() + CONSUME_DEADLINE_S
    while received_count < expected_count and time.monotonic() < deadline:
        batches = await consumer.getmany(timeout_ms=500)
        for partition, records in batches.items():
            for record in records:
                assert record.value is not None
                consumed[partition.partition].append((record.offset, int(record.value)))
                received_count += 1
    return dict(consumed)


def test_produce_consume_three_partitions(kafka_bootstrap: str) -> None:
    """A consumer group reads back all 1,000 records in per-partition send order."""
    record_count = 1000
    topic = asyncio.run(create_topic(kafka_bootstrap, partition_count=3))

    produced = asyncio.run(produce_sequence(kafka_bootstrap, topic, record_count))
    consumed, committed = asyncio.run(
        consume_with_group(kafka_bootstrap, topic, f"group-{topic}", record_count)
    )

    assert sorted(produced) == [0, 1, 2]
    assert sum(len(records) for records in produced.values()) == record_count
    assert sorted(consumed) == [0, 1, 2]
    assert sum(len(records) for records in consumed.values()) == record_count
    for partition, records in produced.items():
        sequences = [sequence for _, sequence in records]
        assert sequences == sorted(sequences), f"partition {partition} out of order"
        offsets = [offset for offset, _ in records]
        assert offsets == list(range(len(records))), f"partition {partition} has gaps"
        assert consumed[partition] == records, f"partition {partition} differs"
        assert committed[partition] == len(records)


def test_restart_keeps_records(tmp_path: Path) -> None:
    """A broker restarted on the same data folder still serves its records."""
    record_count = 100
    data_dir = tmp_path / "kafka"
    meta_path = data_dir / "kraft-combined-logs" / "meta.properties"
    with KafkaBroker(data_dir=data_dir) as broker:
        topic = asyncio.run(create_topic(broker.bootstrap, partition_count=3))
        produced = asyncio.run(produce_sequence(broker.bootstrap, topic, record_count))
    running_after_stop = broker.is_running()
    meta_before_restart = meta_path.read_text()

    with KafkaBroker(data_dir=data_dir) as restarted:
        consumed = asyncio.run(
            consume_from_start(restarted.bootstrap, topic, 3, record_count)
        )

    assert running_after_stop is False
    assert meta_path.read_text() == meta_before_restart, "data folder was reformatted"
    assert sum(len(records) for records in produced.values()) == record_count
    assert consumed == produced


def test_start_failure_raises_with_log(tmp_path: Path) -> None:
    """A broker whose port is taken raises with the tail of its log."""
    port = free_loopback_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as occupant:
        occupant.bind(("127.0.0.1", port))
        occupant.listen()
        broker = KafkaBroker(data_dir=tmp_path / "kafka", port=port)

        with pytest.raises(KafkaBrokerError) as raised:
            broker.start()

    message = str(raised.value)
    assert f"127.0.0.1:{port}" in message
    assert "First error in" in message
    assert "Address already in use" in message
    assert "Last 40 lines of" in message
    assert not broker.is_running()
