"""Compare metered spend with what each provider reports, one UTC day at a time.

Metered spend is a mapping ``SpendKey(day, provider, model, project) -> Decimal``
that the caller computes from priced events (``aggregate_metered`` does it). For
each configured provider the job fetches the provider's report for the day, rolls
the metered amounts up to the breakdown the provider reports (per project for
OpenAI, per model and workspace for Anthropic, per tag or in total for Bedrock) and
compares line by line and in total.

A line or the total differs when the difference exceeds both
``min_difference_usd`` and ``threshold_share`` of the provider's amount; a provider
amount of zero against metered spend always differs. A difference produces one
``AlertRecord`` per provider and day, tier ``predictive`` (routed like a forecast),
signal ``spend``, rule id ``reconcile:<provider>``. A day the provider has not
finished is ``partial`` and is not compared. A provider that cannot be reached or
read is an ``error`` with a warning alert saying the day could not be checked:
its spend is never taken as zero.
"""

from __future__ import annotations

import logging
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import partial
from typing import Literal, NamedTuple

from detector.alerts import AlertRecord, alert_id, format_amount
from detector.events import Event
from detector.reconcile.anthropic import fetch_anthropic
from detector.reconcile.bedrock import fetch_bedrock
from detector.reconcile.openai import fetch_openai
from detector.reconcile.report import (
    LineKey,
    ProviderReport,
    ProviderUnavailable,
    Sleep,
    day_bounds,
)
from detector.reconcile.settings import (
    ANTHROPIC,
    BEDROCK,
    OPENAI,
    ReconcileSettings,
)

log = logging.getLogger(__name__)

Status = Literal["match", "mismatch", "partial", "error"]
ALL_TENANTS = "*"
_DAY_S = 86_400


class SpendKey(NamedTuple):
    """The key of metered spend: UTC day, provider, model and provider project."""

    day: date
    provider: str
    model: str
    project: str


@dataclass(frozen=True, slots=True)
class LineComparison:
    """Metered and reported spend of one model and project, or of a coarser line."""

    model: str | None
    project: str | None
    metered_usd: Decimal
    reported_usd: Decimal
    differs: bool

    @property
    def difference_usd(self) -> Decimal:
        return self.metered_usd - self.reported_usd


@dataclass(frozen=True, slots=True)
class ProviderReconciliation:
    """The outcome for one provider and day, with the alert it raised if any."""

    provider: str
    day: date
    status: Status
    metered_usd: Decimal
    reported_usd: Decimal | None = None
    lines: tuple[LineComparison, ...] = ()
    reason: str = ""
    alert: AlertRecord | None = None
    notes: dict[str, str] = field(default_factory=dict)


Fetch = Callable[..., ProviderReport]


