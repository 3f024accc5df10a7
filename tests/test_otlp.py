"""Tests for decoding OTLP trace export batches (protobuf and OTLP/JSON) into events."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import (
    ResourceSpans,
    ScopeSpans,
    Span,
    Status,
)
from pydantic import ValidationError

from detector.events import Event
from detector.otlp import OtlpMapping, OtlpResult, decode_otlp

FIXTURES = Path(__file__).parent / "fixtures" / "otlp"

MAPPING = OtlpMapping(
    tenant=("resource:tenant.id", "span:app.tenant"),
    feature=("span:app.feature", "resource:service.name"),
    route=("span:http.route",),
    region=("resource:cloud.region",),
)

TRACE_A = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")
TRACE_B = bytes.fromhex("4bf92f3577b34da6a3ce929d0e0e4736")


def ns(text: str) -> int:
    """Return an RFC 3339 literal as Unix nanoseconds, exactly."""
    moment = datetime.fromisoformat(text)
    whole_s = int(moment.replace(microsecond=0).timestamp())
    return whole_s * 1_000_000_000 + moment.microsecond * 1000


def any_value(value: Any) -> AnyValue:
    """Wrap a Python value as an OTLP AnyValue."""
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, (list, tuple)):
        return AnyValue(array_value=ArrayValue(values=[any_value(v) for v in value]))
    return AnyValue(string_value=value)


def attributes(values: dict[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=key, value=any_value(value)) for key, value in values.items()]


def span(
    trace_id: bytes,
    span_id: str,
    start: str,
    end: str | None,
    values: dict[str, Any],
    *,
    status_code: Status.StatusCode.ValueType = Status.STATUS_CODE_UNSET,
    events: tuple[tuple[str, str], ...] = (),
) -> Span:
    """Build a span; ``events`` holds (name, RFC 3339 time) pairs."""
    built = Span(
        trace_id=trace_id,
        span_id=bytes.fromhex(span_id),
        name="chat",
        kind=Span.SPAN_KIND_CLIENT,
        start_time_unix_nano=ns(start),
        end_time_unix_nano=ns(end) if end else 0,
        attributes=attributes(values),
        status=Status(code=status_code),
    )
    for name, time in events:
        built.events.add(name=name, time_unix_nano=ns(time))
    return built


def openai_span(span_id: str, **extra: Any) -> Span:
    """A GenAI span with current attribute names, ending 2026-07-30T12:00:01.500Z."""
    values: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.response.model": "gpt-4o-2024-08-06",
        "gen_ai.usage.input_tokens": 1200,
        "gen_ai.usage.output_tokens": 300,
        "gen_ai.usage.cache_read.input_tokens": 1000,
        "gen_ai.response.finish_reasons": ["stop"],
        "gen_ai.response.time_to_first_chunk": 0.25,
        "app.feature": "summarise",
        "http.route": "/v1/summaries",
    }
    values.update(extra)
    return span(
        TRACE_A, span_id, "2026-07-30T12:00:00.000Z", "2026-07-30T12:00:01.500Z", values
    )


def build_batch() -> ExportTraceServiceRequest:
    """A Collector-style batch: three resources, several scopes, mixed spans.

    Resource ``chat-api`` (tenant acme) has an OpenAI scope with two GenAI spans and
    an HTTP server span, and an app scope with one more non-GenAI span. Resource
    ``legacy-worker`` carries no tenant.id, so its span reads app.tenant and uses the
    older attribute names; it failed with an ERROR status. Resource ``batch-job``
    has no tenant anywhere, so its GenAI span is rejected.
    """
    openai_scope = ScopeSpans(
        scope=InstrumentationScope(name="opentelemetry.instrumentation.openai_v2"),
        spans=[
            openai_span("b7ad6b7169203331", **{"gen_ai.response.id": "chatcmpl-1"}),
            openai_span("00f067aa0ba902b7"),
            span(
                TRACE_A,
                "53995c3f42cd8ad8",
                "2026-07-30T11:59:59Z",
                "2026-07-30T12:00:02Z",
                {"http.request.method": "POST", "http.route": "/v1/summaries"},
            ),
        ],
    )
    app_scope = ScopeSpans(
        scope=InstrumentationScope(name="app"),
        spans=[
            span(
                TRACE_A,
                "1111111111111111",
                "2026-07-30T12:00:00Z",
                "2026-07-30T12:00:00.100Z",
                {"db.system": "postgresql"},
            )
        ],
    )
    chat_api = ResourceSpans(
        resource=Resource(
            attributes=attributes(
                {
                    "service.name": "chat-api",
                    "tenant.id": "acme",
                    "cloud.region": "eu-west-1",
                }
            )
        ),
        scope_spans=[openai_scope, app_scope],
    )
    legacy = ResourceSpans(
        resource=Resource(attributes=attributes({"service.name": "legacy-worker"})),
        scope_spans=[
            ScopeSpans(
                scope=InstrumentationScope(name="openllmetry"),
                spans=[
                    span(
                        TRACE_B,
                        "a2fb4a1d1a96d312",
                        "2026-07-30T12:05:00Z",
                        "2026-07-30T12:05:03Z",
                        {
                            "app.tenant": "globex",
                            "gen_ai.system": "anthropic",
                            "gen_ai.request.model": "claude-sonnet-4",
                            "gen_ai.usage.prompt_tokens": 50,
                            "gen_ai.usage.completion_tokens": 0,
                            "gen_ai.usage.cache_read_input_tokens": 400,
                            "gen_ai.usage.cache_creation_input_tokens": 100,
                            "gen_ai.response.time_to_first_token": 1.5,
                        },
                        status_code=Status.STATUS_CODE_ERROR,
                    )
                ],
            )
        ],
    )
    untenanted = ResourceSpans(
        resource=Resource(attributes=attributes({"service.name": "batch-job"})),
        scope_spans=[
            ScopeSpans(
                scope=InstrumentationScope(name="openai"),
                spans=[
                    span(
                        TRACE_B,
                        "c0ffee0000000001",
                        "2026-07-30T12:06:00Z",
                        "2026-07-30T12:06:01Z",
                        {
                            "gen_ai.operation.name": "embeddings",
                            "gen_ai.request.model": "text-embedding-3-small",
                        },
                    )
                ],
            )
        ],
    )
    return ExportTraceServiceRequest(resource_spans=[chat_api, legacy, untenanted])


def to_otlp_json(request: ExportTraceServiceRequest) -> bytes:
    """Encode a request as the Collector's OTLP/JSON: protobuf JSON with hex ids."""
    document = json_format.MessageToDict(request, use_integers_for_enums=True)
    _ids_to_hex(document)
    return json.dumps(document).encode()


