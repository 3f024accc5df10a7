"""Replay event files through the core with a simulated clock.

The replay reads JSON Lines (plain or gzip), decodes each line, and feeds the
events in file order to the same ``Engine`` the service runs; the clock is the
events' own time. Alerts go to a JSON Lines file and, one readable line each, to
the console. Rejected lines go to a rejects file with their reason, the way the
service sends them to its dead-letter topic, so nothing is dropped silently.
``StagedOutputs`` writes those files under temporary names and renames them
only when the run succeeds, so a failed run leaves the output folder as it was.

The replay also notes the event that moved event time furthest ahead in one
step. One event dated months ahead of its neighbours turns every later event
into a late one, so the late-events warning names that event's line.
"""

from __future__ import annotations

import base64
import gzip
import os
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Self, TextIO

import msgspec

from detector import alerts
from detector.alerts import AlertRecord
from detector.config import RuleSet
from detector.decode import Rejection, decode_record, too_far_ahead
from detector.engine import Engine, EngineSettings
from detector.errors import BurnrateError
from detector.events import Event
from detector.pricing import Pricer


class EventsFileError(BurnrateError):
    """An events file that could not be opened or decompressed, named in the message."""


@dataclass(frozen=True, slots=True)
class WatermarkJump:
    """An event that moved the watermark (the newest event time seen) ahead."""

    source: Path
    line: int
    timestamp: datetime
    # Seconds between the watermark before the event and the event's time.
    ahead_s: int


@dataclass(slots=True)
class BacktestResult:
    """The alert records and counters of one replay."""

    records: list[AlertRecord]
    engine: Engine
    lines: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    elapsed_s: float = 0.0
    # The event that moved the watermark furthest ahead in one step, not
    # counting the first event, which has no watermark before it.
    largest_jump: WatermarkJump | None = None


AlertSink = Callable[[AlertRecord], None]

# Events may be dated this far after the wall clock (clock skew between hosts),
# the same default as the service's ``max_future_s`` setting.
MAX_FUTURE_S = 3600


class _RejectWriter:
    def __init__(self, out: BinaryIO | None) -> None:
        self.out = out
        self.encoder = msgspec.json.Encoder()

    def write(self, source: str, line_number: int, rejection: Rejection) -> None:
        if self.out is None:
            return
        entry = {
            "source": source,
            "line": line_number,
            "reason": rejection.reason,
            "field": rejection.field,
            "detail": rejection.detail,
        }
        try:
            entry["raw"] = rejection.raw.decode().rstrip("\n")
        except UnicodeDecodeError:
            entry["raw_base64"] = base64.b64encode(rejection.raw).decode()
        self.out.write(self.encoder.encode(entry) + b"\n")


def open_events(path: Path) -> BinaryIO:
    if path.suffix == ".gz":
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return path.open("rb")


def replay(
    rules: RuleSet,
    sources: list[Path],
    *,
    settings: EngineSettings | None = None,
    on_alert: AlertSink | None = None,
    rejects_out: BinaryIO | None = None,
    on_progress: Callable[[int], None] | None = None,
    observer: Callable[[Engine, Event], None] | None = None,
    max_future_s: int = MAX_FUTURE_S,
) -> BacktestResult:
    """Replay event files in order through a fresh engine and collect the alerts.

    ``observer``, when given, is called with the engine after each event is
    applied, so a report can sample the engine's state as the replay goes.
    ``BacktestResult.largest_jump`` names the event that moved the watermark
    furthest ahead in one step. An event dated more than ``max_future_s`` after
    the wall clock is rejected as ``timestamp_in_future``, as the service
    rejects it: accepted, it would move event time years ahead and turn every
    later event into a late one.
    """
    engine = Engine(rules, Pricer(rules.prices), settings)
    result = BacktestResult(records=[], engine=engine)
    rejects = _RejectWriter(rejects_out)
    started = time.perf_counter()
    wall_s = time.time()
    latest_s = wall_s + max_future_s
    largest_jump_s = 0

    def emit(records: list[AlertRecord]) -> None:
        for record in records:
            result.records.append(record)
            if on_alert is not None:
                on_alert(record)

    for source in sources:
        for line_number, line in _lines(source, on_progress):
            result.lines += 1
            events, rejected = decode_record(line)
            for rejection in rejected:
                result.rejected[rejection.reason] += 1
                rejects.write(str(source), line_number, rejection)
            for event in events:
                if event.timestamp_s > latest_s:
                    future = too_far_ahead(event.timestamp, wall_s, line)
                    result.rejected[future.reason] += 1
                    rejects.write(str(source), line_number, future)
                    continue
                before_s = engine.watermark_s
                emit(engine.process(event))
                after_s = engine.watermark_s
                if (
                    before_s is not None
                    and after_s is not None
                    and after_s - before_s > largest_jump_s
                ):
                    largest_jump_s = after_s - before_s
                    result.largest_jump = WatermarkJump(
                        source, line_number, event.timestamp, largest_jump_s
                    )
                if observer is not None:
                    observer(engine, event)

    if engine.watermark_s is not None:
        emit(engine.advance_to_s(engine.watermark_s + engine.settings.tick_s))
    result.elapsed_s = time.perf_counter() - started
    return result


def _lines(
    source: Path, on_progress: Callable[[int], None] | None
) -> Iterator[tuple[int, bytes]]:
    try:
        with open_events(source) as stream:
            for line_number, line in enumerate(stream, start=1):
                if on_progress is not None:
                    on_progress(len(line))
                if line.strip():
                    yield line_number, line
    # gzip raises EOFError for a truncated file and zlib.error for corrupt data.
    except (OSError, EOFError, zlib.error) as error:
        raise EventsFileError(f"cannot read events file {source}: {error}") from error


def write_alert_line(out: BinaryIO) -> AlertSink:
    """Return a sink that appends each record to a JSON Lines stream."""

    def sink(record: AlertRecord) -> None:
        out.write(alerts.encoder.encode(record) + b"\n")

    return sink


def print_alert_line(out: TextIO) -> AlertSink:
    def sink(record: AlertRecord) -> None:
        print(alerts.format_console(record), file=out)

    return sink


class StagedOutputs:
    """Output files that replace their targets only when the whole run succeeds.

    ``stage`` returns a temporary path, ``.NAME.partial-PID`` in the target's
    folder, for the caller to write and close inside the ``with`` block. When
    the block exits normally each temporary file is renamed over its target, so
    readers never see a half-written file, except a file passed to ``discard``,
    which is removed instead. When the block raises, every temporary file
    is removed and the targets keep their previous content. A process killed
    with SIGKILL leaves its temporary files behind.
    """

    def __init__(self) -> None:
        self._pending: list[tuple[Path, Path]] = []
        self._discarded: set[Path] = set()

    def stage(self, target: Path) -> Path:
        temporary = target.with_name(f".{target.name}.partial-{os.getpid()}")
        self._pending.append((temporary, target))
        return temporary

    def discard(self, temporary: Path) -> None:
        """Remove a staged file on exit instead of renaming it, keeping its target."""
        self._discarded.add(temporary)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            # NOTE: a rename that fails part way leaves the earlier targets
            # replaced and the later ones as they were.
            if kind is None:
                for temporary, target in self._pending:
                    if temporary not in self._discarded:
                        os.replace(temporary, target)
        finally:
            for temporary, _ in self._pending:
                temporary.unlink(missing_ok=True)
