"""Create and close Opsgenie alerts through ``opsgenie-sdk``.

The SDK retries through tenacity, sleeping up to a minute in the calling
thread, and returns some 4xx responses as if they had succeeded. It is
configured so that every status from 400 up raises at once and nothing is
retried; delivery retries instead. With retries off, tenacity wraps the last
failure in ``RetryError``, which is unwrapped here.
"""

from __future__ import annotations

import opsgenie_sdk
import tenacity
import urllib3

from routing import content
from routing.receivers.base import (
    DeliveryError,
    Notification,
    SendResult,
    ThreadedReceiver,
    connection_error,
    http_error,
)
from routing.receivers.opsgenie.format import MAX_ALIAS_CHARS, create_fields
from routing.receivers.opsgenie.settings import OpsgenieSettings
from routing.redact import Redactor


class OpsgenieReceiver(ThreadedReceiver):
    """Create an Opsgenie alert per firing alert and close it on resolve."""

    def __init__(self, settings: OpsgenieSettings, redactor: Redactor) -> None:
        super().__init__(settings.name, redactor, settings.concurrency)
        self.settings = settings
        configuration = opsgenie_sdk.Configuration()
        configuration.host = settings.api_url.rstrip("/")
        configuration.api_key["Authorization"] = settings.api_key.get_secret_value()
        configuration.retry_enabled = False
        configuration.retry_http_response = ["400-599"]
        if settings.ca_file is not None:
            configuration.ssl_ca_cert = str(settings.ca_file)
        self._api_client = opsgenie_sdk.ApiClient(configuration=configuration)
        self._alerts = opsgenie_sdk.AlertApi(api_client=self._api_client)

    def send_blocking(self, notification: Notification) -> SendResult:
        (record,) = notification.alerts
        dashboard = content.dashboard_url(record, notification.dashboard_template)
        alias = record.alert_id[:MAX_ALIAS_CHARS]
        timeout = (self.settings.timeout_s, self.settings.timeout_s)
        try:
            if record.status == "resolved":
                payload = opsgenie_sdk.CloseAlertPayload(
                    source=self.settings.source, note="Resolved by burnrate"
                )
                response = self._alerts.close_alert(
                    alias,
                    identifier_type="alias",
                    close_alert_payload=payload,
                    _request_timeout=timeout,
                )
            else:
                fields = create_fields(
                    record, self.settings, dashboard, notification.failure
                )
                response = self._alerts.create_alert(
                    opsgenie_sdk.CreateAlertPayload(**fields),
                    _request_timeout=timeout,
                )
        except tenacity.RetryError as wrapped:
            raise self._error(wrapped.last_attempt.exception()) from None
        except (opsgenie_sdk.exceptions.OpenApiException, urllib3.exceptions.HTTPError) as error:
            raise self._error(error) from None
        return SendResult(202, f"request_id={response.request_id}")

    def _error(self, error: BaseException | None) -> DeliveryError:
        status = getattr(error, "status", None)
        if isinstance(status, int) and status > 0:
            body = getattr(error, "body", None) or ""
            headers = dict(getattr(error, "headers", None) or {})
            return http_error(self.redactor, status, str(body), headers, "Opsgenie request")
        if error is None:
            error = RuntimeError("no response")
        return connection_error(self.redactor, error, "Opsgenie request")

    def close_blocking(self) -> None:
        self._api_client.rest_client.pool_manager.clear()
