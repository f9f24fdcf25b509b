"""Crash and restart: nothing acknowledged is lost; a failed journal write keeps nothing."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
import ray
import redis

from omnistock.client import OmnistockClient, OmnistockRpcError, level, line, load_stock_column_requests
from omnistock.gateway.runtime.embedded_redis import EmbeddedRedis
from omnistock.protos.gen.omnistock.v1 import reservation_pb2
from omnistock.reservations.shard.journal import RedisKeys
from tests.integration.conftest import NODES, skus_on_shards


async def snapshot_of_state(client: OmnistockClient, skus: list[str], rids: list[str]) -> tuple[Any, ...]:
    answer = await client.availability(skus, include_nodes=True, consistent=True)
    positions = sorted(
        (p.sku, p.node_id, p.on_hand, p.reserved, p.committed) for a in answer.skus for p in a.nodes
    )
    reservations = [await client.get_reservation(rid) for rid in rids]
    return positions, [(r.reservation_id, r.state, list(r.lines)) for r in reservations]


async def make_history(service: Any, client: OmnistockClient) -> tuple[list[str], list[str]]:
    skus = skus_on_shards(service, [0, 1], prefix="REC")
    await client.set_stock([level(sku, node.node_id, 20) for sku in skus for node in NODES[:3]])
    await client.reserve("held", [line(skus[0], "DC-1", 2), line(skus[1], "DC-2", 3)])
    await client.reserve("confirmed", [line(skus[1], "STORE-1", 4)])
    await client.confirm("confirmed")
    await client.reserve("released", [line(skus[0], "DC-2", 5)])
    await client.release("released")
    await client.adjust("adj-1", skus[0], "DC-1", -1, "damage")
    return skus, ["held", "confirmed", "released"]


@pytest.mark.parametrize("snapshot_every", [10_000, 2], ids=["journal-only", "snapshots"])
async def test_killed_shard_is_restarted_and_rebuilt(
    make_service: Any, redis_server: EmbeddedRedis, snapshot_every: int
) -> None:
    service = await make_service(snapshot_every=snapshot_every)
    async with OmnistockClient(f"127.0.0.1:{service.port}") as client:
        await client.put_nodes(NODES)
        skus, rids = await make_history(service, client)
        before = await snapshot_of_state(client, skus, rids)
        admin, keys = redis.Redis.from_url(redis_server.url), RedisKeys(service.config.prefix)
        snapshots = sum(admin.exists(keys.snapshot(n)) for n in range(service.router.partitions))
        assert (snapshots > 0) == (snapshot_every == 2)  # partitions with 2 entries took one

        for shard in service.shards:
            ray.kill(shard, no_restart=False)
        # Calls made while the shards restart wait for them (Ray holds the ask for the new port).
        after = await snapshot_of_state(client, skus, rids)
        assert after == before
        # Idempotency memory survived too.
        replay = await client.adjust("adj-1", skus[0], "DC-1", -1, "damage")
        assert replay.outcome == 2  # REPLAYED
        assert (await client.reserve("held", [line(skus[0], "DC-1", 2), line(skus[1], "DC-2", 3)])).replayed
        assert await service.check() == []


async def test_a_shard_killed_with_batches_in_flight_answers_every_reserve_once(make_service: Any) -> None:
    """Batches reach a shard over its batch port, not through Ray: when the shard dies with
    batches on the wire, the gateway finds the restarted shard through Ray and sends them
    again. Every Reserve is answered (none refused, none held twice) and stock is conserved."""
    service = await make_service()
    async with OmnistockClient(f"127.0.0.1:{service.port}") as client:
        await client.put_nodes(NODES)
        skus = skus_on_shards(service, [0, 1], prefix="KILL")
        await client.set_stock([level(sku, "DC-1", 1_000) for sku in skus])
        links = service.router.links
        assert [link.connects for link in links] == [1, 1]

        async def reserve(i: int) -> Any:
            return await client.reserve(f"k-{i}", [line(skus[i % 2], "DC-1", 1)])

        first = [asyncio.ensure_future(reserve(i)) for i in range(200)]
        await asyncio.sleep(0.02)
        ray.kill(service.shards[0], no_restart=False)
        answers = await asyncio.gather(*first, *(reserve(i) for i in range(200, 300)))
        assert all(answer.reservation.reservation_id == f"k-{i}" for i, answer in enumerate(answers))
        assert links[0].connects >= 2  # found again after the restart
        after = await client.availability(skus, consistent=True)
        assert sorted(a.reserved for a in after.skus) == [150, 150]
        assert await service.check() == []


async def test_failed_journal_write_keeps_nothing(make_service: Any, redis_server: EmbeddedRedis) -> None:
    service = await make_service()
    admin = redis.Redis.from_url(redis_server.url)
    async with OmnistockClient(f"127.0.0.1:{service.port}") as client:
        await client.put_nodes(NODES)
        await client.set_stock([level("J", "DC-1", 5)])
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", "1")  # every write is now refused with OOM
        try:
            with pytest.raises(OmnistockRpcError) as refused:
                await client.reserve("during-outage", [line("J", "DC-1", 2)])
            assert refused.value.code is grpc.StatusCode.UNAVAILABLE
        finally:
            admin.config_set("maxmemory", "0")
        # The refused hold was not kept in memory: all 5 units are available again.
        answer = await client.availability(["J"], consistent=True)
        assert (answer.skus[0].available, answer.skus[0].reserved) == (5, 0)
        # A retry with the same id now succeeds, once.
        retried = await client.reserve("during-outage", [line("J", "DC-1", 2)])
        assert retried.reservation.state == reservation_pb2.RESERVATION_STATE_HELD
        assert (await client.availability(["J"], consistent=True)).skus[0].available == 3
        assert await service.check() == []


async def test_a_journal_write_survives_a_flushed_script_cache(
    make_service: Any, redis_server: EmbeddedRedis
) -> None:
    """The journal appends through a server-side script; a Redis that restarted or failed
    over has forgotten it. The next write loads it again, is journaled and survives."""
    service = await make_service()
    admin = redis.Redis.from_url(redis_server.url)
    async with OmnistockClient(f"127.0.0.1:{service.port}") as client:
        await client.put_nodes(NODES)
        await client.set_stock([level("FLUSH", "DC-1", 5)])
        admin.script_flush()
        held = await client.reserve("after-flush", [line("FLUSH", "DC-1", 2)])
        assert held.reservation.state == reservation_pb2.RESERVATION_STATE_HELD
        for shard in service.shards:
            ray.kill(shard, no_restart=False)
        answer = await client.availability(["FLUSH"], consistent=True)
        assert (answer.skus[0].available, answer.skus[0].reserved) == (3, 2)
        assert (await client.get_reservation("after-flush")).state == reservation_pb2.RESERVATION_STATE_HELD
        assert await service.check() == []


async def test_expiry_survives_restart(make_service: Any) -> None:
    service = await make_service()
    async with OmnistockClient(f"127.0.0.1:{service.port}") as client:
        await client.put_nodes(NODES)
        await client.set_stock([level("E", "DC-1", 4)])
        await client.reserve("ttl", [line("E", "DC-1", 4)], ttl_seconds=1)
        for shard in service.shards:
            ray.kill(shard, no_restart=False)
        deadline = asyncio.get_running_loop().time() + 15
        while (await client.availability(["E"], consistent=True)).skus[0].available != 4:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.2)
        assert (await client.get_reservation("ttl")).state == reservation_pb2.RESERVATION_STATE_EXPIRED


async def test_a_bulk_load_is_snapshotted_and_a_restarted_shard_reads_it(
    make_service: Any, redis_server: EmbeddedRedis
) -> None:
    service = await make_service(snapshot_levels=100)
    admin = redis.Redis.from_url(redis_server.url)
    keys = RedisKeys(service.config.prefix)
    async with OmnistockClient(f"127.0.0.1:{service.port}") as client:
        await client.put_nodes(NODES)
        rows = [(f"BULK-{i:05d}", node.node_id, i % 11) for i in range(4_000) for node in NODES[:3]]
        await client.inventory.LoadStock(load_stock_column_requests(rows))
        skus = [f"BULK-{i:05d}" for i in range(0, 4_000, 97)]
        await client.reserve("after-load", [line(skus[1], NODES[0].node_id, 1)])
        before = await snapshot_of_state(client, skus, ["after-load"])
        # Every partition (about 190 counts each, of 64) took a snapshot of the load and
        # trimmed the entries it covers: only the hold and a few of the load's last
        # entries are left to replay, where each partition had at least one.
        partitions = range(service.router.partitions)
        assert all(admin.exists(keys.snapshot(n)) for n in partitions)
        assert sum(admin.xlen(keys.log(n)) for n in partitions) < 8
        for shard in service.shards:
            ray.kill(shard, no_restart=False)
        assert await snapshot_of_state(client, skus, ["after-load"]) == before
        assert await service.check() == []
