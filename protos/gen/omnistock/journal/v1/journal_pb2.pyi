from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class StockState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STOCK_STATE_UNSPECIFIED: _ClassVar[StockState]
    STOCK_STATE_SELLABLE: _ClassVar[StockState]
    STOCK_STATE_DAMAGED: _ClassVar[StockState]
    STOCK_STATE_QUALITY_HOLD: _ClassVar[StockState]

class PartState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PART_STATE_UNSPECIFIED: _ClassVar[PartState]
    PART_STATE_HELD: _ClassVar[PartState]
    PART_STATE_CONFIRMED: _ClassVar[PartState]
    PART_STATE_RELEASED: _ClassVar[PartState]
    PART_STATE_EXPIRED: _ClassVar[PartState]
    PART_STATE_FULFILLED: _ClassVar[PartState]

class Decision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DECISION_UNSPECIFIED: _ClassVar[Decision]
    DECISION_PENDING: _ClassVar[Decision]
    DECISION_HELD: _ClassVar[Decision]
    DECISION_CONFIRMED: _ClassVar[Decision]
    DECISION_RELEASED: _ClassVar[Decision]
    DECISION_EXPIRED: _ClassVar[Decision]
    DECISION_FULFILLED: _ClassVar[Decision]
    DECISION_ABORTED: _ClassVar[Decision]
STOCK_STATE_UNSPECIFIED: StockState
STOCK_STATE_SELLABLE: StockState
STOCK_STATE_DAMAGED: StockState
STOCK_STATE_QUALITY_HOLD: StockState
PART_STATE_UNSPECIFIED: PartState
PART_STATE_HELD: PartState
PART_STATE_CONFIRMED: PartState
PART_STATE_RELEASED: PartState
PART_STATE_EXPIRED: PartState
PART_STATE_FULFILLED: PartState
DECISION_UNSPECIFIED: Decision
DECISION_PENDING: Decision
DECISION_HELD: Decision
DECISION_CONFIRMED: Decision
DECISION_RELEASED: Decision
DECISION_EXPIRED: Decision
DECISION_FULFILLED: Decision
DECISION_ABORTED: Decision

class Line(_message.Message):
    __slots__ = ("sku", "node_id", "quantity")
    SKU_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    sku: str
    node_id: str
    quantity: int
    def __init__(self, sku: _Optional[str] = ..., node_id: _Optional[str] = ..., quantity: _Optional[int] = ...) -> None: ...

class StockSet(_message.Message):
    __slots__ = ("sku", "node_id", "on_hand", "as_of", "damaged", "quality_hold")
    SKU_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ON_HAND_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    DAMAGED_FIELD_NUMBER: _ClassVar[int]
    QUALITY_HOLD_FIELD_NUMBER: _ClassVar[int]
    sku: str
    node_id: str
    on_hand: int
    as_of: float
    damaged: int
    quality_hold: int
    def __init__(self, sku: _Optional[str] = ..., node_id: _Optional[str] = ..., on_hand: _Optional[int] = ..., as_of: _Optional[float] = ..., damaged: _Optional[int] = ..., quality_hold: _Optional[int] = ...) -> None: ...

class LevelsSet(_message.Message):
    __slots__ = ("sku", "node_id", "on_hand", "as_of", "damaged", "quality_hold", "by")
    SKU_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ON_HAND_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    DAMAGED_FIELD_NUMBER: _ClassVar[int]
    QUALITY_HOLD_FIELD_NUMBER: _ClassVar[int]
    BY_FIELD_NUMBER: _ClassVar[int]
    sku: _containers.RepeatedScalarFieldContainer[str]
    node_id: _containers.RepeatedScalarFieldContainer[str]
    on_hand: _containers.RepeatedScalarFieldContainer[int]
    as_of: _containers.RepeatedScalarFieldContainer[float]
    damaged: _containers.RepeatedScalarFieldContainer[int]
    quality_hold: _containers.RepeatedScalarFieldContainer[int]
    by: str
    def __init__(self, sku: _Optional[_Iterable[str]] = ..., node_id: _Optional[_Iterable[str]] = ..., on_hand: _Optional[_Iterable[int]] = ..., as_of: _Optional[_Iterable[float]] = ..., damaged: _Optional[_Iterable[int]] = ..., quality_hold: _Optional[_Iterable[int]] = ..., by: _Optional[str] = ...) -> None: ...

