"""From a produced event to a delivered page: ``serve`` and ``routes deliver`` on Kafka.

Both commands run as subprocesses on the test broker. The service reads LLM
request events and writes alert records to the alerts topic. Delivery reads
that topic in its own consumer group and sends to loopback PagerDuty Events
API v2 and Slack webhook servers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from routing.ledger import Ledger
from tests.routing.servers.pagerduty import PagerDutyServer
from tests.routing.servers.slack import SlackServer
from tests.routing.servers.tls import Certificate
from tests.service.harness import BURNRATE, ServiceProcess, Topics, event, keyed, send

DEADLINE_S = 60.0
PD_KEY = "pd-routing-key-0123456789abcdef"

RULES = {
    "tenants": [{"id": "acme", "timezone": "UTC"}],
    "budgets": [
        {
            "id": "monthly-spend",
            "tenant": "acme",
            "period": "monthly",
            "limit_usd": 10,
            "thresholds_pct": [100],
            "severity": "critical",
        },
    ],
}


def _routing(pd: PagerDutyServer, certificate: Certificate) -> dict[str, Any]:
    ca_file = str(certificate.cert_path)
    return {
        "routing": {
            "receivers": [
                {
                    "name": "pagerduty",
                    "type": "pagerduty",
                    "routing_key_env": "PD_KEY",
                    "url": pd.url,
                    "ca_file": ca_file,
                },
                {
                    "name": "slack",
                    "type": "slack",
                    "webhook_url_env": "SLACK_URL",
                    "ca_file": ca_file,
                },
            ],
            "route": {
                "receiver": "slack",
                "group_by": [],
                "group_wait": "0s",
                "group_interval": "1s",
                "routes": [
                    {
                        "matchers": ['tier="absolute"'],
                        "receiver": "pagerduty",
                        "group_by": ["tenant", "rule"],
                        "continue": True,
                    },
                    {"matchers": ['tenant=~".+"'], "receiver": "slack"},
                ],
            },
        }
    }


@dataclass
class DeliverProcess:
    """``burnrate routes deliver --from-kafka`` as a subprocess, logging to a file."""

    topics: Topics
    bootstrap: str
    rules_dir: Path
    work_dir: Path
    environ: dict[str, str]
    process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.work_dir / "deliver.log"

    @property
    def state_dir(self) -> Path:
        return self.work_dir / "routing-state"

    def start(self) -> DeliverProcess:
        environment = {
            k: v for k, v in os.environ.items() if not k.startswith("BURNRATE_")
        }
        environment.update(self.environ)
        environment.update(
            {
                "BURNRATE_KAFKA_BOOTSTRAP": self.bootstrap,
                "BURNRATE_APP_ID": self.topics.app_id,
                "BURNRATE_ALERTS_TOPIC": self.topics.alerts,
                "BURNRATE_ROUTING_STATE_DIR": str(self.state_dir),
                "BURNRATE_ROUTING_READ_WAIT_S": "0.2",
            }
        )
        command = [
            str(BURNRATE),
            "routes",
            "deliver",
            "--rules",
            str(self.rules_dir),
            "--from-kafka",
        ]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                cwd=self.work_dir,
                env=environment,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def stop(self) -> int:
        """Send SIGTERM and return the exit status."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(
                f"routes deliver ignored SIGTERM\n{self.log()}"
            ) from None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def log(self) -> str:
        return (
            self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        )


def _delivered_in_audit(state_dir: Path) -> int:
    audit = state_dir / "audit.jsonl"
    if not audit.exists():
        return 0
    lines = audit.read_text().splitlines()
    return sum(1 for line in lines if '"delivered"' in line)


def _until(condition: Callable[[], bool], what: str, *logs: Callable[[], str]) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            shown = "\n".join(log()[-6000:] for log in logs)
            raise AssertionError(f"timed out waiting for {what}\n{shown}")
        time.sleep(0.2)


@pytest.fixture
def servers(certificate: Certificate) -> Iterator[tuple[PagerDutyServer, SlackServer]]:
    pd = PagerDutyServer(certificate).start()
    slack = SlackServer(certificate).start()
    yield pd, slack  # type: ignore[misc]
    pd.stop()
    slack.stop()


