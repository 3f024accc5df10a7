"""The Faust application: agents, timers, tables and web pages of ``burnrate serve``.

Durability works in two layers. Each batch of source records is applied to the
partition's engine, then the snapshot of every tenant it changed is written to
the ``tenant-state`` table, whose changelog Kafka keeps compacted. Faust acks a
batch only after that, and flushes the producer before it commits offsets, so a
committed offset never runs ahead of the state that includes it. When a worker
dies, the partition's next owner restores the table before it reads new records.
Records it reads again are skipped by the offset each tenant stores, and request
ids already seen are dropped, so nothing is counted twice. A record that never
reaches the agent leaves a hole in its partition's offsets, and the service
seeks back to it (``detector.service.sequence``). Alert ids are
deterministic, so an alert record sent again after a crash carries the same id
and receivers deduplicate it.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from datetime import UTC, datetime
from typing import Any

import faust
import msgspec
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from faust.types import TP, EventT

from detector import alerts
from detector.alerts import AlertRecord
from detector.config import RuleSet
from detector.decode import Rejection
from detector.forecast import MonthEndForecast
from detector.otlp import OtlpMapping
from detector.service import budget_api, metrics
from detector.service.budget_state import budget_state
from detector.service.otlp_ingest import OtlpIngest
from detector.service.partition import PartitionRunner
from detector.service.reload import RulesReloader
from detector.service.sequence import OffsetSequence, Verdict
from detector.service.settings import ServiceSettings
from detector.service.stall import StallWatch
from detector.tiers.predictive import ForecastJob

logger = logging.getLogger("burnrate.service")


def fit_forecast(job: ForecastJob) -> MonthEndForecast:
    """Fit one forecast: the default of the ``forecaster`` setting."""
    return job.run()


def load_forecaster(path: str) -> Callable[[ForecastJob], MonthEndForecast]:
    """Import the forecast function named ``module:function``."""
    module_name, _, function_name = path.partition(":")
    if not module_name or not function_name:
        raise ValueError(f"forecaster {path!r} is not of the form module:function")
    function = getattr(importlib.import_module(module_name), function_name)
    if not callable(function):
        raise ValueError(f"forecaster {path!r} is not callable")
    return function  # type: ignore[no-any-return]


class BurnrateService:
    """The state shared by the agent, the timers and the web pages."""

    def __init__(
        self,
        app: faust.App,
        settings: ServiceSettings,
        rules: RuleSet,
        executor: Executor,
    ) -> None:
        self.app = app
        self.settings = settings
        self.rules = rules
        self.executor = executor
        self.forecaster = load_forecaster(settings.forecaster)
        self.runners: dict[int, PartitionRunner] = {}
        self.stall = StallWatch(settings.stall_after_s)
        self.forecasts_running = 0
        self.alerts_sent = 0
        self.metrics = metrics.ServiceMetrics(rules, settings.metrics_max_label_values)
        audit_path = settings.audit_log or settings.data_dir / "budget-decisions.jsonl"
        self.board = budget_api.BudgetBoard(budget_api.AuditLog(audit_path), self.metrics)
        raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
        self.events_topic = app.topic(settings.events_topic, **raw)
        self.alerts_topic = app.topic(settings.alerts_topic, **raw)
        self.dead_letter_topic = app.topic(settings.dead_letter_topic, **raw)
        self.budget_state_topic = app.topic(settings.budget_state_topic, **raw)
        # Keys and values are bytes: Faust derives the serializer it uses when it
        # restores the table from key_type and value_type, not from the schema,
        # and would read the changelog as JSON otherwise.
        self.table = app.Table(
            "tenant-state",
            partitions=settings.partitions,
            key_type=bytes,
            value_type=bytes,
            schema=faust.Schema(**raw),
            extra_topic_configs={"max.message.bytes": str(settings.snapshot_max_bytes)},
            on_changelog_event=self._on_changelog_event,
        )
        # The source partition of every tenant in the table. A partition's
        # runner restores all of its tenants when it starts, so a tenant that
        # sends nothing after a restart still has its alerts resolved on ticks.
        self.tenant_partitions: dict[bytes, int] = {}
        # Runners of revoked partitions, by partition, with the consumer
        # generation they were revoked from (see on_revoked).
        self.parked: dict[int, tuple[int, PartitionRunner]] = {}
        self.sequence = OffsetSequence()

    def runner(self, partition: int) -> PartitionRunner:
        """Return the partition's runner, creating it with every tenant restored."""
        runner = self.runners.get(partition)
        if runner is None:
            runner = self.runners[partition] = PartitionRunner(
                partition, self.rules, self.settings, self._lookup
            )
            runner.observe = self.metrics.observe_event
            keys = [key for key, p in self.tenant_partitions.items() if p == partition]
            restored = runner.restore(key.decode() for key in keys)
            if restored:
                logger.info("partition %d: restored %d tenants", partition, restored)
            # NOTE: tenants that no tick evaluated yet restore no watermark, so
            # their views describe the epoch's periods until the next event.
            for state in runner.engine.tenants.values():
                view = budget_state(state, self.rules, runner.engine, self.board.forecast_of)
                self.board.restore(view)
                runner.period_ends.note(view)
        return runner

    async def _on_changelog_event(self, event: EventT[Any]) -> None:
        key = event.message.key
        if key is not None:
            self.tenant_partitions[bytes(key)] = event.message.partition

    async def handle_batch(self, batch: Sequence[EventT[Any]]) -> None:
        """Apply a batch of source records, then persist and publish its effects."""
        wall_s = time.time()
        started_s = time.perf_counter()
        touched: set[int] = set()
        await self._start_partitions(batch)
        for event in batch:
            message = event.message
            verdict = self.sequence.check(message.partition, message.offset)
            if verdict is Verdict.SKIP:
                continue
            if verdict is Verdict.REWIND:
                offset = self.sequence.rewind_to(message.partition)
                await self.app.consumer.seek(message.tp, offset)
                continue
            runner = self.runner(message.partition)
            value = event.value if isinstance(event.value, bytes) else bytes(event.value)
            key = bytes(message.key) if message.key is not None else None
            output = runner.handle(value, message.offset, wall_s, key)
            self.metrics.observe_rejections(output.rejections)
            self.stall.progress(message.partition, message.offset, time.monotonic())
            touched.add(message.partition)
            await self._publish_alerts(output.alerts)
            for rejection in output.rejections:
                await self._dead_letter(
                    rejection, message.partition, message.offset, key=key
                )
        for partition in touched:
            await self._persist(self.runners[partition])
        self.metrics.flush(time.perf_counter() - started_s, datetime.now(UTC))
        await self._publish_alerts(self.metrics.take_alerts())

    async def _start_partitions(self, batch: Sequence[EventT[Any]]) -> None:
        """Look up the committed offsets of partitions new to this assignment."""
        new = {event.message.partition for event in batch}
        new = {partition for partition in new if not self.sequence.is_started(partition)}
        if not new:
            return
        committed = await self._committed_offsets(new)
        for partition in new:
            self.sequence.start(partition, committed.get(partition))

    async def _committed_offsets(self, partitions: set[int]) -> dict[int, int]:
        """Return the group's committed offset of each events partition that has one.

        ``partitions`` are the partitions being started, named in the log on failure.
        """
        admin = AIOKafkaAdminClient(bootstrap_servers=self.settings.kafka_bootstrap)
        try:
            await admin.start()
            offsets = await admin.list_consumer_group_offsets(self.settings.app_id)
        except KafkaError as error:
            logger.warning(
                "reading the committed offsets of group %s for partitions %s failed: "
                "%s. The first record of each partition sets where it continues, so "
                "a hole before it goes undetected",
                self.settings.app_id, sorted(partitions), error,
            )
            return {}
        finally:
            await admin.close()
        return {
            tp.partition: found.offset
            for tp, found in offsets.items()
            if tp.topic == self.settings.events_topic and found.offset >= 0
        }

    async def tick(self) -> None:
        """Drive event time from the wall clock and start due forecast fits."""
        now = time.monotonic()
        if not self.app.rebalancing:
            for partition in self._positions():
                self.runner(partition)
        for partition, runner in list(self.runners.items()):
            await self._publish_alerts(runner.tick(now))
            await self._persist(runner)
            self._publish_ended_periods(runner)
        await self._publish_alerts(self.stall.check(self._positions(), now))
        self.metrics.observe_tick(self._positions(), self.runners, now)

    def on_revoked(self, revoked: set[TP]) -> None:
        """Set the runners of revoked partitions aside until the new assignment.

        Kafka's eager rebalance revokes every partition, also those that stay
        with this worker. Dropping their runners here reset what they had
        counted (``/stats`` and the metrics), so they are parked with the
        generation they were owned in. Ticks and forecast results skip a parked
        runner, because only ``runners`` is visible to them.
        """
        generation = self.app.consumer_generation_id
        for tp in revoked:
            if tp.topic == self.settings.events_topic:
                self.sequence.forget(tp.partition)
                runner = self.runners.pop(tp.partition, None)
                if runner is not None:
                    self.parked[tp.partition] = (generation, runner)

    def on_assigned(self, assigned: set[TP]) -> None:
        """Take back the parked runners of kept partitions and drop the others.

        A runner is taken back only when the new generation directly follows
        the one it was parked in, because then no other worker can have owned
        the partition in between. A worker that missed a generation (it was out of
        the group) restores the partition from the table instead.
        """
        generation = self.app.consumer_generation_id
        kept = {tp.partition for tp in assigned if tp.topic == self.settings.events_topic}
        parked, self.parked = self.parked, {}
        for partition, (parked_in, runner) in parked.items():
            if partition in kept and generation == parked_in + 1:
                self.runners.setdefault(partition, runner)
            else:
                self.stall.forget(partition)
                self.metrics.forget_partition(partition)

    def stats(self) -> dict[str, Any]:
        return {
            "partitions": {
                str(partition): {
                    "records": runner.counters.records,
                    "last_offset": runner.counters.last_offset,
                    "redelivered": runner.counters.redelivered,
                    "offset_gaps": runner.counters.offset_gaps,
                    "rewinds": self.sequence.rewind_counts.get(partition, 0),
                    "rejected": runner.counters.rejected,
                    "tenants": len(runner.engine.tenants),
                    "events": runner.engine.stats.events,
                    "duplicates": runner.engine.stats.duplicates,
                    "late": runner.engine.stats.late,
                    "spend_usd": str(runner.engine.stats.spend_usd),
                    "watermark_s": runner.engine.watermark_s,
                }
                for partition, runner in sorted(self.runners.items())
            },
            "alerts_sent": self.alerts_sent,
            "forecasts_running": self.forecasts_running,
        }

    def tenant_view(self, tenant: str) -> dict[str, Any] | None:
        for runner in self.runners.values():
            state = runner.engine.tenants.get(tenant)
            if state is not None:
                return budget_state(state, self.rules, runner.engine, self.board.forecast_of)
        return None

    async def _persist(self, runner: PartitionRunner) -> set[str]:
        """Persist and publish the changed tenants of a runner, and return them."""
        snapshots = runner.take_snapshots()
        for tenant, data in snapshots.items():
            key = tenant.encode()
            self.tenant_partitions[key] = runner.partition
            self.table.send_changelog(runner.partition, key, data)
            self.table.data[key] = data
            self.publish_budget_state(runner, tenant)
        self.metrics.sync_runner(runner)
        self._start_forecasts(runner)
        return set(snapshots)

    def publish_budget_state(self, runner: PartitionRunner, tenant: str) -> None:
        """Recompute a tenant's budget state for the budget API and the topic."""
        view = budget_state(
            runner.engine.tenants[tenant], self.rules, runner.engine, self.board.forecast_of
        )
        body = msgspec.json.encode(view)
        self.board.update(view, body=body)
        runner.period_ends.note(view)
        # Buffered like the changelog record: Faust flushes the buffer before
        # it commits, and awaiting each send costs more than the batch's events.
        self.budget_state_topic.send_soon(key=tenant.encode(), value=body)

    def _publish_ended_periods(self, runner: PartitionRunner) -> None:
        """Publish again the tenants whose budget period ended at the partition's clock.

        A tenant that sends nothing changes no state when its day or month
        ends, unless a budget alert resolves. Its decision must still follow
        the new period, so a tenant blocked yesterday is allowed today.
        """
        # TODO: a silent tenant's "warn" from the run-rate forecast also goes out
        # of date within the period, because that forecast falls as time passes.
        # It is republished only at the period end. This ends when PeriodEnds
        # also records when that forecast drops below the limit.
        watermark_s = runner.engine.watermark_s
        if watermark_s is None:
            return
        for tenant in runner.period_ends.due(watermark_s):
            if tenant in runner.engine.tenants:
                self.publish_budget_state(runner, tenant)

    def _start_forecasts(self, runner: PartitionRunner) -> None:
        jobs, runner.engine.pending_forecasts = runner.engine.pending_forecasts, []
        for job, now in jobs:
            self.forecasts_running += 1
            asyncio.ensure_future(self._forecast(runner, job, now))

    async def _forecast(self, runner: PartitionRunner, job: ForecastJob, now: datetime) -> None:
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(self.executor, self.forecaster, job)
        except Exception:
            logger.exception("forecast fit failed", extra={"tenant": job.tenant})
            return
        finally:
            self.forecasts_running -= 1
        self.board.record_forecast(job, result)
        if self.runners.get(runner.partition) is not runner:
            return  # the partition moved while the fit ran; its new owner refits
        await self._publish_alerts(runner.engine.apply_forecast(job, result, now))
        await self._persist(runner)

    async def _publish_alerts(self, records: list[AlertRecord]) -> None:
        for record in records:
            await self.alerts_topic.send(
                key=record.tenant.encode(), value=alerts.encoder.encode(record)
            )
            self.alerts_sent += 1
            self.metrics.alert_published(record)
            logger.info(
                "alert %s", record.status,
                extra={"alert_id": record.alert_id, "tenant": record.tenant,
                       "rule_id": record.rule_id, "tier": record.tier},
            )

    async def _dead_letter(
        self,
        rejection: Rejection,
        partition: int,
        offset: int,
        topic: str = "",
        key: bytes | None = None,
    ) -> None:
        """Send a rejected input to the dead-letter topic with its source record's key."""
        source = topic or self.settings.events_topic
        headers = {
            "reason": rejection.reason.encode(),
            "field": (rejection.field or "").encode(),
            "detail": rejection.detail.encode(),
            "source": f"{source}/{partition}/{offset}".encode(),
        }
        await self.dead_letter_topic.send(key=key, value=rejection.raw, headers=headers)

    def _lookup(self, tenant: str) -> bytes | None:
        data = self.table.data.get(tenant.encode())
        return bytes(data) if data is not None else None

    def _positions(self) -> dict[int, int]:
        consumer = self.app.consumer
        highwaters: dict[int, int] = {}
        for tp in consumer.assignment():
            if tp.topic == self.settings.events_topic:
                highwaters[tp.partition] = consumer.highwater(tp) or 0
        return highwaters


