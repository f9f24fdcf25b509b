import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from protos.gen.omnistock.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetAvailabilityRequest(_message.Message):
    __slots__ = ("skus", "include_nodes", "channel_id", "consistent")
    SKUS_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_NODES_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    CONSISTENT_FIELD_NUMBER: _ClassVar[int]
    skus: _containers.RepeatedScalarFieldContainer[str]
    include_nodes: bool
    channel_id: str
    consistent: bool
    def __init__(self, skus: _Optional[_Iterable[str]] = ..., include_nodes: _Optional[bool] = ..., channel_id: _Optional[str] = ..., consistent: _Optional[bool] = ...) -> None: ...

class SkuAvailability(_message.Message):
    __slots__ = ("sku", "available", "on_hand", "reserved", "committed", "nodes", "damaged", "quality_hold", "status")
    SKU_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    ON_HAND_FIELD_NUMBER: _ClassVar[int]
    RESERVED_FIELD_NUMBER: _ClassVar[int]
    COMMITTED_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    DAMAGED_FIELD_NUMBER: _ClassVar[int]
    QUALITY_HOLD_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    sku: str
    available: int
    on_hand: int
    reserved: int
    committed: int
    nodes: _containers.RepeatedCompositeFieldContainer[_common_pb2.Position]
    damaged: int
    quality_hold: int
    status: _common_pb2.StockStatus
    def __init__(self, sku: _Optional[str] = ..., available: _Optional[int] = ..., on_hand: _Optional[int] = ..., reserved: _Optional[int] = ..., committed: _Optional[int] = ..., nodes: _Optional[_Iterable[_Union[_common_pb2.Position, _Mapping]]] = ..., damaged: _Optional[int] = ..., quality_hold: _Optional[int] = ..., status: _Optional[_Union[_common_pb2.StockStatus, str]] = ...) -> None: ...

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
