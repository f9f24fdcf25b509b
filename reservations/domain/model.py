"""Domain objects of a partition: positions, hold parts, claims and the events that change them.

Pure Python: no Ray, gRPC or Redis here. Times are seconds since the epoch on the
server's clock.
"""

from __future__ import annotations

import enum
import hashlib
import math
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import chain, groupby
from typing import Any

from omnistock.availability.positions import PositionRow, PositionView
from omnistock.reservations.domain.sourcing import Destination, LineSourcing

DAY = 86_400.0

HistoryEntry = tuple[str, float, str]
"""(what happened, when, by whom) in a reservation's history; "by" is the caller's label
(`key:web-storefront`, `local`, ...), `expiry` for the shard's timer, "" in entries journaled
before callers were recorded."""


@dataclass(frozen=True, slots=True)
class Line:
    """One line of a hold: `quantity` units of `sku` at `node_id`."""

    sku: str
    node_id: str
    quantity: int


class StockState(enum.Enum):
    """The condition of units on hand; only sellable units can be promised."""

    SELLABLE = "sellable"
    DAMAGED = "damaged"
    QUALITY_HOLD = "quality_hold"


class PartState(enum.IntEnum):
    """Life of a hold part; the values match the journal's PartState enum."""

    HELD = 1
    CONFIRMED = 2
    RELEASED = 3
    EXPIRED = 4
    FULFILLED = 5
    """Every line closed, some units shipped or picked up."""

    @property
    def is_open(self) -> bool:
        return self in (PartState.HELD, PartState.CONFIRMED)

    @property
    def uses_capacity(self) -> bool:
        """A node's daily capacity stays used unless the order was released or expired."""
        return self in (PartState.HELD, PartState.CONFIRMED, PartState.FULFILLED)


