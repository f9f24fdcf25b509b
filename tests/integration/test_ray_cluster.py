"""A real multi-node Ray cluster: 3 Ray nodes on loopback (tests/integration/ray_cluster_nodes.py,
Ray's own multi-node harness), `omnistock serve --ray-address` with 2 shards spread over the 2
workers, and `omnistock gateway --ray-address` serving another port against the same shards.
Reserves and availability through both gateways agree; the node holding a shard is removed,
the shard comes back on the other worker, and both gateways serve again (UNAVAILABLE with
RetryInfo allowed during the move); every acknowledged reservation is there and conservation
holds. Stopping serve (and its shards) ends the gateway of its own too.

The cluster, serve and the gateway each run in a process of their own, so this test neither
needs nor disturbs the session's shared Ray runtime."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import grpc
import psutil
import pytest
import redis

from omnistock.client import OmnistockClient, level, line
from omnistock.gateway.runtime.embedded_redis import EmbeddedRedis, free_port
from omnistock.protos.gen.omnistock.v1 import reservation_pb2, reservation_pb2_grpc
from omnistock.reservations.domain.placement import partition_of, shard_of
from omnistock.reservations.shard.journal import RedisKeys
from tests.integration.conftest import NODES
from tests.integration.test_crash_restart import kill_group, wait_exit, wait_serving
from tests.integration.test_redis_outage import retry_info

pytestmark = pytest.mark.slow

NODES_SCRIPT = Path(__file__).with_name("ray_cluster_nodes.py")
OMNISTOCK = str(Path(sys.executable).parent / "omnistock")
SHARDS = 2
PARTITIONS = 16
STOCK = 1000
MOVE_WITHIN = 90.0
"""Bound on a shard's move to another node and both gateways serving again."""


