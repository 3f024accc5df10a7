"""The ``burnrate`` command: check rules, replay history, run the demo."""

from __future__ import annotations

import os

# Forecast fits run one per process; a BLAS thread pool per fit only makes the
# processes compete for the same cores. This must be set before numpy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import importlib
import sys
from collections import Counter
from collections.abc import Sequence
from contextlib import ExitStack
from datetime import UTC
from decimal import Decimal
from pathlib import Path
from typing import TextIO, cast

from rich.console import Console
from rich.markup import escape
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
from detector.backtest import (
    BacktestResult,
    EventsFileError,
    StagedOutputs,
    replay,
    write_alert_line,
)
from detector.config import RuleSet
from detector.engine import EngineSettings
from detector.errors import RuleError
from detector.ruleload import load_rules, run_check
from detector.seriescli import read_all_series, run_series
from detector.seriescsv import SeriesFormatError

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
            "and left out of the windows (it still counts in budgets). Results go "
            "to stdout, errors and warnings to stderr, with a warning that counts "
            "rejected lines by reason. The files in --out are replaced only when "
            "the replay succeeds, so a failed run leaves them as they were. The "
            "one exception is input whose every line is rejected: that run fails, "
            "but still replaces rejected.jsonl, which lists why each line was "
            "rejected."
        ),
        epilog=(
            "exit codes: 0 replayed; 1 invalid rules; 2 invalid usage, unreadable "
            "input or output, or no valid event in the input"
        ),
    )
    backtest.add_argument(
        "events", type=Path, nargs="+",
        help="JSON Lines files (.gz ok), or CSV files of timestamp,value series",
    )
    backtest.add_argument(
        "--series-step", type=_positive_seconds, default=None, metavar="SECONDS",
        help="CSV series only: place row i at the first timestamp + i * SECONDS",
    )
    _add_replay_options(
        backtest,
        required_rules=True,
        out_help="output folder for alerts.jsonl and rejected.jsonl, or with CSV "
        "series for alerts.jsonl and NAME.alerts.csv per series",
    )
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
    _add_replay_options(
        demo,
        required_rules=False,
        out_help="output folder for events.jsonl, alerts.jsonl, rejected.jsonl "
        "and report.html",
    )
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


def _positive_seconds(text: str) -> int:
    try:
        seconds = int(text)
    except ValueError:
        message = f"invalid number of seconds {text!r}"
        raise argparse.ArgumentTypeError(message) from None
    if seconds < 1:
        message = f"{seconds} is not a positive number of seconds"
        raise argparse.ArgumentTypeError(message)
    return seconds


