"""The routing file schema: receivers, the policy tree, inhibitions, silences, intervals.

A routing file has one top-level section, ``routing:``. ``routing.load`` reads
it and reports problems by file and line; this module defines the pydantic
models. Every model is frozen and rejects unknown fields. Secrets in receiver
settings come from the environment or from files (see ``routing.secrets``).

The policy tree works like Alertmanager's: an alert enters at the root route and
descends into the first child whose matchers all match, or into every matching
child while ``continue`` is true; the deepest matching routes choose the
receivers. A child inherits ``receiver``, ``group_by`` and the three timers from
its parent unless it sets them. Durations are written like rule files: ``30s``,
``5m``, ``4h``, ``1d``; ``0s`` is allowed for ``group_wait``.
"""

from __future__ import annotations

import re
import string
from datetime import datetime, time
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from detector.config import TimeZone, parse_duration_s
from routing.receivers.email.settings import EmailSettings
from routing.receivers.opsgenie.settings import OpsgenieSettings
from routing.receivers.pagerduty.settings import PagerDutySettings
from routing.receivers.slack.settings import SlackSettings
from routing.receivers.webhook.settings import WebhookSettings

ReceiverConfig = Annotated[
    PagerDutySettings | OpsgenieSettings | SlackSettings | EmailSettings | WebhookSettings,
    Field(discriminator="type"),
]

DurationS = Annotated[int, BeforeValidator(parse_duration_s), Field(ge=1)]
WaitS = Annotated[
    int, BeforeValidator(lambda v: 0 if v in ("0", "0s", 0) else parse_duration_s(v)), Field(ge=0)
]
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")]

DASHBOARD_FIELDS = ("tenant", "rule_id", "tier", "signal", "alert_id")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


# ---------------------------------------------------------------------------
# Matchers
# ---------------------------------------------------------------------------

_MATCHER = re.compile(
    r"""^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(?:"((?:[^"\\]|\\.)*)"|(.*?))\s*$"""
)


