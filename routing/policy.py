"""Decide which receivers an alert reaches, and explain every step of the decision.

``Policy.decide`` walks the policy tree for one alert record and returns a
``Decision``: the matched routes, each route's receiver and group, and the
reason for every receiver the alert does not reach (a mute or active time
interval, an inhibition, a silence). ``burnrate routes test`` prints
``Decision.explain()``; delivery uses the same decision, so what the command
shows is what delivery does.

Times are event times: time intervals and silences are checked against the
record's ``event_time``, so a replay routes exactly as the live service did.
Inhibitions and silences apply to firing records only. A resolve follows its
trigger: delivery sends it to the receivers that were sent the trigger.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from detector.alerts import AlertRecord
from routing.config import (
    ROOT_GROUP_INTERVAL_S,
    ROOT_GROUP_WAIT_S,
    ROOT_REPEAT_INTERVAL_S,
    InhibitRule,
    Matcher,
    Route,
    RoutingConfig,
    Silence,
)

# Special ``group_by`` value: every alert forms its own group.
GROUP_BY_ALL = "..."


def alert_labels(record: AlertRecord) -> dict[str, str]:
    """Return the labels matchers see: rule labels, series, then the record's fields.

    The record's own fields come last, so a rule label cannot pretend to be
    another tenant or tier.
    """
    labels = dict(record.labels)
    labels.update(record.series)
    labels.update(
        {
            "tier": record.tier,
            "severity": record.severity,
            "signal": record.signal,
            "tenant": record.tenant,
            "rule": record.rule_id,
            "rule_id": record.rule_id,
            "status": record.status,
            "unit": record.unit,
        }
    )
    return labels


@dataclass(frozen=True)
class Target:
    """A receiver an alert goes to, through which route and into which group."""

    receiver: str
    route_path: str
    group_labels: tuple[tuple[str, str], ...]
    group_wait_s: int
    group_interval_s: int
    repeat_interval_s: int

    @property
    def group_key(self) -> str:
        labels = ",".join(f'{k}="{v}"' for k, v in self.group_labels)
        return f"{self.route_path}{{{labels}}}"


@dataclass
class Decision:
    """A record's receivers and the reason for each, step by step in ``lines``."""

    record: AlertRecord
    targets: list[Target] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    inhibited_by: str | None = None
    silenced_by: str | None = None

    @property
    def receivers(self) -> list[str]:
        return [target.receiver for target in self.targets]

    def explain(self) -> str:
        return "\n".join(self.lines)


@dataclass(frozen=True)
class _Settings:
    """The effective settings of a route after inheritance."""

    receiver: str
    group_by: tuple[str, ...]
    group_wait_s: int
    group_interval_s: int
    repeat_interval_s: int

    def child(self, route: Route) -> _Settings:
        return _Settings(
            receiver=route.receiver or self.receiver,
            group_by=route.group_by if route.group_by is not None else self.group_by,
            group_wait_s=_first(route.group_wait_s, self.group_wait_s),
            group_interval_s=_first(route.group_interval_s, self.group_interval_s),
            repeat_interval_s=_first(route.repeat_interval_s, self.repeat_interval_s),
        )


def _first(value: int | None, default: int) -> int:
    return default if value is None else value


