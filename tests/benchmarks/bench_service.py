"""Measure ``burnrate serve`` against simpler consumers on one loopback Kafka broker.

Three consumers read the same pre-produced events, each under its own consumer
group, once with one event per record and once with 100 events per record (a
JSON array):

(a) a trivial Faust agent that decodes each record with ``decode_record`` and
    sums the cost per tenant into a dict,
(b) a plain aiokafka consumer loop (``getmany`` batches) doing the same,
(c) ``burnrate serve`` with the example rules in rules/.

Each rate is events divided by the time from the first record handled to the
last: (a) reports both instants itself, (b) is timed in process and (c) by
polling its /stats page every 50 ms, counting only the events handled after
the first poll that saw any. Records are keyed by tenant, as the
service requires. The script also measures the latency from producing a
budget-crossing event to its alert record on the alerts topic, and how long a
restarted worker takes to restore the state of 10,000 tenants.

Run from the repository root (the broker starts from the Maven jars, or set
BURNRATE_TEST_KAFKA to a running one)::

    .venv/bin/python tests/benchmarks/bench_service.py

It prints figures only; it asserts nothing about them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from aiokafka import AIOKafkaConsumer  # noqa: E402
from aiokafka.structs import TopicPartition  # noqa: E402

from detector import alerts  # noqa: E402
from detector.decode import decode_record  # noqa: E402
from tests.kafka_broker import KafkaBroker, external_bootstrap  # noqa: E402
from tests.service.harness import (  # noqa: E402
    ServiceProcess,
    Topics,
    create_topic,
    encode,
    event,
    produce,
    run,
)

PARTITIONS = 4
TENANTS = 200
RULES_DIR = REPO / "rules"
POLL_S = 0.05


@dataclass
class Workload:
    """Pre-produced records of one shape on one topic."""

    label: str
    topic: str
    records: int
    events: int


def _events(count: int, per_record: int, now: datetime) -> list[tuple[bytes, bytes]]:
    """Return keyed records of ``per_record`` events of one tenant each."""
    records = []
    start = now - timedelta(minutes=50)
    for index in range(count // per_record):
        tenant = f"bench-{index % TENANTS}"
        documents = [
            event(
                tenant,
                start + timedelta(milliseconds=10 * (index * per_record + j)),
                "0.0021",
                request_id=f"{tenant}-{index}-{j}",
                feature=("chat", "search", "embed")[j % 3],
            )
            for j in range(per_record)
        ]
        value = encode(documents[0] if per_record == 1 else documents)
        records.append((tenant.encode(), value))
    return records


async def _produce_all(
    bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]
) -> None:
    await create_topic(bootstrap, topic, PARTITIONS)
    chunk = 20_000
    for first in range(0, len(records), chunk):
        await produce(bootstrap, topic, records[first : first + chunk])


# (a) a trivial Faust agent, run as its own process


def faust_agent_main(bootstrap: str, topic: str, expected: int) -> None:
    """Run the trivial Faust agent until ``expected`` events are summed, then report."""
    import faust
    from faust import Worker

    app = faust.App(
        f"bench-agent-{uuid.uuid4().hex[:8]}",
        broker=f"kafka://{bootstrap}",
        store="memory://",
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        datadir=tempfile.mkdtemp(prefix="bench-agent-"),
    )
    source = app.topic(topic, key_serializer="raw", value_serializer="raw")
    totals: dict[str, Decimal] = defaultdict(Decimal)
    seen = {"events": 0, "first": 0.0}

    @app.agent(source)
    async def summing(stream: faust.StreamT[bytes]) -> None:
        async for value in stream:
            if not seen["first"]:
                seen["first"] = time.perf_counter()
            events, _ = decode_record(value)
            for item in events:
                totals[item.tenant] += item.reported_cost_usd or 0
            seen["events"] += len(events)
            if seen["events"] >= expected:
                elapsed = time.perf_counter() - seen["first"]
                print(
                    json.dumps({"events": seen["events"], "elapsed_s": elapsed}),
                    flush=True,
                )
                seen["events"] = -(10**12)  # report once

    # Faust routes print() into its log by default; the report must reach stdout.
    Worker(
        app, loglevel="WARNING", quiet=True, redirect_stdouts=False
    ).execute_from_commandline()


def run_faust_agent(bootstrap: str, workload: Workload) -> float:
    """Start the agent process, wait for its report and return events/s."""
    command = [
        sys.executable,
        __file__,
        "faust-agent",
        bootstrap,
        workload.topic,
        str(workload.events),
    ]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:
            # Faust writes terminal control codes before the first line.
            if "{" in line:
                report = json.loads(line[line.index("{") :])
                return float(report["events"] / report["elapsed_s"])
        raise RuntimeError("the Faust agent exited without a report")
    finally:
        process.terminate()
        process.wait(30)


# (b) a plain aiokafka consumer loop


async def plain_consumer(bootstrap: str, workload: Workload) -> float:
    """Consume with getmany batches, decode and sum; return events/s."""
    consumer = AIOKafkaConsumer(
        workload.topic,
        bootstrap_servers=bootstrap,
        group_id=f"bench-plain-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=True,
    )
    await consumer.start()
    totals: dict[str, Decimal] = defaultdict(Decimal)
    count = 0
    first = 0.0
    try:
        while count < workload.events:
            batches = await consumer.getmany(timeout_ms=500, max_records=1000)
            for records in batches.values():
                if records and not first:
                    first = time.perf_counter()
                for record in records:
                    events, _ = decode_record(record.value or b"")
                    for item in events:
                        totals[item.tenant] += item.reported_cost_usd or 0
                    count += len(events)
        return count / (time.perf_counter() - first)
    finally:
        await consumer.stop()


# (c) burnrate serve


@contextmanager
def service(
    bootstrap: str,
    topics: Topics,
    work_dir: Path,
    name: str,
    env: dict[str, str] | None = None,
) -> Iterator[ServiceProcess]:
    worker = ServiceProcess(
        bootstrap,
        topics,
        RULES_DIR,
        work_dir,
        partitions=PARTITIONS,
        name=name,
        env=env or {},
    )
    try:
        yield worker
    finally:
        if worker.process is not None:
            worker.stop()


def run_service(bootstrap: str, workload: Workload, work_dir: Path) -> float:
    """Let a fresh service read the workload; return events/s from its /stats."""
    topics = Topics.unique(f"bench-{workload.label}")
    topics = Topics(
        prefix=topics.prefix,
        app_id=topics.app_id,
        events=workload.topic,
        alerts=topics.alerts,
        dead_letter=topics.dead_letter,
        budget_state=topics.budget_state,
    )
    with service(bootstrap, topics, work_dir, f"serve-{workload.label}") as worker:
        worker.start()
        first = 0.0
        handled_at_first = 0
        while True:
            stats = worker.stats()
            partitions = stats["partitions"].values()
            handled = sum(p["events"] + p["rejected"] for p in partitions)
            if handled and not first:
                # Count only what is handled after the first poll that saw work.
                first, handled_at_first = time.perf_counter(), handled
            if handled >= workload.events:
                elapsed_s = time.perf_counter() - first
                return (workload.events - handled_at_first) / elapsed_s
            time.sleep(POLL_S)


# Alert latency and restore time


async def alert_latencies(
    bootstrap: str, topics: Topics, crossings: int
) -> list[float]:
    """Produce budget-crossing events one at a time; return seconds until each alert."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        assignment = [TopicPartition(topics.alerts, p) for p in range(PARTITIONS)]
        consumer.assign(assignment)
        await consumer.seek_to_end(*assignment)
        latencies = []
        now = datetime.now(UTC)
        for index in range(crossings):
            tenant = f"latency-{index}"
            # $6,000 passes every threshold of the example monthly budget.
            value = encode(event(tenant, now, "6000.00"))
            started = time.perf_counter()
            await produce(bootstrap, topics.events, [(tenant.encode(), value)])
            latencies.append(await _wait_alert(consumer, tenant) - started)
        return latencies
    finally:
        await consumer.stop()


