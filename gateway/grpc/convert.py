"""Proto <-> domain conversion with validation. No *_pb2 type goes past gateway/.

Every check collects all problems of a request before raising, so a caller sees
every bad field at once; nothing is applied when anything is wrong.
"""

from __future__ import annotations

import math
import re
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from google.protobuf.timestamp_pb2 import Timestamp

from omnistock.availability.answer import SkuAvailability
from omnistock.availability.network import (
    DEFAULT_SOURCING_RULES,
    AllocationCap,
    Channel,
    Network,
    NodeGroup,
    SafetyRule,
    SourcingPolicy,
    SourcingRule,
    StockStatus,
)
from omnistock.availability.nodes import Node, NodeType, node_problems
from omnistock.availability.pickup import BasketItem, PickupStore
from omnistock.availability.positions import PositionView
from omnistock.protos.gen.omnistock.v1 import (
    availability_pb2,
    common_pb2,
    inventory_pb2,
    network_pb2,
    reservation_pb2,
)
from omnistock.reservations.domain.commands import ShortLine
from omnistock.reservations.domain.errors import InvalidArgument
from omnistock.reservations.domain.model import Level, LevelColumns, Line, PartState, StockState
from omnistock.reservations.domain.reservation_view import ReservationView
from omnistock.reservations.domain.sourcing import Destination, LineSourcing
from omnistock.reservations.shard.codec import fill_reservation_event


@dataclass(frozen=True, slots=True)
class Limits:
    """Explicit bounds on every request; over them is INVALID_ARGUMENT."""

    max_id_length: int = 128
    max_lines: int = 100
    max_quantity: int = 1_000_000
    max_on_hand: int = 1_000_000_000
    max_skus: int = 1_000
    max_levels: int = 10_000
    max_adjustments: int = 1_000
    max_nodes: int = 10_000
    default_ttl_seconds: int = 900
    min_ttl_seconds: int = 1
    max_ttl_seconds: int = 86_400
    max_message_bytes: int = 8 * 1024 * 1024


ID_PATTERN = re.compile(r"[\x21-\x7e]+")  # printable ASCII, no spaces
UNSAFE_TEXT = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")
"""What free text (names, reasons) must not contain: control characters (Unicode Cc: escapes
that drive a terminal, newlines that forge lines of a log or a listing), the bidirectional
controls of Cf that reorder what is shown (U+202E shows `exe.txt` for `txt.exe`), and the
line and paragraph separators."""
MAX_TEXT_LENGTH = 200
"""Characters of a free-text field (a name, a reason) at most."""

NODE_TYPES = {
    common_pb2.NODE_TYPE_STORE: NodeType.STORE,
    common_pb2.NODE_TYPE_DC: NodeType.DC,
    common_pb2.NODE_TYPE_3PL: NodeType.THREE_PL,
    common_pb2.NODE_TYPE_DROPSHIP: NodeType.DROPSHIP,
}
NODE_TYPE_PROTO = {value: key for key, value in NODE_TYPES.items()}

STATES = {
    PartState.HELD: reservation_pb2.RESERVATION_STATE_HELD,
    PartState.CONFIRMED: reservation_pb2.RESERVATION_STATE_CONFIRMED,
    PartState.RELEASED: reservation_pb2.RESERVATION_STATE_RELEASED,
    PartState.EXPIRED: reservation_pb2.RESERVATION_STATE_EXPIRED,
    PartState.FULFILLED: reservation_pb2.RESERVATION_STATE_FULFILLED,
}


