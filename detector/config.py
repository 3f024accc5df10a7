"""The rule file schema: tenants, budgets, alert rules and price overrides.

Every model is frozen and rejects unknown fields, so a typo in a rule file fails
at load instead of silently meaning something else. Field validators check one
value; ``RuleSet`` checks the references between entries. ``detector.ruleload``
reads the YAML and turns validation errors into ``file:line:column`` messages.
"""

from __future__ import annotations

import re
from decimal import Decimal
from functools import cached_property
from itertools import pairwise
from typing import TYPE_CHECKING, Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    HttpUrl,
    PrivateAttr,
    field_validator,
    model_validator,
)

from detector.periods import WEEKDAYS, PeriodSpec, Weekday
from detector.windows import QUANTILE_SIGNALS, RATIO_SIGNALS, measure_key

_DURATION_UNITS_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^(\d+)([smhdw])$")


def parse_duration_s(value: object) -> int:
    """Parse ``"90s"``, ``"15m"``, ``"1h"``, ``"1d"`` or ``"1w"`` into seconds."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        match = _DURATION.match(value.strip())
        if match:
            return int(match.group(1)) * _DURATION_UNITS_S[match.group(2)]
    shown = repr(value) if isinstance(value, str) else str(value)
    raise ValueError(
        f"invalid duration {shown}: use a whole number with s, m, h, d or w, "
        "for example 15m"
    )


def _check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r}: use an IANA name such as Europe/Berlin"
        ) from None
    return name


def _check_id(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.:-]*", value):
        raise ValueError(
            f"invalid id {value!r}: use letters, digits, '.', '_', ':' or '-'"
        )
    return value


DurationS = Annotated[int, BeforeValidator(parse_duration_s), Field(ge=1)]
TimeZone = Annotated[str, AfterValidator(_check_timezone)]
RuleId = Annotated[str, AfterValidator(_check_id)]
Money = Annotated[Decimal, Field(ge=0, allow_inf_nan=False)]
Comparison = Literal[">=", ">"]
Severity = Literal["critical", "error", "warning", "info"]
SeriesKey = Literal["tenant", "feature", "route", "model", "provider", "region"]
Signal = Literal[
    "spend",
    "tokens",
    "requests",
    "ttft_ms",
    "inter_token_ms",
    "max_inter_token_gap_ms",
    "output_tokens_per_s",
    "duration_ms",
    "error_rate",
    "refusal_rate",
    "cache_hit_rate",
]
# Threshold rules on latency and ratio signals may also fire on a low value,
# such as a cache hit rate or a token rate that falls under its floor.
ThresholdComparison = Literal[">=", ">", "<=", "<"]

ALL_TENANTS = "*"


class FieldError(ValueError):
    """A failed check across fields that blames one field, named by its YAML key.

    ``detector.ruleload`` reports it at that key's line, or at the entry's first
    line when the key is missing from the file.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Tenant(_Frozen):
    """A billed tenant and the time zone its calendar periods follow."""

    id: RuleId
    timezone: TimeZone = "UTC"
    labels: dict[str, str] = Field(default_factory=dict)


class GatewayPolicy(_Frozen):
    """The decisions the budget API returns to a gateway as a budget fills up.

    Percentages are of the budget's limit in the current period. A gateway is
    told to warn from ``warn_at_pct`` (or when the forecast of the period's
    total reaches the limit and ``warn_on_forecast`` is set), to switch each
    model in ``degrade_to`` to its smaller model from ``degrade_at_pct``, and to
    reject requests from ``block_at_pct``. Unset levels never apply.
    """

    warn_at_pct: Annotated[Decimal, Field(gt=0, le=1000)] | None = Decimal(80)
    degrade_at_pct: Annotated[Decimal, Field(gt=0, le=1000)] | None = None
    block_at_pct: Annotated[Decimal, Field(gt=0, le=1000)] | None = None
    degrade_to: dict[str, str] = Field(default_factory=dict)
    warn_on_forecast: bool = True

    @model_validator(mode="after")
    def _ordered(self) -> GatewayPolicy:
        levels = [
            (name, value)
            for name, value in (
                ("warn_at_pct", self.warn_at_pct),
                ("degrade_at_pct", self.degrade_at_pct),
                ("block_at_pct", self.block_at_pct),
            )
            if value is not None
        ]
        for (low_name, low), (high_name, high) in pairwise(levels):
            if low > high:
                raise FieldError(
                    low_name,
                    f"{low_name} {low} is above {high_name} {high}: "
                    "levels must rise from warn to degrade to block"
                )
        if self.degrade_at_pct is not None and not self.degrade_to:
            raise FieldError(
                "degrade_to",
                "degrade_at_pct is set but degrade_to is empty: map each model "
                "to its smaller model, for example {gpt-4o: gpt-4o-mini}"
            )
        return self