def _unavailable(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def _add_replay_options(
    parser: argparse.ArgumentParser, *, required_rules: bool, out_help: str
) -> None:
    parser.add_argument(
        "--rules", type=Path, required=required_rules,
        help="rules folder or YAML file"
        + ("" if required_rules else " (default: the demo rules)"),
    )
    parser.add_argument(
        "--out", type=Path, default=Path("burnrate-out"),
        help=f"{out_help} (default: burnrate-out)",
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
    errors = _error_console()
    usage_error = _backtest_usage_error(args)
    if usage_error is not None:
        _print_error(errors, usage_error)
        return 2
    if args.compare is not None:
        # Checked before the replay, which can take minutes, rather than after it.
        try:
            load_rules(args.compare)
        except RuleError as error:
            _print_error(errors, f"compared rules are invalid\n{error}")
            return 1
    if args.events[0].suffix == ".csv":
        return _run_series(console, errors, args)
    return _run_replay(console, errors, args.rules, list(args.events), args)


def _backtest_usage_error(args: argparse.Namespace) -> str | None:
    """Return the message for an invalid combination of inputs and options."""
    if args.compare is not None and args.report is None:
        return "--compare needs --report DIR for its output"
    for path in args.events:
        if not path.exists():
            return f"events file {path} not found"
        if not path.is_file():
            return f"events file {path} is not a file"
    series = [path for path in args.events if path.suffix == ".csv"]
    if not series:
        if args.series_step is not None:
            return "--series-step applies to CSV series only"
        return None
    if len(series) < len(args.events):
        return (
            "CSV series and JSON Lines files cannot be replayed together: "
            "run one backtest for each kind"
        )
    if args.report is not None:
        return "--report and --compare apply to JSON Lines events, not to CSV series"
    names = Counter(path.stem for path in series)
    repeated = sorted(name for name, count in names.items() if count > 1)
    if repeated:
        return (
            f"several series files are named {repeated[0]}.csv, so they would share "
            f"{repeated[0]}.alerts.csv: rename them"
        )
    return None


def _run_series(console: Console, errors: Console, args: argparse.Namespace) -> int:
    rules = _load_rules(errors, args.rules)
    if rules is None:
        return 1
    try:
        series = read_all_series(args.events)
    except SeriesFormatError as error:
        # A bad row stops the run, because skipping it would shift the rows
        # re-timed after it.
        _print_error(errors, str(error))
        return 2
    except OSError as error:
        message = f"cannot read series file {error.filename}: {error.strerror}"
        _print_error(errors, message)
        return 2
    if not _make_output_folder(errors, args.out):
        return 2
    try:
        run_series(console, rules, series, args)
    except OSError as error:
        _print_error(errors, f"cannot write to output folder {args.out}: {error}")
        return 2
    return 0


def _error_console() -> Console:
    # soft_wrap keeps each problem on one line, so it can be searched and parsed.
    return Console(stderr=True, highlight=False, soft_wrap=True)


def _print_error(errors: Console, message: str) -> None:
    errors.print(f"[red]error:[/] {escape(message)}")


def _make_output_folder(errors: Console, folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        _print_error(errors, f"cannot create output folder {folder}: {error}")
        return False
    return True


def _load_rules(errors: Console, path: Path) -> RuleSet | None:
    """Load the rules at ``path``, or print their problems and return None."""
    try:
        return load_rules(path)
    except RuleError as error:
        _print_error(errors, f"rules are invalid\n{error}")
        return None


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
    errors = _error_console()
    if not 1 <= args.days <= 14:
        _print_error(errors, f"--days {args.days} is outside 1-14")
        return 2
    if not _make_output_folder(errors, args.out):
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
    return _run_replay(console, errors, rules, [events_path], args)


def _run_replay(
    console: Console,
    errors: Console,
    rules_path: Path,
    sources: list[Path],
    args: argparse.Namespace,
) -> int:
    rules = _load_rules(errors, rules_path)
    if rules is None:
        return 1
    if not _make_output_folder(errors, args.out):
        return 2
    console.print(f"Rules: {rules_path.resolve()}", markup=False, soft_wrap=True)

    try:
        result, collector = _replay_into(console, rules, sources, args)
    except EventsFileError as error:
        _print_error(errors, str(error))
        return 2
    except OSError as error:
        _print_error(errors, f"cannot write to output folder {args.out}: {error}")
        return 2
    if not result.engine.stats.events:
        _print_error(errors, _no_event_message(result, sources, args.out))
        return 2
    _print_input_warnings(errors, result, args.out)
    inputs = (rules, rules_path, sources)
    return _finish_replay(console, errors, result, collector, args, inputs)


def _replay_into(
    console: Console, rules: RuleSet, sources: list[Path], args: argparse.Namespace
) -> tuple[BacktestResult, report.ReportCollector | None]:
    settings = EngineSettings(allowed_lateness_s=getattr(args, "allowed_lateness", 300))
    # The files close when the ExitStack exits, before StagedOutputs renames them.
    with StagedOutputs() as outputs, ExitStack() as stack:
        alerts_path = outputs.stage(args.out / "alerts.jsonl")
        rejects_path = outputs.stage(args.out / "rejected.jsonl")
        alerts_out = stack.enter_context(alerts_path.open("wb"))
        rejects_out = stack.enter_context(rejects_path.open("wb"))
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
        if not result.engine.stats.events:
            # The run fails, so alerts.jsonl keeps its earlier content. The new
            # rejected.jsonl is kept when it lists why each line was rejected.
            outputs.discard(alerts_path)
            if not result.rejected:
                outputs.discard(rejects_path)
    return result, collector


def _no_event_message(result: BacktestResult, sources: list[Path], out: Path) -> str:
    inputs = _name_inputs(sources)
    if not result.rejected:
        return f"no valid event in {inputs}: the input is empty or has only blank lines"
    return (
        f"no valid event in {inputs}: {_rejection_counts(result)}, each listed with "
        f"its line and reason in {out / 'rejected.jsonl'}"
    )


def _print_input_warnings(errors: Console, result: BacktestResult, out: Path) -> None:
    """Print a warning for rejected lines and one for late events, if any."""
    if result.rejected:
        message = (
            f"{_rejection_counts(result)}, each listed with its line and reason in "
            f"{out / 'rejected.jsonl'}"
        )
        errors.print(f"[yellow]warning:[/] {escape(message)}")
    if result.engine.stats.late:
        allowed_s = result.engine.settings.allowed_lateness_s
        message = (
            f"{result.engine.stats.late:,} events arrived more than {allowed_s} s "
            "behind the newest event and were left out of the windows (they still "
            "count in budgets)."
        )
        jump = result.largest_jump
        # A jump within the allowed lateness cannot make an event late by itself.
        if jump is not None and jump.ahead_s > allowed_s:
            when = jump.timestamp.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            message += (
                f" The largest jump in event time came from {jump.source}:{jump.line} "
                f"({when}, {_format_span(jump.ahead_s)} after the newest event "
                "before it)."
            )
        message += " Replay files in time order, or raise --allowed-lateness."
        errors.print(f"[yellow]warning:[/] {escape(message)}")


def _rejection_counts(result: BacktestResult) -> str:
    total = sum(result.rejected.values())
    noun = "record" if total == 1 else "records"
    counts = result.rejected.most_common()
    reasons = ", ".join(f"{reason} {n:,}" for reason, n in counts)
    return f"{total:,} {noun} rejected ({reasons})"


def _name_inputs(sources: list[Path]) -> str:
    """Return the input file names, the first three only when there are more."""
    if len(sources) <= 3:
        return ", ".join(str(path) for path in sources)
    first_three = ", ".join(str(path) for path in sources[:3])
    return f"{first_three} and {len(sources) - 3} other files"


def _format_span(seconds: int) -> str:
    """Format a duration in its largest unit, to one decimal: 183 days, 1.5 hours."""
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size:
            amount = f"{seconds / size:,.1f}".removesuffix(".0")
            return f"{amount} {unit}" + ("" if amount == "1" else "s")
    return f"{seconds} s"


def _finish_replay(
    console: Console,
    errors: Console,
    result: BacktestResult,
    collector: report.ReportCollector | None,
    args: argparse.Namespace,
    inputs: tuple[RuleSet, Path, list[Path]],
) -> int:
    rules, rules_path, sources = inputs
    console.print(_summary(result))
    console.print(
        f"Alerts: {args.out / 'alerts.jsonl'}   "
        f"Rejected lines: {args.out / 'rejected.jsonl'}",
        markup=False,
        soft_wrap=True,
    )
    if collector is not None:
        return _write_report(
            console, errors, collector, result, (rules, rules_path, sources), args
        )
    return 0


def _write_report(
    console: Console,
    errors: Console,
    collector: report.ReportCollector,
    result: BacktestResult,
    inputs: tuple[RuleSet, Path, list[Path]],
    args: argparse.Namespace,
) -> int:
    rules, rules_path, sources = inputs
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
        _print_error(errors, f"compared rules are invalid\n{error}")
        return 1
    except EventsFileError as error:
        _print_error(errors, f"the replay with the compared rules failed: {error}")
        return 2
    except OSError as error:
        _print_error(errors, f"cannot write the report to {args.report}: {error}")
        return 2
    console.print(f"Report: {path}", markup=False, soft_wrap=True)
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
