"""Fixtures for routing tests: a loopback certificate, alert records and a delivery harness."""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from detector import alerts
from detector.alerts import AlertRecord, alert_id
from routing.audit import AuditLog
from routing.clock import ScaledClock
from routing.config import RoutingConfig
from routing.delivery import Dispatcher, build_receivers
from routing.ledger import Ledger
from routing.outbox import FileOutbox
from routing.redact import Redactor
from tests.routing.servers.tls import Certificate, make_certificate

START = datetime.fromisoformat("2026-07-31T14:00:00+00:00")


def run_async(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test function in a fresh event loop."""

    @functools.wraps(test)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return wrapper


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return make_certificate(tmp_path_factory.mktemp("tls"))


def record(
    tenant: str,
    *,
    status: str = "firing",
    tier: str = "absolute",
    severity: str = "critical",
    rule_id: str = "hourly-spend-high",
    at: datetime = START,
    started_at: datetime | None = None,
    repeat: int = 0,
    labels: dict[str, str] | None = None,
    signal: str = "spend",
    summary: str | None = None,
    episode: str = "",
) -> AlertRecord:
    """Return an alert record whose id depends on tenant, rule, tier and episode."""
    started = started_at or at
    return AlertRecord(
        alert_id=alert_id(rule_id, tier, tenant, episode or started.isoformat()),
        status=status,  # type: ignore[arg-type]
        tier=tier,  # type: ignore[arg-type]
        severity=severity,
        rule_id=rule_id,
        tenant=tenant,
        signal=signal,
        unit=alerts.UNIT_OF_SIGNAL[signal],
        observed=Decimal("250.00"),
        threshold=Decimal(200),
        window_s=3600,
        event_time=at,
        started_at=started,
        summary=summary or f"{tenant} spent $250.00 in one hour (>= $200.00)",
        series={"tenant": tenant},
        runbook_url="https://runbooks.example.com/llm-spend/hourly-spend-high",
        labels=labels or {},
        repeat=repeat,
    )


def append(path: Path, *records: AlertRecord) -> None:
    with path.open("ab") as stream:
        for item in records:
            stream.write(alerts.encoder.encode(item) + b"\n")


def config(data: dict[str, Any], environ: dict[str, str] | None = None) -> RoutingConfig:
    return RoutingConfig.model_validate(data, context={"environ": environ or {}})


@dataclass
class Harness:
    """A dispatcher over an alerts file in ``directory``, on a scaled clock."""

    directory: Path
    config: RoutingConfig
    clock: ScaledClock
    dispatcher: Dispatcher | None = None

    @property
    def alerts_path(self) -> Path:
        return self.directory / "alerts.jsonl"

    @property
    def audit_path(self) -> Path:
        return self.directory / "audit.jsonl"

    def ledger(self) -> Ledger:
        return Ledger(self.directory / "ledger.sqlite")

    async def start(self) -> Dispatcher:
        redactor = Redactor()
        receivers = build_receivers(self.config, redactor)
        self.dispatcher = Dispatcher(
            self.config,
            receivers,
            FileOutbox(self.alerts_path),
            self.ledger(),
            AuditLog(self.audit_path, redactor),
            self.clock,
        )
        await self.dispatcher.start()
        return self.dispatcher

    async def at(self, seconds: float) -> None:
        """Wait until the clock is ``seconds`` past the start."""
        await self.clock.sleep_until(self.clock.start + timedelta(seconds=seconds))

    async def settle(self, timeout_s: float = 30) -> None:
        assert self.dispatcher is not None
        await asyncio.wait_for(self.dispatcher.wait_idle(), timeout_s)

    async def stop(self) -> None:
        assert self.dispatcher is not None
        await self.dispatcher.stop()

    def audit(self) -> list[dict[str, Any]]:
        if not self.audit_path.exists():
            return []
        return [json.loads(line) for line in self.audit_path.read_text().splitlines()]


@pytest.fixture
def harness_factory(tmp_path: Path) -> Iterator[Any]:
    def make(routing: RoutingConfig, scale: float = 100.0) -> Harness:
        return Harness(tmp_path, routing, ScaledClock(START, scale))

    yield make
