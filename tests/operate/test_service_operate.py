"""The running service on the real broker: budget API, /metrics and a real Prometheus.

One worker (``burnrate serve`` as a subprocess) and one Prometheus server from
the Debian package run for the module. Prometheus scrapes the worker every
second on loopback; the tests read the series back through its HTTP API.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.kafka_broker import free_loopback_port
from tests.service.harness import (
    ServiceProcess,
    Topics,
    event,
    keyed,
    latest_budget_state,
    send,
    write_rules,
)

TOKEN = "operate-test-token-5b1f"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
QUERY_DEADLINE_S = 60.0
RULES: dict[str, Any] = {
    "tenants": [{"id": "acme", "labels": {"tier": "enterprise"}}],
    "budgets": [
        {
            "id": "daily",
            "tenant": "acme",
            "period": "daily",
            "limit_usd": 10,
            "gateway": {
                "warn_at_pct": 50,
                "degrade_at_pct": 80,
                "block_at_pct": 100,
                "degrade_to": {"gpt-4o": "gpt-4o-mini"},
            },
        }
    ],
}


class Prometheus:
    """A Prometheus server on loopback with its own config and data folder."""

    def __init__(self, work_dir: Path, target: str) -> None:
        self.port = free_loopback_port()
        self.work_dir = work_dir
        self.log_path = work_dir / "prometheus.log"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [
                {"job_name": "burnrate", "static_configs": [{"targets": [target]}]}
            ],
        }
        self.config_path = work_dir / "prometheus.yml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    PROMETHEUS,
                    f"--config.file={self.config_path}",
                    f"--storage.tsdb.path={self.work_dir / 'prometheus-data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"Prometheus not ready\n{self.log_path.read_text()[-3000:]}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def query(self, promql: str) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=5)
        response.raise_for_status()
        result: list[dict[str, Any]] = response.json()["data"]["result"]
        return result

    def wait_for(self, promql: str) -> list[dict[str, Any]]:
        """Query until the result is not empty; fail with the query after the deadline."""
        deadline = time.monotonic() + QUERY_DEADLINE_S
        while time.monotonic() < deadline:
            result = self.query(promql)
            if result:
                return result
            time.sleep(0.5)
        raise AssertionError(f"no series for {promql} after {QUERY_DEADLINE_S} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="module")
def operated(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServiceProcess, Prometheus]]:
    """A worker fed with acme's traffic (three models, $8.50) and a Prometheus scraping it."""
    work_dir = tmp_path_factory.mktemp("operate")
    topics = Topics.unique("operate")
    worker = ServiceProcess(
        kafka_bootstrap, topics, write_rules(work_dir / "rules", RULES), work_dir,
        partitions=1,
        env={
            "BURNRATE_API_TOKEN": TOKEN,
            "BURNRATE_METRICS_MAX_LABEL_VALUES": "2",
            "BURNRATE_LOG_FORMAT": "json",
        },
    )
    prometheus: Prometheus | None = None
    try:
        worker.start()
        sent_at = datetime.now(UTC) - timedelta(seconds=30)
        documents = [
            event(
                "acme", sent_at + timedelta(seconds=index), cost,
                **{
                    "gen_ai.request.model": model,
                    "route": "/v1/chat",
                    "ttft_ms": 300,
                    "duration_ms": 2300,
                },
            )
            for index, (model, cost) in enumerate(
                [("m1", "4.00"), ("m2", "2.50"), ("m3", "2.00")]
            )
        ]
        send(kafka_bootstrap, topics.events, keyed(documents))
        worker.wait_records(3)
        prometheus = Prometheus(work_dir, f"127.0.0.1:{worker.web_port}")
        prometheus.start()
        yield worker, prometheus
    finally:
        if prometheus is not None:
            prometheus.stop()
        worker.kill()


