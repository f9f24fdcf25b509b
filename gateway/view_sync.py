"""Keeps the gateway's NetworkView fresh: one `changes_since` call per shard per tick."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import ray.exceptions

from availability.view import NetworkView
from gateway.metrics import Metrics
from reservations.shard import Changes

log = logging.getLogger(__name__)


class ViewSync:
    def __init__(
        self,
        view: NetworkView,
        handles: Sequence[Any],
        metrics: Metrics,
        interval: float = 0.02,
        on_change: Callable[[set[str]], None] | None = None,
    ) -> None:
        self.view = view
        self._handles = list(handles)
        self._metrics = metrics
        self._interval = interval
        self._on_change = on_change
        self._task: asyncio.Task[None] | None = None

    async def sync_once(self) -> None:
        asked_at = time.time()
        replies = await asyncio.gather(
            *(
                handle.changes_since.remote(cursor.epoch, cursor.version)
                for handle, cursor in zip(self._handles, self.view.cursors, strict=True)
            ),
            return_exceptions=True,
        )
        changed: set[str] = set()
        for shard, reply in enumerate(replies):
            if isinstance(reply, Changes):
                changed |= self.view.apply(shard, reply.epoch, reply.version, reply.positions, asked_at)
            elif isinstance(reply, ray.exceptions.RayError):
                log.debug("view sync of shard %d failed: %s", shard, reply)
            elif isinstance(reply, BaseException):
                raise reply
        self._metrics.view_staleness.set(max(0.0, time.time() - self.view.as_of))
        self._metrics.view_version.set(self.view.version)
        if changed and self._on_change is not None:
            self._on_change(changed)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            started = time.perf_counter()
            try:
                await self.sync_once()
            except Exception:  # keep the view alive; the staleness metric shows the gap
                log.exception("view sync failed")
            await asyncio.sleep(max(0.0, self._interval - (time.perf_counter() - started)))