class Budget(_Frozen):
    """A spend or token limit per calendar period for one tenant or for all.

    Periods start at local midnight in the tenant's time zone. ``weekly`` periods
    start on ``week_start`` (default monday, as ISO weeks do). ``monthly`` periods
    start on ``anchor_day`` (default 1, the calendar month). In a month with fewer
    days than the anchor they start on its last day, so anchor 31 starts periods
    on 28 or 29 February and 30 April. ``detector.periods`` computes the bounds.
    """

    id: RuleId
    tenant: str = ALL_TENANTS
    period: Literal["daily", "weekly", "monthly"] = "monthly"
    anchor_day: Annotated[int, Field(ge=1, le=31)] | None = None
    week_start: Weekday | None = None
    limit_usd: Money | None = None
    limit_tokens: Annotated[int, Field(ge=0)] | None = None
    thresholds_pct: tuple[Annotated[Decimal, Field(gt=0, le=1000)], ...] = (
        Decimal(100),
    )
    comparison: Comparison = ">="
    severity: Severity = "critical"
    runbook_url: HttpUrl | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    gateway: GatewayPolicy = Field(default_factory=lambda: GatewayPolicy())
    _threshold_values: tuple[tuple[Decimal, Decimal], ...] = PrivateAttr(default=())
    _period_spec: PeriodSpec = PrivateAttr(default=PeriodSpec("monthly"))

    @model_validator(mode="after")
    def _period_fields(self) -> Budget:
        if self.anchor_day is not None and self.period != "monthly":
            raise FieldError(
                "anchor_day",
                f"anchor_day is set but period is {self.period}: anchor_day applies "
                "to monthly periods only, so remove it or set period: monthly"
            )
        if self.week_start is not None and self.period != "weekly":
            raise FieldError(
                "week_start",
                f"week_start is set but period is {self.period}: week_start applies "
                "to weekly periods only, so remove it or set period: weekly"
            )
        return self

    @model_validator(mode="after")
    def _one_limit(self) -> Budget:
        if self.limit_usd is not None and self.limit_tokens is not None:
            raise ValueError("limit_usd and limit_tokens are both set: keep one")
        if self.limit_usd is None and self.limit_tokens is None:
            raise ValueError("missing limit: set limit_usd or limit_tokens")
        return self

    @field_validator("thresholds_pct")
    @classmethod
    def _sorted_unique(cls, value: tuple[Decimal, ...]) -> tuple[Decimal, ...]:
        if not value:
            raise ValueError("thresholds_pct must list at least one percentage")
        if len(set(value)) != len(value):
            shown = ", ".join(str(pct) for pct in value)
            raise ValueError(
                f"thresholds_pct [{shown}] repeats a value: list each percentage once"
            )
        return tuple(sorted(value))

    def model_post_init(self, context: object) -> None:
        # Threshold values in the budget's unit, computed once: the hot path
        # compares against them on every event.
        self._threshold_values = tuple(
            (pct, self.limit * pct / 100) for pct in self.thresholds_pct
        )
        self._period_spec = PeriodSpec(
            self.period,
            anchor_day=self.anchor_day or 1,
            week_start=WEEKDAYS.index(self.week_start or "monday"),
        )

    @property
    def period_spec(self) -> PeriodSpec:
        """The period with its anchor day and week start, for ``detector.periods``."""
        return self._period_spec

    @property
    def threshold_values(self) -> tuple[tuple[Decimal, Decimal], ...]:
        """Each threshold as (percentage, value in dollars or tokens)."""
        return self._threshold_values

    @property
    def signal(self) -> Signal:
        return "spend" if self.limit_usd is not None else "tokens"

    @property
    def limit(self) -> Decimal:
        """The limit in the signal's unit: dollars or tokens."""
        if self.limit_usd is not None:
            return self.limit_usd
        return Decimal(self.limit_tokens or 0)


