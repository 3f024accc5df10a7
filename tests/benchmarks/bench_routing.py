"""Delivery throughput per receiver and record-to-delivered latency, on loopback servers.

Prints figures only. Run: ``.venv/bin/python -m tests.benchmarks.bench_routing``.
Each receiver gets its own run of ``ALERTS`` firing alerts with group_wait 0s,
so per-alert receivers send one request per alert and digest receivers batch.
Latency is from the moment a record is appended to the alerts file to the
server's receipt, on the real clock.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from routing.clock import ScaledClock
from tests.routing.conftest import Harness, append, config, record
from tests.routing.servers.opsgenie import OpsgenieServer
from tests.routing.servers.pagerduty import PagerDutyServer
from tests.routing.servers.slack import SlackServer
from tests.routing.servers.tls import make_certificate
from tests.routing.servers.webhook import WebhookServer

ALERTS = 300


async def _run(kind: str, directory: Path, certificate: Any) -> tuple[float, list[float]]:
    servers = {"pagerduty": PagerDutyServer, "opsgenie": OpsgenieServer,
               "slack": SlackServer, "webhook": WebhookServer}
    server = servers[kind](certificate).start()
    ca = str(certificate.cert_path)
    settings: dict[str, Any] = {
        "pagerduty": {"type": "pagerduty", "routing_key_env": "K", "url": server.url},
        "opsgenie": {"type": "opsgenie", "api_key_env": "K", "api_url": server.url},
        "slack": {"type": "slack", "webhook_url_env": "S"},
        "webhook": {"type": "webhook", "url_env": "S"},
    }[kind]
    environ = {"K": "benchmark-key-0123456789",
               "S": getattr(server, "webhook_url", server.url + "/hook")}
    routing = config({"receivers": [{"name": kind, "ca_file": ca, **settings}],
                      "route": {"receiver": kind, "group_wait": "0s", "group_interval": "1s"}},
                     environ)
    harness = Harness(directory, routing, ScaledClock(datetime.now(UTC), 1.0))
    await harness.start()
    appended: dict[str, float] = {}
    started = time.perf_counter()
    for i in range(ALERTS):
        item = record(f"tenant-{i:04d}")
        appended[item.tenant] = time.perf_counter()
        append(harness.alerts_path, item)
    await harness.settle(timeout_s=300)
    elapsed_s = time.perf_counter() - started
    await harness.stop()
    server.stop()
    latencies = []
    for request in server.requests:
        received = request.time.timestamp()
        body = request.body.decode()
        for tenant, at in appended.items():
            if tenant in body:
                latencies.append(received - (time.time() - (time.perf_counter() - at)))
    return ALERTS / elapsed_s, latencies


def main() -> None:
    with tempfile.TemporaryDirectory() as temporary:
        base = Path(temporary)
        certificate = make_certificate(base)
        for kind in ("pagerduty", "opsgenie", "slack", "webhook"):
            directory = base / kind
            directory.mkdir()
            rate, latencies = asyncio.run(_run(kind, directory, certificate))
            quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
            print(f"{kind:<10} {rate:8.1f} alerts/s   latency p50 {quantiles[49] * 1000:8.1f} ms"
                  f"   p99 {quantiles[98] * 1000:8.1f} ms   ({len(latencies)} samples)")


if __name__ == "__main__":
    main()
