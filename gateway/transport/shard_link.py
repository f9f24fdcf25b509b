"""The gateway's end of a shard's batch port (reservations/shard/batch_port.py).

One connection per shard, asked for through Ray (the actor's batch_endpoint) and opened at
the first batch. Batches may follow each other on it without waiting (the shard answers
them in order), and a caller that gives up (a deadline) leaves the connection as it is:
its reply, when it comes, is dropped.

A shard that dies closes the connection; the next batch asks Ray again, and Ray holds that
ask until the shard serves again, so calls made during a restart wait for it. A batch
whose connection broke before its reply is sent again on a new connection, at most
`resends` times, as Ray re-ran an actor task whose actor died: every command is idempotent
by its id, so a batch applied twice answers as it did the first time.

With TLS configured (reservations/shard/batch_tls.py) the link speaks TLS, shows this node's
certificate and checks the shard's, and sends the token inside it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections import deque
from collections.abc import Callable
from typing import Any, Literal

from omnistock.reservations.shard import batch_tls
from omnistock.reservations.shard.batch_port import FAILED, HEADER, MAX_FRAME, OK

log = logging.getLogger(__name__)


class ShardFailed(Exception):
    """The shard refused the batch and kept none of it (e.g. its journal is down)."""


class LinkLost(Exception):
    """No reply: the connection broke `resends + 1` times. The batch may have been applied."""


class _Connection:
    """One open stream: frames out in order, replies matched to them in the same order."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._waiting: deque[asyncio.Future[bytes]] = deque()
        self.broken: BaseException | None = None
        self._replies = asyncio.get_running_loop().create_task(self._read_replies())

    @property
    def usable(self) -> bool:
        return self.broken is None and not self._writer.is_closing()

    def send(self, frame: bytes) -> asyncio.Future[bytes]:
        if not self.usable:
            raise ConnectionError(f"connection closed ({self.broken})")
        self._writer.writelines((HEADER.pack(len(frame)), frame))  # one send, no copy
        reply: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiting.append(reply)
        return reply

    def close(self, reason: BaseException | None = None) -> None:
        if self.broken is None:
            self.broken = reason or ConnectionError("closed by the gateway")
        self._replies.cancel()
        self._writer.close()
        while self._waiting:
            reply = self._waiting.popleft()
            if not reply.done():
                reply.set_exception(ConnectionError(f"connection closed ({self.broken})"))

    async def _read_replies(self) -> None:
        try:
            while True:
                (size,) = HEADER.unpack(await self._reader.readexactly(HEADER.size))
                if size > MAX_FRAME:
                    raise ConnectionError(f"frame of {size} bytes is over the limit of {MAX_FRAME}")
                frame = await self._reader.readexactly(size)
                if not self._waiting:
                    raise ConnectionError("a reply to no batch")
                reply = self._waiting.popleft()
                if not reply.done():  # else its caller gave up
                    reply.set_result(frame)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # EOF, reset, or a frame that makes no sense: the link is gone
            self.close(error)


TLS_HANDSHAKE_SECONDS = 10.0


class ShardLink:
    """`tls`: a client context, None for plain TCP, or "environment" for what
    batch_tls.settings() finds (ValueError here when it is half set)."""

    def __init__(
        self,
        index: int,
        handle: Any,
        resends: int = 3,
        on_connect: Callable[[], None] | None = None,
        tls: ssl.SSLContext | Literal["environment"] | None = "environment",
    ) -> None:
        self.index = index
        self._handle = handle
        self._resends = resends
        self._on_connect = on_connect
        self._tls = batch_tls.client_context(batch_tls.settings()) if tls == "environment" else tls
        self._connection: _Connection | None = None
        self._connecting = asyncio.Lock()
        self.connects = 0
        """Connections opened so far (more than one: the shard restarted or the link broke)."""

    async def call(self, batch: bytes) -> bytes:
        """The shard's packed reply to a packed batch. Raises ShardFailed, LinkLost, or
        Ray's error when the shard cannot be asked for its port (it is gone for good)."""
        for attempt in range(self._resends + 1):
            try:
                connection = await self._connected()
                reply = await connection.send(batch)
            except (ConnectionError, asyncio.IncompleteReadError, OSError) as error:
                log.warning("shard %d: batch link broke (%s), attempt %d", self.index, error, attempt + 1)
                continue
            if reply[:1] == OK:
                return reply[1:]
            if reply[:1] == FAILED:
                raise ShardFailed(reply[1:].decode(errors="replace"))
            connection.close(ConnectionError(f"a reply of unknown kind {reply[:1]!r}"))
            raise LinkLost(f"shard {self.index} answered a reply of unknown kind {reply[:1]!r}")
        raise LinkLost(f"shard {self.index}: the batch link broke {self._resends + 1} times")

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    async def _connected(self) -> _Connection:
        connection = self._connection
        if connection is not None and connection.usable:
            return connection
        async with self._connecting:
            if self._connection is not None and self._connection.usable:
                return self._connection  # another caller connected meanwhile
            if self._connection is not None:  # the shard closed it (it died): ask for the new port
                self._connection.close()
                self._connection = None
            host, port, token = await self._handle.batch_endpoint.remote()
            if self._tls is None:
                reader, writer = await asyncio.open_connection(host, port)
            else:
                reader, writer = await asyncio.open_connection(
                    host, port, ssl=self._tls, ssl_handshake_timeout=TLS_HANDSHAKE_SECONDS
                )
            try:
                writer.writelines((HEADER.pack(len(token)), token))
            except BaseException:
                with contextlib.suppress(Exception):
                    writer.close()
                raise
            self._connection = _Connection(reader, writer)
            self.connects += 1
            if self._on_connect is not None:
                self._on_connect()
            return self._connection
