"""Tests for the rule-file loader: locations of errors, warnings and the examples."""

from __future__ import annotations

import io
from decimal import Decimal
from pathlib import Path

import pytest

from detector.config import ForecastRule, RateOfChangeRule, ThresholdRule
from detector.errors import Problem, RuleError
from detector.ruleload import check_rules, load_rules, run_check

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_RULES = REPO / "rules"
INVALID = Path(__file__).resolve().parent / "fixtures" / "rules_invalid"

_RULE_FIELDS = (
    "id, tenants, severity, runbook_url, summary, labels, repeat_interval, "
    "keep_firing_for, tier, signal, quantile, min_requests, series, window, "
    "threshold, comparison, for"
)
_DURATION_FIX = "use a whole number with s, m, h, d or w, for example 15m"
_MIN_REQUESTS_FIX = (
    "add the fewest requests a window must hold before its ratio counts, for "
    "example min_requests: 20"
)

# One folder per kind of error under tests/fixtures/rules_invalid, with every
# message that checking the folder must print, in order.
INVALID_CASES: dict[str, list[str]] = {
    "bad_yaml": [
        (
            "bad_yaml/alerts.yaml:5:11: error: invalid YAML: expected ',' or ']', but "
            "got ':' (while parsing a flow sequence at line 4, column 13): check the "
            "indentation, quotes and brackets"
        ),
    ],
    "clear_above_fire": [
        (
            "clear_above_fire/alerts.yaml:6:5: error: rules[0].clear_ratio: "
            "clear_ratio 3 is above min_ratio 2: the clear level must be at or below "
            "the firing level"
        ),
    ],
    "both_limits": [
        (
            "both_limits/budgets.yaml:2:5: error: budgets[0]: limit_usd and "
            "limit_tokens are both set: keep one"
        ),
    ],
    "duplicate_id": [
        (
            "duplicate_id/more_alerts.yaml:7:5: error: rules[1].id: rule id "
            "'spend-high' is already defined at duplicate_id/alerts.yaml:2:5: rename "
            "or remove one of them"
        ),
    ],
    "duplicate_key": [
        (
            "duplicate_key/alerts.yaml:6:5: error: rules[0].window: duplicate key "
            "'window', first set at line 4: YAML keeps only the last value, so remove "
            "one of them"
        ),
    ],
    "empty_file": [
        (
            "empty_file/alerts.yaml: error: file is empty: add a section such as rules "
            "or delete the file"
        ),
        (
            "empty_file/budgets.yaml: error: file is empty: add a section such as "
            "rules or delete the file"
        ),
    ],
    "empty_section": [
        (
            "empty_section/alerts.yaml:3:1: error: rules: no value: write a list of "
            "'- ' items here or remove the key"
        ),
    ],
    "invalid_duration": [
        (
            "invalid_duration/alerts.yaml:4:5: error: rules[0].window: invalid "
            f"duration '1hour': {_DURATION_FIX}"
        ),
        (
            "invalid_duration/alerts.yaml:12:5: error: rules[1].for: invalid duration "
            f"'1:30': {_DURATION_FIX}"
        ),
    ],
    "missing_field": [
        (
            "missing_field/alerts.yaml:2:5: error: rules[0].min_increase: missing "
            "required field 'min_increase': add the smallest increase over the "
            "baseline worth an alert, in the signal's unit"
        ),
    ],
    "multiple_documents": [
        (
            "multiple_documents/alerts.yaml:3:1: error: invalid YAML: expected a "
            "single document in the stream, but found another document: keep one "
            "document per file, without a second '---'"
        ),
    ],
    "no_rule_files": [
        "no_rule_files: error: folder has no rule files: add *.yaml or *.yml files",
    ],
    "non_utf8": [
        (
            "non_utf8/tenants.yaml:4:16: error: invalid UTF-8 byte 0xe9: save the file "
            "as UTF-8"
        ),
    ],
    "not_a_mapping": [
        (
            "not_a_mapping/alerts.yaml:1:1: error: top level is a list: a rule file is "
            "a mapping with the sections defaults, tenants, budgets, rules, prices, "
            "routing"
        ),
    ],
    "tab_indent": [
        (
            "tab_indent/tenants.yaml:3:1: error: invalid YAML: found character '\\t' "
            "that cannot start any token (while scanning for the next token): indent "
            "with spaces because YAML does not allow tabs"
        ),
    ],
    "two_defaults": [
        (
            "two_defaults/b.yaml:3:1: error: defaults: defaults are already set at "
            "two_defaults/a.yaml:1:1: keep one defaults section for all rule files"
        ),
    ],
    "unknown_budget_reference": [
        (
            "unknown_budget_reference/alerts.yaml:4:5: error: rules[0].budget: unknown "
            "budget 'monthly': use one of daily-spend, monthly-spend or define it "
            "under budgets"
        ),
    ],
    "unknown_field": [
        (
            "unknown_field/alerts.yaml:2:5: error: rules[0].window: missing required "
            "field 'window': add a duration such as 5m or 1h"
        ),
        (
            "unknown_field/alerts.yaml:4:5: error: rules[0].window_s: unknown field "
            f"'window_s': did you mean 'window'? Allowed: {_RULE_FIELDS}"
        ),
        (
            "unknown_field/alerts.yaml:6:5: error: rules[0].owner: unknown field "
            f"'owner': remove it or use one of {_RULE_FIELDS}"
        ),
    ],
    "unknown_tier": [
        (
            "unknown_tier/alerts.yaml:3:5: error: rules[0].tier: invalid tier "
            "'threshold': use one of absolute, rate_of_change, predictive"
        ),
        (
            "unknown_tier/alerts.yaml:6:5: error: rules[1].tier: missing required "
            "field 'tier': set it to one of absolute, rate_of_change, predictive"
        ),
    ],
    "unknown_timezone": [
        (
            "unknown_timezone/tenants.yaml:5:5: error: tenants[0].timezone: unknown "
            "time zone 'US/NewYork': use an IANA name such as Europe/Berlin"
        ),
    ],
    "wrong_type": [
        (
            "wrong_type/alerts.yaml:4:5: error: rules[0].series: invalid value "
            "'tenant': write a list of '- ' items here"
        ),
        (
            "wrong_type/alerts.yaml:6:5: error: rules[0].threshold: invalid value "
            "'lots': input should be a valid decimal"
        ),
        (
            "wrong_type/alerts.yaml:8:7: error: rules[0].labels.priority: invalid "
            "value 1: input should be a valid string, so put the value in quotes"
        ),
    ],
    "unknown_receiver": [
        (
            "unknown_receiver/routing.yaml:10:9: error: routing.route.routes[0]."
            "receiver: unknown receiver 'pagerduty-oncall': use one of slack-spend"
        ),
    ],
    "invalid_receiver_type": [
        (
            "invalid_receiver_type/routing.yaml:4:7: error: routing.receivers[0].type: "
            "invalid receiver type 'teams': use one of pagerduty, opsgenie, slack, "
            "email, webhook"
        ),
    ],
    "secret_in_file": [
        (
            "secret_in_file/routing.yaml:5:7: error: routing.receivers[0].webhook_url: "
            "webhook_url is written in the file: move the secret out and write "
            "${ENV:NAME}, set webhook_url_env: NAME or webhook_url_file: PATH"
        ),
    ],
    "signal_fields": [
        (
            "signal_fields/alerts.yaml:2:5: error: rules[0].threshold: missing required "
            "field 'threshold': add the value that fires the alert in the signal's "
            "unit, such as dollars for spend, milliseconds for ttft_ms or a fraction "
            "from 0 to 1 for error_rate"
        ),
        (
            "signal_fields/alerts.yaml:7:5: error: rules[1].min_requests: missing "
            f"required field 'min_requests' for signal error_rate: {_MIN_REQUESTS_FIX}"
        ),
        (
            "signal_fields/alerts.yaml:17:5: error: rules[2].threshold: threshold 5 is "
            "above 1 but error_rate is a ratio from 0 to 1: write 5 % as 0.05"
        ),
        (
            "signal_fields/alerts.yaml:22:5: error: rules[3].min_requests: "
            "min_requests 20 is set but signal is spend: min_requests applies to "
            "latency and ratio signals only, so remove it"
        ),
        (
            "signal_fields/alerts.yaml:24:5: error: rules[4].quantile: missing required "
            "field 'quantile' for signal ttft_ms: add quantile: 0.95 (above 0 and at "
            "most 1) for the p95"
        ),
    ],
    "reference_and_schema_errors": [
        (
            "reference_and_schema_errors/alerts.yaml:4:5: error: rules[0].window: "
            f"invalid duration '1hour': {_DURATION_FIX}"
        ),
        (
            "reference_and_schema_errors/alerts.yaml:8:5: error: rules[1].budget: "
            "unknown budget 'monthly': use one of monthly-spend or define it under "
            "budgets"
        ),
        (
            "reference_and_schema_errors/budgets.yaml:6:5: error: budgets[1].limit_usd: "
            "invalid value 'lots': input should be a valid decimal"
        ),
        (
            "reference_and_schema_errors/routing.yaml:10:9: error: "
            "routing.route.routes[0].receiver: unknown receiver 'pagerduty-oncall': "
            "use one of slack-spend"
        ),
        (
            "reference_and_schema_errors/tenants.yaml:4:5: error: tenants[1].id: "
            "tenant id 'acme' is already defined at "
            "reference_and_schema_errors/tenants.yaml:2:5: rename or remove one of them"
        ),
        (
            "reference_and_schema_errors/tenants.yaml:7:5: error: tenants[2].timezone: "
            "unknown time zone 'US/NewYork': use an IANA name such as Europe/Berlin"
        ),
    ],
    "misplaced_period_field": [
        (
            "misplaced_period_field/budgets.yaml:4:5: error: budgets[0].anchor_day: "
            "anchor_day is set but period is weekly: anchor_day applies to monthly "
            "periods only, so remove it or set period: monthly"
        ),
        (
            "misplaced_period_field/budgets.yaml:8:5: error: budgets[1].week_start: "
            "week_start is set but period is monthly: week_start applies to weekly "
            "periods only, so remove it or set period: weekly"
        ),
        (
            "misplaced_period_field/budgets.yaml:10:5: error: budgets[2].anchor_day: "
            "invalid value 32: input should be less than or equal to 31"
        ),
    ],
}


