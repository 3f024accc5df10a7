"""Start ``burnrate serve``: create missing topics, then run one Faust worker."""

from __future__ import annotations

import asyncio
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from detector.config import RuleSet
from detector.service.settings import ServiceSettings

logger = logging.getLogger("burnrate.service")


async def ensure_topics(settings: ServiceSettings) -> None:
    """Create the service's topics that do not exist yet.

    The events topic is created with ``partitions`` partitions when missing; an
    existing one keeps its partition count. The budget-state topic is compacted,
    because gateways only need each tenant's latest record.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(settings.events_topic, settings.partitions, settings.replication_factor),
            NewTopic(settings.alerts_topic, settings.partitions, settings.replication_factor),
            # A rejected record is sent whole (up to the decoder's limit), so
            # the dead-letter topic accepts records as large as a snapshot.
            NewTopic(
                settings.dead_letter_topic,
                1,
                settings.replication_factor,
                topic_configs={"max.message.bytes": str(settings.snapshot_max_bytes)},
            ),
            NewTopic(
                settings.budget_state_topic,
                settings.partitions,
                settings.replication_factor,
                topic_configs={"cleanup.policy": "compact"},
            ),
        ]
        if settings.otlp_topic:
            wanted.append(
                NewTopic(settings.otlp_topic, settings.partitions, settings.replication_factor)
            )
        missing = [topic for topic in wanted if topic.name not in existing]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass  # another worker created it between the list and the create
            logger.info("created topics %s", ", ".join(t.name for t in missing))
    finally:
        await admin.close()


def serve(settings: ServiceSettings, rules: RuleSet) -> None:
    """Run the worker until SIGTERM or SIGINT; Faust commits what is done on the way out."""
    from faust import Worker

    from detector.service.app import build_app

    asyncio.run(ensure_topics(settings))
    app, _ = build_app(settings, rules)
    _log_start(settings, rules)
    # The root logger is set up by detector.service.logs; Faust keeps it.
    worker = Worker(app, loglevel=settings.log_level, quiet=True, override_logging=False)
    # Faust's startup spinner writes terminal escape codes into the log.
    worker.spinner = None
    worker.execute_from_commandline()


def _log_start(settings: ServiceSettings, rules: RuleSet) -> None:
    logger.info(
        "starting %s: events topic %s (%d partitions), alerts topic %s, "
        "dead-letter topic %s, budget-state topic %s",
        settings.app_id, settings.events_topic, settings.partitions,
        settings.alerts_topic, settings.dead_letter_topic, settings.budget_state_topic,
    )
    logger.info(
        "rules from %s: %d tenants, %d budgets (%s), %d rules (%s)",
        settings.rules, len(rules.tenants), len(rules.budgets),
        ", ".join(budget.id for budget in rules.budgets) or "none",
        len(rules.rules), ", ".join(rule.id for rule in rules.rules) or "none",
    )
