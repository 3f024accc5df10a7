"""Alert records: what the core emits when an alert fires, repeats or resolves.

A record carries everything on-call needs without looking anything up: the tier,
the tenant and series, the rule and its runbook, the observed value next to the
threshold, baseline or forecast, the period and the event time that triggered
it. Alert ids are derived from the rule, the series and the episode, so a replay
produces the same ids as the live service and receivers can deduplicate on them.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from decimal import Decimal
from typing import Literal

import msgspec

Tier = Literal["absolute", "rate_of_change", "predictive", "service"]
Status = Literal["firing", "resolved"]
Unit = Literal["usd", "tokens", "requests", "ms", "tokens/s", "ratio"]

UNIT_OF_SIGNAL: dict[str, Unit] = {
    "spend": "usd",
    "tokens": "tokens",
    "requests": "requests",
    "ttft_ms": "ms",
    "inter_token_ms": "ms",
    "max_inter_token_gap_ms": "ms",
    "duration_ms": "ms",
    "output_tokens_per_s": "tokens/s",
    "error_rate": "ratio",
    "refusal_rate": "ratio",
    "cache_hit_rate": "ratio",
}


class AlertRecord(msgspec.Struct, frozen=True, omit_defaults=True):
    """One state change of one alert, as written to the alerts file or topic."""

    alert_id: str
    status: Status
    tier: Tier
    severity: str
    rule_id: str
    tenant: str
    signal: str
    unit: Unit
    observed: Decimal
    event_time: datetime
    started_at: datetime
    summary: str
    series: dict[str, str] = {}
    threshold: Decimal | None = None
    baseline: Decimal | None = None
    forecast: Decimal | None = None
    forecast_lower: Decimal | None = None
    forecast_upper: Decimal | None = None
    interval_pct: int | None = None
    window_s: int | None = None
    period_start: datetime | None = None
    period_end: datetime | None = None
    runbook_url: str | None = None
    labels: dict[str, str] = {}
    repeat: int = 0
    details: dict[str, str] = {}

    def __post_init__(self) -> None:
        # Sums of per-token prices carry many trailing digits, so records show the
        # exact value without them.
        for name in _AMOUNT_FIELDS:
            value = getattr(self, name)
            if value is not None:
                msgspec.structs.force_setattr(self, name, tidy(value))


_AMOUNT_FIELDS = (
    "observed",
    "threshold",
    "baseline",
    "forecast",
    "forecast_lower",
    "forecast_upper",
)


# The details of a record whose rule was not evaluated, such as the resolve of a
# rule that a reload removed: its ``observed`` of 0 is no measurement.
UNKNOWN_OBSERVED = {"observed": "unknown"}


def has_observed(record: AlertRecord) -> bool:
    """Return whether the record's ``observed`` is a measured value."""
    return record.details.get("observed") != UNKNOWN_OBSERVED["observed"]


def alert_id(*parts: object) -> str:
    """Return a stable id for an alert episode from its identifying parts."""
    text = "\x1f".join(str(part) for part in parts)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def format_amount(value: Decimal, unit: Unit) -> str:
    """Format a value for people.

    Dollars show to the cent, counts as whole numbers, milliseconds whole from
    100 ms and to 0.1 ms below, token rates to 0.1 token/s, and ratios as
    percentages to 0.01 %.
    """
    if unit == "usd":
        cents = value.quantize(Decimal("0.01"))
        if value != 0 and cents == 0:
            return f"${value.quantize(Decimal('0.000001')):,}"
        return f"${cents:,}"
    if unit == "ms":
        digits = Decimal(1) if abs(value) >= 100 else Decimal("0.1")
        return f"{value.quantize(digits):,} ms"
    if unit == "tokens/s":
        return f"{value.quantize(Decimal('0.1')):,} tokens/s"
    if unit == "ratio":
        return f"{tidy((value * 100).quantize(Decimal('0.01')))}%"
    return f"{value.quantize(Decimal(1)):,} {unit}"


def format_pair(value: Decimal, limit: Decimal, unit: Unit) -> tuple[str, str]:
    """Format a value next to its limit with enough digits to tell them apart."""
    shown, limit_shown = format_amount(value, unit), format_amount(limit, unit)
    if shown != limit_shown or value == limit:
        return shown, limit_shown
    if unit == "usd":
        digits = Decimal("0.000001")
        return f"${value.quantize(digits):,}", f"${limit.quantize(digits):,}"
    suffix = "%" if unit == "ratio" else f" {unit}"
    scale = 100 if unit == "ratio" else 1
    return f"{tidy(value * scale)}{suffix}", f"{tidy(limit * scale)}{suffix}"


def tidy(value: Decimal) -> Decimal:
    """Return the same number without trailing zeros or an exponent: 0E-7 is 0."""
    return Decimal(format(value.normalize(), "f"))


def format_console(record: AlertRecord) -> str:
    """Format a record as one readable console line."""
    when = record.event_time.strftime("%Y-%m-%d %H:%M:%SZ")
    state = "FIRING " if record.status == "firing" else "RESOLVED"
    repeat = f" (repeat {record.repeat})" if record.repeat else ""
    return (
        f"{when} {state} {record.tier:<14} {record.severity:<8} "
        f"tenant={record.tenant} rule={record.rule_id}{repeat}: {record.summary}"
    )


encoder = msgspec.json.Encoder(decimal_format="string")
decoder = msgspec.json.Decoder(AlertRecord)
