"""Lifecycle of one worker: startup log, health pages, clean shutdown with a commit."""

from __future__ import annotations

from datetime import timedelta

from tests.service.conftest import WorkerFactory
from tests.service.harness import (
    Topics,
    committed_offsets,
    event,
    hour_start,
    keyed,
    run,
    send,
)

RULES = {
    "budgets": [
        {
            "id": "monthly",
            "tenant": "*",
            "period": "monthly",
            "limit_usd": 1000,
            "thresholds_pct": [100],
        },
    ],
    "rules": [
        {
            "id": "hourly-spend",
            "tier": "absolute",
            "signal": "spend",
            "window": "1h",
            "threshold": 100,
        },
    ],
}


def test_startup_log_and_health_pages(make_worker: WorkerFactory) -> None:
    """Startup logs topics, partitions and rules; /healthz and /readyz return 200."""
    topics = Topics.unique("startup")
    worker = make_worker(topics, RULES, partitions=3)

    worker.start()
    health = worker.get("/healthz")
    ready = worker.get("/readyz")
    log = worker.log_text()

    assert health.status_code == 200
    assert health.json() == {"status": "ok"}
    assert ready.status_code == 200
    assert ready.json() == {"ready": True}
    for name in (topics.events, topics.alerts, topics.dead_letter, topics.budget_state):
        assert name in log
    assert "(3 partitions)" in log
    assert "1 budgets (monthly)" in log
    assert "1 rules (hourly-spend)" in log
    worker.stop()
    assert "\x1b[" not in worker.log_text()  # no terminal escape codes


def test_sigterm_commits_so_restart_reads_nothing(make_worker: WorkerFactory) -> None:
    """After SIGTERM the offsets are at the end; a restart reads only new records."""
    topics = Topics.unique("sigterm")
    first = make_worker(
        topics, RULES, name="first", env={"BURNRATE_COMMIT_INTERVAL_S": "30"}
    )
    second = make_worker(topics, RULES, name="second")
    start = hour_start(2)
    documents = [
        event(f"tenant-{i % 7}", start + timedelta(seconds=10 * i), "1.25")
        for i in range(200)
    ]

    first.start()
    produced = send(first.bootstrap, topics.events, keyed(documents))
    first.wait_records(200)
    exit_code = first.stop()
    ends: dict[int, int] = {}
    for partition, offset in produced:
        ends[partition] = max(ends.get(partition, 0), offset + 1)
    committed = run(committed_offsets(first.bootstrap, topics))
    second.start()
    send(second.bootstrap, topics.events, keyed([event("tenant-0", start, "2.00")]))
    stats = second.wait_for(
        lambda doc: sum(p["records"] for p in doc["partitions"].values()) >= 1,
        "1 record",
    )

    assert exit_code == 0
    assert {p: committed[p] for p in ends} == ends
    partitions = stats["partitions"].values()
    assert sum(p["records"] for p in partitions) == 1
    assert sum(p["redelivered"] for p in partitions) == 0
    assert sum(p["events"] for p in partitions) == 1