def utc_day(at: float) -> int:
    """Days since the epoch (UTC): the day a node's daily capacity is counted for."""
    return int(at // DAY)


@dataclass(slots=True)
class Position:
    """Stock of one SKU at one node. reserved, committed and by_channel are derived from the parts."""

    on_hand: int = 0
    """Every unit physically there, sellable or not."""
    reserved: int = 0
    committed: int = 0
    as_of: float = 0.0
    damaged: int = 0
    """Part of on_hand that is never sellable."""
    quality_hold: int = 0
    """Part of on_hand that is not sellable until released."""
    by_channel: dict[str, int] | None = None
    """Units reserved or committed through each channel (for allocation caps)."""
    inbound: dict[str, tuple[float, int]] | None = None
    """Expected supply by supply id: (expected_at, units still to come)."""

    @property
    def inbound_units(self) -> int:
        return sum(units for _, units in self.inbound.values()) if self.inbound else 0

    @property
    def sellable(self) -> int:
        return self.on_hand - self.damaged - self.quality_hold

    @property
    def available(self) -> int:
        return self.sellable - self.reserved - self.committed

    def channel_used(self, channel: str) -> int:
        return self.by_channel.get(channel, 0) if self.by_channel else 0


def position_row(sku: str, node_id: str, position: Position) -> PositionRow:
    by_channel = tuple(sorted(position.by_channel.items())) if position.by_channel else ()
    inbound = tuple(sorted(position.inbound.values())) if position.inbound else ()
    p = position
    return (
        sku,
        node_id,
        p.on_hand,
        p.reserved,
        p.committed,
        p.as_of,
        p.damaged,
        p.quality_hold,
        by_channel,
        inbound,
    )


def position_view(sku: str, node_id: str, position: Position) -> PositionView:
    return PositionView._make(position_row(sku, node_id, position))


@dataclass(frozen=True, slots=True)
class Part:
    """The lines of one reservation that live in one partition."""

    reservation_id: str
    fingerprint: str
    lines: tuple[Line, ...]
    state: PartState
    created_at: float
    expires_at: float
    changed_at: float = 0.0
    channel: str = ""
    """The channel the hold was made through ("" when none)."""
    customer: str = ""
    """The customer it was made for ("" when none): purchase limits count it."""
    history: tuple[HistoryEntry, ...] = field(default=(), compare=False)
    """(what happened, when, by whom): held, confirmed, released, expired, extended. An
    audit trail, so it is left out of comparisons of parts."""
    fulfilled: tuple[int, ...] = ()
    """Units shipped or picked up, per line (empty: none yet)."""
    cancelled: tuple[int, ...] = ()
    """Units cancelled line by line, per line (empty: none yet)."""
    returned: tuple[int, ...] = ()
    """Units of each line brought back after fulfilment (empty: none)."""
    operations: frozenset[str] = frozenset()
    """Ids of the fulfilments, line cancellations, returns and moves applied (retries are replays)."""
    capacity: tuple[tuple[str, int], ...] = ()
    """(node_id, utc day) of the daily capacity this part uses, for nodes counted in this partition."""
    attempt: str = ""
    """The Reserve attempt that placed it (see Claim.attempt)."""
    followed: int = 0
    """The number of the last decision whose expiry it took (Follow.version)."""

    def open_units(self, index: int) -> int:
        """Units of a line still held or committed."""
        done = (self.fulfilled[index] if self.fulfilled else 0) + (
            self.cancelled[index] if self.cancelled else 0
        )
        return self.lines[index].quantity - done

    def line_index(self, sku: str, node_id: str) -> int | None:
        return next(
            (i for i, line in enumerate(self.lines) if (line.sku, line.node_id) == (sku, node_id)), None
        )

    @property
    def settled(self) -> bool:
        """Every line closed by fulfilment or cancellation: the part ended on its own while
        the reservation's parts in other partitions may still be open, so it takes no part
        in their confirm, release or extend. (A released part keeps its open units.)"""
        return (
            bool(self.lines)
            and self.state in (PartState.RELEASED, PartState.FULFILLED)
            and all(self.open_units(i) == 0 for i in range(len(self.lines)))
        )

    def knows_operation(self, operation_id: str) -> bool:
        """Whether a fulfilment, cancellation, return or move with this id was applied here."""
        prefix = f"{operation_id}\t"
        return any(known.startswith(prefix) for known in self.operations)

    def effective_state(self, at: float) -> PartState:
        """A hold past its expiry counts as expired even before the timer has run."""
        if self.state is PartState.HELD and at >= self.expires_at:
            return PartState.EXPIRED
        return self.state


class Decision(enum.IntEnum):
    """What a reservation's home partition decided for it as a whole; the values match the
    journal's Decision enum. Its parts follow the decision (see Intent)."""

    PENDING = 1
    """Being placed: parts may exist, nothing has been promised yet."""
    HELD = 2
    CONFIRMED = 3
    RELEASED = 4
    EXPIRED = 5
    FULFILLED = 6
    """Every line closed, some units shipped."""
    ABORTED = 7
    """The Reserve was refused or never finished: every part of its attempt is withdrawn."""

    @property
    def part_state(self) -> PartState:
        """The state the parts take (PENDING parts are HELD; ABORTED ones go)."""
        return _PART_STATES[self]

    @property
    def is_open(self) -> bool:
        return self in (Decision.HELD, Decision.CONFIRMED)

    @staticmethod
    def of(state: PartState) -> Decision:
        return Decision[state.name]


_PART_STATES = {
    Decision.PENDING: PartState.HELD,
    Decision.HELD: PartState.HELD,
    Decision.CONFIRMED: PartState.CONFIRMED,
    Decision.RELEASED: PartState.RELEASED,
    Decision.EXPIRED: PartState.EXPIRED,
    Decision.FULFILLED: PartState.FULFILLED,
    Decision.ABORTED: PartState.RELEASED,
}


# --- steps: what a decision asks of each part; carried until every part has taken it ---


@dataclass(frozen=True, slots=True)
class Follow:
    """The part takes its reservation's decided state and expiry. Parts only move forward
    (HELD, then CONFIRMED, then an end), so a step that arrives after a later one changes nothing."""

    state: PartState
    at: float
    expires_at: float
    version: int = 0
    """The number of the decision at its home (Claim.decisions): of two extensions, the
    later decided wins wherever their steps arrive in turn, whatever the clocks said."""
    by: str = ""
    """Who decided it: each part records it, also when recovery carries the step."""


@dataclass(frozen=True, slots=True)
class Withdraw:
    """An aborted attempt's part goes; where it never arrived, the attempt is fenced out
    until `until`, so a PlaceHold of it still on its way is refused."""

    attempt: str
    until: float
    by: str = ""


@dataclass(frozen=True, slots=True)
class Close:
    """Units of some of the part's lines shipped ("fulfilled") or cancelled ("cancelled")."""

    operation_id: str
    kind: str
    lines: tuple[Line, ...]
    at: float
    by: str = ""


Step = Follow | Withdraw | Close


@dataclass(frozen=True, slots=True)
class Intent:
    """A decided change of a reservation and the steps still to carry to its parts, by
    partition. Journaled in the home partition with the decision; removed once every step
    has been taken. Every step is idempotent, so carrying one twice is harmless."""

    operation: str
    """Unique within the reservation (e.g. "confirm@1733580000.25", "close:ship-1")."""
    steps: tuple[tuple[int, Step], ...]

    @property
    def partitions(self) -> tuple[int, ...]:
        return tuple(partition for partition, _ in self.steps)

    @property
    def follows_only(self) -> bool:
        """Only state changes: a later decision's steps cover these."""
        return all(isinstance(step, Follow) for _, step in self.steps)

    def without(self, partitions: Iterable[int]) -> Intent | None:
        """The intent less the steps of `partitions` (None when nothing is left)."""
        done = set(partitions)
        left = tuple((p, step) for p, step in self.steps if p not in done)
        return Intent(self.operation, left) if left else None


@dataclass(frozen=True, slots=True)
class Claim:
    """A reservation's record in its home partition (picked by a hash of its id).

    It makes an id unique across the whole network, says which partitions hold the
    reservation's parts, and holds the one decision about the reservation as a whole:
    every multi-part change is decided here first, journaled with the steps its parts
    must take (intents), and only then carried to the parts.
    """

    reservation_id: str
    fingerprint: str
    partitions: tuple[int, ...]
    created_at: float
    sourcing: tuple[LineSourcing, ...] = ()
    """Why each sourced line went where it went (empty when the lines named their nodes)."""
    destination: Destination | None = None
    """Where a sourced order goes (to source a moved line again)."""
    attempt: str = ""
    """Which Reserve attempt owns the id: its parts carry the same attempt."""
    decision: Decision = Decision.HELD
    expires_at: float = math.inf
    """When a HELD reservation expires (the home's timer decides it)."""
    decided_at: float = 0.0
    """When the decision was taken (created_at while PENDING)."""
    intents: tuple[Intent, ...] = ()
    """Decided changes not yet taken by every part, oldest first."""
    history: tuple[HistoryEntry, ...] = ()
    """(decision, when, by whom) of every decision after PENDING."""
    decisions: int = 0
    """Decisions taken so far: the next one is number decisions + 1 (Follow.version)."""

    def decision_at(self, now: float) -> Decision:
        """The decision as of `now`: a HELD reservation past its expiry reads EXPIRED before
        the timer has run, so every reader and every decision agree at every instant."""
        if self.decision is Decision.HELD and now >= self.expires_at:
            return Decision.EXPIRED
        return self.decision


def line_key(line: Line) -> tuple[str, str]:
    return (line.sku, line.node_id)


def fingerprint(
    lines: Iterable[Line], channel: str = "", customer: str = "", destination: Destination | None = None
) -> str:
    """Content hash of a reservation request (its lines, in any order, its channel, customer
    and, for a sourced order, its destination; lines then name no node)."""
    where = [] if destination is None else [repr(destination)]
    canonical = "\n".join(
        [
            channel,
            customer,
            *where,
            *sorted(f"{line.sku}\t{line.node_id}\t{line.quantity}" for line in lines),
        ]
    )
    return hashlib.blake2b(canonical.encode(), digest_size=16).hexdigest()


# --- events: what happened to a partition; journaled, and replayed on recovery ---


@dataclass(frozen=True, slots=True)
class StockSet:
    """One absolute count (journals written before LevelsSet; replayed as one level)."""

    sku: str
    node_id: str
    on_hand: int
    as_of: float
    damaged: int = 0
    quality_hold: int = 0


Level = tuple[str, str, int, float, int, int]
"""An absolute count: (sku, node_id, on_hand, as_of, damaged, quality_hold)."""


@dataclass(frozen=True, slots=True)
class LevelColumns:
    """Absolute counts in columns, entry i of each being one level: how a load travels to
    a shard, is decided and is journaled. A catalog is millions of levels, and columns cost
    a few bytes a level where a tuple each costs about a hundred; the counts are arrays,
    which are copied and pickled whole. Nothing changes them once built."""

    sku: tuple[str, ...]
    node_id: tuple[str, ...]
    on_hand: array[int]
    """typecode q"""
    as_of: array[float]
    """typecode d"""
    damaged: array[int]
    quality_hold: array[int]

    @classmethod
    def of(cls, levels: Iterable[Level]) -> LevelColumns:
        return cls._typed(*(list(zip(*levels, strict=True)) or [(), (), (), (), (), ()]))

    @classmethod
    def _typed(cls, *columns: Iterable[Any]) -> LevelColumns:
        """Columns of any iterables, in field order, as tuples and arrays."""
        sku, node_id, on_hand, as_of, damaged, quality_hold = columns
        return cls(
            tuple(sku),
            tuple(node_id),
            array("q", on_hand),
            array("d", as_of),
            array("q", damaged),
            array("q", quality_hold),
        )

    @classmethod
    def join(cls, parts: Sequence[LevelColumns]) -> LevelColumns:
        if len(parts) == 1:
            return parts[0]
        on_hand, as_of, damaged, quality_hold = array("q"), array("d"), array("q"), array("q")
        for part in parts:
            on_hand += part.on_hand
            as_of += part.as_of
            damaged += part.damaged
            quality_hold += part.quality_hold
        sku = tuple(chain.from_iterable(part.sku for part in parts))
        node_id = tuple(chain.from_iterable(part.node_id for part in parts))
        return cls(sku, node_id, on_hand, as_of, damaged, quality_hold)

    def __len__(self) -> int:
        return len(self.sku)

    def rows(self) -> Iterator[Level]:
        return zip(
            self.sku, self.node_id, self.on_hand, self.as_of, self.damaged, self.quality_hold, strict=True
        )

    def part(self, start: int, end: int) -> LevelColumns:
        """Levels start to end (not included)."""
        return LevelColumns(
            self.sku[start:end],
            self.node_id[start:end],
            self.on_hand[start:end],
            self.as_of[start:end],
            self.damaged[start:end],
            self.quality_hold[start:end],
        )

    def runs(self, ranges: Sequence[tuple[int, int]]) -> LevelColumns:
        """The levels of these (start, end) ranges, in their order."""
        return LevelColumns.join([self.part(start, end) for start, end in ranges])

    def take(self, indices: Sequence[int]) -> LevelColumns:
        """The levels at these indices, in their order."""
        return LevelColumns._typed(*([column[i] for i in indices] for column in self._columns()))

    def sku_runs(self) -> list[tuple[str, int, int]]:
        """(sku, start, end) of each run of levels of one SKU: a load sends a SKU's nodes
        together, so most work is done once a run instead of once a level."""
        runs: list[tuple[str, int, int]] = []
        start = 0
        for sku, group in groupby(self.sku):
            end = start + len(list(group))
            runs.append((sku, start, end))
            start = end
        return runs

    def unsellable_in(self, start: int, end: int) -> bool:
        """Whether any of the levels start to end counts damaged or quality-held units."""
        return any(self.damaged[start:end]) or any(self.quality_hold[start:end])

    def _columns(self) -> tuple[Sequence[Any], ...]:
        return self.sku, self.node_id, self.on_hand, self.as_of, self.damaged, self.quality_hold


@dataclass(frozen=True, slots=True)
class LevelsSet:
    """Absolute counts set by SetStock or LoadStock: one event for a whole load's levels in
    a partition, as one object per level would cost more than the level."""

    levels: LevelColumns
    by: str = ""
    """Who sent the counts (the caller's label); so with every event below."""


@dataclass(frozen=True, slots=True)
class StockAdjusted:
    adjustment_id: str
    sku: str
    node_id: str
    delta: int
    reason: str
    state: StockState = StockState.SELLABLE
    supply_id: str = ""
    """A receipt of this expected supply: it comes off the supply as it goes on hand."""
    by: str = ""


@dataclass(frozen=True, slots=True)
class SupplyExpected:
    """A line of inbound supply (a purchase order, a transfer) expected at a node; 0 units clears it."""

    supply_id: str
    sku: str
    node_id: str
    quantity: int
    expected_at: float
    by: str = ""


@dataclass(frozen=True, slots=True)
class HoldPlaced:
    reservation_id: str
    fingerprint: str
    lines: tuple[Line, ...]
    created_at: float
    expires_at: float
    channel: str = ""
    customer: str = ""
    capacity: tuple[tuple[str, int], ...] = ()
    attempt: str = ""
    by: str = ""


@dataclass(frozen=True, slots=True)
class PartChanged:
    reservation_id: str
    state: PartState
    at: float
    by: str = ""


@dataclass(frozen=True, slots=True)
class HoldExtended:
    reservation_id: str
    expires_at: float
    at: float = 0.0
    version: int = 0
    """The decision it follows (Follow.version)."""
    by: str = ""


@dataclass(frozen=True, slots=True)
class LinesClosed:
    """Units of some lines shipped (`fulfilled`) or cancelled (`cancelled`) by one operation."""

    reservation_id: str
    operation_id: str
    kind: str
    units: tuple[tuple[int, int], ...]
    """(line index, units)."""
    at: float
    lines: tuple[Line, ...] = ()
    """The same units as lines (sku, node_id, units), for downstream systems."""
    by: str = ""


@dataclass(frozen=True, slots=True)
class UnitsReturned:
    """Fulfilled units of a line brought back to `node_id` (any node: buy online, return in store)."""

    reservation_id: str
    return_id: str
    index: int
    node_id: str
    units: int
    sellable: bool
    at: float
    sku: str = ""
    by: str = ""


@dataclass(frozen=True, slots=True)
class LineMoved:
    """The open units of a line moved to another node (the first could not find them)."""

    reservation_id: str
    operation_id: str
    index: int
    to_node: str
    at: float
    sku: str = ""
    from_node: str = ""
    units: int = 0
    """The units moved (for downstream systems; the partition recomputes them)."""
    by: str = ""


@dataclass(frozen=True, slots=True)
class HoldAborted:
    reservation_id: str
    by: str = ""


@dataclass(frozen=True, slots=True)
class ClaimRecorded:
    """A Reserve attempt took the id: the reservation is PENDING until it is decided (an
    entry without an attempt, from before decisions were journaled, is HELD)."""

    reservation_id: str
    fingerprint: str
    partitions: tuple[int, ...]
    created_at: float
    sourcing: tuple[LineSourcing, ...] = ()
    destination: Destination | None = None
    attempt: str = ""
    expires_at: float = math.inf


@dataclass(frozen=True, slots=True)
class ReservationDecided:
    """The home partition decided the reservation's state (and expiry); `intent` holds the
    steps its parts must take, journaled before any part changes."""

    reservation_id: str
    decision: Decision
    at: float
    expires_at: float
    intent: Intent | None = None
    by: str = ""


@dataclass(frozen=True, slots=True)
class IntentCarried:
    """Every step of the intent for `partitions` was taken by its part."""

    reservation_id: str
    operation: str
    partitions: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class HoldFenced:
    """An aborted attempt never placed a part here: a PlaceHold of it arriving late is refused."""

    reservation_id: str
    attempt: str
    until: float


@dataclass(frozen=True, slots=True)
class ClaimDropped:
    reservation_id: str


Event = (
    StockSet
    | LevelsSet
    | StockAdjusted
    | SupplyExpected
    | HoldPlaced
    | PartChanged
    | HoldExtended
    | LinesClosed
    | UnitsReturned
    | LineMoved
    | HoldAborted
    | ClaimRecorded
    | ClaimDropped
    | ReservationDecided
    | IntentCarried
    | HoldFenced
)
