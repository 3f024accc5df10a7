"""Alerts that a rules reload leaves without a rule, and how they close.

Each tier re-evaluates only the lifecycle keys that its current rules build for
a tenant. A reload can remove a rule or budget, rename it, move it to another
tier, scope it away from a tenant or change its series. No rule then builds the
old keys, so their alerts would stay open, and so would the incidents at the
receivers. ``close`` drops those alerts. A pending one goes without a record.
A firing one resolves with a record built from the rule as it was before the
reload, so the record carries the severity, labels and series that routed the
firing record.

A windowed rule that is gone is no longer evaluated, so its record has no
observed value: ``observed`` is 0 and ``details["observed"]`` is ``"unknown"``,
which the notification formatters show instead of the 0. Budget and forecast
records show the period's total, which the state still contains.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from detector.alerts import UNIT_OF_SIGNAL, UNKNOWN_OBSERVED, AlertRecord, Unit
from detector.config import (
    Budget,
    ForecastRule,
    RateOfChangeRule,
    RuleSet,
    ThresholdRule,
)
from detector.lifecycle import AlertState
from detector.state import PeriodTotal, TenantState
from detector.tiers import predictive
from detector.tiers.common import series_labels, split_key

_Rule = ThresholdRule | RateOfChangeRule | ForecastRule

_ZERO = Decimal(0)
_HUNDRED = Decimal(100)
# The key prefixes of the tier modules and the rule type that builds each.
_BUDGET_PREFIX = "budget"
_RULE_TYPES: dict[str, type[_Rule]] = {
    "absolute": ThresholdRule,
    "rate": RateOfChangeRule,
    "forecast": ForecastRule,
}


def close(
    state: TenantState, old: RuleSet, new: RuleSet, now: datetime
) -> list[AlertRecord]:
    """Drop the tenant's alerts that no rule of ``new`` evaluates, and resolve the firing ones.

    ``old`` is the rule set the alerts fired under. An alert whose rule ``old``
    does not contain either (a tenant restored from a snapshot taken under
    other rules) is kept, because without the rule the record could not be
    routed to the receivers of the firing one.
    """
    old_rules = {rule.id: rule for rule in old.rules}
    new_rules = {rule.id: rule for rule in new.rules}
    records: list[AlertRecord] = []
    for key, alert in list(state.alerts.alerts.items()):
        prefix, rule_id, *rest = split_key(key)
        if prefix == _BUDGET_PREFIX:
            record = _close_budget(state, alert, key, rule_id, rest, old, new, now)
        elif prefix in _RULE_TYPES:
            rule = old_rules.get(rule_id)
            if not isinstance(rule, _RULE_TYPES[prefix]):
                continue
            reason = _rule_gone(rule, new_rules.get(rule_id), state.tenant, rest, new)
            if reason is None:
                continue
            record = _close_rule(state, alert, key, rule, rest, old, reason, now)
        else:
            continue
        if record is not None:
            records.append(record)
    return records


def _rule_gone(
    rule: _Rule, current: _Rule | None, tenant: str, key_rest: list[str], new: RuleSet
) -> str | None:
    """Return why the new rules no longer evaluate the alert's key, or None if they do."""
    if current is None:
        return f"rule {rule.id} was removed from the rules"
    if current.tier != rule.tier:
        return f"rule {rule.id} moved to the {current.tier} tier"
    if not current.applies_to(tenant):
        return f"rule {rule.id} no longer applies to tenant {tenant}"
    if isinstance(current, ForecastRule):
        budget_id = key_rest[0]
        if current.budget != budget_id:
            return f"rule {rule.id} now forecasts budget {current.budget}"
        limit = new.budget(budget_id, tenant)
        if limit is None:
            return f"budget {budget_id} of rule {rule.id} no longer applies to tenant {tenant}"
        if limit.limit_usd is None:
            return f"budget {budget_id} of rule {rule.id} no longer has a limit_usd"
        return None
    assert isinstance(rule, ThresholdRule | RateOfChangeRule)
    assert isinstance(current, ThresholdRule | RateOfChangeRule)
    if current.series != rule.series:
        return f"rule {rule.id} now groups series by {', '.join(current.series)}"
    return None


def _close_rule(
    state: TenantState,
    alert: AlertState,
    key: str,
    rule: _Rule,
    key_rest: list[str],
    old: RuleSet,
    reason: str,
    now: datetime,
) -> AlertRecord | None:
    if not isinstance(rule, ForecastRule) and len(key_rest) != len(rule.series):
        return None  # not built by this rule, so its series cannot be named
    del state.alerts.alerts[key]
    if alert.status != "firing":
        return None
    if isinstance(rule, ForecastRule):
        return _forecast_record(state, alert, rule, key_rest, old, reason, now)
    return _windowed_record(state, alert, rule, key_rest, reason, now)


