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

class ReservationState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RESERVATION_STATE_UNSPECIFIED: _ClassVar[ReservationState]
    RESERVATION_STATE_HELD: _ClassVar[ReservationState]
    RESERVATION_STATE_CONFIRMED: _ClassVar[ReservationState]
    RESERVATION_STATE_RELEASED: _ClassVar[ReservationState]
    RESERVATION_STATE_EXPIRED: _ClassVar[ReservationState]
    RESERVATION_STATE_FULFILLED: _ClassVar[ReservationState]

class ReservationEventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RESERVATION_EVENT_TYPE_UNSPECIFIED: _ClassVar[ReservationEventType]
    RESERVATION_EVENT_TYPE_HELD: _ClassVar[ReservationEventType]
    RESERVATION_EVENT_TYPE_CONFIRMED: _ClassVar[ReservationEventType]
    RESERVATION_EVENT_TYPE_RELEASED: _ClassVar[ReservationEventType]
    RESERVATION_EVENT_TYPE_EXPIRED: _ClassVar[ReservationEventType]
    RESERVATION_EVENT_TYPE_EXTENDED: _ClassVar[ReservationEventType]
    RESERVATION_EVENT_TYPE_WITHDRAWN: _ClassVar[ReservationEventType]
    RESERVATION_EVENT_TYPE_FULFILLED: _ClassVar[ReservationEventType]
    RESERVATION_EVENT_TYPE_LINES_CANCELLED: _ClassVar[ReservationEventType]
    RESERVATION_EVENT_TYPE_RETURNED: _ClassVar[ReservationEventType]
    RESERVATION_EVENT_TYPE_MOVED: _ClassVar[ReservationEventType]
RESERVATION_STATE_UNSPECIFIED: ReservationState
RESERVATION_STATE_HELD: ReservationState
RESERVATION_STATE_CONFIRMED: ReservationState
RESERVATION_STATE_RELEASED: ReservationState
RESERVATION_STATE_EXPIRED: ReservationState
RESERVATION_STATE_FULFILLED: ReservationState
RESERVATION_EVENT_TYPE_UNSPECIFIED: ReservationEventType
RESERVATION_EVENT_TYPE_HELD: ReservationEventType
RESERVATION_EVENT_TYPE_CONFIRMED: ReservationEventType
RESERVATION_EVENT_TYPE_RELEASED: ReservationEventType
RESERVATION_EVENT_TYPE_EXPIRED: ReservationEventType
RESERVATION_EVENT_TYPE_EXTENDED: ReservationEventType
RESERVATION_EVENT_TYPE_WITHDRAWN: ReservationEventType
RESERVATION_EVENT_TYPE_FULFILLED: ReservationEventType
RESERVATION_EVENT_TYPE_LINES_CANCELLED: ReservationEventType
RESERVATION_EVENT_TYPE_RETURNED: ReservationEventType
RESERVATION_EVENT_TYPE_MOVED: ReservationEventType

class ReassignRequest(_message.Message):
    __slots__ = ("reservation_id", "reassignment_id", "sku", "from_node_id", "to_node_id")
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    REASSIGNMENT_ID_FIELD_NUMBER: _ClassVar[int]
    SKU_FIELD_NUMBER: _ClassVar[int]
    FROM_NODE_ID_FIELD_NUMBER: _ClassVar[int]
    TO_NODE_ID_FIELD_NUMBER: _ClassVar[int]
    reservation_id: str
    reassignment_id: str
    sku: str
    from_node_id: str
    to_node_id: str
    def __init__(self, reservation_id: _Optional[str] = ..., reassignment_id: _Optional[str] = ..., sku: _Optional[str] = ..., from_node_id: _Optional[str] = ..., to_node_id: _Optional[str] = ...) -> None: ...

class ReassignResponse(_message.Message):
    __slots__ = ("reservation", "replayed", "sourcing")
    RESERVATION_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    SOURCING_FIELD_NUMBER: _ClassVar[int]
    reservation: Reservation
    replayed: bool
    sourcing: LineSourcing
    def __init__(self, reservation: _Optional[_Union[Reservation, _Mapping]] = ..., replayed: _Optional[bool] = ..., sourcing: _Optional[_Union[LineSourcing, _Mapping]] = ...) -> None: ...