class Problems:
    """Collects (field, description) pairs; raises them all together."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []

    def add(self, field: str, description: str) -> None:
        self.items.append((field, description))

    def check_id(self, field: str, value: str, limits: Limits) -> None:
        if not value:
            self.add(field, "is required")
        elif len(value) > limits.max_id_length:
            self.add(field, f"is {len(value)} characters long; at most {limits.max_id_length} are allowed")
        elif not ID_PATTERN.fullmatch(value):
            self.add(field, "may only contain printable ASCII characters without spaces")

    def check_text(self, field: str, value: str, most: int = MAX_TEXT_LENGTH) -> None:
        """Free text: any printable characters, spaces too, up to `most`."""
        if len(value) > most:
            self.add(field, f"must be at most {most} characters")
        self.check_clean(field, value)

    def check_clean(self, field: str, value: str) -> None:
        """No control characters (UNSAFE_TEXT) in `value`."""
        found = UNSAFE_TEXT.search(value)
        if found is not None:
            self.add(
                field,
                f"must not contain control characters; found U+{ord(found.group()):04X}"
                f" at character {found.start()}",
            )

    def check_optional_id(self, field: str, value: str, limits: Limits) -> None:
        """An id that may be left empty."""
        if value:
            self.check_id(field, value, limits)

    def check_position(
        self, field: str, sku: str, node_id: str, seen: set[tuple[str, str]], limits: Limits
    ) -> None:
        """Valid sku and node ids, and the position not already named in this request."""
        self.check_id(f"{field}.sku", sku, limits)
        self.check_id(f"{field}.node_id", node_id, limits)
        if (sku, node_id) in seen:
            self.add(field, f"{sku} at {node_id} appears twice in one call; merge them")
        seen.add((sku, node_id))

    def check_level(
        self,
        i: int,
        fields: tuple[str, str, str],
        counts: tuple[int, int, int, float],
        most: int,
        latest: float,
    ) -> None:
        """A stock level's rules. `counts`: on_hand, damaged, quality_hold, as_of; `fields`:
        how the level, its on_hand and its as_of are named, each with {} for `i` (spelt
        only for a problem: a load checks millions)."""
        on_hand, damaged, quality_hold, as_of = counts
        if not 0 <= on_hand <= most:
            self.add(fields[1].format(i), f"must be within 0..{most}, got {on_hand}")
        elif damaged < 0 or quality_hold < 0 or damaged + quality_hold > on_hand:
            self.add(
                fields[0].format(i), "damaged and quality_hold must not be negative and must fit in on_hand"
            )
        if not 0 <= as_of <= latest:
            self.add(fields[2].format(i), "must not be before 1970 or more than 5 minutes in the future")

    def check_count(self, field: str, count: int, most: int, least: int = 1) -> None:
        if count < least:
            self.add(field, f"needs at least {least} item(s)")
        elif count > most:
            self.add(field, f"has {count} items; at most {most} are allowed per call")

    def raise_if_any(self) -> None:
        if self.items:
            raise InvalidArgument(self.items)


def to_seconds(timestamp: Timestamp) -> float:
    return timestamp.seconds + timestamp.nanos / 1e9


def to_timestamp(seconds: float) -> Timestamp:
    timestamp = Timestamp()
    set_timestamp(timestamp, seconds)
    return timestamp


def set_timestamp(timestamp: Timestamp, seconds: float) -> None:
    """Unix seconds into `timestamp` (left unset, i.e. zero, for 0 or less)."""
    if seconds > 0:
        timestamp.seconds, timestamp.nanos = divmod(round(seconds * 1e9), 1_000_000_000)


# --- nodes ---


def nodes_from_proto(nodes: Sequence[common_pb2.Node], limits: Limits) -> list[Node]:
    problems = Problems()
    problems.check_count("nodes", len(nodes), limits.max_nodes)
    seen: set[str] = set()
    result = []
    for i, message in enumerate(nodes):
        field = f"nodes[{i}]"
        problems.check_id(f"{field}.node_id", message.node_id, limits)
        if message.node_id in seen:
            problems.add(f"{field}.node_id", f"{message.node_id!r} appears twice")
        seen.add(message.node_id)
        node_type = NODE_TYPES.get(message.type)
        if node_type is None:
            problems.add(f"{field}.type", "must be STORE, DC, 3PL or DROPSHIP")
            continue
        node = Node(
            node_id=message.node_id,
            type=node_type,
            name=message.name,
            ships=message.ships,
            pickup=message.pickup,
            latitude=message.latitude,
            longitude=message.longitude,
            enabled=message.enabled,
            priority=message.priority,
            shipment_cost=message.shipment_cost,
            daily_capacity=message.daily_capacity,
        )
        problems.items.extend(node_problems(node, field))
        problems.check_clean(f"{field}.name", node.name)  # its length is one of node_problems
        result.append(node)
    problems.raise_if_any()
    return result


def node_to_proto(node: Node) -> common_pb2.Node:
    return common_pb2.Node(
        node_id=node.node_id,
        type=NODE_TYPE_PROTO[node.type],
        name=node.name,
        ships=node.ships,
        pickup=node.pickup,
        latitude=node.latitude,
        longitude=node.longitude,
        enabled=node.enabled,
        priority=node.priority,
        shipment_cost=node.shipment_cost,
        daily_capacity=node.daily_capacity,
    )


def node_from_proto(message: common_pb2.Node) -> Node:
    """A node as stored (already validated)."""
    return Node(
        node_id=message.node_id,
        type=NODE_TYPES[message.type],
        name=message.name,
        ships=message.ships,
        pickup=message.pickup,
        latitude=message.latitude,
        longitude=message.longitude,
        enabled=message.enabled,
        priority=message.priority,
        shipment_cost=message.shipment_cost,
        daily_capacity=message.daily_capacity,
    )


# --- stock ---


LEVEL_FIELDS = ("levels[{}]", "levels[{}].on_hand", "levels[{}].as_of")
COLUMN_FIELDS = ("columns[{}]", "columns.on_hand[{}]", "columns.as_of_seconds[{}]")


def levels_from_proto(levels: Sequence[inventory_pb2.StockLevel], limits: Limits, now: float) -> LevelColumns:
    """Checked levels. LoadStock sends millions: ids are checked once per call, and a field
    name is spelt only for a problem."""
    problems = Problems()
    problems.check_count("levels", len(levels), limits.max_levels)
    seen: set[tuple[str, str]] = set()
    valid: set[str] = set()  # ids already checked: a SKU's nodes come together, nodes repeat
    most, latest = limits.max_on_hand, now + 300
    rows: list[Level] = []
    for i, level in enumerate(levels):
        sku, node_id, on_hand = level.sku, level.node_id, level.on_hand
        damaged, quality_hold = level.damaged, level.quality_hold
        if sku not in valid or node_id not in valid:
            before = len(problems.items)
            problems.check_id(f"levels[{i}].sku", sku, limits)
            problems.check_id(f"levels[{i}].node_id", node_id, limits)
            if len(problems.items) == before:
                valid.update((sku, node_id))
        key = (sku, node_id)
        if key in seen:
            problems.add(f"levels[{i}]", f"{sku} at {node_id} appears twice in one call; merge them")
        seen.add(key)
        as_of = to_seconds(level.as_of) if level.HasField("as_of") else now
        problems.check_level(i, LEVEL_FIELDS, (on_hand, damaged, quality_hold, as_of), most, latest)
        rows.append((sku, node_id, on_hand, as_of, damaged, quality_hold))
    problems.raise_if_any()
    return LevelColumns.of(rows)


def levels_from_columns(
    columns: inventory_pb2.StockColumns, limits: Limits, now: float, already: int = 0
) -> LevelColumns:
    """`levels_from_proto` for levels in columns, checked column by column. `already`:
    levels the same message carries as StockLevels (the limit counts both)."""
    problems = Problems()
    count = len(columns.sku)
    problems.check_count("columns.sku", already + count, limits.max_levels)
    for name, size in (("node_id", len(columns.node_id)), ("on_hand", len(columns.on_hand))):
        if size != count:
            problems.add(f"columns.{name}", f"has {size} entries for {count} SKUs; give one per level")
    for name, size in (
        ("damaged", len(columns.damaged)),
        ("quality_hold", len(columns.quality_hold)),
        ("as_of_seconds", len(columns.as_of_seconds)),
    ):
        if size not in (0, count):
            problems.add(f"columns.{name}", f"has {size} entries for {count} levels; give none or one each")
    problems.raise_if_any()
    zeros = array("q", bytes(8 * count))
    # One string object per distinct id: everything downstream (pickling to the shards,
    # the shards' arrays) then handles a SKU's or a node's id once, not once a level.
    same: dict[str, str] = {}
    levels = LevelColumns(
        tuple(map(same.setdefault, columns.sku, columns.sku)),
        tuple(map(same.setdefault, columns.node_id, columns.node_id)),
        array("q", columns.on_hand),
        array("d", columns.as_of_seconds) if len(columns.as_of_seconds) else array("d", [now]) * count,
        array("q", columns.damaged) if len(columns.damaged) else zeros,
        array("q", columns.quality_hold) if len(columns.quality_hold) else zeros,
    )
    for name, ids in (("sku", levels.sku), ("node_id", levels.node_id)):
        for value in set(ids):  # each distinct id once; the first level with it named
            found = Problems()
            found.check_id(f"columns.{name}", value, limits)
            for field, description in found.items:
                problems.add(f"{field}[{ids.index(value)}]", description)
    if _may_repeat(levels):
        seen: set[tuple[str, str]] = set()
        for i, key in enumerate(zip(levels.sku, levels.node_id, strict=True)):
            if key in seen:
                problems.add(f"columns[{i}]", f"{key[0]} at {key[1]} appears twice in one call; merge them")
            seen.add(key)
    most, latest = limits.max_on_hand, now + 300
    on_hand, as_of = levels.on_hand, levels.as_of
    # Whole columns first (at C speed); level by level only when one of them may be wrong.
    if count and (
        min(on_hand) < 0
        or max(on_hand) > most
        or any(levels.damaged)
        or any(levels.quality_hold)
        or not (min(as_of) >= 0 and max(as_of) <= latest and math.isfinite(sum(as_of)))
    ):
        for i, counts in enumerate(zip(on_hand, levels.damaged, levels.quality_hold, as_of, strict=True)):
            problems.check_level(i, COLUMN_FIELDS, counts, most, latest)
    problems.raise_if_any()
    return levels


def _may_repeat(levels: LevelColumns) -> bool:
    """Whether a SKU at a node may come twice. A SKU's nodes come together in a load, so
    this looks at runs of one SKU, not at every level, unless a SKU comes in two runs."""
    runs = levels.sku_runs()
    if len({sku for sku, _, _ in runs}) != len(runs):
        return True
    node_ids = levels.node_id
    return any(len(set(node_ids[start:end])) != end - start for _, start, end in runs)


def adjustments_problems(adjustments: Sequence[inventory_pb2.StockAdjustment], limits: Limits) -> None:
    problems = Problems()
    problems.check_count("adjustments", len(adjustments), limits.max_adjustments)
    seen: set[str] = set()
    for i, adjustment in enumerate(adjustments):
        field = f"adjustments[{i}]"
        problems.check_id(f"{field}.adjustment_id", adjustment.adjustment_id, limits)
        if adjustment.adjustment_id in seen:
            problems.add(f"{field}.adjustment_id", f"{adjustment.adjustment_id!r} appears twice in one call")
        seen.add(adjustment.adjustment_id)
        problems.check_id(f"{field}.sku", adjustment.sku, limits)
        problems.check_id(f"{field}.node_id", adjustment.node_id, limits)
        if adjustment.delta == 0 or abs(adjustment.delta) > limits.max_on_hand:
            problems.add(f"{field}.delta", f"must be non-zero and within +-{limits.max_on_hand}")
        if adjustment.state not in STOCK_STATES:
            problems.add(f"{field}.state", f"unknown stock state {adjustment.state}")
        if adjustment.supply_id:
            problems.check_id(f"{field}.supply_id", adjustment.supply_id, limits)
            if adjustment.delta <= 0 or STOCK_STATES.get(adjustment.state) is not StockState.SELLABLE:
                problems.add(field, "a receipt of supply is a positive delta of sellable units")
        problems.check_text(f"{field}.reason", adjustment.reason)
    problems.raise_if_any()


def position_to_proto(position: PositionView, available: int) -> common_pb2.Position:
    return common_pb2.Position(
        sku=position.sku,
        node_id=position.node_id,
        on_hand=position.on_hand,
        reserved=position.reserved,
        committed=position.committed,
        available=available,
        as_of=to_timestamp(position.as_of),
        damaged=position.damaged,
        quality_hold=position.quality_hold,
        inbound=position.inbound_units,
    )


# --- availability ---


def skus_from_proto(skus: Sequence[str], limits: Limits, most: int = 0, least: int = 1) -> list[str]:
    most = most or limits.max_skus
    longest, fullmatch = limits.max_id_length, ID_PATTERN.fullmatch
    if least <= len(skus) <= most and all(len(sku) <= longest and fullmatch(sku) for sku in skus):
        return list(skus)  # every id well formed (a page asks hundreds): no problem to name
    problems = Problems()
    problems.check_count("skus", len(skus), most, least)
    for i, sku in enumerate(skus):
        problems.check_id(f"skus[{i}]", sku, limits)
    problems.raise_if_any()
    return list(skus)


def availability_to_proto(
    answer: SkuAvailability,
    include_nodes: bool,
    by_date: float | None = None,
    quantity: int = 0,
    now: float = 0.0,
) -> availability_pb2.SkuAvailability:
    message = availability_pb2.SkuAvailability(
        sku=answer.sku,
        available=answer.available,
        on_hand=answer.on_hand,
        reserved=answer.reserved,
        committed=answer.committed,
        damaged=answer.damaged,
        quality_hold=answer.quality_hold,
        status=STATUSES[answer.status] if answer.status else common_pb2.STOCK_STATUS_UNSPECIFIED,
        inbound=answer.inbound,
    )
    if by_date is not None:
        message.available_by_date = answer.available_on(by_date)
    if quantity:
        earliest = answer.earliest(quantity, now)
        if earliest is not None:
            message.earliest_date.CopyFrom(to_timestamp(earliest))
    if include_nodes:
        message.nodes.extend(position_to_proto(n.position, n.available) for n in answer.nodes)
    return message


# --- reservations ---


def reserve_from_proto(
    request: reservation_pb2.ReserveRequest, limits: Limits
) -> tuple[str, list[Line], int, Destination | None]:
    """(reservation id, lines, ttl, destination); a destination means the lines are to be
    sourced: none of them names a node."""
    problems = Problems()
    problems.check_id("reservation_id", request.reservation_id, limits)
    problems.check_optional_id("channel_id", request.channel_id, limits)
    problems.check_optional_id("customer_id", request.customer_id, limits)
    problems.check_count("lines", len(request.lines), limits.max_lines)
    destination = destination_from_proto(request, problems, limits)
    named = sum(1 for line in request.lines if line.node_id)
    if destination is None and named < len(request.lines):
        problems.add("destination", "is required when lines name no node_id (omnistock then sources them)")
    if destination is not None and named:
        problems.add("lines", "with a destination no line may name a node_id: every line is sourced")
    if destination is not None and not request.channel_id:
        problems.add("channel_id", "is required to source lines: its rules choose the nodes")
    seen: set[tuple[str, str]] = set()
    lines = []
    for i, line in enumerate(request.lines):
        field = f"lines[{i}]"
        if destination is None:
            problems.check_position(field, line.sku, line.node_id, seen, limits)
        else:
            problems.check_id(f"{field}.sku", line.sku, limits)
            if (line.sku, "") in seen:
                problems.add(field, f"{line.sku} appears twice in one call; merge them")
            seen.add((line.sku, ""))
        if not 1 <= line.quantity <= limits.max_quantity:
            problems.add(f"{field}.quantity", f"must be within 1..{limits.max_quantity}, got {line.quantity}")
        lines.append(Line(line.sku, line.node_id, line.quantity))
    ttl = request.ttl_seconds or limits.default_ttl_seconds
    if not limits.min_ttl_seconds <= ttl <= limits.max_ttl_seconds:
        problems.add(
            "ttl_seconds", f"must be within {limits.min_ttl_seconds}..{limits.max_ttl_seconds}, got {ttl}"
        )
    problems.raise_if_any()
    return request.reservation_id, lines, ttl, destination


def destination_from_proto(
    request: reservation_pb2.ReserveRequest, problems: Problems, limits: Limits
) -> Destination | None:
    match request.destination.WhichOneof("to"):
        case "address":
            where = request.destination.address
            if not (-90 <= where.latitude <= 90 and -180 <= where.longitude <= 180):
                problems.add(
                    "destination.address",
                    f"latitude must be within -90..90 and longitude within -180..180,"
                    f" got {where.latitude}, {where.longitude}",
                )
            return Destination(where.latitude, where.longitude)
        case "pickup_node_id":
            problems.check_id("destination.pickup_node_id", request.destination.pickup_node_id, limits)
            return Destination(pickup_node_id=request.destination.pickup_node_id)
    return None


def destination_to_proto(destination: Destination) -> reservation_pb2.Destination:
    if destination.pickup_node_id:
        return reservation_pb2.Destination(pickup_node_id=destination.pickup_node_id)
    where = common_pb2.Location(latitude=destination.latitude, longitude=destination.longitude)
    return reservation_pb2.Destination(address=where)


def line_sourcing_to_proto(line: LineSourcing) -> reservation_pb2.LineSourcing:
    return reservation_pb2.LineSourcing(
        sku=line.sku,
        quantity=line.quantity,
        rules=line.rules,
        considered=[
            reservation_pb2.NodeVerdict(
                node_id=v.node_id, units=v.units, reason=v.reason, distance_km=v.distance_km
            )
            for v in line.considered
        ],
        omitted=line.omitted,
    )


def reassign_from_proto(request: reservation_pb2.ReassignRequest, limits: Limits) -> None:
    problems = Problems()
    problems.check_id("reservation_id", request.reservation_id, limits)
    problems.check_id("reassignment_id", request.reassignment_id, limits)
    problems.check_id("sku", request.sku, limits)
    problems.check_id("from_node_id", request.from_node_id, limits)
    if request.to_node_id:
        problems.check_id("to_node_id", request.to_node_id, limits)
        if request.to_node_id == request.from_node_id:
            problems.add("to_node_id", "is the node the line is at already; name another node")
    problems.raise_if_any()


def extend_from_proto(request: reservation_pb2.ExtendRequest, limits: Limits) -> tuple[str, int]:
    problems = Problems()
    problems.check_id("reservation_id", request.reservation_id, limits)
    if not limits.min_ttl_seconds <= request.ttl_seconds <= limits.max_ttl_seconds:
        problems.add(
            "ttl_seconds",
            f"must be within {limits.min_ttl_seconds}..{limits.max_ttl_seconds}, got {request.ttl_seconds}",
        )
    problems.raise_if_any()
    return request.reservation_id, request.ttl_seconds


def channel_id_from_proto(channel_id: str, limits: Limits, field: str = "channel_id") -> str:
    """A channel id a request may leave empty (then: the whole network)."""
    problems = Problems()
    problems.check_optional_id(field, channel_id, limits)
    problems.raise_if_any()
    return channel_id


def ids_from_proto(ids: Sequence[str], field: str, limits: Limits) -> list[str]:
    """Ids a request lists (groups or channels to delete), each well formed."""
    problems = Problems()
    problems.check_count(field, len(ids), limits.max_nodes, least=0)
    for i, value in enumerate(ids):
        problems.check_id(f"{field}[{i}]", value, limits)
    problems.raise_if_any()
    return list(ids)


def reservation_id_from_proto(reservation_id: str, limits: Limits, field: str = "reservation_id") -> str:
    problems = Problems()
    problems.check_id(field, reservation_id, limits)
    problems.raise_if_any()
    return reservation_id


def reservation_to_proto(
    view: ReservationView, message: reservation_pb2.Reservation | None = None
) -> reservation_pb2.Reservation:
    """The public form of a reservation, written into `message` when given (the field of
    a response: filling it in place saves building each part apart and copying it in)."""
    if message is None:
        message = reservation_pb2.Reservation()
    message.reservation_id = view.reservation_id
    message.state = STATES[view.state]
    message.channel_id = view.channel
    message.customer_id = view.customer
    progress = view.progress or ((0, 0, 0),) * len(view.lines)
    for line, (fulfilled, cancelled, returned) in zip(view.lines, progress, strict=True):
        message.lines.add(
            sku=line.sku,
            node_id=line.node_id,
            quantity=line.quantity,
            fulfilled=fulfilled,
            cancelled=cancelled,
            returned=returned,
        )
    set_timestamp(message.created_at, view.created_at)
    set_timestamp(message.expires_at, view.expires_at)
    if view.changed_at:
        set_timestamp(message.changed_at, view.changed_at)
    for what, at, by in view.history:
        fill_reservation_event(message.history.add(), None, view.reservation_id, what, at, by)
    if view.sourcing:
        message.sourcing.extend(line_sourcing_to_proto(line) for line in view.sourcing)
    if view.destination is not None:
        message.destination.CopyFrom(destination_to_proto(view.destination))
    return message


def short_lines_to_proto(short: Iterable[ShortLine]) -> common_pb2.InsufficientStock:
    return common_pb2.InsufficientStock(
        lines=[
            common_pb2.ShortLine(sku=s.sku, node_id=s.node_id, requested=s.requested, available=s.available)
            for s in short
        ]
    )


# --- network: groups and channels ---


def _node_type_or_none(value: int, field: str, problems: Problems) -> NodeType | None:
    if value == common_pb2.NODE_TYPE_UNSPECIFIED:
        return None
    node_type = NODE_TYPES.get(value)  # type: ignore[call-overload]
    if node_type is None:
        problems.add(field, f"unknown node type {value}")
    return node_type


def groups_from_proto(groups: Sequence[network_pb2.NodeGroup], limits: Limits) -> list[NodeGroup]:
    problems = Problems()
    problems.check_count("groups", len(groups), limits.max_nodes)
    result = []
    for i, group in enumerate(groups):
        field = f"groups[{i}]"
        problems.check_id(f"{field}.group_id", group.group_id, limits)
        for j, node_id in enumerate(group.node_ids):
            problems.check_id(f"{field}.node_ids[{j}]", node_id, limits)
        types = [_node_type_or_none(t, f"{field}.types[{j}]", problems) for j, t in enumerate(group.types)]
        result.append(
            NodeGroup(
                group_id=group.group_id,
                node_ids=tuple(group.node_ids),
                types=tuple(t for t in types if t is not None),
                ships=group.ships if group.HasField("ships") else None,
                pickup=group.pickup if group.HasField("pickup") else None,
            )
        )
    problems.raise_if_any()
    return result


def channels_from_proto(
    channels: Sequence[network_pb2.Channel], limits: Limits, stored: bool = False
) -> list[Channel]:
    """Checked channels; `stored`: read back from Redis, checked when they were written (by
    the rules of then: a stored network always loads)."""
    problems = Problems()
    problems.check_count("channels", len(channels), limits.max_nodes)
    result = []
    for i, channel in enumerate(channels):
        field = f"channels[{i}]"
        problems.check_id(f"{field}.channel_id", channel.channel_id, limits)
        if not stored:
            _channel_text_problems(channel, field, problems, limits)
        safety = tuple(
            SafetyRule(
                units=rule.units,
                percent=rule.percent,
                sku=rule.sku,
                node_id=rule.node_id,
                node_type=_node_type_or_none(rule.node_type, f"{field}.safety[{j}].node_type", problems),
            )
            for j, rule in enumerate(channel.safety)
        )
        caps = tuple(
            AllocationCap(
                percent=cap.percent,
                node_id=cap.node_id,
                node_type=_node_type_or_none(cap.node_type, f"{field}.caps[{j}].node_type", problems),
            )
            for j, cap in enumerate(channel.caps)
        )
        result.append(
            Channel(
                channel_id=channel.channel_id,
                name=channel.name,
                groups=tuple(channel.groups),
                safety=safety,
                caps=caps,
                low_stock=channel.low_stock_threshold,
                display_cap=channel.display_cap,
                future_supply_holds=channel.future_supply_holds,
                sourcing=_policy_from_proto(channel.sourcing, f"{field}.sourcing", problems),
            )
        )
    problems.raise_if_any()
    return result


def _channel_text_problems(
    channel: network_pb2.Channel, field: str, problems: Problems, limits: Limits
) -> None:
    """A channel's name and the ids its rules name: nothing a terminal or a log would act on."""
    problems.check_text(f"{field}.name", channel.name)
    for j, group_id in enumerate(channel.groups):
        problems.check_id(f"{field}.groups[{j}]", group_id, limits)
    for j, rule in enumerate(channel.safety):
        problems.check_optional_id(f"{field}.safety[{j}].sku", rule.sku, limits)
        problems.check_optional_id(f"{field}.safety[{j}].node_id", rule.node_id, limits)
    for j, cap in enumerate(channel.caps):
        problems.check_optional_id(f"{field}.caps[{j}].node_id", cap.node_id, limits)


