"""The durable journal of partitions: one Redis stream per partition plus a snapshot.

A batch's events for every partition it touched go out in one round trip (group
commit): a server-side script appends each partition's entry and each published event.
Redis runs a script whole, like MULTI/EXEC, and with `appendfsync always` answers only
once its writes are on disk; one command instead of one per entry spares the shard
redis-py's work per command (docs/performance.md).

Keys are in journal groups (RedisKeys): on a single Redis the whole batch is one script
call; on Redis Cluster, where one call may only touch one hash slot, it is one call per
group, pipelined. The shard never relies on two groups' writes being atomic together
(ShardState's write units).

The same call adds the audit trail's entries for stock changes (audit_trail.py): who set,
adjusted or expected which stock is stored with the change itself, never apart from it.

Ownership is fenced in Redis: each partition has an owner key naming the shard that may
write it. A shard claims a partition (sets the key) before it loads it, and every append
and snapshot checks the key in the same script that writes, so a shard that lost a
partition to another (a move, a restart elsewhere) can never write it again: its write is
refused whole (Fenced) and it reloads what it still owns.

A snapshot records the whole partition and the id of the last entry it covers;
recovery loads it and replays the entries after it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, cast

import redis
import redis.cluster
import redis.exceptions

from omnistock.reservations.domain.model import Event, LevelsSet
from omnistock.reservations.domain.partition import Partition
from omnistock.reservations.domain.placement import Placement
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
local owner = ARGV[1]
local sections = {}
local k, a = 1, 4
while a <= #ARGV do
  local logs, published, audits = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  for i = 0, logs - 1 do
    if redis.call('GET', KEYS[k + logs + i]) ~= owner then
      return redis.error_reply('FENCED ' .. KEYS[k + i] .. ' is not owned by shard ' .. owner)
    end
  end
  sections[#sections + 1] = {k, a + 3, logs, published, audits}
  k = k + 2 * logs + 2
  a = a + 3 + logs + published + 5 * audits
end
local ids = {}
for _, section in ipairs(sections) do
  local k, arg, logs, published, audits = unpack(section)
  for i = 0, logs - 1 do
    ids[#ids + 1] = redis.call('XADD', KEYS[k + i], '*', 'e', ARGV[arg + i])
  end
  arg = arg + logs
  local events = KEYS[k + 2 * logs]
  for i = 0, published - 1 do
    redis.call('XADD', events, 'MAXLEN', '~', ARGV[2], '*', 'e', ARGV[arg + i])
  end
  arg = arg + published
  local audit = KEYS[k + 2 * logs + 1]
  for i = 0, audits - 1 do
    local f = arg + 5 * i
    redis.call('XADD', audit, 'MAXLEN', '~', ARGV[3], '*', 'at', ARGV[f], 'by', ARGV[f + 1],
      'action', ARGV[f + 2], 'subject', ARGV[f + 3], 'detail', ARGV[f + 4])
  end
end
return ids
"""
"""Appends, once every partition written is owned by ARGV[1]; else writes nothing (FENCED).
KEYS: per section (a journal group), its partitions' logs, their owner keys, its events
stream, its audit stream. ARGV: the owner, how many events to keep, how many audit entries
to keep, then per section: how many logs, published events and audit entries, an entry per
log, the published events, each audit entry's five fields (audit_trail.FIELDS). Returns the
logs' new entry ids, in order."""

SNAPSHOT_SCRIPT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('FENCED ' .. KEYS[2] .. ' is not owned by shard ' .. ARGV[1])
end
redis.call('SET', KEYS[2], ARGV[2])
if ARGV[3] ~= '' then
  redis.call('XTRIM', KEYS[3], 'MINID', ARGV[3])
end
if ARGV[4] == 'release' then
  redis.call('DEL', KEYS[1])
