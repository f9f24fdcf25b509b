"""Several gateway processes on one port (`serve --gateways 2`): new connections spread over
both, each answers for what the other did (holds, retries, stock, rules), a killed gateway
is started again, and stopping the service leaves no process behind."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import grpc
import psutil
import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from omnistock.availability.network import NodeGroup
from omnistock.availability.nodes import Node, NodeType
from omnistock.client import OmnistockClient, OmnistockRpcError, level, line
from omnistock.gateway.grpc.convert import Limits
from omnistock.gateway.grpc.network_store import NetworkStore
from omnistock.gateway.grpc.servicers import Servicer, rpc
from omnistock.gateway.metrics import Metrics
from omnistock.gateway.runtime.embedded_redis import EmbeddedRedis, choose_server, free_port
from omnistock.gateway.runtime.service import (
    ServiceConfig,
    first_view_version,
    gateway_metrics_port,
    unshared_port,
)
from omnistock.gateway.runtime.supervisor import READY, GatewaySupervisor
from omnistock.protos.gen.omnistock.v1 import network_pb2
from omnistock.reservations.shard.journal import RedisKeys
from tests.conftest import services
from tests.integration.conftest import NODES, skus_on_shards
from tests.integration.scrape import scrape, total
from tests.integration.test_crash_restart import kill_group, wait_exit, wait_serving

pytestmark = pytest.mark.slow
OWN_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]
"""Without it the channels of one process share one connection, so one gateway."""
OMNISTOCK = str(Path(sys.executable).parent / "omnistock")


@pytest_asyncio.fixture(scope="module")
async def service(redis_server: EmbeddedRedis, ray_runtime: None) -> AsyncIterator[Any]:
    async with services(redis_server.url) as start:
        yield await start(gateways=2, port=free_port(), metrics_port=0)


def calls(metrics_port: int | None, method: str) -> float:
    assert metrics_port
    return total(scrape(metrics_port), "omnistock_rpc_requests_total", method=method)


async def client_at(service: Any, gateway: int) -> OmnistockClient:
    """A client whose own connection the kernel gave to `gateway`."""
    port = service.metrics_ports[gateway]
    for _ in range(60):
        client = OmnistockClient(f"127.0.0.1:{service.port}", options=OWN_CONNECTION)
        before = calls(port, "ListNodes")
        await client.list_nodes()
        if calls(port, "ListNodes") > before:
            return client
        await client.close()
    raise AssertionError(f"no connection reached gateway {gateway} in 60 tries")


async def spread(service: Any, connections: int, gateways: tuple[int, ...] = (0, 1)) -> list[float]:
    """GetNetwork once on each of `connections` new connections; the calls each of `gateways`
    served."""
    ports = [service.metrics_ports[gateway] for gateway in gateways]
    before = [calls(port, "GetNetwork") for port in ports]
    for _ in range(connections):
        async with OmnistockClient(f"127.0.0.1:{service.port}", options=OWN_CONNECTION) as client:
            await client.get_network()
    return [calls(port, "GetNetwork") - b for port, b in zip(ports, before, strict=True)]


async def eventually(check: Any, timeout: float = 5.0) -> float:
    """Seconds until the coroutine function `check` returns true; fails after `timeout`."""
    began = time.monotonic()
    while not await check():
        assert time.monotonic() - began < timeout, f"not within {timeout} s"
        await asyncio.sleep(0.02)
    return time.monotonic() - began


async def test_new_connections_spread_over_both_gateways(service: Any) -> None:
    assert len(service.metrics_ports) == 2 and all(service.metrics_ports)
    served = await spread(service, 24)
    assert sum(served) == 24
    assert min(served) > 0, served  # all 24 on one of two listeners: about 1 in 8 million


async def test_another_service_cannot_take_the_shared_port(service: Any) -> None:
    # Several gateways (SO_REUSEPORT) check the port with a plain bind first...
    with pytest.raises(RuntimeError, match="in use"):
        unshared_port("127.0.0.1", service.port)
    # ...and one gateway listens without SO_REUSEPORT, which the kernel refuses here.
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    with pytest.raises(RuntimeError, match="bind"):
        server.add_insecure_port(f"127.0.0.1:{service.port}")
    assert unshared_port("127.0.0.1", 0) > 0


async def test_a_hold_made_at_one_gateway_is_retried_and_confirmed_at_the_other(service: Any) -> None:
    first, second = await client_at(service, 0), await client_at(service, 1)
    try:
        await first.put_nodes(NODES)
        # The second gateway learns of nodes put through the first before it answers.
        skus = skus_on_shards(service, [0, 1], prefix="GW-HOLD")
        await second.set_stock([level(sku, "DC-1", 10) for sku in skus])
        lines = [line(skus[0], "DC-1", 2), line(skus[1], "DC-1", 3)]
        held = await first.reserve("gw-hold-1", lines)
        assert not held.replayed

        retried = await second.reserve("gw-hold-1", lines)
        assert retried.replayed
        assert retried.reservation == held.reservation
        with pytest.raises(OmnistockRpcError) as conflict:
            await second.reserve("gw-hold-1", [line(skus[0], "DC-1", 1)])
        assert conflict.value.code.name == "ALREADY_EXISTS"

        confirmed = await second.confirm("gw-hold-1")
        assert confirmed.reservation.state == 2  # CONFIRMED
        assert (await first.get_reservation("gw-hold-1")).state == 2
        answer = await first.availability(skus, include_nodes=True, consistent=True)
        assert [(a.nodes[0].reserved, a.nodes[0].committed) for a in answer.skus] == [(0, 2), (0, 3)]
    finally:
        await first.close()
        await second.close()


async def test_stock_and_rules_changed_at_one_gateway_show_at_the_other(service: Any) -> None:
    first, second = await client_at(service, 0), await client_at(service, 1)
    try:
        await first.put_nodes(NODES)
        sku = "GW-VIEW-1"
        await first.set_stock([level(sku, "DC-1", 77)])

        async def seen_at_second(on_hand: int, channel: str = "", available: int | None = None) -> bool:
            answer = (await second.availability([sku], channel_id=channel)).skus[0]
            return answer.on_hand == on_hand and (available is None or answer.available == available)

        # The second gateway's view takes shards' changes at least every heartbeat (0.25 s).
        assert await eventually(lambda: seen_at_second(77)) < 2.0
        await second.reserve("gw-view-1", [line(sku, "DC-1", 7)])
        assert await eventually(lambda: first_sees_available(first, sku, 70)) < 2.0

        await first.put_groups([network_pb2.NodeGroup(group_id="gw-dcs", node_ids=["DC-1"])])
        web = network_pb2.Channel(
            channel_id="gw-web", groups=["gw-dcs"], safety=[network_pb2.SafetyRule(units=5)]
        )
        await first.put_channels([web])
        # A channel the second gateway has never seen: it reads the stored network and answers.
        assert (await second.availability([sku], channel_id="gw-web")).skus[0].available == 65

        feed = second.watch_availability([sku], channel_id="gw-web")
        assert (await anext(feed)).changes[0].available == 65
        web.safety[0].units = 20
        await first.put_channels([web])
        # A rule changed at the first gateway reaches the second's answers and its open feed.
        update = await asyncio.wait_for(anext(feed), timeout=5)
        assert update.changes[0].available == 50
        assert await seen_at_second(77, "gw-web", 50)
        await feed.aclose()
    finally:
        await first.close()
        await second.close()


async def first_sees_available(client: OmnistockClient, sku: str, available: int) -> bool:
    return (await client.availability([sku])).skus[0].available == available


async def test_network_changes_through_both_gateways_at_once_are_all_kept(service: Any) -> None:
    first, second = await client_at(service, 0), await client_at(service, 1)
    try:
        await first.put_nodes(NODES)
        await first.put_groups([network_pb2.NodeGroup(group_id="gw-all", node_ids=["DC-1", "DC-2"])])
        names = [f"gw-race-{i}" for i in range(12)]
        # Each gateway decides on the stored network, never on a stale copy of its own.
        await asyncio.gather(
            *(
                (first if i % 2 else second).put_channels(
                    [network_pb2.Channel(channel_id=name, groups=["gw-all"])]
                )
                for i, name in enumerate(names)
            )
        )
        for client in (first, second):
            stored = {channel.channel_id for channel in (await client.get_network()).channels}
            assert set(names) <= stored
    finally:
        await first.close()
        await second.close()


async def test_a_gateway_takes_network_changes_stored_by_another(redis_server: EmbeddedRedis) -> None:
    keys = RedisKeys(f"test-{uuid.uuid4().hex[:12]}")
    client = aioredis.Redis.from_url(redis_server.url)
    first, second = NetworkStore(client, keys, Limits()), NetworkStore(client, keys, Limits())
    await first.load()
    await second.load()
    told = asyncio.Event()
    # A poll every minute: what `second` learns within the test, it learns from the announcement.
    following = asyncio.create_task(second.follow(told.set, every=60))
    try:
        await asyncio.sleep(0.1)  # subscribed
        await first.change(nodes=[Node("DC-9", NodeType.DC)])
        await asyncio.wait_for(told.wait(), timeout=5)
        assert "DC-9" in second.network.nodes
        assert not await second.refresh()  # nothing newer stored

        # A change decided at `second` on a copy older than the stored network keeps what
        # `first` stored meanwhile.
        following.cancel()
        await first.change(nodes=[Node("STORE-9", NodeType.STORE)])
        assert "STORE-9" not in second.network.nodes
        await second.change(groups=[NodeGroup("nines", node_ids=("DC-9", "STORE-9"))])
        await first.refresh()
        for store in (first, second):
            assert {"DC-9", "STORE-9"} <= set(store.network.nodes) and "nines" in store.network.groups

        # A call naming a node another gateway just added is answered, not refused.
        await first.change(nodes=[Node("DC-10", NodeType.DC)])
        servicer = Servicer(second, Limits(), Metrics())
        context = RefusingContext()
        assert await require_node(servicer, "DC-10", context) == "DC-10"
        with pytest.raises(Refused):
            await require_node(servicer, "DC-404", context)
        assert context.refused == [grpc.StatusCode.NOT_FOUND]

        # GetNetwork's read is the stored network, not the copy in hand.
        await first.change(nodes=[Node("DC-11", NodeType.DC)])
        assert "DC-11" not in second.network.nodes
        assert "DC-11" in (await second.latest()).nodes
        # With Redis away, the copy in hand: what the gateway answers with meanwhile.
        away = aioredis.Redis.from_url(f"redis://127.0.0.1:{free_port()}", socket_connect_timeout=1)
        cut_off = NetworkStore(away, keys, Limits())
        cut_off.network = second.network
        assert await cut_off.latest() is second.network
        await away.aclose()
    finally:
        following.cancel()
        await asyncio.gather(following, return_exceptions=True)
        await client.aclose()


class Refused(Exception):
    pass


class RefusingContext:
    def __init__(self) -> None:
        self.refused: list[grpc.StatusCode] = []

    async def abort_with_status(self, status: Any) -> None:
        self.refused.append(status.code)
        raise Refused


@rpc("RequireNode")
async def require_node(self: Servicer, node_id: str, context: Any) -> str:
    self.network.require([node_id])
    return node_id


class WatchedLock(asyncio.Lock):
    """A lock that says when a task comes to wait for it."""

    def __init__(self) -> None:
        super().__init__()
        self.waited = asyncio.Event()

    async def acquire(self) -> Literal[True]:
        if self.locked():
            self.waited.set()
        return await super().acquire()


async def subscribed(client: aioredis.Redis, keys: RedisKeys) -> None:
    """Until a follower listens for network changes."""
    for _ in range(500):
        if dict(await client.pubsub_numsub(keys.network_changes)).get(keys.network_changes.encode()):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("no follower subscribed")


async def test_a_call_refused_while_another_takes_the_new_network_is_run_again(
    redis_server: EmbeddedRedis,
) -> None:
    """A node put through one gateway, named at the other before it took the change; its
    follower takes it between the call's refusal and the call's own look at Redis, which so
    finds nothing newer than what is in hand. The call still ran on the older network, so it
    is run again (it once answered NOT_FOUND: test_a_hold_made_at_one_gateway_... was flaky)."""
    keys = RedisKeys(f"test-{uuid.uuid4().hex[:12]}")
    client = aioredis.Redis.from_url(redis_server.url)
    first, second = NetworkStore(client, keys, Limits()), NetworkStore(client, keys, Limits())
    await first.load()
    await second.load()
    lock = second._lock = WatchedLock()
    servicer = Servicer(second, Limits(), Metrics())
    try:
        await first.change(nodes=[Node("DC-12", NodeType.DC)])
        async with lock:  # the follower's look at Redis, taking the new network
            call = asyncio.ensure_future(require_node(servicer, "DC-12", RefusingContext()))
            await asyncio.wait_for(lock.waited.wait(), timeout=5)  # the call, refused, looks too
            await second.load()
        assert await asyncio.wait_for(call, timeout=5) == "DC-12"
        # A node nobody put is still NOT_FOUND, after one look.
        context = RefusingContext()
        with pytest.raises(Refused):
            await require_node(servicer, "DC-404", context)
        assert context.refused == [grpc.StatusCode.NOT_FOUND]
    finally:
        await client.aclose()


async def test_the_follower_tells_of_a_change_a_call_took_first(redis_server: EmbeddedRedis) -> None:
    """Open feeds recompute under rules another gateway changed, also when a call's look at
    Redis took the change before the follower's did."""
    keys = RedisKeys(f"test-{uuid.uuid4().hex[:12]}")
    client = aioredis.Redis.from_url(redis_server.url)
    first, second = NetworkStore(client, keys, Limits()), NetworkStore(client, keys, Limits())
    await first.load()
    await second.load()
    lock = second._lock = WatchedLock()
    told = asyncio.Event()
    # A poll every minute: what `second` learns within the test, it learns from the announcement.
    following = asyncio.create_task(second.follow(told.set, every=60))
    try:
        await subscribed(client, keys)
        async with lock:  # a call's look at Redis, taking the new network
            await first.change(nodes=[Node("DC-13", NodeType.DC)])
            await asyncio.wait_for(lock.waited.wait(), timeout=5)  # the follower's look waits
            await second.load()
        await asyncio.wait_for(told.wait(), timeout=5)
        assert "DC-13" in second.network.nodes
    finally:
        following.cancel()
        await asyncio.gather(following, return_exceptions=True)
        await client.aclose()