class Destination(_message.Message):
    __slots__ = ("address", "pickup_node_id")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PICKUP_NODE_ID_FIELD_NUMBER: _ClassVar[int]
    address: _common_pb2.Location
    pickup_node_id: str
    def __init__(self, address: _Optional[_Union[_common_pb2.Location, _Mapping]] = ..., pickup_node_id: _Optional[str] = ...) -> None: ...

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

class ReturnRequest(_message.Message):
    __slots__ = ("reservation_id", "return_id", "sku", "line_node_id", "node_id", "quantity", "damaged")
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    RETURN_ID_FIELD_NUMBER: _ClassVar[int]
    SKU_FIELD_NUMBER: _ClassVar[int]
    LINE_NODE_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    DAMAGED_FIELD_NUMBER: _ClassVar[int]
    reservation_id: str
    return_id: str
    sku: str
    line_node_id: str
    node_id: str
    quantity: int
    damaged: bool
    def __init__(self, reservation_id: _Optional[str] = ..., return_id: _Optional[str] = ..., sku: _Optional[str] = ..., line_node_id: _Optional[str] = ..., node_id: _Optional[str] = ..., quantity: _Optional[int] = ..., damaged: _Optional[bool] = ...) -> None: ...

class ReturnResponse(_message.Message):
    __slots__ = ("reservation", "replayed")
    RESERVATION_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    reservation: Reservation
    replayed: bool
    def __init__(self, reservation: _Optional[_Union[Reservation, _Mapping]] = ..., replayed: _Optional[bool] = ...) -> None: ...

class FulfilRequest(_message.Message):
    __slots__ = ("reservation_id", "fulfilment_id", "lines")
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    FULFILMENT_ID_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    reservation_id: str
    fulfilment_id: str
    lines: _containers.RepeatedCompositeFieldContainer[ReservationLine]
    def __init__(self, reservation_id: _Optional[str] = ..., fulfilment_id: _Optional[str] = ..., lines: _Optional[_Iterable[_Union[ReservationLine, _Mapping]]] = ...) -> None: ...

class FulfilResponse(_message.Message):
    __slots__ = ("reservation", "replayed")
    RESERVATION_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    reservation: Reservation
    replayed: bool
    def __init__(self, reservation: _Optional[_Union[Reservation, _Mapping]] = ..., replayed: _Optional[bool] = ...) -> None: ...

class CancelLinesRequest(_message.Message):
    __slots__ = ("reservation_id", "cancellation_id", "lines")
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    CANCELLATION_ID_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    reservation_id: str
    cancellation_id: str
    lines: _containers.RepeatedCompositeFieldContainer[ReservationLine]
    def __init__(self, reservation_id: _Optional[str] = ..., cancellation_id: _Optional[str] = ..., lines: _Optional[_Iterable[_Union[ReservationLine, _Mapping]]] = ...) -> None: ...

class CancelLinesResponse(_message.Message):
    __slots__ = ("reservation", "replayed")
    RESERVATION_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    reservation: Reservation
    replayed: bool
    def __init__(self, reservation: _Optional[_Union[Reservation, _Mapping]] = ..., replayed: _Optional[bool] = ...) -> None: ...

class ExtendRequest(_message.Message):
    __slots__ = ("reservation_id", "ttl_seconds")
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    reservation_id: str
    ttl_seconds: int
    def __init__(self, reservation_id: _Optional[str] = ..., ttl_seconds: _Optional[int] = ...) -> None: ...

class ExtendResponse(_message.Message):
    __slots__ = ("reservation",)
    RESERVATION_FIELD_NUMBER: _ClassVar[int]
    reservation: Reservation
    def __init__(self, reservation: _Optional[_Union[Reservation, _Mapping]] = ...) -> None: ...

class ReservationEvent(_message.Message):
    __slots__ = ("event_id", "reservation_id", "partition", "type", "at", "lines", "channel_id", "customer_id", "from_node_id", "by")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_NODE_ID_FIELD_NUMBER: _ClassVar[int]
    BY_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    reservation_id: str
    partition: int
    type: ReservationEventType
    at: _timestamp_pb2.Timestamp
    lines: _containers.RepeatedCompositeFieldContainer[ReservationLine]
    channel_id: str
    customer_id: str
    from_node_id: str
    by: str
    def __init__(self, event_id: _Optional[str] = ..., reservation_id: _Optional[str] = ..., partition: _Optional[int] = ..., type: _Optional[_Union[ReservationEventType, str]] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., lines: _Optional[_Iterable[_Union[ReservationLine, _Mapping]]] = ..., channel_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., from_node_id: _Optional[str] = ..., by: _Optional[str] = ...) -> None: ...

