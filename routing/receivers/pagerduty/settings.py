"""Settings of a PagerDuty receiver (Events API v2)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, SecretStr

from routing.secrets import ReceiverSettings, secret_validator

PagerDutySeverity = Literal["critical", "error", "warning", "info"]


class PagerDutySettings(ReceiverSettings):
    """An Events API v2 integration, addressed by its routing key."""

    secret_fields: ClassVar[tuple[str, ...]] = ("routing_key",)
    _resolve_secrets = secret_validator("routing_key")

    type: Literal["pagerduty"]
    routing_key: SecretStr
    # The library accepts only https base URLs.
    url: str = Field(default="https://events.pagerduty.com", pattern=r"^https://")
    source: str = "burnrate"
    # PagerDuty severity per alert severity; anything else maps by tier.
    severity: dict[str, PagerDutySeverity] = Field(default_factory=dict)
