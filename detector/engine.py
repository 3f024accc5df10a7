"""The core: events in, alert records out, driven by event time.

``Engine.process`` prices an event, drops it if its request id was already seen,
adds it to the tenant's windows, periods and daily totals, and checks the tiers
that can fire on an event (budgets and windowed thresholds). Evaluations that
depend on time rather than on an event (rate of change, forecasts, resolves, the
end of a period) run on ticks: a grid of event-time instants every ``tick_s``.
Before an event is applied, every grid point up to its timestamp is evaluated,
so a replay evaluates exactly the instants the live service evaluates. The live
service also calls ``advance_to`` from a wall clock, so a quiet tenant's alert
does not wait for the next event.

Late events: an event more than ``allowed_lateness_s`` behind the watermark (the
largest event time seen) is counted as late and left out of the windows, whose
evaluations have already run; it still counts in its period and daily totals.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from detector import snapshot
from detector.alerts import AlertRecord
from detector.config import (
    Budget,
    ForecastRule,
    RateOfChangeRule,
    RuleSet,
    ThresholdRule,
)
from detector.events import Event
from detector.forecast import FittedModel, MonthEndForecast
from detector.periods import zone
from detector.pricing import CostSource, Pricer
from detector.state import Retention, SeriesId, TenantState
from detector.tiers import budget, predictive, rate, removed, threshold
from detector.tiers.common import series_id
from detector.tiers.rate import WEEK_S
from detector.windows import FINE_BUCKET_S, Sample, SignalPlan

_ZERO = Decimal(0)
_HOUR_S = 3600
_DAY_S = 86400
# Windows up to this length are read from minute buckets, longer ones from
# hourly buckets.
_SHORT_WINDOW_MAX_S = 6 * _HOUR_S
# Forecast fits are planned on this grid: every time zone offset in use is a
# multiple of 15 minutes, so no local midnight is missed.
_FORECAST_GRID_S = 900
# During a stretch without any event, evaluate on this coarser grid: nothing
# new can cross a threshold, only resolves and periods move.
_IDLE_GRID_S = 900


@dataclass(frozen=True, slots=True)
class EngineSettings:
    """Tuning that is not part of the rules, with units in the names."""

    tick_s: int = 60
    allowed_lateness_s: int = 300
    dedup_horizon_s: int = _DAY_S
    dedup_max_ids_per_tenant: int = 1_000_000


@dataclass(slots=True)
class EngineStats:
    """Counters a run reports at the end; the service exports them as metrics."""

    events: int = 0
    duplicates: int = 0
    late: int = 0
    cost_sources: Counter[str] = field(default_factory=Counter)
    unknown_models: Counter[str] = field(default_factory=Counter)
    alerts: Counter[tuple[str, str]] = field(default_factory=Counter)
    forecasts: int = 0
    forecast_fallbacks: int = 0
    # Fallback steps by code (detector.forecast.FALLBACK_CODES).
    forecast_fallback_reasons: Counter[str] = field(default_factory=Counter)
    spend_usd: Decimal = _ZERO


Forecaster = Callable[[predictive.ForecastJob], MonthEndForecast]


@dataclass(frozen=True, slots=True)
class _TenantPlan:
    """The rules that apply to one tenant, resolved once."""

    budgets: list[Budget]
    hot_budgets: list[budget.HotBudget]
    thresholds: list[ThresholdRule]
    rates: list[RateOfChangeRule]
    forecasts: list[tuple[ForecastRule, Budget]]

    @classmethod
    def build(cls, rules: RuleSet, tenant: str) -> _TenantPlan:
        applying = [rule for rule in rules.rules if rule.applies_to(tenant)]
        forecasts = []
        for rule in applying:
            if isinstance(rule, ForecastRule):
                limit = rules.budget(rule.budget, tenant)
                if limit is not None:
                    forecasts.append((rule, limit))
        return cls(
            budgets=rules.budgets_for(tenant),
            hot_budgets=[budget.HotBudget.of(b) for b in rules.budgets_for(tenant)],
            thresholds=[r for r in applying if isinstance(r, ThresholdRule)],
            rates=[r for r in applying if isinstance(r, RateOfChangeRule)],
            forecasts=forecasts,
        )


class Engine:
    """Windowed state and the three tiers for every tenant of one rule set."""

    def __init__(
        self,
        rules: RuleSet,
        pricer: Pricer,
        settings: EngineSettings | None = None,
        forecaster: Forecaster | None = None,
        *,
        defer_forecasts: bool = False,
    ) -> None:
        self.rules = rules
        self.pricer = pricer
        self.settings = settings or EngineSettings()
        self.forecaster: Forecaster = forecaster or predictive.ForecastJob.run
        self.stats = EngineStats()
        self.tenants: dict[str, TenantState] = {}
        self.watermark_s: int | None = None
        self._next_tick_s: int | None = None
        self._last_event_s: int | None = None
        self._index_rules(rules)
        # With deferred forecasts the caller runs each fit where it likes (an
        # executor) and hands the result back through ``apply_forecast``.
        self.defer_forecasts = defer_forecasts
        self.pending_forecasts: list[tuple[predictive.ForecastJob, datetime]] = []
        # Tenant -> rule id -> parameters of the last accepted fit, which the next
        # forecast updates cheaply until it is due for a refit. Kept in memory
        # only: after a restart each tenant's first forecast is a refit.
        self.fitted_models: dict[str, dict[str, FittedModel]] = {}
        # Tenants whose state changed since the caller last took this set.
        self.touched: set[str] = set()

    def process(self, event: Event) -> list[AlertRecord]:
        """Apply one event and return the records it and the ticks before it produced."""
        timestamp_s = int(event.timestamp.timestamp())
        records: list[AlertRecord] = []
        if self._next_tick_s is None or timestamp_s >= self._next_tick_s:
            records = self.advance_to_s(timestamp_s)
        elif self.watermark_s is None or timestamp_s > self.watermark_s:
            self.watermark_s = timestamp_s
        state = self.tenants.get(event.tenant) or self._new_state(event.tenant)
        if state.is_duplicate(event.request_id, timestamp_s):
            self.stats.duplicates += 1
            return records

        self.stats.events += 1
        self._last_event_s = timestamp_s
        self.touched.add(event.tenant)
        cost_usd = self._price(event)
        tokens = (event.input_tokens or 0) + (event.output_tokens or 0)
        assert self.watermark_s is not None
        late = timestamp_s < self.watermark_s - self.settings.allowed_lateness_s
        if late:
            self.stats.late += 1
        else:
            sample: Sample | None = None
            for spec in self._specs:
                series = state.series_for(series_id(event, spec))
                series.add(timestamp_s, cost_usd or _ZERO, tokens)
                if series.plan is not None:
                    sample = sample or Sample(event)
                    series.add_signals(timestamp_s, sample)

        plan = self._plan_of(event.tenant)
        fired = budget.add_and_check(
            state, plan.hot_budgets, event.timestamp, timestamp_s, cost_usd, tokens
        )
        if cost_usd is not None:
            state.add_daily(timestamp_s, cost_usd)
        if not late and plan.thresholds:
            fired.extend(
                self._check_thresholds(state, plan.thresholds, event, timestamp_s)
            )
        if fired:
            records.extend(self._counted(fired))
        return records

    def advance_to(self, instant: datetime) -> list[AlertRecord]:
        """Evaluate every tick up to ``instant``; the service calls this from a clock."""
        return self.advance_to_s(int(instant.timestamp()))

    def advance_to_s(self, instant_s: int) -> list[AlertRecord]:
        """Evaluate every tick up to ``instant_s`` and move the watermark there."""
        tick_s = self.settings.tick_s
        if self._next_tick_s is None:
            self._next_tick_s = instant_s - instant_s % tick_s + tick_s
        records: list[AlertRecord] = []
        while self._next_tick_s <= instant_s:
            records.extend(self._tick(self._next_tick_s))
            self._next_tick_s += self._tick_step(self._next_tick_s, instant_s)
        if self.watermark_s is None or instant_s > self.watermark_s:
            self.watermark_s = instant_s
        return self._counted(records)

    def _tick_step(self, tick_at_s: int, target_s: int) -> int:
        """Return the step to the next tick: coarser across a long stretch of no events."""
        idle_s = tick_at_s - (self._last_event_s or tick_at_s)
        if (
            idle_s >= _HOUR_S
            and target_s - tick_at_s > _IDLE_GRID_S
            and tick_at_s % _IDLE_GRID_S == 0
        ):
            return _IDLE_GRID_S
        return self.settings.tick_s

    def _tick(self, tick_at_s: int) -> list[AlertRecord]:
        now = datetime.fromtimestamp(tick_at_s, UTC)
        records: list[AlertRecord] = []
        forecast_due = tick_at_s % _FORECAST_GRID_S == 0
        for state in self.tenants.values():
            if tick_at_s <= state.evaluated_s:
                continue
            state.evaluated_s = tick_at_s
            plan = self._plan_of(state.tenant)
            end_s = state.budget_alert_end_s
            produced = len(records)
            if end_s is not None and end_s <= tick_at_s:
                records.extend(budget.resolve_ended(state, plan.budgets, now))
            if state.alerts.alerts:
                records.extend(threshold.check_on_tick(state, self._threshold_rules, now))
            for rule in plan.rates:
                if tick_at_s % rule.evaluate_every_s == 0:
                    records.extend(rate.evaluate(state, rule, now))
            if forecast_due and plan.forecasts:
                records.extend(self._forecast(state, plan, now))
            if len(records) > produced:
                self.touched.add(state.tenant)
            if tick_at_s % _HOUR_S == 0:
                state.prune(tick_at_s, now.astimezone(state.timezone).date())
        return records

    def _forecast(
        self, state: TenantState, plan: _TenantPlan, now: datetime
    ) -> list[AlertRecord]:
        records: list[AlertRecord] = []
        for rule, limit in plan.forecasts:
            if state.alerts.alerts:
                records.extend(predictive.close_ended(state, rule, limit, now))
            fitted = self.fitted_models.get(state.tenant, {}).get(rule.id)
            job = predictive.plan(state, rule, limit, now, fitted)
            if job is None:
                continue
            self.touched.add(state.tenant)
            if self.defer_forecasts:
                self.pending_forecasts.append((job, now))
                continue
            records.extend(self._conclude(job, self.forecaster(job), now))
        return records

    def apply_forecast(
        self, job: predictive.ForecastJob, result: MonthEndForecast, now: datetime
    ) -> list[AlertRecord]:
        """Compare a finished fit with its budget; a moved tenant is ignored."""
        return self._counted(self._conclude(job, result, now))

    def _conclude(
        self, job: predictive.ForecastJob, result: MonthEndForecast, now: datetime
    ) -> list[AlertRecord]:
        state = self.tenants.get(job.tenant)
        if state is None:
            return []
        self.stats.forecasts += 1
        self.stats.forecast_fallbacks += result.fallback_reason is not None
        self.stats.forecast_fallback_reasons.update(result.fallbacks)
        fitted = self.fitted_models.setdefault(job.tenant, {})
        if result.fitted is not None:
            fitted[job.rule.id] = result.fitted
        else:
            fitted.pop(job.rule.id, None)
        self.touched.add(job.tenant)
        record = predictive.conclude(state, job, result, now)
        return [record] if record is not None else []

    def _check_thresholds(
        self,
        state: TenantState,
        rules: list[ThresholdRule],
        event: Event,
        timestamp_s: int,
    ) -> list[AlertRecord]:
        # A slightly late event is checked against the window that ends at the
        # watermark, which holds both it and everything after it.
        instant, instant_s = event.timestamp, timestamp_s
        if self.watermark_s is not None and self.watermark_s > timestamp_s:
            instant_s = self.watermark_s
            instant = datetime.fromtimestamp(instant_s, UTC)
        records = []
        ids: dict[tuple[str, ...], SeriesId] = {}
        for rule in rules:
            series = ids.get(rule.series)
            if series is None:
                series = ids[rule.series] = series_id(event, rule.series)
            record = threshold.check_on_event(state, rule, series, instant, instant_s)
            if record is not None:
                records.append(record)
        return records

    def _price(self, event: Event) -> Decimal | None:
        priced = self.pricer.price(event)
        self.stats.cost_sources[priced.source] += 1
        if priced.source == CostSource.UNKNOWN_MODEL:
            self.stats.unknown_models[f"{event.provider or '?'}/{event.model}"] += 1
        if priced.cost_usd is not None:
            self.stats.spend_usd += priced.cost_usd
        return priced.cost_usd

    def dump_tenant(self, tenant: str) -> bytes:
        """Return the snapshot of one tenant's state for a durable table."""
        return snapshot.dump_tenant(self.tenants[tenant])

    def load_tenant(self, data: bytes) -> str:
        """Restore one tenant's state from a snapshot and return the tenant."""
        state = snapshot.load_tenant(data, self._retention)
        self.tenants[state.tenant] = state
        return state.tenant

    def replace_rules(self, rules: RuleSet) -> list[AlertRecord]:
        """Swap in a new rule set, keep every tenant's state, return resolved alerts.

        Windows, period totals, daily totals and firing alerts carry over. Each
        tenant's plan is rebuilt on first use. Retention follows the new rules:
        a shorter one prunes at the next hourly prune, a longer one keeps data
        from now on (data already pruned does not come back). A firing budget
        threshold that the period total no longer reaches, because the limit
        was raised, resolves now, and its record is returned. An alert that no
        new rule evaluates for its tenant (its rule or budget was removed,
        renamed, moved to another tier, scoped away from the tenant or given
        other series) is dropped, and if it was firing it resolves now with a
        record that gives the reason (``detector.tiers.removed``).
        """
        previous = self.rules
        self.rules = rules
        self.pricer = Pricer(rules.prices, posted=self.pricer._snapshot is not None)
        self._index_rules(rules)
        now = datetime.fromtimestamp(self._reload_time_s(), UTC)
        records: list[AlertRecord] = []
        for state in self.tenants.values():
            self._apply_retention(state)
            state.timezone = zone(rules.timezone_of(state.tenant))
            open_alerts = len(state.alerts.alerts)
            closed = removed.close(state, previous, rules, now)
            plan = self._plan_of(state.tenant)
            resolved = budget.resolve_uncrossed(state, plan.budgets, now)
            if resolved or len(state.alerts.alerts) < open_alerts:
                self.touched.add(state.tenant)
            records.extend(closed)
            records.extend(resolved)
        return self._counted(records)

    def _reload_time_s(self) -> int:
        """Return the event time of the records a reload produces: the watermark.

        Tenants restored from snapshots before any event have no watermark yet,
        so their latest evaluated tick is used instead.
        """
        if self.watermark_s is not None:
            return self.watermark_s
        return max((state.evaluated_s for state in self.tenants.values()), default=0)

    def _index_rules(self, rules: RuleSet) -> None:
        """Group the rules by tier, derive specs and retention, and reset tenant plans."""
        self._threshold_rules = {
            rule.id: rule for rule in rules.rules if isinstance(rule, ThresholdRule)
        }
        self._rate_rules = [r for r in rules.rules if isinstance(r, RateOfChangeRule)]
        self._forecast_rules = [r for r in rules.rules if isinstance(r, ForecastRule)]
        self._specs = {("tenant",)} | {
            rule.series
            for rule in rules.rules
            if isinstance(rule, ThresholdRule | RateOfChangeRule)
        }
        self._retention = _retention(rules, self.settings)
        # Built per tenant on first use by ``_plan_of``.
        self._plans: dict[str, _TenantPlan] = {}

    def _apply_retention(self, state: TenantState) -> None:
        retention = self._retention
        state.retention = retention
        for (spec, _), series in state.series.items():
            series.fine_retention_s = retention.fine_s
            series.coarse_retention_s = retention.coarse_s
            series.set_plan(retention.signal_plans.get(spec))
            # A rolling window no rule needs is dropped. A new window length is
            # summed from fine buckets, which is exact, until the series is new.
            needed = retention.rolling_windows_by_spec.get(spec, retention.rolling_windows_s)
            for window_s in list(series.rolling):
                if window_s not in needed:
                    del series.rolling[window_s]

    def drop_tenant(self, tenant: str) -> None:
        """Forget a tenant whose partition moved to another worker."""
        self.tenants.pop(tenant, None)
        self.fitted_models.pop(tenant, None)

    def _new_state(self, tenant: str) -> TenantState:
        timezone = zone(self.rules.timezone_of(tenant))
        state = self.tenants[tenant] = TenantState(tenant, timezone, self._retention)
        return state

    def _plan_of(self, tenant: str) -> _TenantPlan:
        plan = self._plans.get(tenant)
        if plan is None:
            plan = self._plans[tenant] = _TenantPlan.build(self.rules, tenant)
        return plan

    def _counted(self, records: list[AlertRecord]) -> list[AlertRecord]:
        for record in records:
            self.stats.alerts[(record.tier, record.status)] += 1
        return records


