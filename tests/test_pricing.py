"""Tests for detector.pricing: cost sources, token classes, overrides, posted prices."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, localcontext
from typing import Any

import genai_prices
import pytest
from genai_prices import Usage, data_snapshot
from genai_prices.types import TieredPrices

from detector.config import PriceOverride
from detector.decode import decode_record
from detector.events import Event
from detector.pricing import CostSource, Priced, Pricer

# Monday 2025-06-02 10:00 UTC. Pricing has no windows; the date only selects
# which posted price is in force.
TIMESTAMP = datetime(2025, 6, 2, 10, 0, tzinfo=UTC)

OPENAI_STYLE = PriceOverride(
    model="fixture-gpt",
    input_per_mtok_usd=Decimal("2.50"),
    cache_read_per_mtok_usd=Decimal("1.25"),
    output_per_mtok_usd=Decimal(10),
)
ANTHROPIC_STYLE = PriceOverride(
    model="fixture-claude",
    input_per_mtok_usd=Decimal(3),
    cache_write_per_mtok_usd=Decimal("3.75"),
    cache_read_per_mtok_usd=Decimal("0.30"),
    output_per_mtok_usd=Decimal(15),
)
PLAIN = PriceOverride(
    model="fixture-plain",
    input_per_mtok_usd=Decimal(3),
    output_per_mtok_usd=Decimal(15),
)
FIXTURE_PRICES = (OPENAI_STYLE, ANTHROPIC_STYLE, PLAIN)


def _event(model: str, **fields: Any) -> Event:
    values: dict[str, Any] = {
        "timestamp": TIMESTAMP,
        "request_id": "req-1",
        "tenant": "acme",
        "provider": "openai",
        "request_model": model,
    }
    values.update(fields)
    return Event(**values)


def _fixture_pricer() -> Pricer:
    return Pricer(FIXTURE_PRICES, posted=False)


def _calc_price_usd(
    model: str,
    provider_id: str | None,
    usage: dict[str, int],
    timestamp: datetime = TIMESTAMP,
) -> Decimal:
    calculation = genai_prices.calc_price(
        Usage(**usage),
        model,
        provider_id=provider_id,
        genai_request_timestamp=timestamp,
    )
    return calculation.total_price


# --- token classes -----------------------------------------------------------


def test_openai_cached_prompt_priced_once() -> None:
    """Cache-read tokens inside the prompt count at the cache rate only."""
    event = _event(
        "fixture-gpt", input_tokens=2006, cache_read_tokens=1920, output_tokens=300
    )

    priced = _fixture_pricer().price(event)

    assert priced.source is CostSource.COMPUTED
    assert priced.cost_usd == Decimal("0.005615")
    assert priced.cost_usd != Decimal("0.010415")


def test_anthropic_cache_write_otel_event() -> None:
    """A prompt made only of cache-write tokens costs the cache-write rate."""
    event = _event(
        "fixture-claude",
        provider="anthropic",
        input_tokens=1000,
        cache_write_tokens=1000,
        output_tokens=0,
    )

    priced = _fixture_pricer().price(event)

    assert priced.source is CostSource.COMPUTED
    assert priced.cost_usd == Decimal("0.003750")
    assert priced.cost_usd != Decimal("0.006750")


@pytest.mark.parametrize(
    "exclude_cache_flag",
    [
        b', "gen_ai.usage.input_tokens_exclude_cache": true',
        b"",
    ],
    ids=["flagged", "unflagged"],
)
def test_anthropic_native_usage_decoded(exclude_cache_flag: bytes) -> None:
    """Anthropic's exclusive input count, decoded, prices the write tokens once."""
    record = (
        b'{"timestamp": "2025-06-02T10:00:00Z", "request_id": "req-1",'
        b' "tenant": "acme", "gen_ai.provider.name": "anthropic",'
        b' "gen_ai.request.model": "fixture-claude",'
        b' "gen_ai.usage.input_tokens": 0,'
        b' "gen_ai.usage.cache_creation.input_tokens": 1000,'
        b' "gen_ai.usage.output_tokens": 0' + exclude_cache_flag + b"}"
    )

    events, rejections = decode_record(record)
    priced = _fixture_pricer().price(events[0])

    assert rejections == []
    assert len(events) == 1
    assert events[0].input_tokens == 1000
    assert priced.source is CostSource.COMPUTED
    assert priced.cost_usd == Decimal("0.003750")


