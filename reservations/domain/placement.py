"""Which partition owns a key, which shard owns a partition (pure)."""

from __future__ import annotations

import zlib


def partition_of(key: str, partitions: int) -> int:
    """Stable across processes and versions (unlike hash())."""
    return zlib.crc32(key.encode()) % partitions


def shard_of(partition: int, shards: int) -> int:
    return partition % shards


def partitions_of_shard(shard: int, shards: int, partitions: int) -> tuple[int, ...]:
    return tuple(p for p in range(partitions) if shard_of(p, shards) == shard)
