"""Replaying event files: what the backtest accepts, rejects, alerts on and writes."""

from __future__ import annotations

import gzip
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from detector.backtest import StagedOutputs, WatermarkJump, replay
from detector.cli import main
from detector.config import RuleSet

RULES = RuleSet.model_validate(
    {
        "rules": [
            {
                "id": "hourly-spend",
                "tier": "absolute",
                "signal": "spend",
                "window": "1h",
                "threshold": 200,
            }
        ]
    }
)


def _line(request_id: str, timestamp: datetime, cost_usd: str) -> str:
    document = {
        "timestamp": timestamp.isoformat(),
        "request_id": request_id,
        "tenant": "acme",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.usage.input_tokens": 10,
        "gen_ai.usage.output_tokens": 10,
        "cost_usd": cost_usd,
    }
    return json.dumps(document) + "\n"


def test_future_event_is_rejected(tmp_path: Path) -> None:
    """An event ten years ahead is rejected and later events still fill the hour."""
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    future = start + timedelta(days=3650)
    events = tmp_path / "events.jsonl"
    events.write_text(
        _line("r-1", start, "150")
        + _line("r-2", future, "1")
        + _line("r-3", start + timedelta(minutes=1), "150")
    )
    rejects = io.BytesIO()

    result = replay(RULES, [events], rejects_out=rejects)

    assert result.rejected == {"timestamp_in_future": 1}
    entry = json.loads(rejects.getvalue().decode())
    assert entry["reason"] == "timestamp_in_future"
    assert entry["line"] == 2
    firing = [r for r in result.records if r.status == "firing"]
    assert [r.rule_id for r in firing] == ["hourly-spend"]
    assert str(firing[0].observed) == "300"
    assert result.engine.stats.late == 0


# ---------------------------------------------------------------------------
# The command line: errors on stderr, outputs replaced only on success
# ---------------------------------------------------------------------------

RULES_YAML = """\
rules:
  - id: hourly-spend
    tier: absolute
    window: 1h
    threshold: 200
"""
INVALID_RULES_ERROR = (
    "error: rules are invalid\n"
    "1 problem in rule files:\n"
    "{path}:2:5: error: rules[0].window: missing required field 'window': add a "
    "duration such as 5m or 1h\n"
)
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _rules(folder: Path, text: str = RULES_YAML) -> Path:
    folder.mkdir()
    (folder / "alerts.yaml").write_text(text)
    return folder


def _events(path: Path) -> Path:
    """Write two $150 requests a minute apart, which fire hourly-spend."""
    path.write_text(
        _line("r-1", START, "150") + _line("r-2", START + timedelta(minutes=1), "150")
    )
    return path


