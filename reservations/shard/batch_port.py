"""The shard's batch port: the gateway's batches reach the shard over a TCP stream of their own.

A Ray actor call costs about 1 ms on an idle 2-core machine and 3-4 ms under load (the
submit, two hops through Ray's core workers and a GIL handoff at each end); a frame on a
socket about 0.1 ms (docs/performance.md, The batch port). Batches are the hot path, so they take
this port; Ray still places, names and restarts the shard and carries every other call,
including the one that hands the gateway this port's address and token.

Frames are a 4-byte big-endian length and that many bytes. A connection opens with the
port's token (random bytes the gateway got from the actor through Ray). Each later frame is
one batch packed by reservations/shard/wire.py (msgpack: decoding it runs nothing), answered
by one frame whose first byte says what follows: OK and the packed reply, or FAILED and a
message (the batch was not kept, or was not a batch at all; see Shard.apply). A gateway may
send the next batch before the last is answered: a connection's batches are applied one at a
time and answered in order.

What a connection may cost before it has shown the token is bounded: one thread (the port's
own) walks every such connection through TLS and the token without blocking; each has
`token_seconds` for both, at most `max_waiting` wait at a time, and the port holds at most
`max_connections` in all. A connection past a cap is closed as soon as it is accepted. Only a
connection that showed the token gets a thread of its own, as a gateway's does.

With TLS (reservations/shard/batch_tls.py) the port speaks only TLS, and the token travels
inside it.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import secrets
import selectors
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable
from typing import BinaryIO, Literal

from omnistock.reservations.shard import batch_tls

log = logging.getLogger(__name__)

HEADER = struct.Struct("!I")
TOKEN_BYTES = 32
OPENING = HEADER.pack(TOKEN_BYTES)
"""The header of the token's frame: the first bytes of every connection (after TLS)."""
MAX_FRAME = 1 << 30
"""Largest frame either end accepts (a 50,000-level load batch is a few MiB)."""
TOKEN_SECONDS = 2.0
"""How long a new connection has to finish TLS and show the token: a gateway takes
milliseconds."""
MAX_WAITING = 8
"""Connections that have not shown the token yet, at most, at a time."""
MAX_CONNECTIONS = 256
"""Connections at most, waiting ones included (a gateway opens one per shard)."""
OK = b"\x00"
FAILED = b"\x01"
MAX_MESSAGE = 1000
"""Characters at most of a FAILED reply's message (it may quote what the batch held)."""
REFUSALS_LOGGED_EVERY = 10.0
"""Seconds between two warnings about refused connections (each counts those since the last)."""


def read_frame(stream: BinaryIO, limit: int) -> bytes | None:
    """The next frame, or None at a clean end of the stream; ConnectionError past `limit`
    or when the stream ends inside a frame."""
    header = stream.read(HEADER.size)
    if not header:
        return None
    if len(header) < HEADER.size:
        raise ConnectionError("stream ended inside a frame header")
    (size,) = HEADER.unpack(header)
    if size > limit:
        raise ConnectionError(f"frame of {size} bytes is over the limit of {limit}")
    body = stream.read(size)
    if len(body) < size:
        raise ConnectionError("stream ended inside a frame")
    return body


def send_frame(connection: socket.socket, *parts: bytes) -> None:
    buffers = [HEADER.pack(sum(len(part) for part in parts)), *parts]
    if isinstance(connection, ssl.SSLSocket):  # no sendmsg on TLS: one record instead
        connection.sendall(b"".join(buffers))
        return
    sent = connection.sendmsg(buffers)
    if sent < sum(len(buffer) for buffer in buffers):  # a blocking send may still stop short
        connection.sendall(b"".join(buffers)[sent:])


class _Waiting:
    """A connection on its way through TLS and the token."""

    __slots__ = ("connection", "deadline", "handshaken", "received")

    def __init__(self, connection: socket.socket, deadline: float, handshaken: bool) -> None:
        self.connection = connection
        self.deadline = deadline
        self.handshaken = handshaken
        self.received = b""


