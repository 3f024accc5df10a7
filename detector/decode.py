"""Decode request events from JSON text into ``Event`` values.

A line holds one JSON object or a JSON array of objects (a batch). Decoding is on
the hot path, so it uses msgspec, which parses straight into typed structs and
reads JSON numbers for money directly into ``Decimal`` without a float in
between; ``tests/benchmarks/bench_decode.py`` measures it against the other
candidates. A batch that fails as a whole is decoded again element by element,
so one bad event never takes its neighbours down with it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal

import msgspec

from detector.events import SCHEMA_VERSION, Event

# Reject a record longer than this before parsing it. A real event is well under
# 4 KiB; a batch of a few hundred events stays far below the limit.
MAX_RECORD_BYTES = 4 * 1024 * 1024
# Bounds far beyond any real request, so that a corrupt count or cost is
# rejected instead of firing every budget: the largest context windows offered
# hold a few million tokens.
MAX_TOKENS = 1_000_000_000
MAX_COST_USD = Decimal(1_000_000)
# Calendar arithmetic in a tenant's time zone fails near year 9999, and no
# request event is older than 1970 or later than 2199.
_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(2200, 1, 1, tzinfo=UTC)


class WireEvent(msgspec.Struct, frozen=True, gc=False):
    """The JSON shape of an event, with current and older attribute names."""

    timestamp: datetime | float
    request_id: str = msgspec.field(name="request_id")
    tenant: str = ""
    schema_version: int = SCHEMA_VERSION
    provider: str | None = msgspec.field(default=None, name="gen_ai.provider.name")
    system: str | None = msgspec.field(default=None, name="gen_ai.system")
    request_model: str | None = msgspec.field(
        default=None, name="gen_ai.request.model"
    )
    response_model: str | None = msgspec.field(
        default=None, name="gen_ai.response.model"
    )
    operation: str | None = msgspec.field(default=None, name="gen_ai.operation.name")
    feature: str = ""
    route: str = ""
    region: str = ""
    input_tokens: int | None = msgspec.field(
        default=None, name="gen_ai.usage.input_tokens"
    )
    prompt_tokens: int | None = msgspec.field(
        default=None, name="gen_ai.usage.prompt_tokens"
    )
    output_tokens: int | None = msgspec.field(
        default=None, name="gen_ai.usage.output_tokens"
    )
    completion_tokens: int | None = msgspec.field(
        default=None, name="gen_ai.usage.completion_tokens"
    )
    cache_read_tokens: int | None = msgspec.field(
        default=None, name="gen_ai.usage.cache_read.input_tokens"
    )
    cache_read_tokens_old: int | None = msgspec.field(
        default=None, name="gen_ai.usage.cache_read_input_tokens"
    )
    cache_write_tokens: int | None = msgspec.field(
        default=None, name="gen_ai.usage.cache_creation.input_tokens"
    )
    cache_write_tokens_old: int | None = msgspec.field(
        default=None, name="gen_ai.usage.cache_creation_input_tokens"
    )
    input_excludes_cache: bool = msgspec.field(
        default=False, name="gen_ai.usage.input_tokens_exclude_cache"
    )
    finish_reasons: tuple[str, ...] = msgspec.field(
        default=(), name="gen_ai.response.finish_reasons"
    )
    error_type: str | None = msgspec.field(default=None, name="error.type")
    cost_usd: Decimal | None = None
    ttft_ms: float | None = None
    duration_ms: float | None = None
    max_inter_token_gap_ms: float | None = None


class Rejection(msgspec.Struct, frozen=True):
    """An input that could not become an event, with the reason and its bytes."""

    reason: str
    field: str | None
    detail: str
    raw: bytes


def too_far_ahead(timestamp: datetime, wall_s: float, raw: bytes) -> Rejection:
    """Return the rejection of an event dated after the clock by more than allowed."""
    wall = datetime.fromtimestamp(wall_s, UTC).isoformat()
    return Rejection(
        "timestamp_in_future",
        "timestamp",
        f"timestamp {timestamp.isoformat()} is ahead of the clock {wall}",
        raw,
    )


class InvalidEvent(ValueError):
    """A decoded event breaks a rule that the JSON types cannot express."""

    def __init__(self, reason: str, field: str | None, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.field = field
        self.detail = detail


_single_decoder = msgspec.json.Decoder(WireEvent)
_batch_decoder = msgspec.json.Decoder(list[WireEvent])
_raw_batch_decoder = msgspec.json.Decoder(list[msgspec.Raw])

# msgspec ends a validation message with the JSON path of the bad value, such as
# "- at `$.gen_ai.response.finish_reasons[1]`", and names a missing field as
# "Object missing required field `timestamp`".
_ERROR_PATH = re.compile(r" - at `\$\.?([^`]*)`$")
_MISSING_FIELD = re.compile(r"missing required field `([^`]+)`")


def decode_record(data: bytes) -> tuple[list[Event], list[Rejection]]:
    """Decode one record (a JSON object or array) into events and rejections."""
    if len(data) > MAX_RECORD_BYTES:
        detail = f"record is {len(data)} bytes, the limit is {MAX_RECORD_BYTES}"
        return [], [Rejection("oversized", None, detail, data[:1024])]
    stripped = data.lstrip()
    if stripped[:1] == b"[":
        return _decode_batch(data)
    return _decode_one(data)


def decode_lines(
    lines: Iterable[bytes],
) -> Iterable[tuple[list[Event], list[Rejection]]]:
    """Decode JSON Lines input, skipping blank lines."""
    for line in lines:
        if line.strip():
            yield decode_record(line)


def _decode_one(data: bytes) -> tuple[list[Event], list[Rejection]]:
    try:
        wire = _single_decoder.decode(data)
        return [to_event(wire)], []
    except msgspec.DecodeError as error:
        return [], [_rejection_from_msgspec(error, data)]
    except InvalidEvent as error:
        return [], [Rejection(error.reason, error.field, error.detail, data)]


def _decode_batch(data: bytes) -> tuple[list[Event], list[Rejection]]:
    try:
        wires = _batch_decoder.decode(data)
    except msgspec.DecodeError:
        return _decode_batch_slowly(data)

    events: list[Event] = []
    rejections: list[Rejection] = []
    elements: list[msgspec.Raw] | None = None
    for index, wire in enumerate(wires):
        try:
            events.append(to_event(wire))
        except InvalidEvent as error:
            # The element's own bytes are sliced out only when one is rejected,
            # so a clean batch is parsed once.
            if elements is None:
                elements = _raw_batch_decoder.decode(data)
            rejection = Rejection(error.reason, error.field, error.detail, b"")
            rejections.append(_batch_rejection(rejection, index, elements[index]))
    return events, rejections


def _decode_batch_slowly(data: bytes) -> tuple[list[Event], list[Rejection]]:
    try:
        elements = _raw_batch_decoder.decode(data)
    except msgspec.DecodeError as error:
        return [], [_rejection_from_msgspec(error, data)]

    events: list[Event] = []
    rejections: list[Rejection] = []
    for index, element in enumerate(elements):
        decoded, rejected = _decode_one(bytes(element))
        events.extend(decoded)
        rejections.extend(
            _batch_rejection(rejection, index, element) for rejection in rejected
        )
    return events, rejections


def _batch_rejection(
    rejection: Rejection, index: int, element: msgspec.Raw
) -> Rejection:
    detail = f"batch element {index}: {rejection.detail}"
    return Rejection(rejection.reason, rejection.field, detail, bytes(element))


def _rejection_from_msgspec(error: msgspec.DecodeError, data: bytes) -> Rejection:
    message = str(error)
    if not isinstance(error, msgspec.ValidationError):
        return Rejection("invalid_json", None, message, data)
    # The typed decoder checks types as it parses, so text that is not JSON at all
    # ("35 s. Output:") fails on a type first. Such input is reported as invalid JSON.
    syntax = _syntax_error(data)
    if syntax is not None:
        return Rejection("invalid_json", None, syntax, data)

    missing = _MISSING_FIELD.search(message)
    if missing:
        return Rejection("missing_field", missing.group(1), message, data)
    path = _ERROR_PATH.search(message)
    field = path.group(1) if path and path.group(1) else None
    return Rejection("invalid_field", field, message, data)


def to_event(wire: WireEvent) -> Event:
    """Validate a wire event and build the normalised ``Event``."""
    if wire.schema_version != SCHEMA_VERSION:
        raise InvalidEvent(
            "unknown_version",
            "schema_version",
            f"schema_version {wire.schema_version} is not supported, "
            f"this build reads version {SCHEMA_VERSION}",
        )
    timestamp = _timestamp(wire.timestamp)
    if not wire.request_id:
        raise InvalidEvent("missing_field", "request_id", "request_id is empty")
    if not wire.tenant:
        raise InvalidEvent("missing_field", "tenant", "tenant is missing or empty")
    model = wire.request_model or wire.response_model
    if not model:
        raise InvalidEvent(
            "missing_field",
            "gen_ai.request.model",
            "gen_ai.request.model and gen_ai.response.model are both missing",
        )

    # Every spelling is checked, so a rejection names the attribute that was sent.
    for name, value in (
        ("gen_ai.usage.input_tokens", wire.input_tokens),
        ("gen_ai.usage.prompt_tokens", wire.prompt_tokens),
        ("gen_ai.usage.output_tokens", wire.output_tokens),
        ("gen_ai.usage.completion_tokens", wire.completion_tokens),
        ("gen_ai.usage.cache_read.input_tokens", wire.cache_read_tokens),
        ("gen_ai.usage.cache_read_input_tokens", wire.cache_read_tokens_old),
        ("gen_ai.usage.cache_creation.input_tokens", wire.cache_write_tokens),
        ("gen_ai.usage.cache_creation_input_tokens", wire.cache_write_tokens_old),
    ):
        if value is not None and value < 0:
            raise InvalidEvent("negative_value", name, f"{name} is {value}, not >= 0")
        if value is not None and value > MAX_TOKENS:
            raise InvalidEvent(
                "out_of_range",
                name,
                f"{name} is {value}, above the limit of {MAX_TOKENS:,} per request",
            )
    input_tokens = _first(wire.input_tokens, wire.prompt_tokens)
    output_tokens = _first(wire.output_tokens, wire.completion_tokens)
    cache_read = _first(wire.cache_read_tokens, wire.cache_read_tokens_old) or 0
    cache_write = _first(wire.cache_write_tokens, wire.cache_write_tokens_old) or 0
    input_tokens = _include_cache(wire, input_tokens, cache_read + cache_write)

    if wire.cost_usd is not None and not wire.cost_usd.is_finite():
        raise InvalidEvent("invalid_field", "cost_usd", f"cost_usd is {wire.cost_usd}")
    if wire.cost_usd is not None and wire.cost_usd < 0:
        raise InvalidEvent(
            "negative_value", "cost_usd", f"cost_usd is {wire.cost_usd}, not >= 0"
        )
    if wire.cost_usd is not None and wire.cost_usd > MAX_COST_USD:
        raise InvalidEvent(
            "out_of_range",
            "cost_usd",
            f"cost_usd is {wire.cost_usd}, above the limit of {MAX_COST_USD:,} "
            "per request",
        )
    for name in ("ttft_ms", "duration_ms", "max_inter_token_gap_ms"):
        value = getattr(wire, name)
        if value is None:
            continue
        if value < 0:
            raise InvalidEvent("negative_value", name, f"{name} is {value}, not >= 0")
        if not value < float("inf"):
            # JSON cannot carry NaN or infinity, but a WireEvent built in code can.
            raise InvalidEvent("invalid_field", name, f"{name} is {value}, not finite")

    return Event(
        timestamp=timestamp,
        request_id=wire.request_id,
        tenant=wire.tenant,
        provider=wire.provider or wire.system or "",
        request_model=model,
        response_model=wire.response_model,
        operation=wire.operation,
        feature=wire.feature,
        route=wire.route,
        region=wire.region,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        finish_reasons=wire.finish_reasons,
        error_type=wire.error_type,
        reported_cost_usd=wire.cost_usd,
        ttft_ms=wire.ttft_ms,
        duration_ms=wire.duration_ms,
        max_inter_token_gap_ms=wire.max_inter_token_gap_ms,
    )


def _timestamp(value: datetime | float) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise InvalidEvent(
                "invalid_field",
                "timestamp",
                f"timestamp {value.isoformat()} has no UTC offset; "
                "send RFC 3339 with Z or +HH:MM",
            )
        instant = value.astimezone(UTC)
    elif 0 <= value < 1e11:
        instant = datetime.fromtimestamp(value, UTC)
    else:
        raise InvalidEvent(
            "invalid_field", "timestamp", f"timestamp {value} is not Unix seconds"
        )
    if not _EARLIEST <= instant < _LATEST:
        raise InvalidEvent(
            "out_of_range",
            "timestamp",
            f"timestamp {instant.isoformat()} is outside "
            f"{_EARLIEST.year}-{_LATEST.year - 1}",
        )
    return instant


def _include_cache(
    wire: WireEvent, input_tokens: int | None, cached: int
) -> int | None:
    """Return the prompt count including cache tokens, as the conventions define it.

    Anthropic's API reports ``input_tokens`` without the cache tokens; a source that
    forwards that count sets ``gen_ai.usage.input_tokens_exclude_cache``. A count
    smaller than its own cache parts can only be such a count, so it is read the
    same way rather than rejected.
    """
    if input_tokens is None:
        # Cache counts without a prompt count still report part of the prompt:
        # the cache tokens are input tokens, so the event counts at least those.
        return cached or None
    if wire.input_excludes_cache or input_tokens < cached:
        return input_tokens + cached
    return input_tokens


def _first(current: int | None, older: int | None) -> int | None:
    return current if current is not None else older


def _syntax_error(data: bytes) -> str | None:
    """Return why ``data`` is not JSON, or None when it is."""
    try:
        msgspec.json.decode(data)
    except msgspec.DecodeError as error:
        return str(error)
    return None