def _windowed_record(
    state: TenantState,
    alert: AlertState,
    rule: ThresholdRule | RateOfChangeRule,
    key_rest: list[str],
    reason: str,
    now: datetime,
) -> AlertRecord:
    labels = series_labels((rule.series, tuple(key_rest)))
    where = " ".join(f"{name}={value}" for name, value in labels.items())
    details = dict(UNKNOWN_OBSERVED)
    if rule.summary:
        details["description"] = rule.summary
    return AlertRecord(
        alert_id=alert.alert_id,
        status="resolved",
        tier="absolute" if isinstance(rule, ThresholdRule) else "rate_of_change",
        severity=rule.severity,
        rule_id=rule.id,
        tenant=state.tenant,
        signal=rule.signal,
        unit=UNIT_OF_SIGNAL[rule.signal],
        observed=_ZERO,
        # A threshold rule's value is a fact of the rule. A rate-of-change
        # threshold depends on a baseline that is no longer computed.
        threshold=rule.threshold if isinstance(rule, ThresholdRule) else None,
        event_time=now,
        started_at=alert.started_at,
        summary=f"{reason}, so its alert for {where} is closed",
        series=labels,
        window_s=rule.window_s,
        runbook_url=str(rule.runbook_url) if rule.runbook_url else None,
        labels=dict(rule.labels),
        details=details,
    )


def _forecast_record(
    state: TenantState,
    alert: AlertState,
    rule: ForecastRule,
    key_rest: list[str],
    old: RuleSet,
    reason: str,
    now: datetime,
) -> AlertRecord:
    budget_id, start_text = key_rest
    start = datetime.fromisoformat(start_text)
    budget = old.budget(budget_id, state.tenant)
    total = state.periods.get(budget_id, {}).get(start)
    limit = budget.limit_usd if budget is not None else None
    summary = f"{reason}, so its forecast alert for budget {budget_id} is closed"
    return predictive.closed_record(
        state, rule, alert, now, summary, start, total, limit
    )


def _close_budget(
    state: TenantState,
    alert: AlertState,
    key: str,
    budget_id: str,
    key_rest: list[str],
    old: RuleSet,
    new: RuleSet,
    now: datetime,
) -> AlertRecord | None:
    tenant = state.tenant
    budget = old.budget(budget_id, tenant)
    if budget is None or new.budget(budget_id, tenant) is not None:
        return None
    if any(entry.id == budget_id for entry in new.budgets):
        reason = f"budget {budget_id} no longer applies to tenant {tenant}"
    else:
        reason = f"budget {budget_id} was removed from the rules"
    pct_text, start_text = key_rest
    pct = Decimal(pct_text)
    start = datetime.fromisoformat(start_text)
    total = state.periods.get(budget_id, {}).get(start)
    del state.alerts.alerts[key]
    if total is not None:
        # A budget added back with this id fires again if the total crosses it.
        total.fired_pct.discard(pct)
    if alert.status != "firing":
        return None
    return _budget_record(state, alert, budget, pct, start, total, reason, now)


def _budget_record(
    state: TenantState,
    alert: AlertState,
    budget: Budget,
    pct: Decimal,
    start: datetime,
    total: PeriodTotal | None,
    reason: str,
    now: datetime,
) -> AlertRecord:
    unit: Unit = "usd" if budget.signal == "spend" else "tokens"
    shown_pct = f"{pct.normalize():f}"
    details = {"threshold_pct": shown_pct, "period": budget.period}
    if total is None:
        details.update(UNKNOWN_OBSERVED)
    return AlertRecord(
        alert_id=alert.alert_id,
        status="resolved",
        tier="absolute",
        # The budget tier sends thresholds below 100 % as warnings.
        severity=budget.severity if pct >= _HUNDRED else "warning",
        rule_id=budget.id,
        tenant=state.tenant,
        signal=budget.signal,
        unit=unit,
        observed=total.value(budget.signal) if total is not None else _ZERO,
        threshold=budget.limit * pct / _HUNDRED,
        event_time=now,
        started_at=alert.started_at,
        summary=f"{reason}, so its alert for the {shown_pct}% threshold is closed",
        series={"tenant": state.tenant},
        period_start=start,
        period_end=total.end if total is not None else None,
        runbook_url=str(budget.runbook_url) if budget.runbook_url else None,
        labels=dict(budget.labels),
        details=details,
    )