class _RuleBase(_Frozen):
    id: RuleId
    tenants: tuple[str, ...] = (ALL_TENANTS,)
    severity: Severity = "warning"
    runbook_url: HttpUrl | None = None
    summary: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    repeat_interval_s: DurationS | None = Field(default=None, alias="repeat_interval")
    keep_firing_for_s: Annotated[int, BeforeValidator(parse_duration_s), Field(ge=0)] = (
        Field(default=0, alias="keep_firing_for")
    )

    def applies_to(self, tenant: str) -> bool:
        return ALL_TENANTS in self.tenants or tenant in self.tenants


Quantile = Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)]
MinRequests = Annotated[int, Field(ge=1)]


class _WindowedRule(_RuleBase):
    """Checks and keys of the rules that read a signal over a window.

    A latency signal is summarised by ``quantile`` (0.95 is the p95). A latency
    or ratio value counts only when the window contains at least ``min_requests``
    requests that report it. Ratio signals must set it, because a single failed
    request is an error rate of 100 %. Each subclass declares the fields, so
    they follow ``signal`` in the order that error messages list fields.
    """

    if TYPE_CHECKING:
        signal: Signal
        quantile: float | None
        min_requests: int | None

    @model_validator(mode="after")
    def _signal_options(self) -> _WindowedRule:
        signal = self.signal
        if signal in QUANTILE_SIGNALS and self.quantile is None:
            raise FieldError(
                "quantile",
                f"missing required field 'quantile' for signal {signal}: add "
                "quantile: 0.95 (above 0 and at most 1) for the p95",
            )
        if signal not in QUANTILE_SIGNALS and self.quantile is not None:
            raise FieldError(
                "quantile",
                f"quantile {self.quantile} is set but signal is {signal}: quantile "
                f"applies to {', '.join(QUANTILE_SIGNALS)} only, so remove it"
            )
        if signal in RATIO_SIGNALS and self.min_requests is None:
            raise FieldError(
                "min_requests",
                f"missing required field 'min_requests' for signal {signal}: add the "
                "fewest requests a window must hold before its ratio counts, for "
                "example min_requests: 20",
            )
        if self.min_requests is not None and not self.measured:
            raise FieldError(
                "min_requests",
                f"min_requests {self.min_requests} is set but signal is {signal}: "
                "min_requests applies to latency and ratio signals only, so remove it"
            )
        return self

    @property
    def measured(self) -> bool:
        """Whether the signal is a latency or ratio signal rather than a total."""
        return self.signal in QUANTILE_SIGNALS or self.signal in RATIO_SIGNALS

    @cached_property
    def measure(self) -> str:
        """The key that ``detector.windows`` reads the rule's value by."""
        # Cached because every check per event reads it.
        return measure_key(self.signal, self.quantile, self.min_requests)

    @property
    def signal_label(self) -> str:
        """The signal as alert texts show it: ``p95 ttft_ms``, ``error_rate``, ``spend``."""
        if self.quantile is None:
            return self.signal
        percent = format((Decimal(str(self.quantile)) * 100).normalize(), "f")
        return f"p{percent} {self.signal}"


class ThresholdRule(_WindowedRule):
    """Absolute tier: a windowed total, quantile or ratio against a fixed threshold."""

    tier: Literal["absolute"]
    signal: Signal = "spend"
    quantile: Quantile | None = None
    min_requests: MinRequests | None = None
    series: tuple[SeriesKey, ...] = ("tenant",)
    window_s: DurationS = Field(alias="window")
    threshold: Annotated[Decimal, Field(ge=0, allow_inf_nan=False)]
    comparison: ThresholdComparison = ">="
    for_s: Annotated[int, BeforeValidator(parse_duration_s), Field(ge=0)] = Field(
        default=0, alias="for"
    )
    severity: Severity = "critical"

    @model_validator(mode="after")
    def _threshold_fits_signal(self) -> ThresholdRule:
        if self.comparison in ("<=", "<") and not self.measured:
            raise FieldError(
                "comparison",
                f"comparison {self.comparison!r} is set but signal is {self.signal}: "
                "a total is checked as it rises, so use >= or >; a falling total "
                "is a rate_of_change rule with direction: down"
            )
        if self.signal in RATIO_SIGNALS and self.threshold > 1:
            raise FieldError(
                "threshold",
                f"threshold {self.threshold} is above 1 but {self.signal} is a ratio "
                "from 0 to 1: write 5 % as 0.05"
            )
        return self


