"""ShardService: the shards and their partitions (ops:read), and changing how many shards run
while serving (ops:admin; the use case is gateway/usecases/scaling.py).

One change runs at a time, across every gateway: whoever starts one holds a lock in Redis
(RedisKeys.scaling) for as long as it runs, renewed at every step. The change runs in a task
of its own, so a caller that goes away does not cut it; a gateway that stops does, and the
lock then runs out after LOCK_SECONDS and anyone may ask again to complete it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable

import grpc

from omnistock.gateway.grpc.convert import Limits
from omnistock.gateway.grpc.guard import current_caller
from omnistock.gateway.grpc.network_store import NetworkStore
from omnistock.gateway.grpc.servicers import Served, Servicer, Undecodable, rpc
from omnistock.gateway.metrics import Metrics
from omnistock.gateway.transport.placement_store import PlacementStore
from omnistock.gateway.usecases.scaling import ScaleProgress, Scaler, check_shard_count
from omnistock.protos.gen.omnistock.v1 import shards_pb2, shards_pb2_grpc
from omnistock.reservations.domain.errors import FailedPrecondition, Unavailable
from omnistock.reservations.shard.journal import RedisKeys
from omnistock.reservations.shard.redis_connect import REDIS_ERRORS, AsyncClient

log = logging.getLogger(__name__)

LOCK_SECONDS = 10
"""How long the lock of a change outlives the gateway running it (one that stopped midway)."""
LOCK_RENEW = 2.0
"""Seconds between two renewals of the lock while the change runs (a long step included)."""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
"""Drop the lock if it is still this change's."""


def progress_to_proto(progress: ScaleProgress) -> shards_pb2.ScaleShardsResponse:
    return shards_pb2.ScaleShardsResponse(
        shards_from=progress.shards_from,
        shards_to=progress.shards_to,
        partitions_moved=progress.moved,
        partitions_to_move=progress.to_move,
        partition=progress.partition,
        from_shard=progress.from_shard,
        to_shard=progress.to_shard,
        done=progress.done,
    )


class ShardServicer(Servicer, shards_pb2_grpc.ShardServiceServicer):
    SERVICE = shards_pb2.DESCRIPTOR.services_by_name["ShardService"]

    def __init__(
        self,
        network: NetworkStore,
        limits: Limits,
        metrics: Metrics,
        redis: AsyncClient,
        keys: RedisKeys,
        make_scaler: Callable[[], Scaler],
    ) -> None:
        super().__init__(network, limits, metrics)
        self.redis = redis
        self.keys = keys
        self.placements = PlacementStore(redis, keys)
        self._make_scaler = make_scaler
        self._running: set[asyncio.Task[None]] = set()

    @rpc("GetShards")
    async def GetShards(
        self, request: shards_pb2.GetShardsRequest, context: grpc.aio.ServicerContext
    ) -> shards_pb2.GetShardsResponse:
        try:
            placement = await self.placements.read()
            lock = await self.redis.get(self.keys.scaling)
        except REDIS_ERRORS as error:
            raise Unavailable(f"the placement cannot be read now ({type(error).__name__}); retry") from error
        if placement is None:
            raise Unavailable("the service has not stored its placement yet; retry")
        response = shards_pb2.GetShardsResponse(
            partitions=placement.partitions,
            placement_version=placement.version,
            scaling_to=int(json.loads(lock)["to"]) if lock else 0,
        )
        for index in range(placement.shards):
            response.shards.add(index=index, partitions=len(placement.partitions_of(index)))
        return response

    async def ScaleShards(
        self, request: shards_pb2.ScaleShardsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[shards_pb2.ScaleShardsResponse]:
        """A stream: Served wraps the whole of it."""
        async with Served(self.metrics, "ScaleShards", context):
            if request.__class__ is Undecodable:
                raise request.refusal
            placement = await self.placements.read()
            if placement is None:
                raise Unavailable("the service has not stored its placement yet; retry")
            check_shard_count(request.shards, placement.partitions)
            token = uuid.uuid4().hex
            claim = json.dumps({"to": request.shards, "by": current_caller().label, "token": token})
            if not await self.redis.set(self.keys.scaling, claim, nx=True, ex=LOCK_SECONDS):
                running = json.loads(await self.redis.get(self.keys.scaling) or "{}")
                raise FailedPrecondition(
                    f"a change to {running.get('to', '?')} shards is under way (by {running.get('by', '?')});"
                    " wait for it to end (omnistock shards shows it), then ask again"
                )
            updates: asyncio.Queue[ScaleProgress | BaseException] = asyncio.Queue()
            task = asyncio.get_running_loop().create_task(self._run(request.shards, claim, updates))
            self._running.add(task)
            task.add_done_callback(self._running.discard)
            while True:
                update = await updates.get()
                if isinstance(update, BaseException):
                    raise update
                yield progress_to_proto(update)
                if update.done:
                    return

    async def _run(
        self, shards: int, claim: str, updates: asyncio.Queue[ScaleProgress | BaseException]
    ) -> None:
        renewing = asyncio.get_running_loop().create_task(self._renew_lock(shards))
        try:
            async for progress in self._make_scaler().scale_to(shards):
                updates.put_nowait(progress)
                if progress.moved or progress.done:
                    log.info(
                        "shards %d -> %d: %d of %d partitions moved",
                        progress.shards_from,
                        progress.shards_to,
                        progress.moved,
                        progress.to_move,
                    )
        except Exception as error:
            log.exception("the change to %d shards stopped", shards)
            updates.put_nowait(
                Unavailable(f"the change to {shards} shards stopped ({error}); ask again to complete it")
            )
        finally:
            renewing.cancel()
            await asyncio.gather(renewing, return_exceptions=True)
            try:
                await self.redis.eval(_RELEASE, 1, self.keys.scaling, claim)
            except REDIS_ERRORS:
                log.warning("the lock of the change to %d shards runs out in %d s", shards, LOCK_SECONDS)

    async def _renew_lock(self, shards: int) -> None:
        while True:
            await asyncio.sleep(LOCK_RENEW)
            try:
                await self.redis.expire(self.keys.scaling, LOCK_SECONDS)
            except REDIS_ERRORS as error:
                log.warning("the lock of the change to %d shards was not renewed: %s", shards, error)

    async def stop(self) -> None:
        """Cut a change under way (the gateway stops): asking again completes it."""
        for task in self._running:
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)
