"""Two workers in one consumer group: shared partitions, handover on stop."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from decimal import Decimal

from tests.service.conftest import WorkerFactory
from tests.service.harness import (
    Topics,
    event,
    firing,
    hour_start,
    keyed,
    keys_on_distinct_partitions,
    latest_budget_state,
    read_alerts,
    send,
)

PARTITIONS = 4
RULES = {
    "budgets": [
        {
            "id": "monthly",
            "tenant": "*",
            "period": "monthly",
            "limit_usd": 100,
            "thresholds_pct": [50, 100],
        }
    ],
}


def _owned(stats: dict[str, object]) -> set[int]:
    partitions = stats["partitions"]
    assert isinstance(partitions, dict)
    return {int(p) for p in partitions}


def test_two_workers_share_then_hand_over(make_worker: WorkerFactory) -> None:
    """Each tenant gets its 50 % and 100 % alert exactly once across a handover."""
    topics = Topics.unique("scale")
    tenants = keys_on_distinct_partitions("shared", PARTITIONS, PARTITIONS)
    tenants += keys_on_distinct_partitions("more", PARTITIONS, PARTITIONS)
    base = hour_start(2)
    first = make_worker(topics, RULES, name="first", partitions=PARTITIONS)
    second = make_worker(topics, RULES, name="second", partitions=PARTITIONS)

    first.start()
    second.start()
    send(
        first.bootstrap,
        topics.events,
        keyed([event(t, base, "60.00") for t in tenants]),
    )  # crosses 50 %
    half = read_alerts(first.bootstrap, topics, until=lambda r: len(r) >= len(tenants))
    owned_first = _owned(first.wait_for(lambda d: d["partitions"] != {}, "partitions"))
    owned_second = _owned(
        second.wait_for(lambda d: d["partitions"] != {}, "partitions")
    )
    second.stop()
    send(
        first.bootstrap,
        topics.events,
        keyed([event(t, base + timedelta(minutes=5), "40.00") for t in tenants]),
    )
    alerts = read_alerts(
        first.bootstrap, topics, until=lambda r: len(r) >= 2 * len(tenants)
    )
    first.wait_for(lambda d: first.total("events") >= len(tenants), "second round")
    after_stop = first.stats()
    # Anything sent twice would arrive by now: the worker is idle.
    alerts = read_alerts(
        first.bootstrap,
        topics,
        until=lambda r: len(r) > 2 * len(tenants),
        deadline_s=3.0,
    )
    state = latest_budget_state(first.bootstrap, topics)

    assert len(half) == len(tenants)
    assert owned_first and owned_second
    assert owned_first.isdisjoint(owned_second)
    assert owned_first | owned_second == set(range(PARTITIONS))
    assert _owned(after_stop) == set(range(PARTITIONS))
    fired = Counter((r.tenant, r.threshold) for r in firing(alerts))
    expected = {(t, Decimal(limit)): 1 for t in tenants for limit in ("50", "100")}
    assert dict(fired) == expected
    assert len(alerts) == 2 * len(tenants)
    for tenant in tenants:
        assert state[tenant]["budgets"][0]["used"] == "100.00"
