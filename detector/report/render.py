"""Render the backtest report: one self-contained HTML page with inline SVG plots.

The plots are drawn with matplotlib's SVG backend and embedded in the page, so
it opens without a network connection or any script. Each plotted tenant adds
render time and page size, so the page plots the tenants that raised an alert
plus the top tenants by spend, and lists which.
"""

from __future__ import annotations

import io
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from detector.alerts import AlertRecord, format_amount
from detector.config import Budget, ForecastRule, RateOfChangeRule, RuleSet
from detector.periods import period_bounds, zone
from detector.report.collect import ReportData
from detector.windows import COARSE_BUCKET_S

DEFAULT_TOP_N = 5
MAX_PLOTTED_TENANTS = 24
_WEEK_S = 7 * 86400
_TIER_COLORS = {
    "absolute": "#c0392b",
    "rate_of_change": "#d68910",
    "predictive": "#7d3c98",
    "service": "#566573",
}
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; }
th { background: #f2f2f2; }
td.num { text-align: right; }
section.tenant { margin: 2em 0; }
.firing { color: #c0392b; }
.resolved { color: #1e8449; }
"""


def select_tenants(
    data: ReportData, records: list[AlertRecord], top_n: int
) -> tuple[list[str], list[str]]:
    """Return (alerted tenants by alert count, top tenants by spend not alerted)."""
    counts = Counter(record.tenant for record in records if record.status == "firing")
    alerted = [
        tenant for tenant, _ in counts.most_common() if tenant in data.hourly_usd
    ]
    totals = {
        tenant: sum(hours.values(), Decimal(0))
        for tenant, hours in data.hourly_usd.items()
    }
    by_spend = sorted(totals, key=lambda tenant: (-totals[tenant], tenant))
    top = [tenant for tenant in by_spend if tenant not in counts][:top_n]
    room = max(MAX_PLOTTED_TENANTS - len(top), 0)
    return alerted[:room], top


def _svg(figure: Figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _instant(hour_s: int) -> datetime:
    return datetime.fromtimestamp(hour_s, UTC)


def _x(instant: datetime) -> float:
    """Return matplotlib's date number of ``instant``, the x value of a date axis."""
    return float(mdates.date2num(instant))  # type: ignore[no-untyped-call]


def _spend_axes(
    axes: Axes,
    tenant: str,
    hourly: dict[int, Decimal],
    rules: RuleSet,
    records: list[AlertRecord],
) -> None:
    hours = sorted(hourly)
    times = [_x(_instant(hour)) for hour in hours]
    values = [float(hourly[hour]) for hour in hours]
    axes.plot(times, values, color="#1f618d", linewidth=0.9, label="spend per hour")
    rate = next(
        (
            r
            for r in rules.rules
            if isinstance(r, RateOfChangeRule) and r.applies_to(tenant)
        ),
        None,
    )
    if rate is not None:
        _baseline_band(axes, hourly, hours, rate)
    _alert_markers(axes, records, max(values, default=0.0))
    axes.set_ylabel("US$ per hour")
    axes.set_title(f"{tenant}: spend per hour, baseline band and alerts", fontsize=10)
    axes.legend(fontsize=7, loc="upper left")


def _baseline_band(
    axes: Axes, hourly: dict[int, Decimal], hours: list[int], rule: RateOfChangeRule
) -> None:
    """Shade from last week's level to the level at which ``rule`` fires."""
    window_h = max(rule.window_s // COARSE_BUCKET_S, 1)

    def window_sum(end_hour_s: int) -> float:
        return (
            sum(
                float(hourly.get(end_hour_s - k * COARSE_BUCKET_S, Decimal(0)))
                for k in range(window_h)
            )
            / window_h
        )

    band_times: list[float] = []
    lows: list[float] = []
    highs: list[float] = []
    first = hours[0] if hours else 0
    for hour in hours:
        if hour - _WEEK_S < first:
            continue
        base = window_sum(hour - _WEEK_S)
        fire = max(
            base * float(rule.min_ratio), base + float(rule.min_increase) / window_h
        )
        band_times.append(_x(_instant(hour)))
        lows.append(base)
        highs.append(fire)
    if band_times:
        axes.fill_between(
            band_times,
            lows,
            highs,
            color="#f5b041",
            alpha=0.25,
            linewidth=0,
            label=f"baseline to fire level of {rule.id} (per hour)",
        )
        axes.plot(
            band_times,
            lows,
            color="#d68910",
            linewidth=0.6,
            label="same hour last week",
        )


def _alert_markers(axes: Axes, records: list[AlertRecord], top: float) -> None:
    shown: set[str] = set()
    for record in records:
        if record.status != "firing":
            continue
        label = record.tier if record.tier not in shown else None
        shown.add(record.tier)
        axes.axvline(
            _x(record.event_time),
            color=_TIER_COLORS[record.tier],
            linewidth=0.8,
            alpha=0.7,
        )
        axes.scatter(
            [_x(record.event_time)],
            [top * 1.02],
            marker="v",
            s=30,
            color=_TIER_COLORS[record.tier],
            label=f"{label} alert" if label else None,
            zorder=3,
        )


def _budget_of(tenant: str, rules: RuleSet) -> Budget | None:
    for rule in rules.rules:
        if isinstance(rule, ForecastRule) and rule.applies_to(tenant):
            budget = rules.budget(rule.budget, tenant)
            if budget is not None and budget.limit_usd is not None:
                return budget
    return next((b for b in rules.budgets_for(tenant) if b.limit_usd is not None), None)


def _budget_axes(
    axes: Axes,
    tenant: str,
    hourly: dict[int, Decimal],
    rules: RuleSet,
    data: ReportData,
) -> None:
    budget = _budget_of(tenant, rules)
    if budget is None or budget.limit_usd is None:
        axes.text(
            0.5,
            0.5,
            "no spend budget for this tenant",
            ha="center",
            transform=axes.transAxes,
        )
        return
    tz = zone(rules.timezone_of(tenant))
    times: list[float] = []
    totals: list[float] = []
    running = Decimal(0)
    current_start: datetime | None = None
    for hour in sorted(hourly):
        instant = _instant(hour)
        start, _ = period_bounds(instant, tz, budget.period_spec)
        if start != current_start:
            current_start, running = start, Decimal(0)
        running += hourly[hour]
        times.append(_x(instant + timedelta(hours=1)))
        totals.append(float(running))
    axes.plot(
        times,
        totals,
        color="#1f618d",
        linewidth=1.2,
        label=f"{budget.period} spend to date",
    )
    axes.axhline(
        float(budget.limit_usd),
        color="#c0392b",
        linewidth=1,
        label=f"budget {budget.id} {format_amount(budget.limit_usd, 'usd')}",
    )
    points = [p for p in data.forecasts.get(tenant, []) if p.budget_id == budget.id]
    if points:
        fitted = [
            _x(
                datetime.combine(
                    p.last_day + timedelta(days=1), datetime.min.time(), UTC
                )
            )
            for p in points
        ]
        means = [float(p.forecast_usd) for p in points]
        lower = [float(p.forecast_usd - p.lower_usd) for p in points]
        upper = [float(p.upper_usd - p.forecast_usd) for p in points]
        axes.errorbar(
            fitted,
            means,
            yerr=[lower, upper],
            fmt="o",
            markersize=3,
            color="#7d3c98",
            ecolor="#bb8fce",
            capsize=2,
            label="period-end forecast and interval",
        )
    axes.set_ylabel("US$")
    axes.set_title(
        f"{tenant}: {budget.period} spend against budget, with forecasts", fontsize=10
    )
    axes.legend(fontsize=7, loc="upper left")


def tenant_figure(
    tenant: str, data: ReportData, rules: RuleSet, records: list[AlertRecord]
) -> str:
    """Return the SVG of one tenant's two plots."""
    hourly = data.hourly_usd.get(tenant, {})
    tenant_records = [record for record in records if record.tenant == tenant]
    figure, (spend, budget) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    _spend_axes(spend, tenant, hourly, rules, tenant_records)
    _budget_axes(budget, tenant, hourly, rules, data)
    dates = mdates.DateFormatter("%m-%d")  # type: ignore[no-untyped-call]
    budget.xaxis.set_major_formatter(dates)
    figure.autofmt_xdate()
    return _svg(figure)
