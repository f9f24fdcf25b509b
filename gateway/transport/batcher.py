"""Micro-batching: concurrent requests for one shard become one call (a batch).

While a call to the shard is in flight, new commands queue up; when it returns,
everything queued goes out as the next call. Under no load a command leaves at
once; under load batches grow by themselves, with no timer to tune. One call in
flight per shard is the default: the shard applies one batch at a time anyway, and
fewer, larger calls cost less than two in flight (see docs/performance.md).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

C = TypeVar("C")
R = TypeVar("R")

BatchCall = Callable[[list[C]], Awaitable[list[R]]]


class ShardBatcher(Generic[C, R]):
    def __init__(self, call: BatchCall[C, R], max_batch: int = 2_000, max_in_flight: int = 1) -> None:
        self._call = call
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._queue: deque[tuple[Sequence[C], asyncio.Future[list[R]]]] = deque()
        self._queued = 0
        self._in_flight = 0

    @property
    def queued(self) -> int:
        """Commands waiting for a call."""
        return self._queued

    async def submit(self, commands: Sequence[C]) -> list[R]:
        """Results of `commands`, in order; they travel together in one call."""
        future: asyncio.Future[list[R]] = asyncio.get_running_loop().create_future()
        self._queue.append((commands, future))
        self._queued += len(commands)
        self._kick()
        return await future

    def _kick(self) -> None:
        while self._queue and self._in_flight < self._max_in_flight:
            taken: list[tuple[Sequence[C], asyncio.Future[list[R]]]] = []
            size = 0
            while self._queue and (not taken or size + len(self._queue[0][0]) <= self._max_batch):
                commands, future = self._queue.popleft()
                taken.append((commands, future))
                size += len(commands)
            self._queued -= size
            self._in_flight += 1
            asyncio.get_running_loop().create_task(self._send(taken))

    async def _send(self, taken: list[tuple[Sequence[C], asyncio.Future[list[R]]]]) -> None:
        batch = [command for commands, _ in taken for command in commands]
        try:
            results = await self._call(batch)
        except BaseException as error:  # every waiter learns the call failed
            for _, future in taken:
                if not future.done():
                    future.set_exception(error)
            if not isinstance(error, Exception):
                raise
        else:
            offset = 0
            for commands, future in taken:
                if not future.done():
                    future.set_result(results[offset : offset + len(commands)])
                offset += len(commands)
        finally:
            self._in_flight -= 1
            self._kick()
