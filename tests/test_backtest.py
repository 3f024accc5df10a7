"""Replaying event files: what the backtest accepts, rejects and alerts on."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from detector.backtest import replay
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
