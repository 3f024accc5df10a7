"""What the wall-clock tick does for tenants whose partition receives no more records.

After a partition's last record, only the tick moves its event time on. Each
tick sets the event clock to the last event time plus the wall time since then.
Any alert or budget decision that changes after that instant must come from
the tick. The worker runs with no tick grace and a 0.2 s tick interval, so the
clock follows the wall clock closely.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.service.harness import (
    Consumed,
    ServiceProcess,
    Topics,
    event,
    hour_start,
    keyed,
    partition_for,
    read_alerts,
    read_topic,
    run,
    send,
    write_rules,
)

PARTITIONS = 4
TOKEN = "quiet-tenants-token"
# The tick should act about 2 s after the last event is handled. This bound
# only limits how long a failing run waits.
TICK_DEADLINE_S = 20.0
ZONE = "Asia/Kolkata"  # UTC+05:30, so local midnight is not a UTC midnight


def _same_partition(prefix: str, partition: int, count: int) -> list[str]:
    """Return ``count`` tenant names whose records land on ``partition``."""
    names: list[str] = []
    index = 0
    while len(names) < count:
        name = f"{prefix}-{index}"
        if partition_for(name.encode(), PARTITIONS) == partition:
            names.append(name)
        index += 1
    return names


# The stalled tenant and a neighbour whose event is the partition's last one.
# The two budget tenants share another partition, which has its own event clock.
STALLED, NEIGHBOUR = _same_partition("stalled", 0, 2)
BLOCKED, AT_LIMIT = _same_partition("daily", 1, 2)

RULES: dict[str, Any] = {
    "tenants": [
        {"id": BLOCKED, "timezone": ZONE},
        {"id": AT_LIMIT, "timezone": ZONE},
    ],
    "budgets": [
        # Blocked from 90 %. The only alert threshold is the default 100 %.
        {
            "id": "daily",
            "tenant": tenant,
            "period": "daily",
            "limit_usd": 10,
            "gateway": {"block_at_pct": 90},
        }
        for tenant in (BLOCKED, AT_LIMIT)
    ],
    "rules": [
        {
            "id": "spend-stopped",
            "tier": "rate_of_change",
            "signal": "spend",
            "window": "1m",
            "baseline_period": "1h",
            "direction": "down",
            "min_ratio": 4,
            "min_increase": 0.5,
            "tenants": [STALLED],
        }
    ],
}


@pytest.fixture(scope="module")
def worker(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    """One worker shared by the tests of this module, which use separate partitions."""
    folder: Path = tmp_path_factory.mktemp("quiet")
    process = ServiceProcess(
        kafka_bootstrap,
        Topics.unique("quiet"),
        write_rules(folder / "rules", RULES),
        folder,
        partitions=PARTITIONS,
        env={
            "BURNRATE_TICK_GRACE_S": "0",
            "BURNRATE_TICK_INTERVAL_S": "0.2",
            "BURNRATE_API_TOKEN": TOKEN,
        },
    )
    process.start()
    yield process
    process.kill()


def test_stalled_spend_fires_on_tick(worker: ServiceProcess) -> None:
    """Spend that stops fires the fall alert at a tick after the partition's last event."""
    start = hour_start(3)  # "10:00"
    spend = [
        event(STALLED, start + timedelta(minutes=minute, seconds=30), "1.00")
        for minute in range(91)  # $1 a minute, 10:00:30 to 11:30:30
    ]
    last = event(NEIGHBOUR, start + timedelta(minutes=91, seconds=58), "0.01")  # 11:31:58
    first_empty_minute_end = start + timedelta(minutes=92)  # 11:32

    produced = send(worker.bootstrap, worker.topics.events, keyed([*spend, last]))
    alerts = read_alerts(
        worker.bootstrap,
        worker.topics,
        until=lambda records: any(r.rule_id == "spend-stopped" for r in records),
        deadline_s=TICK_DEADLINE_S,
    )

    assert {partition for partition, _ in produced} == {0}
    stopped = [r for r in alerts if r.rule_id == "spend-stopped"]
    assert len(stopped) == 1
    record = stopped[0]
    assert record.tenant == STALLED
    assert record.status == "firing"
    assert record.tier == "rate_of_change"
    # Ticks driven by an event evaluate instants up to its timestamp only, so
    # an alert timed after the partition's last event comes from the wall clock.
    assert record.event_time == first_empty_minute_end
    assert record.event_time > datetime.fromisoformat(last["timestamp"])
    assert record.observed == Decimal(0)
    assert record.baseline == Decimal(1)  # 10:31-10:32 from the $60 hour 10:00-11:00


