"""PagerDuty receiver: Events API v2 trigger and resolve, deduplicated by alert id."""

from routing.receivers.pagerduty.client import PagerDutyReceiver
from routing.receivers.pagerduty.settings import PagerDutySettings

__all__ = ["PagerDutyReceiver", "PagerDutySettings"]
