"""Tenant snapshots: a restore continues exactly where the original left off."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from detector.snapshot import SnapshotError, load_tenant
from tests.support import at, engine_for, run, spend

RULES = {
    "tenants": [{"id": "acme", "timezone": "America/New_York"}],
    "budgets": [{"id": "monthly", "limit_usd": "100", "thresholds_pct": [50, 100]}],
    "rules": [
        {"id": "hourly", "tier": "absolute", "window": "1h", "threshold": 30},
        {
            "id": "spike",
            "tier": "rate_of_change",
            "window": "1h",
            "min_ratio": 2,
            "min_increase": 5,
        },
    ],
}


def traffic() -> list:
    """Two weeks of $1 per hour, then a day of $4 per 15 minutes for acme."""
    start = at("2026-05-01T00:00:00Z")
    events = [
        spend("acme", (start + timedelta(hours=h)).isoformat(), "1", f"base-{h}")
        for h in range(14 * 24)
    ]
    burst_start = start + timedelta(days=14)
    events += [
        spend("acme", (burst_start + timedelta(minutes=15 * n)).isoformat(), "4", f"b-{n}")
        for n in range(96)
    ]
    return events


@pytest.mark.parametrize("cut", [100, 340, 380])
def test_restore_gives_same_alerts(cut: int) -> None:
    """Snapshotting after ``cut`` events and restoring loses and repeats nothing."""
    events = traffic()
    whole = engine_for(RULES)
    expected = run(whole, events)
    first = engine_for(RULES)
    before = run(first, events[:cut])
    snapshot = first.dump_tenant("acme")

    second = engine_for(RULES)
    second.load_tenant(snapshot)
    after = run(second, events[cut - 5 :])  # five redelivered events overlap

    assert [r.alert_id for r in before + after] == [r.alert_id for r in expected]
    assert second.stats.duplicates == 5
    total = second.tenants["acme"].period_total("monthly", "monthly", at("2026-05-20T00:00:00Z"))
    whole_total = whole.tenants["acme"].period_total("monthly", "monthly", at("2026-05-20T00:00:00Z"))
    assert total.spend_usd == whole_total.spend_usd


def test_damaged_snapshot_is_rejected() -> None:
    """Bytes that are not a snapshot raise SnapshotError, not a crash later."""
    engine = engine_for(RULES)

    with pytest.raises(SnapshotError):
        load_tenant(b"\x00not a snapshot", engine._retention)
