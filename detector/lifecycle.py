"""The alert lifecycle: pending, firing, resolved, with repeats.

An evaluator reports for each alert key whether its condition holds at an
evaluation time; the lifecycle turns that stream of booleans into records. A
condition must hold for ``for_s`` before the alert fires (pending until then),
a firing alert is sent again every ``repeat_s`` while it holds, and it resolves
the first time the condition no longer holds. The alert id is fixed when the
episode starts, from the key and the start time, so a replay of the same input
gives the same ids.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Literal

import msgspec

from detector.alerts import AlertRecord, Status, alert_id


class AlertState(msgspec.Struct):
    """The live state of one alert episode."""

    alert_id: str
    status: Literal["pending", "firing"]
    started_at: datetime
    last_sent_at: datetime | None = None
    repeats: int = 0
    last_active_at: datetime | None = None


# Builds the record for a state change: (state, status, evaluation time).
RecordBuilder = Callable[[AlertState, Status, datetime], AlertRecord]


class Lifecycle:
    """The alert episodes of one tenant, keyed by rule, series and episode part."""

    __slots__ = ("alerts", "tenant")

    def __init__(self, tenant: str) -> None:
        # The tenant is part of every alert id: two tenants crossing the same
        # budget in the same second must not share one id at the receivers.
        self.tenant = tenant
        self.alerts: dict[str, AlertState] = {}

    def update(
        self,
        key: str,
        active: bool,
        now: datetime,
        build: RecordBuilder,
        *,
        for_s: int = 0,
        repeat_s: int | None = None,
        keep_firing_s: int = 0,
    ) -> AlertRecord | None:
        """Apply one evaluation and return the record it produces, if any."""
        state = self.alerts.get(key)
        if not active:
            if state is None:
                return None
            if state.status == "firing" and state.last_active_at is not None:
                if (now - state.last_active_at).total_seconds() < keep_firing_s:
                    return None
            del self.alerts[key]
            if state.status == "pending":
                return None
            return build(state, "resolved", now)

        if state is None:
            state = AlertState(
                alert_id(self.tenant, key, now.isoformat()), "pending", now
            )
            self.alerts[key] = state
        state.last_active_at = now
        if state.status == "pending":
            if (now - state.started_at).total_seconds() < for_s:
                return None
            state.status = "firing"
            state.last_sent_at = now
            return build(state, "firing", now)
        if repeat_s and state.last_sent_at is not None:
            if (now - state.last_sent_at).total_seconds() >= repeat_s:
                state.repeats += 1
                state.last_sent_at = now
                return build(state, "firing", now)
        return None

    def is_firing(self, key: str) -> bool:
        state = self.alerts.get(key)
        return state is not None and state.status == "firing"

    def keys_with_prefix(self, prefix: str) -> list[str]:
        return [key for key in self.alerts if key.startswith(prefix)]