def test_exclusive_prompt_count_on_event() -> None:
    """An event whose prompt count is below its cache parts reads it as exclusive."""
    event = _event(
        "fixture-claude", input_tokens=0, cache_write_tokens=1000, output_tokens=0
    )

    priced = _fixture_pricer().price(event)

    assert priced.cost_usd == Decimal("0.003750")


def test_cache_tokens_without_rate_use_input_rate() -> None:
    """A model with no cache prices charges cache tokens at the input rate."""
    event = _event(
        "fixture-plain",
        input_tokens=3000,
        cache_read_tokens=1000,
        cache_write_tokens=1000,
        output_tokens=0,
    )

    priced = _fixture_pricer().price(event)

    assert priced.cost_usd == Decimal("0.009")


def test_missing_token_side_counts_as_zero() -> None:
    """A missing output or input count is zero when the other side is known."""
    input_only = _event("fixture-plain", input_tokens=1000, output_tokens=None)
    output_only = _event("fixture-plain", input_tokens=None, output_tokens=1000)
    pricer = _fixture_pricer()

    input_priced = pricer.price(input_only)
    output_priced = pricer.price(output_only)

    assert input_priced.source is CostSource.COMPUTED
    assert input_priced.cost_usd == Decimal("0.003")
    assert output_priced.source is CostSource.COMPUTED
    assert output_priced.cost_usd == Decimal("0.015")


def test_cost_keeps_every_digit() -> None:
    """Costs are exact even when the thread's Decimal precision is lowered."""
    override = PriceOverride(
        model="fixture-odd",
        input_per_mtok_usd=Decimal("0.123456789"),
        output_per_mtok_usd=Decimal("7.000000001"),
    )
    event = _event("fixture-odd", input_tokens=7, output_tokens=3)
    pricer = Pricer([override], posted=False)

    with localcontext() as context:
        context.prec = 3
        priced = pricer.price(event)

    assert priced.cost_usd == Decimal("0.000021864197526")


def test_zero_price_is_computed_not_unknown() -> None:
    """A model priced at $0 costs exactly $0 rather than an unknown amount."""
    override = PriceOverride(
        model="fixture-free",
        input_per_mtok_usd=Decimal(0),
        output_per_mtok_usd=Decimal(0),
    )
    event = _event("fixture-free", input_tokens=500, output_tokens=500)

    priced = Pricer([override], posted=False).price(event)

    assert priced == Priced(Decimal(0), CostSource.COMPUTED)


# --- reported, missing and unknown costs -------------------------------------


def test_streamed_and_reported_costs_sum() -> None:
    """A zero or missing reported cost is computed; a positive one is kept."""
    streamed = _event(
        "fixture-plain",
        input_tokens=1000,
        output_tokens=500,
        reported_cost_usd=Decimal(0),
    )
    unreported = _event("fixture-plain", input_tokens=2000, output_tokens=100)
    reported = _event(
        "fixture-plain",
        input_tokens=10,
        output_tokens=10,
        reported_cost_usd=Decimal("1.23"),
    )
    pricer = _fixture_pricer()

    results = [pricer.price(event) for event in (streamed, unreported, reported)]
    costs = [result.cost_usd for result in results]

    assert [result.source for result in results] == [
        CostSource.COMPUTED,
        CostSource.COMPUTED,
        CostSource.REPORTED,
    ]
    assert costs == [Decimal("0.0105"), Decimal("0.0075"), Decimal("1.23")]
    assert sum(cost for cost in costs if cost is not None) == Decimal("1.2480")


@pytest.mark.parametrize("reported_cost_usd", [None, Decimal(0)], ids=["none", "zero"])
def test_no_usage_cost_unknown(reported_cost_usd: Decimal | None) -> None:
    """A streamed request without usage or a positive cost has unknown cost."""
    event = _event(
        "fixture-plain",
        input_tokens=None,
        output_tokens=None,
        reported_cost_usd=reported_cost_usd,
    )

    priced = _fixture_pricer().price(event)

    assert priced == Priced(None, CostSource.NO_USAGE)


