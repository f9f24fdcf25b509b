"""The whole service killed with SIGKILL (Redis left running) and started again loses nothing
acknowledged; SIGTERM drains in-flight calls and exits cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from omnistock.client import OmnistockClient, OmnistockRpcError, level, line
from omnistock.gateway.runtime.embedded_redis import EmbeddedRedis, free_port
from omnistock.protos.gen.omnistock.v1 import inventory_pb2
from tests.integration.conftest import NODES

pytestmark = pytest.mark.slow
OMNISTOCK = str(Path(sys.executable).parent / "omnistock")


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path / "redis").start()
    yield server
    server.stop()


def start_service(redis_url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "RAY_ADDRESS": ""}
    args = [OMNISTOCK, "serve", "--redis-url", redis_url, "--port", str(port)]
    # Metrics on any free port, picked when bound: a port chosen beforehand may be taken by
    # one of Ray's processes, which start first.
    args += ["--metrics-port", "0", "--shards", "2", "--data-dir", str(log.parent)]
    with log.open("ab") as out:
        return subprocess.Popen(args, stdout=out, stderr=out, env=env, start_new_session=True)


async def wait_serving(port: int, process: subprocess.Popen[bytes], log: Path, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            assert process.poll() is None, f"service exited:\n{log.read_text()[-3000:]}"
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError:
                pass
            assert time.monotonic() < deadline, f"service did not start:\n{log.read_text()[-3000:]}"
            await asyncio.sleep(0.3)


def wait_exit(process: subprocess.Popen[bytes], log: Path, timeout: float) -> int:
    """The exit code; on a hang, fail with the service's log and every thread's stack."""
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        spy = Path(sys.executable).parent / "py-spy"
        dump = subprocess.run([str(spy), "dump", "--pid", str(process.pid)], capture_output=True, text=True)
        stacks = dump.stdout + dump.stderr
        pytest.fail(f"service still running after {timeout}s\n{log.read_text()[-3000:]}\n{stacks}")


def kill_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)


async def state(client: OmnistockClient, skus: list[str], rids: list[str]) -> tuple[object, ...]:
    answer = await client.availability(skus, include_nodes=True, consistent=True)
    positions = sorted(
        (p.sku, p.node_id, p.on_hand, p.reserved, p.committed) for a in answer.skus for p in a.nodes
    )
    reservations = [(r.reservation_id, r.state) for r in [await client.get_reservation(rid) for rid in rids]]
    return positions, reservations


async def test_sigkill_loses_nothing_acknowledged(own_redis: EmbeddedRedis, tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    process = start_service(own_redis.url, port, log)
    try:
        await wait_serving(port, process, log)
        async with OmnistockClient(f"127.0.0.1:{port}") as client:
            await client.put_nodes(NODES)
            skus = [f"K-{i}" for i in range(6)]
            await client.set_stock([level(sku, "DC-1", 30) for sku in skus])
            await client.reserve("multi", [line(sku, "DC-1", 2) for sku in skus])
            await client.reserve("to-confirm", [line(skus[0], "DC-1", 3)])
            await client.confirm("to-confirm")
            await client.adjust("receipt-1", skus[1], "DC-1", 10, "receipt")

            # Many writes in flight when the kill lands: every acknowledged one must survive.
            acknowledged: list[str] = []

            async def one(i: int) -> None:
                try:
                    await client.reserve(f"burst-{i}", [line(skus[i % 6], "DC-1", 1)])
                    acknowledged.append(f"burst-{i}")
                except OmnistockRpcError:
                    pass

            burst = [asyncio.create_task(one(i)) for i in range(60)]
            await asyncio.sleep(0.05)
            kill_group(process, signal.SIGKILL)
            await asyncio.gather(*burst)
            process.wait(timeout=10)
        rids = ["multi", "to-confirm", *acknowledged]

        process = start_service(own_redis.url, port, log)
        await wait_serving(port, process, log)
        async with OmnistockClient(f"127.0.0.1:{port}") as client:
            assert {n.node_id for n in await client.list_nodes()} == {n.node_id for n in NODES}
            positions, reservations = await state(client, skus, rids)
            assert dict(reservations)["multi"] == 1  # HELD
            assert dict(reservations)["to-confirm"] == 2  # CONFIRMED
            assert all(dict(reservations)[rid] == 1 for rid in acknowledged)
            on_hand = {sku: oh for sku, _, oh, _, _ in positions}
            assert on_hand == {sku: 40 if sku == skus[1] else 30 for sku in skus}
            replay = await client.adjust("receipt-1", skus[1], "DC-1", 10, "receipt")
            assert replay.outcome == 2  # REPLAYED: the idempotency memory survived
            held = sum(r for _, _, _, r, _ in positions)
            burst_units = len(acknowledged)
            assert held >= 12 + burst_units  # "multi" (12) + every acknowledged burst hold

        # SIGTERM: drains and exits cleanly.
        # SIGTERM while a bulk load is streaming: the call in flight is drained, not cut.
        async with OmnistockClient(f"127.0.0.1:{port}") as client:
            first_sent = asyncio.Event()

            async def chunks() -> AsyncIterator[inventory_pb2.LoadStockRequest]:
                yield inventory_pb2.LoadStockRequest(levels=[level(skus[2], "DC-1", 31)])
                first_sent.set()
                await asyncio.sleep(1.0)
                yield inventory_pb2.LoadStockRequest(levels=[level(skus[3], "DC-1", 32)])

            call = client.inventory.LoadStock(chunks())
            await first_sent.wait()
            await asyncio.sleep(0.2)
            process.send_signal(signal.SIGTERM)
            response = await call
        assert (response.received, response.applied) == (2, 2)
        assert wait_exit(process, log, timeout=60) == 0, log.read_text()[-3000:]
    finally:
        kill_group(process, signal.SIGKILL)
