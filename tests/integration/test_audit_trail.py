"""The audit trail on a real service (auth off: every caller is "local"): a reservation's
history and the published events say who made each change, the audit stream has the stock
and network changes, and EventService (and `omnistock events`) read both page by page,
waiting for new entries when asked to."""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from typing import Any, cast

import grpc
import pytest
import redis

from omnistock.client import OmnistockClient, OmnistockRpcError, level, line
from omnistock.gateway.runtime.embedded_redis import EmbeddedRedis
from omnistock.protos.gen.omnistock.v1 import common_pb2, reservation_pb2
from omnistock.reservations.shard.journal import JOURNAL_GROUPS, RedisKeys
from tests.integration.conftest import skus_on_shards

T = reservation_pb2.ReservationEventType


async def omnistock_cli(*args: str) -> tuple[int, str, str]:
    """`omnistock ARGS` in its own process (the service runs in this one's event loop)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "omnistock.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def on_streams(
    admin: redis.Redis, streams: list[str], labels: list[str]
) -> list[tuple[str, dict[bytes, bytes]]]:
    """Every entry of the streams, as the feed orders them: by stream id, then stream; each
    with its feed id "<label>/<ms>-<seq>"."""
    found = []
    for index, (stream, label) in enumerate(zip(streams, labels, strict=True)):
        for raw_id, fields in cast(list[tuple[bytes, dict[bytes, bytes]]], admin.xrange(stream)):
            ms, seq = (int(part) for part in raw_id.decode().split("-"))
            found.append(((ms, seq, index), f"{label}/{raw_id.decode()}", fields))
    return [(entry_id, fields) for _, entry_id, fields in sorted(found, key=lambda item: item[0])]


async def test_every_change_says_who_made_it_and_both_streams_read_page_by_page(
    service: Any, client: OmnistockClient, redis_server: EmbeddedRedis
) -> None:
    keys = RedisKeys(service.config.prefix)
    groups = [str(group) for group in range(JOURNAL_GROUPS)]
    admin = redis.Redis.from_url(redis_server.url)
    sku_a, sku_b = skus_on_shards(service, [0, 1], prefix="AUD")
    await client.set_stock([level(sku_a, "DC-1", 5), level(sku_b, "DC-2", 5)])
    await client.reserve("aud-1", [line(sku_a, "DC-1", 1), line(sku_b, "DC-2", 2)], customer_id="c-1")
    await client.confirm("aud-1")
    await client.adjust("adj-1", sku_a, "DC-1", -1, "broken in store")
    await client.put_nodes([common_pb2.Node(node_id="STORE-9", type=common_pb2.NODE_TYPE_STORE, pickup=True)])

    # The reservation's history, as GetReservation shows it.
    history = (await client.get_reservation("aud-1")).history
    assert [(h.type, h.by) for h in history] == [
        (T.RESERVATION_EVENT_TYPE_HELD, "local"),
        (T.RESERVATION_EVENT_TYPE_CONFIRMED, "local"),
    ]

    # The published events: on the Redis stream and through ReadReservationEvents alike.
    raw = on_streams(admin, keys.event_streams, groups)
    on_stream = [reservation_pb2.ReservationEvent.FromString(fields[b"e"]) for _, fields in raw]
    assert sorted((e.type, e.by) for e in on_stream if e.reservation_id == "aud-1") == [
        (T.RESERVATION_EVENT_TYPE_HELD, "local"),
        (T.RESERVATION_EVENT_TYPE_HELD, "local"),
        (T.RESERVATION_EVENT_TYPE_CONFIRMED, "local"),
        (T.RESERVATION_EVENT_TYPE_CONFIRMED, "local"),
    ]
    page = await client.read_events()
    assert [entry.id for entry in page.entries] == [entry_id for entry_id, _ in raw]
    assert [entry.event for entry in page.entries] == on_stream
    assert len({entry.id.split("/")[0] for entry in page.entries}) >= 2  # two partitions' groups

    # Paging: two at a time, each page after the last id of the one before.
    seen, after = [], ""
    for _ in range(10):
        two = await client.read_events(after=after, limit=2)
        if not two.entries:
            assert two.last_id == after  # nothing new: read on from the same place
            break
        assert len(two.entries) <= 2
        seen += [entry.id for entry in two.entries]
        after = two.last_id
    assert seen == [entry.id for entry in page.entries]

    # The audit trail: the stock and network changes, each with its caller.
    audit = await client.read_audit()
    found = {(e.action, e.subject, e.by) for e in audit.entries}
    assert ("stock.set", f"{sku_a}@DC-1", "local") in found and (
        "stock.set",
        f"{sku_b}@DC-2",
        "local",
    ) in found
    assert ("stock.adjusted", f"{sku_a}@DC-1", "local") in found
    assert ("network.nodes_put", "STORE-9", "local") in found
    adjusted = next(e for e in audit.entries if e.action == "stock.adjusted")
    assert json.loads(adjusted.detail)["reason"] == "broken in store"
    assert json.loads(adjusted.detail)["delta"] == -1
    assert abs(adjusted.at.seconds - time.time()) < 60
    stream = on_streams(admin, keys.audit_streams, ["shared", *groups])
    assert [e.id for e in audit.entries] == [entry_id for entry_id, _ in stream]
    assert {fields[b"by"] for _, fields in stream} == {b"local"}
    assert next(e.id for e in audit.entries if e.action == "network.nodes_put").startswith("shared/")

    # By subject: only the changes of sku_a's stock; the last id still moves past the others.
    mine = await client.read_audit(subject_prefix=sku_a)
    assert [(e.action, e.subject) for e in mine.entries] == [
        ("stock.set", f"{sku_a}@DC-1"),
        ("stock.adjusted", f"{sku_a}@DC-1"),
    ]
    assert mine.last_id == audit.last_id

    # Waiting: "$" reads only what comes after the call, and a change ends the wait at once.
    started = time.perf_counter()
    nothing = await client.read_events(after="$", wait_ms=300)
    assert nothing.entries == [] and nothing.last_id == page.last_id
    assert time.perf_counter() - started >= 0.25
    waiting = asyncio.ensure_future(client.read_events(after="$", wait_ms=20_000))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    started = time.perf_counter()
    await client.release("aud-1")
    released = await asyncio.wait_for(waiting, timeout=10)
    assert time.perf_counter() - started < 5
    first = released.entries[0].event
    assert (first.reservation_id, first.type, first.by) == (
        "aud-1",
        T.RESERVATION_EVENT_TYPE_RELEASED,
        "local",
    )
    waiting_audit = asyncio.ensure_future(
        client.read_audit(after=audit.last_id, wait_ms=20_000, subject_prefix="STORE-")
    )
    await asyncio.sleep(0.3)
    await client.put_purchase_limits({sku_b: 2})  # not a STORE- subject: the wait goes on
    await asyncio.sleep(0.3)
    assert not waiting_audit.done()
    await client.put_nodes([common_pb2.Node(node_id="STORE-10", type=common_pb2.NODE_TYPE_STORE)])
    stores = await asyncio.wait_for(waiting_audit, timeout=10)
    assert [(e.action, e.subject) for e in stores.entries] == [("network.nodes_put", "STORE-10")]

    # `omnistock events --json`: one object per event; --audit the same for the audit trail.
    target = f"127.0.0.1:{service.port}"
    code, out, err = await omnistock_cli("events", "--json", "--target", target)
    assert code == 0, err
    printed = [json.loads(text) for text in out.splitlines()]
    mine_printed = [
        (p["reservation_id"], p["type"], p["by"]) for p in printed if p["reservation_id"] == "aud-1"
    ]
    assert len(mine_printed) == 6 and {by for _, _, by in mine_printed} == {"local"}
    assert all(re.fullmatch(r"([0-9]|1[0-5])/[0-9]+-[0-9]+", p["id"]) for p in printed)
    # It ends saying where to read on from: after everything printed, nothing is left.
    resume = err.split("--after ", 1)[1].split()[0]
    assert (await client.read_events(after=resume)).entries == []
    code, out, err = await omnistock_cli("events", "--audit", "--subject", sku_a, "--target", target)
    assert code == 0, err
    assert [text.split()[1:4] for text in out.splitlines()] == [
        ["stock.set", f"{sku_a}@DC-1", "by"],
        ["stock.adjusted", f"{sku_a}@DC-1", "by"],
    ]
    assert all(text.split()[4] == "local" for text in out.splitlines())


@pytest.mark.parametrize(
    ("method", "request_fields", "field"),
    [
        ("read_events", {"limit": 1_001}, "limit"),
        ("read_events", {"wait_ms": 30_001}, "wait_ms"),
        ("read_events", {"after": "not-an-id"}, "after"),
        ("read_events", {"after": "c1.EQA"}, "after"),  # a cursor of 17 streams: the audit trail's
        ("read_audit", {"subject_prefix": "SKU\x1b[2J"}, "subject_prefix"),
    ],
)
async def test_a_bad_page_request_is_refused_naming_the_field(
    module_service: Any, method: str, request_fields: dict[str, Any], field: str
) -> None:
    async with OmnistockClient(f"127.0.0.1:{module_service.port}") as client:
        with pytest.raises(OmnistockRpcError) as refused:
            await getattr(client, method)(**request_fields)
    assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [name for name, _ in refused.value.field_violations] == [field]
