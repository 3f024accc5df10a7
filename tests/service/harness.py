"""Run ``burnrate serve`` as a subprocess on the test broker, and talk to its topics.

``ServiceProcess`` starts the real command with its own environment: topic names
and an application id unique to the test, a free web port on loopback, its own
data folder and rules folder. Its output goes to a file that a failing test
shows. The produce and read helpers use aiokafka, the client the service uses,
and run their own event loop so that the synchronous tests stay plain functions.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.structs import TopicPartition

from detector import alerts
from detector.alerts import AlertRecord
from tests.kafka_broker import free_loopback_port

REPO = Path(__file__).resolve().parents[2]
BURNRATE = Path(sys.executable).with_name("burnrate")

# Upper bounds for waits that end as soon as their condition holds.
READY_DEADLINE_S = 60.0
STOP_DEADLINE_S = 30.0
CONSUME_DEADLINE_S = 30.0
# How long a topic must stay unchanged before its buffered records count as drained.
QUIET_S = 0.5

Records = Sequence[tuple[bytes | None, bytes]]


@dataclass(frozen=True)
class Topics:
    """The topic names and application id of one test, unique on the shared broker."""

    prefix: str
    app_id: str = ""
    events: str = ""
    alerts: str = ""
    dead_letter: str = ""
    budget_state: str = ""

    @classmethod
    def unique(cls, label: str) -> Topics:
        prefix = f"t-{label}-{uuid.uuid4().hex[:8]}"
        return cls(
            prefix=prefix,
            app_id=f"{prefix}-app",
            events=f"{prefix}-events",
            alerts=f"{prefix}-alerts",
            dead_letter=f"{prefix}-dead-letter",
            budget_state=f"{prefix}-budget-state",
        )

    @property
    def changelog(self) -> str:
        """The changelog topic Faust names after the application and the table."""
        return f"{self.app_id}-tenant-state-changelog"


def write_rules(folder: Path, rules: dict[str, Any]) -> Path:
    """Write one rule file into ``folder`` and return the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "rules.yaml").write_text(yaml.safe_dump(rules, sort_keys=False))
    return folder