class StockAdjusted(_message.Message):
    __slots__ = ("adjustment_id", "sku", "node_id", "delta", "reason", "state", "supply_id", "by")
    ADJUSTMENT_ID_FIELD_NUMBER: _ClassVar[int]
    SKU_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SUPPLY_ID_FIELD_NUMBER: _ClassVar[int]
    BY_FIELD_NUMBER: _ClassVar[int]
    adjustment_id: str
    sku: str
    node_id: str
    delta: int
    reason: str
    state: StockState
    supply_id: str
    by: str
    def __init__(self, adjustment_id: _Optional[str] = ..., sku: _Optional[str] = ..., node_id: _Optional[str] = ..., delta: _Optional[int] = ..., reason: _Optional[str] = ..., state: _Optional[_Union[StockState, str]] = ..., supply_id: _Optional[str] = ..., by: _Optional[str] = ...) -> None: ...

class SupplyExpected(_message.Message):
    __slots__ = ("supply_id", "sku", "node_id", "quantity", "expected_at", "by")
    SUPPLY_ID_FIELD_NUMBER: _ClassVar[int]
    SKU_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_AT_FIELD_NUMBER: _ClassVar[int]
    BY_FIELD_NUMBER: _ClassVar[int]
    supply_id: str
    sku: str
    node_id: str
    quantity: int
    expected_at: float
    by: str
    def __init__(self, supply_id: _Optional[str] = ..., sku: _Optional[str] = ..., node_id: _Optional[str] = ..., quantity: _Optional[int] = ..., expected_at: _Optional[float] = ..., by: _Optional[str] = ...) -> None: ...

class HoldPlaced(_message.Message):
    __slots__ = ("reservation_id", "fingerprint", "lines", "created_at", "expires_at", "channel", "customer", "capacity", "attempt", "by")
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    BY_FIELD_NUMBER: _ClassVar[int]
    reservation_id: str
    fingerprint: str
    lines: _containers.RepeatedCompositeFieldContainer[Line]
    created_at: float
    expires_at: float
    channel: str
    customer: str
    capacity: _containers.RepeatedCompositeFieldContainer[NodeDay]
    attempt: str
    by: str
    def __init__(self, reservation_id: _Optional[str] = ..., fingerprint: _Optional[str] = ..., lines: _Optional[_Iterable[_Union[Line, _Mapping]]] = ..., created_at: _Optional[float] = ..., expires_at: _Optional[float] = ..., channel: _Optional[str] = ..., customer: _Optional[str] = ..., capacity: _Optional[_Iterable[_Union[NodeDay, _Mapping]]] = ..., attempt: _Optional[str] = ..., by: _Optional[str] = ...) -> None: ...

class NodeDay(_message.Message):
    __slots__ = ("node_id", "day")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    DAY_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    day: int
    def __init__(self, node_id: _Optional[str] = ..., day: _Optional[int] = ...) -> None: ...

class PartChanged(_message.Message):
    __slots__ = ("reservation_id", "state", "at", "by")
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    BY_FIELD_NUMBER: _ClassVar[int]
    reservation_id: str
    state: PartState
    at: float
    by: str
    def __init__(self, reservation_id: _Optional[str] = ..., state: _Optional[_Union[PartState, str]] = ..., at: _Optional[float] = ..., by: _Optional[str] = ...) -> None: ...

class HoldExtended(_message.Message):
    __slots__ = ("reservation_id", "expires_at", "at", "version", "by")
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    BY_FIELD_NUMBER: _ClassVar[int]
    reservation_id: str
    expires_at: float
    at: float
    version: int
    by: str
    def __init__(self, reservation_id: _Optional[str] = ..., expires_at: _Optional[float] = ..., at: _Optional[float] = ..., version: _Optional[int] = ..., by: _Optional[str] = ...) -> None: ...

