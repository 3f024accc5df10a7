"""Comparison of two replays: alerts gained, lost, kept and moved."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import msgspec

from detector.alerts import AlertRecord
from detector.report import _print_diff
from detector.report.compare import compare_alerts, shift_text

START = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)


def _firing(alert_id: str, rule: str, minutes: float) -> AlertRecord:
    started = START + timedelta(minutes=minutes)
    return AlertRecord(
        alert_id=alert_id,
        status="firing",
        tier="rate_of_change",
        severity="warning",
        rule_id=rule,
        tenant="acme",
        signal="spend",
        unit="usd",
        observed=Decimal(30),
        event_time=started,
        started_at=started,
        summary=f"{rule} fired",
        series={"tenant": "acme"},
    )


def test_moved_alert_is_kept_and_listed() -> None:
    """Firing 12 minutes earlier is kept and moved, 2 hours later gained and lost."""
    base = [_firing("b1", "spike", 0), _firing("b2", "surge", 0)]
    other = [_firing("o1", "spike", -12), _firing("o2", "surge", 120)]

    diff = compare_alerts(base, other)

    assert diff.kept == 1
    assert [(b.alert_id, o.alert_id) for b, o in diff.moved] == [("b1", "o1")]
    assert [r.alert_id for r in diff.gained] == ["o2"]
    assert [r.alert_id for r in diff.lost] == ["b2"]


def test_same_firing_time_is_not_moved() -> None:
    """An alert that fires at the same time in both replays is kept, not moved."""
    diff = compare_alerts([_firing("b1", "spike", 5)], [_firing("o1", "spike", 5)])

    assert diff.kept == 1
    assert diff.moved == []


def test_shift_text_minutes_and_seconds() -> None:
    """Shifts between firing times read in minutes, with seconds when there are any."""
    base = _firing("b1", "spike", 0)

    assert shift_text(base, _firing("o1", "spike", -12)) == "12 min earlier"
    assert shift_text(base, _firing("o1", "spike", 1.5)) == "1 min 30 s later"


def test_printed_diff_lists_moved() -> None:
    """The console summary counts moved alerts and prints each with its shift."""
    diff = compare_alerts([_firing("b1", "spike", 0)], [_firing("o1", "spike", 30)])
    out = io.StringIO()

    _print_diff(Path("rules-next"), diff, out)

    lines = out.getvalue().splitlines()
    assert (
        lines[0]
        == "Compared with rules-next: 0 alerts gained, 0 lost, 1 in both (1 moved)"
    )
    assert lines[1].startswith("~ ")
    assert lines[1].endswith("(30 min later)")
    assert len(lines) == 2


def test_moved_by_firing_time_not_pending_start() -> None:
    """Only the firing time moves an alert, not the start of its pending spell."""
    base = _firing("b1", "spike", 10)
    longer_pending = msgspec.structs.replace(
        _firing("o1", "spike", 10), started_at=START
    )
    later = msgspec.structs.replace(
        _firing("o2", "spike", 25), started_at=base.started_at
    )

    assert compare_alerts([base], [longer_pending]).moved == []
    assert shift_text(base, later) == "15 min later"
    assert len(compare_alerts([base], [later]).moved) == 1


def test_budget_thresholds_not_paired() -> None:
    """A removed 80 % alert is lost, not paired with the 100 % alert of the same rule."""
    base = [
        _budget("b80", "80", minutes=0),
        _budget("b100", "100", minutes=36),
    ]
    other = [_budget("o100", "100", minutes=36)]

    diff = compare_alerts(base, other)

    assert [record.alert_id for record in diff.lost] == ["b80"]
    assert diff.moved == []
    assert diff.gained == []
    assert diff.kept == 1


def _budget(alert_id: str, pct: str, minutes: float) -> AlertRecord:
    return msgspec.structs.replace(
        _firing(alert_id, "daily-cap", minutes),
        tier="absolute",
        details={"threshold_pct": pct, "period": "daily"},
    )