def test_budget_breach_pages_and_posts(
    kafka_bootstrap: str,
    certificate: Certificate,
    tmp_path: Path,
    servers: tuple[PagerDutyServer, SlackServer],
) -> None:
    """$12 against a $10 monthly budget reaches PagerDuty and Slack."""
    pd, slack = servers
    topics = Topics.unique("routing-e2e")
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    (rules_dir / "rules.yaml").write_text(yaml.safe_dump(RULES, sort_keys=False))
    (rules_dir / "routing.yaml").write_text(yaml.safe_dump(_routing(pd, certificate)))
    service = ServiceProcess(kafka_bootstrap, topics, rules_dir, tmp_path, partitions=2)
    deliver = DeliverProcess(
        topics,
        kafka_bootstrap,
        rules_dir,
        tmp_path,
        {"PD_KEY": PD_KEY, "SLACK_URL": slack.webhook_url},
    )
    now = datetime.now(UTC).replace(microsecond=0)
    # Both events fall in the current UTC month: $6 + $6 crosses the $10 budget.
    events = [
        event("acme", now - timedelta(seconds=30), "6.00"),
        event("acme", now - timedelta(seconds=20), "6.00"),
    ]

    try:
        service.start()
        deliver.start()
        send(kafka_bootstrap, topics.events, keyed(events))
        _until(
            lambda: bool(pd.accepted) and bool(slack.accepted),
            "a PagerDuty trigger and a Slack message",
            service.log_text,
            deliver.log,
        )
        # A server's acceptance and the ledger write are two steps. Waiting for
        # the audit lines keeps the ledger checks below from depending on how
        # long stop waits for sends in progress (drain_s).
        _until(
            lambda: _delivered_in_audit(deliver.state_dir) >= 2,
            "both deliveries in the audit log",
            deliver.log,
        )
        # Raising the budget above the spend resolves the breach.
        raised = {**RULES, "budgets": [{**RULES["budgets"][0], "limit_usd": 100}]}
        staging = tmp_path / "staging.yaml"
        staging.write_text(yaml.safe_dump(raised, sort_keys=False))
        os.replace(staging, rules_dir / "rules.yaml")
        assert service.process is not None
        service.process.send_signal(signal.SIGHUP)
        _until(
            lambda: _actions(pd) == ["trigger", "resolve"] and len(slack.accepted) == 2,
            "a PagerDuty resolve and a second Slack message",
            service.log_text,
            deliver.log,
        )
        _until(
            lambda: _delivered_in_audit(deliver.state_dir) >= 4,
            "all four deliveries in the audit log",
            deliver.log,
        )
        exit_status = deliver.stop()
    finally:
        deliver.kill()
        service.kill()

    ((dedup_key, notifications),) = pd.accepted.items()
    (action, trigger), (resolve_action, resolve) = notifications
    assert action == "trigger"
    assert resolve_action == "resolve"
    assert resolve["dedup_key"] == dedup_key
    assert trigger["routing_key"] == PD_KEY
    assert trigger["payload"]["severity"] == "critical"
    assert "monthly-spend" in trigger["payload"]["summary"]
    assert trigger["payload"]["group"] == "acme"
    assert trigger["payload"]["custom_details"]["Observed"] == "$12.00"
    assert len(slack.accepted) == 2
    assert "acme" in str(slack.accepted[0]["blocks"])
    assert "acme" in str(slack.accepted[1]["blocks"])
    assert exit_status == 0
    assert "stopping on SIGTERM" in deliver.log()
    ledger = Ledger(deliver.state_dir / "ledger.sqlite")
    assert ledger.count("pagerduty", "delivered") == 2
    assert ledger.count("slack", "delivered") == 2
    ledger.close()
    assert dedup_key == trigger["dedup_key"]


def _actions(pd: PagerDutyServer) -> list[str]:
    return [action for notes in pd.accepted.values() for action, _ in notes]
