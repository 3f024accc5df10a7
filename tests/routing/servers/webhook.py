"""A loopback webhook endpoint that records JSON POSTs and answers 200 unless scripted."""

from __future__ import annotations

from collections.abc import Callable

from tests.routing.servers.http import LoopbackHTTPServer, Reply, Request


class WebhookServer(LoopbackHTTPServer):
    script: Callable[[Request], Reply | None] | None = None

    def handle(self, request: Request) -> Reply:
        if self.script is not None:
            reply = self.script(request)
            if reply is not None:
                return reply
        return Reply.json(200, {"received": True})

    @property
    def hook_url(self) -> str:
        return self.url + "/hooks/burnrate-fallback-token-123456"
