"""The state of one partition: positions, hold parts, claims and adjustment ids.

`handle` decides a command and returns its result plus the events that carry it
out; `apply` replays an event. Both are synchronous and pure, so a batch of
commands is checked and changed with nothing in between, and recovery replays the
journal through the very same `apply`.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import replace
from operator import itemgetter

from omnistock.availability.atp import NO_LIMIT, ChannelLimit, future_free
from omnistock.availability.positions import PositionRow, PositionView
from omnistock.reservations.domain.commands import (
    RESULT_OF,
    AdjustOutcome,
    AdjustResult,
    AdjustStock,
    CapacityResult,
    CarryStep,
    ClaimOutcome,
    ClaimResult,
    CloseLines,
    Command,
    ConfirmReservation,
    DecideClose,
    DecideHold,
    DecisionOutcome,
    DecisionResult,
    ExpectSupply,
    ExtendReservation,
    GetClaim,
    GetPart,
    HoldOutcome,
    HoldResult,
    LoadLevels,
    LoadResult,
    MarkCarried,
    MoveLine,
    OverLimit,
    PartOutcome,
    PartResult,
    PlaceHold,
    PositionsResult,
    ReadCapacity,
    ReadPositions,
    RecordClaim,
    ReleaseReservation,
    Result,
    ReturnUnits,
    SetStock,
    ShortLine,
    StockResult,
    SupplyResult,
)
from omnistock.reservations.domain.levels import LoadedLevels
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
    Position,
    ReservationDecided,
    StockAdjusted,
    StockSet,
    StockState,
    SupplyExpected,
    UnitsReturned,
    Withdraw,
    line_key,
    position_row,
    position_view,
)

PENDING_SECONDS = 5.0
"""How long a Reserve attempt may stay PENDING before its home aborts it: the attempt's
gateway died or lost its shards midway, and its parts must not hold units for good."""
FENCE_MARGIN = 60.0
"""Seconds a fence outlives its attempt's expiry: a PlaceHold of it later still would be
refused anyway as already expired, unless the clocks of two hosts disagree by this much."""
EXPIRY_RETRY = 0.05
EXPIRY_BY = "expiry"
"""Who the home's timer's decisions are recorded as made by (an expiry, an attempt left
PENDING too long): no caller asked for them."""
"""Seconds before the timer looks again at an expiry it put off (see expire_due)."""
_RANK = {
    PartState.HELD: 0,
    PartState.CONFIRMED: 1,
    PartState.RELEASED: 2,
    PartState.EXPIRED: 2,
    PartState.FULFILLED: 2,
}
"""How far along its life a part is: a Follow step only ever moves a part forward."""


class Partition:
    """All positions of the SKUs that hash to one partition, and the holds on them."""

    def __init__(self, number: int) -> None:
        self.number = number
        # sku -> node_id -> position: every node of a SKU lives in one partition. A position
        # with nothing but a loaded count stays in `loaded` until something else touches it.
        self.positions: dict[str, dict[str, Position]] = {}
        self.loaded = LoadedLevels()
        self.parts: dict[str, Part] = {}
        self.claims: dict[str, Claim] = {}
        self.adjustments: dict[str, StockAdjusted] = {}
        # (sku, customer) -> units in open parts: what purchase limits count (derived).
        self.customer_units: dict[tuple[str, str], int] = {}
        # (node_id, utc day) -> orders that use the node's daily capacity (derived from parts).
        self.capacity_used: dict[tuple[str, int], int] = {}
        # reservation id -> {attempt: fenced until}: aborted attempts that placed nothing here.
        self.fences: dict[str, dict[str, float]] = {}
        # Deadlines of the home's records and fences, earliest first; an entry whose record
        # has moved on since it was pushed is skipped when it comes due.
        self._expiring: list[tuple[float, float, str]] = []  # (due, expires_at, id) of HELD records
        self._pending: list[tuple[float, str]] = []  # (created_at, id) of PENDING records
        self._fenced: list[tuple[float, str, str]] = []  # (until, id, attempt)
        # Nodes of each SKU changed since the owner last drained this (feeds the gateway's view).
        self.touched: dict[str, set[str]] = {}

    # --- reads ---

    def position(self, sku: str, node_id: str) -> Position:
        """The position, ready to change: created empty on first use, or from its loaded count."""
        nodes = self.positions.get(sku)
        if nodes is None:
            nodes = self.positions[sku] = {}
        position = nodes.get(node_id)
        if position is None:
            position = nodes[node_id] = Position()
            loaded = self.loaded.pop(sku, node_id)
            if loaded is not None:
                position.on_hand, position.as_of = loaded
        return position

    def peek(self, sku: str, node_id: str) -> Position | None:
        """The position to read (a loaded count comes as a fresh Position); None if unknown."""
        position = self.positions.get(sku, {}).get(node_id)
        if position is None:
            loaded = self.loaded.get(sku, node_id)
            if loaded is not None:
                return Position(on_hand=loaded[0], as_of=loaded[1])
        return position

    def view(self, sku: str, node_id: str) -> PositionView:
        return position_view(sku, node_id, self.peek(sku, node_id) or Position())

    def views(self, sku: str) -> Iterator[PositionView]:
        """Every position of the SKU, by node id."""
        rows = self.rows(sku)
        rows.sort(key=_by_node)
        return map(PositionView._make, rows)

    def rows(self, sku: str) -> list[PositionRow]:
        """`views` as plain tuples, in no particular order."""
        rows = self.object_rows(sku)
        rows.extend(self.loaded.rows(sku))
        return rows

    def object_rows(self, sku: str) -> list[PositionRow]:
        """Rows of the SKU's positions that are more than a loaded count (the view feed sends
        the loaded ones as a block)."""
        return [position_row(sku, node_id, p) for node_id, p in self.positions.get(sku, {}).items()]

    def rows_of(self, sku: str, node_ids: Iterable[str]) -> list[PositionRow]:
        rows = []
        for node_id in node_ids:
            position = self.peek(sku, node_id) or Position()
            rows.append(position_row(sku, node_id, position))
        return rows

    def levels(self) -> LevelColumns:
        """The counts of every position (what a snapshot keeps; the rest follows from the parts)."""
        parts = [
            LevelColumns.of(
                (sku, node_id, p.on_hand, p.as_of, p.damaged, p.quality_hold)
                for sku, nodes in self.positions.items()
                for node_id, p in nodes.items()
            )
        ]
        parts.extend(self.loaded.columns(sku) for sku in self.loaded.skus())
        return LevelColumns.join(parts)

    def position_count(self) -> int:
        return len(self.loaded) + sum(map(len, self.positions.values()))

    def node_count(self, sku: str) -> int:
        return len(self.positions.get(sku, ())) + self.loaded.node_count(sku)

    def skus(self) -> set[str]:
        return {*self.positions, *self.loaded.skus()}

    def next_due(self, pending_seconds: float = PENDING_SECONDS) -> float | None:
        """When `expire_due` next has something to do (an expiry, a PENDING timeout, a fence to drop)."""
        due = []
        if self._expiring:
            due.append(self._expiring[0][0])
        if self._pending:
            due.append(self._pending[0][0] + pending_seconds)
        if self._fenced:
            due.append(self._fenced[0][0])
        return min(due) if due else None

    # --- decisions ---

    def handle(self, command: Command, now: float = 0.0) -> tuple[Result, list[Event]]:
        """Decide `command` at `now` (the shard's clock, which decides reservations' expiry),
        apply its events, return (result, events)."""
        result, events = self._decide(command, now)
        assert isinstance(result, RESULT_OF[command.__class__]), (command, result)
        for event in events:
            self.apply(event)
        if events or isinstance(result, DecisionResult):
            result = self._after(command, result, now)
        return result, events

    def _decide(self, command: Command, now: float) -> tuple[Result, list[Event]]:
        match command:
            case SetStock():
                return self._set_stock(command)
            case LoadLevels():
                return self._load_levels(command)
            case AdjustStock():
                return self._adjust(command)
            case ExpectSupply():
                return self._expect(command)
            case PlaceHold():
                return self._place_hold(command)
            case DecideHold():
                return self._decide_hold(command, now)
            case ConfirmReservation():
                return self._decide_state(command.reservation_id, now, Decision.CONFIRMED, command.by)
            case ReleaseReservation():
                return self._decide_state(command.reservation_id, now, Decision.RELEASED, command.by)
            case ExtendReservation():
                return self._decide_extend(command, now)
            case DecideClose():
                return self._decide_close(command, now)
            case CarryStep():
                return self._carry(command)
            case MarkCarried():
                return self._mark_carried(command)
            case CloseLines():
                return self._close_lines(command)
            case ReturnUnits():
                return self._return(command)
            case MoveLine():
                return self._move_line(command)
            case ReadCapacity():
                used = tuple((n, self.capacity_used.get((n, command.day), 0)) for n in command.node_ids)
                return CapacityResult(used), []
            case GetPart():
                part = self.parts.get(command.reservation_id)
                outcome = PartOutcome.NOT_FOUND if part is None else PartOutcome.FOUND
                return PartResult(outcome, part, part.state if part else None), []
            case RecordClaim():
                return self._record_claim(command)
            case GetClaim():
                claim = self.claims.get(command.reservation_id)
                if claim is None:
                    return ClaimResult(ClaimOutcome.NOT_FOUND), []
                return ClaimResult(ClaimOutcome.FOUND, claim, claim.decision_at(now)), []
            case ReadPositions():
                rows = tuple(view for sku in command.skus for view in self.views(sku))
                return PositionsResult(rows), []
        raise TypeError(f"unknown command {command!r}")

    def _after(self, command: Command, result: Result, now: float) -> Result:
        """Results that show the state after the change."""
        match command:
            case SetStock(sku=sku, node_id=node_id):
                return StockResult(True, self.view(sku, node_id))
            case AdjustStock(sku=sku, node_id=node_id):
                return AdjustResult(AdjustOutcome.APPLIED, self.view(sku, node_id))
            case ExpectSupply(sku=sku, node_id=node_id):
                return SupplyResult(self.view(sku, node_id))
            case PlaceHold() | CarryStep() | CloseLines() | ReturnUnits() | MoveLine():
                part = self.parts.get(command.reservation_id)
                assert isinstance(result, (HoldResult, PartResult))
                if isinstance(result, HoldResult):
                    return HoldResult(result.outcome, part)
                return PartResult(result.outcome, part, part.state if part else None)
        if isinstance(result, DecisionResult):
            if isinstance(command, DecideHold) and result.claim and result.claim.attempt != command.attempt:
                return result  # the attempt asked about was aborted: another one owns the id now
            claim = self.claims.get(result.claim.reservation_id) if result.claim else None
            # (Built, not replace()d: this runs for every Reserve.)
            if claim is None:  # an aborted attempt's record goes once its parts are withdrawn
                return DecisionResult(
                    result.outcome, result.claim, Decision.ABORTED, result.carry, result.carried
                )
            return DecisionResult(result.outcome, claim, claim.decision_at(now), result.carry, result.carried)
        return result

    def _set_stock(self, command: SetStock) -> tuple[Result, list[Event]]:
        """One level by the rule of `_load_levels`, answered with the position as it was."""
        level = (
            command.sku,
            command.node_id,
            command.on_hand,
            command.as_of,
            command.damaged,
            command.quality_hold,
        )
        loaded, events = self._load_levels(
            LoadLevels(command.partition, LevelColumns.of((level,)), command.by)
        )
        assert isinstance(loaded, LoadResult)
        return StockResult(loaded.applied == 1, self.view(command.sku, command.node_id)), events

    def _load_levels(self, command: LoadLevels) -> tuple[Result, list[Event]]:
        """SetStock's rule for each level, deciding all before any applies: a position
        counted twice in one load keeps the later count, as with two SetStocks. A SKU new
        to the partition, sent in one run with each node once, is taken whole: there is
        nothing to compare its levels with, and a catalog load is mostly such SKUs."""
        levels = command.levels
        runs = levels.sku_runs()
        runs_of_sku = Counter(sku for sku, _, _ in runs)
        changed: list[int] = []  # indices of the levels that change something
        stale = 0
        decided: dict[tuple[str, str], float] = {}
        hot, loaded = self.positions, self.loaded
        node_ids = levels.node_id
        for sku, start, end in runs:
            if (
                sku not in hot
                and not loaded.node_count(sku)
                and runs_of_sku[sku] == 1
                and len(set(node_ids[start:end])) == end - start
            ):
                changed.extend(range(start, end))
                continue
            for i in range(start, end):
                node_id, on_hand, as_of = node_ids[i], levels.on_hand[i], levels.as_of[i]
                damaged, quality_hold = levels.damaged[i], levels.quality_hold[i]
                key = (sku, node_id)
                if key in decided:
                    newest, same = decided[key], False
                else:
                    current = hot.get(sku, {}).get(node_id)
                    if current is not None:
                        newest = current.as_of
                        same = (current.on_hand, current.as_of, current.damaged, current.quality_hold) == (
                            on_hand,
                            as_of,
                            damaged,
                            quality_hold,
                        )
                    else:
                        count = loaded.get(sku, node_id)
                        newest = count[1] if count is not None else float("-inf")
                        same = count == (on_hand, as_of) and not damaged and not quality_hold
                if as_of < newest:
                    stale += 1
                    continue
                decided[key] = as_of
                if not same:
                    changed.append(i)
        if not changed:
            return LoadResult(len(levels) - stale, stale), []
        taken = levels if len(changed) == len(levels) else levels.take(changed)
        return LoadResult(len(levels) - stale, stale), [LevelsSet(taken, command.by)]

    def _adjust(self, command: AdjustStock) -> tuple[Result, list[Event]]:
        current = self.view(command.sku, command.node_id)
        seen = self.adjustments.get(command.adjustment_id)
        if seen is not None:
            same = (seen.sku, seen.node_id, seen.delta, seen.state, seen.supply_id) == (
                command.sku,
                command.node_id,
                command.delta,
                command.state,
                command.supply_id,
            )
            if not same:
                return AdjustResult(AdjustOutcome.CONFLICT, current), []
            return AdjustResult(AdjustOutcome.REPLAYED, current), []
        if command.supply_id and (
            command.state is not StockState.SELLABLE
            or command.delta <= 0
            or command.supply_id not in self._inbound(command.sku, command.node_id)
        ):
            return AdjustResult(AdjustOutcome.UNKNOWN_SUPPLY, current), []
        units = {
            StockState.SELLABLE: current.sellable,
            StockState.DAMAGED: current.damaged,
            StockState.QUALITY_HOLD: current.quality_hold,
        }[command.state]
        if units + command.delta < 0:
            return AdjustResult(AdjustOutcome.REFUSED_NEGATIVE, current), []
        event = StockAdjusted(
            command.adjustment_id,
            command.sku,
            command.node_id,
            command.delta,
            command.reason,
            command.state,
            command.supply_id,
            command.by,
        )
        return AdjustResult(AdjustOutcome.APPLIED, current), [event]

    def _inbound(self, sku: str, node_id: str) -> dict[str, tuple[float, int]]:
        position = self.positions.get(sku, {}).get(node_id)  # loaded counts have no inbound
        return (position.inbound if position else None) or {}

    def _expect(self, command: ExpectSupply) -> tuple[Result, list[Event]]:
        current = self.view(command.sku, command.node_id)
        known = self._inbound(command.sku, command.node_id).get(command.supply_id)
        if known == (command.expected_at, command.quantity) or (known is None and command.quantity == 0):
            return SupplyResult(current), []
        event = SupplyExpected(
            command.supply_id,
            command.sku,
            command.node_id,
            command.quantity,
            command.expected_at,
            command.by,
        )
        return SupplyResult(current), [event]

    def _place_hold(self, command: PlaceHold) -> tuple[Result, list[Event]]:
        existing = self.parts.get(command.reservation_id)
        if existing is not None:
            if existing.fingerprint != command.fingerprint:
                return HoldResult(HoldOutcome.CONFLICT, existing), []
            return HoldResult(HoldOutcome.REPLAYED, existing), []
        if command.attempt in self.fences.get(command.reservation_id, ()):
            return HoldResult(HoldOutcome.FENCED), []
        if any(line.quantity <= 0 for line in command.lines) or (
            command.limits and len(command.limits) != len(command.lines)
        ):
            return HoldResult(HoldOutcome.INVALID), []
        # Sum per position, so two lines on one position cannot each pass alone.
        wanted: dict[tuple[str, str], int] = {}
        limits: dict[tuple[str, str], ChannelLimit] = {}
        for i, line in enumerate(command.lines):
            wanted[line_key(line)] = wanted.get(line_key(line), 0) + line.quantity
            if command.channel:
                limits[line_key(line)] = command.limits[i] if command.limits else NO_LIMIT
        short = []
        for (sku, node_id), quantity in wanted.items():
            available = self._promisable(sku, node_id, command.channel, limits.get((sku, node_id)))
            if quantity > available:
                short.append(ShortLine(sku, node_id, quantity, available))
        if short:
            return HoldResult(HoldOutcome.SHORT, short=tuple(short)), []
        over = self._over_limit(command)
        if over:
            return HoldResult(HoldOutcome.OVER_LIMIT, over_limit=over), []
        full = tuple(
            node_id
            for node_id, day, most in command.capacity
            if most and self.capacity_used.get((node_id, day), 0) >= most
        )
        if full:
            return HoldResult(HoldOutcome.FULL, full=full), []
        event = HoldPlaced(
            command.reservation_id,
            command.fingerprint,
            command.lines,
            command.created_at,
            command.expires_at,
            command.channel,
            command.customer,
            tuple((node_id, day) for node_id, day, _ in command.capacity),
            command.attempt,
            command.by,
        )
        return HoldResult(HoldOutcome.PLACED), [event]

    def _over_limit(self, command: PlaceHold) -> tuple[OverLimit, ...]:
        """Every limited SKU this customer would hold more of than allowed."""
        if not command.customer or not command.purchase_limits:
            return ()
        asked: dict[str, int] = {}
        for line in command.lines:
            asked[line.sku] = asked.get(line.sku, 0) + line.quantity
        over = []
        for sku, limit in command.purchase_limits:
            held = self.customer_units.get((sku, command.customer), 0)
            if sku in asked and held + asked[sku] > limit:
                over.append(OverLimit(sku, limit, held, asked[sku]))
        return tuple(over)

    def _promisable(self, sku: str, node_id: str, channel: str, limit: ChannelLimit | None) -> int:
        """What a hold may take here: the free units, or what the channel's rules let it see."""
        position = self.peek(sku, node_id) or Position()
        if limit is None:
            return max(0, position.available)
        now = limit.promisable(
            position.sellable, position.reserved, position.committed, position.channel_used(channel)
        )
        if not limit.future_supply:
            return now
        return now + future_free(
            position.sellable, position.reserved, position.committed, position.inbound_units
        )

    def _close_lines(self, command: CloseLines) -> tuple[Result, list[Event]]:
        part = self.parts.get(command.reservation_id)
        if part is None:
            return PartResult(PartOutcome.NOT_FOUND), []
        key = operation_key(
            command.operation_id,
            command.kind,
            ",".join(sorted(f"{ln.sku}|{ln.node_id}|{ln.quantity}" for ln in command.lines)),
        )
        seen = _seen(part, command.operation_id, key)
        if seen is not None:
            return seen, []
        state = part.effective_state(command.at)
        allowed = (
            (PartState.CONFIRMED,) if command.kind == "fulfilled" else (PartState.HELD, PartState.CONFIRMED)
        )
        if state not in allowed and not part.settled:
            # (A settled part's lines have no open units: the refusal says so below.)
            return PartResult(PartOutcome.REFUSED, part, state), []
        units: dict[int, int] = {}
        for line in command.lines:
            index = part.line_index(line.sku, line.node_id)
            if index is None:
                return PartResult(
                    PartOutcome.REFUSED, part, state, f"{line.sku} at {line.node_id} is not reserved"
                ), []
            units[index] = units.get(index, 0) + line.quantity
            if line.quantity < 1 or units[index] > part.open_units(index):
                reason = f"{line.sku} at {line.node_id}: {part.open_units(index)} open, asked {units[index]}"
                return PartResult(PartOutcome.REFUSED, part, state, reason), []
        if command.kind == "fulfilled":
            for index, wanted in units.items():
                line = part.lines[index]
                sellable = self.position(line.sku, line.node_id).sellable
                if wanted > sellable:
                    # A count or write-off took units that were committed: they cannot ship
                    # from here (on_hand would go below zero); move the line or count again.
                    reason = (
                        f"{line.sku} at {line.node_id}: {sellable} sellable on hand, asked to ship"
                        f" {wanted}; count the stock or reassign the line"
                    )
                    return PartResult(PartOutcome.REFUSED, part, state, reason), []
        if command.check_only:
            return PartResult(PartOutcome.CHANGED, part, state), []
        closed = tuple(sorted(units.items()))
        event = LinesClosed(
            command.reservation_id,
            command.operation_id,
            command.kind,
            closed,
            command.at,
            tuple(Line(part.lines[i].sku, part.lines[i].node_id, u) for i, u in closed),
            command.by,
        )
        return PartResult(PartOutcome.CHANGED), [event]

    def _return(self, command: ReturnUnits) -> tuple[Result, list[Event]]:
        part = self.parts.get(command.reservation_id)
        if part is None:
            return PartResult(PartOutcome.NOT_FOUND), []
        index = part.line_index(command.sku, command.line_node_id)
        if index is None:
            reason = f"{command.sku} at {command.line_node_id} is not in this reservation"
            return PartResult(PartOutcome.REFUSED, part, part.state, reason), []
        content = f"{index}|{command.node_id}|{command.units}|{command.sellable}"
        seen = _seen(part, command.return_id, operation_key(command.return_id, "returned", content))
        if seen is not None:
            return seen, []
        fulfilled = part.fulfilled[index] if part.fulfilled else 0
        returned = part.returned[index] if part.returned else 0
        if command.units < 1 or command.units > fulfilled - returned:
            reason = (
                f"{command.sku}: {fulfilled - returned} fulfilled and not yet returned, asked {command.units}"
            )
            return PartResult(PartOutcome.REFUSED, part, part.state, reason), []
        event = UnitsReturned(
            command.reservation_id,
            command.return_id,
            index,
            command.node_id,
            command.units,
            command.sellable,
            command.at,
            command.sku,
            command.by,
        )
        return PartResult(PartOutcome.CHANGED), [event]

    def _move_line(self, command: MoveLine) -> tuple[Result, list[Event]]:
        part = self.parts.get(command.reservation_id)
        if part is None:
            return PartResult(PartOutcome.NOT_FOUND), []
        line = f"{command.sku}|{command.from_node}|"
        if not command.to_node and any(
            known.startswith(operation_key(command.operation_id, "moved", line)) for known in part.operations
        ):
            # A retry of a sourced move: the line has gone wherever the first attempt put it.
            return PartResult(PartOutcome.REPLAYED, part, part.state), []
        key = operation_key(command.operation_id, "moved", line + command.to_node)
        seen = _seen(part, command.operation_id, key)
        if seen is not None:
            return seen, []
        state = part.effective_state(command.at)
        if not state.is_open and not part.settled:  # (a settled part's lines have nothing to move)
            return PartResult(PartOutcome.REFUSED, part, state), []
        index = part.line_index(command.sku, command.from_node)
        if index is None:
            reason = f"{command.sku} at {command.from_node} is not in this reservation"
            return PartResult(PartOutcome.REFUSED, part, state, reason), []
        units = part.open_units(index)
        if units == 0:
            reason = f"{command.sku} at {command.from_node} has no open units to move"
            return PartResult(PartOutcome.REFUSED, part, state, reason), []
        if not command.to_node or command.to_node == command.from_node:
            reason = f"name the node to move {command.sku} to (not {command.from_node})"
            return PartResult(PartOutcome.REFUSED, part, state, reason), []
        if part.line_index(command.sku, command.to_node) is not None:
            reason = f"the reservation already has a line of {command.sku} at {command.to_node}"
            return PartResult(PartOutcome.REFUSED, part, state, reason), []
        limit = command.limit if part.channel else None
        free = self._promisable(command.sku, command.to_node, part.channel, limit)
        if free < units:
            reason = f"{command.sku} at {command.to_node}: {free} promisable, the line needs {units}"
            return PartResult(PartOutcome.REFUSED, part, state, reason), []
        event = LineMoved(
            command.reservation_id,
            command.operation_id,
            index,
            command.to_node,
            command.at,
            command.sku,
            command.from_node,
            units,
            command.by,
        )
        return PartResult(PartOutcome.CHANGED), [event]

    def _record_claim(self, command: RecordClaim) -> tuple[Result, list[Event]]:
        claim = self.claims.get(command.reservation_id)
        if claim is not None:
            if claim.decision is Decision.ABORTED:  # its parts are being withdrawn
                return ClaimResult(ClaimOutcome.BUSY, claim, claim.decision), []
            outcome = (
                ClaimOutcome.EXISTS if claim.fingerprint == command.fingerprint else ClaimOutcome.CONFLICT
            )
            return ClaimResult(outcome, claim, claim.decision), []
        event = ClaimRecorded(
            command.reservation_id,
            command.fingerprint,
            command.partitions,
            command.created_at,
            command.sourcing,
            command.destination,
            command.attempt,
            command.expires_at,
        )
        return ClaimResult(ClaimOutcome.RECORDED, _claim_of(event), Decision.PENDING), [event]

    # --- decisions of the home partition ---

    def _decide_hold(self, command: DecideHold, now: float) -> tuple[Result, list[Event]]:
        claim = self.claims.get(command.reservation_id)
        if claim is None:
            return DecisionResult(DecisionOutcome.NOT_FOUND), []
        if claim.attempt != command.attempt:
            # Another attempt owns the id: this one was aborted (and its record dropped) meanwhile.
            return DecisionResult(DecisionOutcome.REFUSED, claim, Decision.ABORTED), []
        if claim.decision is not Decision.PENDING:
            return self._as_decided(claim, now), []
        if command.placed:
            event = ReservationDecided(
                claim.reservation_id, Decision.HELD, now, claim.expires_at, by=command.by
            )
            return DecisionResult(DecisionOutcome.DECIDED, claim), [event]
        event = self._aborted(claim, now, command.unplaced, command.by)
        if event.intent is None:  # nothing was placed anywhere: the id is free at once
            return DecisionResult(DecisionOutcome.DECIDED, claim), [event, ClaimDropped(claim.reservation_id)]
        return DecisionResult(DecisionOutcome.DECIDED, claim, carry=event.intent), [event]

    def _as_decided(self, claim: Claim, now: float) -> DecisionResult:
        """A decision asked for again: nothing changes; what is still to carry is handed out."""
        carry = claim.intents[0] if claim.intents else None
        return DecisionResult(DecisionOutcome.REPLAYED, claim, claim.decision_at(now), carry)

    def _aborted(
        self, claim: Claim, now: float, unplaced: Iterable[int] = (), by: str = EXPIRY_BY
    ) -> ReservationDecided:
        """Every part of the attempt is withdrawn (fenced out where none arrived), but in the
        partitions known to hold none."""
        until = max(claim.expires_at, now) + FENCE_MARGIN
        step = Withdraw(claim.attempt, until, by)
        skip = set(unplaced)
        steps = tuple((p, step) for p in claim.partitions if p not in skip)
        intent = Intent(f"abort:{claim.attempt}", steps) if steps else None
        return ReservationDecided(claim.reservation_id, Decision.ABORTED, now, claim.expires_at, intent, by)

    def _decided_claim(self, reservation_id: str) -> Claim | None:
        """The claim of a reservation a client may know of: decided, and not aborted."""
        claim = self.claims.get(reservation_id)
        if claim is None or claim.decision in (Decision.PENDING, Decision.ABORTED):
            return None
        return claim

    def _busy(self, claim: Claim, now: float, allow_follows: bool) -> DecisionResult | None:
        """BUSY while an earlier decision's steps are still on their way, unless they are only
        state changes that the new decision's own steps cover."""
        for intent in claim.intents:
            if not (allow_follows and intent.follows_only):
                return DecisionResult(DecisionOutcome.BUSY, claim, claim.decision_at(now), intent)
        return None

    def _decide_state(
        self, reservation_id: str, now: float, target: Decision, by: str
    ) -> tuple[Result, list[Event]]:
        claim = self._decided_claim(reservation_id)
        if claim is None:
            return DecisionResult(DecisionOutcome.NOT_FOUND), []
        busy = self._busy(claim, now, allow_follows=True)
        if busy is not None:
            return busy, []
        current = claim.decision_at(now)
        if current is target:
            return self._as_decided(claim, now), []
        if not (current is Decision.HELD or (target is Decision.RELEASED and current is Decision.CONFIRMED)):
            return DecisionResult(DecisionOutcome.REFUSED, claim, current), []
        follow = Follow(target.part_state, now, claim.expires_at, claim.decisions + 1, by)
        intent = Intent(
            f"{target.name.lower()}#{follow.version}", tuple((p, follow) for p in claim.partitions)
        )
        event = ReservationDecided(reservation_id, target, now, claim.expires_at, intent, by)
        return DecisionResult(DecisionOutcome.DECIDED, claim, carry=intent), [event]

    def _decide_extend(self, command: ExtendReservation, now: float) -> tuple[Result, list[Event]]:
        claim = self._decided_claim(command.reservation_id)
        if claim is None:
            return DecisionResult(DecisionOutcome.NOT_FOUND), []
        busy = self._busy(claim, now, allow_follows=True)
        if busy is not None:
            return busy, []
        current = claim.decision_at(now)
        if current is not Decision.HELD:
            return DecisionResult(DecisionOutcome.REFUSED, claim, current), []
        if claim.expires_at == command.expires_at:
            return self._as_decided(claim, now), []
        follow = Follow(PartState.HELD, now, command.expires_at, claim.decisions + 1, command.by)
        intent = Intent(f"extend#{follow.version}", tuple((p, follow) for p in claim.partitions))
        event = ReservationDecided(
            claim.reservation_id, Decision.HELD, now, command.expires_at, intent, command.by
        )
        return DecisionResult(DecisionOutcome.DECIDED, claim, carry=intent), [event]

    def _decide_close(self, command: DecideClose, now: float) -> tuple[Result, list[Event]]:
        claim = self._decided_claim(command.reservation_id)
        if claim is None:
            return DecisionResult(DecisionOutcome.NOT_FOUND), []
        operation = f"close:{command.operation_id}"
        same = next((intent for intent in claim.intents if intent.operation == operation), None)
        if same is not None:  # decided before, still being carried
            return DecisionResult(DecisionOutcome.REPLAYED, claim, claim.decision_at(now), same), []
        busy = self._busy(claim, now, allow_follows=False)
        if busy is not None:
            return busy, []
        current = claim.decision_at(now)
        if current not in command.allowed:
            return DecisionResult(DecisionOutcome.REFUSED, claim, current), []
        intent = Intent(operation, command.steps)
        decision = command.ends or claim.decision
        event = ReservationDecided(claim.reservation_id, decision, now, claim.expires_at, intent, command.by)
        return DecisionResult(DecisionOutcome.DECIDED, claim, carry=intent), [event]

    def _mark_carried(self, command: MarkCarried) -> tuple[Result, list[Event]]:
        claim = self.claims.get(command.reservation_id)
        intent = next((i for i in claim.intents if i.operation == command.operation), None) if claim else None
        if claim is None or intent is None:  # carried before (or superseded by a later decision)
            return DecisionResult(DecisionOutcome.REPLAYED, claim), []
        events: list[Event] = [IntentCarried(claim.reservation_id, command.operation, command.partitions)]
        if (
            claim.decision is Decision.ABORTED
            and len(claim.intents) == 1
            and intent.without(command.partitions) is None
        ):
            events.append(ClaimDropped(claim.reservation_id))  # every part withdrawn: the id is free
        return DecisionResult(DecisionOutcome.DECIDED, claim), events

    # --- steps a part takes ---

    def _carry(self, command: CarryStep) -> tuple[Result, list[Event]]:
        reservation_id, step = command.reservation_id, command.step
        part = self.parts.get(reservation_id)
        match step:
            case Follow():
                if part is None:
                    return PartResult(PartOutcome.NOT_FOUND), []
                if part.settled:
                    return PartResult(PartOutcome.SETTLED, part, part.state), []
                if part.state is step.state:
                    # Of two extensions, the one decided later wins, whatever order they arrive
                    # in: taken (and its number kept) even when it brings the expiry the part
                    # has, so an older one arriving after it changes nothing.
                    if step.state is PartState.HELD and step.version > part.followed:
                        return PartResult(PartOutcome.CHANGED), [
                            HoldExtended(reservation_id, step.expires_at, step.at, step.version, step.by)
                        ]
                    return PartResult(PartOutcome.REPLAYED, part, part.state), []
                if _RANK[step.state] <= _RANK[part.state]:  # a later step came first
                    return PartResult(PartOutcome.REPLAYED, part, part.state), []
                changed = PartChanged(reservation_id, step.state, step.at, step.by)
                return PartResult(PartOutcome.CHANGED), [changed]
            case Withdraw():
                if part is not None:
                    if part.attempt == step.attempt and part.state is PartState.HELD:
                        return PartResult(PartOutcome.CHANGED, part), [HoldAborted(reservation_id, step.by)]
                    return PartResult(PartOutcome.REPLAYED, part, part.state), []
                if step.attempt in self.fences.get(reservation_id, ()):
                    return PartResult(PartOutcome.REPLAYED), []
                return PartResult(PartOutcome.CHANGED), [HoldFenced(reservation_id, step.attempt, step.until)]
            case Close():
                return self._close_lines(
                    CloseLines(
                        self.number,
                        reservation_id,
                        step.operation_id,
                        step.kind,
                        step.lines,
                        step.at,
                        by=step.by,
                    )
                )
        raise TypeError(f"unknown step {step!r}")

    def expire_due(self, now: float, pending_seconds: float = PENDING_SECONDS) -> list[Event]:
        """The home's timer: expire the HELD reservations whose time has come (as of their
        expiry, so every reader agrees), abort the attempts PENDING for longer than
        `pending_seconds`, and drop the fences that have done their work. Applies and
        returns the events; the decisions' intents carry the change to the parts."""
        events: list[Event] = []
        deferred = []
        while self._expiring and self._expiring[0][0] <= now:
            _, expires_at, reservation_id = heapq.heappop(self._expiring)
            claim = self.claims.get(reservation_id)
            if claim is None or claim.decision is not Decision.HELD or claim.expires_at != expires_at:
                continue
            if any(not intent.follows_only for intent in claim.intents):
                # Right after the lines' change is carried: the decision is as of expires_at
                # all the same, and readers see it EXPIRED meanwhile (Claim.decision_at).
                deferred.append((now + EXPIRY_RETRY, expires_at, reservation_id))
                continue
            follow = Follow(PartState.EXPIRED, expires_at, expires_at, claim.decisions + 1, EXPIRY_BY)
            intent = Intent(f"expire#{follow.version}", tuple((p, follow) for p in claim.partitions))
            event = ReservationDecided(
                reservation_id, Decision.EXPIRED, expires_at, expires_at, intent, EXPIRY_BY
            )
            self.apply(event)
            events.append(event)
        for entry in deferred:
            heapq.heappush(self._expiring, entry)
        while self._pending and self._pending[0][0] + pending_seconds <= now:
            created_at, reservation_id = heapq.heappop(self._pending)
            claim = self.claims.get(reservation_id)
            if claim is None or claim.decision is not Decision.PENDING or claim.created_at != created_at:
                continue
            aborted = self._aborted(claim, now, by=EXPIRY_BY)
            self.apply(aborted)
            events.append(aborted)
        while self._fenced and self._fenced[0][0] <= now:
            _, reservation_id, attempt = heapq.heappop(self._fenced)
            fences = self.fences.get(reservation_id)
            if fences is not None and fences.get(attempt, now + 1) <= now:
                del fences[attempt]
                if not fences:
                    del self.fences[reservation_id]
        return events

    # --- state changes (also used by recovery) ---

    def apply(self, event: Event) -> None:
        match event:
            case LevelsSet():
                self._set_levels(event.levels)
            case StockSet():
                self._set_level(
                    event.sku, event.node_id, event.on_hand, event.as_of, event.damaged, event.quality_hold
                )
            case StockAdjusted():
                position = self.position(event.sku, event.node_id)
                position.on_hand += event.delta
                if event.state is StockState.DAMAGED:
                    position.damaged += event.delta
                elif event.state is StockState.QUALITY_HOLD:
                    position.quality_hold += event.delta
                if event.supply_id:
                    self._receive(event.sku, event.node_id, event.supply_id, event.delta)
                self.adjustments[event.adjustment_id] = event
                self._touch(event.sku, event.node_id)
            case SupplyExpected():
                self._set_supply(event.supply_id, event.sku, event.node_id, event.expected_at, event.quantity)
            case HoldPlaced():
                part = Part(
                    event.reservation_id,
                    event.fingerprint,
                    event.lines,
                    PartState.HELD,
                    event.created_at,
                    event.expires_at,
                    channel=event.channel,
                    customer=event.customer,
                    history=(("held", event.created_at, event.by),),
                    capacity=event.capacity,
                    attempt=event.attempt,
                )
                self._add_part(part)
            case PartChanged():
                part = self.parts[event.reservation_id]
                self._count(part, -1)
                changed = replace(
                    part,
                    state=event.state,
                    changed_at=event.at,
                    history=(*part.history, (event.state.name.lower(), event.at, event.by)),
                )
                self.parts[part.reservation_id] = changed
                self._count(changed, +1)
                self._count_capacity(part, -1)
                self._count_capacity(changed, +1)
            case HoldExtended():
                part = self.parts[event.reservation_id]
                self.parts[part.reservation_id] = replace(
                    part,
                    expires_at=event.expires_at,
                    history=(*part.history, ("extended", event.at, event.by)),
                    followed=max(part.followed, event.version),
                )
            case LinesClosed():
                self._apply_closed(event)
            case UnitsReturned():
                part = self.parts[event.reservation_id]
                sku = part.lines[event.index].sku
                position = self.position(sku, event.node_id)
                position.on_hand += event.units
                if not event.sellable:
                    position.damaged += event.units
                returned = list(part.returned or (0,) * len(part.lines))
                returned[event.index] += event.units
                self.parts[part.reservation_id] = replace(
                    part,
                    returned=tuple(returned),
                    operations=part.operations | {_return_key(event)},
                    history=(*part.history, ("returned", event.at, event.by)),
                )
                self._touch(sku, event.node_id)
            case LineMoved():
                self._apply_moved(event)
            case HoldAborted():
                part = self.parts.pop(event.reservation_id)
                self._count(part, -1)
                self._count_capacity(part, -1)
            case ClaimRecorded():
                claim = self.claims[event.reservation_id] = _claim_of(event)
                if claim.decision is Decision.PENDING:
                    heapq.heappush(self._pending, (claim.created_at, claim.reservation_id))
            case ClaimDropped():
                del self.claims[event.reservation_id]
            case ReservationDecided():
                self._apply_decided(event)
            case IntentCarried():
                claim = self.claims[event.reservation_id]
                intents = []
                for intent in claim.intents:
                    left = intent.without(event.partitions) if intent.operation == event.operation else intent
                    if left is not None:
                        intents.append(left)
                self.claims[claim.reservation_id] = replace(claim, intents=tuple(intents))
            case HoldFenced():
                self.fences.setdefault(event.reservation_id, {})[event.attempt] = event.until
                heapq.heappush(self._fenced, (event.until, event.reservation_id, event.attempt))
            case _:
                raise TypeError(f"unknown event {event!r}")

    def _apply_decided(self, event: ReservationDecided) -> None:
        claim = self.claims[event.reservation_id]
        intents = claim.intents
        if event.intent is not None:
            if event.intent.follows_only:  # its steps take every part at least as far
                intents = tuple(intent for intent in intents if not intent.follows_only)
            intents = (*intents, event.intent)
        history = claim.history
        if event.intent is not None and not event.intent.follows_only:
            pass  # lines closed: the parts' own entries tell it
        elif event.decision is Decision.HELD and claim.decision is Decision.PENDING:
            history = (*history, ("held", claim.created_at, event.by))  # as the parts have it
        elif event.decision is not claim.decision and event.decision is not Decision.ABORTED:
            history = (*history, (event.decision.name.lower(), event.at, event.by))
        elif event.decision is Decision.HELD and event.expires_at != claim.expires_at:
            history = (*history, ("extended", event.at, event.by))
        self.claims[claim.reservation_id] = Claim(  # (built, not replace()d: this runs for every Reserve)
            claim.reservation_id,
            claim.fingerprint,
            claim.partitions,
            claim.created_at,
            claim.sourcing,
            claim.destination,
            claim.attempt,
            event.decision,
            event.expires_at,
            event.at,
            intents,
            history,
            claim.decisions + 1,
        )
        if event.decision is Decision.HELD:
            heapq.heappush(self._expiring, (event.expires_at, event.expires_at, claim.reservation_id))

    def _set_levels(self, levels: LevelColumns) -> None:
        """`_set_level` for each; a SKU new to the partition with plain counts, each node
        once, goes into `loaded` in one go."""
        node_ids = levels.node_id
        for sku, start, end in levels.sku_runs():
            nodes = node_ids[start:end]
            if (
                sku not in self.positions
                and not levels.unsellable_in(start, end)
                and self.loaded.put_new(sku, nodes, levels.on_hand[start:end], levels.as_of[start:end])
            ):
                touched = self.touched.get(sku)
                if touched is None:
                    self.touched[sku] = set(nodes)
                else:
                    touched.update(nodes)
                continue
            for i in range(start, end):
                self._set_level(
                    sku,
                    node_ids[i],
                    levels.on_hand[i],
                    levels.as_of[i],
                    levels.damaged[i],
                    levels.quality_hold[i],
                )

    def _set_level(
        self, sku: str, node_id: str, on_hand: int, as_of: float, damaged: int, quality_hold: int
    ) -> None:
        position = self.positions.get(sku, {}).get(node_id)
        if position is None and not damaged and not quality_hold:
            self.loaded.put(sku, node_id, on_hand, as_of)
        else:
            position = position or self.position(sku, node_id)
            position.on_hand, position.as_of = on_hand, as_of
            position.damaged, position.quality_hold = damaged, quality_hold
        self._touch(sku, node_id)

    def _touch(self, sku: str, node_id: str) -> None:
        nodes = self.touched.get(sku)
        if nodes is None:
            self.touched[sku] = {node_id}
        else:
            nodes.add(node_id)

    def _apply_closed(self, event: LinesClosed) -> None:
        part = self.parts[event.reservation_id]
        self._count(part, -1)
        count = len(part.lines)
        fulfilled = list(part.fulfilled or (0,) * count)
        cancelled = list(part.cancelled or (0,) * count)
        for index, units in event.units:
            line = part.lines[index]
            if event.kind == "fulfilled":
                fulfilled[index] += units
                self.position(line.sku, line.node_id).on_hand -= units  # it left the building
            else:
                cancelled[index] += units
        closed = replace(
            part,
            fulfilled=tuple(fulfilled),
            cancelled=tuple(cancelled),
            operations=part.operations | {_closed_key(event)},
            history=(*part.history, (event.kind, event.at, event.by)),
        )
        if all(closed.open_units(i) == 0 for i in range(count)):
            final = PartState.FULFILLED if any(fulfilled) else PartState.RELEASED
            closed = replace(closed, state=final, changed_at=event.at)
        self.parts[part.reservation_id] = closed
        self._count(closed, +1)
        self._count_capacity(part, -1)
        self._count_capacity(closed, +1)
        for index, _ in event.units:
            self._touch(part.lines[index].sku, part.lines[index].node_id)

    def _apply_moved(self, event: LineMoved) -> None:
        """The line's open units go to a new line at the new node; closed units stay where
        they were (a line with nothing closed simply changes node)."""
        part = self.parts[event.reservation_id]
        self._count(part, -1)
        old = part.lines[event.index]
        units = part.open_units(event.index)
        closed = old.quantity - units
        lines = list(part.lines)
        moved = Line(old.sku, event.to_node, units)
        if closed:
            lines[event.index] = Line(old.sku, old.node_id, closed)
            lines.append(moved)
            grow: tuple[int, ...] = (0,)
        else:
            lines[event.index] = moved
            grow = ()

        def widened(counts: tuple[int, ...]) -> tuple[int, ...]:
            return (*counts, *grow) if counts else counts

        changed = replace(
            part,
            lines=tuple(lines),
            fulfilled=widened(part.fulfilled),
            cancelled=widened(part.cancelled),
            returned=widened(part.returned),
            operations=part.operations
            | {operation_key(event.operation_id, "moved", f"{old.sku}|{old.node_id}|{event.to_node}")},
            history=(*part.history, ("moved", event.at, event.by)),
        )
        self.parts[part.reservation_id] = changed
        self._count(changed, +1)
        self._touch(old.sku, old.node_id)

    def _count_capacity(self, part: Part, sign: int) -> None:
        if not part.capacity or not part.state.uses_capacity:
            return
        for key in part.capacity:
            used = self.capacity_used.get(key, 0) + sign
            if used:
                self.capacity_used[key] = used
            else:
                self.capacity_used.pop(key, None)

    def _set_supply(self, supply_id: str, sku: str, node_id: str, expected_at: float, quantity: int) -> None:
        position = self.position(sku, node_id)
        inbound = position.inbound = position.inbound or {}
        if quantity > 0:
            inbound[supply_id] = (expected_at, quantity)
        else:
            inbound.pop(supply_id, None)
        self._touch(sku, node_id)

    def _receive(self, sku: str, node_id: str, supply_id: str, units: int) -> None:
        """Units of an expected supply arrived: they leave the supply as they go on hand."""
        known = self._inbound(sku, node_id).get(supply_id)
        if known is not None:
            expected_at, remaining = known
            self._set_supply(supply_id, sku, node_id, expected_at, max(0, remaining - units))

    def _add_part(self, part: Part) -> None:
        self.parts[part.reservation_id] = part
        self._count(part, +1)
        self._count_capacity(part, +1)

    def _count(self, part: Part, sign: int) -> None:
        """Add (+1) or remove (-1) an open part's units from reserved or committed."""
        if not part.state.is_open:
            return
        for index, line in enumerate(part.lines):
            position = self.position(line.sku, line.node_id)
            units = sign * part.open_units(index)
            if part.state is PartState.HELD:
                position.reserved += units
            else:
                position.committed += units
            if part.channel:
                by_channel = position.by_channel = position.by_channel or {}
                by_channel[part.channel] = by_channel.get(part.channel, 0) + units
                if not by_channel[part.channel]:
                    del by_channel[part.channel]
            if part.customer:
                key = (line.sku, part.customer)
                self.customer_units[key] = self.customer_units.get(key, 0) + units
                if not self.customer_units[key]:
                    del self.customer_units[key]
            self._touch(line.sku, line.node_id)

    # --- snapshots and checks ---

    def restore(
        self,
        levels: LevelColumns,
        parts: Iterable[Part],
        claims: Iterable[Claim],
        adjustments: Iterable[StockAdjusted],
        supplies: Iterable[SupplyExpected] = (),
        fences: Iterable[HoldFenced] = (),
    ) -> None:
        """Load a snapshot; reserved and committed are recomputed from the parts."""
        self._set_levels(levels)
        for part in parts:
            self._add_part(part)
        for claim in claims:
            self.claims[claim.reservation_id] = claim
            if claim.decision is Decision.HELD:
                heapq.heappush(self._expiring, (claim.expires_at, claim.expires_at, claim.reservation_id))
            elif claim.decision is Decision.PENDING:
                heapq.heappush(self._pending, (claim.created_at, claim.reservation_id))
        for fence in fences:
            self.apply(fence)
        for adjustment in adjustments:
            self.adjustments[adjustment.adjustment_id] = adjustment
        for supply in supplies:
            self._set_supply(
                supply.supply_id, supply.sku, supply.node_id, supply.expected_at, supply.quantity
            )

    def check(self) -> list[str]:
        """Conservation check: reserved, committed and the per-channel units equal the open
        parts; no stock count is negative and the unsellable units fit in on_hand."""
        expected: dict[tuple[str, str], list[int]] = {}
        channels: dict[tuple[str, str], dict[str, int]] = {}
        customers: dict[tuple[str, str], int] = {}
        for part in self.parts.values():
            if not part.state.is_open:
                continue
            for index, line in enumerate(part.lines):
                units = part.open_units(index)
                if part.customer:
                    key = (line.sku, part.customer)
                    customers[key] = customers.get(key, 0) + units
                key = (line.sku, line.node_id)
                totals = expected.setdefault(key, [0, 0])
                totals[0 if part.state is PartState.HELD else 1] += units
                if part.channel:
                    used = channels.setdefault(key, {})
                    used[part.channel] = used.get(part.channel, 0) + units
        problems = []
        for sku, nodes in self.positions.items():
            for node_id, position in nodes.items():
                reserved, committed = expected.pop((sku, node_id), [0, 0])
                if (position.reserved, position.committed) != (reserved, committed):
                    problems.append(
                        f"{sku}@{node_id}: reserved/committed {position.reserved}/{position.committed}"
                        f" but open parts hold {reserved}/{committed}"
                    )
                if (position.by_channel or {}) != channels.get((sku, node_id), {}):
                    problems.append(f"{sku}@{node_id}: units by channel {position.by_channel} do not match")
                if min(position.on_hand, position.damaged, position.quality_hold, position.sellable) < 0:
                    problems.append(
                        f"{sku}@{node_id}: on_hand {position.on_hand}, damaged {position.damaged},"
                        f" quality_hold {position.quality_hold}: a count is negative"
                    )
        for sku in self.loaded.skus():
            for node_id, on_hand, _ in self.loaded.nodes(sku):
                if on_hand < 0:
                    problems.append(f"{sku}@{node_id}: on_hand {on_hand}: a count is negative")
        problems.extend(f"{sku}@{node}: parts without a position" for sku, node in expected)
        if customers != self.customer_units:
            problems.append(
                f"units by customer {self.customer_units} do not match the open parts {customers}"
            )
        capacity: dict[tuple[str, int], int] = {}
        for part in self.parts.values():
            if part.state.uses_capacity:
                for node_day in part.capacity:
                    capacity[node_day] = capacity.get(node_day, 0) + 1
        if capacity != self.capacity_used:
            problems.append(f"daily capacity used {self.capacity_used} does not match the parts {capacity}")
        return problems


