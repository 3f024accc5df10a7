"""Each receiver's happy path, resolve path and permanent error (the fallback gets it)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.routing.conftest import START, Harness, append, config, record, run_async
from tests.routing.servers.http import Reply, Request
from tests.routing.servers.opsgenie import OpsgenieServer
from tests.routing.servers.pagerduty import PagerDutyServer
from tests.routing.servers.slack import SlackServer
from tests.routing.servers.tls import Certificate
from tests.routing.servers.webhook import WebhookServer

OPSGENIE_KEY = "opsgenie-api-key-5f1e2d3c"


def _receiver(kind: str, server: Any, ca: str) -> tuple[dict[str, Any], dict[str, str]]:
    if kind == "pagerduty":
        return ({"type": "pagerduty", "routing_key_env": "KEY", "url": server.url},
                {"KEY": "pd-routing-key-0123456789abcdef"})
    if kind == "opsgenie":
        return ({"type": "opsgenie", "api_key_env": "KEY", "api_url": server.url},
                {"KEY": OPSGENIE_KEY})
    if kind == "slack-webhook":
        return {"type": "slack", "webhook_url_env": "KEY"}, {"KEY": server.webhook_url}
    if kind == "slack-api":
        return ({"type": "slack", "token_env": "KEY", "channel": "#spend", "api_url": server.api_url},
                {"KEY": server.token})
    return {"type": "webhook", "url_env": "KEY"}, {"KEY": server.url + "/hooks/primary"}


def _server(kind: str, certificate: Certificate, harness: Harness) -> Any:
    classes = {"pagerduty": PagerDutyServer, "opsgenie": OpsgenieServer,
               "slack-webhook": SlackServer, "slack-api": SlackServer, "webhook": WebhookServer}
    return classes[kind](certificate, now=harness.clock.now).start()


def _routing(kind: str, server: Any, fallback: WebhookServer, certificate: Certificate) -> Any:
    ca = str(certificate.cert_path)
    settings, environ = _receiver(kind, server, ca)
    environ["FALLBACK_URL"] = fallback.hook_url
    return config(
        {
            "fallback": "fallback",
            "receivers": [
                {"name": "primary", "ca_file": ca, **settings},
                {"name": "fallback", "type": "webhook", "url_env": "FALLBACK_URL", "ca_file": ca},
            ],
            "route": {"receiver": "primary", "group_wait": "0s", "group_interval": "5s"},
        },
        environ,
    )


def _reject(kind: str) -> Any:
    """A script that answers every request with the service's permanent error."""

    def script(request: Request, *rest: Any) -> Reply:
        if kind == "pagerduty":
            return Reply.json(400, {"status": "invalid event", "message": "Event object is invalid", "errors": ["routing key not found"]})
        if kind == "opsgenie":
            return Reply.json(422, {"message": "Key format is not valid!", "took": 0.0, "requestId": "r"})
        if kind == "slack-webhook":
            return Reply(403, b"action_prohibited", {"Content-Type": "text/plain"})
        if kind == "slack-api":
            return Reply.json(200, {"ok": False, "error": "channel_not_found"})
        return Reply.json(410, {"error": "gone"})

    return script


def _arrived(kind: str, server: Any) -> list[str]:
    """Return what the server accepted, as 'action:alert id' strings."""
    if kind == "pagerduty":
        return [f"{action}:{key}" for key, events in server.accepted.items() for action, _ in events]
    if kind == "opsgenie":
        return [f"trigger:{alias}" for alias in server.created] + [f"resolve:{a}" for a in server.closed]
    if kind.startswith("slack"):
        return [body["text"] for body in server.accepted]
    return [r.body.decode() for r in server.requests]


KINDS = ["pagerduty", "opsgenie", "slack-webhook", "slack-api", "webhook"]


@pytest.mark.parametrize("kind", KINDS)
@run_async
async def test_trigger_then_resolve(kind: str, certificate: Certificate, harness_factory: Any) -> None:
    """A firing alert reaches the receiver, and its resolve follows."""
    harness: Harness = harness_factory(None)
    server = _server(kind, certificate, harness)
    fallback = WebhookServer(certificate).start()
    harness.config = _routing(kind, server, fallback, certificate)
    firing = record("acme")
    resolved = record("acme", status="resolved", at=START + timedelta(minutes=3), started_at=START)

    await harness.start()
    append(harness.alerts_path, firing)
    await harness.settle()
    append(harness.alerts_path, resolved)
    await harness.settle()
    await harness.stop()
    server.stop()
    fallback.stop()

    arrived = _arrived(kind, server)
    assert len(arrived) == 2
    if kind in ("pagerduty", "opsgenie"):
        assert arrived == [f"trigger:{firing.alert_id}", f"resolve:{firing.alert_id}"]
    else:
        assert "[FIRING] acme" in arrived[0]
        assert "[RESOLVED] acme" in arrived[1]
    assert fallback.requests == []
    assert [line["outcome"] for line in harness.audit()] == ["delivered", "delivered"]


@pytest.mark.parametrize("kind", KINDS)
@run_async
async def test_permanent_error_goes_to_fallback(kind: str, certificate: Certificate, harness_factory: Any) -> None:
    """A permanent rejection is not retried; the fallback receives the alert with the error."""
    harness: Harness = harness_factory(None)
    server = _server(kind, certificate, harness)
    server.script = _reject(kind)
    fallback = WebhookServer(certificate).start()
    harness.config = _routing(kind, server, fallback, certificate)
    firing = record("acme")

    await harness.start()
    append(harness.alerts_path, firing)
    await harness.settle()
    await harness.stop()
    server.stop()
    fallback.stop()

    assert len(server.requests) == 1
    assert len(fallback.requests) == 1
    body = fallback.requests[0].json()
    assert body["failed_receiver"] == "primary"
    assert body["alerts"][0]["alert_id"] == firing.alert_id
    assert "failed with HTTP" in body["failure"]
    assert harness.ledger().outcome("primary", firing) == "fallback"