async def _wait_alert(consumer: AIOKafkaConsumer, tenant: str) -> float:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        batches = await consumer.getmany(timeout_ms=100)
        for records in batches.values():
            for record in records:
                if alerts.decoder.decode(record.value or b"").tenant == tenant:
                    return time.perf_counter()
    raise RuntimeError(f"no alert for {tenant} within 30 s")


def measure_latency(bootstrap: str, work_dir: Path, crossings: int) -> list[float]:
    topics = Topics.unique("bench-latency")
    with service(bootstrap, topics, work_dir, "serve-latency") as worker:
        worker.start()
        return run(alert_latencies(bootstrap, topics, crossings))  # type: ignore[no-any-return]


def measure_restore(bootstrap: str, work_dir: Path, tenants: int) -> dict[str, float]:
    """Fill the state of ``tenants`` tenants, restart and time the restore."""
    topics = Topics.unique("bench-restore")
    now = datetime.now(UTC)
    records = [
        (
            f"restore-{n}".encode(),
            encode(event(f"restore-{n}", now - timedelta(minutes=5), "1.00")),
        )
        for n in range(tenants)
    ]
    with service(bootstrap, topics, work_dir, "serve-fill") as worker:
        worker.start()
        run(produce(bootstrap, topics.events, records))
        worker.wait_for(
            lambda doc: worker.total("events") >= tenants, "filled", deadline_s=300
        )
    started = time.perf_counter()
    with service(bootstrap, topics, work_dir, "serve-restored") as worker:
        worker.start()
        ready_s = time.perf_counter() - started
        worker.wait_for(
            lambda doc: worker.total("tenants") >= tenants, "restored", deadline_s=300
        )
        restored_s = time.perf_counter() - started
    empty = Topics.unique("bench-empty")
    started = time.perf_counter()
    with service(bootstrap, empty, work_dir, "serve-empty") as worker:
        worker.start()
        empty_s = time.perf_counter() - started
    return {"ready_s": ready_s, "restored_s": restored_s, "empty_ready_s": empty_s}


