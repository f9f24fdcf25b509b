import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from omnistock.protos.gen.omnistock.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AdjustmentOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ADJUSTMENT_OUTCOME_UNSPECIFIED: _ClassVar[AdjustmentOutcome]
    ADJUSTMENT_OUTCOME_APPLIED: _ClassVar[AdjustmentOutcome]
    ADJUSTMENT_OUTCOME_REPLAYED: _ClassVar[AdjustmentOutcome]
    ADJUSTMENT_OUTCOME_REFUSED_NEGATIVE: _ClassVar[AdjustmentOutcome]
    ADJUSTMENT_OUTCOME_CONFLICT: _ClassVar[AdjustmentOutcome]
    ADJUSTMENT_OUTCOME_UNKNOWN_SUPPLY: _ClassVar[AdjustmentOutcome]
ADJUSTMENT_OUTCOME_UNSPECIFIED: AdjustmentOutcome
ADJUSTMENT_OUTCOME_APPLIED: AdjustmentOutcome
ADJUSTMENT_OUTCOME_REPLAYED: AdjustmentOutcome
ADJUSTMENT_OUTCOME_REFUSED_NEGATIVE: AdjustmentOutcome
ADJUSTMENT_OUTCOME_CONFLICT: AdjustmentOutcome
ADJUSTMENT_OUTCOME_UNKNOWN_SUPPLY: AdjustmentOutcome

class InboundSupply(_message.Message):
    __slots__ = ("supply_id", "sku", "node_id", "quantity", "expected_at")
    SUPPLY_ID_FIELD_NUMBER: _ClassVar[int]
    SKU_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_AT_FIELD_NUMBER: _ClassVar[int]
    supply_id: str
    sku: str
    node_id: str
    quantity: int
    expected_at: _timestamp_pb2.Timestamp
    def __init__(self, supply_id: _Optional[str] = ..., sku: _Optional[str] = ..., node_id: _Optional[str] = ..., quantity: _Optional[int] = ..., expected_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ExpectSupplyRequest(_message.Message):
    __slots__ = ("supplies",)
    SUPPLIES_FIELD_NUMBER: _ClassVar[int]
    supplies: _containers.RepeatedCompositeFieldContainer[InboundSupply]
    def __init__(self, supplies: _Optional[_Iterable[_Union[InboundSupply, _Mapping]]] = ...) -> None: ...

class ExpectSupplyResponse(_message.Message):
    __slots__ = ("applied",)
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    applied: int
    def __init__(self, applied: _Optional[int] = ...) -> None: ...

class PutNodesRequest(_message.Message):
    __slots__ = ("nodes",)
    NODES_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedCompositeFieldContainer[_common_pb2.Node]
    def __init__(self, nodes: _Optional[_Iterable[_Union[_common_pb2.Node, _Mapping]]] = ...) -> None: ...

class PutNodesResponse(_message.Message):
    __slots__ = ("created", "updated")
    CREATED_FIELD_NUMBER: _ClassVar[int]
    UPDATED_FIELD_NUMBER: _ClassVar[int]
    created: int
    updated: int
    def __init__(self, created: _Optional[int] = ..., updated: _Optional[int] = ...) -> None: ...

class ListNodesRequest(_message.Message):
    __slots__ = ("type",)
    TYPE_FIELD_NUMBER: _ClassVar[int]
    type: _common_pb2.NodeType
    def __init__(self, type: _Optional[_Union[_common_pb2.NodeType, str]] = ...) -> None: ...

class ListNodesResponse(_message.Message):
    __slots__ = ("nodes",)
    NODES_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedCompositeFieldContainer[_common_pb2.Node]
    def __init__(self, nodes: _Optional[_Iterable[_Union[_common_pb2.Node, _Mapping]]] = ...) -> None: ...

class StockLevel(_message.Message):
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
    as_of: _timestamp_pb2.Timestamp
    damaged: int
    quality_hold: int
    def __init__(self, sku: _Optional[str] = ..., node_id: _Optional[str] = ..., on_hand: _Optional[int] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., damaged: _Optional[int] = ..., quality_hold: _Optional[int] = ...) -> None: ...

class SetStockRequest(_message.Message):
    __slots__ = ("levels",)
    LEVELS_FIELD_NUMBER: _ClassVar[int]
    levels: _containers.RepeatedCompositeFieldContainer[StockLevel]
    def __init__(self, levels: _Optional[_Iterable[_Union[StockLevel, _Mapping]]] = ...) -> None: ...

class SetStockResponse(_message.Message):
    __slots__ = ("applied", "stale")
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    STALE_FIELD_NUMBER: _ClassVar[int]
    applied: int
    stale: int
    def __init__(self, applied: _Optional[int] = ..., stale: _Optional[int] = ...) -> None: ...

class StockAdjustment(_message.Message):
    __slots__ = ("adjustment_id", "sku", "node_id", "delta", "reason", "state", "supply_id")
    ADJUSTMENT_ID_FIELD_NUMBER: _ClassVar[int]
    SKU_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SUPPLY_ID_FIELD_NUMBER: _ClassVar[int]
    adjustment_id: str
    sku: str
    node_id: str
    delta: int
    reason: str
    state: _common_pb2.StockState
    supply_id: str
    def __init__(self, adjustment_id: _Optional[str] = ..., sku: _Optional[str] = ..., node_id: _Optional[str] = ..., delta: _Optional[int] = ..., reason: _Optional[str] = ..., state: _Optional[_Union[_common_pb2.StockState, str]] = ..., supply_id: _Optional[str] = ...) -> None: ...

class AdjustStockRequest(_message.Message):
    __slots__ = ("adjustments",)
    ADJUSTMENTS_FIELD_NUMBER: _ClassVar[int]
    adjustments: _containers.RepeatedCompositeFieldContainer[StockAdjustment]
    def __init__(self, adjustments: _Optional[_Iterable[_Union[StockAdjustment, _Mapping]]] = ...) -> None: ...

class AdjustmentResult(_message.Message):
    __slots__ = ("adjustment_id", "outcome", "position")
    ADJUSTMENT_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    adjustment_id: str
    outcome: AdjustmentOutcome
    position: _common_pb2.Position
    def __init__(self, adjustment_id: _Optional[str] = ..., outcome: _Optional[_Union[AdjustmentOutcome, str]] = ..., position: _Optional[_Union[_common_pb2.Position, _Mapping]] = ...) -> None: ...

class AdjustStockResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[AdjustmentResult]
    def __init__(self, results: _Optional[_Iterable[_Union[AdjustmentResult, _Mapping]]] = ...) -> None: ...

class StockColumns(_message.Message):
    __slots__ = ("sku", "node_id", "on_hand", "damaged", "quality_hold", "as_of_seconds")
    SKU_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ON_HAND_FIELD_NUMBER: _ClassVar[int]
    DAMAGED_FIELD_NUMBER: _ClassVar[int]
    QUALITY_HOLD_FIELD_NUMBER: _ClassVar[int]
    AS_OF_SECONDS_FIELD_NUMBER: _ClassVar[int]
    sku: _containers.RepeatedScalarFieldContainer[str]
    node_id: _containers.RepeatedScalarFieldContainer[str]
    on_hand: _containers.RepeatedScalarFieldContainer[int]
    damaged: _containers.RepeatedScalarFieldContainer[int]
    quality_hold: _containers.RepeatedScalarFieldContainer[int]
    as_of_seconds: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, sku: _Optional[_Iterable[str]] = ..., node_id: _Optional[_Iterable[str]] = ..., on_hand: _Optional[_Iterable[int]] = ..., damaged: _Optional[_Iterable[int]] = ..., quality_hold: _Optional[_Iterable[int]] = ..., as_of_seconds: _Optional[_Iterable[float]] = ...) -> None: ...

