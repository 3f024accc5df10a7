"""Decide a rules reload: load the new folder, diff it with the running rules.

The service reloads on SIGHUP or when the rules folder changes. This module is
the pure part: it loads the folder with every check ``burnrate check`` runs,
lists what changed (rules, budgets, tenants and price overrides, by id), and
returns either the new rule set to swap in or the errors to reject it with. A
rejected reload becomes an alert record of tier ``service``, so a broken rules
change is seen where alerts are seen while the old rules keep running. The
next accepted reload resolves that alert.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from pydantic import BaseModel

from detector.alerts import AlertRecord, Status, alert_id
from detector.config import RuleSet
from detector.errors import Problem
from detector.ruleload import check_rules
from detector.service.stall import SERVICE_TENANT

RELOAD_RULE_ID = "rules-reload"
# The max number of errors listed one per detail in the alert. The ``errors``
# detail counts all of them.
MAX_LISTED_ERRORS = 20


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


class ReloadAlert:
    """The ``service`` alert of the rejected reloads of one rules folder.

    The first rejection fires it. A later rejection with different errors sends
    it again as a repeat with the new summary, and one with the same errors
    sends nothing, because on-call already has them. The next accepted reload
    resolves it under the same ``alert_id``, whether or not the accepted rules
    changed anything.

    NOTE: the episode lives in memory. A worker restarted while the alert fires
    starts only with valid rules and sends no resolve, so the alert stays open
    at the receivers until it is closed there.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        # The alert id and start time of the firing alert, None while none fires.
        self._episode: tuple[str, datetime] | None = None
        self._rejections = 0
        self._records_sent = 0
        self._errors: list[str] = []

    def reject(self, problems: list[Problem], now: datetime) -> AlertRecord | None:
        """Count a rejected reload and return the record to send.

        Returns None when the alert already fires with the same errors.
        """
        errors = [str(problem) for problem in problems]
        self._rejections += 1
        if self._episode is not None and errors == self._errors:
            return None
        if self._episode is None:
            identifier = alert_id(RELOAD_RULE_ID, str(self.path), now.isoformat())
            self._episode = (identifier, now)
        self._errors = errors
        record = self._record("firing", now)
        self._records_sent += 1
        return record

    def accept(self, now: datetime) -> AlertRecord | None:
        """End the episode at an accepted reload and return its resolved record.

        Returns None when no alert fires.
        """
        if self._episode is None:
            return None
        record = self._record("resolved", now)
        self._episode = None
        self._rejections = 0
        self._records_sent = 0
        self._errors = []
        return record

    def _record(self, status: Status, now: datetime) -> AlertRecord:
        assert self._episode is not None
        identifier, started_at = self._episode
        if status == "firing":
            summary = _rejected_summary(self.path, self._errors)
            details = {"errors": str(len(self._errors))}
            details.update(
                (f"error_{index + 1}", error)
                for index, error in enumerate(self._errors[:MAX_LISTED_ERRORS])
            )
        else:
            plural = "" if self._rejections == 1 else "s"
            summary = (
                f"rules reload from {self.path} accepted after {self._rejections} "
                f"rejected reload{plural}. The folder is valid again."
            )
            details = {}
        return AlertRecord(
            alert_id=identifier,
            status=status,
            tier="service",
            severity="error",
            rule_id=RELOAD_RULE_ID,
            tenant=SERVICE_TENANT,
            signal="rules_reload",
            # A rules reload is requested by SIGHUP or by a change of the folder,
            # so the rejected reloads of the episode are counted in requests. The
            # number of errors, which has no unit of its own, is in the details.
            unit="requests",
            observed=Decimal(self._rejections),
            event_time=now,
            started_at=started_at,
            summary=summary,
            repeat=self._records_sent,
            details=details,
        )


def _rejected_summary(path: Path, errors: list[str]) -> str:
    count = len(errors)
    first = errors[0] if errors else "no rule files"
    return (
        f"rules reload from {path} rejected with {count} error"
        f"{'' if count == 1 else 's'}, so the previous rules keep running. "
        f"First: {first}"
    )
