"""Polls every shard's `stats()` so the gateway's one registry carries what happens inside the
shards: units held, hold ages, expiry lag, stock-outs, journal failures, recoveries, restarts.

Polling (instead of an exporter per actor) keeps every series in the gateway, so a shard
that restarts loses none; a new incarnation id in the answer is the restart.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import ray.exceptions

from omnistock.gateway.metrics import Metrics
from omnistock.reservations.domain.stats import ShardStats

log = logging.getLogger(__name__)


class ShardStatsPoller:
    def __init__(
        self, handles: Sequence[Any], metrics: Metrics, interval: float = 1.0, timeout: float = 10.0
    ) -> None:
        self._handles = list(handles)
        self._metrics = metrics
        self._interval = interval
        self._timeout = timeout
        self._incarnations: list[str | None] = [None] * len(self._handles)

    def resize(self, handles: Sequence[Any]) -> None:
        """Follow the router's shards (ShardRouter.on_resize)."""
        self._handles = list(handles)
        self._incarnations = (self._incarnations + [None] * len(handles))[: len(handles)]

    async def _ask(self, handle: Any) -> ShardStats | None:
        try:
            async with asyncio.timeout(self._timeout):
                stats: ShardStats = await handle.stats.remote()
                return stats
        except (ray.exceptions.RayError, TimeoutError) as error:  # restarting or gone: shard_up says so
            log.debug("shard stats failed: %s", error)
            return None

    async def poll_once(self) -> None:
        handles = self._handles
        answers = await asyncio.gather(*(self._ask(handle) for handle in handles))
        if handles is not self._handles:
            return  # resized meanwhile
        for shard, stats in enumerate(answers):
            known = self._incarnations[shard]
            restarted = stats is not None and known is not None and stats.incarnation != known
            self._metrics.observe_shard_stats(shard, stats, restarted)
            if stats is not None:
                self._incarnations[shard] = stats.incarnation

    async def run(self) -> None:
        """Poll until cancelled."""
        while True:
            try:
                await self.poll_once()
            except Exception:  # a gap in the metrics, never a dead poller
                log.exception("shard stats poll failed")
            await asyncio.sleep(self._interval)
