"""A Redis written by an omnistock before journal groups: the first start of this version
renames its keys, and the stock, the network and the reservations made before are all there."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from omnistock.client import OmnistockClient, level, line
from omnistock.gateway.runtime.embedded_redis import EmbeddedRedis
from omnistock.gateway.runtime.key_layout import legacy_names, migrate_key_layout
from omnistock.protos.gen.omnistock.v1 import reservation_pb2
from omnistock.reservations.shard.journal import RedisKeys
from omnistock.reservations.shard.redis_connect import connect_async
from tests.conftest import services
from tests.integration.conftest import NODES

PARTITIONS = 8


@pytest.fixture
def admin(redis_server: EmbeddedRedis) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url)
    yield client
    client.close()


def back_to_the_earlier_layout(admin: redis.Redis, keys: RedisKeys) -> list[str]:
    """Rename today's keys to an earlier version's names, and drop what it did not have
    (owner keys, the placement, the groups' streams); the legacy names now present."""
    for old, new in legacy_names(keys, PARTITIONS):
        if admin.exists(new):
            admin.rename(new, old)
    for pattern in (f"{{{keys.prefix}}}:*", f"{{{keys.prefix}:g*"):
        for key in admin.scan_iter(match=pattern):
            admin.delete(key)
    return [old for old, _ in legacy_names(keys, PARTITIONS) if admin.exists(old)]


async def test_a_redis_of_the_earlier_layout_is_renamed_and_serves_what_it_held(
    redis_server: EmbeddedRedis, ray_runtime: None, admin: redis.Redis
) -> None:
    prefix = f"layout-{uuid.uuid4().hex[:10]}"
    keys = RedisKeys(prefix)
    settings = {"prefix": prefix, "partitions": PARTITIONS}
    async with services(redis_server.url) as start:
        service = await start(**settings)
        async with OmnistockClient(f"127.0.0.1:{service.port}") as client:
            await client.put_nodes(NODES)
            await client.set_stock([level("OLD-1", "DC-1", 9), level("OLD-2", "DC-2", 4)])
            held = await client.reserve(
                "before-upgrade", [line("OLD-1", "DC-1", 2), line("OLD-2", "DC-2", 1)]
            )
            assert held.reservation.state == reservation_pb2.RESERVATION_STATE_HELD

    legacy = back_to_the_earlier_layout(admin, keys)
    assert f"{prefix}:partitions" in legacy and f"{prefix}:network" in legacy
    assert any(name.endswith(":log") for name in legacy)
    assert not list(admin.scan_iter(match=f"{{{prefix}*"))  # nothing of today's layout left

    async with services(redis_server.url) as start:
        service = await start(**settings)
        assert [old for old in legacy if admin.exists(old)] == []
        assert admin.get(keys.partitions) == str(PARTITIONS).encode()
        async with OmnistockClient(f"127.0.0.1:{service.port}") as client:
            found = await client.get_reservation("before-upgrade")
            assert found.state == reservation_pb2.RESERVATION_STATE_HELD
            seen = await client.availability(["OLD-1", "OLD-2"], consistent=True)
            by_sku = {sku.sku: (sku.available, sku.reserved) for sku in seen.skus}
            assert by_sku == {"OLD-1": (7, 2), "OLD-2": (3, 1)}
            confirmed = await client.confirm("before-upgrade")
            assert confirmed.reservation.state == reservation_pb2.RESERVATION_STATE_CONFIRMED
        assert await service.check() == []

    aclient = connect_async(redis_server.url)
    try:
        assert await migrate_key_layout(aclient, keys) == 0  # a second start renames nothing
    finally:
        await aclient.aclose()


async def test_a_migration_cut_midway_finishes_at_the_next_start(
    redis_server: EmbeddedRedis, admin: redis.Redis
) -> None:
    keys = RedisKeys(f"layout-cut-{uuid.uuid4().hex[:10]}")
    old = keys.prefix
    admin.set(f"{old}:partitions", PARTITIONS)
    admin.set(f"{old}:network", b"network")
    admin.xadd(f"{old}:events", {"e": b"event"})
    for number in range(PARTITIONS):
        admin.xadd(f"{old}:p:{number}:log", {"e": b"entry"})
        admin.set(f"{old}:p:{number}:snap", b"snapshot")
    names = [(o, n) for o, n in legacy_names(keys, PARTITIONS) if admin.exists(o)]
    # A start renamed the first half, in the order migrate renames, then died.
    for earlier, today in names[: len(names) // 2]:
        admin.rename(earlier, today)

    aclient = connect_async(redis_server.url)
    try:
        assert await migrate_key_layout(aclient, keys) == len(names) - len(names) // 2
        assert await migrate_key_layout(aclient, keys) == 0
    finally:
        await aclient.aclose()
    assert [o for o, _ in names if admin.exists(o)] == []
    assert all(admin.exists(today) for _, today in names)
    assert admin.xlen(keys.events(0)) == 1 and admin.xlen(keys.log(3)) == 1
