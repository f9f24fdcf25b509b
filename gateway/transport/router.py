"""The gateway's handle on the shard actors: one batcher per shard, one call per batch."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import ray.exceptions

from omnistock.gateway.metrics import Metrics
from omnistock.gateway.transport.batcher import ShardBatcher
from omnistock.gateway.transport.shard_link import LinkLost, ShardFailed, ShardLink
from omnistock.reservations.domain.audit import AuditReport, combined
from omnistock.reservations.domain.commands import BatchCommand, Result
from omnistock.reservations.domain.errors import Unavailable
from omnistock.reservations.domain.placement import Placement
from omnistock.reservations.shard import wire
from omnistock.reservations.shard.state import Handoff, WrongShard
from omnistock.reservations.shard.wire import BatchReply

log = logging.getLogger(__name__)

AUDIT_RECHECK = 0.5
"""Seconds between an audit's two passes: far longer than a decision takes to be carried."""


MOVE_WAIT = 10.0
"""Seconds a command for a partition being moved waits for its new owner before the call is
answered UNAVAILABLE (a move takes milliseconds; this covers a mover that stopped midway)."""
MOVE_RETRY = 0.02
"""Seconds between two tries of a command its shard no longer owns, while the placement catches up."""

PlacementSource = Callable[[], Awaitable[Placement | None]]


