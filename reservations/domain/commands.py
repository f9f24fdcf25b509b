"""Commands a shard applies to a partition, and their results.

Every command names its partition; the gateway computes it from the SKU (stock
commands, hold parts) or from the reservation id (claims).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import ForwardRef, Generic, TypeVar, get_args

from omnistock.availability.atp import ChannelLimit
from omnistock.availability.positions import PositionView
from omnistock.reservations.domain.model import (
    Claim,
    Decision,
    Intent,
    LevelColumns,
    Line,
    Part,
    PartState,
    Step,
    StockState,
)
from omnistock.reservations.domain.sourcing import Destination, LineSourcing

# --- commands ---

R = TypeVar("R", covariant=True)


class Asks(Generic[R]):
    """A command a partition answers with an R: `RESULT_OF` names it, `Partition.handle`
    holds to it, and a caller that sends commands of one kind gets a list of R back."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class SetStock(Asks["StockResult"]):
    """Absolute on_hand counted at `as_of`; an older count never overwrites a newer one."""

    partition: int
    sku: str
    node_id: str
    on_hand: int
    as_of: float
    damaged: int = 0
    quality_hold: int = 0
    by: str = ""
    """Who asked (the caller's label): recorded with the change. So in every command below."""


@dataclass(frozen=True, slots=True)
class LoadLevels(Asks["LoadResult"]):
    """Many absolute counts in one partition (SetStock and LoadStock): each by SetStock's
    rule, answered with counts, not a position per level."""

    partition: int
    levels: LevelColumns
    by: str = ""


@dataclass(frozen=True, slots=True)
class AdjustStock(Asks["AdjustResult"]):
    """Signed change of on_hand, idempotent by adjustment_id."""

    partition: int
    adjustment_id: str
    sku: str
    node_id: str
    delta: int
    reason: str = ""
    state: StockState = StockState.SELLABLE
    """Which units change: sellable ones, or the damaged / quality-hold ones."""
    supply_id: str = ""
    """Receive this expected supply: its remaining units drop by delta."""
    by: str = ""


@dataclass(frozen=True, slots=True)
class ExpectSupply(Asks["SupplyResult"]):
    """Create, change or (with 0 units) clear one line of an expected inbound supply.

    A supply id (a purchase order, a transfer) may have lines for many SKUs and nodes;
    (supply_id, sku, node_id) names one line."""

    partition: int
    supply_id: str
    sku: str
    node_id: str
    quantity: int
    expected_at: float
    by: str = ""


@dataclass(frozen=True, slots=True)
class PlaceHold(Asks["HoldResult"]):
    """Hold all `lines` (all in this partition) or none."""

    partition: int
    reservation_id: str
    fingerprint: str
    lines: tuple[Line, ...]
    created_at: float
    expires_at: float
    channel: str = ""
    """When set, each line may only take what `limits` lets this channel promise."""
    limits: tuple[ChannelLimit, ...] = ()
    """One per line, resolved by the gateway from the channel's rules."""
    customer: str = ""
    purchase_limits: tuple[tuple[str, int], ...] = ()
    """(sku, most units one customer may hold in open reservations) for the limited SKUs."""
    capacity: tuple[tuple[str, int, int], ...] = ()
    """(node_id, utc day, daily capacity): one order of each node's day, for nodes counted here."""
    attempt: str = ""
    """The Reserve attempt (Claim.attempt); a part is placed only for the attempt that owns the id."""
    home: int = -1
    """The reservation's home partition: a shard that owns it checks the attempt there first."""
    by: str = ""


@dataclass(frozen=True, slots=True)
class CloseLines(Asks["PartResult"]):
    """Ship (kind "fulfilled": units leave on_hand) or cancel (kind "cancelled": units
    return) part of some lines; idempotent by operation_id."""

    partition: int
    reservation_id: str
    operation_id: str
    kind: str
    lines: tuple[Line, ...]
    at: float
    check_only: bool = False
    """Decide but change nothing (CHANGED then means it would change): lets an operation
    over several partitions be checked against every part before any part changes."""
    by: str = ""


@dataclass(frozen=True, slots=True)
class ReturnUnits(Asks["PartResult"]):
    """Bring back fulfilled units of one line at `node_id` (sellable: on hand; not: damaged)."""

    partition: int
    reservation_id: str
    return_id: str
    sku: str
    line_node_id: str
    """The node the line was reserved (and fulfilled) at."""
    node_id: str
    """Where the units come back."""
    units: int
    sellable: bool
    at: float
    by: str = ""


