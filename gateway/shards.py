"""The gateway's handle on the shard actors: one batcher per shard, one call per batch."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import Any

import ray.exceptions

from gateway.batcher import ShardBatcher
from gateway.metrics import Metrics
from gateway.routing import shard_of
from gateway.shard_link import LinkLost, ShardFailed, ShardLink
from reservations import wire
from reservations.actor import BatchReply
from reservations.commands import Command, Result
from reservations.errors import Unavailable
from reservations.shard import WrongShard


class ShardRouter:
    """Routes commands by partition to shard actors, batching concurrent requests."""

    def __init__(
        self, handles: Sequence[Any], partitions: int, metrics: Metrics, call_timeout: float = 30.0
    ) -> None:
        self.partitions = partitions
        self._call_timeout = call_timeout
        self.on_changes: Callable[[int, BatchReply], None] | None = None
        """Told (shard, reply) after every batch, so the view takes or fetches what is new."""
        self.handles = list(handles)
        self._metrics = metrics
        self.links = [
            ShardLink(index, handle, on_connect=metrics.shard_link_connects.labels(shard=str(index)).inc)
            for index, handle in enumerate(self.handles)
        ]
        self._batchers: list[ShardBatcher[Command, Result]] = [
            ShardBatcher(self._caller(link)) for link in self.links
        ]

    @property
    def queued(self) -> int:
        return sum(batcher.queued for batcher in self._batchers)

    def queue_depths(self) -> list[Callable[[], int]]:
        """Per shard, how many commands wait for its next call (read when metrics are scraped)."""

        def depth(batcher: ShardBatcher[Command, Result]) -> Callable[[], int]:
            return lambda: batcher.queued

        return [depth(batcher) for batcher in self._batchers]

    def close(self) -> None:
        for link in self.links:
            link.close()

    def _caller(self, link: ShardLink):  # type: ignore[no-untyped-def]
        index = link.index

        async def call(batch: list[Command]) -> list[Result]:
            started = time.perf_counter()
            try:
                async with asyncio.timeout(self._call_timeout):
                    packed = await link.call(wire.pack(batch))
                reply: BatchReply = wire.unpack(packed)
            except (ShardFailed, LinkLost, ray.exceptions.RayError, TimeoutError) as error:
                # The outcome is unknown (it may have been applied); a retry with the same ids is safe.
                self._metrics.shard_errors.labels(shard=str(index)).inc()
                raise Unavailable(
                    f"shard {index} failed the batch ({type(error).__name__}); retry"
                ) from error
            self._metrics.observe_batch(index, len(batch), reply, time.perf_counter() - started)
            if self.on_changes is not None:
                self.on_changes(index, reply)
            if any(isinstance(result, WrongShard) for result in reply.results):
                raise Unavailable(f"shard {index} does not own a partition it was sent; retry")
            return reply.results  # type: ignore[return-value]

        return call

    async def check(self) -> list[str]:
        """Conservation check of every shard (outside the batchers: it is rare and reads all)."""
        try:
            reports = await asyncio.gather(*(handle.check.remote() for handle in self.handles))
        except ray.exceptions.RayError as error:
            raise Unavailable(f"a shard could not run the check ({type(error).__name__}); retry") from error
        return [problem for report in reports for problem in report]

    async def execute(self, commands: Sequence[Command]) -> list[Result]:
        """Results in the order of `commands`; one batcher submission per shard touched."""
        shards = len(self._batchers)
        by_shard: dict[int, list[int]] = {}
        for position, command in enumerate(commands):
            by_shard.setdefault(shard_of(command.partition, shards), []).append(position)
        if len(by_shard) == 1:  # all on one shard (always, with one): no gather, no reordering
            (shard,) = by_shard
            return await self._batchers[shard].submit(commands)
        replies = await asyncio.gather(
            *(
                self._batchers[shard].submit([commands[i] for i in positions])
                for shard, positions in by_shard.items()
            )
        )
        results: list[Result | None] = [None] * len(commands)
        for positions, shard_results in zip(by_shard.values(), replies, strict=True):
            for position, result in zip(positions, shard_results, strict=True):
                results[position] = result
        return results  # type: ignore[return-value]
