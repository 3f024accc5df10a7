"""Delivery under load, rate limits and restarts, against loopback servers."""

from __future__ import annotations

import re
from collections import Counter
from datetime import timedelta
from typing import Any

from tests.routing.conftest import START, Harness, append, config, record, run_async
from tests.routing.servers.http import Reply, Request
from tests.routing.servers.pagerduty import PagerDutyServer
from tests.routing.servers.slack import SlackServer
from tests.routing.servers.tls import Certificate

ENVIRON = {"PD_KEY": "pd-routing-key-0123456789abcdef", "SLACK_URL": ""}
_TENANT = re.compile(r"\] (tenant-\d{3}):")


def _routing(pd: PagerDutyServer, slack: SlackServer, certificate: Certificate) -> Any:
    environ = {**ENVIRON, "SLACK_URL": slack.webhook_url}
    return config(
        {
            "receivers": [
                {"name": "pagerduty", "type": "pagerduty", "routing_key_env": "PD_KEY",
                 "url": pd.url, "ca_file": str(certificate.cert_path)},
                {"name": "slack", "type": "slack", "webhook_url_env": "SLACK_URL",
                 "ca_file": str(certificate.cert_path)},
            ],
            "route": {
                "receiver": "slack",
                "group_by": [],
                "group_wait": "10s",
                "group_interval": "30s",
                "routes": [
                    {"matchers": ['tier="absolute"'], "receiver": "pagerduty",
                     "group_by": ["tenant"], "group_wait": "0s", "group_interval": "10s",
                     "continue": True},
                    {"matchers": ['tenant=~".+"'], "receiver": "slack"},
                ],
            },
        },
        environ,
    )


def _slack_sections(slack: SlackServer) -> list[tuple[int, str, str]]:
    """Return (message index, status, tenant) for every alert section Slack accepted."""
    found = []
    for index, body in enumerate(slack.accepted):
        for block in body["blocks"]:
            if block["type"] != "section":
                continue
            text = block["text"]["text"]
            match = _TENANT.search(text)
            if match is None:
                continue
            status = "firing" if text.startswith(":red_circle:") else "resolved"
            found.append((index, status, match.group(1)))
    return found


def _one_in_five_limited(seen: set[str]) -> Any:
    def script(request: Request, event: dict) -> Reply | None:
        key = f"{event['event_action']}:{event.get('dedup_key')}"
        first = key not in seen
        seen.add(key)
        if first and int(event["dedup_key"][:4], 16) % 5 == 0:
            return Reply.json(429, {"status": "throttle event", "message": "Requests for this service are arriving too quickly."})
        return None

    return script


@run_async
async def test_storm_of_120_tenants(certificate: Certificate, harness_factory: Any) -> None:
    """120 breaches in 10 s: PagerDuty once per key, Slack digests once, resolves after triggers."""
    harness: Harness = harness_factory(None, scale=50.0)
    pd = PagerDutyServer(certificate, now=harness.clock.now).start()
    slack = SlackServer(certificate, now=harness.clock.now, per_second=True, retry_after_s=30).start()
    seen: set[str] = set()
    pd.script = _one_in_five_limited(seen)
    harness.config = _routing(pd, slack, certificate)
    tenants = [f"tenant-{i:03d}" for i in range(120)]
    resolving = tenants[:10]
    firing = {t: record(t, at=START + timedelta(seconds=i * 10 / 120)) for i, t in enumerate(tenants)}

    await harness.start()
    for i, tenant in enumerate(tenants):  # fired at 0 s to 9.9 s
        await harness.at(i * 10 / 120)
        append(harness.alerts_path, firing[tenant])
    for i, tenant in enumerate(resolving):  # resolved 20 s after firing
        at = firing[tenant].event_time + timedelta(seconds=20)
        await harness.at((at - START).total_seconds())
        append(harness.alerts_path, record(tenant, status="resolved", at=at,
                                           started_at=firing[tenant].started_at))
    await harness.settle(timeout_s=60)
    await harness.stop()
    pd.stop()
    slack.stop()

    for tenant in tenants:
        triggers = [e for a, e in pd.accepted[firing[tenant].alert_id] if a == "trigger"]
        assert len(triggers) == 1, tenant
    for tenant in resolving:
        actions = [a for a, _ in pd.accepted[firing[tenant].alert_id]]
        assert actions == ["trigger", "resolve"], tenant
    limited_first = [k for k in seen if k.startswith("trigger:") and int(k[8:12], 16) % 5 == 0]
    assert limited_first, "the script limited no first attempt"
    sections = _slack_sections(slack)
    counts = Counter((status, tenant) for _, status, tenant in sections)
    assert all(counts[("firing", t)] == 1 for t in tenants)
    assert all(counts[("resolved", t)] == 1 for t in resolving)
    assert sum(counts.values()) == len(tenants) + len(resolving)
    message_of = {(status, tenant): index for index, status, tenant in sections}
    for tenant in resolving:
        assert message_of[("resolved", tenant)] > message_of[("firing", tenant)], tenant
    keys = [body["blocks"][-1]["elements"][0]["text"] for body in slack.accepted]
    assert len(keys) == len(set(keys)), "a digest chunk was posted twice"
    assert len(slack.accepted) < len(tenants), "Slack content was not coalesced"
    assert slack.limited, "the Slack server never rate limited"
    assert slack.early_retries == []
    last_limit = max(request.time for request in slack.limited)
    assert any(request.time > last_limit for request in slack.requests), "Slack was disabled after a 429"
    outcomes = Counter((line["receiver"], line["outcome"], line["status_code"]) for line in harness.audit())
    assert outcomes[("pagerduty", "retry", 429)] >= 1
    assert outcomes[("slack", "retry", 429)] >= 1
    assert outcomes[("pagerduty", "failed", 429)] == 0
    assert outcomes[("slack", "failed", 429)] == 0


@run_async
async def test_restart_sends_nothing_twice(certificate: Certificate, harness_factory: Any) -> None:
    """After a restart, 40 notified alerts send nothing; one that started meanwhile is sent once."""
    harness: Harness = harness_factory(None, scale=50.0)
    pd = PagerDutyServer(certificate, now=harness.clock.now).start()
    slack = SlackServer(certificate, now=harness.clock.now).start()
    harness.config = _routing(pd, slack, certificate)
    tenants = [f"tenant-{i:03d}" for i in range(40)]
    append(harness.alerts_path, *(record(t) for t in tenants))
    await harness.start()
    await harness.settle()
    await harness.stop()
    requests_before = (len(pd.requests), len(slack.requests))
    # The crash lost the committed offset: every record is read again.
    (harness.directory / "alerts.jsonl.offset").unlink()
    late = record("tenant-late", at=START + timedelta(minutes=5))
    append(harness.alerts_path, late)

    await harness.start()
    await harness.settle()
    await harness.stop()

    assert requests_before[0] == 40
    new_pd = pd.requests[requests_before[0]:]
    new_slack = slack.requests[requests_before[1]:]
    pd.stop()
    slack.stop()
    assert [r.json()["dedup_key"] for r in new_pd] == [late.alert_id]
    assert len(new_slack) == 1
    assert "tenant-late" in new_slack[0].body.decode()
    assert "tenant-000" not in new_slack[0].body.decode()
    skipped = [line for line in harness.audit() if line["outcome"] == "skipped"]
    assert len(skipped) == 80