def _ids_to_hex(node: Any) -> None:
    if isinstance(node, list):
        for item in node:
            _ids_to_hex(item)
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        if key in ("traceId", "spanId", "parentSpanId") and isinstance(value, str):
            node[key] = base64.b64decode(value).hex()
        else:
            _ids_to_hex(value)


def by_request_id(result: OtlpResult) -> dict[str, Event]:
    return {event.request_id: event for event in result.events}


def test_proto_and_json_decode_same_events() -> None:
    """A batch decodes to the same events from protobuf and from OTLP/JSON."""
    request = build_batch()

    from_proto = decode_otlp(request.SerializeToString(), "otlp_proto", MAPPING)
    from_json = decode_otlp(to_otlp_json(request), "otlp_json", MAPPING)

    assert len(from_proto.events) == 3
    assert from_json.events == from_proto.events
    assert from_proto.skipped_spans == 2
    assert from_json.skipped_spans == 2
    assert [r.field for r in from_proto.rejections] == ["tenant"]
    assert [r.field for r in from_json.rejections] == ["tenant"]


@pytest.mark.parametrize("encoding", ["otlp_proto", "otlp_json"])
def test_request_id_from_hex_ids(encoding: str) -> None:
    """A span without gen_ai.response.id gets its trace and span ids in hex."""
    request = build_batch()
    data = (
        request.SerializeToString()
        if encoding == "otlp_proto"
        else to_otlp_json(request)
    )

    result = decode_otlp(data, encoding, MAPPING)  # type: ignore[arg-type]

    ids = sorted(by_request_id(result))
    assert ids == [
        "0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7",
        "4bf92f3577b34da6a3ce929d0e0e4736-a2fb4a1d1a96d312",
        "chatcmpl-1",
    ]