async def test_a_killed_gateway_is_started_again_and_the_port_keeps_serving(service: Any) -> None:
    supervisor = service.supervisor
    killed = supervisor.pids[0]
    os.kill(killed, signal.SIGKILL)
    await asyncio.sleep(0.3)
    # Meanwhile every new connection goes to the gateway left.
    assert await spread(service, 6, gateways=(0,)) == [6]

    async def started_again() -> bool:
        return supervisor.pids[0] not in (None, killed) and supervisor.gateways[0].restarts == 1

    await eventually(started_again, timeout=90)
    assert psutil.Process(supervisor.pids[0]).is_running()
    served = await spread(service, 24)
    assert sum(served) == 24 and min(served) > 0, served


async def test_a_gateway_that_cannot_serve_fails_the_start_and_leaves_nothing(tmp_path: Path) -> None:
    script = tmp_path / "gateway.py"
    script.write_text(
        "import sys\n"
        "settings = sys.stdin.readline()\n"
        "print('starting', flush=True)\n"
        "sys.exit(3 if 'broken' in settings else 0)\n"
    )
    supervisor = GatewaySupervisor(
        lambda index: "broken", [1, 2], command=lambda: [sys.executable, str(script)]
    )
    with pytest.raises(RuntimeError, match=r"ended before serving \(exit code 3\)"):
        await supervisor.start()

    script.write_text(
        "import json, sys, time\n"
        "sys.stdin.readline()\n"
        f"print({READY!r} + json.dumps({{'metrics_port': 1234}}), flush=True)\n"
        "time.sleep(600)\n"
    )
    supervisor = GatewaySupervisor(lambda index: "{}", [1, 2], command=lambda: [sys.executable, str(script)])
    await supervisor.start()
    pids = list(supervisor.pids)
    assert supervisor.metrics_ports == [1234, 1234] and all(pids)
    await supervisor.stop(grace=0)
    assert not alive([psutil.Process(pid) for pid in pids if psutil.pid_exists(pid)])


