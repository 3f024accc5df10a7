"""Builders shared by the core tests: events with literal values, engines from dicts."""

from __future__ import annotations

import itertools
from datetime import datetime
from decimal import Decimal
from typing import Any

from detector.alerts import AlertRecord
from detector.config import RuleSet
from detector.engine import Engine, EngineSettings
from detector.events import Event
from detector.pricing import Pricer

_ids = itertools.count(1)


def at(text: str) -> datetime:
    """Parse an RFC 3339 literal such as ``2026-07-31T14:59:30Z``."""
    return datetime.fromisoformat(text)


def spend(
    tenant: str,
    timestamp: str,
    cost_usd: str,
    request_id: str | None = None,
    **fields: Any,
) -> Event:
    """Return an event whose cost is reported, so no price table is involved."""
    return Event(
        timestamp=at(timestamp),
        request_id=request_id or f"req-{next(_ids)}",
        tenant=tenant,
        provider="openai",
        request_model=fields.pop("model", "gpt-4o"),
        input_tokens=fields.pop("input_tokens", 100),
        output_tokens=fields.pop("output_tokens", 10),
        reported_cost_usd=Decimal(cost_usd),
        **fields,
    )


def engine_for(rules: dict[str, Any], **settings: Any) -> Engine:
    ruleset = RuleSet.model_validate(rules)
    return Engine(
        ruleset, Pricer(ruleset.prices, posted=False), EngineSettings(**settings)
    )


def run(engine: Engine, events: list[Event]) -> list[AlertRecord]:
    records: list[AlertRecord] = []
    for event in events:
        records.extend(engine.process(event))
    return records


def firing(records: list[AlertRecord], tier: str | None = None) -> list[AlertRecord]:
    return [
        record
        for record in records
        if record.status == "firing" and (tier is None or record.tier == tier)
    ]
