"""Structured logs for ``burnrate serve``: text or JSON lines, repeats limited, secrets masked.

``configure_logging`` installs one handler on the root logger. With
``BURNRATE_LOG_FORMAT=json`` every record becomes one JSON object with the
time, level, logger, message and the ids passed in ``extra`` (tenant, alert_id,
partition, offset, rule_id and so on), so a log pipeline can filter on them.

Levels follow the consequence for the operator: DEBUG for routine detail,
INFO for starts, stops and alert state changes, WARNING for input the service
dropped or a retry it will make, ERROR for work that failed and will not be
retried.

Two filters run before any output. ``RepeatLimiter`` passes the first
``per_min`` records of each (logger, level, message template) per minute and
counts the rest, reporting the count when the minute ends, because one bad
producer can otherwise fill a disk with the same warning. ``SecretMasker``
replaces every configured secret value, and anything after ``Bearer``, with
``***`` in the message and in the extra fields. The standard ``logging``
module has neither filter, which is why they are written here.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

MASK = "***"
_BEARER = re.compile(r"(?i)(bearer\s+)[^\s\"',;]+")

# Attributes every LogRecord has; anything else came from ``extra``.
_STANDARD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
) | {"message", "asctime", "taskName"}


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """Return the fields a caller passed in ``extra``."""
    return {
        key: value
        for key, value in vars(record).items()
        if key not in _STANDARD_ATTRIBUTES and not key.startswith("_")
    }


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object on one line."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        document.update(extra_fields(record))
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, default=str)


class TextFormatter(logging.Formatter):
    """Format a record as one readable line, with its extra fields as key=value."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = extra_fields(record)
        if fields:
            line += " " + " ".join(f"{key}={value}" for key, value in fields.items())
        return line


class SecretMasker(logging.Filter):
    """Replace secret values and bearer tokens with ``***`` before output."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = [secret for secret in secrets if secret]

    def filter(self, record: logging.LogRecord) -> bool:
        message = self.mask(record.getMessage())
        record.msg, record.args = message, None
        for key, value in extra_fields(record).items():
            if isinstance(value, str):
                setattr(record, key, self.mask(value))
        return True

    def mask(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return _BEARER.sub(lambda match: match.group(1) + MASK, text)


class RepeatLimiter(logging.Filter):
    """Pass at most ``per_min`` records per message template and minute.

    The first record of a key after a minute with drops reports how many were
    dropped in ``repeats_dropped``.
    """

    def __init__(self, per_min: int, clock: Any = time.monotonic) -> None:
        super().__init__()
        self.per_min = per_min
        self._clock = clock
        self._windows: dict[tuple[str, int, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.levelno, str(record.msg))
        now = self._clock()
        started, count = self._windows.get(key, (now, 0))
        if now - started >= 60.0:
            dropped = count - self.per_min
            started, count = now, 0
            if dropped > 0:
                record.repeats_dropped = dropped
        count += 1
        self._windows[key] = (started, count)
        if len(self._windows) > 10_000:
            self._windows.clear()  # bounded memory under many distinct templates
        passed: bool = count <= self.per_min
        return passed


def configure_logging(
    log_format: str = "text",
    level: str = "INFO",
    secrets: Iterable[str] = (),
    repeats_per_min: int = 10,
) -> logging.Handler:
    """Replace the root logger's handlers with one structured stderr handler."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    # The limiter keys on the message template, so it runs before the masker
    # replaces the template with the formatted message.
    handler.addFilter(RepeatLimiter(repeats_per_min))
    handler.addFilter(SecretMasker(secrets))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    return handler
