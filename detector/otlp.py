"""Decode OTLP trace export batches from the Collector's Kafka exporter into events.

The OpenTelemetry Collector's Kafka exporter writes one record per export batch, as
an ``ExportTraceServiceRequest`` in one of two encodings:

- ``otlp_proto``: the binary protobuf, decoded with the opentelemetry-proto classes.
- ``otlp_json``: the OTLP/JSON encoding. It differs from protobuf's generic JSON
  mapping: trace and span ids are hex strings, not base64, so
  ``google.protobuf.json_format`` would read them as the wrong bytes. Field names
  are lowerCamelCase, int64 values may be strings or numbers, and enums are
  integers. The batch is parsed with msgspec into typed structs that mirror the
  OTLP messages, which is faster than building protobuf objects from JSON.

Both encodings become the same neutral span record (hex ids, nanosecond times, the
status, the attributes as Python values), so one function builds the ``Event`` and
both encodings yield equal events for equal spans.

A span is a GenAI span when it carries ``gen_ai.operation.name``,
``gen_ai.provider.name`` or the older ``gen_ai.system``. Other spans are skipped and
counted. A GenAI span is turned into a ``detector.decode.WireEvent`` and validated
by ``detector.decode.to_event``, so the attribute names (current and older) and
their checks are the ones JSON events get. What is read from a span:

- timestamp: the span's end time, because a request's cost is incurred when the
  response completes. The start time is used when the end time is missing (0).
- request id: ``gen_ai.response.id``, else ``<trace id hex>-<span id hex>``.
- duration_ms: end time minus start time, when both are set.
- ttft_ms: the attribute ``gen_ai.response.time_to_first_chunk`` (seconds, the
  OpenTelemetry GenAI convention), else the older
  ``gen_ai.response.time_to_first_token`` (seconds), else the first span event
  whose name is in ``OtlpMapping.ttft_event_names``, measured from the span start.
- error_type: ``error.type``; a span whose status is ERROR without it gets
  ``_OTHER``, the convention's fallback value.
- tenant, feature, route and region: the resource or span attributes that
  ``OtlpMapping`` names, first present wins. A span without a tenant is rejected.

A batch that cannot be decoded at all returns one ``Rejection`` with the whole
record, for the dead-letter topic. A rejected span returns a ``Rejection`` whose
``raw`` is a batch of that span alone with its resource and scope, in the record's
encoding, so it can be replayed after a fix.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

import msgspec
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from detector.decode import InvalidEvent, Rejection, WireEvent, to_event
from detector.events import Event

Encoding = Literal["otlp_proto", "otlp_json"]

# NOTE: Kafka producers and brokers cap a record at about 1 MB unless configured
# higher. This limit leaves room for raised caps and still bounds the memory one
# record can take; it is a chosen bound, not a Collector setting.
MAX_BATCH_BYTES = 16 * 1024 * 1024

# Status.code of an OTLP span: 0 unset, 1 ok, 2 error.
STATUS_CODE_ERROR = 2

_GENAI_MARKERS = ("gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.system")
_HEX_TRACE_ID = re.compile(r"[0-9a-fA-F]{32}")
_HEX_SPAN_ID = re.compile(r"[0-9a-fA-F]{16}")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ZERO_TRACE_ID = "0" * 32
_ZERO_SPAN_ID = "0" * 16

# Token attributes, current and older names, as ``WireEvent`` fields.
_INT_ATTRIBUTES = {
    "gen_ai.usage.input_tokens": "input_tokens",
    "gen_ai.usage.prompt_tokens": "prompt_tokens",
    "gen_ai.usage.output_tokens": "output_tokens",
    "gen_ai.usage.completion_tokens": "completion_tokens",
    "gen_ai.usage.cache_read.input_tokens": "cache_read_tokens",
    "gen_ai.usage.cache_read_input_tokens": "cache_read_tokens_old",
    "gen_ai.usage.cache_creation.input_tokens": "cache_write_tokens",
    "gen_ai.usage.cache_creation_input_tokens": "cache_write_tokens_old",
}
_STR_ATTRIBUTES = {
    "gen_ai.provider.name": "provider",
    "gen_ai.system": "system",
    "gen_ai.request.model": "request_model",
    "gen_ai.response.model": "response_model",
    "gen_ai.operation.name": "operation",
    "error.type": "error_type",
}
_TTFT_ATTRIBUTES_S = (
    "gen_ai.response.time_to_first_chunk",
    "gen_ai.response.time_to_first_token",
)
_OTHER_ATTRIBUTES = (
    "gen_ai.response.id",
    "gen_ai.response.finish_reasons",
    "gen_ai.usage.input_tokens_exclude_cache",
)
# The value of a span attribute that is present but not read.
_UNREAD = object()


def _read_attributes(mapping: OtlpMapping) -> frozenset[str]:
    """Return the names of the span attributes that decoding reads."""
    references = (*mapping.tenant, *mapping.feature, *mapping.route, *mapping.region)
    names = {ref.partition(":")[2] for ref in references if ref.startswith("span:")}
    names.update(_STR_ATTRIBUTES, _INT_ATTRIBUTES, _TTFT_ATTRIBUTES_S)
    names.update(_OTHER_ATTRIBUTES)
    return frozenset(names)


def _check_reference(reference: str) -> str:
    source, _, name = reference.partition(":")
    if source not in ("resource", "span") or not name:
        raise ValueError(
            f"attribute reference {reference!r} is invalid: "
            "write resource:NAME or span:NAME"
        )
    return reference


AttributeRef = Annotated[str, AfterValidator(_check_reference)]


class OtlpMapping(BaseModel):
    """Where the tenant, feature, route and region of a span come from.

    Each field lists attribute references, ``resource:NAME`` or ``span:NAME``, in
    order of preference: the first one present with a string value wins.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    tenant: tuple[AttributeRef, ...] = Field(min_length=1)
    feature: tuple[AttributeRef, ...] = ()
    route: tuple[AttributeRef, ...] = ()
    region: tuple[AttributeRef, ...] = ()
    ttft_event_names: frozenset[str] = frozenset()


