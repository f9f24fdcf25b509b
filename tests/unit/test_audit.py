"""The audit of reservations' parts against their home's decision (reservations/domain/audit.py)."""

from __future__ import annotations

import math

from omnistock.reservations.domain.audit import (
    AuditReport,
    PartRow,
    RecordRow,
    ShardAudit,
    audit_here,
    combined,
    disagreements,
    rows_of,
)
from omnistock.reservations.domain.commands import DecideHold, PlaceHold, RecordClaim, SetStock
from omnistock.reservations.domain.model import Decision, Line, PartState, fingerprint
from omnistock.reservations.domain.partition import Partition
from omnistock.reservations.shard.state import ShardState


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


def _hold(rid: str, home: int, parts: tuple[int, ...]) -> tuple[RecordClaim, list[PlaceHold], DecideHold]:
    lines = {p: (Line(f"SKU-{p}", "DC-1", 1),) for p in parts}
    digest = fingerprint(tuple(line for p in parts for line in lines[p]), "")
    record = RecordClaim(home, rid, digest, parts, 1_000.0, attempt=f"{rid}-a", expires_at=1_600.0)
    holds = [
        PlaceHold(p, rid, digest, lines[p], 1_000.0, 1_600.0, attempt=f"{rid}-a", home=home) for p in parts
    ]
    return record, holds, DecideHold(home, rid, f"{rid}-a", placed=True)


def shard_audit(state: ShardState) -> ShardAudit:
    records: list[RecordRow] = []
    parts: list[PartRow] = []
    for partition in state.partitions.values():
        held, placed = rows_of(partition)
        records += held
        parts += placed
    return audit_here(records, parts, set(state.partitions))


def test_a_shard_compares_the_reservations_it_holds_whole_and_hands_on_the_rest() -> None:
    a = ShardState((Partition(n) for n in (0, 1)), epoch="a")
    b = ShardState((Partition(2),), epoch="b")
    for state, numbers in ((a, (0, 1)), (b, (2,))):
        state.apply_batch([SetStock(n, f"SKU-{n}", "DC-1", 10, 0.0) for n in numbers], 1_000.0)
    whole, parts, decide = _hold("whole", 0, (1,))
    a.apply_batch([whole, *parts, decide], 1_000.0)
    across, (part_b,), decide = _hold("across", 0, (2,))
    a.apply_batch([across], 1_000.0)
    b.apply_batch([part_b], 1_000.0)
    a.apply_batch([decide], 1_000.0)

    share_a, share_b = (shard_audit(state) for state in (a, b))
    assert (share_a.local.reservations, share_a.local.disagreements) == (1, [])
    assert [r.reservation_id for r in share_a.records] == ["across"] and share_a.parts == []
    assert share_b.records == [] and [p.reservation_id for p in share_b.parts] == ["across"]
    report = combined([share_a, share_b])
    assert (report.disagreements, report.reservations, report.in_doubt) == ([], 2, 0)


def test_the_combined_audit_reports_local_and_cross_shard_disagreements_alike() -> None:
    broken = disagreements([record(Decision.CONFIRMED)], [part(1, PartState.CONFIRMED), part(2)])
    local = ShardAudit(broken, [], [])
    orphan = PartRow("lost", 5, PartState.HELD, False, "a9", 60.0)
    elsewhere = ShardAudit(AuditReport([], 0, 0), [], [orphan])
    report = combined([local, elsewhere])
    assert [f"{d.reservation_id}: {d.problem}" for d in report.disagreements] == [
        "r: CONFIRMED, but its part in partition 2 is HELD",
        "lost: a HELD part in partition 5 has no reservation record",
    ]
    assert report.reservations == 1
