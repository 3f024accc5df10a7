"""Plain metric series (CSV timestamp,value) replayed through the rate tier."""

from __future__ import annotations

from pathlib import Path

import pytest

from detector.cli import main
from detector.config import RuleSet
from detector.engine import EngineSettings
from detector.seriescsv import SeriesFormatError, read_series, replay_series_csv

RULES = RuleSet.model_validate(
    {
        "rules": [
            {
                "id": "rise",
                "tier": "rate_of_change",
                "window": "10m",
                "baseline_period": "1h",
                "baseline_weeks": 2,
                "min_ratio": 3,
                "min_increase": 0,
                "evaluate_every": "5m",
            }
        ]
    }
)


def write_series(path: Path, values: list[str]) -> None:
    """Rows every 5 minutes from 2014-04-01 00:00 (no zone: UTC)."""
    lines = ["timestamp,value"]
    for index, value in enumerate(values):
        minutes = 5 * index
        lines.append(f"2014-04-01 {minutes // 60:02d}:{minutes % 60:02d}:00,{value}")
    path.write_text("\n".join(lines) + "\n")


def test_spike_flagged_on_its_row(tmp_path: Path) -> None:
    """Row 40 jumps from 2 to 50; the alert is attributed to row 40 exactly."""
    values = ["2"] * 60
    values[40] = "50"
    write_series(tmp_path / "s.csv", values)

    replay = replay_series_csv(
        RULES, tmp_path / "s.csv", settings=EngineSettings(tick_s=300)
    )

    assert replay.alert_rows == [40]  # window 03:15-03:25 holds row 40 (03:20)


def test_threshold_flagged_on_crossing_row(tmp_path: Path) -> None:
    """A threshold alert is attributed to the row that fired it."""
    rules = RuleSet.model_validate(
        {"rules": [{"id": "high", "tier": "absolute", "window": "1h", "threshold": 10}]}
    )
    write_series(tmp_path / "s.csv", ["4", "4", "4", "4"])

    replay = replay_series_csv(rules, tmp_path / "s.csv")

    assert replay.alert_rows == [2]  # 4 + 4 + 4 = 12 reaches 10 on row 2


def test_non_utf8_row_rejected(tmp_path: Path) -> None:
    """A byte that is not UTF-8 is reported with its line instead of a traceback."""
    (tmp_path / "s.csv").write_bytes(b"timestamp,value\n2014-04-01 00:00:00,\xff\n")

    with pytest.raises(SeriesFormatError) as caught:
        read_series(tmp_path / "s.csv")

    assert str(caught.value) == (
        f"{tmp_path / 's.csv'}:2: invalid UTF-8 byte 0xff: save the file as UTF-8"
    )


def test_blank_lines_skipped(tmp_path: Path) -> None:
    """Blank lines, such as one at the end of the file, are not rows."""
    (tmp_path / "s.csv").write_text(
        "timestamp,value\n2014-04-01 00:00:00,1\n\n2014-04-01 00:05:00,2\n\n"
    )

    rows = read_series(tmp_path / "s.csv")

    assert [str(row.value) for row in rows] == ["1", "2"]


def test_empty_file_rejected(tmp_path: Path) -> None:
    """An empty file is rejected with a message naming the expected header."""
    (tmp_path / "s.csv").write_text("")

    with pytest.raises(SeriesFormatError) as caught:
        read_series(tmp_path / "s.csv")

    assert str(caught.value) == (
        f"{tmp_path / 's.csv'}: file is empty, expected timestamp,value"
    )


def test_negative_values_kept(tmp_path: Path) -> None:
    """Negative values are replayed as they are, not priced as unknown."""
    write_series(tmp_path / "s.csv", ["-1.5", "-2.5"])

    replay = replay_series_csv(RULES, tmp_path / "s.csv")

    assert replay.engine.stats.spend_usd == -4


def test_bad_header_rejected(tmp_path: Path) -> None:
    """A file without the timestamp,value header is rejected with its path."""
    (tmp_path / "s.csv").write_text("time,v\n2014-04-01 00:00:00,1\n")

    with pytest.raises(SeriesFormatError, match="expected timestamp,value"):
        read_series(tmp_path / "s.csv")


def test_bad_row_stops_backtest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad row exits 2 (unreadable input) and names the file and row."""
    write_series(tmp_path / "s.csv", ["1", "2"])
    with (tmp_path / "s.csv").open("a") as stream:
        stream.write("garbage,row\n")
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "alerts.yaml").write_text(
        "rules:\n  - id: rise\n    tier: absolute\n    window: 10m\n    threshold: 5\n"
    )

    code = main(
        ["backtest", str(tmp_path / "s.csv"), "--rules", str(rules),
         "--out", str(tmp_path / "out")]
    )

    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    assert captured.err == (
        f"error: {tmp_path / 's.csv'}:4: invalid row ['garbage', 'row']: use an ISO "
        "8601 timestamp and a decimal number\n"
    )
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("value", ["1000000.01", "-1000000.01", "1e26", "-1E+30"])
def test_out_of_range_value_rejected(tmp_path: Path, value: str) -> None:
    """A value beyond the cost_usd limit of events, either sign, is a bad row."""
    write_series(tmp_path / "s.csv", ["1", value])

    with pytest.raises(SeriesFormatError) as caught:
        read_series(tmp_path / "s.csv")

    assert str(caught.value) == (
        f"{tmp_path / 's.csv'}:3: value {value} is out of range, the limit is "
        "1,000,000 either side of 0: scale the series down"
    )


def test_limit_values_kept(tmp_path: Path) -> None:
    """Values exactly at the limit, either sign, are read as they are."""
    write_series(tmp_path / "s.csv", ["1000000", "-1000000"])

    rows = read_series(tmp_path / "s.csv")

    assert [str(row.value) for row in rows] == ["1000000", "-1000000"]


def _backtest_series(tmp_path: Path) -> int:
    """Run ``burnrate backtest`` on ``s.csv`` with a threshold rule."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "alerts.yaml").write_text(
        "rules:\n  - id: rise\n    tier: absolute\n    window: 10m\n    threshold: 5\n"
    )
    series = tmp_path / "s.csv"
    out = tmp_path / "out"
    return main(["backtest", str(series), "--rules", str(rules), "--out", str(out)])


def test_huge_value_stops_backtest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A value of 1e26 exits 2 with the row named, not with a traceback."""
    write_series(tmp_path / "s.csv", ["1", "1e26"])

    code = _backtest_series(tmp_path)

    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    assert captured.err == (
        f"error: {tmp_path / 's.csv'}:3: value 1e26 is out of range, the limit is "
        "1,000,000 either side of 0: scale the series down\n"
    )
    assert not (tmp_path / "out").exists()


def test_header_only_stops_backtest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A series with a header and no row exits 2, like JSON Lines without an event."""
    write_series(tmp_path / "s.csv", [])

    code = _backtest_series(tmp_path)

    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    assert captured.err == (
        f"error: {tmp_path / 's.csv'}: no rows after the timestamp,value header\n"
    )
    assert not (tmp_path / "out").exists()
