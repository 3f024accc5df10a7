"""Measure OTLP batch decoding throughput in spans/s per core, for both encodings.

The script builds one Collector-style export batch of about 500 spans from a fixed
seed: 20 resources, each with a GenAI instrumentation scope and an HTTP scope,
where four spans in five are GenAI chat spans with the usual attributes and the
rest are HTTP spans that the decoder skips. It serialises the batch as protobuf
(``otlp_proto``) and as OTLP/JSON with hex ids (``otlp_json``), checks that both
decode to the same events, then times ``decode_otlp`` on each for several rounds.
The rounds interleave the encodings, so load from other processes falls on both
alike. Decoding runs in one thread, so the figure is per core.

Run from the repository root as a module, because it builds spans with the helpers
of ``tests/test_otlp.py``: ``.venv/bin/python -m tests.benchmarks.bench_otlp``.
``--help`` lists the options. It prints figures and asserts no timings.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import random
import statistics
import time
from importlib.metadata import version

from google.protobuf.internal import api_implementation
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from detector.otlp import Encoding, OtlpMapping, decode_otlp
from tests.test_otlp import attributes, span, to_otlp_json

MAPPING = OtlpMapping(
    tenant=("resource:tenant.id",),
    feature=("span:app.feature",),
    route=("span:http.route",),
    region=("resource:cloud.region",),
)
MODELS = ("gpt-4o", "gpt-4o-mini", "claude-sonnet-4", "claude-haiku-4")


def build_batch(resources: int, spans_per_resource: int, seed: int) -> bytes:
    """Return a serialised ExportTraceServiceRequest of resources x spans spans."""
    rng = random.Random(seed)
    request = ExportTraceServiceRequest()
    for index in range(resources):
        genai: list[Span] = []
        http: list[Span] = []
        for position in range(spans_per_resource):
            built = _random_span(rng, position)
            (genai if position % 5 else http).append(built)
        request.resource_spans.append(
            ResourceSpans(
                resource=Resource(
                    attributes=attributes(
                        {
                            "service.name": f"service-{index % 4}",
                            "tenant.id": f"tenant-{index}",
                            "cloud.region": "eu-west-1",
                            "telemetry.sdk.language": "python",
                        }
                    )
                ),
                scope_spans=[
                    ScopeSpans(scope=InstrumentationScope(name="openai"), spans=genai),
                    ScopeSpans(scope=InstrumentationScope(name="http"), spans=http),
                ],
            )
        )
    return request.SerializeToString()


def _random_span(rng: random.Random, position: int) -> Span:
    trace_id = rng.randbytes(16)
    span_id = rng.randbytes(8).hex()
    start_ms = 1_785_412_800_000 + rng.randrange(3_600_000)
    start = _rfc3339(start_ms)
    end = _rfc3339(start_ms + rng.randrange(200, 20_000))
    if position % 5 == 0:
        values: dict[str, object] = {
            "http.request.method": "POST",
            "http.route": "/v1/chat",
            "http.response.status_code": 200,
            "url.scheme": "https",
        }
        return span(trace_id, span_id, start, end, values)
    values = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": rng.choice(MODELS),
        "gen_ai.response.model": rng.choice(MODELS),
        "gen_ai.response.id": f"chatcmpl-{rng.getrandbits(64):x}",
        "gen_ai.usage.input_tokens": rng.randrange(100, 20_000),
        "gen_ai.usage.output_tokens": rng.randrange(10, 2_000),
        "gen_ai.usage.cache_read.input_tokens": rng.randrange(0, 100),
        "gen_ai.response.finish_reasons": ["stop"],
        "gen_ai.request.temperature": 0.2,
        "gen_ai.request.max_tokens": 4096,
        "gen_ai.response.time_to_first_chunk": rng.random(),
        "server.address": "api.example.com",
        "server.port": 443,
        "app.feature": rng.choice(("search", "summarise", "chat")),
        "http.route": "/v1/chat",
    }
    return span(trace_id, span_id, start, end, values)


def _rfc3339(unix_ms: int) -> str:
    seconds, millis = divmod(unix_ms, 1000)
    moment = time.gmtime(seconds)
    return time.strftime("%Y-%m-%dT%H:%M:%S", moment) + f".{millis:03d}Z"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--resources", type=int, default=20)
    parser.add_argument("--spans-per-resource", type=int, default=25)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=20, help="decodes per round")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    proto = build_batch(args.resources, args.spans_per_resource, args.seed)
    request = ExportTraceServiceRequest.FromString(proto)
    payloads: dict[Encoding, bytes] = {
        "otlp_proto": proto,
        "otlp_json": to_otlp_json(request),
    }
    spans = args.resources * args.spans_per_resource

    from_proto = decode_otlp(payloads["otlp_proto"], "otlp_proto", MAPPING)
    from_json = decode_otlp(payloads["otlp_json"], "otlp_json", MAPPING)
    if from_proto.events != from_json.events or from_proto.rejections:
        raise SystemExit("the encodings decode to different events; not timing")

    print(
        f"python {platform.python_version()} on {platform.machine()}, "
        f"{os.cpu_count()} cores; protobuf {version('protobuf')} "
        f"({api_implementation.Type()} backend), msgspec {version('msgspec')}"
    )
    print(
        f"batch: {spans} spans, {len(from_proto.events)} GenAI, "
        f"{from_proto.skipped_spans} skipped; proto {len(proto):,} bytes, "
        f"json {len(payloads['otlp_json']):,} bytes"
    )

    timings: dict[Encoding, list[float]] = {name: [] for name in payloads}
    gc.collect()
    for _ in range(args.rounds):
        for encoding, data in payloads.items():
            started = time.perf_counter()
            for _ in range(args.repeat):
                decode_otlp(data, encoding, MAPPING)
            elapsed = time.perf_counter() - started
            timings[encoding].append(spans * args.repeat / elapsed)

    for encoding, rates in timings.items():
        print(
            f"{encoding:<11} median {statistics.median(rates):>10,.0f} spans/s "
            f"(best {max(rates):,.0f}, worst {min(rates):,.0f}, "
            f"{args.rounds} rounds of {args.repeat} batches)"
        )


if __name__ == "__main__":
    main()
