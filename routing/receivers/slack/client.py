"""Post digests with ``slack_sdk``: ``WebhookClient`` or ``WebClient.chat_postMessage``.

Both clients get an empty list of retry handlers, because delivery retries with
``Retry-After`` and jitter itself, and a logger of their own at WARNING level,
because at DEBUG level the SDK logs the request URL, which for a webhook is the
credential.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import replace
from urllib.error import URLError

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient

from routing.receivers.base import (
    DeliveryError,
    Notification,
    SendResult,
    ThreadedReceiver,
    connection_error,
    http_error,
    parse_retry_after,
)
from routing.receivers.slack import format as slack_format
from routing.receivers.slack.settings import SlackSettings
from routing.redact import Redactor

# ``ok: false`` errors that another attempt can fix; all others are permanent.
RETRYABLE_API_ERRORS = frozenset(
    {"ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout"}
)

_sdk_logger = logging.getLogger("routing.receivers.slack.sdk")
_sdk_logger.setLevel(logging.WARNING)


class SlackReceiver(ThreadedReceiver):
    """Post Slack digests, one message per chunk."""

    digest = True

    def __init__(self, settings: SlackSettings, redactor: Redactor) -> None:
        super().__init__(settings.name, redactor, settings.concurrency)
        self.settings = settings
        context = None
        if settings.ca_file is not None:
            context = ssl.create_default_context(cafile=str(settings.ca_file))
        timeout = int(max(1, round(settings.timeout_s)))
        self._webhook: WebhookClient | None = None
        self._web: WebClient | None = None
        if settings.webhook_url is not None:
            self._webhook = WebhookClient(
                settings.webhook_url.get_secret_value(),
                timeout=timeout,
                ssl=context,
                logger=_sdk_logger,
                retry_handlers=[],
            )
        else:
            assert settings.token is not None
            self._web = WebClient(
                token=settings.token.get_secret_value(),
                base_url=settings.api_url,
                timeout=timeout,
                ssl=context,
                logger=_sdk_logger,
                retry_handlers=[],
            )

    def split(self, notification: Notification) -> list[Notification]:
        chunks = slack_format.split(notification)
        return [
            replace(
                notification,
                key=f"{notification.key}#{index + 1}" if len(chunks) > 1 else notification.key,
                alerts=tuple(chunk),
                chunk_index=index,
                chunk_count=len(chunks),
            )
            for index, chunk in enumerate(chunks)
        ]

    def send_blocking(self, notification: Notification) -> SendResult:
        body = slack_format.message(notification)
        try:
            if self._webhook is not None:
                return self._send_webhook(body)
            return self._post_message(body)
        except (URLError, OSError) as error:
            raise connection_error(self.redactor, error, "Slack request") from None

    def _send_webhook(self, body: dict[str, object]) -> SendResult:
        assert self._webhook is not None
        response = self._webhook.send_dict(body)
        if response.status_code == 200:
            return SendResult(200, response.body[:40])
        raise http_error(
            self.redactor,
            response.status_code,
            response.body,
            response.headers,
            "Slack webhook",
        )

    def _post_message(self, body: dict[str, object]) -> SendResult:
        assert self._web is not None
        try:
            response = self._web.chat_postMessage(
                channel=self.settings.channel or "",
                text=str(body["text"]),
                blocks=body["blocks"],  # type: ignore[arg-type]
                unfurl_links=False,
            )
        except SlackApiError as error:
            raise self._api_error(error) from None
        return SendResult(response.status_code, f"ts={response.get('ts')}")

    def _api_error(self, error: SlackApiError) -> DeliveryError:
        response = error.response
        code = str(response.get("error", "unknown_error"))
        status = response.status_code
        retry_after_s = None
        retry_after = response.headers.get("Retry-After") or response.headers.get("retry-after")
        if isinstance(retry_after, list):
            retry_after = retry_after[0]
        if retry_after:
            retry_after_s = parse_retry_after(str(retry_after))
        retryable = status == 429 or status >= 500 or code in RETRYABLE_API_ERRORS
        message = self.redactor(f"Slack chat.postMessage failed with HTTP {status}: {code}")
        return DeliveryError(
            message, retryable=retryable, status_code=status, retry_after_s=retry_after_s
        )