class LineUnits(_message.Message):
    __slots__ = ("index", "units", "sku", "node_id")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    UNITS_FIELD_NUMBER: _ClassVar[int]
    SKU_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    index: int
    units: int
    sku: str
    node_id: str
    def __init__(self, index: _Optional[int] = ..., units: _Optional[int] = ..., sku: _Optional[str] = ..., node_id: _Optional[str] = ...) -> None: ...

class LinesClosed(_message.Message):
    __slots__ = ("reservation_id", "operation_id", "kind", "units", "at", "by")
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    OPERATION_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    UNITS_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    BY_FIELD_NUMBER: _ClassVar[int]
    reservation_id: str
    operation_id: str
    kind: str
    units: _containers.RepeatedCompositeFieldContainer[LineUnits]
    at: float
    by: str
    def __init__(self, reservation_id: _Optional[str] = ..., operation_id: _Optional[str] = ..., kind: _Optional[str] = ..., units: _Optional[_Iterable[_Union[LineUnits, _Mapping]]] = ..., at: _Optional[float] = ..., by: _Optional[str] = ...) -> None: ...

class UnitsReturned(_message.Message):
    __slots__ = ("reservation_id", "return_id", "index", "node_id", "units", "sellable", "at", "sku", "by")
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    RETURN_ID_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    UNITS_FIELD_NUMBER: _ClassVar[int]
    SELLABLE_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    SKU_FIELD_NUMBER: _ClassVar[int]
    BY_FIELD_NUMBER: _ClassVar[int]
    reservation_id: str
    return_id: str
    index: int
    node_id: str
    units: int
    sellable: bool
    at: float
    sku: str
    by: str
    def __init__(self, reservation_id: _Optional[str] = ..., return_id: _Optional[str] = ..., index: _Optional[int] = ..., node_id: _Optional[str] = ..., units: _Optional[int] = ..., sellable: _Optional[bool] = ..., at: _Optional[float] = ..., sku: _Optional[str] = ..., by: _Optional[str] = ...) -> None: ...

class LineMoved(_message.Message):
    __slots__ = ("reservation_id", "operation_id", "index", "to_node", "at", "sku", "from_node", "units", "by")
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    OPERATION_ID_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TO_NODE_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    SKU_FIELD_NUMBER: _ClassVar[int]
    FROM_NODE_FIELD_NUMBER: _ClassVar[int]
    UNITS_FIELD_NUMBER: _ClassVar[int]
    BY_FIELD_NUMBER: _ClassVar[int]
    reservation_id: str
    operation_id: str
    index: int
    to_node: str
    at: float
    sku: str
    from_node: str
    units: int
    by: str
    def __init__(self, reservation_id: _Optional[str] = ..., operation_id: _Optional[str] = ..., index: _Optional[int] = ..., to_node: _Optional[str] = ..., at: _Optional[float] = ..., sku: _Optional[str] = ..., from_node: _Optional[str] = ..., units: _Optional[int] = ..., by: _Optional[str] = ...) -> None: ...

class HistoryEntry(_message.Message):
    __slots__ = ("what", "at", "by")
    WHAT_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    BY_FIELD_NUMBER: _ClassVar[int]
    what: str
    at: float
    by: str
    def __init__(self, what: _Optional[str] = ..., at: _Optional[float] = ..., by: _Optional[str] = ...) -> None: ...

class HoldAborted(_message.Message):
    __slots__ = ("reservation_id", "by")
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    BY_FIELD_NUMBER: _ClassVar[int]
    reservation_id: str
    by: str
    def __init__(self, reservation_id: _Optional[str] = ..., by: _Optional[str] = ...) -> None: ...