@dataclass(frozen=True, slots=True)
class MoveLine(Asks["PartResult"]):
    """Move the open units of a line to another node in one step: held there first,
    then freed here; refused (and nothing changes) when the new node cannot take them."""

    partition: int
    reservation_id: str
    operation_id: str
    sku: str
    from_node: str
    to_node: str
    at: float
    limit: ChannelLimit | None = None
    """The reservation's channel's rules at the new node (None: no channel)."""
    by: str = ""


@dataclass(frozen=True, slots=True)
class ReadCapacity(Asks["CapacityResult"]):
    """Orders each node has taken on `day`, for nodes counted in this partition."""

    partition: int
    day: int
    node_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CapacityResult:
    used: tuple[tuple[str, int], ...]
    """(node_id, orders taken that day)."""


@dataclass(frozen=True, slots=True)
class GetPart(Asks["PartResult"]):
    partition: int
    reservation_id: str


@dataclass(frozen=True, slots=True)
class RecordClaim(Asks["ClaimResult"]):
    """Take a reservation id in its home partition (unique across the network) for one
    Reserve attempt: the reservation is PENDING until DecideHold."""

    partition: int
    reservation_id: str
    fingerprint: str
    partitions: tuple[int, ...]
    created_at: float
    sourcing: tuple[LineSourcing, ...] = ()
    destination: Destination | None = None
    attempt: str = ""
    expires_at: float = 0.0


@dataclass(frozen=True, slots=True)
class DecideHold(Asks["DecisionResult"]):
    """Decide a PENDING reservation: HELD when every part of the attempt was placed, else
    ABORTED (its parts withdrawn). `placed` None: look at the parts, which must all be in
    partitions of the shard that owns the home (a Reserve made in one call)."""

    partition: int
    reservation_id: str
    attempt: str
    placed: bool | None = None
    unplaced: tuple[int, ...] = ()
    """Partitions known to hold no part of the attempt (it was refused there): they need no
    Withdraw step, nor a fence."""
    by: str = ""


@dataclass(frozen=True, slots=True)
class ConfirmReservation(Asks["DecisionResult"]):
    """HELD -> CONFIRMED, decided at the home on its clock."""

    partition: int
    reservation_id: str
    by: str = ""


@dataclass(frozen=True, slots=True)
class ReleaseReservation(Asks["DecisionResult"]):
    """HELD or CONFIRMED -> RELEASED."""

    partition: int
    reservation_id: str
    by: str = ""


@dataclass(frozen=True, slots=True)
class ExtendReservation(Asks["DecisionResult"]):
    """A HELD reservation now expires at `expires_at`."""

    partition: int
    reservation_id: str
    expires_at: float
    by: str = ""


@dataclass(frozen=True, slots=True)
class DecideClose(Asks["DecisionResult"]):
    """Ship or cancel units of lines in several parts as one decision: allowed while the
    reservation is in one of `allowed`; `ends` is its decision once every step is taken,
    when the operation closes its last open units (None: it stays as it is)."""

    partition: int
    reservation_id: str
    operation_id: str
    steps: tuple[tuple[int, Step], ...]
    allowed: tuple[Decision, ...]
    ends: Decision | None = None
    by: str = ""


@dataclass(frozen=True, slots=True)
class CarryStep(Asks["PartResult"]):
    """A part takes one step of its reservation's decision (see model.Intent)."""

    partition: int
    reservation_id: str
    step: Step


@dataclass(frozen=True, slots=True)
class MarkCarried(Asks["DecisionResult"]):
    """The home learns that the parts in `partitions` took their steps of `operation`."""

    partition: int
    reservation_id: str
    operation: str
    partitions: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class GetClaim(Asks["ClaimResult"]):
    partition: int
    reservation_id: str