@dataclass
class ServiceProcess:
    """One ``burnrate serve`` worker started as a subprocess."""

    bootstrap: str
    topics: Topics
    rules_dir: Path
    work_dir: Path
    partitions: int = 4
    env: dict[str, str] = field(default_factory=dict)
    name: str = "worker"
    web_port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.work_dir / f"{self.name}.log"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def start(self) -> ServiceProcess:
        """Start the worker and wait until /readyz returns 200."""
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.web_port = free_loopback_port()
        environment = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("BURNRATE_")
        }
        environment.update(self._settings())
        environment.update(self.env)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(BURNRATE), "serve"],
                cwd=self.work_dir,
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.wait_ready()
        return self

    def _settings(self) -> dict[str, str]:
        return {
            "BURNRATE_KAFKA_BOOTSTRAP": self.bootstrap,
            "BURNRATE_APP_ID": self.topics.app_id,
            "BURNRATE_RULES": str(self.rules_dir),
            "BURNRATE_EVENTS_TOPIC": self.topics.events,
            "BURNRATE_ALERTS_TOPIC": self.topics.alerts,
            "BURNRATE_DEAD_LETTER_TOPIC": self.topics.dead_letter,
            "BURNRATE_BUDGET_STATE_TOPIC": self.topics.budget_state,
            "BURNRATE_PARTITIONS": str(self.partitions),
            "BURNRATE_DATA_DIR": str(self.work_dir / f"{self.name}-data"),
            "BURNRATE_WEB_PORT": str(self.web_port),
            "BURNRATE_COMMIT_INTERVAL_S": "0.5",
            # The broker's smallest allowed session timeout is 6 s: a killed
            # worker's partitions move on quickly.
            "BURNRATE_SESSION_TIMEOUT_S": "6",
            # Lets BURNRATE_FORECASTER name a function under tests/.
            "PYTHONPATH": str(REPO),
        }

    def wait_ready(self, deadline_s: float = READY_DEADLINE_S) -> None:
        """Poll /readyz until it returns 200, else raise with the log tail."""
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            self._raise_if_exited()
            try:
                if httpx.get(f"{self.base_url}/readyz", timeout=2.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError(
            f"{self.name} not ready after {deadline_s} s\n{self.log_tail()}"
        )

    def _raise_if_exited(self) -> None:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(
                f"{self.name} exited with {self.process.returncode}\n{self.log_tail()}"
            )

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.base_url}{path}", timeout=5.0)

    def stats(self) -> dict[str, Any]:
        """Return the worker's /stats document."""
        self._raise_if_exited()
        document: dict[str, Any] = self.get("/stats").json()
        return document

    def total(self, counter: str) -> int:
        """Return one /stats counter summed over the worker's partitions."""
        partitions = self.stats()["partitions"].values()
        return sum(int(entry[counter]) for entry in partitions)

    def wait_for(
        self,
        condition: Callable[[dict[str, Any]], bool],
        what: str,
        deadline_s: float = CONSUME_DEADLINE_S,
    ) -> dict[str, Any]:
        """Poll /stats until ``condition`` holds for it and return that document."""
        deadline = time.monotonic() + deadline_s
        document = self.stats()
        while not condition(document):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.name}: {what} not reached after {deadline_s} s; "
                    f"stats {json.dumps(document)}\n{self.log_tail()}"
                )
            time.sleep(0.2)
            document = self.stats()
        return document

    def wait_records(self, count: int, deadline_s: float = CONSUME_DEADLINE_S) -> None:
        """Wait until the worker has handled ``count`` source records."""
        self.wait_for(
            lambda doc: _sum(doc, "records") >= count, f"{count} records", deadline_s
        )

    def wait_committed(self, group_offsets: dict[int, int]) -> None:
        """Wait until the group's committed offsets reach ``group_offsets``."""
        deadline = time.monotonic() + CONSUME_DEADLINE_S
        while True:
            committed = run(committed_offsets(self.bootstrap, self.topics))
            if all(committed.get(p, 0) >= o for p, o in group_offsets.items()):
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.name}: committed {committed}, expected {group_offsets}\n"
                    f"{self.log_tail()}"
                )
            time.sleep(0.2)

    def stop(self, deadline_s: float = STOP_DEADLINE_S) -> int:
        """Send SIGTERM and wait for the exit; return the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(deadline_s)
            except subprocess.TimeoutExpired:
                self.kill()
                raise AssertionError(
                    f"{self.name} ignored SIGTERM for {deadline_s} s\n{self.log_tail()}"
                ) from None
        self._kill_group()
        return self.process.returncode

    def kill(self) -> None:
        """Send SIGKILL: the worker gets no chance to commit or flush anything."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        self._kill_group()

    def _kill_group(self) -> None:
        """Kill what is left of the worker's process group (its forecast processes)."""
        assert self.process is not None
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def log_text(self) -> str:
        return (
            self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        )

    def log_tail(self, lines: int = 60) -> str:
        tail = "\n".join(self.log_text().splitlines()[-lines:])
        return f"--- last {lines} lines of {self.log_path} ---\n{tail}"


def _sum(document: dict[str, Any], counter: str) -> int:
    return sum(int(entry[counter]) for entry in document["partitions"].values())


@contextmanager
def running(*workers: ServiceProcess) -> Iterator[tuple[ServiceProcess, ...]]:
    """Start the workers in order and make sure each one is ended afterwards."""
    started: list[ServiceProcess] = []
    try:
        for worker in workers:
            started.append(worker.start())
        yield tuple(started)
    finally:
        for worker in started:
            worker.kill()


def run(coroutine: Any) -> Any:
    """Run one coroutine on a fresh event loop (tests are synchronous)."""
    return asyncio.run(coroutine)