def test_unknown_model_cost_unknown() -> None:
    """A model without posted price or override has unknown cost, not $0."""
    fixture_event = _event("no-such-model", input_tokens=100, output_tokens=100)
    posted_event = _event(
        "no-such-model-zz9", provider="", input_tokens=100, output_tokens=100
    )

    fixture_priced = _fixture_pricer().price(fixture_event)
    posted_priced = Pricer().price(posted_event)

    assert fixture_priced == Priced(None, CostSource.UNKNOWN_MODEL)
    assert posted_priced == Priced(None, CostSource.UNKNOWN_MODEL)


def test_reported_cost_for_unknown_model() -> None:
    """A positive reported cost is used even when the model has no price."""
    event = _event(
        "no-such-model",
        input_tokens=None,
        output_tokens=None,
        reported_cost_usd=Decimal("0.42"),
    )

    priced = _fixture_pricer().price(event)

    assert priced == Priced(Decimal("0.42"), CostSource.REPORTED)


def test_posted_false_ignores_genai_prices() -> None:
    """With posted prices disabled a hosted model without override is unknown."""
    event = _event("gpt-4o", input_tokens=100, output_tokens=100)

    priced = Pricer(posted=False).price(event)

    assert priced == Priced(None, CostSource.UNKNOWN_MODEL)


# --- posted prices -----------------------------------------------------------


def test_posted_gpt4o_matches_calc_price() -> None:
    """Posted gpt-4o prices give the same cost as genai-prices' calc_price."""
    event = _event(
        "gpt-4o", input_tokens=2006, cache_read_tokens=1920, output_tokens=300
    )
    usage = {"input_tokens": 2006, "cache_read_tokens": 1920, "output_tokens": 300}
    expected = _calc_price_usd("gpt-4o", "openai", usage)

    priced = Pricer().price(event)

    assert priced.source is CostSource.COMPUTED
    assert priced.cost_usd == expected


@pytest.mark.parametrize("prompt_tokens", [150_000, 200_000, 250_000])
def test_posted_tiered_matches_calc_price(prompt_tokens: int) -> None:
    """A long-context prompt is priced at the tier genai-prices applies."""
    _, model_info = data_snapshot.get_snapshot().find_provider_model(
        "claude-sonnet-4-5", None, "anthropic", None
    )
    usage = {
        "input_tokens": prompt_tokens,
        "cache_read_tokens": 40_000,
        "cache_write_tokens": 10_000,
        "output_tokens": 2_000,
    }
    event = _event("claude-sonnet-4-5", provider="anthropic", **usage)
    expected = _calc_price_usd("claude-sonnet-4-5", "anthropic", usage)

    priced = Pricer().price(event)

    assert isinstance(model_info.get_prices(TIMESTAMP).input_mtok, TieredPrices)
    assert priced.source is CostSource.COMPUTED
    assert priced.cost_usd == expected


def test_posted_tier_raises_cost() -> None:
    """Crossing the 200k tier costs more per token than staying below it."""
    below = _event(
        "claude-sonnet-4-5", provider="anthropic", input_tokens=200_000, output_tokens=0
    )
    above = _event(
        "claude-sonnet-4-5", provider="anthropic", input_tokens=200_001, output_tokens=0
    )
    pricer = Pricer()

    below_cost = pricer.price(below).cost_usd
    above_cost = pricer.price(above).cost_usd

    assert below_cost is not None
    assert above_cost is not None
    assert above_cost / 200_001 > below_cost / 200_000


def test_posted_price_follows_request_date() -> None:
    """The request date selects the posted price in force that day."""
    # o3's posted price changed on 2025-06-10 (UTC).
    before = datetime(2025, 6, 9, 23, 59, tzinfo=UTC)
    after = datetime(2025, 6, 10, 0, 0, tzinfo=UTC)
    usage = {"input_tokens": 10_000, "output_tokens": 1_000}
    pricer = Pricer()

    before_priced = pricer.price(_event("o3", timestamp=before, **usage))
    after_priced = pricer.price(_event("o3", timestamp=after, **usage))

    assert before_priced.cost_usd == _calc_price_usd("o3", "openai", usage, before)
    assert after_priced.cost_usd == _calc_price_usd("o3", "openai", usage, after)
    assert before_priced.cost_usd != after_priced.cost_usd


