"""Build the ServeGen demo extract and replay it as request events.

ServeGen (Xiang et al., arXiv:2505.09999) published per-client aggregates of the
production traffic of one large language model ("m-large") on Alibaba Cloud
Model Studio: the request rate of each of 162 anonymous clients in every 600 s
window of 14 days, and each client's token-length histograms per 6 h block. No
per-request records were published, so the demo generates them in two steps:

``build_extract`` reads the release and writes a compact extract (gzip'd JSON):
every client's exact request count per window, and each 6 h histogram reduced
to 205 quantile points. ``generate_events`` samples 1 in ``k`` requests
(``DEFAULT_SAMPLE_EVERY`` = 500) of the demo's 50 clients (``TOP_CLIENT_COUNT``
largest plus ``EXTRA_CLIENTS``), about 440,000 events over the 14 days, and
writes them as JSON Lines in the wire format of ``detector.decode``, sorted by
timestamp.

What comes from the data: tenants (client ids), request counts per window and
token-length distributions with their drift over the days. What is modelled:

- The time of a request inside its window, drawn uniformly. Thinning a renewal
  process 1 in k converges to a Poisson process as k grows (Renyi's thinning
  theorem), so the fitted Gamma and Weibull inter-arrival shapes of the full
  stream do not carry over to a 1-in-500 sample and are not kept.
- Latency: TTFT from the input length, decode time per output token, and the
  maximum inter-token gap, each with log-normal noise (see ``_draw_latency``).
- The model and provider: ``qwen/qwen-max`` on ``openrouter``, priced by
  genai-prices 0.2.3 at $1.60 input and $6.40 output per million tokens. The
  data names no model, and genai-prices lists Qwen models only under resellers.
- Feature, route and region, assigned per client from a fixed catalogue.
- The calendar: t=0 is local midnight in China (ServeGen does not publish the
  date), anchored here at 2026-03-16T00:00+08:00, a Monday, so the 14 days end on
  2026-03-29 inside one calendar month.
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

SOURCE_REPOSITORY = "https://github.com/alibaba/ServeGen"
SOURCE_COMMIT = "f891d1189eb32b3868dfc443800c4150548c282a"
SOURCE_FOLDER = "data/language/m-large"
EXTRACT_FORMAT = "burnrate-servegen-extract"
EXTRACT_VERSION = 1
DEFAULT_EXTRACT = Path(__file__).parent / "data" / "servegen-m-large.json.gz"
DEMO_RULES = Path(__file__).parent / "rules"

WINDOW_S = 600
WINDOW_COUNT = 2016
BLOCK_S = 21600
WINDOWS_PER_BLOCK = BLOCK_S // WINDOW_S
WINDOWS_PER_DAY = 86400 // WINDOW_S
DAY_COUNT = WINDOW_COUNT // WINDOWS_PER_DAY
BLOCK_COUNT = WINDOW_COUNT // WINDOWS_PER_BLOCK

ANCHOR = datetime(2026, 3, 16, tzinfo=ZoneInfo("Asia/Shanghai"))
DEFAULT_SAMPLE_EVERY = 500
DEFAULT_SEED = 1

# The demo keeps the largest clients, which carry 90.5 % of all requests, and a
# few small ones whose shapes a real fleet also has.
TOP_CLIENT_COUNT = 40
EXTRA_CLIENTS: dict[int, str] = {
    30: "very small and flat",
    51: "small and flat, almost idle on day 8",
    55: "small and flat, with one day at about 90 times its usual traffic",
    62: "active on days 9 and 10 only",
    90: "almost idle except for two busy days",
    139: "stops after day 7",
    146: "starts on day 10, busiest on day 13",
    149: "small and flat",
    159: "active on days 9 to 11 only",
    161: "starts on day 3, fades out after day 10",
}

# Quantile levels kept per histogram: every 0.5 %, plus finer steps in both tails.
QUANTILE_LEVELS: tuple[float, ...] = tuple(
    sorted({i / 200 for i in range(201)} | {0.001, 0.002, 0.998, 0.999})
)
TOKEN_KINDS = ("input_tokens", "output_tokens")

PROVIDER = "openrouter"
MODEL = "qwen/qwen-max"
OPERATION = "chat"
REGION = "cn-beijing"
FINISH_REASON = "stop"
FEATURE_ROUTES: tuple[tuple[str, str], ...] = (
    ("assistant-chat", "/v1/chat/completions"),
    ("doc-summary", "/v1/chat/completions"),
    ("rag-answer", "/v1/chat/completions"),
    ("ticket-triage", "/v1/chat/completions"),
    ("translation", "/v1/chat/completions"),
    ("code-review", "/v1/chat/completions"),
    ("batch-extract", "/v1/batches"),
    ("agent-step", "/v1/responses"),
)
FEATURE_WEIGHTS: tuple[tuple[float, ...], ...] = ((0.7, 0.3), (0.6, 0.3, 0.1))

# Latency model, in the range of hosted 100B-class models: a fixed overhead plus
# prefill at about 8,000 tokens/s for TTFT, then about 33 tokens/s of decode.
TTFT_BASE_MS = 180.0
PREFILL_MS_PER_TOKEN = 0.12
DECODE_MS_PER_TOKEN = 30.0
TTFT_NOISE_SIGMA = 0.25
DECODE_NOISE_SIGMA = 0.2

_HISTOGRAM = re.compile(r"\{(?:\d+: [-+0-9.eE]+(?:, \d+: [-+0-9.eE]+)*)?\}")
_TRACE_FILE = re.compile(r"chunk-(\d+)-trace\.csv")

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
# A token-length histogram: token counts and their probabilities.
Histogram = tuple[IntArray, FloatArray]
# One client's histograms: per 6 h block, per token kind, None when empty.
ClientHistograms = list[dict[str, Histogram | None]]


class ExtractError(ValueError):
    """The source release or an extract file is missing or malformed."""


@dataclass(frozen=True)
class Extract:
    """The demo extract in memory.

    ``requests`` has one row per client and one column per 600 s window. A client
    the demo replays by default has a reason in ``demo_reasons``, the others None.
    ``input_quantiles`` and ``output_quantiles`` have shape (clients, 56 blocks,
    levels). A client without its own histogram for a block borrows the pooled one.
    """

    clients: tuple[int, ...]
    demo_reasons: tuple[str | None, ...]
    has_dataset: tuple[bool, ...]
    requests: IntArray
    quantile_levels: FloatArray
    input_quantiles: FloatArray
    output_quantiles: FloatArray

    def row(self, client: int) -> int:
        """Return the row index of a client, raising KeyError if not kept."""
        try:
            return self.clients.index(client)
        except ValueError:
            raise KeyError(f"client {client} is not in the extract") from None

    @property
    def demo_clients(self) -> tuple[int, ...]:
        return tuple(
            client
            for client, reason in zip(self.clients, self.demo_reasons)
            if reason is not None
        )


# Building the extract -----------------------------------------------------------


def build_extract(source_dir: Path, out_path: Path) -> None:
    """Read the ServeGen m-large release and write the demo extract to ``out_path``.

    ``source_dir`` is the folder of ``chunk-N-trace.csv`` files, or a parent that
    contains ``language/m-large``. Equal inputs give equal bytes with the same
    zlib version, and equal decompressed JSON with any version.
    """
    folder = _find_release(source_dir)
    counts = _read_all_counts(folder)
    demo = _select_demo_clients(counts)
    histograms = _read_histograms(folder, counts)
    pooled = {kind: _pooled_quantiles(histograms, counts, kind) for kind in TOKEN_KINDS}
    document = {
        "format": EXTRACT_FORMAT,
        "version": EXTRACT_VERSION,
        "source": {
            "repository": SOURCE_REPOSITORY,
            "commit": SOURCE_COMMIT,
            "folder": SOURCE_FOLDER,
            "licence": "Apache-2.0",
            "citation": "Xiang et al., ServeGen, arXiv:2505.09999",
        },
        "window_s": WINDOW_S,
        "block_s": BLOCK_S,
        "window_count": WINDOW_COUNT,
        "quantile_levels": list(QUANTILE_LEVELS),
        "quantile_encoding": "first value, then differences",
        "pooled": pooled,
        "clients": [
            _client_entry(
                client, demo.get(client), counts[client], histograms.get(client)
            )
            for client in sorted(counts)
        ],
    }
    text = json.dumps(document, separators=(",", ":"), sort_keys=True)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    # An empty file name and mtime=0 keep the output path and the build time out
    # of the gzip header, so equal inputs give equal bytes.
    with (
        open(out_path, "wb") as raw,
        gzip.GzipFile("", "wb", compresslevel=9, fileobj=raw, mtime=0) as out,
    ):
        out.write(text.encode())


def _find_release(source_dir: Path) -> Path:
    for candidate in (source_dir, source_dir / "language" / "m-large"):
        if any(candidate.glob("chunk-*-trace.csv")):
            return candidate
    raise ExtractError(
        f"no chunk-N-trace.csv files in {source_dir} or {source_dir}/language/m-large."
        f" Pass the {SOURCE_FOLDER} folder of {SOURCE_REPOSITORY}"
    )


def _read_all_counts(folder: Path) -> dict[int, IntArray]:
    """Read every client's requests per window, which are rate x 600, whole numbers."""
    counts: dict[int, IntArray] = {}
    for path in folder.glob("chunk-*-trace.csv"):
        match = _TRACE_FILE.fullmatch(path.name)
        if match:
            counts[int(match.group(1))] = _read_counts(path)
    return counts


