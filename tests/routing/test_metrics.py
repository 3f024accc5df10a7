"""``burnrate_notifications_total`` by receiver and outcome, in process and over HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from routing.metrics import DeliveryMetrics
from tests.routing.conftest import Harness, append, config, record, run_async
from tests.routing.servers.http import Reply, Request
from tests.routing.servers.pagerduty import PagerDutyServer
from tests.routing.servers.tls import Certificate
from tests.routing.servers.webhook import WebhookServer
from tests.service.harness import BURNRATE

PD_KEY = "pd-routing-key-0123456789abcdef"
COUNTER = "burnrate_notifications_total"


def _environment(**extra: str) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("BURNRATE_")}
    environment.update(extra)
    return environment


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _counts(exposition: str) -> dict[tuple[str, str], float]:
    """Return the counter's samples keyed by (receiver, outcome)."""
    counts = {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == COUNTER:
                key = (sample.labels["receiver"], sample.labels["outcome"])
                counts[key] = sample.value
    return counts


def _scrape(port: int) -> dict[tuple[str, str], float]:
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        return _counts(response.read().decode())


def _scrape_when_ready(port: int) -> dict[tuple[str, str], float] | None:
    try:
        return _scrape(port)
    except (urllib.error.URLError, ConnectionError):
        return None


def _wait_for(condition: Callable[[], bool], log_path: Path, deadline_s: float = 30.0) -> None:
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; deliver log:\n{log_path.read_text()}")
        time.sleep(0.05)


def _routing_file(path: Path, pd: PagerDutyServer, certificate: Certificate) -> None:
    ca = str(certificate.cert_path)
    routing = {
        "routing": {
            "receivers": [
                {"name": "pagerduty", "type": "pagerduty", "routing_key_env": "PD_KEY",
                 "url": pd.url, "ca_file": ca},
                {"name": "hook", "type": "webhook", "url_env": "HOOK_URL", "ca_file": ca},
            ],
            "route": {
                "receiver": "pagerduty",
                "group_wait": "0s",
                "routes": [
                    {"matchers": ['tenant="acme"'], "receiver": "pagerduty"},
                    {"matchers": ['tenant="globex"'], "receiver": "hook"},
                ],
            },
            "delivery": {"poll_interval_s": 0.1},
        }
    }
    path.write_text(yaml.safe_dump(routing))


def test_deliver_serves_counter(certificate: Certificate, tmp_path: Path) -> None:
    """A delivered page and a webhook rejected with 410 show in the scraped counter."""
    pd = PagerDutyServer(certificate)
    pd.start()
    hook = WebhookServer(certificate)
    hook.start()
    hook.script = lambda request: Reply.json(410, {"error": "gone"})
    _routing_file(tmp_path / "routing.yaml", pd, certificate)
    alerts_path = tmp_path / "alerts.jsonl"
    append(alerts_path, record("acme"), record("globex"))
    log_path = tmp_path / "deliver.log"
    port = _free_port()
    environment = _environment(
        PD_KEY=PD_KEY,
        HOOK_URL=hook.url + "/hooks/primary",
        BURNRATE_ROUTING_METRICS_PORT=str(port),
    )

    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(BURNRATE), "routes", "deliver", "--rules", str(tmp_path / "routing.yaml"),
             "--alerts-file", str(alerts_path), "--state-dir", str(tmp_path / "state")],
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for(lambda: len(pd.accepted) == 1 and len(hook.requests) == 1, log_path)
        _wait_for(lambda: _scrape_when_ready(port) is not None, log_path)
        _wait_for(lambda: sum(_scrape(port).values()) == 2, log_path)
        counts = _scrape(port)
        process.send_signal(signal.SIGTERM)
        exit_status = process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        pd.stop()
        hook.stop()

    assert exit_status == 0
    assert counts[("pagerduty", "delivered")] == 1
    assert counts[("pagerduty", "failed")] == 0
    assert counts[("hook", "failed")] == 1
    assert counts[("hook", "delivered")] == 0
    assert counts[("hook", "retry")] == 0
    assert len(counts) == 6
    assert f"serving metrics at http://127.0.0.1:{port}/metrics" in log_path.read_text()


