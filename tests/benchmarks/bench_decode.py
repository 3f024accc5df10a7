"""Measure event decoding throughput of the candidate decoders side by side.

The script generates realistic wire events from a fixed seed and encodes them as
JSON Lines in memory twice: one event per line, and batches of 100 events per line.
It times each candidate over every line for several rounds. The rounds interleave
the candidates, so load from other processes falls on all of them alike. It prints
events/s and the ratio to ``decode_record``, the decoder the service uses.

Every candidate ends in the same ``Event`` values, checked on a sample before any
timing, and all of them apply ``to_event``'s rules, so the figures compare the
JSON parsing and type checking only:

- stdlib ``json`` with ``parse_float=Decimal`` + a pydantic model built from the
  ``WireEvent`` fields,
- ``orjson.loads`` + hand-written type checks into ``WireEvent``,
- ``msgspec.json.Decoder(WireEvent)`` + ``to_event``, which is what
  ``decode_record`` does,
- ``decode_record`` itself, with its size check and rejection handling.

Money must be parsed from the JSON text into ``Decimal``. The stdlib parser does
that with ``parse_float=Decimal``, which turns every non-integer number into a
``Decimal``, so pydantic converts the latency fields back to float. A call of
``json.loads`` with any keyword argument builds a new ``JSONDecoder``, so the
candidate reuses one decoder. orjson has no such hook: it returns a binary float,
and the nearest this candidate gets is ``Decimal(repr(value))``, which gives back
the JSON text only when the text has at most 15 significant digits. The script
prints the parse-only cost of both and an example of the digits lost.

The candidates other than ``decode_record`` handle valid input only, because a
benchmark of the happy path needs no rejection handling. Run from the repository
root; ``--help`` lists the options. It prints figures and asserts no timings.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import statistics
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from importlib.metadata import version
from typing import Any

import msgspec
import orjson
import pydantic

from detector.decode import WireEvent, decode_record, to_event
from detector.events import Event

BATCH_SIZE = 100

Decode = Callable[[bytes], list[Event]]


# Event generation

PROVIDER_MODELS = {
    "openai": ["gpt-4o", "gpt-4o-mini", "o3-mini", "text-embedding-3-small"],
    "anthropic": ["claude-sonnet-4-5", "claude-3-5-haiku-20241022"],
    "aws.bedrock": ["anthropic.claude-3-5-sonnet-20240620-v1:0"],
    "gcp.vertex_ai": ["gemini-2.0-flash"],
}
PROVIDER_WEIGHTS = [0.5, 0.3, 0.1, 0.1]
FEATURES = ["search", "chat", "summarise", "extract", "agent", "autocomplete"]
ROUTES = ["/v1/chat/completions", "/v1/messages", "/v1/embeddings", "/v1/responses"]
REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-2"]
FINISH_REASONS = [["stop"], ["length"], ["tool_calls"], ["content_filter"]]
FINISH_WEIGHTS = [0.85, 0.08, 0.06, 0.01]
ERROR_TYPES = ["timeout", "rate_limit_exceeded", "500", "context_length_exceeded"]
# 2025-03-01T00:00:00Z; generated events spread over the following 30 days.
START_S = 1740787200
UTC_PLUS_2 = timezone(timedelta(hours=2))


def generate_event(rng: random.Random) -> dict[str, Any]:
    """Generate one wire event with a realistic mix of attributes and spellings."""
    provider = rng.choices(list(PROVIDER_MODELS), PROVIDER_WEIGHTS)[0]
    model = rng.choice(PROVIDER_MODELS[provider])
    older = rng.random() < 0.15
    event: dict[str, Any] = {
        "timestamp": _timestamp(rng),
        "request_id": f"{rng.getrandbits(128):032x}",
        "tenant": f"tenant-{rng.randrange(50):03d}",
        "gen_ai.system" if older else "gen_ai.provider.name": provider,
        "gen_ai.request.model": model,
        "gen_ai.operation.name": "embeddings" if "embedding" in model else "chat",
        "feature": rng.choice(FEATURES),
        "route": rng.choice(ROUTES),
        "region": rng.choice(REGIONS),
    }
    if rng.random() < 0.7:
        event["gen_ai.response.model"] = model
    if rng.random() < 0.02:
        event["error.type"] = rng.choice(ERROR_TYPES)
        event["duration_ms"] = round(rng.uniform(50, 30000), 1)
        return event

    event.update(_usage(rng, provider, older))
    event.update(_latency(rng))
    event["gen_ai.response.finish_reasons"] = rng.choices(
        FINISH_REASONS, FINISH_WEIGHTS
    )[0]
    if rng.random() < 0.6:
        # 5 to 8 decimal places. json.dumps writes repr(), so the orjson candidate
        # gets back the same Decimal as the exact parsers.
        event["cost_usd"] = round(rng.uniform(0.00001, 0.5), rng.randint(5, 8))
    if rng.random() < 0.1:
        event["gen_ai.conversation.id"] = f"conv-{rng.randrange(10**6)}"
    return event


def _timestamp(rng: random.Random) -> str | float:
    moment_s = START_S + rng.uniform(0, 30 * 86400)
    draw = rng.random()
    if draw < 0.2:
        return round(moment_s, 3)
    moment = datetime.fromtimestamp(moment_s, UTC)
    if draw < 0.3:
        return moment.astimezone(UTC_PLUS_2).isoformat(timespec="milliseconds")
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _usage(rng: random.Random, provider: str, older: bool) -> dict[str, Any]:
    """Generate token counts, with cache parts and Anthropic-native counts."""
    cache_read = rng.randrange(0, 8000) if rng.random() < 0.4 else 0
    cache_write = rng.randrange(0, 2000) if rng.random() < 0.1 else 0
    fresh = rng.randrange(20, 6000)
    usage: dict[str, Any] = {}
    exclude_cache = provider == "anthropic" and rng.random() < 0.5
    if exclude_cache:
        usage["gen_ai.usage.input_tokens_exclude_cache"] = True
    input_tokens = fresh if exclude_cache else fresh + cache_read + cache_write
    output_tokens = rng.randrange(1, 1500)
    if older:
        usage["gen_ai.usage.prompt_tokens"] = input_tokens
        usage["gen_ai.usage.completion_tokens"] = output_tokens
        if cache_read:
            usage["gen_ai.usage.cache_read_input_tokens"] = cache_read
        if cache_write:
            usage["gen_ai.usage.cache_creation_input_tokens"] = cache_write
        return usage
    usage["gen_ai.usage.input_tokens"] = input_tokens
    usage["gen_ai.usage.output_tokens"] = output_tokens
    if cache_read:
        usage["gen_ai.usage.cache_read.input_tokens"] = cache_read
    if cache_write:
        usage["gen_ai.usage.cache_creation.input_tokens"] = cache_write
    return usage


def _latency(rng: random.Random) -> dict[str, float]:
    ttft_ms = round(rng.lognormvariate(6, 0.6), 1)
    latency = {"ttft_ms": ttft_ms}
    latency["duration_ms"] = round(ttft_ms + rng.lognormvariate(7.5, 0.8), 1)
    if rng.random() < 0.6:
        latency["max_inter_token_gap_ms"] = round(rng.lognormvariate(4, 0.7), 1)
    return latency


def generate_lines(count: int, seed: int) -> tuple[list[bytes], list[bytes]]:
    """Encode ``count`` events as single-event lines and as 100-event batch lines."""
    rng = random.Random(seed)
    single: list[bytes] = []
    batches: list[bytes] = []
    pending: list[dict[str, Any]] = []
    for _ in range(count):
        event = generate_event(rng)
        single.append(json.dumps(event).encode())
        pending.append(event)
        if len(pending) == BATCH_SIZE:
            batches.append(json.dumps(pending).encode())
            pending = []
    if pending:
        batches.append(json.dumps(pending).encode())
    return single, batches


# Candidate: stdlib json + pydantic


def _pydantic_wire_model() -> type[pydantic.BaseModel]:
    """Build a pydantic model with WireEvent's fields, types, defaults and names."""
    definitions: dict[str, Any] = {}
    for field in msgspec.structs.fields(WireEvent):
        default = ... if field.required else field.default
        definitions[field.name] = (
            field.type,
            pydantic.Field(default, alias=field.encode_name),
        )
    config = pydantic.ConfigDict(extra="ignore", frozen=True)
    return pydantic.create_model("PydanticWireEvent", __config__=config, **definitions)