def _read_counts(path: Path) -> IntArray:
    table = np.loadtxt(path, delimiter=",", usecols=(0, 1), ndmin=2)
    expected_starts = np.arange(WINDOW_COUNT) * WINDOW_S
    if table.shape[0] != WINDOW_COUNT or not np.array_equal(
        table[:, 0], expected_starts
    ):
        raise ExtractError(
            f"{path}: expected {WINDOW_COUNT} windows starting 0, 600, ..., "
            f"found {table.shape[0]} rows"
        )
    requests = table[:, 1] * WINDOW_S
    rounded = np.round(requests)
    if np.abs(requests - rounded).max() > 1e-6:
        raise ExtractError(f"{path}: rate x {WINDOW_S} is not a whole request count")
    return rounded.astype(np.int64)


def _select_demo_clients(counts: dict[int, IntArray]) -> dict[int, str]:
    """Return the clients the demo replays by default, each with the reason."""
    ranked = sorted(counts, key=lambda client: (-int(counts[client].sum()), client))
    selected = {
        client: f"rank {rank + 1} by requests"
        for rank, client in enumerate(ranked[:TOP_CLIENT_COUNT])
    }
    for client, reason in sorted(EXTRA_CLIENTS.items()):
        if client not in counts:
            raise ExtractError(f"client {client} is missing from the release")
        selected.setdefault(client, reason)
    return selected


