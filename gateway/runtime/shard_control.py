"""The shard actors on Ray: how they are started, found by name and told to move partitions.

Shards are named `<prefix>-shard-<index>` in the service's Ray namespace, so any gateway on
any node finds them. Placement: SPREAD, so Ray puts the shards on different nodes while
there are nodes to take them, and a shard asks for SHARD_CPUS, so only nodes that offer CPUs
to Ray take one (a head started with `--num-cpus 0`, as Ray advises, keeps to its services).
A shard whose node dies is started again by Ray on a live node under the same name
(max_restarts=-1) and rebuilds its partitions from Redis.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

import ray

from omnistock.reservations.shard.actor import Shard, ShardConfig

log = logging.getLogger(__name__)

ShardActor = ray.remote(Shard)
SHARD_CPUS = 0.01
"""What a shard asks of a node's CPUs: enough that it runs only on nodes offering CPUs,
little enough that any number of shards fit (a shard's load is its batches, not a core of
its own)."""
STOP_SETTLE = 1.0
"""Seconds between the placement that leaves a shard without partitions and its stop: every
gateway has read the placement by then (they read it every PLACEMENT_REFRESH seconds), so
no call is cut by the stop."""


def shard_name(prefix: str, index: int) -> str:
    return f"{prefix}-shard-{index}"


def shard_options(prefix: str, index: int) -> dict[str, Any]:
    """The Ray options of shard `index` (see the module's docstring)."""
    return {
        "name": shard_name(prefix, index),
        "max_restarts": -1,
        "max_task_retries": 3,
        "num_cpus": SHARD_CPUS,
        "scheduling_strategy": "SPREAD",
    }


class RayShards:
    """ShardControl (gateway/usecases/scaling.py) on Ray, for a change of the shard count run
    by any gateway. Shards it starts are detached: they belong to the service, not to the
    gateway that started them, and serve stops them by name when it stops."""

    def __init__(self, prefix: str, namespace: str) -> None:
        self._prefix = prefix
        self._namespace = namespace

    def _find(self, index: int) -> Any:
        return ray.get_actor(shard_name(self._prefix, index), namespace=self._namespace)

    async def _handle(self, index: int) -> Any:
        return await asyncio.to_thread(self._find, index)

    async def start(self, index: int) -> None:
        template: ShardConfig = await (await self._handle(0)).config.remote()
        config = dataclasses.replace(template, index=index, partitions=())
        options = shard_options(self._prefix, index)
        handle = ShardActor.options(
            **options, namespace=self._namespace, lifetime="detached", get_if_exists=True
        ).remote(config)
        # One left by an earlier run may hold partitions it no longer owns: it starts over
        # from the stored placement (which gives it none yet).
        await handle.reload.remote()
        log.info("started shard %d", index)

    async def stop(self, index: int) -> None:
        await asyncio.sleep(STOP_SETTLE)
        try:
            ray.kill(await self._handle(index), no_restart=True)
        except ValueError:  # gone already
            return
        log.info("stopped shard %d", index)

    async def release(self, index: int, partition: int) -> None:
        await (await self._handle(index)).release.remote(partition)

    async def adopt(self, index: int, partition: int) -> None:
        await (await self._handle(index)).adopt.remote(partition)


def stop_shards(prefix: str, namespace: str, count: int, first: int = 0) -> None:
    """Kill shards `first` to count-1 by name, those that exist (blocking)."""
    for index in range(first, count):
        try:
            ray.kill(ray.get_actor(shard_name(prefix, index), namespace=namespace), no_restart=True)
        except ValueError:
            continue
