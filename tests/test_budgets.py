"""Absolute tier: budgets per calendar period in the tenant's time zone."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from detector.periods import period_bounds, zone
from tests.support import at, engine_for, firing, run, spend


def monthly_budget(tenant: str, timezone: str, limit_usd: str, **extra: object) -> dict:
    return {
        "tenants": [{"id": tenant, "timezone": timezone}],
        "budgets": [
            {"id": "monthly", "tenant": tenant, "limit_usd": limit_usd, **extra}
        ],
    }


def period_spend(engine, tenant: str, instant: str) -> Decimal:
    state = engine.tenants[tenant]
    total = state.period_total("monthly", "monthly", at(instant))
    return total.spend_usd


def test_tokyo_month_boundary_at_local_midnight() -> None:
    """A Tokyo month ends at 15:00 UTC, so spend on either side splits between months."""
    engine = engine_for(monthly_budget("tokyo", "Asia/Tokyo", "100"))

    records = run(
        engine,
        [
            spend("tokyo", "2026-07-31T14:59:30Z", "90"),  # July 31, 23:59:30 JST
            spend("tokyo", "2026-07-31T15:00:30Z", "20"),  # August 1, 00:00:30 JST
            spend("tokyo", "2026-08-01T00:30:00Z", "5"),
        ],
    )

    assert period_spend(engine, "tokyo", "2026-07-15T00:00:00Z") == Decimal("90")
    assert period_spend(engine, "tokyo", "2026-08-15T00:00:00Z") == Decimal("25")
    assert firing(records) == []
    start, _ = period_bounds(at("2026-08-01T00:30:00Z"), zone("Asia/Tokyo"), "monthly")
    assert start == at("2026-07-31T15:00:00Z")


def test_new_york_evening_of_last_day_is_same_month() -> None:
    """19:00 EST on February 28 is still February, so both amounts count there."""
    engine = engine_for(monthly_budget("nyc", "America/New_York", "100"))

    records = run(
        engine,
        [
            spend("nyc", "2026-02-28T23:59:30Z", "60"),
            spend("nyc", "2026-03-01T00:00:30Z", "50"),  # 19:00:30 EST, February 28
        ],
    )

    assert period_spend(engine, "nyc", "2026-02-10T00:00:00Z") == Decimal("110")
    assert len(firing(records)) == 1
    assert firing(records)[0].observed == Decimal("110")
    start, _ = period_bounds(
        at("2026-03-01T06:00:00Z"), zone("America/New_York"), "monthly"
    )
    assert start == at("2026-03-01T05:00:00Z")


def test_each_threshold_fires_once_per_period() -> None:
    """500 requests of $0.05 against $20 fire 80 % at request 320 and 100 % at 400."""
    rules = monthly_budget("small", "UTC", "20", thresholds_pct=[80, 100])
    engine = engine_for(rules)
    may_first = at("2026-05-01T00:00:00Z")
    alerts_at: list[tuple[int, str]] = []

    for number in range(1, 501):
        instant = may_first + timedelta(minutes=number)
        event = spend("small", instant.isoformat(), "0.05")
        for record in firing(engine.process(event)):
            alerts_at.append((number, record.details["threshold_pct"]))

    assert alerts_at == [(320, "80"), (400, "100")]


def test_new_period_fires_again() -> None:
    """Crossing 80 % of June's budget on June 10 fires a new alert with a new id."""
    rules = monthly_budget("small", "UTC", "20", thresholds_pct=[80, 100])
    engine = engine_for(rules)
    may = [spend("small", "2026-05-20T10:00:00Z", "20")]
    june = [spend("small", "2026-06-10T10:00:00Z", "16")]  # 80 % of $20

    may_records = run(engine, may)
    june_records = run(engine, june)

    june_firing = firing(june_records)
    assert [r.details["threshold_pct"] for r in june_firing] == ["80"]
    assert june_firing[0].period_start == at("2026-06-01T00:00:00Z")
    assert june_firing[0].alert_id not in {r.alert_id for r in may_records}
    resolved = [r for r in june_records if r.status == "resolved"]
    assert sorted(r.details["threshold_pct"] for r in resolved) == ["100", "80"]


