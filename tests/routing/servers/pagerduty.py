"""A loopback PagerDuty Events API v2: ``POST /v2/enqueue``.

Follows the documented contract: 202 ``{"status": "success", "message": "Event
processed", "dedup_key": ...}`` for a valid event; 400 ``{"status": "invalid
event", "message": "Event object is invalid", "errors": [...]}`` for an
invalid one (unknown action, missing routing key, summary, source or
severity, a summary over 1024 characters, a body over 512 KB); 429 when rate
limited. ``script`` lets a test choose the reply to a request first.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable

from tests.routing.servers.http import LoopbackHTTPServer, Reply, Request

MAX_EVENT_BYTES = 512 * 1024
SEVERITIES = ("critical", "error", "warning", "info")


class PagerDutyServer(LoopbackHTTPServer):
    script: Callable[[Request, dict], Reply | None] | None = None

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        # Accepted events per dedup key, in order: (action, event).
        self.accepted: dict[str, list[tuple[str, dict]]] = defaultdict(list)

    def handle(self, request: Request) -> Reply:
        if request.path != "/v2/enqueue":
            return Reply.json(404, {"status": "not found"})
        if len(request.body) > MAX_EVENT_BYTES:
            return _invalid(["Event size exceeds 512 KB"])
        try:
            event = json.loads(request.body)
        except ValueError:
            return _invalid(["Invalid JSON"])
        errors = _errors(event)
        if errors:
            return _invalid(errors)
        if self.script is not None:
            reply = self.script(request, event)
            if reply is not None:
                return reply
        dedup_key = event.get("dedup_key") or f"generated-{len(self.requests)}"
        self.accepted[dedup_key].append((event["event_action"], event))
        return Reply.json(
            202, {"status": "success", "message": "Event processed", "dedup_key": dedup_key}
        )


def _invalid(errors: list[str]) -> Reply:
    return Reply.json(
        400, {"status": "invalid event", "message": "Event object is invalid", "errors": errors}
    )


def _errors(event: dict) -> list[str]:
    errors = []
    if not event.get("routing_key"):
        errors.append("'routing_key' is missing or blank")
    action = event.get("event_action")
    if action not in ("trigger", "acknowledge", "resolve"):
        errors.append("'event_action' is invalid")
    if action in ("acknowledge", "resolve") and not event.get("dedup_key"):
        errors.append("'dedup_key' is missing or blank")
    if len(str(event.get("dedup_key", ""))) > 255:
        errors.append("'dedup_key' is longer than 255 characters")
    if action == "trigger":
        payload = event.get("payload") or {}
        for name in ("summary", "source", "severity"):
            if not payload.get(name):
                errors.append(f"'payload.{name}' is missing or blank")
        if len(str(payload.get("summary", ""))) > 1024:
            errors.append("'payload.summary' is longer than 1024 characters")
        if payload.get("severity") not in SEVERITIES:
            errors.append("'payload.severity' is invalid")
    return errors
