"""Tests of the service logs: JSON lines with ids, repeats limited, secrets masked."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from detector.service.logs import (
    JsonFormatter,
    RepeatLimiter,
    SecretMasker,
    configure_logging,
)

SECRET = "tok-9f8e7d6c5b4a"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Configure JSON logging into a buffer; restore the root handlers afterwards."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    handler = configure_logging("json", "INFO", [SECRET], repeats_per_min=3)
    buffer = io.StringIO()
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(buffer)
    yield buffer
    for existing in list(root.handlers):
        root.removeHandler(existing)
    for existing in saved_handlers:
        root.addHandler(existing)
    root.setLevel(saved_level)


def lines(buffer: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_json_line_carries_ids(captured: io.StringIO) -> None:
    """A JSON log line has level, logger, message and the ids passed in extra."""
    logger = logging.getLogger("burnrate.service")

    logger.info("alert %s", "firing", extra={"tenant": "acme", "alert_id": "a1b2"})
    (line,) = lines(captured)

    assert line["level"] == "INFO"
    assert line["logger"] == "burnrate.service"
    assert line["message"] == "alert firing"
    assert line["tenant"] == "acme"
    assert line["alert_id"] == "a1b2"


def test_secret_never_logged(captured: io.StringIO) -> None:
    """The token is masked in the message, in extra fields and after Bearer."""
    logger = logging.getLogger("burnrate.budget_api")

    logger.warning("token %s rejected", SECRET, extra={"header": f"Bearer {SECRET}"})
    logger.warning("header was Bearer other-token-123")
    text = captured.getvalue()

    assert SECRET not in text
    assert "other-token-123" not in text
    assert text.count("***") == 3


def test_repeats_limited_per_minute(captured: io.StringIO) -> None:
    """Ten identical warnings in a minute pass three times."""
    logger = logging.getLogger("burnrate.service")

    for offset in range(10):
        logger.warning("invalid event at offset %d", offset)

    assert len(lines(captured)) == 3


def test_repeat_count_reported_next_minute() -> None:
    """The first record after a minute of drops reports how many were dropped."""
    now = [0.0]
    limiter = RepeatLimiter(per_min=2, clock=lambda: now[0])
    records = [
        logging.LogRecord("x", logging.WARNING, "f", 1, "same %d", (i,), None)
        for i in range(6)
    ]

    passed = [limiter.filter(record) for record in records[:5]]
    now[0] = 61.0
    later = limiter.filter(records[5])

    assert passed == [True, True, False, False, False]
    assert later
    assert records[5].repeats_dropped == 3  # type: ignore[attr-defined]


def test_masker_then_formatter() -> None:
    """The JSON formatter outputs what the masker left."""
    record = logging.LogRecord("x", logging.ERROR, "f", 1, "key=%s", (SECRET,), None)

    SecretMasker([SECRET]).filter(record)
    document = json.loads(JsonFormatter().format(record))

    assert document["message"] == "key=***"
