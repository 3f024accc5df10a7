"""State across worker deaths: restore before new events, skip redelivered records.

Every test kills or stops a worker and starts another one with the same
application id on the same topics, so the partitions and their state move.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import msgspec

from detector.alerts import AlertRecord
from tests.service.conftest import WorkerFactory
from tests.service.harness import (
    ServiceProcess,
    Topics,
    event,
    firing,
    hour_start,
    keyed,
    latest_budget_state,
    read_alerts,
    read_topic,
    run,
    send,
)

TOKEN = "restart-test-token"


def _zone_with_room(base: datetime, needed: timedelta) -> str:
    """Return a time zone whose current month began at least ``needed`` before ``base``.

    Near the start of a UTC month the scenario's earlier spend would fall in the
    previous month, so the tenant then lives at UTC+14, whose month began 14
    hours earlier.
    """
    month_start = base.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return "UTC" if base - month_start >= needed else "Etc/GMT-14"


def _mtd(bootstrap: str, topics: Topics, tenant: str) -> str:
    state = latest_budget_state(bootstrap, topics)[tenant]
    used: str = state["budgets"][0]["used"]
    return used


def _budget_answer(worker: ServiceProcess, tenant: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    return httpx.get(f"{worker.base_url}/v1/budget/{tenant}", headers=headers, timeout=5)


def _snapshots(bootstrap: str, topics: Topics) -> dict[str, bytes]:
    latest: dict[str, bytes] = {}
    for record in run(read_topic(bootstrap, topics.changelog)):
        assert record.key is not None
        latest[record.key.decode()] = record.value
    return latest


def test_sigkill_moves_state_to_next_worker(make_worker: WorkerFactory) -> None:
    """$900 + $40 + $30 on A, A killed, $35 on B: one hourly and one budget alert."""
    topics = Topics.unique("handover")
    base = hour_start(3)  # "10:00", three hours before the current hour
    zone = _zone_with_room(base, timedelta(hours=11))
    rules = {
        "tenants": [{"id": "acme", "timezone": zone}],
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
                "id": "hourly-spend",
                "tier": "absolute",
                "signal": "spend",
                "window": "1h",
                "threshold": 100,
            }
        ],
    }
    # $900 earlier this month as ten $90 requests 61 minutes apart, so no hour
    # reaches $100 before 10:40.
    earlier = [
        event("acme", base - timedelta(minutes=61 * i), "90.00")
        for i in range(10, 0, -1)
    ]
    on_a = [
        event("acme", base + timedelta(minutes=5), "40.00"),  # 10:05
        event("acme", base + timedelta(minutes=20), "30.00"),  # 10:20
    ]
    worker_a = make_worker(topics, rules, name="a")
    worker_b = make_worker(topics, rules, name="b", env={"BURNRATE_API_TOKEN": TOKEN})

    worker_a.start()
    produced = send(worker_a.bootstrap, topics.events, keyed(earlier + on_a))
    worker_a.wait_records(12)
    worker_a.wait_committed({p: o + 1 for p, o in produced})
    alerts_from_a = read_alerts(worker_a.bootstrap, topics)
    worker_a.kill()  # "10:25"
    worker_b.start()
    restored = _budget_answer(worker_b, "acme")  # right after /readyz
    send(
        worker_b.bootstrap,
        topics.events,
        keyed([event("acme", base + timedelta(minutes=40), "35.00")]),
    )  # 10:40
    alerts = read_alerts(worker_b.bootstrap, topics, until=lambda r: len(r) >= 2)
    worker_b.wait_records(1)

    assert alerts_from_a == []
    hourly = [r for r in alerts if r.rule_id == "hourly-spend"]
    budget = [r for r in alerts if r.tier == "absolute" and r.rule_id != "hourly-spend"]
    assert len(alerts) == 2, alerts
    assert len(hourly) == 1
    assert hourly[0].status == "firing"
    assert hourly[0].observed == Decimal("105.00")  # window 09:40-10:40
    assert len(budget) == 1
    assert budget[0].status == "firing"
    assert budget[0].observed == Decimal("1005.00")
    assert budget[0].threshold == Decimal("1000")
    assert _mtd(worker_b.bootstrap, topics, "acme") == "1005.00"
    assert "restored 1 tenants" in worker_b.log_text()
    assert restored.status_code == 200
    assert restored.json()["budgets"][0]["used"] == "970.00"
    assert worker_b.total("redelivered") == 0


def test_redelivery_before_commit_counts_once(make_worker: WorkerFactory) -> None:
    """Three $2 events redelivered after a kill before the commit: $101.00, 1 alert."""
    topics = Topics.unique("redeliver")
    base = hour_start(2)
    rules = {
        "budgets": [
            {
                "id": "monthly",
                "tenant": "capped",
                "period": "monthly",
                "limit_usd": 100,
                "thresholds_pct": [100],
            }
        ],
    }
    slow_commit = {"BURNRATE_COMMIT_INTERVAL_S": "30"}
    first = make_worker(topics, rules, name="first")
    second = make_worker(topics, rules, name="second", env=slow_commit)
    third = make_worker(topics, rules, name="third")

    first.start()
    send(first.bootstrap, topics.events, keyed([event("capped", base, "95.00")]))
    first.wait_records(1)
    first.stop()
    second.start()
    twos = [
        event("capped", base + timedelta(minutes=1 + i), "2.00", request_id=f"two-{i}")
        for i in range(3)
    ]
    produced = send(second.bootstrap, topics.events, keyed(twos))
    last_offset = produced[-1][1]
    second.wait_records(3)
    _wait_snapshot_offset(second.bootstrap, topics, "capped", last_offset)
    read_alerts(second.bootstrap, topics, until=lambda r: len(r) >= 1)
    committed_before_kill = _committed(second.bootstrap, topics, produced[0][0])
    second.kill()
    third.start()
    third.wait_records(3)
    alerts = read_alerts(third.bootstrap, topics)

    assert committed_before_kill <= produced[0][1]  # the kill came before the commit
    assert third.total("redelivered") == 3
    assert third.total("events") == 0
    assert _mtd(third.bootstrap, topics, "capped") == "101.00"
    budget_alerts = firing(alerts)
    assert len(budget_alerts) == 1
    assert budget_alerts[0].observed == Decimal("101.00")


def _wait_snapshot_offset(
    bootstrap: str, topics: Topics, tenant: str, offset: int
) -> None:
    """Wait until the tenant's latest snapshot in the changelog includes ``offset``."""
    import time

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        snapshot = _snapshots(bootstrap, topics).get(tenant)
        if (
            snapshot is not None
            and msgspec.msgpack.decode(snapshot)["applied_offset"] >= offset
        ):
            return
        time.sleep(0.2)
    raise AssertionError(
        f"no snapshot of {tenant} with offset {offset} in the changelog"
    )


