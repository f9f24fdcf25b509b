"""The Redis+Lua peer: the Reserve a retailer's team would build instead of omnistock.

    python -m omnistock.loadtest.peer --port P [--redis-url URL] [--host 127.0.0.1]

A grpc.aio server of omnistock.v1.ReservationService (Reserve and Release; every other
method UNIMPLEMENTED) on the gateway's server options and event loop, whose Reserve is ONE
EVALSHA per request. The script, atomically in Redis: replays or refuses a known
reservation id (its lines kept in a canonical encoding), checks every line's available
(on_hand - held - committed) before it holds any, adds each line to its position's held
counter, records the reservation (lines, state, times) and indexes its expiry in a ZSET. An
expiry sweep (`--expire-every`) and Release end holds with a second script.

It is the fair comparison for `omnistock bench`: the same messages, the same durability
(Redis with `appendfsync always`, so an answer follows the fsync), the same idempotency and
all-or-nothing rule, the same validation and refusals, one round trip to Redis per request
and nothing else (no metrics, no network rules, no channels): what omnistock's batching has
to beat. It runs on one Redis (its keys are not spread over a cluster).

Positions are one hash per SKU at a node (fields on_hand, held, committed), the unit a line
touches, so a line costs one HMGET and one HINCRBY and two Reserves of other positions share
no key. `seed_stock` writes them before a run; a position never seeded has nothing available
(FAILED_PRECONDITION with available 0, as omnistock answers for a SKU it holds no stock of).
The Redis URL comes from $OMNISTOCK_PEER_REDIS_URL when not given, so that a password stays
out of the process list (`start_peer` passes it so).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import grpc
import psutil
import redis.asyncio as aioredis
import redis.exceptions
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from omnistock.gateway.grpc.admission import AdmissionSettings, server_options
from omnistock.gateway.grpc.convert import ID_PATTERN, Limits, Problems
from omnistock.gateway.grpc.servicers import Undecodable, add_service
from omnistock.gateway.grpc.statuses import to_status
from omnistock.gateway.runtime.embedded_redis import EmbeddedRedis, free_port
from omnistock.gateway.runtime.event_loop import loop_runner, running_loop_name
from omnistock.loadtest.processes import Process, start, until_stopped
from omnistock.protos.gen.omnistock.v1 import reservation_pb2, reservation_pb2_grpc
from omnistock.reservations.domain.commands import ShortLine
from omnistock.reservations.domain.errors import (
    AlreadyExists,
    FailedPrecondition,
    InsufficientStock,
    NotFound,
    Unavailable,
)

log = logging.getLogger(__name__)

URL_ENV = "OMNISTOCK_PEER_REDIS_URL"
"""Where the peer reads its Redis URL when --redis-url is not given."""
PREFIX = "peer:"
POSITIONS = PREFIX + "pos:"
"""+ "SKU NODE": a position's hash. Ids never hold a space (ID_PATTERN), so the key is unambiguous."""
RESERVATIONS = PREFIX + "res:"
"""+ reservation id: its hash (lines, state, created, expires, changed; times in ms)."""
EXPIRY = PREFIX + "expiry"
"""ZSET of HELD reservation ids by expiry (ms)."""
SEED_CHUNK = 1_000
"""Positions written per pipelined round trip by `seed_stock`."""
SWEEP_BATCH = 500
"""Lapsed holds one sweep ends at most (the next takes the rest)."""
START_TIMEOUT = 60.0
"""Seconds the peer has to serve after its start."""
LIMITS = Limits()
"""omnistock's request bounds: the peer refuses what omnistock refuses."""

STATES = {
    b"HELD": reservation_pb2.RESERVATION_STATE_HELD,
    b"RELEASED": reservation_pb2.RESERVATION_STATE_RELEASED,
    b"EXPIRED": reservation_pb2.RESERVATION_STATE_EXPIRED,
}

