"""The backtest report: an HTML page with plots per tenant and a table of alerts.

``burnrate backtest --report DIR`` and ``burnrate demo`` write ``report.html``:
per plotted tenant, spend per hour with the rate-of-change baseline band and
the alert markers, and period-to-date spend against the budget with every
fitted forecast and its interval; then every alert per tier and tenant with
its reason, and, with ``--compare``, the alerts another rules folder gains and
loses on the same history.
"""

from __future__ import annotations

import argparse
import html
from collections import Counter
from pathlib import Path
from typing import TextIO

from detector.alerts import AlertRecord, format_console
from detector.backtest import BacktestResult, replay
from detector.config import RuleSet
from detector.report.collect import ReportCollector, ReportData
from detector.report.compare import AlertDiff, compare_alerts, shift_text
from detector.report.render import (
    _STYLE,
    DEFAULT_TOP_N,
    MAX_PLOTTED_TENANTS,
    select_tenants,
    tenant_figure,
)
from detector.ruleload import load_rules

__all__ = [
    "DEFAULT_TOP_N",
    "AlertDiff",
    "ReportCollector",
    "ReportData",
    "add_report_options",
    "build_report",
    "compare_alerts",
    "write_report",
]

REPORT_FILE = "report.html"


def write_report(
    out_dir: Path,
    data: ReportData,
    rules: RuleSet,
    records: list[AlertRecord],
    *,
    title: str = "burnrate backtest report",
    rules_path: Path | None = None,
    comparison: tuple[Path, AlertDiff] | None = None,
    top_n: int = DEFAULT_TOP_N,
) -> Path:
    """Write ``report.html`` into ``out_dir`` and return its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    alerted, top = select_tenants(data, records, top_n)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        _overview(data, records, rules_path, alerted, top),
        _alert_counts(records),
    ]
    if comparison is not None:
        parts.append(_comparison(*comparison))
    for tenant in alerted + top:
        parts.append(f'<section class="tenant" id="tenant-{html.escape(tenant)}">')
        parts.append(f"<h2>{html.escape(tenant)}</h2>")
        parts.append(tenant_figure(tenant, data, rules, records))
        parts.append("</section>")
    parts.append(_alert_table(records))
    parts.append("</body></html>")
    path = out_dir / REPORT_FILE
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def _overview(
    data: ReportData,
    records: list[AlertRecord],
    rules_path: Path | None,
    alerted: list[str],
    top: list[str],
) -> str:
    tenants = len(data.hourly_usd)
    firing = sum(record.status == "firing" for record in records)
    lines = [
        f"<p>{tenants} tenants replayed, {firing} firing records.",
        f" Rules: <code>{html.escape(str(rules_path))}</code>." if rules_path else "",
        "</p><p>Plotted: the tenants that raised an alert",
        f" ({len(alerted)}, at most {MAX_PLOTTED_TENANTS})",
        f" and the top {len(top)} of the others by spend:",
        f" {html.escape(', '.join(alerted + top)) or 'none'}.",
        " Spend per hour comes from the engine's hourly buckets; the shaded band",
        " runs from the same hour one week earlier to the level at which the",
        " first rate-of-change rule fires.</p>",
    ]
    return "".join(lines)


def _alert_counts(records: list[AlertRecord]) -> str:
    counts = Counter(
        (record.tier, record.tenant) for record in records if record.status == "firing"
    )
    rows = "".join(
        f"<tr><td>{html.escape(tier)}</td><td>{html.escape(tenant)}</td>"
        f'<td class="num">{count}</td></tr>'
        for (tier, tenant), count in sorted(counts.items())
    )
    return (
        "<h2>Firing alerts per tier and tenant</h2>"
        "<table><tr><th>tier</th><th>tenant</th><th>firing records</th></tr>"
        f"{rows or '<tr><td colspan=3>no alerts</td></tr>'}</table>"
    )


def _record_row(record: AlertRecord) -> str:
    when = _fired_at(record)
    return (
        f'<tr><td>{when}</td><td class="{record.status}">{record.status}</td>'
        f"<td>{html.escape(record.tier)}</td><td>{html.escape(record.tenant)}</td>"
        f"<td>{html.escape(record.rule_id)}</td><td>{html.escape(record.severity)}</td>"
        f"<td>{html.escape(record.summary)}</td></tr>"
    )


_HEADER = (
    "<tr><th>event time</th><th>status</th><th>tier</th><th>tenant</th>"
    "<th>rule</th><th>severity</th><th>reason</th></tr>"
)


def _alert_table(records: list[AlertRecord]) -> str:
    ordered = sorted(records, key=lambda r: (r.tier, r.tenant, r.event_time))
    rows = "".join(_record_row(record) for record in ordered)
    return f'<h2>Alerts</h2><table id="alerts">{_HEADER}{rows}</table>'


def _comparison(other_rules: Path, diff: AlertDiff) -> str:
    def table(title: str, records: list[AlertRecord]) -> str:
        rows = "".join(_record_row(record) for record in records)
        empty = "<tr><td colspan=7>none</td></tr>"
        return (
            f"<h3>{title} ({len(records)})</h3><table>{_HEADER}{rows or empty}</table>"
        )

    moved_rows = "".join(
        f"<tr><td>{html.escape(shift_text(base, other))}</td>"
        f"<td>{html.escape(_fired_at(base))}</td>"
        f"<td>{html.escape(_fired_at(other))}</td>"
        f"<td>{html.escape(other.tenant)}</td><td>{html.escape(other.rule_id)}</td>"
        f"<td>{html.escape(other.summary)}</td></tr>"
        for base, other in diff.moved
    )
    moved = (
        f"<h3>Moved: raised by both at another time ({len(diff.moved)})</h3><table>"
        "<tr><th>shift</th><th>fired (replayed rules)</th>"
        "<th>fired (compared rules)</th>"
        "<th>tenant</th><th>rule</th><th>summary (compared rules)</th></tr>"
        f"{moved_rows or '<tr><td colspan=6>none</td></tr>'}</table>"
    )
    return (
        f"<h2>Compared with <code>{html.escape(str(other_rules))}</code></h2>"
        f"<p>{diff.kept} alerts raised by both rule sets.</p>"
        + table("Gained: raised only by the compared rules", diff.gained)
        + table("Lost: raised only by the replayed rules", diff.lost)
        + moved
    )


def _fired_at(record: AlertRecord) -> str:
    """Return the record's time as the console and the alerts table show it."""
    return record.event_time.strftime("%Y-%m-%d %H:%M:%SZ")


