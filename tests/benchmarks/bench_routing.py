"""Delivery throughput per receiver and latency from the alerts topic to the receiver.

Prints figures only. Run: ``.venv/bin/python -m tests.benchmarks.bench_routing``.
Uses the broker at $BURNRATE_TEST_KAFKA, or starts one on loopback as the tests
do. Each receiver gets its own topic (3 partitions), consumer group and run of
``ALERTS`` firing alerts with group_wait 0s, so per-alert receivers (PagerDuty,
Opsgenie) send one request per alert and digest receivers (Slack, webhook)
batch. Delivery reads with ``KafkaOutbox`` and sends to the loopback servers
of the tests over TLS.

Latency runs from the broker's acknowledgement of the produced record to the
server's receipt of the request that carries it, both on the wall clock of
this one machine. Throughput is alerts divided by the time from the first
acknowledgement to the last receipt.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from detector import alerts
from routing.audit import AuditLog
from routing.clock import SystemClock
from routing.delivery import Dispatcher, build_receivers
from routing.kafka_outbox import KafkaOutbox
from routing.ledger import Ledger
from routing.redact import Redactor
from tests.kafka_broker import KafkaBroker, external_bootstrap
from tests.routing.conftest import config, record
from tests.routing.kafka import create_topic, unique_name
from tests.routing.servers.opsgenie import OpsgenieServer
from tests.routing.servers.pagerduty import PagerDutyServer
from tests.routing.servers.slack import SlackServer
from tests.routing.servers.tls import Certificate, make_certificate
from tests.routing.servers.webhook import WebhookServer

ALERTS = 300
PARTITIONS = 3
KINDS = ("pagerduty", "opsgenie", "slack", "webhook")
SERVERS: dict[str, Any] = {
    "pagerduty": PagerDutyServer,
    "opsgenie": OpsgenieServer,
    "slack": SlackServer,
    "webhook": WebhookServer,
}


def _receiver(
    kind: str, server: Any, certificate: Certificate
) -> tuple[dict[str, Any], dict[str, str]]:
    settings: dict[str, Any] = {
        "pagerduty": {"type": "pagerduty", "routing_key_env": "K", "url": server.url},
        "opsgenie": {"type": "opsgenie", "api_key_env": "K", "api_url": server.url},
        "slack": {"type": "slack", "webhook_url_env": "S"},
        "webhook": {"type": "webhook", "url_env": "S"},
    }[kind]
    environ = {
        "K": "benchmark-key-0123456789",
        "S": getattr(server, "webhook_url", server.url + "/hook"),
    }
    receiver = {"name": kind, "ca_file": str(certificate.cert_path), **settings}
    return receiver, environ


async def _produce(bootstrap: str, topic: str) -> dict[str, float]:
    """Produce ``ALERTS`` records; return each tenant's ack time in epoch seconds."""
    acknowledged: dict[str, float] = {}
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=1)
    await producer.start()
    try:
        futures = []
        for i in range(ALERTS):
            item = record(f"tenant-{i:04d}")
            future = await producer.send(
                topic, alerts.encoder.encode(item), key=item.tenant.encode()
            )
            future.add_done_callback(
                lambda _, tenant=item.tenant: acknowledged.setdefault(
                    tenant, time.time()
                )
            )
            futures.append(future)
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return acknowledged


async def _run(
    kind: str, bootstrap: str, directory: Path, certificate: Certificate
) -> tuple[float, list[float]]:
    server = SERVERS[kind](certificate).start()
    receiver, environ = _receiver(kind, server, certificate)
    routing = config(
        {
            "receivers": [receiver],
            "route": {"receiver": kind, "group_wait": "0s", "group_interval": "1s"},
        },
        environ,
    )
    topic = unique_name(f"bench-{kind}")
    await create_topic(bootstrap, topic, PARTITIONS)
    outbox = KafkaOutbox(
        bootstrap, topic, unique_name(f"bench-{kind}-group"), wait_s=0.1
    )
    redactor = Redactor()
    dispatcher = Dispatcher(
        routing,
        build_receivers(routing, redactor),
        outbox,
        Ledger(directory / "ledger.sqlite"),
        AuditLog(directory / "audit.jsonl", redactor),
        SystemClock(),
    )
    await outbox.start()
    await dispatcher.start()
    while not outbox.assignment():  # join the group before the clock starts
        await asyncio.sleep(0.05)
    acknowledged = await _produce(bootstrap, topic)
    await asyncio.wait_for(dispatcher.wait_idle(), 300)
    await dispatcher.stop()
    await outbox.stop()
    server.stop()
    return _figures(server.requests, acknowledged)


def _figures(
    requests: list[Any], acknowledged: dict[str, float]
) -> tuple[float, list[float]]:
    latencies = []
    last_s = 0.0
    for request in requests:
        received_s = request.time.timestamp()
        last_s = max(last_s, received_s)
        body = request.body.decode()
        latencies.extend(
            received_s - at for tenant, at in acknowledged.items() if tenant in body
        )
    elapsed_s = last_s - min(acknowledged.values())
    return ALERTS / elapsed_s, latencies


def main() -> None:
    with tempfile.TemporaryDirectory() as temporary:
        base = Path(temporary)
        bootstrap = external_bootstrap()
        broker = None
        if bootstrap is None:
            broker = KafkaBroker(data_dir=base / "kafka")
            broker.start()
            bootstrap = broker.bootstrap
        try:
            _measure(bootstrap, base)
        finally:
            if broker is not None:
                broker.stop()


def _measure(bootstrap: str, base: Path) -> None:
    certificate = make_certificate(base)
    print(
        f"{ALERTS} alerts per receiver, alerts topic with {PARTITIONS} partitions, "
        f"Python {sys.version.split()[0]}"
    )
    for kind in KINDS:
        directory = base / kind
        directory.mkdir()
        rate, latencies = asyncio.run(_run(kind, bootstrap, directory, certificate))
        quantiles = statistics.quantiles(latencies, n=100)
        print(
            f"{kind:<10} {rate:8.1f} alerts/s   topic-to-receiver latency "
            f"p50 {quantiles[49] * 1000:8.1f} ms   "
            f"p99 {quantiles[98] * 1000:8.1f} ms   "
            f"({len(latencies)} samples)"
        )


if __name__ == "__main__":
    main()