def _committed(bootstrap: str, topics: Topics, partition: int) -> int:
    from tests.service.harness import committed_offsets

    return run(committed_offsets(bootstrap, topics))[partition]  # type: ignore[no-any-return]


def test_redelivered_batch_changes_no_total(make_worker: WorkerFactory) -> None:
    """15,000 events produced again with the same request ids change no total."""
    topics = Topics.unique("resend")
    base = hour_start(1)
    rules = {
        "budgets": [
            {
                "id": "monthly",
                "tenant": "*",
                "period": "monthly",
                "limit_usd": 1000,
                "thresholds_pct": [50, 100],
            }
        ],
    }
    tenants = [f"bulk-{n}" for n in range(15)]
    records = []
    for index in range(150):
        tenant = tenants[index % 15]
        batch = [
            event(
                tenant,
                base + timedelta(seconds=index * 10 + j // 10),
                "0.01",
                request_id=f"{tenant}-{index}-{j}",
            )
            for j in range(100)
        ]
        records.append((tenant.encode(), _encode_batch(batch)))
    worker = make_worker(topics, rules)

    worker.start()
    send(worker.bootstrap, topics.events, records)
    worker.wait_for(lambda doc: worker.total("events") >= 15_000, "15,000 events")
    before = latest_budget_state(worker.bootstrap, topics)
    spend_before = worker.stats()
    send(worker.bootstrap, topics.events, records)
    worker.wait_for(
        lambda doc: worker.total("duplicates") >= 15_000, "15,000 duplicates"
    )
    after = latest_budget_state(worker.bootstrap, topics)
    spend_after = worker.stats()

    assert worker.total("events") == 15_000
    assert worker.total("duplicates") == 15_000
    for tenant in tenants:
        assert before[tenant]["budgets"][0]["used"] == "10.00"
        assert after[tenant]["budgets"][0]["used"] == "10.00"
    spend = [p["spend_usd"] for p in spend_before["partitions"].values()]
    assert sum(Decimal(s) for s in spend) == Decimal("150.00")
    spend = [p["spend_usd"] for p in spend_after["partitions"].values()]
    assert sum(Decimal(s) for s in spend) == Decimal("150.00")


def _encode_batch(documents: list[dict[str, Any]]) -> bytes:
    from tests.service.harness import encode

    return encode(documents)


def test_restart_with_tenants_in_breach(make_worker: WorkerFactory) -> None:
    """A restart sends nothing for 40 alerted tenants and 1 alert for a new crossing."""
    topics = Topics.unique("breach")
    base = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=30)
    rules = {
        "budgets": [
            {
                "id": "monthly",
                "tenant": "*",
                "period": "monthly",
                "limit_usd": 10,
                "thresholds_pct": [100],
            }
        ],
        "rules": [
            {
                "id": "hourly-spend",
                "tier": "absolute",
                "signal": "spend",
                "window": "1h",
                "threshold": 10,
            }
        ],
    }
    breached = [f"over-{n}" for n in range(40)]
    crosser_first = event("crosser", base - timedelta(hours=2), "8.00")
    first_round = [crosser_first] + [event(t, base, "12.00") for t in breached]
    # Half of the alerted tenants send more while the service is down; the
    # other half stay quiet and are restored without an event of their own.
    while_down = [event(t, base + timedelta(minutes=1), "1.00") for t in breached[:20]]
    while_down.append(event("crosser", base + timedelta(minutes=1), "5.00"))
    first = make_worker(topics, rules, name="first")
    second = make_worker(topics, rules, name="second")

    first.start()
    send(first.bootstrap, topics.events, keyed(first_round))
    before = read_alerts(first.bootstrap, topics, until=lambda r: len(r) >= 80)
    first.wait_records(41)
    first.stop()
    send(first.bootstrap, topics.events, keyed(while_down))
    second.start()
    second.wait_records(21)
    expected = len(before) + 1
    after = read_alerts(
        second.bootstrap, topics, until=lambda r: len(r) > expected, deadline_s=5.0
    )

    assert len(before) == 80
    assert {r.tenant for r in before} == set(breached)
    new_keys = Counter(_identity(r) for r in after) - Counter(
        _identity(r) for r in before
    )
    new = [r for r in after if _identity(r) in new_keys]
    assert len(new) == 1, new
    assert new[0].tenant == "crosser"
    assert new[0].status == "firing"
    assert new[0].observed == Decimal("13.00")
    assert [r for r in after if r.status == "resolved"] == []
    assert second.total("tenants") == 41


