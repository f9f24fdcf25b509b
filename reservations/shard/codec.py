"""Partition events and snapshots to and from their protobuf form (never pickle)."""

from __future__ import annotations

import math
from array import array

from omnistock.protos.gen.omnistock.journal.v1 import journal_pb2 as pb
from omnistock.protos.gen.omnistock.v1 import reservation_pb2 as v1
from omnistock.reservations.domain.model import (
    Claim,
    ClaimDropped,
    ClaimRecorded,
    Close,
    Decision,
    Event,
    Follow,
    HoldAborted,
    HoldExtended,
    HoldFenced,
    HoldPlaced,
    Intent,
    IntentCarried,
    LevelColumns,
    LevelsSet,
    Line,
    LineMoved,
    LinesClosed,
    Part,
    PartChanged,
    PartState,
    ReservationDecided,
    Step,
    StockAdjusted,
    StockSet,
    StockState,
    SupplyExpected,
    UnitsReturned,
    Withdraw,
)
from omnistock.reservations.domain.partition import Partition
from omnistock.reservations.domain.sourcing import Destination, LineSourcing, NodeVerdict

_STOCK_STATES = {
    StockState.SELLABLE: pb.STOCK_STATE_SELLABLE,
    StockState.DAMAGED: pb.STOCK_STATE_DAMAGED,
    StockState.QUALITY_HOLD: pb.STOCK_STATE_QUALITY_HOLD,
}
# Entries and snapshots written before STOCK_STATE_SELLABLE had its own number hold 0
# (now STOCK_STATE_UNSPECIFIED) for sellable units: read both as sellable.
_STOCK_STATES_BACK = {value: key for key, value in _STOCK_STATES.items()} | {
    pb.STOCK_STATE_UNSPECIFIED: StockState.SELLABLE
}

_STATES = {
    PartState.HELD: pb.PART_STATE_HELD,
    PartState.CONFIRMED: pb.PART_STATE_CONFIRMED,
    PartState.RELEASED: pb.PART_STATE_RELEASED,
    PartState.EXPIRED: pb.PART_STATE_EXPIRED,
    PartState.FULFILLED: pb.PART_STATE_FULFILLED,
}


def _state(state: PartState) -> pb.PartState:
    return _STATES[state]


def _step_to_proto(partition: int, step: Step) -> pb.Step:
    match step:
        case Follow():
            return pb.Step(
                partition=partition,
                follow=pb.Follow(
                    state=_state(step.state),
                    at=step.at,
                    expires_at=step.expires_at,
                    version=step.version,
                    by=step.by,
                ),
            )
        case Withdraw():
            withdraw = pb.Withdraw(attempt=step.attempt, until=step.until, by=step.by)
            return pb.Step(partition=partition, withdraw=withdraw)
        case Close():
            return pb.Step(
                partition=partition,
                close=pb.Close(
                    operation_id=step.operation_id,
                    kind=step.kind,
                    lines=_lines(step.lines),
                    at=step.at,
                    by=step.by,
                ),
            )
    raise TypeError(f"unknown step {step!r}")


def _step_from_proto(m: pb.Step) -> tuple[int, Step]:
    kind = m.WhichOneof("kind")
    if kind == "follow":
        f = m.follow
        return m.partition, Follow(PartState(f.state), f.at, f.expires_at, f.version, f.by)
    if kind == "withdraw":
        return m.partition, Withdraw(m.withdraw.attempt, m.withdraw.until, m.withdraw.by)
    if kind == "close":
        c = m.close
        return m.partition, Close(c.operation_id, c.kind, _from_lines(c.lines), c.at, c.by)
    raise ValueError(f"journal entry with unknown step kind {kind!r}")


def _intent_to_proto(intent: Intent) -> pb.Intent:
    return pb.Intent(operation=intent.operation, steps=[_step_to_proto(p, step) for p, step in intent.steps])


def _intent_from_proto(m: pb.Intent) -> Intent:
    return Intent(m.operation, tuple(_step_from_proto(step) for step in m.steps))


