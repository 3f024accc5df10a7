"""Receivers: one subpackage per service, each with its settings, format and client.

``build_receiver`` turns validated settings into a ready receiver. Every
receiver points its client library at the base URL from its settings, so a
deployment can use a regional endpoint and tests can use loopback servers.
"""

from __future__ import annotations

from routing.receivers.base import Receiver
from routing.redact import Redactor
from routing.secrets import ReceiverSettings


def build_receiver(settings: ReceiverSettings, redactor: Redactor) -> Receiver:
    """Build the receiver for one ``receivers`` entry."""
    # Imported here so that loading a routing file does not import every client.
    from routing.receivers.email import EmailReceiver, EmailSettings
    from routing.receivers.opsgenie import OpsgenieReceiver, OpsgenieSettings
    from routing.receivers.pagerduty import PagerDutyReceiver, PagerDutySettings
    from routing.receivers.slack import SlackReceiver, SlackSettings
    from routing.receivers.webhook import WebhookReceiver, WebhookSettings

    redactor.add(settings.secret_values())
    if isinstance(settings, PagerDutySettings):
        return PagerDutyReceiver(settings, redactor)
    if isinstance(settings, OpsgenieSettings):
        return OpsgenieReceiver(settings, redactor)
    if isinstance(settings, SlackSettings):
        return SlackReceiver(settings, redactor)
    if isinstance(settings, EmailSettings):
        return EmailReceiver(settings, redactor)
    if isinstance(settings, WebhookSettings):
        return WebhookReceiver(settings, redactor)
    raise TypeError(f"no receiver for settings {type(settings).__name__}")
