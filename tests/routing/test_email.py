"""Email delivery over STARTTLS against a real aiosmtpd server on loopback."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.routing.conftest import START, Harness, append, config, record, run_async
from tests.routing.servers.pagerduty import PagerDutyServer
from tests.routing.servers.slack import SlackServer
from tests.routing.servers.smtp import SMTPServer
from tests.routing.servers.tls import Certificate
from tests.routing.servers.webhook import WebhookServer

SCALE = 600.0  # five minutes of clock time pass in half a second


def _routing(smtp: SMTPServer, pd: PagerDutyServer, slack: SlackServer,
             certificate: Certificate, reuse_s: float) -> Any:
    ca = str(certificate.cert_path)
    environ = {"PD_KEY": "pd-routing-key-0123456789abcdef", "SLACK_URL": slack.webhook_url,
               "SMTP_PASSWORD": "smtp-password-not-used"}
    return config(
        {
            "receivers": [
                {"name": "email", "type": "email", "host": "127.0.0.1", "port": smtp.port,
                 "security": "starttls", "from": "burnrate@example.com",
                 "to": ["oncall@example.com"], "ca_file": ca, "reuse_connection_s": reuse_s},
                {"name": "pagerduty", "type": "pagerduty", "routing_key_env": "PD_KEY",
                 "url": pd.url, "ca_file": ca},
                {"name": "slack", "type": "slack", "webhook_url_env": "SLACK_URL", "ca_file": ca},
            ],
            "route": {
                "receiver": "email", "group_wait": "0s", "group_interval": "10s",
                "routes": [
                    {"matchers": ['tier="absolute"'], "receiver": "email", "continue": True},
                    {"matchers": ['tier="absolute"'], "receiver": "pagerduty", "continue": True},
                    {"matchers": ['tier="absolute"'], "receiver": "slack"},
                ],
            },
        },
        environ,
    )


@run_async
async def test_idle_drop_then_fresh_connection(certificate: Certificate, harness_factory: Any) -> None:
    """The server drops the idle connection at minute 5; the minute-10 alert goes out once on a new one."""
    harness: Harness = harness_factory(None, scale=SCALE)
    smtp = SMTPServer(certificate, idle_timeout_s=300 / SCALE).start()
    pd = PagerDutyServer(certificate, now=harness.clock.now).start()
    slack = SlackServer(certificate, now=harness.clock.now).start()
    harness.config = _routing(smtp, pd, slack, certificate, reuse_s=3600)
    first = record("tenant-a")
    late = record("tenant-b", at=START + timedelta(minutes=10))

    await harness.start()
    append(harness.alerts_path, first)
    await harness.settle()
    await harness.at(600)  # minute 10; the server dropped the session at minute 5
    append(harness.alerts_path, late)
    await harness.settle()
    await harness.stop()
    smtp.stop()
    pd.stop()
    slack.stop()

    subjects = [m.message["Subject"] for m in smtp.messages]
    assert len([s for s in subjects if "tenant-b" in s]) == 1
    assert len(smtp.messages) == 2
    assert smtp.messages[0].peer != smtp.messages[1].peer
    assert all(m.tls for m in smtp.messages)
    assert set(pd.accepted) == {first.alert_id, late.alert_id}
    assert len(slack.accepted) == 2
    parts = [p.get_content_type() for p in smtp.messages[1].message.walk()]
    assert "text/plain" in parts and "text/html" in parts


@run_async
async def test_drop_during_quit_counts_delivered(certificate: Certificate, harness_factory: Any) -> None:
    """The server accepts the message and drops the connection on QUIT: delivered, not resent."""
    harness: Harness = harness_factory(None, scale=SCALE)
    smtp = SMTPServer(certificate, drop_on_quit=True).start()
    pd = PagerDutyServer(certificate, now=harness.clock.now).start()
    slack = SlackServer(certificate, now=harness.clock.now).start()
    harness.config = _routing(smtp, pd, slack, certificate, reuse_s=0)
    alert = record("tenant-a")

    await harness.start()
    append(harness.alerts_path, alert)
    await harness.settle()
    await harness.at(120)
    await harness.stop()
    smtp.stop()
    pd.stop()
    slack.stop()

    assert len(smtp.messages) == 1
    email_lines = [line for line in harness.audit() if line["receiver"] == "email"]
    assert [line["outcome"] for line in email_lines] == ["delivered"]
    assert harness.ledger().outcome("email", alert) == "delivered"


REJECT_REPLY = "550 5.1.1 <oncall@example.com>: Recipient address rejected: User unknown"


def _email_with_fallback(smtp: SMTPServer, fallback: WebhookServer,
                         certificate: Certificate) -> Any:
    ca = str(certificate.cert_path)
    return config(
        {
            "fallback": "fallback",
            "receivers": [
                {"name": "primary", "type": "email", "host": "127.0.0.1", "port": smtp.port,
                 "security": "starttls", "from": "burnrate@example.com",
                 "to": ["oncall@example.com"], "ca_file": ca, "reuse_connection_s": 0},
                {"name": "fallback", "type": "webhook", "url_env": "FALLBACK_URL",
                 "ca_file": ca},
            ],
            "route": {"receiver": "primary", "group_wait": "0s", "group_interval": "5s"},
        },
        {"FALLBACK_URL": fallback.hook_url},
    )


@run_async
async def test_trigger_then_resolve(certificate: Certificate, harness_factory: Any) -> None:
    """A firing alert is mailed, and its resolve follows in a second message."""
    harness: Harness = harness_factory(None)
    smtp = SMTPServer(certificate).start()
    fallback = WebhookServer(certificate).start()
    harness.config = _email_with_fallback(smtp, fallback, certificate)
    firing = record("acme")
    # Resolved three minutes after it started firing at 14:00.
    resolved = record("acme", status="resolved", at=START + timedelta(minutes=3),
                      started_at=START)

    await harness.start()
    append(harness.alerts_path, firing)
    await harness.settle()
    append(harness.alerts_path, resolved)
    await harness.settle()
    await harness.stop()
    smtp.stop()
    fallback.stop()

    subjects = [m.message["Subject"] for m in smtp.messages]
    assert len(subjects) == 2
    assert subjects[0].startswith("[burnrate] [FIRING] acme: hourly-spend-high")
    assert subjects[1].startswith("[burnrate] [RESOLVED] acme: hourly-spend-high")
    assert [m.recipients for m in smtp.messages] == [["oncall@example.com"]] * 2
    assert [m.message["X-Burnrate-Key"] for m in smtp.messages] == [
        f"primary:{firing.alert_id}:firing:0",
        f"primary:{firing.alert_id}:resolved:0",
    ]
    assert fallback.requests == []
    assert [line["outcome"] for line in harness.audit()] == ["delivered", "delivered"]
    assert harness.ledger().outcome("primary", resolved) == "delivered"


@run_async
async def test_refused_recipient_goes_to_fallback(
    certificate: Certificate, harness_factory: Any
) -> None:
    """A 550 to RCPT TO is permanent: no retry, and the fallback gets the server's reply."""
    harness: Harness = harness_factory(None)
    smtp = SMTPServer(
        certificate, reject_recipients={"oncall@example.com": REJECT_REPLY}
    ).start()
    fallback = WebhookServer(certificate).start()
    harness.config = _email_with_fallback(smtp, fallback, certificate)
    firing = record("acme")

    await harness.start()
    append(harness.alerts_path, firing)
    await harness.settle()
    await harness.at(120)  # past any back-off a retry would have waited
    await harness.stop()
    smtp.stop()
    fallback.stop()

    expected_failure = f"SMTP server rejected every recipient: oncall@example.com: {REJECT_REPLY}"
    assert smtp.handler.rcpt_commands == ["oncall@example.com"]
    assert smtp.messages == []
    assert len(fallback.requests) == 1
    body = fallback.requests[0].json()
    assert body["failed_receiver"] == "primary"
    assert body["failure"] == expected_failure
    assert [alert["alert_id"] for alert in body["alerts"]] == [firing.alert_id]
    primary_lines = [line for line in harness.audit() if line["receiver"] == "primary"]
    assert [line["outcome"] for line in primary_lines] == ["failed", "fallback"]
    assert primary_lines[0]["status_code"] == 550
    assert primary_lines[0]["error"] == expected_failure
    assert harness.ledger().outcome("primary", firing) == "fallback"
