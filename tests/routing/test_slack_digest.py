"""Slack digests split within Slack's limits, with only a failed chunk retried."""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

from routing.receivers.base import Notification
from routing.receivers.slack import format as slack_format
from tests.routing.conftest import Harness, append, config, record, run_async
from tests.routing.servers.http import Reply, Request
from tests.routing.servers.slack import SlackServer
from tests.routing.servers.tls import Certificate

_TENANT = re.compile(r"\] (tenant-\d{3}-[a-z]+):")


def _tenants(count: int) -> list[str]:
    # Each alert's headline is about 110 characters.
    return [f"tenant-{i:03d}-{'x' * 12}" for i in range(count)]


def test_digest_split_within_limits() -> None:
    """120 alerts of about 110 characters split into messages within 50 blocks and the text limit."""
    alerts = tuple(record(t) for t in _tenants(120))
    notification = Notification("slack", "digest", alerts)

    chunks = slack_format.split(notification)
    messages = [slack_format.message(Notification("slack", "d", tuple(c))) for c in chunks]

    assert 100 <= len(alerts[0].summary) + len(alerts[0].tenant) + 20
    assert len(chunks) == 3
    assert all(len(m["blocks"]) <= slack_format.MAX_BLOCKS for m in messages)
    assert all(len(m["text"]) <= slack_format.MAX_TEXT_CHARS for m in messages)
    sections = [b["text"]["text"] for m in messages for b in m["blocks"] if b["type"] == "section"]
    assert all(len(text) <= slack_format.MAX_SECTION_CHARS for text in sections)
    seen = Counter(_TENANT.search(text).group(1) for text in sections)  # type: ignore[union-attr]
    assert sorted(seen) == sorted(_tenants(120))
    assert set(seen.values()) == {1}


@run_async
async def test_only_failed_chunk_retried(certificate: Certificate, harness_factory: Any) -> None:
    """When the second of three chunks fails once with a 503, only that chunk is sent again."""
    harness: Harness = harness_factory(None)
    slack = SlackServer(certificate, now=harness.clock.now).start()
    failed: list[str] = []

    def fail_part_two_once(request: Request, body: dict) -> Reply | None:
        title = body["blocks"][0]["text"]["text"]
        if "(part 2 of 3)" in title and not failed:
            failed.append(title)
            return Reply(503, b"service_unavailable", {"Content-Type": "text/plain"})
        return None

    slack.script = fail_part_two_once
    harness.config = config(
        {"receivers": [{"name": "slack", "type": "slack", "webhook_url_env": "URL",
                        "ca_file": str(certificate.cert_path)}],
         "route": {"receiver": "slack", "group_wait": "10s", "group_interval": "1m"}},
        {"URL": slack.webhook_url},
    )
    append(harness.alerts_path, *(record(t) for t in _tenants(120)))

    await harness.start()
    await harness.settle()
    await harness.stop()
    slack.stop()

    titles = [json.loads(r.body)["blocks"][0]["text"]["text"] for r in slack.requests]
    assert failed == ["burnrate: 47 firing (part 2 of 3)"]
    assert Counter(titles) == Counter({
        "burnrate: 47 firing (part 1 of 3)": 1,
        "burnrate: 47 firing (part 2 of 3)": 2,
        "burnrate: 26 firing (part 3 of 3)": 1,
    })
    sections = [b["text"]["text"] for body in slack.accepted for b in body["blocks"] if b["type"] == "section"]
    assert sorted(_TENANT.search(t).group(1) for t in sections) == sorted(_tenants(120))  # type: ignore[union-attr]
