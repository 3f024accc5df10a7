"""Replay a plain metric series (CSV ``timestamp,value``) through the core.

Benchmark data and exported dashboards come as one metric per file, not as
request events. Each row becomes one event of one tenant whose reported cost is
the row's value, parsed from the CSV text as a Decimal, so the rules see the
series as the ``spend`` signal (and ``requests`` counts rows). Every tier runs
unchanged; a rate-of-change rule compares sums over windows of rows.

Timestamps are ISO 8601; one without a zone is taken as UTC. Rows are replayed
in file order. ``step_s`` re-times the rows to ``first timestamp + index *
step_s``: windows and baseline periods then count rows rather than clock time
(a 1h window at a 5 min step is 12 rows), which lets one rule file serve series
sampled every 5 minutes and every hour alike. It also makes repeated or
out-of-order timestamps harmless.

Negative and zero values are kept as they are: the series pricer below uses the
value in every case, where the request pricer would recompute a cost of 0 from
token counts. Benchmark series have negative values too (NAB's
art_daily_flatmiddle.csv). A value more than ``MAX_COST_USD`` either side of 0
is rejected, as an event's cost_usd above it is. Alert messages format amounts
with Decimal's default precision of 28 digits, which fails from 1e26 on.
"""

from __future__ import annotations

import bisect
import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path

from detector.alerts import AlertRecord
from detector.config import RuleSet
from detector.decode import MAX_COST_USD
from detector.engine import Engine, EngineSettings
from detector.events import Event
from detector.pricing import CostSource, Priced, Pricer

SERIES_TENANT = "series"
_UTF8_BOM = b"\xef\xbb\xbf"
_PROVIDER = "series"
_MODEL = "value"


class SeriesFormatError(ValueError):
    """A series file is not ``timestamp,value`` CSV; the message names the row."""


class SeriesPricer(Pricer):
    """Price each row at its value, whatever its sign."""

    def __init__(self) -> None:
        super().__init__((), posted=False)

    def price(self, event: Event) -> Priced:
        return Priced(event.reported_cost_usd, CostSource.REPORTED)


@dataclass(frozen=True, slots=True)
class SeriesRow:
    timestamp: datetime
    value: Decimal


@dataclass(slots=True)
class SeriesReplay:
    """The alerts of one series replay and the row each one fired on."""

    records: list[AlertRecord]
    # The rows as read, with their own timestamps even when re-timed.
    rows: list[SeriesRow]
    # Row index of each firing record (repeats excluded). A record that a row
    # fired (threshold and budget checks) maps to that row, and a record of a
    # tick evaluation to the last row whose (re-timed) timestamp is before it.
    alert_rows: list[int]
    engine: Engine


def read_series(path: Path) -> list[SeriesRow]:
    """Read a ``timestamp,value`` CSV file.

    Raises SeriesFormatError on an invalid header, row or encoding, and OSError
    when the file cannot be read.
    """
    reader = csv.reader(io.StringIO(_decode(path, path.read_bytes()), newline=""))
    try:
        header = next(reader, None)
        if header is None:
            raise SeriesFormatError(f"{path}: file is empty, expected timestamp,value")
        if [name.strip() for name in header[:2]] != ["timestamp", "value"]:
            raise SeriesFormatError(
                f"{path}:1: the header is {header}, expected timestamp,value"
            )
        # Blank lines are skipped, as csv.DictReader skips them.
        return [_row(path, reader.line_num, fields) for fields in reader if fields]
    except csv.Error as error:
        message = f"{path}:{reader.line_num}: invalid CSV: {error}"
        raise SeriesFormatError(message) from None


def _decode(path: Path, raw: bytes) -> str:
    raw = raw.removeprefix(_UTF8_BOM)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise SeriesFormatError(
            f"{path}:{line}: invalid UTF-8 byte 0x{raw[error.start]:02x}: "
            "save the file as UTF-8"
        ) from None


