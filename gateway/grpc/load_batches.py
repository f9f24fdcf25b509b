"""A LoadStock stream's chunks, gathered into batches for the shards.

A catalog spreads over every partition, and each partition's command costs about as much
to pass on as a few hundred levels, so several chunks travel as one batch. Up to
`most_in_flight` batches apply at once, which keeps the shards busy while the next chunks
arrive; they may apply in any order (for one position the newest as_of wins).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from omnistock.reservations.domain.model import LevelColumns

LOAD_BATCH_LEVELS = 50_000
"""Levels gathered before they go to the shards as one batch."""
LOAD_GATHER_SECONDS = 0.05
"""The longest a gathered chunk waits for more: a slow stream's counts still apply at once."""
LOAD_BATCHES_IN_FLIGHT = 2

ApplyLevels = Callable[[LevelColumns], Coroutine[Any, Any, tuple[int, int]]]
"""Applies a batch; returns (applied, stale)."""


class LoadBatches:
    def __init__(
        self,
        apply: ApplyLevels,
        batch_levels: int = LOAD_BATCH_LEVELS,
        gather_seconds: float = LOAD_GATHER_SECONDS,
        most_in_flight: int = LOAD_BATCHES_IN_FLIGHT,
    ) -> None:
        self._apply = apply
        self._batch_levels = batch_levels
        self._gather_seconds = gather_seconds
        self._most_in_flight = most_in_flight
        self._gathered: list[LevelColumns] = []
        self._gathered_levels = 0
        # One set for the whole stream, changed in place: a batch the timer sends while a
        # wait is under way joins it and is waited for (and counted) too.
        self._in_flight: set[asyncio.Task[tuple[int, int]]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self.received = 0
        self.applied = 0
        self.stale = 0

    async def add(self, levels: LevelColumns) -> None:
        """Take a chunk; waits while `most_in_flight` batches are applying."""
        self._gathered.append(levels)
        self._gathered_levels += len(levels)
        self.received += len(levels)
        if self._gathered_levels >= self._batch_levels:
            self._send()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._gather_seconds, self._send)
        while len(self._in_flight) >= self._most_in_flight:
            await self._collect(asyncio.FIRST_COMPLETED)

    async def finish(self) -> None:
        """Send what is gathered; returns once every batch has applied."""
        self._send()
        while self._in_flight:
            await self._collect(asyncio.ALL_COMPLETED)

    def cancel(self) -> None:
        """The stream failed: send nothing more, stop waiting for what is in flight."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for task in self._in_flight:
            task.cancel()

    def _send(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._gathered:
            batch = LevelColumns.join(self._gathered)
            self._gathered, self._gathered_levels = [], 0
            self._in_flight.add(asyncio.get_running_loop().create_task(self._apply(batch)))

    async def _collect(self, return_when: str) -> None:
        done, _ = await asyncio.wait(set(self._in_flight), return_when=return_when)
        self._in_flight -= done
        for task in done:
            applied, stale = task.result()
            self.applied += applied
            self.stale += stale
