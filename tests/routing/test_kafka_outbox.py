"""Delivery from the Kafka alerts topic: committed offsets, restarts and the ledger."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

from routing.audit import AuditLog
from routing.clock import ScaledClock
from routing.config import RoutingConfig
from routing.delivery import Dispatcher, build_receivers
from routing.kafka_outbox import KafkaOutbox
from routing.ledger import Ledger
from routing.redact import Redactor
from tests.routing.conftest import START, config, record, run_async
from tests.routing.kafka import committed, create_topic, produce, unique_name
from tests.routing.servers.http import Reply, Request
from tests.routing.servers.pagerduty import PagerDutyServer
from tests.routing.servers.tls import Certificate

PARTITIONS = 3
WAIT_S = 30.0


def _routing(pd: PagerDutyServer, certificate: Certificate) -> RoutingConfig:
    return config(
        {
            "receivers": [
                {
                    "name": "pagerduty",
                    "type": "pagerduty",
                    "routing_key_env": "PD_KEY",
                    "url": pd.url,
                    "ca_file": str(certificate.cert_path),
                },
            ],
            "route": {
                "receiver": "pagerduty",
                "group_by": ["tenant"],
                "group_wait": "0s",
                "group_interval": "1s",
            },
            "delivery": {"initial_backoff_s": 1, "max_backoff_s": 2},
        },
        {"PD_KEY": "pd-routing-key-0123456789abcdef"},
    )


class _Delivery:
    """A dispatcher over a ``KafkaOutbox``; ledger and audit log in ``directory``."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        group_id: str,
        directory: Path,
        routing: RoutingConfig,
    ) -> None:
        self.outbox = KafkaOutbox(bootstrap, topic, group_id, wait_s=0.2)
        redactor = Redactor()
        self.dispatcher = Dispatcher(
            routing,
            build_receivers(routing, redactor),
            self.outbox,
            Ledger(directory / "ledger.sqlite"),
            AuditLog(directory / "audit.jsonl", redactor),
            ScaledClock(START, 1.0),
        )

    async def start(self) -> None:
        await self.outbox.start()
        await self.dispatcher.start()

    async def stop(self, *, commit: bool) -> None:
        await self.dispatcher.stop()
        await self.outbox.stop(commit=commit)


async def _until(condition: Any, what: str) -> None:
    """Wait until ``condition()`` holds, for at most ``WAIT_S`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while not condition():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def _triggers(pd: PagerDutyServer) -> Counter[str]:
    with pd.lock:
        return Counter(
            key
            for key, events in pd.accepted.items()
            for action, _ in events
            if action == "trigger"
        )


@run_async
async def test_restart_loses_and_repeats_nothing(
    kafka_bootstrap: str, certificate: Certificate, tmp_path: Path
) -> None:
    """After a stop at 12 of 30 triggers, the restart sends the rest once each."""
    topic, group = unique_name("restart"), unique_name("restart-group")
    await create_topic(kafka_bootstrap, topic, PARTITIONS)
    pd = PagerDutyServer(certificate).start()
    blocked = {"on": False}

    def unavailable_after_12(request: Request, event: dict) -> Reply | None:
        if blocked["on"] or sum(len(v) for v in pd.accepted.values()) >= 12:
            blocked["on"] = True
            return Reply.json(503, {"status": "unavailable"})
        return None

    pd.script = unavailable_after_12
    routing = _routing(pd, certificate)
    first_batch = [record(f"tenant-{i:03d}") for i in range(30)]
    second_batch = [
        record(f"tenant-{i:03d}", at=START + timedelta(hours=1)) for i in range(10)
    ]
    await produce(
        kafka_bootstrap, topic, [(i % PARTITIONS, r) for i, r in enumerate(first_batch)]
    )
    first = _Delivery(kafka_bootstrap, topic, group, tmp_path, routing)
    ledger = Ledger(tmp_path / "ledger.sqlite")

    await first.start()
    await _until(lambda: ledger.count("pagerduty", "delivered") == 12, "12 delivered")
    await first.stop(commit=False)
    sent_before_restart = set(_triggers(pd))
    offsets_after_crash = await committed(kafka_bootstrap, group, topic, PARTITIONS)
    pd.script = None
    await produce(
        kafka_bootstrap,
        topic,
        [(i % PARTITIONS, r) for i, r in enumerate(second_batch)],
    )
    second = _Delivery(kafka_bootstrap, topic, group, tmp_path, routing)
    await second.start()
    await _until(lambda: len(_triggers(pd)) == 40, "40 alerts triggered")
    await asyncio.wait_for(second.dispatcher.wait_idle(), WAIT_S)
    await second.stop(commit=True)
    offsets_at_end = await committed(kafka_bootstrap, group, topic, PARTITIONS)
    pd.stop()

    triggers = _triggers(pd)
    assert len(sent_before_restart) == 12
    assert sum(offsets_after_crash.values()) < 30, (
        "the crash happened after everything was done"
    )
    assert set(triggers) == {r.alert_id for r in first_batch + second_batch}
    assert [key for key, count in triggers.items() if count > 1] == []
    assert ledger.count("pagerduty", "delivered") == 40
    assert offsets_at_end == {
        p: 40 // PARTITIONS + (p < 40 % PARTITIONS) for p in range(PARTITIONS)
    }
    ledger.close()


@run_async
async def test_offset_stops_at_undelivered_record(
    kafka_bootstrap: str, certificate: Certificate, tmp_path: Path
) -> None:
    """A record being retried keeps its partition's offset back, not the others."""
    topic, group = unique_name("hold"), unique_name("hold-group")
    await create_topic(kafka_bootstrap, topic, 2)
    pd = PagerDutyServer(certificate).start()
    stuck = record("tenant-stuck")

    def reject_stuck(request: Request, event: dict) -> Reply | None:
        if event.get("dedup_key") == stuck.alert_id:
            return Reply.json(503, {"status": "unavailable"})
        return None

    pd.script = reject_stuck
    # Partition 0 gets offsets 0, 1, 2 with the stuck record at 1.
    # Partition 1 gets offsets 0 and 1.
    placed = [
        (0, record("tenant-a0")),
        (0, stuck),
        (0, record("tenant-a1")),
        (1, record("tenant-b0")),
        (1, record("tenant-b1")),
    ]
    await produce(kafka_bootstrap, topic, placed)
    delivery = _Delivery(
        kafka_bootstrap, topic, group, tmp_path, _routing(pd, certificate)
    )

    ledger = Ledger(tmp_path / "ledger.sqlite")

    await delivery.start()
    await _until(lambda: ledger.count("pagerduty", "delivered") == 4, "4 delivered")
    await delivery.stop(commit=True)
    offsets = await committed(kafka_bootstrap, group, topic, 2)
    pd.stop()
    ledger.close()

    assert stuck.alert_id not in _triggers(pd)
    assert offsets == {0: 1, 1: 2}