@pytest.mark.parametrize("encoding", ["otlp_proto", "otlp_json"])
def test_current_attribute_names_read(encoding: str) -> None:
    """Every field of a span with current attribute names reaches the event."""
    request = build_batch()
    data = (
        request.SerializeToString()
        if encoding == "otlp_proto"
        else to_otlp_json(request)
    )

    event = by_request_id(decode_otlp(data, encoding, MAPPING))["chatcmpl-1"]  # type: ignore[arg-type]

    # The event time is the span end, 2026-07-30T12:00:01.500Z.
    assert event.timestamp == datetime.fromisoformat("2026-07-30T12:00:01.500Z")
    assert event.tenant == "acme"
    assert event.feature == "summarise"
    assert event.route == "/v1/summaries"
    assert event.region == "eu-west-1"
    assert event.provider == "openai"
    assert event.operation == "chat"
    assert event.request_model == "gpt-4o"
    assert event.response_model == "gpt-4o-2024-08-06"
    assert event.input_tokens == 1200
    assert event.output_tokens == 300
    assert event.cache_read_tokens == 1000
    assert event.finish_reasons == ("stop",)
    assert event.duration_ms == 1500.0
    assert event.ttft_ms == 250.0
    assert event.error_type is None


def test_older_attribute_names_read() -> None:
    """gen_ai.system, prompt/completion tokens and old cache names are read."""
    data = build_batch().SerializeToString()

    events = by_request_id(decode_otlp(data, "otlp_proto", MAPPING))
    event = events["4bf92f3577b34da6a3ce929d0e0e4736-a2fb4a1d1a96d312"]

    assert event.tenant == "globex"
    assert event.feature == "legacy-worker"
    assert event.provider == "anthropic"
    assert event.request_model == "claude-sonnet-4"
    # 50 prompt tokens are fewer than the 500 cache tokens, so they exclude them.
    assert event.input_tokens == 550
    assert event.output_tokens == 0
    assert event.cache_read_tokens == 400
    assert event.cache_write_tokens == 100
    assert event.ttft_ms == 1500.0
    assert event.duration_ms == 3000.0
    assert event.region == ""


def test_error_status_sets_error_type() -> None:
    """An ERROR status without error.type gives _OTHER; error.type wins when set."""
    request = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(attributes=attributes({"tenant.id": "acme"})),
                scope_spans=[
                    ScopeSpans(
                        spans=[
                            openai_span("0000000000000001"),
                            span(
                                TRACE_A,
                                "0000000000000002",
                                "2026-07-30T12:00:00Z",
                                "2026-07-30T12:00:30Z",
                                {
                                    "gen_ai.operation.name": "chat",
                                    "gen_ai.request.model": "gpt-4o",
                                },
                                status_code=Status.STATUS_CODE_ERROR,
                            ),
                            span(
                                TRACE_A,
                                "0000000000000003",
                                "2026-07-30T12:00:00Z",
                                "2026-07-30T12:00:30Z",
                                {
                                    "gen_ai.operation.name": "chat",
                                    "gen_ai.request.model": "gpt-4o",
                                    "error.type": "timeout",
                                },
                                status_code=Status.STATUS_CODE_ERROR,
                            ),
                        ]
                    )
                ],
            )
        ]
    )

    result = decode_otlp(request.SerializeToString(), "otlp_proto", MAPPING)

    errors = [event.error_type for event in result.events]
    assert errors == [None, "_OTHER", "timeout"]


@pytest.mark.parametrize("encoding", ["otlp_proto", "otlp_json"])
def test_span_without_tenant_rejected(encoding: str) -> None:
    """A GenAI span without a tenant is rejected with a replayable one-span batch."""
    request = build_batch()
    data = (
        request.SerializeToString()
        if encoding == "otlp_proto"
        else to_otlp_json(request)
    )

    result = decode_otlp(data, encoding, MAPPING)  # type: ignore[arg-type]

    [rejection] = result.rejections
    assert rejection.reason == "missing_field"
    assert rejection.field == "tenant"
    assert "resource:tenant.id, span:app.tenant" in rejection.detail
    assert "c0ffee0000000001" in rejection.detail
    replayed = decode_otlp(
        rejection.raw,
        encoding,  # type: ignore[arg-type]
        OtlpMapping(tenant=("resource:service.name",)),
    )
    assert [event.tenant for event in replayed.events] == ["batch-job"]
    assert replayed.events[0].operation == "embeddings"


def test_tenant_references_in_order() -> None:
    """The first reference present wins, whether resource or span."""
    data = build_batch().SerializeToString()
    span_first = OtlpMapping(tenant=("span:app.tenant", "resource:service.name"))

    result = decode_otlp(data, "otlp_proto", span_first)

    tenants = sorted(event.tenant for event in result.events)
    assert tenants == ["batch-job", "chat-api", "chat-api", "globex"]
    assert result.rejections == []


