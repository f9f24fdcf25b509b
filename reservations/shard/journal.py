"""The durable journal of partitions: one Redis stream per partition plus a snapshot.

A batch's events for every partition it touched go out in one round trip (group
commit): one call of a server-side script that appends each partition's entry and
each published event. Redis runs a script whole, like MULTI/EXEC, and with
`appendfsync always` answers only once its writes are on disk; one command instead of
one per entry spares the shard redis-py's work per command (docs/performance.md).

The same call adds the audit trail's entries for stock changes (audit_trail.py): who set,
adjusted or expected which stock is stored with the change itself, never apart from it.

A snapshot records the whole partition and the id of the last entry it covers;
recovery loads it and replays the entries after it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, cast

from omnistock.reservations.domain.model import Event, LevelsSet
from omnistock.reservations.domain.partition import Partition
from omnistock.reservations.shard.audit_trail import AUDIT_KEPT, stock_audit
from omnistock.reservations.shard.codec import (
    decode_entry,
    decode_snapshot,
    encode_entry,
    encode_snapshot,
    published_events,
)
from omnistock.reservations.shard.redis_connect import SyncClient, wait_for_replicas

log = logging.getLogger(__name__)

REPLAY_CHUNK = 5_000
EVENTS_KEPT = 1_000_000
"""Reservation events kept on the public stream (approximately): consumers read well within it."""

APPEND_SCRIPT = """
local logs = tonumber(ARGV[1])
local published = tonumber(ARGV[3])
local ids = {}
for i = 1, logs do
  ids[i] = redis.call('XADD', KEYS[i], '*', 'e', ARGV[i + 4])
end
local first = logs + 5
for i = first, first + published - 1 do
  redis.call('XADD', KEYS[logs + 1], 'MAXLEN', '~', ARGV[2], '*', 'e', ARGV[i])
end
for i = first + published, #ARGV, 5 do
  redis.call('XADD', KEYS[logs + 2], 'MAXLEN', '~', ARGV[4], '*', 'at', ARGV[i], 'by', ARGV[i + 1],
    'action', ARGV[i + 2], 'subject', ARGV[i + 3], 'detail', ARGV[i + 4])
end
return ids
"""
"""KEYS: the partition logs, the events stream, the audit stream. ARGV: how many logs, how
many events to keep, how many published events, how many audit entries to keep, an entry
per log, the published events, then each audit entry's five fields (audit_trail.FIELDS).
Returns the logs' new entry ids."""


@dataclass(frozen=True, slots=True)
class RedisKeys:
    """Every key omnistock writes lives under one prefix."""

    prefix: str = "omnistock"

    @property
    def partitions(self) -> str:
        return f"{self.prefix}:partitions"

    @property
    def service(self) -> str:
        """Hash of what a gateway started on its own (`omnistock gateway --ray-address`) learns
        of the running service: `shards` and `namespace`, set by serve at each start, and
        `gateways`, the counter that numbers such gateways."""
        return f"{self.prefix}:service"

    @property
    def network(self) -> str:
        return f"{self.prefix}:network"

    @property
    def network_version(self) -> str:
        """The stored network's version alone: what a gateway polls to see a change."""
        return f"{self.prefix}:network:version"

    @property
    def network_changes(self) -> str:
        """Pub/sub channel on which a gateway announces the network version it stored."""
        return f"{self.prefix}:network:changes"

    @property
    def events(self) -> str:
        return f"{self.prefix}:events"

    @property
    def audit(self) -> str:
        """The audit trail of stock, network and key changes (audit_trail.py)."""
        return f"{self.prefix}:audit"

    def log(self, partition: int) -> str:
        return f"{self.prefix}:p:{partition}:log"

    def snapshot(self, partition: int) -> str:
        return f"{self.prefix}:p:{partition}:snap"


class Journal(Protocol):
    """What a shard needs from durable storage."""

    def append(self, events: dict[int, list[Event]]) -> None: ...

    def load(self, number: int) -> Partition: ...

    def due_snapshots(self, partitions: Mapping[int, Partition]) -> list[int]: ...

    def snapshot(self, partition: Partition) -> None: ...


def _next_id(entry_id: str) -> str:
    millis, seq = entry_id.split("-")
    return f"{millis}-{int(seq) + 1}"


