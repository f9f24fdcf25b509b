"""Limits under load on a real service: past a gateway's caps or a caller's rate a call is
refused at once with RESOURCE_EXHAUSTED and RetryInfo, the calls let in succeed, a call that
comes too late is dropped before any change, and every refusal is counted. And /metrics
stays on loopback whatever interface gRPC listens on."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import grpc
import psutil
import pytest
import redis.asyncio as aioredis
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from omnistock.client import OmnistockClient, OmnistockRpcError, level, line
from omnistock.gateway.grpc.admission import AdmissionSettings
from omnistock.gateway.runtime.embedded_redis import EmbeddedRedis
from omnistock.protos.gen.omnistock.v1 import availability_pb2, common_pb2, reservation_pb2
from tests.integration.scrape import scrape, total

DC = common_pb2.Node(node_id="DC-1", type=common_pb2.NODE_TYPE_DC, ships=True, enabled=True)
EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED
REDIS_PAUSE_MS = 2000
"""How long Redis holds every write: the calls let in wait on their journal write meanwhile."""


def refusals(service: Any, reason: str) -> float:
    return total(scrape(service.metrics_port), "omnistock_admission_refusals_total", reason=reason)


def rich_details(error: grpc.aio.AioRpcError) -> tuple[float, str]:
    """(RetryInfo's delay in seconds, ErrorInfo's reason) of a refusal."""
    status = rpc_status.from_call(error)
    assert status is not None, "a refusal without rich details"
    retry, info = error_details_pb2.RetryInfo(), error_details_pb2.ErrorInfo()
    found = {detail.type_url.rsplit(".", 1)[-1]: detail for detail in status.details}
    assert found["RetryInfo"].Unpack(retry) and found["ErrorInfo"].Unpack(info)
    return retry.retry_delay.ToNanoseconds() / 1e9, info.reason


async def timed(call: Awaitable[Any]) -> tuple[float, Any]:
    """(seconds, the answer or the gRPC error) of one call."""
    started = time.perf_counter()
    try:
        answer = await call
    except grpc.aio.AioRpcError as error:
        answer = error
    return time.perf_counter() - started, answer


async def until(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.005)


@contextlib.asynccontextmanager
async def writes_paused(redis_url: str, milliseconds: int) -> AsyncIterator[None]:
    """Redis holds every write (the shards' journal too) for `milliseconds`."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        await client.execute_command("CLIENT", "PAUSE", milliseconds, "WRITE")
        yield
    finally:
        await client.execute_command("CLIENT", "UNPAUSE")
        await client.aclose()


def hold(reservation_id: str) -> reservation_pb2.ReserveRequest:
    return reservation_pb2.ReserveRequest(
        reservation_id=reservation_id, lines=[line("SKU-1", "DC-1", 1)], ttl_seconds=600
    )


async def test_calls_past_the_cap_are_refused_at_once_and_those_let_in_succeed(
    make_service: Any, redis_server: EmbeddedRedis
) -> None:
    service = await make_service(metrics_port=0, admission=AdmissionSettings(max_calls=2))
    admission = service.gateway.admission
    async with OmnistockClient(f"127.0.0.1:{service.port}") as client:
        await client.put_nodes([DC])
        await client.set_stock([level("SKU-1", "DC-1", 100)])
        reserve = client.reservations.Reserve
        async with writes_paused(redis_server.url, REDIS_PAUSE_MS):
            # Two holds wait on their journal write: the gateway is at its cap.
            held = [asyncio.create_task(timed(reserve(hold(f"held-{i}"), timeout=30))) for i in range(2)]
            await until(lambda: admission.calls == 2)
            extra = await asyncio.gather(*(timed(reserve(hold(f"extra-{i}"), timeout=30)) for i in range(8)))
            # Refused while the two are still in flight: not queued behind them.
            assert not any(task.done() for task in held)
        for seconds, error in extra:
            assert isinstance(error, grpc.aio.AioRpcError), error
            assert error.code() is EXHAUSTED
            assert "2 calls in flight" in (error.details() or "")
            assert rich_details(error) == (0.05, "CONCURRENCY_LIMIT")
            assert seconds < 1.0, f"a refusal took {seconds:.3f} s"
        for _, answer in await asyncio.gather(*held):
            assert isinstance(answer, reservation_pb2.ReserveResponse), answer
            assert answer.reservation.state == reservation_pb2.RESERVATION_STATE_HELD
        assert admission.calls == 0
        # The refused holds left nothing behind.
        position = (await client.availability(["SKU-1"], consistent=True)).skus[0]
        assert (position.reserved, position.available) == (2, 98)
        with pytest.raises(OmnistockRpcError) as missing:
            await client.get_reservation("extra-0")
        assert missing.value.code is grpc.StatusCode.NOT_FOUND
    assert refusals(service, "concurrency") == 8
    assert (
        total(
            scrape(service.metrics_port),
            "omnistock_rpc_requests_total",
            method="Reserve",
            code=EXHAUSTED.name,
        )
        == 8
    )
    assert await service.check() == []


async def test_streams_past_the_cap_are_refused_and_a_closed_one_frees_its_place(make_service: Any) -> None:
    service = await make_service(metrics_port=0, admission=AdmissionSettings(max_calls=50, max_streams=1))
    admission = service.gateway.admission
    watch = availability_pb2.WatchAvailabilityRequest(skus=["SKU-1"])
    async with OmnistockClient(f"127.0.0.1:{service.port}") as client:
        first = client.availability_stub.WatchAvailability(watch)
        await first.read()  # the catch-up: the stream is open
        assert admission.streams == 1
        seconds, refused = await timed(client.availability_stub.WatchAvailability(watch).read())
        assert isinstance(refused, grpc.aio.AioRpcError)
        assert refused.code() is EXHAUSTED
        assert rich_details(refused) == (1.0, "STREAMS_LIMIT")
        assert seconds < 1.0
        # Unary calls have their own cap: they still come in.
        assert (await client.availability(["SKU-1"])).skus[0].sku == "SKU-1"
        first.cancel()
        await until(lambda: admission.streams == 0)
        again = client.availability_stub.WatchAvailability(watch)
        assert (await again.read()).catch_up
        again.cancel()
    assert refusals(service, "streams") == 1


async def test_a_call_that_arrives_too_late_is_dropped_before_any_change(make_service: Any) -> None:
    # A floor above the client's deadline: every call with a deadline arrives "too late".
    settings = AdmissionSettings(deadline_floor=120.0)
    service = await make_service(metrics_port=0, admission=settings)
    target = f"127.0.0.1:{service.port}"
    async with OmnistockClient(target, timeout=None) as patient, OmnistockClient(target, timeout=60) as hasty:
        await patient.put_nodes([DC])
        await patient.set_stock([level("SKU-1", "DC-1", 5)])
        seconds, dropped = await timed(hasty.reservations.Reserve(hold("late-1"), timeout=60))
        assert isinstance(dropped, grpc.aio.AioRpcError)
        assert dropped.code() is grpc.StatusCode.DEADLINE_EXCEEDED
        assert "nothing was done" in (dropped.details() or "")
        assert seconds < 5.0  # the server's answer, long before the client's 60 s
        position = (await patient.availability(["SKU-1"], consistent=True)).skus[0]
        assert (position.on_hand, position.reserved) == (5, 0)
        with pytest.raises(OmnistockRpcError) as missing:
            await patient.get_reservation("late-1")
        assert missing.value.code is grpc.StatusCode.NOT_FOUND
    assert refusals(service, "deadline") == 1


async def test_a_caller_over_its_rate_is_told_when_to_come_back(make_service: Any) -> None:
    service = await make_service(
        metrics_port=0, admission=AdmissionSettings(rate_per_key=2.0, burst_per_key=3)
    )
    async with OmnistockClient(f"127.0.0.1:{service.port}") as client:
        ask = availability_pb2.GetAvailabilityRequest(skus=["SKU-1"])
        answers = [await timed(client.availability_stub.GetAvailability(ask, timeout=10)) for _ in range(4)]
        assert all(isinstance(answer, availability_pb2.GetAvailabilityResponse) for _, answer in answers[:3])
        _, refused = answers[3]
        assert isinstance(refused, grpc.aio.AioRpcError)
        assert refused.code() is EXHAUSTED
        assert "rate limit of 2 calls a second" in (refused.details() or "")
        delay, reason = rich_details(refused)
        assert reason == "RATE_LIMIT"
        assert 0 < delay <= 0.5
        await asyncio.sleep(delay)
        assert (await client.availability(["SKU-1"])).skus[0].sku == "SKU-1"
    assert refusals(service, "rate") == 1


def listening_addresses(port: int) -> set[str]:
    return {
        connection.laddr.ip
        for connection in psutil.Process().net_connections(kind="inet")
        if connection.status == psutil.CONN_LISTEN and connection.laddr.port == port
    }


def outside_address() -> str | None:
    """An IPv4 address of this machine other than loopback, if it has one."""
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family == socket.AF_INET and not address.address.startswith("127."):
                return str(address.address)
    return None


async def test_metrics_stay_on_loopback_when_grpc_listens_on_every_interface(make_service: Any) -> None:
    service = await make_service(host="0.0.0.0", metrics_port=0)
    assert listening_addresses(service.port) <= {"0.0.0.0", "::"}  # every interface (and IPv6's)
    assert listening_addresses(service.port)
    assert listening_addresses(service.metrics_port) == {"127.0.0.1"}
    assert "omnistock_calls_in_flight" in {name for name, _ in scrape(service.metrics_port)}
    outside = outside_address()
    if outside is not None:
        with pytest.raises(OSError), socket.create_connection((outside, service.metrics_port), timeout=2):
            pass
