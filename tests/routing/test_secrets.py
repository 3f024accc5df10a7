"""Secrets stay out of logs, audit records, exceptions and reprs, even when a send fails."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from routing.load import check_routing
from tests.routing.conftest import Harness, append, config, record, run_async
from tests.routing.servers.http import Reply, Request
from tests.routing.servers.opsgenie import OpsgenieServer
from tests.routing.servers.slack import SlackServer
from tests.routing.servers.tls import Certificate

OPSGENIE_KEY = "og-secret-9c1b7e4d2a"


@run_async
async def _failing_sends(certificate: Certificate, harness: Harness) -> list[str]:
    og = OpsgenieServer(certificate, now=harness.clock.now).start()
    slack = SlackServer(certificate, now=harness.clock.now).start()

    def echo_key(request: Request, *rest: Any) -> Reply:
        # A hostile or careless server echoes the credentials in its error body.
        return Reply.json(500, {"message": f"bad {request.headers.get('Authorization')} at {request.path}"})

    og.script = echo_key
    slack.script = echo_key
    harness.config = config(
        {"receivers": [
            {"name": "og", "type": "opsgenie", "api_key_env": "OG", "api_url": og.url,
             "ca_file": str(certificate.cert_path)},
            {"name": "slack", "type": "slack", "webhook_url_env": "SLACK",
             "ca_file": str(certificate.cert_path)}],
         "route": {"receiver": "og", "group_wait": "0s", "routes": [
             {"matchers": ['tier="absolute"'], "receiver": "og", "continue": True},
             {"matchers": ['tier="absolute"'], "receiver": "slack"}]},
         "delivery": {"retry_for_s": 5, "initial_backoff_s": 1}},
        {"OG": OPSGENIE_KEY, "SLACK": slack.webhook_url},
    )
    append(harness.alerts_path, record("acme"))
    dispatcher = await harness.start()
    await harness.settle()
    texts = [repr(harness.config), str(harness.config), repr(dispatcher.receivers)]
    await harness.stop()
    og.stop()
    slack.stop()
    return texts


def test_failing_send_leaks_no_secret(
    certificate: Certificate, harness_factory: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Opsgenie and Slack fail with bodies that echo the credentials; no secret appears anywhere."""
    harness: Harness = harness_factory(None)
    caplog.set_level(logging.DEBUG)

    texts = _failing_sends(certificate, harness)  # type: ignore[func-returns-value]

    audit = harness.audit_path.read_text()
    secrets = [OPSGENIE_KEY, SlackServer.webhook_path.rsplit("/", 1)[1]]
    assert '"outcome":"failed"' in audit
    assert "[REDACTED]" in audit
    for secret in secrets:
        assert secret not in audit
        assert secret not in caplog.text
        for text in texts or []:
            assert secret not in text


def test_literal_secret_rejected(tmp_path: Path) -> None:
    """A secret written into the routing file is rejected with its line."""
    path = tmp_path / "routing.yaml"
    path.write_text(
        "routing:\n"
        "  receivers:\n"
        "    - name: pd\n"
        "      type: pagerduty\n"
        "      routing_key: abcdef0123456789\n"
        "  route:\n"
        "    receiver: pd\n"
    )

    routing, problems = check_routing(path, {})

    assert routing is None
    assert [(p.line, p.field) for p in problems] == [(5, "routing.receivers[0].routing_key")]
    assert "routing_key_env" in problems[0].message
    assert "abcdef0123456789" not in str(problems[0])


def test_secret_from_file_and_env(tmp_path: Path) -> None:
    """routing_key_file and ${ENV:NAME} both load, and reprs hide the values."""
    key_file = tmp_path / "pd-key"
    key_file.write_text("from-file-key-123\n")
    path = tmp_path / "routing.yaml"
    path.write_text(
        "routing:\n"
        "  receivers:\n"
        "    - {name: pd, type: pagerduty, routing_key_file: " + str(key_file) + "}\n"
        "    - {name: og, type: opsgenie, api_key: '${ENV:OG_KEY}'}\n"
        "  route: {receiver: pd}\n"
    )

    routing, problems = check_routing(path, {"OG_KEY": "from-env-key-456"})

    assert problems == []
    assert routing is not None
    assert routing.receiver("pd").routing_key.get_secret_value() == "from-file-key-123"  # type: ignore[union-attr]
    assert routing.receiver("og").api_key.get_secret_value() == "from-env-key-456"  # type: ignore[union-attr]
    assert "from-file-key-123" not in repr(routing)
    assert "from-env-key-456" not in repr(routing)