def test_deliver_without_port_serves_nothing(certificate: Certificate, tmp_path: Path) -> None:
    """With the port setting unset, the process does not log or serve a metrics endpoint."""
    pd = PagerDutyServer(certificate)
    pd.start()
    hook = WebhookServer(certificate)
    hook.start()
    _routing_file(tmp_path / "routing.yaml", pd, certificate)
    alerts_path = tmp_path / "alerts.jsonl"
    append(alerts_path, record("acme"))
    log_path = tmp_path / "deliver.log"

    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(BURNRATE), "routes", "deliver", "--rules", str(tmp_path / "routing.yaml"),
             "--alerts-file", str(alerts_path), "--state-dir", str(tmp_path / "state")],
            env=_environment(PD_KEY=PD_KEY, HOOK_URL=hook.url + "/hooks/primary"),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for(lambda: len(pd.accepted) == 1, log_path)
        process.send_signal(signal.SIGTERM)
        exit_status = process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        pd.stop()
        hook.stop()

    assert exit_status == 0
    assert "serving metrics" not in log_path.read_text()


def test_port_in_use_exits_1(certificate: Certificate, tmp_path: Path) -> None:
    """A metrics port another socket holds exits 1 and names the setting."""
    pd = PagerDutyServer(certificate)
    pd.start()
    _routing_file(tmp_path / "routing.yaml", pd, certificate)
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]

    try:
        result = subprocess.run(
            [str(BURNRATE), "routes", "deliver", "--rules", str(tmp_path / "routing.yaml"),
             "--alerts-file", str(tmp_path / "alerts.jsonl"),
             "--state-dir", str(tmp_path / "state")],
            check=False,
            env=_environment(PD_KEY=PD_KEY, HOOK_URL="https://127.0.0.1:9/hook",
                             BURNRATE_ROUTING_METRICS_PORT=str(port)),
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        holder.close()
        pd.stop()

    assert result.returncode == 1
    assert "BURNRATE_ROUTING_METRICS_PORT" in result.stderr


@run_async
async def test_retry_then_delivered_counted(
    certificate: Certificate, harness_factory: Any
) -> None:
    """A 503 then a 200 counts one retry and one delivery for the webhook."""
    harness: Harness = harness_factory(None)
    hook = WebhookServer(certificate)
    hook.start()
    replies = iter([Reply.json(503, {"error": "busy"})])

    def script(request: Request) -> Reply | None:
        return next(replies, None)

    hook.script = script
    harness.config = config(
        {
            "receivers": [{"name": "hook", "type": "webhook", "url_env": "HOOK_URL",
                           "ca_file": str(certificate.cert_path)}],
            "route": {"receiver": "hook", "group_wait": "0s"},
            "delivery": {"initial_backoff_s": 1, "max_backoff_s": 1},
        },
        {"HOOK_URL": hook.url + "/hooks/primary"},
    )

    dispatcher = await harness.start()
    append(harness.alerts_path, record("acme"))
    await harness.settle()
    await harness.stop()
    hook.stop()

    registry = dispatcher.metrics.registry
    for outcome, expected in (("retry", 1), ("delivered", 1), ("failed", 0)):
        labels = {"receiver": "hook", "outcome": outcome}
        assert registry.get_sample_value(COUNTER, labels) == expected, outcome
    assert len(hook.requests) == 2


def test_unknown_receiver_rejected() -> None:
    """Counting a receiver the routing file does not name raises, keeping labels bounded."""
    metrics = DeliveryMetrics(["hook"])

    with pytest.raises(ValueError, match="'other'"):
        metrics.count_attempt("other", "delivered")

    assert metrics.registry.get_sample_value(
        COUNTER, {"receiver": "other", "outcome": "delivered"}
    ) is None