def _read_histograms(
    folder: Path, counts: dict[int, IntArray]
) -> dict[int, ClientHistograms]:
    """Read every ``chunk-N-dataset.json``: per block, tokens and probabilities."""
    histograms = {}
    for client in sorted(counts):
        path = folder / f"chunk-{client}-dataset.json"
        if path.exists():
            histograms[client] = _read_dataset(path)
    return histograms


def _read_dataset(path: Path) -> ClientHistograms:
    document = json.loads(path.read_text())
    starts = sorted(document, key=int)
    if [int(start) for start in starts] != [b * BLOCK_S for b in range(BLOCK_COUNT)]:
        raise ExtractError(f"{path}: expected {BLOCK_COUNT} blocks every {BLOCK_S} s")
    return [
        {kind: _parse_histogram(document[start][kind], path) for kind in TOKEN_KINDS}
        for start in starts
    ]


def _parse_histogram(text: str, path: Path) -> Histogram | None:
    """Parse a ``{tokens: probability, ...}`` Python dict literal.

    ``ast.literal_eval`` parses these too but is several times slower on the
    110 MB release, so a regular expression checks the exact shape and numpy
    reads the numbers.
    """
    if not _HISTOGRAM.fullmatch(text):
        raise ExtractError(f"{path}: histogram is not a {{int: float}} literal")
    if text == "{}":
        return None
    numbers = text.translate(str.maketrans("{}:,", "    ")).split()
    pairs = np.array(numbers, dtype=np.float64).reshape(-1, 2)
    return pairs[:, 0].astype(np.int64), pairs[:, 1]


