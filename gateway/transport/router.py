"""The gateway's handle on the shard actors: one batcher per shard, one call per batch."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import ray.exceptions

from omnistock.gateway.metrics import Metrics
from omnistock.gateway.transport.batcher import ShardBatcher
from omnistock.gateway.transport.shard_link import LinkLost, ShardFailed, ShardLink
from omnistock.reservations.domain.audit import AuditReport, disagreements
from omnistock.reservations.domain.commands import Command, Result
from omnistock.reservations.domain.errors import Unavailable
from omnistock.reservations.domain.placement import shard_of
from omnistock.reservations.shard import wire
from omnistock.reservations.shard.state import Handoff, WrongShard
from omnistock.reservations.shard.wire import BatchReply

AUDIT_RECHECK = 0.5
"""Seconds between an audit's two passes: far longer than a decision takes to be carried."""


class ShardRouter:
    """Routes commands by partition to shard actors, batching concurrent requests."""

    def __init__(
        self, handles: Sequence[Any], partitions: int, metrics: Metrics, call_timeout: float = 30.0
    ) -> None:
        self.partitions = partitions
        self._call_timeout = call_timeout
        self.on_changes: Callable[[int, BatchReply], None] | None = None
        """Told (shard, reply) after every batch, so the view takes or fetches what is new."""
        self.on_handoffs: Callable[[list[Handoff]], None] | None = None
        """Told the decisions a shard handed out with a reply (gateway/usecases/courier.py)."""
        self.handles = list(handles)
        self._last_reply = [0.0] * len(self.handles)
        self._metrics = metrics
        self.links = [
            ShardLink(index, handle, on_connect=metrics.shard_link_connects.labels(shard=str(index)).inc)
            for index, handle in enumerate(self.handles)
        ]
        self._calls = [self._caller(link) for link in self.links]
        self._batchers: list[ShardBatcher[Command, Result]] = [ShardBatcher(call) for call in self._calls]

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

    def colocated(self, partitions: Sequence[int]) -> bool:
        """Whether one shard owns all these partitions."""
        shards = len(self._batchers)
        return len({shard_of(p, shards) for p in partitions}) <= 1

    def last_reply(self, shard: int) -> float:
        """When (time.monotonic) the shard last answered a batch."""
        return self._last_reply[shard]

    def pollers(self) -> list[Callable[[], Awaitable[None]]]:
        """Per shard, a call with an empty batch: it runs the shard's timer and brings back
        what the shard hands out."""

        def poller(shard: int) -> Callable[[], Awaitable[None]]:
            async def poll() -> None:
                await self._calls[shard]([])

            return poll

        return [poller(shard) for shard in range(len(self._calls))]

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
            self._last_reply[index] = time.monotonic()
            if batch:
                self._metrics.observe_batch(index, len(batch), reply, time.perf_counter() - started)
            if self.on_changes is not None:
                self.on_changes(index, reply)
            if reply.handoffs and self.on_handoffs is not None:
                self.on_handoffs(reply.handoffs)
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

    async def audit(self, recheck_after: float = AUDIT_RECHECK) -> AuditReport:
        """Reservations whose parts disagree with their home (reservations/domain/audit.py), across
        every shard. Shards are read one after another, so a decision carried meanwhile can
        look like a disagreement: what a first pass finds counts only if a second pass, a
        moment later, finds it again."""
        first = await self._audit_once()
        if not first.disagreements:
            return first
        await asyncio.sleep(recheck_after)
        second = await self._audit_once()
        seen = {(d.reservation_id, d.problem) for d in first.disagreements}
        confirmed = [d for d in second.disagreements if (d.reservation_id, d.problem) in seen]
        return AuditReport(confirmed, second.in_doubt, second.reservations)

    async def _audit_once(self) -> AuditReport:
        try:
            rows = await asyncio.gather(*(handle.audit.remote() for handle in self.handles))
        except ray.exceptions.RayError as error:
            raise Unavailable(f"a shard could not run the audit ({type(error).__name__}); retry") from error
        return disagreements(
            [record for records, _ in rows for record in records],
            [part for _, parts in rows for part in parts],
        )

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
