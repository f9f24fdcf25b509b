from omnistock.protos.gen.omnistock.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PurchaseLimit(_message.Message):
    __slots__ = ("sku", "max_per_customer")
    SKU_FIELD_NUMBER: _ClassVar[int]
    MAX_PER_CUSTOMER_FIELD_NUMBER: _ClassVar[int]
    sku: str
    max_per_customer: int
    def __init__(self, sku: _Optional[str] = ..., max_per_customer: _Optional[int] = ...) -> None: ...

class PutPurchaseLimitsRequest(_message.Message):
    __slots__ = ("limits",)
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    limits: _containers.RepeatedCompositeFieldContainer[PurchaseLimit]
    def __init__(self, limits: _Optional[_Iterable[_Union[PurchaseLimit, _Mapping]]] = ...) -> None: ...

class PutPurchaseLimitsResponse(_message.Message):
    __slots__ = ("network",)
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    network: NetworkConfig
    def __init__(self, network: _Optional[_Union[NetworkConfig, _Mapping]] = ...) -> None: ...

class NodeGroup(_message.Message):
    __slots__ = ("group_id", "node_ids", "types", "ships", "pickup")
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_IDS_FIELD_NUMBER: _ClassVar[int]
    TYPES_FIELD_NUMBER: _ClassVar[int]
    SHIPS_FIELD_NUMBER: _ClassVar[int]
    PICKUP_FIELD_NUMBER: _ClassVar[int]
    group_id: str
    node_ids: _containers.RepeatedScalarFieldContainer[str]
    types: _containers.RepeatedScalarFieldContainer[_common_pb2.NodeType]
    ships: bool
    pickup: bool
    def __init__(self, group_id: _Optional[str] = ..., node_ids: _Optional[_Iterable[str]] = ..., types: _Optional[_Iterable[_Union[_common_pb2.NodeType, str]]] = ..., ships: _Optional[bool] = ..., pickup: _Optional[bool] = ...) -> None: ...

class SafetyRule(_message.Message):
    __slots__ = ("units", "percent", "sku", "node_id", "node_type")
    UNITS_FIELD_NUMBER: _ClassVar[int]
    PERCENT_FIELD_NUMBER: _ClassVar[int]
    SKU_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_TYPE_FIELD_NUMBER: _ClassVar[int]
    units: int
    percent: float
    sku: str
    node_id: str
    node_type: _common_pb2.NodeType
    def __init__(self, units: _Optional[int] = ..., percent: _Optional[float] = ..., sku: _Optional[str] = ..., node_id: _Optional[str] = ..., node_type: _Optional[_Union[_common_pb2.NodeType, str]] = ...) -> None: ...

class AllocationCap(_message.Message):
    __slots__ = ("percent", "node_id", "node_type")
    PERCENT_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_TYPE_FIELD_NUMBER: _ClassVar[int]
    percent: float
    node_id: str
    node_type: _common_pb2.NodeType
    def __init__(self, percent: _Optional[float] = ..., node_id: _Optional[str] = ..., node_type: _Optional[_Union[_common_pb2.NodeType, str]] = ...) -> None: ...

class Channel(_message.Message):
    __slots__ = ("channel_id", "name", "groups", "safety", "caps", "low_stock_threshold", "display_cap", "future_supply_holds", "sourcing")
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    SAFETY_FIELD_NUMBER: _ClassVar[int]
    CAPS_FIELD_NUMBER: _ClassVar[int]
    LOW_STOCK_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_CAP_FIELD_NUMBER: _ClassVar[int]
    FUTURE_SUPPLY_HOLDS_FIELD_NUMBER: _ClassVar[int]
    SOURCING_FIELD_NUMBER: _ClassVar[int]
    channel_id: str
    name: str
    groups: _containers.RepeatedScalarFieldContainer[str]
    safety: _containers.RepeatedCompositeFieldContainer[SafetyRule]
    caps: _containers.RepeatedCompositeFieldContainer[AllocationCap]
    low_stock_threshold: int
    display_cap: int
    future_supply_holds: bool
    sourcing: SourcingPolicy
    def __init__(self, channel_id: _Optional[str] = ..., name: _Optional[str] = ..., groups: _Optional[_Iterable[str]] = ..., safety: _Optional[_Iterable[_Union[SafetyRule, _Mapping]]] = ..., caps: _Optional[_Iterable[_Union[AllocationCap, _Mapping]]] = ..., low_stock_threshold: _Optional[int] = ..., display_cap: _Optional[int] = ..., future_supply_holds: _Optional[bool] = ..., sourcing: _Optional[_Union[SourcingPolicy, _Mapping]] = ...) -> None: ...

