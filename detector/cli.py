"""The ``burnrate`` command: check rules, replay history, run the demo."""

from __future__ import annotations

import os

# Forecast fits run one per process; a BLAS thread pool per fit only makes the
# processes compete for the same cores. This must be set before numpy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import gzip
import importlib
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from decimal import Decimal
from pathlib import Path
from typing import TextIO, cast

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from detector import report, ruletest
from detector.alerts import AlertRecord, format_console
from detector.backtest import BacktestResult, replay, write_alert_line
from detector.config import RuleSet
from detector.engine import EngineSettings
from detector.errors import RuleError
from detector.ruleload import load_rules, run_check

TIERS = ("absolute", "rate_of_change", "predictive")
_CENT = Decimal("0.01")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return int(args.run(args))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="burnrate",
        description="Streaming alerts on LLM spend and latency.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    check = commands.add_parser(
        "check",
        help="validate a rules folder or file",
        description=(
            "Validate every rule file of a folder (routing section included) and "
            "print each problem as file:line:column."
        ),
        epilog=(
            "exit codes: 0 no errors (warnings allowed unless --strict); "
            "1 at least one error, or a warning with --strict; 2 invalid usage"
        ),
    )
    check.add_argument("rules", type=Path, help="rules folder or YAML file")
    check.add_argument(
        "--strict", action="store_true", help="exit 1 on warnings as well as errors"
    )
    check.set_defaults(run=_check)

    ruletest.add_commands(commands)

    backtest = commands.add_parser(
        "backtest",
        help="replay event files through the rules",
        description=(
            "Replay event files through the same core as the service, with the "
            "events' own time as the clock. Files are read in the order given and "
            "lines in file order, as a Kafka partition would deliver them; an event "
            "more than --allowed-lateness behind the newest one is counted late "
            "and left out of the windows (it still counts in budgets)."
        ),
        epilog="exit codes: 0 replayed; 1 invalid rules; 2 unreadable input or output",
    )
    backtest.add_argument(
        "events", type=Path, nargs="+",
        help="JSON Lines files (.gz ok), or CSV files of timestamp,value series",
    )
    backtest.add_argument(
        "--series-step", type=int, default=None, metavar="SECONDS",
        help="CSV series only: place row i at the first timestamp + i * SECONDS",
    )
    _add_replay_options(backtest, required_rules=True)
    report.add_report_options(backtest)
    backtest.set_defaults(run=_backtest)

    serve = commands.add_parser(
        "serve",
        help="run as a Kafka service (settings from BURNRATE_* variables)",
        description=(
            "Run one worker of the Kafka service. Settings come from BURNRATE_* "
            "environment variables: the fields of detector/service/settings.py "
            "in upper case, for example BURNRATE_KAFKA_BOOTSTRAP."
        ),
        epilog="exit codes: 0 stopped by SIGTERM or SIGINT; 1 invalid rules",
    )
    serve.add_argument(
        "--rules", type=Path, help="rules folder (default: BURNRATE_RULES or ./rules)"
    )
    serve.set_defaults(run=_serve)

    _add_optional_commands(commands)

    demo = commands.add_parser(
        "demo",
        help="replay two weeks of real multi-tenant traffic (ServeGen)",
        description=(
            "Generate per-request events from the shipped ServeGen extract (50 "
            "real tenants, 1 in 500 requests) and replay them through the demo "
            "rules. Writes events.jsonl, alerts.jsonl, rejected.jsonl and "
            "report.html into --out."
        ),
    )
    demo.add_argument(
        "--days", type=int, default=14, help="days of traffic to replay, 1 to 14 (default: 14)"
    )
    _add_replay_options(demo, required_rules=False)
    demo.set_defaults(run=_demo)
    return parser


