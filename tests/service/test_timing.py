"""When alerts come out: on the event itself, per partition, and with late events."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tests.service.harness import (
    ServiceProcess,
    Topics,
    event,
    hour_start,
    keyed,
    keys_on_distinct_partitions,
    latest_budget_state,
    read_alerts,
    send,
    write_rules,
)

PARTITIONS = 4
# An alert that fires on its event reaches the alerts topic well within this;
# a tick-driven one would wait for the next minute of event time, which here
# is about a minute of wall time away.
PROMPT_S = 10.0
RULES = {
    "budgets": [
        {
            "id": "monthly",
            "tenant": "*",
            "period": "monthly",
            "limit_usd": 1000,
            "thresholds_pct": [100],
        }
    ],
    "rules": [
        {
            "id": "spend-per-minute",
            "tier": "absolute",
            "signal": "spend",
            "window": "1m",
            "threshold": 10,
        },
        {
            "id": "spend-per-10m",
            "tier": "absolute",
            "signal": "spend",
            "window": "10m",
            "threshold": 4,
            "tenants": ["late-*"],
        },
    ],
}
TENANTS = keys_on_distinct_partitions("quiet", PARTITIONS, 3)


@pytest.fixture(scope="module")
def worker(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    """One worker shared by the tests of this module, which use separate tenants."""
    folder: Path = tmp_path_factory.mktemp("timing")
    topics = Topics.unique("timing")
    rules = dict(RULES)
    rules["rules"] = [
        dict(RULES["rules"][0]),  # type: ignore[index]
        dict(RULES["rules"][1], tenants=[TENANTS[2]]),
    ]  # type: ignore[index]
    process = ServiceProcess(
        kafka_bootstrap,
        topics,
        write_rules(folder / "rules", rules),
        folder,
        partitions=PARTITIONS,
    )
    process.start()
    yield process
    process.kill()


def test_fires_on_event_on_two_partitions(worker: ServiceProcess) -> None:
    """$12 at 10:00:05 for quiet tenants on two partitions alerts at once for both."""
    base = hour_start(3)  # "10:00"
    first, second = TENANTS[0], TENANTS[1]
    documents = [
        event(first, base + timedelta(seconds=5), "12.00"),  # window 09:59:05-10:00:05
        event(second, base + timedelta(seconds=5), "12.00"),
    ]

    send(worker.bootstrap, worker.topics.events, keyed(documents))
    alerts = read_alerts(
        worker.bootstrap,
        worker.topics,
        until=lambda r: len(r) >= 2,
        deadline_s=PROMPT_S,
    )

    by_tenant = {r.tenant: r for r in alerts if r.rule_id == "spend-per-minute"}
    assert sorted(by_tenant) == sorted([first, second])
    for record in by_tenant.values():
        assert record.status == "firing"
        assert record.observed == Decimal("12.00")
        assert record.event_time == base + timedelta(seconds=5)


def test_late_events_counted_in_month(worker: ServiceProcess) -> None:
    """A late event within the bound joins its window; one beyond it is counted late."""
    base = hour_start(2)  # "10:00"
    tenant = TENANTS[2]
    documents = [
        event(tenant, base + timedelta(minutes=10), "1.00"),  # watermark 10:10
        event(
            tenant, base + timedelta(minutes=6), "3.00"
        ),  # 4 min late: window 10:00-10:10
        event(tenant, base, "5.00"),  # 10 min late, beyond the 5 min bound
    ]
    late_before = worker.total("late")

    send(worker.bootstrap, worker.topics.events, keyed(documents))
    worker.wait_for(lambda doc: worker.total("late") > late_before, "a late event")
    alerts = read_alerts(
        worker.bootstrap,
        worker.topics,
        until=lambda r: any(a.tenant == tenant for a in r),
        deadline_s=PROMPT_S,
    )
    state = latest_budget_state(worker.bootstrap, worker.topics)[tenant]

    assert worker.total("late") == late_before + 1
    windowed = [r for r in alerts if r.tenant == tenant]
    assert len(windowed) == 1
    assert windowed[0].rule_id == "spend-per-10m"
    assert windowed[0].observed == Decimal("4.00")  # $1 + the $3 within the bound
    assert state["budgets"][0]["used"] == "9.00"  # every event counts in the month
