"""Tests for decoding wire JSON into events: spellings, batches, rejections, money."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from detector.decode import (
    MAX_RECORD_BYTES,
    InvalidEvent,
    WireEvent,
    decode_lines,
    decode_record,
    to_event,
)
from detector.events import Event

# 2025-03-01T12:00:00Z as Unix seconds.
MARCH_1_NOON_S = 1740830400


def wire_event(**attributes: Any) -> dict[str, Any]:
    """Return a valid minimal wire event updated with ``attributes``."""
    event: dict[str, Any] = {
        "timestamp": "2025-03-01T12:00:00Z",
        "request_id": "req-1",
        "tenant": "acme",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
    }
    event.update(attributes)
    return event


def encode(value: Any) -> bytes:
    return json.dumps(value).encode()


def decode_one(value: Any) -> Event:
    """Decode one wire event and fail the test unless exactly one event results."""
    events, rejections = decode_record(encode(value))
    assert rejections == []
    assert len(events) == 1
    return events[0]


def without(event: dict[str, Any], name: str) -> dict[str, Any]:
    return {key: value for key, value in event.items() if key != name}


# Spellings


def test_older_spellings_give_same_event() -> None:
    """An event with the older attribute names decodes to the same Event."""
    current = wire_event(
        **{
            "gen_ai.provider.name": "anthropic",
            "gen_ai.usage.input_tokens": 1500,
            "gen_ai.usage.output_tokens": 200,
            "gen_ai.usage.cache_read.input_tokens": 1000,
            "gen_ai.usage.cache_creation.input_tokens": 300,
        }
    )
    older = without(wire_event(), "gen_ai.provider.name") | {
        "gen_ai.system": "anthropic",
        "gen_ai.usage.prompt_tokens": 1500,
        "gen_ai.usage.completion_tokens": 200,
        "gen_ai.usage.cache_read_input_tokens": 1000,
        "gen_ai.usage.cache_creation_input_tokens": 300,
    }

    from_current = decode_one(current)
    from_older = decode_one(older)

    assert from_older == from_current
    assert from_older.provider == "anthropic"
    assert from_older.input_tokens == 1500
    assert from_older.output_tokens == 200
    assert from_older.cache_read_tokens == 1000
    assert from_older.cache_write_tokens == 300


SPELLINGS = [
    # (current name, older name, Event attribute, wire value)
    ("gen_ai.provider.name", "gen_ai.system", "provider", "anthropic"),
    ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "input_tokens", 42),
    (
        "gen_ai.usage.output_tokens",
        "gen_ai.usage.completion_tokens",
        "output_tokens",
        7,
    ),
    (
        "gen_ai.usage.cache_read.input_tokens",
        "gen_ai.usage.cache_read_input_tokens",
        "cache_read_tokens",
        5,
    ),
    (
        "gen_ai.usage.cache_creation.input_tokens",
        "gen_ai.usage.cache_creation_input_tokens",
        "cache_write_tokens",
        3,
    ),
]


@pytest.mark.parametrize(("current", "older", "attribute", "value"), SPELLINGS)
def test_older_spelling_alone_sets_attribute(
    current: str, older: str, attribute: str, value: object
) -> None:
    """Each older attribute name, sent alone, fills the same Event attribute."""
    event = without(wire_event(**{"gen_ai.usage.input_tokens": 100}), current)
    event[older] = value

    decoded = decode_one(event)

    assert getattr(decoded, attribute) == value


@pytest.mark.parametrize(("current", "older", "attribute", "value"), SPELLINGS)
def test_current_spelling_wins_over_older(
    current: str, older: str, attribute: str, value: object
) -> None:
    """When both names are sent, the current one is read and the older ignored."""
    event = wire_event(**{"gen_ai.usage.input_tokens": 100})
    event[current] = value
    event[older] = 1 if isinstance(value, int) else "other"

    decoded = decode_one(event)

    assert getattr(decoded, attribute) == value


def test_full_event_maps_every_field() -> None:
    """Every wire attribute lands in its Event attribute."""
    event = wire_event(
        **{
            "timestamp": "2025-03-01T13:00:00.250+01:00",
            "schema_version": 1,
            "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
            "gen_ai.operation.name": "chat",
            "feature": "search",
            "route": "/v1/chat/completions",
            "region": "eu-west-1",
            "gen_ai.usage.input_tokens": 1200,
            "gen_ai.usage.output_tokens": 300,
            "gen_ai.usage.cache_read.input_tokens": 1000,
            "gen_ai.usage.cache_creation.input_tokens": 0,
            "gen_ai.response.finish_reasons": ["stop", "content_filter"],
            "error.type": "timeout",
            "ttft_ms": 310.5,
            "duration_ms": 2048,
            "max_inter_token_gap_ms": 95.25,
        }
    )

    decoded = decode_one(event)

    # 13:00:00.250+01:00 is 12:00:00.250 UTC.
    assert decoded.timestamp == datetime(2025, 3, 1, 12, 0, 0, 250000, tzinfo=UTC)
    assert decoded.request_id == "req-1"
    assert decoded.tenant == "acme"
    assert decoded.provider == "openai"
    assert decoded.request_model == "gpt-4o-mini"
    assert decoded.response_model == "gpt-4o-mini-2024-07-18"
    assert decoded.model == "gpt-4o-mini-2024-07-18"
    assert decoded.operation == "chat"
    assert decoded.feature == "search"
    assert decoded.route == "/v1/chat/completions"
    assert decoded.region == "eu-west-1"
    assert decoded.input_tokens == 1200
    assert decoded.output_tokens == 300
    assert decoded.cache_read_tokens == 1000
    assert decoded.cache_write_tokens == 0
    assert decoded.finish_reasons == ("stop", "content_filter")
    assert decoded.is_refusal
    assert decoded.error_type == "timeout"
    assert decoded.is_error
    assert decoded.reported_cost_usd is None
    assert decoded.ttft_ms == 310.5
    assert decoded.duration_ms == 2048.0
    assert decoded.max_inter_token_gap_ms == 95.25


def test_minimal_event_uses_defaults() -> None:
    """Absent optional attributes become unknown usage and empty labels."""
    decoded = decode_one(wire_event())

    assert decoded.input_tokens is None
    assert decoded.output_tokens is None
    assert not decoded.has_usage
    assert decoded.cache_read_tokens == 0
    assert decoded.cache_write_tokens == 0
    assert decoded.finish_reasons == ()
    assert decoded.error_type is None
    assert decoded.feature == ""
    assert decoded.response_model is None


def test_response_model_alone_is_enough() -> None:
    """An event with only gen_ai.response.model takes it as the request model."""
    event = without(wire_event(), "gen_ai.request.model")
    event["gen_ai.response.model"] = "claude-sonnet-4-5"

    decoded = decode_one(event)

    assert decoded.request_model == "claude-sonnet-4-5"
    assert decoded.model == "claude-sonnet-4-5"


# Batches


def test_batch_decodes_every_element() -> None:
    """A JSON array line yields one event per element, in order."""
    batch = [wire_event(request_id=f"req-{index}") for index in range(3)]

    events, rejections = decode_record(encode(batch))

    assert rejections == []
    assert [event.request_id for event in events] == ["req-0", "req-1", "req-2"]


def test_empty_batch_yields_nothing() -> None:
    """An empty JSON array is a valid batch with no events and no rejections."""
    events, rejections = decode_record(b"[]")

    assert events == []
    assert rejections == []


BAD_BATCH_ELEMENTS = [
    # (case, bad element, reason, field): the first two fail msgspec's typed
    # decoding of the whole batch, the last two fail only the event rules.
    (
        "wrong type",
        wire_event(request_id="req-1", ttft_ms="fast"),
        "invalid_field",
        "ttft_ms",
    ),
    ("not an object", 17, "invalid_field", None),
    (
        "negative count",
        wire_event(**{"request_id": "req-1", "gen_ai.usage.output_tokens": -1}),
        "negative_value",
        "gen_ai.usage.output_tokens",
    ),
    (
        "empty tenant",
        wire_event(request_id="req-1", tenant=""),
        "missing_field",
        "tenant",
    ),
]


@pytest.mark.parametrize(
    ("bad", "reason", "field"),
    [case[1:] for case in BAD_BATCH_ELEMENTS],
    ids=[case[0] for case in BAD_BATCH_ELEMENTS],
)
def test_batch_bad_element_rejected_alone(
    bad: Any, reason: str, field: str | None
) -> None:
    """One bad element is rejected with its index and the others still decode."""
    good_before = wire_event(request_id="req-0")
    good_after = wire_event(request_id="req-2")
    batch = [good_before, bad, good_after]

    events, rejections = decode_record(encode(batch))

    assert [event.request_id for event in events] == ["req-0", "req-2"]
    assert len(rejections) == 1
    assert rejections[0].reason == reason
    assert rejections[0].field == field
    assert rejections[0].detail.startswith("batch element 1: ")
    assert json.loads(rejections[0].raw) == bad


def test_batch_rejections_carry_each_index() -> None:
    """Several bad elements are each rejected with their own index."""
    batch = [
        wire_event(request_id="req-0", tenant=""),
        wire_event(request_id="req-1"),
        wire_event(request_id="req-2", ttft_ms="fast"),
        wire_event(request_id="req-3"),
        wire_event(request_id="req-4", duration_ms=-1),
    ]

    events, rejections = decode_record(encode(batch))

    assert [event.request_id for event in events] == ["req-1", "req-3"]
    assert [rejection.detail[:16] for rejection in rejections] == [
        "batch element 0:",
        "batch element 2:",
        "batch element 4:",
    ]
    assert [json.loads(rejection.raw)["request_id"] for rejection in rejections] == [
        "req-0",
        "req-2",
        "req-4",
    ]


def test_batch_invalid_json_rejected_whole() -> None:
    """A batch line that is not valid JSON yields one invalid_json rejection."""
    line = encode([wire_event()])[:-1]

    events, rejections = decode_record(line)

    assert events == []
    assert len(rejections) == 1
    assert rejections[0].reason == "invalid_json"
    assert rejections[0].field is None
    assert rejections[0].raw == line


# Rejections

REJECTIONS = [
    # (case, line, reason, field)
    ("truncated", b'{"timestamp": ', "invalid_json", None),
    ("not json", b"hello", "invalid_json", None),
    ("trailing garbage", encode(wire_event()) + b"}", "invalid_json", None),
    ("top level number", b"42", "invalid_field", None),
    ("text starting with a number", b"35 s. Output:", "invalid_json", None),
    ("object then text", b'{"a": 1} trailing', "invalid_json", None),
    (
        "string for float",
        encode(wire_event(ttft_ms="fast")),
        "invalid_field",
        "ttft_ms",
    ),
    (
        "string for count",
        encode(wire_event(**{"gen_ai.usage.input_tokens": "12"})),
        "invalid_field",
        "gen_ai.usage.input_tokens",
    ),
    (
        "float for count",
        encode(wire_event(**{"gen_ai.usage.input_tokens": 1.5})),
        "invalid_field",
        "gen_ai.usage.input_tokens",
    ),
    (
        "bool for count",
        encode(wire_event(**{"gen_ai.usage.input_tokens": True})),
        "invalid_field",
        "gen_ai.usage.input_tokens",
    ),
    (
        "array element type",
        encode(wire_event(**{"gen_ai.response.finish_reasons": ["stop", 3]})),
        "invalid_field",
        "gen_ai.response.finish_reasons[1]",
    ),
    (
        "finish reasons not array",
        encode(wire_event(**{"gen_ai.response.finish_reasons": "stop"})),
        "invalid_field",
        "gen_ai.response.finish_reasons",
    ),
    (
        "cost not a number",
        encode(wire_event(cost_usd="ten")),
        "invalid_field",
        "cost_usd",
    ),
    ("cost NaN", encode(wire_event(cost_usd="NaN")), "invalid_field", "cost_usd"),
    (
        "naive timestamp",
        encode(wire_event(timestamp="2025-03-01T12:00:00")),
        "invalid_field",
        "timestamp",
    ),
    (
        "date only timestamp",
        encode(wire_event(timestamp="2025-03-01")),
        "invalid_field",
        "timestamp",
    ),
    (
        "impossible date",
        encode(wire_event(timestamp="2025-02-30T12:00:00Z")),
        "invalid_field",
        "timestamp",
    ),
    (
        "milliseconds timestamp",
        encode(wire_event(timestamp=MARCH_1_NOON_S * 1000)),
        "invalid_field",
        "timestamp",
    ),
    (
        "negative timestamp",
        encode(wire_event(timestamp=-1)),
        "invalid_field",
        "timestamp",
    ),
    (
        "null request id",
        encode(wire_event(request_id=None)),
        "invalid_field",
        "request_id",
    ),
    (
        "missing timestamp",
        encode(without(wire_event(), "timestamp")),
        "missing_field",
        "timestamp",
    ),
    (
        "missing request id",
        encode(without(wire_event(), "request_id")),
        "missing_field",
        "request_id",
    ),
    (
        "empty request id",
        encode(wire_event(request_id="")),
        "missing_field",
        "request_id",
    ),
    (
        "missing tenant",
        encode(without(wire_event(), "tenant")),
        "missing_field",
        "tenant",
    ),
    ("empty tenant", encode(wire_event(tenant="")), "missing_field", "tenant"),
    (
        "missing model",
        encode(without(wire_event(), "gen_ai.request.model")),
        "missing_field",
        "gen_ai.request.model",
    ),
    (
        "null models",
        encode(
            wire_event(**{"gen_ai.request.model": None, "gen_ai.response.model": None})
        ),
        "missing_field",
        "gen_ai.request.model",
    ),
    (
        "negative input",
        encode(wire_event(**{"gen_ai.usage.input_tokens": -1})),
        "negative_value",
        "gen_ai.usage.input_tokens",
    ),
    (
        "negative prompt",
        encode(wire_event(**{"gen_ai.usage.prompt_tokens": -1})),
        "negative_value",
        "gen_ai.usage.prompt_tokens",
    ),
    (
        "negative output",
        encode(wire_event(**{"gen_ai.usage.output_tokens": -5})),
        "negative_value",
        "gen_ai.usage.output_tokens",
    ),
    (
        "negative cache read",
        encode(wire_event(**{"gen_ai.usage.cache_read.input_tokens": -2})),
        "negative_value",
        "gen_ai.usage.cache_read.input_tokens",
    ),
    (
        "negative old cache write",
        encode(wire_event(**{"gen_ai.usage.cache_creation_input_tokens": -2})),
        "negative_value",
        "gen_ai.usage.cache_creation_input_tokens",
    ),
    (
        "negative cost",
        encode(wire_event(cost_usd=-0.01)),
        "negative_value",
        "cost_usd",
    ),
    ("negative ttft", encode(wire_event(ttft_ms=-0.5)), "negative_value", "ttft_ms"),
    (
        "negative duration",
        encode(wire_event(duration_ms=-1)),
        "negative_value",
        "duration_ms",
    ),
    (
        "unknown version",
        encode(wire_event(schema_version=2)),
        "unknown_version",
        "schema_version",
    ),
    (
        "version zero",
        encode(wire_event(schema_version=0)),
        "unknown_version",
        "schema_version",
    ),
]


@pytest.mark.parametrize(
    ("line", "reason", "field"),
    [case[1:] for case in REJECTIONS],
    ids=[case[0] for case in REJECTIONS],
)
def test_rejection_reason_and_field(
    line: bytes, reason: str, field: str | None
) -> None:
    """A bad record yields no event and one rejection naming reason and field."""
    events, rejections = decode_record(line)

    assert events == []
    assert len(rejections) == 1
    assert rejections[0].reason == reason
    assert rejections[0].field == field
    assert rejections[0].raw == line
    assert rejections[0].detail


def test_naive_timestamp_detail_explains_fix() -> None:
    """The naive-timestamp detail names the missing offset and the expected format."""
    line = encode(wire_event(timestamp="2025-03-01T12:00:00"))

    _, rejections = decode_record(line)

    assert "no UTC offset" in rejections[0].detail
    assert "RFC 3339" in rejections[0].detail


def test_oversized_record_rejected_before_parsing() -> None:
    """A record over MAX_RECORD_BYTES is rejected, keeping only its first KiB."""
    padding = "x" * MAX_RECORD_BYTES
    line = encode(wire_event(feature=padding))

    events, rejections = decode_record(line)

    assert events == []
    assert len(rejections) == 1
    assert rejections[0].reason == "oversized"
    assert rejections[0].field is None
    assert rejections[0].raw == line[:1024]
    assert str(MAX_RECORD_BYTES) in rejections[0].detail


def test_record_at_size_limit_is_decoded() -> None:
    """A record of exactly MAX_RECORD_BYTES is still decoded."""
    base = encode(wire_event(feature=""))
    line = encode(wire_event(feature="x" * (MAX_RECORD_BYTES - len(base))))

    events, rejections = decode_record(line)

    assert len(line) == MAX_RECORD_BYTES
    assert rejections == []
    assert len(events) == 1


def test_to_event_raises_invalid_event() -> None:
    """to_event raises InvalidEvent carrying the reason and the field."""
    wire = WireEvent(timestamp=float(MARCH_1_NOON_S), request_id="r", tenant="")

    with pytest.raises(InvalidEvent) as caught:
        to_event(wire)

    assert caught.value.reason == "missing_field"
    assert caught.value.field == "tenant"


def test_to_event_rejects_infinite_duration() -> None:
    """A WireEvent built in code with an infinite duration is invalid_field."""
    wire = WireEvent(
        timestamp=float(MARCH_1_NOON_S),
        request_id="r",
        tenant="t",
        request_model="m",
        duration_ms=float("inf"),
    )

    with pytest.raises(InvalidEvent) as caught:
        to_event(wire)

    assert caught.value.reason == "invalid_field"
    assert caught.value.field == "duration_ms"


# Money

EXACT_COSTS = [
    # (JSON text of cost_usd, expected Decimal)
    ("0.1", Decimal("0.1")),
    ("1e-7", Decimal("1E-7")),
    ("2.5E-8", Decimal("2.5E-8")),
    ("0.30000000000000004", Decimal("0.30000000000000004")),
    ("0.123456789012345678901", Decimal("0.123456789012345678901")),
    ("12", Decimal(12)),
    ("0", Decimal(0)),
    ('"0.1"', Decimal("0.1")),
    ('"0.000125"', Decimal("0.000125")),
]


@pytest.mark.parametrize(("text", "expected"), EXACT_COSTS)
def test_cost_usd_parsed_exactly(text: str, expected: Decimal) -> None:
    """cost_usd keeps every digit of its JSON text, with no float in between."""
    line = (
        '{"timestamp": 1740830400, "request_id": "r", "tenant": "t", '
        f'"gen_ai.request.model": "m", "cost_usd": {text}}}'
    ).encode()

    events, rejections = decode_record(line)

    assert rejections == []
    assert isinstance(events[0].reported_cost_usd, Decimal)
    assert events[0].reported_cost_usd == expected
    assert events[0].reported_cost_usd.as_tuple() == expected.as_tuple()


def test_cost_usd_sums_without_drift() -> None:
    """Ten costs of 0.1 sum to exactly 1, which binary floats do not."""
    line = b'{"timestamp": 1740830400, "request_id": "r", "tenant": "t", ' + (
        b'"gen_ai.request.model": "m", "cost_usd": 0.1}'
    )

    events = [decode_record(line)[0][0] for _ in range(10)]
    total = sum((event.reported_cost_usd or Decimal(0) for event in events), Decimal(0))

    assert total == Decimal(1)
    assert sum([0.1] * 10) != 1.0


# Anthropic-native input counts

ANTHROPIC_COUNTS = [
    # (case, wire usage attributes, expected input_tokens)
    (
        "input smaller than cache parts",
        {
            "gen_ai.usage.input_tokens": 100,
            "gen_ai.usage.cache_read.input_tokens": 1000,
            "gen_ai.usage.cache_creation.input_tokens": 200,
        },
        1300,
    ),
    (
        "exclude flag set",
        {
            "gen_ai.usage.input_tokens": 2000,
            "gen_ai.usage.cache_read.input_tokens": 1000,
            "gen_ai.usage.input_tokens_exclude_cache": True,
        },
        3000,
    ),
    (
        "exclude flag with older names",
        {
            "gen_ai.usage.prompt_tokens": 2000,
            "gen_ai.usage.cache_read_input_tokens": 500,
            "gen_ai.usage.cache_creation_input_tokens": 250,
            "gen_ai.usage.input_tokens_exclude_cache": True,
        },
        2750,
    ),
    (
        "exclude flag with no cache",
        {
            "gen_ai.usage.input_tokens": 2000,
            "gen_ai.usage.input_tokens_exclude_cache": True,
        },
        2000,
    ),
    (
        "OpenTelemetry count kept",
        {
            "gen_ai.usage.input_tokens": 2000,
            "gen_ai.usage.cache_read.input_tokens": 1000,
        },
        2000,
    ),
    (
        "OpenTelemetry count equal to cache parts kept",
        {
            "gen_ai.usage.input_tokens": 1000,
            "gen_ai.usage.cache_read.input_tokens": 600,
            "gen_ai.usage.cache_creation.input_tokens": 400,
        },
        1000,
    ),
]


@pytest.mark.parametrize(
    ("usage", "expected"),
    [case[1:] for case in ANTHROPIC_COUNTS],
    ids=[case[0] for case in ANTHROPIC_COUNTS],
)
def test_input_tokens_include_cache(usage: dict[str, Any], expected: int) -> None:
    """Input counts that leave out the cache tokens get them added back."""
    event = wire_event(**{"gen_ai.provider.name": "anthropic"}, **usage)

    decoded = decode_one(event)

    assert decoded.input_tokens == expected


def test_cache_parts_kept_after_normalising() -> None:
    """Adding the cache tokens to the input count leaves the cache counts as sent."""
    event = wire_event(
        **{
            "gen_ai.usage.input_tokens": 100,
            "gen_ai.usage.cache_read.input_tokens": 1000,
            "gen_ai.usage.cache_creation.input_tokens": 200,
        }
    )

    decoded = decode_one(event)

    assert decoded.cache_read_tokens == 1000
    assert decoded.cache_write_tokens == 200


# Timestamps

TIMESTAMPS = [
    # (wire timestamp, expected UTC datetime)
    (MARCH_1_NOON_S, datetime(2025, 3, 1, 12, 0, tzinfo=UTC)),
    (MARCH_1_NOON_S + 0.25, datetime(2025, 3, 1, 12, 0, 0, 250000, tzinfo=UTC)),
    (0, datetime(1970, 1, 1, tzinfo=UTC)),
    ("2025-03-01T12:00:00Z", datetime(2025, 3, 1, 12, 0, tzinfo=UTC)),
    ("2025-03-01T12:00:00.5+00:00", datetime(2025, 3, 1, 12, 0, 0, 500000, tzinfo=UTC)),
    # 2025-03-01T09:30:00-02:30 is 12:00:00 UTC.
    ("2025-03-01T09:30:00-02:30", datetime(2025, 3, 1, 12, 0, tzinfo=UTC)),
]


@pytest.mark.parametrize(("timestamp", "expected"), TIMESTAMPS)
def test_timestamp_decoded_to_utc(timestamp: object, expected: datetime) -> None:
    """Unix seconds and RFC 3339 date-times with an offset become UTC datetimes."""
    decoded = decode_one(wire_event(timestamp=timestamp))

    assert decoded.timestamp == expected
    assert decoded.timestamp.utcoffset() is not None
    assert decoded.timestamp.tzinfo == UTC


# Unknown attributes and JSON Lines


def test_unknown_attributes_ignored() -> None:
    """Attributes the format does not define are ignored, whatever their type."""
    plain = wire_event()
    extended = wire_event(
        **{
            "gen_ai.usage.reasoning_tokens": 512,
            "gen_ai.conversation.id": "conv-9",
            "server.address": "gateway.internal",
            "labels": {"team": ["search", "ranking"]},
            "sampled": None,
        }
    )

    assert decode_one(extended) == decode_one(plain)


def test_decode_lines_skips_blank_lines(tmp_path: Path) -> None:
    """Blank and whitespace-only lines of a JSON Lines file yield no result."""
    path = tmp_path / "events.jsonl"
    path.write_bytes(
        encode(wire_event(request_id="req-0"))
        + b"\n\n   \n\t\r\n"
        + encode([wire_event(request_id="req-1"), wire_event(request_id="req-2")])
        + b"\r\n\n"
    )

    with path.open("rb") as lines:
        results = list(decode_lines(lines))

    assert len(results) == 2
    assert [event.request_id for event in results[0][0]] == ["req-0"]
    assert [event.request_id for event in results[1][0]] == ["req-1", "req-2"]
    assert results[0][1] == []
    assert results[1][1] == []


def test_decode_lines_continues_after_bad_line() -> None:
    """A bad line yields its rejection and the following lines still decode."""
    lines = [b"not json\n", encode(wire_event(request_id="req-1")) + b"\n"]

    results = list(decode_lines(lines))

    assert len(results) == 2
    assert results[0][0] == []
    assert results[0][1][0].reason == "invalid_json"
    assert [event.request_id for event in results[1][0]] == ["req-1"]


def test_cache_counts_without_prompt_count() -> None:
    """Cache tokens with no prompt count make the prompt count their sum."""
    line = (
        b'{"timestamp": "2026-05-04T10:00:00Z", "request_id": "r1", "tenant": "t",'
        b' "gen_ai.request.model": "m", "gen_ai.usage.cache_read.input_tokens": 100,'
        b' "gen_ai.usage.cache_creation.input_tokens": 20}'
    )

    events, rejections = decode_record(line)

    assert rejections == []
    assert events[0].input_tokens == 120
    assert events[0].output_tokens is None


OUT_OF_RANGE = [
    ('"timestamp": "9999-12-31T23:59:59Z"', "timestamp"),
    ('"timestamp": "1969-12-31T23:59:59Z"', "timestamp"),
    ('"gen_ai.usage.input_tokens": 99999999999999999999', "gen_ai.usage.input_tokens"),
    ('"gen_ai.usage.output_tokens": 1000000001', "gen_ai.usage.output_tokens"),
    ('"cost_usd": 1000000.01', "cost_usd"),
]


@pytest.mark.parametrize(("override", "field"), OUT_OF_RANGE)
def test_values_out_of_range(override: str, field: str) -> None:
    """A timestamp, token count or cost beyond any real request is rejected."""
    base = {
        "timestamp": '"timestamp": "2026-05-04T10:00:00Z"',
        "gen_ai.usage.input_tokens": '"gen_ai.usage.input_tokens": 10',
        "gen_ai.usage.output_tokens": '"gen_ai.usage.output_tokens": 10',
        "cost_usd": '"cost_usd": 0.01',
    }
    base[field] = override
    line = (
        '{"request_id": "r1", "tenant": "t", "gen_ai.request.model": "m", '
        + ", ".join(base.values())
        + "}"
    ).encode()

    events, rejections = decode_record(line)

    assert events == []
    assert rejections[0].reason == "out_of_range"
    assert rejections[0].field == field