class LoadStockRequest(_message.Message):
    __slots__ = ("levels", "columns")
    LEVELS_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    levels: _containers.RepeatedCompositeFieldContainer[StockLevel]
    columns: StockColumns
    def __init__(self, levels: _Optional[_Iterable[_Union[StockLevel, _Mapping]]] = ..., columns: _Optional[_Union[StockColumns, _Mapping]] = ...) -> None: ...

class CheckConservationRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CheckConservationResponse(_message.Message):
    __slots__ = ("ok", "problems", "shards_checked", "disagreements", "disagreement_count", "reservations_checked", "reservations_in_doubt")
    OK_FIELD_NUMBER: _ClassVar[int]
    PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    SHARDS_CHECKED_FIELD_NUMBER: _ClassVar[int]
    DISAGREEMENTS_FIELD_NUMBER: _ClassVar[int]
    DISAGREEMENT_COUNT_FIELD_NUMBER: _ClassVar[int]
    RESERVATIONS_CHECKED_FIELD_NUMBER: _ClassVar[int]
    RESERVATIONS_IN_DOUBT_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    problems: _containers.RepeatedScalarFieldContainer[str]
    shards_checked: int
    disagreements: _containers.RepeatedCompositeFieldContainer[ReservationDisagreement]
    disagreement_count: int
    reservations_checked: int
    reservations_in_doubt: int
    def __init__(self, ok: _Optional[bool] = ..., problems: _Optional[_Iterable[str]] = ..., shards_checked: _Optional[int] = ..., disagreements: _Optional[_Iterable[_Union[ReservationDisagreement, _Mapping]]] = ..., disagreement_count: _Optional[int] = ..., reservations_checked: _Optional[int] = ..., reservations_in_doubt: _Optional[int] = ...) -> None: ...

class ReservationDisagreement(_message.Message):
    __slots__ = ("reservation_id", "problem")
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    PROBLEM_FIELD_NUMBER: _ClassVar[int]
    reservation_id: str
    problem: str
    def __init__(self, reservation_id: _Optional[str] = ..., problem: _Optional[str] = ...) -> None: ...

class LoadStockResponse(_message.Message):
    __slots__ = ("received", "applied", "stale")
    RECEIVED_FIELD_NUMBER: _ClassVar[int]
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    STALE_FIELD_NUMBER: _ClassVar[int]
    received: int
    applied: int
    stale: int
    def __init__(self, received: _Optional[int] = ..., applied: _Optional[int] = ..., stale: _Optional[int] = ...) -> None: ...
