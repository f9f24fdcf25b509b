"""Changing the number of shards while the service serves.

The stored placement (which shard owns each partition) is what shards load and gateways
route by. A change of the shard count:

1. starts the new shards (growing), and records the new count;
2. moves each partition whose owner differs from the even placement over the new count,
   one at a time: the placement marks it as moving, the old owner snapshots it and gives it
   up in one journal call (from then on its commands come back WrongShard and the gateways
   hold them), the placement names the new owner, and the new owner claims it and loads it
   (the gateways send the held commands there);
3. stops the shards left without partitions (shrinking), and records the new count.

Every step is safe to cut: a partition marked as moving is taken over by no shard on its
own (its calls wait, then are answered UNAVAILABLE) until a change completes the move;
one placed but not yet taken over is taken by its new owner at its next command; and the
journal's fence keeps any shard from writing a partition it no longer owns. Asking again
(for any count) first completes the moves a cut change left.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from omnistock.reservations import crash_points
from omnistock.reservations.domain.errors import InvalidArgument
from omnistock.reservations.domain.placement import Move, Placement


class ShardControl(Protocol):
    """The shards, as a change of their count needs them (Ray actors in the runtime)."""

    async def start(self, index: int) -> None:
        """Start shard `index` (or find it running), owning nothing yet."""

    async def stop(self, index: int) -> None:
        """Stop shard `index` for good (it owns nothing)."""

    async def release(self, index: int, partition: int) -> None:
        """Have shard `index` snapshot the partition and give it up."""

    async def adopt(self, index: int, partition: int) -> None:
        """Have shard `index` claim the partition and load it."""


@dataclass(frozen=True, slots=True)
class ScaleProgress:
    shards_from: int
    shards_to: int
    moved: int
    to_move: int
    partition: int = 0
    from_shard: int = 0
    to_shard: int = 0
    done: bool = False


def check_shard_count(shards: int, partitions: int) -> None:
    """INVALID_ARGUMENT naming `shards` unless 1 <= shards <= partitions."""
    if not 1 <= shards <= partitions:
        raise InvalidArgument(
            [("shards", f"must be from 1 to the number of partitions ({partitions}), got {shards}")]
        )


class Scaler:
    def __init__(
        self,
        shards: ShardControl,
        read_placement: Callable[[], Awaitable[Placement | None]],
        write_placement: Callable[[Placement], Awaitable[None]],
    ) -> None:
        self._shards = shards
        self._read = read_placement
        self._write = write_placement

    async def scale_to(self, shards: int) -> AsyncIterator[ScaleProgress]:
        """Bring the service to `shards` shards; yields progress after each step."""
        placement = await self._read()
        if placement is None:
            raise RuntimeError("no placement is stored: the service has not started")
        check_shard_count(shards, placement.partitions)
        for partition, target in placement.moving:  # left by a change that was cut
            placement = await self._move(placement, Move(partition, placement.shard_of(partition), target))
        start = placement.shards
        moves = placement.moves_to(shards)
        yield ScaleProgress(start, shards, 0, len(moves))
        if shards > placement.shards:
            for index in range(placement.shards, shards):
                await self._shards.start(index)
            placement = placement.with_shards(shards)
            await self._write(placement)
        for moved, move in enumerate(moves, start=1):
            placement = await self._move(placement, move)
            yield ScaleProgress(start, shards, moved, len(moves), move.partition, move.source, move.target)
        if shards < placement.shards:
            gone = range(shards, placement.shards)
            placement = placement.with_shards(shards)
            await self._write(placement)
            for index in gone:
                await self._shards.stop(index)
        yield ScaleProgress(start, shards, len(moves), len(moves), done=True)

    async def _move(self, placement: Placement, move: Move) -> Placement:
        """Move one partition: marked as moving (no shard takes it over on its own from
        then), given up by its owner, placed on its new owner, taken over there."""
        placement = placement.moving_to(move.partition, move.target)
        await self._write(placement)
        crash_points.crash_point("scale.after_mark")
        await self._shards.release(move.source, move.partition)
        crash_points.crash_point("scale.after_release")
        placement = placement.with_owner(move.partition, move.target)
        await self._write(placement)
        crash_points.crash_point("scale.after_placement")
        await self._shards.adopt(move.target, move.partition)
        return placement