end
return 1
"""
"""Stores a snapshot and trims the entries it covers, if ARGV[1] owns the partition; with
ARGV[4] "release", gives the partition up in the same call. KEYS: owner, snapshot, log.
ARGV: the owner, the snapshot, the first entry id to keep (or empty), "release" or empty."""


JOURNAL_GROUPS = 16
"""Partitions are journaled in this many groups, each under a hash tag of its own: on Redis
Cluster a group lives in one hash slot, so a group's writes are one atomic call, and the
groups spread the journal over up to this many masters. Fixed: a partition's keys never move."""


def journal_group(partition: int) -> int:
    """The group whose hash slot holds the partition's journal, snapshot and events."""
    return partition % JOURNAL_GROUPS


@dataclass(frozen=True, slots=True)
class RedisKeys:
    """Every key omnistock writes lives under one prefix, in hash tags (`{...}`) that Redis
    Cluster places by: what the whole service shares under `{<prefix>}`, a journal group's
    partitions and the streams written with them under `{<prefix>:g<group>}`. Keys written
    in one atomic call (a script, a transaction) always share a tag."""

    prefix: str = "omnistock"

    def _shared(self, name: str) -> str:
        return f"{{{self.prefix}}}:{name}"

    def _grouped(self, group: int, name: str) -> str:
        return f"{{{self.prefix}:g{group}}}:{name}"

    @property
    def partitions(self) -> str:
        return self._shared("partitions")

    @property
    def service(self) -> str:
        """Hash of what a gateway started on its own (`omnistock gateway --ray-address`) learns
        of the running service: `shards` and `namespace`, set by serve at each start, and
        `gateways`, the counter that numbers such gateways."""
        return self._shared("service")

    @property
    def placement(self) -> str:
        """Which shard owns each partition (reservations/domain/placement.py), and its version."""
        return self._shared("placement")

    @property
    def scaling(self) -> str:
        """The lock that lets one change of the shard count run at a time."""
        return self._shared("scaling")

    @property
    def network(self) -> str:
        return self._shared("network")

    @property
    def network_version(self) -> str:
        """The stored network's version alone: what a gateway polls to see a change."""
        return self._shared("network:version")

    @property
    def network_changes(self) -> str:
        """Pub/sub channel on which a gateway announces the network version it stored."""
        return self._shared("network:changes")

    @property
    def api_keys(self) -> str:
        """Hash of API key records by key id (gateway/grpc/key_store.py)."""
        return self._shared("keys")

    @property
    def api_key_names(self) -> str:
        return self._shared("keys:names")

    @property
    def api_key_version(self) -> str:
        return self._shared("keys:version")

    @property
    def audit(self) -> str:
        """The audit trail of network and key changes (audit_trail.py); stock changes are
        audited on their journal group's stream (group_audit)."""
        return self._shared("audit")

    def events(self, group: int) -> str:
        """The reservation events of a journal group's partitions."""
        return self._grouped(group, "events")

    def group_audit(self, group: int) -> str:
        """The audit trail of a journal group's stock changes."""
        return self._grouped(group, "audit")

    @property
    def event_streams(self) -> list[str]:
        """Every reservation events stream, by group: together, the events feed."""
        return [self.events(group) for group in range(JOURNAL_GROUPS)]

    @property
    def audit_streams(self) -> list[str]:
        """Every audit stream: the shared one, then each group's."""
        return [self.audit, *(self.group_audit(group) for group in range(JOURNAL_GROUPS))]

    def log(self, partition: int) -> str:
        return self._grouped(journal_group(partition), f"p:{partition}:log")

    def snapshot(self, partition: int) -> str:
        return self._grouped(journal_group(partition), f"p:{partition}:snap")

    def owner(self, partition: int) -> str:
        """The shard that may write the partition's journal (a fence: see RedisJournal)."""
        return self._grouped(journal_group(partition), f"p:{partition}:owner")


