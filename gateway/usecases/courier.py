"""The courier: carries to other shards' parts the decisions a shard hands out.

A home decides an expiry or a timeout on its own, a restarted shard finds decisions its
journal says were not carried everywhere, and a gateway may die between a decision and its
last step. The shard hands such a decision to whichever gateway calls it next (in the
batch's reply) and again after a lease if no one finished it. Every gateway runs a courier,
which carries what it is handed and, so that a quiet shard is heard too, calls every shard
that has had no batch for a moment.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from omnistock.gateway.metrics import Metrics
from omnistock.gateway.usecases.reservations import ReservationCoordinator
from omnistock.reservations.domain.errors import Unavailable
from omnistock.reservations.shard.state import Handoff

log = logging.getLogger(__name__)

POLL_SECONDS = 0.05
"""How long a shard may go without a batch before the courier calls it for its handoffs:
the most an expiry waits for its steps to other shards when the service is quiet."""
STOP_SECONDS = 2.0
"""How long a stopping gateway lets what it carries finish."""
MAX_CARRYING = 64
"""Handoffs carried at once; more wait (the shard hands out again what waits too long)."""


class Courier:
    def __init__(
        self,
        coordinator: ReservationCoordinator,
        poll: Sequence[Callable[[], Awaitable[None]]],
        last_reply: Callable[[int], float],
        metrics: Metrics,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self._coordinator = coordinator
        self._poll = list(poll)
        self._last_reply = last_reply
        self._metrics = metrics
        self._poll_seconds = poll_seconds
        self._slots = asyncio.Semaphore(MAX_CARRYING)
        self._carrying: set[asyncio.Task[None]] = set()
        self._tasks: list[asyncio.Task[None]] = []

    def take(self, handoffs: Sequence[Handoff]) -> None:
        """Carry these (told after every batch whose reply had some)."""
        for handoff in handoffs:
            task = asyncio.ensure_future(self._carry(handoff))
            self._carrying.add(task)
            task.add_done_callback(self._carrying.discard)

    async def _carry(self, handoff: Handoff) -> None:
        async with self._slots:
            try:
                await self._coordinator.finish(handoff.home, handoff.reservation_id, handoff.intent)
            except Unavailable as error:  # handed out again after its lease
                log.info(
                    "carrying %s of %s failed: %s", handoff.intent.operation, handoff.reservation_id, error
                )
                return
        self._metrics.handoffs_carried.inc()

    def start(self) -> None:
        self._tasks = [asyncio.ensure_future(self._keep_polling(shard)) for shard in range(len(self._poll))]

    def resize(self, poll: Sequence[Callable[[], Awaitable[None]]]) -> None:
        """Poll these shards from now on (shards were added or removed)."""
        for task in self._tasks[len(poll) :]:
            task.cancel()
        del self._tasks[len(poll) :]
        self._poll = list(poll)
        self._tasks.extend(
            asyncio.ensure_future(self._keep_polling(shard)) for shard in range(len(self._tasks), len(poll))
        )

    async def _keep_polling(self, shard: int) -> None:
        while True:
            quiet = time.monotonic() - self._last_reply(shard)
            if quiet < self._poll_seconds:
                await asyncio.sleep(self._poll_seconds - quiet)
                continue
            try:
                await self._poll[shard]()
            except Unavailable:
                await asyncio.sleep(self._poll_seconds * 10)  # a shard restarting: its stats tell
            except Exception:
                log.exception("calling shard %d for its handoffs", shard)
                await asyncio.sleep(1.0)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        # What is being carried may finish (briefly): a step cut here is carried by another
        # gateway once its lease runs out.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(STOP_SECONDS):
                await asyncio.gather(*self._carrying, return_exceptions=True)
                await self._coordinator.settled()
        for task in self._carrying:
            task.cancel()
