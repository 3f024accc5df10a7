"""Alert email: a subject line, a plain-text part and an HTML part."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from html import escape

from detector.alerts import AlertRecord
from routing import content
from routing.receivers.base import Notification
from routing.receivers.email.settings import EmailSettings

MAX_SUBJECT_CHARS = 200


def build_message(notification: Notification, settings: EmailSettings) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = subject(notification, settings)
    message["From"] = settings.from_
    message["To"] = ", ".join(settings.to)
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=settings.from_.split("@", 1)[1])
    message["X-Burnrate-Key"] = notification.key
    message.set_content(plain_text(notification))
    message.add_alternative(html_text(notification), subtype="html")
    return message


def subject(notification: Notification, settings: EmailSettings) -> str:
    if len(notification.alerts) == 1:
        text = content.headline(notification.alerts[0])
    else:
        text = (
            f"{len(notification.firing)} firing, {len(notification.resolved)} "
            f"resolved: {', '.join(sorted({a.tenant for a in notification.alerts}))}"
        )
    if notification.failure:
        text = f"delivery failed on {notification.failed_receiver}: {text}"
    return content.truncate(f"{settings.subject_prefix} {text}".strip(), MAX_SUBJECT_CHARS)


def plain_text(notification: Notification) -> str:
    parts = []
    if notification.failure:
        parts.append(
            f"Delivery to {notification.failed_receiver} failed: {notification.failure}\n"
        )
    for record in notification.alerts:
        parts.append(content.headline(record))
        for name, value in _facts(record, notification):
            parts.append(f"  {name}: {value}")
        parts.append("")
    return "\n".join(parts)


def html_text(notification: Notification) -> str:
    sections = []
    if notification.failure:
        sections.append(
            f"<p><strong>Delivery to {escape(notification.failed_receiver or '')} "
            f"failed:</strong> {escape(notification.failure)}</p>"
        )
    for record in notification.alerts:
        rows = "".join(
            f"<tr><th align='left'>{escape(name)}</th><td>{_html_value(value)}</td></tr>"
            for name, value in _facts(record, notification)
        )
        sections.append(f"<h3>{escape(content.headline(record))}</h3><table>{rows}</table>")
    return f"<html><body>{''.join(sections)}</body></html>"


def _facts(record: AlertRecord, notification: Notification) -> list[tuple[str, str]]:
    dashboard = content.dashboard_url(record, notification.dashboard_template)
    return content.facts(record, dashboard)


def _html_value(value: str) -> str:
    if value.startswith(("https://", "http://")):
        return f"<a href='{escape(value, quote=True)}'>{escape(value)}</a>"
    return escape(value)