def _add_rules_reloader(
    app: faust.App, service: BurnrateService, settings: ServiceSettings
) -> RulesReloader:
    """Reload the rules on SIGHUP or when the rules folder changes.

    An accepted rule set becomes ``service.rules`` before the engines take it,
    so runners created later and the budget-state views use it too. The
    records of a reload (budget alerts resolved by a raised limit, or the
    ``service`` alert of a rejected folder) are published first. Then every
    partition persists its changed tenants at once rather than at the next tick,
    and every tenant's budget state is published again under the new rules.
    """

    def adopt(rules: RuleSet) -> None:
        service.rules = rules
        service.metrics.use_rules(rules)

    async def publish(records: list[AlertRecord]) -> None:
        await service._publish_alerts(records)
        for runner in list(service.runners.values()):
            persisted = await service._persist(runner)
            # A change of gateway levels alone changes no tenant's state, but
            # it can change every tenant's decision. Persisted tenants were
            # published under the new rules already.
            for tenant in runner.engine.tenants.keys() - persisted:
                service.publish_budget_state(runner, tenant)

    reloader = RulesReloader(
        settings.rules,
        service.rules,
        lambda: [runner.engine for runner in service.runners.values()],
        publish,
        adopt=adopt,
    )

    @app.task
    async def reload_rules() -> None:
        reloader.install_sighup(asyncio.get_running_loop())
        await reloader.run()

    return reloader


