"""The shard's batch port and the gateway's link to it, over real sockets on loopback.

Only Ray's handle is stood in for: `batch_endpoint.remote()` answers the port of the
"current process", which a test replaces to play a shard restarted by Ray."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from omnistock.gateway.transport.shard_link import LinkLost, ShardFailed, ShardLink
from omnistock.reservations.shard.batch_port import HEADER, MAX_FRAME, TOKEN_BYTES, BatchPort


class Method:
    def __init__(self, answer: Callable[[], tuple[str, int, bytes]]) -> None:
        self._answer = answer
        self.calls = 0

    async def remote(self) -> tuple[str, int, bytes]:
        self.calls += 1
        return self._answer()


class Handle:
    """What the link asks of a Ray actor handle: the current port's endpoint."""

    def __init__(self, port: BatchPort) -> None:
        self.port = port
        self.batch_endpoint = Method(lambda: self.port.endpoint)


def echo(batch: bytes) -> bytes:
    return b"re:" + batch


@pytest.fixture
def ports() -> Iterator[list[BatchPort]]:
    opened: list[BatchPort] = []
    yield opened
    for port in opened:
        port.close()


def open_port(ports: list[BatchPort], handle: Callable[[bytes], bytes] = echo) -> BatchPort:
    port = BatchPort(handle, "127.0.0.1")
    ports.append(port)
    return port


def raw_connection(port: BatchPort) -> socket.socket:
    connection = socket.create_connection((port.host, port.port), timeout=5)
    return connection


def frame(body: bytes) -> bytes:
    return HEADER.pack(len(body)) + body


def read_reply(connection: socket.socket) -> bytes:
    stream = connection.makefile("rb")
    (size,) = HEADER.unpack(stream.read(HEADER.size))
    return stream.read(size)


async def test_batches_get_their_own_replies_in_order_on_one_connection(ports: list[BatchPort]) -> None:
    link = ShardLink(0, Handle(open_port(ports)))
    replies = await asyncio.gather(*(link.call(f"batch {i}".encode()) for i in range(50)))
    assert replies == [f"re:batch {i}".encode() for i in range(50)]
    assert link.connects == 1
    link.close()


async def test_a_refused_batch_is_shard_failed_and_the_link_goes_on(ports: list[BatchPort]) -> None:
    def refuse_some(batch: bytes) -> bytes:
        if batch == b"bad":
            raise RuntimeError("journal write failed")
        return echo(batch)

    link = ShardLink(0, Handle(open_port(ports, refuse_some)))
    with pytest.raises(ShardFailed, match="RuntimeError: journal write failed"):
        await link.call(b"bad")
    assert await link.call(b"good") == b"re:good"
    assert link.connects == 1
    link.close()


async def test_a_caller_that_gives_up_does_not_get_a_later_batch_its_reply(ports: list[BatchPort]) -> None:
    release = threading.Event()

    def slow_first(batch: bytes) -> bytes:
        if batch == b"slow":
            release.wait(5)
        return echo(batch)

    link = ShardLink(0, Handle(open_port(ports, slow_first)))
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(link.call(b"slow"), 0.05)
    after = asyncio.ensure_future(link.call(b"next"))
    await asyncio.sleep(0.05)
    release.set()
    assert await after == b"re:next"  # not the late reply to "slow"
    assert link.connects == 1  # and the connection lived on
    link.close()


async def test_a_restarted_shard_is_found_again_and_the_batch_in_flight_sent_again(
    ports: list[BatchPort],
) -> None:
    arrived = threading.Event()

    def dies_with_the_batch(batch: bytes) -> bytes:
        arrived.set()
        threading.Event().wait(5)  # the process dies before it answers
        return echo(batch)

    first = open_port(ports, dies_with_the_batch)
    handle = Handle(first)
    link = ShardLink(0, handle)
    call = asyncio.ensure_future(link.call(b"hold"))
    await asyncio.to_thread(arrived.wait, 5)
    handle.port = open_port(ports)  # Ray has started the shard again: a new port
    first.close()
    assert await call == b"re:hold"
    assert link.connects == 2
    assert handle.batch_endpoint.calls == 2
    # An idle link whose shard died meanwhile reconnects before it sends.
    handle.port.close()
    handle.port = open_port(ports)
    await asyncio.sleep(0.1)
    assert await link.call(b"later") == b"re:later"
    assert link.connects == 3
    link.close()


async def test_a_link_that_keeps_breaking_gives_up(ports: list[BatchPort]) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    closing = threading.Thread(target=lambda: [listener.accept()[0].close() for _ in range(4)], daemon=True)
    closing.start()
    handle = Handle(open_port(ports))
    handle.batch_endpoint = Method(lambda: ("127.0.0.1", listener.getsockname()[1], b"x" * TOKEN_BYTES))
    link = ShardLink(0, handle, resends=3)
    with pytest.raises(LinkLost, match="broke 4 times"):
        await link.call(b"batch")
    assert link.connects == 4
    closing.join(5)
    listener.close()


def test_a_connection_without_the_token_is_closed_before_any_batch(ports: list[BatchPort]) -> None:
    handled: list[bytes] = []

    def record(batch: bytes) -> bytes:
        handled.append(batch)
        return b""

    port = open_port(ports, record)
    for opening in (frame(b"y" * TOKEN_BYTES), frame(b"short"), HEADER.pack(MAX_FRAME + 1), b"\x00"):
        with raw_connection(port) as connection:
            connection.sendall(opening + frame(b"batch"))
            assert connection.recv(1) == b""  # closed, no reply
    assert handled == []
    # The port still serves a gateway that shows the token.
    with raw_connection(port) as connection:
        connection.sendall(frame(port.token) + frame(b"batch"))
        assert read_reply(connection) == b"\x00"  # OK, and the handler's empty reply
    assert handled == [b"batch"]


def test_a_frame_over_the_limit_ends_the_connection_not_the_port(ports: list[BatchPort]) -> None:
    port = open_port(ports)
    with raw_connection(port) as connection:
        connection.sendall(frame(port.token) + HEADER.pack(MAX_FRAME + 1))
        assert connection.recv(1) == b""
    with raw_connection(port) as connection:
        connection.sendall(frame(port.token) + frame(b"ok"))
        assert read_reply(connection) == b"\x00re:ok"


def test_a_connection_that_never_shows_the_token_is_closed_after_a_while(ports: list[BatchPort]) -> None:
    port = BatchPort(echo, "127.0.0.1", token_seconds=0.2)
    ports.append(port)
    with raw_connection(port) as silent:
        silent.sendall(HEADER.pack(TOKEN_BYTES) + b"x" * 5)  # and then nothing more
        assert silent.recv(1) == b""  # closed by the port, not by the 5 s test timeout