def _quantiles(tokens: IntArray, weights: FloatArray) -> list[int]:
    """Return the inverse CDF of a discrete distribution at ``QUANTILE_LEVELS``."""
    order = np.argsort(tokens, kind="stable")
    cdf = np.cumsum(weights[order])
    cdf /= cdf[-1]
    index = np.searchsorted(cdf, np.array(QUANTILE_LEVELS), side="left")
    values = tokens[order][np.minimum(index, len(tokens) - 1)]
    values[0] = tokens.min()
    return [int(v) for v in values]


def _delta_encode(values: list[int]) -> list[int]:
    return [values[0]] + [b - a for a, b in itertools.pairwise(values)]


def _pooled_quantiles(
    histograms: dict[int, ClientHistograms],
    counts: dict[int, IntArray],
    kind: str,
) -> list[list[int]]:
    """Pool all clients' histograms per block, weighted by their requests there."""
    pooled = []
    for block in range(BLOCK_COUNT):
        tokens: list[IntArray] = []
        weights: list[FloatArray] = []
        for client, blocks in histograms.items():
            histogram = blocks[block][kind]
            requests = _block_requests(counts[client], block)
            if histogram is not None and requests > 0:
                tokens.append(histogram[0])
                weights.append(histogram[1] * requests)
        if not tokens:
            raise ExtractError(f"block {block} has no histogram with traffic")
        pooled.append(
            _delta_encode(_quantiles(np.concatenate(tokens), np.concatenate(weights)))
        )
    return pooled


def _block_requests(counts: IntArray, block: int) -> int:
    start = block * WINDOWS_PER_BLOCK
    return int(counts[start : start + WINDOWS_PER_BLOCK].sum())


def _client_entry(
    client: int,
    demo_reason: str | None,
    counts: IntArray,
    blocks: ClientHistograms | None,
) -> dict[str, Any]:
    """Describe one client. Blocks without traffic or histogram are ``null``."""
    entry: dict[str, Any] = {
        "client": client,
        "demo_reason": demo_reason,
        "has_dataset": blocks is not None,
        "requests": [int(c) for c in counts],
    }
    for kind in TOKEN_KINDS:
        encoded: list[list[int] | None] = []
        for block in range(BLOCK_COUNT):
            histogram = None if blocks is None else blocks[block][kind]
            if histogram is None or _block_requests(counts, block) == 0:
                encoded.append(None)
            else:
                encoded.append(_delta_encode(_quantiles(*histogram)))
        entry[kind] = encoded
    return entry


# Loading the extract ------------------------------------------------------------


def load_extract(path: Path = DEFAULT_EXTRACT) -> Extract:
    """Read an extract written by ``build_extract``."""
    try:
        with gzip.open(path, "rb") as source:
            document = json.loads(source.read())
    except FileNotFoundError:
        raise ExtractError(
            f"extract {path} not found. Build it with "
            "python -m detector.demo.servegen build-extract"
        ) from None
    if document.get("format") != EXTRACT_FORMAT or document.get("version") != 1:
        raise ExtractError(f"{path} is not a version 1 {EXTRACT_FORMAT} file")

    clients = document["clients"]
    levels = np.array(document["quantile_levels"], dtype=np.float64)
    pooled = {
        kind: np.cumsum(np.array(document["pooled"][kind], dtype=np.float64), axis=1)
        for kind in TOKEN_KINDS
    }
    quantiles = {
        kind: np.stack([_decode_blocks(entry[kind], pooled[kind]) for entry in clients])
        for kind in TOKEN_KINDS
    }
    return Extract(
        clients=tuple(int(entry["client"]) for entry in clients),
        demo_reasons=tuple(entry["demo_reason"] for entry in clients),
        has_dataset=tuple(bool(entry["has_dataset"]) for entry in clients),
        requests=np.array([entry["requests"] for entry in clients], dtype=np.int64),
        quantile_levels=levels,
        input_quantiles=quantiles["input_tokens"],
        output_quantiles=quantiles["output_tokens"],
    )