def _row(path: Path, number: int, fields: list[str]) -> SeriesRow:
    if len(fields) < 2:
        raise SeriesFormatError(f"{path}:{number}: expected timestamp,value")
    try:
        timestamp = datetime.fromisoformat(fields[0].strip())
        value = Decimal(fields[1].strip())
    except (ValueError, InvalidOperation):
        raise SeriesFormatError(
            f"{path}:{number}: invalid row {fields[:2]}: use an ISO 8601 "
            "timestamp and a decimal number"
        ) from None
    if not value.is_finite():
        raise SeriesFormatError(f"{path}:{number}: value {value} is not finite")
    if abs(value) > MAX_COST_USD:
        raise SeriesFormatError(
            f"{path}:{number}: value {fields[1].strip()} is out of range, the limit "
            f"is {MAX_COST_USD:,} either side of 0: scale the series down"
        )
    if timestamp.tzinfo is None:
        timestamp = timestamp.replace(tzinfo=UTC)
    return SeriesRow(timestamp, value)


def retime(rows: list[SeriesRow], step_s: int) -> list[SeriesRow]:
    """Place row ``i`` at the first timestamp plus ``i * step_s`` seconds."""
    if not rows:
        return []
    origin = rows[0].timestamp
    return [
        SeriesRow(origin + timedelta(seconds=index * step_s), row.value)
        for index, row in enumerate(rows)
    ]


def series_events(rows: list[SeriesRow], tenant: str = SERIES_TENANT) -> Iterator[Event]:
    for index, row in enumerate(rows):
        yield Event(
            timestamp=row.timestamp,
            request_id=f"row-{index}",
            tenant=tenant,
            provider=_PROVIDER,
            request_model=_MODEL,
            input_tokens=0,
            output_tokens=0,
            reported_cost_usd=row.value,
        )


def replay_series(
    rules: RuleSet,
    rows: list[SeriesRow],
    *,
    step_s: int | None = None,
    settings: EngineSettings | None = None,
) -> SeriesReplay:
    """Replay the rows as one tenant's events and map each alert to its row."""
    timed = retime(rows, step_s) if step_s is not None else rows
    times_s = [row.timestamp.timestamp() for row in timed]
    engine = Engine(rules, SeriesPricer(), settings)
    records: list[AlertRecord] = []
    record_rows: list[int] = []

    def add_ticked(ticked: list[AlertRecord]) -> None:
        records.extend(ticked)
        for record in ticked:
            after = bisect.bisect_left(times_s, record.event_time.timestamp())
            record_rows.append(max(0, after - 1))

    for index, event in enumerate(series_events(timed)):
        # Evaluate the ticks up to the row first, so that every record that
        # process() returns was fired by the row itself.
        add_ticked(engine.advance_to_s(int(event.timestamp.timestamp())))
        fired = engine.process(event)
        records.extend(fired)
        record_rows.extend([index] * len(fired))
    if engine.watermark_s is not None:
        add_ticked(engine.advance_to_s(engine.watermark_s + engine.settings.tick_s))

    alert_rows = [
        row
        for record, row in zip(records, record_rows, strict=True)
        if record.status == "firing" and record.repeat == 0
    ]
    return SeriesReplay(records, rows, alert_rows, engine)


def replay_series_csv(
    rules: RuleSet,
    path: Path,
    *,
    step_s: int | None = None,
    settings: EngineSettings | None = None,
) -> SeriesReplay:
    """Read a series file and replay it; see ``replay_series``."""
    return replay_series(rules, read_series(path), step_s=step_s, settings=settings)


def write_alert_column(replay: SeriesReplay, out: Path) -> None:
    """Write ``timestamp,value,alert`` with alert 1 on the first row of each alert."""
    flagged = set(replay.alert_rows)
    with out.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["timestamp", "value", "alert"])
        for index, row in enumerate(replay.rows):
            writer.writerow([_format_time(row.timestamp), row.value, int(index in flagged)])


def _format_time(timestamp: datetime) -> str:
    return timestamp.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")