class RedisJournal:
    """Journal on Redis streams; one instance per shard actor."""

    def __init__(
        self,
        client: SyncClient,
        keys: RedisKeys,
        snapshot_every: int,
        snapshot_levels: int = 20_000,
        replicas: int = 0,
        wait_ms: int = 1000,
    ) -> None:
        self._client = client
        self._keys = keys
        self._replicas = replicas
        """Replicas that must have each append (WAIT) before it counts; 0: the master's AOF alone."""
        self._wait_ms = wait_ms
        self._append = client.register_script(APPEND_SCRIPT)
        self._snapshot_every = snapshot_every
        self._snapshot_levels = snapshot_levels
        self._last_id: dict[int, str] = {}
        self._since_snapshot: dict[int, int] = {}
        self._levels_since_snapshot: dict[int, int] = {}

    def append(self, events: dict[int, list[Event]]) -> None:
        """Write every partition's entry atomically; raises if Redis did not take them."""
        numbers = list(events)
        keys = [self._keys.log(number) for number in numbers]
        keys.append(self._keys.events)
        keys.append(self._keys.audit)
        published = [data for number in numbers for data in published_events(number, events[number])]
        args: list[bytes | str | int] = [len(numbers), EVENTS_KEPT, len(published), AUDIT_KEPT]
        args.extend(encode_entry(events[number]) for number in numbers)
        args.extend(published)
        at = int(time.time() * 1000)
        for number in numbers:
            for entry in stock_audit(number, events[number], at):
                args.extend(entry.values())
        ids = cast(list[bytes], self._append(keys=keys, args=args))
        if self._replicas:
            # Not acknowledged until on the replicas: a failover then loses no acknowledged batch.
            wait_for_replicas(self._client, keys[0], self._replicas, self._wait_ms)
        for number, entry_id in zip(numbers, ids, strict=True):
            self._last_id[number] = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
            self._since_snapshot[number] = self._since_snapshot.get(number, 0) + 1
            self._count_levels(number, events[number])

    def load(self, number: int) -> Partition:
        """Rebuild a partition: its snapshot, then every journal entry after it."""
        data = cast(bytes | None, self._client.get(self._keys.snapshot(number)))
        if data:
            partition, last_id = decode_snapshot(data)
        else:
            partition, last_id = Partition(number), "0-0"
        self._levels_since_snapshot[number] = 0
        replayed = 0
        while True:
            entries = cast(
                list[tuple[bytes, dict[bytes, bytes]]],
                self._client.xrange(self._keys.log(number), min=f"({last_id}", count=REPLAY_CHUNK),
            )
            for entry_id, fields in entries:
                events = decode_entry(fields[b"e"])
                for event in events:
                    partition.apply(event)
                self._count_levels(number, events)
                last_id = entry_id.decode()
            replayed += len(entries)
            if len(entries) < REPLAY_CHUNK:
                break
        self._last_id[number] = last_id
        self._since_snapshot[number] = replayed
        return partition

    def due_snapshots(self, partitions: Mapping[int, Partition]) -> list[int]:
        """Of `partitions`, those with `snapshot_every` entries since their snapshot, or with a
        bulk load since (see ShardConfig.snapshot_levels). A shard asks about the partitions
        it has just appended to: only an append brings a partition's snapshot due."""
        due = []
        for number, partition in partitions.items():
            count = self._since_snapshot.get(number, 0)
            levels = self._levels_since_snapshot.get(number, 0)
            if count >= self._snapshot_every or (
                levels >= self._snapshot_levels and levels >= partition.position_count()
            ):
                due.append(number)
        return due

    def _count_levels(self, number: int, events: list[Event]) -> None:
        levels = sum(len(event.levels) for event in events if isinstance(event, LevelsSet))
        if levels:
            self._levels_since_snapshot[number] = self._levels_since_snapshot.get(number, 0) + levels

    def snapshot(self, partition: Partition) -> None:
        """Store the partition as of its last journaled entry and trim the entries it covers."""
        number = partition.number
        last_id = self._last_id.get(number, "0-0")
        pipe = self._client.pipeline(transaction=True)
        pipe.set(self._keys.snapshot(number), encode_snapshot(partition, last_id))
        if last_id != "0-0":
            pipe.xtrim(self._keys.log(number), minid=_next_id(last_id), approximate=False)
        pipe.execute()
        self._since_snapshot[number] = 0
        self._levels_since_snapshot[number] = 0