def budget_request(worker: ServiceProcess, tenant: str, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.get(f"{worker.base_url}/v1/budget/{tenant}", headers=headers, timeout=5)


def test_budget_api_degrades(operated: tuple[ServiceProcess, Prometheus]) -> None:
    """$8.50 of a $10 daily budget degrades to the mapped model, over HTTP."""
    worker, _ = operated

    response = budget_request(worker, "acme", TOKEN)
    answer = response.json()

    assert response.status_code == 200
    assert answer["decision"] == "degrade"
    assert answer["degrade_to"] == {"gpt-4o": "gpt-4o-mini"}
    assert answer["budgets"][0]["used"] == "8.50"
    assert answer["budgets"][0]["limit"] == "10"
    assert answer["budgets"][0]["period"] == "daily"


def test_budget_api_rejects_bad_tokens(operated: tuple[ServiceProcess, Prometheus]) -> None:
    """Missing and wrong tokens get 401; an unknown tenant gets 404."""
    worker, _ = operated

    missing = budget_request(worker, "acme", None)
    wrong = budget_request(worker, "acme", "not-the-token")
    unknown = budget_request(worker, "initech", TOKEN)

    assert missing.status_code == 401
    assert wrong.status_code == 401
    assert unknown.status_code == 404


def test_budget_state_topic_has_decision(
    kafka_bootstrap: str, operated: tuple[ServiceProcess, Prometheus]
) -> None:
    """The compacted budget-state topic carries the same decision."""
    worker, _ = operated

    latest = latest_budget_state(kafka_bootstrap, worker.topics)

    assert latest["acme"]["decision"] == "degrade"
    assert latest["acme"]["degrade_to"] == {"gpt-4o": "gpt-4o-mini"}


def test_decision_change_audited(operated: tuple[ServiceProcess, Prometheus]) -> None:
    """The change from allow to degrade is in the audit log; the token is in no log."""
    worker, _ = operated
    audit_path = worker.work_dir / f"{worker.name}-data" / "budget-decisions.jsonl"

    entries = [json.loads(line) for line in audit_path.read_text().splitlines()]

    assert entries[-1]["tenant"] == "acme"
    assert entries[-1]["decision"] == "degrade"
    assert TOKEN not in worker.log_text()
    assert TOKEN not in audit_path.read_text()


def test_prometheus_scrapes_spend(operated: tuple[ServiceProcess, Prometheus]) -> None:
    """Prometheus stores acme's spend, the sum of the three events."""
    _, prometheus = operated

    result = prometheus.wait_for('sum(burnrate_llm_spend_usd_total{tenant="acme"})')

    assert float(result[0]["value"][1]) == pytest.approx(8.5)


def test_prometheus_scrapes_latency(operated: tuple[ServiceProcess, Prometheus]) -> None:
    """The duration histogram holds three requests, all in the 2.56 s bucket."""
    _, prometheus = operated

    count = prometheus.wait_for("sum(burnrate_llm_operation_duration_seconds_count)")
    bucket = prometheus.wait_for(
        'sum(burnrate_llm_operation_duration_seconds_bucket{le="2.56"})'
    )
    below = prometheus.wait_for(
        'sum(burnrate_llm_operation_duration_seconds_bucket{le="1.28"})'
    )

    assert float(count[0]["value"][1]) == 3
    assert float(bucket[0]["value"][1]) == 3
    assert float(below[0]["value"][1]) == 0


def test_prometheus_sees_folding(operated: tuple[ServiceProcess, Prometheus]) -> None:
    """With a budget of two models, the third model's spend is stored as other."""
    _, prometheus = operated

    models = prometheus.wait_for("sum by (model) (burnrate_llm_spend_usd_total)")
    folded = prometheus.wait_for(
        'burnrate_metric_label_values_folded_total{metric="burnrate_llm_spend_usd",'
        'label="model"}'
    )
    by_model = {series["metric"]["model"]: float(series["value"][1]) for series in models}

    assert by_model == {"m1": 4.0, "m2": 2.5, "other": 2.0}
    assert float(folded[0]["value"][1]) == 1
