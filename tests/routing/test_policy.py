"""Policy decisions: matching, continue, grouping, intervals, inhibition, silences, routes test."""

from __future__ import annotations

import argparse
import io
from datetime import timedelta
from pathlib import Path
from typing import Any

from detector import alerts
from routing.cli import add_commands
from routing.load import check_routing
from routing.policy import Policy
from tests.routing.conftest import START, Harness, append, config, record, run_async
from tests.routing.servers.tls import Certificate
from tests.routing.servers.webhook import WebhookServer

ENV = {"PD": "pd-key-0123456789", "HOOK": "https://127.0.0.1:9/hook", "SLACK": "https://127.0.0.1:9/s"}


def _policy(**route: Any) -> Policy:
    data: dict[str, Any] = {
        "receivers": [
            {"name": "pd", "type": "pagerduty", "routing_key_env": "PD"},
            {"name": "hook", "type": "webhook", "url_env": "HOOK"},
            {"name": "slack", "type": "slack", "webhook_url_env": "SLACK"},
        ],
        "route": {"receiver": "slack", **route},
        "inhibit_rules": [{"source_matchers": ['tier="absolute"'],
                           "target_matchers": ['tier="predictive"'], "equal": ["tenant"]}],
        "silences": [{"id": "acme-maint", "matchers": ['tenant="acme"'],
                      "starts_at": "2026-07-31T00:00:00Z", "ends_at": "2026-07-31T12:00:00Z"}],
        "time_intervals": [{"name": "berlin-night", "timezone": "Europe/Berlin",
                            "times": [{"start": "00:00", "end": "06:00"}]}],
    }
    return Policy(config(data, ENV))


def test_first_match_without_continue() -> None:
    """Without continue the first matching child wins; the root receiver is not used."""
    policy = _policy(routes=[
        {"matchers": ['tier="absolute"'], "receiver": "pd"},
        {"matchers": ['severity=~"crit.*"'], "receiver": "hook"},
    ])

    decision = policy.decide(record("globex"))

    assert decision.receivers == ["pd"]
    assert "route.routes[0]" in decision.explain()


def test_continue_reaches_later_siblings() -> None:
    """continue: true lets a later sibling match as well."""
    policy = _policy(routes=[
        {"matchers": ['tier="absolute"'], "receiver": "pd", "continue": True},
        {"matchers": ['severity="critical"'], "receiver": "hook"},
    ])

    decision = policy.decide(record("globex"))

    assert decision.receivers == ["pd", "hook"]


def test_no_match_uses_parent_and_labels() -> None:
    """An alert no child matches goes to the parent; rule labels can be matched."""
    policy = _policy(routes=[{"matchers": ['team="payments"'], "receiver": "pd"}])

    other = policy.decide(record("globex", labels={"team": "search"}))
    payments = policy.decide(record("globex", labels={"team": "payments"}))

    assert other.receivers == ["slack"]
    assert 'team="search" fails team="payments"' in other.explain()
    assert payments.receivers == ["pd"]


def test_group_key_from_group_by() -> None:
    """group_by chooses the group: same tenant, same group; other tenant, other group."""
    policy = _policy(group_by=["tenant"])

    first = policy.decide(record("globex", rule_id="a")).targets[0]
    second = policy.decide(record("globex", rule_id="b")).targets[0]
    third = policy.decide(record("initech", rule_id="a")).targets[0]

    assert first.group_key == second.group_key == 'route{tenant="globex"}'
    assert third.group_key == 'route{tenant="initech"}'


def test_mute_interval_in_zone() -> None:
    """A Berlin-night mute applies at 23:30 UTC (01:30 in Berlin, CEST) but not at 06:30 UTC."""
    policy = _policy(routes=[{"matchers": ['tier="absolute"'], "receiver": "pd",
                              "mute_time_intervals": ["berlin-night"]}])
    night = START.replace(hour=23, minute=30)  # 2026-07-31T23:30Z = 01:30 Berlin
    morning = START.replace(hour=6, minute=30)  # 2026-07-31T06:30Z = 08:30 Berlin

    muted = policy.decide(record("globex", at=night))
    sent = policy.decide(record("globex", at=morning))

    assert muted.receivers == []
    assert "muted by time interval berlin-night" in muted.explain()
    assert sent.receivers == ["pd"]


def test_active_interval_and_resolve() -> None:
    """Outside its active interval a route is muted, but a resolve is never muted."""
    policy = _policy(routes=[{"matchers": ['tier="absolute"'], "receiver": "pd",
                              "active_time_intervals": ["berlin-night"]}])
    day = START  # 2026-07-31T14:00Z = 16:00 Berlin

    firing = policy.decide(record("globex", at=day))
    resolved = policy.decide(record("globex", status="resolved", at=day))

    assert firing.receivers == []
    assert "outside its active time intervals" in firing.explain()
    assert resolved.receivers == ["pd"]


