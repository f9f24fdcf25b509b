"""Redis killed under a running service: health says NOT_SERVING and writes answer UNAVAILABLE
with RetryInfo while it is gone; once it is back (the embedded one started again by the
service, an external one by its operator) writes work again with no restart of the service,
health says SERVING, and nothing written before is lost."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import psutil
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from omnistock.client import OmnistockClient, level, line
from omnistock.gateway.runtime.embedded_redis import SERVER_NAMES, EmbeddedRedis
from omnistock.protos.gen.omnistock.v1 import availability_pb2, inventory_pb2, reservation_pb2
from tests.conftest import services
from tests.integration.conftest import NODES

pytestmark = pytest.mark.slow

HEALTH_NAMES = [
    "",
    "omnistock.v1.InventoryService",
    "omnistock.v1.AvailabilityService",
    "omnistock.v1.ReservationService",
    "omnistock.v1.NetworkService",
]
BACK_WITHIN = 20.0
"""Generous bound on 'writes work again' after Redis is back (the promise is 5 s)."""


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"not within {timeout:.0f} s: {what}"
        await asyncio.sleep(0.1)


async def health_is(channel: grpc.aio.Channel, status: int) -> bool:
    stub = health_pb2_grpc.HealthStub(channel)
    for name in HEALTH_NAMES:
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
        if reply.status != status:
            return False
    return True


def retry_info(error: grpc.aio.AioRpcError) -> error_details_pb2.RetryInfo | None:
    status = rpc_status.from_call(error)
    for detail in status.details if status else []:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return info
    return None


async def refused_unavailable(call: Awaitable[Any]) -> None:
    """The call answers UNAVAILABLE with a RetryInfo detail."""
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call
    assert refused.value.code() is grpc.StatusCode.UNAVAILABLE, refused.value
    info = retry_info(refused.value)
    assert info is not None, f"no RetryInfo in {refused.value}"
    assert info.retry_delay.ToTimedelta().total_seconds() > 0


async def before_the_kill(client: OmnistockClient) -> None:
    await client.put_nodes(NODES)
    await client.set_stock([level("KEEP", "DC-1", 7)])
    await client.reserve("before", [line("KEEP", "DC-1", 2)])


async def while_redis_is_gone(client: OmnistockClient, channel: grpc.aio.Channel) -> None:
    """Health NOT_SERVING for every name; writes, then a consistent read, answer UNAVAILABLE."""
    await eventually(
        lambda: health_is(channel, health_pb2.HealthCheckResponse.NOT_SERVING), 20, "health NOT_SERVING"
    )
    set_stock = client.inventory.SetStock(
        inventory_pb2.SetStockRequest(levels=[level("DURING", "DC-1", 1)]), timeout=60
    )
    reserve = client.reservations.Reserve(
        reservation_pb2.ReserveRequest(reservation_id="during", lines=[line("KEEP", "DC-1", 1)]), timeout=60
    )
    await asyncio.gather(refused_unavailable(set_stock), refused_unavailable(reserve))
    consistent = client.availability_stub.GetAvailability(
        availability_pb2.GetAvailabilityRequest(skus=["KEEP"], consistent=True), timeout=60
    )
    await refused_unavailable(consistent)


async def once_redis_is_back(service: Any, client: OmnistockClient, channel: grpc.aio.Channel) -> None:
    """Writes work again with no restart, health SERVING, and what was written before is there."""

    async def writes() -> bool:
        try:
            await client.set_stock([level("AFTER", "DC-1", 3)])
        except Exception:
            return False
        return True

    await eventually(writes, BACK_WITHIN, "writes work again")
    await eventually(lambda: health_is(channel, health_pb2.HealthCheckResponse.SERVING), 10, "health SERVING")
    held = await client.reserve("after", [line("KEEP", "DC-1", 1)])
    assert held.reservation.state == reservation_pb2.RESERVATION_STATE_HELD
    answer = await client.availability(["KEEP", "AFTER", "DURING"], include_nodes=True, consistent=True)
    by_sku = {a.sku: a for a in answer.skus}
    assert (by_sku["KEEP"].on_hand, by_sku["KEEP"].reserved, by_sku["KEEP"].available) == (7, 3, 4)
    assert by_sku["AFTER"].on_hand == 3
    assert by_sku["DURING"].on_hand == 0  # refused, so not kept
    before = await client.get_reservation("before")
    assert before.state == reservation_pb2.RESERVATION_STATE_HELD
    assert await service.check() == []


def redis_server_on(data_dir: Path) -> psutil.Process:
    """The one redis-server working in `data_dir` (redis-server works in its --dir)."""
    here = os.path.realpath(data_dir)
    found = []
    for process in psutil.process_iter(["name"]):
        with contextlib.suppress(psutil.Error):
            if (process.info["name"] or "").startswith(SERVER_NAMES) and process.cwd() == here:
                found.append(process)
    assert len(found) == 1, f"redis-servers on {data_dir}: {found}"
    return found[0]


async def test_a_killed_embedded_redis_is_started_again_and_writes_work_again(
    ray_runtime: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with services("") as start:
        service = await start(redis_url=None, data_dir=tmp_path / "var", shards=1, partitions=8)
        embedded: EmbeddedRedis = service._embedded
        # The service starts Redis again within a second; held back here until the test has
        # seen how the service answers while it is gone.
        let_it_restart = asyncio.Event()
        restart = getattr(embedded, "restart", None)

        async def held_restart(*args: Any, **kwargs: Any) -> None:
            await let_it_restart.wait()
            assert restart is not None
            await restart(*args, **kwargs)

        monkeypatch.setattr(embedded, "restart", held_restart, raising=False)
        target = f"127.0.0.1:{service.port}"
        async with OmnistockClient(target) as client, grpc.aio.insecure_channel(target) as channel:
            await before_the_kill(client)
            killed = redis_server_on(embedded.data_dir)
            killed.kill()
            await while_redis_is_gone(client, channel)
            let_it_restart.set()
            await once_redis_is_back(service, client, channel)
            assert redis_server_on(embedded.data_dir).pid != killed.pid  # started again, once


async def test_an_external_redis_killed_and_started_again_is_used_again(
    ray_runtime: None, tmp_path: Path
) -> None:
    data = tmp_path / "redis"
    external = EmbeddedRedis(data).start()
    try:
        async with services(external.url) as start:
            service = await start(shards=1, partitions=8)
            target = f"127.0.0.1:{service.port}"
            async with OmnistockClient(target) as client, grpc.aio.insecure_channel(target) as channel:
                await before_the_kill(client)
                redis_server_on(data).kill()
                await while_redis_is_gone(client, channel)
                external.stop()  # it is gone already: this lets go of its data dir
                external = EmbeddedRedis(data, port=external.port).start()  # its AOF, same port
                await once_redis_is_back(service, client, channel)
    finally:
        external.stop()
