"""The service reads the Collector's OTLP topic and the events topic at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from tests.service.conftest import WorkerFactory
from tests.service.harness import (
    Topics,
    create_topic,
    event,
    firing,
    keyed,
    read_alerts,
    run,
    send,
)

RULES = {
    "tenants": [{"id": "acme"}, {"id": "globex"}],
    # A tiny budget: any priced request crosses it.
    "budgets": [{"id": "monthly", "limit_usd": "0.000001", "thresholds_pct": [100]}],
}


def attribute(key: str, value: str | int) -> KeyValue:
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def collector_batch(tenant: str, end: datetime) -> bytes:
    """One export batch: a GenAI span of ``tenant`` and a span that is not GenAI."""
    end_ns = int(end.timestamp() * 1e9)
    chat = Span(
        trace_id=bytes.fromhex("0af7651916cd43dd8448eb211c80319c"),
        span_id=bytes.fromhex("b7ad6b7169203331"),
        name="chat gpt-4o",
        start_time_unix_nano=end_ns - 2_000_000_000,
        end_time_unix_nano=end_ns,
        attributes=[
            attribute("gen_ai.operation.name", "chat"),
            attribute("gen_ai.provider.name", "openai"),
            attribute("gen_ai.request.model", "gpt-4o"),
            attribute("gen_ai.usage.input_tokens", 1000),
            attribute("gen_ai.usage.output_tokens", 100),
        ],
    )
    http = Span(
        trace_id=bytes.fromhex("0af7651916cd43dd8448eb211c80319c"),
        span_id=bytes.fromhex("00f067aa0ba902b7"),
        name="GET /health",
        start_time_unix_nano=end_ns - 1_000_000,
        end_time_unix_nano=end_ns,
    )
    request = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(attributes=[attribute("tenant.id", tenant)]),
                scope_spans=[ScopeSpans(spans=[chat, http])],
            )
        ]
    )
    return request.SerializeToString()


def test_otlp_and_events_topics_together(
    make_worker: WorkerFactory, kafka_bootstrap: str
) -> None:
    """A span from the OTLP topic and an event from the events topic both alert."""
    topics = Topics.unique("otlp")
    otlp_topic = f"{topics.prefix}-otlp"
    run(create_topic(kafka_bootstrap, otlp_topic, 2))
    worker = make_worker(
        topics,
        RULES,
        env={"BURNRATE_OTLP_TOPIC": otlp_topic, "BURNRATE_OTLP_ENCODING": "otlp_proto"},
    )
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=30)

    worker.start()
    send(kafka_bootstrap, otlp_topic, [(None, collector_batch("acme", now))])
    send(kafka_bootstrap, topics.events, keyed([event("globex", now, "0.50")]))
    alerts = read_alerts(
        kafka_bootstrap, topics, until=lambda records: len(firing(records)) >= 2
    )

    assert sorted(record.tenant for record in firing(alerts)) == ["acme", "globex"]
    acme = next(record for record in firing(alerts) if record.tenant == "acme")
    # gpt-4o's posted prices: $2.50 per million input and $10 per million output.
    assert acme.observed == Decimal("0.0035")
    counted = worker.wait_for(lambda stats: events_counted(stats) == 2, "two events")
    assert events_counted(counted) == 2


def events_counted(stats: dict[str, Any]) -> int:
    return sum(int(entry["events"]) for entry in stats["partitions"].values())
