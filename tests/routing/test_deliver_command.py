"""``burnrate routes deliver`` as a subprocess: invalid input, alerts file, SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import yaml

from tests.routing.conftest import append, record
from tests.routing.servers.pagerduty import PagerDutyServer
from tests.routing.servers.tls import Certificate
from tests.service.harness import BURNRATE

PD_KEY = "pd-routing-key-0123456789abcdef"


def _environment(**extra: str) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("BURNRATE_")}
    environment.update(extra)
    return environment


def test_invalid_routing_file_exits_1(tmp_path: Path) -> None:
    """A route naming an unknown receiver exits 1 with the file, line and column."""
    (tmp_path / "routing.yaml").write_text(
        "routing:\n"
        "  receivers:\n"
        "    - name: hook\n"
        "      type: webhook\n"
        "      url_env: HOOK_URL\n"
        "  route:\n"
        "    receiver: pager\n"
    )

    result = subprocess.run(
        [
            str(BURNRATE),
            "routes",
            "deliver",
            "--rules",
            str(tmp_path),
            "--alerts-file",
            str(tmp_path / "alerts.jsonl"),
        ],
        check=False,
        env=_environment(HOOK_URL="https://127.0.0.1:9/hook"),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 1
    assert f"{tmp_path / 'routing.yaml'}:7:" in result.stderr
    assert "pager" in result.stderr
    assert not (tmp_path / "burnrate-routing").exists()


def test_invalid_setting_exits_2(tmp_path: Path) -> None:
    """An offset reset other than earliest or latest exits 2 and names the variable."""
    result = subprocess.run(
        [str(BURNRATE), "routes", "deliver", "--rules", str(tmp_path)],
        check=False,
        env=_environment(BURNRATE_ROUTING_OFFSET_RESET="oldest"),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 2
    assert "BURNRATE_ROUTING_OFFSET_RESET" in result.stderr


def test_alerts_file_delivered_until_sigterm(
    certificate: Certificate, tmp_path: Path
) -> None:
    """Appended records are paged; SIGTERM exits 0 after the offset is saved."""
    pd = PagerDutyServer(certificate).start()
    routing = {
        "routing": {
            "receivers": [
                {
                    "name": "pagerduty",
                    "type": "pagerduty",
                    "routing_key_env": "PD_KEY",
                    "url": pd.url,
                    "ca_file": str(certificate.cert_path),
                }
            ],
            "route": {
                "receiver": "pagerduty",
                "group_by": ["tenant"],
                "group_wait": "0s",
            },
            "delivery": {"poll_interval_s": 0.1},
        }
    }
    (tmp_path / "routing.yaml").write_text(yaml.safe_dump(routing))
    alerts_path = tmp_path / "alerts.jsonl"
    first, second = record("tenant-a"), record("tenant-b")
    append(alerts_path, first)
    log_path = tmp_path / "deliver.log"

    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                str(BURNRATE),
                "routes",
                "deliver",
                "--rules",
                str(tmp_path / "routing.yaml"),
                "--alerts-file",
                str(alerts_path),
                "--state-dir",
                str(tmp_path / "state"),
            ],
            env=_environment(PD_KEY=PD_KEY),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for(lambda: first.alert_id in pd.accepted, log_path)
        append(alerts_path, second)
        _wait_for(lambda: second.alert_id in pd.accepted, log_path)
        _wait_for(lambda: _offset(alerts_path) == alerts_path.stat().st_size, log_path)
        process.send_signal(signal.SIGTERM)
        exit_status = process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        pd.stop()

    assert exit_status == 0
    assert [action for action, _ in pd.accepted[first.alert_id]] == ["trigger"]
    assert [action for action, _ in pd.accepted[second.alert_id]] == ["trigger"]
    log_text = log_path.read_text()
    assert "stopping on SIGTERM" in log_text
    assert "delivery stopped" in log_text
    assert (tmp_path / "state" / "ledger.sqlite").is_file()


def _offset(alerts_path: Path) -> int:
    offset_path = alerts_path.with_name(alerts_path.name + ".offset")
    return int(offset_path.read_text()) if offset_path.exists() else -1


def _wait_for(condition: object, log_path: Path, deadline_s: float = 30.0) -> None:
    deadline = time.monotonic() + deadline_s
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; deliver log:\n{log_path.read_text()}")
        time.sleep(0.05)
