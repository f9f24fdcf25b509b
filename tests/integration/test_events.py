"""Every transition is an event: in the reservation's history, and on a Redis stream for
downstream systems (at least once, read with a consumer group)."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any, cast

import redis
from redis.crc import key_slot

from omnistock.client import OmnistockClient, level, line
from omnistock.gateway.grpc.events_servicer import StreamFeed
from omnistock.gateway.runtime.embedded_redis import EmbeddedRedis
from omnistock.protos.gen.omnistock.v1 import reservation_pb2
from omnistock.reservations.shard.journal import JOURNAL_GROUPS, RedisKeys
from omnistock.reservations.shard.redis_connect import connect_async, connect_sync
from tests.integration.conftest import skus_on_shards
from tests.redis_cluster import RedisCluster

T = reservation_pb2.ReservationEventType


async def test_transitions_are_in_the_history_and_on_the_stream(
    service: Any, client: OmnistockClient, redis_server: EmbeddedRedis
) -> None:
    streams = RedisKeys(service.config.prefix).event_streams
    admin = redis.Redis.from_url(redis_server.url)
    for stream in streams:
        admin.xgroup_create(stream, "order-service", id="0", mkstream=True)

    sku_a, sku_b = skus_on_shards(service, [0, 1], prefix="EV")
    await client.set_stock([level(sku_a, "DC-1", 5), level(sku_b, "DC-2", 5)])
    await client.reserve("ev-1", [line(sku_a, "DC-1", 1), line(sku_b, "DC-2", 1)], customer_id="c-1")
    await client.extend("ev-1", 600)
    await client.confirm("ev-1")
    await client.release("ev-1")

    history = (await client.get_reservation("ev-1")).history
    assert [h.type for h in history] == [
        T.RESERVATION_EVENT_TYPE_HELD,
        T.RESERVATION_EVENT_TYPE_EXTENDED,
        T.RESERVATION_EVENT_TYPE_CONFIRMED,
        T.RESERVATION_EVENT_TYPE_RELEASED,
    ]
    assert len({h.event_id for h in history}) == 4 and all(h.event_id.startswith("ev-1/") for h in history)

    # One XREADGROUP over every group's stream, as docs/events.md shows a consumer.
    found = cast(
        list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]],
        admin.xreadgroup("order-service", "worker-1", dict.fromkeys(streams, ">"), count=100),
    )
    entries = {stream.decode(): stream_entries for stream, stream_entries in found}
    events = [
        reservation_pb2.ReservationEvent.FromString(fields[b"e"])
        for stream_entries in entries.values()
        for _, fields in stream_entries
    ]
    mine = [e for e in events if e.reservation_id == "ev-1"]
    # One event per part (two partitions) and transition, each with its own stable id.
    assert sorted(e.type for e in mine) == sorted([1, 1, 5, 5, 2, 2, 3, 3])
    assert len({e.event_id for e in mine}) == 8
    held = [e for e in mine if e.type == T.RESERVATION_EVENT_TYPE_HELD]
    assert {ln.sku for e in held for ln in e.lines} == {sku_a, sku_b}
    assert {e.customer_id for e in held} == {"c-1"}
    for stream, stream_entries in entries.items():
        admin.xack(stream, "order-service", *[entry_id for entry_id, _ in stream_entries])
    assert all(admin.xpending(stream, "order-service")["pending"] == 0 for stream in streams)


async def test_the_feed_reads_every_group_stream_of_a_redis_cluster_as_one(
    redis_cluster: RedisCluster,
) -> None:
    """On Redis Cluster the group streams lie on several masters (no multi-key XREAD): the
    feed reads each, merges them, pages without skipping or repeating, and waits by polling."""
    keys = RedisKeys(f"feed-{uuid.uuid4().hex[:8]}")
    groups = [str(group) for group in range(JOURNAL_GROUPS)]
    writer = connect_sync(redis_cluster.url, socket_timeout=5.0)
    client = connect_async(redis_cluster.url, socket_timeout=5.0)
    feed = StreamFeed(client, keys.event_streams, groups)
    try:
        assert (
            len({redis_cluster.master_of_slot(key_slot(key.encode())).port for key in keys.event_streams})
            == 3
        )
        written = []
        for n in range(30):
            group = (n * 7) % JOURNAL_GROUPS
            entry_id = writer.xadd(keys.events(group), {"e": f"event-{n}".encode()})
            written.append(f"{group}/{_text(entry_id)}")

        seen: list[str] = []
        fields_of: dict[str, bytes] = {}
        cursor = feed.feed.start()
        for _ in range(20):
            page = await feed.page(cursor, 4, 0)
            if not page.entries:
                assert page.cursor == cursor
                break
            assert len(page.entries) <= 4
            assert [entry.position for entry in page.entries] == sorted(
                entry.position for entry in page.entries
            )
            for entry in page.entries:
                seen.append(feed.feed.entry_id(entry))
                fields_of[seen[-1]] = entry.fields[b"e"]
            cursor = page.cursor
        assert sorted(seen) == sorted(written) and len(set(seen)) == len(written)
        assert [fields_of[entry_id] for entry_id in written] == [f"event-{n}".encode() for n in range(30)]

        # "$": each stream's last id now; a wait ends when an entry lands on any master.
        latest = await feed.start("$")
        assert latest == cursor
        started = time.perf_counter()
        assert (await feed.page(latest, 10, 200)).entries == []
        assert time.perf_counter() - started >= 0.18
        waiting = asyncio.ensure_future(feed.page(latest, 10, 10_000))
        await asyncio.sleep(0.2)
        assert not waiting.done()
        late_id = writer.xadd(keys.events(11), {"e": b"late"})
        late = await asyncio.wait_for(waiting, timeout=5)
        assert [feed.feed.entry_id(entry) for entry in late.entries] == [f"11/{_text(late_id)}"]
    finally:
        writer.delete(*keys.event_streams)
        writer.close()
        await client.aclose()


def _text(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)