def _decode_blocks(blocks: list[list[int] | None], pooled: FloatArray) -> FloatArray:
    decoded = pooled.copy()
    for block, deltas in enumerate(blocks):
        if deltas is not None:
            decoded[block] = np.cumsum(np.array(deltas, dtype=np.float64))
    return decoded


# Generating events --------------------------------------------------------------


@dataclass(frozen=True)
class EventColumns:
    """Generated requests as parallel arrays, sorted by timestamp."""

    time_ms: IntArray
    client: IntArray
    window: IntArray
    index_in_window: IntArray
    input_tokens: IntArray
    output_tokens: IntArray
    feature_index: IntArray
    ttft_ms: FloatArray
    duration_ms: FloatArray
    max_inter_token_gap_ms: FloatArray

    def __len__(self) -> int:
        return len(self.time_ms)


def generate_columns(
    extract: Extract,
    *,
    sample_every: int = DEFAULT_SAMPLE_EVERY,
    seed: int = DEFAULT_SEED,
    first_day: int = 0,
    day_count: int = DAY_COUNT,
    clients: Sequence[int] | None = None,
) -> EventColumns:
    """Draw 1 in ``sample_every`` requests of the chosen clients and days.

    ``clients`` defaults to the demo's clients. Pass ``extract.clients`` for all.
    Each (client, day) has its own random stream derived from ``seed``, so a day
    comes out the same whether it is generated alone or with the others.
    ``time_ms`` counts milliseconds from t=0 of the data.
    """
    if sample_every < 1:
        raise ValueError(f"invalid sample_every {sample_every}: it must be 1 or more")
    if not (0 <= first_day and first_day + day_count <= DAY_COUNT and day_count >= 1):
        raise ValueError(
            f"days {first_day}..{first_day + day_count - 1} are outside 0..{DAY_COUNT - 1}"
        )
    chosen = extract.demo_clients if clients is None else tuple(clients)
    if not chosen:
        raise ValueError("no clients chosen: pass at least one client id")
    parts = [
        _draw_client_day(extract, extract.row(client), day, sample_every, seed)
        for client in chosen
        for day in range(first_day, first_day + day_count)
    ]
    merged = {
        name: np.concatenate([getattr(part, name) for part in parts])
        for name in EventColumns.__dataclass_fields__
    }
    order = np.lexsort((merged["index_in_window"], merged["client"], merged["time_ms"]))
    return EventColumns(**{name: values[order] for name, values in merged.items()})


def _draw_client_day(
    extract: Extract, row: int, day: int, sample_every: int, seed: int
) -> EventColumns:
    client = extract.clients[row]
    rng = np.random.default_rng([seed, client, day])
    first_window = day * WINDOWS_PER_DAY
    windows = np.arange(first_window, first_window + WINDOWS_PER_DAY)

    # Binomial thinning keeps each real request with probability 1/k.
    sampled = rng.binomial(extract.requests[row, windows], 1 / sample_every)
    window = np.repeat(windows, sampled)
    offset_ms = np.floor(rng.uniform(0, WINDOW_S * 1000, len(window))).astype(np.int64)
    time_ms = np.sort(window * WINDOW_S * 1000 + offset_ms)
    starts = np.cumsum(sampled) - sampled
    index_in_window = np.arange(len(window)) - np.repeat(starts, sampled)

    block = window // WINDOWS_PER_BLOCK
    levels = extract.quantile_levels
    input_tokens = _inverse_cdf(levels, extract.input_quantiles[row], block, rng)
    output_tokens = _inverse_cdf(levels, extract.output_quantiles[row], block, rng)
    ttft_ms, duration_ms, max_inter_token_gap_ms = _draw_latency(
        input_tokens, output_tokens, rng
    )
    weights = _feature_weights(client)
    feature_index = rng.choice(len(FEATURE_ROUTES), size=len(window), p=weights)
    return EventColumns(
        time_ms=time_ms,
        client=np.full(len(window), client, dtype=np.int64),
        window=window,
        index_in_window=index_in_window,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        feature_index=feature_index.astype(np.int64),
        ttft_ms=ttft_ms,
        duration_ms=duration_ms,
        max_inter_token_gap_ms=max_inter_token_gap_ms,
    )


