"""OTLP batches become tenant-keyed event records that decode to the same events."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from detector.decode import decode_record
from detector.events import Event
from detector.otlp import OtlpMapping
from detector.service.otlp_ingest import OtlpIngest, encode_event
from tests.test_otlp import FIXTURES  # the checked-in Collector batches

MAPPING = OtlpMapping(tenant=("resource:tenant.id", "span:app.tenant"))


def test_encoded_event_decodes_to_itself() -> None:
    """Every field survives the trip through the events topic's JSON."""
    event = Event(
        timestamp=datetime(2026, 5, 4, 10, 0, 5, 250000, tzinfo=UTC),
        request_id="r-1",
        tenant="acme",
        provider="anthropic",
        request_model="claude-sonnet-4-5",
        response_model="claude-sonnet-4-5-20250929",
        operation="chat",
        feature="support",
        route="/v1/chat",
        region="eu-west-1",
        input_tokens=1500,
        output_tokens=200,
        cache_read_tokens=1000,
        cache_write_tokens=300,
        finish_reasons=("refusal",),
        error_type="timeout",
        reported_cost_usd=Decimal("0.0105"),
        ttft_ms=410.5,
        duration_ms=2300.0,
        max_inter_token_gap_ms=95.0,
    )

    events, rejections = decode_record(encode_event(event))

    assert rejections == []
    assert events == [event]


def test_batch_records_are_keyed_by_tenant() -> None:
    """Each GenAI span of a fixture batch becomes one record keyed by its tenant."""
    ingest = OtlpIngest("otlp_json", MAPPING)
    data = (FIXTURES / "batch.otlp_json.json").read_bytes()

    output = ingest.handle(data)

    assert output.records
    for key, value in output.records:
        events, rejections = decode_record(value)
        assert rejections == []
        assert key == events[0].tenant.encode()
    assert output.skipped_spans == ingest.spans_skipped
