"""A shard's partitions and how it applies a batch of commands (pure)."""

from __future__ import annotations

import heapq
import math
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from reservations.commands import Command, Result
from reservations.model import (
    Event,
    LoadedBlock,
    PartChanged,
    PartState,
    PositionRow,
    PositionView,
    loaded_rows,
    position_row,
)
from reservations.partition import Partition


@dataclass(frozen=True, slots=True)
class WrongShard:
    """The command's partition is not owned by this shard (routing out of date)."""

    partition: int


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    results: list[Result | WrongShard]
    events: dict[int, list[Event]]
    """Events per partition, to be journaled before anyone sees the results."""
    expired: int
    """Holds expired while applying this batch."""


def count_expired(events: dict[int, list[Event]]) -> int:
    return sum(
        1
        for partition_events in events.values()
        for event in partition_events
        if isinstance(event, PartChanged) and event.state is PartState.EXPIRED
    )


@dataclass(frozen=True, slots=True)
class Changes:
    """Positions changed after a version, for the gateway's network view."""

    epoch: str
    """Identity of this incarnation of the shard; a new one means "resync from zero"."""
    version: int
    rows: list[PositionRow]
    loaded: list[LoadedBlock] = field(default_factory=list)
    """SKUs whose loaded counts all changed (a load, a resync): their loaded positions as one
    block each; their other positions are in `rows`."""

    @property
    def positions(self) -> list[PositionView]:
        """Every changed position (rows, then blocks), one PositionView each."""
        views = [PositionView._make(row) for row in self.rows]
        for block in self.loaded:
            views.extend(map(PositionView._make, loaded_rows(block)))
        return views


class SkuChanges:
    """When a SKU's positions last changed in the feed: all of them at `all_since`, and the
    nodes changed one by one after that (holds, adjustments) with their versions."""

    __slots__ = ("all_since", "nodes", "partition", "version")

    def __init__(self, version: int, partition: int, all_since: int = 0) -> None:
        self.version = version
        self.partition = partition
        self.all_since = all_since
        self.nodes: dict[str, int] | None = None

    def note(self, version: int, nodes: set[str], node_count: int) -> None:
        self.version = version
        if len(nodes) >= node_count:  # a load of the whole SKU: what came before is covered
            self.all_since, self.nodes = version, None
            return
        if self.nodes is None:
            self.nodes = {}
        for node_id in nodes:
            self.nodes[node_id] = version

    def nodes_after(self, since: int) -> list[str]:
        return sorted(n for n, version in (self.nodes or {}).items() if version > since)


class ShardState:
    """The partitions one shard owns, and a feed of the positions that changed."""

    def __init__(self, partitions: Iterable[Partition], expiry_grace: float, epoch: str = "") -> None:
        self.partitions = {partition.number: partition for partition in partitions}
        self.expiry_grace = expiry_grace
        self.epoch = epoch
        self.version = 1
        # sku -> SkuChanges, oldest change first. Kept by SKU, not by position, so a loaded
        # catalog of millions costs one entry per SKU.
        self._changed: OrderedDict[str, SkuChanges] = OrderedDict()
        for number, partition in self.partitions.items():
            partition.touched.clear()
            for sku in partition.skus():
                self._changed[sku] = SkuChanges(self.version, number, self.version)
        # When each partition's next hold is due: (expires_at, number), earliest first. A
        # batch then looks at the partitions with something due, not at every partition.
        # An entry may be early (its hold was settled or extended: expiring finds nothing
        # and schedules the next); none is ever late, since a hold only comes with a command
        # of apply_batch, which schedules its partition.
        self._agenda: list[tuple[float, int]] = []
        self._scheduled: dict[int, float] = {}
        for number in self.partitions:
            self._schedule(number)

    def _schedule(self, number: int) -> None:
        due = self.partitions[number].next_expiry()
        if due is not None and due < self._scheduled.get(number, math.inf):
            self._scheduled[number] = due
            heapq.heappush(self._agenda, (due, number))

    def _note_changes(self, numbers: Iterable[int] | None = None) -> None:
        """Put what the partitions touched on the feed: those numbered, or all of them."""
        if numbers is None:
            touched = [(n, p) for n, p in self.partitions.items() if p.touched]
        else:
            touched = [(n, p) for n in numbers if (p := self.partitions[n]).touched]
        if not touched:
            return
        self.version += 1
        version, changed = self.version, self._changed
        for number, partition in touched:
            for sku, nodes in partition.touched.items():
                entry = changed.pop(sku, None) or SkuChanges(version, number)
                entry.note(version, nodes, partition.node_count(sku))
                changed[sku] = entry
            partition.touched = {}

    def object_rows(self) -> Iterator[PositionRow]:
        """Rows of the positions that are more than a loaded count: the only ones that can
        hold units or be sold out (a loaded count with units on hand has them to sell)."""
        for partition in self.partitions.values():
            for sku, nodes in partition.positions.items():
                for node_id, position in nodes.items():
                    yield position_row(sku, node_id, position)

    def changes_since(self, epoch: str, version: int) -> Changes:
        """Every position changed after `version` (all of them for another epoch)."""
        self._note_changes()
        since = version if epoch == self.epoch else 0
        if since == self.version:
            return Changes(self.epoch, self.version, [])
        rows: list[PositionRow] = []
        loaded: list[LoadedBlock] = []
        for sku, entry in reversed(self._changed.items()):
            if entry.version <= since:
                break
            partition = self.partitions[entry.partition]
            if entry.all_since > since:
                rows.extend(partition.object_rows(sku))
                block = partition.loaded.block(sku)
                if block is not None:
                    loaded.append(block)
            else:
                rows.extend(partition.rows_of(sku, entry.nodes_after(since)))
        return Changes(self.epoch, self.version, rows, loaded)

    def expire_due(self, now: float) -> dict[int, list[Event]]:
        """Expire every hold `expiry_grace` seconds past its expiry; the events by partition."""
        events: dict[int, list[Event]] = {}
        agenda, grace = self._agenda, self.expiry_grace
        while agenda and agenda[0][0] + grace <= now:
            due, number = heapq.heappop(agenda)
            if self._scheduled.get(number) == due:
                del self._scheduled[number]
            expired = self.partitions[number].expire_due(now, grace)
            if expired:
                events[number] = expired
            self._schedule(number)
        self._note_changes(events)
        return events

    def apply_batch(self, commands: list[Command], now: float) -> BatchOutcome:
        """Expire what is due, then decide and apply every command in order."""
        events = self.expire_due(now)
        expired = count_expired(events)
        results: list[Result | WrongShard] = []
        for command in commands:
            partition = self.partitions.get(command.partition)
            if partition is None:
                results.append(WrongShard(command.partition))
                continue
            result, new_events = partition.handle(command)
            if new_events:
                events.setdefault(command.partition, []).extend(new_events)
                self._schedule(command.partition)
            results.append(result)
        self._note_changes(events)
        return BatchOutcome(results, events, expired)

    def check(self) -> list[str]:
        return [f"partition {n}: {p}" for n, partition in self.partitions.items() for p in partition.check()]
