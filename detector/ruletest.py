"""``burnrate test``: unit tests for rules, written in YAML next to the rules.

A test file names the rules folder it tests (``rules:``, relative to the file,
by default the folder above it) and lists tests. Each test gives input series
per tenant and, at evaluation times, the alerts expected to be firing then::

    rules: ..
    tests:
      - name: a burst of spend fires the hourly threshold
        series:
          acme: {start: "2026-05-04T10:00:00Z", every: 1m, values: "1x30 10x20"}
        expect:
          - at: "2026-05-04T10:30:00Z"
            alerts: []
          - at: "2026-05-04T10:50:00Z"
            alerts:
              - {tier: absolute, rule: hourly-spend-high, observed: 230}

A series is one request per step of ``every`` from ``start``, costing the
value of that step in US dollars. ``values`` is a space-separated list of
terms: ``2.5`` is one step, ``2.5x4`` is four steps of 2.5, ``0.5+0.1x10`` ten
steps from 0.5 up by 0.1 each (``0.5-0.1x3`` goes down), and ``_`` is a step
without a request (``_x60`` is an idle hour). ``events`` lists requests
explicitly instead, with their own time, cost and fields.

The runner replays the events through a fresh ``Engine`` in time order. At
each ``at`` it evaluates every tick up to that instant and compares the alerts
firing then (the latest record of each alert is a firing one) with the
expected list: each expected alert must match a distinct firing alert on every
field it gives, with ``tolerance`` (absolute, in the value's unit) for the
numeric values, and no firing alert may be left over. ``alerts: []`` expects
no alert. A failure prints expected against actual as a unified diff in which
each actual alert is shown with the fields of the expectation it is closest to.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any, TextIO

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from detector.alerts import AlertRecord
from detector.config import RuleFile, RuleSet, parse_duration_s
from detector.engine import Engine
from detector.errors import Problem, RuleError
from detector.events import Event
from detector.pricing import Pricer
from detector.ruleload import _describe, _read_document, load_rules

# Sections that only a rules file has. A test file's ``rules`` is a folder path.
_RULE_SECTIONS = frozenset(RuleFile.model_fields) - {"rules"}
DEFAULT_MODEL = "gpt-4o"
DEFAULT_PROVIDER = "openai"
_VALUE_FIELDS = (
    "observed",
    "threshold",
    "baseline",
    "forecast",
    "forecast_lower",
    "forecast_upper",
)
_TERM = re.compile(
    r"^(?P<start>[0-9.]+|_)"
    r"(?:(?P<sign>[+-])(?P<step>[0-9.]+))?"
    r"(?:x(?P<count>[0-9]+))?$"
)


# ---------------------------------------------------------------------------
# The test file schema
# ---------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class EventSpec(_Strict):
    """One request written out: its time, cost and optional event fields."""

    at: AwareDatetime
    cost_usd: Annotated[Decimal, Field(ge=0, allow_inf_nan=False)]
    input_tokens: Annotated[int, Field(ge=0)] = 0
    output_tokens: Annotated[int, Field(ge=0)] = 0
    feature: str = ""
    route: str = ""
    region: str = ""
    model: str = DEFAULT_MODEL
    provider: str = DEFAULT_PROVIDER
    request_id: str | None = None


class SeriesSpec(_Strict):
    """The requests of one tenant: a compact value series, explicit events, or both."""

    start: AwareDatetime | None = None
    every_s: Annotated[int, BeforeValidator(parse_duration_s), Field(ge=1)] = Field(
        default=60, alias="every"
    )
    values: str | None = None
    events: tuple[EventSpec, ...] = ()
    feature: str = ""
    route: str = ""
    region: str = ""
    model: str = DEFAULT_MODEL
    provider: str = DEFAULT_PROVIDER

    @model_validator(mode="after")
    def _start_with_values(self) -> SeriesSpec:
        if self.values is not None and self.start is None:
            raise ValueError("values is set without start: add start, an RFC 3339 time")
        if self.values is not None:
            expand_values(self.values)
        if self.values is None and not self.events:
            raise ValueError("no requests: set start and values, or list events")
        return self


class ExpectedAlert(_Strict):
    """One alert expected to be firing; only the fields given are compared."""

    tier: str | None = None
    rule: str | None = None
    tenant: str | None = None
    severity: str | None = None
    series: dict[str, str] | None = None
    labels: dict[str, str] | None = None
    details: dict[str, str] | None = None
    observed: Decimal | None = None
    threshold: Decimal | None = None
    baseline: Decimal | None = None
    forecast: Decimal | None = None
    forecast_lower: Decimal | None = None
    forecast_upper: Decimal | None = None
    tolerance: Annotated[Decimal, Field(ge=0)] = Decimal(0)


class Expectation(_Strict):
    """The alerts expected to be firing at one evaluation time."""

    at: AwareDatetime
    alerts: tuple[ExpectedAlert, ...]


class RuleTest(_Strict):
    name: str
    series: dict[str, SeriesSpec]
    expect: tuple[Expectation, ...]

    @model_validator(mode="after")
    def _times_increase(self) -> RuleTest:
        if not self.expect:
            raise ValueError("expect is empty: list at least one evaluation time")
        times = [expectation.at for expectation in self.expect]
        if times != sorted(times):
            raise ValueError("expect: list the evaluation times in increasing order")
        return self


class RuleTestFile(_Strict):
    """A file of rule tests and the rules folder they test."""

    rules: str = ".."
    tests: tuple[RuleTest, ...]

    @model_validator(mode="after")
    def _has_tests(self) -> RuleTestFile:
        if not self.tests:
            raise ValueError("tests is empty: add at least one test")
        return self


# ---------------------------------------------------------------------------
# Input series
# ---------------------------------------------------------------------------


def expand_values(text: str) -> list[Decimal | None]:
    """Expand the value notation into one entry per step; ``None`` is an idle step."""
    steps: list[Decimal | None] = []
    for term in text.split():
        match = _TERM.match(term)
        if match is None:
            raise ValueError(
                f"invalid value term {term!r}: write 2.5, 2.5x4, 0.5+0.1x10 or _x60"
            )
        count = int(match["count"] or 1)
        if match["start"] == "_":
            if match["step"]:
                raise ValueError(f"invalid value term {term!r}: '_' takes no step")
            steps.extend([None] * count)
            continue
        try:
            start = Decimal(match["start"])
            step = Decimal(match["step"] or 0)
        except InvalidOperation:
            raise ValueError(f"invalid number in value term {term!r}") from None
        if match["sign"] == "-":
            step = -step
        for index in range(count):
            value = start + step * index
            if value < 0:
                raise ValueError(
                    f"value term {term!r} goes below 0 at step {index + 1}"
                )
            steps.append(value)
    return steps


def series_events(tenant: str, spec: SeriesSpec) -> list[Event]:
    """Return the events of one tenant's series, in the order written."""
    events: list[Event] = []
    if spec.values is not None and spec.start is not None:
        for index, value in enumerate(expand_values(spec.values)):
            if value is None:
                continue
            instant = spec.start + timedelta(seconds=index * spec.every_s)
            events.append(
                _event(tenant, f"{tenant}-step-{index}", instant, value, spec)
            )
    for index, written in enumerate(spec.events):
        request_id = written.request_id or f"{tenant}-event-{index}"
        events.append(_event(tenant, request_id, written.at, written.cost_usd, written))
    return events