def test_ttft_from_span_event() -> None:
    """A named span event sets ttft_ms when no attribute does."""
    request = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(attributes=attributes({"tenant.id": "acme"})),
                scope_spans=[
                    ScopeSpans(
                        spans=[
                            span(
                                TRACE_A,
                                "0000000000000001",
                                "2026-07-30T12:00:00Z",
                                "2026-07-30T12:00:02Z",
                                {
                                    "gen_ai.operation.name": "chat",
                                    "gen_ai.request.model": "gpt-4o",
                                },
                                events=(
                                    ("retry", "2026-07-30T12:00:00.100Z"),
                                    ("first_token", "2026-07-30T12:00:00.400Z"),
                                    ("first_token", "2026-07-30T12:00:00.900Z"),
                                ),
                            )
                        ]
                    )
                ],
            )
        ]
    )
    data = request.SerializeToString()
    with_events = OtlpMapping(
        tenant=("resource:tenant.id",), ttft_event_names=frozenset({"first_token"})
    )

    named = decode_otlp(data, "otlp_proto", with_events)
    unnamed = decode_otlp(data, "otlp_proto", MAPPING)

    assert named.events[0].ttft_ms == 400.0
    assert unnamed.events[0].ttft_ms is None


def test_start_time_used_without_end() -> None:
    """A span with no end time is stamped at its start and has no duration."""
    request = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(
                resource=Resource(attributes=attributes({"tenant.id": "acme"})),
                scope_spans=[
                    ScopeSpans(
                        spans=[
                            span(
                                TRACE_A,
                                "0000000000000001",
                                "2026-07-30T12:00:00.250Z",
                                None,
                                {
                                    "gen_ai.system": "openai",
                                    "gen_ai.request.model": "m",
                                },
                            )
                        ]
                    )
                ],
            )
        ]
    )

    result = decode_otlp(request.SerializeToString(), "otlp_proto", MAPPING)

    [event] = result.events
    assert event.timestamp == datetime.fromisoformat("2026-07-30T12:00:00.250Z")
    assert event.duration_ms is None


def test_json_int64_as_number_or_string() -> None:
    """OTLP/JSON int64 values decode whether written as strings or as numbers."""
    document = json.loads(to_otlp_json(build_batch()))
    target = document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    target["startTimeUnixNano"] = int(target["startTimeUnixNano"])
    for attribute in target["attributes"]:
        if "intValue" in attribute["value"]:
            attribute["value"]["intValue"] = int(attribute["value"]["intValue"])

    result = decode_otlp(json.dumps(document).encode(), "otlp_json", MAPPING)

    event = by_request_id(result)["chatcmpl-1"]
    assert event.input_tokens == 1200
    assert event.duration_ms == 1500.0


def test_generic_protobuf_json_ids_rejected() -> None:
    """Base64 ids from protobuf's generic JSON mapping are rejected, not misread."""
    data = json_format.MessageToJson(build_batch()).encode()

    result = decode_otlp(data, "otlp_json", MAPPING)

    assert result.events == []
    assert {r.field for r in result.rejections} == {"traceId"}
    assert "not 32 hex digits" in result.rejections[0].detail


def test_uppercase_hex_ids_normalised() -> None:
    """Upper-case hex ids are read and written in lower case."""
    document = json.loads(to_otlp_json(build_batch()))
    target = document["resourceSpans"][0]["scopeSpans"][0]["spans"][1]
    target["traceId"] = target["traceId"].upper()
    target["spanId"] = target["spanId"].upper()

    result = decode_otlp(json.dumps(document).encode(), "otlp_json", MAPPING)

    assert "0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7" in by_request_id(result)


def test_negative_tokens_rejected() -> None:
    """A span with a negative token count is rejected by the event checks."""
    request = build_batch()
    bad = openai_span("0000000000000009", **{"gen_ai.usage.output_tokens": -5})
    request.resource_spans[0].scope_spans[0].spans.append(bad)

    result = decode_otlp(request.SerializeToString(), "otlp_proto", MAPPING)

    reasons = {(r.reason, r.field) for r in result.rejections}
    assert ("negative_value", "gen_ai.usage.output_tokens") in reasons
    assert len(result.events) == 3


