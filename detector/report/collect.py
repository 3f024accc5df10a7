"""Collect plot data during a replay: hourly spend per tenant and every forecast.

``ReportCollector.observe`` is the replay's observer. Each time the watermark
passes the end of an hour plus the allowed lateness (after which no event can
still join that hour), it reads the hour's total from every tenant's hourly
buckets. On its first call it wraps the engine's forecaster, so every fitted
forecast is kept, also those that raise no alert.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from detector.engine import Engine, Forecaster
from detector.events import Event
from detector.forecast import MonthEndForecast
from detector.tiers.predictive import ForecastJob
from detector.windows import COARSE_BUCKET_S

_TENANT_SERIES = ("tenant",)


@dataclass(frozen=True, slots=True)
class ForecastPoint:
    """One fitted forecast of a tenant's period-end spend."""

    last_day: date
    period_end: date
    spent_to_date_usd: Decimal
    forecast_usd: Decimal
    lower_usd: Decimal
    upper_usd: Decimal
    limit_usd: Decimal
    budget_id: str


@dataclass(slots=True)
class ReportData:
    """Hourly spend per tenant (hour start in seconds -> US dollars) and forecasts."""

    hourly_usd: dict[str, dict[int, Decimal]] = field(default_factory=dict)
    forecasts: dict[str, list[ForecastPoint]] = field(default_factory=dict)


class ReportCollector:
    """The replay observer that fills a ``ReportData``."""

    def __init__(self) -> None:
        self.data = ReportData()
        self._next_hour_s: int | None = None
        self._wrapped = False

    def observe(self, engine: Engine, event: Event) -> None:
        if not self._wrapped:
            engine.forecaster = self._recording(engine.forecaster)
            self._wrapped = True
        watermark_s = engine.watermark_s
        if watermark_s is None:
            return
        if self._next_hour_s is None:
            self._next_hour_s = watermark_s - watermark_s % COARSE_BUCKET_S
        closed_s = watermark_s - engine.settings.allowed_lateness_s
        while self._next_hour_s + COARSE_BUCKET_S <= closed_s:
            self._sample(engine, self._next_hour_s)
            self._next_hour_s += COARSE_BUCKET_S

    def finish(self, engine: Engine) -> None:
        """Sample the hours up to the watermark once the replay has ended."""
        if self._next_hour_s is None or engine.watermark_s is None:
            return
        while self._next_hour_s <= engine.watermark_s:
            self._sample(engine, self._next_hour_s)
            self._next_hour_s += COARSE_BUCKET_S

    def _sample(self, engine: Engine, hour_s: int) -> None:
        end_s = hour_s + COARSE_BUCKET_S
        for tenant, state in engine.tenants.items():
            series = state.series.get((_TENANT_SERIES, (tenant,)))
            if series is None:
                continue
            spend_usd = series.coarse_total("spend", hour_s, end_s)
            self.data.hourly_usd.setdefault(tenant, {})[hour_s] = spend_usd

    def _recording(self, forecaster: Forecaster) -> Forecaster:
        forecasts = self.data.forecasts

        def record(job: ForecastJob) -> MonthEndForecast:
            result = forecaster(job)
            point = ForecastPoint(
                last_day=job.last_day,
                period_end=job.period_end,
                spent_to_date_usd=job.spent_to_date_usd,
                forecast_usd=result.month_end_usd,
                lower_usd=result.lower_usd,
                upper_usd=result.upper_usd,
                limit_usd=job.budget.limit_usd or Decimal(0),
                budget_id=job.budget.id,
            )
            forecasts.setdefault(job.tenant, []).append(point)
            return result

        return record
