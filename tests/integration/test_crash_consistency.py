"""Reservations that span two shards stay in one state when processes die at the worst
moments: a Confirm cut by the death of Redis, a gateway, a shard or everything (issue 25,
finding 1), and seeded rounds of a mixed workload with kills at random points. After
recovery, with no client retrying anything: every reservation's parts agree with its
home, nothing acknowledged is lost, stock is conserved, and no unit stays reserved or
committed without an open part.

Real processes throughout: `omnistock serve` (two shards, two gateways) in its own process
group, on a redis-server the test owns, killed with SIGKILL or at named crash points
(reservations/crash_points.py). OMNISTOCK_SOAK_ROUNDS=N runs N random rounds instead of the
default few (docs/consistency.md has the figures of a long soak).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
import pytest_asyncio

from omnistock.client import OmnistockClient, OmnistockRpcError, level, line
from omnistock.gateway.runtime.embedded_redis import EmbeddedRedis, free_port
from omnistock.protos.gen.omnistock.v1 import reservation_pb2
from omnistock.reservations import crash_points
from omnistock.reservations.domain.placement import partition_of, shard_of
from tests.integration.conftest import NODES
from tests.integration.test_crash_restart import kill_group, wait_serving

pytestmark = pytest.mark.slow
OMNISTOCK = str(Path(sys.executable).parent / "omnistock")
PARTITIONS = 64
OWN_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]
HELD, CONFIRMED, RELEASED, EXPIRED, FULFILLED = (
    reservation_pb2.RESERVATION_STATE_HELD,
    reservation_pb2.RESERVATION_STATE_CONFIRMED,
    reservation_pb2.RESERVATION_STATE_RELEASED,
    reservation_pb2.RESERVATION_STATE_EXPIRED,
    reservation_pb2.RESERVATION_STATE_FULFILLED,
)


def sku_on(shard: int, prefix: str, skip: int = 0) -> str:
    """A SKU whose partition the given shard of two owns (the `skip`-th such)."""
    found = -1
    for i in range(10_000):
        sku = f"{prefix}-{i}"
        if shard_of(partition_of(sku, PARTITIONS), 2) == shard:
            found += 1
            if found == skip:
                return sku
    raise AssertionError("no SKU found")


class Service:
    """`omnistock serve --shards 2 --gateways 2` on the test's Redis, which it may kill."""

    def __init__(self, tmp: Path, redis: EmbeddedRedis) -> None:
        self.tmp = tmp
        self.redis = redis
        self.port = free_port()
        self.log = tmp / "serve.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.starts_armed = 0
        """The start that armed the last crash point (its once-dir is crashes-<start>)."""

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self, crash: str = "") -> None:
        """Start it (again), a crash point armed when given: it fires once, in whichever
        process gets there first."""
        self.starts += 1
        if crash:
            self.starts_armed = self.starts
        env = {**os.environ, "RAY_ADDRESS": ""}
        env.pop(crash_points.ENV, None)
        if crash:
            once = self.tmp / f"crashes-{self.starts}"
            once.mkdir()
            env |= {crash_points.ENV: crash, crash_points.ONCE_DIR_ENV: str(once)}
        args = [OMNISTOCK, "serve", "--redis-url", self.redis.url, "--port", str(self.port)]
        args += ["--metrics-port", "0", "--shards", "2", "--gateways", "2", "--partitions", str(PARTITIONS)]
        args += ["--data-dir", str(self.tmp), "--log-level", "warning"]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(args, stdout=out, stderr=out, env=env, start_new_session=True)
        await wait_serving(self.port, self.process, self.log)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """Everything: the serve process group (gateways, Ray, shards) with SIGKILL."""
        assert self.process is not None
        kill_group(self.process, signal.SIGKILL)
        self.process.wait(timeout=30)

    def descendants(self, match: Callable[[list[str]], bool]) -> list[psutil.Process]:
        assert self.process is not None
        found = []
        for child in psutil.Process(self.process.pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if match(child.cmdline()):
                    found.append(child)
        return found

    def running(self, match: Callable[[list[str]], bool], what: str) -> list[psutil.Process]:
        """The processes `match` finds, once there are some (one killed before may still be
        starting again)."""
        deadline = time.monotonic() + 60
        while not (found := self.descendants(match)):
            assert time.monotonic() < deadline, f"no {what} process found"
            time.sleep(0.1)
        return found

    def kill_gateway(self) -> None:
        """Gateway 1 (its supervisor starts it again)."""
        (gateway,) = self.running(lambda cmd: "omnistock.cli" in cmd and "gateway" in cmd[-3:], "gateway")
        gateway.kill()

    def kill_shard(self, rng: random.Random) -> None:
        """A shard actor's process (Ray starts it again)."""
        rng.choice(self.running(lambda cmd: bool(cmd) and cmd[0].startswith("ray::Shard"), "shard")).kill()

    async def kill_redis(self) -> None:
        """redis-server with SIGKILL; a second later, started again on its port from its
        append-only file (as an operator, or the embedded mode's watcher, would)."""
        assert self.redis.pid is not None
        os.kill(self.redis.pid, signal.SIGKILL)
        while self.redis.returncode is None:
            await asyncio.sleep(0.01)
        await asyncio.sleep(1.0)
        await self.redis.restart()

    async def recovered(self, timeout: float = 60.0) -> Report:
        """Once serving again (started again if everything died), wait until nothing is in
        doubt (undecided attempts time out, handed-out intents are carried), then the check."""
        if not self.alive():
            await self.start()
        await wait_serving(self.port, self.process, self.log)  # type: ignore[arg-type]
        deadline = time.monotonic() + timeout
        async with OmnistockClient(self.target, timeout=30) as client:
            while True:
                try:
                    checked = await client.check_conservation()
                    if not checked.reservations_in_doubt or time.monotonic() > deadline:
                        return Report(
                            list(checked.problems),
                            [f"{d.reservation_id}: {d.problem}" for d in checked.disagreements],
                            checked.reservations_in_doubt,
                            checked.reservations_checked,
                        )
                except OmnistockRpcError:
                    assert time.monotonic() < deadline, self.log.read_text()[-3000:]
                await asyncio.sleep(0.5)

    def stop(self) -> None:
        if self.process is not None:
            kill_group(self.process, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=30)


@dataclass
class Report:
    problems: list[str]
    disagreements: list[str]
    in_doubt: int
    reservations: int


@contextlib.asynccontextmanager
async def serving(tmp: Path) -> AsyncIterator[Service]:
    """The service on a redis-server of its own, with the test network; both stopped after."""
    redis = EmbeddedRedis(tmp / "redis").start()
    running = Service(tmp, redis)
    try:
        await running.start()
        async with OmnistockClient(running.target) as client:
            await client.put_nodes(NODES)
        yield running
    finally:
        running.stop()
        redis.stop()


@pytest_asyncio.fixture(scope="module")
async def service(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Service]:
    async with serving(tmp_path_factory.mktemp("crash")) as running:
        yield running


async def clients(service: Service, count: int) -> list[OmnistockClient]:
    """Clients with a connection each, so calls spread over both gateways."""
    return [OmnistockClient(service.target, timeout=10, options=OWN_CONNECTION) for _ in range(count)]


async def close(opened: list[OmnistockClient]) -> None:
    await asyncio.gather(*(client.close() for client in opened), return_exceptions=True)


# --- finding 1: a Confirm cut by a crash ---


async def kill(service: Service, kind: str, rng: random.Random) -> None:
    if kind == "redis":
        await service.kill_redis()
    elif kind == "gateway":
        service.kill_gateway()
    elif kind == "shard":
        service.kill_shard(rng)
    else:
        service.kill()


KILLS = ["redis", "gateway", "shard", "everything"]


@pytest.mark.parametrize("kill_kind", [*KILLS, "between parts"])
async def test_confirms_cut_by_a_crash_leave_no_reservation_half_confirmed(
    service: Service, kill_kind: str
) -> None:
    """Holds of one unit of a SKU on each shard, confirmed once each by callers that give up
    on any error; a crash once 60 are confirmed. Afterwards every hold is HELD or CONFIRMED in full: each
    SKU has as many units committed as there are confirmed holds, and as many reserved as
    there are held ones."""
    tag = kill_kind.replace(" ", "-")
    first, second = sku_on(0, f"F1-{tag}"), sku_on(1, f"F1-{tag}")
    holds = [f"f1-{tag}-{i}" for i in range(300)]
    if kill_kind == "between parts":
        # A gateway dies once the confirm is decided and the part in the home's shard took it,
        # before the part in the other shard did.
        service.kill()
        await service.start(crash="decide.before_carry@40")
    opened = await clients(service, 24)
    try:
        await opened[0].set_stock([level(first, "DC-1", 1_000), level(second, "DC-1", 1_000)])
        for start in range(0, len(holds), 50):
            await asyncio.gather(
                *(
                    opened[i % 24].reserve(rid, [line(first, "DC-1", 1), line(second, "DC-1", 1)], 600)
                    for i, rid in enumerate(holds[start : start + 50])
                )
            )
        confirmed: set[str] = set()

        async def confirm_each(caller: int) -> None:
            for rid in holds[caller::24]:
                with contextlib.suppress(OmnistockRpcError):  # gives up: no retry
                    await opened[caller].confirm(rid)
                    confirmed.add(rid)

        confirming = [asyncio.create_task(confirm_each(caller)) for caller in range(24)]
        at_kill = 0
        if kill_kind in KILLS:
            while len(confirmed) < 60:  # mid-way: some confirmed, many in flight or to come
                await asyncio.sleep(0.002)
            at_kill = len(confirmed)
            await kill(service, kill_kind, random.Random(1))
        await asyncio.gather(*confirming)
    finally:
        await close(opened)
    assert at_kill < len(holds)
    if kill_kind == "between parts":
        assert (service.tmp / f"crashes-{service.starts_armed}" / "decide.before_carry").exists()
    if kill_kind != "shard":  # (a gateway sends a batch again to a restarted shard: no error)
        assert len(confirmed) < len(holds)  # the crash cut confirms short

    report = await service.recovered()
    assert (report.problems, report.disagreements, report.in_doubt) == ([], [], 0)
    async with OmnistockClient(service.target, timeout=30) as client:
        states = [(await client.get_reservation(rid)).state for rid in holds]
        answer = await client.availability([first, second], include_nodes=True, consistent=True)
    assert set(states) <= {HELD, CONFIRMED}
    assert all(states[holds.index(rid)] == CONFIRMED for rid in confirmed)  # acknowledged: kept
    committed, reserved = states.count(CONFIRMED), states.count(HELD)
    counts = [(a.nodes[0].reserved, a.nodes[0].committed) for a in answer.skus]
    assert counts == [(reserved, committed), (reserved, committed)]
    assert committed > 0


# --- randomized: a mixed workload, a kill at a random point, recovery, every invariant ---


@dataclass
class Known:
    """What a client was told of a reservation (acknowledged), and what it merely tried."""

    lines: list[tuple[str, int]]
    acknowledged: int = 0
    """The last state a reply said it was in (0: never acknowledged)."""
    shipped: dict[str, int] = field(default_factory=dict)


FORWARD = {
    HELD: {HELD, CONFIRMED, RELEASED, EXPIRED, FULFILLED},
    CONFIRMED: {CONFIRMED, RELEASED, FULFILLED},
    RELEASED: {RELEASED},
    EXPIRED: {EXPIRED},
    FULFILLED: {FULFILLED},
}
"""The states a reservation may be in later, given one a reply acknowledged."""


async def workload(
    service: Service, rng: random.Random, tag: str, skus: list[str], known: dict[str, Known], seconds: float
) -> int:
    """Callers reserving lines on both shards, confirming, releasing, extending, shipping and
    cancelling, for `seconds`; the calls made."""
    opened = await clients(service, 8)
    deadline = time.monotonic() + seconds
    made = 0

    async def caller(index: int) -> None:
        nonlocal made
        client, mine = opened[index], random.Random(rng.random())
        while time.monotonic() < deadline:
            made += 1
            ids = [rid for rid in known if rid.startswith(f"{tag}-{index}-")]
            action = mine.choice(["reserve"] * 3 + ["confirm"] * 2 + ["release", "extend", "ship", "cancel"])
            try:
                if action == "reserve" or not ids:
                    rid = f"{tag}-{index}-{made}"
                    wanted = [(sku, mine.randint(1, 2)) for sku in mine.sample(skus, mine.randint(2, 3))]
                    known[rid] = Known(wanted)
                    ttl = mine.choice([SHORT_TTL, 600, 600])
                    await client.reserve(rid, [line(sku, "DC-1", units) for sku, units in wanted], ttl)
                    known[rid].acknowledged = HELD
                    continue
                rid = mine.choice(ids)
                if action == "confirm":
                    known[rid].acknowledged = (await client.confirm(rid)).reservation.state
                elif action == "release":
                    known[rid].acknowledged = (await client.release(rid)).reservation.state
                elif action == "extend":
                    known[rid].acknowledged = (await client.extend(rid, 600)).state
                else:
                    sku, _ = mine.choice(known[rid].lines)
                    units = [line(sku, "DC-1", 1)]
                    if action == "ship":
                        reply = await client.fulfil(rid, f"ship-{made}", units)
                        known[rid].shipped[sku] = known[rid].shipped.get(sku, 0) + 1
                    else:
                        reply = await client.cancel_lines(rid, f"cancel-{made}", units)  # type: ignore[assignment]
                    known[rid].acknowledged = reply.reservation.state
            except OmnistockRpcError:
                await asyncio.sleep(0.01)  # refused, or the service is down: on to the next

    try:
        await asyncio.gather(*(caller(i) for i in range(len(opened))))
    finally:
        await close(opened)
    return made


async def verify(service: Service, skus: list[str], known: dict[str, Known]) -> int:
    """Every invariant from the outside; the reservations checked."""
    report = await service.recovered()
    assert report.problems == [], report.problems
    assert report.disagreements == [], report.disagreements
    assert report.in_doubt == 0
    open_units: dict[str, list[int]] = {sku: [0, 0] for sku in skus}
    async with OmnistockClient(service.target, timeout=30) as client:
        for rid, what in known.items():
            try:
                reservation = await client.get_reservation(rid)
            except OmnistockRpcError as error:
                assert error.code.name == "NOT_FOUND" and not what.acknowledged, f"{rid} lost: {error}"
                continue
            if what.acknowledged:
                assert reservation.state in FORWARD[what.acknowledged], (rid, what.acknowledged, reservation)
            for held in reservation.lines:
                assert held.fulfilled >= what.shipped.get(held.sku, 0), (rid, reservation)
                still = held.quantity - held.fulfilled - held.cancelled
                if reservation.state in (HELD, CONFIRMED):
                    open_units[held.sku][0 if reservation.state == HELD else 1] += still
        answer = await client.availability(skus, include_nodes=True, consistent=True)
    counts = {a.sku: [a.nodes[0].reserved, a.nodes[0].committed] for a in answer.skus}
    assert counts == open_units  # no unit reserved or committed without an open part
    return len(known)


SHORT_TTL = 2
"""Seconds some holds live, so that expiries happen amid the kills."""
KINDS = ["shard", "gateway", "redis", "everything", "crash point"]
POINTS = list(crash_points.POINTS)


async def test_random_kills_during_a_mixed_workload_leave_every_invariant(service: Service) -> None:
    rounds = int(os.environ.get("OMNISTOCK_SOAK_ROUNDS", "6"))
    rng = random.Random(int(os.environ.get("OMNISTOCK_SOAK_SEED", "25")))
    skus = [sku_on(shard, "RND", skip) for shard in (0, 1) for skip in range(3)]
    async with OmnistockClient(service.target) as client:
        await client.set_stock([level(sku, "DC-1", 100_000) for sku in skus])
    figures = {"rounds": 0, "kills": {}, "calls": 0, "reservations_checked": 0, "disagreements": 0}
    known: dict[str, Known] = {}
    started = time.monotonic()
    for round_number in range(rounds):
        kind = KINDS[round_number] if round_number < len(KINDS) else rng.choice(KINDS)
        point = ""
        if kind == "crash point":
            name = rng.choice(POINTS)
            point = f"{name}@{1 if name == 'shard.recovery' else rng.randint(1, 30)}"
            service.kill()
            await service.start(crash=point)
        tag = f"r{round_number}"
        load = asyncio.create_task(workload(service, rng, tag, skus, known, seconds=2.5))
        if kind != "crash point":
            await asyncio.sleep(rng.uniform(0.3, 2.0))
            await kill(service, kind, rng)
        figures["calls"] += await load
        await asyncio.sleep(SHORT_TTL + 0.5)  # no hold expires while the checks read
        checked = await verify(service, skus, known)
        figures["rounds"] += 1
        label = point or kind
        if point and not (service.tmp / f"crashes-{service.starts_armed}" / name).exists():
            label += " (not reached)"
        figures["kills"][label] = figures["kills"].get(label, 0) + 1  # type: ignore[index]
        figures["reservations_checked"] = checked
    figures["seconds"] = round(time.monotonic() - started)
    print(json.dumps(figures))  # the soak's figures (pytest -s)
    assert figures["reservations_checked"] > 0