def aggregate_metered(
    priced: Iterable[tuple[Event, Decimal | None]],
    projects: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[SpendKey, Decimal]:
    """Sum event costs per UTC day, provider, model and project.

    The project is the event's tenant, unless ``projects[provider][tenant]`` names
    the provider's project for it. Events whose cost is unknown (``None``) are left
    out.
    """
    projects = projects or {}
    # TODO: unpriced events are only counted in a log line, so a day with some
    # reads as metered below the invoice; passing the count into the outcome and
    # its alert details would end this.
    totals: dict[SpendKey, Decimal] = defaultdict(Decimal)
    unpriced = 0
    for event, cost_usd in priced:
        if cost_usd is None:
            unpriced += 1
            continue
        project = projects.get(event.provider, {}).get(event.tenant, event.tenant)
        day = event.timestamp.astimezone(UTC).date()
        totals[SpendKey(day, event.provider, event.model, project)] += cost_usd
    if unpriced:
        log.warning(
            "%d events have no known cost and are not in metered spend", unpriced
        )
    return dict(totals)


def run_reconciliation(
    day: date,
    metered: Mapping[SpendKey, Decimal],
    settings: ReconcileSettings,
    now: datetime,
    *,
    environ: Mapping[str, str] | None = None,
    sleep: Sleep = time.sleep,
) -> list[ProviderReconciliation]:
    """Reconcile ``day`` for every provider configured in ``settings``.

    ``now`` decides whether the day is complete at each provider. Credentials are
    read from ``environ`` (the process environment by default) and every wait
    between retries goes through ``sleep``.
    """
    environ = os.environ if environ is None else environ
    configured: list[tuple[str, object, Fetch]] = [
        (OPENAI, settings.openai, fetch_openai),
        (ANTHROPIC, settings.anthropic, fetch_anthropic),
        (BEDROCK, settings.bedrock, fetch_bedrock),
    ]
    outcomes = []
    for provider, provider_settings, fetch in configured:
        if provider_settings is None:
            continue
        bound = partial(
            fetch, day, now, provider_settings, settings.retry, environ, sleep
        )
        outcomes.append(_reconcile_one(provider, bound, day, metered, settings))
    return outcomes


def _reconcile_one(
    provider: str,
    fetch: Callable[[], ProviderReport],
    day: date,
    metered: Mapping[SpendKey, Decimal],
    settings: ReconcileSettings,
) -> ProviderReconciliation:
    metered_lines = {
        (key.model, key.project): amount
        for key, amount in metered.items()
        if key.day == day and key.provider == provider
    }
    metered_usd = sum(metered_lines.values(), Decimal(0))
    try:
        report = fetch()
    except ProviderUnavailable as error:
        log.error("reconciliation of %s for %s failed: %s", provider, day, error)
        alert = _unreachable_alert(provider, day, metered_usd, str(error), settings)
        return ProviderReconciliation(
            provider, day, "error", metered_usd, reason=str(error), alert=alert
        )

    if not report.complete:
        log.info("%s spend for %s is partial: %s", provider, day, report.partial_reason)
        return ProviderReconciliation(
            provider,
            day,
            "partial",
            metered_usd,
            reported_usd=report.total_usd,
            reason=report.partial_reason,
            notes=report.notes,
        )

    lines = _compare_lines(report, metered_lines, settings)
    reported_usd = report.total_usd
    differs = _differs(metered_usd, reported_usd, settings) or any(
        line.differs for line in lines
    )
    outcome = ProviderReconciliation(
        provider,
        day,
        "mismatch" if differs else "match",
        metered_usd,
        reported_usd=reported_usd,
        lines=lines,
        notes=report.notes,
    )
    if not differs:
        return outcome
    alert = _mismatch_alert(outcome, report, metered_lines, settings)
    return replace(outcome, alert=alert)


def _compare_lines(
    report: ProviderReport,
    metered_lines: Mapping[tuple[str, str], Decimal],
    settings: ReconcileSettings,
) -> tuple[LineComparison, ...]:
    models = settings.models.get(report.provider, {})
    rolled: dict[LineKey, Decimal] = defaultdict(Decimal)
    for (model, project), amount in metered_lines.items():
        key = (
            models.get(model, model) if report.reports_model else None,
            project if report.reports_project else None,
        )
        rolled[key] += amount

    keys = sorted(
        set(rolled) | set(report.lines), key=lambda k: (k[0] or "", k[1] or "")
    )
    comparisons = []
    for line_model, line_project in keys:
        metered_usd = rolled.get((line_model, line_project), Decimal(0))
        reported_usd = report.lines.get((line_model, line_project), Decimal(0))
        differs = _differs(metered_usd, reported_usd, settings)
        comparisons.append(
            LineComparison(line_model, line_project, metered_usd, reported_usd, differs)
        )
    return tuple(comparisons)


def _differs(metered: Decimal, reported: Decimal, settings: ReconcileSettings) -> bool:
    difference = abs(metered - reported)
    if difference <= settings.min_difference_usd:
        return False
    if reported == 0:
        return True
    return difference / reported > settings.threshold_share


def _share_text(metered: Decimal, reported: Decimal) -> str:
    if reported == 0:
        return "reported $0" if metered else "0.0%"
    share = (metered - reported) / reported * 100
    return f"{share:+.1f}%"


def _usd(value: Decimal) -> str:
    return format_amount(value, "usd")


def _mismatch_alert(
    outcome: ProviderReconciliation,
    report: ProviderReport,
    metered_lines: Mapping[tuple[str, str], Decimal],
    settings: ReconcileSettings,
) -> AlertRecord:
    reported_usd = outcome.reported_usd or Decimal(0)
    differing = [line for line in outcome.lines if line.differs]
    share = _share_text(outcome.metered_usd, reported_usd)
    summary = (
        f"{outcome.provider} spend on {outcome.day}: metered "
        f"{_usd(outcome.metered_usd)} vs invoiced {_usd(reported_usd)} ({share}, "
        f"limit {settings.threshold_share * 100:g}%); "
        f"{len(differing)} of {len(outcome.lines)} lines differ"
    )
    details = {
        "metered_usd": str(outcome.metered_usd),
        "reported_usd": str(reported_usd),
        "difference_usd": str(outcome.metered_usd - reported_usd),
        "share": share,
        "threshold_share": str(settings.threshold_share),
    }
    for line in outcome.lines:
        name = f"line model={line.model or '*'} project={line.project or '*'}"
        flag = "DIFFERS: " if line.differs else ""
        details[name] = (
            f"{flag}metered {_usd(line.metered_usd)}, reported "
            f"{_usd(line.reported_usd)} "
            f"({_share_text(line.metered_usd, line.reported_usd)})"
        )
    if not report.reports_model:
        details.update(_metered_by_model(metered_lines))
    if report.excluded_usd:
        details["excluded_usd"] = str(report.excluded_usd)
    details.update(report.notes)
    return _alert(
        outcome.provider,
        outcome.day,
        "mismatch",
        settings.severity,
        summary,
        outcome.metered_usd,
        reported_usd,
        details,
        settings,
    )


def _metered_by_model(
    metered_lines: Mapping[tuple[str, str], Decimal],
) -> dict[str, str]:
    return {
        f"metered model={model} project={project}": _usd(amount)
        for (model, project), amount in sorted(metered_lines.items())
    }


def _unreachable_alert(
    provider: str,
    day: date,
    metered_usd: Decimal,
    error: str,
    settings: ReconcileSettings,
) -> AlertRecord:
    summary = (
        f"{provider} spend on {day} could not be checked: {error}; "
        f"metered {_usd(metered_usd)}"
    )
    details = {"error": error, "metered_usd": str(metered_usd)}
    return _alert(
        provider,
        day,
        "unreachable",
        "warning",
        summary,
        metered_usd,
        None,
        details,
        settings,
    )


def _alert(
    provider: str,
    day: date,
    kind: str,
    severity: str,
    summary: str,
    metered_usd: Decimal,
    reported_usd: Decimal | None,
    details: dict[str, str],
    settings: ReconcileSettings,
) -> AlertRecord:
    start, end = day_bounds(day)
    rule_id = f"reconcile:{provider}"
    return AlertRecord(
        alert_id=alert_id(rule_id, kind, day.isoformat()),
        status="firing",
        tier="predictive",
        severity=severity,
        rule_id=rule_id,
        tenant=ALL_TENANTS,
        signal="spend",
        unit="usd",
        observed=metered_usd,
        baseline=reported_usd,
        event_time=end,
        started_at=end,
        summary=summary,
        series={"provider": provider},
        window_s=_DAY_S,
        period_start=start,
        period_end=end,
        runbook_url=settings.runbook_url,
        labels={"check": "reconciliation", "provider": provider, "outcome": kind},
        details=details,
    )