class ClaimRecorded(_message.Message):
    __slots__ = ("reservation_id", "fingerprint", "partitions", "created_at", "sourcing", "destination", "attempt", "expires_at", "decision", "decided_at", "intents", "history", "decisions")
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    SOURCING_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    DECIDED_AT_FIELD_NUMBER: _ClassVar[int]
    INTENTS_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    DECISIONS_FIELD_NUMBER: _ClassVar[int]
    reservation_id: str
    fingerprint: str
    partitions: _containers.RepeatedScalarFieldContainer[int]
    created_at: float
    sourcing: _containers.RepeatedCompositeFieldContainer[LineSourcing]
    destination: Destination
    attempt: str
    expires_at: float
    decision: Decision
    decided_at: float
    intents: _containers.RepeatedCompositeFieldContainer[Intent]
    history: _containers.RepeatedCompositeFieldContainer[HistoryEntry]
    decisions: int
    def __init__(self, reservation_id: _Optional[str] = ..., fingerprint: _Optional[str] = ..., partitions: _Optional[_Iterable[int]] = ..., created_at: _Optional[float] = ..., sourcing: _Optional[_Iterable[_Union[LineSourcing, _Mapping]]] = ..., destination: _Optional[_Union[Destination, _Mapping]] = ..., attempt: _Optional[str] = ..., expires_at: _Optional[float] = ..., decision: _Optional[_Union[Decision, str]] = ..., decided_at: _Optional[float] = ..., intents: _Optional[_Iterable[_Union[Intent, _Mapping]]] = ..., history: _Optional[_Iterable[_Union[HistoryEntry, _Mapping]]] = ..., decisions: _Optional[int] = ...) -> None: ...

class Follow(_message.Message):
    __slots__ = ("state", "at", "expires_at", "version", "by")
    STATE_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    BY_FIELD_NUMBER: _ClassVar[int]
    state: PartState
    at: float
    expires_at: float
    version: int
    by: str
    def __init__(self, state: _Optional[_Union[PartState, str]] = ..., at: _Optional[float] = ..., expires_at: _Optional[float] = ..., version: _Optional[int] = ..., by: _Optional[str] = ...) -> None: ...

class Withdraw(_message.Message):
    __slots__ = ("attempt", "until", "by")
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    BY_FIELD_NUMBER: _ClassVar[int]
    attempt: str
    until: float
    by: str
    def __init__(self, attempt: _Optional[str] = ..., until: _Optional[float] = ..., by: _Optional[str] = ...) -> None: ...

class Close(_message.Message):
    __slots__ = ("operation_id", "kind", "lines", "at", "by")
    OPERATION_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    BY_FIELD_NUMBER: _ClassVar[int]
    operation_id: str
    kind: str
    lines: _containers.RepeatedCompositeFieldContainer[Line]
    at: float
    by: str
    def __init__(self, operation_id: _Optional[str] = ..., kind: _Optional[str] = ..., lines: _Optional[_Iterable[_Union[Line, _Mapping]]] = ..., at: _Optional[float] = ..., by: _Optional[str] = ...) -> None: ...

class Step(_message.Message):
    __slots__ = ("partition", "follow", "withdraw", "close")
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    WITHDRAW_FIELD_NUMBER: _ClassVar[int]
    CLOSE_FIELD_NUMBER: _ClassVar[int]
    partition: int
    follow: Follow
    withdraw: Withdraw
    close: Close
    def __init__(self, partition: _Optional[int] = ..., follow: _Optional[_Union[Follow, _Mapping]] = ..., withdraw: _Optional[_Union[Withdraw, _Mapping]] = ..., close: _Optional[_Union[Close, _Mapping]] = ...) -> None: ...

class Intent(_message.Message):
    __slots__ = ("operation", "steps")
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    operation: str
    steps: _containers.RepeatedCompositeFieldContainer[Step]
    def __init__(self, operation: _Optional[str] = ..., steps: _Optional[_Iterable[_Union[Step, _Mapping]]] = ...) -> None: ...

class ReservationDecided(_message.Message):
    __slots__ = ("reservation_id", "decision", "at", "expires_at", "intent", "by")
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    INTENT_FIELD_NUMBER: _ClassVar[int]
    BY_FIELD_NUMBER: _ClassVar[int]
    reservation_id: str
    decision: Decision
    at: float
    expires_at: float
    intent: Intent
    by: str
    def __init__(self, reservation_id: _Optional[str] = ..., decision: _Optional[_Union[Decision, str]] = ..., at: _Optional[float] = ..., expires_at: _Optional[float] = ..., intent: _Optional[_Union[Intent, _Mapping]] = ..., by: _Optional[str] = ...) -> None: ...