def _add_optional_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the commands whose packages come with an optional extra."""
    from detector.evaluation.cli import add_commands as add_evaluate

    add_evaluate(commands)
    for module, extra in (
        ("detector.reconcile.cli", "reconcile"),
        ("routing.cli", "routing"),
    ):
        try:
            add_commands = importlib.import_module(module).add_commands
        except ImportError as error:
            if error.name and error.name.startswith(("detector", "routing")):
                continue  # the module itself does not exist in this build
            message = f"unavailable: install burnrate[{extra}] ({error.name} missing)"
            name = "reconcile" if extra == "reconcile" else "routes"
            stub = commands.add_parser(name, help=message)
            stub.set_defaults(run=lambda args, text=message: _unavailable(text))
            continue
        add_commands(commands)


def _unavailable(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _add_replay_options(parser: argparse.ArgumentParser, *, required_rules: bool) -> None:
    parser.add_argument(
        "--rules", type=Path, required=required_rules,
        help="rules folder or YAML file"
        + ("" if required_rules else " (default: the demo rules)"),
    )
    parser.add_argument(
        "--out", type=Path, default=Path("burnrate-out"),
        help="output folder for alerts.jsonl, rejected.jsonl and, with a report, "
        "report.html (default: burnrate-out)",
    )
    parser.add_argument(
        "--allowed-lateness", type=int, default=300, metavar="SECONDS",
        help="how far behind the newest event an event may arrive and still join "
        "its windows (default: 300)",
    )
    parser.add_argument(
        "--quiet", action="store_true", help="print only the summary, not each alert"
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="hide the progress bar"
    )


def _check(args: argparse.Namespace) -> int:
    return run_check(args.rules, sys.stdout, strict=args.strict)


def _backtest(args: argparse.Namespace) -> int:
    console = Console(highlight=False)
    if args.compare is not None and args.report is None:
        console.print("[red]error:[/] --compare needs --report DIR for its output")
        return 2
    for path in args.events:
        if not path.is_file():
            console.print(f"[red]error:[/] events file {path} not found")
            return 2
    if args.compare is not None:
        # Checked before the replay, which can take minutes, rather than after it.
        try:
            load_rules(args.compare)
        except RuleError as error:
            console.print(f"error: compared rules are invalid\n{error}", markup=False)
            return 1
    if all(path.suffix == ".csv" for path in args.events):
        from detector.seriescli import run_series

        return run_series(console, args)
    return _run_replay(console, args.rules, list(args.events), args)


def _serve(args: argparse.Namespace) -> int:
    from detector.service.logs import configure_logging
    from detector.service.run import serve
    from detector.service.settings import ServiceSettings

    settings = ServiceSettings()
    rules_path = args.rules or settings.rules
    # The reloader watches settings.rules, so it must be the folder loaded here.
    settings = settings.model_copy(update={"rules": rules_path})
    try:
        rules = load_rules(rules_path)
    except RuleError as error:
        print(str(error), file=sys.stderr)
        return 1
    secret = settings.api_token.get_secret_value() if settings.api_token else ""
    configure_logging(
        settings.log_format, settings.log_level, [secret], settings.log_repeats_per_min
    )
    serve(settings, rules)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from detector.demo import servegen

    console = Console(highlight=False)
    if not 1 <= args.days <= 14:
        console.print(f"[red]error:[/] --days {args.days} is outside 1-14")
        return 2
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        console.print(f"[red]error:[/] cannot create output folder {args.out}: {error}")
        return 2
    events_path = args.out / "events.jsonl"
    console.print(
        "Generating per-request events from the shipped ServeGen extract "
        f"({args.days} days) into {events_path} ..."
    )
    count = servegen.write_demo_events(events_path, days=args.days)
    console.print(f"{count:,} events written.")
    rules = args.rules or servegen.DEMO_RULES
    args.report = args.out  # the demo always writes its report.html there
    return _run_replay(console, rules, [events_path], args)


def _run_replay(
    console: Console, rules_path: Path, sources: list[Path], args: argparse.Namespace
) -> int:
    try:
        rules = load_rules(rules_path)
    except RuleError as error:
        console.print(str(error), markup=False)
        return 1
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        console.print(f"[red]error:[/] cannot create output folder {args.out}: {error}")
        return 2
    console.print(f"Rules: {rules_path.resolve()}")

    try:
        result, collector = _replay_into(console, rules, sources, args)
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        console.print(f"[red]error:[/] {error}", markup=True)
        return 2
    if result.engine.stats.late:
        console.print(
            f"[yellow]warning:[/] {result.engine.stats.late:,} events arrived more "
            f"than {result.engine.settings.allowed_lateness_s} s behind the newest "
            "event and were left out of the windows (they still count in budgets). "
            "Replay files in time order, or raise --allowed-lateness."
        )
    return _finish_replay(console, result, collector, args, (rules, rules_path, sources))


def _replay_into(
    console: Console, rules: RuleSet, sources: list[Path], args: argparse.Namespace
) -> tuple[BacktestResult, report.ReportCollector | None]:
    settings = EngineSettings(allowed_lateness_s=getattr(args, "allowed_lateness", 300))
    with ExitStack() as stack:
        alerts_out = stack.enter_context((args.out / "alerts.jsonl").open("wb"))
        rejects_out = stack.enter_context((args.out / "rejected.jsonl").open("wb"))
        write_alert = write_alert_line(alerts_out)
        progress = _progress(console, sources, disabled=args.no_progress)
        stack.enter_context(progress)
        task = progress.add_task("replaying", total=_total_bytes(sources))

        def on_alert(record: AlertRecord) -> None:
            write_alert(record)
            if not args.quiet:
                progress.console.print(
                    format_console(record), markup=False, soft_wrap=True
                )

        report_dir = getattr(args, "report", None)
        collector = report.ReportCollector() if report_dir else None
        result = replay(
            rules,
            sources,
            settings=settings,
            on_alert=on_alert,
            rejects_out=rejects_out,
            on_progress=lambda size: progress.advance(task, size),
            observer=collector.observe if collector else None,
        )
    return result, collector


def _finish_replay(
    console: Console,
    result: BacktestResult,
    collector: report.ReportCollector | None,
    args: argparse.Namespace,
    inputs: tuple[RuleSet, Path, list[Path]],
) -> int:
    rules, rules_path, sources = inputs
    console.print(_summary(result))
    console.print(
        f"Alerts: {args.out / 'alerts.jsonl'}   "
        f"Rejected lines: {args.out / 'rejected.jsonl'}"
    )
    if collector is not None:
        return _write_report(console, collector, result, rules, rules_path, sources, args)
    return 0


def _write_report(
    console: Console,
    collector: report.ReportCollector,
    result: BacktestResult,
    rules: RuleSet,
    rules_path: Path,
    sources: list[Path],
    args: argparse.Namespace,
) -> int:
    try:
        path = report.build_report(
            args.report,
            collector,
            result,
            rules,
            rules_path,
            sources,
            compare_with=getattr(args, "compare", None),
            top_n=getattr(args, "top", report.DEFAULT_TOP_N),
            out=cast(TextIO, console.file),
        )
    except RuleError as error:
        console.print(f"error: compared rules are invalid\n{error}", markup=False)
        return 1
    console.print(f"Report: {path}")
    return 0


def _progress(console: Console, sources: list[Path], *, disabled: bool) -> Progress:
    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=disabled,
        transient=True,
    )


def _total_bytes(sources: list[Path]) -> int | None:
    if any(path.suffix == ".gz" for path in sources):
        return None
    return sum(path.stat().st_size for path in sources)


def _summary(result: BacktestResult) -> Table:
    stats = result.engine.stats
    table = Table(title="Backtest summary", show_header=True)
    table.add_column("measure")
    table.add_column("value", justify="right")
    for tier in TIERS:
        firing = stats.alerts[(tier, "firing")]
        resolved = stats.alerts[(tier, "resolved")]
        table.add_row(f"alerts {tier}", f"{firing} firing, {resolved} resolved")
    alerted = {record.tenant for record in result.records}
    table.add_row("tenants", f"{len(result.engine.tenants)} ({len(alerted)} alerted)")
    table.add_row("events", f"{stats.events:,}")
    table.add_row("duplicates dropped", f"{stats.duplicates:,}")
    table.add_row("late events", f"{stats.late:,}")
    rejected = sum(result.rejected.values())
    reasons = ", ".join(f"{reason} {n}" for reason, n in result.rejected.most_common())
    table.add_row("rejected", f"{rejected:,}" + (f" ({reasons})" if reasons else ""))
    sources = ", ".join(f"{name} {n:,}" for name, n in stats.cost_sources.most_common())
    table.add_row("cost source", sources or "-")
    if stats.unknown_models:
        models = ", ".join(f"{name} ({n})" for name, n in stats.unknown_models.most_common(5))
        table.add_row("unknown models", models)
    table.add_row("spend priced", f"${stats.spend_usd.quantize(_CENT):,}")
    table.add_row("forecasts fitted", f"{stats.forecasts:,}")
    rate = stats.events / result.elapsed_s if result.elapsed_s else 0.0
    table.add_row("time taken", f"{result.elapsed_s:.1f} s ({rate:,.0f} events/s)")
    return table


if __name__ == "__main__":
    sys.exit(main())
