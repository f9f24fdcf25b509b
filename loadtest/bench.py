"""`omnistock bench`: every hot path against the ceiling of Python gRPC, in one run.

    omnistock bench [--target HOST:PORT] [--seconds 10] [--concurrency 32] [--json]

It starts a bare gRPC echo server (loadtest/echo.py) and, unless --target is given, an
omnistock service (`omnistock serve`, journaling on, embedded Redis), each in its own
process, loads a catalog through LoadStock, then measures each scenario in turn with
a closed-loop asyncio load generator (N callers issuing calls back to back): calls/s,
p50/p99/max latency, errors, and the ratio of its calls/s to the echo ceiling measured
in the same run (echo runs first and again after the other closed-loop scenarios; the
ratio is over the mean of the two). The last scenarios are open loop: single-line
Reserve at half the rate the closed loop reached (and at each of --rates), timed from
when each call was due (so a stall shows). The targets of docs/performance.md are
checked at the end.

Right after the catalog is loaded the service is measured idle (no call in flight), and
each call shape of the peak-day mix is measured again with one caller (`<shape>_alone`, for
half of --seconds): what a call costs when it finds the service idle, which `omnistock size`
and the loadtest's prediction cost a mix by (loadtest/sizing.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import grpc
import psutil
from grpc_health.v1 import health_pb2, health_pb2_grpc

from omnistock.client import Credentials, load_stock_column_requests, load_stock_requests
from omnistock.gateway.runtime.cpus import default_shards, usable_cpus
from omnistock.gateway.runtime.embedded_redis import free_port
from omnistock.gateway.runtime.event_loop import loop_name
from omnistock.loadtest.echo import ECHO_METHOD
from omnistock.loadtest.peer import Peer, seed_stock, start_peer
from omnistock.loadtest.processes import Process, start
from omnistock.loadtest.sizing import ALONE, SHAPES
from omnistock.protos.gen.omnistock.v1 import (
    availability_pb2,
    availability_pb2_grpc,
    common_pb2,
    inventory_pb2,
    inventory_pb2_grpc,
    network_pb2,
    network_pb2_grpc,
    reservation_pb2,
    reservation_pb2_grpc,
)
from omnistock.reservations.domain.placement import partition_of, shard_of

NODES = tuple(f"BENCH-DC-{i}" for i in range(4))
STORES = tuple(f"BENCH-STORE-{i}" for i in range(4))
"""Pickup stores, a few km apart around SHOPPER (the pickup search finds them all)."""
SHOPPER = (50.0, 8.0)
"""Where the pickup searches are made from (latitude, longitude)."""
HOT_SKU = "BENCH-HOT"
CHANNEL = "bench-web"
PICKUP_CHANNEL = "bench-pickup"
LISTING = 48
"""SKUs on a shopper's listing page in the peak-day mix (loadtest/peak.py)."""
ORDER_LINES = (2, 3)
"""Lines of the sourced Reserves, in turn: the peak-day mix's 2.5 lines an order on average."""
FEED_ADJUSTMENTS = 10
"""Deltas per AdjustStock call, as the POS / WMS feed sends them (loadtest/peak.py)."""
FEED_READ_SKUS = 7
"""SKUs the feed reads (consistent, with nodes) before it adjusts a store's stock."""
FEED_STREAMS = 2
"""Live feed streams open in feed_update: the whole catalog, and its best sellers."""
FEED_BEST_SELLERS = 100
FEED_RATE = 50.0
"""AdjustStock calls per second driven in feed_update, with and without the streams."""
PAGE = 200
"""SKUs on a product-listing page."""
TTL_SECONDS = 600
ON_HAND = 1_000_000_000
"""Every position holds plenty: a scenario measures the path, never a stock-out."""
START_TIMEOUT = 240.0
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 8 * 1024 * 1024),
    ("grpc.max_send_message_length", 8 * 1024 * 1024),
    # Each channel its own connection (channels of one process share one otherwise): with
    # several gateways, the kernel gives each new connection to one of them.
    ("grpc.use_local_subchannel_pool", 1),
]
CONNECTIONS_PER_GATEWAY = 8
"""Connections the callers share when the service has several gateways, per gateway: enough
for the kernel's choice of gateway per connection to even out."""


@dataclass
class Measurement:
    """One scenario's figures."""

    key: str
    scenario: str
    concurrency: int
    seconds: float
    calls: int
    errors: int
    per_second: float
    """Completed calls (checkouts for "checkout") per second."""
    p50_ms: float
    p99_ms: float
    max_ms: float
    calls_each: int = 1
    """gRPC calls per unit counted (a checkout is a Reserve and a Confirm or Release)."""
    skus_each: int = 0
    """SKU answers per call (availability)."""
    ratio: float | None = None
    """gRPC calls/s over the echo ceiling's."""
    error_codes: dict[str, int] = field(default_factory=dict)
    cpu_ms: dict[str, float] = field(default_factory=dict)
    """Core-milliseconds per gRPC call over the measured window, by role (CpuMeter)."""
    cpu_ms_parts: dict[str, float] = field(default_factory=dict)
    """The service's ("omnistock") part of cpu_ms by part: gateway, shards, redis, ray."""

    @property
    def grpc_per_second(self) -> float:
        return self.per_second * self.calls_each


@dataclass(frozen=True)
class Target:
    what: str
    goal: str
    measured: str
    met: bool | None
    """None: not judged, the figure is projected from a smaller catalog."""


class Recorder:
    """Latencies of the calls that complete inside the measured window."""

    def __init__(self, warmup: float, seconds: float) -> None:
        self.opens = time.perf_counter() + warmup
        self.closes = self.opens + seconds
        self.latencies: list[float] = []
        self.errors: Counter[str] = Counter()

    async def time(self, call: Awaitable[Any], since: float | None = None) -> None:
        started = time.perf_counter() if since is None else since
        failed = ""
        try:
            await call
        except grpc.aio.AioRpcError as error:
            failed = error.code().name
        except NoHoldLeft:
            failed = "NO_HOLD_LEFT"
        done = time.perf_counter()
        if self.opens <= done < self.closes:
            self.latencies.append(done - started)
            if failed:
                self.errors[failed] += 1

    def measurement(self, key: str, scenario: str, concurrency: int, **extra: Any) -> Measurement:
        ordered = sorted(self.latencies) or [0.0]
        seconds = self.closes - self.opens
        return Measurement(
            key,
            scenario,
            concurrency,
            round(seconds, 2),
            len(self.latencies),
            sum(self.errors.values()),
            round(len(self.latencies) / seconds, 1),
            round(statistics.median(ordered) * 1000, 2),
            round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 2),
            round(ordered[-1] * 1000, 2),
            error_codes=dict(self.errors),
            **extra,
        )


SERVICE_PARTS = ("gateway", "shards", "redis", "ray")
"""What the service's processes are, for its CPU by part (service_part)."""
SERVICE_ROLE = "omnistock"


def service_part(name: str, cmdline: Sequence[str], is_root: bool) -> str:
    """Which part of the service a process of its tree is, from its name and command line:
    the serve process and `omnistock gateway` processes are gateways, Ray's workers that host
    a Shard actor are shards, redis-server / valkey-server (and the launcher that watches it)
    are Redis, and the rest is Ray's own (raylet, GCS, its agents and idle workers)."""
    first = cmdline[0] if cmdline else ""
    if is_root:
        return "gateway"
    if first.startswith("ray::") or name.startswith("ray::"):
        return "shards" if "ray::Shard" in f"{first} {name}" else "ray"
    words = " ".join(cmdline).split()
    if any(Path(word).name in ("redis-server", "valkey-server") for word in words) or name in (
        "redis-server",
        "valkey-server",
    ):
        return "redis"
    for i, word in enumerate(words[:-1]):
        if (word == "omnistock.cli" or Path(word).name == "omnistock") and words[i + 1] == "gateway":
            return "gateway"
    return "ray"


def process_parts(process: Process) -> Callable[[psutil.Process], str]:
    """service_part of a process of `process`'s tree."""

    def part(member: psutil.Process) -> str:
        return service_part(member.name(), member.cmdline() or [], member.pid == process.popen.pid)

    return part


