"""A live shard's batch port against hostile clients (DESIGN.md, promises 6 and 7): no token,
a wrong token, the right token with bytes that are no batch (garbage, an unknown class, a
pickle that would run code), a flood of silent connections, plain text where TLS is on.
Nothing runs, no stock changes, and the port goes on serving real batches."""

from __future__ import annotations

import asyncio
import os
import pickle
import time
import uuid
from pathlib import Path
from typing import Any

import msgpack
import pytest
import ray

from omnistock.availability.positions import loaded_rows
from omnistock.cli.certs import make_dev_certificates
from omnistock.client import OmnistockClient, level, line
from omnistock.gateway.runtime.embedded_redis import EmbeddedRedis
from omnistock.gateway.runtime.service import ShardActor
from omnistock.gateway.transport.shard_link import LinkLost, ShardLink
from omnistock.reservations.domain.commands import GetPart, PartOutcome, PartResult, SetStock, StockResult
from omnistock.reservations.domain.model import Line
from omnistock.reservations.domain.placement import partition_of, shard_of
from omnistock.reservations.shard import batch_tls, wire
from omnistock.reservations.shard.actor import ShardConfig
from omnistock.reservations.shard.batch_port import FAILED, HEADER, MAX_WAITING, OK, TOKEN_SECONDS
from tests.integration.conftest import NODES

SKU = "SKU-GUARDED"


def frame(body: bytes) -> bytes:
    return HEADER.pack(len(body)) + body


class RunsCode:
    """Unpickled, it would run os.system: touch a file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.path}",))


async def closed_without_reply(host: str, port: int, sent: bytes, seconds: float = 5.0) -> bool:
    """Whether the port closes a connection that sent `sent`, answering nothing."""
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except ConnectionResetError:
        return True
    try:
        writer.write(sent)
        try:
            return await asyncio.wait_for(reader.read(1), seconds) == b""
        except ConnectionResetError:
            return True
    finally:
        writer.close()


async def read_frame(reader: asyncio.StreamReader) -> bytes:
    (size,) = HEADER.unpack(await reader.readexactly(HEADER.size))
    return await reader.readexactly(size)


async def shard_state(shard: Any) -> tuple[int, list[Any]]:
    """The shard's change-feed version and every position it holds."""
    changes = await shard.changes_since.remote("", 0)
    loaded = [row for block in changes.loaded for row in loaded_rows(block)]
    return changes.version, sorted([*changes.rows, *loaded])


async def test_hostile_bytes_on_the_batch_port_run_nothing_and_change_nothing(
    service: Any, tmp_path: Path
) -> None:
    async with OmnistockClient(f"127.0.0.1:{service.port}") as client:
        await client.put_nodes(NODES)
        await client.set_stock([level(SKU, "DC-1", 10)])
        await client.reserve("before", [line(SKU, "DC-1", 2)])
        partition = partition_of(SKU, service.router.partitions)
        shard = service.shards[shard_of(partition, len(service.shards))]
        host, port, token = await shard.batch_endpoint.remote()
        assert host == "127.0.0.1"  # a local cluster: loopback only
        before = await shard_state(shard)
        touched = tmp_path / "ran"
        payload = pickle.dumps([RunsCode(touched)])

        # Without the token, or with a wrong one: closed, nothing read past the opening.
        for opening in (frame(payload), frame(b"x" * len(token)) + frame(payload), b"GET / HTTP/1.1\r\n\r\n"):
            assert await closed_without_reply(host, port, opening)

        # With the token, frames that are no batch: a FAILED reply each, on one connection.
        line_mark = wire._BY_CLASS[Line].mark
        hostile = [
            os.urandom(256),
            b"\xc1",
            msgpack.packb([{msgpack.ExtType(1, (999).to_bytes(2, "big")): ["drop everything"]}]),
            payload,
            msgpack.packb([{line_mark: (SKU, "DC-1", "many")}]),
            wire.pack([Line(SKU, "DC-1", 1)]),  # a registered class, but no command
            wire.pack(SetStock(partition, SKU, "DC-1", 999, time.time())),  # a command, not a batch
        ]
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(frame(token) + b"".join(frame(body) for body in hostile))
        replies = [await asyncio.wait_for(read_frame(reader), 10) for _ in hostile]
        assert [reply[:1] for reply in replies] == [FAILED] * len(hostile)
        assert all(b"WireError" in reply for reply in replies), replies
        # ... and then a real batch on the same connection is served.
        writer.write(frame(wire.pack([GetPart(partition, "before")])))
        reply = await asyncio.wait_for(read_frame(reader), 10)
        writer.close()
        assert reply[:1] == OK
        (found,) = wire.unpack_reply(reply[1:]).results
        assert isinstance(found, PartResult) and found.outcome is PartOutcome.FOUND

        assert not touched.exists()
        assert await shard_state(shard) == before
        # The gateway's own link goes on too.
        await client.reserve("after", [line(SKU, "DC-1", 3)])
        answer = await client.availability([SKU], include_nodes=True, consistent=True)
        (dc,) = [node for node in answer.skus[0].nodes if node.node_id == "DC-1"]
        assert (dc.on_hand, dc.reserved) == (10, 5)


