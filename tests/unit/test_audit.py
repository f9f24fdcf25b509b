"""The audit of reservations' parts against their home's decision (reservations/domain/audit.py)."""

from __future__ import annotations

import math

from omnistock.reservations.domain.audit import PartRow, RecordRow, disagreements
from omnistock.reservations.domain.model import Decision, PartState


def record(
    decision: Decision = Decision.HELD,
    partitions: tuple[int, ...] = (1, 2),
    carrying: tuple[int, ...] = (),
    expires_at: float = 60.0,
) -> RecordRow:
    return RecordRow("r", 0, decision, "a1", expires_at, partitions, carrying)


def part(partition: int, state: PartState = PartState.HELD, settled: bool = False, **kw: object) -> PartRow:
    fields: dict[str, object] = {"attempt": "a1", "expires_at": 60.0} | kw
    return PartRow("r", partition, state, settled, **fields)  # type: ignore[arg-type]


def problems(records: list[RecordRow], parts: list[PartRow]) -> list[str]:
    return [f"{d.reservation_id}: {d.problem}" for d in disagreements(records, parts).disagreements]


def test_parts_that_follow_their_home_agree() -> None:
    report = disagreements([record()], [part(1), part(2)])
    assert (report.disagreements, report.in_doubt, report.reservations) == ([], 0, 1)
    confirmed = record(Decision.CONFIRMED, expires_at=math.inf)
    assert problems([confirmed], [part(1, PartState.CONFIRMED), part(2, PartState.CONFIRMED)]) == []


def test_a_half_confirmed_reservation_is_reported_by_id() -> None:
    found = problems([record(Decision.CONFIRMED)], [part(1, PartState.CONFIRMED), part(2, PartState.HELD)])
    assert found == ["r: CONFIRMED, but its part in partition 2 is HELD"]


def test_an_expired_reservation_with_a_part_still_held_is_reported() -> None:
    found = problems([record(Decision.EXPIRED)], [part(1, PartState.EXPIRED), part(2, PartState.HELD)])
    assert found == ["r: EXPIRED, but its part in partition 2 is HELD"]


def test_parts_whose_steps_are_on_their_way_are_in_doubt_not_wrong() -> None:
    report = disagreements(
        [record(Decision.CONFIRMED, carrying=(2,))], [part(1, PartState.CONFIRMED), part(2, PartState.HELD)]
    )
    assert (report.disagreements, report.in_doubt) == ([], 1)
    pending = disagreements([record(Decision.PENDING)], [part(1)])
    assert (pending.disagreements, pending.in_doubt) == ([], 1)


def test_a_settled_part_takes_no_part_in_later_decisions() -> None:
    assert (
        problems(
            [record(Decision.CONFIRMED)],
            [part(1, PartState.RELEASED, settled=True), part(2, PartState.CONFIRMED)],
        )
        == []
    )


def test_missing_stray_and_orphan_parts_are_reported() -> None:
    assert problems([record()], [part(1)]) == ["r: HELD, but partition 2 holds no part"]
    assert problems([record()], [part(1), part(2), part(3)]) == [
        "r: a part in partition 3, which the record does not list"
    ]
    assert problems([], [part(1)]) == ["r: a HELD part in partition 1 has no reservation record"]


def test_an_aborted_attempt_may_not_leave_a_part_open() -> None:
    aborted = record(Decision.ABORTED, carrying=(1,))
    assert problems([aborted], [part(1), part(2)]) == ["r: aborted, but its part in partition 2 is HELD"]
    assert problems([aborted], [part(1), part(2, attempt="other")]) == []


def test_an_extension_every_part_has_not_taken_is_reported() -> None:
    found = problems([record(expires_at=120.0)], [part(1, expires_at=120.0), part(2, expires_at=60.0)])
    assert found == ["r: HELD until 120.000, but its part in partition 2 until 60.000"]