class IntentCarried(_message.Message):
    __slots__ = ("reservation_id", "operation", "partitions")
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    reservation_id: str
    operation: str
    partitions: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, reservation_id: _Optional[str] = ..., operation: _Optional[str] = ..., partitions: _Optional[_Iterable[int]] = ...) -> None: ...

class HoldFenced(_message.Message):
    __slots__ = ("reservation_id", "attempt", "until")
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    reservation_id: str
    attempt: str
    until: float
    def __init__(self, reservation_id: _Optional[str] = ..., attempt: _Optional[str] = ..., until: _Optional[float] = ...) -> None: ...

class Destination(_message.Message):
    __slots__ = ("latitude", "longitude", "pickup_node_id")
    LATITUDE_FIELD_NUMBER: _ClassVar[int]
    LONGITUDE_FIELD_NUMBER: _ClassVar[int]
    PICKUP_NODE_ID_FIELD_NUMBER: _ClassVar[int]
    latitude: float
    longitude: float
    pickup_node_id: str
    def __init__(self, latitude: _Optional[float] = ..., longitude: _Optional[float] = ..., pickup_node_id: _Optional[str] = ...) -> None: ...

class LineSourcing(_message.Message):
    __slots__ = ("sku", "quantity", "rules", "considered", "omitted")
    SKU_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    RULES_FIELD_NUMBER: _ClassVar[int]
    CONSIDERED_FIELD_NUMBER: _ClassVar[int]
    OMITTED_FIELD_NUMBER: _ClassVar[int]
    sku: str
    quantity: int
    rules: _containers.RepeatedScalarFieldContainer[str]
    considered: _containers.RepeatedCompositeFieldContainer[NodeVerdict]
    omitted: int
    def __init__(self, sku: _Optional[str] = ..., quantity: _Optional[int] = ..., rules: _Optional[_Iterable[str]] = ..., considered: _Optional[_Iterable[_Union[NodeVerdict, _Mapping]]] = ..., omitted: _Optional[int] = ...) -> None: ...

class NodeVerdict(_message.Message):
    __slots__ = ("node_id", "units", "reason", "distance_km")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    UNITS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_KM_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    units: int
    reason: str
    distance_km: float
    def __init__(self, node_id: _Optional[str] = ..., units: _Optional[int] = ..., reason: _Optional[str] = ..., distance_km: _Optional[float] = ...) -> None: ...

