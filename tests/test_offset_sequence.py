"""The offset order check that sends a partition back over a hole."""

from __future__ import annotations

from detector.service.sequence import OffsetSequence, Verdict

HANDLE, SKIP, REWIND = Verdict.HANDLE, Verdict.SKIP, Verdict.REWIND


def _checks(sequence: OffsetSequence, offsets: list[int]) -> list[Verdict]:
    return [sequence.check(0, offset) for offset in offsets]


def test_in_order_records_are_handled() -> None:
    sequence = OffsetSequence()
    sequence.start(0, 10)

    assert _checks(sequence, [10, 11, 12]) == [HANDLE, HANDLE, HANDLE]
    assert sequence.expected[0] == 13


def test_redelivered_records_are_handled() -> None:
    sequence = OffsetSequence()
    sequence.start(0, 10)
    _checks(sequence, [10, 11, 12])

    assert _checks(sequence, [11, 12]) == [HANDLE, HANDLE]
    assert sequence.expected[0] == 13


def test_hole_rewinds_then_fills() -> None:
    """Record 10 never arrives: seek back to 10, skip 13-14 fetched before the seek."""
    sequence = OffsetSequence()
    sequence.start(0, 10)

    assert sequence.check(0, 12) is REWIND
    assert sequence.rewind_to(0) == 10
    assert _checks(sequence, [13, 14]) == [SKIP, SKIP]
    assert _checks(sequence, [10, 11, 12, 13, 14]) == [HANDLE] * 5
    assert sequence.expected[0] == 15
    assert sequence.rewind_counts == {0: 1}
    assert sequence.accepted_gaps == {}


def test_hole_at_start_of_assignment() -> None:
    sequence = OffsetSequence()
    sequence.start(0, 10)

    assert sequence.check(0, 11) is REWIND
    assert sequence.rewind_to(0) == 10
    assert sequence.check(0, 10) is HANDLE
    assert sequence.check(0, 11) is HANDLE


def test_real_gap_is_accepted_after_one_rewind() -> None:
    """Offsets 10-11 contain transaction markers: after the seek back 12 comes first again."""
    sequence = OffsetSequence()
    sequence.start(0, 10)

    assert sequence.check(0, 12) is REWIND
    assert sequence.check(0, 13) is SKIP
    assert sequence.check(0, 12) is HANDLE
    assert sequence.check(0, 13) is HANDLE
    assert sequence.accepted_gaps == {0: 2}
    assert sequence.expected[0] == 14


def test_no_committed_offset_takes_first_record() -> None:
    sequence = OffsetSequence()
    sequence.start(0, None)

    assert sequence.is_started(0)
    assert sequence.check(0, 7) is HANDLE
    assert sequence.expected[0] == 8
    assert sequence.check(0, 9) is REWIND


def test_forget_drops_partition_state() -> None:
    sequence = OffsetSequence()
    sequence.start(0, 10)
    sequence.check(0, 12)

    sequence.forget(0)

    assert not sequence.is_started(0)
    assert 0 not in sequence.expected
    assert 0 not in sequence.rewinds


def test_partitions_are_independent() -> None:
    sequence = OffsetSequence()
    sequence.start(0, 10)
    sequence.start(1, 3)

    assert sequence.check(0, 12) is REWIND
    assert sequence.check(1, 3) is HANDLE
    assert sequence.check(1, 4) is HANDLE
    assert sequence.check(0, 13) is SKIP
