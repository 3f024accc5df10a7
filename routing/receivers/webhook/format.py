"""The JSON body a webhook receives: version, group, failure and the alert records.

Each alert is the record exactly as the core writes it to ``alerts.jsonl``
(amounts as decimal strings), so a consumer can decode it with the same schema.
"""

from __future__ import annotations

from typing import Any

import msgspec

from routing import content
from routing.receivers.base import Notification

PAYLOAD_VERSION = "1"


def payload(notification: Notification) -> dict[str, Any]:
    alerts = []
    for record in notification.alerts:
        item = msgspec.to_builtins(record, builtin_types=None)
        item["headline"] = content.headline(record)
        dashboard = content.dashboard_url(record, notification.dashboard_template)
        if dashboard:
            item["dashboard_url"] = dashboard
        alerts.append(item)
    body: dict[str, Any] = {
        "version": PAYLOAD_VERSION,
        "key": notification.key,
        "receiver": notification.receiver,
        "group": dict(notification.group_labels),
        "firing": len(notification.firing),
        "resolved": len(notification.resolved),
        "alerts": alerts,
    }
    if notification.failure:
        body["failed_receiver"] = notification.failed_receiver
        body["failure"] = notification.failure
    if notification.test:
        body["test"] = True
    return body
