"""PagerDuty event payloads for Events API v2: trigger and resolve by alert id.

The dedup key is the alert id, so a retried or repeated trigger updates the same
PagerDuty alert and a resolve closes it. The Events API limits ``summary`` to
1024 characters and a whole event to 512 KB; custom details carry every fact
from ``routing.content``.
"""

from __future__ import annotations

from typing import Any

from detector.alerts import AlertRecord
from routing import content
from routing.receivers.pagerduty.settings import PagerDutySettings

MAX_SUMMARY_CHARS = 1024
MAX_DEDUP_KEY_CHARS = 255
PAGERDUTY_SEVERITIES = ("critical", "error", "warning", "info")
_SEVERITY_OF_TIER = {
    "absolute": "critical",
    "rate_of_change": "error",
    "predictive": "warning",
}


def severity(record: AlertRecord, settings: PagerDutySettings) -> str:
    """Map an alert to PagerDuty's severity: configured, the same word, or by tier."""
    if record.severity in settings.severity:
        return settings.severity[record.severity]
    if record.severity in PAGERDUTY_SEVERITIES:
        return record.severity
    return _SEVERITY_OF_TIER[record.tier]


def trigger_payload(
    record: AlertRecord,
    settings: PagerDutySettings,
    dashboard: str | None,
    failure: str | None = None,
) -> dict[str, Any]:
    """Return the ``payload`` object of a trigger event."""
    summary = content.headline(record)
    if failure:
        summary = f"{summary} [fallback: {failure}]"
    details = dict(content.facts(record, dashboard))
    details.update({f"label {k}": v for k, v in sorted(record.labels.items())})
    details.update({f"detail {k}": v for k, v in sorted(record.details.items())})
    if failure:
        details["Delivery failure"] = failure
    return {
        "summary": content.truncate(summary, MAX_SUMMARY_CHARS),
        "source": settings.source,
        "severity": severity(record, settings),
        "timestamp": record.event_time.isoformat(),
        "component": record.rule_id,
        "group": record.tenant,
        "class": record.tier,
        "custom_details": details,
    }


def links(record: AlertRecord, dashboard: str | None) -> list[dict[str, str]]:
    result = []
    if record.runbook_url:
        result.append({"href": record.runbook_url, "text": "Runbook"})
    if dashboard:
        result.append({"href": dashboard, "text": "Dashboard"})
    return result