class ReservationLine(_message.Message):
    __slots__ = ("sku", "node_id", "quantity", "fulfilled", "cancelled", "returned")
    SKU_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    QUANTITY_FIELD_NUMBER: _ClassVar[int]
    FULFILLED_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    RETURNED_FIELD_NUMBER: _ClassVar[int]
    sku: str
    node_id: str
    quantity: int
    fulfilled: int
    cancelled: int
    returned: int
    def __init__(self, sku: _Optional[str] = ..., node_id: _Optional[str] = ..., quantity: _Optional[int] = ..., fulfilled: _Optional[int] = ..., cancelled: _Optional[int] = ..., returned: _Optional[int] = ...) -> None: ...

class Reservation(_message.Message):
    __slots__ = ("reservation_id", "state", "lines", "created_at", "expires_at", "changed_at", "channel_id", "customer_id", "history", "sourcing", "destination")
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    CHANGED_AT_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    SOURCING_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    reservation_id: str
    state: ReservationState
    lines: _containers.RepeatedCompositeFieldContainer[ReservationLine]
    created_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    changed_at: _timestamp_pb2.Timestamp
    channel_id: str
    customer_id: str
    history: _containers.RepeatedCompositeFieldContainer[ReservationEvent]
    sourcing: _containers.RepeatedCompositeFieldContainer[LineSourcing]
    destination: Destination
    def __init__(self, reservation_id: _Optional[str] = ..., state: _Optional[_Union[ReservationState, str]] = ..., lines: _Optional[_Iterable[_Union[ReservationLine, _Mapping]]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., changed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., channel_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., history: _Optional[_Iterable[_Union[ReservationEvent, _Mapping]]] = ..., sourcing: _Optional[_Iterable[_Union[LineSourcing, _Mapping]]] = ..., destination: _Optional[_Union[Destination, _Mapping]] = ...) -> None: ...

class ReserveRequest(_message.Message):
    __slots__ = ("reservation_id", "lines", "ttl_seconds", "channel_id", "customer_id", "destination")
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOMER_ID_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    reservation_id: str
    lines: _containers.RepeatedCompositeFieldContainer[ReservationLine]
    ttl_seconds: int
    channel_id: str
    customer_id: str
    destination: Destination
    def __init__(self, reservation_id: _Optional[str] = ..., lines: _Optional[_Iterable[_Union[ReservationLine, _Mapping]]] = ..., ttl_seconds: _Optional[int] = ..., channel_id: _Optional[str] = ..., customer_id: _Optional[str] = ..., destination: _Optional[_Union[Destination, _Mapping]] = ...) -> None: ...

class ReserveResponse(_message.Message):
    __slots__ = ("reservation", "replayed")
    RESERVATION_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    reservation: Reservation
    replayed: bool
    def __init__(self, reservation: _Optional[_Union[Reservation, _Mapping]] = ..., replayed: _Optional[bool] = ...) -> None: ...

class ConfirmRequest(_message.Message):
    __slots__ = ("reservation_id",)
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    reservation_id: str
    def __init__(self, reservation_id: _Optional[str] = ...) -> None: ...

class ConfirmResponse(_message.Message):
    __slots__ = ("reservation", "replayed")
    RESERVATION_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    reservation: Reservation
    replayed: bool
    def __init__(self, reservation: _Optional[_Union[Reservation, _Mapping]] = ..., replayed: _Optional[bool] = ...) -> None: ...

class ReleaseRequest(_message.Message):
    __slots__ = ("reservation_id",)
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    reservation_id: str
    def __init__(self, reservation_id: _Optional[str] = ...) -> None: ...

class ReleaseResponse(_message.Message):
    __slots__ = ("reservation", "replayed")
    RESERVATION_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    reservation: Reservation
    replayed: bool
    def __init__(self, reservation: _Optional[_Union[Reservation, _Mapping]] = ..., replayed: _Optional[bool] = ...) -> None: ...

class GetReservationRequest(_message.Message):
    __slots__ = ("reservation_id",)
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    reservation_id: str
    def __init__(self, reservation_id: _Optional[str] = ...) -> None: ...

class GetReservationResponse(_message.Message):
    __slots__ = ("reservation",)
    RESERVATION_FIELD_NUMBER: _ClassVar[int]
    reservation: Reservation
    def __init__(self, reservation: _Optional[_Union[Reservation, _Mapping]] = ...) -> None: ...
