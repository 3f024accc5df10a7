"""End to end: real ServeGen-derived traffic through the demo rules.

Every firing alert's reason is recomputed from the input events with plain
arithmetic written here, independent of the engine: prices are the demo's
documented $1.60 / $6.40 per million input / output tokens.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from detector.alerts import AlertRecord, format_console
from detector.backtest import replay
from detector.demo import servegen
from detector.forecast import forecast_period_end
from detector.ruleload import load_rules

INPUT_USD_PER_TOKEN = Decimal("1.60") / 1_000_000
OUTPUT_USD_PER_TOKEN = Decimal("6.40") / 1_000_000
SHANGHAI = ZoneInfo("Asia/Shanghai")
# Tenants that alert in the demo for real reasons, plus two that stay quiet.
CLIENTS = (20, 50, 61, 62, 73, 90, 104, 120, 159, 161, 7, 12)

Spend = list[tuple[datetime, Decimal]]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[AlertRecord], dict[str, Spend]]:
    """Replay 14 days of the chosen clients and keep each tenant's priced input."""
    events_path = tmp_path_factory.mktemp("demo") / "events.jsonl"
    lines = list(servegen.generate_events(clients=CLIENTS))
    events_path.write_bytes(b"\n".join(lines) + b"\n")
    spend: dict[str, Spend] = defaultdict(list)
    for line in lines:
        event = json.loads(line)
        cost = (
            event["gen_ai.usage.input_tokens"] * INPUT_USD_PER_TOKEN
            + event["gen_ai.usage.output_tokens"] * OUTPUT_USD_PER_TOKEN
        )
        spend[event["tenant"]].append((datetime.fromisoformat(event["timestamp"]), cost))

    result = replay(load_rules(servegen.DEMO_RULES), [events_path])

    assert sum(result.rejected.values()) == 0
    return result.records, spend


def total(spend: Spend, start: datetime, end: datetime) -> Decimal:
    return sum((cost for at, cost in spend if start <= at < end), Decimal(0))


def firing(records: list[AlertRecord], tier: str) -> list[AlertRecord]:
    return [r for r in records if r.status == "firing" and r.tier == tier]


def test_every_tier_fires(demo_run) -> None:
    """Budget, threshold, rate-of-change and forecast alerts all fire on real traffic."""
    records, _ = demo_run

    tiers = {r.tier for r in records if r.status == "firing"}
    rules = {r.rule_id for r in records if r.status == "firing"}

    assert tiers == {"absolute", "rate_of_change", "predictive"}
    assert {"monthly-spend", "hourly-spend-high", "spend-spike", "month-end-forecast"} <= rules


def test_budget_alerts_match_input(demo_run) -> None:
    """Each budget alert fires at the request whose running total crosses it."""
    records, spend = demo_run
    budget_alerts = [r for r in firing(records, "absolute") if r.rule_id == "monthly-spend"]

    assert budget_alerts
    for record in budget_alerts:
        assert record.period_start is not None and record.threshold is not None
        upto = [(at, c) for at, c in spend[record.tenant] if at <= record.event_time]
        running = total(upto, record.period_start, record.event_time + timedelta(seconds=1))
        before = running - upto[-1][1]
        assert running == record.observed, record.summary
        assert record.observed >= record.threshold, record.summary
        assert before < record.threshold, record.summary


def test_hourly_threshold_alerts_match_input(demo_run) -> None:
    """Each hourly-spend alert's total is the input's spend in its 60-minute window."""
    records, spend = demo_run
    hourly = [r for r in firing(records, "absolute") if r.rule_id == "hourly-spend-high"]

    assert hourly
    for record in hourly:
        # The window ends with the event's minute; at the event, only events up
        # to and including it are in.
        minute = record.event_time.replace(second=0, microsecond=0)
        start = minute + timedelta(minutes=1) - timedelta(hours=1)
        upto = [(at, c) for at, c in spend[record.tenant] if at <= record.event_time]
        window_usd = total(upto, start, record.event_time + timedelta(seconds=1))
        assert window_usd == record.observed, record.summary
        assert record.observed >= Decimal(4), record.summary


