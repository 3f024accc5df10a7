"""Slack receiver: Block Kit digests through an incoming webhook or ``chat.postMessage``."""

from routing.receivers.slack.client import SlackReceiver
from routing.receivers.slack.settings import SlackSettings

__all__ = ["SlackReceiver", "SlackSettings"]
