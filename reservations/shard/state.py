"""A shard's partitions and how it applies a batch of commands (pure)."""

from __future__ import annotations

import heapq
import math
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace

from omnistock.availability.positions import LoadedBlock, PositionRow, PositionView, loaded_rows
from omnistock.reservations.domain.commands import (
    BatchCommand,
    CarryStep,
    ClaimOutcome,
    ClaimResult,
    Command,
    DecideHold,
    DecisionOutcome,
    DecisionResult,
    HoldOutcome,
    HoldResult,
    MarkCarried,
    PartResult,
    PlaceHold,
    ReserveTogether,
    ReserveTogetherResult,
    Result,
)
from omnistock.reservations.domain.model import (
    Decision,
    Event,
    Intent,
    PartChanged,
    PartState,
    ReservationDecided,
    position_row,
)
from omnistock.reservations.domain.partition import PENDING_SECONDS, Partition

HAND_OUT_EVERY = 0.05
"""How often, at most, the intents handed to gateways are looked over for a lease run out:
a batch does not walk them all every time."""
CARRY_LEASE = 2.0
"""Seconds a gateway has to carry an intent it was handed (or decided itself) before the
shard hands it to the next gateway that calls: one that died midway leaves nothing undone."""


@dataclass(frozen=True, slots=True)
class WrongShard:
    """The command's partition is not owned by this shard (routing out of date)."""

    partition: int


@dataclass(frozen=True, slots=True)
class Handoff:
    """Steps of a decision that parts in other shards still have to take: the gateway that
    gets this carries them (CarryStep), then tells the home (MarkCarried)."""

    home: int
    reservation_id: str
    intent: Intent


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    results: list[Result | WrongShard]
    events: dict[int, list[Event]]
    """Events per partition, to be journaled before anyone sees the results."""
    expired: int
    """Holds expired while applying this batch."""
    handoffs: list[Handoff] = field(default_factory=list)
    """Decisions of this shard's homes (expiries, timeouts, recovered ones, ones whose
    gateway went quiet) for the caller to carry to other shards."""


def count_expired(events: dict[int, list[Event]]) -> int:
    return sum(
        1
        for partition_events in events.values()
        for event in partition_events
        if isinstance(event, PartChanged) and event.state is PartState.EXPIRED
    )


@dataclass(frozen=True, slots=True)
class Changes:
    """Positions changed after a version, for the gateway's network view."""

    epoch: str
    """Identity of this incarnation of the shard; a new one means "resync from zero"."""
    version: int
    rows: list[PositionRow]
    loaded: list[LoadedBlock] = field(default_factory=list)
    """SKUs whose loaded counts all changed (a load, a resync): their loaded positions as one
    block each; their other positions are in `rows`."""

    @property
    def positions(self) -> list[PositionView]:
        """Every changed position (rows, then blocks), one PositionView each."""
        views = [PositionView._make(row) for row in self.rows]
        for block in self.loaded:
            views.extend(map(PositionView._make, loaded_rows(block)))
        return views


class SkuChanges:
    """When a SKU's positions last changed in the feed: all of them at `all_since`, and the
    nodes changed one by one after that (holds, adjustments) with their versions."""

    __slots__ = ("all_since", "nodes", "partition", "version")

    def __init__(self, version: int, partition: int, all_since: int = 0) -> None:
        self.version = version
        self.partition = partition
        self.all_since = all_since
        self.nodes: dict[str, int] | None = None

    def note(self, version: int, nodes: set[str], node_count: int) -> None:
        self.version = version
        if len(nodes) >= node_count:  # a load of the whole SKU: what came before is covered
            self.all_since, self.nodes = version, None
            return
        if self.nodes is None:
            self.nodes = {}
        for node_id in nodes:
            self.nodes[node_id] = version

    def nodes_after(self, since: int) -> list[str]:
        return sorted(n for n, version in (self.nodes or {}).items() if version > since)