def _write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


@pytest.mark.parametrize("kind", sorted(INVALID_CASES))
def test_invalid_fixture_messages(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each invalid fixture folder yields exactly its pinned messages."""
    monkeypatch.chdir(INVALID)

    ruleset, problems = check_rules(Path(kind))

    assert ruleset is None
    assert [str(problem) for problem in problems] == INVALID_CASES[kind]


def test_every_fixture_folder_has_case() -> None:
    """Every folder under rules_invalid has pinned messages, and the reverse."""
    folders = {path.name for path in INVALID.iterdir() if path.is_dir()}

    assert folders == set(INVALID_CASES)


def test_invalid_fixtures_raise_rule_error() -> None:
    """load_rules raises RuleError whose text lists every problem."""
    with pytest.raises(RuleError) as caught:
        load_rules(INVALID / "unknown_field")

    assert len(caught.value.problems) == 3
    lines = str(caught.value).splitlines()
    assert lines[0] == "3 problems in rule files:"
    assert lines[1:] == [str(problem) for problem in caught.value.problems]


def test_example_rules_are_clean() -> None:
    """The example rules load with no error and no warning."""
    ruleset, problems = check_rules(EXAMPLE_RULES)

    assert problems == []
    assert ruleset is not None
    assert [tenant.id for tenant in ruleset.tenants] == ["acme", "globex"]
    assert ruleset.timezone_of("acme") == "America/New_York"
    assert ruleset.timezone_of("initech") == "UTC"
    assert [budget.id for budget in ruleset.budgets] == ["monthly-spend", "daily-spend"]
    assert len(ruleset.prices) == 2


def test_example_rules_values() -> None:
    """The example spike rule and prices carry the documented values exactly."""
    ruleset = load_rules(EXAMPLE_RULES)

    rules = {rule.id: rule for rule in ruleset.rules}
    spike = rules["spend-spike"]
    assert isinstance(spike, RateOfChangeRule)
    assert spike.window_s == 3600
    assert spike.min_ratio == Decimal(2)
    assert spike.min_increase == Decimal(25)
    assert spike.baseline_weeks == 1
    assert spike.for_s == 600
    assert isinstance(rules["hourly-spend-high"], ThresholdRule)
    forecast = rules["month-end-forecast"]
    assert isinstance(forecast, ForecastRule)
    assert ruleset.budget(forecast.budget, "acme") is not None
    monthly = ruleset.budgets[0]
    assert monthly.thresholds_pct == (Decimal(50), Decimal(80), Decimal(100))
    assert ruleset.prices[1].input_per_mtok_usd == Decimal("0.30")


def test_run_check_examples_output() -> None:
    """run_check on the examples prints only the summary and returns 0."""
    out = io.StringIO()

    code = run_check(EXAMPLE_RULES, out)

    assert code == 0
    assert out.getvalue() == (
        f"{EXAMPLE_RULES}: 5 files, 2 tenants, 2 budgets, 5 rules, "
        "2 price overrides: 0 errors, 0 warnings\n"
    )


WARNING_RULES = {
    "budgets.yaml": """\
budgets:
  - id: monthly-spend
    tenant: acme
    limit_usd: 1000
    thresholds_pct: [50, 80]
  - id: monthly-tokens
    limit_tokens: 1000000
""",
    "alerts.yaml": """\
rules:
  - id: spend-high
    tier: absolute
    window: 30s
    threshold: 5
  - id: spend-spike
    tier: rate_of_change
    window: 1h
    min_ratio: 2
    min_increase: 0
  - id: month-end-forecast
    tier: predictive
    budget: monthly-spend
    tenants: [acme, globex]
  - id: token-forecast
    tier: predictive
    budget: monthly-tokens
    tenants: [globex]
""",
}

EXPECTED_WARNINGS = [
    (
        "rules/alerts.yaml:4:5: warning: rules[0].window: window 30s is shorter than "
        "60s, so the total covers few requests and is noisy: use 1m or more"
    ),
    (
        "rules/alerts.yaml:10:5: warning: rules[1].min_increase: min_increase is 0, "
        "so there is no absolute floor and tiny amounts can fire: set the smallest "
        "increase worth an alert, in the signal's unit"
    ),
    (
        "rules/alerts.yaml:13:5: warning: rules[2].budget: budget 'monthly-spend' "
        "does not exist for tenant 'globex', so this rule never fires for them: "
        "define the budget for those tenants or for '*'"
    ),
    (
        "rules/alerts.yaml:17:5: warning: rules[3].budget: budget 'monthly-tokens' "
        "for tenant '*' sets limit_tokens, but the forecast covers spend only, so "
        "this rule never fires for it: refer to a budget with limit_usd"
    ),
    (
        "rules/budgets.yaml:5:5: warning: budgets[0].thresholds_pct: thresholds_pct "
        "[50, 80] has no 100, so reaching the budget itself raises no alert: add 100"
    ),
]


def test_warnings_pinned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Risky settings give warnings at the key's line and keep the rule set."""
    _write(tmp_path / "rules", WARNING_RULES)
    monkeypatch.chdir(tmp_path)

    ruleset, problems = check_rules(Path("rules"))

    assert ruleset is not None
    assert [str(problem) for problem in problems] == EXPECTED_WARNINGS


def test_own_budget_keeps_shared_budgets(tmp_path: Path) -> None:
    """A tenant with a budget of its own still has the '*' budget a rule names."""
    rules = _write(
        tmp_path / "rules",
        {
            "rules.yaml": """\
budgets:
  - id: monthly-spend
    limit_usd: 1000
  - id: daily-spend
    tenant: acme
    period: daily
    limit_usd: 50
rules:
  - id: month-end-forecast
    tier: predictive
    budget: monthly-spend
""",
        },
    )

    ruleset, problems = check_rules(rules)

    assert problems == []
    assert ruleset is not None
    assert [b.id for b in ruleset.budgets_for("acme")] == ["daily-spend", "monthly-spend"]


def test_forecast_budget_missing_for_listed_tenant(tmp_path: Path) -> None:
    """A rule for a tenant that lacks the named budget gets a warning on its line."""
    rules = _write(
        tmp_path / "rules",
        {
            "rules.yaml": """\
budgets:
  - id: monthly-spend
    tenant: globex
    limit_usd: 1000
rules:
  - id: month-end-forecast
    tier: predictive
    tenants: [acme]
    budget: monthly-spend
""",
        },
    )

    _, problems = check_rules(rules)

    assert len(problems) == 1
    assert problems[0].severity == "warning"
    assert problems[0].line == 9
    assert "does not exist for tenant 'acme', so" in problems[0].message


def test_run_check_exit_codes(tmp_path: Path) -> None:
    """Warnings pass unless strict; errors always fail."""
    warned = _write(tmp_path / "warned", WARNING_RULES)
    broken = INVALID / "wrong_type"

    codes = {
        "warnings": run_check(warned, io.StringIO()),
        "warnings strict": run_check(warned, io.StringIO(), strict=True),
        "errors": run_check(broken, io.StringIO()),
    }

    assert codes == {"warnings": 0, "warnings strict": 1, "errors": 1}


def test_run_check_error_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    """run_check prints each error then a count of errors and warnings."""
    monkeypatch.chdir(INVALID)
    out = io.StringIO()

    run_check(Path("unknown_tier"), out)

    lines = out.getvalue().splitlines()
    assert lines[:2] == INVALID_CASES["unknown_tier"]
    assert lines[2] == "unknown_tier: 2 errors, 0 warnings"
    assert len(lines) == 3


def test_load_rules_ignores_warnings(tmp_path: Path) -> None:
    """load_rules returns the rule set when there are only warnings."""
    rules = _write(tmp_path / "rules", WARNING_RULES)

    ruleset = load_rules(rules)

    assert next(rule.id for rule in ruleset.rules) == "spend-high"


def test_missing_path(tmp_path: Path) -> None:
    """A path that does not exist is one file-level error."""
    missing = tmp_path / "nope"

    ruleset, problems = check_rules(missing)

    assert ruleset is None
    assert [str(problem) for problem in problems] == [
        f"{missing}: error: file or folder not found"
    ]


def test_folder_file_selection(tmp_path: Path) -> None:
    """A folder loads *.yaml and *.yml sorted by name, skipping dot files."""
    rule = "rules:\n  - {{id: {id}, tier: absolute, window: 1h, threshold: 1}}\n"
    folder = _write(
        tmp_path / "rules",
        {
            "b.yml": rule.format(id="from-b"),
            "a.yaml": rule.format(id="from-a"),
            ".#a.yaml": "not: [valid",
            "notes.txt": "not: [valid",
        },
    )

    ruleset = load_rules(folder)

    assert [rule.id for rule in ruleset.rules] == ["from-a", "from-b"]


def test_single_file_path(tmp_path: Path) -> None:
    """A file path loads that file alone, whatever its suffix."""
    path = tmp_path / "team.rules"
    path.write_text("tenants:\n  - id: acme\n", encoding="utf-8")

    ruleset = load_rules(path)

    assert [tenant.id for tenant in ruleset.tenants] == ["acme"]


def test_yaml12_scalars(tmp_path: Path) -> None:
    """Scalars follow YAML 1.2: no is a string, 030 is 30, 0.1 is an exact Decimal."""
    path = tmp_path / "rules.yaml"
    path.write_text(
        """\
tenants:
  - id: no
    labels: {region: on}
budgets:
  - id: small
    limit_usd: 0.1
    thresholds_pct: [12.5, 100]
rules:
  - id: forecast
    tier: predictive
    budget: small
    history_days: 030
""",
        encoding="utf-8",
    )

    ruleset = load_rules(path)

    assert ruleset.tenants[0].id == "no"
    assert ruleset.tenants[0].labels == {"region": "on"}
    assert ruleset.budgets[0].limit_usd == Decimal("0.1")
    assert str(ruleset.budgets[0].limit_usd) == "0.1"
    assert ruleset.budgets[0].thresholds_pct == (Decimal("12.5"), Decimal(100))
    forecast = ruleset.rules[0]
    assert isinstance(forecast, ForecastRule)
    assert forecast.history_days == 30


def test_merge_key_error_location(tmp_path: Path) -> None:
    """An invalid value merged in with '<<' points at the anchor's line."""
    path = tmp_path / "alerts.yaml"
    path.write_text(
        """\
rules:
  - &hourly
    id: hourly
    tier: absolute
    window: 1hour
    threshold: 5
  - <<: *hourly
    id: hourly-eu
""",
        encoding="utf-8",
    )

    _, problems = check_rules(path)

    assert [(p.line, p.column, p.field) for p in problems] == [
        (5, 5, "rules[0].window"),
        (5, 5, "rules[1].window"),
    ]


def test_merge_key_override_not_duplicate(tmp_path: Path) -> None:
    """A key that overrides a merged one is not a duplicate key."""
    path = tmp_path / "alerts.yaml"
    path.write_text(
        """\
rules:
  - &hourly {id: hourly, tier: absolute, window: 1h, threshold: 5}
  - <<: *hourly
    id: daily
    window: 1d
""",
        encoding="utf-8",
    )

    ruleset, problems = check_rules(path)

    assert problems == []
    assert ruleset is not None
    assert [rule.id for rule in ruleset.rules] == ["hourly", "daily"]


def test_budget_id_per_tenant(tmp_path: Path) -> None:
    """A budget id may repeat for another tenant but not for the same one."""
    path = tmp_path / "budgets.yaml"
    path.write_text(
        """\
budgets:
  - {id: monthly-spend, limit_usd: 100}
  - {id: monthly-spend, tenant: acme, limit_usd: 500}
  - {id: monthly-spend, tenant: acme, limit_usd: 900}
""",
        encoding="utf-8",
    )

    _, problems = check_rules(path)

    assert [str(problem) for problem in problems] == [
        (
            f"{path}:4:6: error: budgets[2].id: budget id 'monthly-spend' for tenant "
            f"'acme' is already defined at {path}:3:6: rename or remove one of them"
        )
    ]


def test_unknown_yaml_tag(tmp_path: Path) -> None:
    """A Python object tag is rejected at its position, never constructed."""
    path = tmp_path / "alerts.yaml"
    path.write_text("rules: !!python/object:os.system [echo]\n", encoding="utf-8")

    _, problems = check_rules(path)

    assert [(p.line, p.column) for p in problems] == [(1, 8)]
    assert problems[0].message.startswith(
        "invalid YAML: could not determine a constructor for the tag "
        "'tag:yaml.org,2002:python/object:os.system'"
    )


# A check across fields reports at the line of the field it blames.
FIELD_CHECK_CASES = [
    (
        """\
budgets:
  - id: monthly-spend
    limit_usd: 100
    gateway:
      warn_at_pct: 90
      block_at_pct: 50
""",
        (
            5,
            "budgets[0].gateway.warn_at_pct",
            (
                "warn_at_pct 90 is above block_at_pct 50: levels must rise from warn "
                "to degrade to block"
            ),
        ),
    ),
    (
        """\
budgets:
  - id: monthly-spend
    limit_usd: 100
    gateway:
      degrade_at_pct: 90
""",
        (
            4,
            "budgets[0].gateway.degrade_to",
            (
                "degrade_at_pct is set but degrade_to is empty: map each model to its "
                "smaller model, for example {gpt-4o: gpt-4o-mini}"
            ),
        ),
    ),
    (
        """\
rules:
  - id: spike
    tier: rate_of_change
    window: 2h
    baseline_period: 1h
    min_ratio: 2
    min_increase: 5
""",
        (
            5,
            "rules[0].baseline_period",
            (
                "baseline_period 3600s is shorter than window 7200s: the earlier "
                "windows would overlap"
            ),
        ),
    ),
    (
        """\
rules:
  - id: spike
    tier: rate_of_change
    window: 1h
    baseline_period: 1h
    recent_windows: 3
    min_ratio: 2
    min_increase: 5
""",
        (
            6,
            "rules[0].recent_windows",
            (
                "recent_windows 3 of 3600s reach further back than the 3600s of "
                "baseline history that is kept: use fewer recent windows or more "
                "baseline periods"
            ),
        ),
    ),
]


@pytest.mark.parametrize(("text", "expected"), FIELD_CHECK_CASES)
def test_field_check_points_at_field(
    tmp_path: Path, text: str, expected: tuple[int, str, str]
) -> None:
    """An error of a check across fields is reported on the blamed key's line."""
    path = tmp_path / "rules.yaml"
    path.write_text(text, encoding="utf-8")

    _, problems = check_rules(path)

    assert [(p.line, p.field, p.message) for p in problems] == [expected]


BUDGETS = """\
budgets:
  - id: monthly-spend
    limit_usd: 5000
"""


def test_budget_in_invalid_entry_not_unknown(tmp_path: Path) -> None:
    """A budget whose own entry is invalid is not reported as unknown."""
    rules = _write(
        tmp_path / "rules",
        {
            "budgets.yaml": BUDGETS + "  - id: daily-spend\n    limit_usd: lots\n",
            "alerts.yaml": (
                "rules:\n  - id: daily-forecast\n    tier: predictive\n"
                "    budget: daily-spend\n"
            ),
        },
    )

    _, problems = check_rules(rules)

    assert [p.field for p in problems] == ["budgets[1].limit_usd"]


def test_unreadable_file_hides_unknown_budget(tmp_path: Path) -> None:
    """A file that is not valid YAML may define any budget: a warning, no unknown."""
    rules = _write(
        tmp_path / "rules",
        {
            "budgets.yaml": BUDGETS,
            "more_budgets.yaml": "budgets: [\n",
            "alerts.yaml": (
                "rules:\n  - id: forecast\n    tier: predictive\n    budget: weekly\n"
            ),
        },
    )

    _, problems = check_rules(rules)

    assert [(p.path.name, p.severity) for p in problems] == [
        ("rules", "warning"),
        ("more_budgets.yaml", "error"),
    ]
    assert problems[0].message == (
        "the budget references of 1 forecast rule were not checked because the "
        f"budget ids in {rules / 'more_budgets.yaml'} could not be read: fix it and "
        "run check again"
    )
    assert problems[1].message.startswith("invalid YAML:")


def test_check_names_unchecked_references(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check output names the files that kept references from being checked."""
    monkeypatch.chdir(tmp_path)
    _write(
        tmp_path / "rules",
        {
            "alerts.yaml": (
                "rules:\n"
                "  - {id: month-end, tier: predictive, budget: monthly-spnd}\n"
                "  - {id: week-end, tier: predictive, budget: weekly}\n"
            ),
            "budgets.yaml": "budgets: {id: monthly-spend, limit_usd: 100}\n",
            "tenants.yaml": "tenants: [\n",
        },
    )
    out = io.StringIO()

    code = run_check(Path("rules"), out)

    lines = out.getvalue().splitlines()
    assert code == 1
    assert lines[0] == (
        "rules: warning: the budget references of 2 forecast rules were not checked "
        "because the budget ids in rules/budgets.yaml, rules/tenants.yaml could not "
        "be read: fix them and run check again"
    )
    assert lines[-1] == "rules: 2 errors, 1 warning"


def test_checked_references_no_warning(tmp_path: Path) -> None:
    """References that resolve need no warning when another file cannot be read."""
    rules = _write(
        tmp_path / "rules",
        {
            "budgets.yaml": BUDGETS,
            "more_budgets.yaml": "budgets: [\n",
            "alerts.yaml": (
                "rules:\n  - id: forecast\n    tier: predictive\n"
                "    budget: monthly-spend\n"
            ),
        },
    )

    _, problems = check_rules(rules)

    assert [(p.path.name, p.severity) for p in problems] == [
        ("more_budgets.yaml", "error")
    ]


def test_problem_str_whole_file() -> None:
    """A problem without a line prints the path, severity and message only."""
    problem = Problem(Path("rules/a.yaml"), 0, 0, "", "file is empty", "error")

    text = str(problem)

    assert text == "rules/a.yaml: error: file is empty"
