"""The delivery ledger: what each receiver was sent, kept in SQLite across restarts.

One row per (receiver, alert id, status, repeat) records the outcome:
``delivered``, ``fallback`` (the fallback receiver got it after a permanent
failure) or ``failed`` (the fallback failed too). Delivery consults the ledger
before every send, so a record read again after a restart sends nothing that
was already delivered. The ledger also keeps the alerts that are firing, so
inhibitions and resolves work after a restart although the records that
started those alerts are behind the committed offset.

Writes commit at once with ``synchronous=FULL``: a success recorded here
survives a crash of the process or the machine.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Literal

from detector import alerts
from detector.alerts import AlertRecord

Outcome = Literal["delivered", "fallback", "failed"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    receiver TEXT NOT NULL,
    alert_id TEXT NOT NULL,
    status TEXT NOT NULL,
    repeat INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    event_time TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (receiver, alert_id, status, repeat)
);
CREATE TABLE IF NOT EXISTS firing (
    alert_id TEXT PRIMARY KEY,
    record BLOB NOT NULL
);
"""


class Ledger:
    """A SQLite file of delivery outcomes and firing alerts."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def outcome(self, receiver: str, record: AlertRecord) -> Outcome | None:
        row = self._db.execute(
            "SELECT outcome FROM deliveries WHERE receiver=? AND alert_id=? "
            "AND status=? AND repeat=?",
            (receiver, record.alert_id, record.status, _repeat(record)),
        ).fetchone()
        return None if row is None else row[0]

    def trigger_outcome(self, receiver: str, alert_id: str) -> Outcome | None:
        """Return the outcome of the first firing notification of an alert."""
        row = self._db.execute(
            "SELECT outcome FROM deliveries WHERE receiver=? AND alert_id=? "
            "AND status='firing' AND repeat=0",
            (receiver, alert_id),
        ).fetchone()
        return None if row is None else row[0]

    def last_firing_event_time(self, receiver: str, alert_id: str) -> datetime | None:
        """Return the event time of the latest firing notification that went out."""
        row = self._db.execute(
            "SELECT MAX(event_time) FROM deliveries WHERE receiver=? AND alert_id=? "
            "AND status='firing' AND outcome!='failed'",
            (receiver, alert_id),
        ).fetchone()
        return None if row is None or row[0] is None else datetime.fromisoformat(row[0])

    def record(
        self,
        receiver: str,
        records: list[AlertRecord],
        outcome: Outcome,
        now: datetime,
        detail: str = "",
    ) -> None:
        """Record one outcome for several alert changes in a single transaction."""
        rows = [
            (
                receiver,
                r.alert_id,
                r.status,
                _repeat(r),
                outcome,
                r.event_time.isoformat(),
                now.isoformat(),
                detail,
            )
            for r in records
        ]
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR REPLACE INTO deliveries VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows
            )

    def count(self, receiver: str | None = None, outcome: Outcome | None = None) -> int:
        query = "SELECT COUNT(*) FROM deliveries WHERE 1=1"
        params: list[str] = []
        if receiver is not None:
            query += " AND receiver=?"
            params.append(receiver)
        if outcome is not None:
            query += " AND outcome=?"
            params.append(outcome)
        return int(self._db.execute(query, params).fetchone()[0])

    # -- firing alerts -------------------------------------------------------

    def set_firing(self, record: AlertRecord) -> None:
        if record.status == "firing":
            self._db.execute(
                "INSERT OR REPLACE INTO firing VALUES (?, ?)",
                (record.alert_id, alerts.encoder.encode(record)),
            )
        else:
            self._db.execute("DELETE FROM firing WHERE alert_id=?", (record.alert_id,))

    def firing(self) -> dict[str, AlertRecord]:
        rows = self._db.execute("SELECT alert_id, record FROM firing").fetchall()
        return {alert_id: alerts.decoder.decode(blob) for alert_id, blob in rows}


def _repeat(record: AlertRecord) -> int:
    return record.repeat if record.status == "firing" else 0