def _policy_from_proto(message: network_pb2.SourcingPolicy, field: str, problems: Problems) -> SourcingPolicy:
    rules = []
    for i, name in enumerate(message.rules):
        try:
            rules.append(SourcingRule(name))
        except ValueError:
            known = ", ".join(rule.value for rule in SourcingRule)
            problems.add(f"{field}.rules[{i}]", f"unknown rule {name!r}; use {known}")
    return SourcingPolicy(
        rules=tuple(rules) if message.rules else DEFAULT_SOURCING_RULES,
        split_lines=message.split_lines,
        max_shipments=message.max_shipments,
    )


def policy_to_proto(policy: SourcingPolicy) -> network_pb2.SourcingPolicy:
    return network_pb2.SourcingPolicy(
        rules=[rule.value for rule in policy.rules],
        split_lines=policy.split_lines,
        max_shipments=policy.max_shipments,
    )


def network_to_proto(network: Network) -> network_pb2.NetworkConfig:
    def node_type(value: NodeType | None) -> common_pb2.NodeType:
        return NODE_TYPE_PROTO[value] if value is not None else common_pb2.NODE_TYPE_UNSPECIFIED

    config = network_pb2.NetworkConfig(version=network.version)
    config.purchase_limits.extend(
        network_pb2.PurchaseLimit(sku=sku, max_per_customer=most)
        for sku, most in sorted(network.purchase_limits.items())
    )
    config.nodes.extend(node_to_proto(n) for _, n in sorted(network.nodes.items()))
    for _, group in sorted(network.groups.items()):
        message = config.groups.add(
            group_id=group.group_id, node_ids=group.node_ids, types=[node_type(t) for t in group.types]
        )
        if group.ships is not None:
            message.ships = group.ships
        if group.pickup is not None:
            message.pickup = group.pickup
    for _, channel in sorted(network.channels.items()):
        config.channels.add(
            channel_id=channel.channel_id,
            name=channel.name,
            groups=channel.groups,
            safety=[
                network_pb2.SafetyRule(
                    units=r.units,
                    percent=r.percent,
                    sku=r.sku,
                    node_id=r.node_id,
                    node_type=node_type(r.node_type),
                )
                for r in channel.safety
            ],
            caps=[
                network_pb2.AllocationCap(
                    percent=c.percent, node_id=c.node_id, node_type=node_type(c.node_type)
                )
                for c in channel.caps
            ],
            low_stock_threshold=channel.low_stock,
            display_cap=channel.display_cap,
            future_supply_holds=channel.future_supply_holds,
            sourcing=policy_to_proto(channel.sourcing),
        )
    return config