def _inverse_cdf(
    levels: FloatArray, quantiles: FloatArray, block: IntArray, rng: np.random.Generator
) -> IntArray:
    """Draw token counts by linear interpolation between a block's quantile points."""
    uniform = rng.random(len(block))
    upper = np.clip(np.searchsorted(levels, uniform, side="right"), 1, len(levels) - 1)
    lower = upper - 1
    fraction = (uniform - levels[lower]) / (levels[upper] - levels[lower])
    low_value = quantiles[block, lower]
    high_value = quantiles[block, upper]
    drawn = low_value + fraction * (high_value - low_value)
    return np.rint(drawn).astype(np.int64)


def _draw_latency(
    input_tokens: IntArray, output_tokens: IntArray, rng: np.random.Generator
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Model TTFT, duration and the maximum inter-token gap, in milliseconds.

    TTFT is a fixed overhead plus prefill time proportional to the prompt. Each
    output token after the first takes one time-per-output-token, which varies
    per request. The largest gap in a stream is that time stretched by 1.5 plus
    an exponential factor, and 0 when the response has fewer than two tokens.

    NOTE: latency does not depend on load, so it never rises in busy hours, and a
    latency rule finds nothing real in these events.
    """
    count = len(input_tokens)
    prefill_ms = TTFT_BASE_MS + PREFILL_MS_PER_TOKEN * input_tokens
    ttft_ms = prefill_ms * rng.lognormal(0.0, TTFT_NOISE_SIGMA, count)
    per_token_ms = DECODE_MS_PER_TOKEN * rng.lognormal(0.0, DECODE_NOISE_SIGMA, count)
    duration_ms = ttft_ms + np.maximum(output_tokens - 1, 0) * per_token_ms
    stretch = 1.5 + rng.exponential(1.0, count)
    max_inter_token_gap_ms = np.where(output_tokens >= 2, per_token_ms * stretch, 0.0)
    return ttft_ms, duration_ms, max_inter_token_gap_ms


def _feature_weights(client: int) -> FloatArray:
    """Give each client two or three features, fixed by its id alone."""
    rng = np.random.default_rng([0x5E12, client])
    shares = FEATURE_WEIGHTS[int(rng.integers(len(FEATURE_WEIGHTS)))]
    picked = rng.choice(len(FEATURE_ROUTES), size=len(shares), replace=False)
    weights = np.zeros(len(FEATURE_ROUTES))
    weights[picked] = shares
    return weights


def format_events(columns: EventColumns) -> Iterator[bytes]:
    """Render each request as one JSON object in the ``detector.decode`` wire format."""
    epoch = np.datetime64(ANCHOR.astimezone(UTC).replace(tzinfo=None), "ms")
    stamps = np.datetime_as_string(epoch + columns.time_ms.astype("timedelta64[ms]"))
    template = (
        '{"timestamp":"%sZ","request_id":"sg-%d-%d-%d","tenant":"client-%d",'
        f'"gen_ai.provider.name":"{PROVIDER}","gen_ai.request.model":"{MODEL}",'
        f'"gen_ai.response.model":"{MODEL}","gen_ai.operation.name":"{OPERATION}",'
        '"gen_ai.usage.input_tokens":%d,"gen_ai.usage.output_tokens":%d,'
        '"feature":"%s","route":"%s",'
        f'"region":"{REGION}",'
        '"ttft_ms":%.1f,"duration_ms":%.1f,"max_inter_token_gap_ms":%.1f,'
        f'"gen_ai.response.finish_reasons":["{FINISH_REASON}"]}}'
    )
    features = [feature for feature, _ in FEATURE_ROUTES]
    routes = [route for _, route in FEATURE_ROUTES]
    clients = columns.client.tolist()
    rows = zip(
        stamps.tolist(),
        clients,
        columns.window.tolist(),
        columns.index_in_window.tolist(),
        clients,
        columns.input_tokens.tolist(),
        columns.output_tokens.tolist(),
        [features[index] for index in columns.feature_index.tolist()],
        [routes[index] for index in columns.feature_index.tolist()],
        columns.ttft_ms.tolist(),
        columns.duration_ms.tolist(),
        columns.max_inter_token_gap_ms.tolist(),
    )
    for row in rows:
        yield (template % row).encode()


def generate_events(
    extract_path: Path = DEFAULT_EXTRACT,
    *,
    sample_every: int = DEFAULT_SAMPLE_EVERY,
    seed: int = DEFAULT_SEED,
    first_day: int = 0,
    day_count: int = DAY_COUNT,
    clients: Sequence[int] | None = None,
) -> Iterator[bytes]:
    """Generate the demo events as JSON Lines records (no newline), by timestamp."""
    extract = load_extract(extract_path)
    columns = generate_columns(
        extract,
        sample_every=sample_every,
        seed=seed,
        first_day=first_day,
        day_count=day_count,
        clients=clients,
    )
    return format_events(columns)


def write_events(lines: Iterator[bytes], out_path: Path) -> int:
    """Write records one per line and return how many were written."""
    count = 0
    with open(out_path, "wb") as out:
        for line in lines:
            out.write(line)
            out.write(b"\n")
            count += 1
    return count


def write_demo_events(
    out_path: Path, *, days: int = DAY_COUNT, extract_path: Path = DEFAULT_EXTRACT
) -> int:
    """Write the demo's events for the first ``days`` days and return the count.

    Days are generated one at a time, so memory holds one day's events. A day
    comes out the same alone or with the others, so the file is the same too.
    """
    extract = load_extract(extract_path)

    def lines() -> Iterator[bytes]:
        for day in range(days):
            columns = generate_columns(extract, first_day=day, day_count=1)
            yield from format_events(columns)

    return write_events(lines(), out_path)


# Command line -------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m detector.demo.servegen",
        description="Build the ServeGen demo extract or generate events from it.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser(
        "build-extract", help="read the release, write the extract"
    )
    build.add_argument(
        "--source",
        type=Path,
        required=True,
        help="folder of chunk-N-trace.csv and chunk-N-dataset.json files",
    )
    build.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_EXTRACT,
        help="extract file to write (gzip'd JSON)",
    )
    generate = commands.add_parser("generate", help="write events as JSON Lines")
    generate.add_argument("--extract", type=Path, default=DEFAULT_EXTRACT)
    generate.add_argument("--out", type=Path, required=True, help="JSON Lines file")
    generate.add_argument(
        "--sample-every",
        type=int,
        default=DEFAULT_SAMPLE_EVERY,
        help="keep 1 in this many requests",
    )
    generate.add_argument("--seed", type=int, default=DEFAULT_SEED)
    generate.add_argument("--first-day", type=int, default=0, help="0 is 2026-03-16")
    generate.add_argument("--days", type=int, default=DAY_COUNT, help="number of days")
    generate.add_argument(
        "--client",
        type=int,
        action="append",
        dest="clients",
        help="ServeGen client id to replay, repeat for more "
        "default: the demo's 50 clients",
    )
    args = parser.parse_args(argv)

    try:
        if args.command == "build-extract":
            build_extract(args.source, args.out)
            print(f"wrote {args.out}")
            return 0
        lines = generate_events(
            args.extract,
            sample_every=args.sample_every,
            seed=args.seed,
            first_day=args.first_day,
            day_count=args.days,
            clients=args.clients,
        )
        count = write_events(lines, args.out)
    except (ExtractError, KeyError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {count} events to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