PydanticWireEvent = _pydantic_wire_model()
_decimal_json = json.JSONDecoder(parse_float=Decimal)
_pydantic_batch = pydantic.TypeAdapter(list[PydanticWireEvent])  # type: ignore[valid-type]


def _event_from_model(model: pydantic.BaseModel) -> Event:
    return to_event(WireEvent(**model.__dict__))


def decode_stdlib_pydantic(line: bytes) -> list[Event]:
    value = _decimal_json.decode(line.decode())
    if isinstance(value, list):
        return [
            _event_from_model(model) for model in _pydantic_batch.validate_python(value)
        ]
    return [_event_from_model(PydanticWireEvent.model_validate(value))]


# Candidate: orjson + hand validation


class _WrongType(TypeError):
    pass


def _text(value: object) -> str:
    if type(value) is not str:
        raise _WrongType(value)
    return value


def _optional_text(value: object) -> str | None:
    return None if value is None else _text(value)


def _optional_count(value: object) -> int | None:
    if value is None or type(value) is int:
        return value
    raise _WrongType(value)


def _count(value: object) -> int:
    if type(value) is not int:
        raise _WrongType(value)
    return value


def _optional_float(value: object) -> float | None:
    if value is None:
        return None
    if type(value) is float or type(value) is int:
        return float(value)
    raise _WrongType(value)


