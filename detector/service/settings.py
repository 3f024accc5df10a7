"""Service settings from the environment (prefix ``BURNRATE_``) with defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """Everything ``burnrate serve`` reads, with units in the names."""

    model_config = SettingsConfigDict(env_prefix="BURNRATE_", frozen=True)

    kafka_bootstrap: str = "127.0.0.1:9092"
    app_id: str = "burnrate"
    rules: Path = Path("rules")
    events_topic: str = "llm-requests"
    alerts_topic: str = "burnrate-alerts"
    dead_letter_topic: str = "burnrate-dead-letter"
    budget_state_topic: str = "burnrate-budget-state"
    partitions: int = Field(default=6, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    data_dir: Path = Path("burnrate-data")
    web_host: str = "127.0.0.1"
    web_port: int = Field(default=6066, ge=1, le=65535)
    # How often the wall clock drives ticks; ticks themselves stay on the
    # one-minute event-time grid.
    tick_interval_s: float = Field(default=1.0, gt=0)
    # Ticks run this long behind the event clock, so the events of a minute
    # can arrive before the minute is evaluated.
    tick_grace_s: int = Field(default=2, ge=0)
    allowed_lateness_s: int = Field(default=300, ge=0)
    # Events whose time is further ahead of the wall clock are rejected: a
    # clock error upstream must not move a partition's watermark into the future.
    max_future_s: int = Field(default=3600, ge=0)
    # Events older than this are rejected, so a replayed archive or a clock
    # stuck at the epoch cannot reopen long-closed budget periods. The default
    # covers the current and the previous calendar month; a rate-of-change
    # baseline of more than five weeks reaches further back than it.
    max_past_s: int = Field(default=40 * 86400, ge=3600)
    dedup_horizon_s: int = Field(default=3600, ge=60)
    dedup_max_ids_per_tenant: int = Field(default=50_000, ge=100)
    # A batch ends after this many records or batch_within_s, whichever comes
    # first. Snapshots are written once per batch for every tenant it touched,
    # so a worker catching up on a backlog gains from large batches, while a
    # quiet one still hands each record over within batch_within_s.
    batch_max_records: int = Field(default=5000, ge=1)
    batch_within_s: float = Field(default=0.2, gt=0)
    commit_interval_s: float = Field(default=1.0, gt=0)
    # A partition whose end offset moves while its position does not, for this
    # long, raises the service's own alert.
    stall_after_s: float = Field(default=60.0, gt=0)
    forecast_workers: int = Field(default=1, ge=1)
    # The function that fits a forecast, as "module:function"; it runs in the
    # forecast worker processes, so it must be importable there.
    forecaster: str = "detector.service.app:fit_forecast"
    # Kafka's max.poll.interval.ms: a consumer that does not poll for this long
    # leaves the group. Forecast fits run in worker processes, so a slow fit
    # never holds up polling.
    max_poll_interval_s: float = Field(default=300.0, gt=0)
    # Kafka's session.timeout.ms: how long the group waits for a worker that
    # stopped heartbeating (a killed one) before its partitions move on.
    session_timeout_s: float = Field(default=60.0, gt=0)
    # Kafka's default record limit is 1 MiB; a busy tenant's snapshot with its
    # recent request ids can be larger.
    snapshot_max_bytes: int = Field(default=8 * 1024 * 1024, ge=1024 * 1024)
    # Bearer token of the budget API (GET /v1/budget/{tenant}). Without it the
    # API answers 503 to every request.
    api_token: SecretStr | None = None
    # JSON lines file of every change of a tenant's gateway decision; empty
    # means budget-decisions.jsonl in data_dir.
    audit_log: Path | None = None
    # "text" for people, "json" for one JSON object per line.
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # Identical log messages beyond this count per minute are dropped and counted.
    log_repeats_per_min: int = Field(default=10, ge=1)
    # Upper limit of distinct values per metric label; the catalogue may set a
    # lower one. Values beyond it are exported as "other".
    metrics_max_label_values: int = Field(default=200, ge=1)
    # The topic the OpenTelemetry Collector's Kafka exporter writes; empty means
    # no OTLP input. Its spans are re-keyed by tenant onto the events topic.
    otlp_topic: str = ""
    otlp_encoding: Literal["otlp_proto", "otlp_json"] = "otlp_proto"
    # Comma-separated attribute references, "resource:NAME" or "span:NAME", in
    # order of preference: where a span's tenant, feature, route and region are.
    otlp_tenant: str = "resource:tenant.id"
    otlp_feature: str = ""
    otlp_route: str = ""
    otlp_region: str = ""
