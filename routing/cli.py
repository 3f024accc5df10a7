"""The ``burnrate routes test``, ``routes deliver`` and ``notify-test`` commands.

``routes test`` shows which receivers an alert would reach and why, without
sending anything. The alert comes from a JSON file (one ``AlertRecord``, as in
``alerts.jsonl``) or from flags. Secrets need not be set for it: a variable
that is not set stands in as a placeholder, because nothing is sent.

``routes deliver`` sends notifications continuously (``routing.deliver``).

``notify-test RECEIVER`` sends one clearly marked test notification to one
receiver and prints the outcome, to check credentials and URLs.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec

from detector import alerts
from detector.alerts import AlertRecord, alert_id
from detector.errors import RuleError
from routing.deliver import add_arguments as add_deliver_arguments
from routing.deliver import run_deliver
from routing.load import load_routing
from routing.policy import Policy
from routing.receivers import build_receiver
from routing.receivers.base import DeliveryError, Notification
from routing.redact import Redactor, install_filter

DEFAULT_CONFIG = Path("rules/routing.yaml")


def add_commands(subparsers: Any) -> None:
    """Register ``routes test``, ``routes deliver`` and ``notify-test`` on the subparsers."""
    routes = subparsers.add_parser("routes", help="inspect notification routing")
    routes_commands = routes.add_subparsers(dest="routes_command", metavar="COMMAND")
    routes_commands.required = True
    test = routes_commands.add_parser(
        "test", help="show which receivers an alert reaches and why (sends nothing)"
    )
    _add_config_option(test)
    test.add_argument("--alert", type=Path, help="JSON file with one alert record ('-' for stdin)")
    test.add_argument(
        "--firing", type=Path,
        help="JSON Lines file of alerts firing now, for inhibition (an alerts.jsonl)",
    )
    test.add_argument("--tenant", default="example-tenant", help="tenant id")
    test.add_argument("--tier", default="absolute",
                      choices=["absolute", "rate_of_change", "predictive"])
    test.add_argument("--severity", default="critical", help="critical, error, warning or info")
    test.add_argument("--signal", default="spend", choices=["spend", "tokens", "requests"])
    test.add_argument("--rule", default="example-rule", help="rule id")
    test.add_argument("--status", default="firing", choices=["firing", "resolved"])
    test.add_argument("--label", action="append", default=[], metavar="NAME=VALUE",
                      help="alert label; repeat for more")
    test.add_argument("--at", help="event time, RFC 3339 (default: now)")
    test.set_defaults(run=run_routes_test)

    deliver = routes_commands.add_parser(
        "deliver", help="send notifications for alert records until SIGTERM"
    )
    add_deliver_arguments(deliver)
    deliver.set_defaults(run=run_deliver)

    notify = subparsers.add_parser(
        "notify-test", help="send a test notification to one receiver"
    )
    notify.add_argument("receiver", help="receiver name from the routing file")
    _add_config_option(notify)
    notify.set_defaults(run=run_notify_test)


def _add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", type=Path, default=DEFAULT_CONFIG,
        help=f"routing file (default: {DEFAULT_CONFIG})",
    )


def run_routes_test(args: argparse.Namespace, out: Any = None) -> int:
    out = out or sys.stdout
    try:
        config = load_routing(args.config, placeholders=True)
        record = _alert_from_args(args)
        firing = _firing(args.firing)
    except RuleError as error:
        print(error, file=out)
        return 1
    except (OSError, ValueError, msgspec.DecodeError) as error:
        print(f"invalid alert input: {error}", file=out)
        return 2
    decision = Policy(config).decide(record, firing)
    print(decision.explain(), file=out)
    return 0


def run_notify_test(args: argparse.Namespace, out: Any = None) -> int:
    out = out or sys.stdout
    try:
        config = load_routing(args.config)
    except RuleError as error:
        print(error, file=out)
        return 1
    try:
        settings = config.receiver(args.receiver)
    except KeyError:
        names = ", ".join(s.name for s in config.receivers)
        print(f"unknown receiver {args.receiver!r}: use one of {names}", file=out)
        return 2
    redactor = Redactor()
    receiver = build_receiver(settings, redactor)
    install_filter(redactor)
    notification = test_notification(args.receiver, config.dashboard_url)
    try:
        result = asyncio.run(_send_once(receiver, notification))
    except DeliveryError as error:
        kind = "retryable" if error.retryable else "permanent"
        print(f"{args.receiver}: test notification failed ({kind}): {error.message}", file=out)
        return 1
    print(f"{args.receiver}: test notification delivered (status {result})", file=out)
    return 0


async def _send_once(receiver: Any, notification: Notification) -> int | None:
    try:
        result = await receiver.send(notification)
    finally:
        await receiver.aclose()
    return result.status_code  # type: ignore[no-any-return]


def test_notification(receiver: str, dashboard_template: str | None) -> Notification:
    """Return a notification about a made-up alert, marked as a test everywhere."""
    now = datetime.now(UTC).replace(microsecond=0)
    record = AlertRecord(
        alert_id=alert_id("notify-test", receiver, now.isoformat()),
        status="firing",
        tier="absolute",
        severity="info",
        rule_id="notify-test",
        tenant="test-tenant",
        signal="spend",
        unit="usd",
        observed=Decimal(0),
        threshold=Decimal(0),
        event_time=now,
        started_at=now,
        summary=f"Test notification from burnrate to receiver {receiver}; no action needed.",
    )
    return Notification(
        receiver=receiver,
        key=f"test:{record.alert_id}",
        alerts=(record,),
        dashboard_template=dashboard_template,
        test=True,
    )


def _alert_from_args(args: argparse.Namespace) -> AlertRecord:
    if args.alert is not None:
        raw = sys.stdin.buffer.read() if str(args.alert) == "-" else args.alert.read_bytes()
        return alerts.decoder.decode(raw.strip())
    at = datetime.fromisoformat(args.at) if args.at else datetime.now(UTC)
    if at.tzinfo is None:
        raise ValueError(f"--at {args.at!r} has no zone: add Z or an offset")
    labels = {}
    for item in args.label:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ValueError(f"invalid --label {item!r}: write NAME=VALUE")
        labels[name] = value
    unit = alerts.UNIT_OF_SIGNAL[args.signal]
    return AlertRecord(
        alert_id=alert_id("routes-test", args.tenant, args.rule, at.isoformat()),
        status=args.status,
        tier=args.tier,
        severity=args.severity,
        rule_id=args.rule,
        tenant=args.tenant,
        signal=args.signal,
        unit=unit,
        observed=Decimal(0),
        event_time=at,
        started_at=at,
        summary="routes test",
        series={"tenant": args.tenant},
        labels=labels,
    )


def _firing(path: Path | None) -> dict[str, AlertRecord]:
    if path is None:
        return {}
    firing: dict[str, AlertRecord] = {}
    for line in path.read_bytes().splitlines():
        if line.strip():
            record = alerts.decoder.decode(line)
            if record.status == "firing":
                firing[record.alert_id] = record
            else:
                firing.pop(record.alert_id, None)
    return firing