@dataclass(frozen=True)
class CpuSpent:
    """CPU seconds over a window by role, and the parted role's by part."""

    roles: dict[str, float]
    parts: dict[str, float]


class CpuMeter:
    """CPU time the bench's processes spend over a window, by role: the load generator (this
    process), the echo server, and omnistock with every process it started (its gateways,
    Ray, the shard actors, Redis), that one also by part (`parted`: a process's part). A
    process that starts or ends inside the window is left out of it. Read from the kernel's
    counters (/proc), so the figures hold however busy the machine is: what a call costs,
    where a rate says only what it reached."""

    def __init__(
        self,
        roles: dict[str, Callable[[], list[psutil.Process]]],
        parted: tuple[str, Callable[[psutil.Process], str]] | None = None,
    ) -> None:
        self._roles = roles
        self._parted = parted
        self._part_of: dict[int, str] = {}
        """The part of each process of the parted role, as last seen (a Ray worker becomes a
        shard when the actor lands on it)."""

    def snapshot(self) -> dict[str, dict[int, float]]:
        """CPU seconds (user and system) so far of each role's processes, by pid."""
        taken: dict[str, dict[int, float]] = {}
        for role, members in self._roles.items():
            seconds: dict[int, float] = {}
            with contextlib.suppress(psutil.Error):
                for process in members():
                    with contextlib.suppress(psutil.Error):
                        times = process.cpu_times()
                        seconds[process.pid] = times.user + times.system
                        if self._parted is not None and self._parted[0] == role:
                            self._part_of[process.pid] = self._parted[1](process)
            taken[role] = seconds
        return taken

    def parts(
        self, before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]
    ) -> dict[str, float]:
        """CPU seconds of the parted role by part between two snapshots (empty without one)."""
        if self._parted is None or self._parted[0] not in before:
            return {}
        role = self._parted[0]
        found = dict.fromkeys(SERVICE_PARTS, 0.0)
        for pid, started in before[role].items():
            if pid in after.get(role, {}):
                part = self._part_of.get(pid, "ray")
                found[part] = found.get(part, 0.0) + after[role][pid] - started
        return found

    @staticmethod
    def spent(before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]) -> dict[str, float]:
        """CPU seconds by role between two snapshots, over the processes in both."""
        return {
            role: sum(
                after[role][pid] - started for pid, started in seconds.items() if pid in after.get(role, {})
            )
            for role, seconds in before.items()
        }

    async def over(self, warmup: float, seconds: float) -> dict[str, float]:
        """CPU seconds by role from `warmup` seconds from now, for `seconds`: a scenario's
        measured window when started beside it."""
        return (await self.window(warmup, seconds)).roles

    async def window(self, warmup: float, seconds: float) -> CpuSpent:
        """`over`, with the parted role's seconds by part."""
        await asyncio.sleep(warmup)
        before = self.snapshot()
        await asyncio.sleep(seconds)
        after = self.snapshot()
        return CpuSpent(self.spent(before, after), self.parts(before, after))


def cpu_ms_per_call(spent: dict[str, float], measurement: Measurement) -> dict[str, float]:
    calls = measurement.calls * measurement.calls_each
    return {role: round(seconds * 1000 / calls, 3) for role, seconds in spent.items()} if calls else {}


def charge(measurement: Measurement, spent: CpuSpent) -> Measurement:
    """The measurement with its CPU per call, by role and by part of the service."""
    measurement.cpu_ms = cpu_ms_per_call(spent.roles, measurement)
    measurement.cpu_ms_parts = cpu_ms_per_call(spent.parts, measurement)
    return measurement


@dataclass(frozen=True)
class Idle:
    """The service's CPU over a window with no call in flight: what it spends whatever the
    load (Ray, the pollers, the view's sync), which a saturated scenario spreads over
    thousands of calls and a quiet hour over few."""

    seconds: float
    cores: float
    """CPU seconds a second of every process the service started."""
    cores_parts: dict[str, float]
    """The same by part (SERVICE_PARTS, as cpu_ms_parts)."""


def idle_of(spent: CpuSpent, seconds: float) -> Idle:
    return Idle(
        round(seconds, 2),
        round(spent.roles[SERVICE_ROLE] / seconds, 4),
        {part: round(cpu / seconds, 4) for part, cpu in spent.parts.items()},
    )


def process_tree(process: Process) -> Callable[[], list[psutil.Process]]:
    """The process and its descendants at the time of asking (Ray starts and ends workers)."""

    def members() -> list[psutil.Process]:
        root = psutil.Process(process.popen.pid)
        return [root, *root.children(recursive=True)]

    return members


async def closed_loop(
    call: Callable[[int], Awaitable[Any]], concurrency: int, warmup: float, seconds: float
) -> Recorder:
    """`concurrency` callers, each issuing its next call when the last one answers."""
    recorder = Recorder(warmup, seconds)

    async def caller(first: int) -> None:
        n = first
        while time.perf_counter() < recorder.closes:
            await recorder.time(call(n))
            n += concurrency

    await asyncio.gather(*(caller(i) for i in range(concurrency)))
    return recorder