class OtlpResult(msgspec.Struct, frozen=True):
    """The events of one batch, the spans rejected and the non-GenAI spans skipped."""

    events: list[Event]
    rejections: list[Rejection]
    skipped_spans: int


@dataclass(slots=True)
class _SpanRecord:
    """A span in neither encoding: hex ids, nanosecond times, Python values."""

    trace_id: str
    span_id: str
    start_ns: int
    end_ns: int
    status_error: bool
    attributes: dict[str, object]
    events: list[tuple[str, int]]


class _SpanRejected(Exception):
    def __init__(self, reason: str, field: str | None, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.field = field
        self.detail = detail


def decode_otlp(data: bytes, encoding: Encoding, mapping: OtlpMapping) -> OtlpResult:
    """Decode one export batch in ``encoding`` into events, rejections and a count."""
    if len(data) > MAX_BATCH_BYTES:
        detail = f"record is {len(data)} bytes, the limit is {MAX_BATCH_BYTES}"
        return OtlpResult([], [Rejection("oversized", None, detail, data[:1024])], 0)
    if encoding == "otlp_proto":
        return _decode_proto(data, mapping)
    if encoding == "otlp_json":
        return _decode_json(data, mapping)
    raise ValueError(f"encoding {encoding!r} is not otlp_proto or otlp_json")


class _Builder:
    """Collects the events, rejections and skips of one batch."""

    def __init__(self, mapping: OtlpMapping) -> None:
        self.mapping = mapping
        self.read_attributes = _read_attributes(mapping)
        self.events: list[Event] = []
        self.rejections: list[Rejection] = []
        self.skipped_spans = 0

    def add(
        self,
        span: _SpanRecord,
        resource: Mapping[str, object],
        raw: Callable[[], bytes],
    ) -> None:
        if not any(marker in span.attributes for marker in _GENAI_MARKERS):
            self.skipped_spans += 1
            return
        try:
            self.events.append(_build_event(span, resource, self.mapping))
        except (_SpanRejected, InvalidEvent) as error:
            detail = f"span {span.trace_id}/{span.span_id}: {error.detail}"
            self.rejections.append(Rejection(error.reason, error.field, detail, raw()))

    def result(self) -> OtlpResult:
        return OtlpResult(self.events, self.rejections, self.skipped_spans)


def _build_event(
    span: _SpanRecord, resource: Mapping[str, object], mapping: OtlpMapping
) -> Event:
    attributes = span.attributes
    fields: dict[str, object] = {}
    for name, field in _STR_ATTRIBUTES.items():
        fields[field] = _string_attribute(attributes, name)
    for name, field in _INT_ATTRIBUTES.items():
        fields[field] = _int_attribute(attributes, name)
    excludes_cache = attributes.get("gen_ai.usage.input_tokens_exclude_cache")
    if span.status_error and fields["error_type"] is None:
        fields["error_type"] = "_OTHER"

    tenant = _lookup(mapping.tenant, resource, attributes)
    if tenant is None:
        references = ", ".join(mapping.tenant)
        raise _SpanRejected(
            "missing_field", "tenant", f"no tenant attribute is set ({references})"
        )
    wire = WireEvent(
        timestamp=_event_time(span),
        request_id=_request_id(span),
        tenant=tenant,
        feature=_lookup(mapping.feature, resource, attributes) or "",
        route=_lookup(mapping.route, resource, attributes) or "",
        region=_lookup(mapping.region, resource, attributes) or "",
        input_excludes_cache=excludes_cache is True,
        finish_reasons=_finish_reasons(attributes),
        duration_ms=_duration_ms(span),
        ttft_ms=_ttft_ms(span, mapping.ttft_event_names),
        **fields,  # type: ignore[arg-type]
    )
    return to_event(wire)


def _lookup(
    references: Iterable[str],
    resource: Mapping[str, object],
    attributes: Mapping[str, object],
) -> str | None:
    for reference in references:
        source, _, name = reference.partition(":")
        value = (resource if source == "resource" else attributes).get(name)
        if isinstance(value, str) and value:
            return value
    return None


def _string_attribute(attributes: Mapping[str, object], name: str) -> str | None:
    value = attributes.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _SpanRejected("invalid_field", name, f"{name} is {value!r}, not a string")
    return value


def _int_attribute(attributes: Mapping[str, object], name: str) -> int | None:
    value = attributes.get(name)
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    # Some SDKs record every number as a double; a whole one is still a count.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise _SpanRejected("invalid_field", name, f"{name} is {value!r}, not an integer")


def _finish_reasons(attributes: Mapping[str, object]) -> tuple[str, ...]:
    name = "gen_ai.response.finish_reasons"
    value = attributes.get(name)
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, tuple) and all(isinstance(item, str) for item in value):
        return value
    raise _SpanRejected(
        "invalid_field", name, f"{name} is {value!r}, not a list of strings"
    )


