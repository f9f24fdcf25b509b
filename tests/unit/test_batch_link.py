"""The shard's batch port and the gateway's link to it, over real sockets on loopback (and
real TLS with certificates made for the test).

Only Ray's handle is stood in for: `batch_endpoint.remote()` answers the port of the
"current process", which a test replaces to play a shard restarted by Ray."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from omnistock.cli.certs import DevCertificates, make_dev_certificates
from omnistock.gateway.transport.shard_link import LinkLost, ShardFailed, ShardLink
from omnistock.reservations.shard import batch_tls, wire
from omnistock.reservations.shard.batch_port import HEADER, MAX_FRAME, TOKEN_BYTES, BatchPort, read_frame


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


def open_port(ports: list[BatchPort], handle: Callable[[bytes], bytes] = echo, **options: Any) -> BatchPort:
    port = BatchPort(handle, "127.0.0.1", tls=options.pop("tls", None), **options)
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
    link = ShardLink(0, Handle(open_port(ports)), tls=None)
    replies = await asyncio.gather(*(link.call(f"batch {i}".encode()) for i in range(50)))
    assert replies == [f"re:batch {i}".encode() for i in range(50)]
    assert link.connects == 1
    link.close()


async def test_a_refused_batch_is_shard_failed_and_the_link_goes_on(ports: list[BatchPort]) -> None:
    def refuse_some(batch: bytes) -> bytes:
        if batch == b"bad":
            raise RuntimeError("journal write failed")
        return echo(batch)

    link = ShardLink(0, Handle(open_port(ports, refuse_some)), tls=None)
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

    link = ShardLink(0, Handle(open_port(ports, slow_first)), tls=None)
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
    link = ShardLink(0, handle, tls=None)
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
    link = ShardLink(0, handle, resends=3, tls=None)
    with pytest.raises(LinkLost, match="broke 4 times"):
        await link.call(b"batch")
    assert link.connects == 4
    closing.join(5)
    listener.close()


def closed_by_port(connection: socket.socket) -> bool:
    """Whether the port closed the connection without a reply (a reset when the bytes sent
    were left unread)."""
    try:
        return connection.recv(1) == b""
    except ConnectionResetError:
        return True


def refused(port: BatchPort) -> bool:
    """Whether a new connection is closed by the port, be it before the connect returns."""
    try:
        connection = raw_connection(port)
    except ConnectionResetError:
        return True
    with connection:
        connection.sendall(frame(port.token))
        return closed_by_port(connection)


def test_a_connection_without_the_token_is_closed_before_any_batch(ports: list[BatchPort]) -> None:
    handled: list[bytes] = []

    def record(batch: bytes) -> bytes:
        handled.append(batch)
        return b""

    port = open_port(ports, record)
    for opening in (frame(b"y" * TOKEN_BYTES), frame(b"short"), HEADER.pack(MAX_FRAME + 1), b"\x00"):
        with raw_connection(port) as connection:
            connection.sendall(opening + frame(b"batch"))
            assert closed_by_port(connection)  # no reply
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
        assert closed_by_port(connection)
    with raw_connection(port) as connection:
        connection.sendall(frame(port.token) + frame(b"ok"))
        assert read_reply(connection) == b"\x00re:ok"


def test_a_connection_that_never_shows_the_token_is_closed_after_a_while(ports: list[BatchPort]) -> None:
    port = open_port(ports, token_seconds=0.2)
    with raw_connection(port) as silent:
        started = time.monotonic()
        silent.sendall(HEADER.pack(TOKEN_BYTES) + b"x" * 5)  # and then nothing more
        assert closed_by_port(silent)  # by the port, not by the 5 s test timeout
        assert 0.15 < time.monotonic() - started < 2


def wait_for(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_connections_past_the_cap_of_those_without_the_token_are_closed_at_once(
    ports: list[BatchPort],
) -> None:
    port = open_port(ports, token_seconds=30, max_waiting=3)
    with raw_connection(port) as gateway:  # shown its token before the others came
        gateway.sendall(frame(port.token))
        silent = [raw_connection(port) for _ in range(3)]
        wait_for(lambda: port.connections == (3, 1))
        threads = threading.active_count()
        for _ in range(5):
            started = time.monotonic()
            assert refused(port)
            assert time.monotonic() - started < 1  # at once, not after token_seconds
        assert port.refused == 5
        assert threading.active_count() == threads  # the waiting ones hold no thread each
        gateway.sendall(frame(b"still served"))
        assert read_reply(gateway) == b"\x00re:still served"
        for connection in silent:
            connection.close()
        wait_for(lambda: port.connections == (0, 1))
        with raw_connection(port) as later:  # room again once they went
            later.sendall(frame(port.token) + frame(b"later"))
            assert read_reply(later) == b"\x00re:later"


def test_connections_past_the_cap_in_all_are_closed_at_once(ports: list[BatchPort]) -> None:
    port = open_port(ports, max_connections=2)
    first, second = raw_connection(port), raw_connection(port)
    for connection in (first, second):
        connection.sendall(frame(port.token))
    wait_for(lambda: port.connections == (0, 2))
    assert refused(port)
    first.sendall(frame(b"one"))
    assert read_reply(first) == b"\x00re:one"
    first.close()
    second.close()


def test_a_frame_the_handler_cannot_decode_is_failed_and_the_port_goes_on(ports: list[BatchPort]) -> None:
    def decode(batch: bytes) -> bytes:
        return wire.pack(wire.unpack_commands(batch))

    port = open_port(ports, decode)
    with raw_connection(port) as connection:
        connection.sendall(frame(port.token) + frame(b"\xc1 not msgpack") + frame(wire.pack([])))
        stream = connection.makefile("rb")
        failed, after = (read_frame(stream, MAX_FRAME) for _ in range(2))
        assert failed is not None and failed.startswith(b"\x01WireError: not a packed value")
        assert after == b"\x00" + wire.pack([])  # the same connection goes on


# --- TLS ---


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> DevCertificates:
    return make_dev_certificates(tmp_path_factory.mktemp("tls"))


def tls_of(made: DevCertificates) -> batch_tls.BatchTls:
    return batch_tls.BatchTls(made.server_cert, made.server_key, made.ca_cert, "omnistock")


async def test_a_batch_goes_through_over_tls_and_the_token_is_not_in_clear(
    ports: list[BatchPort], certificates: DevCertificates
) -> None:
    tls = tls_of(certificates)
    port = open_port(ports, tls=batch_tls.server_context(tls))
    assert port.tls
    link = ShardLink(0, Handle(port), tls=batch_tls.client_context(tls))
    assert await link.call(b"over tls") == b"re:over tls"
    # A client that speaks plain TCP, even with the right token, gets nothing.
    with raw_connection(port) as plain:
        plain.sendall(frame(port.token) + frame(b"in clear"))
        assert closed_by_port(plain)
    # Nor does a TLS client without a certificate of the CA (mutual TLS).
    anonymous = ssl.create_default_context(cafile=certificates.ca_cert)
    with (
        raw_connection(port) as raw,
        pytest.raises((ssl.SSLError, ConnectionResetError)),
        anonymous.wrap_socket(raw, server_hostname="127.0.0.1") as wrapped,
    ):
        wrapped.sendall(frame(port.token) + frame(b"no certificate"))
        wrapped.recv(1)
    assert await link.call(b"still") == b"re:still"
    link.close()


async def test_a_link_that_does_not_trust_the_shards_certificate_never_sends_the_token(
    ports: list[BatchPort], certificates: DevCertificates, tmp_path: Path
) -> None:
    port = open_port(ports, tls=batch_tls.server_context(tls_of(certificates)))
    other = make_dev_certificates(tmp_path / "other")
    link = ShardLink(0, Handle(port), resends=0, tls=batch_tls.client_context(tls_of(other)))
    with pytest.raises(LinkLost):
        await link.call(b"batch")
    assert link.connects == 0


def test_tls_settings_come_from_omnistocks_or_rays_environment(tmp_path: Path) -> None:
    assert batch_tls.settings({}) is None
    assert batch_tls.settings({"RAY_USE_TLS": "0", "RAY_TLS_SERVER_CERT": "c"}) is None
    ours = {
        "OMNISTOCK_BATCH_TLS_CERT": "a.pem",
        "OMNISTOCK_BATCH_TLS_KEY": "a.key",
        "OMNISTOCK_BATCH_TLS_CA": "ca",
    }
    assert batch_tls.settings(ours) == batch_tls.BatchTls(
        Path("a.pem"), Path("a.key"), Path("ca"), "omnistock"
    )
    rays = {
        "RAY_USE_TLS": "1",
        "RAY_TLS_SERVER_CERT": "r.pem",
        "RAY_TLS_SERVER_KEY": "r.key",
        "RAY_TLS_CA_CERT": "rca",
    }
    assert batch_tls.settings(rays) == batch_tls.BatchTls(Path("r.pem"), Path("r.key"), Path("rca"), "ray")
    assert batch_tls.settings({**rays, **ours}).source == "omnistock"  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="OMNISTOCK_BATCH_TLS_CA not set"):
        batch_tls.settings({k: v for k, v in ours.items() if k != "OMNISTOCK_BATCH_TLS_CA"})
    with pytest.raises(ValueError, match="RAY_TLS_SERVER_KEY not set"):
        batch_tls.settings({k: v for k, v in rays.items() if k != "RAY_TLS_SERVER_KEY"})
