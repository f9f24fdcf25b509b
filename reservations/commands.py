"""Commands a shard applies to a partition, and their results.

Every command names its partition; the gateway computes it from the SKU (stock
commands, hold parts) or from the reservation id (claims).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from availability.atp import ChannelLimit
from reservations.model import Claim, LevelColumns, Line, Part, PartState, PositionView, StockState
from reservations.sourcing import Destination, LineSourcing

# --- commands ---


@dataclass(frozen=True, slots=True)
class SetStock:
    """Absolute on_hand counted at `as_of`; an older count never overwrites a newer one."""

    partition: int
    sku: str
    node_id: str
    on_hand: int
    as_of: float
    damaged: int = 0
    quality_hold: int = 0


@dataclass(frozen=True, slots=True)
class LoadLevels:
    """Many absolute counts in one partition (SetStock and LoadStock): each by SetStock's
    rule, answered with counts, not a position per level."""

    partition: int
    levels: LevelColumns


@dataclass(frozen=True, slots=True)
class AdjustStock:
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


@dataclass(frozen=True, slots=True)
class ExpectSupply:
    """Create, change or (with 0 units) clear one line of an expected inbound supply.

    A supply id (a purchase order, a transfer) may have lines for many SKUs and nodes;
    (supply_id, sku, node_id) names one line."""

    partition: int
    supply_id: str
    sku: str
    node_id: str
    quantity: int
    expected_at: float


@dataclass(frozen=True, slots=True)
class PlaceHold:
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


@dataclass(frozen=True, slots=True)
class AbortHold:
    """Withdraw a part this request placed, when another part of the Reserve failed."""

    partition: int
    reservation_id: str


@dataclass(frozen=True, slots=True)
class ConfirmPart:
    """HELD -> CONFIRMED, decided on the gateway's clock `at` so every part agrees."""

    partition: int
    reservation_id: str
    at: float


@dataclass(frozen=True, slots=True)
class ReleasePart:
    """HELD or CONFIRMED -> RELEASED, decided at `at`."""

    partition: int
    reservation_id: str
    at: float


@dataclass(frozen=True, slots=True)
class EndCapacityPart:
    """End a part that only counts nodes' daily capacity the way its reservation ended
    line by line: RELEASED gives the capacity back, FULFILLED keeps it used."""

    partition: int
    reservation_id: str
    state: PartState
    at: float


@dataclass(frozen=True, slots=True)
class ExtendPart:
    """Move a HELD part's expiry to `expires_at`, decided at `at` like confirm and release."""

    partition: int
    reservation_id: str
    expires_at: float
    at: float


@dataclass(frozen=True, slots=True)
class CloseLines:
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


@dataclass(frozen=True, slots=True)
class ReturnUnits:
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


@dataclass(frozen=True, slots=True)
class MoveLine:
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


@dataclass(frozen=True, slots=True)
class ReadCapacity:
    """Orders each node has taken on `day`, for nodes counted in this partition."""

    partition: int
    day: int
    node_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CapacityResult:
    used: tuple[tuple[str, int], ...]
    """(node_id, orders taken that day)."""


@dataclass(frozen=True, slots=True)
class GetPart:
    partition: int
    reservation_id: str


@dataclass(frozen=True, slots=True)
class RecordClaim:
    """Take a reservation id in its home partition (unique across the network)."""

    partition: int
    reservation_id: str
    fingerprint: str
    partitions: tuple[int, ...]
    created_at: float
    sourcing: tuple[LineSourcing, ...] = ()
    destination: Destination | None = None


@dataclass(frozen=True, slots=True)
class DropClaim:
    """Give back an id whose Reserve was refused, so a retry may try again."""

    partition: int
    reservation_id: str


@dataclass(frozen=True, slots=True)
class GetClaim:
    partition: int
    reservation_id: str


@dataclass(frozen=True, slots=True)
class ReadPositions:
    """Every node's position of each SKU."""

    partition: int
    skus: tuple[str, ...]


Command = (
    SetStock
    | LoadLevels
    | AdjustStock
    | ExpectSupply
    | PlaceHold
    | AbortHold
    | ConfirmPart
    | ReleasePart
    | EndCapacityPart
    | ExtendPart
    | CloseLines
    | ReturnUnits
    | MoveLine
    | GetPart
    | RecordClaim
    | DropClaim
    | GetClaim
    | ReadPositions
    | ReadCapacity
)

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
    DROPPED = "dropped"


@dataclass(frozen=True, slots=True)
class ClaimResult:
    outcome: ClaimOutcome
    claim: Claim | None = None


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
    | PositionsResult
    | CapacityResult
)