def _flag(value: object) -> bool:
    if type(value) is not bool:
        raise _WrongType(value)
    return value


def _moment(value: object) -> datetime | float:
    if type(value) is str:
        return datetime.fromisoformat(value)
    if type(value) is float or type(value) is int:
        return float(value)
    raise _WrongType(value)


def _money(value: object) -> Decimal | None:
    # orjson has already rounded the JSON text to a binary float here. repr() gives
    # the shortest text that reads back as that float, which equals the JSON text
    # when it has at most 15 significant digits.
    if value is None:
        return None
    if type(value) is float:
        return Decimal(repr(value))
    if type(value) is int or type(value) is str:
        return Decimal(value)
    raise _WrongType(value)


def _reasons(value: object) -> tuple[str, ...]:
    if type(value) is not list:
        raise _WrongType(value)
    return tuple(_text(item) for item in value)


_CHECKERS: dict[type | object, Callable[[Any], Any]] = {
    str: _text,
    str | None: _optional_text,
    int: _count,
    int | None: _optional_count,
    float | None: _optional_float,
    bool: _flag,
    datetime | float: _moment,
    Decimal | None: _money,
    tuple[str, ...]: _reasons,
}
# Wire name -> (WireEvent attribute, checker), built from WireEvent so that the
# two cannot drift apart.
_HAND_FIELDS = {
    field.encode_name: (field.name, _CHECKERS[field.type])
    for field in msgspec.structs.fields(WireEvent)
}


def _wire_from_dict(value: object) -> WireEvent:
    if type(value) is not dict:
        raise _WrongType(value)
    attributes: dict[str, Any] = {}
    for key, item in value.items():
        entry = _HAND_FIELDS.get(key)
        if entry is not None:
            attributes[entry[0]] = entry[1](item)
    return WireEvent(**attributes)


def decode_orjson_hand(line: bytes) -> list[Event]:
    value = orjson.loads(line)
    if type(value) is list:
        return [to_event(_wire_from_dict(item)) for item in value]
    return [to_event(_wire_from_dict(value))]


# Candidate: msgspec typed decoding, as decode_record does it

_msgspec_single = msgspec.json.Decoder(WireEvent)
_msgspec_batch = msgspec.json.Decoder(list[WireEvent])


def decode_msgspec_struct(line: bytes) -> list[Event]:
    if line[:1] == b"[":
        return [to_event(wire) for wire in _msgspec_batch.decode(line)]
    return [to_event(_msgspec_single.decode(line))]


def decode_with_decode_record(line: bytes) -> list[Event]:
    events, rejections = decode_record(line)
    if rejections:
        raise ValueError(f"generated event rejected: {rejections[0].detail}")
    return events


CANDIDATES: dict[str, Decode] = {
    "stdlib json + pydantic": decode_stdlib_pydantic,
    "orjson + hand validation": decode_orjson_hand,
    "msgspec Struct + to_event": decode_msgspec_struct,
    "decode_record": decode_with_decode_record,
}


def decode_msgspec_wire(line: bytes) -> object:
    if line[:1] == b"[":
        return _msgspec_batch.decode(line)
    return _msgspec_single.decode(line)


# Parsing without to_event: into plain Python values, which shows what Decimal
# money costs, and into WireEvent, which shows the share of to_event.
_untyped_msgspec = msgspec.json.Decoder()
_float_json = json.JSONDecoder()
PARSERS: dict[str, Callable[[bytes], object]] = {
    "json.loads": json.loads,
    "json.loads(parse_float=Decimal)": lambda line: json.loads(
        line, parse_float=Decimal
    ),
    "JSONDecoder(), reused": lambda line: _float_json.decode(line.decode()),
    "JSONDecoder(parse_float=Decimal), reused": lambda line: _decimal_json.decode(
        line.decode()
    ),
    "orjson.loads": orjson.loads,
    "msgspec.json.decode (untyped)": _untyped_msgspec.decode,
    "msgspec into WireEvent (typed)": decode_msgspec_wire,
}


