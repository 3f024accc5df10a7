"""Tests of the ServeGen demo extract, the event generator and the demo rules.

The extract is the one shipped in ``detector/demo/data``. The reproduction and
histogram tests also read the ServeGen release itself, from
``traces/servegen/language/m-large`` under ``$BURNRATE_SHARED_DATA`` (by default
``shared/data`` beside the repository folder), and fail without it. Generation
runs on one or two days so the tests stay short.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from detector.decode import decode_record
from detector.demo import servegen
from detector.ruleload import load_rules

DAY_MS = 86_400_000


def _servegen_source() -> Path:
    """Return the m-large release folder, failing the test when it is missing."""
    override = os.environ.get("BURNRATE_SHARED_DATA")
    shared = (
        Path(override) if override else Path(__file__).parents[2] / "shared" / "data"
    )
    folder = shared / "traces" / "servegen" / "language" / "m-large"
    if not folder.is_dir():
        pytest.fail(
            f"ServeGen release not found at {folder}; set BURNRATE_SHARED_DATA to the "
            "folder that contains traces/servegen/language/m-large"
        )
    return folder


def _source_histogram(
    client: int, block: int, kind: str
) -> tuple[np.ndarray, np.ndarray]:
    path = _servegen_source() / f"chunk-{client}-dataset.json"
    text = json.loads(path.read_text())[str(block * servegen.BLOCK_S)][kind]
    pairs = [item.split(": ") for item in text.strip("{}").split(", ")]
    tokens = np.array([int(key) for key, _ in pairs])
    probabilities = np.array([float(value) for _, value in pairs])
    return tokens, probabilities


def _median(tokens: np.ndarray, probabilities: np.ndarray) -> int:
    order = np.argsort(tokens)
    cdf = np.cumsum(probabilities[order]) / probabilities.sum()
    return int(tokens[order][np.searchsorted(cdf, 0.5)])


@pytest.fixture(scope="module")
def extract() -> servegen.Extract:
    return servegen.load_extract()


def test_extract_loads(extract: servegen.Extract) -> None:
    """The shipped extract contains every client, 2,016 windows and 205 quantiles."""
    shape = extract.input_quantiles.shape

    assert len(extract.clients) == 162
    assert extract.requests.shape == (162, 2016)
    assert shape == (162, 56, 205)
    assert extract.output_quantiles.shape == shape
    assert len(extract.demo_clients) == 50
    assert sum(extract.has_dataset) == 147


def test_extract_request_total(extract: servegen.Extract) -> None:
    """The extract's request counts add up to the 236.9 million of the release."""
    total = int(extract.requests.sum())

    assert total == 236_892_826


def test_extract_quantiles_ascend(extract: servegen.Extract) -> None:
    """Every quantile row ascends, so inverse-CDF sampling is well defined."""
    for quantiles in (extract.input_quantiles, extract.output_quantiles):
        steps = np.diff(quantiles, axis=2)

        assert steps.min() >= 0


def test_client_without_dataset_uses_pooled(extract: servegen.Extract) -> None:
    """Client 142 has no dataset file, so every block borrows the pooled quantiles."""
    row = extract.row(142)
    other = extract.row(112)

    assert not extract.has_dataset[row]
    assert np.array_equal(extract.input_quantiles[row], extract.input_quantiles[other])


def test_generation_is_deterministic(tmp_path: Path) -> None:
    """The same seed gives the same bytes, and another seed gives other bytes."""

    def digest(seed: int) -> str:
        lines = servegen.generate_events(
            servegen.DEFAULT_EXTRACT,
            seed=seed,
            first_day=3,
            day_count=1,
            clients=[61, 20, 149],
        )
        return hashlib.sha256(b"\n".join(lines)).hexdigest()

    first = digest(7)
    second = digest(7)
    other = digest(8)

    assert first == second
    assert first != other


def test_day_does_not_depend_on_slice(extract: servegen.Extract) -> None:
    """Day 4 is the same whether generated alone or within days 3 to 4."""
    alone = servegen.generate_columns(extract, first_day=4, day_count=1, clients=[61])
    within = servegen.generate_columns(extract, first_day=3, day_count=2, clients=[61])

    day_4 = within.time_ms >= 4 * DAY_MS
    assert np.array_equal(alone.time_ms, within.time_ms[day_4])
    assert np.array_equal(alone.input_tokens, within.input_tokens[day_4])


def test_daily_counts_match_rates(extract: servegen.Extract) -> None:
    """Per-tenant daily counts are the extract's requests / 500 within 5 sigma."""
    clients = [61, 142, 20, 147, 149]
    lines = list(servegen.generate_events(first_day=0, day_count=2, clients=clients))
    anchor_ms = int(servegen.ANCHOR.timestamp() * 1000)
    counts: Counter[tuple[str, int]] = Counter()
    for line in lines:
        record = json.loads(line)
        stamp = datetime.fromisoformat(record["timestamp"])
        day = (int(stamp.timestamp() * 1000) - anchor_ms) // DAY_MS
        counts[(record["tenant"], day)] += 1

    for client in clients:
        for day in (0, 1):
            windows = slice(day * 144, (day + 1) * 144)
            expected = extract.requests[extract.row(client), windows].sum() / 500
            observed = counts[(f"client-{client}", day)]
            assert abs(observed - expected) <= 5 * math.sqrt(expected) + 1, (
                f"client {client} day {day}: {observed} events, expected {expected:.0f}"
            )