# Events


def event(
    tenant: str,
    timestamp: datetime,
    cost_usd: str,
    request_id: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """Return the JSON document of one event with a reported cost."""
    document: dict[str, Any] = {
        "timestamp": timestamp.isoformat().replace("+00:00", "Z"),
        "request_id": request_id or uuid.uuid4().hex,
        "tenant": tenant,
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.usage.input_tokens": 100,
        "gen_ai.usage.output_tokens": 10,
        "cost_usd": cost_usd,
    }
    document.update(fields)
    return document


def encode(document: Any) -> bytes:
    """Encode an event document; costs are written as JSON numbers, not strings."""
    text = json.dumps(document)
    return _unquote_costs(text).encode()


def _unquote_costs(text: str) -> str:
    import re

    return re.sub(r'"cost_usd": "([0-9.eE+-]+)"', r'"cost_usd": \1', text)


def keyed(documents: Iterable[dict[str, Any]]) -> list[tuple[bytes | None, bytes]]:
    """Return (tenant key, encoded value) pairs, one record per event."""
    return [(doc["tenant"].encode(), encode(doc)) for doc in documents]


def hour_start(hours_ago: int) -> datetime:
    """Return the start of the UTC hour ``hours_ago`` hours before the current one."""
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    return now - timedelta(hours=hours_ago)


# Kafka helpers


async def produce(
    bootstrap: str, topic: str, records: Records, partition: int | None = None
) -> list[tuple[int, int]]:
    """Send records in order, wait for every ack, return (partition, offset) of each."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=5,
        max_request_size=16 * 1024 * 1024,
    )
    await producer.start()
    try:
        futures = [
            await producer.send(topic, value=value, key=key, partition=partition)
            for key, value in records
        ]
        metadata = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return [(record.partition, record.offset) for record in metadata]


def send(bootstrap: str, topic: str, records: Records) -> list[tuple[int, int]]:
    return run(produce(bootstrap, topic, records))  # type: ignore[no-any-return]


async def create_topic(
    bootstrap: str, topic: str, partitions: int, configs: dict[str, str] | None = None
) -> None:
    """Create a topic before the service does, with the given configuration."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(topic, partitions, 1, topic_configs=configs or {})]
        )
    finally:
        await admin.close()


def partition_for(key: bytes, partitions: int) -> int:
    """Return the partition Kafka's default partitioner (murmur2) picks for ``key``."""
    all_partitions = list(range(partitions))
    return int(DefaultPartitioner()(key, all_partitions, all_partitions))


def keys_on_distinct_partitions(prefix: str, partitions: int, count: int) -> list[str]:
    """Return ``count`` tenant names whose records land on different partitions."""
    chosen: dict[int, str] = {}
    index = 0
    while len(chosen) < count:
        name = f"{prefix}-{index}"
        chosen.setdefault(partition_for(name.encode(), partitions), name)
        index += 1
    return list(chosen.values())[:count]


@dataclass(frozen=True)
class Consumed:
    """One record read back from a topic."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: dict[str, bytes]


async def read_topic(
    bootstrap: str,
    topic: str,
    *,
    until: Callable[[list[Consumed]], bool] | None = None,
    deadline_s: float = CONSUME_DEADLINE_S,
) -> list[Consumed]:
    """Read a topic from the start without a group.

    Without ``until`` the read stops at the end offsets seen when it began; with
    it, the read goes on until ``until`` holds for what was read or the
    deadline passes.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        max_partition_fetch_bytes=16 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    try:
        partitions = await _partitions(consumer, topic)
        assignment = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(assignment)
        await consumer.seek_to_beginning(*assignment)
        end = await consumer.end_offsets(assignment)
        read: list[Consumed] = []
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            if until is None and await _at_end(consumer, end):
                break
            if until is not None and until(read):
                break
            batches = await consumer.getmany(timeout_ms=200)
            for tp, records in batches.items():
                read.extend(
                    Consumed(
                        tp.partition,
                        r.offset,
                        r.key,
                        r.value or b"",
                        {k: bytes(v) for k, v in r.headers},
                    )
                    for r in records
                )
        return read
    finally:
        await consumer.stop()


