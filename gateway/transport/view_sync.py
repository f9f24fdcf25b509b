"""Keeps the gateway's NetworkView fresh: from the positions each batch reply carries, and a
`changes_since` call per shard when the view missed some (another gateway, the expiry timer)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import ray.exceptions

from omnistock.availability.view import NetworkView
from omnistock.gateway.metrics import Metrics
from omnistock.reservations.shard import wire
from omnistock.reservations.shard.state import Changes
from omnistock.reservations.shard.wire import BatchReply

log = logging.getLogger(__name__)

SETTLE_AFTER_SKUS = 2_000
"""SKUs built anew in the view since the heap was last settled from which it is settled
again: a catalog loaded while serving is then left out of every later full collection
(each SKU's columns are four tracked objects; 200,000 SKUs would otherwise be scanned by
every one of them, stalling each call in flight)."""
SETTLE_INTERVAL = 5.0
"""Seconds between two settles at least, so that a long load settles a few times, not
after each of its batches."""


class ViewSync:
    """Fetches a shard's changes as soon as a batch reply says it has some, and every
    `heartbeat` seconds regardless (the expiry timer and other gateways change shards too).
    While a fetch is in flight, further news waits for the next one: fetches batch
    themselves under load and cost nothing when idle."""

    def __init__(
        self,
        view: NetworkView,
        handles: Sequence[Any],
        metrics: Metrics,
        heartbeat: float = 0.25,
        on_change: Callable[[set[str]], None] | None = None,
        min_interval: float = 0.01,
        settle: Callable[[], None] | None = None,
        settle_after_skus: int = SETTLE_AFTER_SKUS,
        settle_interval: float = SETTLE_INTERVAL,
    ) -> None:
        self.view = view
        self._handles = list(handles)
        self._metrics = metrics
        self._heartbeat = heartbeat
        # Under load, news arrives with every batch; fetching at most this often keeps the
        # view's calls a small share of the shards' work.
        self._min_interval = min_interval
        self._on_change = on_change
        # Called from the sync loop once the view has grown: gateway.service passes
        # reservations.actor.settle_heap.
        self._settle = settle
        self._settle_after_skus = settle_after_skus
        self._settle_interval = settle_interval
        self._settled_skus = view.skus_built
        self._settled_at = time.monotonic()
        self._dirty: set[int] = set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def resize(self, handles: Sequence[Any]) -> None:
        """Follow the router's shards (ShardRouter.on_resize); a new shard is synced at once."""
        added = range(len(self._handles), len(handles))
        self._handles = list(handles)
        self.view.resize(len(handles))
        self._dirty = {shard for shard in self._dirty if shard < len(handles)} | set(added)
        if added:
            self._wake.set()

    def note(self, shard: int, reply: BatchReply) -> None:
        """A batch reply's news: take the positions it carries when they follow on from
        the view (the usual case: no call of its own), else fetch what the shard has."""
        if shard >= len(self.view.cursors):
            return  # a shard just removed
        cursor = self.view.cursors[shard]
        epoch, version = reply.changes
        if epoch == cursor.epoch and reply.since == cursor.version < version:
            changed = self.view.apply(shard, epoch, version, reply.changed, time.time(), reply.changed_loaded)
            self._metrics.view_version.set(self.view.version)
            if changed and self._on_change is not None:
                self._on_change(changed)
        elif epoch != cursor.epoch or version > cursor.version:
            self._dirty.add(shard)
            self._wake.set()

    async def sync_once(self, shards: Iterable[int] | None = None) -> None:
        count = len(self._handles)
        chosen = sorted(s for s in shards if s < count) if shards is not None else list(range(count))
        asked_at = time.time()
        replies = await asyncio.gather(
            *(
                self._handles[i].changes_since_packed.remote(
                    self.view.cursors[i].epoch, self.view.cursors[i].version
                )
                for i in chosen
            ),
            return_exceptions=True,
        )
        changed: set[str] = set()
        for shard, reply in zip(chosen, replies, strict=True):
            if isinstance(reply, bytes):
                changes = wire.unpack(reply)
                assert isinstance(changes, Changes)
                changed |= self.view.apply(
                    shard, changes.epoch, changes.version, changes.rows, asked_at, changes.loaded
                )
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
        last_full = time.monotonic()
        while True:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation
            # that arrives as the event is set, and this loop would go on forever (a service
            # stop that hangs).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, self._heartbeat - (time.monotonic() - last_full))):
                    await self._wake.wait()
            self._wake.clear()
            full = time.monotonic() - last_full >= self._heartbeat
            shards, self._dirty = (None if full else self._dirty), set()
            if full:
                last_full = time.monotonic()
            try:
                await self.sync_once(shards)
            except Exception:  # keep the view alive; the staleness metric shows the gap
                log.exception("view sync failed")
            self.settle_if_grown()
            await asyncio.sleep(self._min_interval)

    def settle_if_grown(self) -> bool:
        """Settle the heap once the view has built `settle_after_skus` SKUs since the last
        time and `settle_interval` seconds have passed; returns whether it did."""
        if self._settle is None or self.view.skus_built - self._settled_skus < self._settle_after_skus:
            return False
        if time.monotonic() - self._settled_at < self._settle_interval:
            return False
        self._settle()
        self._settled_skus, self._settled_at = self.view.skus_built, time.monotonic()
        return True