def test_greater_or_equal_breaches_at_exact_limit() -> None:
    """With ">=", $0.10 then $0.70 reaches a $0.80 budget at the second event."""
    engine = engine_for(monthly_budget("t", "UTC", "0.80", comparison=">="))

    first = run(engine, [spend("t", "2026-05-01T10:00:00Z", "0.10")])
    second = run(engine, [spend("t", "2026-05-01T10:01:00Z", "0.70")])

    assert firing(first) == []
    assert len(firing(second)) == 1
    assert firing(second)[0].observed == Decimal("0.80")


def test_strictly_greater_does_not_breach_at_limit() -> None:
    """With ">", $0.10 then $0.20 exactly at a $0.30 budget does not breach."""
    engine = engine_for(monthly_budget("t", "UTC", "0.30", comparison=">"))

    records = run(
        engine,
        [
            spend("t", "2026-05-01T10:00:00Z", "0.10"),
            spend("t", "2026-05-01T10:01:00Z", "0.20"),
        ],
    )

    assert firing(records) == []
    assert period_spend(engine, "t", "2026-05-02T00:00:00Z") == Decimal("0.30")


def test_ten_thousand_small_amounts_sum_exactly() -> None:
    """10,000 events of $0.0001 total exactly $1.0000, with no float drift."""
    engine = engine_for(monthly_budget("t", "UTC", "1000"))
    start = at("2026-05-01T00:00:00Z")
    events = [
        spend("t", (start + timedelta(seconds=n)).isoformat(), "0.0001")
        for n in range(10_000)
    ]

    run(engine, events)

    assert period_spend(engine, "t", "2026-05-02T00:00:00Z") == Decimal("1.0000")
    assert engine.stats.spend_usd == Decimal("1.0000")


def test_duplicate_request_id_counts_once() -> None:
    """A redelivered request id adds nothing to the month-to-date total."""
    engine = engine_for(monthly_budget("t", "UTC", "100"))
    event = spend("t", "2026-05-01T10:00:00Z", "2", request_id="req-a")

    run(engine, [event, event, event])

    assert period_spend(engine, "t", "2026-05-02T00:00:00Z") == Decimal("2")
    assert engine.stats.duplicates == 2


def test_token_budget_fires_on_tokens() -> None:
    """A token budget compares the period's token count, not dollars."""
    rules = {
        "budgets": [{"id": "monthly", "limit_tokens": 1000, "thresholds_pct": [100]}]
    }
    engine = engine_for(rules)

    records = run(
        engine,
        [
            spend(
                "t", "2026-05-01T10:00:00Z", "0.01", input_tokens=500, output_tokens=0
            ),
            spend(
                "t", "2026-05-01T10:01:00Z", "0.01", input_tokens=400, output_tokens=100
            ),
        ],
    )

    assert len(firing(records)) == 1
    assert firing(records)[0].unit == "tokens"
    assert firing(records)[0].observed == Decimal(1000)


def test_budget_alert_says_what_on_call_needs() -> None:
    """The record names the tenant, budget, threshold, period and runbook."""
    rules = monthly_budget(
        "acme",
        "Europe/Berlin",
        "100",
        runbook_url="https://runbooks.example.com/budget",
    )
    engine = engine_for(rules)

    record = firing(run(engine, [spend("acme", "2026-05-03T10:00:00Z", "150")]))[0]

    assert record.tier == "absolute"
    assert record.tenant == "acme"
    assert record.rule_id == "monthly"
    assert record.threshold == Decimal("100")
    assert record.observed == Decimal("150")
    assert record.period_start == at("2026-04-30T22:00:00Z")  # May 1, 00:00 CEST
    assert record.runbook_url == "https://runbooks.example.com/budget"
    assert "$150.00" in record.summary
    assert "100% of the $100.00 budget" in record.summary


def test_alert_ids_differ_between_tenants() -> None:
    """Two tenants crossing the same budget in the same second get distinct ids."""
    engine = engine_for({"budgets": [{"id": "monthly", "limit_usd": "10"}]})

    records = run(
        engine,
        [
            spend("acme", "2026-05-04T10:00:00Z", "12"),
            spend("globex", "2026-05-04T10:00:00Z", "12"),
        ],
    )

    ids = [record.alert_id for record in firing(records)]
    assert len(ids) == 2
    assert ids[0] != ids[1]
