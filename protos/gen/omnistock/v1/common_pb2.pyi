import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class NodeType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NODE_TYPE_UNSPECIFIED: _ClassVar[NodeType]
    NODE_TYPE_STORE: _ClassVar[NodeType]
    NODE_TYPE_DC: _ClassVar[NodeType]
    NODE_TYPE_3PL: _ClassVar[NodeType]
    NODE_TYPE_DROPSHIP: _ClassVar[NodeType]

class StockState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STOCK_STATE_UNSPECIFIED: _ClassVar[StockState]
    STOCK_STATE_SELLABLE: _ClassVar[StockState]
    STOCK_STATE_DAMAGED: _ClassVar[StockState]
    STOCK_STATE_QUALITY_HOLD: _ClassVar[StockState]

class StockStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STOCK_STATUS_UNSPECIFIED: _ClassVar[StockStatus]
    STOCK_STATUS_IN_STOCK: _ClassVar[StockStatus]
    STOCK_STATUS_LOW_STOCK: _ClassVar[StockStatus]
    STOCK_STATUS_OUT_OF_STOCK: _ClassVar[StockStatus]
NODE_TYPE_UNSPECIFIED: NodeType
NODE_TYPE_STORE: NodeType
NODE_TYPE_DC: NodeType
NODE_TYPE_3PL: NodeType
NODE_TYPE_DROPSHIP: NodeType
STOCK_STATE_UNSPECIFIED: StockState
STOCK_STATE_SELLABLE: StockState
STOCK_STATE_DAMAGED: StockState
STOCK_STATE_QUALITY_HOLD: StockState
STOCK_STATUS_UNSPECIFIED: StockStatus
STOCK_STATUS_IN_STOCK: StockStatus
STOCK_STATUS_LOW_STOCK: StockStatus
STOCK_STATUS_OUT_OF_STOCK: StockStatus

class Node(_message.Message):
    __slots__ = ("node_id", "type", "name", "ships", "pickup", "latitude", "longitude", "enabled", "priority", "shipment_cost", "daily_capacity")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SHIPS_FIELD_NUMBER: _ClassVar[int]
    PICKUP_FIELD_NUMBER: _ClassVar[int]
    LATITUDE_FIELD_NUMBER: _ClassVar[int]
    LONGITUDE_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    SHIPMENT_COST_FIELD_NUMBER: _ClassVar[int]
    DAILY_CAPACITY_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    type: NodeType
    name: str
    ships: bool
    pickup: bool
    latitude: float
    longitude: float
    enabled: bool
    priority: int
    shipment_cost: float
    daily_capacity: int
    def __init__(self, node_id: _Optional[str] = ..., type: _Optional[_Union[NodeType, str]] = ..., name: _Optional[str] = ..., ships: _Optional[bool] = ..., pickup: _Optional[bool] = ..., latitude: _Optional[float] = ..., longitude: _Optional[float] = ..., enabled: _Optional[bool] = ..., priority: _Optional[int] = ..., shipment_cost: _Optional[float] = ..., daily_capacity: _Optional[int] = ...) -> None: ...

class Location(_message.Message):
    __slots__ = ("latitude", "longitude")
    LATITUDE_FIELD_NUMBER: _ClassVar[int]
    LONGITUDE_FIELD_NUMBER: _ClassVar[int]
    latitude: float
    longitude: float
    def __init__(self, latitude: _Optional[float] = ..., longitude: _Optional[float] = ...) -> None: ...

class Position(_message.Message):
    __slots__ = ("sku", "node_id", "on_hand", "reserved", "committed", "available", "as_of", "damaged", "quality_hold", "inbound")
    SKU_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ON_HAND_FIELD_NUMBER: _ClassVar[int]
    RESERVED_FIELD_NUMBER: _ClassVar[int]
    COMMITTED_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    DAMAGED_FIELD_NUMBER: _ClassVar[int]
    QUALITY_HOLD_FIELD_NUMBER: _ClassVar[int]
    INBOUND_FIELD_NUMBER: _ClassVar[int]
    sku: str
    node_id: str
    on_hand: int
    reserved: int
    committed: int
    available: int
    as_of: _timestamp_pb2.Timestamp
    damaged: int
    quality_hold: int
    inbound: int
    def __init__(self, sku: _Optional[str] = ..., node_id: _Optional[str] = ..., on_hand: _Optional[int] = ..., reserved: _Optional[int] = ..., committed: _Optional[int] = ..., available: _Optional[int] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., damaged: _Optional[int] = ..., quality_hold: _Optional[int] = ..., inbound: _Optional[int] = ...) -> None: ...

class InsufficientStock(_message.Message):
    __slots__ = ("lines",)
    LINES_FIELD_NUMBER: _ClassVar[int]
    lines: _containers.RepeatedCompositeFieldContainer[ShortLine]
    def __init__(self, lines: _Optional[_Iterable[_Union[ShortLine, _Mapping]]] = ...) -> None: ...

class ShortLine(_message.Message):
    __slots__ = ("sku", "node_id", "requested", "available")
    SKU_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    sku: str
    node_id: str
    requested: int
    available: int
    def __init__(self, sku: _Optional[str] = ..., node_id: _Optional[str] = ..., requested: _Optional[int] = ..., available: _Optional[int] = ...) -> None: ...