class SourcingPolicy(_message.Message):
    __slots__ = ("rules", "split_lines", "max_shipments")
    RULES_FIELD_NUMBER: _ClassVar[int]
    SPLIT_LINES_FIELD_NUMBER: _ClassVar[int]
    MAX_SHIPMENTS_FIELD_NUMBER: _ClassVar[int]
    rules: _containers.RepeatedScalarFieldContainer[str]
    split_lines: bool
    max_shipments: int
    def __init__(self, rules: _Optional[_Iterable[str]] = ..., split_lines: _Optional[bool] = ..., max_shipments: _Optional[int] = ...) -> None: ...

class NetworkConfig(_message.Message):
    __slots__ = ("nodes", "groups", "channels", "version", "purchase_limits")
    NODES_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PURCHASE_LIMITS_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedCompositeFieldContainer[_common_pb2.Node]
    groups: _containers.RepeatedCompositeFieldContainer[NodeGroup]
    channels: _containers.RepeatedCompositeFieldContainer[Channel]
    version: int
    purchase_limits: _containers.RepeatedCompositeFieldContainer[PurchaseLimit]
    def __init__(self, nodes: _Optional[_Iterable[_Union[_common_pb2.Node, _Mapping]]] = ..., groups: _Optional[_Iterable[_Union[NodeGroup, _Mapping]]] = ..., channels: _Optional[_Iterable[_Union[Channel, _Mapping]]] = ..., version: _Optional[int] = ..., purchase_limits: _Optional[_Iterable[_Union[PurchaseLimit, _Mapping]]] = ...) -> None: ...

class GetNetworkRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetNetworkResponse(_message.Message):
    __slots__ = ("network",)
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    network: NetworkConfig
    def __init__(self, network: _Optional[_Union[NetworkConfig, _Mapping]] = ...) -> None: ...

class PutGroupsRequest(_message.Message):
    __slots__ = ("groups",)
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    groups: _containers.RepeatedCompositeFieldContainer[NodeGroup]
    def __init__(self, groups: _Optional[_Iterable[_Union[NodeGroup, _Mapping]]] = ...) -> None: ...

class PutGroupsResponse(_message.Message):
    __slots__ = ("network",)
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    network: NetworkConfig
    def __init__(self, network: _Optional[_Union[NetworkConfig, _Mapping]] = ...) -> None: ...

class DeleteGroupsRequest(_message.Message):
    __slots__ = ("group_ids",)
    GROUP_IDS_FIELD_NUMBER: _ClassVar[int]
    group_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, group_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class DeleteGroupsResponse(_message.Message):
    __slots__ = ("network",)
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    network: NetworkConfig
    def __init__(self, network: _Optional[_Union[NetworkConfig, _Mapping]] = ...) -> None: ...

class PutChannelsRequest(_message.Message):
    __slots__ = ("channels",)
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    channels: _containers.RepeatedCompositeFieldContainer[Channel]
    def __init__(self, channels: _Optional[_Iterable[_Union[Channel, _Mapping]]] = ...) -> None: ...

class PutChannelsResponse(_message.Message):
    __slots__ = ("network",)
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    network: NetworkConfig
    def __init__(self, network: _Optional[_Union[NetworkConfig, _Mapping]] = ...) -> None: ...

class DeleteChannelsRequest(_message.Message):
    __slots__ = ("channel_ids",)
    CHANNEL_IDS_FIELD_NUMBER: _ClassVar[int]
    channel_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, channel_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class DeleteChannelsResponse(_message.Message):
    __slots__ = ("network",)
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    network: NetworkConfig
    def __init__(self, network: _Optional[_Union[NetworkConfig, _Mapping]] = ...) -> None: ...
