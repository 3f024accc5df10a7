"""The delivery loop: read alert records from an outbox, route, group and send them.

Flow: the consumer reads records from the ``Outbox``, and the ``Policy``
decides where each goes. Every (record, receiver) pair becomes an item in an
aggregation group, keyed by route and ``group_by`` labels. A group flushes
``group_wait`` after its first item and then at most every
``group_interval``; a flush turns the ready items into notifications (one per
alert for PagerDuty and Opsgenie, one digest for Slack, email and webhooks,
split into chunks where the service has message limits) and queues them on
that receiver's worker.

Guarantees, and how they are kept:

- Each receiver has its own queue, sender tasks and thread pool, so a slow or
  failing receiver delays no other receiver.
- Failures are retryable (HTTP 408, 425, 429, 5xx, lost connections, SMTP 4xx)
  or permanent (other 4xx, invalid payloads). Retries back off exponentially
  with jitter, never earlier than the server's ``Retry-After``. A 429 pauses
  only that receiver, until the ``Retry-After`` time, and never disables it.
- A permanent failure, or retries that run past ``retry_for_s``, hands the
  notification to the ``fallback`` receiver with the error text.
- The ledger records every outcome before the outbox offset moves, and the
  offset moves only past records whose notifications are all delivered, handed
  to the fallback, or not needed. After a restart, records after the committed
  offset are read again and the ledger skips what was already delivered, so a
  success is not sent twice and nothing is lost. A crash between a server's
  success and the ledger write sends that notification again (PagerDuty and
  Opsgenie deduplicate it by alert id; Slack, email and webhooks show it twice).
- A resolve waits until its trigger reached the receiver (or its fallback),
  and goes only to receivers that were sent the trigger.
- A repeat of a firing alert is sent only when ``repeat_interval`` has passed
  since the last notification about it, in event time.
- On stop, no new send starts, and sends already in progress get ``drain_s``
  to finish. Each attempt runs as its own task that its sender awaits through
  ``asyncio.shield``, so cancelling the senders leaves those attempts running.
  An attempt that finishes in time is in the ledger and the audit log, and the
  offset can move past it. One cut off by the bound is sent again after a
  restart.

Every attempt and every decision not to send is written to the audit log, and
every attempt is counted in ``burnrate_notifications_total`` by receiver and
outcome (``routing.metrics``).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path

from detector.alerts import AlertRecord
from routing.audit import AuditLog
from routing.clock import Clock
from routing.config import RoutingConfig
from routing.ledger import Ledger, Outcome
from routing.metrics import DeliveryMetrics
from routing.outbox import Outbox, OutboxEntry
from routing.policy import Policy, Target
from routing.receivers import build_receiver
from routing.receivers.base import DeliveryError, Notification, Receiver
from routing.redact import Redactor, install_filter

logger = logging.getLogger(__name__)

BATCH_RECORDS = 500


@dataclass(eq=False)
class _Record:
    """A record read from the outbox and the number of its items not yet done."""

    offset: int
    remaining: int = 0


@dataclass(eq=False)
class _Item:
    """One alert change for one receiver."""

    record: AlertRecord
    target: Target
    source: _Record


@dataclass(eq=False)
class _Group:
    """An aggregation group: items waiting for the next flush."""

    receiver: str
    key: str
    target: Target
    created_at: datetime
    items: list[_Item] = field(default_factory=list)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


@dataclass(eq=False)
class _Job:
    """One notification to send, with its retry state."""

    notification: Notification
    items: list[_Item]
    attempt: int = 0
    first_attempt_at: datetime | None = None
    # For a fallback job: the primary job whose items it replaces.
    primary: _Job | None = None
    ledger_receiver: str = ""
    # For a primary job handed to the fallback: fallback chunks still open, and
    # whether any of them failed.
    fallback_open: int = 0
    fallback_failed: bool = False

    @property
    def alert_ids(self) -> list[str]:
        return [record.alert_id for record in self.notification.alerts]


class _Worker:
    """One receiver's queue, sender tasks and rate-limit pause."""

    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver
        self.queue: asyncio.Queue[_Job] = asyncio.Queue()
        self.paused_until: datetime | None = None
        self.tasks: list[asyncio.Task[None]] = []
        # Attempts in progress, each a task of its own so stop can let it finish.
        self.attempts: set[asyncio.Task[None]] = set()


