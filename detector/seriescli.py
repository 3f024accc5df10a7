"""``burnrate backtest`` on CSV metric series: one series per file, one tenant each.

Every file is read before the first replay, so a bad row in the last file stops
the run before any alert is printed. The outputs are staged with
``StagedOutputs``, so a run that fails leaves the output folder as it was.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from detector.alerts import format_console
from detector.backtest import StagedOutputs, write_alert_line
from detector.config import RuleSet
from detector.engine import EngineSettings
from detector.seriescsv import (
    SeriesFormatError,
    SeriesRow,
    read_series,
    replay_series,
    write_alert_column,
)

Series = tuple[Path, list[SeriesRow]]


def read_all_series(paths: list[Path]) -> list[Series]:
    """Read every CSV file. Raises SeriesFormatError or OSError on the first bad one.

    A file with a header but no row is an error too, so that a backtest judging
    a rule change does not pass on an empty series.
    """
    series = []
    for path in paths:
        rows = read_series(path)
        if not rows:
            raise SeriesFormatError(f"{path}: no rows after the timestamp,value header")
        series.append((path, rows))
    return series


def run_series(
    console: Console, rules: RuleSet, series: list[Series], args: argparse.Namespace
) -> None:
    """Replay each series and write alerts.jsonl and NAME.alerts.csv to --out.

    The folder --out must exist. Raises OSError when a file in it cannot be
    written.
    """
    settings = EngineSettings(allowed_lateness_s=args.allowed_lateness)
    outputs = StagedOutputs()
    # The alerts file closes before StagedOutputs renames it.
    with outputs, outputs.stage(args.out / "alerts.jsonl").open("wb") as alerts_out:
        write_alert = write_alert_line(alerts_out)
        for path, rows in series:
            replay = replay_series(
                rules, rows, step_s=args.series_step, settings=settings
            )
            for record in replay.records:
                write_alert(record)
                if not args.quiet:
                    console.print(format_console(record), markup=False, soft_wrap=True)
            column_path = outputs.stage(args.out / f"{path.stem}.alerts.csv")
            write_alert_column(replay, column_path)
            console.print(
                f"{path}: {len(replay.rows)} rows, {len(replay.alert_rows)} alerts",
                markup=False,
                soft_wrap=True,
            )