def _lines(lines: tuple[Line, ...]) -> list[pb.Line]:
    return [pb.Line(sku=line.sku, node_id=line.node_id, quantity=line.quantity) for line in lines]


def _from_lines(lines: object) -> tuple[Line, ...]:
    return tuple(Line(line.sku, line.node_id, line.quantity) for line in lines)  # type: ignore[attr-defined]


def _levels_to_proto(levels: LevelColumns, by: str = "") -> pb.LevelsSet:
    # Columns of zeros are left out: a load rarely counts damaged or held units.
    return pb.LevelsSet(
        by=by,
        sku=levels.sku,
        node_id=levels.node_id,
        on_hand=levels.on_hand,
        as_of=levels.as_of,
        damaged=levels.damaged if any(levels.damaged) else (),
        quality_hold=levels.quality_hold if any(levels.quality_hold) else (),
    )


def _levels_from_proto(m: pb.LevelsSet) -> LevelColumns:
    count = len(m.sku)
    zeros = array("q", bytes(8 * count))
    levels = LevelColumns(
        tuple(m.sku),
        tuple(m.node_id),
        array("q", m.on_hand),
        array("d", m.as_of),
        array("q", m.damaged) if len(m.damaged) else zeros,
        array("q", m.quality_hold) if len(m.quality_hold) else zeros,
    )
    lengths = {len(column) for column in (levels.node_id, levels.on_hand, levels.as_of, levels.damaged)}
    if lengths | {len(levels.quality_hold)} != {count}:
        raise ValueError(f"a LevelsSet's columns differ in length ({count} SKUs)")
    return levels


def event_to_proto(event: Event) -> pb.Event:
    match event:
        case LevelsSet():
            return pb.Event(levels_set=_levels_to_proto(event.levels, event.by))
        case StockAdjusted():
            return pb.Event(
                stock_adjusted=pb.StockAdjusted(
                    adjustment_id=event.adjustment_id,
                    sku=event.sku,
                    node_id=event.node_id,
                    delta=event.delta,
                    reason=event.reason,
                    state=_STOCK_STATES[event.state],
                    supply_id=event.supply_id,
                    by=event.by,
                )
            )
        case HoldPlaced():
            return pb.Event(
                hold_placed=pb.HoldPlaced(
                    reservation_id=event.reservation_id,
                    fingerprint=event.fingerprint,
                    lines=_lines(event.lines),
                    created_at=event.created_at,
                    expires_at=event.expires_at,
                    channel=event.channel,
                    customer=event.customer,
                    capacity=_node_days(event.capacity),
                    attempt=event.attempt,
                    by=event.by,
                )
            )
        case PartChanged():
            return pb.Event(
                part_changed=pb.PartChanged(
                    reservation_id=event.reservation_id, state=_state(event.state), at=event.at, by=event.by
                )
            )
        case HoldAborted():
            return pb.Event(hold_aborted=pb.HoldAborted(reservation_id=event.reservation_id, by=event.by))
        case HoldExtended():
            return pb.Event(
                hold_extended=pb.HoldExtended(
                    reservation_id=event.reservation_id,
                    expires_at=event.expires_at,
                    at=event.at,
                    version=event.version,
                    by=event.by,
                )
            )
        case LinesClosed():
            return pb.Event(
                lines_closed=pb.LinesClosed(
                    reservation_id=event.reservation_id,
                    operation_id=event.operation_id,
                    kind=event.kind,
                    units=[
                        pb.LineUnits(index=i, units=u, sku=line.sku, node_id=line.node_id)
                        for (i, u), line in zip(event.units, event.lines, strict=True)
                    ],
                    at=event.at,
                    by=event.by,
                )
            )
        case UnitsReturned():
            return pb.Event(
                units_returned=pb.UnitsReturned(
                    reservation_id=event.reservation_id,
                    return_id=event.return_id,
                    index=event.index,
                    node_id=event.node_id,
                    units=event.units,
                    sellable=event.sellable,
                    at=event.at,
                    sku=event.sku,
                    by=event.by,
                )
            )
        case LineMoved():
            return pb.Event(
                line_moved=pb.LineMoved(
                    reservation_id=event.reservation_id,
                    operation_id=event.operation_id,
                    index=event.index,
                    to_node=event.to_node,
                    at=event.at,
                    sku=event.sku,
                    from_node=event.from_node,
                    units=event.units,
                    by=event.by,
                )
            )
        case ClaimRecorded():
            return pb.Event(claim_recorded=_claim_to_proto(event))
        case SupplyExpected():
            return pb.Event(supply_expected=_supply_to_proto(event))
        case ClaimDropped():
            return pb.Event(claim_dropped=pb.ClaimDropped(reservation_id=event.reservation_id))
        case ReservationDecided():
            decided = pb.ReservationDecided(
                reservation_id=event.reservation_id,
                decision=int(event.decision),  # type: ignore[arg-type]
                at=event.at,
                expires_at=event.expires_at,
                by=event.by,
            )
            if event.intent is not None:
                decided.intent.CopyFrom(_intent_to_proto(event.intent))
            return pb.Event(reservation_decided=decided)
        case IntentCarried():
            return pb.Event(
                intent_carried=pb.IntentCarried(
                    reservation_id=event.reservation_id,
                    operation=event.operation,
                    partitions=list(event.partitions),
                )
            )
        case HoldFenced():
            return pb.Event(hold_fenced=_fence_to_proto(event))
    raise TypeError(f"unknown event {event!r}")


