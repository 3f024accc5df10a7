"""Read the OpenTelemetry Collector's Kafka topic and re-key its spans by tenant.

The Collector's Kafka exporter writes one record per export batch, keyed by
trace or not at all, so the spans of one tenant arrive on many partitions. The
core needs every event of a tenant on one partition, because that partition's
engine keeps the tenant's state. The service therefore decodes each batch into
events and produces them to the events topic, one record per event, keyed by
tenant: the same repartition step a Kafka Streams application would use. The
events then take the ordinary path, dedup by request id included, so a batch
delivered twice counts once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

from detector.decode import Rejection
from detector.events import SCHEMA_VERSION, Event
from detector.otlp import Encoding, OtlpMapping, decode_otlp

_encoder = msgspec.json.Encoder(decimal_format="number")


@dataclass(slots=True)
class OtlpOutput:
    """The records to produce for one batch, its rejections and skipped spans."""

    records: list[tuple[bytes, bytes]] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    skipped_spans: int = 0


def encode_event(event: Event) -> bytes:
    """Return an event as one JSON record in the events topic's format."""
    wire: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "timestamp": event.timestamp.isoformat(),
        "request_id": event.request_id,
        "tenant": event.tenant,
        "gen_ai.request.model": event.request_model,
        "gen_ai.usage.cache_read.input_tokens": event.cache_read_tokens,
        "gen_ai.usage.cache_creation.input_tokens": event.cache_write_tokens,
        "gen_ai.response.finish_reasons": list(event.finish_reasons),
    }
    optional = {
        "gen_ai.provider.name": event.provider or None,
        "gen_ai.response.model": event.response_model,
        "gen_ai.operation.name": event.operation,
        "feature": event.feature or None,
        "route": event.route or None,
        "region": event.region or None,
        "gen_ai.usage.input_tokens": event.input_tokens,
        "gen_ai.usage.output_tokens": event.output_tokens,
        "error.type": event.error_type,
        "cost_usd": event.reported_cost_usd,
        "ttft_ms": event.ttft_ms,
        "duration_ms": event.duration_ms,
        "max_inter_token_gap_ms": event.max_inter_token_gap_ms,
    }
    wire.update({name: value for name, value in optional.items() if value is not None})
    return _encoder.encode(wire)


class OtlpIngest:
    """Turns Collector export batches into tenant-keyed event records."""

    def __init__(self, encoding: Encoding, mapping: OtlpMapping) -> None:
        self.encoding = encoding
        self.mapping = mapping
        self.spans_skipped = 0

    def handle(self, value: bytes) -> OtlpOutput:
        result = decode_otlp(value, self.encoding, self.mapping)
        self.spans_skipped += result.skipped_spans
        records = [(event.tenant.encode(), encode_event(event)) for event in result.events]
        return OtlpOutput(records, list(result.rejections), result.skipped_spans)
