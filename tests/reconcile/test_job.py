"""Tests for metered spend aggregation, the multi-provider run and the CLI command."""

from __future__ import annotations

import argparse
import json
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from detector.alerts import decoder as alert_decoder
from detector.events import Event
from detector.reconcile import (
    ReconcileSettings,
    SpendKey,
    aggregate_metered,
    run_reconciliation,
)
from detector.reconcile.cli import add_commands
from detector.reconcile.report import retry_after_s
from detector.reconcile.settings import AnthropicSettings, OpenAISettings
from tests.reconcile.conftest import SleepRecorder
from tests.reconcile.servers import FakeOpenAI, closed_port_url, serve

DAY = date(2026, 7, 30)
SETTLED = datetime.fromisoformat("2026-08-02T00:00:00Z")


def event(timestamp: str, tenant: str, provider: str, model: str) -> Event:
    return Event(
        timestamp=datetime.fromisoformat(timestamp),
        request_id=f"{timestamp}-{tenant}",
        tenant=tenant,
        provider=provider,
        request_model=model,
    )


def test_aggregate_metered_by_day_and_project() -> None:
    """Costs sum per UTC day, provider, model and mapped project; None is left out."""
    priced = [
        (event("2026-07-30T23:59:59Z", "acme", "openai", "gpt-4o"), Decimal("1.25")),
        (event("2026-07-30T08:00:00Z", "acme", "openai", "gpt-4o"), Decimal("0.75")),
        # 2026-07-31T00:00:00Z belongs to the next UTC day.
        (event("2026-07-31T00:00:00Z", "acme", "openai", "gpt-4o"), Decimal(5)),
        # 02:00+03:00 is 2026-07-29T23:00Z, the day before.
        (event("2026-07-30T02:00:00+03:00", "acme", "openai", "gpt-4o"), Decimal(7)),
        (event("2026-07-30T09:00:00Z", "globex", "openai", "gpt-4o"), Decimal(2)),
        (event("2026-07-30T09:00:00Z", "globex", "openai", "gpt-4o"), None),
    ]

    totals = aggregate_metered(priced, {"openai": {"acme": "proj_acme"}})

    assert totals == {
        SpendKey(DAY, "openai", "gpt-4o", "proj_acme"): Decimal("2.00"),
        SpendKey(date(2026, 7, 31), "openai", "gpt-4o", "proj_acme"): Decimal(5),
        SpendKey(date(2026, 7, 29), "openai", "gpt-4o", "proj_acme"): Decimal(7),
        SpendKey(DAY, "openai", "gpt-4o", "globex"): Decimal(2),
    }


def test_aggregate_uses_response_model() -> None:
    """The model key is the model that served the request."""
    served = Event(
        timestamp=datetime.fromisoformat("2026-07-30T12:00:00Z"),
        request_id="r1",
        tenant="acme",
        provider="openai",
        request_model="gpt-4o",
        response_model="gpt-4o-2024-08-06",
    )

    totals = aggregate_metered([(served, Decimal(1))])

    assert list(totals) == [SpendKey(DAY, "openai", "gpt-4o-2024-08-06", "acme")]


def test_no_providers_configured() -> None:
    """Settings without providers reconcile nothing."""
    spend = {SpendKey(DAY, "openai", "gpt-4o", "acme"): Decimal(1)}

    outcomes = run_reconciliation(DAY, spend, ReconcileSettings(), SETTLED)

    assert outcomes == []


def test_one_provider_down_others_checked(sleeps: SleepRecorder) -> None:
    """An unreachable provider does not stop the others from being compared."""
    fake = FakeOpenAI()
    fake.costs[DAY] = [("proj_acme", "gpt-4o, input", "4.00")]
    spend = {
        SpendKey(DAY, "openai", "gpt-4o", "proj_acme"): Decimal("4.00"),
        SpendKey(DAY, "anthropic", "claude", "wrkspc_acme"): Decimal("3.00"),
    }
    environ = {"OPENAI_ADMIN_KEY": fake.admin_key, "ANTHROPIC_ADMIN_KEY": "key"}

    with serve(fake) as url:
        settings = ReconcileSettings(
            openai=OpenAISettings(base_url=url),
            anthropic=AnthropicSettings(base_url=closed_port_url()),
        )
        outcomes = run_reconciliation(
            DAY, spend, settings, SETTLED, environ=environ, sleep=sleeps
        )

    statuses = {outcome.provider: outcome.status for outcome in outcomes}
    assert statuses == {"openai": "match", "anthropic": "error"}
    anthropic = outcomes[1]
    assert anthropic.metered_usd == Decimal("3.00")
    assert anthropic.reported_usd is None