class ShardRouter:
    """Routes commands by partition to shard actors, by the placement of partitions on shards,
    batching concurrent requests. A command sent to a shard that no longer owns its partition
    (it moved) comes back WrongShard and is sent again once the placement says where it went:
    calls to a moving partition wait, they are not refused."""

    def __init__(
        self,
        handles: Sequence[Any],
        partitions: int,
        metrics: Metrics,
        call_timeout: float = 30.0,
        placement: Placement | None = None,
        fetch_placement: PlacementSource | None = None,
        find_shard: Callable[[int], Any] | None = None,
        write_unit: Callable[[int], int] = lambda partition: 0,
    ) -> None:
        self.partitions = partitions
        self.placement = placement or Placement.even(partitions, len(handles))
        self._fetch_placement = fetch_placement
        """Reads the stored placement (None: routing never changes, as in unit tests)."""
        self._find_shard = find_shard
        """The handle of shard i, looked up by name (blocking: run in a thread)."""
        self.write_unit = write_unit
        """Which partitions a shard journals atomically together (see colocated)."""
        self._refreshing = asyncio.Lock()
        self._refreshed = 0.0
        self.on_resize: list[Callable[[list[Any]], None]] = []
        """Told the new list of shard handles when shards are added or removed."""
        self._call_timeout = call_timeout
        self.on_changes: Callable[[int, BatchReply], None] | None = None
        """Told (shard, reply) after every batch, so the view takes or fetches what is new."""
        self.on_handoffs: Callable[[list[Handoff]], None] | None = None
        """Told the decisions a shard handed out with a reply (gateway/usecases/courier.py)."""
        self._metrics = metrics
        self.handles: list[Any] = []
        self._last_reply: list[float] = []
        self.links: list[ShardLink] = []
        self._calls: list[Callable[[list[BatchCommand]], Awaitable[list[Result]]]] = []
        self._batchers: list[ShardBatcher[BatchCommand, Result]] = []
        self._add(handles)

    def _add(self, handles: Sequence[Any]) -> None:
        for handle in handles:
            index = len(self.handles)
            link = ShardLink(
                index, handle, on_connect=self._metrics.shard_link_connects.labels(shard=str(index)).inc
            )
            self.handles.append(handle)
            self._last_reply.append(0.0)
            self.links.append(link)
            self._calls.append(self._caller(link))
            self._batchers.append(ShardBatcher(self._calls[-1]))

    def resize(self, handles: Sequence[Any]) -> None:
        """Shards added (`handles` longer than now: the new ones are appended) or removed (the
        last ones dropped, once they own nothing). Tells on_resize."""
        count = len(handles)
        if count > len(self.handles):
            self._add(handles[len(self.handles) :])
        elif count < len(self.handles):
            for link in self.links[count:]:
                link.close()
            del self.handles[count:], self._last_reply[count:], self.links[count:]
            del self._calls[count:], self._batchers[count:]
        for listener in self.on_resize:
            listener(list(self.handles))

    def use(self, placement: Placement) -> bool:
        """Route by this placement from now on, if it is newer than the one in use."""
        if placement.version <= self.placement.version or placement.partitions != self.partitions:
            return False
        self.placement = placement
        return True

    async def refresh(self) -> bool:
        """Read the stored placement and route by it if newer, looking up shards added (and
        dropping shards removed); whether routing changed. Calls that wait on a move share
        one read every MOVE_RETRY seconds."""
        if self._fetch_placement is None:
            return False
        async with self._refreshing:
            if time.monotonic() - self._refreshed < MOVE_RETRY:
                return False
            self._refreshed = time.monotonic()
            try:
                stored = await self._fetch_placement()
                if stored is None or stored.version <= self.placement.version:
                    return False
                count = len(self.handles)
                if stored.shards > count and self._find_shard is not None:
                    found = await asyncio.gather(
                        *(asyncio.to_thread(self._find_shard, i) for i in range(count, stored.shards))
                    )
                    self.resize([*self.handles, *found])
            except Exception as error:  # Redis or Ray away: keep routing as now, the shards answer
                log.info("placement could not be followed: %s", error)
                return False
            if stored.shards > len(self.handles):
                return False  # its shards are not found yet
            changed = self.use(stored)
            if stored.shards < len(self.handles):
                self.resize(self.handles[: stored.shards])
            return changed

    @property
    def queued(self) -> int:
        return sum(batcher.queued for batcher in self._batchers)

    def queue_depths(self) -> list[Callable[[], int]]:
        """Per shard, how many commands wait for its next call (read when metrics are scraped)."""

        def depth(batcher: ShardBatcher[BatchCommand, Result]) -> Callable[[], int]:
            return lambda: batcher.queued

        return [depth(batcher) for batcher in self._batchers]

    def close(self) -> None:
        for link in self.links:
            link.close()

    def colocated(self, partitions: Sequence[int]) -> bool:
        """Whether one shard owns all these partitions and journals them in one atomic write
        (`write_unit`: on Redis Cluster, only a journal group's partitions are)."""
        placement, unit = self.placement, self.write_unit
        return len({(placement.shard_of(p), unit(p)) for p in partitions}) <= 1

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

        async def call(batch: list[BatchCommand]) -> list[Result]:
            started = time.perf_counter()
            try:
                async with asyncio.timeout(self._call_timeout):
                    packed = await link.call(wire.pack(batch))
                reply: BatchReply = wire.unpack(packed)
            except (ShardFailed, LinkLost, ray.exceptions.RayError, TimeoutError) as error:
                # The outcome is unknown (it may have been applied); a retry with the same ids is safe.
                self._metrics.shard_errors.labels(shard=str(index)).inc()
                log.info("shard %d failed a batch: %s: %s", index, type(error).__name__, error)
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
            # WrongShard results go back to execute, which sends them where they moved.
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
            shares = await asyncio.gather(*(handle.audit.remote() for handle in self.handles))
        except ray.exceptions.RayError as error:
            raise Unavailable(f"a shard could not run the audit ({type(error).__name__}); retry") from error
        return combined(shares)

    async def execute(self, commands: Sequence[BatchCommand]) -> list[Result]:
        """Results in the order of `commands`; one batcher submission per shard touched.
        Commands whose partition moved are sent again to its new owner (MOVE_WAIT at most)."""
        results = await self._send(commands)
        waited_until = time.monotonic() + MOVE_WAIT
        while True:
            moved = [i for i, result in enumerate(results) if isinstance(result, WrongShard)]
            if not moved:
                return results
            if time.monotonic() >= waited_until:
                partitions = sorted({commands[i].partition for i in moved})
                raise Unavailable(f"partitions {partitions} are moving between shards; retry")
            if not await self.refresh():
                await asyncio.sleep(MOVE_RETRY)
            again = await self._send([commands[i] for i in moved])
            for i, result in zip(moved, again, strict=True):
                results[i] = result

    async def execute_once(self, commands: Sequence[BatchCommand]) -> list[Result]:
        """As execute, but a command whose partition moved comes back WrongShard (its
        reservation's later commands in `commands` too, not applied): for commands that
        must be applied together or not at all (a colocated Reserve)."""
        return await self._send(commands)

    async def _send(self, commands: Sequence[BatchCommand]) -> list[Result]:
        placement = self.placement
        by_shard: dict[int, list[int]] = {}
        for position, command in enumerate(commands):
            by_shard.setdefault(placement.shard_of(command.partition), []).append(position)
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
