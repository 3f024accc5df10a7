"""POST notifications as JSON with aiohttp; status codes decide success and retries."""

from __future__ import annotations

import ssl

import aiohttp
import msgspec

from routing.receivers.base import (
    Notification,
    Receiver,
    SendResult,
    connection_error,
    http_error,
)
from routing.receivers.webhook.format import payload
from routing.receivers.webhook.settings import WebhookSettings
from routing.redact import Redactor

_encoder = msgspec.json.Encoder(decimal_format="string")


class WebhookReceiver(Receiver):
    """Send each notification as one JSON POST; any 2xx status is success."""

    digest = True

    def __init__(self, settings: WebhookSettings, redactor: Redactor) -> None:
        super().__init__(settings.name, redactor, settings.concurrency)
        self.settings = settings
        self._ssl: ssl.SSLContext | bool = True
        if settings.ca_file is not None:
            self._ssl = ssl.create_default_context(cafile=str(settings.ca_file))
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            timeout = aiohttp.ClientTimeout(total=self.settings.timeout_s)
            self._session = aiohttp.ClientSession(timeout=timeout)
        return self._session

    async def send(self, notification: Notification) -> SendResult:
        headers = {"Content-Type": "application/json", "User-Agent": "burnrate"}
        if self.settings.bearer_token is not None:
            token = self.settings.bearer_token.get_secret_value()
            headers["Authorization"] = f"Bearer {token}"
        body = _encoder.encode(payload(notification))
        url = self.settings.url.get_secret_value()
        try:
            async with self._client().post(
                url, data=body, headers=headers, ssl=self._ssl
            ) as response:
                text = await response.text(errors="replace")
                if 200 <= response.status < 300:
                    return SendResult(response.status)
                raise http_error(
                    self.redactor, response.status, text, dict(response.headers), "webhook POST"
                )
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            raise connection_error(self.redactor, error, "webhook POST") from None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
