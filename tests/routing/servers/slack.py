"""A loopback Slack: incoming webhooks and ``chat.postMessage``, with rate limits.

Incoming webhook (``POST /services/...``): 200 with body ``ok``; 400 with a
plain-text error such as ``invalid_blocks`` or ``no_text``; 429 with
``Retry-After``. ``chat.postMessage`` (``POST /api/chat.postMessage``): 200
``{"ok": true, "channel", "ts"}``; 200 ``{"ok": false, "error": ...}`` for
``invalid_auth``, ``invalid_blocks`` and ``msg_too_long``; 429
``{"ok": false, "error": "ratelimited"}`` with ``Retry-After``. Messages over 50
blocks, a section over 3000 characters or text over 40,000 characters are
rejected as ``invalid_blocks`` / ``msg_too_long``.

``per_second`` makes the server accept one message per second of its clock
and answer 429 with ``Retry-After: retry_after_s`` to anything sooner; a
request before that time has passed counts as a retry that came too early.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta

from tests.routing.servers.http import LoopbackHTTPServer, Reply, Request

MAX_BLOCKS = 50
MAX_SECTION_CHARS = 3000
MAX_TEXT_CHARS = 40_000


class SlackServer(LoopbackHTTPServer):
    webhook_path = "/services/T0000/B0000/XXXXXXXXXXXXXXXXXXXXXXXX"
    token = "xoxb-loopback-token-0000"
    script: Callable[[Request, dict], Reply | None] | None = None

    def __init__(self, *args, per_second: bool = False, retry_after_s: int = 30, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.per_second = per_second
        self.retry_after_s = retry_after_s
        self.accepted: list[dict] = []
        self.limited: list[Request] = []
        self.early_retries: list[Request] = []
        self._last_accepted: datetime | None = None
        self._blocked_until: datetime | None = None

    @property
    def webhook_url(self) -> str:
        return self.url + self.webhook_path

    @property
    def api_url(self) -> str:
        return self.url + "/api/"

    def handle(self, request: Request) -> Reply:
        webhook = request.path == self.webhook_path
        if not webhook and request.path != "/api/chat.postMessage":
            return Reply(404, b"no_service")
        if not webhook and request.headers.get("Authorization") != f"Bearer {self.token}":
            return Reply.json(200, {"ok": False, "error": "invalid_auth"})
        body = json.loads(request.body)
        limited = self._rate_limit(request)
        if limited is not None:
            return _error(webhook, 429, "ratelimited", {"Retry-After": str(self.retry_after_s)})
        if self.script is not None:
            reply = self.script(request, body)
            if reply is not None:
                return reply
        problem = _problem(body)
        if problem is not None:
            return _error(webhook, 400 if webhook else 200, problem)
        self.accepted.append(body)
        self._last_accepted = request.time
        if webhook:
            return Reply(200, b"ok", {"Content-Type": "text/html"})
        return Reply.json(200, {"ok": True, "channel": body.get("channel"), "ts": f"{len(self.accepted)}.000100"})

    def _rate_limit(self, request: Request) -> Reply | None:
        if not self.per_second:
            return None
        now = request.time
        if self._blocked_until is not None and now < self._blocked_until:
            self.early_retries.append(request)
        elif self._last_accepted is None or now - self._last_accepted >= timedelta(seconds=1):
            self._blocked_until = None
            return None
        self.limited.append(request)
        self._blocked_until = now + timedelta(seconds=self.retry_after_s)
        return Reply(429)


def _problem(body: dict) -> str | None:
    blocks = body.get("blocks") or []
    if not body.get("text") and not blocks:
        return "no_text"
    if len(blocks) > MAX_BLOCKS:
        return "invalid_blocks"
    for block in blocks:
        text = (block.get("text") or {}).get("text", "")
        if block.get("type") == "section" and len(text) > MAX_SECTION_CHARS:
            return "invalid_blocks"
    if len(body.get("text") or "") > MAX_TEXT_CHARS:
        return "msg_too_long"
    return None


def _error(webhook: bool, status: int, error: str, headers: dict[str, str] | None = None) -> Reply:
    if webhook:
        return Reply(status, error.encode(), {"Content-Type": "text/plain", **(headers or {})})
    return Reply.json(status, {"ok": False, "error": error}, headers)
