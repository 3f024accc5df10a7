"""Opsgenie receiver: alerts created with the alert id as alias, closed by alias."""

from routing.receivers.opsgenie.client import OpsgenieReceiver
from routing.receivers.opsgenie.settings import OpsgenieSettings

__all__ = ["OpsgenieReceiver", "OpsgenieSettings"]
