"""Send alert email with ``smtplib``, reusing one connection while it stays healthy.

A connection is kept for ``reuse_connection_s`` after a message and checked with
NOOP before the next one; a server that dropped it in the meantime (servers
close idle sessions, often after five minutes) gets a fresh connection. SMTP
hands responsibility for a message to the server with the reply to the end of
DATA, so a message counts as delivered once ``send_message`` returns; a failure
in the QUIT that follows changes nothing. A failure before that reply is
retryable: the server has not accepted the message.

smtplib is used instead of aiosmtplib because the send runs in the receiver's
own thread like the other blocking clients, and smtplib is in the standard
library.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
import time

from routing.receivers.base import (
    DeliveryError,
    Notification,
    SendResult,
    ThreadedReceiver,
    connection_error,
)
from routing.receivers.email.format import build_message
from routing.receivers.email.settings import EmailSettings
from routing.redact import Redactor

logger = logging.getLogger(__name__)

# SMTP replies in the 4xx range are transient by definition (RFC 5321 section 4.2.1).
_TRANSIENT_FIRST_DIGIT = 4


class EmailReceiver(ThreadedReceiver):
    """Send one email per notification to the configured recipients."""

    digest = True

    def __init__(self, settings: EmailSettings, redactor: Redactor) -> None:
        super().__init__(settings.name, redactor, 1)
        self.settings = settings
        self._context = ssl.create_default_context(
            cafile=str(settings.ca_file) if settings.ca_file else None
        )
        self._smtp: smtplib.SMTP | None = None
        self._last_used_s = 0.0
        self.connections_opened = 0

    def send_blocking(self, notification: Notification) -> SendResult:
        message = build_message(notification, self.settings)
        try:
            smtp = self._connection()
            refused = smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as error:
            self._discard()
            raise self._refused(error.recipients) from None
        except smtplib.SMTPResponseException as error:
            self._discard()
            raise self._reply_error(error.smtp_code, error.smtp_error) from None
        except (smtplib.SMTPException, OSError) as error:
            self._discard()
            raise connection_error(self.redactor, error, "SMTP send") from None
        self._last_used_s = time.monotonic()
        if self.settings.reuse_connection_s == 0:
            self._quit()
        detail = f"refused {sorted(refused)}" if refused else "accepted"
        return SendResult(250, detail)

    def _connection(self) -> smtplib.SMTP:
        if self._smtp is not None:
            idle_s = time.monotonic() - self._last_used_s
            if idle_s > self.settings.reuse_connection_s or not self._alive(self._smtp):
                self._discard()
        if self._smtp is None:
            self._smtp = self._connect()
        return self._smtp

    def _alive(self, smtp: smtplib.SMTP) -> bool:
        try:
            code, _ = smtp.noop()
        except (smtplib.SMTPException, OSError):
            return False
        return code == 250

    def _connect(self) -> smtplib.SMTP:
        settings = self.settings
        smtp: smtplib.SMTP
        if settings.security == "tls":
            smtp = smtplib.SMTP_SSL(
                settings.host, settings.smtp_port, timeout=settings.timeout_s,
                context=self._context,
            )
        else:
            smtp = smtplib.SMTP(settings.host, settings.smtp_port, timeout=settings.timeout_s)
        try:
            smtp.ehlo()
            if settings.security == "starttls":
                smtp.starttls(context=self._context)
                smtp.ehlo()
            if settings.username is not None and settings.password is not None:
                smtp.login(settings.username, settings.password.get_secret_value())
        except BaseException:
            smtp.close()
            raise
        self.connections_opened += 1
        return smtp

    def _quit(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError) as error:
            # The message was already accepted; only the goodbye failed.
            logger.debug("SMTP QUIT on %s failed: %s", self.name, type(error).__name__)
            smtp.close()

    def _discard(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            smtp.close()

    def _reply_error(self, code: int, text: bytes | str) -> DeliveryError:
        reply = text.decode(errors="replace") if isinstance(text, bytes) else text
        message = self.redactor(f"SMTP server replied {code}: {reply}")
        if code // 100 == _TRANSIENT_FIRST_DIGIT:
            return DeliveryError(message, retryable=True, status_code=code)
        return DeliveryError(message, retryable=False, status_code=code)

    def _refused(self, recipients: dict[str, tuple[int, bytes]]) -> DeliveryError:
        """Build the error for a message whose every recipient the server rejected."""
        replies = "; ".join(
            f"{address}: {code} {reply.decode(errors='replace')}"
            for address, (code, reply) in sorted(recipients.items())
        )
        message = self.redactor(f"SMTP server rejected every recipient: {replies}")
        # A 4xx rejection (mailbox busy, greylisting) may pass on another attempt.
        transient = all(code // 100 == _TRANSIENT_FIRST_DIGIT for code, _ in recipients.values())
        status_code = max(code for code, _ in recipients.values())
        return DeliveryError(message, retryable=transient, status_code=status_code)

    def close_blocking(self) -> None:
        self._quit()
