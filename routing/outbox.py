"""Where delivery reads alert records from: the ``Outbox`` protocol and a file outbox.

An outbox hands out records with an offset and remembers the offset that
delivery commits. Delivery commits an offset only when every notification for
the records before it is delivered or handed to the fallback receiver, so after
a restart reading resumes at the first record that may still owe a
notification. ``FileOutbox`` reads the ``alerts.jsonl`` that ``burnrate
backtest`` writes (one ``AlertRecord`` JSON per line) and keeps the committed
byte offset in a small file next to it. ``routing.kafka_outbox.KafkaOutbox``
implements the same protocol over the alerts topic, with the consumer group's
committed offsets.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import msgspec

from detector import alerts
from detector.alerts import AlertRecord

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutboxEntry:
    """One record and the offset just past it (the offset to commit once it is done).

    Offsets are ordered within a ``lane``, such as one partition of a topic.
    """

    offset: int
    record: AlertRecord | None
    error: str | None = None
    lane: int = 0


class Outbox(Protocol):
    """A source of alert records with a durable committed offset.

    ``read_waits`` is true when ``read`` itself waits a while for new records,
    so delivery reads again at once after an empty read instead of sleeping
    ``poll_interval_s``.
    """

    read_waits: bool

    def committed(self) -> int:
        """Return the committed offset, where reading starts after a restart."""
        ...

    async def read(self, max_records: int) -> list[OutboxEntry]:
        """Return up to ``max_records`` entries after the last one read; may be empty."""
        ...

    async def commit(self, offset: int, lane: int = 0) -> None:
        """Durably record that every record of ``lane`` before ``offset`` is done."""
        ...


class FileOutbox:
    """Records from a JSON Lines file, with the committed offset in ``offset_path``.

    Only complete lines are read: a line still being written (no newline yet) is
    read once it is complete. A line that does not decode is returned as an entry
    with ``error`` set, so delivery can log and skip it without stopping. When the
    file is shorter than the committed offset (it was rewritten, as a new
    backtest does), reading starts again at the beginning; the delivery ledger
    keeps already delivered alerts from being sent again.
    """

    read_waits = False

    def __init__(self, path: Path, offset_path: Path | None = None) -> None:
        self.path = path
        self.offset_path = offset_path or path.with_name(path.name + ".offset")
        self._committed = self._load_offset()
        self._position = self._committed

    def _load_offset(self) -> int:
        try:
            text = self.offset_path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return 0
        return int(text) if text.isdigit() else 0

    def committed(self) -> int:
        return self._committed

    async def read(self, max_records: int) -> list[OutboxEntry]:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return []
        if size < self._position:
            logger.warning(
                "%s is shorter (%d bytes) than the read offset %d: reading it again "
                "from the start", self.path, size, self._position,
            )
            self._position = 0
        if size == self._position:
            return []
        return self._read_lines(max_records)

    def _read_lines(self, max_records: int) -> list[OutboxEntry]:
        entries: list[OutboxEntry] = []
        with self.path.open("rb") as stream:
            stream.seek(self._position)
            while len(entries) < max_records:
                line = stream.readline()
                if not line.endswith(b"\n"):
                    break
                self._position += len(line)
                if line.strip():
                    entries.append(self._decode(line))
        return entries

    def _decode(self, line: bytes) -> OutboxEntry:
        try:
            return OutboxEntry(self._position, alerts.decoder.decode(line))
        except msgspec.DecodeError as error:
            return OutboxEntry(self._position, None, f"invalid alert record: {error}")

    async def commit(self, offset: int, lane: int = 0) -> None:
        if offset <= self._committed:
            return
        temporary = self.offset_path.with_name(self.offset_path.name + ".tmp")
        with temporary.open("w", encoding="ascii") as stream:
            stream.write(f"{offset}\n")
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, self.offset_path)
        self._committed = offset