def _fence_to_proto(fence: HoldFenced) -> pb.HoldFenced:
    return pb.HoldFenced(reservation_id=fence.reservation_id, attempt=fence.attempt, until=fence.until)


def _supply_to_proto(supply: SupplyExpected) -> pb.SupplyExpected:
    return pb.SupplyExpected(
        supply_id=supply.supply_id,
        sku=supply.sku,
        node_id=supply.node_id,
        quantity=supply.quantity,
        expected_at=supply.expected_at,
        by=supply.by,
    )


def _supply_from_proto(s: pb.SupplyExpected) -> SupplyExpected:
    return SupplyExpected(s.supply_id, s.sku, s.node_id, s.quantity, s.expected_at, s.by)


def _claim_to_proto(claim: ClaimRecorded | Claim) -> pb.ClaimRecorded:
    message = pb.ClaimRecorded(
        reservation_id=claim.reservation_id,
        fingerprint=claim.fingerprint,
        partitions=list(claim.partitions),
        created_at=claim.created_at,
        sourcing=[_sourcing_to_proto(line) for line in claim.sourcing],
        attempt=claim.attempt,
        expires_at=claim.expires_at,
    )
    if isinstance(claim, Claim):  # a whole record, in a snapshot
        message.decision = int(claim.decision)  # type: ignore[assignment]
        message.decided_at = claim.decided_at
        message.intents.extend(_intent_to_proto(intent) for intent in claim.intents)
        message.history.extend(pb.HistoryEntry(what=what, at=at, by=by) for what, at, by in claim.history)
        message.decisions = claim.decisions
    if claim.destination is not None:
        d = claim.destination
        message.destination.CopyFrom(
            pb.Destination(latitude=d.latitude, longitude=d.longitude, pickup_node_id=d.pickup_node_id)
        )
    return message


def _claim_from_proto(r: pb.ClaimRecorded) -> Claim:
    destination = None
    if r.HasField("destination"):
        d = r.destination
        destination = Destination(d.latitude, d.longitude, d.pickup_node_id)
    sourcing = tuple(_sourcing_from_proto(line) for line in r.sourcing)
    # Records written before decisions were journaled have no attempt: they are HELD for good.
    legacy = not r.attempt
    decision = Decision(r.decision) if r.decision else (Decision.HELD if legacy else Decision.PENDING)
    return Claim(
        r.reservation_id,
        r.fingerprint,
        tuple(r.partitions),
        r.created_at,
        sourcing,
        destination,
        r.attempt,
        decision,
        math.inf if legacy and not r.expires_at else r.expires_at,
        r.decided_at or r.created_at,
        tuple(_intent_from_proto(intent) for intent in r.intents),
        tuple((h.what, h.at, h.by) for h in r.history),
        r.decisions,
    )