@dataclass(frozen=True, slots=True)
class ReadPositions(Asks["PositionsResult"]):
    """Every node's position of each SKU."""

    partition: int
    skus: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ReserveTogether(Asks["ReserveTogetherResult"]):
    """A whole Reserve: the attempt's record at its home (`partition`), a part in each
    partition of its lines (and of the daily capacities it takes), then the home's decision.
    `steps` are the commands of those three steps; the coordinator sends them one by one
    across shards, or this command whole to the one shard that journals all its partitions
    in one write, which takes the steps in a row and answers in one word when the hold was
    placed as asked: the caller knows the rest."""

    partition: int
    reservation_id: str
    fingerprint: str
    lines: tuple[Line, ...]
    line_partitions: tuple[int, ...]
    """The partition of each line."""
    created_at: float
    expires_at: float
    attempt: str
    channel: str = ""
    limits: tuple[ChannelLimit, ...] = ()
    """One per line, when a channel limits what it may promise."""
    customer: str = ""
    purchase_limits: tuple[tuple[str, int], ...] = ()
    """(sku, most units one customer may hold) of the limited SKUs among the lines."""
    capacity: tuple[tuple[int, str, int, int], ...] = ()
    """(partition, node_id, utc day, daily capacity) of a sourced order's nodes."""
    sourcing: tuple[LineSourcing, ...] = ()
    destination: Destination | None = None
    by: str = ""

    @property
    def partitions(self) -> tuple[int, ...]:
        """Every partition a part goes to, in order."""
        return tuple(sorted({*self.line_partitions, *(entry[0] for entry in self.capacity)}))

    def record(self, partitions: tuple[int, ...] | None = None) -> RecordClaim:
        return RecordClaim(
            self.partition,
            self.reservation_id,
            self.fingerprint,
            self.partitions if partitions is None else partitions,
            self.created_at,
            self.sourcing,
            self.destination,
            self.attempt,
            self.expires_at,
        )

    def holds(self, partitions: tuple[int, ...] | None = None) -> dict[int, PlaceHold]:
        """The part of each partition, by partition."""
        limited = dict(self.purchase_limits) if self.customer else {}
        holds: dict[int, PlaceHold] = {}
        for number in self.partitions if partitions is None else partitions:
            taken = [i for i, p in enumerate(self.line_partitions) if p == number]
            lines = tuple(self.lines[i] for i in taken)
            holds[number] = PlaceHold(
                number,
                self.reservation_id,
                self.fingerprint,
                lines,
                self.created_at,
                self.expires_at,
                self.channel,
                tuple(self.limits[i] for i in taken) if self.limits else (),
                self.customer,
                tuple(sorted({(line.sku, limited[line.sku]) for line in lines if line.sku in limited})),
                tuple(entry[1:] for entry in self.capacity if entry[0] == number),
                self.attempt,
                self.partition,
                self.by,
            )
        return holds

    def decide(self) -> DecideHold:
        return DecideHold(self.partition, self.reservation_id, self.attempt, by=self.by)

    def steps(self, partitions: tuple[int, ...] | None = None) -> list[RecordClaim | PlaceHold | DecideHold]:
        """`partitions`: this command's, when the caller has them already."""
        partitions = self.partitions if partitions is None else partitions
        return [self.record(partitions), *self.holds(partitions).values(), self.decide()]


Command = (
    SetStock
    | LoadLevels
    | AdjustStock
    | ExpectSupply
    | PlaceHold
    | DecideHold
    | ConfirmReservation
    | ReleaseReservation
    | ExtendReservation
    | DecideClose
    | CarryStep
    | MarkCarried
    | CloseLines
    | ReturnUnits
    | MoveLine
    | GetPart
    | RecordClaim
    | GetClaim
    | ReadPositions
    | ReadCapacity
)

BatchCommand = Command | ReserveTogether
"""What a batch to a shard carries: partition commands, and whole Reserves it takes in a row."""

# --- results ---


@dataclass(frozen=True, slots=True)
class StockResult:
    applied: bool
    """False when a newer count was already applied (the level was stale)."""
    position: PositionView


@dataclass(frozen=True, slots=True)
class LoadResult:
    applied: int
    """Levels taken (including those equal to what was there)."""
    stale: int
    """Levels older than the count already there, left out."""


class AdjustOutcome(enum.Enum):
    APPLIED = "applied"
    REPLAYED = "replayed"
    REFUSED_NEGATIVE = "refused_negative"
    CONFLICT = "conflict"
    UNKNOWN_SUPPLY = "unknown_supply"
    """A receipt names a supply that is not expected at this position (or is not a receipt)."""


@dataclass(frozen=True, slots=True)
class AdjustResult:
    outcome: AdjustOutcome
    position: PositionView


@dataclass(frozen=True, slots=True)
class SupplyResult:
    position: PositionView


@dataclass(frozen=True, slots=True)
class ShortLine:
    sku: str
    node_id: str
    requested: int
    available: int


