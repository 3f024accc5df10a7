"""Webhook receiver: notifications as JSON POST requests."""

from routing.receivers.webhook.client import WebhookReceiver
from routing.receivers.webhook.settings import WebhookSettings

__all__ = ["WebhookReceiver", "WebhookSettings"]
