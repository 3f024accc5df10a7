"""Per-tenant state: windowed series, period totals, daily totals, seen ids, alerts.

Events are keyed by tenant, so everything the evaluators need for one tenant
lives in one ``TenantState``. That is the unit the service keeps in a durable
table and moves between workers when a partition moves.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from detector.lifecycle import Lifecycle
from detector.periods import Period, local_date, local_midnight, period_bounds
from detector.windows import BucketSeries, SignalPlan

SeriesId = tuple[tuple[str, ...], tuple[str, ...]]
_ZERO = Decimal(0)
_NO_SERIES: dict[SeriesId, BucketSeries] = {}


@dataclass(slots=True)
class PeriodTotal:
    """Spend and tokens of one budget period, with the thresholds already fired."""

    start: datetime
    end: datetime
    spend_usd: Decimal = _ZERO
    tokens: int = 0
    fired_pct: set[Decimal] = field(default_factory=set)
    start_s: int = 0
    end_s: int = 0

    def __post_init__(self) -> None:
        self.start_s = int(self.start.timestamp())
        self.end_s = int(self.end.timestamp())

    def value(self, signal: str) -> Decimal:
        return self.spend_usd if signal == "spend" else Decimal(self.tokens)


@dataclass(slots=True)
class Retention:
    """How long each structure keeps data, in seconds or days."""

    fine_s: int
    coarse_s: int
    daily_days: int
    dedup_s: int
    dedup_max_ids: int
    rolling_windows_s: tuple[int, ...] = ()
    # Rolling windows of each series spec, for the specs a rule reads and the
    # per-tenant spec. A series keeps running totals only for its own rules'
    # windows. Specs not listed use ``rolling_windows_s``.
    rolling_windows_by_spec: dict[tuple[str, ...], tuple[int, ...]] = field(
        default_factory=dict
    )
    # Latency and ratio state per series spec, for the specs whose rules read it.
    signal_plans: dict[tuple[str, ...], SignalPlan] = field(default_factory=dict)


class TenantState:
    """Everything the core keeps for one tenant."""

    __slots__ = (
        "_current",
        "_day",
        "alerts",
        "applied_offset",
        "budget_alert_end_s",
        "daily_usd",
        "evaluated_s",
        "fitted_day",
        "periods",
        "retention",
        "seen_ids",
        "series",
        "series_by_spec",
        "tenant",
        "timezone",
    )

    def __init__(self, tenant: str, timezone: ZoneInfo, retention: Retention) -> None:
        self.tenant = tenant
        self.timezone = timezone
        self.retention = retention
        self.series: dict[SeriesId, BucketSeries] = {}
        # The same series grouped by spec, so an evaluator visits only its own.
        self.series_by_spec: dict[tuple[str, ...], dict[SeriesId, BucketSeries]] = {}
        # Budget id -> period start -> totals. The previous period stays so that
        # a late event from it is still counted where it belongs.
        self.periods: dict[str, dict[datetime, PeriodTotal]] = {}
        self.daily_usd: dict[date, Decimal] = {}
        self.seen_ids: OrderedDict[str, int] = OrderedDict()
        self.alerts = Lifecycle(tenant)
        self.fitted_day: dict[str, date] = {}
        # The earliest end of a period with a firing budget alert, for resolving.
        self.budget_alert_end_s: int | None = None
        # The last tick evaluated for this tenant. A restored tenant skips ticks
        # it already evaluated before its snapshot, so nothing fires twice.
        self.evaluated_s = 0
        # The offset of the last source record applied, for services that read
        # a log: a redelivered record at or below it is skipped.
        self.applied_offset = -1
        self._current: dict[str, PeriodTotal] = {}
        self._day: tuple[int, int, date] = (0, 0, date.min)

    def is_duplicate(self, request_id: str, timestamp_s: int) -> bool:
        """Record a request id and return whether it was already seen."""
        if request_id in self.seen_ids:
            return True
        self.seen_ids[request_id] = timestamp_s
        if len(self.seen_ids) > self.retention.dedup_max_ids:
            self.seen_ids.popitem(last=False)
        return False

    def series_for(self, series_id: SeriesId) -> BucketSeries:
        series = self.series.get(series_id)
        if series is None:
            retention = self.retention
            spec = series_id[0]
            series = self.series[series_id] = BucketSeries(
                retention.fine_s,
                retention.coarse_s,
                retention.rolling_windows_by_spec.get(spec, retention.rolling_windows_s),
                retention.signal_plans.get(spec),
            )
            self.series_by_spec.setdefault(spec, {})[series_id] = series
        return series

    def series_of(self, spec: tuple[str, ...]) -> dict[SeriesId, BucketSeries]:
        """Return the series of one spec, such as (tenant, model), by id."""
        return self.series_by_spec.get(spec, _NO_SERIES)

    def period_total_s(
        self, budget_id: str, period: Period, instant_s: int
    ) -> PeriodTotal:
        """Return the totals of the budget period containing ``instant_s``."""
        current = self._current.get(budget_id)
        if current is not None and current.start_s <= instant_s < current.end_s:
            return current
        total = self.period_total(budget_id, period, datetime.fromtimestamp(instant_s, UTC))
        if current is None or total.start_s >= current.start_s:
            self._current[budget_id] = total
        return total

    def period_total(
        self, budget_id: str, period: Period, instant: datetime
    ) -> PeriodTotal:
        """Return the totals of the budget period containing ``instant``."""
        periods = self.periods.setdefault(budget_id, {})
        for total in periods.values():
            if total.start <= instant < total.end:
                return total
        start, end = period_bounds(instant, self.timezone, period)
        total = periods[start] = PeriodTotal(start, end)
        if len(periods) > 2:
            del periods[min(periods)]
        return total

    def add_daily(self, instant_s: int, cost_usd: Decimal) -> None:
        """Add spend to the tenant-local calendar day containing ``instant_s``."""
        start_s, end_s, day = self._day
        if not start_s <= instant_s < end_s:
            day = local_date(datetime.fromtimestamp(instant_s, UTC), self.timezone)
            start_s = int(local_midnight(day, self.timezone).timestamp())
            end_s = int(local_midnight(day + timedelta(days=1), self.timezone).timestamp())
            self._day = (start_s, end_s, day)
        self.daily_usd[day] = self.daily_usd.get(day, _ZERO) + cost_usd

    def prune(self, watermark_s: int, today: date) -> None:
        """Drop everything older than its retention."""
        for series in self.series.values():
            series.prune(watermark_s)
        cutoff_s = watermark_s - self.retention.dedup_s
        while self.seen_ids:
            oldest_id, seen_s = next(iter(self.seen_ids.items()))
            if seen_s >= cutoff_s:
                break
            del self.seen_ids[oldest_id]
        oldest_day = today.toordinal() - self.retention.daily_days
        for day in [day for day in self.daily_usd if day.toordinal() < oldest_day]:
            del self.daily_usd[day]