class BatchPort:
    """Listens on `host` (an ephemeral port); each connection that shows the token gets a
    thread that hands its frames to `handle` in turn. `handle` raising (a batch the shard could
    not keep, bytes that are no batch) becomes a FAILED reply, not a dropped link.

    `tls`: a server context, None for plain TCP, or "environment" for what batch_tls.settings()
    finds (the shard's case)."""

    def __init__(
        self,
        handle: Callable[[bytes], bytes],
        host: str,
        token_seconds: float = TOKEN_SECONDS,
        tls: ssl.SSLContext | Literal["environment"] | None = "environment",
        max_waiting: int = MAX_WAITING,
        max_connections: int = MAX_CONNECTIONS,
    ) -> None:
        self._handle = handle
        self._token_seconds = token_seconds
        self._tls = batch_tls.server_context(batch_tls.settings()) if tls == "environment" else tls
        self._max_waiting = max_waiting
        self._max_connections = max_connections
        self.token = secrets.token_bytes(TOKEN_BYTES)
        self._listener = socket.create_server((host, 0), backlog=128)
        self._listener.setblocking(False)
        self.host = host
        self.port: int = self._listener.getsockname()[1]
        self._closed = False
        self._open: set[socket.socket] = set()
        self._waiting: dict[socket.socket, _Waiting] = {}
        self._guard = threading.Lock()
        self.refused = 0
        """Connections closed at once for a cap, since the port opened."""
        self._refused_unlogged = 0
        self._refusal_logged = 0.0
        self._selector = selectors.DefaultSelector()
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._wake_reader.setblocking(False)
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._selector.register(self._wake_reader, selectors.EVENT_READ)
        threading.Thread(target=self._gate, name="batch-port", daemon=True).start()

    @property
    def endpoint(self) -> tuple[str, int, bytes]:
        """(host, port, token): what a gateway needs to connect."""
        return self.host, self.port, self.token

    @property
    def tls(self) -> bool:
        return self._tls is not None

    @property
    def connections(self) -> tuple[int, int]:
        """(waiting for the token, serving batches) right now."""
        with self._guard:
            return len(self._waiting), len(self._open)

    def close(self) -> None:
        """Stop listening and end every connection, as the process ending would."""
        self._closed = True
        self._listener.close()
        with contextlib.suppress(OSError):
            self._wake_writer.send(b"\x00")
        with self._guard:
            for connection in self._open:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)

    # --- connections on their way in: one thread, nothing blocks ---

    def _gate(self) -> None:
        try:
            while not self._closed:
                for key, _ in self._selector.select(self._next_timeout()):
                    if key.fileobj is self._wake_reader:
                        continue  # close() woke the loop
                    try:
                        if key.fileobj is self._listener:
                            self._accept()
                        else:
                            self._advance(key.data)
                    except Exception:  # this thread is the port's only door: it goes on
                        log.exception("batch port: taking a connection failed")
                        if isinstance(key.data, _Waiting):
                            self._drop(key.data, "failed")
                self._expire()
        finally:
            with self._guard:
                waiting, self._waiting = list(self._waiting.values()), {}
            for entry in waiting:
                entry.connection.close()
            self._selector.close()
            self._wake_reader.close()
            self._wake_writer.close()

    def _next_timeout(self) -> float:
        with self._guard:
            if not self._waiting:
                return 1.0
            first = min(entry.deadline for entry in self._waiting.values())
        return max(0.0, min(1.0, first - time.monotonic()))

    def _accept(self) -> None:
        while not self._closed:
            try:
                connection, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                if self._closed:
                    return
                continue  # e.g. a client gone between SYN and accept
            with self._guard:
                full = (
                    len(self._waiting) >= self._max_waiting
                    or len(self._waiting) + len(self._open) >= self._max_connections
                )
            if full:
                self._refuse(connection)
                continue
            connection.setblocking(False)
            if self._tls is not None:
                try:
                    connection = self._tls.wrap_socket(
                        connection, server_side=True, do_handshake_on_connect=False
                    )
                except (OSError, ValueError):
                    connection.close()
                    continue
            entry = _Waiting(connection, time.monotonic() + self._token_seconds, self._tls is None)
            with self._guard:
                self._waiting[connection] = entry
            self._selector.register(connection, selectors.EVENT_READ, entry)
            self._advance(entry)  # a TLS client may have sent its hello already

    def _refuse(self, connection: socket.socket) -> None:
        self.refused += 1
        self._refused_unlogged += 1
        with contextlib.suppress(OSError):  # reset, not a FIN handshake left in TIME_WAIT
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        connection.close()
        now = time.monotonic()
        if now - self._refusal_logged >= REFUSALS_LOGGED_EVERY:
            log.warning(
                "batch port: %d connection(s) closed at once: over %d waiting for the token or %d in all",
                self._refused_unlogged,
                self._max_waiting,
                self._max_connections,
            )
            self._refused_unlogged, self._refusal_logged = 0, now

    def _advance(self, entry: _Waiting) -> None:
        """As far as the connection's bytes go: TLS, then the token's frame."""
        connection = entry.connection
        try:
            if not entry.handshaken:
                assert isinstance(connection, ssl.SSLSocket)
                connection.do_handshake()
                entry.handshaken = True
            while len(entry.received) < len(OPENING) + TOKEN_BYTES:
                chunk = connection.recv(len(OPENING) + TOKEN_BYTES - len(entry.received))
                if not chunk:
                    self._drop(entry, "closed before showing the token")
                    return
                entry.received += chunk
                if not OPENING.startswith(entry.received[: len(OPENING)]):
                    self._drop(entry, "opened with something else than the token")
                    return
        except ssl.SSLWantReadError:
            self._selector.modify(connection, selectors.EVENT_READ, entry)
            return
        except ssl.SSLWantWriteError:
            self._selector.modify(connection, selectors.EVENT_WRITE, entry)
            return
        except (BlockingIOError, InterruptedError):
            return
        except (OSError, ValueError) as error:  # ssl.SSLError included: a client without TLS
            self._drop(entry, f"failed before the token: {error}")
            return
        if not hmac.compare_digest(entry.received[len(OPENING) :], self.token):
            self._drop(entry, "showed a wrong token")
            return
        self._selector.unregister(connection)
        with self._guard:
            del self._waiting[connection]
            if self._closed:
                connection.close()
                return
            self._open.add(connection)
        threading.Thread(target=self._serve, args=(connection,), name="batch-link", daemon=True).start()

    def _drop(self, entry: _Waiting, why: str) -> None:
        log.info("batch port: a connection %s; closed", why)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(entry.connection)
        with self._guard:
            self._waiting.pop(entry.connection, None)
        entry.connection.close()

    def _expire(self) -> None:
        now = time.monotonic()
        with self._guard:
            late = [entry for entry in self._waiting.values() if entry.deadline <= now]
        for entry in late:
            self._drop(entry, f"did not show the token within {self._token_seconds:g} s")

    # --- connections that showed the token: a thread each ---

    def _serve(self, connection: socket.socket) -> None:
        try:
            self._converse(connection)
        finally:
            with self._guard:
                self._open.discard(connection)
            connection.close()

    def _converse(self, connection: socket.socket) -> None:
        try:
            connection.setblocking(True)  # a gateway may stay quiet between batches for long
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            stream = connection.makefile("rb")
            while (batch := read_frame(stream, MAX_FRAME)) is not None:
                try:
                    reply = self._handle(batch)
                except Exception as error:  # the shard kept nothing of the batch
                    message = f"{type(error).__name__}: {error}"[:MAX_MESSAGE]
                    send_frame(connection, FAILED, message.encode(errors="replace"))
                else:
                    send_frame(connection, OK, reply)
        except OSError as error:  # ConnectionError and ssl.SSLError included: the gateway went away
            log.info("batch port: a connection ended: %s", error)