def _sourcing_to_proto(line: LineSourcing) -> pb.LineSourcing:
    return pb.LineSourcing(
        sku=line.sku,
        quantity=line.quantity,
        rules=line.rules,
        considered=[
            pb.NodeVerdict(node_id=v.node_id, units=v.units, reason=v.reason, distance_km=v.distance_km)
            for v in line.considered
        ],
        omitted=line.omitted,
    )


def _sourcing_from_proto(line: pb.LineSourcing) -> LineSourcing:
    considered = tuple(
        NodeVerdict(v.node_id, v.units, v.reason, v.distance_km if v.HasField("distance_km") else None)
        for v in line.considered
    )
    return LineSourcing(line.sku, line.quantity, tuple(line.rules), considered, line.omitted)


def _node_days(capacity: tuple[tuple[str, int], ...]) -> list[pb.NodeDay]:
    return [pb.NodeDay(node_id=node_id, day=day) for node_id, day in capacity]


def event_from_proto(message: pb.Event) -> Event:
    kind = message.WhichOneof("kind")
    if kind == "levels_set":
        return LevelsSet(_levels_from_proto(message.levels_set), message.levels_set.by)
    if kind == "stock_set":
        m = message.stock_set
        return StockSet(m.sku, m.node_id, m.on_hand, m.as_of, m.damaged, m.quality_hold)
    if kind == "stock_adjusted":
        a = message.stock_adjusted
        return StockAdjusted(
            a.adjustment_id,
            a.sku,
            a.node_id,
            a.delta,
            a.reason,
            _STOCK_STATES_BACK[a.state],
            a.supply_id,
            a.by,
        )
    if kind == "supply_expected":
        return _supply_from_proto(message.supply_expected)
    if kind == "hold_placed":
        h = message.hold_placed
        return HoldPlaced(
            h.reservation_id,
            h.fingerprint,
            _from_lines(h.lines),
            h.created_at,
            h.expires_at,
            h.channel,
            h.customer,
            tuple((c.node_id, c.day) for c in h.capacity),
            h.attempt,
            h.by,
        )
    if kind == "part_changed":
        c = message.part_changed
        return PartChanged(c.reservation_id, PartState(c.state), c.at, c.by)
    if kind == "hold_extended":
        e = message.hold_extended
        return HoldExtended(e.reservation_id, e.expires_at, e.at, e.version, e.by)
    if kind == "lines_closed":
        closed = message.lines_closed
        units = tuple((u.index, u.units) for u in closed.units)
        lines = tuple(Line(u.sku, u.node_id, u.units) for u in closed.units)
        return LinesClosed(
            closed.reservation_id, closed.operation_id, closed.kind, units, closed.at, lines, closed.by
        )
    if kind == "units_returned":
        back = message.units_returned
        return UnitsReturned(
            back.reservation_id,
            back.return_id,
            back.index,
            back.node_id,
            back.units,
            back.sellable,
            back.at,
            back.sku,
            back.by,
        )
    if kind == "line_moved":
        moved = message.line_moved
        return LineMoved(
            moved.reservation_id,
            moved.operation_id,
            moved.index,
            moved.to_node,
            moved.at,
            moved.sku,
            moved.from_node,
            moved.units,
            moved.by,
        )
    if kind == "hold_aborted":
        return HoldAborted(message.hold_aborted.reservation_id, message.hold_aborted.by)
    if kind == "claim_recorded":
        claim = _claim_from_proto(message.claim_recorded)
        return ClaimRecorded(
            claim.reservation_id,
            claim.fingerprint,
            claim.partitions,
            claim.created_at,
            claim.sourcing,
            claim.destination,
            claim.attempt,
            claim.expires_at,
        )
    if kind == "claim_dropped":
        return ClaimDropped(message.claim_dropped.reservation_id)
    if kind == "reservation_decided":
        d = message.reservation_decided
        intent = _intent_from_proto(d.intent) if d.HasField("intent") else None
        return ReservationDecided(d.reservation_id, Decision(d.decision), d.at, d.expires_at, intent, d.by)
    if kind == "intent_carried":
        taken = message.intent_carried
        return IntentCarried(taken.reservation_id, taken.operation, tuple(taken.partitions))
    if kind == "hold_fenced":
        f = message.hold_fenced
        return HoldFenced(f.reservation_id, f.attempt, f.until)
    raise ValueError(f"journal entry with unknown event kind {kind!r}")