def _request_id(span: _SpanRecord) -> str:
    response_id = span.attributes.get("gen_ai.response.id")
    if isinstance(response_id, str) and response_id:
        return response_id
    if span.trace_id in ("", _ZERO_TRACE_ID) or span.span_id in ("", _ZERO_SPAN_ID):
        raise _SpanRejected(
            "missing_field",
            "request_id",
            "the span has no gen_ai.response.id and no trace id and span id",
        )
    if len(span.trace_id) != 32 or len(span.span_id) != 16:
        raise _SpanRejected(
            "invalid_field",
            "request_id",
            f"trace id {span.trace_id!r} or span id {span.span_id!r} has the wrong "
            "length: a trace id is 16 bytes and a span id 8",
        )
    return f"{span.trace_id}-{span.span_id}"


def _event_time(span: _SpanRecord) -> datetime:
    time_ns = span.end_ns or span.start_ns
    if time_ns <= 0:
        raise _SpanRejected(
            "missing_field", "timestamp", "the span has no end time and no start time"
        )
    return _EPOCH + timedelta(microseconds=time_ns // 1000)


def _duration_ms(span: _SpanRecord) -> float | None:
    if span.start_ns <= 0 or span.end_ns <= 0:
        return None
    if span.end_ns < span.start_ns:
        raise _SpanRejected(
            "invalid_field",
            "endTimeUnixNano",
            f"the span ends at {span.end_ns} ns, before its start at {span.start_ns}",
        )
    return (span.end_ns - span.start_ns) / 1e6


def _ttft_ms(span: _SpanRecord, event_names: frozenset[str]) -> float | None:
    for name in _TTFT_ATTRIBUTES_S:
        value = span.attributes.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value) * 1000.0
        if value is not None:
            raise _SpanRejected(
                "invalid_field", name, f"{name} is {value!r}, not seconds"
            )
    if not event_names or span.start_ns <= 0:
        return None
    for name, time_ns in span.events:
        if name in event_names and time_ns >= span.start_ns:
            return (time_ns - span.start_ns) / 1e6
    return None