# KEYS: the reservation, the expiry index, then one position per line (in the lines' order).
# ARGV: id, canonical lines, now (ms), expires (ms), then each line's quantity.
# Replies {1} held, {2, state, created, expires, changed} replayed, {3} other lines,
# {4, line, available, ...} short lines (1-based).
RESERVE = """
local stored = redis.call('HMGET', KEYS[1], 'lines', 'state', 'created', 'expires', 'changed')
if stored[1] then
  if stored[1] ~= ARGV[2] then return {3} end
  local state = stored[2]
  -- a lapsed hold the sweep has not ended yet is expired on the clock already
  if state == 'HELD' and tonumber(stored[4]) <= tonumber(ARGV[3]) then state = 'EXPIRED' end
  return {2, state, stored[3], stored[4], stored[5] or '0'}
end
local short = {4}
for i = 3, #KEYS do
  local p = redis.call('HMGET', KEYS[i], 'on_hand', 'held', 'committed')
  local available = (tonumber(p[1]) or 0) - (tonumber(p[2]) or 0) - (tonumber(p[3]) or 0)
  if tonumber(ARGV[i + 2]) > available then
    short[#short + 1] = i - 2
    short[#short + 1] = math.max(available, 0)
  end
end
if #short > 1 then return short end
for i = 3, #KEYS do redis.call('HINCRBY', KEYS[i], 'held', ARGV[i + 2]) end
redis.call('HSET', KEYS[1], 'lines', ARGV[2], 'state', 'HELD', 'created', ARGV[3], 'expires', ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
return {1}
"""

# Ends a HELD reservation: its units leave the held counters of the positions its stored
# lines name (keys built here from POSITIONS: one Redis, not a cluster).
# KEYS: the reservation, the expiry index. ARGV: id, now (ms), positions' prefix, "release"
# or "expire". Replies {0} unknown, {1, ended as, lines, created, expires, changed} ended
# now, {2, state, lines, created, expires, changed} ended before, {3} not due (expire).
END = """
local stored = redis.call('HMGET', KEYS[1], 'lines', 'state', 'created', 'expires', 'changed')
if not stored[1] then return {0} end
if stored[2] ~= 'HELD' then return {2, stored[2], stored[1], stored[3], stored[4], stored[5] or '0'} end
local lapsed = tonumber(stored[4]) <= tonumber(ARGV[2])
if ARGV[4] == 'expire' and not lapsed then return {3} end
local ending = lapsed and 'EXPIRED' or 'RELEASED'
for position, quantity in string.gmatch(stored[1], '([^\\n]+) (%d+)') do
  redis.call('HINCRBY', ARGV[3] .. position, 'held', -tonumber(quantity))
end
redis.call('HSET', KEYS[1], 'state', ending, 'changed', ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[1])
return {1, ending, stored[1], stored[3], stored[4], ARGV[2]}
"""


def position_key(sku: str, node_id: str) -> str:
    return f"{POSITIONS}{sku} {node_id}"


def canonical(lines: Sequence[tuple[str, str, int]]) -> str:
    """The lines as stored and compared for a replay: "SKU NODE QUANTITY" per line, sorted."""
    return "\n".join(f"{sku} {node_id} {quantity}" for sku, node_id, quantity in lines)


def parse_canonical(text: bytes) -> list[tuple[str, str, int]]:
    found = []
    for row in text.decode().split("\n"):
        sku, node_id, quantity = row.split(" ")
        found.append((sku, node_id, int(quantity)))
    return found


def reserve_lines(request: reservation_pb2.ReserveRequest) -> tuple[list[tuple[str, str, int]], int]:
    """The lines sorted by (sku, node) and the TTL of a Reserve; InvalidArgument naming every
    bad field (omnistock's bounds and wording) when anything is wrong."""
    problems = Problems()
    problems.check_id("reservation_id", request.reservation_id, LIMITS)
    problems.check_count("lines", len(request.lines), LIMITS.max_lines)
    if request.channel_id:
        problems.add("channel_id", "the peer has no channels; leave it empty")
    if request.customer_id:
        problems.add("customer_id", "the peer has no purchase limits; leave it empty")
    if request.HasField("destination") or any(not line.node_id for line in request.lines):
        problems.add("lines", "the peer holds at named nodes only: every line needs its node_id")
    seen: set[tuple[str, str]] = set()
    lines = []
    most = LIMITS.max_quantity
    for i, line in enumerate(request.lines):
        field = f"lines[{i}]"
        if line.node_id:
            problems.check_position(field, line.sku, line.node_id, seen, LIMITS)
        if not 1 <= line.quantity <= most:
            problems.add(f"{field}.quantity", f"must be within 1..{most}, got {line.quantity}")
        lines.append((line.sku, line.node_id, line.quantity))
    ttl = request.ttl_seconds or LIMITS.default_ttl_seconds
    if not LIMITS.min_ttl_seconds <= ttl <= LIMITS.max_ttl_seconds:
        problems.add(
            "ttl_seconds", f"must be within {LIMITS.min_ttl_seconds}..{LIMITS.max_ttl_seconds}, got {ttl}"
        )
    problems.raise_if_any()
    if len(lines) > 1:
        lines.sort()
    return lines, ttl