async def test_silent_connections_past_the_cap_are_closed_at_once_and_batches_go_on(service: Any) -> None:
    async with OmnistockClient(f"127.0.0.1:{service.port}") as client:
        await client.put_nodes(NODES)
        await client.set_stock([level(SKU, "DC-1", 10)])
        await client.reserve("first", [line(SKU, "DC-1", 1)])  # the gateway's links are open
        partition = partition_of(SKU, service.router.partitions)
        shard = service.shards[shard_of(partition, len(service.shards))]
        host, port, _ = await shard.batch_endpoint.remote()

        silent = [await asyncio.open_connection(host, port) for _ in range(MAX_WAITING)]
        try:
            await asyncio.sleep(0.1)  # the port has taken them all
            for _ in range(3 * MAX_WAITING):
                started = time.monotonic()
                assert await closed_without_reply(host, port, b"", seconds=TOKEN_SECONDS)
                assert time.monotonic() - started < TOKEN_SECONDS / 2  # at once, not at the deadline
            # The gateway's batches still go through meanwhile.
            await client.reserve("during", [line(SKU, "DC-1", 2)])
            # The silent ones are closed at their deadline, which makes room for a new gateway.
            for reader, _ in silent:
                assert await asyncio.wait_for(reader.read(1), TOKEN_SECONDS + 5) == b""
        finally:
            for _, writer in silent:
                writer.close()
        fresh = ShardLink(0, shard, resends=0, tls=None)
        reply = wire.unpack_reply(await fresh.call(wire.pack([GetPart(partition, "during")])))
        fresh.close()
        (found,) = reply.results
        assert isinstance(found, PartResult) and found.outcome is PartOutcome.FOUND


async def test_a_shard_with_tls_serves_batches_over_tls_only(
    redis_server: EmbeddedRedis, ray_runtime: None, tmp_path: Path
) -> None:
    made = make_dev_certificates(tmp_path / "tls")
    env = {
        batch_tls.CERT: str(made.server_cert),
        batch_tls.KEY: str(made.server_key),
        batch_tls.CA: str(made.ca_cert),
    }
    partitions = 4
    config = ShardConfig(0, tuple(range(partitions)), redis_server.url, prefix=f"tls-{uuid.uuid4().hex[:8]}")
    shard = ShardActor.options(runtime_env={"env_vars": env}).remote(config)  # the shard's node has them set
    try:
        host, port, token = await shard.batch_endpoint.remote()
        assert host == "127.0.0.1"
        p = partition_of(SKU, partitions)
        link = ShardLink(0, shard, tls=batch_tls.client_context(batch_tls.settings(env)))
        reply = wire.unpack_reply(await link.call(wire.pack([SetStock(p, SKU, "DC-1", 5, time.time())])))
        (stocked,) = reply.results
        assert isinstance(stocked, StockResult) and stocked.applied and stocked.position.on_hand == 5

        # Plain text, even with the token: closed, nothing applied.
        in_clear = frame(token) + frame(wire.pack([SetStock(p, SKU, "DC-1", 999, time.time())]))
        assert await closed_without_reply(host, port, in_clear)
        plain = ShardLink(1, shard, resends=0, tls=None)
        with pytest.raises(LinkLost):
            await plain.call(wire.pack([SetStock(p, SKU, "DC-1", 998, time.time())]))
        plain.close()

        # The TLS link still serves, and the stock is what it set.
        again = wire.unpack_reply(await link.call(wire.pack([GetPart(p, "nothing")])))
        assert len(again.results) == 1
        link.close()
        _, rows = await shard_state(shard)
        assert [(row[0], row[1], row[2]) for row in rows] == [(SKU, "DC-1", 5)]
    finally:
        ray.kill(shard)
