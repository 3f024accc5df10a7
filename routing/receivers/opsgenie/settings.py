"""Settings of an Opsgenie receiver (Alert API v2)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, SecretStr

from routing.secrets import ReceiverSettings, secret_validator

Priority = Literal["P1", "P2", "P3", "P4", "P5"]
DEFAULT_PRIORITY: dict[str, Priority] = {
    "critical": "P1",
    "error": "P2",
    "warning": "P3",
    "info": "P5",
}


class OpsgenieSettings(ReceiverSettings):
    """An Opsgenie API integration: its key and the API URL of its region."""

    secret_fields: ClassVar[tuple[str, ...]] = ("api_key",)
    _resolve_secrets = secret_validator("api_key")

    type: Literal["opsgenie"]
    api_key: SecretStr
    # https://api.eu.opsgenie.com for the EU region.
    api_url: str = Field(default="https://api.opsgenie.com", pattern=r"^https?://")
    source: str = "burnrate"
    tags: tuple[str, ...] = ("burnrate",)
    # Opsgenie priority per alert severity; unmapped severities get P3.
    priority: dict[str, Priority] = Field(default_factory=lambda: dict(DEFAULT_PRIORITY))
