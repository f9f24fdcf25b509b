"""The Redis+Lua peer of the bench, run as the bench runs it: its own process and embedded
Redis (appendfsync always), real gRPC on a port. Every refusal is checked to change nothing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from omnistock.loadtest.peer import EXPIRY, RESERVATIONS, Peer, position_key, seed_stock, start_peer
from omnistock.protos.gen.omnistock.v1 import common_pb2, reservation_pb2, reservation_pb2_grpc

HELD = reservation_pb2.RESERVATION_STATE_HELD
SWEEP_SECONDS = 0.2


@pytest_asyncio.fixture(scope="module")
async def peer(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Peer]:
    started = await start_peer(Path(tmp_path_factory.mktemp("peer")), "always", expire_every=SWEEP_SECONDS)
    try:
        yield started
    finally:
        started.stop()
    assert started.server.poll() is not None and started.redis.returncode is not None  # nothing left


@pytest_asyncio.fixture(scope="module")
async def store(peer: Peer) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(peer.redis_url)
    yield client
    await client.aclose()


@pytest_asyncio.fixture(scope="module")
async def stub(peer: Peer) -> AsyncIterator[reservation_pb2_grpc.ReservationServiceStub]:
    async with grpc.aio.insecure_channel(peer.target) as channel:
        yield reservation_pb2_grpc.ReservationServiceStub(channel)


def reserve(
    reservation_id: str, *lines: tuple[str, str, int], ttl: int = 600
) -> reservation_pb2.ReserveRequest:
    return reservation_pb2.ReserveRequest(
        reservation_id=reservation_id,
        lines=[reservation_pb2.ReservationLine(sku=s, node_id=n, quantity=q) for s, n, q in lines],
        ttl_seconds=ttl,
    )


async def held(store: aioredis.Redis, sku: str, node_id: str) -> int:
    return int(await store.hget(position_key(sku, node_id), "held") or 0)


async def untouched(store: aioredis.Redis, reservation_id: str, positions: list[tuple[str, str]]) -> None:
    """Nothing of `reservation_id` was written, and no unit of `positions` is held."""
    assert not await store.exists(RESERVATIONS + reservation_id)
    assert await store.zscore(EXPIRY, reservation_id) is None
    for sku, node_id in positions:
        assert await held(store, sku, node_id) == 0


def details(error: grpc.aio.AioRpcError) -> list[object]:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None
    found: list[object] = []
    for packed in status.details:
        for kind in (
            error_details_pb2.BadRequest,
            common_pb2.InsufficientStock,
            error_details_pb2.ResourceInfo,
        ):
            if packed.Is(kind.DESCRIPTOR):
                message = kind()
                packed.Unpack(message)
                found.append(message)
    return found


async def test_the_peers_redis_fsyncs_every_write(store: aioredis.Redis) -> None:
    assert await store.config_get("appendfsync") == {"appendfsync": "always"}
    assert await store.config_get("appendonly") == {"appendonly": "yes"}


async def test_its_processes_are_listed_for_cpu_accounting_and_keep_the_password_to_themselves(
    peer: Peer,
) -> None:
    processes = {process.pid: process for process in peer.processes()}
    assert peer.server.pid in processes
    assert any(p.name().startswith(("redis-server", "valkey-server")) for p in processes.values())
    password = peer.redis.password
    assert password and all(password not in " ".join(p.cmdline()) for p in processes.values())


async def test_a_reserve_holds_every_line_indexes_its_expiry_and_replays(
    stub: reservation_pb2_grpc.ReservationServiceStub, peer: Peer, store: aioredis.Redis
) -> None:
    await seed_stock(peer.redis_url, [("HOLD-B", "DC-1", 10), ("HOLD-A", "DC-2", 5)])
    before = time.time()
    answer = await stub.Reserve(reserve("cart-hold", ("HOLD-B", "DC-1", 3), ("HOLD-A", "DC-2", 5)))
    assert not answer.replayed
    reservation = answer.reservation
    assert (reservation.reservation_id, reservation.state) == ("cart-hold", HELD)
    assert [(line.sku, line.node_id, line.quantity) for line in reservation.lines] == [
        ("HOLD-A", "DC-2", 5),
        ("HOLD-B", "DC-1", 3),
    ]  # sorted by (sku, node), as omnistock answers
    expires = reservation.expires_at.ToMilliseconds()
    assert before * 1000 + 600_000 - 5 <= expires <= time.time() * 1000 + 600_000
    assert await held(store, "HOLD-B", "DC-1") == 3
    assert await held(store, "HOLD-A", "DC-2") == 5
    assert await store.zscore(EXPIRY, "cart-hold") == expires

    again = await stub.Reserve(reserve("cart-hold", ("HOLD-A", "DC-2", 5), ("HOLD-B", "DC-1", 3)))
    assert again.replayed
    assert again.reservation == reservation  # the first answer, lines given in another order
    assert await held(store, "HOLD-B", "DC-1") == 3
    assert await held(store, "HOLD-A", "DC-2") == 5


async def test_the_same_id_with_other_lines_is_refused_and_changes_nothing(
    stub: reservation_pb2_grpc.ReservationServiceStub, peer: Peer, store: aioredis.Redis
) -> None:
    await seed_stock(peer.redis_url, [("CONFLICT", "DC-1", 10)])
    await stub.Reserve(reserve("cart-conflict", ("CONFLICT", "DC-1", 2)))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.Reserve(reserve("cart-conflict", ("CONFLICT", "DC-1", 3)))
    assert refused.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "cart-conflict" in str(refused.value.details())
    info = details(refused.value)
    assert info == [
        error_details_pb2.ResourceInfo(resource_type="reservation", resource_name="cart-conflict")
    ]
    assert await held(store, "CONFLICT", "DC-1") == 2


async def test_a_short_line_refuses_the_whole_reserve(
    stub: reservation_pb2_grpc.ReservationServiceStub, peer: Peer, store: aioredis.Redis
) -> None:
    await seed_stock(peer.redis_url, [("SHORT-A", "DC-1", 10), ("SHORT-B", "DC-1", 2)])
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.Reserve(reserve("cart-short", ("SHORT-A", "DC-1", 4), ("SHORT-B", "DC-1", 3)))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    short = [d for d in details(refused.value) if isinstance(d, common_pb2.InsufficientStock)]
    assert short == [
        common_pb2.InsufficientStock(
            lines=[common_pb2.ShortLine(sku="SHORT-B", node_id="DC-1", requested=3, available=2)]
        )
    ]
    await untouched(store, "cart-short", [("SHORT-A", "DC-1"), ("SHORT-B", "DC-1")])

    # A position never seeded has nothing available.
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await stub.Reserve(reserve("cart-unknown", ("NEVER-SEEDED", "DC-1", 1)))
    assert unknown.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "NEVER-SEEDED at DC-1 (requested 1, available 0)" in str(unknown.value.details())
    await untouched(store, "cart-unknown", [("NEVER-SEEDED", "DC-1")])


BAD = [
    (reserve("", ("BAD", "DC-1", 1)), "reservation_id"),
    (reserve("a b", ("BAD", "DC-1", 1)), "reservation_id"),
    (reserve("x" * 129, ("BAD", "DC-1", 1)), "reservation_id"),
    (reserve("cart-bad"), "lines"),
    (reserve("cart-bad", *((f"BAD-{i}", "DC-1", 1) for i in range(101))), "lines"),
    (reserve("cart-bad", ("BAD", "DC-1", 0)), "lines[0].quantity"),
    (reserve("cart-bad", ("BAD", "DC-1", 1_000_001)), "lines[0].quantity"),
    (reserve("cart-bad", ("", "DC-1", 1)), "lines[0].sku"),
    (reserve("cart-bad", ("BAD", "D C", 1)), "lines[0].node_id"),
    (reserve("cart-bad", ("BAD", "DC-1", 1), ("BAD", "DC-1", 2)), "lines[1]"),
    (reserve("cart-bad", ("BAD", "DC-1", 1), ttl=86_401), "ttl_seconds"),
    (reserve("cart-bad", ("BAD", "DC-1", 1), ttl=-5), "ttl_seconds"),
    (reserve("cart-bad", ("BAD", "", 1)), "lines"),
    (
        reservation_pb2.ReserveRequest(
            reservation_id="cart-bad",
            lines=[reservation_pb2.ReservationLine(sku="BAD", node_id="DC-1", quantity=1)],
            channel_id="web",
        ),
        "channel_id",
    ),
]


@pytest.mark.parametrize(("request_", "field"), BAD, ids=[f"{field}-{i}" for i, (_, field) in enumerate(BAD)])
async def test_bad_input_is_refused_naming_the_field_and_changes_nothing(
    stub: reservation_pb2_grpc.ReservationServiceStub,
    peer: Peer,
    store: aioredis.Redis,
    request_: reservation_pb2.ReserveRequest,
    field: str,
) -> None:
    await seed_stock(peer.redis_url, [("BAD", "DC-1", 10)])
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.Reserve(request_)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    (bad,) = details(refused.value)
    assert isinstance(bad, error_details_pb2.BadRequest)
    assert field in [violation.field for violation in bad.field_violations]
    await untouched(store, request_.reservation_id, [("BAD", "DC-1")])


async def test_sourced_lines_are_refused_in_words(stub: reservation_pb2_grpc.ReservationServiceStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.Reserve(reserve("cart-sourced", ("BAD", "", 1)))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "the peer holds at named nodes only" in str(refused.value.details())


async def test_undecodable_bytes_and_other_methods_are_refused(peer: Peer) -> None:
    async with grpc.aio.insecure_channel(peer.target) as channel:
        raw = channel.unary_unary("/omnistock.v1.ReservationService/Reserve")
        with pytest.raises(grpc.aio.AioRpcError) as garbage:
            await raw(b"\xff\xff\xff")
        assert garbage.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        confirm = reservation_pb2_grpc.ReservationServiceStub(channel).Confirm
        with pytest.raises(grpc.aio.AioRpcError) as other:
            await confirm(reservation_pb2.ConfirmRequest(reservation_id="cart-hold"))
        assert other.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_release_gives_the_units_back_once(
    stub: reservation_pb2_grpc.ReservationServiceStub, peer: Peer, store: aioredis.Redis
) -> None:
    await seed_stock(peer.redis_url, [("RELEASE", "DC-1", 4), ("RELEASE", "DC-2", 4)])
    await stub.Reserve(reserve("cart-release", ("RELEASE", "DC-1", 4), ("RELEASE", "DC-2", 1)))
    released = await stub.Release(reservation_pb2.ReleaseRequest(reservation_id="cart-release"))
    assert not released.replayed
    assert released.reservation.state == reservation_pb2.RESERVATION_STATE_RELEASED
    assert [(line.node_id, line.quantity) for line in released.reservation.lines] == [
        ("DC-1", 4),
        ("DC-2", 1),
    ]
    assert released.reservation.HasField("changed_at")
    assert await held(store, "RELEASE", "DC-1") == 0
    assert await held(store, "RELEASE", "DC-2") == 0
    assert await store.zscore(EXPIRY, "cart-release") is None

    again = await stub.Release(reservation_pb2.ReleaseRequest(reservation_id="cart-release"))
    assert again.replayed and again.reservation == released.reservation
    assert await held(store, "RELEASE", "DC-1") == 0
    # The units are there to hold again.
    await stub.Reserve(reserve("cart-release-2", ("RELEASE", "DC-1", 4)))

    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await stub.Release(reservation_pb2.ReleaseRequest(reservation_id="cart-never"))
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_lapsed_hold_expires_and_stays_expired(
    stub: reservation_pb2_grpc.ReservationServiceStub, peer: Peer, store: aioredis.Redis
) -> None:
    await seed_stock(peer.redis_url, [("EXPIRE", "DC-1", 2)])
    await stub.Reserve(reserve("cart-expire", ("EXPIRE", "DC-1", 2), ttl=1))
    assert await held(store, "EXPIRE", "DC-1") == 2
    deadline = time.monotonic() + 10
    while await held(store, "EXPIRE", "DC-1") and time.monotonic() < deadline:
        await asyncio.sleep(SWEEP_SECONDS)
    assert await held(store, "EXPIRE", "DC-1") == 0
    assert await store.zscore(EXPIRY, "cart-expire") is None
    replay = await stub.Reserve(reserve("cart-expire", ("EXPIRE", "DC-1", 2), ttl=1))
    assert replay.replayed and replay.reservation.state == reservation_pb2.RESERVATION_STATE_EXPIRED
    assert await held(store, "EXPIRE", "DC-1") == 0
    with pytest.raises(grpc.aio.AioRpcError) as late:
        await stub.Release(reservation_pb2.ReleaseRequest(reservation_id="cart-expire"))
    assert late.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "EXPIRED" in str(late.value.details())