# --- otlp_proto -------------------------------------------------------------------


def _decode_proto(data: bytes, mapping: OtlpMapping) -> OtlpResult:
    try:
        request = ExportTraceServiceRequest.FromString(data)
    except DecodeError as error:
        detail = f"record is not an ExportTraceServiceRequest protobuf: {error}"
        return OtlpResult([], [Rejection("invalid_protobuf", None, detail, data)], 0)

    builder = _Builder(mapping)
    for resource_spans in request.resource_spans:
        resource = _proto_attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                builder.add(
                    _proto_span(span, builder.read_attributes),
                    resource,
                    _proto_raw(resource_spans, scope_spans, span),
                )
    return builder.result()


def _proto_span(span: Span, read: frozenset[str]) -> _SpanRecord:
    return _SpanRecord(
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        start_ns=span.start_time_unix_nano,
        end_ns=span.end_time_unix_nano,
        status_error=span.status.code == STATUS_CODE_ERROR,
        attributes=_proto_span_attributes(span.attributes, read),
        events=[(event.name, event.time_unix_nano) for event in span.events],
    )


def _proto_span_attributes(
    attributes: Iterable[KeyValue], read: frozenset[str]
) -> dict[str, object]:
    # Converting every value costs more than the rest of the decoding, so only the
    # attributes that are read get a value and the others only mark their key.
    converted: dict[str, object] = {}
    for attribute in attributes:
        key = attribute.key
        converted[key] = _proto_value(attribute.value) if key in read else _UNREAD
    return converted


def _proto_attributes(attributes: Iterable[KeyValue]) -> dict[str, object]:
    return {attribute.key: _proto_value(attribute.value) for attribute in attributes}


def _proto_value(value: AnyValue) -> object:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        return value.double_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "array_value":
        return tuple(_proto_value(item) for item in value.array_value.values)
    if kind == "kvlist_value":
        return _proto_attributes(value.kvlist_value.values)
    if kind == "bytes_value":
        return value.bytes_value
    return None


def _proto_raw(
    resource_spans: ResourceSpans, scope_spans: ScopeSpans, span: Span
) -> Callable[[], bytes]:
    def raw() -> bytes:
        single = ExportTraceServiceRequest()
        resource_copy = single.resource_spans.add()
        resource_copy.resource.CopyFrom(resource_spans.resource)
        resource_copy.schema_url = resource_spans.schema_url
        scope_copy = resource_copy.scope_spans.add()
        scope_copy.scope.CopyFrom(scope_spans.scope)
        scope_copy.schema_url = scope_spans.schema_url
        scope_copy.spans.append(span)
        return single.SerializeToString()

    return raw