# Orchestration


@contextmanager
def broker() -> Iterator[str]:
    bootstrap = external_bootstrap()
    if bootstrap is not None:
        yield bootstrap
        return
    with tempfile.TemporaryDirectory(prefix="bench-kafka-") as folder:
        with KafkaBroker(data_dir=Path(folder)) as started:
            yield started.bootstrap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--events",
        type=int,
        default=40_000,
        help="events per workload (default 40,000)",
    )
    parser.add_argument(
        "--crossings",
        type=int,
        default=50,
        help="budget crossings for the latency figures (default 50)",
    )
    parser.add_argument(
        "--tenants",
        type=int,
        default=10_000,
        help="tenants whose state is restored (default 10,000)",
    )
    args = parser.parse_args()
    load_start = os.getloadavg()[0]
    wall_start = time.perf_counter()
    now = datetime.now(UTC)

    with broker() as bootstrap, tempfile.TemporaryDirectory(prefix="bench-") as folder:
        work_dir = Path(folder)
        workloads = []
        for label, per_record in (("single", 1), ("batch", 100)):
            topic = f"bench-{label}-{uuid.uuid4().hex[:8]}"
            records = _events(args.events, per_record, now)
            run(_produce_all(bootstrap, topic, records))
            workloads.append(Workload(label, topic, len(records), args.events))
            print(f"produced {label}: {len(records):,} records, {args.events:,} events")

        rates: dict[tuple[str, str], float] = {}
        for workload in workloads:
            rates[("a", workload.label)] = run_faust_agent(bootstrap, workload)
            rates[("b", workload.label)] = run(plain_consumer(bootstrap, workload))
            rates[("c", workload.label)] = run_service(bootstrap, workload, work_dir)
            for candidate in "abc":
                print(
                    f"{workload.label} ({candidate}): "
                    f"{rates[(candidate, workload.label)]:,.0f} events/s",
                    flush=True,
                )

        latencies = measure_latency(bootstrap, work_dir, args.crossings)
        restore = measure_restore(bootstrap, work_dir, args.tenants)

    _report(
        rates, latencies, restore, args, load_start, time.perf_counter() - wall_start
    )


def _report(
    rates: dict[tuple[str, str], float],
    latencies: list[float],
    restore: dict[str, float],
    args: argparse.Namespace,
    load_start: float,
    wall_s: float,
) -> None:
    print()
    print("| consumer | single: events/s | batch of 100: events/s |")
    print("|---|---:|---:|")
    names = {
        "a": "(a) trivial Faust agent",
        "b": "(b) plain aiokafka loop",
        "c": "(c) burnrate serve",
    }
    for candidate, name in names.items():
        print(
            f"| {name} | {rates[(candidate, 'single')]:,.0f} | "
            f"{rates[(candidate, 'batch')]:,.0f} |"
        )
    print()
    print(
        f"(c)/(a) single: {rates[('c', 'single')] / rates[('a', 'single')]:.2f}"
        " (target 0.8)"
    )
    print(
        f"(c)/(b) batch:  {rates[('c', 'batch')] / rates[('b', 'batch')]:.2f}"
        " (target 0.5)"
    )
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    print(
        f"alert latency over {len(latencies)} crossings: "
        f"p50 {statistics.median(ordered) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
        f"max {ordered[-1] * 1000:.0f} ms"
    )
    print(
        f"restore of {args.tenants:,} tenants: ready after {restore['ready_s']:.1f} s, "
        f"all tenants loaded after {restore['restored_s']:.1f} s "
        f"(empty state: ready after {restore['empty_ready_s']:.1f} s)"
    )
    print(
        f"load average {load_start:.2f} at start, {os.getloadavg()[0]:.2f} at end; "
        f"wall time {wall_s:.0f} s"
    )


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "faust-agent":
        bootstrap_arg, topic_arg, expected_arg = sys.argv[2:5]
        sys.argv = sys.argv[:1] + ["worker"]
        faust_agent_main(bootstrap_arg, topic_arg, int(expected_arg))
    else:
        main()