def _event(
    tenant: str,
    request_id: str,
    instant: datetime,
    cost_usd: Decimal,
    fields: SeriesSpec | EventSpec,
) -> Event:
    tokens = (0, 0)
    if isinstance(fields, EventSpec):
        tokens = (fields.input_tokens, fields.output_tokens)
    return Event(
        timestamp=instant,
        request_id=request_id,
        tenant=tenant,
        provider=fields.provider,
        request_model=fields.model,
        feature=fields.feature,
        route=fields.route,
        region=fields.region,
        input_tokens=tokens[0],
        output_tokens=tokens[1],
        # A reported cost of 0 is priced from the tokens instead, which is 0
        # for the default of no tokens.
        reported_cost_usd=cost_usd,
    )


# ---------------------------------------------------------------------------
# Comparing alerts
# ---------------------------------------------------------------------------


def _text(value: Decimal) -> str:
    return f"{value.normalize():f}" if value == value.to_integral() else f"{value:f}"


def _identity(expected: ExpectedAlert) -> dict[str, str]:
    identity = {"tier": expected.tier, "rule": expected.rule, "tenant": expected.tenant}
    return {key: value for key, value in identity.items() if value is not None}


def _actual_identity(record: AlertRecord) -> dict[str, str]:
    return {"tier": record.tier, "rule": record.rule_id, "tenant": record.tenant}


