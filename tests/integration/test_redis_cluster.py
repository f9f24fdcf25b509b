"""Redis Cluster and replicas, for real: 3 masters and 3 replicas on loopback, and a single Redis
with a replica behind a service whose journal waits for it."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import grpc
import pytest
import redis
import redis.asyncio.cluster
import redis.cluster
from redis.crc import key_slot

from omnistock.client import OmnistockClient, OmnistockRpcError, level, line
from omnistock.gateway.runtime.embedded_redis import EmbeddedRedis, free_port
from omnistock.protos.gen.omnistock.v1 import reservation_pb2
from omnistock.reservations.domain.placement import partition_of
from omnistock.reservations.shard.journal import RedisKeys
from omnistock.reservations.shard.redis_connect import (
    ReplicasBehind,
    connect_async,
    connect_sync,
    wait_for_replicas,
    wait_for_replicas_async,
)
from tests.conftest import services
from tests.integration.conftest import NODES
from tests.redis_cluster import RedisCluster, ServerProcess, wait_until

TWO_SLOTS_SCRIPT = "redis.call('SET', KEYS[1], ARGV[1]); redis.call('SET', KEYS[2], ARGV[1]); return 1"


def keys_on_every_master(cluster: RedisCluster, count: int = 30) -> dict[int, list[str]]:
    """Keys spread over the slots, grouped by the port of the master serving each."""
    by_master: dict[int, list[str]] = {}
    for i in range(count):
        key = f"stock:{uuid.uuid4().hex[:8]}:{i}"
        by_master.setdefault(cluster.master_of_slot(key_slot(key.encode())).port, []).append(key)
    return by_master


def test_the_cluster_has_three_masters_each_with_a_replica(redis_cluster: RedisCluster) -> None:
    masters, replicas = redis_cluster.masters(), redis_cluster.replicas()
    assert len(masters) == 3 and len(replicas) == 3
    assert {redis_cluster.replica_of(master).port for master in masters} == {node.port for node in replicas}
    roles = redis_cluster.roles()
    assert sum(high - low + 1 for role in roles if role.master for low, high in role.slots) == 16384


def test_a_sync_client_reads_and_writes_keys_of_every_master(redis_cluster: RedisCluster) -> None:
    client = connect_sync(redis_cluster.url, socket_timeout=5.0, retries=0)
    assert isinstance(client, redis.cluster.RedisCluster)
    by_master = keys_on_every_master(redis_cluster)
    assert len(by_master) == 3
    try:
        for port, keys in by_master.items():
            for key in keys:
                client.set(key, port)
            # Each key sits on the master of its slot, not merely somewhere.
            with redis_cluster.node(port).client() as direct:
                assert direct.get(keys[0]) == str(port).encode()
        assert all(client.get(key) == str(port).encode() for port, keys in by_master.items() for key in keys)
    finally:
        client.close()


async def test_an_async_client_reads_and_writes_keys_of_every_master(redis_cluster: RedisCluster) -> None:
    client = connect_async(redis_cluster.url, socket_timeout=5.0)
    assert isinstance(client, redis.asyncio.cluster.RedisCluster)
    by_master = keys_on_every_master(redis_cluster)
    try:
        for port, keys in by_master.items():
            for key in keys:
                await client.set(key, f"async-{port}")
        for port, keys in by_master.items():
            assert [await client.get(key) for key in keys] == [f"async-{port}".encode()] * len(keys)
    finally:
        await client.aclose()


def test_a_script_works_on_one_hash_tag_and_is_refused_across_slots(redis_cluster: RedisCluster) -> None:
    """Why the journal must keep every key of a partition under one hash tag: a script (the
    journal's append is one) may only touch keys of one slot."""
    client = connect_sync(redis_cluster.url)
    try:
        script = client.register_script(TWO_SLOTS_SCRIPT)
        assert script(keys=["{p:7}:log", "{p:7}:events"], args=["x"]) == 1
        assert client.get("{p:7}:events") == b"x"
        apart = ["p:7:log", "p:8:log"]
        assert key_slot(apart[0].encode()) != key_slot(apart[1].encode())
        with pytest.raises(redis.exceptions.RedisClusterException, match="same key slot"):
            script(keys=apart, args=["x"])  # the cluster client refuses it before sending
        # Sent as is to the node of the first key, the server refuses it (its error CROSSSLOT).
        node = redis_cluster.master_of_slot(key_slot(apart[0].encode())).client()
        with node, pytest.raises(redis.ResponseError, match="hash to the same slot"):
            node.eval(TWO_SLOTS_SCRIPT, 2, *apart, "x")
        assert client.exists(apart[0]) == 0 and client.exists(apart[1]) == 0
    finally:
        client.close()


async def test_wait_counts_the_replica_of_the_keys_master(redis_cluster: RedisCluster) -> None:
    client = connect_sync(redis_cluster.url)
    try:
        for keys in keys_on_every_master(redis_cluster).values():
            client.set(keys[0], "on-replica")
            assert wait_for_replicas(client, keys[0], 1, 2000) == 1
        key = keys[0]
        client.set(key, "again")
        # Each master has one replica: two never acknowledge.
        with pytest.raises(ReplicasBehind, match="1 of 2 replicas"):
            wait_for_replicas(client, key, 2, 200)
    finally:
        client.close()
    aclient = connect_async(redis_cluster.url)
    try:
        await aclient.set(key, "async")
        assert await wait_for_replicas_async(aclient, key, 1, 2000) == 1
        with pytest.raises(ReplicasBehind):
            await wait_for_replicas_async(aclient, key, 2, 200)
    finally:
        await aclient.aclose()


def test_a_killed_master_is_replaced_by_its_replica_and_keeps_acknowledged_writes(
    redis_cluster: RedisCluster,
) -> None:
    """Runs last among the cluster tests (it leaves the killed node back as a replica)."""
    client = connect_sync(redis_cluster.url, socket_timeout=2.0, socket_connect_timeout=1.0)
    by_master = keys_on_every_master(redis_cluster)
    master = redis_cluster.masters()[0]
    keys = by_master[master.port]
    try:
        for key in keys:
            client.set(key, "acknowledged")
        wait_for_replicas(client, keys[-1], 1, 2000)
        promoted = redis_cluster.kill_master(master, timeout=15.0)
        assert promoted.port != master.port
        # A new client, as a restarted shard would make, finds the new master and the writes.
        after = connect_sync(redis_cluster.url, socket_timeout=2.0)
        try:
            assert [after.get(key) for key in keys] == [b"acknowledged"] * len(keys)
            after.set(keys[0], "after-failover")
            assert after.get(keys[0]) == b"after-failover"
        finally:
            after.close()
    finally:
        client.close()
        if not master.running:
            redis_cluster.restart(master)
    assert master not in redis_cluster.masters() and len(redis_cluster.replicas()) == 3


# --- a single Redis with one replica, behind a service that waits for it ---


@pytest.fixture
def master_with_replica(tmp_path: Path) -> Any:
    master = EmbeddedRedis(tmp_path / "master").start()
    assert master.password is not None
    replica = ServerProcess(
        master.server,
        tmp_path / "replica",
        free_port(),
        master.password,
        [("replicaof", "127.0.0.1", str(master.port))],
    ).start()
    with replica.client() as client:
        wait_until(lambda: client.info("replication")["master_link_status"] == "up", 15, "the replica syncs")
    try:
        yield master, replica
    finally:
        replica.stop()
        master.stop()


async def test_with_a_replica_a_reserve_is_acknowledged_once_on_it_and_refused_without_it(
    master_with_replica: tuple[EmbeddedRedis, ServerProcess], ray_runtime: None
) -> None:
    master, replica = master_with_replica
    admin = redis.Redis.from_url(master.url)
    # A master that lost its replicas refuses writes, rather than take ones no replica has
    # (docs/running.md, "Redis with replicas").
    admin.config_set("min-replicas-to-write", 1)
    async with services(master.url) as start:
        service = await start(redis_replicas=1, redis_wait_ms=500)
        keys = RedisKeys(service.config.prefix)
        async with OmnistockClient(f"127.0.0.1:{service.port}") as client:
            await client.put_nodes(NODES)
            await client.set_stock([level("REPL", "DC-1", 5)])
            held = await client.reserve("on-replica", [line("REPL", "DC-1", 2)])
            assert held.reservation.state == reservation_pb2.RESERVATION_STATE_HELD
            partition = partition_of("REPL", service.router.partitions)
            with replica.client() as on_replica:
                entries = on_replica.xrange(keys.log(partition))
                assert any(b"on-replica" in fields[b"e"] for _, fields in entries)

            # A replica that hangs: the master takes the write, WAIT gets no acknowledgement.
            replica.pause()
            try:
                with pytest.raises(OmnistockRpcError) as unacknowledged:
                    await client.reserve("while-hung", [line("REPL", "DC-1", 1)])
                assert unacknowledged.value.code is grpc.StatusCode.UNAVAILABLE
            finally:
                replica.resume()
            # Not acknowledged, but on the master: a retry with the same id answers it, once.
            retried = await client.reserve("while-hung", [line("REPL", "DC-1", 1)])
            assert retried.reservation.state == reservation_pb2.RESERVATION_STATE_HELD

            # A replica that is gone: the master refuses the write, so nothing changes.
            before = await client.availability(["REPL"], consistent=True)
            log_length = admin.xlen(keys.log(partition))
            replica.stop()
            wait_until(
                lambda: admin.info("replication")["connected_slaves"] == 0, 15, "the master sees it go"
            )
            with pytest.raises(OmnistockRpcError) as refused:
                await client.reserve("without-replica", [line("REPL", "DC-1", 1)])
            assert refused.value.code is grpc.StatusCode.UNAVAILABLE
            assert admin.xlen(keys.log(partition)) == log_length
            after = await client.availability(["REPL"], consistent=True)
            assert (after.skus[0].available, after.skus[0].reserved) == (
                before.skus[0].available,
                before.skus[0].reserved,
            )
            with pytest.raises(OmnistockRpcError) as unknown:
                await client.get_reservation("without-replica")
            assert unknown.value.code is grpc.StatusCode.NOT_FOUND
            assert await service.check() == []
    admin.close()