def _identity(record: AlertRecord) -> tuple[str, str, int]:
    return (record.alert_id, record.status, record.repeat)


def test_snapshot_stays_bounded_across_restarts(make_worker: WorkerFactory) -> None:
    """9,000 requests over three worker lifetimes keep at most 1,000 stored ids."""
    topics = Topics.unique("bounded")
    rules = {
        "budgets": [
            {
                "id": "monthly",
                "tenant": "*",
                "period": "monthly",
                "limit_usd": 100000,
                "thresholds_pct": [100],
            }
        ]
    }
    capped = {"BURNRATE_DEDUP_MAX_IDS_PER_TENANT": "1000"}
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=50)
    sizes: list[int] = []
    seen_counts: list[int] = []
    spent: list[str] = []

    for lifetime in range(3):
        worker = make_worker(topics, rules, name=f"life-{lifetime}", env=capped)
        worker.start()
        records = []
        for batch in range(30):
            first = lifetime * 3000 + batch * 100
            documents = [
                event(
                    "busy",
                    start + timedelta(seconds=(first + j) // 4),
                    "0.01",
                    request_id=f"busy-request-{first + j:06d}",
                )
                for j in range(100)
            ]
            records.append((b"busy", _encode_batch(documents)))
        send(worker.bootstrap, topics.events, records)
        worker.wait_for(lambda doc, w=worker: w.total("events") >= 3000, "3,000 events")
        worker.stop()
        snapshot = _snapshots(worker.bootstrap, topics)["busy"]
        sizes.append(len(snapshot))
        seen_counts.append(len(msgspec.msgpack.decode(snapshot)["seen"]))
        spent.append(_mtd(worker.bootstrap, topics, "busy"))

    assert seen_counts == [1000, 1000, 1000]
    assert max(sizes) < 100_000, sizes  # about 40 bytes per stored request id
    assert spent == ["30.00", "60.00", "90.00"]
