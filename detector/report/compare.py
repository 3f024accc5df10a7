"""Compare the alerts of two replays of the same history: gained, lost or moved.

Two firing records are the same alert when tier, rule, tenant, series and, for a
budget, the threshold agree and they started within ``MATCH_WINDOW_S`` of each
other: a changed threshold often moves an alert by a few minutes without making
it a different alert. Such
an alert counts as kept, and when it fires at another time it is also listed as
moved, since firing earlier or later is often the point of a rule change.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from detector.alerts import AlertRecord

MATCH_WINDOW_S = 3600


@dataclass(frozen=True, slots=True)
class AlertDiff:
    """Firing records only the other rules raised (gained) or only the base raised (lost).

    ``moved`` pairs the base record with the other rules' record of each kept
    alert that fired at another time.
    """

    gained: list[AlertRecord]
    lost: list[AlertRecord]
    kept: int
    moved: list[tuple[AlertRecord, AlertRecord]] = field(default_factory=list)


def _identity(
    record: AlertRecord,
) -> tuple[str, str, str, tuple[tuple[str, str], ...], str | None]:
    # A budget alert per threshold shares rule and series with the others, so
    # its threshold is part of what makes it the same alert.
    return (
        record.tier,
        record.rule_id,
        record.tenant,
        tuple(sorted(record.series.items())),
        record.details.get("threshold_pct"),
    )


def _first_firing(records: list[AlertRecord]) -> list[AlertRecord]:
    """Return the first firing record of each alert id, repeats left out."""
    seen: set[str] = set()
    firing = []
    for record in records:
        if record.status == "firing" and record.alert_id not in seen:
            seen.add(record.alert_id)
            firing.append(record)
    return firing


def compare_alerts(base: list[AlertRecord], other: list[AlertRecord]) -> AlertDiff:
    """Return the alerts ``other`` gained and lost relative to ``base``."""
    remaining = _first_firing(other)
    lost = []
    moved = []
    kept = 0
    for record in _first_firing(base):
        match = next(
            (
                candidate
                for candidate in remaining
                if _identity(candidate) == _identity(record)
                and abs((candidate.started_at - record.started_at).total_seconds())
                <= MATCH_WINDOW_S
            ),
            None,
        )
        if match is None:
            lost.append(record)
        else:
            remaining.remove(match)
            kept += 1
            if match.event_time != record.event_time:
                moved.append((record, match))
    return AlertDiff(gained=remaining, lost=lost, kept=kept, moved=moved)


def shift_text(base: AlertRecord, other: AlertRecord) -> str:
    """Describe how much earlier or later ``other`` fired than ``base``."""
    seconds = int((other.event_time - base.event_time).total_seconds())
    minutes, rest = divmod(abs(seconds), 60)
    amount = f"{minutes} min" if rest == 0 else f"{minutes} min {rest} s"
    return f"{amount} {'earlier' if seconds < 0 else 'later'}"
