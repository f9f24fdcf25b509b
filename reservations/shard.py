"""A shard's partitions and how it applies a batch of commands (pure)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from reservations.commands import Command, Result
from reservations.model import Event, PartChanged, PartState
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


class ShardState:
    """The partitions one shard owns."""

    def __init__(self, partitions: Iterable[Partition], expiry_grace: float) -> None:
        self.partitions = {partition.number: partition for partition in partitions}
        self.expiry_grace = expiry_grace

    def expire_due(self, now: float) -> dict[int, list[Event]]:
        events: dict[int, list[Event]] = {}
        for number, partition in self.partitions.items():
            next_expiry = partition.next_expiry()
            if next_expiry is not None and next_expiry + self.expiry_grace <= now:
                expired = partition.expire_due(now, self.expiry_grace)
                if expired:
                    events[number] = expired
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
            results.append(result)
        return BatchOutcome(results, events, expired)

    def check(self) -> list[str]:
        return [f"partition {n}: {p}" for n, partition in self.partitions.items() for p in partition.check()]