class Policy:
    """The routing decisions of one routing configuration."""

    def __init__(self, config: RoutingConfig) -> None:
        self.config = config
        root = config.route
        self._root_settings = _Settings(
            receiver=root.receiver or "",
            group_by=root.group_by or (),
            group_wait_s=_first(root.group_wait_s, ROOT_GROUP_WAIT_S),
            group_interval_s=_first(root.group_interval_s, ROOT_GROUP_INTERVAL_S),
            repeat_interval_s=_first(root.repeat_interval_s, ROOT_REPEAT_INTERVAL_S),
        )

    def decide(
        self, record: AlertRecord, firing: Mapping[str, AlertRecord] | None = None
    ) -> Decision:
        """Route one record; ``firing`` contains the alerts firing now, by alert id."""
        decision = Decision(record)
        labels = alert_labels(record)
        decision.lines.append(_describe_record(record))
        decision.lines.append("labels: " + " ".join(f'{k}="{v}"' for k, v in sorted(labels.items())))

        matched: list[tuple[str, Route, _Settings]] = []
        self._walk(self.config.route, "route", self._root_settings, labels, decision, matched)

        if record.status == "firing" and self._suppressed(record, labels, firing or {}, decision):
            decision.lines.append("result: no receiver")
            return decision

        for path, route, settings in matched:
            target = self._target(path, route, settings, labels, record, decision)
            if target is not None and target.receiver not in decision.receivers:
                decision.targets.append(target)
            elif target is not None:
                decision.lines.append(
                    f"receiver {target.receiver} via {path}: already reached through "
                    "an earlier route, sent once"
                )
        receivers = ", ".join(decision.receivers) or "no receiver"
        decision.lines.append(f"result: {receivers}")
        return decision

    # -- the tree ------------------------------------------------------------

    def _walk(
        self,
        route: Route,
        path: str,
        settings: _Settings,
        labels: dict[str, str],
        decision: Decision,
        matched: list[tuple[str, Route, _Settings]],
    ) -> None:
        """Descend from a matching route; record the deepest matching routes."""
        found_child = False
        for index, child in enumerate(route.routes):
            child_path = f"{path}.routes[{index}]"
            failed = _first_failure(child.matchers, labels)
            shown = _matchers_text(child.matchers)
            if failed is not None:
                decision.lines.append(
                    f"{child_path} {shown}: not matched, {failed.name}="
                    f'"{labels.get(failed.name, "")}" fails {failed}'
                )
                continue
            found_child = True
            child_settings = settings.child(child)
            cont = " (continue: true, later siblings are checked too)" if child.continue_ else ""
            decision.lines.append(f"{child_path} {shown}: matched{cont}")
            self._walk(child, child_path, child_settings, labels, decision, matched)
            if not child.continue_:
                break
        if not found_child:
            decision.lines.append(f"{path}: selected, receiver {settings.receiver}")
            matched.append((path, route, settings))

    def _target(
        self,
        path: str,
        route: Route,
        settings: _Settings,
        labels: dict[str, str],
        record: AlertRecord,
        decision: Decision,
    ) -> Target | None:
        when = record.event_time
        if record.status == "resolved" and (route.mute_time_intervals or route.active_time_intervals):
            decision.lines.append(
                f"{path}: time intervals do not mute a resolve, so an alert that was "
                "sent is always closed"
            )
            route = route.model_copy(update={"mute_time_intervals": (), "active_time_intervals": ()})
        for name in route.mute_time_intervals:
            interval = self.config.time_interval(name)
            if interval.contains(when):
                decision.lines.append(
                    f"{path}: receiver {settings.receiver} muted by time interval "
                    f"{interval.describe()} at {when.isoformat()}"
                )
                return None
        if route.active_time_intervals:
            intervals = [self.config.time_interval(n) for n in route.active_time_intervals]
            if not any(interval.contains(when) for interval in intervals):
                shown = ", ".join(interval.describe() for interval in intervals)
                decision.lines.append(
                    f"{path}: receiver {settings.receiver} muted, {when.isoformat()} "
                    f"is outside its active time intervals {shown}"
                )
                return None
        target = Target(
            receiver=settings.receiver,
            route_path=path,
            group_labels=_group_labels(settings.group_by, labels),
            group_wait_s=settings.group_wait_s,
            group_interval_s=settings.group_interval_s,
            repeat_interval_s=settings.repeat_interval_s,
        )
        decision.lines.append(
            f"{path}: receiver {target.receiver}, group {target.group_key}, "
            f"group_wait {target.group_wait_s}s, group_interval "
            f"{target.group_interval_s}s, repeat_interval {target.repeat_interval_s}s"
        )
        return target

    # -- inhibitions and silences ------------------------------------------

    def _suppressed(
        self,
        record: AlertRecord,
        labels: dict[str, str],
        firing: Mapping[str, AlertRecord],
        decision: Decision,
    ) -> bool:
        silence = self._silence(labels, record)
        if silence is not None:
            decision.silenced_by = silence.id
            decision.lines.append(
                f"silenced by silence {silence.id} ({_matchers_text(silence.matchers)}, "
                f"{silence.starts_at.isoformat()} to {silence.ends_at.isoformat()}"
                f"{', by ' + silence.created_by if silence.created_by else ''})"
            )
            return True
        inhibitor = self._inhibitor(record, labels, firing)
        if inhibitor is not None:
            index, source = inhibitor
            decision.inhibited_by = source.alert_id
            rule = self.config.inhibit_rules[index]
            equal = ", ".join(rule.equal) or "no labels"
            decision.lines.append(
                f"inhibited by alert {source.alert_id} (tenant={source.tenant} "
                f"rule={source.rule_id} tier={source.tier}, firing since "
                f"{source.started_at.isoformat()}) through inhibit_rules[{index}], "
                f"equal on {equal}"
            )
            return True
        return False

    def _silence(self, labels: dict[str, str], record: AlertRecord) -> Silence | None:
        for silence in self.config.silences:
            if silence.active_at(record.event_time) and _all_match(silence.matchers, labels):
                return silence
        return None

    def _inhibitor(
        self, record: AlertRecord, labels: dict[str, str], firing: Mapping[str, AlertRecord]
    ) -> tuple[int, AlertRecord] | None:
        for index, rule in enumerate(self.config.inhibit_rules):
            if not _all_match(rule.target_matchers, labels):
                continue
            for source in firing.values():
                if _inhibits(rule, source, labels, record):
                    return index, source
        return None


def _inhibits(
    rule: InhibitRule, source: AlertRecord, target_labels: dict[str, str], target: AlertRecord
) -> bool:
    if source.alert_id == target.alert_id or source.status != "firing":
        return False
    source_labels = alert_labels(source)
    if not _all_match(rule.source_matchers, source_labels):
        return False
    return all(source_labels.get(name) == target_labels.get(name) for name in rule.equal)


def _all_match(matchers: tuple[Matcher, ...], labels: dict[str, str]) -> bool:
    return _first_failure(matchers, labels) is None


def _first_failure(matchers: tuple[Matcher, ...], labels: dict[str, str]) -> Matcher | None:
    for matcher in matchers:
        if not matcher.matches(labels):
            return matcher
    return None


def _matchers_text(matchers: tuple[Matcher, ...]) -> str:
    return "[" + ", ".join(str(m) for m in matchers) + "]"


def _group_labels(group_by: tuple[str, ...], labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
    if GROUP_BY_ALL in group_by:
        return tuple(sorted((k, v) for k, v in labels.items() if k != "status"))
    return tuple((name, labels.get(name, "")) for name in group_by)


def _describe_record(record: AlertRecord) -> str:
    return (
        f"alert {record.alert_id} {record.status}: tenant={record.tenant} "
        f"rule={record.rule_id} tier={record.tier} severity={record.severity} "
        f"at {record.event_time.isoformat()}"
    )
