"""A partition's event clock on wall-clock ticks, and when budget states go out of date.

These drive ``PartitionRunner.tick`` with made-up monotonic times and
``PeriodEnds`` with made-up states, so they need no Kafka.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from detector.config import RuleSet
from detector.service.budget_state import PeriodEnds
from detector.service.partition import PartitionRunner
from detector.service.settings import ServiceSettings
from tests.service.harness import encode, event, hour_start

TENANT = "acme"
RULES = RuleSet.model_validate(
    {"budgets": [{"id": "daily", "period": "daily", "limit_usd": 10}]}
)


def _runner(grace_s: int) -> PartitionRunner:
    settings = ServiceSettings(tick_grace_s=grace_s)
    return PartitionRunner(0, RULES, settings, lambda tenant: None)


def _handle(runner: PartitionRunner, timestamp: datetime, offset: int) -> None:
    record = encode(event(TENANT, timestamp, "1.00"))
    output = runner.handle(record, offset, time.time(), TENANT.encode())
    assert output.rejections == []


def _epoch_s(instant: datetime) -> int:
    return int(instant.timestamp())


def test_tick_moves_quiet_partition_clock() -> None:
    """Without grace the event clock runs on from the last event at wall speed."""
    last = hour_start(2) + timedelta(seconds=30)
    runner = _runner(grace_s=0)
    _handle(runner, last, offset=0)

    runner.tick(1000.0)  # the clock starts from the watermark here
    after_anchor = runner.engine.watermark_s
    runner.tick(1001.0)
    after_one_s = runner.engine.watermark_s
    runner.tick(1030.0)
    after_30_s = runner.engine.watermark_s

    assert after_anchor == _epoch_s(last)
    assert after_one_s == _epoch_s(last) + 1
    assert after_30_s == _epoch_s(last) + 30


def test_tick_clock_waits_for_grace() -> None:
    """With a 2 s grace the clock moves only once 2 s of wall time have passed."""
    last = hour_start(2) + timedelta(seconds=30)
    runner = _runner(grace_s=2)
    _handle(runner, last, offset=0)

    runner.tick(1000.0)
    runner.tick(1002.0)
    at_grace = runner.engine.watermark_s
    runner.tick(1005.0)
    after_grace = runner.engine.watermark_s

    assert at_grace == _epoch_s(last)
    assert after_grace == _epoch_s(last) + 3


def test_tick_restarts_from_newer_event() -> None:
    """An event ahead of the ticked clock moves the watermark, and ticks go on from it."""
    first = hour_start(2) + timedelta(seconds=30)
    newer = first + timedelta(seconds=100)
    runner = _runner(grace_s=0)
    _handle(runner, first, offset=0)
    runner.tick(1000.0)
    runner.tick(1030.0)  # clock at first + 30 s

    _handle(runner, newer, offset=1)
    runner.tick(1031.0)
    at_newer = runner.engine.watermark_s
    runner.tick(1041.0)
    after_newer = runner.engine.watermark_s

    assert at_newer == _epoch_s(newer)
    assert after_newer == _epoch_s(newer) + 10


def _view(tenant: str, *period_ends: datetime) -> dict[str, object]:
    budgets = [{"period_end": end.isoformat()} for end in period_ends]
    return {"tenant": tenant, "budgets": budgets}


MIDNIGHT = datetime(2026, 5, 4, tzinfo=UTC)
MONTH_END = datetime(2026, 6, 1, tzinfo=UTC)


def test_period_ends_due_at_earliest_end() -> None:
    """A tenant is due once, at the earliest end of its budgets' periods."""
    ends = PeriodEnds()
    ends.note(_view("acme", MONTH_END, MIDNIGHT))

    before = ends.due(_epoch_s(MIDNIGHT) - 1)
    at_midnight = ends.due(_epoch_s(MIDNIGHT))
    again = ends.due(_epoch_s(MONTH_END))

    assert before == []
    assert at_midnight == ["acme"]
    assert again == []


def test_period_ends_follow_latest_note() -> None:
    """A tenant noted again with a later end is due at that end, not at the earlier one."""
    ends = PeriodEnds()
    ends.note(_view("acme", MIDNIGHT))
    ends.note(_view("acme", MIDNIGHT))  # the same end again: one entry
    ends.note(_view("globex", MIDNIGHT))
    ends.note(_view("acme", MIDNIGHT + timedelta(days=1)))

    at_midnight = ends.due(_epoch_s(MIDNIGHT))
    next_day = ends.due(_epoch_s(MIDNIGHT + timedelta(days=1)))

    assert at_midnight == ["globex"]
    assert next_day == ["acme"]


def test_period_ends_without_budgets() -> None:
    """A tenant whose rules no longer give it a budget is never due."""
    ends = PeriodEnds()
    ends.note(_view("acme", MIDNIGHT))
    ends.note(_view("acme"))

    due = ends.due(_epoch_s(MONTH_END))

    assert due == []
