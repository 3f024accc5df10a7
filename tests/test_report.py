"""Tests for the backtest report: the HTML page, the comparison and headless rendering."""

from __future__ import annotations

import json
import re
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import matplotlib.image
import pytest

from detector.cli import main

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
# Upper bound for one Chromium run; it ends as soon as the page is rendered.
CHROMIUM_DEADLINE_S = 120

RULES = """\
tenants:
  - {id: acme, timezone: America/New_York}
budgets:
  - {id: monthly-spend, tenant: "*", limit_usd: 100, thresholds_pct: [50, 100]}
rules:
  - {id: hourly-high, tier: absolute, window: 1h, threshold: 20}
"""
# The same rules with the hourly threshold lowered from $20 to $5.
TENANT_SCALES = (("acme", 1.0), ("globex", 0.1), ("initech", 0.01), ("hooli", 0.001))
OTHER_RULES = RULES.replace("threshold: 20", "threshold: 5")


def _events(path: Path) -> None:
    """Write two days of requests: acme at $1 every 10 minutes, $4 from noon on day 2.

    The other tenants send the same pattern scaled down: globex reaches its $50
    budget's 50 % ($50.40 in two days), initech and hooli raise nothing.
    """
    start = datetime(2026, 5, 4, tzinfo=UTC)
    lines = []
    for step in range(288):
        instant = start + timedelta(minutes=10 * step)
        cost = "4" if step >= 216 else "1"
        for tenant, scale in TENANT_SCALES:
            lines.append(
                json.dumps(
                    {
                        "timestamp": instant.isoformat().replace("+00:00", "Z"),
                        "request_id": f"{tenant}-{step}",
                        "tenant": tenant,
                        "gen_ai.provider.name": "openai",
                        "gen_ai.request.model": "gpt-4o",
                        "gen_ai.usage.input_tokens": 100,
                        "gen_ai.usage.output_tokens": 10,
                        "cost_usd": f"{float(cost) * scale:.4f}",
                    }
                )
                .replace('"cost_usd": "', '"cost_usd": ')
                .replace('"}', "}")
            )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run ``burnrate backtest --report --compare`` once for the tests below."""
    base = tmp_path_factory.mktemp("report")
    for name, text in (("rules", RULES), ("other", OTHER_RULES)):
        (base / name).mkdir()
        (base / name / "rules.yaml").write_text(text, encoding="utf-8")
    _events(base / "events.jsonl")

    code = main(
        [
            "backtest",
            "--rules",
            str(base / "rules"),
            str(base / "events.jsonl"),
            "--out",
            str(base / "out"),
            "--report",
            str(base / "report"),
            "--compare",
            str(base / "other"),
            "--top",
            "1",
            "--quiet",
            "--no-progress",
        ]
    )

    assert code == 0
    return base / "report"


def test_report_contents(report_dir: Path) -> None:
    """The page plots the alerted tenants and the top other spender, and lists alerts."""
    page = (report_dir / "report.html").read_text(encoding="utf-8")

    assert page.count("<svg") == 3
    assert 'id="tenant-acme"' in page
    assert 'id="tenant-globex"' in page
    assert 'id="tenant-initech"' in page
    assert 'id="tenant-hooli"' not in page
    assert "hourly-high" in page
    assert "monthly spend $50.00 reached 50% of the $100.00 budget" in page
    assert "<script" not in page
    assert "<link" not in page
    assert re.search(r'(src|href)="https?:', page) is None


def test_report_comparison(report_dir: Path) -> None:
    """The $5 threshold fires for acme on day 1 at $6 an hour, and $20 on day 2.

    The two alerts start 36 hours apart, so they are different alerts: one gained
    and one lost. The budget alerts are the same in both replays.
    """
    page = (report_dir / "report.html").read_text(encoding="utf-8")

    gained = re.search(r"Gained: raised only by the compared rules \((\d+)\)", page)
    lost = re.search(r"Lost: raised only by the replayed rules \((\d+)\)", page)
    assert gained is not None
    assert lost is not None
    assert int(gained.group(1)) == 1
    assert int(lost.group(1)) == 1
    assert "3 alerts raised by both rule sets" in page


def _chromium(
    report: Path, profile: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(CHROMIUM),
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            *extra,
            report.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=CHROMIUM_DEADLINE_S,
        check=False,
    )


def test_report_renders_in_chromium(report_dir: Path, tmp_path: Path) -> None:
    """Headless Chromium renders both plots: the DOM has the SVG paths, the page is not blank."""
    assert CHROMIUM.exists(), "chromium is missing: run .ci/install-debian-packages.sh"
    report = report_dir / "report.html"

    dom = _chromium(report, tmp_path / "profile-dom", "--dump-dom")
    shot = tmp_path / "report.png"
    taken = _chromium(
        report,
        tmp_path / "profile-shot",
        "--window-size=1200,1600",
        f"--screenshot={shot}",
    )

    assert dom.returncode == 0, dom.stderr[-2000:]
    assert dom.stdout.count("<svg") == 3
    assert dom.stdout.count("<path") > 20
    assert taken.returncode == 0, taken.stderr[-2000:]
    pixels = matplotlib.image.imread(str(shot))
    assert pixels.shape[:2] == (1600, 1200)
    assert float(pixels[..., :3].std()) > 0.05


def test_invalid_compare_fails_before_replay(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Invalid compared rules exit 1 before the replay writes any output."""
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "rules.yaml").write_text(RULES, encoding="utf-8")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "rules.yaml").write_text("rules: [{id: x}]\n", encoding="utf-8")
    _events(tmp_path / "events.jsonl")

    code = main(
        [
            "backtest",
            "--rules",
            str(tmp_path / "rules"),
            str(tmp_path / "events.jsonl"),
            "--out",
            str(tmp_path / "out"),
            "--report",
            str(tmp_path / "report"),
            "--compare",
            str(tmp_path / "other"),
            "--quiet",
            "--no-progress",
        ]
    )

    captured = capsys.readouterr()
    assert code == 1
    assert captured.out == ""
    assert captured.err.startswith("error: compared rules are invalid\n")
    assert not (tmp_path / "out").exists()
