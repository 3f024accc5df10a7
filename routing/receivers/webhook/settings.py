"""Settings of a webhook receiver: a URL that takes a JSON POST."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import SecretStr, field_validator

from routing.secrets import ReceiverSettings, secret_validator


class WebhookSettings(ReceiverSettings):
    """An HTTP endpoint; the URL is a secret because such URLs often embed a token."""

    secret_fields: ClassVar[tuple[str, ...]] = ("url", "bearer_token")
    _resolve_secrets = secret_validator("url", "bearer_token")

    type: Literal["webhook"]
    url: SecretStr
    bearer_token: SecretStr | None = None

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().startswith(("https://", "http://")):
            raise ValueError("the webhook URL must start with https:// or http://")
        return value
