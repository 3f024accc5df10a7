"""Price request events in exact Decimal dollars.

An event costs what its source reported when that is a positive amount, else its
tokens times the model's prices. Posted prices come from the genai-prices package;
price overrides from the rule files replace or discount them per model, provider and
tenant. A cost that cannot be known (no usage, no price) is ``None``, never $0, so
spend totals can count what they are missing.

genai-prices' ``calc_price`` matches the model, validates the usage and decomposes
it into units on every call, which is too slow for every event. A ``Pricer``
therefore asks genai-prices once per provider and model for the model's price entry,
turns each ``ModelPrice`` into per-token-class Decimal rates, caches them, and
prices an event with four multiplications. ``tests/benchmarks/bench_pricing.py``
compares the two: on a shared 2-core AMD EPYC, ``calc_price`` took 35 to 280
microseconds per call and ``Pricer.price`` 2.5 to 12, at least ten times less.

Token classes follow the OpenTelemetry GenAI convention that ``Event`` keeps: the
prompt count includes the cache read and cache write tokens. The uncached part is
priced at the input rate and each cache part at its own rate, so every token is
priced once. A model without a cache rate prices those tokens at the input rate, and
a class without any price costs nothing, both as genai-prices does. Long-context
tiers follow genai-prices too: once the whole prompt exceeds a tier's start, every
token of the class is priced at that tier's rate.

Costs are exact and not rounded: token counts times Decimal rates are computed in a
context that raises ``decimal.Inexact`` rather than round, so a cost keeps every
digit (``Decimal("0.00561500")`` for $0.005615). Round only for display.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import MAX_PREC, Context, Decimal, Inexact, Rounded
from enum import StrEnum

from genai_prices import data_snapshot
from genai_prices.types import ModelInfo, ModelPrice, TieredPrices

from detector.config import PriceOverride
from detector.events import Event

# Every operation below is a multiplication, an addition or a power-of-ten shift
# of finite Decimals, so it is exact at this precision. The traps turn any
# rounding into an error instead of a silently wrong amount. The explicit context
# also keeps a caller's lowered thread precision from rounding costs.
_EXACT = Context(prec=MAX_PREC, traps=[Inexact, Rounded])
_ZERO = Decimal(0)

# genai-prices resolves most OpenTelemetry ``gen_ai.provider.name`` values itself
# ("aws.bedrock", "gcp.vertex_ai", "azure.ai.openai", "mistral_ai" and the plain
# names). These well-known values it does not match (genai-prices 0.2.3).
_PROVIDER_IDS = {
    "azure.ai.inference": "azure",
    "gcp.gen_ai": "google",
    "x_ai": "x-ai",
}

# NOTE: the plan cache is cleared when it reaches this many entries, which bounds
# memory when events carry unbounded model names. The size is a guess, because a
# deployment is expected to price tens to hundreds of (tenant, provider, model).
_MAX_PLANS = 65_536


class CostSource(StrEnum):
    """Origin of a cost, or the reason it is unknown."""

    REPORTED = "reported"
    COMPUTED = "computed"
    NO_USAGE = "no_usage"
    UNKNOWN_MODEL = "unknown_model"


@dataclass(frozen=True, slots=True)
class Priced:
    """The cost of one event in USD, not rounded, or ``None`` when it is unknown."""

    cost_usd: Decimal | None
    source: CostSource


_NO_USAGE = Priced(None, CostSource.NO_USAGE)
_UNKNOWN_MODEL = Priced(None, CostSource.UNKNOWN_MODEL)


@dataclass(frozen=True, slots=True)
class _Rate:
    """A price per million tokens of one class, with its long-context tiers."""

    base_per_mtok_usd: Decimal
    # (start_tokens, per_mtok_usd) pairs in ascending start order.
    tiers: tuple[tuple[int, Decimal], ...] = ()

    @classmethod
    def from_posted(cls, price: Decimal | TieredPrices) -> _Rate:
        if isinstance(price, TieredPrices):
            tiers = tuple((tier.start, tier.price) for tier in price.tiers)
            return cls(price.base, tiers)
        return cls(price)

    def at(self, prompt_tokens: int) -> Decimal:
        """Return the rate for a request whose whole prompt has ``prompt_tokens``."""
        for start, price in reversed(self.tiers):
            if prompt_tokens > start:
                return price
        return self.base_per_mtok_usd

    def scaled(self, factor: Decimal) -> _Rate:
        tiers = tuple(
            (start, _EXACT.multiply(price, factor)) for start, price in self.tiers
        )
        return _Rate(_EXACT.multiply(self.base_per_mtok_usd, factor), tiers)


@dataclass(frozen=True, slots=True)
class _Rates:
    """The rates of every token class of one model at one point in time."""

    input: _Rate
    cache_read: _Rate
    cache_write: _Rate
    output: _Rate
    per_request_usd: Decimal = _ZERO
    # Base rates in the order (input, cache_read, cache_write, output) and the
    # lowest tier start, precomputed so an untiered request skips the tier search.
    base: tuple[Decimal, Decimal, Decimal, Decimal] = field(init=False)
    first_tier_start: int | None = field(init=False)

    def __post_init__(self) -> None:
        rates = (self.input, self.cache_read, self.cache_write, self.output)
        base = tuple(rate.base_per_mtok_usd for rate in rates)
        starts = [rate.tiers[0][0] for rate in rates if rate.tiers]
        object.__setattr__(self, "base", base)
        object.__setattr__(self, "first_tier_start", min(starts) if starts else None)

    def at(self, prompt_tokens: int) -> tuple[Decimal, Decimal, Decimal, Decimal]:
        """Return the four rates for a request whose prompt has ``prompt_tokens``."""
        if self.first_tier_start is None or prompt_tokens <= self.first_tier_start:
            return self.base
        return (
            self.input.at(prompt_tokens),
            self.cache_read.at(prompt_tokens),
            self.cache_write.at(prompt_tokens),
            self.output.at(prompt_tokens),
        )

    def cost_usd(self, event: Event) -> Decimal:
        """Compute the cost of an event that reported usage."""
        prompt_tokens = event.input_tokens or 0
        cache_read_tokens = event.cache_read_tokens
        cache_write_tokens = event.cache_write_tokens
        uncached_tokens = prompt_tokens - cache_read_tokens - cache_write_tokens
        if uncached_tokens < 0:
            # A prompt count smaller than its own cache parts excludes them, the
            # same reading detector.decode applies to wire events.
            uncached_tokens = prompt_tokens
            prompt_tokens += cache_read_tokens + cache_write_tokens

        input_rate, read_rate, write_rate, output_rate = self.at(prompt_tokens)
        multiply, add = _EXACT.multiply, _EXACT.add
        total = add(
            add(
                multiply(uncached_tokens, input_rate),
                multiply(cache_read_tokens, read_rate),
            ),
            add(
                multiply(cache_write_tokens, write_rate),
                multiply(event.output_tokens or 0, output_rate),
            ),
        )
        return add(total.scaleb(-6, _EXACT), self.per_request_usd)


def _build_rates(
    posted: ModelPrice | None, override: PriceOverride | None
) -> _Rates | None:
    """Merge posted prices and an override; ``None`` when no class has a price."""
    rates = _posted_rates(posted)
    per_request_usd = _per_request_usd(posted)

    if override is not None and override.discount_pct is not None:
        factor = (Decimal(100) - override.discount_pct).scaleb(-2, _EXACT)
        rates = {name: rate.scaled(factor) for name, rate in rates.items()}
        per_request_usd = _EXACT.multiply(per_request_usd, factor)
    elif override is not None:
        rates.update(_override_rates(override))

    input_rate = rates.get("input")
    output_rate = rates.get("output")
    if input_rate is None and output_rate is None:
        return None
    input_rate = input_rate or _Rate(_ZERO)
    return _Rates(
        input=input_rate,
        cache_read=rates.get("cache_read", input_rate),
        cache_write=rates.get("cache_write", input_rate),
        output=output_rate or _Rate(_ZERO),
        per_request_usd=per_request_usd,
    )


def _posted_rates(posted: ModelPrice | None) -> dict[str, _Rate]:
    # TODO: events carry no modality, cache TTL or service tier, so audio and
    # image tokens are priced as text, 1-hour cache writes at the 5-minute rate,
    # and batch or priority tiers at the standard price. Adding those fields to
    # Event and passing them to genai-prices ends this.
    if posted is None:
        return {}
    prices = {
        "input": posted.input_mtok,
        "cache_read": posted.cache_read_mtok,
        "cache_write": posted.cache_write_mtok,
        "output": posted.output_mtok,
    }
    return {
        name: _Rate.from_posted(price)
        for name, price in prices.items()
        if price is not None
    }


def _per_request_usd(posted: ModelPrice | None) -> Decimal:
    """Return the posted fee per request (a few models charge one, per thousand)."""
    fee_per_thousand = posted.requests_kcount if posted is not None else None
    if isinstance(fee_per_thousand, Decimal):
        return fee_per_thousand.scaleb(-3, _EXACT)
    return _ZERO


def _override_rates(override: PriceOverride) -> dict[str, _Rate]:
    prices = {
        "input": override.input_per_mtok_usd,
        "cache_read": override.cache_read_per_mtok_usd,
        "cache_write": override.cache_write_per_mtok_usd,
        "output": override.output_per_mtok_usd,
    }
    return {name: _Rate(price) for name, price in prices.items() if price is not None}


@dataclass(slots=True)
class _Plan:
    """The rates for one (tenant, provider, model), fixed or chosen by request time."""

    fixed: _Rates | None
    # Set when the posted price depends on the request time.
    model_info: ModelInfo | None = None
    override: PriceOverride | None = None
    # Rates per resolved ModelPrice, keyed by id(); the tuple keeps the object
    # alive so its id is never reused.
    by_price_id: dict[int, tuple[ModelPrice, _Rates | None]] = field(
        default_factory=dict
    )

    def rates_at(self, timestamp: datetime) -> _Rates | None:
        if self.model_info is None:
            return self.fixed

        # genai-prices evaluates the date and time-of-day constraints, which costs
        # far less than calc_price. A cache keyed by UTC date would be wrong for
        # time-of-day prices such as DeepSeek's off-peak rates, so only the Decimal
        # rates are cached, per resolved ModelPrice.
        model_price = self.model_info.get_prices(timestamp)
        entry = self.by_price_id.get(id(model_price))
        if entry is None:
            entry = (model_price, _build_rates(model_price, self.override))
            self.by_price_id[id(model_price)] = entry
        return entry[1]


# (provider, tenant) with None for "any"; lookup order is most specific first.
_OverrideKey = tuple[str | None, str | None]


class Pricer:
    """Price events from reported costs, posted prices and price overrides.

    Overrides match the event's model exactly and, when they name them, its
    provider and tenant. The most specific match wins: tenant and provider, then
    tenant, then provider, then the model alone. ``posted=False`` disables
    genai-prices, so only overrides price anything.

    The posted prices come from the genai-prices data snapshot that is current
    when the ``Pricer`` is built. Build a new one to pick up an updated snapshot.
    """

    def __init__(
        self, overrides: Sequence[PriceOverride] = (), *, posted: bool = True
    ) -> None:
        self._overrides = _index_overrides(overrides)
        self._models_with_tenant_overrides = frozenset(
            model
            for model, entries in self._overrides.items()
            if any(tenant is not None for _, tenant in entries)
        )
        self._snapshot = data_snapshot.get_snapshot() if posted else None
        self._plans: dict[tuple[str, str, str], _Plan] = {}

    def price(self, event: Event) -> Priced:
        """Return the cost of one event and where it came from."""
        reported_cost_usd = event.reported_cost_usd
        if reported_cost_usd is not None and reported_cost_usd > 0:
            return Priced(reported_cost_usd, CostSource.REPORTED)
        # A reported cost of 0 comes from streamed responses that never sent a
        # cost, so it is recomputed from tokens; without tokens it is unknown.
        if not event.has_usage:
            return _NO_USAGE

        model = event.model
        tenant = event.tenant if model in self._models_with_tenant_overrides else ""
        key = (tenant, event.provider, model)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plan(*key)

        rates = plan.rates_at(event.timestamp)
        if rates is None:
            return _UNKNOWN_MODEL
        return Priced(rates.cost_usd(event), CostSource.COMPUTED)

    def _plan(self, tenant: str, provider: str, model: str) -> _Plan:
        override = self._find_override(tenant, provider, model)
        model_info = self._find_posted(provider, model)
        if model_info is None:
            plan = _Plan(_build_rates(None, override))
        elif isinstance(model_info.prices, ModelPrice):
            plan = _Plan(_build_rates(model_info.prices, override))
        else:
            plan = _Plan(None, model_info, override)

        if len(self._plans) >= _MAX_PLANS:
            self._plans.clear()
        self._plans[(tenant, provider, model)] = plan
        return plan

    def _find_override(
        self, tenant: str, provider: str, model: str
    ) -> PriceOverride | None:
        entries = self._overrides.get(model)
        if not entries:
            return None
        for key in ((provider, tenant), (None, tenant), (provider, None), (None, None)):
            if key in entries:
                return entries[key]
        return None

    def _find_posted(self, provider: str, model: str) -> ModelInfo | None:
        """Return genai-prices' entry for the model, or ``None`` when it has none.

        An empty provider lets genai-prices infer it from the model name. A
        provider genai-prices does not know, such as a self-hosted server, has no
        posted prices even when the model name matches a hosted model.
        """
        if self._snapshot is None:
            return None
        provider_id = _PROVIDER_IDS.get(provider, provider) or None
        try:
            _, model_info = self._snapshot.find_provider_model(
                model, None, provider_id, None
            )
        except LookupError:
            return None
        return model_info


def _index_overrides(
    overrides: Sequence[PriceOverride],
) -> dict[str, dict[_OverrideKey, PriceOverride]]:
    """Index overrides by model, then by (provider, tenant); reject duplicates."""
    index: dict[str, dict[_OverrideKey, PriceOverride]] = {}
    for override in overrides:
        entries = index.setdefault(override.model, {})
        key = (override.provider, override.tenant)
        if key in entries:
            raise ValueError(
                f"price override for model {override.model!r}, provider "
                f"{override.provider!r} and tenant {override.tenant!r} is defined "
                "twice; keep one entry per model, provider and tenant"
            )
        entries[key] = override
    return index