async def _at_end(consumer: AIOKafkaConsumer, end: dict[TopicPartition, int]) -> bool:
    for tp, offset in end.items():
        if await consumer.position(tp) < offset:
            return False
    return True


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[int]:
    """Return the partition numbers of ``topic``, waiting for its metadata."""
    for _ in range(50):
        cluster = await consumer._client.fetch_all_metadata()  # noqa: SLF001
        partitions = cluster.partitions_for_topic(topic)
        if partitions:
            return sorted(partitions)
        await asyncio.sleep(0.1)
    raise AssertionError(f"topic {topic} has no partitions")


def read_alerts(
    bootstrap: str,
    topics: Topics,
    until: Callable[[list[AlertRecord]], bool] | None = None,
    deadline_s: float = CONSUME_DEADLINE_S,
) -> list[AlertRecord]:
    """Read every alert record so far, or until ``until`` holds for them."""
    condition = None
    if until is not None:
        check = until

        def condition(read: list[Consumed]) -> bool:
            return check(_decode_alerts(read))

    records = run(
        read_topic(bootstrap, topics.alerts, until=condition, deadline_s=deadline_s)
    )
    return _decode_alerts(records)


def _decode_alerts(read: list[Consumed]) -> list[AlertRecord]:
    return [alerts.decoder.decode(record.value) for record in read]


def latest_budget_state(bootstrap: str, topics: Topics) -> dict[str, dict[str, Any]]:
    """Return the last budget-state document of each tenant.

    The service buffers budget-state records and counts a batch in /stats
    before the buffer drains, so this first waits until the topic's end offsets
    stay put for ``QUIET_S``.
    """
    wait_until_quiet(bootstrap, topics.budget_state)
    latest: dict[str, dict[str, Any]] = {}
    for record in run(read_topic(bootstrap, topics.budget_state)):
        document = json.loads(record.value)
        latest[document["tenant"]] = document
    return latest


async def committed_offsets(bootstrap: str, topics: Topics) -> dict[int, int]:
    """Return the committed offset of each events partition for the service's group."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=topics.app_id, enable_auto_commit=False
    )
    await consumer.start()
    try:
        partitions = await _partitions(consumer, topics.events)
        committed = {}
        for partition in partitions:
            offset = await consumer.committed(TopicPartition(topics.events, partition))
            committed[partition] = offset if offset is not None else 0
        return committed
    finally:
        await consumer.stop()


def wait_until_quiet(
    bootstrap: str, topic: str, deadline_s: float = CONSUME_DEADLINE_S
) -> None:
    """Return once no record has been added to ``topic`` for ``QUIET_S``."""
    deadline = time.monotonic() + deadline_s
    seen = end_offsets(bootstrap, topic)
    quiet_since = time.monotonic()
    while time.monotonic() - quiet_since < QUIET_S:
        if time.monotonic() > deadline:
            raise AssertionError(f"{topic} still growing after {deadline_s} s")
        time.sleep(0.1)
        now = end_offsets(bootstrap, topic)
        if now != seen:
            seen, quiet_since = now, time.monotonic()


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    async def fetch() -> dict[int, int]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p) for p in await _partitions(consumer, topic)]
            ends = await consumer.end_offsets(tps)
            return {tp.partition: offset for tp, offset in ends.items()}
        finally:
            await consumer.stop()

    return run(fetch())  # type: ignore[no-any-return]


def firing(
    records: Iterable[AlertRecord], tier: str | None = None
) -> list[AlertRecord]:
    return [
        r for r in records if r.status == "firing" and (tier is None or r.tier == tier)
    ]
