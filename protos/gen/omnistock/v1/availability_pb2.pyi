import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from omnistock.protos.gen.omnistock.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetAvailabilityRequest(_message.Message):
    __slots__ = ("skus", "include_nodes", "channel_id", "consistent", "by_date", "quantity")
    SKUS_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_NODES_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    CONSISTENT_FIELD_NUMBER: _ClassVar[int]
    BY_DATE_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    skus: _containers.RepeatedScalarFieldContainer[str]
    include_nodes: bool
    channel_id: str
    consistent: bool
    by_date: _timestamp_pb2.Timestamp
    quantity: int
    def __init__(self, skus: _Optional[_Iterable[str]] = ..., include_nodes: _Optional[bool] = ..., channel_id: _Optional[str] = ..., consistent: _Optional[bool] = ..., by_date: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., quantity: _Optional[int] = ...) -> None: ...

class SkuAvailability(_message.Message):
    __slots__ = ("sku", "available", "on_hand", "reserved", "committed", "nodes", "damaged", "quality_hold", "status", "inbound", "available_by_date", "earliest_date")
    SKU_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    ON_HAND_FIELD_NUMBER: _ClassVar[int]
    RESERVED_FIELD_NUMBER: _ClassVar[int]
    COMMITTED_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    DAMAGED_FIELD_NUMBER: _ClassVar[int]
    QUALITY_HOLD_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    INBOUND_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_BY_DATE_FIELD_NUMBER: _ClassVar[int]
    EARLIEST_DATE_FIELD_NUMBER: _ClassVar[int]
    sku: str
    available: int
    on_hand: int
    reserved: int
    committed: int
    nodes: _containers.RepeatedCompositeFieldContainer[_common_pb2.Position]
    damaged: int
    quality_hold: int
    status: _common_pb2.StockStatus
    inbound: int
    available_by_date: int
    earliest_date: _timestamp_pb2.Timestamp
    def __init__(self, sku: _Optional[str] = ..., available: _Optional[int] = ..., on_hand: _Optional[int] = ..., reserved: _Optional[int] = ..., committed: _Optional[int] = ..., nodes: _Optional[_Iterable[_Union[_common_pb2.Position, _Mapping]]] = ..., damaged: _Optional[int] = ..., quality_hold: _Optional[int] = ..., status: _Optional[_Union[_common_pb2.StockStatus, str]] = ..., inbound: _Optional[int] = ..., available_by_date: _Optional[int] = ..., earliest_date: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetAvailabilityResponse(_message.Message):
    __slots__ = ("skus", "as_of", "version", "consistent")
    SKUS_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CONSISTENT_FIELD_NUMBER: _ClassVar[int]
    skus: _containers.RepeatedCompositeFieldContainer[SkuAvailability]
    as_of: _timestamp_pb2.Timestamp
    version: int
    consistent: bool
    def __init__(self, skus: _Optional[_Iterable[_Union[SkuAvailability, _Mapping]]] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., version: _Optional[int] = ..., consistent: _Optional[bool] = ...) -> None: ...

class BasketItem(_message.Message):
    __slots__ = ("sku", "quantity")
    SKU_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    sku: str
    quantity: int
    def __init__(self, sku: _Optional[str] = ..., quantity: _Optional[int] = ...) -> None: ...

class FindPickupStoresRequest(_message.Message):
    __slots__ = ("items", "location", "store_id", "radius_km", "channel_id", "limit")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    STORE_ID_FIELD_NUMBER: _ClassVar[int]
    RADIUS_KM_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[BasketItem]
    location: _common_pb2.Location
    store_id: str
    radius_km: float
    channel_id: str
    limit: int
    def __init__(self, items: _Optional[_Iterable[_Union[BasketItem, _Mapping]]] = ..., location: _Optional[_Union[_common_pb2.Location, _Mapping]] = ..., store_id: _Optional[str] = ..., radius_km: _Optional[float] = ..., channel_id: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class ItemAtStore(_message.Message):
    __slots__ = ("sku", "requested", "available")
    SKU_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    sku: str
    requested: int
    available: int
    def __init__(self, sku: _Optional[str] = ..., requested: _Optional[int] = ..., available: _Optional[int] = ...) -> None: ...

class PickupStore(_message.Message):
    __slots__ = ("node", "distance_km", "items")
    NODE_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_KM_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    node: _common_pb2.Node
    distance_km: float
    items: _containers.RepeatedCompositeFieldContainer[ItemAtStore]
    def __init__(self, node: _Optional[_Union[_common_pb2.Node, _Mapping]] = ..., distance_km: _Optional[float] = ..., items: _Optional[_Iterable[_Union[ItemAtStore, _Mapping]]] = ...) -> None: ...

class FindPickupStoresResponse(_message.Message):
    __slots__ = ("complete", "partial", "as_of", "version")
    COMPLETE_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    complete: _containers.RepeatedCompositeFieldContainer[PickupStore]
    partial: _containers.RepeatedCompositeFieldContainer[PickupStore]
    as_of: _timestamp_pb2.Timestamp
    version: int
    def __init__(self, complete: _Optional[_Iterable[_Union[PickupStore, _Mapping]]] = ..., partial: _Optional[_Iterable[_Union[PickupStore, _Mapping]]] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., version: _Optional[int] = ...) -> None: ...

class WatchAvailabilityRequest(_message.Message):
    __slots__ = ("channel_id", "skus", "from_version")
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    SKUS_FIELD_NUMBER: _ClassVar[int]
    FROM_VERSION_FIELD_NUMBER: _ClassVar[int]
    channel_id: str
    skus: _containers.RepeatedScalarFieldContainer[str]
    from_version: int
    def __init__(self, channel_id: _Optional[str] = ..., skus: _Optional[_Iterable[str]] = ..., from_version: _Optional[int] = ...) -> None: ...

class AvailabilityChange(_message.Message):
    __slots__ = ("sku", "available", "status", "previous_status")
    SKU_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_STATUS_FIELD_NUMBER: _ClassVar[int]
    sku: str
    available: int
    status: _common_pb2.StockStatus
    previous_status: _common_pb2.StockStatus
    def __init__(self, sku: _Optional[str] = ..., available: _Optional[int] = ..., status: _Optional[_Union[_common_pb2.StockStatus, str]] = ..., previous_status: _Optional[_Union[_common_pb2.StockStatus, str]] = ...) -> None: ...

class WatchAvailabilityResponse(_message.Message):
    __slots__ = ("version", "as_of", "changes", "catch_up")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    AS_OF_FIELD_NUMBER: _ClassVar[int]
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    CATCH_UP_FIELD_NUMBER: _ClassVar[int]
    version: int
    as_of: _timestamp_pb2.Timestamp
    changes: _containers.RepeatedCompositeFieldContainer[AvailabilityChange]
    catch_up: bool
    def __init__(self, version: _Optional[int] = ..., as_of: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., changes: _Optional[_Iterable[_Union[AvailabilityChange, _Mapping]]] = ..., catch_up: _Optional[bool] = ...) -> None: ...