class Journal(Protocol):
    """What a shard needs from durable storage."""

    def claim(self, numbers: Iterable[int]) -> None: ...

    def append(self, events: dict[int, list[Event]]) -> None: ...

    def load(self, number: int) -> Partition: ...

    def due_snapshots(self, partitions: Mapping[int, Partition]) -> list[int]: ...

    def snapshot(self, partition: Partition) -> None: ...

    def release(self, partition: Partition) -> None: ...

    def placement(self) -> Placement | None: ...


class Fenced(redis.RedisError):
    """A write to a partition this shard no longer owns: nothing of it was written."""


def _next_id(entry_id: str) -> str:
    millis, seq = entry_id.split("-")
    return f"{millis}-{int(seq) + 1}"


class RedisJournal:
    """Journal on Redis streams; one instance per shard actor, writing as `owner`."""

    def __init__(
        self,
        client: SyncClient,
        keys: RedisKeys,
        snapshot_every: int,
        snapshot_levels: int = 20_000,
        replicas: int = 0,
        wait_ms: int = 1000,
        owner: str = "0",
    ) -> None:
        self._client = client
        self._keys = keys
        self._owner = owner
        self._clustered = isinstance(client, redis.cluster.RedisCluster)
        """On Redis Cluster: one script call per journal group (a call may touch one slot)."""
        self._replicas = replicas
        """Replicas that must have each append (WAIT) before it counts; 0: the master's AOF alone."""
        self._wait_ms = wait_ms
        self._append = client.register_script(APPEND_SCRIPT)
        self._snapshot_every = snapshot_every
        self._snapshot_levels = snapshot_levels
        self._last_id: dict[int, str] = {}
        self._since_snapshot: dict[int, int] = {}
        self._levels_since_snapshot: dict[int, int] = {}

    @property
    def clustered(self) -> bool:
        """Whether only one journal group's writes are atomic together (Redis Cluster)."""
        return self._clustered

    def placement(self) -> Placement | None:
        """The stored placement of partitions on shards; None before a service first started
        with this prefix."""
        data = cast(bytes | None, self._run(lambda: self._client.get(self._keys.placement)))
        return Placement.from_json(data) if data else None

    def claim(self, numbers: Iterable[int]) -> None:
        """Make this shard the partitions' only writer. Load them after this, never before,
        so that nothing a former owner wrote is missed. Only owners that differ are written:
        a shard reloading what it already owns (after a failed write) writes nothing, so it
        can still serve reads while Redis takes no write."""
        numbers = list(numbers)
        read = self._client.pipeline(transaction=False)
        for number in numbers:
            read.get(self._keys.owner(number))
        owners = cast(list[bytes | None], self._run(read.execute))
        mine = self._owner.encode()
        taken = [number for number, owner in zip(numbers, owners, strict=True) if owner != mine]
        if taken:
            write = self._client.pipeline(transaction=False)
            for number in taken:
                write.set(self._keys.owner(number), self._owner)
            self._run(write.execute)

    def append(self, events: dict[int, list[Event]]) -> None:
        """Write every partition's entry, each journal group's atomically; raises if Redis did
        not take them all (Fenced if a partition is no longer this shard's)."""
        keys = self._keys
        at = int(time.time() * 1000)
        by_group: dict[int, list[int]] = {}
        for number in events:
            by_group.setdefault(journal_group(number), []).append(number)
        calls: list[tuple[list[str], list[bytes | str | int]]] = []
        for group, numbers in by_group.items():
            call_keys = [keys.log(n) for n in numbers] + [keys.owner(n) for n in numbers]
            call_keys += [keys.events(group), keys.group_audit(group)]
            published = [data for n in numbers for data in published_events(n, events[n])]
            audits = [entry for n in numbers for entry in stock_audit(n, events[n], at)]
            args: list[bytes | str | int] = [len(numbers), len(published), len(audits)]
            args.extend(encode_entry(events[n]) for n in numbers)
            args.extend(published)
            for entry in audits:
                args.extend(entry.values())
            calls.append((call_keys, args))
        order = [n for numbers in by_group.values() for n in numbers]
        head: list[bytes | str | int] = [self._owner, EVENTS_KEPT, AUDIT_KEPT]
        if self._clustered:
            ids = self._append_grouped(head, calls)
        else:  # one Redis: the whole batch in one call, atomic as a whole
            all_keys = [key for call_keys, _ in calls for key in call_keys]
            all_args = head + [arg for _, args in calls for arg in args]
            ids = cast(list[bytes], self._run(lambda: self._append(keys=all_keys, args=all_args)))
        if self._replicas:
            # Not acknowledged until on the replicas: a failover then loses no acknowledged batch.
            for key in self._masters_written([call_keys for call_keys, _ in calls]):
                wait_for_replicas(self._client, key, self._replicas, self._wait_ms)
        for number, entry_id in zip(order, ids, strict=True):
            self._last_id[number] = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
            self._since_snapshot[number] = self._since_snapshot.get(number, 0) + 1
            self._count_levels(number, events[number])

    def _append_grouped(
        self, head: list[bytes | str | int], calls: list[tuple[list[str], list[bytes | str | int]]]
    ) -> list[bytes]:
        """One script call per journal group, pipelined (sent to each master at once). The
        script's text goes with each call: a cluster pipeline does not load scripts, and a
        replica promoted in a failover has none cached."""
        pipe = self._client.pipeline(transaction=False)
        for call_keys, args in calls:
            pipe.execute_command("EVAL", APPEND_SCRIPT, len(call_keys), *call_keys, *head, *args)
        replies = cast(list[Any], self._run(lambda: pipe.execute(raise_on_error=False)))
        for reply in replies:
            if isinstance(reply, Exception):
                raise _fenced_or(reply)
        return [entry_id for reply in replies for entry_id in reply]

    def _masters_written(self, calls: list[list[str]]) -> list[str]:
        """A key of each master the calls wrote to (WAIT counts one master's replicas)."""
        if not isinstance(self._client, redis.cluster.RedisCluster):
            return [calls[0][0]]
        by_node: dict[str, str] = {}
        for call_keys in calls:
            node = self._client.get_node_from_key(call_keys[0])
            by_node.setdefault(node.name if node is not None else call_keys[0], call_keys[0])
        return list(by_node.values())

    @staticmethod
    def _run(call: Callable[[], Any]) -> Any:
        """A Redis call; its FENCED refusal raised as Fenced, and a cluster-level failure (no
        node reachable, which redis-py raises as no RedisError) as a ConnectionError."""
        try:
            return call()
        except redis.exceptions.RedisClusterException as error:
            raise redis.ConnectionError(f"Redis Cluster: {error}") from error
        except redis.RedisError as error:
            raise _fenced_or(error) from error

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
        self._store_snapshot(partition, release=False)

    def release(self, partition: Partition) -> None:
        """Snapshot the partition and give it up, in one call: the next owner loads the
        snapshot alone, and nothing more can be written for it until it is claimed."""
        self._store_snapshot(partition, release=True)
        for kept in (self._last_id, self._since_snapshot, self._levels_since_snapshot):
            kept.pop(partition.number, None)

    def _store_snapshot(self, partition: Partition, release: bool) -> None:
        number = partition.number
        last_id = self._last_id.get(number, "0-0")
        keys = [self._keys.owner(number), self._keys.snapshot(number), self._keys.log(number)]
        args = [
            self._owner,
            encode_snapshot(partition, last_id),
            _next_id(last_id) if last_id != "0-0" else "",
            "release" if release else "",
        ]
        self._run(lambda: self._client.execute_command("EVAL", SNAPSHOT_SCRIPT, len(keys), *keys, *args))
        self._since_snapshot[number] = 0
        self._levels_since_snapshot[number] = 0


def _fenced_or(error: Exception) -> redis.RedisError:
    """Fenced for a script's FENCED refusal, else the error as a RedisError."""
    if isinstance(error, redis.ResponseError) and "FENCED" in str(error):
        return Fenced(str(error))
    return error if isinstance(error, redis.RedisError) else redis.RedisError(str(error))
