"""``burnrate backtest`` on CSV metric series: one series per file, one tenant each."""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.markup import escape

from detector.alerts import format_console
from detector.backtest import write_alert_line
from detector.errors import RuleError
from detector.ruleload import load_rules
from detector.seriescsv import SeriesFormatError, replay_series_csv, write_alert_column


def run_series(console: Console, args: argparse.Namespace) -> int:
    """Replay each CSV file; write alerts.jsonl and <name>.alerts.csv to --out."""
    try:
        rules = load_rules(args.rules)
    except RuleError as error:
        console.print(str(error), markup=False)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    with (args.out / "alerts.jsonl").open("wb") as alerts_out:
        write_alert = write_alert_line(alerts_out)
        for path in args.events:
            try:
                replay = replay_series_csv(rules, path, step_s=args.series_step)
            except SeriesFormatError as error:
                # Exit 2, as for other unreadable input: a bad row stops the
                # file, because skipping it would shift the rows re-timed after it.
                console.print(f"[red]error:[/] {escape(str(error))}", soft_wrap=True)
                return 2
            for record in replay.records:
                write_alert(record)
                if not args.quiet:
                    console.print(format_console(record), markup=False, soft_wrap=True)
            write_alert_column(replay, args.out / f"{path.stem}.alerts.csv")
            console.print(
                f"{path}: {len(replay.rows)} rows, {len(replay.alert_rows)} alerts"
            )
    return 0