class RateOfChangeRule(_WindowedRule):
    """Rate-of-change tier: a windowed total against the same window in past weeks.

    The baseline is the median of the same interval ``baseline_weeks`` weeks back,
    one week apart, so the time of day and the day of week line up. The alert
    needs both a ratio and an absolute increase, so tiny amounts never fire.
    """

    tier: Literal["rate_of_change"]
    signal: Signal = "spend"
    quantile: Quantile | None = None
    min_requests: MinRequests | None = None
    series: tuple[SeriesKey, ...] = ("tenant",)
    window_s: DurationS = Field(alias="window")
    baseline_weeks: Annotated[int, Field(ge=1, le=8)] = 1
    min_ratio: Annotated[Decimal, Field(gt=1, allow_inf_nan=False)]
    min_increase: Annotated[Decimal, Field(ge=0, allow_inf_nan=False)]
    for_s: Annotated[int, BeforeValidator(parse_duration_s), Field(ge=0)] = Field(
        default=0, alias="for"
    )
    evaluate_every_s: DurationS = Field(default=60, alias="evaluate_every")
    # "up" fires on a rise (spend, latency), "down" on a fall (a stalled source).
    direction: Literal["up", "down"] = "up"
    # A firing alert resolves only once the ratio falls below this level (default:
    # min_ratio), so a value hovering at min_ratio does not flap.
    clear_ratio: Annotated[Decimal, Field(ge=1, allow_inf_nan=False)] | None = None
    # The spacing of the earlier windows; ``baseline_weeks`` counts them.
    baseline_period_s: Annotated[
        int, BeforeValidator(parse_duration_s), Field(ge=60, le=604800)
    ] = Field(default=604800, alias="baseline_period")
    # Warm-up (less than one baseline period of history) compares with the
    # trailing day and needs this ratio (default: twice min_ratio).
    warmup_min_ratio: Annotated[Decimal, Field(gt=1, allow_inf_nan=False)] | None = None
    # Back-to-back windows just before the current one that join the earlier
    # periods' windows in the baseline median (0: the periods alone).
    recent_windows: Annotated[int, Field(ge=0, le=24)] = 0
    # "joined": one median of the periods' and the recent windows. "separate":
    # the change must hold against the periods' median and against the recent
    # windows' median, so neither a return to the usual level after a quiet
    # spell nor a level reached days ago fires.
    recent_baseline: Literal["joined", "separate"] = "joined"
    # The change must also be at least this many robust standard deviations of
    # the baseline windows (1.4826 x their median absolute deviation).
    min_deviations: Annotated[Decimal, Field(gt=0, allow_inf_nan=False)] | None = None

    @model_validator(mode="after")
    def _rate_levels(self) -> RateOfChangeRule:
        if self.clear_ratio is not None and self.clear_ratio > self.min_ratio:
            raise FieldError(
                "clear_ratio",
                f"clear_ratio {self.clear_ratio} is above min_ratio {self.min_ratio}: "
                "the clear level must be at or below the firing level"
            )
        if self.baseline_period_s < self.window_s:
            raise FieldError(
                "baseline_period",
                f"baseline_period {self.baseline_period_s}s is shorter than window "
                f"{self.window_s}s: the earlier windows would overlap"
            )
        span_s = self.baseline_weeks * self.baseline_period_s
        if self.recent_windows * self.window_s > span_s:
            raise FieldError(
                "recent_windows",
                f"recent_windows {self.recent_windows} of {self.window_s}s reach "
                f"further back than the {span_s}s of baseline history that is "
                "kept: use fewer recent windows or more baseline periods"
            )
        return self

    @property
    def clear_level(self) -> Decimal:
        """The ratio below which a firing alert resolves."""
        return self.clear_ratio if self.clear_ratio is not None else self.min_ratio

    @property
    def warmup_ratio(self) -> Decimal:
        """The ratio a series in warm-up needs against its trailing-day level."""
        if self.warmup_min_ratio is not None:
            return self.warmup_min_ratio
        return 2 * self.min_ratio


