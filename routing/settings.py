"""Settings of ``burnrate routes deliver`` from the environment (prefix ``BURNRATE_``).

The Kafka settings have the names and defaults of ``burnrate serve``'s, so one
environment configures both processes: delivery reads the topic that the
service writes its alert records to.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class DeliverSettings(BaseSettings):
    """Everything ``burnrate routes deliver`` reads besides its flags."""

    model_config = SettingsConfigDict(env_prefix="BURNRATE_", frozen=True)

    kafka_bootstrap: str = "127.0.0.1:9092"
    app_id: str = "burnrate"
    alerts_topic: str = "burnrate-alerts"
    # The rules folder; delivery reads its routing.yaml.
    rules: Path = Path("rules")
    # Holds ledger.sqlite and audit.jsonl. Keep it across restarts: the ledger is
    # what stops a restarted delivery from sending a notification again.
    routing_state_dir: Path = Path("burnrate-routing")
    # Consumer group of the alerts topic; empty means "<app_id>-routing".
    routing_group_id: str = ""
    # Where a group without committed offsets starts reading the alerts topic.
    routing_offset_reset: Literal["earliest", "latest"] = "earliest"
    # How long one read of the alerts topic waits for new records.
    routing_read_wait_s: float = Field(default=1.0, gt=0, le=60)
    # Port of the Prometheus endpoint (/metrics); 0 serves none.
    routing_metrics_port: int = Field(default=0, ge=0, le=65535)
    # Address the metrics endpoint listens on.
    routing_metrics_address: str = "127.0.0.1"

    @property
    def group_id(self) -> str:
        return self.routing_group_id or f"{self.app_id}-routing"
