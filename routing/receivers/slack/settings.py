"""Settings of a Slack receiver: an incoming webhook, or a bot token and channel."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, SecretStr, model_validator

from routing.secrets import ReceiverSettings, secret_validator


class SlackSettings(ReceiverSettings):
    """Post to Slack through an incoming webhook or ``chat.postMessage``.

    Set ``webhook_url``, or ``token`` together with ``channel``. The webhook URL
    is itself a credential, so it is a secret like the token.
    """

    secret_fields: ClassVar[tuple[str, ...]] = ("webhook_url", "token")
    _resolve_secrets = secret_validator("webhook_url", "token")

    type: Literal["slack"]
    webhook_url: SecretStr | None = None
    token: SecretStr | None = None
    channel: str | None = None
    # Base URL of the Web API, used with a token.
    api_url: str = Field(default="https://slack.com/api/", pattern=r"^https?://")
    # Slack applies its rate limits per channel, so one message at a time.
    concurrency: int = Field(default=1, ge=1, le=64)

    @model_validator(mode="after")
    def _one_destination(self) -> SlackSettings:
        if self.webhook_url is None and self.token is None:
            raise ValueError("set webhook_url, or token and channel")
        if self.webhook_url is not None and self.token is not None:
            raise ValueError("set either webhook_url or token, not both")
        if self.token is not None and not self.channel:
            raise ValueError("token needs a channel: add channel, such as '#llm-spend'")
        return self