def network_from_proto(config: network_pb2.NetworkConfig, limits: Limits) -> Network:
    """A stored network (validated when it was written)."""
    nodes = [node_from_proto(n) for n in config.nodes]
    groups = groups_from_proto(config.groups, limits) if config.groups else []
    channels = channels_from_proto(config.channels, limits, stored=True) if config.channels else []
    return Network(
        nodes={n.node_id: n for n in nodes},
        groups={g.group_id: g for g in groups},
        channels={c.channel_id: c for c in channels},
        version=config.version,
        purchase_limits={limit.sku: limit.max_per_customer for limit in config.purchase_limits},
    )


STATUSES = {
    StockStatus.IN_STOCK: common_pb2.STOCK_STATUS_IN_STOCK,
    StockStatus.LOW_STOCK: common_pb2.STOCK_STATUS_LOW_STOCK,
    StockStatus.OUT_OF_STOCK: common_pb2.STOCK_STATUS_OUT_OF_STOCK,
}

STOCK_STATES = {
    # Unspecified means sellable: it was sellable's number before SELLABLE had its own.
    common_pb2.STOCK_STATE_UNSPECIFIED: StockState.SELLABLE,
    common_pb2.STOCK_STATE_SELLABLE: StockState.SELLABLE,
    common_pb2.STOCK_STATE_DAMAGED: StockState.DAMAGED,
    common_pb2.STOCK_STATE_QUALITY_HOLD: StockState.QUALITY_HOLD,
}