def _render(expected: ExpectedAlert, record: AlertRecord | None = None) -> str:
    """Render the fields ``expected`` lists, from it or from ``record`` if given.

    A value of ``record`` within the tolerance renders as the expected text, so a
    matching field shows no difference in the diff.
    """
    parts: list[str] = []
    scalars = {"severity": expected.severity, **_identity(expected)}
    if record is not None:
        actual = {"severity": record.severity, **_actual_identity(record)}
    for key in ("tier", "rule", "tenant", "severity"):
        if scalars.get(key) is not None:
            shown = scalars[key] if record is None else actual[key]
            parts.append(f"{key}={shown}")
    for name in ("series", "labels", "details"):
        wanted: dict[str, str] | None = getattr(expected, name)
        if wanted is None:
            continue
        have = getattr(record, name) if record is not None else wanted
        for key in sorted(wanted):
            parts.append(f"{name}.{key}={have.get(key, '<missing>')}")
    for name in _VALUE_FIELDS:
        want: Decimal | None = getattr(expected, name)
        if want is None:
            continue
        wanted_text = _text(want)
        if expected.tolerance:
            wanted_text += f"±{_text(expected.tolerance)}"
        if record is None:
            parts.append(f"{name}={wanted_text}")
            continue
        got: Decimal | None = getattr(record, name)
        if got is not None and abs(got - want) <= expected.tolerance:
            parts.append(f"{name}={wanted_text}")
        else:
            parts.append(f"{name}={'none' if got is None else _text(got)}")
    return " ".join(parts) or "any alert"


def _default_render(record: AlertRecord) -> str:
    values = " ".join(
        f"{name}={_text(getattr(record, name))}"
        for name in _VALUE_FIELDS
        if getattr(record, name) is not None
    )
    return (
        f"tier={record.tier} rule={record.rule_id} tenant={record.tenant} "
        f"severity={record.severity} {values}"
    ).rstrip()


def _matches(expected: ExpectedAlert, record: AlertRecord) -> bool:
    return _render(expected, record) == _render(expected)


def _same_identity(expected: ExpectedAlert, record: AlertRecord) -> bool:
    actual = _actual_identity(record)
    return all(actual[key] == value for key, value in _identity(expected).items())


def compare_alerts(
    expected: tuple[ExpectedAlert, ...], actual: list[AlertRecord]
) -> list[str]:
    """Return a unified diff of expected against actual alerts; empty when they match."""
    unmatched = list(actual)
    expected_lines = [_render(alert) for alert in expected]
    actual_lines: list[str] = []
    misses: list[ExpectedAlert] = []
    for alert in expected:
        found = next((record for record in unmatched if _matches(alert, record)), None)
        if found is None:
            misses.append(alert)
            continue
        unmatched.remove(found)
        actual_lines.append(_render(alert))
    for alert in misses:
        near = next((r for r in unmatched if _same_identity(alert, r)), None)
        if near is not None:
            unmatched.remove(near)
            actual_lines.append(_render(alert, near))
    actual_lines.extend(_default_render(record) for record in unmatched)
    if not misses and len(actual_lines) == len(expected_lines):
        return []
    return list(
        difflib.unified_diff(
            sorted(expected_lines),
            sorted(actual_lines),
            "expected",
            "actual",
            lineterm="",
        )
    )


# ---------------------------------------------------------------------------
# Running tests
# ---------------------------------------------------------------------------