class ForecastRule(_RuleBase):
    """Predictive tier: the month-end spend forecast compared with a budget."""

    tier: Literal["predictive"]
    budget: RuleId
    interval_pct: Annotated[int, Field(ge=50, le=99)] = 80
    edge: Literal["lower", "mean", "upper"] = "upper"
    history_days: Annotated[int, Field(ge=14, le=366)] = 56
    model: Literal["additive", "multiplicative"] = "additive"


Rule = Annotated[
    ThresholdRule | RateOfChangeRule | ForecastRule, Field(discriminator="tier")
]


class PriceOverride(_Frozen):
    """A negotiated or self-hosted price that replaces the posted one.

    Either set the per-million-token prices, which replace the posted prices of
    the classes given, or a discount that scales every posted price.
    """

    model: str
    provider: str | None = None
    tenant: str | None = None
    input_per_mtok_usd: Money | None = None
    output_per_mtok_usd: Money | None = None
    cache_read_per_mtok_usd: Money | None = None
    cache_write_per_mtok_usd: Money | None = None
    discount_pct: Annotated[Decimal, Field(ge=0, le=100)] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> PriceOverride:
        has_prices = any(
            price is not None
            for price in (
                self.input_per_mtok_usd,
                self.output_per_mtok_usd,
                self.cache_read_per_mtok_usd,
                self.cache_write_per_mtok_usd,
            )
        )
        if has_prices and self.discount_pct is not None:
            raise ValueError("per-token prices and discount_pct are both set: keep one")
        if not has_prices and self.discount_pct is None:
            raise ValueError(
                "missing price: set per-token prices (input_per_mtok_usd, ...) "
                "or discount_pct"
            )
        return self


class Defaults(_Frozen):
    timezone: TimeZone = "UTC"


class RuleFile(_Frozen):
    """The content of one rule file; every section is optional.

    The ``routing`` section belongs to the notification policies and is
    validated by ``routing.config``; the detector only carries it along.
    """

    defaults: Defaults | None = None
    tenants: tuple[Tenant, ...] = ()
    budgets: tuple[Budget, ...] = ()
    rules: tuple[Rule, ...] = ()
    prices: tuple[PriceOverride, ...] = ()
    routing: dict[str, object] | None = None


class RuleSet(_Frozen):
    """All rule files of a folder, merged and cross-checked."""

    defaults: Defaults = Field(default_factory=Defaults)
    tenants: tuple[Tenant, ...] = ()
    budgets: tuple[Budget, ...] = ()
    rules: tuple[Rule, ...] = ()
    prices: tuple[PriceOverride, ...] = ()

    @model_validator(mode="after")
    def _references(self) -> RuleSet:
        _unique("tenants", [tenant.id for tenant in self.tenants])
        _unique("budgets", [f"{b.id} for tenant {b.tenant}" for b in self.budgets])
        _unique("rules", [rule.id for rule in self.rules])
        budget_ids = {budget.id for budget in self.budgets}
        for index, rule in enumerate(self.rules):
            if isinstance(rule, ForecastRule) and rule.budget not in budget_ids:
                raise ValueError(
                    f"rules[{index}] {rule.id}: budget {rule.budget!r} is not "
                    f"defined; known budgets: {sorted(budget_ids) or 'none'}"
                )
        return self

    def timezone_of(self, tenant: str) -> str:
        for entry in self.tenants:
            if entry.id == tenant:
                return entry.timezone
        return self.defaults.timezone

    def budgets_for(self, tenant: str) -> list[Budget]:
        """Return the budgets of a tenant.

        A budget written for the tenant replaces the ``*`` budget with the same
        id; ``*`` budgets with other ids apply as well.
        """
        own = [budget for budget in self.budgets if budget.tenant == tenant]
        own_ids = {budget.id for budget in own}
        shared = [
            budget
            for budget in self.budgets
            if budget.tenant == ALL_TENANTS and budget.id not in own_ids
        ]
        return own + shared

    def budget(self, budget_id: str, tenant: str) -> Budget | None:
        for budget in self.budgets_for(tenant):
            if budget.id == budget_id:
                return budget
        return None


def _unique(section: str, ids: list[str]) -> None:
    seen: set[str] = set()
    for value in ids:
        if value in seen:
            raise ValueError(f"{section}: id {value!r} is defined twice")
        seen.add(value)
