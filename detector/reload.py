"""Decide a rules reload: load the new folder, diff it with the running rules.

The service reloads on SIGHUP or when the rules folder changes. This module is
the pure part: it loads the folder with every check ``burnrate check`` runs,
lists what changed (rules, budgets, tenants and price overrides, by id), and
returns either the new rule set to swap in or the errors to reject it with. A
rejected reload becomes an alert record of tier ``service``, so a broken rules
change is seen where alerts are seen while the old rules keep running.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from pydantic import BaseModel

from detector.alerts import AlertRecord, alert_id
from detector.config import RuleSet
from detector.errors import Problem
from detector.ruleload import check_rules

RELOAD_RULE_ID = "rules-reload"


@dataclass(frozen=True, slots=True)
class RuleDiff:
    """Entry ids added, changed and removed, each prefixed by its section."""

    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.added or self.changed or self.removed)

    def __str__(self) -> str:
        parts = [
            f"{name} {', '.join(ids)}"
            for name, ids in (
                ("added", self.added),
                ("changed", self.changed),
                ("removed", self.removed),
            )
            if ids
        ]
        return "; ".join(parts) or "no change"


@dataclass(frozen=True, slots=True)
class ReloadDecision:
    """A loaded rules folder: the rule set to swap in, or the errors that reject it."""

    ruleset: RuleSet | None
    problems: list[Problem]
    diff: RuleDiff

    @property
    def accepted(self) -> bool:
        return self.ruleset is not None


def _entries(ruleset: RuleSet) -> dict[str, BaseModel]:
    entries: dict[str, BaseModel] = {}
    for rule in ruleset.rules:
        entries[f"rule:{rule.id}"] = rule
    for budget in ruleset.budgets:
        entries[f"budget:{budget.id}@{budget.tenant}"] = budget
    for tenant in ruleset.tenants:
        entries[f"tenant:{tenant.id}"] = tenant
    for price in ruleset.prices:
        who = f"@{price.tenant}" if price.tenant else ""
        entries[f"price:{price.provider or '*'}/{price.model}{who}"] = price
    entries["defaults"] = ruleset.defaults
    return entries


def diff_rules(old: RuleSet, new: RuleSet) -> RuleDiff:
    """Return the entries of ``new`` added, changed and removed relative to ``old``."""
    before = _entries(old)
    after = _entries(new)
    return RuleDiff(
        added=sorted(key for key in after if key not in before),
        changed=sorted(
            key for key in after if key in before and after[key] != before[key]
        ),
        removed=sorted(key for key in before if key not in after),
    )


def decide(path: Path, current: RuleSet) -> ReloadDecision:
    """Load the rules at ``path`` and decide whether they replace ``current``."""
    ruleset, problems = check_rules(path)
    errors = [problem for problem in problems if problem.severity == "error"]
    if ruleset is None:
        return ReloadDecision(None, errors, RuleDiff())
    return ReloadDecision(ruleset, [], diff_rules(current, ruleset))


def rejected_record(path: Path, problems: list[Problem], now: datetime) -> AlertRecord:
    """Return the ``service`` alert that reports a rejected rules reload."""
    count = len(problems)
    first = str(problems[0]) if problems else "no rule files"
    summary = (
        f"rules reload from {path} rejected with {count} error"
        f"{'' if count == 1 else 's'}; the previous rules keep running. First: {first}"
    )
    details = {f"error_{index + 1}": str(p) for index, p in enumerate(problems[:20])}
    return AlertRecord(
        alert_id=alert_id(RELOAD_RULE_ID, str(path), now.isoformat()),
        status="firing",
        tier="service",
        severity="error",
        rule_id=RELOAD_RULE_ID,
        tenant="",
        signal="rules",
        # NOTE: AlertRecord has no unit for a count of errors; observed is that
        # count, and "requests" is the unit closest to a plain number.
        unit="requests",
        observed=Decimal(count),
        event_time=now,
        started_at=now,
        summary=summary,
        details=details,
    )
