"""Malformed records mixed with good ones: good ones counted, bad ones dead-lettered."""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from detector.decode import MAX_RECORD_BYTES
from tests.service.conftest import WorkerFactory
from tests.service.harness import (
    Topics,
    create_topic,
    encode,
    event,
    read_topic,
    run,
    send,
)

PARTITIONS = 4
GOOD_COUNT = 2000
TRUNCATED_BYTES = 1024  # the decoder keeps this much of an oversized record

Case = tuple[bytes, str]  # record value, expected dead-letter reason


def _good(rng: random.Random, now: datetime, index: int) -> bytes:
    moment = now - timedelta(minutes=rng.randrange(1, 120))
    return encode(
        event(f"tenant-{index % 25}", moment, "0.01", request_id=f"good-{index}")
    )


def _tenant_of(value: bytes) -> bytes:
    tenant: str = json.loads(value)["tenant"]
    return tenant.encode()


def _document(now: datetime, **changes: Any) -> dict[str, Any]:
    document = event("tenant-bad", now - timedelta(minutes=5), "0.01")
    for name, value in changes.items():
        if value is None:
            document.pop(name, None)
        else:
            document[name] = value
    return document


def _bad_cases(rng: random.Random, now: datetime) -> list[Case]:
    """Return malformed records of every kind with the reason each must get."""

    def as_json(**changes: Any) -> bytes:
        return json.dumps(_document(now, **changes)).encode()

    future = (now + timedelta(days=2)).isoformat()
    past = (now - timedelta(days=60)).isoformat()
    kinds: list[tuple[str, Any]] = [
        # A leading 0xff byte keeps random bytes from forming a JSON value.
        ("invalid_json", lambda: b"\xff" + rng.randbytes(rng.randrange(0, 200))),
        ("invalid_json", lambda: as_json()[: rng.randrange(1, 40)]),
        ("invalid_json", lambda: b"not json"),
        ("invalid_field", lambda: as_json(**{"gen_ai.usage.input_tokens": "many"})),
        ("invalid_field", lambda: as_json(timestamp=[1, 2, 3])),
        ("invalid_field", lambda: as_json(tenant=42)),
        ("missing_field", lambda: as_json(tenant=None)),
        ("missing_field", lambda: as_json(request_id=None)),
        ("missing_field", lambda: as_json(timestamp=None)),
        ("negative_value", lambda: as_json(**{"gen_ai.usage.output_tokens": -5})),
        ("negative_value", lambda: as_json(cost_usd=-1)),
        ("timestamp_in_future", lambda: as_json(timestamp=future)),
        ("timestamp_too_old", lambda: as_json(timestamp=past)),
        ("unknown_version", lambda: as_json(schema_version=2)),
    ]
    cases = [(make(), reason) for reason, make in kinds for _ in range(130)]
    # Two malformed records of 2 MiB (below the decoder limit, above Kafka's
    # default 1 MiB record limit) and three above the decoder limit.
    cases += [(b"{" + b"x" * (2 * 1024 * 1024), "invalid_json") for _ in range(2)]
    cases += [
        (b"[" + b" " * (MAX_RECORD_BYTES + 10) + b"]", "oversized") for _ in range(3)
    ]
    return cases


def test_fuzz_dead_letters_every_bad_record(
    make_worker: WorkerFactory, kafka_bootstrap: str
) -> None:
    """Every good event is counted; each bad record is dead-lettered with its reason."""
    topics = Topics.unique("fuzz")
    rng = random.Random(20261204)
    now = datetime.now(UTC).replace(microsecond=0)
    bad = _bad_cases(rng, now)
    good = [_good(rng, now, index) for index in range(GOOD_COUNT)]
    # Good events sent without a key could reach a partition that does not
    # hold their tenant's state, so they are rejected as well.
    unkeyed = [_good(rng, now, GOOD_COUNT + index) for index in range(100)]
    records = [(b"tenant-bad", value, reason) for value, reason in bad]
    records += [(None, value, "wrong_key") for value in unkeyed]
    records += [(_tenant_of(value), value, "") for value in good]
    rng.shuffle(records)
    bad_count = len(bad) + len(unkeyed)
    record_limit = str(2 * MAX_RECORD_BYTES)
    run(
        create_topic(
            kafka_bootstrap,
            topics.events,
            PARTITIONS,
            {"max.message.bytes": record_limit},
        )
    )
    worker = make_worker(
        topics,
        {"budgets": [{"id": "monthly", "limit_usd": 100}]},
        partitions=PARTITIONS,
    )

    worker.start()
    produced = send(kafka_bootstrap, topics.events, [(k, v) for k, v, _ in records])
    worker.wait_for(
        lambda doc: worker.total("records") >= len(records),
        f"{len(records)} records",
        deadline_s=90,
    )
    dead = run(
        read_topic(
            kafka_bootstrap,
            topics.dead_letter,
            until=lambda read: len(read) >= bad_count,
            deadline_s=60,
        )
    )
    health = worker.get("/healthz")

    expected = {
        f"{topics.events}/{partition}/{offset}": (key, value, reason)
        for (partition, offset), (key, value, reason) in zip(
            produced, records, strict=True
        )
        if reason
    }
    assert worker.total("events") == GOOD_COUNT, json.dumps(worker.stats())
    assert worker.total("rejected") == bad_count
    assert len(dead) == bad_count
    reasons = Counter()
    for record in dead:
        source = record.headers["source"].decode()
        key, value, reason = expected.pop(source)
        assert record.headers["reason"].decode() == reason, (source, value[:80])
        assert record.key == key, source
        assert record.headers["detail"], source
        if reason == "oversized":
            assert record.value == value[:TRUNCATED_BYTES]
        else:
            assert record.value == value, source
        reasons[reason] += 1
    assert expected == {}
    assert reasons["oversized"] == 3
    assert reasons["wrong_key"] == 100
    assert health.status_code == 200