class ClaimDropped(_message.Message):
    __slots__ = ("reservation_id",)
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    reservation_id: str
    def __init__(self, reservation_id: _Optional[str] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("stock_set", "stock_adjusted", "hold_placed", "part_changed", "hold_aborted", "claim_recorded", "claim_dropped", "supply_expected", "hold_extended", "lines_closed", "units_returned", "line_moved", "levels_set", "reservation_decided", "intent_carried", "hold_fenced")
    STOCK_SET_FIELD_NUMBER: _ClassVar[int]
    STOCK_ADJUSTED_FIELD_NUMBER: _ClassVar[int]
    HOLD_PLACED_FIELD_NUMBER: _ClassVar[int]
    PART_CHANGED_FIELD_NUMBER: _ClassVar[int]
    HOLD_ABORTED_FIELD_NUMBER: _ClassVar[int]
    CLAIM_RECORDED_FIELD_NUMBER: _ClassVar[int]
    CLAIM_DROPPED_FIELD_NUMBER: _ClassVar[int]
    SUPPLY_EXPECTED_FIELD_NUMBER: _ClassVar[int]
    HOLD_EXTENDED_FIELD_NUMBER: _ClassVar[int]
    LINES_CLOSED_FIELD_NUMBER: _ClassVar[int]
    UNITS_RETURNED_FIELD_NUMBER: _ClassVar[int]
    LINE_MOVED_FIELD_NUMBER: _ClassVar[int]
    LEVELS_SET_FIELD_NUMBER: _ClassVar[int]
    RESERVATION_DECIDED_FIELD_NUMBER: _ClassVar[int]
    INTENT_CARRIED_FIELD_NUMBER: _ClassVar[int]
    HOLD_FENCED_FIELD_NUMBER: _ClassVar[int]
    stock_set: StockSet
    stock_adjusted: StockAdjusted
    hold_placed: HoldPlaced
    part_changed: PartChanged
    hold_aborted: HoldAborted
    claim_recorded: ClaimRecorded
    claim_dropped: ClaimDropped
    supply_expected: SupplyExpected
    hold_extended: HoldExtended
    lines_closed: LinesClosed
    units_returned: UnitsReturned
    line_moved: LineMoved
    levels_set: LevelsSet
    reservation_decided: ReservationDecided
    intent_carried: IntentCarried
    hold_fenced: HoldFenced
    def __init__(self, stock_set: _Optional[_Union[StockSet, _Mapping]] = ..., stock_adjusted: _Optional[_Union[StockAdjusted, _Mapping]] = ..., hold_placed: _Optional[_Union[HoldPlaced, _Mapping]] = ..., part_changed: _Optional[_Union[PartChanged, _Mapping]] = ..., hold_aborted: _Optional[_Union[HoldAborted, _Mapping]] = ..., claim_recorded: _Optional[_Union[ClaimRecorded, _Mapping]] = ..., claim_dropped: _Optional[_Union[ClaimDropped, _Mapping]] = ..., supply_expected: _Optional[_Union[SupplyExpected, _Mapping]] = ..., hold_extended: _Optional[_Union[HoldExtended, _Mapping]] = ..., lines_closed: _Optional[_Union[LinesClosed, _Mapping]] = ..., units_returned: _Optional[_Union[UnitsReturned, _Mapping]] = ..., line_moved: _Optional[_Union[LineMoved, _Mapping]] = ..., levels_set: _Optional[_Union[LevelsSet, _Mapping]] = ..., reservation_decided: _Optional[_Union[ReservationDecided, _Mapping]] = ..., intent_carried: _Optional[_Union[IntentCarried, _Mapping]] = ..., hold_fenced: _Optional[_Union[HoldFenced, _Mapping]] = ...) -> None: ...

class JournalEntry(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[Event]
    def __init__(self, events: _Optional[_Iterable[_Union[Event, _Mapping]]] = ...) -> None: ...

class PartRecord(_message.Message):
    __slots__ = ("reservation_id", "fingerprint", "lines", "state", "created_at", "expires_at", "changed_at", "channel", "customer", "history", "fulfilled", "cancelled", "operations", "returned", "capacity", "attempt", "followed")
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    CHANGED_AT_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    FULFILLED_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    OPERATIONS_FIELD_NUMBER: _ClassVar[int]
    RETURNED_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    FOLLOWED_FIELD_NUMBER: _ClassVar[int]
    reservation_id: str
    fingerprint: str
    lines: _containers.RepeatedCompositeFieldContainer[Line]
    state: PartState
    created_at: float
    expires_at: float
    changed_at: float
    channel: str
    customer: str
    history: _containers.RepeatedCompositeFieldContainer[HistoryEntry]
    fulfilled: _containers.RepeatedScalarFieldContainer[int]
    cancelled: _containers.RepeatedScalarFieldContainer[int]
    operations: _containers.RepeatedScalarFieldContainer[str]
    returned: _containers.RepeatedScalarFieldContainer[int]
    capacity: _containers.RepeatedCompositeFieldContainer[NodeDay]
    attempt: str
    followed: int
    def __init__(self, reservation_id: _Optional[str] = ..., fingerprint: _Optional[str] = ..., lines: _Optional[_Iterable[_Union[Line, _Mapping]]] = ..., state: _Optional[_Union[PartState, str]] = ..., created_at: _Optional[float] = ..., expires_at: _Optional[float] = ..., changed_at: _Optional[float] = ..., channel: _Optional[str] = ..., customer: _Optional[str] = ..., history: _Optional[_Iterable[_Union[HistoryEntry, _Mapping]]] = ..., fulfilled: _Optional[_Iterable[int]] = ..., cancelled: _Optional[_Iterable[int]] = ..., operations: _Optional[_Iterable[str]] = ..., returned: _Optional[_Iterable[int]] = ..., capacity: _Optional[_Iterable[_Union[NodeDay, _Mapping]]] = ..., attempt: _Optional[str] = ..., followed: _Optional[int] = ...) -> None: ...

class PositionRecord(_message.Message):
    __slots__ = ("sku", "node_id", "on_hand", "as_of", "damaged", "quality_hold")
    SKU_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ON_HAND_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    DAMAGED_FIELD_NUMBER: _ClassVar[int]
    QUALITY_HOLD_FIELD_NUMBER: _ClassVar[int]
    sku: str
    node_id: str
    on_hand: int
    as_of: float
    damaged: int
    quality_hold: int
    def __init__(self, sku: _Optional[str] = ..., node_id: _Optional[str] = ..., on_hand: _Optional[int] = ..., as_of: _Optional[float] = ..., damaged: _Optional[int] = ..., quality_hold: _Optional[int] = ...) -> None: ...

class AdjustmentRecord(_message.Message):
    __slots__ = ("adjustment_id", "sku", "node_id", "delta", "state", "supply_id")
    ADJUSTMENT_ID_FIELD_NUMBER: _ClassVar[int]
    SKU_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SUPPLY_ID_FIELD_NUMBER: _ClassVar[int]
    adjustment_id: str
    sku: str
    node_id: str
    delta: int
    state: StockState
    supply_id: str
    def __init__(self, adjustment_id: _Optional[str] = ..., sku: _Optional[str] = ..., node_id: _Optional[str] = ..., delta: _Optional[int] = ..., state: _Optional[_Union[StockState, str]] = ..., supply_id: _Optional[str] = ...) -> None: ...

class PartitionSnapshot(_message.Message):
    __slots__ = ("partition", "last_entry_id", "positions", "parts", "claims", "adjustments", "supplies", "levels", "fences")
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    LAST_ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    POSITIONS_FIELD_NUMBER: _ClassVar[int]
    PARTS_FIELD_NUMBER: _ClassVar[int]
    CLAIMS_FIELD_NUMBER: _ClassVar[int]
    ADJUSTMENTS_FIELD_NUMBER: _ClassVar[int]
    SUPPLIES_FIELD_NUMBER: _ClassVar[int]
    LEVELS_FIELD_NUMBER: _ClassVar[int]
    FENCES_FIELD_NUMBER: _ClassVar[int]
    partition: int
    last_entry_id: str
    positions: _containers.RepeatedCompositeFieldContainer[PositionRecord]
    parts: _containers.RepeatedCompositeFieldContainer[PartRecord]
    claims: _containers.RepeatedCompositeFieldContainer[ClaimRecorded]
    adjustments: _containers.RepeatedCompositeFieldContainer[AdjustmentRecord]
    supplies: _containers.RepeatedCompositeFieldContainer[SupplyExpected]
    levels: LevelsSet
    fences: _containers.RepeatedCompositeFieldContainer[HoldFenced]
    def __init__(self, partition: _Optional[int] = ..., last_entry_id: _Optional[str] = ..., positions: _Optional[_Iterable[_Union[PositionRecord, _Mapping]]] = ..., parts: _Optional[_Iterable[_Union[PartRecord, _Mapping]]] = ..., claims: _Optional[_Iterable[_Union[ClaimRecorded, _Mapping]]] = ..., adjustments: _Optional[_Iterable[_Union[AdjustmentRecord, _Mapping]]] = ..., supplies: _Optional[_Iterable[_Union[SupplyExpected, _Mapping]]] = ..., levels: _Optional[_Union[LevelsSet, _Mapping]] = ..., fences: _Optional[_Iterable[_Union[HoldFenced, _Mapping]]] = ...) -> None: ...
