"""Tests for rules hot reload: the decision, the diff, and the engine keeping its state."""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal
from pathlib import Path

import pytest

from detector.alerts import AlertRecord
from detector.engine import Engine
from detector.reload import decide, diff_rules
from detector.ruleload import load_rules
from detector.service.reload import RulesReloader
from tests.support import at, engine_for, firing, run, spend

RULES = """\
tenants:
  - {id: acme, timezone: UTC}
budgets:
  - {id: monthly-spend, tenant: "*", limit_usd: 100, thresholds_pct: [50, 100]}
rules:
  - {id: hourly-high, tier: absolute, window: 1h, threshold: 20}
"""


def _write(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "rules.yaml").write_text(text, encoding="utf-8")
    return folder


def _engine(folder: Path) -> Engine:
    rules = load_rules(folder)
    return engine_for(rules.model_dump(by_alias=True, exclude_none=True))


def _spend_120(engine: Engine) -> list[AlertRecord]:
    """Send $120 in one hour: the hourly $20 threshold and both budget thresholds fire."""
    return run(
        engine,
        [
            spend("acme", f"2026-05-04T10:{minute:02d}:00Z", "10")
            for minute in range(12)
        ],
    )


def test_diff_lists_added_changed_removed(tmp_path: Path) -> None:
    """The diff names each entry by section and id."""
    old = load_rules(_write(tmp_path / "old", RULES))
    new_text = RULES.replace("threshold: 20", "threshold: 30").replace(
        "tenants:\n  - {id: acme, timezone: UTC}\n", "tenants:\n  - {id: globex}\n"
    )
    new = load_rules(_write(tmp_path / "new", new_text))

    diff = diff_rules(old, new)

    assert diff.added == ["tenant:globex"]
    assert diff.changed == ["rule:hourly-high"]
    assert diff.removed == ["tenant:acme"]
    assert str(diff) == (
        "added tenant:globex; changed rule:hourly-high; removed tenant:acme"
    )


def test_invalid_reload_rejected(tmp_path: Path) -> None:
    """An invalid folder is rejected with its located errors and no rule set."""
    current = load_rules(_write(tmp_path / "rules", RULES))
    _write(tmp_path / "rules", RULES.replace("window: 1h", "window: 1hour"))

    decision = decide(tmp_path / "rules", current)

    assert not decision.accepted
    assert len(decision.problems) == 1
    assert "rules[0].window: invalid duration '1hour'" in str(decision.problems[0])


def test_replace_rules_keeps_state(tmp_path: Path) -> None:
    """Windows, period totals and firing alerts survive a reload; nothing fires twice."""
    engine = _engine(_write(tmp_path / "rules", RULES))
    fired = firing(_spend_120(engine))
    changed = load_rules(
        _write(tmp_path / "rules", RULES.replace("[50, 100]", "[50, 90, 100]"))
    )

    records = engine.replace_rules(changed)
    carried = len(engine.tenants["acme"].alerts.alerts)
    after = run(engine, [spend("acme", "2026-05-04T10:12:00Z", "1")])

    assert sorted(r.rule_id for r in fired) == [
        "hourly-high",
        "monthly-spend",
        "monthly-spend",
    ]
    assert records == []
    assert carried == 3
    state = engine.tenants["acme"]
    total = state.period_total("monthly-spend", "monthly", at("2026-05-10T00:00:00Z"))
    assert total.spend_usd == Decimal(121)
    # The new 90 % threshold ($90) is already passed: it fires at the next event,
    # and the alerts firing before the reload do not fire again.
    assert [r.details["threshold_pct"] for r in firing(after)] == ["90"]


def test_budget_raised_resolves_threshold(tmp_path: Path) -> None:
    """Raising the limit above the period total resolves its 100 % alert at once."""
    engine = _engine(_write(tmp_path / "rules", RULES))
    _spend_120(engine)
    raised = load_rules(
        _write(tmp_path / "rules", RULES.replace("limit_usd: 100", "limit_usd: 200"))
    )

    records = engine.replace_rules(raised)

    # $120 is below 100 % of $200 but above 50 % ($100): only the 100 % resolves.
    assert [r.status for r in records] == ["resolved"]
    assert records[0].rule_id == "monthly-spend"
    assert records[0].details["threshold_pct"] == "100"
    assert records[0].threshold == Decimal(200)
    assert records[0].summary == (
        "monthly spend $120.00 is below 100% of the $200.00 budget monthly-spend "
        "after the budget changed"
    )


def test_threshold_raised_resolves_on_tick(tmp_path: Path) -> None:
    """A raised window threshold resolves the firing alert at the next tick."""
    engine = _engine(_write(tmp_path / "rules", RULES))
    _spend_120(engine)
    raised = load_rules(
        _write(tmp_path / "rules", RULES.replace("threshold: 20", "threshold: 500"))
    )

    engine.replace_rules(raised)
    records = engine.advance_to(at("2026-05-04T10:14:00Z"))

    resolved = [r for r in records if r.status == "resolved"]
    assert [r.rule_id for r in resolved] == ["hourly-high"]


