"""Helpers for unit tests of pure partitions: a reservation's home decides, then its
decision's steps are carried to the parts, as a shard does for the partitions it owns.

Partitions are given as a mapping {number: Partition}, or one Partition that is both the
reservation's home and the place of its parts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from omnistock.reservations.domain.commands import (
    CarryStep,
    Command,
    DecideHold,
    DecisionResult,
    HoldOutcome,
    HoldResult,
    MarkCarried,
    PartResult,
    PlaceHold,
    RecordClaim,
)
from omnistock.reservations.domain.model import Event, Intent, Line, ReservationDecided, fingerprint
from omnistock.reservations.domain.partition import PENDING_SECONDS, Partition
from omnistock.reservations.domain.sourcing import Destination

Partitions = Partition | Mapping[int, Partition]


def _by_number(partitions: Partitions) -> Mapping[int, Partition]:
    return {partitions.number: partitions} if isinstance(partitions, Partition) else partitions


def carry(
    partitions: Partitions,
    home: int,
    reservation_id: str,
    intent: Intent,
    now: float,
    log: list[Event] | None = None,
) -> list[tuple[int, PartResult]]:
    """Every step of `intent` to its part (those of the partitions given), then tell the home."""
    by_number = _by_number(partitions)
    carried: list[tuple[int, PartResult]] = []
    for number, step in intent.steps:
        if number not in by_number:
            continue
        result, events = by_number[number].handle(CarryStep(number, reservation_id, step), now)
        assert isinstance(result, PartResult)
        if log is not None:
            log.extend(events)
        carried.append((number, result))
    if carried:
        taken = tuple(number for number, _ in carried)
        _, events = by_number[home].handle(MarkCarried(home, reservation_id, intent.operation, taken), now)
        if log is not None:
            log.extend(events)
    return carried


def decide(
    partitions: Partitions, command: Command, now: float, log: list[Event] | None = None
) -> DecisionResult:
    """Decide `command` at its home (command.partition) and carry what it decided."""
    home = _by_number(partitions)[command.partition]
    result, events = home.handle(command, now)
    assert isinstance(result, DecisionResult), result
    if log is not None:
        log.extend(events)
    if result.carry is not None and result.claim is not None:
        carry(partitions, command.partition, result.claim.reservation_id, result.carry, now, log)
    return result


def expire(
    partitions: Partitions,
    now: float,
    pending_seconds: float = PENDING_SECONDS,
    log: list[Event] | None = None,
) -> list[ReservationDecided]:
    """Run every home's timer and carry what it decided; the decisions, in order."""
    by_number = _by_number(partitions)
    decided: list[ReservationDecided] = []
    for number, partition in by_number.items():
        events = partition.expire_due(now, pending_seconds)
        if log is not None:
            log.extend(events)
        for event in events:
            assert isinstance(event, ReservationDecided)
            decided.append(event)
            if event.intent is not None:
                carry(partitions, number, event.reservation_id, event.intent, now, log)
    return decided


@dataclass(frozen=True, slots=True)
class Reserved:
    hold: HoldResult
    decision: DecisionResult


def reserve(
    p: Partition,
    reservation_id: str,
    lines: tuple[Line, ...],
    now: float,
    expires_at: float,
    log: list[Event] | None = None,
    attempt: str = "",
    channel: str = "",
    customer: str = "",
    destination: Destination | None = None,
    **hold: object,
) -> Reserved:
    """A Reserve made whole in one partition (home and part): record the attempt, place its
    part, decide (HELD if the part was placed, else ABORTED)."""
    attempt = attempt or f"at-{reservation_id}"
    digest = fingerprint(lines, channel, customer, destination)
    number = p.number
    record = RecordClaim(
        number, reservation_id, digest, (number,), now, attempt=attempt, expires_at=expires_at
    )
    _, events = p.handle(record, now)
    if log is not None:
        log.extend(events)
    placed, events = p.handle(
        PlaceHold(
            number,
            reservation_id,
            digest,
            lines,
            now,
            expires_at,
            channel=channel,
            customer=customer,
            attempt=attempt,
            home=number,
            **hold,  # type: ignore[arg-type]
        ),
        now,
    )
    assert isinstance(placed, HoldResult)
    if log is not None:
        log.extend(events)
    ok = placed.outcome in (HoldOutcome.PLACED, HoldOutcome.REPLAYED)
    decision = decide(p, DecideHold(number, reservation_id, attempt, ok, () if ok else (number,)), now, log)
    return Reserved(placed, decision)
