"""Prometheus metrics of ``burnrate routes deliver``: notification attempts by outcome.

``burnrate_notifications_total{receiver, outcome}`` counts every send attempt.
Its name, labels and help text come from ``detector.metrics_catalog``, the
catalogue of the service's metrics. The counter lives here, in a registry of
its own, because delivery always runs as a process of its own, apart from
``burnrate serve``.

Label values are bounded: receivers are the names in the routing file and
outcomes come from ``OUTCOMES``. Every pair is created at zero on start, so a
receiver that never failed still exports ``outcome="failed"`` as 0.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Literal, get_args
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.exposition import start_http_server

from detector import metrics_catalog

AttemptOutcome = Literal["delivered", "retry", "failed"]
# "delivered" means the server accepted the notification. "retry" is a
# retryable failure that is sent again after a back-off. "failed" is a permanent
# failure, or the last retryable failure before retry_for_s ran out.
OUTCOMES: tuple[AttemptOutcome, ...] = get_args(AttemptOutcome)

NOTIFICATIONS = "burnrate_notifications"


class DeliveryMetrics:
    """The registry of one delivery process and its notification counter."""

    def __init__(self, receivers: Iterable[str]) -> None:
        self.receivers = frozenset(receivers)
        self.registry = CollectorRegistry(auto_describe=True)
        spec = metrics_catalog.spec(NOTIFICATIONS)
        self.notifications = Counter(
            spec.name,
            spec.meaning,
            labelnames=spec.labels,
            registry=self.registry,
        )
        for receiver in sorted(self.receivers):
            for outcome in OUTCOMES:
                self.notifications.labels(receiver=receiver, outcome=outcome)

    def count_attempt(self, receiver: str, outcome: AttemptOutcome) -> None:
        """Count one send attempt to ``receiver`` that ended in ``outcome``."""
        if receiver not in self.receivers:
            raise ValueError(f"receiver {receiver!r} is not in the routing file")
        self.notifications.labels(receiver=receiver, outcome=outcome).inc()

    def serve(self, port: int, address: str) -> MetricsServer:
        """Serve the registry at ``http://address:port/metrics`` from a thread."""
        server, thread = start_http_server(port, address, registry=self.registry)
        return MetricsServer(server, thread)


class MetricsServer:
    """A running exposition server and the thread that serves it."""

    def __init__(self, server: WSGIServer, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread

    def close(self) -> None:
        """Stop serving and close the listening socket."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
