"""Send events through the ``pagerduty`` package's Events API v2 client.

The library retries 429 and 5xx responses itself, sleeping in the calling
thread, and by default retries a 429 without limit. Delivery does its own
retrying (with ``Retry-After``, jitter and the fallback receiver), so the client
is configured to return every response at once: no status is retried, network
errors are raised on the first failure, and a response hook stops a 429 before
the library's unlimited rate-limit loop sees it.
"""

from __future__ import annotations

import ssl
from typing import Any

import httpx2
import pagerduty

from routing import content
from routing.receivers.base import (
    DeliveryError,
    Notification,
    SendResult,
    ThreadedReceiver,
    connection_error,
    http_error,
)
from routing.receivers.pagerduty.format import (
    MAX_DEDUP_KEY_CHARS,
    links,
    trigger_payload,
)
from routing.receivers.pagerduty.settings import PagerDutySettings
from routing.redact import Redactor


class _RateLimited(Exception):
    def __init__(self, response: httpx2.Response) -> None:
        super().__init__("rate limited")
        self.response = response


def _stop_at_rate_limit(response: httpx2.Response) -> None:
    if response.status_code == 429:
        response.read()
        raise _RateLimited(response)


class PagerDutyReceiver(ThreadedReceiver):
    """Trigger and resolve PagerDuty alerts, one event per alert change."""

    def __init__(self, settings: PagerDutySettings, redactor: Redactor) -> None:
        super().__init__(settings.name, redactor, settings.concurrency)
        self.settings = settings
        verify: ssl.SSLContext | bool = True
        if settings.ca_file is not None:
            verify = ssl.create_default_context(cafile=str(settings.ca_file))
        self._client = pagerduty.EventsApiV2Client(
            settings.routing_key.get_secret_value(),
            base_url=settings.url.rstrip("/"),
            verify=verify,
            event_hooks={"response": [_stop_at_rate_limit]},
        )
        self._client.retry = {}
        self._client.max_network_attempts = 0
        self._client.timeout = settings.timeout_s  # type: ignore[assignment]

    def send_blocking(self, notification: Notification) -> SendResult:
        (record,) = notification.alerts
        dedup_key = record.alert_id[:MAX_DEDUP_KEY_CHARS]
        dashboard = content.dashboard_url(record, notification.dashboard_template)
        try:
            if record.status == "resolved":
                self._client.resolve(dedup_key)
            else:
                payload = trigger_payload(
                    record, self.settings, dashboard, notification.failure
                )
                self._client.send_event(
                    "trigger",
                    dedup_key=dedup_key,
                    payload=payload,
                    links=links(record, dashboard),
                    client="burnrate",
                )
        except _RateLimited as limited:
            raise self._http_error(limited.response) from None
        except pagerduty.HttpError as error:
            raise self._http_error(error.response) from None
        except pagerduty.Error as error:
            cause = error.__cause__ or error
            raise connection_error(self.redactor, cause, "PagerDuty event") from None
        except httpx2.TransportError as error:
            raise connection_error(self.redactor, error, "PagerDuty event") from None
        return SendResult(202, f"dedup_key={dedup_key}")

    def _http_error(self, response: httpx2.Response | Any) -> DeliveryError:
        return http_error(
            self.redactor,
            response.status_code,
            response.text,
            dict(response.headers),
            "PagerDuty event",
        )

    def close_blocking(self) -> None:
        self._client.close()