def add_report_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--report``, ``--compare`` and ``--top`` to a replaying command."""
    parser.add_argument(
        "--report",
        type=Path,
        metavar="DIR",
        help="write report.html (plots and the alerts table) into DIR",
    )
    parser.add_argument(
        "--compare",
        type=Path,
        metavar="OTHER_RULES",
        help="replay the same events with OTHER_RULES too and list the alerts "
        "gained, lost and moved in time (needs --report)",
    )
    parser.add_argument(
        "--top",
        type=int,
        default=DEFAULT_TOP_N,
        help=f"plot this many non-alerted tenants by spend (default {DEFAULT_TOP_N})",
    )


def build_report(
    report_dir: Path,
    collector: ReportCollector,
    result: BacktestResult,
    rules: RuleSet,
    rules_path: Path,
    sources: list[Path],
    *,
    compare_with: Path | None = None,
    top_n: int = DEFAULT_TOP_N,
    out: TextIO | None = None,
) -> Path:
    """Finish collecting, run the comparison replay if asked, and write the report.

    Raises ``RuleError`` when the compared rules are invalid.
    """
    collector.finish(result.engine)
    comparison = None
    if compare_with is not None:
        other = load_rules(compare_with)
        other_result = replay(other, sources)
        diff = compare_alerts(result.records, other_result.records)
        comparison = (compare_with, diff)
        if out is not None:
            _print_diff(compare_with, diff, out)
    return write_report(
        report_dir,
        collector.data,
        rules,
        result.records,
        rules_path=rules_path,
        comparison=comparison,
        top_n=top_n,
    )


def _print_diff(other: Path, diff: AlertDiff, out: TextIO) -> None:
    print(
        f"Compared with {other}: {len(diff.gained)} alerts gained, "
        f"{len(diff.lost)} lost, {diff.kept} in both ({len(diff.moved)} moved)",
        file=out,
    )
    for sign, records in (("+", diff.gained), ("-", diff.lost)):
        for record in records:
            print(f"{sign} {format_console(record)}", file=out)
    for base, other_record in diff.moved:
        print(f"~ {format_console(other_record)} ({shift_text(base, other_record)})", file=out)
