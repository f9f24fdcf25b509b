"""The shard's batch port: the gateway's batches reach the shard over a TCP stream of their own.

A Ray actor call costs about 1 ms on an idle 2-core machine and 3-4 ms under load (the
submit, two hops through Ray's core workers and a GIL handoff at each end); a frame on a
socket about 0.1 ms (docs/performance.md, The batch port). Batches are the hot path, so they take
this port; Ray still places, names and restarts the shard and carries every other call,
including the one that hands the gateway this port's address and token.

Frames are a 4-byte big-endian length and that many bytes. A connection opens with the
port's token (random bytes the gateway got from the actor through Ray): nothing is
unpickled from a connection before it has shown the token. Each later frame is one packed
batch, answered by one frame whose first byte says what follows: OK and the packed reply,
or FAILED and a message (the batch was not kept; see Shard.apply). A gateway may send the
next batch before the last is answered: a connection's batches are applied one at a time
and answered in order.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import secrets
import socket
import struct
import threading
from collections.abc import Callable
from typing import BinaryIO

log = logging.getLogger(__name__)

HEADER = struct.Struct("!I")
TOKEN_BYTES = 32
MAX_FRAME = 1 << 30
"""Largest frame either end accepts (a 50,000-level load batch is a few MiB)."""
TOKEN_SECONDS = 10.0
"""How long a new connection has to show the token: one that never does holds a thread."""
OK = b"\x00"
FAILED = b"\x01"


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
    sent = connection.sendmsg(buffers)
    if sent < sum(len(buffer) for buffer in buffers):  # a blocking send may still stop short
        connection.sendall(b"".join(buffers)[sent:])


class BatchPort:
    """Listens on `host` (an ephemeral port); each connection gets a thread that hands its
    frames to `handle` in turn. `handle` raising becomes a FAILED reply, not a dropped link."""

    def __init__(
        self, handle: Callable[[bytes], bytes], host: str, token_seconds: float = TOKEN_SECONDS
    ) -> None:
        self._handle = handle
        self._token_seconds = token_seconds
        self.token = secrets.token_bytes(TOKEN_BYTES)
        self._listener = socket.create_server((host, 0))
        self.host = host
        self.port: int = self._listener.getsockname()[1]
        self._closed = False
        self._open: set[socket.socket] = set()
        self._guard = threading.Lock()
        threading.Thread(target=self._accept, name="batch-port", daemon=True).start()

    @property
    def endpoint(self) -> tuple[str, int, bytes]:
        """(host, port, token): what a gateway needs to connect."""
        return self.host, self.port, self.token

    def close(self) -> None:
        """Stop listening and end every connection, as the process ending would."""
        self._closed = True
        self._listener.close()
        with self._guard:
            for connection in self._open:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)

    def _accept(self) -> None:
        while not self._closed:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                if self._closed:
                    return
                continue  # e.g. a client gone between SYN and accept
            threading.Thread(target=self._serve, args=(connection,), name="batch-link", daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        with self._guard:
            if self._closed:
                connection.close()
                return
            self._open.add(connection)
        try:
            self._converse(connection)
        finally:
            with self._guard:
                self._open.discard(connection)
            connection.close()

    def _converse(self, connection: socket.socket) -> None:
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        stream = connection.makefile("rb")
        try:
            connection.settimeout(self._token_seconds)
            if not hmac.compare_digest(read_frame(stream, TOKEN_BYTES) or b"", self.token):
                log.warning("batch port: a connection without the token was closed")
                return
            connection.settimeout(None)  # a gateway may stay quiet between batches for long
            while (batch := read_frame(stream, MAX_FRAME)) is not None:
                try:
                    reply = self._handle(batch)
                except Exception as error:  # the shard kept nothing of the batch
                    send_frame(connection, FAILED, f"{type(error).__name__}: {error}".encode())
                else:
                    send_frame(connection, OK, reply)
        except OSError as error:  # ConnectionError included: the gateway went away
            log.info("batch port: a connection ended: %s", error)
