"""What a provider reported for one day, and the HTTP fetching the reports share.

Provider amounts are parsed from the JSON text into ``Decimal``: ``json.loads`` with
``parse_float=Decimal`` keeps every digit of a JSON number, and string amounts are
converted with ``Decimal(text)``. httpx is the HTTP client; the retry loop is written
here because it must honour ``Retry-After``, bound the total wait and sleep through
an injected function so tests do not wait.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from detector.reconcile.settings import RetrySettings

log = logging.getLogger(__name__)

Sleep = Callable[[float], None]
# (model, project); None where the provider does not break its costs down so.
LineKey = tuple[str | None, str | None]


class ProviderUnavailable(Exception):
    """The provider's report could not be fetched or read."""


@dataclass(frozen=True, slots=True)
class ProviderReport:
    """A provider's costs for one UTC day, in USD.

    ``complete`` is False while the provider may still add to the day, and
    ``partial_reason`` then gives the reason. ``reports_model`` and ``reports_project`` tell
    which breakdown ``lines`` carries. ``excluded_usd`` holds costs that metering
    cannot see (web search, code execution), left out of the comparison.
    """

    provider: str
    day: date
    complete: bool
    lines: dict[LineKey, Decimal]
    reports_model: bool
    reports_project: bool
    partial_reason: str = ""
    excluded_usd: Decimal = Decimal(0)
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def total_usd(self) -> Decimal:
        return sum(self.lines.values(), Decimal(0))


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """Return the start and the exclusive end of a UTC day."""
    start = datetime.combine(day, time(0), UTC)
    return start, start + timedelta(days=1)


def settled(day: date, now: datetime, settle_s: float) -> bool:
    """Return whether ``settle_s`` has passed since the end of ``day`` at ``now``."""
    return now >= day_bounds(day)[1] + timedelta(seconds=settle_s)


def parse_json(text: str, source: str) -> Any:
    try:
        return json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as error:
        raise ProviderUnavailable(f"{source} returned invalid JSON: {error}") from None


def to_decimal(value: object, source: str) -> Decimal:
    """Convert a JSON amount (number parsed as Decimal, or string) to Decimal."""
    if isinstance(value, bool) or not isinstance(value, (Decimal, int, str)):
        raise ProviderUnavailable(f"{source} amount {value!r} is not a number")
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise ProviderUnavailable(
            f"{source} amount {value!r} is not a number"
        ) from None
    if not amount.is_finite():
        raise ProviderUnavailable(f"{source} amount {value!r} is not finite")
    return amount


class JsonClient:
    """GET JSON from one provider with bounded retries on 429, 5xx and network errors."""

    def __init__(
        self,
        name: str,
        base_url: str,
        headers: Mapping[str, str],
        retry: RetrySettings,
        sleep: Sleep,
    ) -> None:
        self.name = name
        self.retry = retry
        self.sleep = sleep
        self.http = httpx.Client(
            base_url=base_url,
            headers=dict(headers),
            timeout=retry.timeout_s,
            follow_redirects=False,
        )

    def close(self) -> None:
        self.http.close()

    def get(self, path: str, params: Mapping[str, Any]) -> Any:
        """Return the parsed JSON body of ``GET path``, retrying within the limits."""
        backoff_s = self.retry.backoff_s
        for attempt in range(1, self.retry.max_attempts + 1):
            last = attempt == self.retry.max_attempts
            try:
                response = self.http.get(path, params=dict(params))
            except httpx.TransportError as error:
                problem = f"request to {self.name} {path} failed: {error!r}"
                if last:
                    raise ProviderUnavailable(problem) from None
                log.warning("%s; retrying in %.1f s", problem, backoff_s)
                self.sleep(backoff_s)
                backoff_s *= 2
                continue

            status = response.status_code
            if status == 429 or status >= 500:
                wait_s = retry_after_s(response) or backoff_s
                problem = f"{self.name} {path} returned HTTP {status}"
                if last:
                    raise ProviderUnavailable(
                        f"{problem} on all {self.retry.max_attempts} attempts"
                    )
                if wait_s > self.retry.max_retry_after_s:
                    raise ProviderUnavailable(
                        f"{problem} and asked to wait {wait_s:.0f} s, more than "
                        f"max_retry_after_s={self.retry.max_retry_after_s:.0f}"
                    )
                log.warning("%s; retrying in %.1f s", problem, wait_s)
                self.sleep(wait_s)
                backoff_s *= 2
                continue
            if status >= 400:
                raise ProviderUnavailable(
                    f"{self.name} {path} returned HTTP {status}: {response.text[:300]}"
                )
            return parse_json(response.text, f"{self.name} {path}")
        raise AssertionError("the retry loop returns or raises")


def retry_after_s(response: httpx.Response) -> float | None:
    """Read ``Retry-After`` as seconds or as an HTTP date against the ``Date`` header."""
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        until = parsedate_to_datetime(value)
        sent = parsedate_to_datetime(response.headers.get("date", ""))
    except (TypeError, ValueError):
        # Without the server's Date the wait cannot be known; back off instead.
        return None
    return max(0.0, (until - sent).total_seconds())