# --- pickup search ---


@dataclass(frozen=True, slots=True)
class PickupQuery:
    basket: list[BasketItem]
    latitude: float
    longitude: float
    store_id: str
    radius_km: float
    channel_id: str
    limit: int


def pickup_query_from_proto(request: availability_pb2.FindPickupStoresRequest, limits: Limits) -> PickupQuery:
    problems = Problems()
    problems.check_count("items", len(request.items), limits.max_lines)
    seen: set[str] = set()
    basket = []
    for i, item in enumerate(request.items):
        problems.check_id(f"items[{i}].sku", item.sku, limits)
        if item.sku in seen:
            problems.add(f"items[{i}].sku", f"{item.sku} appears twice; merge the items")
        seen.add(item.sku)
        quantity = item.quantity or 1
        if not 1 <= quantity <= limits.max_quantity:
            problems.add(
                f"items[{i}].quantity", f"must be within 1..{limits.max_quantity}, got {item.quantity}"
            )
        basket.append(BasketItem(item.sku, quantity))
    origin = request.WhichOneof("origin")
    latitude = longitude = 0.0
    if origin is None:
        problems.add("origin", "give a location (latitude, longitude) or a store_id")
    elif origin == "location":
        latitude, longitude = request.location.latitude, request.location.longitude
        if not -90 <= latitude <= 90:
            problems.add("location.latitude", f"must be within -90..90, got {latitude}")
        if not -180 <= longitude <= 180:
            problems.add("location.longitude", f"must be within -180..180, got {longitude}")
    else:
        problems.check_id("store_id", request.store_id, limits)
    problems.check_optional_id("channel_id", request.channel_id, limits)
    radius = request.radius_km or 50.0
    if not 0 < radius <= 1000:
        problems.add("radius_km", f"must be within 0..1000 km, got {request.radius_km}")
    limit = request.limit or 10
    if not 1 <= limit <= 100:
        problems.add("limit", f"must be within 1..100, got {request.limit}")
    problems.raise_if_any()
    store_id = request.store_id if origin == "store_id" else ""
    return PickupQuery(basket, latitude, longitude, store_id, radius, request.channel_id, limit)


