"""The catalogue of every metric ``burnrate serve`` exports at ``/metrics``.

Each entry names the metric, its kind, its labels, what it means and what to do
when it moves. ``detector.service.metrics`` registers exactly these metrics, the
Grafana dashboards and the Prometheus rules in ``deploy/`` are written against
them, and a test checks that the registry and this list agree.

Labels are bounded. ``max_values`` caps the distinct values each label may
take; the service exports values beyond the cap as ``other`` and counts each
folded value in ``burnrate_metric_label_values_folded_total``. The
``tenant`` label only carries tenants named in the rules (``tenants`` or a
budget's ``tenant``); every other tenant is ``other`` from the start.

Histogram buckets are the explicit bucket boundaries that the OpenTelemetry
GenAI semantic conventions (gen-ai-metrics, semantic conventions 1.37) advise
for ``gen_ai.client.operation.duration``, ``gen_ai.server.time_to_first_token``
and ``gen_ai.server.time_per_output_token``, in seconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

MetricKind = Literal["counter", "gauge", "histogram"]

OTHER = "other"

OPERATION_DURATION_BUCKETS_S = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48,
    40.96, 81.92,
)
TIME_TO_FIRST_TOKEN_BUCKETS_S = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5,
    5.0, 7.5, 10.0,
)
TIME_PER_OUTPUT_TOKEN_BUCKETS_S = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
)
# The service's own batch evaluation time: from a millisecond to ten seconds.
EVALUATION_BUCKETS_S = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)

LLM_LABELS = ("provider", "model", "route", "region", "tier", "tenant")
LATENCY_LABELS = ("provider", "model", "region")

# Default caps per label. Named tenants are capped as well, so a rule file with
# thousands of tenants cannot blow up the series count.
DEFAULT_MAX_VALUES: Mapping[str, int] = {
    "provider": 20,
    "model": 50,
    "route": 50,
    "region": 20,
    "tier": 10,
    "tenant": 100,
    "error_type": 20,
    "reason": 30,
    "receiver": 30,
    "outcome": 10,
    "partition": 256,
    "metric": 40,
    "label": 20,
    "source": 10,
    "status": 10,
    "token_class": 4,
    "decision": 6,
}


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """One exported metric: its name without the ``_total`` suffix and its meaning."""

    name: str
    kind: MetricKind
    labels: tuple[str, ...]
    unit: str
    meaning: str
    action: str
    buckets: tuple[float, ...] = ()
    max_values: Mapping[str, int] = field(default_factory=dict)

    def cap(self, label: str) -> int:
        """Return the maximum number of distinct values of ``label``."""
        return self.max_values.get(label, DEFAULT_MAX_VALUES.get(label, 50))

    @property
    def exported_names(self) -> tuple[str, ...]:
        """The sample family names Prometheus sees for this metric."""
        if self.kind == "counter":
            return (f"{self.name}_total",)
        if self.kind == "histogram":
            return tuple(f"{self.name}_{part}" for part in ("bucket", "count", "sum"))
        return (self.name,)


CATALOGUE: tuple[MetricSpec, ...] = (
    # LLM traffic, as the events describe it.
    MetricSpec(
        "burnrate_llm_spend_usd", "counter", LLM_LABELS, "USD",
        "Priced cost of LLM requests in dollars (reported or computed from tokens).",
        "A step up against last week means a tenant, route or model changed: "
        "check the budget alerts of that tenant and the model mix of the route.",
    ),
    MetricSpec(
        "burnrate_llm_tokens", "counter", (*LLM_LABELS, "token_class"), "tokens",
        "Tokens by class: input (non-cached prompt), output, cache_read, cache_write.",
        "Falling cache_read with steady input means prompt caching broke: "
        "ask the owner of the route what changed in the prompt prefix.",
    ),
    MetricSpec(
        "burnrate_llm_requests", "counter", LLM_LABELS, "requests",
        "LLM requests applied to the state (duplicates and rejected events excluded).",
        "A drop to zero for a tenant that sends steadily means its events stopped "
        "arriving: check the producer before trusting its budget.",
    ),
    MetricSpec(
        "burnrate_llm_errors", "counter", (*LLM_LABELS, "error_type"), "requests",
        "LLM requests that ended in an error, by error.type.",
        "A rise for one provider or model is a provider incident or a quota "
        "limit: check the provider status page and the gateway's fallback.",
    ),
    MetricSpec(
        "burnrate_llm_refusals", "counter", LLM_LABELS, "requests",
        "LLM requests whose finish reason was a refusal or a content filter.",
        "A rise after a prompt or model change means the model now declines "
        "the route's requests: tell the route's owner.",
    ),
    MetricSpec(
        "burnrate_llm_time_to_first_token_seconds", "histogram", LATENCY_LABELS, "s",
        "Time to the first output token of streamed requests.",
        "A p95 rise for one model is provider queueing or a longer prompt: "
        "compare with the input token rate of the same model.",
        buckets=TIME_TO_FIRST_TOKEN_BUCKETS_S,
    ),
    MetricSpec(
        "burnrate_llm_time_per_output_token_seconds", "histogram", LATENCY_LABELS, "s",
        "Mean time per output token after the first: (duration - ttft) / "
        "(output tokens - 1).",
        "A rise means slower decoding at the provider: consider routing to "
        "another region or model.",
        buckets=TIME_PER_OUTPUT_TOKEN_BUCKETS_S,
    ),
    MetricSpec(
        "burnrate_llm_operation_duration_seconds", "histogram", LATENCY_LABELS, "s",
        "Duration of LLM requests from send to the last byte.",
        "A p99 rise with flat time to first token means longer outputs: "
        "compare with the output token rate.",
        buckets=OPERATION_DURATION_BUCKETS_S,
    ),
    # The service itself.
    MetricSpec(
        "burnrate_events_consumed", "counter", ("partition",), "events",
        "Events decoded from the events topic, before deduplication.",
        "Flat while the topic grows: see burnrate_consumer_lag_records and the "
        "partition-stalled alert.",
    ),
    MetricSpec(
        "burnrate_events_rejected", "counter", ("reason",), "events",
        "Input rejected and sent to the dead-letter topic, by reason.",
        "Read a few records of the dead-letter topic: the reason and field "
        "headers name what the producer sends wrong.",
    ),
    MetricSpec(
        "burnrate_events_late", "counter", ("partition",), "events",
        "Events older than the allowed lateness: counted in periods, not in windows.",
        "A steady rate means a producer buffers too long: raise "
        "BURNRATE_ALLOWED_LATENESS_S or fix the producer.",
    ),
    MetricSpec(
        "burnrate_events_duplicate", "counter", ("partition",), "events",
        "Events whose request id was already seen, dropped.",
        "A rise means a producer retries without need or the service re-reads "
        "after crashes: check restarts.",
    ),
    MetricSpec(
        "burnrate_events_priced", "counter", ("source",), "events",
        "Events by cost source: reported, computed, no_usage, unknown_model.",
        "unknown_model growing means a model without a price: add it under "
        "prices in the rules.",
    ),
    MetricSpec(
        "burnrate_consumer_lag_records", "gauge", ("partition",), "records",
        "Records in the events topic not yet handled, per partition.",
        "Growing for minutes: add replicas (up to the partition count) or "
        "look at burnrate_batch_evaluation_seconds.",
    ),
    MetricSpec(
        "burnrate_batch_evaluation_seconds", "histogram", (), "s",
        "Time to apply one batch of records, persist its state and publish its alerts.",
        "A p99 near the commit interval slows consumption: check CPU, "
        "forecast workers and snapshot sizes.",
        buckets=EVALUATION_BUCKETS_S,
    ),
    MetricSpec(
        "burnrate_alerts_published", "counter", ("tier", "status"), "alerts",
        "Alert records written to the alerts topic, by tier and status.",
        "A burst of firing records: read them in the alerts topic; a burst of "
        "service-tier records: see OPERATIONS.md.",
    ),
    MetricSpec(
        "burnrate_notifications", "counter", ("receiver", "outcome"), "notifications",
        "Notification attempts by receiver and outcome.",
        "Failures for one receiver: check its credentials and endpoint; the "
        "routing audit log has each error.",
    ),
    MetricSpec(
        "burnrate_forecasts", "counter", (), "fits",
        "Month-end forecast fits finished.",
        "Flat while tenants have predictive rules: check forecast workers in the log.",
    ),
    MetricSpec(
        "burnrate_forecast_fallbacks", "counter", (), "fits",
        "Forecast fits that fell back to a simpler model.",
        "A high share means short or erratic history: forecasts are flagged "
        "low confidence, nothing to fix unless it persists past two weeks.",
    ),
    MetricSpec(
        "burnrate_forecast_fallback_steps", "counter", ("reason",), "steps",
        "Fallback steps of month-end forecasts by reason, one of the codes in "
        "detector.forecast.FALLBACK_CODES.",
        "forecast_non_finite, forecast_below_spend or forecast_above_run_rate "
        "growing: look up the tenants' fallback_reason in the forecast alerts.",
    ),
    MetricSpec(
        "burnrate_tenants_active", "gauge", (), "tenants",
        "Tenants held in memory by this worker.",
        "Growing without bound means tenant ids are not stable: check producers.",
    ),
    MetricSpec(
        "burnrate_series_active", "gauge", (), "series",
        "Windowed series held in memory (tenant and rule series keys).",
        "Growing fast means a rule groups by a high-cardinality key: check "
        "the series of threshold and rate rules.",
    ),
    MetricSpec(
        "burnrate_metric_label_values_folded", "counter", ("metric", "label"), "values",
        "Label values exported as 'other' because the label's budget was used up.",
        "Raise the budget only if the new values matter; otherwise fix the "
        "source of the values (see the service alert).",
    ),
    MetricSpec(
        "burnrate_budget_api_requests", "counter", ("decision",), "requests",
        "Budget API answers by decision, or by error (unauthorized, not_found, "
        "disabled).",
        "unauthorized growing: a gateway has a stale token; block growing: "
        "tenants are out of budget.",
    ),
    MetricSpec(
        "burnrate_budget_decision_changes", "counter", ("decision",), "changes",
        "Changes of a tenant's gateway decision, by the new decision.",
        "Each change is in the audit log with the tenant, spend and budget.",
    ),
)


def spec(name: str) -> MetricSpec:
    """Return the catalogue entry of ``name``; raise KeyError if it is not listed."""
    for entry in CATALOGUE:
        if entry.name == name:
            return entry
    raise KeyError(f"metric {name!r} is not in the catalogue")
