"""Email delivery over STARTTLS against a real aiosmtpd server on loopback."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.routing.conftest import START, Harness, append, config, record, run_async
from tests.routing.servers.pagerduty import PagerDutyServer
from tests.routing.servers.slack import SlackServer
from tests.routing.servers.smtp import SMTPServer
from tests.routing.servers.tls import Certificate

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
