"""The receiver interface, the notification it sends and how failures are classified.

A ``Notification`` is one message to one receiver: a single alert change for
PagerDuty and Opsgenie, or a digest of changes for Slack, email and webhooks. A
receiver either returns a ``SendResult`` or raises ``DeliveryError``, which says
whether the failure is worth retrying (rate limits, server errors, lost
connections) or permanent (any other 4xx, an invalid payload), and carries the
server's ``Retry-After``. Messages in a ``DeliveryError`` are redacted, because
they reach logs and the audit log.

Receivers built on blocking client libraries run each send in a thread pool of
their own, so a receiver whose server hangs holds only its own threads.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import TypeVar

from detector.alerts import AlertRecord
from routing.redact import Redactor

T = TypeVar("T")

# Server-side failures that another attempt can fix.
RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
MAX_ERROR_BODY_CHARS = 300


@dataclass(frozen=True)
class Notification:
    """One message for one receiver about one or more alert changes."""

    receiver: str
    key: str
    alerts: tuple[AlertRecord, ...]
    group_labels: tuple[tuple[str, str], ...] = ()
    dashboard_template: str | None = None
    # Set when this is a fallback notification: which receiver rejected it and why.
    failed_receiver: str | None = None
    failure: str | None = None
    chunk_index: int = 0
    chunk_count: int = 1
    test: bool = False

    @property
    def firing(self) -> list[AlertRecord]:
        return [a for a in self.alerts if a.status == "firing"]

    @property
    def resolved(self) -> list[AlertRecord]:
        return [a for a in self.alerts if a.status == "resolved"]


@dataclass(frozen=True)
class SendResult:
    """A successful send: the HTTP or SMTP status and a short note for the audit log."""

    status_code: int | None
    detail: str = ""


class DeliveryError(Exception):
    """A failed send, classified as retryable or permanent; its text is redacted."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        status_code: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.status_code = status_code
        self.retry_after_s = retry_after_s

    def __repr__(self) -> str:
        kind = "retryable" if self.retryable else "permanent"
        return f"DeliveryError({self.message!r}, {kind}, status={self.status_code})"


def http_error(
    redactor: Redactor,
    status_code: int,
    body: str,
    headers: Mapping[str, str] | None = None,
    what: str = "request",
) -> DeliveryError:
    """Build the ``DeliveryError`` for an HTTP error status, classified by status."""
    retry_after_s = None
    if headers is not None:
        value = _header(headers, "Retry-After")
        if value is not None:
            retry_after_s = parse_retry_after(value)
    text = " ".join(body.split())[:MAX_ERROR_BODY_CHARS]
    message = redactor(f"{what} failed with HTTP {status_code}: {text or 'no body'}")
    return DeliveryError(
        message,
        retryable=status_code in RETRYABLE_STATUS or status_code >= 500,
        status_code=status_code,
        retry_after_s=retry_after_s,
    )


def connection_error(redactor: Redactor, error: BaseException, what: str) -> DeliveryError:
    """Build the retryable ``DeliveryError`` for a network failure."""
    detail = redactor(str(error)) or type(error).__name__
    return DeliveryError(
        f"{what} failed: {type(error).__name__}: {detail}", retryable=True
    )


def parse_retry_after(value: str, now: datetime | None = None) -> float | None:
    """Parse a ``Retry-After`` value: delay seconds or an HTTP date (RFC 9110)."""
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name.lower():
            return value[0] if isinstance(value, list) else value
    return None


class Receiver(abc.ABC):
    """A destination for notifications; subclasses implement ``send``."""

    #: Whether many alert changes may go into one notification.
    digest: bool = False

    def __init__(self, name: str, redactor: Redactor, concurrency: int) -> None:
        self.name = name
        self.redactor = redactor
        self.concurrency = concurrency

    def split(self, notification: Notification) -> list[Notification]:
        """Split a notification into messages within the service's limits."""
        return [notification]

    @abc.abstractmethod
    async def send(self, notification: Notification) -> SendResult:
        """Send one notification; raise ``DeliveryError`` on failure."""

    async def aclose(self) -> None:
        """Release connections and threads."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class ThreadedReceiver(Receiver):
    """A receiver whose client library blocks: each send runs in its own threads."""

    def __init__(self, name: str, redactor: Redactor, concurrency: int) -> None:
        super().__init__(name, redactor, concurrency)
        self._executor = ThreadPoolExecutor(
            max_workers=concurrency, thread_name_prefix=f"receiver-{name}"
        )

    async def run_blocking(self, function: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, function)

    async def send(self, notification: Notification) -> SendResult:
        return await self.run_blocking(lambda: self.send_blocking(notification))

    @abc.abstractmethod
    def send_blocking(self, notification: Notification) -> SendResult:
        """Send one notification from a worker thread."""

    async def aclose(self) -> None:
        await self.run_blocking(self.close_blocking)
        self._executor.shutdown(wait=False)

    def close_blocking(self) -> None:
        """Close the client from a worker thread."""
