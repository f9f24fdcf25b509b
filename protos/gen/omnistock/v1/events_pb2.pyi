import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from omnistock.protos.gen.omnistock.v1 import reservation_pb2 as _reservation_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ReadReservationEventsRequest(_message.Message):
    __slots__ = ("after", "limit", "wait_ms")
    AFTER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    after: str
    limit: int
    wait_ms: int
    def __init__(self, after: _Optional[str] = ..., limit: _Optional[int] = ..., wait_ms: _Optional[int] = ...) -> None: ...

class ReadReservationEventsResponse(_message.Message):
    __slots__ = ("entries", "last_id")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    LAST_ID_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[ReservationEventEntry]
    last_id: str
    def __init__(self, entries: _Optional[_Iterable[_Union[ReservationEventEntry, _Mapping]]] = ..., last_id: _Optional[str] = ...) -> None: ...

class ReservationEventEntry(_message.Message):
    __slots__ = ("id", "event")
    ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    id: str
    event: _reservation_pb2.ReservationEvent
    def __init__(self, id: _Optional[str] = ..., event: _Optional[_Union[_reservation_pb2.ReservationEvent, _Mapping]] = ...) -> None: ...

class ReadAuditEventsRequest(_message.Message):
    __slots__ = ("after", "limit", "wait_ms", "subject_prefix")
    AFTER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_PREFIX_FIELD_NUMBER: _ClassVar[int]
    after: str
    limit: int
    wait_ms: int
    subject_prefix: str
    def __init__(self, after: _Optional[str] = ..., limit: _Optional[int] = ..., wait_ms: _Optional[int] = ..., subject_prefix: _Optional[str] = ...) -> None: ...

class ReadAuditEventsResponse(_message.Message):
    __slots__ = ("entries", "last_id")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    LAST_ID_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[AuditEvent]
    last_id: str
    def __init__(self, entries: _Optional[_Iterable[_Union[AuditEvent, _Mapping]]] = ..., last_id: _Optional[str] = ...) -> None: ...

class AuditEvent(_message.Message):
    __slots__ = ("id", "at", "by", "action", "subject", "detail")
    ID_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    BY_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    SUBJECT_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    id: str
    at: _timestamp_pb2.Timestamp
    by: str
    action: str
    subject: str
    detail: str
    def __init__(self, id: _Optional[str] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., by: _Optional[str] = ..., action: _Optional[str] = ..., subject: _Optional[str] = ..., detail: _Optional[str] = ...) -> None: ...
