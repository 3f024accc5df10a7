"""Email receiver: SMTP with STARTTLS or implicit TLS, plain text and HTML."""

from routing.receivers.email.client import EmailReceiver
from routing.receivers.email.settings import EmailSettings

__all__ = ["EmailReceiver", "EmailSettings"]
