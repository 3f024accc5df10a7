"""Slack Block Kit digests, split into messages within Slack's documented limits.

Slack allows at most 50 blocks per message, 3000 characters in a section's text
and 150 in a header, and truncates a message's top-level ``text`` beyond 40,000
characters. A digest gives each alert change its own section, so one message
carries at most ``MAX_BLOCKS - 3`` alerts (a header, a context footer and, on a
fallback message, the failure section take the rest), and a larger digest is
split into chunks that are sent, and retried, independently.
"""

from __future__ import annotations

from typing import Any

from detector.alerts import AlertRecord
from routing import content
from routing.receivers.base import Notification

MAX_BLOCKS = 50
MAX_SECTION_CHARS = 3000
MAX_HEADER_CHARS = 150
MAX_TEXT_CHARS = 40_000
MAX_CONTEXT_CHARS = 2000
_FIXED_BLOCKS = 3


def alerts_per_message() -> int:
    return MAX_BLOCKS - _FIXED_BLOCKS


def escape(text: str) -> str:
    """Escape the three characters that Slack's mrkdwn treats as control."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def split(notification: Notification) -> list[list[AlertRecord]]:
    """Split a digest's alerts into chunks that each fit one message."""
    per_message = alerts_per_message()
    chunks: list[list[AlertRecord]] = []
    current: list[AlertRecord] = []
    text_chars = 0
    for record in notification.alerts:
        line_chars = len(content.headline(record)) + 1
        if current and (len(current) >= per_message or text_chars + line_chars > MAX_TEXT_CHARS - 500):
            chunks.append(current)
            current, text_chars = [], 0
        current.append(record)
        text_chars += line_chars
    if current:
        chunks.append(current)
    return chunks


def message(notification: Notification) -> dict[str, Any]:
    """Return the ``text`` and ``blocks`` of one digest message."""
    blocks: list[dict[str, Any]] = [_header(notification)]
    if notification.failure:
        failure = f":warning: Delivery to *{escape(notification.failed_receiver or '')}* failed: {escape(notification.failure)}"
        blocks.append(_section(failure))
    for record in notification.alerts:
        blocks.append(_section(_alert_text(record, notification.dashboard_template)))
    blocks.append(_context(notification))
    text = "\n".join(content.headline(record) for record in notification.alerts)
    return {"text": content.truncate(text, MAX_TEXT_CHARS), "blocks": blocks}


def _header(notification: Notification) -> dict[str, Any]:
    firing = len(notification.firing)
    resolved = len(notification.resolved)
    parts = []
    if firing:
        parts.append(f"{firing} firing")
    if resolved:
        parts.append(f"{resolved} resolved")
    title = f"burnrate: {', '.join(parts) or 'test message'}"
    if notification.chunk_count > 1:
        title += f" (part {notification.chunk_index + 1} of {notification.chunk_count})"
    return {
        "type": "header",
        "text": {"type": "plain_text", "text": content.truncate(title, MAX_HEADER_CHARS)},
    }


def _alert_text(record: AlertRecord, dashboard_template: str | None) -> str:
    icon = ":red_circle:" if record.status == "firing" else ":large_green_circle:"
    lines = [f"{icon} *{escape(content.headline(record))}*"]
    when = record.started_at.strftime("%Y-%m-%d %H:%M UTC")
    facts = [f"started {when}"]
    if record.window_s is not None:
        facts.append(f"window {record.window_s // 60} min")
    if record.period_start is not None:
        facts.append(f"period from {record.period_start:%Y-%m-%d}")
    lines.append(escape(" · ".join(facts)))
    links = []
    if record.runbook_url:
        links.append(f"<{record.runbook_url}|Runbook>")
    dashboard = content.dashboard_url(record, dashboard_template)
    if dashboard:
        links.append(f"<{dashboard}|Dashboard>")
    if links:
        lines.append(" · ".join(links))
    return "\n".join(lines)


def _section(text: str) -> dict[str, Any]:
    return {
        "type": "section",
        "text": {"type": "mrkdwn", "text": content.truncate(text, MAX_SECTION_CHARS)},
    }


def _context(notification: Notification) -> dict[str, Any]:
    group = ", ".join(f"{k}={v}" for k, v in notification.group_labels) or "all alerts"
    text = escape(f"group: {group} · digest {notification.key}")
    return {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": content.truncate(text, MAX_CONTEXT_CHARS)}],
    }
