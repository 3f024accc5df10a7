"""The service and the backtest give the same alerts for the same events."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from detector.alerts import AlertRecord
from detector.backtest import replay
from detector.ruleload import load_rules
from tests.service.conftest import WorkerFactory
from tests.service.harness import (
    Topics,
    encode,
    event,
    read_alerts,
    send,
    write_rules,
)

PARTITIONS = 4
RULES = {
    "budgets": [
        {
            "id": "monthly",
            "tenant": "*",
            "period": "monthly",
            "limit_usd": 400,
            "thresholds_pct": [50, 80, 100],
        },
        {
            "id": "daily",
            "tenant": "*",
            "period": "daily",
            "limit_usd": 150,
            "thresholds_pct": [50, 100],
        },
    ],
    "rules": [
        {
            "id": "hourly-spend",
            "tier": "absolute",
            "signal": "spend",
            "window": "1h",
            "threshold": 60,
            "repeat_interval": "20m",
        },
        {
            "id": "five-minute-spend",
            "tier": "absolute",
            "signal": "spend",
            "window": "5m",
            "threshold": 12,
            "for": "2m",
        },
        {
            "id": "hourly-tokens",
            "tier": "absolute",
            "signal": "tokens",
            "series": ["tenant", "feature"],
            "window": "1h",
            "threshold": 40000,
        },
    ],
}


def _events(now: datetime) -> list[dict[str, object]]:
    """Return three hours of traffic of eight tenants in time order, to 5 min ago."""
    rng = random.Random(7)
    start = now - timedelta(hours=3)
    documents = []
    moment = start
    index = 0
    while moment < now - timedelta(minutes=5):
        tenant = f"tenant-{rng.randrange(8)}"
        # Bursts make windows cross their thresholds and fall back again.
        burst = 1 + 4 * (rng.random() < 0.05)
        cost = f"{rng.uniform(0.05, 1.5) * burst:.4f}"
        documents.append(
            event(
                tenant,
                moment,
                cost,
                request_id=f"req-{index}",
                feature=rng.choice(["chat", "search"]),
                **{"gen_ai.usage.input_tokens": rng.randrange(100, 3000)},
            )
        )
        moment += timedelta(seconds=rng.randrange(1, 12))
        index += 1
    return documents


def _key(record: AlertRecord) -> tuple[object, ...]:
    return (
        record.alert_id,
        record.status,
        record.tier,
        record.rule_id,
        record.tenant,
        str(record.observed),
        str(record.threshold),
        record.event_time,
        record.repeat,
    )


def test_service_matches_backtest(make_worker: WorkerFactory, tmp_path: Path) -> None:
    """Alerts up to the last event every partition saw are the backtest's alerts."""
    topics = Topics.unique("parity")
    now = datetime.now(UTC).replace(microsecond=0)
    documents = _events(now)
    events_path = tmp_path / "events.jsonl"
    events_path.write_bytes(b"".join(encode(doc) + b"\n" for doc in documents))
    rules = load_rules(write_rules(tmp_path / "parity-rules", RULES))
    # Ticks from the wall clock would move event time between two batches of
    # records; a long grace keeps the service on event time alone.
    worker = make_worker(
        topics, RULES, partitions=PARTITIONS, env={"BURNRATE_TICK_GRACE_S": "3600"}
    )

    expected = replay(rules, [events_path]).records
    worker.start()
    produced = send(
        worker.bootstrap,
        topics.events,
        [(str(doc["tenant"]).encode(), encode(doc)) for doc in documents],
    )
    worker.wait_records(len(documents), deadline_s=60)
    # The end point: the last event time every partition has reached.
    last_by_partition: dict[int, datetime] = {}
    for (partition, _), doc in zip(produced, documents, strict=True):
        last_by_partition[partition] = datetime.fromisoformat(str(doc["timestamp"]))
    end = min(last_by_partition.values())
    wanted = [r for r in expected if r.event_time <= end]
    # Read for a few seconds: the alerts of handled records are all out by then.
    actual = read_alerts(
        worker.bootstrap, topics, until=lambda read: False, deadline_s=3.0
    )

    assert len(wanted) >= 20, "the traffic should fire a fair number of alerts"
    assert {r.tier for r in wanted} == {"absolute"}
    assert {r.status for r in wanted} == {"firing", "resolved"}
    assert any(r.repeat for r in wanted)
    got = sorted(_key(r) for r in actual if r.event_time <= end)
    assert got == sorted(_key(r) for r in wanted)
    assert worker.total("late") == 0
    print(f"{len(wanted)} alerts compared, {len(expected) - len(wanted)} after {end}")
