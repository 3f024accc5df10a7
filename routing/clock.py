"""Clocks for delivery: the system clock, and a scaled clock for tests and replays.

Delivery needs "now" for group timers, retry back-off and ``Retry-After``, and it
needs to sleep until a deadline. Both come from a ``Clock`` passed in, so a test
can run thirty seconds of rate limiting in a fraction of a second without
changing any waiting logic. ``ScaledClock`` runs real time faster by a fixed
factor instead of simulating it step by step, because the receivers' client
libraries block in threads and loopback servers answer in their own threads; a
simulated clock would have to know when all of them are idle.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol

_MIN_SLEEP_S = 0.0005


class Clock(Protocol):
    """A source of the current time that can also wait until a given time."""

    def now(self) -> datetime:
        """Return the current time, timezone-aware in UTC."""
        ...

    async def sleep_until(self, deadline: datetime) -> None:
        """Wait until ``now()`` is at or after ``deadline``."""
        ...


class SystemClock:
    """The wall clock, with waits measured on the event loop's monotonic clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_until(self, deadline: datetime) -> None:
        while (remaining_s := (deadline - self.now()).total_seconds()) > 0:
            await asyncio.sleep(max(remaining_s, _MIN_SLEEP_S))


class ScaledClock:
    """A clock that starts at ``start`` and runs ``scale`` times faster than real time.

    Waits loop until the clock has reached the deadline, so a wait never ends
    early even when the event loop wakes a little before its timer. The clock is
    safe to read from several threads.
    """

    def __init__(self, start: datetime, scale: float) -> None:
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        if scale <= 0:
            raise ValueError(f"invalid scale {scale}: use a positive factor")
        self.start = start
        self.scale = scale
        self._origin_s = time.monotonic()

    def now(self) -> datetime:
        elapsed_s = (time.monotonic() - self._origin_s) * self.scale
        return self.start + timedelta(seconds=elapsed_s)

    def elapsed_s(self) -> float:
        """Return the seconds of clock time since ``start``."""
        return (self.now() - self.start).total_seconds()

    async def sleep_until(self, deadline: datetime) -> None:
        while (remaining_s := (deadline - self.now()).total_seconds()) > 0:
            await asyncio.sleep(max(remaining_s / self.scale, _MIN_SLEEP_S))

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of clock time."""
        await self.sleep_until(self.now() + timedelta(seconds=seconds))
