"""Tests for ``burnrate test``: the value notation, the shipped rule tests, failing diffs."""

from __future__ import annotations

import io
from decimal import Decimal
from pathlib import Path

import pytest

from detector.cli import main
from detector.errors import RuleError
from detector.ruletest import expand_values, load_test_file, run_files

REPO = Path(__file__).resolve().parent.parent
RULE_TESTS = REPO / "rules" / "tests"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "ruletest"

BROKEN_OUTPUT = """\
FAILED  broken/tests/hourly.yaml: hourly threshold fires at $200
  at 2026-05-04T14:20:00+00:00: firing alerts differ
    --- expected
    +++ actual
    @@ -1 +0,0 @@
    -tier=absolute rule=hourly-spend-high tenant=acme observed=200
ok      broken/tests/hourly.yaml: no alert under $200
FAILED  broken/tests/hourly.yaml: alert at $300 is a warning
  at 2026-05-04T14:30:00+00:00: firing alerts differ
    --- expected
    +++ actual
    @@ -1 +1 @@
    -rule=hourly-spend-high severity=warning observed=300 threshold=300
    +rule=hourly-spend-high severity=critical observed=300 threshold=300
1 passed, 2 failed
"""


def test_expand_values_terms() -> None:
    """Each term expands to its steps: single, repeated, rising, falling, idle."""
    steps = expand_values("2.5 1x2 0.5+0.25x3 1-0.5x3 _x2")

    assert steps == [
        Decimal("2.5"),
        Decimal(1),
        Decimal(1),
        Decimal("0.5"),
        Decimal("0.75"),
        Decimal("1.00"),
        Decimal(1),
        Decimal("0.5"),
        Decimal("0.0"),
        None,
        None,
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2.5y3", "invalid value term '2.5y3'"),
        ("_+1x3", "'_' takes no step"),
        ("1-1x3", "value term '1-1x3' goes below 0 at step 3"),
    ],
)
def test_expand_values_rejects(text: str, message: str) -> None:
    """An invalid term raises ValueError that names the term."""
    with pytest.raises(ValueError) as caught:
        expand_values(text)

    assert message in str(caught.value)


def test_shipped_rule_tests_pass() -> None:
    """The tests in rules/tests pass against the example rules."""
    out = io.StringIO()

    code = run_files([RULE_TESTS], out)

    lines = out.getvalue().splitlines()
    assert code == 0, out.getvalue()
    assert lines[-1] == "5 passed, 0 failed"
    assert all(line.startswith("ok ") for line in lines[:-1])


def test_broken_rule_fails_with_diff(monkeypatch: pytest.MonkeyPatch) -> None:
    """A rule changed under its test fails with expected against actual as a diff."""
    monkeypatch.chdir(FIXTURES)
    out = io.StringIO()

    code = run_files([Path("broken/tests/hourly.yaml")], out)

    assert code == 1
    assert out.getvalue() == BROKEN_OUTPUT


def test_cli_test_exit_code(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``burnrate test`` returns 1 for the broken fixture and prints the summary."""
    monkeypatch.chdir(FIXTURES)

    code = main(["test", "broken/tests"])

    assert code == 1
    assert capsys.readouterr().out.endswith("1 passed, 2 failed\n")


def test_invalid_test_file_located(tmp_path: Path) -> None:
    """A test file with an unknown field and a bad value term names file and line."""
    path = tmp_path / "bad.yaml"
    path.write_text(
        "tests:\n"
        "  - name: bad\n"
        "    series:\n"
        "      acme: {start: '2026-05-04T14:00:00Z', values: '1x2 oops'}\n"
        "    expect:\n"
        "      - at: '2026-05-04T15:00:00Z'\n"
        "        alert: []\n",
        encoding="utf-8",
    )

    with pytest.raises(RuleError) as caught:
        load_test_file(path)

    messages = [str(problem) for problem in caught.value.problems]
    assert messages == [
        (
            f"{path}:4:7: error: tests[0].series.acme: invalid value term 'oops': "
            "write 2.5, 2.5x4, 0.5+0.1x10 or _x60"
        ),
        (
            f"{path}:6:9: error: tests[0].expect[0].alerts: missing required field "
            "'alerts': add it"
        ),
        (
            f"{path}:7:9: error: tests[0].expect[0].alert: unknown field 'alert': "
            "remove it"
        ),
    ]


def test_rules_file_named_as_such(tmp_path: Path) -> None:
    """A rules file given as a test is rejected with the tests folder named."""
    path = tmp_path / "budgets.yaml"
    path.write_text("budgets:\n  - id: daily\n    limit_usd: 5\n", encoding="utf-8")

    with pytest.raises(RuleError) as caught:
        load_test_file(path)

    assert [str(problem) for problem in caught.value.problems] == [
        (
            f"{path}:1:1: error: this is a rules file, not a rule test file (it has "
            "no tests key): pass the folder or files of the tests, for example "
            "rules/tests/"
        )
    ]


def test_unknown_top_level_key_lists_test_fields(tmp_path: Path) -> None:
    """An unknown key at the top of a test file lists the test file's fields."""
    path = tmp_path / "typo.yaml"
    path.write_text("rules: ..\ntests: []\ndefaults: {}\n", encoding="utf-8")

    with pytest.raises(RuleError) as caught:
        load_test_file(path)

    assert [str(problem) for problem in caught.value.problems] == [
        (
            f"{path}:3:1: error: defaults: unknown field 'defaults': remove it or "
            "use one of rules, tests"
        )
    ]