@dataclass
class RuleTestResult:
    """The outcome of one test: its failures, each a header and diff lines."""

    file: Path
    name: str
    failures: list[tuple[str, list[str]]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures


def run_test(test: RuleTest, rules: RuleSet, file: Path) -> RuleTestResult:
    """Replay one test's series through a fresh engine and check each expectation."""
    engine = Engine(rules, Pricer(rules.prices))
    events = [
        event
        for tenant, spec in test.series.items()
        for event in series_events(tenant, spec)
    ]
    events.sort(key=lambda event: event.timestamp)
    latest: dict[str, AlertRecord] = {}
    result = RuleTestResult(file, test.name)
    position = 0
    for expectation in test.expect:
        records: list[AlertRecord] = []
        while position < len(events) and events[position].timestamp <= expectation.at:
            records.extend(engine.process(events[position]))
            position += 1
        records.extend(engine.advance_to(expectation.at))
        for record in records:
            latest[record.alert_id] = record
        firing = [record for record in latest.values() if record.status == "firing"]
        diff = compare_alerts(expectation.alerts, firing)
        if diff:
            header = f"at {expectation.at.isoformat()}: firing alerts differ"
            result.failures.append((header, diff))
    return result


def load_test_file(path: Path) -> RuleTestFile:
    """Read and validate a test file; raise ``RuleError`` with located problems."""
    problems: list[Problem] = []
    document = _read_document(path, problems)
    if document is None:
        raise RuleError(problems)
    data = document.data
    if isinstance(data, dict) and "tests" not in data and _looks_like_rules(data):
        raise RuleError(
            [
                document.problem(
                    (),
                    "this is a rules file, not a rule test file (it has no tests "
                    "key): pass the folder or files of the tests, for example "
                    "rules/tests/",
                )
            ]
        )
    try:
        return RuleTestFile.model_validate(data)
    except ValidationError as error:
        located = [
            document.problem(tuple(detail["loc"]), _describe(detail, RuleTestFile))
            for detail in error.errors(include_url=False)
        ]
        raise RuleError(located) from None


def _looks_like_rules(data: dict[str, Any]) -> bool:
    """Return whether a mapping without ``tests`` is a rules file's content."""
    return bool(set(data) & _RULE_SECTIONS) or isinstance(data.get("rules"), list)


def collect_test_files(paths: list[Path]) -> list[Path]:
    """Return the test files at ``paths``: files as given, folders' YAML files sorted."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(
                sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
            )
        else:
            files.append(path)
    return files


def run_files(paths: list[Path], out: TextIO) -> int:
    """Run every test of the files at ``paths``, print each outcome and a summary.

    Returns the exit code: 0 when every test passed, 1 when a test failed or a
    test file or its rules are invalid.
    """
    passed = failed = invalid = 0
    for file in collect_test_files(paths):
        try:
            suite = load_test_file(file)
            rules = load_rules((file.parent / suite.rules).resolve())
        except RuleError as error:
            print(f"INVALID {file}\n{error}", file=out)
            invalid += 1
            continue
        for test in suite.tests:
            result = run_test(test, rules, file)
            if result.passed:
                passed += 1
                print(f"ok      {file}: {test.name}", file=out)
                continue
            failed += 1
            print(f"FAILED  {file}: {test.name}", file=out)
            for header, diff in result.failures:
                print(f"  {header}", file=out)
                for line in diff:
                    print(f"    {line}", file=out)
    summary = f"{passed} passed, {failed} failed"
    if invalid:
        summary += f", {invalid} invalid file" + ("" if invalid == 1 else "s")
    print(summary, file=out)
    return 0 if failed == 0 and invalid == 0 else 1


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def add_commands(commands: Any) -> None:
    """Add ``burnrate test`` to the ``burnrate`` subcommands."""
    parser = commands.add_parser(
        "test",
        help="run rule unit tests (YAML files of input series and expected alerts)",
        description=(
            "Replay each test's input series through the rules and compare the "
            "alerts firing at each evaluation time with the expected ones."
        ),
        epilog=(
            "exit codes: 0 every test passed; 1 a test failed, or a test file or "
            "its rules are invalid; 2 invalid usage"
        ),
    )
    parser.add_argument(
        "files", type=Path, nargs="+", help="test files, or folders of *.yaml tests"
    )
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> int:
    for path in args.files:
        if not path.exists():
            print(f"error: test file or folder {path} not found", file=sys.stderr)
            return 2
    return run_files(list(args.files), sys.stdout)
