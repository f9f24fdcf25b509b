"""Do a reservation's parts agree with each other and with their home's decision? (pure)

Each shard lists what its partitions hold (`rows_of`); `disagreements` compares them for the
whole network. Reservations still being decided, or whose decided steps are on their way,
are in doubt rather than wrong: their open partitions are left out of the comparison.

Most reservations lie whole in one shard (their home and every part). A shard compares those
itself (`audit_here`) and hands on only the rows of the others, so the gateway, whose event
loop serves every call, compares the few that span shards, not every open reservation.
"""

from __future__ import annotations

from collections.abc import Container, Iterable
from dataclasses import dataclass

from omnistock.reservations.domain.model import Decision, PartState
from omnistock.reservations.domain.partition import Partition


@dataclass(frozen=True, slots=True)
class RecordRow:
    """A home's record of a reservation."""

    reservation_id: str
    home: int
    decision: Decision
    attempt: str
    expires_at: float
    partitions: tuple[int, ...]
    carrying: tuple[int, ...]
    """Partitions whose parts have steps of a decision still to take."""


@dataclass(frozen=True, slots=True)
class PartRow:
    reservation_id: str
    partition: int
    state: PartState
    settled: bool
    attempt: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class Disagreement:
    reservation_id: str
    problem: str


@dataclass(frozen=True, slots=True)
class AuditReport:
    disagreements: list[Disagreement]
    in_doubt: int
    """Reservations undecided, or with steps still on their way."""
    reservations: int
    """Records compared."""


@dataclass(frozen=True, slots=True)
class ShardAudit:
    """A shard's share of the audit (`audit_here`)."""

    local: AuditReport
    """The reservations whose record and every listed partition are in the shard."""
    records: list[RecordRow]
    """Records of reservations that list a partition elsewhere."""
    parts: list[PartRow]
    """Parts whose record is elsewhere, not whole in the shard, or nowhere."""


def audit_here(records: list[RecordRow], parts: list[PartRow], owned: Container[int]) -> ShardAudit:
    """Compare the reservations of a shard's rows (`rows_of` of each partition it `owned`)
    that lie whole in it; the rows of the rest are left for `combined` with the other shards'
    (a part whose record lists it not is caught on either side)."""
    local_ids = {r.reservation_id for r in records if all(p in owned for p in r.partitions)}
    local = disagreements(
        [r for r in records if r.reservation_id in local_ids],
        [p for p in parts if p.reservation_id in local_ids],
    )
    return ShardAudit(
        local,
        [r for r in records if r.reservation_id not in local_ids],
        [p for p in parts if p.reservation_id not in local_ids],
    )


def combined(shards: Iterable[ShardAudit]) -> AuditReport:
    """The whole network's audit from every shard's share."""
    shares = list(shards)
    across = disagreements(
        [r for share in shares for r in share.records], [p for share in shares for p in share.parts]
    )
    return AuditReport(
        [d for share in shares for d in share.local.disagreements] + across.disagreements,
        sum(share.local.in_doubt for share in shares) + across.in_doubt,
        sum(share.local.reservations for share in shares) + across.reservations,
    )


def rows_of(partition: Partition) -> tuple[list[RecordRow], list[PartRow]]:
    records = [
        RecordRow(
            claim.reservation_id,
            partition.number,
            claim.decision,
            claim.attempt,
            claim.expires_at,
            claim.partitions,
            tuple(sorted({p for intent in claim.intents for p in intent.partitions})),
        )
        for claim in partition.claims.values()
    ]
    parts = [
        PartRow(
            part.reservation_id, partition.number, part.state, part.settled, part.attempt, part.expires_at
        )
        for part in partition.parts.values()
    ]
    return records, parts


def disagreements(records: Iterable[RecordRow], parts: Iterable[PartRow]) -> AuditReport:
    """Every reservation whose parts do not follow its home's decision, and every part
    without a home record to follow."""
    found: list[Disagreement] = []
    by_id: dict[str, dict[int, PartRow]] = {}
    for part in parts:
        by_id.setdefault(part.reservation_id, {})[part.partition] = part
    in_doubt = compared = 0
    for record in records:
        compared += 1
        rid = record.reservation_id
        held = by_id.pop(rid, {})
        if record.decision is Decision.PENDING or record.carrying:
            in_doubt += 1
        if record.decision is Decision.PENDING:
            continue
        for number in sorted(held):
            if number not in record.partitions:
                found.append(
                    Disagreement(rid, f"a part in partition {number}, which the record does not list")
                )
        for number in record.partitions:
            if number in record.carrying:
                continue
            problem = _problem(record, number, held.get(number))
            if problem:
                found.append(Disagreement(rid, problem))
    for rid, held in by_id.items():
        for number, part in sorted(held.items()):
            found.append(
                Disagreement(rid, f"a {part.state.name} part in partition {number} has no reservation record")
            )
    return AuditReport(found, in_doubt, compared)


def _problem(record: RecordRow, number: int, part: PartRow | None) -> str:
    if record.decision is Decision.ABORTED:
        if part is not None and part.attempt == record.attempt and part.state.is_open:
            return f"aborted, but its part in partition {number} is {part.state.name}"
        return ""
    if part is None:
        return f"{record.decision.name}, but partition {number} holds no part"
    if part.settled:  # every line closed: it took no part in later decisions
        return ""
    expected = record.decision.part_state
    if part.state is not expected:
        return f"{record.decision.name}, but its part in partition {number} is {part.state.name}"
    if expected is PartState.HELD and part.expires_at != record.expires_at:
        until, part_until = f"{record.expires_at:.3f}", f"{part.expires_at:.3f}"
        return f"HELD until {until}, but its part in partition {number} until {part_until}"
    return ""