def fill_reservation(
    message: reservation_pb2.Reservation,
    reservation_id: str,
    state: int,
    lines: Iterable[tuple[str, str, int]],
    times_ms: tuple[int, int, int],
) -> None:
    """`message` as omnistock answers it: lines sorted by (sku, node); times created, expires,
    changed (0: unset)."""
    message.reservation_id = reservation_id
    message.state = state  # type: ignore[assignment]
    for sku, node_id, quantity in lines:
        message.lines.add(sku=sku, node_id=node_id, quantity=quantity)
    created, expires, changed = times_ms
    message.created_at.FromMilliseconds(created)
    message.expires_at.FromMilliseconds(expires)
    if changed:
        message.changed_at.FromMilliseconds(changed)


class Scripts:
    """The two scripts, loaded once (SCRIPT LOAD) and run by their SHA; loaded again and
    retried once when Redis answers NOSCRIPT (a restart or SCRIPT FLUSH lost them)."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self.reserve_sha = ""
        self.end_sha = ""

    async def load(self) -> None:
        self.reserve_sha = await self._client.script_load(RESERVE)
        self.end_sha = await self._client.script_load(END)

    async def reserve(self, keys: list[str], args: list[str | int]) -> list[Any]:
        try:
            return await self._client.evalsha(self.reserve_sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            await self.load()
            return await self._client.evalsha(self.reserve_sha, len(keys), *keys, *args)

    async def end(self, reservation_id: str, now_ms: int, how: str) -> list[Any]:
        keys_and_args = (RESERVATIONS + reservation_id, EXPIRY, reservation_id, now_ms, POSITIONS, how)
        try:
            return await self._client.evalsha(self.end_sha, 2, *keys_and_args)
        except redis.exceptions.NoScriptError:
            await self.load()
            return await self._client.evalsha(self.end_sha, 2, *keys_and_args)


class PeerReservations(reservation_pb2_grpc.ReservationServiceServicer):
    """Reserve and Release on Redis; the other methods answer UNIMPLEMENTED (generated)."""

    SERVICE = reservation_pb2.DESCRIPTOR.services_by_name["ReservationService"]

    def __init__(self, scripts: Scripts) -> None:
        self._scripts = scripts

    async def Reserve(
        self, request: reservation_pb2.ReserveRequest, context: grpc.aio.ServicerContext
    ) -> reservation_pb2.ReserveResponse:
        try:
            return await self._reserve(request)
        except Exception as error:  # a refusal (or a fault) becomes its status
            await context.abort_with_status(to_status(error)[1])
            raise  # never reached: abort raises

    async def Release(
        self, request: reservation_pb2.ReleaseRequest, context: grpc.aio.ServicerContext
    ) -> reservation_pb2.ReleaseResponse:
        try:
            return await self._release(request)
        except Exception as error:
            await context.abort_with_status(to_status(error)[1])
            raise

    async def _reserve(self, request: reservation_pb2.ReserveRequest) -> reservation_pb2.ReserveResponse:
        if request.__class__ is Undecodable:
            raise request.refusal
        lines, ttl = reserve_lines(request)
        reservation_id = request.reservation_id
        now_ms = int(time.time() * 1000)
        expires_ms = now_ms + ttl * 1000
        keys = [RESERVATIONS + reservation_id, EXPIRY, *(position_key(sku, node) for sku, node, _ in lines)]
        args: list[str | int] = [reservation_id, canonical(lines), now_ms, expires_ms]
        args.extend(quantity for _, _, quantity in lines)
        try:
            reply = await self._scripts.reserve(keys, args)
        except redis.exceptions.RedisError as error:
            raise Unavailable(
                f"Redis cannot serve now ({type(error).__name__}); retry with the same id"
            ) from None
        outcome = reply[0]
        response = reservation_pb2.ReserveResponse()
        if outcome == 1:
            fill_reservation(
                response.reservation, reservation_id, STATES[b"HELD"], lines, (now_ms, expires_ms, 0)
            )
        elif outcome == 2:
            response.replayed = True
            times = (int(reply[2]), int(reply[3]), int(reply[4]))
            fill_reservation(response.reservation, reservation_id, STATES[reply[1]], lines, times)
        elif outcome == 3:
            raise AlreadyExists(
                "reservation",
                reservation_id,
                f"reservation id {reservation_id!r} is already used with other lines;"
                " use a new id for a new reservation",
            )
        else:
            short = [
                ShortLine(lines[index - 1][0], lines[index - 1][1], lines[index - 1][2], available)
                for index, available in zip(reply[1::2], reply[2::2], strict=True)
            ]
            raise InsufficientStock(short)
        return response

    async def _release(self, request: reservation_pb2.ReleaseRequest) -> reservation_pb2.ReleaseResponse:
        if request.__class__ is Undecodable:
            raise request.refusal
        reservation_id = request.reservation_id
        problems = Problems()
        problems.check_id("reservation_id", reservation_id, LIMITS)
        problems.raise_if_any()
        try:
            reply = await self._scripts.end(reservation_id, int(time.time() * 1000), "release")
        except redis.exceptions.RedisError as error:
            raise Unavailable(
                f"Redis cannot serve now ({type(error).__name__}); retry with the same id"
            ) from None
        if reply[0] == 0:
            raise NotFound("reservation", reservation_id)
        state = reply[1]
        if state != b"RELEASED":  # expired: on the clock, or by the sweep before
            raise FailedPrecondition(f"cannot release reservation {reservation_id!r}: it is {state.decode()}")
        response = reservation_pb2.ReleaseResponse(replayed=reply[0] == 2)
        times = (int(reply[3]), int(reply[4]), int(reply[5]))
        fill_reservation(
            response.reservation, reservation_id, STATES[state], parse_canonical(reply[2]), times
        )
        return response


async def sweep_expired(scripts: Scripts, client: aioredis.Redis, every: float) -> None:
    """Every `every` seconds, end the holds whose expiry has passed (each by the END script,
    which checks again: a Release meanwhile wins)."""
    while True:
        await asyncio.sleep(every)
        try:
            now_ms = int(time.time() * 1000)
            lapsed = await client.zrangebyscore(EXPIRY, "-inf", now_ms, start=0, num=SWEEP_BATCH)
            for reservation_id in cast(list[bytes], lapsed):
                await scripts.end(reservation_id.decode(), now_ms, "expire")
        except redis.exceptions.RedisError as error:  # Redis away for a moment: the next sweep
            log.warning("expiry sweep failed: %s", error)


def connect(url: str, connections: int) -> aioredis.Redis:
    """A client with its own pool of at most `connections`, one per call in flight (redis-py
    picks hiredis's parser when installed). A call finding them all busy fails (UNAVAILABLE)
    rather than wait: a pool that waits costs every call a condition variable. Retries after
    a connection error are safe: the Reserve script is idempotent by id."""
    if "+cluster" in url.split("://", 1)[0]:
        raise ValueError("the peer runs on one Redis, not a Redis Cluster")
    return aioredis.Redis.from_url(url, max_connections=connections)


async def serve(host: str, port: int, url: str, expire_every: float, connections: int) -> None:
    client = connect(url, connections)
    scripts = Scripts(client)
    await scripts.load()
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", LIMITS.max_message_bytes),
            ("grpc.max_send_message_length", LIMITS.max_message_bytes),
            ("grpc.so_reuseport", 0),
            *server_options(AdmissionSettings()),
        ]
    )
    add_service(PeerReservations(scripts), server)
    checks = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checks, server)
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    await checks.set("", health_pb2.HealthCheckResponse.SERVING)
    sweeper = asyncio.create_task(sweep_expired(scripts, client, expire_every)) if expire_every > 0 else None
    print(f"listening on {bound} with {running_loop_name()}", flush=True)
    await until_stopped()
    if sweeper is not None:
        sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper
    await server.stop(grace=1)
    await client.aclose()


async def seed_stock(redis_url: str, levels: Iterable[tuple[str, str, int]]) -> int:
    """Set on_hand of each (sku, node, on_hand), SEED_CHUNK positions per pipelined round
    trip; held and committed are left as they are. ValueError for an id the peer would refuse
    in a Reserve or a negative count. Returns the positions written."""
    client = connect(redis_url, 1)
    written = 0
    try:
        pipe = client.pipeline(transaction=False)
        for sku, node_id, on_hand in levels:
            for name, value in (("sku", sku), ("node_id", node_id)):
                if len(value) > LIMITS.max_id_length or not ID_PATTERN.fullmatch(value):
                    raise ValueError(
                        f"{name} {value!r}: 1..{LIMITS.max_id_length} printable characters, no spaces"
                    )
            if on_hand < 0:
                raise ValueError(f"{sku} at {node_id}: on_hand {on_hand} is negative")
            pipe.hset(position_key(sku, node_id), "on_hand", on_hand)
            written += 1
            if len(pipe) >= SEED_CHUNK:
                await pipe.execute()
        if len(pipe):
            await pipe.execute()
    finally:
        await client.aclose()
    return written


@dataclass
class Peer:
    """A running peer: its Redis, its server process and where it serves."""

    redis: EmbeddedRedis
    process: Process
    target: str
    """HOST:PORT of its gRPC server."""

    @property
    def redis_url(self) -> str:
        """With the password in it: never log it."""
        return self.redis.url

    def processes(self) -> list[psutil.Process]:
        """The server process and redis-server (with any child of either), for CPU accounting."""
        found: list[psutil.Process] = []
        for pid in (self.server.pid, self.redis.pid):
            if pid is None:
                continue
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(pid)
                found += [root, *root.children(recursive=True)]
        return found

    @property
    def server(self) -> subprocess.Popen[bytes]:
        return self.process.popen

    def tail(self, lines: int = 40) -> str:
        return self.process.tail(lines)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM to the server (it drains for a second), then a clean Redis shutdown."""
        try:
            self.process.stop(timeout)
        finally:
            self.redis.stop()

    async def wait_serving(self, timeout: float = START_TIMEOUT) -> None:
        """Until its health check says SERVING (scripts loaded, port open); RuntimeError with
        its log if it exits or does not serve in time."""
        deadline = time.monotonic() + timeout
        async with grpc.aio.insecure_channel(self.target) as channel:
            checks = health_pb2_grpc.HealthStub(channel)
            while True:
                if self.server.poll() is not None:
                    raise RuntimeError(f"the peer exited with {self.server.returncode}:\n{self.tail()}")
                with contextlib.suppress(grpc.aio.AioRpcError):
                    answer = await checks.Check(health_pb2.HealthCheckRequest(), timeout=2)
                    if answer.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the peer did not serve in {timeout:.0f} s:\n{self.tail()}")
                await asyncio.sleep(0.1)


async def start_peer(workdir: Path, fsync: str = "always", expire_every: float = 1.0) -> Peer:
    """Start an embedded Redis (data under workdir/peer-redis, appendfsync `fsync`) and the
    peer server in its own process (log workdir/peer.log); returns once it serves. Call it on
    the thread that lives as long as the peer should (the event loop's): the embedded Redis
    ends with the thread that started it."""
    store = EmbeddedRedis(workdir / "peer-redis", fsync=fsync).start()
    try:
        port = free_port()
        argv = [sys.executable, "-m", "omnistock.loadtest.peer", "--port", str(port)]
        argv += ["--expire-every", str(expire_every)]
        # The URL (with its password) not on the command line: ps shows that to all.
        server = start("peer", argv, workdir, env={**os.environ, URL_ENV: store.url})
    except BaseException:
        store.stop()
        raise
    peer = Peer(store, server, f"127.0.0.1:{port}")
    try:
        await peer.wait_serving()
    except BaseException:
        peer.stop()
        raise
    return peer


def main() -> None:
    parser = argparse.ArgumentParser(description="The Redis+Lua peer: one Lua script per Reserve.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0: any free port (printed)")
    parser.add_argument(
        "--redis-url", default=os.environ.get(URL_ENV), help=f"one Redis (default: ${URL_ENV})"
    )
    parser.add_argument(
        "--expire-every", type=float, default=1.0, help="seconds between expiry sweeps; 0: none"
    )
    parser.add_argument(
        "--redis-connections", type=int, default=1000, help="Redis connections at most (calls in flight)"
    )
    args = parser.parse_args()
    if not args.redis_url:
        parser.error(f"--redis-url or ${URL_ENV} is required")
    logging.basicConfig(level=logging.WARNING)
    loop_runner()(serve(args.host, args.port, args.redis_url, args.expire_every, args.redis_connections))


if __name__ == "__main__":
    main()
