"""The ``burnrate reconcile`` command: compare a day's metered spend with the providers.

It reads request events from JSON Lines files, prices them (reported cost, else
posted prices and the rules' price overrides), sums them per day, provider, model
and project, runs the reconciliation for the day and prints one row per provider.
Alerts are written as JSON Lines when ``--alerts-out`` is given. The exit status is
0 when every provider matched or was partial, 1 when one differed or could not be
checked, and 2 on invalid input.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from detector.alerts import encoder as alert_encoder
from detector.alerts import format_amount
from detector.backtest import open_events
from detector.decode import decode_record
from detector.errors import RuleError
from detector.events import Event
from detector.pricing import Pricer
from detector.reconcile.job import (
    ProviderReconciliation,
    aggregate_metered,
    run_reconciliation,
)
from detector.reconcile.settings import ReconcileSettings
from detector.ruleload import load_rules


def add_commands(subparsers: Any) -> None:
    """Add the ``reconcile`` command to the ``burnrate`` subcommands."""
    command = subparsers.add_parser(
        "reconcile", help="compare a day's metered spend with the providers' reports"
    )
    command.add_argument(
        "--day", required=True, type=date.fromisoformat, help="UTC day, YYYY-MM-DD"
    )
    command.add_argument(
        "--settings", required=True, type=Path, help="reconciliation settings YAML"
    )
    command.add_argument(
        "--events", required=True, type=Path, nargs="+", help="JSON Lines (.gz ok)"
    )
    command.add_argument(
        "--rules", type=Path, help="rules folder or file whose price overrides apply"
    )
    command.add_argument("--alerts-out", type=Path, help="write alerts as JSON Lines")
    command.add_argument(
        "--now",
        type=datetime.fromisoformat,
        help="RFC 3339 time that decides which days are complete (default: now)",
    )
    command.set_defaults(run=run_command)


def run_command(args: argparse.Namespace) -> int:
    """Run ``burnrate reconcile`` with parsed arguments and return the exit status."""
    console = Console()
    try:
        settings = load_settings(args.settings)
        overrides = load_rules(args.rules).prices if args.rules else ()
    except (OSError, ValueError, RuleError) as error:
        print(f"burnrate reconcile: {error}", file=sys.stderr)
        return 2

    pricer = Pricer(overrides)
    priced = ((event, pricer.price(event).cost_usd) for event in _events(args.events))
    metered = aggregate_metered(priced, settings.projects)
    now = args.now or datetime.now(UTC)
    if now.tzinfo is None:
        print("burnrate reconcile: --now needs a UTC offset", file=sys.stderr)
        return 2
    outcomes = run_reconciliation(args.day, metered, settings, now)

    console.print(_table(outcomes))
    if args.alerts_out is not None:
        with args.alerts_out.open("ab") as out:
            for outcome in outcomes:
                if outcome.alert is not None:
                    out.write(alert_encoder.encode(outcome.alert) + b"\n")
    failed = any(outcome.status in ("mismatch", "error") for outcome in outcomes)
    return 1 if failed else 0


def load_settings(path: Path) -> ReconcileSettings:
    """Load reconciliation settings from a YAML file."""
    with path.open() as stream:
        document = yaml.safe_load(stream) or {}
    try:
        return ReconcileSettings.model_validate(document)
    except ValidationError as error:
        raise ValueError(f"{path}: invalid reconciliation settings: {error}") from None


def _events(paths: list[Path]) -> Iterator[Event]:
    for path in paths:
        with open_events(path) as stream:
            for line in stream:
                if line.strip():
                    events, _ = decode_record(line)
                    yield from events


def _table(outcomes: list[ProviderReconciliation]) -> Table:
    table = Table(title="Reconciliation")
    for column in ("provider", "day", "status", "metered", "reported", "note"):
        table.add_column(column)
    for outcome in outcomes:
        reported = outcome.reported_usd
        table.add_row(
            outcome.provider,
            outcome.day.isoformat(),
            outcome.status,
            _money(outcome.metered_usd),
            "-" if reported is None else _money(reported),
            outcome.alert.summary if outcome.alert else outcome.reason,
        )
    return table


def _money(value: Decimal) -> str:
    return format_amount(value, "usd")