def encode_entry(events: list[Event]) -> bytes:
    return pb.JournalEntry(events=[event_to_proto(event) for event in events]).SerializeToString()


def decode_entry(data: bytes) -> list[Event]:
    return [event_from_proto(event) for event in pb.JournalEntry.FromString(data).events]


def encode_snapshot(partition: Partition, last_entry_id: str) -> bytes:
    snapshot = pb.PartitionSnapshot(
        partition=partition.number, last_entry_id=last_entry_id, levels=_levels_to_proto(partition.levels())
    )
    for part in partition.parts.values():
        snapshot.parts.add(
            reservation_id=part.reservation_id,
            fingerprint=part.fingerprint,
            lines=_lines(part.lines),
            state=_state(part.state),
            created_at=part.created_at,
            expires_at=part.expires_at,
            changed_at=part.changed_at,
            channel=part.channel,
            customer=part.customer,
            history=[pb.HistoryEntry(what=what, at=at, by=by) for what, at, by in part.history],
            fulfilled=part.fulfilled,
            cancelled=part.cancelled,
            operations=sorted(part.operations),
            returned=part.returned,
            capacity=_node_days(part.capacity),
            attempt=part.attempt,
            followed=part.followed,
        )
    snapshot.claims.extend(_claim_to_proto(claim) for claim in partition.claims.values())
    snapshot.fences.extend(
        _fence_to_proto(HoldFenced(rid, attempt, until))
        for rid, attempts in partition.fences.items()
        for attempt, until in attempts.items()
    )
    for adjustment in partition.adjustments.values():
        snapshot.adjustments.add(
            adjustment_id=adjustment.adjustment_id,
            sku=adjustment.sku,
            node_id=adjustment.node_id,
            delta=adjustment.delta,
            state=_STOCK_STATES[adjustment.state],
            supply_id=adjustment.supply_id,
        )
    for sku, nodes in partition.positions.items():
        for node_id, position in nodes.items():
            for supply_id, (expected_at, quantity) in (position.inbound or {}).items():
                supply = SupplyExpected(supply_id, sku, node_id, quantity, expected_at)
                snapshot.supplies.append(_supply_to_proto(supply))
    return snapshot.SerializeToString()


def decode_snapshot(data: bytes) -> tuple[Partition, str]:
    """The partition a snapshot describes and the id of the last entry it covers."""
    snapshot = pb.PartitionSnapshot.FromString(data)
    partition = Partition(snapshot.partition)
    # Snapshots written before the levels were kept in columns have a message a position.
    positions = (
        (p.sku, p.node_id, p.on_hand, p.as_of, p.damaged, p.quality_hold) for p in snapshot.positions
    )
    partition.restore(
        levels=LevelColumns.join([LevelColumns.of(positions), _levels_from_proto(snapshot.levels)]),
        parts=(
            Part(
                p.reservation_id,
                p.fingerprint,
                _from_lines(p.lines),
                PartState(p.state),
                p.created_at,
                p.expires_at,
                p.changed_at,
                p.channel,
                p.customer,
                tuple((h.what, h.at, h.by) for h in p.history),
                tuple(p.fulfilled),
                tuple(p.cancelled),
                tuple(p.returned),
                frozenset(p.operations),
                tuple((c.node_id, c.day) for c in p.capacity),
                p.attempt,
                p.followed,
            )
            for p in snapshot.parts
        ),
        claims=(_claim_from_proto(c) for c in snapshot.claims),
        adjustments=(
            StockAdjusted(
                a.adjustment_id, a.sku, a.node_id, a.delta, "", _STOCK_STATES_BACK[a.state], a.supply_id
            )
            for a in snapshot.adjustments
        ),
        supplies=(_supply_from_proto(s) for s in snapshot.supplies),
        fences=(HoldFenced(f.reservation_id, f.attempt, f.until) for f in snapshot.fences),
    )
    return partition, snapshot.last_entry_id