class Dispatcher:
    """Consumes an outbox and delivers notifications; see the module docstring."""

    def __init__(
        self,
        config: RoutingConfig,
        receivers: Mapping[str, Receiver],
        outbox: Outbox,
        ledger: Ledger,
        audit: AuditLog,
        clock: Clock,
        *,
        rng: random.Random | None = None,
        metrics: DeliveryMetrics | None = None,
    ) -> None:
        self.config = config
        self.policy = Policy(config)
        self.receivers = dict(receivers)
        self.outbox = outbox
        self.ledger = ledger
        self.audit = audit
        self.clock = clock
        self.rng = rng or random.Random()
        self.metrics = metrics or DeliveryMetrics(self.receivers)
        self.delivery = config.delivery
        self._firing: dict[str, AlertRecord] = {}
        # Records not yet committed, in read order, per outbox lane.
        self._records: dict[int, OrderedDict[int, _Record]] = {}
        self._groups: dict[tuple[str, str], _Group] = {}
        self._workers = {name: _Worker(r) for name, r in self.receivers.items()}
        self._triggers: dict[tuple[str, str], str] = {}
        self._last_firing: dict[tuple[str, str], datetime] = {}
        self._retry_tasks: set[asyncio.Task[None]] = set()
        self._consumer: asyncio.Task[None] | None = None
        self._empty_reads = 0
        self._sequence = itertools.count()
        self._pending_jobs = 0

    # ------------------------------------------------------------------
    # Lifecycle
    # ------------------------------------------------------------------

    async def start(self) -> None:
        """Restore firing alerts from the ledger and start the consumer and workers."""
        self._firing = self.ledger.firing()
        for worker in self._workers.values():
            for _ in range(worker.receiver.concurrency):
                worker.tasks.append(asyncio.create_task(self._sender(worker)))
        self._consumer = asyncio.create_task(self._consume())
        logger.info(
            "delivery started at outbox offset %d with %d firing alerts and receivers %s",
            self.outbox.committed(), len(self._firing), ", ".join(self._workers),
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set, then stop; raise what made reading the outbox fail."""
        await self.start()
        assert self._consumer is not None
        consumer = self._consumer
        stopping = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({consumer, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            failure = consumer.exception() if consumer.done() and not consumer.cancelled() else None
            await self.stop()
        if failure is not None:
            raise failure

    async def stop(self) -> None:
        """Stop reading, let sends in progress finish within ``drain_s``, and close the receivers.

        Work not yet delivered stays in the outbox and is read again after a restart.
        """
        tasks: list[asyncio.Task[None]] = []
        if self._consumer is not None:
            tasks.append(self._consumer)
        tasks.extend(g.task for g in self._groups.values() if g.task is not None)
        tasks.extend(self._retry_tasks)
        for worker in self._workers.values():
            tasks.extend(worker.tasks)
        # Senders waiting for a job or a rate-limit pause end here. Senders
        # awaiting an attempt end too, but the shielded attempt keeps running.
        await _cancel(tasks)
        await self._drain()
        # Attempts that finished during the drain may have scheduled retries and
        # commits. Cancel them, then commit what is done now.
        await _cancel(self._retry_tasks)
        await self._commit()
        for receiver in self.receivers.values():
            await receiver.aclose()
        self.ledger.close()
        self.audit.close()
        logger.info("delivery stopped at outbox offset %d", self.outbox.committed())

    async def _drain(self) -> None:
        """Wait up to ``drain_s`` for attempts in progress, then cancel the rest."""
        attempts = [task for worker in self._workers.values() for task in worker.attempts]
        if not attempts:
            return
        drain_s = self.delivery.drain_s
        logger.info("waiting up to %.1fs for %d sends in progress", drain_s, len(attempts))
        done, pending = await asyncio.wait(attempts, timeout=drain_s)
        for task in done:
            if task.cancelled():
                continue
            error = task.exception()
            if error is not None:
                logger.error("send of %s failed during the drain", task.get_name(),
                             exc_info=error)
        if pending:
            keys = ", ".join(sorted(task.get_name() for task in pending))
            logger.warning(
                "cancelled %d sends still in progress after drain_s (%.1fs), so they "
                "are sent again after a restart: %s", len(pending), drain_s, keys,
            )
        await _cancel(pending)

    async def wait_idle(self, poll_s: float = 0.005) -> None:
        """Wait until the outbox is read to its end and every record is done."""
        mark = self._empty_reads
        while True:
            if self._consumer is not None and self._consumer.done():
                self._consumer.result()
            pending = any(self._records.values())
            if self._empty_reads > mark and not pending and self._pending_jobs == 0:
                return
            await asyncio.sleep(poll_s)

    # ------------------------------------------------------------------
    # Consuming and routing
    # ------------------------------------------------------------------

    async def _consume(self) -> None:
        while True:
            entries = await self.outbox.read(BATCH_RECORDS)
            if not entries:
                self._empty_reads += 1
                if self.outbox.read_waits:
                    continue
                deadline = self.clock.now() + timedelta(seconds=self.delivery.poll_interval_s)
                await self.clock.sleep_until(deadline)
                continue
            for entry in entries:
                self._accept(entry)
            await self._commit()

    def _accept(self, entry: OutboxEntry) -> None:
        source = _Record(entry.offset)
        lane = self._records.setdefault(entry.lane, OrderedDict())
        lane[next(self._sequence)] = source
        record = entry.record
        if record is None:
            logger.error("skipped outbox entry before offset %d: %s", entry.offset, entry.error)
            self._audit_skip("", "", [], "invalid_record", entry.error or "")
            return
        decision = self.policy.decide(record, self._firing)
        self.ledger.set_firing(record)
        if record.status == "firing":
            self._firing[record.alert_id] = record
        else:
            self._firing.pop(record.alert_id, None)
        for target in decision.targets:
            self._add_item(_Item(record, target, source))

    def _add_item(self, item: _Item) -> None:
        receiver, record = item.target.receiver, item.record
        if self.ledger.outcome(receiver, record) is not None:
            self._audit_skip(receiver, record.alert_id, [record.alert_id], "skipped",
                             "already delivered")
            return
        reason = self._not_needed(receiver, record, item.target)
        if reason is not None:
            self._audit_skip(receiver, record.alert_id, [record.alert_id], "suppressed", reason)
            return
        if record.status == "firing":
            key = (receiver, record.alert_id)
            if record.repeat == 0:
                self._triggers[key] = "pending"
            self._last_firing[key] = record.event_time
        item.source.remaining += 1
        group_id = (receiver, item.target.group_key)
        group = self._groups.get(group_id)
        if group is None:
            group = _Group(receiver, item.target.group_key, item.target, self.clock.now())
            self._groups[group_id] = group
            group.task = asyncio.create_task(self._run_group(group))
        group.items.append(item)
        group.wake.set()

    def _not_needed(self, receiver: str, record: AlertRecord, target: Target) -> str | None:
        """Return why a record needs no notification to this receiver, if it does not."""
        key = (receiver, record.alert_id)
        if record.status == "resolved":
            if key in self._triggers or self.ledger.trigger_outcome(*key) is not None:
                return None
            return "the trigger was not sent to this receiver"
        if record.repeat == 0:
            return None
        last = self._last_firing.get(key) or self.ledger.last_firing_event_time(*key)
        if last is None:
            return None
        since_s = (record.event_time - last).total_seconds()
        if since_s < target.repeat_interval_s:
            return (
                f"repeat {record.repeat} {since_s:.0f}s after the last notification, "
                f"within repeat_interval {target.repeat_interval_s}s"
            )
        return None

    # ------------------------------------------------------------------
    # Groups
    # ------------------------------------------------------------------

    async def _run_group(self, group: _Group) -> None:
        target = group.target
        await self.clock.sleep_until(group.created_at + timedelta(seconds=target.group_wait_s))
        interval = timedelta(seconds=target.group_interval_s)
        while True:
            flushed_at = self.clock.now()
            self._flush(group)
            group.wake.clear()
            if not group.items:
                # Keep the group for one interval, so a burst is batched by it.
                woken = await self._wait_event(group.wake, flushed_at + interval)
                if not woken and not group.items:
                    del self._groups[(group.receiver, group.key)]
                    return
            await self.clock.sleep_until(flushed_at + interval)

    async def _wait_event(self, event: asyncio.Event, deadline: datetime) -> bool:
        """Wait for ``event`` until ``deadline``; return whether it was set."""
        waiter = asyncio.ensure_future(event.wait())
        sleeper = asyncio.ensure_future(self.clock.sleep_until(deadline))
        done, pending = await asyncio.wait(
            {waiter, sleeper}, return_when=asyncio.FIRST_COMPLETED
        )
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        return waiter in done

    def _flush(self, group: _Group) -> None:
        ready: list[_Item] = []
        held: list[_Item] = []
        for item in group.items:
            key = (group.receiver, item.record.alert_id)
            if item.record.status == "resolved" and self._triggers.get(key) == "pending":
                held.append(item)
            else:
                ready.append(item)
        group.items = held
        if not ready:
            return
        worker = self._workers[group.receiver]
        if worker.receiver.digest:
            self._queue_digest(worker, group, ready)
        else:
            for item in ready:
                notification = self._notification(group, [item])
                self._queue(worker, _Job(notification, [item], ledger_receiver=group.receiver))

    def _queue_digest(self, worker: _Worker, group: _Group, items: list[_Item]) -> None:
        notification = self._notification(group, items)
        by_record = {id(item.record): item for item in items}
        for chunk in worker.receiver.split(notification):
            chunk_items = [by_record[id(record)] for record in chunk.alerts]
            self._queue(worker, _Job(chunk, chunk_items, ledger_receiver=group.receiver))

    def _notification(self, group: _Group, items: list[_Item]) -> Notification:
        records = tuple(item.record for item in items)
        first = records[0]
        key = f"{group.receiver}:{first.alert_id}:{first.status}:{first.repeat}"
        if len(records) > 1:
            key += f"+{len(records) - 1}"
        return Notification(
            receiver=group.receiver,
            key=key,
            alerts=records,
            group_labels=group.target.group_labels,
            dashboard_template=self.config.dashboard_url,
        )

    def _queue(self, worker: _Worker, job: _Job) -> None:
        self._pending_jobs += 1
        worker.queue.put_nowait(job)

    # ------------------------------------------------------------------
    # Sending
    # ------------------------------------------------------------------

    async def _sender(self, worker: _Worker) -> None:
        while True:
            job = await worker.queue.get()
            while worker.paused_until is not None and worker.paused_until > self.clock.now():
                await self.clock.sleep_until(worker.paused_until)
            attempt = asyncio.create_task(self._attempt(worker, job), name=job.notification.key)
            worker.attempts.add(attempt)
            attempt.add_done_callback(worker.attempts.discard)
            await asyncio.shield(attempt)

    async def _attempt(self, worker: _Worker, job: _Job) -> None:
        job.attempt += 1
        now = self.clock.now()
        if job.first_attempt_at is None:
            job.first_attempt_at = now
        started = time.perf_counter()
        try:
            result = await worker.receiver.send(job.notification)
        except DeliveryError as error:
            latency_ms = (time.perf_counter() - started) * 1000
            self._failed(worker, job, error, latency_ms)
            return
        latency_ms = (time.perf_counter() - started) * 1000
        self.metrics.count_attempt(job.notification.receiver, "delivered")
        self._audit(job, "delivered", status_code=result.status_code, latency_ms=latency_ms)
        self._finish(job, "delivered", result.detail)

    def _failed(self, worker: _Worker, job: _Job, error: DeliveryError, latency_ms: float) -> None:
        now = self.clock.now()
        if not error.retryable:
            self.metrics.count_attempt(job.notification.receiver, "failed")
            self._audit(job, "failed", status_code=error.status_code,
                        latency_ms=latency_ms, error=error.message)
            logger.error("%s rejected %s permanently: %s", job.notification.receiver,
                         job.notification.key, error.message)
            self._to_fallback(job, error.message)
            return
        delay_s = self._backoff_s(job.attempt)
        if error.retry_after_s is not None:
            delay_s = max(delay_s, error.retry_after_s + self.rng.uniform(0, 1))
        if error.status_code == 429:
            resume = now + timedelta(seconds=delay_s)
            if worker.paused_until is None or worker.paused_until < resume:
                worker.paused_until = resume
        assert job.first_attempt_at is not None
        give_up_at = job.first_attempt_at + timedelta(seconds=self.delivery.retry_for_s)
        if now + timedelta(seconds=delay_s) > give_up_at:
            message = (
                f"gave up after {job.attempt} attempts over "
                f"{(now - job.first_attempt_at).total_seconds():.0f}s: {error.message}"
            )
            self.metrics.count_attempt(job.notification.receiver, "failed")
            self._audit(job, "failed", status_code=error.status_code,
                        latency_ms=latency_ms, error=message)
            self._to_fallback(job, message)
            return
        self.metrics.count_attempt(job.notification.receiver, "retry")
        self._audit(job, "retry", status_code=error.status_code, latency_ms=latency_ms,
                    error=error.message, retry_in_s=round(delay_s, 3))
        logger.warning("%s: %s failed (attempt %d), retrying in %.1fs: %s",
                       job.notification.receiver, job.notification.key, job.attempt,
                       delay_s, error.message)
        task = asyncio.create_task(self._requeue(worker, job, now + timedelta(seconds=delay_s)))
        self._retry_tasks.add(task)
        task.add_done_callback(self._retry_tasks.discard)

    async def _requeue(self, worker: _Worker, job: _Job, at: datetime) -> None:
        await self.clock.sleep_until(at)
        worker.queue.put_nowait(job)

    def _backoff_s(self, attempt: int) -> float:
        """Exponential back-off with equal jitter: half fixed, half random."""
        ceiling = min(
            self.delivery.max_backoff_s,
            self.delivery.initial_backoff_s * 2 ** (attempt - 1),
        )
        return float(ceiling / 2 + self.rng.uniform(0, ceiling / 2))

    # ------------------------------------------------------------------
    # Fallback and completion
    # ------------------------------------------------------------------

    def _to_fallback(self, job: _Job, failure: str) -> None:
        fallback = self.config.fallback
        if job.primary is not None or fallback is None or fallback == job.notification.receiver:
            if job.primary is not None:
                logger.error("fallback %s failed for %s: %s", job.notification.receiver,
                             job.notification.key, failure)
            self._finish(job, "failed", failure)
            return
        primary = job.notification.receiver
        ledger_receiver = f"{fallback}<-{primary}"
        records = [item.record for item in job.items]
        if all(self.ledger.outcome(ledger_receiver, r) == "delivered" for r in records):
            self._audit(job, "fallback", error=failure, fallback=fallback)
            self._finish(job, "fallback", failure)
            return
        notification = replace(
            job.notification,
            receiver=fallback,
            key=f"fallback:{job.notification.key}",
            failed_receiver=primary,
            failure=failure,
            chunk_index=0,
            chunk_count=1,
        )
        worker = self._workers[fallback]
        chunks = worker.receiver.split(notification)
        job.fallback_open = len(chunks)
        self._audit(job, "fallback", error=failure, fallback=fallback)
        by_record = {id(item.record): item for item in job.items}
        for chunk in chunks:
            items = [by_record[id(record)] for record in chunk.alerts]
            self._queue(worker, _Job(chunk, items, primary=job, ledger_receiver=ledger_receiver))

    def _finish(self, job: _Job, outcome: Outcome, detail: str) -> None:
        now = self.clock.now()
        records = [item.record for item in job.items]
        self.ledger.record(job.ledger_receiver, records, outcome, now, detail)
        self._pending_jobs -= 1
        if job.primary is not None:
            self._finish_primary(job.primary, outcome, detail)
            return
        self._items_done(job.notification.receiver, job.items)

    def _finish_primary(self, primary: _Job, outcome: Outcome, detail: str) -> None:
        primary.fallback_open -= 1
        primary.fallback_failed |= outcome == "failed"
        if primary.fallback_open > 0:
            return
        self._finish(primary, "failed" if primary.fallback_failed else "fallback", detail)

    def _items_done(self, receiver: str, items: list[_Item]) -> None:
        for item in items:
            record = item.record
            if record.status == "firing" and record.repeat == 0:
                self._triggers[(receiver, record.alert_id)] = "done"
            item.source.remaining -= 1
        self._wake_groups(receiver)
        task = asyncio.ensure_future(self._commit())
        self._retry_tasks.add(task)
        task.add_done_callback(self._retry_tasks.discard)

    def _wake_groups(self, receiver: str) -> None:
        for (name, _), group in self._groups.items():
            if name == receiver and group.items:
                group.wake.set()

    async def _commit(self) -> None:
        """Commit, in each lane, the offset past the longest run of finished records."""
        for lane, records in list(self._records.items()):
            offset = None
            while records:
                key, source = next(iter(records.items()))
                if source.remaining > 0:
                    break
                offset = source.offset
                del records[key]
            if offset is not None:
                await self.outbox.commit(offset, lane)

    # ------------------------------------------------------------------
    # Audit
    # ------------------------------------------------------------------

    def _audit(self, job: _Job, outcome: str, **fields: object) -> None:
        self.audit.write(
            self.clock.now(),
            job.notification.receiver,
            job.notification.key,
            job.alert_ids,
            outcome,
            attempt=job.attempt,
            **fields,  # type: ignore[arg-type]
        )

    def _audit_skip(
        self, receiver: str, key: str, alert_ids: list[str], outcome: str, reason: str
    ) -> None:
        self.audit.write(self.clock.now(), receiver, key, alert_ids, outcome, error=reason)


async def _cancel(tasks: Iterable[asyncio.Future[None]]) -> None:
    """Cancel ``tasks`` and wait until each has ended."""
    cancelled = list(tasks)
    for task in cancelled:
        task.cancel()
    await asyncio.gather(*cancelled, return_exceptions=True)


def build_receivers(config: RoutingConfig, redactor: Redactor) -> dict[str, Receiver]:
    """Build every configured receiver and register its secrets with ``redactor``."""
    receivers = {settings.name: build_receiver(settings, redactor) for settings in config.receivers}
    install_filter(redactor)
    return receivers


def build_dispatcher(
    config: RoutingConfig,
    outbox: Outbox,
    state_dir: Path,
    clock: Clock,
    *,
    rng: random.Random | None = None,
    metrics: DeliveryMetrics | None = None,
) -> Dispatcher:
    """Build a dispatcher with its ledger (``ledger.sqlite``) and audit log (``audit.jsonl``)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    redactor = Redactor()
    receivers = build_receivers(config, redactor)
    ledger = Ledger(state_dir / "ledger.sqlite")
    audit = AuditLog(state_dir / "audit.jsonl", redactor)
    return Dispatcher(
        config, receivers, outbox, ledger, audit, clock, rng=rng, metrics=metrics
    )
