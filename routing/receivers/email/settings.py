"""Settings of an email receiver (SMTP with STARTTLS, implicit TLS or neither)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, SecretStr, model_validator

from routing.secrets import ReceiverSettings, secret_validator

_DEFAULT_PORTS = {"starttls": 587, "tls": 465, "none": 25}


class EmailSettings(ReceiverSettings):
    """An SMTP server, the sender and the recipients of alert email."""

    secret_fields: ClassVar[tuple[str, ...]] = ("password",)
    _resolve_secrets = secret_validator("password")

    type: Literal["email"]
    host: str
    port: int | None = Field(default=None, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    from_: str = Field(alias="from", pattern=r"^[^@\s]+@[^@\s]+$")
    to: tuple[str, ...] = Field(min_length=1)
    subject_prefix: str = "[burnrate]"
    # How long an idle connection is kept for the next message; 0 closes it
    # (QUIT) after every message.
    reuse_connection_s: float = Field(default=60.0, ge=0)
    # One SMTP connection is used at a time.
    concurrency: int = Field(default=1, ge=1, le=1)

    @model_validator(mode="after")
    def _credentials(self) -> EmailSettings:
        if (self.username is None) != (self.password is None):
            raise ValueError("set both username and password, or neither")
        return self

    @property
    def smtp_port(self) -> int:
        return self.port or _DEFAULT_PORTS[self.security]