class Matcher(_Frozen):
    """One condition on an alert label: ``=``, ``!=``, ``=~`` (regex) or ``!~``.

    Regular expressions must match the whole value, so ``tenant=~"acme"`` does
    not match ``acme-eu``.
    """

    name: str
    op: Literal["=", "!=", "=~", "!~"]
    value: str

    @model_validator(mode="after")
    def _valid_regex(self) -> Matcher:
        if self.op in ("=~", "!~"):
            try:
                re.compile(self.value)
            except re.error as error:
                raise ValueError(f"invalid regular expression {self.value!r}: {error}") from None
        return self

    def matches(self, labels: dict[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        found = re.fullmatch(self.value, actual) is not None
        return found if self.op == "=~" else not found

    def __str__(self) -> str:
        return f'{self.name}{self.op}"{self.value}"'


def _parse_matcher(value: object) -> object:
    if not isinstance(value, str):
        return value
    match = _MATCHER.match(value)
    if match is None:
        raise ValueError(
            f"invalid matcher {value!r}: write name=value, name!=value, "
            'name=~"regex" or name!~"regex", for example tier="absolute"'
        )
    name, op, quoted, bare = match.groups()
    text = quoted.replace('\\"', '"') if quoted is not None else bare
    return {"name": name, "op": op, "value": text}


Matchers = tuple[Annotated[Matcher, BeforeValidator(_parse_matcher)], ...]


# ---------------------------------------------------------------------------
# Time intervals
# ---------------------------------------------------------------------------

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MONTHS = (
    "january", "february", "march", "april", "may", "june", "july",
    "august", "september", "october", "november", "december",
)


def _parse_clock(text: str) -> int:
    """Parse ``HH:MM`` (``24:00`` allowed) into minutes after midnight."""
    match = re.fullmatch(r"(\d{2}):(\d{2})", text)
    if match is None:
        raise ValueError(f"invalid time {text!r}: use HH:MM, for example 09:30")
    hours, minutes = int(match.group(1)), int(match.group(2))
    if minutes > 59 or hours > 24 or (hours == 24 and minutes):
        raise ValueError(f"invalid time {text!r}: use 00:00 to 24:00")
    return hours * 60 + minutes


class TimeRange(_Frozen):
    """A range of the day, start inclusive and end exclusive, in local time."""

    start: str
    end: str

    @model_validator(mode="after")
    def _ordered(self) -> TimeRange:
        if self.start_minute >= self.end_minute:
            raise ValueError(f"start {self.start} must be before end {self.end}")
        return self

    @property
    def start_minute(self) -> int:
        return _parse_clock(self.start)

    @property
    def end_minute(self) -> int:
        return _parse_clock(self.end)

    def contains(self, moment: time) -> bool:
        minute = moment.hour * 60 + moment.minute
        return self.start_minute <= minute < self.end_minute


def _range_parser(names: tuple[str, ...], low: int, high: int, what: str) -> Any:
    """Return a validator for ``"a"`` or ``"a:b"`` items, by name or by number."""

    def parse_one(text: str) -> int:
        text = text.strip().lower()
        if text in names:
            return names.index(text) + low
        if re.fullmatch(r"-?\d+", text) and low <= abs(int(text)) <= high:
            return int(text)
        raise ValueError(f"invalid {what} {text!r}")

    def parse(value: object) -> object:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            return value
        first, _, last = value.partition(":")
        start = parse_one(first)
        end = parse_one(last) if last else start
        return (start, end)

    return BeforeValidator(parse)


WeekdayRange = Annotated[tuple[int, int], _range_parser(WEEKDAYS, 1, 7, "weekday")]
DayRange = Annotated[tuple[int, int], _range_parser((), 1, 31, "day of month")]
MonthRange = Annotated[tuple[int, int], _range_parser(MONTHS, 1, 12, "month")]


class TimeInterval(_Frozen):
    """Named times, in an IANA zone, used to mute routes or make them active.

    Each field narrows the interval; an empty field places no limit. Weekdays
    and months are names or numbers (monday = 1), ranges are written ``a:b``,
    and a negative day of month counts from the end (-1 is the last day).
    """

    name: Name
    timezone: TimeZone = "UTC"
    weekdays: tuple[WeekdayRange, ...] = ()
    times: tuple[TimeRange, ...] = ()
    days_of_month: tuple[DayRange, ...] = ()
    months: tuple[MonthRange, ...] = ()

    def contains(self, moment: datetime) -> bool:
        local = moment.astimezone(ZoneInfo(self.timezone))
        if self.weekdays and not _in_ranges(local.isoweekday(), self.weekdays):
            return False
        if self.months and not _in_ranges(local.month, self.months):
            return False
        if self.days_of_month and not self._day_matches(local):
            return False
        return not self.times or any(r.contains(local.time()) for r in self.times)

    def _day_matches(self, local: datetime) -> bool:
        next_month = local.replace(day=28) + (local.replace(day=28) - local.replace(day=24))
        days_in_month = (next_month.replace(day=1) - local.replace(day=1)).days
        for start, end in self.days_of_month:
            first = start if start > 0 else days_in_month + start + 1
            last = end if end > 0 else days_in_month + end + 1
            if first <= local.day <= last:
                return True
        return False

    def describe(self) -> str:
        parts = []
        if self.weekdays:
            parts.append(",".join(_range_text(r, WEEKDAYS, 1) for r in self.weekdays))
        if self.times:
            parts.append(",".join(f"{t.start}-{t.end}" for t in self.times))
        if self.days_of_month:
            parts.append("days " + ",".join(_range_text(r, (), 1) for r in self.days_of_month))
        if self.months:
            parts.append(",".join(_range_text(r, MONTHS, 1) for r in self.months))
        return f"{self.name} ({' '.join(parts) or 'always'} {self.timezone})"


def _in_ranges(value: int, ranges: tuple[tuple[int, int], ...]) -> bool:
    return any(start <= value <= end for start, end in ranges)


def _range_text(bounds: tuple[int, int], names: tuple[str, ...], low: int) -> str:
    def one(number: int) -> str:
        return names[number - low] if names else str(number)

    start, end = bounds
    return one(start) if start == end else f"{one(start)}:{one(end)}"


# ---------------------------------------------------------------------------
# Policy tree, inhibitions, silences
# ---------------------------------------------------------------------------


class Route(_Frozen):
    """A node of the policy tree; unset settings are inherited from the parent."""

    receiver: Name | None = None
    matchers: Matchers = ()
    continue_: bool = Field(default=False, alias="continue")
    group_by: tuple[str, ...] | None = None
    group_wait_s: WaitS | None = Field(default=None, alias="group_wait")
    group_interval_s: DurationS | None = Field(default=None, alias="group_interval")
    repeat_interval_s: DurationS | None = Field(default=None, alias="repeat_interval")
    active_time_intervals: tuple[Name, ...] = ()
    mute_time_intervals: tuple[Name, ...] = ()
    routes: tuple[Route, ...] = ()


class InhibitRule(_Frozen):
    """While a source alert fires, target alerts with the same ``equal`` labels are muted."""

    source_matchers: Matchers = Field(min_length=1)
    target_matchers: Matchers = Field(min_length=1)
    equal: tuple[str, ...] = ()


class Silence(_Frozen):
    """Mutes matching alerts from ``starts_at`` until ``ends_at`` (event time)."""

    id: Name
    matchers: Matchers = Field(min_length=1)
    starts_at: datetime
    ends_at: datetime
    created_by: str = ""
    comment: str = ""

    @field_validator("starts_at", "ends_at", mode="before")
    @classmethod
    def _parse_time(cls, value: object) -> object:
        if isinstance(value, str):
            return datetime.fromisoformat(value)  # accepts "Z" since 3.11
        return value

    @model_validator(mode="after")
    def _aware_and_ordered(self) -> Silence:
        if self.starts_at.tzinfo is None or self.ends_at.tzinfo is None:
            raise ValueError("write starts_at and ends_at with a zone, such as 2026-08-01T00:00:00Z")
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self

    def active_at(self, moment: datetime) -> bool:
        return self.starts_at <= moment < self.ends_at


class DeliverySettings(_Frozen):
    """Retry, polling and shutdown settings of the delivery loop."""

    initial_backoff_s: float = Field(default=1.0, gt=0)
    max_backoff_s: float = Field(default=300.0, gt=0)
    # Retryable failures are retried this long; then the fallback receiver gets
    # the notification with the last error.
    retry_for_s: float = Field(default=3600.0, gt=0)
    poll_interval_s: float = Field(default=1.0, gt=0)
    # On stop, sends already in progress get this many seconds of real time to
    # finish and reach the ledger. Sends still running then are cancelled and
    # sent again after a restart.
    drain_s: float = Field(default=5.0, ge=0)


def _check_dashboard(template: str | None) -> str | None:
    if template is None:
        return None
    for _, field_name, _, _ in string.Formatter().parse(template):
        if field_name is not None and field_name not in DASHBOARD_FIELDS:
            allowed = ", ".join("{" + name + "}" for name in DASHBOARD_FIELDS)
            raise ValueError(f"unknown placeholder {{{field_name}}}: use {allowed}")
    return template


class RoutingConfig(_Frozen):
    """The ``routing:`` section: receivers, the policy tree and what mutes alerts."""

    receivers: tuple[ReceiverConfig, ...]
    route: Route
    fallback: Name | None = None
    inhibit_rules: tuple[InhibitRule, ...] = ()
    silences: tuple[Silence, ...] = ()
    time_intervals: tuple[TimeInterval, ...] = ()
    dashboard_url: Annotated[str | None, AfterValidator(_check_dashboard)] = None
    delivery: DeliverySettings = DeliverySettings()

    @model_validator(mode="after")
    def _root_receiver(self) -> RoutingConfig:
        if self.route.receiver is None:
            raise ValueError("the root route needs a receiver: add route.receiver")
        return self

    def receiver(self, name: str) -> ReceiverConfig:
        for settings in self.receivers:
            if settings.name == name:
                return settings
        raise KeyError(name)

    def time_interval(self, name: str) -> TimeInterval:
        for interval in self.time_intervals:
            if interval.name == name:
                return interval
        raise KeyError(name)


class RoutingFile(_Frozen):
    """A routing file: a single ``routing`` section."""

    routing: RoutingConfig


# Defaults of the root route for settings it leaves unset.
ROOT_GROUP_WAIT_S = 30
ROOT_GROUP_INTERVAL_S = 300
ROOT_REPEAT_INTERVAL_S = 4 * 3600


def reference_problems(config: RoutingConfig) -> list[tuple[tuple[str | int, ...], str]]:
    """Return (path, message) for names that refer to nothing or are defined twice."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    receivers = [settings.name for settings in config.receivers]
    if not receivers:
        problems.append((("routing", "receivers"), "no receivers: define at least one"))
    intervals = [interval.name for interval in config.time_intervals]
    problems.extend(_repeats(receivers, ("routing", "receivers"), "receiver"))
    problems.extend(_repeats(intervals, ("routing", "time_intervals"), "time interval"))
    silences = [silence.id for silence in config.silences]
    problems.extend(_repeats(silences, ("routing", "silences"), "silence", "id"))
    if config.fallback is not None and config.fallback not in receivers:
        problems.append((("routing", "fallback"), _unknown("receiver", config.fallback, receivers)))
    problems.extend(_route_problems(config.route, ("routing", "route"), receivers, intervals))
    return problems


def _repeats(
    names: list[str], path: tuple[str | int, ...], what: str, key: str = "name"
) -> list[tuple[tuple[str | int, ...], str]]:
    seen: dict[str, int] = {}
    problems = []
    for index, name in enumerate(names):
        if name in seen:
            message = f"{what} {name!r} is already defined as item {seen[name]}: rename one"
            problems.append(((*path, index, key), message))
        seen.setdefault(name, index)
    return problems


def _route_problems(
    route: Route, path: tuple[str | int, ...], receivers: list[str], intervals: list[str]
) -> list[tuple[tuple[str | int, ...], str]]:
    problems = []
    if route.receiver is not None and route.receiver not in receivers:
        problems.append(((*path, "receiver"), _unknown("receiver", route.receiver, receivers)))
    for key in ("active_time_intervals", "mute_time_intervals"):
        for index, name in enumerate(getattr(route, key)):
            if name not in intervals:
                problems.append(((*path, key, index), _unknown("time interval", name, intervals)))
    for index, child in enumerate(route.routes):
        problems.extend(_route_problems(child, (*path, "routes", index), receivers, intervals))
    return problems


def _unknown(what: str, name: str, known: list[str]) -> str:
    if known:
        return f"unknown {what} {name!r}: use one of {', '.join(known)}"
    return f"unknown {what} {name!r}: define it first"