_EVENT_TYPES = {
    "held": v1.RESERVATION_EVENT_TYPE_HELD,
    "confirmed": v1.RESERVATION_EVENT_TYPE_CONFIRMED,
    "released": v1.RESERVATION_EVENT_TYPE_RELEASED,
    "expired": v1.RESERVATION_EVENT_TYPE_EXPIRED,
    "extended": v1.RESERVATION_EVENT_TYPE_EXTENDED,
    "withdrawn": v1.RESERVATION_EVENT_TYPE_WITHDRAWN,
    "fulfilled": v1.RESERVATION_EVENT_TYPE_FULFILLED,
    "cancelled": v1.RESERVATION_EVENT_TYPE_LINES_CANCELLED,
    "returned": v1.RESERVATION_EVENT_TYPE_RETURNED,
    "moved": v1.RESERVATION_EVENT_TYPE_MOVED,
}


def reservation_event(
    partition: int | None, rid: str, what: str, at: float, by: str = ""
) -> v1.ReservationEvent:
    """The public form of a transition: of one part (published), or of the whole
    reservation (its history; partition None); `by` made it."""
    return fill_reservation_event(v1.ReservationEvent(), partition, rid, what, at, by)


def fill_reservation_event(
    message: v1.ReservationEvent, partition: int | None, rid: str, what: str, at: float, by: str = ""
) -> v1.ReservationEvent:
    """`reservation_event` written into `message` (e.g. one just added to a repeated
    field, which saves building it apart and copying it in)."""
    where = "" if partition is None else f"{partition}/"
    message.event_id = f"{rid}/{where}{what}/{round(at * 1000)}"
    message.reservation_id = rid
    message.partition = partition or 0
    message.type = _EVENT_TYPES[what]
    message.at.seconds, message.at.nanos = divmod(round(at * 1e9), 1_000_000_000)
    if by:
        message.by = by
    return message


def published_events(partition: int, events: list[Event]) -> list[bytes]:
    """What downstream systems get for a journal entry: one ReservationEvent per part transition."""
    out = []
    for event in events:
        match event:
            case HoldPlaced():
                message = reservation_event(
                    partition, event.reservation_id, "held", event.created_at, event.by
                )
                message.lines.extend(
                    v1.ReservationLine(sku=line.sku, node_id=line.node_id, quantity=line.quantity)
                    for line in event.lines
                )
                message.channel_id, message.customer_id = event.channel, event.customer
            case PartChanged():
                message = reservation_event(
                    partition, event.reservation_id, event.state.name.lower(), event.at, event.by
                )
            case HoldExtended():
                message = reservation_event(partition, event.reservation_id, "extended", event.at, event.by)
            case LinesClosed():
                message = reservation_event(partition, event.reservation_id, event.kind, event.at, event.by)
                message.lines.extend(
                    v1.ReservationLine(sku=line.sku, node_id=line.node_id, quantity=line.quantity)
                    for line in event.lines
                )
            case UnitsReturned():
                message = reservation_event(partition, event.reservation_id, "returned", event.at, event.by)
                message.lines.add(sku=event.sku, node_id=event.node_id, quantity=event.units)
            case LineMoved():
                message = reservation_event(partition, event.reservation_id, "moved", event.at, event.by)
                message.lines.add(sku=event.sku, node_id=event.to_node, quantity=event.units)
                message.from_node_id = event.from_node
            case HoldAborted():
                message = reservation_event(partition, event.reservation_id, "withdrawn", 0.0, event.by)
            case _:
                continue
        out.append(message.SerializeToString())
    return out
