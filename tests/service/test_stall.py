"""The stall alert, driven with a fake monotonic clock.

The service handles every partition in one agent, so on the real broker one
partition cannot be held back while another keeps moving, which is the case a
stall alert is for. These tests drive ``StallWatch`` directly instead.
"""

from __future__ import annotations

from detector.service.stall import RULE_ID, StallWatch


def test_quiet_partition_is_no_stall() -> None:
    """A partition without new records never stalls, however long it is quiet."""
    watch = StallWatch(stall_after_s=60)
    watch.progress(partition=0, offset=9, monotonic_s=100.0)

    records = watch.check({0: 10}, monotonic_s=1000.0)  # end offset 10: all handled

    assert records == []


def test_stall_fires_once_then_resolves() -> None:
    """Records waiting for 60 s raise one service alert; progress resolves it."""
    watch = StallWatch(stall_after_s=60)
    watch.progress(partition=3, offset=9, monotonic_s=100.0)

    early = watch.check({3: 15}, monotonic_s=159.0)  # 59 s without progress
    fired = watch.check({3: 15}, monotonic_s=160.0)  # 60 s: 5 records waiting
    again = watch.check({3: 20}, monotonic_s=200.0)
    watch.progress(partition=3, offset=19, monotonic_s=201.0)
    resolved = watch.check({3: 20}, monotonic_s=202.0)

    assert early == []
    assert len(fired) == 1
    assert fired[0].status == "firing"
    assert fired[0].tier == "service"
    assert fired[0].rule_id == RULE_ID
    assert fired[0].series == {"partition": "3"}
    assert int(fired[0].observed) == 5
    assert again == []
    assert len(resolved) == 1
    assert resolved[0].status == "resolved"
    assert resolved[0].alert_id == fired[0].alert_id


def test_stall_of_one_partition_only() -> None:
    """Only the partition that stopped moving alerts; the other one is busy and fine."""
    watch = StallWatch(stall_after_s=30)
    watch.progress(partition=0, offset=5, monotonic_s=0.0)
    watch.progress(partition=1, offset=5, monotonic_s=0.0)

    for second in range(1, 40):
        watch.progress(partition=1, offset=5 + second, monotonic_s=float(second))
    records = watch.check({0: 50, 1: 45}, monotonic_s=40.0)

    assert [r.series["partition"] for r in records] == ["0"]


def test_forgotten_partition_restarts_its_clock() -> None:
    """A partition revoked and assigned again starts a fresh stall clock."""
    watch = StallWatch(stall_after_s=60)
    watch.progress(partition=2, offset=1, monotonic_s=0.0)
    watch.forget(2)

    records = watch.check({2: 10}, monotonic_s=100.0)  # first sight: clock starts now
    later = watch.check({2: 10}, monotonic_s=160.0)

    assert records == []
    assert len(later) == 1