def _retention(rules: RuleSet, settings: EngineSettings) -> Retention:
    """Size every structure from the rules: nothing is kept longer than a rule needs."""
    short_windows = [
        rule.window_s
        for rule in rules.rules
        if isinstance(rule, ThresholdRule | RateOfChangeRule)
        and rule.window_s <= _SHORT_WINDOW_MAX_S
    ]
    fine_s = max([2 * _HOUR_S, *short_windows]) + settings.allowed_lateness_s
    baselines = [
        rule.baseline_weeks * WEEK_S + rule.window_s + _HOUR_S
        for rule in rules.rules
        if isinstance(rule, RateOfChangeRule)
    ]
    windows = [r.window_s for r in rules.rules if isinstance(r, ThresholdRule)]
    coarse_s = max([8 * _DAY_S, *baselines, *windows]) + settings.allowed_lateness_s
    histories = [r.history_days for r in rules.rules if isinstance(r, ForecastRule)]
    return Retention(
        signal_plans=_signal_plans(rules, settings, fine_s),
        rolling_windows_s=tuple(sorted(set(short_windows))),
        rolling_windows_by_spec=_rolling_windows_by_spec(rules),
        fine_s=fine_s,
        coarse_s=coarse_s,
        daily_days=max([31, *histories]) + 31,
        dedup_s=settings.dedup_horizon_s,
        dedup_max_ids=settings.dedup_max_ids_per_tenant,
    )


