"""Hot reload of the rules in a running worker: SIGHUP, a raised budget, a broken file."""

from __future__ import annotations

import os
import signal
import time
from datetime import timedelta
from decimal import Decimal
from typing import Any

from detector.alerts import AlertRecord
from detector.reload import RELOAD_RULE_ID
from tests.service.conftest import WorkerFactory
from tests.service.harness import (
    CONSUME_DEADLINE_S,
    ServiceProcess,
    Topics,
    event,
    firing,
    hour_start,
    keyed,
    latest_budget_state,
    read_alerts,
    send,
    write_rules,
)


def monthly_budget(limit_usd: int) -> dict[str, Any]:
    """Return a rule file with one monthly budget for every tenant."""
    return {
        "budgets": [
            {
                "id": "monthly",
                "tenant": "*",
                "period": "monthly",
                "limit_usd": limit_usd,
                "thresholds_pct": [100],
            },
        ],
    }


# A rule set whose budget would no longer fire at $15 if it were applied, next
# to a rule with a signal that does not exist, which rejects the whole folder.
BROKEN = {
    **monthly_budget(1000),
    "rules": [
        {
            "id": "hourly-spend",
            "tier": "absolute",
            "signal": "no-such-signal",
            "window": "1h",
            "threshold": 100,
        },
    ],
}


def wait_log(worker: ServiceProcess, text: str) -> str:
    """Poll the worker's log until it contains ``text``, then return the log."""
    deadline = time.monotonic() + CONSUME_DEADLINE_S
    log = worker.log_text()
    while text not in log:
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} not logged\n{worker.log_tail()}")
        time.sleep(0.2)
        log = worker.log_text()
    return log


def reload(worker: ServiceProcess, rules: dict[str, Any]) -> None:
    """Replace the worker's rule file and send it SIGHUP.

    The file is written next to the folder and renamed into it, so the folder
    poll never reads it half written.
    """
    staging = write_rules(worker.rules_dir.with_name("staging"), rules)
    os.replace(staging / "rules.yaml", worker.rules_dir / "rules.yaml")
    assert worker.process is not None
    worker.process.send_signal(signal.SIGHUP)


def wait_budget_limit(
    worker: ServiceProcess, topics: Topics, tenant: str, limit_usd: Decimal
) -> dict[str, Any]:
    """Poll the budget-state topic until the tenant's budget shows ``limit_usd``."""
    deadline = time.monotonic() + CONSUME_DEADLINE_S
    while True:
        entry = latest_budget_state(worker.bootstrap, topics)[tenant]["budgets"][0]
        if Decimal(entry["limit"]) == limit_usd:
            return entry  # type: ignore[no-any-return]
        if time.monotonic() > deadline:
            raise AssertionError(f"budget state {entry}\n{worker.log_tail()}")
        time.sleep(0.2)


def budget_records(records: list[AlertRecord], tenant: str) -> list[AlertRecord]:
    return [r for r in records if r.tenant == tenant and r.rule_id == "monthly"]


def test_raised_limit_resolves_alert(make_worker: WorkerFactory) -> None:
    """A raised budget limit resolves the firing alert and keeps the month's spend."""
    topics = Topics.unique("reload-raise")
    worker = make_worker(topics, monthly_budget(10), partitions=2)
    # Three $5.00 events in the current UTC hour: $15.00 of the current month.
    start = hour_start(0)
    documents = [
        event("acme", start + timedelta(seconds=10 * i), "5.00") for i in range(3)
    ]

    worker.start()
    worker.process.send_signal(signal.SIGHUP)  # type: ignore[union-attr]
    unchanged_log = wait_log(worker, "no change")
    send(worker.bootstrap, topics.events, keyed(documents))
    fired = read_alerts(
        worker.bootstrap, topics, until=lambda rs: bool(budget_records(rs, "acme"))
    )
    before = wait_budget_limit(worker, topics, "acme", Decimal(10))
    reload(worker, monthly_budget(100))
    alert_id = budget_records(fired, "acme")[0].alert_id
    records = read_alerts(
        worker.bootstrap,
        topics,
        until=lambda rs: any(
            r.alert_id == alert_id and r.status == "resolved" for r in rs
        ),
    )
    after = wait_budget_limit(worker, topics, "acme", Decimal(100))
    log = wait_log(worker, "changed budget:monthly@*")

    assert "rules reloaded from" in unchanged_log
    assert [r.status for r in budget_records(fired, "acme")] == ["firing"]
    statuses = [r.status for r in records if r.alert_id == alert_id]
    assert statuses == ["firing", "resolved"]
    assert Decimal(before["used"]) == Decimal("15.00")
    assert Decimal(after["used"]) == Decimal("15.00")
    assert after["thresholds_fired_pct"] == []
    assert "rejected" not in log


