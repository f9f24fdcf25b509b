from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetShardsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetShardsResponse(_message.Message):
    __slots__ = ("partitions", "shards", "placement_version", "scaling_to")
    PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    SCALING_TO_FIELD_NUMBER: _ClassVar[int]
    partitions: int
    shards: _containers.RepeatedCompositeFieldContainer[ShardInfo]
    placement_version: int
    scaling_to: int
    def __init__(self, partitions: _Optional[int] = ..., shards: _Optional[_Iterable[_Union[ShardInfo, _Mapping]]] = ..., placement_version: _Optional[int] = ..., scaling_to: _Optional[int] = ...) -> None: ...

class ShardInfo(_message.Message):
    __slots__ = ("index", "partitions")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    index: int
    partitions: int
    def __init__(self, index: _Optional[int] = ..., partitions: _Optional[int] = ...) -> None: ...

class ScaleShardsRequest(_message.Message):
    __slots__ = ("shards",)
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    shards: int
    def __init__(self, shards: _Optional[int] = ...) -> None: ...

class ScaleShardsResponse(_message.Message):
    __slots__ = ("shards_from", "shards_to", "partitions_moved", "partitions_to_move", "partition", "from_shard", "to_shard", "done")
    SHARDS_FROM_FIELD_NUMBER: _ClassVar[int]
    SHARDS_TO_FIELD_NUMBER: _ClassVar[int]
    PARTITIONS_MOVED_FIELD_NUMBER: _ClassVar[int]
    PARTITIONS_TO_MOVE_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    FROM_SHARD_FIELD_NUMBER: _ClassVar[int]
    TO_SHARD_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    shards_from: int
    shards_to: int
    partitions_moved: int
    partitions_to_move: int
    partition: int
    from_shard: int
    to_shard: int
    done: bool
    def __init__(self, shards_from: _Optional[int] = ..., shards_to: _Optional[int] = ..., partitions_moved: _Optional[int] = ..., partitions_to_move: _Optional[int] = ..., partition: _Optional[int] = ..., from_shard: _Optional[int] = ..., to_shard: _Optional[int] = ..., done: _Optional[bool] = ...) -> None: ...