def test_absolute_inhibits_predictive() -> None:
    """A firing absolute breach mutes the same tenant's predictive alert, not another tenant's."""
    policy = _policy()
    breach = record("globex")
    firing = {breach.alert_id: breach}

    same = policy.decide(record("globex", tier="predictive"), firing)
    other = policy.decide(record("initech", tier="predictive"), firing)

    assert same.receivers == []
    assert same.inhibited_by == breach.alert_id
    assert f"inhibited by alert {breach.alert_id}" in same.explain()
    assert other.receivers == ["slack"]


def test_silence_expires() -> None:
    """The acme silence ends at 12:00Z: an alert at 11:59 is silenced, one at 12:00 is sent."""
    policy = _policy()

    before = policy.decide(record("acme", at=START.replace(hour=11, minute=59)))
    after = policy.decide(record("acme", at=START.replace(hour=12, minute=0)))

    assert before.silenced_by == "acme-maint"
    assert before.receivers == []
    assert after.silenced_by is None
    assert after.receivers == ["slack"]


def test_routes_test_explains(tmp_path: Path) -> None:
    """routes test prints the matched path, the inhibiting alert and the receivers."""
    alert_file = tmp_path / "alert.json"
    alert_file.write_bytes(alerts.encoder.encode(record("globex", tier="predictive")))
    firing_file = tmp_path / "alerts.jsonl"
    breach = record("globex")
    firing_file.write_bytes(alerts.encoder.encode(breach) + b"\n")
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers())
    out = io.StringIO()

    args = parser.parse_args(["routes", "test", "--config", "rules/routing.yaml",
                              "--alert", str(alert_file), "--firing", str(firing_file)])
    code = args.run(args, out)
    plain = parser.parse_args(["routes", "test", "--config", "rules/routing.yaml",
                               "--tier", "absolute", "--tenant", "globex",
                               "--at", "2026-08-04T10:00:00Z"])
    plain_out = io.StringIO()
    plain_code = plain.run(plain, plain_out)

    assert code == 0
    assert f"inhibited by alert {breach.alert_id}" in out.getvalue()
    assert out.getvalue().rstrip().endswith("result: no receiver")
    assert plain_code == 0
    assert "route.routes[0] [tier=\"absolute\", severity=~\"critical|error\"]: matched" in plain_out.getvalue()
    assert plain_out.getvalue().rstrip().endswith("result: pagerduty-oncall, slack-spend")


def test_loader_reports_lines(tmp_path: Path) -> None:
    """Unknown receivers, fields and matchers are reported at their file line."""
    path = tmp_path / "routing.yaml"
    path.write_text(
        "routing:\n"
        "  receivers:\n"
        "    - {name: hook, type: webhook, url_env: HOOK}\n"
        "  route:\n"
        "    receiver: hook\n"
        "    routes:\n"
        "      - receiver: pagerduty\n"
        "        matchers: ['tier absolute']\n"
        "        group_wiat: 1m\n"
    )

    routing, problems = check_routing(path, {"HOOK": "https://127.0.0.1:9/x"})

    assert routing is None
    shown = [str(p) for p in problems]
    assert any(":8:" in s and "invalid matcher" in s for s in shown), shown
    assert any(":9:" in s and "did you mean 'group_wait'" in s for s in shown), shown


@run_async
async def test_repeat_interval(certificate: Certificate, harness_factory: Any) -> None:
    """Repeats inside repeat_interval are dropped; one after it is sent."""
    harness: Harness = harness_factory(None)
    hook = WebhookServer(certificate).start()
    harness.config = config(
        {"receivers": [{"name": "hook", "type": "webhook", "url_env": "HOOK",
                        "ca_file": str(certificate.cert_path)}],
         "route": {"receiver": "hook", "group_wait": "0s", "group_interval": "1s",
                   "repeat_interval": "4h"}},
        {"HOOK": hook.hook_url},
    )
    append(
        harness.alerts_path,
        record("globex"),
        record("globex", repeat=1, at=START + timedelta(hours=1), started_at=START),  # within 4 h
        record("globex", repeat=2, at=START + timedelta(hours=4), started_at=START),  # 4 h after
    )

    await harness.start()
    await harness.settle()
    await harness.stop()
    hook.stop()

    repeats = [a.get("repeat", 0) for r in hook.requests for a in r.json()["alerts"]]
    assert repeats == [0, 2]
    suppressed = [line for line in harness.audit() if line["outcome"] == "suppressed"]
    assert len(suppressed) == 1