# Measurement


@dataclass
class Timing:
    name: str
    shape: str
    events: int
    runs_s: list[float]

    @property
    def best_rate(self) -> float:
        return self.events / min(self.runs_s)

    @property
    def median_rate(self) -> float:
        return self.events / statistics.median(self.runs_s)


def time_once(decode: Callable[[bytes], object], lines: list[bytes]) -> float:
    """Decode every line once and return the elapsed seconds."""
    gc.collect()
    started = time.perf_counter()
    for line in lines:
        decode(line)
    return time.perf_counter() - started


def measure(
    functions: Mapping[str, Callable[[bytes], object]],
    shapes: dict[str, list[bytes]],
    events: int,
    repeat: int,
) -> list[Timing]:
    """Time every function on every shape, ``repeat`` rounds, interleaved."""
    timings = {
        (name, shape): Timing(name, shape, events, [])
        for name in functions
        for shape in shapes
    }
    for _ in range(repeat):
        for shape, lines in shapes.items():
            for name, function in functions.items():
                timings[name, shape].runs_s.append(time_once(function, lines))
    return list(timings.values())


def check_candidates_agree(lines: list[bytes]) -> None:
    """Stop unless every candidate returns the same events on every line."""
    for number, line in enumerate(lines, start=1):
        expected = decode_with_decode_record(line)
        for name, decode in CANDIDATES.items():
            if decode(line) != expected:
                raise SystemExit(
                    f"{name} disagrees with decode_record on line {number}"
                )


def show_precision_loss() -> str:
    """Describe what the float round trip does to a cost with many digits."""
    text = "0.123456789012345678901"
    exact = json.loads(text, parse_float=Decimal)
    through_float = Decimal(repr(orjson.loads(text)))
    return f"cost_usd {text}: parse_float=Decimal gives {exact}, orjson gives {through_float}"


# Report


def format_table(
    timings: list[Timing], shapes: list[str], baseline: str, title: str
) -> str:
    """Format a Markdown table of best and median events/s, with best-rate ratios."""
    header = ["candidate"]
    for shape in shapes:
        header += [f"{shape}: best ev/s", "median ev/s", f"x {baseline}"]
    rows = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    by_key = {(timing.name, timing.shape): timing for timing in timings}
    names = list(dict.fromkeys(timing.name for timing in timings))
    for name in names:
        cells = [name]
        for shape in shapes:
            timing = by_key[name, shape]
            base = by_key[baseline, shape]
            cells += [
                f"{timing.best_rate:,.0f}",
                f"{timing.median_rate:,.0f}",
                f"{timing.best_rate / base.best_rate:.2f}",
            ]
        rows.append("| " + " | ".join(cells) + " |")
    return f"{title}\n\n" + "\n".join(rows)


def describe_machine() -> Iterator[str]:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    yield f"machine: {cpu}, {os.cpu_count()} cores, {platform.system()}"
    yield f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    yield f"python {platform.python_version()}"
    packages = ["msgspec", "orjson", "pydantic", "pydantic-core"]
    yield ", ".join(f"{name} {version(name)}" for name in packages)


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--events",
        type=int,
        default=200_000,
        help="events to generate (default 200000)",
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="timed rounds per candidate (default 3)"
    )
    parser.add_argument(
        "--seed", type=int, default=20250301, help="random seed (default 20250301)"
    )
    return parser.parse_args()


def main() -> None:
    arguments = parse_arguments()
    single, batches = generate_lines(arguments.events, arguments.seed)
    shapes = {"single": single, f"batch of {BATCH_SIZE}": batches}
    megabytes = sum(len(line) for line in single) / 1e6
    for line in describe_machine():
        print(line)
    print(
        f"{arguments.events:,} events, seed {arguments.seed}, {megabytes:.1f} MB as "
        f"single lines, {len(batches):,} batch lines, {arguments.repeat} rounds"
    )
    check_candidates_agree(single[:2000])
    check_candidates_agree(batches[: 2000 // BATCH_SIZE])

    candidate_timings = measure(CANDIDATES, shapes, arguments.events, arguments.repeat)
    parser_timings = measure(PARSERS, shapes, arguments.events, arguments.repeat)

    print()
    print(
        format_table(
            candidate_timings, list(shapes), "decode_record", "Decoding into Event"
        )
    )
    print()
    print(
        format_table(
            parser_timings, list(shapes), "json.loads", "Parsing only, without to_event"
        )
    )
    print()
    print(show_precision_loss())


if __name__ == "__main__":
    main()