class HoldOutcome(enum.Enum):
    PLACED = "placed"
    REPLAYED = "replayed"
    CONFLICT = "conflict"
    SHORT = "short"
    INVALID = "invalid"
    """A line with a quantity below 1 (the gateway refuses these before they get here)."""
    OVER_LIMIT = "over_limit"
    """The customer would hold more of a SKU than its purchase limit allows."""
    FULL = "full"
    """A node has taken as many orders today as its daily capacity allows."""
    FENCED = "fenced"
    """The attempt does not own the reservation id (any more): nothing was placed."""


@dataclass(frozen=True, slots=True)
class OverLimit:
    sku: str
    limit: int
    held: int
    """Units of the SKU the customer already has in open reservations."""
    requested: int


@dataclass(frozen=True, slots=True)
class HoldResult:
    outcome: HoldOutcome
    part: Part | None = None
    short: tuple[ShortLine, ...] = ()
    over_limit: tuple[OverLimit, ...] = ()
    full: tuple[str, ...] = ()
    """Nodes whose daily capacity is used up."""


class PartOutcome(enum.Enum):
    CHANGED = "changed"
    REPLAYED = "replayed"
    REFUSED = "refused"
    NOT_FOUND = "not_found"
    FOUND = "found"
    SETTLED = "settled"
    """Every line of the part is already closed: it takes no part in the change."""


@dataclass(frozen=True, slots=True)
class PartResult:
    outcome: PartOutcome
    part: Part | None = None
    state: PartState | None = None
    """The part's state as of the command's time (a hold past expiry reads EXPIRED)."""
    reason: str = ""
    """Why a refused change was refused, when the state alone does not say."""


class ClaimOutcome(enum.Enum):
    RECORDED = "recorded"
    EXISTS = "exists"
    CONFLICT = "conflict"
    FOUND = "found"
    NOT_FOUND = "not_found"
    BUSY = "busy"
    """The id's earlier attempt was aborted and its parts are still being withdrawn."""


@dataclass(frozen=True, slots=True)
class ClaimResult:
    outcome: ClaimOutcome
    claim: Claim | None = None
    decision: Decision | None = None
    """The claim's decision as of the call, on the home's clock (Claim.decision_at)."""


class DecisionOutcome(enum.Enum):
    DECIDED = "decided"
    REPLAYED = "replayed"
    """Already in the state asked for: nothing changed."""
    REFUSED = "refused"
    """The reservation's state does not allow it (`decision` says which it is in)."""
    NOT_FOUND = "not_found"
    """No such reservation (or one not yet decided, or aborted: none a client was told of)."""
    BUSY = "busy"
    """An earlier decision is still being carried to the parts (`carry`): carry it, then ask again."""


@dataclass(frozen=True, slots=True)
class DecisionResult:
    outcome: DecisionOutcome
    claim: Claim | None = None
    decision: Decision | None = None
    """The reservation's decision after the call, as of the call."""
    carry: Intent | None = None
    """Steps the caller must still carry to parts in other shards (then MarkCarried)."""
    carried: tuple[tuple[int, PartResult], ...] = ()
    """What the parts in the home's shard answered to their steps, taken in the same call."""


@dataclass(frozen=True, slots=True)
class ReserveTogetherResult:
    """`held`: the hold was placed as asked, new (its view follows from the command alone);
    otherwise `steps` holds what each of ReserveTogether.steps answered, for the coordinator
    to make out (a replay, a refusal, a conflict)."""

    held: bool
    steps: tuple[ClaimResult | HoldResult | DecisionResult, ...] = ()


@dataclass(frozen=True, slots=True)
class PositionsResult:
    positions: tuple[PositionView, ...]


Result = (
    StockResult
    | LoadResult
    | AdjustResult
    | SupplyResult
    | HoldResult
    | PartResult
    | ClaimResult
    | DecisionResult
    | PositionsResult
    | CapacityResult
    | ReserveTogetherResult
)


def _result_of(command: type) -> type:
    bases = vars(command)["__orig_bases__"]
    (declared,) = get_args(next(b for b in bases if getattr(b, "__origin__", None) is Asks))
    return globals()[declared.__forward_arg__] if isinstance(declared, ForwardRef) else declared


RESULT_OF: dict[type, type] = {
    command: _result_of(command)
    for command in Asks.__subclasses__()
    if globals().get(command.__name__) is command  # not the class dataclass(slots=True) replaced
}
"""Each command's result type, as it declares it (Asks[...])."""