def test_every_line_decodes() -> None:
    """Every generated line of day 0 decodes into an event without rejection."""
    lines = list(servegen.generate_events(first_day=0, day_count=1))
    rejections = []
    tenants: set[str] = set()
    for line in lines:
        events, rejected = decode_record(line)
        rejections.extend(rejected)
        tenants.update(event.tenant for event in events)

    assert len(lines) > 20_000
    assert rejections == []
    assert len(tenants) >= 30


def test_event_fields() -> None:
    """An event carries the priced model, provider, tokens and modelled latency."""
    line = next(iter(servegen.generate_events(first_day=0, day_count=1, clients=[61])))

    events, _ = decode_record(line)
    event = events[0]

    assert event.tenant == "client-61"
    assert event.provider == "openrouter"
    assert event.model == "qwen/qwen-max"
    assert event.operation == "chat"
    assert event.input_tokens is not None
    assert event.input_tokens > 0
    assert event.ttft_ms is not None
    assert event.duration_ms is not None
    assert event.duration_ms >= event.ttft_ms
    assert event.feature != ""
    assert event.finish_reasons == ("stop",)


def test_events_sorted_inside_day() -> None:
    """Day 1 spans 2026-03-16T16:00Z to 2026-03-17T16:00Z, sorted by time."""
    lines = list(servegen.generate_events(first_day=1, day_count=1, clients=[61, 20]))
    stamps = [decode_record(line)[0][0].timestamp for line in lines]

    assert stamps == sorted(stamps)
    # Local day 2026-03-17 in Asia/Shanghai: [2026-03-16T16:00Z, 2026-03-17T16:00Z).
    assert stamps[0] >= datetime(2026, 3, 16, 16, tzinfo=UTC)
    assert stamps[-1] < datetime(2026, 3, 17, 16, tzinfo=UTC)


def test_request_ids_unique() -> None:
    """Request ids of two days of all demo tenants are unique."""
    lines = servegen.generate_events(first_day=0, day_count=2)
    ids = [json.loads(line)["request_id"] for line in lines]

    assert len(ids) == len(set(ids))


def test_token_medians_follow_source(extract: servegen.Extract) -> None:
    """Drawn token medians of client 61 are within 3 % of the source histograms."""
    columns = servegen.generate_columns(
        extract, sample_every=20, first_day=0, day_count=1, clients=[61]
    )
    block = columns.window // servegen.WINDOWS_PER_BLOCK

    for index in range(4):
        for kind in ("input_tokens", "output_tokens"):
            drawn = getattr(columns, kind)[block == index]
            expected = _median(*_source_histogram(61, index, kind))
            median = float(np.median(drawn))
            assert len(drawn) > 2_000
            assert abs(median - expected) <= 0.03 * expected + 1, (
                f"block {index} {kind}: median {median}, histogram median {expected}"
            )


def test_cli_generate(tmp_path: Path) -> None:
    """The generate command writes one line per event for the chosen client."""
    out = tmp_path / "events.jsonl"

    status = servegen.main(
        ["generate", "--out", str(out), "--days", "1", "--client", "149"]
    )

    lines = out.read_bytes().splitlines()
    assert status == 0
    assert len(lines) > 0
    assert {json.loads(line)["tenant"] for line in lines} == {"client-149"}


def test_cli_rejects_unknown_client(tmp_path: Path) -> None:
    """A client id that is not in the extract is an error, not an empty file."""
    status = servegen.main(
        ["generate", "--out", str(tmp_path / "e.jsonl"), "--client", "999"]
    )

    assert status == 2


def test_build_extract_reproduces_shipped(tmp_path: Path) -> None:
    """Building from the ServeGen release gives exactly the shipped extract."""
    source = _servegen_source()
    rebuilt = tmp_path / "servegen-m-large.json.gz"

    servegen.build_extract(source, rebuilt)

    shipped = gzip.decompress(servegen.DEFAULT_EXTRACT.read_bytes())
    assert gzip.decompress(rebuilt.read_bytes()) == shipped


def test_build_extract_rejects_empty_folder(tmp_path: Path) -> None:
    """A folder without trace files is reported, naming the expected folder."""
    with pytest.raises(servegen.ExtractError, match="chunk-N-trace.csv"):
        servegen.build_extract(tmp_path, tmp_path / "out.json.gz")


def test_demo_rules_cover_demo_tenants(extract: servegen.Extract) -> None:
    """The demo rules load and give every demo tenant Asia/Shanghai and a budget."""
    rules = load_rules(servegen.DEMO_RULES)

    for client in extract.demo_clients:
        tenant = f"client-{client}"
        budgets = rules.budgets_for(tenant)
        assert rules.timezone_of(tenant) == "Asia/Shanghai"
        assert [budget.tenant for budget in budgets] == [tenant]
    tiers = {rule.tier for rule in rules.rules}
    assert tiers == {"absolute", "rate_of_change", "predictive"}
