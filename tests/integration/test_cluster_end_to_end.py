"""Beyond one machine, all at once: a 3-node Ray cluster (tests/integration/ray_cluster_nodes.py),
a Redis Cluster of 3 masters and 3 replicas with the journal waiting for one replica, `omnistock
serve` with 2 shards and `omnistock gateway` of its own on another port. A checkout workload
runs through both gateways while the Ray node holding a shard is removed (the shard comes back
on another node), a Redis master is killed (its replica is promoted; the old master comes back
as a replica) and the shard count grows from 2 to 4. At the end: no call failed other than
UNAVAILABLE with RetryInfo, every acknowledged reservation is there (held, or confirmed when
the confirm was acknowledged), every reservation's parts agree with its decision and stock is
conserved, and the units held add up in availability.

Every component runs in a process of its own (the Ray nodes, the Redis servers, serve, the
gateway), so this test neither needs nor disturbs the session's shared Ray runtime or Redis."""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import pytest
from redis.crc import key_slot

from omnistock.client import OmnistockClient, level
from omnistock.gateway.runtime.embedded_redis import free_port
from omnistock.reservations.domain.placement import partition_of
from omnistock.reservations.shard.journal import RedisKeys
from tests.integration.conftest import NODES
from tests.integration.test_crash_restart import wait_serving
from tests.integration.test_ray_cluster import OMNISTOCK, ClusterNodes, start, stop
from tests.integration.workload import Workload
from tests.redis_cluster import RedisCluster

pytestmark = pytest.mark.slow

PARTITIONS = 16
SKUS = [f"E2E-{i:03d}" for i in range(64)]
STOCK = 100_000
PHASE_SECONDS = 3.0
"""How long the workload runs between two disruptions (and before the first)."""


async def wait_for(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"not within {timeout:.0f} s: {what}"
        await asyncio.sleep(0.5)


async def test_a_cluster_serves_through_node_loss_failover_and_growth(tmp_path: Path) -> None:
    redis_cluster = RedisCluster(tmp_path / "redis").start()
    ports = [free_port(), free_port()]
    logs = {name: tmp_path / f"{name}.log" for name in ("nodes", "serve", "gateway")}
    files = {name: path.open("wb") for name, path in logs.items()}
    nodes = ClusterNodes(files["nodes"])
    serve = gateway = None
    clients: list[OmnistockClient] = []
    try:
        cluster = await nodes.answer(timeout=120)
        address, workers = cluster["address"], cluster["workers"]
        env = {"OMNISTOCK_REDIS_URL": redis_cluster.url}  # the password stays out of the process list
        serve = start(
            [
                *(OMNISTOCK, "serve", "--ray-address", address, "--redis-replicas", "1"),
                *("--port", str(ports[0]), "--metrics-port", "0", "--data-dir", str(tmp_path / "var")),
                *("--shards", "2", "--partitions", str(PARTITIONS), "--log-level", "info"),
            ],
            files["serve"],
            {**os.environ, **env},
        )
        await wait_serving(ports[0], serve, logs["serve"])
        gateway = start(
            [
                *(OMNISTOCK, "gateway", "--ray-address", address),
                *("--port", str(ports[1]), "--metrics-port", "0", "--log-level", "info"),
            ],
            files["gateway"],
            {**os.environ, **env},
        )
        await wait_serving(ports[1], gateway, logs["gateway"])
        clients = [OmnistockClient(f"127.0.0.1:{port}") for port in ports]
        await clients[0].put_nodes(NODES)
        await clients[1].set_stock([level(sku, "DC-1", STOCK) for sku in SKUS])

        # The journal is spread over the masters: its groups live on all three.
        keys = RedisKeys()
        masters = {
            redis_cluster.master_of_slot(key_slot(keys.log(p).encode())).port for p in range(PARTITIONS)
        }
        assert len(masters) == 3, masters

        workload = Workload(clients, SKUS, "DC-1", "e2e", retry_unavailable=True)
        stop_workload = asyncio.Event()
        running = asyncio.ensure_future(workload.run_until(stop_workload, callers=8))
        try:
            await asyncio.sleep(PHASE_SECONDS)
            before_loss = len(workload.acknowledged)
            assert before_loss > 0, workload.refusals[:3]

            # 1. The Ray node holding shard 0 goes: Ray starts the shard on the other worker.
            shard = await nodes.ask("where omnistock-shard-0")
            assert (await nodes.ask(f"remove {shard['node']}"))["removed"] == shard["node"]

            async def shard_moved() -> bool:
                found = await nodes.ask("where omnistock-shard-0")
                return bool(
                    found["state"] == "ALIVE" and found["node"] in workers and found["node"] != shard["node"]
                )

            await wait_for(shard_moved, 90, "shard 0 alive on another node")
            await asyncio.sleep(PHASE_SECONDS)
            assert len(workload.acknowledged) > before_loss, "no reservation after the node loss"

            # 2. A Redis master dies: its replica takes over; the old master comes back as a replica.
            home = partition_of(SKUS[0], PARTITIONS)
            slot = key_slot(keys.log(home).encode())
            killed = redis_cluster.master_of_slot(slot)
            before_failover = len(workload.acknowledged)
            promoted = await asyncio.to_thread(redis_cluster.kill_master, killed)
            await asyncio.to_thread(redis_cluster.restart, killed, 60)
            assert redis_cluster.master_of_slot(slot) is promoted
            await asyncio.sleep(PHASE_SECONDS)
            assert len(workload.acknowledged) > before_failover, "no reservation after the failover"

            # 3. Growing from 2 to 4 shards while the workload runs: no call is refused for it.
            scaling = time.monotonic()
            progress = [update async for update in clients[1].scale_shards(4)]
            scaled = time.monotonic()
            assert progress[-1].done and progress[-1].shards_to == 4
            assert progress[0].partitions_to_move == PARTITIONS // 2
            await asyncio.sleep(PHASE_SECONDS)
        finally:
            stop_workload.set()
            await running

        # Only UNAVAILABLE with RetryInfo, and only around the disruptions.
        kinds = Counter((r.method, r.code.name, r.retry_delay is not None) for r in workload.refusals)
        assert all(code is grpc.StatusCode.UNAVAILABLE for code in (r.code for r in workload.refusals)), kinds
        assert all(r.retry_delay is not None for r in workload.refusals), kinds
        during_scaling = [r for r in workload.refusals if scaling <= r.at <= scaled]
        assert during_scaling == [], during_scaling[:3]
        print(f"{workload.calls} calls, {len(workload.acknowledged)} reservations; refusals: {dict(kinds)}")

        for client in clients:
            shards = await client.shards()
            assert [s.partitions for s in shards.shards] == [PARTITIONS // 4] * 4
            assert await workload.missing(client) == []
            report = await client.check_conservation()
            assert report.ok and report.shards_checked == 4, (
                list(report.problems)[:5],
                report.disagreement_count,
            )
            answer = await client.availability(SKUS, consistent=True)
            held = sum(workload.acknowledged.values())
            assert sum(sku.available for sku in answer.skus) == STOCK * len(SKUS) - held
    finally:
        for client in clients:
            await client.close()
        stop(gateway, logs["gateway"])
        stop(serve, logs["serve"])
        nodes.stop()
        redis_cluster.stop()
        for file in files.values():
            file.close()
