"""Tests of the service metrics: the catalogue, per-batch updates and label budgets."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from prometheus_client.parser import text_string_to_metric_families

from detector import metrics_catalog
from detector.config import RuleSet
from detector.events import Event
from detector.service.metrics import LABEL_BUDGET_RULE_ID, LabelBudget, ServiceMetrics

NOW = datetime(2026, 5, 4, 10, 5, tzinfo=UTC)
RULES = RuleSet.model_validate(
    {
        "tenants": [{"id": "acme", "labels": {"tier": "enterprise"}}],
        "budgets": [{"id": "monthly", "tenant": "globex", "limit_usd": "100"}],
    }
)


def llm_event(tenant: str = "acme", model: str = "gpt-4o", **fields: object) -> Event:
    document: dict[str, object] = {
        "timestamp": NOW,
        "request_id": "r1",
        "tenant": tenant,
        "provider": "openai",
        "request_model": model,
        "route": "/v1/chat",
        "region": "eu-west-1",
        "input_tokens": 2006,
        "cache_read_tokens": 1920,
        "output_tokens": 301,
        "ttft_ms": 412.0,
        "duration_ms": 3412.0,
    }
    document.update(fields)
    return Event(**document)  # type: ignore[arg-type]


def samples(metrics: ServiceMetrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = metrics.exposition().decode()
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def labels(**values: str) -> frozenset[tuple[str, str]]:
    return frozenset(values.items())


def test_catalogue_matches_registry() -> None:
    """Every registered metric is in the catalogue, and every catalogue entry is registered."""
    metrics = ServiceMetrics(RULES)

    registered = {
        family.name for family in metrics.registry.collect()
    }
    catalogued = {entry.name.removesuffix("_total") for entry in metrics_catalog.CATALOGUE}

    assert registered == catalogued


def test_catalogue_entries_are_complete() -> None:
    """Each catalogue entry has a meaning, an action, and buckets when it is a histogram."""
    for entry in metrics_catalog.CATALOGUE:
        assert entry.meaning, entry.name
        assert entry.action, entry.name
        assert entry.name.startswith("burnrate_"), entry.name
        assert (entry.kind == "histogram") == bool(entry.buckets), entry.name


def test_batch_updates_spend_tokens_latency() -> None:
    """One flushed batch of two events shows their spend, tokens and latency."""
    metrics = ServiceMetrics(RULES)
    common = labels(
        provider="openai", model="gpt-4o", route="/v1/chat", region="eu-west-1",
        tier="enterprise", tenant="acme",
    )

    metrics.observe_event(llm_event(), Decimal("0.0125"))
    metrics.observe_event(llm_event(error_type="timeout"), Decimal("0.0075"))
    metrics.flush(0.004, NOW)
    found = samples(metrics)

    assert found[("burnrate_llm_spend_usd_total", common)] == 0.02
    assert found[("burnrate_llm_requests_total", common)] == 2
    assert found[("burnrate_llm_tokens_total", common | {("token_class", "input")})] == 172
    assert found[("burnrate_llm_tokens_total", common | {("token_class", "output")})] == 602
    cache_read = common | {("token_class", "cache_read")}
    assert found[("burnrate_llm_tokens_total", cache_read)] == 3840
    assert found[("burnrate_llm_errors_total", common | {("error_type", "timeout")})] == 1
    latency = labels(provider="openai", model="gpt-4o", region="eu-west-1")
    ttft_bucket = latency | {("le", "0.5")}
    assert found[("burnrate_llm_time_to_first_token_seconds_bucket", ttft_bucket)] == 2
    # (3412 - 412) ms over 300 tokens after the first: 10 ms per token.
    tpot_bucket = latency | {("le", "0.01")}
    assert found[("burnrate_llm_time_per_output_token_seconds_bucket", tpot_bucket)] == 2
    assert found[("burnrate_llm_operation_duration_seconds_count", latency)] == 2


def test_histogram_buckets_follow_opentelemetry() -> None:
    """The duration histogram exposes the OpenTelemetry GenAI boundaries, then +Inf."""
    metrics = ServiceMetrics(RULES)

    metrics.observe_event(llm_event(), Decimal("0.01"))
    metrics.flush(0.001, NOW)
    text = metrics.exposition().decode()
    bounds = [
        line.split('le="')[1].split('"')[0]
        for line in text.splitlines()
        if line.startswith("burnrate_llm_operation_duration_seconds_bucket")
    ]

    assert bounds[0] == "0.01"
    assert bounds[-2] == "81.92"
    assert bounds[-1] == "+Inf"
    assert len(bounds) == len(metrics_catalog.OPERATION_DURATION_BUCKETS_S) + 1


def test_unnamed_tenant_exported_as_other() -> None:
    """A tenant not named in the rules is exported as other, without an alert."""
    metrics = ServiceMetrics(RULES)

    metrics.observe_event(llm_event(tenant="stranger"), Decimal(1))
    metrics.observe_event(llm_event(tenant="globex"), Decimal(2))
    metrics.flush(0.001, NOW)
    tenants = {
        dict(key[1]).get("tenant")
        for key in samples(metrics)
        if key[0] == "burnrate_llm_spend_usd_total"
    }

    assert tenants == {"other", "globex"}
    assert metrics.take_alerts() == []


def test_child_cache_skips_unnamed_tenants() -> None:
    """Unnamed tenants export as other and add no cache entries of their own."""
    metrics = ServiceMetrics(RULES)
    metrics.observe_event(llm_event(tenant="stranger-0"), Decimal(1))
    metrics.flush(0.001, NOW)
    cached_after_one = len(metrics._children)

    for index in range(1, 100):
        metrics.observe_event(llm_event(tenant=f"stranger-{index}"), Decimal(1))
    metrics.flush(0.001, NOW)
    spend = samples(metrics)[
        (
            "burnrate_llm_spend_usd_total",
            labels(
                provider="openai", model="gpt-4o", route="/v1/chat",
                region="eu-west-1", tier="", tenant="other",
            ),
        )
    ]

    # The cache is private, but its size is the memory this test guards.
    assert len(metrics._children) == cached_after_one
    assert spend == 100.0


def test_reloaded_rules_name_new_tenant() -> None:
    """After a reload that budgets stranger, its spend gets its own tenant label."""
    metrics = ServiceMetrics(RULES)
    metrics.observe_event(llm_event(tenant="stranger"), Decimal(1))
    metrics.observe_event(llm_event(tenant="acme"), Decimal(4))
    metrics.flush(0.001, NOW)
    reloaded = RuleSet.model_validate(
        {"budgets": [{"id": "monthly", "tenant": "stranger", "limit_usd": "100"}]}
    )

    metrics.use_rules(reloaded)
    metrics.observe_event(llm_event(tenant="stranger"), Decimal(2))
    metrics.observe_event(llm_event(tenant="acme"), Decimal(8))
    metrics.observe_event(llm_event(tenant="initech"), Decimal(16))
    metrics.flush(0.001, NOW)
    spend = {
        (found["tenant"], found["tier"]): value
        for key, value in samples(metrics).items()
        if key[0] == "burnrate_llm_spend_usd_total"
        for found in [dict(key[1])]
    }

    # acme is no longer named but keeps its label. The new rules give it no tier.
    assert spend == {
        ("other", ""): 17.0,
        ("stranger", ""): 2.0,
        ("acme", "enterprise"): 4.0,
        ("acme", ""): 8.0,
    }


def test_label_budget_folds_and_alerts() -> None:
    """Models beyond the label budget fold into other, are counted, and raise one alert."""
    metrics = ServiceMetrics(RULES, max_label_values=2)

    for model in ("m1", "m2", "m3", "m4"):
        metrics.observe_event(llm_event(model=model), Decimal(1))
    metrics.flush(0.001, NOW)
    found = samples(metrics)
    alerts = metrics.take_alerts()
    models = {
        dict(key[1])["model"] for key in found if key[0] == "burnrate_llm_requests_total"
    }
    folded = labels(metric="burnrate_llm_requests", label="model")

    assert models == {"m1", "m2", "other"}
    assert found[("burnrate_metric_label_values_folded_total", folded)] == 2
    requests_alerts = [a for a in alerts if a.series["metric"] == "burnrate_llm_requests"]
    assert len(requests_alerts) == 1
    assert requests_alerts[0].tier == "service"
    assert requests_alerts[0].rule_id == LABEL_BUDGET_RULE_ID
    assert requests_alerts[0].series["label"] == "model"


def test_label_budget_keeps_known_values() -> None:
    """A value admitted before the budget ran out keeps its own label."""
    budget = LabelBudget(cap=1)

    first = budget.fold("a")
    second = budget.fold("b")
    again = budget.fold("a")

    assert first == ("a", False)
    assert second == ("other", True)
    assert again == ("a", False)
    assert budget.exhausted


def test_rejections_counted_by_reason() -> None:
    """Rejections of a batch appear under their reason after the flush."""
    from detector.decode import Rejection

    metrics = ServiceMetrics(RULES)

    metrics.observe_rejections(
        [Rejection("invalid_json", None, "bad", b"{"), Rejection("invalid_json", None, "x", b"")]
    )
    metrics.flush(0.001, NOW)

    assert samples(metrics)[("burnrate_events_rejected_total", labels(reason="invalid_json"))] == 2
