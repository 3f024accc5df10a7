"""Opsgenie alert payloads: create with alias = alert id, close by alias.

Opsgenie limits ``message`` to 130 characters, ``alias`` to 512,
``description`` to 15000, ``entity`` to 512 and each tag to 50. Longer text is
cut here instead of being cut or rejected by the server.
"""

from __future__ import annotations

from typing import Any

from detector.alerts import AlertRecord
from routing import content
from routing.receivers.opsgenie.settings import OpsgenieSettings

MAX_MESSAGE_CHARS = 130
MAX_ALIAS_CHARS = 512
MAX_DESCRIPTION_CHARS = 15000
MAX_ENTITY_CHARS = 512
MAX_TAG_CHARS = 50
MAX_DETAIL_VALUE_CHARS = 8000


def create_fields(
    record: AlertRecord,
    settings: OpsgenieSettings,
    dashboard: str | None,
    failure: str | None = None,
) -> dict[str, Any]:
    """Return the fields of a create-alert request."""
    facts = content.facts(record, dashboard)
    description = "\n".join(f"{name}: {value}" for name, value in facts)
    if failure:
        description = f"Delivery failure: {failure}\n\n{description}"
    details = {name: content.truncate(value, MAX_DETAIL_VALUE_CHARS) for name, value in facts}
    details.update({f"label {k}": v for k, v in record.labels.items()})
    tags = [*settings.tags, f"tenant:{record.tenant}", f"tier:{record.tier}"]
    return {
        "message": content.truncate(content.headline(record), MAX_MESSAGE_CHARS),
        "alias": record.alert_id[:MAX_ALIAS_CHARS],
        "description": content.truncate(description, MAX_DESCRIPTION_CHARS),
        "tags": [content.truncate(tag, MAX_TAG_CHARS) for tag in tags],
        "details": details,
        "entity": content.truncate(record.tenant, MAX_ENTITY_CHARS),
        "source": settings.source,
        "priority": settings.priority.get(record.severity, "P3"),
    }