def pickup_store_to_proto(store: PickupStore) -> availability_pb2.PickupStore:
    return availability_pb2.PickupStore(
        node=node_to_proto(store.node),
        distance_km=store.distance_km,
        items=[
            availability_pb2.ItemAtStore(sku=i.sku, requested=i.requested, available=i.available)
            for i in store.items
        ],
    )


def supplies_from_proto(
    supplies: Sequence[inventory_pb2.InboundSupply], limits: Limits, now: float
) -> list[tuple[str, str, str, int, float]]:
    """(supply_id, sku, node_id, quantity, expected_at) of each supply, validated together."""
    problems = Problems()
    problems.check_count("supplies", len(supplies), limits.max_levels)
    seen: set[tuple[str, str, str]] = set()
    result = []
    for i, supply in enumerate(supplies):
        field = f"supplies[{i}]"
        problems.check_id(f"{field}.supply_id", supply.supply_id, limits)
        line = (supply.supply_id, supply.sku, supply.node_id)
        if line in seen:
            problems.add(field, f"{supply.supply_id} for {supply.sku} at {supply.node_id} appears twice")
        seen.add(line)
        problems.check_id(f"{field}.sku", supply.sku, limits)
        problems.check_id(f"{field}.node_id", supply.node_id, limits)
        if not 0 <= supply.quantity <= limits.max_on_hand:
            problems.add(
                f"{field}.quantity", f"must be within 0..{limits.max_on_hand}, got {supply.quantity}"
            )
        expected_at = to_seconds(supply.expected_at)
        if not supply.HasField("expected_at") or expected_at < 0 or expected_at > now + 5 * 365 * 86400:
            problems.add(f"{field}.expected_at", "is required and must be within the next five years")
        result.append((supply.supply_id, supply.sku, supply.node_id, supply.quantity, expected_at))
    problems.raise_if_any()
    return result