def test_non_integer_tokens_rejected() -> None:
    """A token count that is not a whole number is rejected naming the attribute."""
    request = build_batch()
    bad = openai_span("0000000000000009", **{"gen_ai.usage.input_tokens": "many"})
    request.resource_spans[0].scope_spans[0].spans.append(bad)

    result = decode_otlp(request.SerializeToString(), "otlp_proto", MAPPING)

    fields = [r.field for r in result.rejections if r.reason == "invalid_field"]
    assert fields == ["gen_ai.usage.input_tokens"]


def test_undecodable_protobuf_rejected() -> None:
    """Bytes that are not a protobuf batch return one rejection with the record."""
    data = b"\xff\xff\xff\xff not a protobuf"

    result = decode_otlp(data, "otlp_proto", MAPPING)

    [rejection] = result.rejections
    assert rejection.reason == "invalid_protobuf"
    assert rejection.raw == data
    assert result.events == []


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b'{"resourceSpans": [', "invalid_json"),
        (b"not json", "invalid_json"),
        (b'{"resourceSpans": "spans"}', "invalid_field"),
        (
            b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": 7}]}]}]}',
            "invalid_field",
        ),
    ],
)
def test_malformed_json_rejected(data: bytes, reason: str) -> None:
    """Bad JSON or a wrong shape returns one rejection with the whole record."""
    result = decode_otlp(data, "otlp_json", MAPPING)

    [rejection] = result.rejections
    assert rejection.reason == reason
    assert rejection.raw == data
    assert result.events == []


def test_oversized_batch_rejected() -> None:
    """A record over the size limit is rejected before parsing."""
    data = b"{" + b" " * (16 * 1024 * 1024) + b"}"

    result = decode_otlp(data, "otlp_json", MAPPING)

    assert [r.reason for r in result.rejections] == ["oversized"]


def test_mapping_validates_references() -> None:
    """The mapping rejects unknown sources, extra fields and an empty tenant list."""
    with pytest.raises(ValidationError, match="resource:NAME or span:NAME"):
        OtlpMapping(tenant=("scope:tenant",))
    with pytest.raises(ValidationError, match="Extra inputs"):
        OtlpMapping(tenant=("span:t",), project=("span:p",))  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="at least 1"):
        OtlpMapping(tenant=())


def test_proto_fixture_decodes() -> None:
    """The checked-in protobuf batch decodes to the expected events."""
    data = (FIXTURES / "batch.otlp_proto.bin").read_bytes()

    result = decode_otlp(data, "otlp_proto", MAPPING)

    assert result.skipped_spans == 2
    assert len(result.rejections) == 1
    assert _fixture_summary(result) == EXPECTED_FIXTURE_EVENTS


def test_json_fixture_decodes() -> None:
    """The checked-in OTLP/JSON batch, with hex ids, decodes to the same events."""
    data = (FIXTURES / "batch.otlp_json.json").read_bytes()

    result = decode_otlp(data, "otlp_json", MAPPING)

    assert result.skipped_spans == 2
    assert len(result.rejections) == 1
    assert _fixture_summary(result) == EXPECTED_FIXTURE_EVENTS


# request_id, tenant, provider, model, input, output, timestamp, error_type
EXPECTED_FIXTURE_EVENTS = [
    (
        "0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7",
        "acme",
        "openai",
        "gpt-4o-2024-08-06",
        1200,
        300,
        "2026-07-30T12:00:01.500000+00:00",
        None,
    ),
    (
        "4bf92f3577b34da6a3ce929d0e0e4736-a2fb4a1d1a96d312",
        "globex",
        "anthropic",
        "claude-sonnet-4",
        550,
        0,
        "2026-07-30T12:05:03+00:00",
        "_OTHER",
    ),
    (
        "chatcmpl-1",
        "acme",
        "openai",
        "gpt-4o-2024-08-06",
        1200,
        300,
        "2026-07-30T12:00:01.500000+00:00",
        None,
    ),
]


def _fixture_summary(result: OtlpResult) -> list[tuple[Any, ...]]:
    return sorted(
        (
            event.request_id,
            event.tenant,
            event.provider,
            event.model,
            event.input_tokens,
            event.output_tokens,
            event.timestamp.isoformat(),
            event.error_type,
        )
        for event in result.events
    )


def test_events_carry_no_reported_cost() -> None:
    """Spans carry no cost, so every event is priced from its tokens."""
    result = decode_otlp(build_batch().SerializeToString(), "otlp_proto", MAPPING)

    costs = {event.reported_cost_usd for event in result.events}
    assert costs == {None}
