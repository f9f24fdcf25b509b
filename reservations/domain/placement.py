"""Which partition owns a key, which shard owns a partition (pure)."""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass


def partition_of(key: str, partitions: int) -> int:
    """Stable across processes and versions (unlike hash())."""
    return zlib.crc32(key.encode()) % partitions


def shard_of(partition: int, shards: int) -> int:
    return partition % shards


def partitions_of_shard(shard: int, shards: int, partitions: int) -> tuple[int, ...]:
    return tuple(p for p in range(partitions) if shard_of(p, shards) == shard)


@dataclass(frozen=True, slots=True)
class Placement:
    """Which shard owns each partition: what the shards load and the gateways route by. Stored
    in Redis; `version` goes up with every change, so a gateway sees that its copy is old."""

    owners: tuple[int, ...]
    """The owning shard of each partition, by partition number."""
    shards: int
    """How many shards run (numbered from 0); a shard may own nothing while partitions move."""
    version: int = 1
    moving: tuple[tuple[int, int], ...] = ()
    """(partition, shard it is moving to) of each move under way: its owner may have given it
    up already, so no shard takes it over on its own until the move names the new owner."""

    @classmethod
    def even(cls, partitions: int, shards: int, version: int = 1) -> Placement:
        """Partition p on shard p mod shards: what a start with `shards` shards uses."""
        return cls(tuple(shard_of(p, shards) for p in range(partitions)), shards, version)

    @property
    def partitions(self) -> int:
        return len(self.owners)

    def shard_of(self, partition: int) -> int:
        return self.owners[partition]

    def partitions_of(self, shard: int) -> tuple[int, ...]:
        return tuple(p for p, owner in enumerate(self.owners) if owner == shard)

    def is_moving(self, partition: int) -> bool:
        return any(moving == partition for moving, _ in self.moving)

    def moving_to(self, partition: int, shard: int) -> Placement:
        """The placement with a move of the partition to `shard` under way, one version on."""
        moving = (*(entry for entry in self.moving if entry[0] != partition), (partition, shard))
        return Placement(self.owners, self.shards, self.version + 1, moving)

    def with_owner(self, partition: int, shard: int) -> Placement:
        """The placement after one partition moved (its move, if any, over), one version on."""
        owners = list(self.owners)
        owners[partition] = shard
        moving = tuple(entry for entry in self.moving if entry[0] != partition)
        return Placement(tuple(owners), max(self.shards, shard + 1), self.version + 1, moving)

    def with_shards(self, shards: int) -> Placement:
        """The same owners over another number of shards, one version on (every owner must
        be one of them)."""
        if any(owner >= shards for owner in self.owners):
            raise ValueError(f"a partition is still owned by a shard beyond {shards}")
        return Placement(self.owners, shards, self.version + 1, self.moving)

    def moves_to(self, shards: int) -> list[Move]:
        """The moves that bring this placement to the even one over `shards` shards: growing
        from 2 to 4 moves half the partitions, each to a new shard, and nothing else."""
        target = Placement.even(self.partitions, shards)
        return [
            Move(p, owner, target.owners[p])
            for p, owner in enumerate(self.owners)
            if owner != target.owners[p]
        ]

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": self.version,
                "shards": self.shards,
                "owners": list(self.owners),
                "moving": [list(entry) for entry in self.moving],
            }
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> Placement:
        data = json.loads(text)
        return cls(
            tuple(int(owner) for owner in data["owners"]),
            int(data["shards"]),
            int(data["version"]),
            tuple((int(partition), int(shard)) for partition, shard in data.get("moving", ())),
        )


@dataclass(frozen=True, slots=True)
class Move:
    """One partition handed from a shard to another."""

    partition: int
    source: int
    target: int