def build_app(settings: ServiceSettings, rules: RuleSet) -> tuple[faust.App, BurnrateService]:
    """Create the Faust application for one rule set."""
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
        store="memory://",
        datadir=str(settings.data_dir),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        broker_commit_interval=settings.commit_interval_s,
        broker_max_poll_interval=settings.max_poll_interval_s,
        broker_session_timeout=settings.session_timeout_s,
        consumer_auto_offset_reset="earliest",
        producer_max_request_size=settings.snapshot_max_bytes,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        web_port=settings.web_port,
        table_standby_replicas=0,
    )
    executor = ProcessPoolExecutor(max_workers=settings.forecast_workers)
    service = BurnrateService(app, settings, rules, executor)

    @app.agent(service.events_topic)
    async def consume(stream: faust.StreamT[bytes]) -> None:
        # take_events is on faust's Stream class, not on its StreamT protocol.
        async for batch in stream.take_events(  # type: ignore[attr-defined]
            settings.batch_max_records, within=settings.batch_within_s
        ):
            await service.handle_batch(batch)

    if settings.otlp_topic:
        _add_otlp_agent(app, service, settings)

    @app.timer(interval=settings.tick_interval_s)
    async def tick() -> None:
        await service.tick()

    _add_rules_reloader(app, service, settings)

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.json({"status": "ok"})

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        # Ready once every owned events partition has restored its tenants, so
        # the budget API does not return 404 for a tenant still being restored.
        assignment = app.consumer.assignment()
        owned = {tp.partition for tp in assignment if tp.topic == settings.events_topic}
        restored = owned <= service.runners.keys()
        ready = not app.rebalancing and bool(assignment) and restored
        status = 200 if ready else 503
        return web.json({"ready": ready}, status=status)

    @app.page("/stats")
    async def stats(web: Any, request: Any) -> Any:
        return web.json(service.stats())

    metrics.register_page(app, service.metrics)
    token = settings.api_token.get_secret_value() if settings.api_token else None
    budget_api.register_page(app, service.board, token)

    # faust types its signal receivers as (sender, *args, signal=...); these
    # take the partition set by position, as faust passes it.
    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def on_revoked(app: faust.App, revoked: set[TP], **kwargs: Any) -> None:
        service.on_revoked(revoked)

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def on_assigned(app: faust.App, assigned: set[TP], **kwargs: Any) -> None:
        service.on_assigned(assigned)

    return app, service


def _add_otlp_agent(app: faust.App, service: BurnrateService, settings: ServiceSettings) -> None:
    """Consume the Collector's topic and re-key its GenAI spans onto the events topic."""
    mapping = OtlpMapping(
        tenant=_refs(settings.otlp_tenant),
        feature=_refs(settings.otlp_feature),
        route=_refs(settings.otlp_route),
        region=_refs(settings.otlp_region),
    )
    ingest = OtlpIngest(settings.otlp_encoding, mapping)
    otlp_topic = app.topic(
        settings.otlp_topic, key_serializer="raw", value_serializer="raw"
    )

    @app.agent(otlp_topic)
    async def consume_otlp(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            message = event.message
            value = event.value if isinstance(event.value, bytes) else bytes(event.value)
            output = ingest.handle(value)
            for key, record in output.records:
                await service.events_topic.send(key=key, value=record)
            for rejection in output.rejections:
                await service._dead_letter(
                    rejection,
                    message.partition,
                    message.offset,
                    settings.otlp_topic,
                    message.key,
                )


def _refs(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())
