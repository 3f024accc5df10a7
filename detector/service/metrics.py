"""Prometheus metrics of ``burnrate serve``: LLM traffic and the service's own health.

Every metric comes from ``detector.metrics_catalog`` and lives in a registry of
its own, served at ``/metrics`` on the Faust web server. One port then carries
the probes, the stats, the budget API and the scrape, so a deployment opens and
configures a single port.

The hot path stays cheap: ``observe_event`` adds an applied event to plain
dictionaries keyed by its raw labels, and ``flush`` turns the batch into
Prometheus updates once per batch and label combination. Spend is summed as
``Decimal`` within a batch and converted to float once per combination, because
Prometheus samples are floats.

Label values pass through a ``LabelBudget`` per metric and label. A value
beyond the budget becomes ``other``, the fold is counted, and the first fold of
a (metric, label) raises a service-tier alert record that the service publishes
like any other alert.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.metrics import MetricWrapperBase

from detector import metrics_catalog
from detector.alerts import AlertRecord, alert_id
from detector.config import ALL_TENANTS, RuleSet
from detector.decode import Rejection
from detector.events import Event
from detector.metrics_catalog import LATENCY_LABELS, OTHER, MetricSpec

if TYPE_CHECKING:
    from detector.service.partition import PartitionRunner

SERVICE_TENANT = "burnrate"
# Prometheus reads plain text exposition; aiohttp rejects a charset in content_type.
EXPOSITION_CONTENT_TYPE = "text/plain"
LABEL_BUDGET_RULE_ID = "burnrate:metric-label-budget"
_SERIES_REFRESH_S = 10.0
_ZERO = Decimal(0)

_LlmKey = tuple[str, str, str, str, str, str]
_LatencyKey = tuple[str, str, str]


class LabelBudget:
    """The distinct values one label of one metric may take before folding."""

    def __init__(self, cap: int, allowed: Iterable[str] | None = None) -> None:
        self.cap = cap
        # With ``allowed`` set, only those values are ever exported (tenants).
        self.allowed = frozenset(allowed) if allowed is not None else None
        self.values: set[str] = set()
        self.exhausted = False

    def fold(self, value: str) -> tuple[str, bool]:
        """Return the exported value and whether it was folded for lack of budget."""
        if value in self.values:
            return value, False
        if self.allowed is not None and value not in self.allowed:
            return OTHER, False
        if len(self.values) >= self.cap:
            self.exhausted = True
            return OTHER, True
        self.values.add(value)
        return value, False


@dataclass
class _LlmTotals:
    spend_usd: Decimal = _ZERO
    requests: int = 0
    refusals: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    errors: dict[str, int] = field(default_factory=dict)


@dataclass
class _Pending:
    """One batch of observations, keyed by raw label values."""

    llm: dict[_LlmKey, _LlmTotals] = field(default_factory=lambda: defaultdict(_LlmTotals))
    ttft_s: dict[_LatencyKey, list[float]] = field(default_factory=lambda: defaultdict(list))
    tpot_s: dict[_LatencyKey, list[float]] = field(default_factory=lambda: defaultdict(list))
    duration_s: dict[_LatencyKey, list[float]] = field(
        default_factory=lambda: defaultdict(list)
    )
    rejected: dict[str, int] = field(default_factory=lambda: defaultdict(int))


@dataclass
class _EngineMark:
    """Engine counters at the last sync, to export deltas as counters."""

    runner_id: int
    events: int = 0
    late: int = 0
    duplicates: int = 0
    forecasts: int = 0
    forecast_fallbacks: int = 0
    cost_sources: dict[str, int] = field(default_factory=dict)
    fallback_reasons: dict[str, int] = field(default_factory=dict)


class ServiceMetrics:
    """The registry of one service and the updates the service feeds it."""

    def __init__(self, rules: RuleSet, max_label_values: int = 200) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.metrics: dict[str, MetricWrapperBase] = {}
        self._budgets: dict[tuple[str, str], LabelBudget] = {}
        # Children by metric and raw label values, for labels exported unchanged.
        self._children: dict[tuple[str, tuple[tuple[str, str], ...]], Any] = {}
        self._max_label_values = max_label_values
        self._named_tenants = _named_tenants(rules)
        self._tenant_tier = {t.id: t.labels.get("tier", "") for t in rules.tenants}
        self._pending = _Pending()
        self._marks: dict[int, _EngineMark] = {}
        self._alerts: list[AlertRecord] = []
        self._alerted: set[tuple[str, str]] = set()
        self._series_refreshed_at = float("-inf")
        for entry in metrics_catalog.CATALOGUE:
            self.metrics[entry.name] = self._register(entry)

    def _register(self, entry: MetricSpec) -> MetricWrapperBase:
        name = entry.name.removesuffix("_total")
        common: dict[str, Any] = {
            "name": name,
            "documentation": entry.meaning,
            "labelnames": entry.labels,
            "registry": self.registry,
        }
        if entry.kind == "counter":
            return Counter(**common)
        if entry.kind == "gauge":
            return Gauge(**common)
        return Histogram(**common, buckets=entry.buckets)

    # Exposition

    def exposition(self) -> bytes:
        """Return the registry in the Prometheus text format."""
        return generate_latest(self.registry)

    # Per event and per batch

    def use_rules(self, rules: RuleSet) -> None:
        """Take the named tenants and tenant tiers of a reloaded rule set.

        A tenant the new rules name is exported under its own label from now
        on. One they no longer name keeps the series it already has, because a
        Prometheus series cannot be taken back. Other new tenants fold into other.
        """
        self._named_tenants = _named_tenants(rules)
        self._tenant_tier = {t.id: t.labels.get("tier", "") for t in rules.tenants}
        for (_, label), budget in self._budgets.items():
            if label == "tenant":
                budget.allowed = self._named_tenants
        # Cached children hold the tenant labels of the old rules.
        self._children.clear()

    def observe_event(self, event: Event, cost_usd: Decimal) -> None:
        """Add one applied event to the current batch."""
        pending = self._pending
        key = (
            event.provider,
            event.model,
            event.route,
            event.region,
            self._tenant_tier.get(event.tenant, ""),
            event.tenant,
        )
        totals = pending.llm[key]
        totals.spend_usd += cost_usd
        totals.requests += 1
        totals.refusals += event.is_refusal
        cached = event.cache_read_tokens + event.cache_write_tokens
        totals.input_tokens += max((event.input_tokens or 0) - cached, 0)
        totals.output_tokens += event.output_tokens or 0
        totals.cache_read_tokens += event.cache_read_tokens
        totals.cache_write_tokens += event.cache_write_tokens
        if event.error_type is not None:
            totals.errors[event.error_type] = totals.errors.get(event.error_type, 0) + 1
        self._observe_latency(event)

    def _observe_latency(self, event: Event) -> None:
        if event.ttft_ms is None and event.duration_ms is None:
            return
        key = (event.provider, event.model, event.region)
        if event.ttft_ms is not None:
            self._pending.ttft_s[key].append(event.ttft_ms / 1000)
        if event.duration_ms is not None:
            self._pending.duration_s[key].append(event.duration_ms / 1000)
        tpot_s = _time_per_output_token_s(event)
        if tpot_s is not None:
            self._pending.tpot_s[key].append(tpot_s)

    def observe_rejections(self, rejections: Iterable[Rejection]) -> None:
        """Count rejected inputs of the current batch by reason."""
        for rejection in rejections:
            self._pending.rejected[rejection.reason] += 1

    def flush(self, evaluation_s: float, now: datetime) -> None:
        """Apply the current batch to the registry and start a new one."""
        pending, self._pending = self._pending, _Pending()
        for key, totals in pending.llm.items():
            self._flush_llm(key, totals, now)
        for metric, observations in (
            ("burnrate_llm_time_to_first_token_seconds", pending.ttft_s),
            ("burnrate_llm_time_per_output_token_seconds", pending.tpot_s),
            ("burnrate_llm_operation_duration_seconds", pending.duration_s),
        ):
            for latency_key, values in observations.items():
                labels = dict(zip(LATENCY_LABELS, latency_key, strict=True))
                histogram = self._child(metric, labels, now)
                for value in values:
                    histogram.observe(value)
        for reason, count in pending.rejected.items():
            self._child("burnrate_events_rejected", {"reason": reason}, now).inc(count)
        self.metrics["burnrate_batch_evaluation_seconds"].observe(evaluation_s)  # type: ignore[attr-defined]

    def _flush_llm(self, key: _LlmKey, totals: _LlmTotals, now: datetime) -> None:
        labels = dict(zip(metrics_catalog.LLM_LABELS, key, strict=True))
        if totals.spend_usd:
            self._child("burnrate_llm_spend_usd", labels, now).inc(float(totals.spend_usd))
        self._child("burnrate_llm_requests", labels, now).inc(totals.requests)
        if totals.refusals:
            self._child("burnrate_llm_refusals", labels, now).inc(totals.refusals)
        for token_class, count in (
            ("input", totals.input_tokens),
            ("output", totals.output_tokens),
            ("cache_read", totals.cache_read_tokens),
            ("cache_write", totals.cache_write_tokens),
        ):
            if count:
                token_labels = {**labels, "token_class": token_class}
                self._child("burnrate_llm_tokens", token_labels, now).inc(count)
        for error_type, count in totals.errors.items():
            error_labels = {**labels, "error_type": error_type}
            self._child("burnrate_llm_errors", error_labels, now).inc(count)

    # Outputs of the service

    def alert_published(self, record: AlertRecord) -> None:
        """Count one alert record written to the alerts topic."""
        labels: dict[str, str] = {"tier": record.tier, "status": record.status}
        self._child("burnrate_alerts_published", labels, None).inc()

    def count_notification(self, receiver: str, outcome: str) -> None:
        """Count one notification attempt.

        ``burnrate routes deliver`` runs in its own process and counts into its
        own registry (``routing.metrics``); this keeps the name in the service's.
        """
        labels = {"receiver": receiver, "outcome": outcome}
        self._child("burnrate_notifications", labels, None).inc()

    def count_budget_request(self, decision: str) -> None:
        """Count one budget API response by decision or error."""
        self._child("burnrate_budget_api_requests", {"decision": decision}, None).inc()

    def count_decision_change(self, decision: str) -> None:
        """Count one change of a tenant's gateway decision."""
        self._child("burnrate_budget_decision_changes", {"decision": decision}, None).inc()

    # Engine counters and gauges

    def sync_runner(self, runner: PartitionRunner) -> None:
        """Export the growth of a runner's engine counters since the last sync."""
        mark = self._marks.get(runner.partition)
        if mark is None or mark.runner_id != id(runner):
            mark = self._marks[runner.partition] = _EngineMark(id(runner))
        stats = runner.engine.stats
        partition = {"partition": str(runner.partition)}
        for metric, attribute in (
            ("burnrate_events_late", "late"),
            ("burnrate_events_duplicate", "duplicates"),
        ):
            value = getattr(stats, attribute)
            self._inc(metric, partition, value - getattr(mark, attribute))
            setattr(mark, attribute, value)
        consumed = stats.events + stats.duplicates
        self._inc("burnrate_events_consumed", partition, consumed - mark.events)
        mark.events = consumed
        self._inc("burnrate_forecasts", {}, stats.forecasts - mark.forecasts)
        mark.forecasts = stats.forecasts
        fallbacks = stats.forecast_fallbacks - mark.forecast_fallbacks
        self._inc("burnrate_forecast_fallbacks", {}, fallbacks)
        mark.forecast_fallbacks = stats.forecast_fallbacks
        for reason, count in stats.forecast_fallback_reasons.items():
            growth = count - mark.fallback_reasons.get(reason, 0)
            self._inc("burnrate_forecast_fallback_steps", {"reason": reason}, growth)
            mark.fallback_reasons[reason] = count
        for source, count in stats.cost_sources.items():
            growth = count - mark.cost_sources.get(source, 0)
            self._inc("burnrate_events_priced", {"source": str(source)}, growth)
            mark.cost_sources[source] = count

    def forget_partition(self, partition: int) -> None:
        """Drop the lag gauge and counter marks of a partition this worker lost."""
        self._marks.pop(partition, None)
        lag = self.metrics["burnrate_consumer_lag_records"]
        try:
            lag.remove(str(partition))
        except KeyError:
            pass

    def observe_tick(
        self,
        end_offsets: Mapping[int, int],
        runners: Mapping[int, PartitionRunner],
        monotonic_s: float,
    ) -> None:
        """Set the lag gauges, and the tenant and series gauges every few seconds."""
        lag = self.metrics["burnrate_consumer_lag_records"]
        for partition, end_offset in end_offsets.items():
            runner = runners.get(partition)
            handled = runner.counters.last_offset if runner is not None else -1
            lag.labels(str(partition)).set(max(end_offset - 1 - handled, 0))  # type: ignore[attr-defined]
        if monotonic_s - self._series_refreshed_at < _SERIES_REFRESH_S:
            return
        self._series_refreshed_at = monotonic_s
        tenants = series = 0
        for runner in runners.values():
            tenants += len(runner.engine.tenants)
            series += sum(len(state.series) for state in runner.engine.tenants.values())
        self.metrics["burnrate_tenants_active"].set(tenants)  # type: ignore[attr-defined]
        self.metrics["burnrate_series_active"].set(series)  # type: ignore[attr-defined]

    def take_alerts(self) -> list[AlertRecord]:
        """Return the label-budget alerts raised since the last call."""
        alerts, self._alerts = self._alerts, []
        return alerts

    # Label budgets

    def _inc(self, metric: str, labels: dict[str, str], amount: float) -> None:
        if amount > 0:
            self._child(metric, labels, None).inc(amount)

    def _child(self, metric: str, labels: dict[str, str], now: datetime | None) -> Any:
        key = (metric, tuple(labels.items()))
        child = self._children.get(key)
        if child is not None:
            return child
        exported = {}
        unchanged = True
        for label, value in labels.items():
            exported_value, folded = self._fold(metric, label, value, now)
            exported[label] = exported_value
            unchanged = unchanged and not folded and exported_value == value
        child = self.metrics[metric].labels(**exported)
        # Only labels exported as they came are cached, so the cache has no more
        # entries than the registry has series. Unnamed tenants, which all export
        # as other, are folded again on each call, and so is every counted fold.
        if unchanged:
            self._children[key] = child
        return child

    def _fold(
        self, metric: str, label: str, value: str, now: datetime | None
    ) -> tuple[str, bool]:
        budget = self._budgets.get((metric, label))
        if budget is None:
            budget = self._budgets[(metric, label)] = self._new_budget(metric, label)
        exported, folded = budget.fold(value)
        if folded:
            self._count_fold(metric, label, budget, now)
        return exported, folded

    def _new_budget(self, metric: str, label: str) -> LabelBudget:
        cap = metrics_catalog.spec(metric).cap(label)
        # The setting caps the labels that come from events; the service's own
        # labels are bounded by the catalogue.
        if metric.startswith("burnrate_llm_"):
            cap = min(cap, self._max_label_values)
        allowed = self._named_tenants if label == "tenant" else None
        return LabelBudget(cap, allowed)

    def _count_fold(
        self, metric: str, label: str, budget: LabelBudget, now: datetime | None
    ) -> None:
        folded_metric = "burnrate_metric_label_values_folded"
        if metric != folded_metric:
            counter = self.metrics[folded_metric]
            counter.labels(  # type: ignore[attr-defined]
                self._fold(folded_metric, "metric", metric, now)[0],
                self._fold(folded_metric, "label", label, now)[0],
            ).inc()
        if (metric, label) not in self._alerted:
            self._alerted.add((metric, label))
            self._alerts.append(_budget_alert(metric, label, budget.cap, now))