# --- otlp_json --------------------------------------------------------------------
# Structs mirroring the OTLP messages in their OTLP/JSON spelling. Unknown fields
# are ignored, as the OTLP specification requires of receivers.


class _JsonStruct(msgspec.Struct, frozen=True, omit_defaults=True):
    pass


class JsonArrayValue(_JsonStruct, frozen=True):
    values: list[JsonAnyValue] = []


class JsonKeyValueList(_JsonStruct, frozen=True):
    values: list[JsonKeyValue] = []


class JsonAnyValue(_JsonStruct, frozen=True, rename="camel"):
    string_value: str | None = None
    bool_value: bool | None = None
    int_value: int | str | None = None
    # Protobuf's JSON mapping writes NaN and the infinities as strings.
    double_value: float | str | None = None
    array_value: JsonArrayValue | None = None
    kvlist_value: JsonKeyValueList | None = None
    bytes_value: str | None = None


class JsonKeyValue(_JsonStruct, frozen=True):
    key: str
    value: JsonAnyValue = JsonAnyValue()


class JsonStatus(_JsonStruct, frozen=True):
    code: int | str = 0
    message: str = ""


class JsonSpanEvent(_JsonStruct, frozen=True, rename="camel"):
    time_unix_nano: int | str = 0
    name: str = ""
    attributes: list[JsonKeyValue] = []


class JsonSpan(_JsonStruct, frozen=True, rename="camel"):
    trace_id: str = ""
    span_id: str = ""
    parent_span_id: str = ""
    name: str = ""
    kind: int | str = 0
    start_time_unix_nano: int | str = 0
    end_time_unix_nano: int | str = 0
    attributes: list[JsonKeyValue] = []
    events: list[JsonSpanEvent] = []
    status: JsonStatus = JsonStatus()


class JsonScope(_JsonStruct, frozen=True):
    name: str = ""
    version: str = ""
    attributes: list[JsonKeyValue] = []


class JsonScopeSpans(_JsonStruct, frozen=True, rename="camel"):
    scope: JsonScope = JsonScope()
    spans: list[JsonSpan] = []
    schema_url: str = ""


class JsonResource(_JsonStruct, frozen=True):
    attributes: list[JsonKeyValue] = []


class JsonResourceSpans(_JsonStruct, frozen=True, rename="camel"):
    resource: JsonResource = JsonResource()
    scope_spans: list[JsonScopeSpans] = []
    schema_url: str = ""


class JsonExportRequest(_JsonStruct, frozen=True, rename="camel"):
    resource_spans: list[JsonResourceSpans] = []


_json_decoder = msgspec.json.Decoder(JsonExportRequest)
_json_encoder = msgspec.json.Encoder()


def _decode_json(data: bytes, mapping: OtlpMapping) -> OtlpResult:
    try:
        request = _json_decoder.decode(data)
    except msgspec.ValidationError as error:
        detail = f"record is not an OTLP/JSON ExportTraceServiceRequest: {error}"
        return OtlpResult([], [Rejection("invalid_field", None, detail, data)], 0)
    except msgspec.DecodeError as error:
        return OtlpResult([], [Rejection("invalid_json", None, str(error), data)], 0)

    builder = _Builder(mapping)
    for resource_spans in request.resource_spans:
        try:
            resource = _json_attributes(resource_spans.resource.attributes)
        except _SpanRejected as error:
            raw = _json_encoder.encode(JsonExportRequest([resource_spans]))
            builder.rejections.append(
                Rejection(error.reason, error.field, f"resource: {error.detail}", raw)
            )
            continue
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                # Skip before reading ids and values, as the protobuf path does.
                if not any(kv.key in _GENAI_MARKERS for kv in span.attributes):
                    builder.skipped_spans += 1
                    continue
                raw_span = _json_raw(resource_spans, scope_spans, span)
                try:
                    record = _json_span(span, builder.read_attributes)
                except _SpanRejected as error:
                    detail = f"span {span.trace_id}/{span.span_id}: {error.detail}"
                    builder.rejections.append(
                        Rejection(error.reason, error.field, detail, raw_span())
                    )
                    continue
                builder.add(record, resource, raw_span)
    return builder.result()