def test_posted_price_follows_time_of_day() -> None:
    """DeepSeek's peak and off-peak prices are chosen by the request's UTC time."""
    # Peak rates apply from 00:30 to 16:30 UTC.
    peak = datetime(2025, 6, 2, 3, 0, tzinfo=UTC)
    off_peak = datetime(2025, 6, 2, 20, 0, tzinfo=UTC)
    usage = {"input_tokens": 10_000, "output_tokens": 1_000}
    pricer = Pricer()

    peak_priced = pricer.price(
        _event("deepseek-chat", provider="deepseek", timestamp=peak, **usage)
    )
    off_peak_priced = pricer.price(
        _event("deepseek-chat", provider="deepseek", timestamp=off_peak, **usage)
    )

    assert peak_priced.cost_usd == _calc_price_usd(
        "deepseek-chat", "deepseek", usage, peak
    )
    assert off_peak_priced.cost_usd == _calc_price_usd(
        "deepseek-chat", "deepseek", usage, off_peak
    )
    assert peak_priced.cost_usd != off_peak_priced.cost_usd


def test_posted_per_request_fee() -> None:
    """A posted per-request fee is added as genai-prices adds it."""
    usage = {"input_tokens": 1_000, "output_tokens": 500}
    event = _event("sonar", provider="perplexity", **usage)

    priced = Pricer().price(event)

    assert priced.cost_usd == _calc_price_usd("sonar", "perplexity", usage)


def test_empty_provider_inferred_from_model() -> None:
    """An event without provider is priced by the provider genai-prices infers."""
    usage = {"input_tokens": 1_000, "output_tokens": 500}
    event = _event("gpt-4o", provider="", **usage)

    priced = Pricer().price(event)

    assert priced.source is CostSource.COMPUTED
    assert priced.cost_usd == _calc_price_usd("gpt-4o", None, usage)


@pytest.mark.parametrize(
    ("provider", "model", "provider_id"),
    [
        ("x_ai", "grok-3", "x-ai"),
        ("gcp.gen_ai", "gemini-2.5-flash", "google"),
        ("aws.bedrock", "anthropic.claude-3-5-sonnet-20240620-v1:0", "aws"),
    ],
)
def test_otel_provider_names(provider: str, model: str, provider_id: str) -> None:
    """OpenTelemetry provider names find the matching genai-prices provider."""
    usage = {"input_tokens": 1_000, "output_tokens": 500}
    event = _event(model, provider=provider, **usage)

    priced = Pricer().price(event)

    assert priced.source is CostSource.COMPUTED
    assert priced.cost_usd == _calc_price_usd(model, provider_id, usage)


def test_unknown_provider_has_no_posted_price() -> None:
    """A self-hosted provider serving a hosted model's name is not priced."""
    event = _event("gpt-4o", provider="vllm", input_tokens=100, output_tokens=100)

    priced = Pricer().price(event)

    assert priced == Priced(None, CostSource.UNKNOWN_MODEL)


# --- overrides ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("tenant", "provider", "expected_cost_usd"),
    [
        ("acme", "openai", Decimal(4)),
        ("acme", "azure", Decimal(3)),
        ("globex", "openai", Decimal(2)),
        ("globex", "azure", Decimal(1)),
    ],
)
def test_override_precedence(
    tenant: str, provider: str, expected_cost_usd: Decimal
) -> None:
    """Tenant and provider beat tenant, which beats provider, then model alone."""
    overrides = [
        PriceOverride(model="fixture-gpt", input_per_mtok_usd=Decimal(1)),
        PriceOverride(
            model="fixture-gpt", provider="openai", input_per_mtok_usd=Decimal(2)
        ),
        PriceOverride(
            model="fixture-gpt", tenant="acme", input_per_mtok_usd=Decimal(3)
        ),
        PriceOverride(
            model="fixture-gpt",
            tenant="acme",
            provider="openai",
            input_per_mtok_usd=Decimal(4),
        ),
    ]
    event = _event(
        "fixture-gpt",
        tenant=tenant,
        provider=provider,
        input_tokens=1_000_000,
        output_tokens=0,
    )

    priced = Pricer(overrides, posted=False).price(event)

    assert priced.cost_usd == expected_cost_usd