def date_query_from_proto(
    request: availability_pb2.GetAvailabilityRequest, limits: Limits
) -> tuple[float | None, int]:
    problems = Problems()
    problems.check_optional_id("channel_id", request.channel_id, limits)
    if request.quantity and not 1 <= request.quantity <= limits.max_on_hand:
        problems.add("quantity", f"must be within 1..{limits.max_on_hand}, got {request.quantity}")
    problems.raise_if_any()
    by_date = to_seconds(request.by_date) if request.HasField("by_date") else None
    return by_date, request.quantity


def purchase_limits_from_proto(limits: Sequence[network_pb2.PurchaseLimit], bounds: Limits) -> dict[str, int]:
    problems = Problems()
    problems.check_count("limits", len(limits), bounds.max_levels)
    found: dict[str, int] = {}
    for i, limit in enumerate(limits):
        problems.check_id(f"limits[{i}].sku", limit.sku, bounds)
        if limit.sku in found:
            problems.add(f"limits[{i}].sku", f"{limit.sku} appears twice")
        if not 0 <= limit.max_per_customer <= bounds.max_quantity:
            problems.add(
                f"limits[{i}].max_per_customer",
                f"must be within 0..{bounds.max_quantity} (0 removes it), got {limit.max_per_customer}",
            )
        found[limit.sku] = limit.max_per_customer
    problems.raise_if_any()
    return found