def test_rate_of_change_alerts_match_input(demo_run) -> None:
    """Each spike's hour matches the input and clears the rule's ratio and floor.

    The baseline is the same hour a week earlier, capped by the 90th percentile
    hour of its day (so it can only be lower than the plain estimate), or in the
    first week a trimmed mean hour of the trailing day at twice the ratio.
    """
    records, spend = demo_run
    spikes = firing(records, "rate_of_change")

    assert spikes
    for record in spikes:
        end = record.event_time
        current = total(spend[record.tenant], end - timedelta(hours=1), end)
        assert current == record.observed, record.summary
        assert record.baseline is not None
        warmup = record.details["warmup"] == "true"
        if not warmup:
            week_ago = hourly_estimate(spend[record.tenant], end - timedelta(days=7, hours=1))
            assert record.baseline <= week_ago + Decimal("1e-9"), record.summary
        ratio = 4 if warmup else 2
        assert current >= ratio * record.baseline, record.summary
        assert current - record.baseline >= 1, record.summary


def hourly_estimate(spend: Spend, start: datetime) -> Decimal:
    """Estimate the spend in one hour from hourly sums, pro rata at the edges."""
    first_hour = start.replace(minute=0, second=0, microsecond=0)
    estimate = Decimal(0)
    for offset in (0, 1):
        hour = first_hour + timedelta(hours=offset)
        overlap_s = (min(start + timedelta(hours=1), hour + timedelta(hours=1)) - max(start, hour)).total_seconds()
        if overlap_s > 0:
            in_hour = total(spend, hour, hour + timedelta(hours=1))
            estimate += in_hour * int(overlap_s) / 3600 if overlap_s < 3600 else in_hour
    return estimate


def test_forecast_alerts_match_input(demo_run) -> None:
    """Each forecast uses the input's month-to-date and daily totals in Shanghai time."""
    records, spend = demo_run
    forecasts = firing(records, "predictive")

    assert forecasts
    for record in forecasts:
        tenant_spend = spend[record.tenant]
        month_start = datetime(2026, 3, 1, tzinfo=SHANGHAI)
        spent = total(tenant_spend, month_start, record.event_time)
        daily = daily_totals(tenant_spend, record.event_time)
        today = record.event_time.astimezone(SHANGHAI).date()
        yesterday = today - timedelta(days=1)
        # Between weekly refits the engine updates the parameters of its last fit,
        # which ended on fitted_through.
        fitted = None
        history = daily[-14:]
        if "fitted_through" in record.details:
            fitted_through = date.fromisoformat(record.details["fitted_through"])
            if fitted_through < yesterday:
                refit_history = daily[: len(daily) - (yesterday - fitted_through).days]
                fitted = forecast_period_end(
                    refit_history[-14:], fitted_through, date(2026, 3, 31), Decimal(0)
                ).fitted
                assert fitted is not None, record.summary
                history = daily[-((yesterday - fitted.first_day).days + 1):]
        expected = forecast_period_end(
            history, yesterday, date(2026, 3, 31), spent,
            interval_pct=80, history_days=14, fitted=fitted,
        )
        assert spent == record.observed, record.summary
        assert record.forecast == expected.month_end_usd, record.summary
        assert record.forecast_lower == expected.lower_usd, record.summary
        assert record.threshold is not None
        assert expected.lower_usd >= record.threshold, record.summary


def daily_totals(spend: Spend, before: datetime) -> list[Decimal]:
    """Return complete Shanghai days from the first active day, idle days as zeros."""
    by_day: dict[date, Decimal] = defaultdict(Decimal)
    for at, cost in spend:
        if at < before:
            by_day[at.astimezone(SHANGHAI).date()] += cost
    last = before.astimezone(SHANGHAI).date() - timedelta(days=1)
    day = min(by_day)
    days = []
    while day <= last:
        days.append(by_day.get(day, Decimal(0)))
        day += timedelta(days=1)
    return days


def test_demo_extract_is_shipped() -> None:
    """The demo runs from files inside the package, not from the shared data."""
    assert Path(servegen.DEFAULT_EXTRACT).is_file()
    assert servegen.DEFAULT_EXTRACT.is_relative_to(Path(servegen.__file__).parent)
    assert datetime(2026, 3, 16, tzinfo=SHANGHAI).astimezone(UTC).hour == 16


def test_readme_sample_lines_come_from_demo(demo_run) -> None:
    """The alert lines the README shows are lines this replay prints."""
    records, _ = demo_run
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    block = readme.split("```text\n", 1)[1].split("```", 1)[0]

    printed = {format_console(record) for record in records}

    for line in block.strip().splitlines():
        assert line in printed, line