def test_settings_reject_unknown_fields() -> None:
    """Settings are strict: unknown keys and shares above 1 are errors."""
    with pytest.raises(ValidationError, match="Extra inputs"):
        ReconcileSettings.model_validate({"openai": {"base_uri": "x"}})
    with pytest.raises(ValidationError, match="less than or equal to 1"):
        ReconcileSettings.model_validate({"threshold_share": "3"})


@pytest.mark.parametrize(
    ("headers", "expected_s"),
    [
        ({"retry-after": "12"}, 12.0),
        ({"retry-after": "0.5"}, 0.5),
        (
            {
                "retry-after": "Thu, 30 Jul 2026 12:00:30 GMT",
                "date": "Thu, 30 Jul 2026 12:00:00 GMT",
            },
            30.0,
        ),
        ({"retry-after": "Thu, 30 Jul 2026 12:00:30 GMT"}, None),
        ({}, None),
    ],
)
def test_retry_after_forms(headers: dict[str, str], expected_s: float | None) -> None:
    """Retry-After is read in seconds or as an HTTP date against the Date header."""
    response = httpx.Response(429, headers=headers)

    assert retry_after_s(response) == expected_s


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="burnrate")
    add_commands(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return int(args.run(args))


def test_cli_writes_alert(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The command prices events, compares them and appends the alert as JSON."""
    fake = FakeOpenAI()
    fake.costs[DAY] = [("proj_acme", "gpt-4o, input", "4.00")]
    events = tmp_path / "events.jsonl"
    lines = [
        {
            "timestamp": "2026-07-30T10:00:00Z",
            "request_id": f"r{index}",
            "tenant": "acme",
            "gen_ai.provider.name": "openai",
            "gen_ai.request.model": "gpt-4o",
            "cost_usd": 2.5,
        }
        for index in range(2)
    ]
    events.write_text("".join(json.dumps(line) + "\n" for line in lines))
    alerts = tmp_path / "alerts.jsonl"
    settings_file = tmp_path / "reconcile.yaml"
    monkeypatch.setenv("OPENAI_ADMIN_KEY", fake.admin_key)

    with serve(fake) as url:
        settings_file.write_text(
            f"openai:\n  base_url: {url}\nprojects:\n  openai:\n    acme: proj_acme\n"
        )
        status = run_cli(
            [
                "reconcile",
                "--day",
                "2026-07-30",
                "--settings",
                str(settings_file),
                "--events",
                str(events),
                "--alerts-out",
                str(alerts),
                "--now",
                "2026-08-02T00:00:00Z",
            ]
        )

    assert status == 1
    [record] = [alert_decoder.decode(line) for line in alerts.read_bytes().splitlines()]
    assert record.rule_id == "reconcile:openai"
    # Two events of $2.50 against $4.00 reported: 25 % over.
    assert record.observed == Decimal("5.0")
    assert record.baseline == Decimal("4.00")
    assert "mismatch" in capsys.readouterr().out


def test_cli_rejects_invalid_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Invalid settings exit with status 2 and name the file."""
    settings_file = tmp_path / "reconcile.yaml"
    settings_file.write_text("threshold: 3\n")
    events = tmp_path / "events.jsonl"
    events.write_text("")

    status = run_cli(
        [
            "reconcile",
            "--day",
            "2026-07-30",
            "--settings",
            str(settings_file),
            "--events",
            str(events),
        ]
    )

    assert status == 2
    assert "invalid reconciliation settings" in capsys.readouterr().err
