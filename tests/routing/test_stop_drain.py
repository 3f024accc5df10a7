"""Stopping delivery while sends are in progress: the drain bound, the ledger and restarts."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from detector.alerts import AlertRecord
from routing.audit import AuditLog
from routing.clock import ScaledClock
from routing.config import DeliverySettings, RoutingConfig
from routing.delivery import Dispatcher
from routing.ledger import Ledger
from routing.outbox import FileOutbox
from routing.receivers.base import Notification, Receiver, SendResult
from routing.redact import Redactor
from tests.routing.conftest import START, append, config, record, run_async

DRAIN_S = 0.2
WAIT_S = 10.0


class GatedReceiver(Receiver):
    """A receiver whose sends wait until ``release`` is set, then succeed."""

    def __init__(self, *, released: bool = False, concurrency: int = 1) -> None:
        super().__init__("hook", Redactor(), concurrency)
        self.release = asyncio.Event()
        if released:
            self.release.set()
        self.started = asyncio.Event()
        self.keys: list[str] = []
        self.cancelled: list[str] = []

    async def send(self, notification: Notification) -> SendResult:
        self.keys.append(notification.key)
        self.started.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled.append(notification.key)
            raise
        return SendResult(202, "accepted")


def _routing(drain_s: float) -> RoutingConfig:
    return config(
        {
            "receivers": [{"name": "hook", "type": "webhook", "url_env": "HOOK_URL"}],
            "route": {"receiver": "hook", "group_by": ["..."], "group_wait": "0s"},
            "delivery": {"poll_interval_s": 0.05, "drain_s": drain_s},
        },
        # Only validated: the tests hand the dispatcher a GatedReceiver instead.
        {"HOOK_URL": "http://127.0.0.1:9/hook"},
    )


def _dispatcher(directory: Path, receiver: Receiver, drain_s: float = DRAIN_S) -> Dispatcher:
    redactor = Redactor()
    return Dispatcher(
        _routing(drain_s),
        {"hook": receiver},
        FileOutbox(directory / "alerts.jsonl"),
        Ledger(directory / "ledger.sqlite"),
        AuditLog(directory / "audit.jsonl", redactor),
        ScaledClock(START, 1.0),
    )


def _audit(directory: Path) -> list[dict[str, Any]]:
    path = directory / "audit.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def _outcome(directory: Path, alert: AlertRecord) -> str | None:
    ledger = Ledger(directory / "ledger.sqlite")
    try:
        return ledger.outcome("hook", alert)
    finally:
        ledger.close()


async def _deliver_all(directory: Path) -> GatedReceiver:
    """Run a fresh dispatcher until the outbox is done, and return its receiver."""
    receiver = GatedReceiver(released=True)
    dispatcher = _dispatcher(directory, receiver)
    await dispatcher.start()
    await asyncio.wait_for(dispatcher.wait_idle(), WAIT_S)
    await dispatcher.stop()
    return receiver


def test_drain_s_defaults_to_5() -> None:
    assert DeliverySettings().drain_s == 5.0


@run_async
async def test_send_finishing_in_drain_is_recorded(tmp_path: Path) -> None:
    """A send the server accepts during the drain is delivered once, across a restart."""
    alert = record("acme")
    append(tmp_path / "alerts.jsonl", alert)
    receiver = GatedReceiver()
    dispatcher = _dispatcher(tmp_path, receiver)
    await dispatcher.start()
    await asyncio.wait_for(receiver.started.wait(), WAIT_S)

    stopping = asyncio.create_task(dispatcher.stop())
    await asyncio.sleep(DRAIN_S / 4)
    waited_for_send = not stopping.done()
    receiver.release.set()
    await asyncio.wait_for(stopping, WAIT_S)

    assert waited_for_send, "stop returned before the send was answered"
    assert receiver.keys == [f"hook:{alert.alert_id}:firing:0"]
    assert receiver.cancelled == []
    assert _outcome(tmp_path, alert) == "delivered"
    lines = _audit(tmp_path)
    assert [(line["outcome"], line["attempt"]) for line in lines] == [("delivered", 1)]
    assert lines[0]["status_code"] == 202
    assert lines[0]["alert_ids"] == [alert.alert_id]
    file_size = (tmp_path / "alerts.jsonl").stat().st_size
    assert FileOutbox(tmp_path / "alerts.jsonl").committed() == file_size

    restarted = await _deliver_all(tmp_path)

    assert restarted.keys == []
    assert len(_audit(tmp_path)) == 1


@run_async
async def test_send_past_drain_is_sent_again(tmp_path: Path) -> None:
    """A send still running at ``drain_s`` is cancelled then, and sent once after a restart."""
    alert = record("acme")
    append(tmp_path / "alerts.jsonl", alert)
    receiver = GatedReceiver()
    dispatcher = _dispatcher(tmp_path, receiver)
    await dispatcher.start()
    await asyncio.wait_for(receiver.started.wait(), WAIT_S)

    started = time.monotonic()
    await asyncio.wait_for(dispatcher.stop(), WAIT_S)
    stop_s = time.monotonic() - started

    key = f"hook:{alert.alert_id}:firing:0"
    assert receiver.cancelled == [key]
    assert stop_s >= DRAIN_S * 0.95
    # Generous for a loaded machine: without the bound, stop would wait forever.
    assert stop_s < DRAIN_S + 2.0
    assert _outcome(tmp_path, alert) is None
    assert _audit(tmp_path) == []
    assert FileOutbox(tmp_path / "alerts.jsonl").committed() == 0

    restarted = await _deliver_all(tmp_path)

    assert restarted.keys == [key]
    assert _outcome(tmp_path, alert) == "delivered"
    assert [line["outcome"] for line in _audit(tmp_path)] == ["delivered"]


@run_async
async def test_stop_starts_no_queued_send(tmp_path: Path) -> None:
    """A queued notification waits out the drain, and the restart sends only it."""
    first, second = record("acme"), record("globex")
    append(tmp_path / "alerts.jsonl", first, second)
    receiver = GatedReceiver(concurrency=1)
    dispatcher = _dispatcher(tmp_path, receiver)
    await dispatcher.start()
    await asyncio.wait_for(receiver.started.wait(), WAIT_S)

    stopping = asyncio.create_task(dispatcher.stop())
    await asyncio.sleep(DRAIN_S / 4)
    receiver.release.set()
    await asyncio.wait_for(stopping, WAIT_S)

    assert receiver.keys == [f"hook:{first.alert_id}:firing:0"]
    assert _outcome(tmp_path, first) == "delivered"
    assert _outcome(tmp_path, second) is None

    restarted = await _deliver_all(tmp_path)

    assert restarted.keys == [f"hook:{second.alert_id}:firing:0"]
    assert _outcome(tmp_path, second) == "delivered"


@run_async
async def test_zero_drain_cancels_send(tmp_path: Path) -> None:
    """With ``drain_s: 0`` stop cancels a send in progress, and the restart sends it."""
    alert = record("acme")
    append(tmp_path / "alerts.jsonl", alert)
    receiver = GatedReceiver()
    dispatcher = _dispatcher(tmp_path, receiver, drain_s=0)
    await dispatcher.start()
    await asyncio.wait_for(receiver.started.wait(), WAIT_S)

    await asyncio.wait_for(dispatcher.stop(), WAIT_S)

    key = f"hook:{alert.alert_id}:firing:0"
    assert receiver.cancelled == [key]
    assert _outcome(tmp_path, alert) is None
    assert _audit(tmp_path) == []

    restarted = await _deliver_all(tmp_path)

    assert restarted.keys == [key]
    assert _outcome(tmp_path, alert) == "delivered"