_by_node = itemgetter(1)  # a row's node_id


def _claim_of(event: ClaimRecorded) -> Claim:
    """The record a ClaimRecorded starts: PENDING for an attempt (HELD for an entry written
    before Reserve attempts were decided, which had no attempt)."""
    return Claim(
        event.reservation_id,
        event.fingerprint,
        event.partitions,
        event.created_at,
        event.sourcing,
        event.destination,
        event.attempt,
        Decision.PENDING if event.attempt else Decision.HELD,
        event.expires_at,
        event.created_at,
    )


def operation_key(operation_id: str, kind: str, content: str) -> str:
    """What a part remembers of an operation: its id, kind and content (tabs cannot be in ids)."""
    return f"{operation_id}\t{kind}\t{content}"


def _closed_key(event: LinesClosed) -> str:
    content = ",".join(sorted(f"{ln.sku}|{ln.node_id}|{ln.quantity}" for ln in event.lines))
    return operation_key(event.operation_id, event.kind, content)


def _return_key(event: UnitsReturned) -> str:
    content = f"{event.index}|{event.node_id}|{event.units}|{event.sellable}"
    return operation_key(event.return_id, "returned", content)


def _seen(part: Part, operation_id: str, key: str) -> PartResult | None:
    """REPLAYED for the same operation again, REFUSED for its id reused with other content."""
    for known in part.operations:
        if known.split("\t", 1)[0] == operation_id:
            if known == key:
                return PartResult(PartOutcome.REPLAYED, part, part.state)
            return PartResult(
                PartOutcome.REFUSED, part, part.state, f"id {operation_id!r} was used with other content"
            )
    return None