def free_port_pair() -> int:
    """A port free with the next one too (gateway i serves metrics on --metrics-port + i),
    below the kernel's ephemeral range, so that Ray and Redis, starting meanwhile, are not
    given either, and above Ray's worker ports (10002-19999)."""
    for base in random.sample(range(20_000, 32_000, 2), 100):
        with contextlib.ExitStack() as held:
            try:
                for candidate in (base, base + 1):
                    probe = held.enter_context(socket.socket())
                    probe.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return base
    raise RuntimeError("no two free ports in a row in 20000-32000")


async def test_stopping_serve_stops_every_gateway_ray_and_redis(tmp_path: Path) -> None:
    port, metrics_port = free_port(), free_port_pair()
    log = tmp_path / "serve.log"
    args = [OMNISTOCK, "serve", "--gateways", "2", "--port", str(port), "--metrics-port", str(metrics_port)]
    args += ["--shards", "2", "--data-dir", str(tmp_path / "var")]
    with log.open("ab") as out:
        process = subprocess.Popen(
            args, stdout=out, stderr=out, env={**os.environ, "RAY_ADDRESS": ""}, start_new_session=True
        )
    tree: list[psutil.Process] = []
    try:
        await wait_serving(port, process, log)
        while "try: omnistock" not in log.read_text():  # the banner comes once every gateway serves
            assert process.poll() is None, log.read_text()[-3000:]
            await asyncio.sleep(0.2)
        printed = log.read_text()
        assert "gateways  2 processes sharing the port" in printed
        for gateway in (0, 1):
            assert f"http://127.0.0.1:{metrics_port + gateway}/metrics" in printed
            assert scrape(metrics_port + gateway)  # each gateway serves its own metrics
        tree = psutil.Process(process.pid).children(recursive=True)
        names = " ".join(" ".join(p.cmdline()) for p in tree)
        server = Path(choose_server().path).name  # valkey-server or redis-server
        assert server in names and "raylet" in names and "omnistock.cli gateway" in names

        kill_group(process, signal.SIGINT)  # Ctrl-C in a terminal reaches the whole group
        assert wait_exit(process, log, timeout=90) == 0, log.read_text()[-3000:]
        assert "omnistock stopped" in log.read_text()

        deadline = time.monotonic() + 30
        while alive(tree) and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        assert not alive(tree)
    finally:
        kill_group(process, signal.SIGKILL)
        for leftover in tree:  # Redis has a session of its own
            with contextlib.suppress(psutil.NoSuchProcess):
                leftover.kill()


