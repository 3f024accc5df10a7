"""What a notification says about an alert, shared by every receiver's formatter.

On-call should act on a notification without opening anything else: which
tenant and rule, which tier and severity, the observed value next to the
threshold, baseline or forecast (with its interval), the window or period, when
the episode started, and the runbook and dashboard links. Each receiver lays
these facts out in its own format (PagerDuty custom details, a Slack section,
an email table) but takes them from here, so they read the same everywhere.
"""

from __future__ import annotations

from datetime import datetime

from detector.alerts import AlertRecord, format_amount, has_observed

_TIER_NAMES = {
    "absolute": "absolute",
    "rate_of_change": "rate of change",
    "predictive": "predictive",
    "service": "service",
}


def status_word(record: AlertRecord) -> str:
    return "FIRING" if record.status == "firing" else "RESOLVED"


def headline(record: AlertRecord) -> str:
    """Return one line: status, tenant, rule, tier and the key comparison."""
    repeat = f" (repeat {record.repeat})" if record.repeat else ""
    return (
        f"[{status_word(record)}] {record.tenant}: {record.rule_id} "
        f"({_TIER_NAMES[record.tier]}, {record.severity}){repeat}: "
        f"{comparison(record)}"
    )


def comparison(record: AlertRecord) -> str:
    """Return the observed value against what it was compared with.

    For a record without an observed value, return its summary, which gives the
    reason.
    """
    if not has_observed(record):
        return record.summary
    observed = format_amount(record.observed, record.unit)
    if record.tier == "predictive" and record.forecast is not None:
        text = f"forecast {format_amount(record.forecast, record.unit)}"
        if record.forecast_lower is not None and record.forecast_upper is not None:
            low = format_amount(record.forecast_lower, record.unit)
            high = format_amount(record.forecast_upper, record.unit)
            text += f" ({record.interval_pct or 0}% interval {low} to {high})"
        if record.threshold is not None:
            text += f" vs budget {format_amount(record.threshold, record.unit)}"
        return f"{text}, spent so far {observed}"
    if record.baseline is not None:
        return f"{observed} vs baseline {format_amount(record.baseline, record.unit)}"
    if record.threshold is not None:
        return f"{observed} vs threshold {format_amount(record.threshold, record.unit)}"
    return observed


def dashboard_url(record: AlertRecord, template: str | None) -> str | None:
    """Fill a dashboard URL template such as ``...?var-tenant={tenant}``.

    The placeholders are ``tenant``, ``rule_id``, ``tier``, ``signal`` and
    ``alert_id``; the loader rejects any other.
    """
    if template is None:
        return None
    return template.format(
        tenant=record.tenant,
        rule_id=record.rule_id,
        tier=record.tier,
        signal=record.signal,
        alert_id=record.alert_id,
    )


def facts(record: AlertRecord, dashboard: str | None) -> list[tuple[str, str]]:
    """Return the (name, value) pairs on-call needs, in reading order."""
    rows = [
        ("Status", status_word(record)),
        ("Tenant", record.tenant),
        ("Rule", record.rule_id),
        ("Tier", _TIER_NAMES[record.tier]),
        ("Severity", record.severity),
        ("Signal", f"{record.signal} ({record.unit})"),
        ("Observed", _observed_text(record)),
    ]
    rows.extend(_reference_rows(record))
    if record.window_s is not None:
        rows.append(("Window", _duration(record.window_s)))
    if record.period_start is not None:
        end = _when(record.period_end) if record.period_end else "open"
        rows.append(("Period", f"{_when(record.period_start)} to {end}"))
    rows.append(("Started", _when(record.started_at)))
    rows.append(("Event time", _when(record.event_time)))
    series = ", ".join(f"{k}={v}" for k, v in sorted(record.series.items()))
    if series:
        rows.append(("Series", series))
    rows.append(("Summary", record.summary))
    if record.runbook_url:
        rows.append(("Runbook", record.runbook_url))
    if dashboard:
        rows.append(("Dashboard", dashboard))
    rows.append(("Alert id", record.alert_id))
    return rows


def _observed_text(record: AlertRecord) -> str:
    if not has_observed(record):
        return "unknown"
    return format_amount(record.observed, record.unit)


def _reference_rows(record: AlertRecord) -> list[tuple[str, str]]:
    rows = []
    if record.threshold is not None:
        name = "Budget" if record.tier == "predictive" else "Threshold"
        rows.append((name, format_amount(record.threshold, record.unit)))
    if record.baseline is not None:
        rows.append(("Baseline", format_amount(record.baseline, record.unit)))
    if record.forecast is not None:
        rows.append(("Forecast", format_amount(record.forecast, record.unit)))
    if record.forecast_lower is not None and record.forecast_upper is not None:
        low = format_amount(record.forecast_lower, record.unit)
        high = format_amount(record.forecast_upper, record.unit)
        rows.append((f"{record.interval_pct or 0}% interval", f"{low} to {high}"))
    return rows


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z").strip()


def _duration(seconds: int) -> str:
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def truncate(text: str, max_chars: int) -> str:
    """Cut ``text`` to ``max_chars`` characters, marking the cut with an ellipsis."""
    if len(text) <= max_chars:
        return text
    return text[: max_chars - 1] + "\u2026"