def close_lines_from_proto(
    reservation_id: str,
    operation_id: str,
    operation_field: str,
    lines: Sequence[reservation_pb2.ReservationLine],
    limits: Limits,
) -> list[Line]:
    """Validated lines of a Fulfil or CancelLines (units per sku and node)."""
    problems = Problems()
    problems.check_id("reservation_id", reservation_id, limits)
    problems.check_id(operation_field, operation_id, limits)
    problems.check_count("lines", len(lines), limits.max_lines)
    seen: set[tuple[str, str]] = set()
    result = []
    for i, line in enumerate(lines):
        problems.check_position(f"lines[{i}]", line.sku, line.node_id, seen, limits)
        if not 1 <= line.quantity <= limits.max_quantity:
            problems.add(
                f"lines[{i}].quantity", f"must be within 1..{limits.max_quantity}, got {line.quantity}"
            )
        result.append(Line(line.sku, line.node_id, line.quantity))
    problems.raise_if_any()
    return result


def return_from_proto(request: reservation_pb2.ReturnRequest, limits: Limits) -> tuple[Line, str]:
    """(the line: sku, reserved node, units; the node they come back to)."""
    problems = Problems()
    problems.check_id("reservation_id", request.reservation_id, limits)
    problems.check_id("return_id", request.return_id, limits)
    problems.check_position("line", request.sku, request.line_node_id, set(), limits)
    problems.check_id("node_id", request.node_id, limits)
    if not 1 <= request.quantity <= limits.max_quantity:
        problems.add("quantity", f"must be within 1..{limits.max_quantity}, got {request.quantity}")
    problems.raise_if_any()
    return Line(request.sku, request.line_node_id, request.quantity), request.node_id