async def open_loop(
    call: Callable[[int], Awaitable[Any]], rate: float, warmup: float, seconds: float
) -> Recorder:
    """Calls due at a fixed rate, each timed from when it was due, however many are in flight."""
    recorder = Recorder(warmup, seconds)
    begins = time.perf_counter()
    tasks: set[asyncio.Task[None]] = set()
    n = 0
    while (due := begins + n / rate) < recorder.closes:
        wait = due - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        task = asyncio.create_task(recorder.time(call(n), since=due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        n += 1
    await asyncio.gather(*tasks)
    return recorder


# --- the processes under test ---


def target_credentials(args: argparse.Namespace) -> Credentials:
    """TLS and API key for --target (the CLI reads its options into args.credentials); a
    service started here listens on loopback in plain text and asks for no key."""
    found: Credentials | None = getattr(args, "credentials", None)
    return found if args.target and found is not None else Credentials()


async def wait_until_serving(
    process: Process | None,
    target: str,
    check: Callable[[grpc.aio.Channel], Awaitable[Any]],
    credentials: Credentials | None = None,
) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    async with (credentials or Credentials()).aio_channel(target) as channel:
        while True:
            if process is not None and process.popen.poll() is not None:
                raise RuntimeError(
                    f"{process.name} exited with {process.popen.returncode}:\n{process.tail()}"
                )
            try:
                await check(channel)
                return
            except grpc.aio.AioRpcError as error:
                if time.monotonic() > deadline:
                    where = f":\n{process.tail()}" if process else ""
                    raise RuntimeError(
                        f"{target} did not serve in {START_TIMEOUT:.0f} s ({error.code().name}){where}"
                    ) from None
            await asyncio.sleep(0.2)


async def echo_ready(channel: grpc.aio.Channel) -> None:
    await channel.unary_unary(ECHO_METHOD)(b"", timeout=2)


async def service_ready(channel: grpc.aio.Channel) -> None:
    answer = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
    if answer.status != health_pb2.HealthCheckResponse.SERVING:
        raise grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata())


def start_service(
    workdir: Path,
    shards: int,
    partitions: int,
    redis_fsync: str,
    gateways: int = 1,
    extra: Sequence[str] = (),
) -> tuple[Process, str]:
    """`omnistock serve` in its own process (data and log under workdir), with `extra` serve
    flags; (process, HOST:PORT)."""
    port = free_port()
    argv = [
        sys.executable, "-m", "omnistock.cli", "serve",
        "--port", str(port), "--metrics-port", str(free_port()),
        "--shards", str(shards), "--partitions", str(partitions),
        "--data-dir", str(workdir / "data"), "--log-level", "warning",
        "--redis-fsync", redis_fsync, "--gateways", str(gateways), *extra,
    ]  # fmt: skip
    return start("omnistock", argv, workdir), f"127.0.0.1:{port}"


@contextlib.asynccontextmanager
async def processes_under_test(
    args: argparse.Namespace, say: Callable[[str], None]
) -> AsyncIterator[tuple[str, str, Process | None, Process]]:
    """(echo target, omnistock target, the omnistock process when started here, the echo
    process); stopped after."""
    with tempfile.TemporaryDirectory(prefix="omnistock-bench-") as scratch:
        workdir = Path(scratch)
        started: list[Process] = []
        try:
            echo_port = free_port()
            echo = start(
                "echo", [sys.executable, "-m", "omnistock.loadtest.echo", "--port", str(echo_port)], workdir
            )
            started.append(echo)
            echo_target = f"127.0.0.1:{echo_port}"
            await wait_until_serving(echo, echo_target, echo_ready)
            say(f"echo server: {echo.tail(1).strip()}")
            if args.target:
                service_target, service = args.target, None
            else:
                say(
                    f"starting omnistock ({args.gateways} gateway(s), {args.shards} shards, journal on,"
                    f" fsync {args.redis_fsync}) ..."
                )
                service, service_target = start_service(
                    workdir, args.shards, args.partitions, args.redis_fsync, args.gateways
                )
                started.append(service)
            await wait_until_serving(service, service_target, service_ready, target_credentials(args))
            yield echo_target, service_target, service, echo
        finally:
            for process in reversed(started):
                process.stop()


# --- the catalog and the scenarios ---


def positions_of(skus: int) -> int:
    """Positions the bench loads: every SKU and the hot one at each DC and store."""
    return (skus + 1) * (len(NODES) + len(STORES))


def sku_name(number: int) -> str:
    return f"BENCH-{number:07d}"


class Catalog:
    """The SKUs the scenarios use, and which shard owns each."""

    def __init__(self, skus: int, partitions: int, shards: int) -> None:
        self.skus = [sku_name(n) for n in range(skus)]
        self.by_shard: list[list[str]] = [[] for _ in range(shards)]
        for sku in self.skus:
            self.by_shard[shard_of(partition_of(sku, partitions), shards)].append(sku)
        self.page = self.skus[:PAGE]

    def levels(self) -> Iterator[inventory_pb2.StockLevel]:
        for sku in (*self.skus, HOT_SKU):
            for node in (*NODES, *STORES):
                yield inventory_pb2.StockLevel(sku=sku, node_id=node, on_hand=ON_HAND)

    def spread(self, n: int, count: int) -> list[str]:
        """`count` distinct SKUs of call n, round robin over the shards."""
        shards = len(self.by_shard)
        return [
            self.by_shard[j % shards][(n * count + j) // shards % len(self.by_shard[j % shards])]
            for j in range(count)
        ]


async def prepare(channel: grpc.aio.Channel, catalog: Catalog, say: Callable[[str], None]) -> float:
    """Register the nodes and channel, load the catalog through LoadStock; its seconds."""
    inventory = inventory_pb2_grpc.InventoryServiceStub(channel)
    network = network_pb2_grpc.NetworkServiceStub(channel)
    nodes = [
        common_pb2.Node(
            node_id=node, type=common_pb2.NODE_TYPE_DC, ships=True, enabled=True, latitude=50.0 + i
        )
        for i, node in enumerate(NODES)
    ]
    nodes += [
        common_pb2.Node(
            node_id=store,
            type=common_pb2.NODE_TYPE_STORE,
            pickup=True,
            enabled=True,
            latitude=SHOPPER[0] + 0.02 * (i + 1),
            longitude=SHOPPER[1] - 0.03 * i,
        )
        for i, store in enumerate(STORES)
    ]
    await inventory.PutNodes(inventory_pb2.PutNodesRequest(nodes=nodes))
    groups = [
        network_pb2.NodeGroup(group_id="bench-dcs", node_ids=NODES),
        network_pb2.NodeGroup(group_id="bench-stores", node_ids=STORES),
    ]
    await network.PutGroups(network_pb2.PutGroupsRequest(groups=groups))
    # As the demo network's web shop sources lines without a node, and its pickup channel
    # keeps a unit back at each store.
    sourcing = network_pb2.SourcingPolicy(rules=["single_node", "nearest", "priority"], max_shipments=2)
    web = network_pb2.Channel(
        channel_id=CHANNEL, groups=["bench-dcs"], low_stock_threshold=10, sourcing=sourcing
    )
    pickup = network_pb2.Channel(
        channel_id=PICKUP_CHANNEL,
        groups=["bench-stores"],
        safety=[network_pb2.SafetyRule(units=1)],
        low_stock_threshold=3,
    )
    await network.PutChannels(network_pb2.PutChannelsRequest(channels=[web, pickup]))
    positions = positions_of(len(catalog.skus))
    say(f"loading {positions:,} positions through LoadStock ...")

    began = time.perf_counter()
    await inventory.LoadStock(load_stock_requests(catalog.levels()))
    return time.perf_counter() - began


Call = Callable[[int], Awaitable[Any]]


def hold(reservation_id: str, lines: list[tuple[str, str]]) -> reservation_pb2.ReserveRequest:
    """A Reserve of one unit at each (sku, node)."""
    return reservation_pb2.ReserveRequest(
        reservation_id=reservation_id,
        lines=[reservation_pb2.ReservationLine(sku=sku, node_id=node, quantity=1) for sku, node in lines],
        ttl_seconds=TTL_SECONDS,
    )


def one_line(catalog: Catalog, reservation_id: str, n: int) -> reservation_pb2.ReserveRequest:
    """The n-th single-line Reserve: SKUs spread over the catalog (7919 is prime), nodes in turn."""
    return hold(reservation_id, [(catalog.skus[n * 7919 % len(catalog.skus)], NODES[n % len(NODES)])])


class Stubs:
    """The n-th call's stubs: calls take the connections in turn."""

    def __init__(self, channels: list[grpc.aio.Channel]) -> None:
        self._reservations = [reservation_pb2_grpc.ReservationServiceStub(c) for c in channels]
        self._availability = [availability_pb2_grpc.AvailabilityServiceStub(c) for c in channels]
        self._inventory = [inventory_pb2_grpc.InventoryServiceStub(c) for c in channels]

    def inventory(self, n: int) -> inventory_pb2_grpc.InventoryServiceStub:
        return self._inventory[n % len(self._inventory)]

    def reservations(self, n: int) -> reservation_pb2_grpc.ReservationServiceStub:
        return self._reservations[n % len(self._reservations)]

    def availability(self, n: int) -> availability_pb2_grpc.AvailabilityServiceStub:
        return self._availability[n % len(self._availability)]


class NoHoldLeft(Exception):
    """A confirm or fulfil scenario used up the holds made for it: counted as an error, as a
    call of another kind in its window would not measure it."""


@dataclass
class Holds:
    """1-line holds (reservation id, sku, node) made before the confirm and fulfil scenarios,
    unmeasured, so that each of them times and charges its own call only."""

    open: deque[tuple[str, str, str]] = field(default_factory=deque)
    confirmed: deque[tuple[str, str, str]] = field(default_factory=deque)


ALONE_SHAPES = tuple(key for key in SHAPES if key != "feed_update")
"""The mix's shapes measured again with one caller (`<shape>_alone`); feed_update is already
a difference of two windows at a set rate."""
HOLD_TOP_UPS = 3
"""Rounds of Reserves at most to top up the holds of a 1-caller confirm or fulfil."""
HOLDS_AHEAD = 4.0
"""Holds made before confirm: Reserves for this many times the scenario's warmup and window,
enough for Confirms up to 4 times as fast as the Reserves (a shared machine's speed drifts);
the rest are confirmed for fulfil."""


async def make_holds(
    stubs: Stubs, catalog: Catalog, prefix: str, holds: Holds, concurrency: int, seconds: float
) -> None:
    """Single-line holds from a closed loop of Reserves for `seconds`, into holds.open."""

    async def reserve(n: int) -> None:
        request = one_line(catalog, f"{prefix}-{n}", n)
        await stubs.reservations(n).Reserve(request)
        holds.open.append((request.reservation_id, request.lines[0].sku, request.lines[0].node_id))

    await closed_loop(reserve, concurrency, 0.0, seconds)


async def confirm_open(stubs: Stubs, holds: Holds, concurrency: int) -> None:
    """Confirm every open hold, into holds.confirmed."""

    async def confirmer(first: int) -> None:
        n = first
        while holds.open:
            held = holds.open.popleft()
            with contextlib.suppress(grpc.aio.AioRpcError):
                await stubs.reservations(n).Confirm(reservation_pb2.ConfirmRequest(reservation_id=held[0]))
                holds.confirmed.append(held)
            n += concurrency

    await asyncio.gather(*(confirmer(i) for i in range(concurrency)))


def scenarios(
    channels: list[grpc.aio.Channel],
    echo: grpc.aio.Channel,
    catalog: Catalog,
    run: str,
    holds: Holds | None = None,
) -> list[tuple[str, str, Call, dict[str, int]]]:
    """(key, name, call of the n-th request, extra fields) of each closed-loop scenario; confirm
    and fulfil take the holds made for them (`holds`, see bench)."""
    stubs = Stubs(channels)
    holds = holds if holds is not None else Holds()

    async def confirm(n: int) -> None:
        if not holds.open:
            await asyncio.sleep(0.001)  # let the other tasks run: no call was made
            raise NoHoldLeft
        held = holds.open.popleft()
        await stubs.reservations(n).Confirm(reservation_pb2.ConfirmRequest(reservation_id=held[0]))
        holds.confirmed.append(held)

    async def fulfil(n: int) -> None:
        if not holds.confirmed:
            await asyncio.sleep(0.001)
            raise NoHoldLeft
        reservation_id, sku, node = holds.confirmed.popleft()
        await stubs.reservations(n).Fulfil(
            reservation_pb2.FulfilRequest(
                reservation_id=reservation_id,
                fulfilment_id=f"{reservation_id}-ship",
                lines=[reservation_pb2.ReservationLine(sku=sku, node_id=node, quantity=1)],
            )
        )

    skus, node_count = catalog.skus, len(NODES)
    echo_call = echo.unary_unary(
        ECHO_METHOD,
        request_serializer=reservation_pb2.ReserveRequest.SerializeToString,
        response_deserializer=reservation_pb2.ReserveRequest.FromString,
    )

    def one(n: int) -> reservation_pb2.ReserveRequest:
        return one_line(catalog, f"{run}-r1-{n}", n)

    async def checkout(n: int) -> None:
        reservation_id = f"{run}-co-{n}"
        lines = [(sku, NODES[n % node_count]) for sku in catalog.spread(n, 2)]
        reservations = stubs.reservations(n)
        await reservations.Reserve(hold(reservation_id, lines))
        if n % 5:  # 4 in 5 checkouts are paid; the 5th is abandoned
            await reservations.Confirm(reservation_pb2.ConfirmRequest(reservation_id=reservation_id))
        else:
            await reservations.Release(reservation_pb2.ReleaseRequest(reservation_id=reservation_id))

    wrapped = skus + skus[:LISTING]  # a page that starts near the end runs on from the start

    def listing(n: int) -> availability_pb2.GetAvailabilityRequest:
        first = n * LISTING % len(skus)
        return availability_pb2.GetAvailabilityRequest(
            skus=wrapped[first : first + LISTING], channel_id=CHANNEL
        )

    def product_page(n: int) -> availability_pb2.GetAvailabilityRequest:
        sku = skus[n * 7919 % len(skus)]
        return availability_pb2.GetAvailabilityRequest(skus=[sku], include_nodes=True, channel_id=CHANNEL)

    def pickup_search(n: int) -> availability_pb2.FindPickupStoresRequest:
        basket = catalog.spread(n, 2 if n % 3 == 2 else 1)  # as the shoppers: 1, 1 or 2 items
        return availability_pb2.FindPickupStoresRequest(
            items=[availability_pb2.BasketItem(sku=sku, quantity=1) for sku in basket],
            location=common_pb2.Location(latitude=SHOPPER[0], longitude=SHOPPER[1]),
            channel_id=PICKUP_CHANNEL,
        )

    def sourced(n: int) -> reservation_pb2.ReserveRequest:
        lines = catalog.spread(n, ORDER_LINES[n % len(ORDER_LINES)])
        return reservation_pb2.ReserveRequest(
            reservation_id=f"{run}-src-{n}",
            lines=[reservation_pb2.ReservationLine(sku=sku, quantity=1) for sku in lines],
            ttl_seconds=TTL_SECONDS,
            channel_id=CHANNEL,
            destination=reservation_pb2.Destination(
                address=common_pb2.Location(latitude=SHOPPER[0], longitude=SHOPPER[1])
            ),
        )

    def stock_check(n: int) -> availability_pb2.GetAvailabilityRequest:
        return availability_pb2.GetAvailabilityRequest(
            skus=catalog.spread(n, FEED_READ_SKUS), include_nodes=True, consistent=True
        )

    page = availability_pb2.GetAvailabilityRequest(skus=catalog.page)
    return [
        ("echo", "echo (gRPC ceiling)", lambda n: echo_call(one(n)), {}),
        ("reserve_1", "reserve 1 line", lambda n: stubs.reservations(n).Reserve(one(n)), {}),
        (
            "reserve_5",
            "reserve 5 lines, all shards",
            lambda n: stubs.reservations(n).Reserve(
                hold(f"{run}-r5-{n}", [(sku, NODES[n % node_count]) for sku in catalog.spread(n, 5)])
            ),
            {},
        ),
        (
            "availability_1",
            "availability 1 SKU",
            lambda n: stubs.availability(n).GetAvailability(
                availability_pb2.GetAvailabilityRequest(skus=[skus[n * 7919 % len(skus)]])
            ),
            {"skus_each": 1},
        ),
        (
            "availability_200",
            f"availability {PAGE} SKUs",
            lambda n: stubs.availability(n).GetAvailability(page),
            {"skus_each": PAGE},
        ),
        (
            "hot_sku",
            "reserve 1 line, one hot SKU",
            lambda n: stubs.reservations(n).Reserve(hold(f"{run}-hot-{n}", [(HOT_SKU, NODES[0])])),
            {},
        ),
        ("checkout", "checkout (reserve, confirm 4/5)", checkout, {"calls_each": 2}),
        (
            "listing_48",
            f"listing page, {LISTING} SKUs, channel",
            lambda n: stubs.availability(n).GetAvailability(listing(n)),
            {"skus_each": LISTING},
        ),
        (
            "product_page",
            "product page, 1 SKU with nodes",
            lambda n: stubs.availability(n).GetAvailability(product_page(n)),
            {"skus_each": 1},
        ),
        (
            "pickup_search",
            "pickup search, 1-2 items",
            lambda n: stubs.availability(n).FindPickupStores(pickup_search(n)),
            {},
        ),
        (
            "reserve_sourced",
            "reserve 2-3 lines, sourced",
            lambda n: stubs.reservations(n).Reserve(sourced(n)),
            {},
        ),
        (
            "stock_check",
            f"feed's stock check, {FEED_READ_SKUS} SKUs",
            lambda n: stubs.availability(n).GetAvailability(stock_check(n)),
            {"skus_each": FEED_READ_SKUS},
        ),
        (
            "adjust_stock",
            f"adjust stock, {FEED_ADJUSTMENTS} deltas",
            lambda n: stubs.inventory(n).AdjustStock(feed_batch(catalog, f"{run}-adj", n)),
            {},
        ),
        ("confirm", "confirm a hold", confirm, {}),
        ("fulfil", "fulfil a confirmed order", fulfil, {}),
    ]


PEER_ROLE = "peer"
"""The Redis+Lua peer's processes (its server and its Redis) in the CPU figures."""
PEER_KEYS = ("peer_reserve_1", "peer_reserve_5")


def peer_scenarios(
    peer: grpc.aio.Channel, catalog: Catalog, run: str
) -> list[tuple[str, str, Call, dict[str, int]]]:
    """The Reserves of reserve_1 and reserve_5, sent to the Redis+Lua peer (loadtest/peer.py)."""
    stub = reservation_pb2_grpc.ReservationServiceStub(peer)
    node_count = len(NODES)
    return [
        (
            "peer_reserve_1",
            "peer: reserve 1 line (Redis+Lua)",
            lambda n: stub.Reserve(one_line(catalog, f"{run}-p1-{n}", n)),
            {},
        ),
        (
            "peer_reserve_5",
            "peer: reserve 5 lines (Redis+Lua)",
            lambda n: stub.Reserve(
                hold(f"{run}-p5-{n}", [(sku, NODES[n % node_count]) for sku in catalog.spread(n, 5)])
            ),
            {},
        ),
    ]


@contextlib.asynccontextmanager
async def peer_under_test(
    args: argparse.Namespace, catalog: Catalog, say: Callable[[str], None]
) -> AsyncIterator[Peer | None]:
    """The Redis+Lua peer with the catalog's stock, on a Redis of its own with the service's
    fsync setting; None when no peer scenario runs."""
    if args.only and not args.only & set(PEER_KEYS):
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="omnistock-peer-") as scratch:
        say(f"starting the Redis+Lua peer (fsync {args.redis_fsync}) ...")
        peer = await start_peer(Path(scratch), args.redis_fsync)
        try:
            await seed_stock(peer.redis_url, ((lv.sku, lv.node_id, lv.on_hand) for lv in catalog.levels()))
            yield peer
        finally:
            peer.stop()


def feed_batch(
    catalog: Catalog, prefix: str, n: int, skus: Sequence[str] = ()
) -> inventory_pb2.AdjustStockRequest:
    """The n-th AdjustStock of the POS / WMS feed: 7 walk-in sales at a store, 3 receipts at the
    DCs (on `skus` when given, else spread over the catalog)."""
    chosen = [skus[(n * FEED_ADJUSTMENTS + j) % len(skus)] for j in range(FEED_ADJUSTMENTS)] if skus else []
    chosen = chosen or catalog.spread(n, FEED_ADJUSTMENTS)
    sales = FEED_ADJUSTMENTS * 7 // 10
    return inventory_pb2.AdjustStockRequest(
        adjustments=[
            inventory_pb2.StockAdjustment(
                adjustment_id=f"{prefix}-{n}-{j}",
                sku=sku,
                node_id=STORES[n % len(STORES)] if j < sales else NODES[(n + j) % len(NODES)],
                delta=-1 if j < sales else 5,
                reason="pos-sale" if j < sales else "receipt",
            )
            for j, sku in enumerate(chosen)
        ]
    )


async def bench(args: argparse.Namespace, say: Callable[[str], None]) -> dict[str, Any]:
    run = os.urandom(3).hex()
    catalog = Catalog(args.skus, args.partitions, args.shards)
    machine = describe_machine()
    connections = args.connections or (1 if args.gateways == 1 else CONNECTIONS_PER_GATEWAY * args.gateways)
    async with (
        processes_under_test(args, say) as (echo_target, target, service, echo_process),
        contextlib.AsyncExitStack() as stack,
        grpc.aio.insecure_channel(echo_target) as echo,
        peer_under_test(args, catalog, say) as peer,
    ):
        credentials = target_credentials(args)
        channels = [
            await stack.enter_async_context(credentials.aio_channel(target, options=CHANNEL_OPTIONS))
            for _ in range(connections)
        ]
        channel = channels[0]
        load_seconds = await prepare(channel, catalog, say)
        results: list[Measurement] = []
        roles = {"load generator": lambda: [psutil.Process()], "echo server": process_tree(echo_process)}
        parted: tuple[str, Callable[[psutil.Process], str]] | None = None
        if service is not None:  # with --target, omnistock's processes may be on other machines
            roles[SERVICE_ROLE] = process_tree(service)
            parted = (SERVICE_ROLE, process_parts(service))
        if peer is not None:
            roles[PEER_ROLE] = peer.processes
        meter = CpuMeter(roles, parted)
        idle: Idle | None = None
        if service is not None:
            say(f"the service idle, no call in flight: {args.seconds:g} s ...")
            idle = idle_of(await meter.window(args.warmup, args.seconds), args.seconds)
        holds = Holds()
        stubs = Stubs(channels)
        window = args.warmup + args.seconds
        alone_seconds = args.seconds / 2
        alone_window = args.warmup + alone_seconds

        async def before_confirm() -> None:
            say(f"making holds to confirm: Reserves for {HOLDS_AHEAD * window:g} s, not measured ...")
            await make_holds(stubs, catalog, f"{run}-held", holds, args.concurrency, HOLDS_AHEAD * window)

        async def before_fulfil() -> None:
            if not holds.open and not holds.confirmed:
                await before_confirm()
            say("confirming the holds left, not measured ...")
            await confirm_open(stubs, holds, args.concurrency)

        async def holds_for_alone(shape: str) -> None:
            """One caller takes at most as many holds as the callers of `shape` did in as long:
            top up the ones it takes from when fewer are left."""
            pool = holds.open if shape == "confirm" else holds.confirmed
            done = next((r for r in results if r.key == shape), None)
            needed = (done.calls - done.errors) / done.seconds * alone_window if done else 1.0
            for round_ in range(HOLD_TOP_UPS):
                if len(pool) >= needed:
                    return
                say(f"holds for {shape} with 1 caller: Reserves for {alone_window:g} s, not measured ...")
                prefix = f"{run}-held-{shape}-{round_}"
                await make_holds(stubs, catalog, prefix, holds, args.concurrency, alone_window)
                if shape == "fulfil":
                    await confirm_open(stubs, holds, args.concurrency)

        async def before_confirm_alone() -> None:
            await holds_for_alone("confirm")

        async def before_fulfil_alone() -> None:
            await holds_for_alone("fulfil")

        ahead = {
            "confirm": before_confirm,
            "fulfil": before_fulfil,
            f"confirm{ALONE}": before_confirm_alone,
            f"fulfil{ALONE}": before_fulfil_alone,
        }
        every = scenarios(channels, echo, catalog, run, holds)
        # The same requests under ids of their own (a Reserve or an adjustment id seen before
        # would be a replay), for the runs with one caller.
        alone = {
            key: (f"{key}{ALONE}", f"{name}, 1 caller", call, extra)
            for key, name, call, extra in scenarios(channels, echo, catalog, f"{run}-1", holds)
            if key in ALONE_SHAPES
        }
        if peer is not None:  # beside omnistock's own Reserves, under the same load
            peer_channel = await stack.enter_async_context(
                grpc.aio.insecure_channel(peer.target, options=CHANNEL_OPTIONS)
            )
            after = next(i for i, s in enumerate(every) if s[0] == "reserve_5") + 1
            every[after:after] = peer_scenarios(peer_channel, catalog, run)
        chosen = [s for s in every if not args.only or s[0] in args.only or s[0] == "echo"]
        chosen = [both for s in chosen for both in (s, *([alone[s[0]]] if s[0] in alone else []))]
        if len(chosen) > 1:  # the ceiling again at the end: a shared machine's speed drifts
            _, _, echo_call, _ = chosen[0]
            chosen.append(("echo_end", "echo again, at the end", echo_call, {}))
        for key, name, call, extra in chosen:
            if key in ahead:
                await ahead[key]()
            callers, seconds = (1, alone_seconds) if key.endswith(ALONE) else (args.concurrency, args.seconds)
            say(f"{name}: {callers} caller{'s' if callers > 1 else ''}, {seconds:g} s ...")
            recorder, spent = await asyncio.gather(
                closed_loop(call, callers, args.warmup, seconds),
                meter.window(args.warmup, seconds),
            )
            results.append(charge(recorder.measurement(key, name, callers, **extra), spent))
        single = next((r for r in results if r.key == "reserve_1"), None)
        paced: list[tuple[str, float]] = [(f"reserve_1_at_{rate:g}", rate) for rate in args.rates]
        if single is not None and single.per_second > 0:
            paced[:0] = [
                ("reserve_1_quarter_rate", single.per_second / 4),
                ("reserve_1_half_rate", single.per_second / 2),
            ]
        for i, (key, rate) in enumerate(paced):
            say(f"reserve 1 line at {rate:.0f}/s (open loop), {args.seconds:g} s ...")

            def paced_call(n: int, prefix: str = f"{run}-paced{i}") -> Awaitable[Any]:
                return stubs.reservations(n).Reserve(one_line(catalog, f"{prefix}-{n}", n))

            recorder, spent = await asyncio.gather(
                open_loop(paced_call, rate, args.warmup, args.seconds),
                meter.window(args.warmup, args.seconds),
            )
            results.append(charge(recorder.measurement(key, f"reserve 1 line at {rate:.0f}/s", 0), spent))
        if not args.only or "feed_update" in args.only:
            say(
                f"live feed: {FEED_RATE:g} AdjustStock/s without, then with {FEED_STREAMS} streams,"
                f" {args.seconds:g} s each ..."
            )
            results.append(await feed_update(channels, catalog, run, meter, args.warmup, args.seconds))
        if not args.only or "view_freshness" in args.only:
            say(f"view write-to-visible: adjust, then read until it shows, {args.seconds:g} s ...")
            results.append(await view_freshness(channel, catalog, run, args.seconds))
        scale = await catalog_scale(channel, service, args.catalog, say) if args.catalog else None
    echo_rate = statistics.mean(r.grpc_per_second for r in results if r.key in ("echo", "echo_end"))
    for result in results:
        if result.concurrency <= 1:  # open loop or one caller: a rate set, not reached
            continue
        result.ratio = round(result.grpc_per_second / echo_rate, 3) if echo_rate else None
    return {
        "machine": machine,
        "command": command_line(),
        "settings": {
            "seconds": args.seconds,
            "alone_seconds": alone_seconds,
            "warmup": args.warmup,
            "concurrency": args.concurrency,
            "shards": args.shards if not args.target else None,
            "gateways": args.gateways if not args.target else None,
            "connections": connections,
            "redis_fsync": args.redis_fsync if not args.target else None,
            "skus": args.skus,
            "positions": positions_of(args.skus),
            "target": args.target or "started by the bench",
        },
        "load_stock_seconds": round(load_seconds, 2),
        "idle": asdict(idle) if idle else None,
        "scenarios": [asdict(r) | {"grpc_per_second": r.grpc_per_second} for r in results],
        "catalog": asdict(scale) if scale else None,
        "targets": [asdict(t) for t in targets(results, scale)],
    }


CATALOG_NODES = 50


@dataclass
class CatalogScale:
    positions: int
    skus: int
    nodes: int
    load_seconds: float
    positions_per_second: float
    resident_bytes: int
    """Resident memory of the service's whole process tree (gateway, Ray, shard actors, Redis)."""
    resident_by_process: dict[str, int]
    resident_before_bytes: int
    """The same before the catalog was loaded: what the processes weigh with no stock."""
    shard_positions: int
    """Positions of the shard that was restarted."""
    recovery_seconds: float | None
    """From killing one shard actor's process to its first answer (None: not measured)."""


def resident(process: Process) -> tuple[int, dict[str, int]]:
    """RSS of the process and all its descendants, in all and by process name."""
    members = process_tree(process)()
    root = members[0]
    by_name: Counter[str] = Counter()
    for member in members:
        with contextlib.suppress(psutil.Error):
            command = member.cmdline()
            name = command[0].split()[0] if command and command[0].startswith("ray::") else member.name()
            if member.pid == root.pid:
                name = "gateway (omnistock serve)"
            elif "omnistock.cli gateway" in " ".join(command):
                name = "gateways (omnistock gateway)"
            by_name[name.split(".")[0]] += member.memory_info().rss  # ray::Shard.apply -> ray::Shard
    return sum(by_name.values()), dict(by_name)


async def catalog_scale(
    channel: grpc.aio.Channel, service: Process | None, positions: int, say: Callable[[str], None]
) -> CatalogScale:
    """Load `positions` (SKUs x 50 nodes) through LoadStock, weigh every process, then kill
    one shard actor and time its recovery from the journal."""
    inventory = inventory_pb2_grpc.InventoryServiceStub(channel)
    availability = availability_pb2_grpc.AvailabilityServiceStub(channel)
    nodes = [f"CAT-{i:02d}" for i in range(CATALOG_NODES)]
    await inventory.PutNodes(
        inventory_pb2.PutNodesRequest(
            nodes=[common_pb2.Node(node_id=n, type=common_pb2.NODE_TYPE_STORE, enabled=True) for n in nodes]
        )
    )
    skus = max(1, positions // CATALOG_NODES)
    positions = skus * CATALOG_NODES
    say(
        f"catalog: loading {positions:,} positions ({skus:,} SKUs x {CATALOG_NODES} nodes) with LoadStock ..."
    )
    step = max(1, skus // 10)

    def levels() -> Iterator[tuple[str, str, int]]:
        for number in range(skus):
            sku = f"CAT-{number:08d}"
            yield from ((sku, n, number % 40) for n in nodes)
            if number and number % step == 0:
                say(f"  {number * CATALOG_NODES:,} positions sent ({time.perf_counter() - began:.0f} s)")

    before, _ = resident(service) if service else (0, {})
    began = time.perf_counter()
    await inventory.LoadStock(load_stock_column_requests(levels()), timeout=None)
    load_seconds = time.perf_counter() - began
    say(f"  loaded in {load_seconds:.1f} s")
    total, by_name = resident(service) if service else (0, {})
    recovery: float | None = None
    shard_positions = positions
    if service is not None:
        shards = [
            p
            for p in psutil.Process(service.popen.pid).children(recursive=True)
            if "ray::Shard" in " ".join(p.cmdline() or [])
        ]
        if shards:
            shard_positions = positions // len(shards)
            probe = availability_pb2.GetAvailabilityRequest(
                skus=[f"CAT-{n:08d}" for n in range(64)], consistent=True
            )
            say(f"catalog: killing one of {len(shards)} shard actors, timing its recovery ...")
            shards[0].kill()
            killed = time.perf_counter()
            # Every shard owns some of the 64 SKUs: a consistent read answers once all serve.
            while True:
                with contextlib.suppress(grpc.aio.AioRpcError):
                    await availability.GetAvailability(probe, timeout=30)
                    break
                await asyncio.sleep(0.05)
            recovery = time.perf_counter() - killed
            say(f"  serving again after {recovery:.1f} s")
    return CatalogScale(
        positions,
        skus,
        CATALOG_NODES,
        round(load_seconds, 2),
        round(positions / load_seconds, 0),
        total,
        by_name,
        before,
        shard_positions,
        None if recovery is None else round(recovery, 2),
    )


async def view_freshness(
    channel: grpc.aio.Channel, catalog: Catalog, run: str, seconds: float
) -> Measurement:
    """Write-to-visible delay of the gateway's network view: adjust a position, then read
    availability (served from the view) until the new on_hand shows. One writer."""
    inventory = inventory_pb2_grpc.InventoryServiceStub(channel)
    availability = availability_pb2_grpc.AvailabilityServiceStub(channel)
    recorder = Recorder(0.0, seconds)
    n = 0
    while time.perf_counter() < recorder.closes:
        sku = catalog.skus[n % len(catalog.skus)]
        change = inventory_pb2.StockAdjustment(
            adjustment_id=f"{run}-fresh-{n}", sku=sku, node_id=NODES[0], delta=1, reason="bench"
        )
        answer = await inventory.AdjustStock(inventory_pb2.AdjustStockRequest(adjustments=[change]))
        written = answer.results[0].position.on_hand
        began = time.perf_counter()
        read = availability_pb2.GetAvailabilityRequest(skus=[sku], include_nodes=True)
        while True:
            answer = await availability.GetAvailability(read)
            if any(p.node_id == NODES[0] and p.on_hand == written for p in answer.skus[0].nodes):
                break
            await asyncio.sleep(0.001)
        recorder.latencies.append(time.perf_counter() - began)
        n += 1
    return recorder.measurement("view_freshness", "view write-to-visible (delay)", 1)


async def feed_update(
    channels: list[grpc.aio.Channel],
    catalog: Catalog,
    run: str,
    meter: CpuMeter,
    warmup: float,
    seconds: float,
) -> Measurement:
    """The service's CPU per update delivered on the live feed: the same AdjustStock calls at
    FEED_RATE (open loop, on the best sellers, so that both streams see them) for a window with
    no stream open, then for a window with FEED_STREAMS streams (the whole catalog, and the best
    sellers) through the web channel; the difference of the two windows' CPU over the updates
    delivered in the second. Latency: from an update's as_of to its arrival."""
    stubs = Stubs(channels)
    best = catalog.skus[:FEED_BEST_SELLERS]

    def adjust(prefix: str) -> Call:
        return lambda n: stubs.inventory(n).AdjustStock(feed_batch(catalog, prefix, n, best))

    quiet_run, quiet = await asyncio.gather(
        open_loop(adjust(f"{run}-feed-quiet"), FEED_RATE, warmup, seconds), meter.window(warmup, seconds)
    )
    recorder: Recorder | None = None
    arrived = [asyncio.Event() for _ in range(FEED_STREAMS)]
    stream_errors: Counter[str] = Counter()

    async def watch(i: int, skus: list[str]) -> None:
        availability = availability_pb2_grpc.AvailabilityServiceStub(channels[i % len(channels)])
        call = availability.WatchAvailability(
            availability_pb2.WatchAvailabilityRequest(channel_id=CHANNEL, skus=skus)
        )
        try:
            async for update in call:
                arrived[i].set()
                now = time.perf_counter()
                if update.catch_up or recorder is None or not recorder.opens <= now < recorder.closes:
                    continue
                recorder.latencies.append(max(0.0, time.time() - update.as_of.ToNanoseconds() / 1e9))
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.CANCELLED:
                stream_errors[error.code().name] += 1
        finally:
            arrived[i].set()

    watchers = [asyncio.create_task(watch(i, [] if i % 2 == 0 else best)) for i in range(FEED_STREAMS)]
    try:
        # The catch-up snapshot first, outside the window: a stream's cost is its updates.
        for event in arrived:
            await event.wait()
        recorder = Recorder(warmup, seconds)
        busy_run, busy = await asyncio.gather(
            open_loop(adjust(f"{run}-feed-busy"), FEED_RATE, warmup, seconds), meter.window(warmup, seconds)
        )
    finally:
        for watcher in watchers:
            watcher.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
    recorder.errors.update(stream_errors + quiet_run.errors + busy_run.errors)
    measured = recorder.measurement("feed_update", "live feed, per update delivered", 0)

    def difference(with_streams: dict[str, float], without: dict[str, float]) -> dict[str, float]:
        return {key: with_streams[key] - without.get(key, 0.0) for key in with_streams}

    return charge(
        measured, CpuSpent(difference(busy.roles, quiet.roles), difference(busy.parts, quiet.parts))
    )


def targets(results: list[Measurement], scale: CatalogScale | None = None) -> list[Target]:
    """The goals of docs/performance.md that this run can check."""
    by_key = {r.key: r for r in results}
    found: list[Target] = []

    def cpu(key: str, role: str = SERVICE_ROLE) -> float | None:
        spent = by_key[key].cpu_ms.get(role) if key in by_key else None
        return spent or None

    def cpu_against(key: str, base: float | None, base_name: str, goal: float, what: str) -> None:
        """omnistock's CPU per call of `key` at most `goal` x `base` (another server's)."""
        if key not in by_key:
            return
        own = cpu(key)
        if own is None or base is None:
            found.append(Target(what, f"<= {goal:g} x {base_name}", "not measured", None))
            return
        times = own / base
        found.append(
            Target(
                what,
                f"<= {goal:g} x {base_name}",
                f"{times:.2f}x ({own:.3f} vs {base:.3f} ms)",
                times <= goal,
            )
        )

    echo_cpu = [c for c in (cpu("echo", "echo server"), cpu("echo_end", "echo server")) if c]
    echo_server = statistics.mean(echo_cpu) if echo_cpu else None
    cpu_against(
        "reserve_1", cpu("peer_reserve_1", PEER_ROLE), "the peer", 0.7, "1-line Reserve, CPU per call"
    )
    cpu_against(
        "reserve_5", cpu("peer_reserve_5", PEER_ROLE), "the peer", 1.0, "5-line Reserve, CPU per call"
    )
    cpu_against("availability_1", echo_server, "echo server", 1.3, "1-SKU availability, CPU per call")
    if "reserve_1_quarter_rate" in by_key:
        p99 = by_key["reserve_1_quarter_rate"].p99_ms
        found.append(Target("Reserve p99 at a quarter of the rate", "<= 10 ms", f"{p99:.1f} ms", p99 <= 10))
    if "availability_200" in by_key:
        answers = by_key["availability_200"].per_second * PAGE
        found.append(
            Target(
                f"{PAGE}-SKU availability", ">= 100,000 SKU answers/s", f"{answers:,.0f}", answers >= 100_000
            )
        )
    if "hot_sku" in by_key and "reserve_1" in by_key and by_key["reserve_1"].per_second:
        share = by_key["hot_sku"].per_second / by_key["reserve_1"].per_second
        found.append(Target("hot SKU Reserve", ">= 0.8 of uniform Reserve", f"{share:.2f}", share >= 0.8))
    # At 10 M positions the catalog targets are measured and judged. From a smaller catalog the
    # figures are projected linearly and not judged: fixed costs (the first arrays, Ray's 3-4 s
    # to start an actor process) make them overstate by up to twice.
    if scale is not None:
        measured = scale.positions == 10_000_000
        how = "measured" if measured else "projected"

        def judged(ok: bool) -> bool | None:
            return ok if measured else None

        projected = scale.load_seconds * 10_000_000 / scale.positions
        found.append(
            Target(
                "LoadStock of 10M positions", "<= 60 s", f"{projected:.0f} s ({how})", judged(projected <= 60)
            )
        )
        if scale.resident_bytes:  # weighed only when the bench started the service
            per_position = (scale.resident_bytes - scale.resident_before_bytes) / scale.positions
            gib = (scale.resident_before_bytes + per_position * 10_000_000) / 2**30
            found.append(
                Target("memory with 10M positions", "<= 3 GiB", f"{gib:.2f} GiB ({how})", judged(gib <= 3))
            )
            if scale.recovery_seconds is not None:
                per_million = scale.recovery_seconds / (scale.shard_positions / 1_000_000)
                found.append(
                    Target(
                        "shard restart",
                        "<= 5 s per million positions",
                        f"{per_million:.1f} s" + ("" if measured else f" (at {scale.shard_positions:,})"),
                        judged(per_million <= 5),
                    )
                )
    return found


def describe_machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for text in Path("/proc/cpuinfo").read_text().splitlines():
            if text.startswith("model name"):
                model = text.split(":", 1)[1].strip()
                break
    memory = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        memory = int(Path("/proc/meminfo").read_text().split()[1]) // 1024
    return {
        "cpus": usable_cpus(),
        "cpu_model": model,
        "memory_mib": memory,
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
        "event_loop": loop_name(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def render(report: dict[str, Any]) -> str:
    machine, settings = report["machine"], report["settings"]
    cpu = machine["cpu_model"] or "unknown"
    width = max([34, *(len(s["scenario"]) + 2 for s in report["scenarios"])])
    lines = [
        f"machine: {machine['cpus']} CPUs ({cpu}), {machine['memory_mib']:,} MiB, Python {machine['python']},"
        f" grpcio {machine['grpcio']}, {machine.get('event_loop', 'asyncio')} servers,"
        f" load average at start {machine['load_average_at_start'][0]}",
        f"catalog: {settings['positions']:,} positions loaded in {report['load_stock_seconds']:.1f} s",
        *idle_lines(report.get("idle")),
        "",
        f"{'scenario':<{width}}{'per s':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'errors':>8}{'x echo':>8}"
        f"{'CPU ms':>8}",
    ]
    for s in report["scenarios"]:
        ratio = "" if s["ratio"] is None else f"{s['ratio']:.2f}"
        cpu = cpu_total(s)
        lines.append(
            f"{s['scenario']:<{width}}{s['per_second']:>9,.0f}{s['p50_ms']:>9.2f}{s['p99_ms']:>9.2f}{s['max_ms']:>9.2f}"
            f"{s['errors']:>8}{ratio:>8}{'' if cpu is None else f'{cpu:.2f}':>8}"
        )
        if s["error_codes"]:
            lines.append(
                f"{'':<4}errors: {', '.join(f'{code} {count}' for code, count in s['error_codes'].items())}"
            )
    lines.append("")
    lines.append(
        "per s: calls (checkouts) per second; x echo: gRPC calls per second over the echo server's"
        " (the mean of its runs at the start and at the end)"
    )
    lines.append(
        "CPU ms: core-milliseconds per gRPC call of the load generator, the echo server and omnistock"
        " with all it started (Ray, shards, Redis), over the measured window (--json: each apart)"
    )
    parted = [s for s in report["scenarios"] if s.get("cpu_ms_parts")]
    if parted:
        lines += [
            "",
            f"{'omnistock CPU ms per call, by part':<{width}}{'all':>9}"
            + "".join(f"{p:>9}" for p in SERVICE_PARTS),
        ]
        for s in parted:
            cpu = s["cpu_ms"].get(SERVICE_ROLE, 0.0)
            lines.append(
                f"{s['scenario']:<{width}}{cpu:>9.3f}"
                + "".join(f"{s['cpu_ms_parts'].get(p, 0.0):>9.3f}" for p in SERVICE_PARTS)
            )
    scale = report.get("catalog")
    if scale:
        lines += [
            "",
            f"catalog: {scale['positions']:,} positions ({scale['skus']:,} SKUs x {scale['nodes']} nodes)"
            f" loaded in {scale['load_seconds']:.1f} s ({scale['positions_per_second']:,.0f} positions/s)",
            f"  resident memory {scale['resident_bytes'] / 2**30:.2f} GiB"
            f" ({scale['resident_before_bytes'] / 2**30:.2f} GiB before the load): "
            + ", ".join(
                f"{name} {size / 2**20:,.0f} MiB"
                for name, size in sorted(scale["resident_by_process"].items(), key=lambda item: -item[1])
            ),
        ]
        if scale["recovery_seconds"] is not None:
            lines.append(
                f"  one shard killed: serving again after {scale['recovery_seconds']:.1f} s"
                f" ({scale['shard_positions']:,} positions)"
            )
    if report["targets"]:
        lines.append("")
        lines.append(f"{'target':<40}{'goal':<30}{'measured':>20}  met")
        for t in report["targets"]:
            met = "-" if t["met"] is None else "yes" if t["met"] else "NO"
            lines.append(f"{t['what']:<40}{t['goal']:<30}{t['measured']:>20}  {met}")
        if any(t["met"] is None for t in report["targets"]):
            lines.append("-: projected from a smaller catalog, not judged; --catalog 10000000 measures it")
    return "\n".join(lines)


def idle_lines(idle: dict[str, Any] | None) -> list[str]:
    if not idle:
        return []
    parts = ", ".join(f"{part} {cores:.3f}" for part, cores in idle["cores_parts"].items())
    return [
        f"idle: omnistock {idle['cores']:.3f} cores over {idle['seconds']:g} s with no call in flight"
        f" ({parts})"
    ]


ONLY_KEYS = (
    "echo",
    "reserve_1",
    "reserve_5",
    *PEER_KEYS,
    "availability_1",
    "availability_200",
    "hot_sku",
    "checkout",
    "listing_48",
    "product_page",
    "pickup_search",
    "reserve_sourced",
    "stock_check",
    "adjust_stock",
    "confirm",
    "fulfil",
    "feed_update",
    "view_freshness",
)
"""What --only can name (echo always runs; reserve_1 brings its quarter- and half-rate runs, and
each shape of the mix its run with one caller)."""


def cpu_total(scenario: dict[str, Any]) -> float | None:
    """A scenario's CPU per call over all the bench's processes; None when not all were
    measured (with --target only the echo scenarios are whole: omnistock's are elsewhere)."""
    cpu = scenario.get("cpu_ms") or {}
    if not cpu or ("omnistock" not in cpu and not scenario["key"].startswith("echo")):
        return None
    return sum(cpu.values())


def scenario_keys(text: str) -> set[str]:
    """`--only`: comma-separated scenario keys, each one the bench has."""
    keys = set(text.split(","))
    unknown = sorted(keys - set(ONLY_KEYS))
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown scenario {', '.join(unknown)}; choose from {', '.join(ONLY_KEYS)}"
        )
    return keys


def rates(text: str) -> list[float]:
    """`--rates`: comma-separated calls per second, each above 0."""
    try:
        found = [float(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}") from None
    if not all(0 < rate <= 100_000 for rate in found):
        raise argparse.ArgumentTypeError(f"each rate must be within (0, 100000] calls a second, got {text!r}")
    return found


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", help="HOST:PORT of a running omnistock (default: start one)")
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="measured seconds per scenario (default %(default)s)"
    )
    parser.add_argument(
        "--warmup", type=float, default=2.0, help="unmeasured seconds before each (default %(default)s)"
    )
    parser.add_argument("--concurrency", type=int, default=32, help="callers in flight (default %(default)s)")
    parser.add_argument(
        "--shards",
        type=int,
        default=default_shards(),
        help="shards of the service it starts (default: serve's on this machine, %(default)s;"
        " with 2 or more, reserve_5 spans shards)",
    )
    parser.add_argument(
        "--gateways",
        type=int,
        default=1,
        help="gateway processes of the service it starts, sharing its port (default %(default)s)",
    )
    parser.add_argument(
        "--connections",
        type=int,
        default=0,
        help="gRPC connections the callers take in turn (default: 1, or"
        f" {CONNECTIONS_PER_GATEWAY} per gateway with several)",
    )
    parser.add_argument(
        "--partitions", type=int, default=256, help="partitions of the service (default %(default)s)"
    )
    parser.add_argument(
        "--skus",
        type=int,
        default=10_000,
        help=f"SKUs loaded, each at {len(NODES)} nodes (default %(default)s)",
    )
    parser.add_argument(
        "--only",
        type=scenario_keys,
        default=set(),
        help="comma-separated scenario keys (echo always runs)",
    )
    parser.add_argument(
        "--rates",
        type=rates,
        default=[],
        metavar="R1,R2,...",
        help="also time single-line Reserves in an open loop at each of these rates per second"
        " (how p99 grows with load; default: only at half the closed loop's rate)",
    )
    parser.add_argument(
        "--catalog",
        type=int,
        default=0,
        metavar="POSITIONS",
        help="also load this many positions (SKUs x 50 nodes), weigh the processes and time a shard"
        " restart (default: skip; 10000000 is the target scale)",
    )
    parser.add_argument(
        "--redis-fsync",
        choices=["always", "everysec"],
        default="always",
        help="AOF fsync of the service it starts (default %(default)s: no acknowledged write is lost)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON on stdout")


def command_line(command: str = "bench") -> str:
    """This run's command line as `omnistock COMMAND ...`, also when run as python -m loadtest.X."""
    argv = sys.argv[1:]
    if argv[:1] != [command]:
        argv = [command, *argv]
    return shlex.join(["omnistock", *argv])


def run_bench(args: argparse.Namespace) -> int:
    """Exit status 0 when every scenario ran without an error (targets do not count)."""

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    report = asyncio.run(bench(args, say))
    print(json.dumps(report, indent=2) if args.json else render(report))
    failed = [s for s in report["scenarios"] if s["errors"] or not s["calls"]]
    return 1 if failed else 0


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="omnistock bench", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    add_arguments(parser)
    sys.exit(run_bench(parser.parse_args()))


if __name__ == "__main__":
    main()