def _local_midnight_utc(zone: str) -> datetime:
    """Return the latest local midnight of ``zone`` that has passed, in UTC."""
    local_now = datetime.now(ZoneInfo(zone))
    midnight = local_now.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight.astimezone(UTC)


def _decisions(records: list[Consumed], tenant: str) -> list[dict[str, Any]]:
    documents = [json.loads(record.value) for record in records]
    return [doc for doc in documents if doc["tenant"] == tenant]


def _both_allowed(records: list[Consumed]) -> bool:
    for tenant in (BLOCKED, AT_LIMIT):
        states = _decisions(records, tenant)
        if not states or states[-1]["decision"] != "allow":
            return False
    return True


def _collapsed(states: list[dict[str, Any]]) -> list[str]:
    """Return the sequence of decisions with repeats of the same decision removed."""
    sequence: list[str] = []
    for state in states:
        if not sequence or sequence[-1] != state["decision"]:
            sequence.append(state["decision"])
    return sequence


def test_blocked_tenant_allowed_after_midnight(worker: ServiceProcess) -> None:
    """A tenant blocked late in its local day is allowed after midnight with no new event.

    BLOCKED is at 95 %, blocked without any budget alert. AT_LIMIT reached
    100 %, so its alert fires and resolves when the day ends.
    """
    midnight = _local_midnight_utc(ZONE)
    previous_day = midnight - timedelta(days=1)
    documents = [
        event(AT_LIMIT, midnight - timedelta(seconds=6), "10.00"),
        event(BLOCKED, midnight - timedelta(seconds=5), "9.50"),  # the partition's last
    ]

    produced = send(worker.bootstrap, worker.topics.events, keyed(documents))
    records = run(
        read_topic(
            worker.bootstrap,
            worker.topics.budget_state,
            until=_both_allowed,
            deadline_s=TICK_DEADLINE_S,
        )
    )
    headers = {"Authorization": f"Bearer {TOKEN}"}
    answer = httpx.get(
        f"{worker.base_url}/v1/budget/{BLOCKED}", headers=headers, timeout=5
    )
    audit_path = worker.work_dir / f"{worker.name}-data" / "budget-decisions.jsonl"
    audit = [json.loads(line) for line in audit_path.read_text().splitlines()]

    assert {partition for partition, _ in produced} == {1}
    for tenant, used in ((BLOCKED, "9.50"), (AT_LIMIT, "10.00")):
        states = _decisions(records, tenant)
        assert _collapsed(states) == ["block", "allow"], tenant
        before, after = states[0], states[-1]
        assert before["budgets"][0]["used"] == used
        assert before["budgets"][0]["period_start"] == previous_day.isoformat()
        assert after["budgets"][0]["used"] == "0"
        assert after["budgets"][0]["period_start"] == midnight.isoformat()
        changes = [(a["previous"], a["decision"]) for a in audit if a["tenant"] == tenant]
        assert changes == [(None, "block"), ("block", "allow")], tenant
    assert answer.status_code == 200
    body = answer.json()
    assert body["decision"] == "allow"
    assert body["budgets"][0]["used"] == "0"
    assert body["budgets"][0]["period_start"] == midnight.isoformat()
