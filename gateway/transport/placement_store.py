"""The placement of partitions on shards, as stored in Redis (RedisKeys.placement): written by
serve at each start and by a change of the shard count, read by every gateway to route and by
every shard to know what it owns (reservations/shard/actor.py)."""

from __future__ import annotations

from typing import cast

from omnistock.reservations.domain.placement import Placement
from omnistock.reservations.shard.journal import RedisKeys
from omnistock.reservations.shard.redis_connect import AsyncClient


class PlacementStore:
    def __init__(self, client: AsyncClient, keys: RedisKeys) -> None:
        self._client = client
        self._keys = keys

    async def read(self) -> Placement | None:
        """The stored placement; None before any service started with this prefix."""
        data = cast(bytes | None, await self._client.get(self._keys.placement))
        return Placement.from_json(data) if data else None

    async def write(self, placement: Placement) -> None:
        """Store it: gateways see it at their next read (every PLACEMENT_REFRESH seconds, and at
        once when a shard answers that a partition moved)."""
        await self._client.set(self._keys.placement, placement.to_json())

    async def start_with(self, shards: int, partitions: int) -> Placement:
        """At a start of serve: the even placement over `shards`, a version past any stored
        (nothing runs yet, so no partition has to move)."""
        stored = await self.read()
        placement = Placement.even(partitions, shards, (stored.version + 1) if stored else 1)
        await self.write(placement)
        return placement