def test_tenant_override_beats_model_wide() -> None:
    """One tenant's negotiated price leaves other tenants on the model-wide price."""
    overrides = [
        PriceOverride(model="gpt-4o", discount_pct=Decimal(10)),
        PriceOverride(model="gpt-4o", tenant="acme", discount_pct=Decimal(30)),
    ]
    usage = {"input_tokens": 2006, "cache_read_tokens": 1920, "output_tokens": 300}
    posted_usd = _calc_price_usd("gpt-4o", "openai", usage)
    pricer = Pricer(overrides)

    acme_priced = pricer.price(_event("gpt-4o", tenant="acme", **usage))
    globex_priced = pricer.price(_event("gpt-4o", tenant="globex", **usage))

    assert acme_priced.cost_usd == posted_usd * Decimal("0.7")
    assert globex_priced.cost_usd == posted_usd * Decimal("0.9")


def test_override_replaces_given_classes_only() -> None:
    """An output-only override keeps the posted input and cache prices."""
    override = PriceOverride(model="gpt-4o", output_per_mtok_usd=Decimal(8))
    event = _event(
        "gpt-4o", input_tokens=2006, cache_read_tokens=1920, output_tokens=300
    )
    posted_input_usd = genai_prices.calc_price(
        Usage(input_tokens=2006, cache_read_tokens=1920),
        "gpt-4o",
        provider_id="openai",
        genai_request_timestamp=TIMESTAMP,
    ).total_price

    priced = Pricer([override]).price(event)

    assert priced.cost_usd == posted_input_usd + Decimal("0.0024")


@pytest.mark.parametrize("prompt_tokens", [100_000, 250_000])
def test_discount_scales_posted_prices(prompt_tokens: int) -> None:
    """A discount scales every posted rate, long-context tiers included."""
    override = PriceOverride(model="claude-sonnet-4-5", discount_pct=Decimal(20))
    usage = {
        "input_tokens": prompt_tokens,
        "cache_read_tokens": 30_000,
        "cache_write_tokens": 5_000,
        "output_tokens": 1_000,
    }
    event = _event("claude-sonnet-4-5", provider="anthropic", **usage)
    posted_usd = _calc_price_usd("claude-sonnet-4-5", "anthropic", usage)

    priced = Pricer([override]).price(event)

    assert priced.source is CostSource.COMPUTED
    assert priced.cost_usd == posted_usd * Decimal("0.8")


def test_self_hosted_override_without_posted_price() -> None:
    """Input and output override prices are enough for a model without posted price."""
    override = PriceOverride(
        model="llama-3.1-70b-inhouse",
        provider="vllm",
        input_per_mtok_usd=Decimal("0.50"),
        output_per_mtok_usd=Decimal("1.50"),
    )
    event = _event(
        "llama-3.1-70b-inhouse", provider="vllm", input_tokens=4000, output_tokens=1000
    )

    priced = Pricer([override]).price(event)

    assert priced == Priced(Decimal("0.0035"), CostSource.COMPUTED)


def test_discount_without_posted_price_unknown() -> None:
    """A discount on a model without posted price leaves the cost unknown."""
    override = PriceOverride(model="fixture-unposted", discount_pct=Decimal(50))
    event = _event("fixture-unposted", input_tokens=100, output_tokens=100)

    priced = Pricer([override]).price(event)

    assert priced == Priced(None, CostSource.UNKNOWN_MODEL)


def test_duplicate_override_rejected() -> None:
    """Two overrides for the same model, provider and tenant are ambiguous."""
    overrides = [
        PriceOverride(model="gpt-4o", tenant="acme", discount_pct=Decimal(10)),
        PriceOverride(model="gpt-4o", tenant="acme", discount_pct=Decimal(20)),
    ]

    with pytest.raises(ValueError, match="defined twice"):
        Pricer(overrides)


def test_plan_cache_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """A full plan cache is cleared and prices stay correct afterwards."""
    monkeypatch.setattr("detector.pricing._MAX_PLANS", 2)
    pricer = _fixture_pricer()
    models = ["fixture-gpt", "fixture-claude", "fixture-plain", "fixture-gpt"]

    costs = [
        pricer.price(_event(model, input_tokens=1000, output_tokens=0)).cost_usd
        for model in models
    ]

    assert costs == [
        Decimal("0.0025"),
        Decimal("0.003"),
        Decimal("0.003"),
        Decimal("0.0025"),
    ]
    assert len(pricer._plans) <= 2