def _json_span(span: JsonSpan, read: frozenset[str]) -> _SpanRecord:
    return _SpanRecord(
        trace_id=_hex_id(span.trace_id, _HEX_TRACE_ID, "traceId"),
        span_id=_hex_id(span.span_id, _HEX_SPAN_ID, "spanId"),
        start_ns=_json_int(span.start_time_unix_nano, "startTimeUnixNano"),
        end_ns=_json_int(span.end_time_unix_nano, "endTimeUnixNano"),
        status_error=_status_code(span.status.code) == STATUS_CODE_ERROR,
        attributes={
            attribute.key: _json_value(attribute.value, attribute.key)
            if attribute.key in read
            else _UNREAD
            for attribute in span.attributes
        },
        events=[
            (event.name, _json_int(event.time_unix_nano, "events.timeUnixNano"))
            for event in span.events
        ],
    )


def _hex_id(value: str, pattern: re.Pattern[str], field: str) -> str:
    if not value:
        return ""
    if pattern.fullmatch(value) is None:
        length = pattern.pattern.rsplit("{", 1)[1].rstrip("}")
        raise _SpanRejected(
            "invalid_field",
            field,
            f"{field} {value!r} is not {length} hex digits "
            "(OTLP/JSON writes ids as hex, not base64)",
        )
    return value.lower()


def _json_int(value: int | str, field: str) -> int:
    if isinstance(value, int):
        return value
    try:
        return int(value)
    except ValueError:
        raise _SpanRejected(
            "invalid_field", field, f"{field} {value!r} is not an integer"
        ) from None


def _status_code(code: int | str) -> int:
    if isinstance(code, int):
        return code
    # OTLP/JSON requires integer enums; the enum names are accepted as well.
    names = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}
    return names.get(code, 0)


def _json_attributes(attributes: Iterable[JsonKeyValue]) -> dict[str, object]:
    return {
        attribute.key: _json_value(attribute.value, attribute.key)
        for attribute in attributes
    }


def _json_value(value: JsonAnyValue, key: str) -> object:
    if value.string_value is not None:
        return value.string_value
    if value.int_value is not None:
        return _json_int(value.int_value, key)
    if value.double_value is not None:
        return _json_double(value.double_value, key)
    if value.bool_value is not None:
        return value.bool_value
    if value.array_value is not None:
        return tuple(_json_value(item, key) for item in value.array_value.values)
    if value.kvlist_value is not None:
        return _json_attributes(value.kvlist_value.values)
    if value.bytes_value is not None:
        try:
            return base64.b64decode(value.bytes_value, validate=True)
        except ValueError:
            raise _SpanRejected(
                "invalid_field", key, f"{key} bytesValue is not base64"
            ) from None
    return None


def _json_double(value: float | str, key: str) -> float:
    if isinstance(value, float):
        return value
    try:
        return float(value)
    except ValueError:
        raise _SpanRejected(
            "invalid_field", key, f"{key} doubleValue {value!r} is not a number"
        ) from None


def _json_raw(
    resource_spans: JsonResourceSpans, scope_spans: JsonScopeSpans, span: JsonSpan
) -> Callable[[], bytes]:
    def raw() -> bytes:
        scope_copy = JsonScopeSpans(scope_spans.scope, [span], scope_spans.schema_url)
        resource_copy = JsonResourceSpans(
            resource_spans.resource, [scope_copy], resource_spans.schema_url
        )
        return _json_encoder.encode(JsonExportRequest([resource_copy]))

    return raw
