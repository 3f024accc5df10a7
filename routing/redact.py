"""Keep secrets out of logs, audit records, error messages and reprs.

Receivers hold routing keys, API keys, bot tokens, SMTP passwords and webhook URLs
that are themselves credentials. Settings keep them as pydantic ``SecretStr``, so
a repr shows ``**********``. Text that comes back from a server or a client
library (an error body that echoes the request, an exception that names the
URL) passes through a ``Redactor`` before it is logged, audited or raised. A
``RedactingFilter`` does the same for log records of the client libraries, whose
messages burnrate does not control.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from urllib.parse import quote, urlsplit

REDACTED = "[REDACTED]"

# Shorter values are not treated as secrets: replacing them would garble
# ordinary words in messages.
_MIN_SECRET_CHARS = 6

# Loggers of the client libraries that may print request URLs, headers or bodies.
LIBRARY_LOGGERS = (
    "slack_sdk",
    "pagerduty",
    "opsgenie_sdk",
    "urllib3",
    "httpx2",
    "aiohttp",
    "mail.log",
)


class Redactor:
    """Replace every known secret value, plain or URL-encoded, with ``[REDACTED]``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        for secret in secrets:
            if len(secret) < _MIN_SECRET_CHARS:
                continue
            self._secrets.add(secret)
            self._secrets.add(quote(secret, safe=""))
            self._secrets.add(quote(secret, safe="/:"))
            self._add_url_parts(secret)

    def _add_url_parts(self, secret: str) -> None:
        """Also redact the path and query of a secret URL, which servers echo alone."""
        if not secret.startswith(("https://", "http://")):
            return
        parts = urlsplit(secret)
        for part in (parts.path, parts.path.lstrip("/"), parts.query):
            if len(part) >= _MIN_SECRET_CHARS and part.strip("/"):
                self._secrets.add(part)

    def __call__(self, text: str) -> str:
        # Longest first, so a URL that contains a token is replaced whole.
        for secret in sorted(self._secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def __repr__(self) -> str:
        return f"Redactor({len(self._secrets)} values)"


class RedactingFilter(logging.Filter):
    """A logging filter that formats each record and redacts its text."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self.redactor(message)
        if redacted != message or record.args:
            record.msg = redacted
            record.args = None
        if record.exc_info and record.exc_info[1] is not None:
            exc_text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = self.redactor(exc_text)
            record.exc_info = None
        return True


def install_filter(redactor: Redactor, names: Iterable[str] = LIBRARY_LOGGERS) -> None:
    """Attach a redacting filter to the routing loggers and the library loggers.

    A logger's filters apply only to records logged on that logger itself, not to
    those of its children, so every existing logger under each name gets its own
    filter. Libraries create their loggers when imported, so call this after the
    receivers are built. Calling it again for the same redactor adds nothing.
    """
    prefixes = ("routing", *names)
    existing = [
        name
        for name, logger in logging.root.manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
        and any(name == p or name.startswith(p + ".") for p in prefixes)
    ]
    for name in {*prefixes, *existing}:
        logger = logging.getLogger(name)
        if not any(
            isinstance(f, RedactingFilter) and f.redactor is redactor
            for f in logger.filters
        ):
            logger.addFilter(RedactingFilter(redactor))