class ShardState:
    """The partitions one shard owns, and a feed of the positions that changed."""

    def __init__(
        self,
        partitions: Iterable[Partition],
        epoch: str = "",
        pending_seconds: float = PENDING_SECONDS,
        carry_lease: float = CARRY_LEASE,
        write_unit: Callable[[int], int] = lambda partition: 0,
    ) -> None:
        self.partitions = {partition.number: partition for partition in partitions}
        self.pending_seconds = pending_seconds
        self.carry_lease = carry_lease
        self.write_unit = write_unit
        """Partitions of one write unit are journaled atomically together (one Redis: all of
        them; Redis Cluster: a journal group). A decision's steps are taken at once only in
        its home's unit: a crash can never keep a step and lose its decision, or the reverse."""
        self.epoch = epoch
        self.version = 1
        # sku -> SkuChanges, oldest change first. Kept by SKU, not by position, so a loaded
        # catalog of millions costs one entry per SKU.
        self._changed: OrderedDict[str, SkuChanges] = OrderedDict()
        for number, partition in self.partitions.items():
            partition.touched.clear()
            for sku in partition.skus():
                self._changed[sku] = SkuChanges(self.version, number, self.version)
        # When each partition next has something due (Partition.next_due): (due, number),
        # earliest first. A batch then looks at the partitions with something due, not at
        # every partition. An entry may be early (its reservation was confirmed or extended:
        # expiring finds nothing and schedules the next); none is ever late, since a
        # deadline only comes with a command of apply_batch, which schedules its partition.
        self._agenda: list[tuple[float, int]] = []
        self._scheduled: dict[int, float] = {}
        for number in self.partitions:
            self._schedule(number)
        # (home, reservation id, operation) of every intent whose steps are not all taken ->
        # when it was last handed to a gateway (0: due now). Recovered ones are due now: a
        # restarted shard finishes what its homes decided.
        self._open: dict[tuple[int, str, str], float] = {}
        self._next_hand_out = 0.0
        """Before then, no intent can be due unless new ones came (which set it to 0)."""
        for number, partition in self.partitions.items():
            for claim in partition.claims.values():
                for intent in claim.intents:
                    self._open[(number, claim.reservation_id, intent.operation)] = 0.0

    def next_due(self) -> float | None:
        """When the timer next has something to decide (see expire_due)."""
        return self._agenda[0][0] if self._agenda else None

    def _schedule(self, number: int) -> None:
        due = self.partitions[number].next_due(self.pending_seconds)
        if due is not None and due < self._scheduled.get(number, math.inf):
            self._scheduled[number] = due
            heapq.heappush(self._agenda, (due, number))

    def _note_changes(self, numbers: Iterable[int] | None = None) -> None:
        """Put what the partitions touched on the feed: those numbered, or all of them."""
        if numbers is None:
            touched = [(n, p) for n, p in self.partitions.items() if p.touched]
        else:
            touched = [(n, p) for n in numbers if (p := self.partitions[n]).touched]
        if not touched:
            return
        self.version += 1
        version, changed = self.version, self._changed
        for number, partition in touched:
            for sku, nodes in partition.touched.items():
                entry = changed.pop(sku, None) or SkuChanges(version, number)
                entry.note(version, nodes, partition.node_count(sku))
                changed[sku] = entry
            partition.touched = {}

    def object_rows(self) -> Iterator[PositionRow]:
        """Rows of the positions that are more than a loaded count: the only ones that can
        hold units or be sold out (a loaded count with units on hand has them to sell)."""
        for partition in self.partitions.values():
            for sku, nodes in partition.positions.items():
                for node_id, position in nodes.items():
                    yield position_row(sku, node_id, position)

    def changes_since(self, epoch: str, version: int) -> Changes:
        """Every position changed after `version` (all of them for another epoch)."""
        self._note_changes()
        since = version if epoch == self.epoch else 0
        if since == self.version:
            return Changes(self.epoch, self.version, [])
        rows: list[PositionRow] = []
        loaded: list[LoadedBlock] = []
        for sku, entry in reversed(self._changed.items()):
            if entry.version <= since:
                break
            partition = self.partitions[entry.partition]
            if entry.all_since > since:
                rows.extend(partition.object_rows(sku))
                block = partition.loaded.block(sku)
                if block is not None:
                    loaded.append(block)
            else:
                rows.extend(partition.rows_of(sku, entry.nodes_after(since)))
        return Changes(self.epoch, self.version, rows, loaded)

    def expire_due(self, now: float) -> dict[int, list[Event]]:
        """The homes' timer (Partition.expire_due) for every partition with something due;
        the steps of what it decided are taken at once by this shard's parts, and handed
        out for the others. The events by partition."""
        events: dict[int, list[Event]] = {}
        agenda = self._agenda
        while agenda and agenda[0][0] <= now:
            due, number = heapq.heappop(agenda)
            if self._scheduled.get(number) == due:
                del self._scheduled[number]
            decided = self.partitions[number].expire_due(now, self.pending_seconds)
            if decided:
                events.setdefault(number, []).extend(decided)
                for event in decided:
                    if isinstance(event, ReservationDecided) and event.intent is not None:
                        self._open[(number, event.reservation_id, event.intent.operation)] = 0.0
                        self._next_hand_out = 0.0
                        self._carry_here(number, event.reservation_id, event.intent, now, events)
            self._schedule(number)
        self._note_changes(events)
        return events

    def apply_batch(self, commands: list[BatchCommand], now: float) -> BatchOutcome:
        """Expire what is due, then decide and apply every command in order, then hand out
        what other shards' parts still have to take."""
        events = self.expire_due(now)
        results: list[Result | WrongShard] = []
        # Reservations with a command for a partition not here (it moved): their later
        # commands in this batch are not applied either, so that a decision sent with its
        # parts (a colocated Reserve) is never taken without them.
        moved: set[str] = set()
        for command in commands:
            if isinstance(command, ReserveTogether):
                results.append(self._reserve_together(command, now, events, moved))
                continue
            partition = self.partitions.get(command.partition)
            reservation_id: str | None = getattr(command, "reservation_id", None)
            if partition is None or (moved and reservation_id in moved):
                results.append(WrongShard(command.partition))
                if reservation_id is not None:
                    moved.add(reservation_id)
                continue
            result = self._handle(partition, command, now, events)
            results.append(result)
        handoffs = self._hand_out(now, events) if self._open else []
        self._note_changes(events)
        return BatchOutcome(results, events, count_expired(events), handoffs)

    def _reserve_together(
        self, command: ReserveTogether, now: float, events: dict[int, list[Event]], moved: set[str]
    ) -> ReserveTogetherResult | WrongShard:
        """A whole Reserve's steps in a row, or none of them when a partition is not here or
        is not journaled in the home's write unit (the steps must be written at once: the
        caller then goes on as across shards)."""
        partitions = command.partitions
        unit = self.write_unit(command.partition)
        away = [
            n
            for n in (command.partition, *partitions)
            if n not in self.partitions or self.write_unit(n) != unit
        ]
        if away or command.reservation_id in moved:
            moved.add(command.reservation_id)
            return WrongShard(away[0] if away else command.partition)
        answers = [
            self._handle(self.partitions[step.partition], step, now, events)
            for step in command.steps(partitions)
        ]
        claimed, *placed, decided = answers
        if (
            isinstance(claimed, ClaimResult)
            and claimed.outcome is ClaimOutcome.RECORDED
            and all(isinstance(r, HoldResult) and r.outcome is HoldOutcome.PLACED for r in placed)
            and isinstance(decided, DecisionResult)
            and decided.outcome is DecisionOutcome.DECIDED
            and decided.decision is Decision.HELD
        ):
            return ReserveTogetherResult(True)
        return ReserveTogetherResult(False, tuple(answers))  # type: ignore[arg-type]

    def _handle(
        self, partition: Partition, command: Command, now: float, events: dict[int, list[Event]]
    ) -> Result:
        if isinstance(command, PlaceHold):
            refused = self._unclaimed(command)
            if refused is not None:
                return refused
        elif isinstance(command, DecideHold) and command.placed is None:
            placed, unplaced = self._placed_here(command)
            command = DecideHold(
                command.partition, command.reservation_id, command.attempt, placed, unplaced, command.by
            )
        for _ in range(3):
            result, new_events = partition.handle(command, now)
            if new_events:
                events.setdefault(command.partition, []).extend(new_events)
                self._schedule(command.partition)
            if isinstance(command, MarkCarried):
                self._forget_if_carried(command.partition, command.reservation_id, command.operation)
            if not isinstance(result, DecisionResult) or result.carry is None:
                return result
            # A decision (or one still being carried): this shard's parts take their steps now.
            assert result.claim is not None  # a decision always names its reservation
            home, reservation_id = command.partition, result.claim.reservation_id
            carried, left = self._carry_here(home, reservation_id, result.carry, now, events)
            if result.outcome is DecisionOutcome.BUSY and left is None:
                continue  # the earlier decision is now carried in full: decide this one
            if left is not None:
                self._open[(home, reservation_id, left.operation)] = now  # the caller carries it
            claim = partition.claims.get(reservation_id, result.claim)
            return replace(result, claim=claim, carry=left, carried=tuple(carried))
        return result

    def _carry_here(
        self, home: int, reservation_id: str, intent: Intent, now: float, events: dict[int, list[Event]]
    ) -> tuple[list[tuple[int, PartResult]], Intent | None]:
        """Take the intent's steps for this shard's partitions and tell the home; what is left
        (steps for other shards), or None when every step is taken."""
        carried: list[tuple[int, PartResult]] = []
        unit = self.write_unit(home)
        for number, step in intent.steps:
            partition = self.partitions.get(number)
            if partition is None or self.write_unit(number) != unit:
                continue
            result, new_events = partition.handle(CarryStep(number, reservation_id, step), now)
            if new_events:
                events.setdefault(number, []).extend(new_events)
                self._schedule(number)
            assert isinstance(result, PartResult)
            carried.append((number, result))
        left = intent.without(number for number, _ in carried)
        if carried:
            taken = tuple(number for number, _ in carried)
            _, new_events = self.partitions[home].handle(
                MarkCarried(home, reservation_id, intent.operation, taken), now
            )
            if new_events:
                events.setdefault(home, []).extend(new_events)
        if left is None:
            self._open.pop((home, reservation_id, intent.operation), None)
        return carried, left

    def _forget_if_carried(self, home: int, reservation_id: str, operation: str) -> None:
        """Stop watching an intent its carrier has finished (told by MarkCarried)."""
        claim = self.partitions[home].claims.get(reservation_id)
        if claim is None or all(intent.operation != operation for intent in claim.intents):
            self._open.pop((home, reservation_id, operation), None)

    def _hand_out(self, now: float, events: dict[int, list[Event]]) -> list[Handoff]:
        """Intents due to be carried (never handed out, or handed out `carry_lease` ago)."""
        if now < self._next_hand_out:
            return []
        self._next_hand_out = now + HAND_OUT_EVERY
        handoffs = []
        for key, handed in list(self._open.items()):
            if handed and handed + self.carry_lease > now:
                continue
            home, reservation_id, operation = key
            claim = self.partitions[home].claims.get(reservation_id)
            intent = next((i for i in claim.intents if i.operation == operation), None) if claim else None
            if intent is None:  # carried, or superseded by a later decision
                del self._open[key]
                continue
            # Partitions may have moved to this shard since the decision (a restart with
            # another shard count): take their steps here first.
            _, left = self._carry_here(home, reservation_id, intent, now, events)
            if left is not None:
                self._open[key] = now
                handoffs.append(Handoff(home, reservation_id, left))
        return handoffs

    def _unclaimed(self, command: PlaceHold) -> HoldResult | None:
        """A part is placed only for the attempt that owns the reservation id: where the home
        is in this shard, that is checked here (elsewhere, the gateway asks the home first)."""
        home = self.partitions.get(command.home)
        if home is None or not command.attempt:
            return None
        claim = home.claims.get(command.reservation_id)
        if claim is not None and claim.attempt == command.attempt and claim.decision is Decision.PENDING:
            return None
        if command.reservation_id in self.partitions[command.partition].parts:
            return None  # the partition says REPLAYED or CONFLICT
        return HoldResult(HoldOutcome.FENCED)

    def _placed_here(self, command: DecideHold) -> tuple[bool, tuple[int, ...]]:
        """Whether every part of the attempt is placed (all of them in this shard's
        partitions), and the partitions that hold none of it."""
        claim = self.partitions[command.partition].claims.get(command.reservation_id)
        if claim is None or claim.attempt != command.attempt:
            return False, ()
        unplaced: list[int] = []
        for number in claim.partitions:
            partition = self.partitions.get(number)
            if partition is None:
                return False, tuple(unplaced)  # not all here: the caller should have said
            part = partition.parts.get(command.reservation_id)
            if part is None or part.attempt != command.attempt:
                unplaced.append(number)
        return not unplaced, tuple(unplaced)

    def release(self, number: int) -> Partition | None:
        """Give a partition up (it moves to another shard): its commands are WrongShard from now
        on, and what its homes still had to hand out is the next owner's to hand out."""
        partition = self.partitions.pop(number, None)
        if partition is None:
            return None
        for key in [key for key in self._open if key[0] == number]:
            del self._open[key]
        self._scheduled.pop(number, None)
        self._agenda = [(due, n) for due, n in self._agenda if n != number]
        heapq.heapify(self._agenda)
        for sku in partition.skus():
            entry = self._changed.get(sku)
            if entry is not None and entry.partition == number:
                del self._changed[sku]
        return partition

    def adopt(self, partition: Partition) -> None:
        """Take a partition over (loaded from the journal): every position of it is on the feed
        as changed, its timer is scheduled and its homes' open decisions are handed out."""
        number = partition.number
        self.partitions[number] = partition
        partition.touched.clear()
        self.version += 1
        for sku in partition.skus():
            self._changed.pop(sku, None)
            self._changed[sku] = SkuChanges(self.version, number, self.version)
        self._schedule(number)
        for claim in partition.claims.values():
            for intent in claim.intents:
                self._open[(number, claim.reservation_id, intent.operation)] = 0.0
        self._next_hand_out = 0.0

    def check(self) -> list[str]:
        return [f"partition {n}: {p}" for n, partition in self.partitions.items() for p in partition.check()]