def alive(processes: list[psutil.Process]) -> list[str]:
    """The command lines of those still running."""
    running = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                running.append(" ".join(process.cmdline())[:100])
        except psutil.NoSuchProcess:
            pass
    return running


def test_each_gateway_has_its_own_view_versions_and_metrics_port() -> None:
    now = time.time()
    # Gateway 1 started a century before gateway 0 still numbers above everything gateway 0
    # hands out, so a feed resumed at the wrong gateway never looks like one it can continue.
    assert first_view_version(1, now - 100 * 365 * 86400) > first_view_version(0, now) + 10**12
    assert first_view_version(0, now + 1) > first_view_version(0, now)  # a restart numbers higher
    config = ServiceConfig(metrics_port=9464, gateways=3)
    assert [gateway_metrics_port(config, i) for i in range(3)] == [9464, 9465, 9466]
    assert gateway_metrics_port(replace(config, metrics_port=0), 2) == 0  # any free port
    assert gateway_metrics_port(replace(config, metrics_port=None), 2) is None


def test_a_gateway_process_gets_the_whole_config() -> None:
    config = ServiceConfig(
        port=6000,
        shards=3,
        data_dir=Path("/srv/omnistock"),
        network_file=Path("net.toml"),
        limits=Limits(max_lines=7),
        gateways=4,
        view_heartbeat=0.5,
    )
    assert ServiceConfig.from_json(config.to_json()) == config
    assert ServiceConfig.from_json(replace(config, network_file=None).to_json()).network_file is None
