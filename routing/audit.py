"""The audit log: one JSON line per delivery attempt and per decision not to send.

Each line has the time, receiver, notification key, alert ids, outcome, status
code, latency and attempt number, plus the error text for failures. Error text
is redacted before it is written. Outcomes: ``delivered``, ``retry`` (a
retryable failure, with ``retry_in_s``), ``failed`` (permanent, or retries ran
out), ``fallback`` (handed to the fallback receiver), ``skipped`` (already
delivered before a restart), ``suppressed`` (repeat interval, no trigger sent)
and ``invalid_record``.
"""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec

from routing.redact import Redactor

_encoder = msgspec.json.Encoder()


class AuditLog:
    """Appends audit lines to a file; every line is flushed when written."""

    def __init__(self, path: Path, redactor: Redactor) -> None:
        self.path = path
        self.redactor = redactor
        self._lock = threading.Lock()
        self._stream = path.open("ab")

    def write(
        self,
        time: datetime,
        receiver: str,
        key: str,
        alert_ids: list[str],
        outcome: str,
        *,
        attempt: int = 0,
        status_code: int | None = None,
        latency_ms: float | None = None,
        error: str | None = None,
        **extra: Any,
    ) -> None:
        entry: dict[str, Any] = {
            "time": time.isoformat(),
            "receiver": receiver,
            "key": key,
            "alert_ids": alert_ids,
            "outcome": outcome,
            "attempt": attempt,
            "status_code": status_code,
            "latency_ms": None if latency_ms is None else round(latency_ms, 3),
        }
        if error is not None:
            entry["error"] = self.redactor(error)
        entry.update(extra)
        line = _encoder.encode(entry) + b"\n"
        with self._lock:
            self._stream.write(line)
            self._stream.flush()

    def close(self) -> None:
        with self._lock:
            self._stream.close()