def _named_tenants(rules: RuleSet) -> frozenset[str]:
    named = {tenant.id for tenant in rules.tenants}
    named |= {b.tenant for b in rules.budgets if b.tenant != ALL_TENANTS}
    return frozenset(named)


def _time_per_output_token_s(event: Event) -> float | None:
    if event.ttft_ms is None or event.duration_ms is None:
        return None
    if event.output_tokens is None or event.output_tokens < 2:
        return None
    decode_ms = event.duration_ms - event.ttft_ms
    if decode_ms < 0:
        return None
    return decode_ms / (event.output_tokens - 1) / 1000


def _budget_alert(metric: str, label: str, cap: int, now: datetime | None) -> AlertRecord:
    # NOTE: the alert never resolves while the process runs, because a label
    # budget only grows; it resolves in effect when the worker restarts.
    instant = now or datetime.now(UTC)
    return AlertRecord(
        alert_id=alert_id(LABEL_BUDGET_RULE_ID, metric, label, instant.isoformat()),
        status="firing",
        tier="service",
        severity="warning",
        rule_id=LABEL_BUDGET_RULE_ID,
        tenant=SERVICE_TENANT,
        signal="metric_label_values",
        unit="requests",
        observed=Decimal(cap),
        threshold=Decimal(cap),
        event_time=instant,
        started_at=instant,
        summary=(
            f"metric {metric} label {label} reached its budget of {cap} distinct "
            "values; further values are exported as 'other'"
        ),
        series={"metric": metric, "label": label},
    )


def register_page(app: Any, metrics: ServiceMetrics) -> None:
    """Add ``GET /metrics`` to the Faust web server."""

    @app.page("/metrics")  # type: ignore[untyped-decorator]
    async def scrape(web: Any, request: Any) -> Any:
        return web.bytes(metrics.exposition(), content_type=EXPOSITION_CONTENT_TYPE)
