"""Slow forecast fits run beside the consumer: no rebalance, prompt budget alerts."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from tests.service.conftest import WorkerFactory
from tests.service.harness import Topics, event, firing, keyed, read_alerts, send

MAX_POLL_INTERVAL_S = 15.0
FIT_SLEEP_S = 25.0
PROMPT_S = 10.0
# Log text that shows the worker left its group or failed to commit.
GROUP_TROUBLE = (
    "revoking previously assigned partitions {",
    "rebalanc",
    "commitfailed",
    "commit failed",
    "heartbeat failed",
    "(re-)joining",
)


def test_slow_fits_keep_group_and_alerts(make_worker: WorkerFactory) -> None:
    """Fits longer than max.poll.interval: no rebalance, budget alerts stay prompt."""
    topics = Topics.unique("slowfit")
    rules = {
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
                "id": "month-end",
                "tier": "predictive",
                "budget": "monthly",
                "history_days": 14,
            }
        ],
    }
    worker = make_worker(
        topics,
        rules,
        env={
            "BURNRATE_FORECASTER": "tests.service.slow_forecaster:fit",
            "SLOW_FORECASTER_SLEEP_S": str(FIT_SLEEP_S),
            "BURNRATE_MAX_POLL_INTERVAL_S": str(MAX_POLL_INTERVAL_S),
        },
    )
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    # Three days of $300 a day: the run rate passes the budget, so each tenant's
    # forecast is fitted on every later day the ticks cross.
    history = [
        event(f"fit-{n}", now - timedelta(days=days, minutes=n), "300.00")
        for days in (3, 2, 1)
        for n in range(20)
    ]

    worker.start()
    ready_at = len(worker.log_text())
    send(worker.bootstrap, topics.events, keyed(history))
    worker.wait_for(lambda doc: doc["forecasts_running"] > 0, "fits running")
    started = time.monotonic()
    first_probe = _probe(worker, topics, "probe-1", now)
    while time.monotonic() - started < MAX_POLL_INTERVAL_S + 5:
        time.sleep(1)
    second_probe = _probe(worker, topics, "probe-2", now)
    stats = worker.stats()
    log_after_ready = worker.log_text()[ready_at:].lower()

    assert first_probe.observed == second_probe.observed
    assert stats["forecasts_running"] > 0  # fits were still running throughout
    for text in GROUP_TROUBLE:
        assert text not in log_after_ready


def _probe(worker, topics, tenant, now):  # type: ignore[no-untyped-def]
    """Send a $1,000 event for a new tenant and return its budget alert."""
    send(worker.bootstrap, topics.events, keyed([event(tenant, now, "1000.00")]))
    alerts = read_alerts(
        worker.bootstrap,
        topics,
        until=lambda r: any(a.tenant == tenant for a in r),
        deadline_s=PROMPT_S,
    )
    mine = [a for a in firing(alerts) if a.tenant == tenant]
    assert len(mine) == 1, f"no budget alert for {tenant} within {PROMPT_S} s"
    return mine[0]