def test_reloader_rejects_then_accepts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The service reloader reports an invalid folder as a service alert, then swaps a valid one."""
    folder = _write(tmp_path / "rules", RULES)
    engine = _engine(folder)
    _spend_120(engine)
    published: list[AlertRecord] = []

    async def publish(records: list[AlertRecord]) -> None:
        published.extend(records)

    reloader = RulesReloader(folder, load_rules(folder), lambda: [engine], publish)
    _write(folder, RULES.replace("tier: absolute", "tier: threshold"))
    with caplog.at_level(logging.INFO, logger="burnrate.reload"):
        rejected = reloader.reload(at("2026-05-04T11:00:00Z"))
        _write(folder, RULES.replace("limit_usd: 100", "limit_usd: 1000"))
        accepted = reloader.reload(at("2026-05-04T11:01:00Z"))
    asyncio.run(publish(rejected + accepted))

    assert [(r.tier, r.status, r.rule_id) for r in rejected] == [
        ("service", "firing", "rules-reload")
    ]
    assert "invalid tier 'threshold'" in rejected[0].summary
    assert [(r.rule_id, r.status) for r in accepted] == [
        ("rules-reload", "resolved"),
        ("monthly-spend", "resolved"),
        ("monthly-spend", "resolved"),
    ]
    assert accepted[0].alert_id == rejected[0].alert_id
    assert [r.details["threshold_pct"] for r in accepted[1:]] == ["50", "100"]
    assert engine.rules.budgets[0].limit_usd == Decimal(1000)
    assert reloader.rejected == 1
    assert reloader.reloads == 1
    assert "rules reload from" in caplog.text
    assert "changed budget:monthly-spend@*" in caplog.text
    assert len(published) == 4


def _reloader(folder: Path) -> RulesReloader:
    async def publish(records: list[AlertRecord]) -> None:
        raise AssertionError("reload() returns records, it does not publish them")

    return RulesReloader(folder, load_rules(folder), list, publish)


def test_reload_alert_one_episode(tmp_path: Path) -> None:
    """Rejections share one alert id, which an accepted reload resolves."""
    folder = _write(tmp_path / "rules", RULES)
    reloader = _reloader(folder)
    broken_tier = RULES.replace("tier: absolute", "tier: threshold")
    broken_window = RULES.replace("window: 1h", "window: 1hour")

    _write(folder, broken_tier)
    first = reloader.reload(at("2026-05-04T11:00:00Z"))
    same = reloader.reload(at("2026-05-04T11:01:00Z"))
    _write(folder, broken_window)
    changed = reloader.reload(at("2026-05-04T11:02:00Z"))
    _write(folder, RULES)
    fixed = reloader.reload(at("2026-05-04T11:03:00Z"))
    unchanged = reloader.reload(at("2026-05-04T11:04:00Z"))

    assert len(first) == 1
    assert same == []
    assert len(changed) == 1
    assert len(fixed) == 1
    assert unchanged == []
    firing, repeat, resolved = first[0], changed[0], fixed[0]
    assert (firing.status, firing.repeat) == ("firing", 0)
    assert (repeat.status, repeat.repeat) == ("firing", 1)
    assert resolved.status == "resolved"
    assert repeat.alert_id == firing.alert_id
    assert resolved.alert_id == firing.alert_id
    assert resolved.started_at == at("2026-05-04T11:00:00Z")
    assert resolved.event_time == at("2026-05-04T11:03:00Z")
    assert "invalid tier 'threshold'" in firing.summary
    assert "invalid duration '1hour'" in repeat.summary
    assert resolved.summary == (
        f"rules reload from {folder} accepted after 3 rejected reloads. "
        "The folder is valid again."
    )
    assert reloader.rejected == 3
    assert reloader.reloads == 2


def test_reload_alert_fields(tmp_path: Path) -> None:
    """The alert names the service as tenant and counts rejected reloads."""
    folder = _write(tmp_path / "rules", RULES)
    reloader = _reloader(folder)
    _write(folder, RULES.replace("tier: absolute", "tier: threshold"))

    [record] = reloader.reload(at("2026-05-04T11:00:00Z"))

    assert record.tenant == "burnrate"
    assert record.signal == "rules_reload"
    assert record.unit == "requests"
    assert record.observed == Decimal(1)
    assert record.severity == "error"
    assert record.details["errors"] == "1"
    assert "invalid tier 'threshold'" in record.details["error_1"]
    assert record.summary.startswith(
        f"rules reload from {folder} rejected with 1 error, "
        "so the previous rules keep running. First: "
    )


def test_reload_alert_new_episode(tmp_path: Path) -> None:
    """A rejection after a resolve opens an alert with a new id."""
    folder = _write(tmp_path / "rules", RULES)
    reloader = _reloader(folder)
    broken = RULES.replace("tier: absolute", "tier: threshold")

    _write(folder, broken)
    [first] = reloader.reload(at("2026-05-04T11:00:00Z"))
    _write(folder, RULES)
    [resolved] = reloader.reload(at("2026-05-04T11:01:00Z"))
    _write(folder, broken)
    [second] = reloader.reload(at("2026-05-04T11:02:00Z"))

    assert resolved.alert_id == first.alert_id
    assert second.alert_id != first.alert_id
    assert second.status == "firing"
    assert second.repeat == 0
    assert second.observed == Decimal(1)
    assert second.started_at == at("2026-05-04T11:02:00Z")
