"""A loopback Opsgenie Alert API v2: create (``POST /v2/alerts``) and close by alias.

Replies follow the documented contract: 202 ``{"result": "Request will be
processed", "took": ..., "requestId": ...}``; 422 with ``message`` for an
invalid request (missing or too long ``message``, unknown alias to close); 401
without a ``GenieKey`` authorization; 429 when rate limited (via ``script``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

from tests.routing.servers.http import LoopbackHTTPServer, Reply, Request


class OpsgenieServer(LoopbackHTTPServer):
    script: Callable[[Request], Reply | None] | None = None

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.created: dict[str, dict] = {}
        self.closed: list[str] = []

    def handle(self, request: Request) -> Reply:
        if not request.headers.get("Authorization", "").startswith("GenieKey "):
            return _reply(401, message="Could not authenticate")
        if self.script is not None:
            reply = self.script(request)
            if reply is not None:
                return reply
        parts = urlsplit(request.path)
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            return _reply(400, message="Invalid JSON body")
        if parts.path == "/v2/alerts":
            return self._create(body)
        segments = parts.path.strip("/").split("/")
        if len(segments) == 4 and segments[:2] == ["v2", "alerts"] and segments[3] == "close":
            return self._close(segments[2], parse_qs(parts.query))
        return _reply(404, message="Resource not found")

    def _create(self, body: dict) -> Reply:
        message = body.get("message")
        if not message:
            return _reply(422, message="Message can not be empty.")
        if len(message) > 130:
            return _reply(422, message="Message can not be longer than 130 characters.")
        if len(body.get("description") or "") > 15000:
            return _reply(422, message="Description can not be longer than 15000 characters.")
        self.created[body.get("alias") or str(uuid.uuid4())] = body
        return _reply(202, result="Request will be processed")

    def _close(self, identifier: str, query: dict[str, list[str]]) -> Reply:
        if query.get("identifierType") != ["alias"]:
            return _reply(422, message="identifierType must be alias in this server")
        self.closed.append(identifier)
        return _reply(202, result="Request will be processed")


def _reply(status: int, **fields: str) -> Reply:
    return Reply.json(status, {**fields, "took": 0.001, "requestId": str(uuid.uuid4())})