class ClusterNodes:
    """The process holding the Ray cluster; one JSON line asked, one answered."""

    def __init__(self, log: IO[bytes]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(NODES_SCRIPT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            start_new_session=True,
            text=True,
        )

    async def answer(self, timeout: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        text = await asyncio.wait_for(asyncio.to_thread(self.process.stdout.readline), timeout)
        assert text, f"the cluster's process ended (exit code {self.process.poll()})"
        found: dict[str, Any] = json.loads(text)
        return found

    async def ask(self, command: str, timeout: float = 60) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return await self.answer(timeout)

    def stop(self) -> None:
        """End of input stops every node; a hang is killed with its process group."""
        with contextlib.suppress(OSError):
            assert self.process.stdin is not None
            self.process.stdin.close()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            kill_group(self.process, signal.SIGKILL)
            self.process.wait(timeout=10)


def start(command: list[str], log: IO[bytes], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env or os.environ.copy()
    )


def stop(process: subprocess.Popen[bytes] | None, log: Path) -> None:
    if process is not None and process.poll() is None:
        kill_group(process, signal.SIGTERM)
        wait_exit(process, log, timeout=60)


def listening_on(pid: int) -> set[str]:
    """The addresses a process listens on, IPv4 ones mapped into IPv6 as IPv4."""
    sockets = psutil.Process(pid).net_connections(kind="inet")
    found = {
        ipaddress.ip_address(socket.laddr.ip) for socket in sockets if socket.status == psutil.CONN_LISTEN
    }
    return {str(getattr(address, "ipv4_mapped", None) or address) for address in found}


def redis_client(server: EmbeddedRedis) -> redis.Redis:
    return redis.Redis.from_url(server.url)


def one_sku_per_shard() -> list[str]:
    found: dict[int, str] = {}
    number = 0
    while len(found) < SHARDS:
        sku = f"SKU-{number}"
        found.setdefault(shard_of(partition_of(sku, PARTITIONS), SHARDS), sku)
        number += 1
    return [found[shard] for shard in range(SHARDS)]


def order(reservation_id: str, skus: list[str]) -> reservation_pb2.ReserveRequest:
    """One unit of each SKU at DC-1: a reservation with a part on every shard."""
    return reservation_pb2.ReserveRequest(
        reservation_id=reservation_id, lines=[line(sku, "DC-1", 1) for sku in skus], ttl_seconds=3600
    )


async def reserve_until_done(
    stub: reservation_pb2_grpc.ReservationServiceStub,
    request: reservation_pb2.ReserveRequest,
    deadline: float,
) -> int:
    """Reserve, again with the same id while refused UNAVAILABLE with a RetryInfo (safe:
    the id makes it once); any other failure fails the test. Returns the refusals seen."""
    refusals = 0
    while True:
        try:
            await stub.Reserve(request, timeout=30)
            return refusals
        except grpc.aio.AioRpcError as error:
            assert error.code() is grpc.StatusCode.UNAVAILABLE, error
            assert retry_info(error) is not None, f"UNAVAILABLE without RetryInfo: {error}"
            refusals += 1
            assert time.monotonic() < deadline, f"still refused after {MOVE_WITHIN:.0f} s: {error}"
            await asyncio.sleep(0.2)


async def agree(clients: list[OmnistockClient], skus: list[str], held: list[str]) -> None:
    """Both gateways answer for every acknowledged hold: the shards' counts (consistent) at
    once, each gateway's own view within seconds, each reservation held, conservation ok."""
    for client in clients:
        answer = await client.availability(skus, consistent=True)
        assert [(a.sku, a.reserved, a.available) for a in answer.skus] == [
            (sku, len(held), STOCK - len(held)) for sku in skus
        ]
    deadline = time.monotonic() + 10
    for client in clients:
        while True:
            answer = await client.availability(skus)
            if [a.reserved for a in answer.skus] == [len(held)] * len(skus):
                break
            assert time.monotonic() < deadline, f"a gateway's view is stale: {answer}"
            await asyncio.sleep(0.1)
    for client in clients:
        for reservation_id in held:
            reservation = await client.get_reservation(reservation_id)
            assert reservation.state == reservation_pb2.RESERVATION_STATE_HELD, reservation
        checked = await client.check_conservation()
        assert checked.ok and checked.shards_checked == SHARDS, checked


async def test_shards_spread_over_nodes_and_move_when_theirs_is_removed(tmp_path: Path) -> None:
    redis = EmbeddedRedis(tmp_path / "redis").start()  # a real redis-server of this test's own
    ports = [free_port(), free_port()]
    logs = {name: tmp_path / f"{name}.log" for name in ("nodes", "serve", "gateway")}
    files = {name: path.open("wb") for name, path in logs.items()}
    nodes = ClusterNodes(files["nodes"])
    serve: subprocess.Popen[bytes] | None = None
    gateway: subprocess.Popen[bytes] | None = None
    try:
        cluster = await nodes.answer(timeout=120)
        address, workers = cluster["address"], cluster["workers"]
        serve = start(
            [
                *(OMNISTOCK, "serve", "--ray-address", address, "--redis-url", redis.url),
                *("--port", str(ports[0]), "--metrics-port", "0", "--data-dir", str(tmp_path / "var")),
                *("--shards", str(SHARDS), "--partitions", str(PARTITIONS), "--log-level", "info"),
            ],
            files["serve"],
        )
        await wait_serving(ports[0], serve, logs["serve"])
        placed = [await nodes.ask(f"where omnistock-shard-{index}") for index in range(SHARDS)]
        assert [shard["state"] for shard in placed] == ["ALIVE"] * SHARDS, placed
        assert sorted(shard["node"] for shard in placed) == sorted(workers), (placed, cluster)
        for shard in placed:  # the batch port (and Ray's own servers) on the node's address
            assert listening_on(shard["pid"]) == {"127.0.0.1"}, shard

        # The Redis URL (with its password) through the environment, out of the process list.
        env = {**os.environ, "OMNISTOCK_REDIS_URL": redis.url}
        gateway = start(
            [
                *(OMNISTOCK, "gateway", "--ray-address", address),
                *("--port", str(ports[1]), "--metrics-port", "0", "--log-level", "info"),
            ],
            files["gateway"],
            env,
        )
        await wait_serving(ports[1], gateway, logs["gateway"])
        about = redis_client(redis).hgetall(RedisKeys().service)
        assert about == {b"shards": b"2", b"namespace": b"omnistock", b"gateways": b"1"}, about
        assert "omnistock gateway 1000 serving" in logs["gateway"].read_text()  # not one of serve's 0..N-1

        skus = one_sku_per_shard()
        clients = [OmnistockClient(f"127.0.0.1:{port}") for port in ports]
        channels = [grpc.aio.insecure_channel(f"127.0.0.1:{port}") for port in ports]
        try:
            await clients[0].put_nodes(NODES)
            await clients[1].set_stock([level(sku, "DC-1", STOCK) for sku in skus])
            stubs = [reservation_pb2_grpc.ReservationServiceStub(channel) for channel in channels]
            held: list[str] = []
            for number in range(6):  # through each gateway in turn
                reply = await clients[number % 2].reserve(
                    f"before-{number}", [line(sku, "DC-1", 1) for sku in skus], ttl_seconds=3600
                )
                assert reply.reservation.state == reservation_pb2.RESERVATION_STATE_HELD
                held.append(f"before-{number}")
            await agree(clients, skus, held)

            moved = placed[0]["node"]
            assert (await nodes.ask(f"remove {moved}"))["removed"] == moved
            deadline = time.monotonic() + MOVE_WITHIN
            refusals = 0
            for number in range(6):  # both gateways serve again, each reservation made once
                request = order(f"after-{number}", skus)
                refusals += await reserve_until_done(stubs[number % 2], request, deadline)
                held.append(request.reservation_id)

            shard = await nodes.ask("where omnistock-shard-0")
            assert shard["state"] == "ALIVE" and shard["restarts"] >= 1, shard
            assert shard["node"] in workers and shard["node"] != moved, (shard, moved)
            assert listening_on(shard["pid"]) == {"127.0.0.1"}, shard
            await agree(clients, skus, held)
            print(f"refused UNAVAILABLE with RetryInfo during the move: {refusals}")

            stop(serve, logs["serve"])  # its shards with it: the gateway of its own ends too
            assert wait_exit(gateway, logs["gateway"], timeout=30) == 1
            assert "the service's shards were stopped" in logs["gateway"].read_text()
        finally:
            for client in clients:
                await client.close()
            for channel in channels:
                await channel.close()
    finally:
        stop(gateway, logs["gateway"])
        stop(serve, logs["serve"])
        nodes.stop()
        redis.stop()
        for file in files.values():
            file.close()


def test_a_gateway_of_its_own_needs_a_running_service(tmp_path: Path) -> None:
    """Before any serve has written to this Redis, the gateway says so and exits 1: it joins
    no Ray cluster (the address given leads nowhere) and listens on nothing."""
    redis = EmbeddedRedis(tmp_path / "redis").start()
    try:
        env = {**os.environ, "OMNISTOCK_REDIS_URL": redis.url}
        command = [OMNISTOCK, "gateway", "--ray-address", "127.0.0.1:1", "--port", str(free_port())]
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 1, done
        assert "no omnistock service with prefix 'omnistock' has started on redis://:***@" in done.stderr
        assert redis_client(redis).keys("*") == []
    finally:
        redis.stop()
