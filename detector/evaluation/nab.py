"""Numenta Anomaly Benchmark: the rate-of-change tier on 24 labelled series.

Every data file is replayed through the engine as one series (``detector.seriescsv``)
with the same two rate-of-change rules, one per direction, re-timed to one row per
5 minutes so that windows and periods count rows whatever the file's sampling
(1 hour = 12 rows, 1 day = 288 rows). No parameter depends on the file or on the
labels. The results file of each data file has an ``alert`` column that is 1 only
on the row where an alert fires, and the NAB scorer scores them in detections mode
for its three profiles.

Parameters: a 12-row window against the median of the same window 1, 2 and 3 days
(288-row periods) earlier, firing at a ratio of 1.5 in either direction and at 5
robust standard deviations of those 3 windows (``min_deviations``, a floor in the
file's own unit, since NAB values have no common unit), clearing at 1.2, and staying
firing for 72 rows after the condition last held, so a burst of crossings counts
as one alert.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from detector.config import RuleSet
from detector.engine import EngineSettings
from detector.evaluation.data import dataset, nab_scorer
from detector.seriescsv import replay_series_csv, write_alert_column

# TODO: these rules score 47 (standard profile) against a target of 55. The misses
# are level shifts in noisy ad-exchange and traffic series, which a ratio to the
# same hour of earlier days does not separate from their noise, with or without
# recent windows or a spread floor. A detector that models each row's value, not
# a windowed total against a seasonal baseline, would end this.
STEP_S = 300
_RATE = {
    "tier": "rate_of_change",
    "window": "1h",
    "baseline_period": "1d",
    "baseline_weeks": 3,
    "min_ratio": "1.5",
    "clear_ratio": "1.2",
    "min_increase": "0",
    "min_deviations": "5",
    "keep_firing_for": "6h",
    "evaluate_every": "5m",
}
NAB_RULES: dict[str, Any] = {
    "rules": [
        {**_RATE, "id": "nab-rise", "direction": "up"},
        {**_RATE, "id": "nab-fall", "direction": "down"},
    ]
}
PROFILES = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")
NOTE = (
    "Target not met. Of the settings tried with one parameter set for all files "
    "(windows 30m to 2h, 3 or 7 daily periods, ratios 1.3 to 2, up to 24 recent "
    "windows, spread floors of 2 to 8), none scored above about 47: the missed "
    "windows are level shifts in noisy series that a windowed total against "
    "earlier days does not separate from their noise."
)


def data_files(root: Path, pattern: str = "*/*.csv") -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.glob(pattern))


def _detect(job: tuple[Path, str, Path, dict[str, Any]]) -> tuple[str, int]:
    root, relative, out, document = job
    rules = RuleSet.model_validate(document)
    replay = replay_series_csv(
        rules, root / relative, step_s=STEP_S, settings=EngineSettings(tick_s=STEP_S)
    )
    target = out / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    write_alert_column(replay, target)
    return relative, len(replay.alert_rows)


def run(
    results_dir: Path | None = None,
    *,
    pattern: str = "*/*.csv",
    workers: int = 2,
    rules: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Detect on every matching file, score the results and return the figures."""
    root = dataset("nab")
    with tempfile.TemporaryDirectory() as scratch:
        out = results_dir or Path(scratch) / "results"
        files = data_files(root, pattern)
        document = NAB_RULES if rules is None else rules
        jobs = [(root, relative, out, document) for relative in files]
        with ProcessPoolExecutor(workers) as pool:
            alerts = dict(pool.map(_detect, jobs))
        score = _score(root, out, Path(scratch) / "score.json", pattern)
    profiles = {
        name: {
            "score": round(entry["score"], 2),
            "windows_hit": entry["windows_hit"],
            "windows_missed": entry["windows_missed"],
            "false_alert_rows": entry["fp_records"],
        }
        for name, entry in score["profiles"].items()
    }
    return {
        "files": len(files),
        "windows": score["windows"],
        "alerts": sum(alerts.values()),
        "profiles": profiles,
        "rules": document,
        "note": NOTE,
    }


def _score(root: Path, results: Path, report: Path, pattern: str) -> dict[str, Any]:
    command = [
        sys.executable,
        str(nab_scorer()),
        "--nab-data",
        str(root),
        "--labels",
        str(root / "labels" / "combined_windows.json"),
        "--results",
        str(results),
        "--files",
        pattern,
        "--detections",
        "--json",
        str(report),
    ]
    subprocess.run(command, check=True, capture_output=True, text=True)
    document: dict[str, Any] = json.loads(report.read_text())
    return document