def _truncated_gzip(path: Path) -> Path:
    data = gzip.compress(_events(path.with_suffix("")).read_bytes() * 200)
    path.write_bytes(data[: len(data) // 2])
    return path


def _series(path: Path, rows: list[str]) -> Path:
    path.write_text("timestamp,value\n" + "".join(f"{row}\n" for row in rows))
    return path


def _backtest(rules: Path, out: Path, *arguments: str) -> int:
    options = ["--rules", str(rules), "--out", str(out), "--no-progress"]
    return main(["backtest", *arguments, *options])


def _listing(folder: Path) -> dict[str, str]:
    return {path.name: path.read_text() for path in sorted(folder.iterdir())}


def test_missing_events_file_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A missing events file exits 2 with the error on stderr only."""
    missing = tmp_path / "missing.jsonl"

    code = _backtest(_rules(tmp_path / "rules"), tmp_path / "out", str(missing))

    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    assert captured.err == f"error: events file {missing} not found\n"


@pytest.mark.parametrize("events_name", ["events.jsonl", "series.csv"])
def test_invalid_rules_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], events_name: str
) -> None:
    """Invalid rules exit 1 with every problem on stderr, one line each."""
    rules = _rules(
        tmp_path / "rules",
        "rules:\n  - id: hourly-spend\n    tier: absolute\n    threshold: 200\n",
    )
    events = tmp_path / events_name
    if events_name.endswith(".csv"):
        _series(events, ["2026-03-02 09:00:00,1"])
    else:
        _events(events)

    code = _backtest(rules, tmp_path / "out", str(events))

    captured = capsys.readouterr()
    assert code == 1
    assert captured.out == ""
    assert captured.err == INVALID_RULES_ERROR.format(path=rules / "alerts.yaml")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("bad.jsonl.gz", b"xx", "Not a gzipped file (b'xx')"),
        (
            "truncated.jsonl.gz",
            None,
            "Compressed file ended before the end-of-stream marker was reached",
        ),
        (
            "corrupt.jsonl.gz",
            gzip.compress(b"{}\n" * 1000)[:10] + b"\xff" * 40,
            "Error -3 while decompressing data: invalid block type",
        ),
    ],
    ids=["not-gzip", "truncated", "corrupt"],
)
def test_unreadable_gzip_on_stderr(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    content: bytes | None,
    reason: str,
) -> None:
    """A gzip file that cannot be decompressed exits 2 and names the file."""
    rules = _rules(tmp_path / "rules")
    events = tmp_path / name
    if content is None:
        _truncated_gzip(events)
    else:
        events.write_bytes(content)

    code = _backtest(rules, tmp_path / "out", str(events), "--quiet")

    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == f"Rules: {rules.resolve()}\n"
    assert captured.err == f"error: cannot read events file {events}: {reason}\n"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            ["series.csv", "events.jsonl"],
            (
                "CSV series and JSON Lines files cannot be replayed together: run "
                "one backtest for each kind"
            ),
        ),
        (
            ["series.csv", "--report", "report"],
            "--report and --compare apply to JSON Lines events, not to CSV series",
        ),
        (
            ["events.jsonl", "--series-step", "60"],
            "--series-step applies to CSV series only",
        ),
        (
            ["events.jsonl", "--compare", "rules"],
            "--compare needs --report DIR for its output",
        ),
        (
            ["series.csv", "copy/series.csv"],
            (
                "several series files are named series.csv, so they would share "
                "series.alerts.csv: rename them"
            ),
        ),
    ],
)
def test_invalid_usage_on_stderr(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    arguments: list[str],
    message: str,
) -> None:
    """Inputs and options that do not go together exit 2 before any replay."""
    monkeypatch.chdir(tmp_path)
    _rules(tmp_path / "rules")
    _events(tmp_path / "events.jsonl")
    _series(tmp_path / "series.csv", ["2026-03-02 09:00:00,1"])
    (tmp_path / "copy").mkdir()
    _series(tmp_path / "copy" / "series.csv", ["2026-03-02 09:00:00,1"])

    code = _backtest(Path("rules"), Path("out"), *arguments)

    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    assert captured.err == f"error: {message}\n"
    assert not (tmp_path / "out").exists()


def test_late_events_warning_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The late-events warning goes to stderr, and the summary stays on stdout."""
    events = tmp_path / "events.jsonl"
    events.write_text(
        _line("r-1", START + timedelta(hours=1), "1") + _line("r-2", START, "1")
    )

    code = _backtest(_rules(tmp_path / "rules"), tmp_path / "out", str(events))

    captured = capsys.readouterr()
    assert code == 0
    assert "Backtest summary" in captured.out
    assert "events arrived more than" not in captured.out
    assert captured.err.startswith(
        "warning: 1 events arrived more than 300 s behind the newest event"
    )


def test_replay_writes_outputs(tmp_path: Path) -> None:
    """A replay that succeeds writes both files and leaves no temporary file."""
    out = tmp_path / "out"

    events = _events(tmp_path / "e.jsonl")

    code = _backtest(_rules(tmp_path / "rules"), out, str(events))

    files = _listing(out)
    alerts = [json.loads(line) for line in files["alerts.jsonl"].splitlines()]
    assert code == 0
    assert sorted(files) == ["alerts.jsonl", "rejected.jsonl"]
    assert [alert["rule_id"] for alert in alerts] == ["hourly-spend"]
    assert files["rejected.jsonl"] == ""


def test_failed_replay_keeps_outputs(tmp_path: Path) -> None:
    """A replay that fails on its second file leaves the earlier outputs untouched."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "alerts.jsonl").write_text("earlier run\n")
    events = _events(tmp_path / "first.jsonl")
    truncated = _truncated_gzip(tmp_path / "second.jsonl.gz")

    code = _backtest(_rules(tmp_path / "rules"), out, str(events), str(truncated))

    assert code == 2
    assert _listing(out) == {"alerts.jsonl": "earlier run\n"}


def test_failed_series_keeps_outputs(tmp_path: Path) -> None:
    """A bad row in the second series file leaves no output from the first one."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "alerts.jsonl").write_text("earlier run\n")
    good = _series(tmp_path / "good.csv", ["2026-03-02 09:00:00,1"])
    bad = _series(tmp_path / "bad.csv", ["2026-03-02 09:00:00,1", "garbage,row"])

    code = _backtest(_rules(tmp_path / "rules"), out, str(good), str(bad))

    assert code == 2
    assert _listing(out) == {"alerts.jsonl": "earlier run\n"}


def test_series_writes_outputs(tmp_path: Path) -> None:
    """A series run that succeeds writes alerts.jsonl and one alert column per file."""
    out = tmp_path / "out"
    rows = ["2026-03-02 09:00:00,150", "2026-03-02 09:01:00,150"]
    series = _series(tmp_path / "s.csv", rows)

    code = _backtest(_rules(tmp_path / "rules"), out, str(series))

    files = _listing(out)
    assert code == 0
    assert sorted(files) == ["alerts.jsonl", "s.alerts.csv"]
    assert files["s.alerts.csv"].splitlines() == [
        "timestamp,value,alert",
        "2026-03-02 09:00:00,150,0",
        "2026-03-02 09:01:00,150,1",
    ]


def test_staged_outputs_removed_on_error(tmp_path: Path) -> None:
    """An exception inside the block keeps the target and removes the temporary file."""
    target = tmp_path / "alerts.jsonl"
    target.write_text("earlier run\n")

    with pytest.raises(RuntimeError), StagedOutputs() as outputs:
        outputs.stage(target).write_text("partial\n")
        raise RuntimeError("replay failed")

    assert _listing(tmp_path) == {"alerts.jsonl": "earlier run\n"}


# ---------------------------------------------------------------------------
# Input without valid events, rejected lines and late events
# ---------------------------------------------------------------------------


def _earlier_run(out: Path) -> None:
    out.mkdir()
    (out / "alerts.jsonl").write_text("earlier alerts\n")
    (out / "rejected.jsonl").write_text("earlier rejects\n")


def test_all_lines_rejected_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Input whose every line is rejected exits 2 and keeps only rejected.jsonl."""
    out = tmp_path / "out"
    _earlier_run(out)
    events = tmp_path / "notes.md"
    events.write_text("# Notes\n\n" + _line("r-1", START, "-1") + "plain text\n")
    rules = _rules(tmp_path / "rules")

    code = _backtest(rules, out, str(events))

    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == f"Rules: {rules.resolve()}\n"
    assert captured.err == (
        f"error: no valid event in {events}: 3 records rejected (invalid_json 2, "
        f"negative_value 1), each listed with its line and reason in "
        f"{out / 'rejected.jsonl'}\n"
    )
    files = _listing(out)
    assert sorted(files) == ["alerts.jsonl", "rejected.jsonl"]
    assert files["alerts.jsonl"] == "earlier alerts\n"
    rejects = [json.loads(line) for line in files["rejected.jsonl"].splitlines()]
    assert [(entry["line"], entry["reason"]) for entry in rejects] == [
        (1, "invalid_json"),
        (3, "negative_value"),
        (4, "invalid_json"),
    ]


@pytest.mark.parametrize("content", ["", "\n\n"], ids=["empty", "blank-lines"])
def test_empty_input_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str
) -> None:
    """Empty input files exit 2 and leave every file in --out as it was."""
    out = tmp_path / "out"
    _earlier_run(out)
    first = tmp_path / "first.jsonl"
    second = tmp_path / "second.jsonl"
    first.write_text(content)
    second.write_text(content)

    code = _backtest(_rules(tmp_path / "rules"), out, str(first), str(second))

    captured = capsys.readouterr()
    assert code == 2
    assert captured.err == (
        f"error: no valid event in {first}, {second}: the input is empty or has "
        "only blank lines\n"
    )
    assert _listing(out) == {
        "alerts.jsonl": "earlier alerts\n",
        "rejected.jsonl": "earlier rejects\n",
    }


def test_many_empty_inputs_named_briefly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With more than three inputs the message names the first three and a count."""
    paths = [tmp_path / f"part-{index}.jsonl" for index in range(5)]
    for path in paths:
        path.write_text("")

    code = _backtest(_rules(tmp_path / "rules"), tmp_path / "out", *map(str, paths))

    captured = capsys.readouterr()
    assert code == 2
    assert captured.err == (
        f"error: no valid event in {paths[0]}, {paths[1]}, {paths[2]} and 2 other "
        "files: the input is empty or has only blank lines\n"
    )


def test_some_lines_rejected_warns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A replay with valid events and one rejected line exits 0 with one warning."""
    out = tmp_path / "out"
    events = tmp_path / "events.jsonl"
    events.write_text(_events(events).read_text() + "not json\n")

    code = _backtest(_rules(tmp_path / "rules"), out, str(events))

    captured = capsys.readouterr()
    assert code == 0
    assert captured.err == (
        "warning: 1 record rejected (invalid_json 1), each listed with its line "
        f"and reason in {out / 'rejected.jsonl'}\n"
    )
    assert sorted(_listing(out)) == ["alerts.jsonl", "rejected.jsonl"]


def test_replay_records_largest_jump(tmp_path: Path) -> None:
    """The replay names the event that moved the watermark furthest in one step."""
    events = tmp_path / "events.jsonl"
    events.write_text(
        _line("r-1", START, "1")
        + _line("r-2", START + timedelta(hours=1), "1")
        + "\n"
        + _line("r-3", START + timedelta(days=2), "1")
        + _line("r-4", START + timedelta(days=2, hours=1), "1")
    )

    result = replay(RULES, [events])

    assert result.largest_jump == WatermarkJump(
        events, 4, START + timedelta(days=2), 47 * 3600
    )


@pytest.mark.parametrize(
    ("jump", "span"),
    [
        (timedelta(days=183), "183 days"),
        (timedelta(days=1), "1 day"),
        (timedelta(minutes=90), "1.5 hours"),
        (timedelta(minutes=6), "6 minutes"),
    ],
)
def test_late_warning_names_jump(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], jump: timedelta, span: str
) -> None:
    """The late-events warning names the file, line and size of the largest jump."""
    ahead = START + timedelta(minutes=1) + jump
    events = tmp_path / "events.jsonl"
    events.write_text(
        _line("r-1", START, "1")
        + _line("r-2", START + timedelta(minutes=1), "1")
        + _line("r-3", ahead, "1")
        + _line("r-4", START, "1")
        + _line("r-5", START + timedelta(seconds=30), "1")
    )

    code = _backtest(_rules(tmp_path / "rules"), tmp_path / "out", str(events))

    captured = capsys.readouterr()
    assert code == 0
    assert captured.err == (
        "warning: 2 events arrived more than 300 s behind the newest event and were "
        "left out of the windows (they still count in budgets). The largest jump in "
        f"event time came from {events}:3 "
        f"({ahead.strftime('%Y-%m-%dT%H:%M:%SZ')}, {span} after the newest event "
        "before it). Replay files in time order, or raise --allowed-lateness.\n"
    )


def test_late_warning_without_large_jump(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Steps within the allowed lateness are not named as the cause of late events."""
    events = tmp_path / "events.jsonl"
    events.write_text(
        _line("r-1", START, "1")
        + _line("r-2", START + timedelta(minutes=4), "1")
        + _line("r-3", START + timedelta(minutes=8), "1")
        + _line("r-4", START + timedelta(minutes=1), "1")
    )

    code = _backtest(_rules(tmp_path / "rules"), tmp_path / "out", str(events))

    captured = capsys.readouterr()
    assert code == 0
    assert captured.err == (
        "warning: 1 events arrived more than 300 s behind the newest event and were "
        "left out of the windows (they still count in budgets). Replay files in "
        "time order, or raise --allowed-lateness.\n"
    )


def test_staged_output_discarded(tmp_path: Path) -> None:
    """A discarded file keeps its target while the other staged files replace theirs."""
    target = tmp_path / "alerts.jsonl"
    target.write_text("earlier run\n")

    with StagedOutputs() as outputs:
        outputs.stage(tmp_path / "rejected.jsonl").write_text("new rejects\n")
        discarded = outputs.stage(target)
        discarded.write_text("partial\n")
        outputs.discard(discarded)

    assert _listing(tmp_path) == {
        "alerts.jsonl": "earlier run\n",
        "rejected.jsonl": "new rejects\n",
    }