def test_broken_rules_keep_old_rules(make_worker: WorkerFactory) -> None:
    """A broken file raises a service alert, the old rules run, a fix resolves it."""
    topics = Topics.unique("reload-broken")
    worker = make_worker(topics, monthly_budget(10), partitions=2)
    # One $15.00 event in the current UTC hour: over the old $10 monthly budget,
    # under the $1000 one of the broken file.
    start = hour_start(0)

    worker.start()
    reload(worker, BROKEN)
    rejected = read_alerts(
        worker.bootstrap,
        topics,
        until=lambda rs: bool(firing(rs, "service")),
    )
    log = wait_log(worker, "rejected")
    send(worker.bootstrap, topics.events, keyed([event("acme", start, "15.00")]))
    records = read_alerts(
        worker.bootstrap, topics, until=lambda rs: bool(budget_records(rs, "acme"))
    )
    service = firing(rejected, "service")[0]
    # The fixed folder contains the rules already running: an accepted reload with
    # no change still resolves the alert.
    reload(worker, monthly_budget(10))
    fixed = read_alerts(
        worker.bootstrap,
        topics,
        until=lambda rs: any(
            r.alert_id == service.alert_id and r.status == "resolved" for r in rs
        ),
    )
    fixed_log = wait_log(worker, "rules reloaded from")

    assert service.rule_id == RELOAD_RULE_ID
    assert service.severity == "error"
    assert service.tenant == "burnrate"
    assert "no-such-signal" in service.summary
    assert "previous rules keep running" in log
    assert "no-such-signal" in log
    budget = budget_records(records, "acme")
    assert [r.status for r in budget] == ["firing"]
    assert "$10" in budget[0].summary
    reload_records = [r for r in fixed if r.rule_id == RELOAD_RULE_ID]
    assert [r.status for r in reload_records] == ["firing", "resolved"]
    assert reload_records[1].alert_id == service.alert_id
    assert f"rules reloaded from {worker.rules_dir}: no change" in fixed_log


def gateway_budget(block_at_pct: int) -> dict[str, Any]:
    """Return a $10 monthly budget that blocks at ``block_at_pct``."""
    rules = monthly_budget(10)
    rules["budgets"][0]["gateway"] = {"block_at_pct": block_at_pct}
    return rules


def wait_decision(
    worker: ServiceProcess, topics: Topics, tenant: str, decision: str
) -> str:
    """Poll the budget-state topic until the tenant's decision is ``decision``.

    Returns the last decision seen, which differs when the deadline passed.
    """
    deadline = time.monotonic() + CONSUME_DEADLINE_S
    while True:
        seen = latest_budget_state(worker.bootstrap, topics).get(tenant, {})
        if seen.get("decision") == decision or time.monotonic() > deadline:
            return str(seen.get("decision"))
        time.sleep(0.2)


def test_gateway_change_updates_decision(make_worker: WorkerFactory) -> None:
    """Relaxing block_at_pct turns a blocked tenant to warn with no new event."""
    topics = Topics.unique("reload-gateway")
    worker = make_worker(topics, gateway_budget(100), partitions=2)
    documents = [event("acme", hour_start(0), "15.00")]

    worker.start()
    send(worker.bootstrap, topics.events, keyed(documents))
    before = wait_decision(worker, topics, "acme", "block")
    reload(worker, gateway_budget(200))
    wait_log(worker, "changed budget:monthly@*")
    after = wait_decision(worker, topics, "acme", "warn")

    assert before == "block"
    assert after == "warn"
