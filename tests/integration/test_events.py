"""Every transition is an event: in the reservation's history, and on a Redis stream for
downstream systems (at least once, read with a consumer group)."""

from __future__ import annotations

from typing import Any

import redis

from omnistock.client import OmnistockClient, level, line
from omnistock.gateway.runtime.embedded_redis import EmbeddedRedis
from omnistock.protos.gen.omnistock.v1 import reservation_pb2
from tests.integration.conftest import skus_on_shards

T = reservation_pb2.ReservationEventType


async def test_transitions_are_in_the_history_and_on_the_stream(
    service: Any, client: OmnistockClient, redis_server: EmbeddedRedis
) -> None:
    stream = f"{service.config.prefix}:events"
    admin = redis.Redis.from_url(redis_server.url)
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

    entries = admin.xreadgroup("order-service", "worker-1", {stream: ">"}, count=100)[0][1]
    events = [reservation_pb2.ReservationEvent.FromString(fields[b"e"]) for _, fields in entries]
    mine = [e for e in events if e.reservation_id == "ev-1"]
    # One event per part (two partitions) and transition, each with its own stable id.
    assert sorted(e.type for e in mine) == sorted([1, 1, 5, 5, 2, 2, 3, 3])
    assert len({e.event_id for e in mine}) == 8
    held = [e for e in mine if e.type == T.RESERVATION_EVENT_TYPE_HELD]
    assert {ln.sku for e in held for ln in e.lines} == {sku_a, sku_b}
    assert {e.customer_id for e in held} == {"c-1"}
    admin.xack(stream, "order-service", *[entry_id for entry_id, _ in entries])
    assert admin.xpending(stream, "order-service")["pending"] == 0