def _rolling_windows_by_spec(rules: RuleSet) -> dict[tuple[str, ...], tuple[int, ...]]:
    """Return the window lengths of up to 6 hours that each spec's rules read.

    The per-tenant series exists for every tenant, so it gets an entry even when
    no rule reads it, and then keeps no running totals.
    """
    by_spec: dict[tuple[str, ...], set[int]] = {("tenant",): set()}
    for rule in rules.rules:
        if isinstance(rule, ThresholdRule | RateOfChangeRule):
            windows = by_spec.setdefault(rule.series, set())
            if rule.window_s <= _SHORT_WINDOW_MAX_S:
                windows.add(rule.window_s)
    return {spec: tuple(sorted(windows)) for spec, windows in by_spec.items()}


def _signal_plans(
    rules: RuleSet, settings: EngineSettings, fine_s: int
) -> dict[tuple[str, ...], SignalPlan]:
    """Plan latency and ratio state for each series spec whose rules read it.

    Fine buckets cover the longest such window of up to 6 hours plus the allowed
    lateness. A spec with a rate-of-change rule keeps them as long as the totals
    do (``fine_s``), because that tier reads earlier windows from fine buckets
    that far back. Hourly buckets are kept only for
    rate-of-change baselines and for longer windows, and only as far back as
    those need.
    """
    by_spec: dict[tuple[str, ...], list[ThresholdRule | RateOfChangeRule]] = {}
    for rule in rules.rules:
        if isinstance(rule, ThresholdRule | RateOfChangeRule) and rule.measured:
            by_spec.setdefault(rule.series, []).append(rule)
    plans = {}
    lateness_s = settings.allowed_lateness_s
    for spec, measured in by_spec.items():
        short = sorted({r.window_s for r in measured if r.window_s <= _SHORT_WINDOW_MAX_S})
        hourly = [
            r.baseline_weeks * r.baseline_period_s + r.window_s + _HOUR_S
            for r in measured
            if isinstance(r, RateOfChangeRule)
        ]
        hourly_for_rate = bool(hourly)
        hourly += [r.window_s + _HOUR_S for r in measured if r.window_s > _SHORT_WINDOW_MAX_S]
        plans[spec] = SignalPlan(
            sketch_signals=tuple(sorted({r.signal for r in measured if r.quantile})),
            windows_s=tuple(short),
            fine_retention_s=fine_s
            if hourly_for_rate
            else max(short, default=0) + lateness_s + FINE_BUCKET_S,
            coarse_retention_s=max(hourly) + lateness_s if hourly else 0,
        )
    return plans
