"""The network (nodes, groups, channels) kept in Redis as one protobuf value, cached here.

Every change builds a whole new Network, validates it and only then writes it:
nothing applies partially. Several gateways share the stored network: a change is
decided on the stored version and written only if no other gateway wrote in between
(WATCH/MULTI), then announced on a pub/sub channel so the others reload it at once;
each also polls the version key, in case an announcement was missed. The same transaction
adds an audit entry (reservations/shard/audit_trail.py) for each node, group, channel and
purchase limit the change put or deleted, naming the caller that made it.

A change one gateway acknowledged is seen by the next call at any other: a call refused for
a part of the network it did not know asks `refreshed_since` whether the network in hand
was replaced since the call started (by that very look at Redis, by the follower or by
another call meanwhile) and, if so, is run again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

import redis.exceptions

from omnistock.availability.network import Channel, Network, NodeGroup
from omnistock.availability.nodes import Node
from omnistock.gateway.grpc.convert import Limits, network_from_proto, network_to_proto
from omnistock.gateway.usecases.network_rules import require_channel, require_nodes
from omnistock.protos.gen.omnistock.v1 import network_pb2
from omnistock.reservations.domain.errors import InvalidArgument, NotFound, Unavailable
from omnistock.reservations.shard.audit_trail import AUDIT_KEPT, AuditEntry, audit_entry
from omnistock.reservations.shard.journal import RedisKeys
from omnistock.reservations.shard.redis_connect import REDIS_ERRORS, AsyncClient

log = logging.getLogger(__name__)

NETWORK_KINDS = frozenset({"node", "group", "channel"})
"""What NotFound names when a request refers to a part of the network."""


class NetworkStore:
    def __init__(self, client: AsyncClient, keys: RedisKeys, limits: Limits) -> None:
        self._client = client
        self._keys = keys
        self._limits = limits
        self._lock = asyncio.Lock()
        self.network = Network()
        self.replaced_at = 0.0
        """When (time.perf_counter) `network` was last replaced by another version."""
        self._told = self.network
        """The network the follower's `on_change` (or a change's caller) last told of."""

    def _take(self, network: Network) -> None:
        if network is not self.network:
            self.network = network
            self.replaced_at = time.perf_counter()

    async def load(self) -> Network:
        data = cast(bytes | None, await self._client.get(self._keys.network))
        self._take(self._decoded(data))
        if data:
            # A network stored before the version key existed: give it one to poll.
            await self._client.set(self._keys.network_version, self.network.version, nx=True)
        return self.network

    def _decoded(self, data: bytes | None) -> Network:
        """The stored network; the one in hand when it is that version (no rebuild)."""
        if not data:
            return Network()
        config = network_pb2.NetworkConfig.FromString(data)
        if config.version == self.network.version and self.network.version:
            return self.network
        return network_from_proto(config, self._limits)

    async def refresh(self) -> bool:
        """Take the stored network if another gateway changed it; True when this call took
        it (False also when the follower or another call took it meanwhile)."""
        stored = cast(bytes | None, await self._client.get(self._keys.network_version))
        if stored is None or int(stored) == self.network.version:
            return False
        async with self._lock:
            before = self.network
            await self.load()
            return self.network is not before

    async def refreshed_since(self, since: float) -> bool:
        """Take the stored network if another gateway changed it; True when the network in
        hand was replaced at or after `since` (a time.perf_counter() reading): a call that
        started then and was refused for an unknown node, group or channel may see it now.
        Whoever took the new network (this look, the follower, another call), the answer is
        the same: a refresh that found the newer network already in hand counts too. With
        Redis away, only what was taken meanwhile counts."""
        with contextlib.suppress(redis.exceptions.RedisError, OSError):
            await self.refresh()
        return self.replaced_at >= since

    async def latest(self) -> Network:
        """The stored network, for a caller that may have just changed it through another
        gateway; with Redis away, the one in hand (what this gateway answers with)."""
        with contextlib.suppress(redis.exceptions.RedisError, OSError):
            await self.refresh()
        return self.network

    async def follow(self, on_change: Callable[[], None], every: float = 1.0) -> None:
        """Until cancelled: take the changes other gateways make, as soon as they announce
        them and at least every `every` seconds; `on_change` is told after each."""
        pubsub: Any = None
        task = asyncio.current_task()
        self._told = self.network  # what the feeds start with
        while True:
            try:
                if task is not None and task.cancelling():
                    # redis-py may swallow a cancel that lands while it waits for a message.
                    raise asyncio.CancelledError
                if pubsub is None:
                    pubsub = self._client.pubsub(ignore_subscribe_messages=True)
                    await pubsub.subscribe(self._keys.network_changes)
                await pubsub.get_message(timeout=every)
                await self.refresh()
                # Also when a call's refresh took the new network before this one did.
                if self.network is not self._told:
                    self._told = self.network
                    on_change()
            except asyncio.CancelledError:
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        await pubsub.aclose()
                raise
            except (redis.exceptions.RedisError, OSError) as error:
                # Redis away: keep the network in hand and try again; answers go on meanwhile.
                log.warning("cannot follow network changes in Redis: %s", error)
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        await pubsub.aclose()
                    pubsub = None
                await asyncio.sleep(every)

    async def change(
        self,
        nodes: Iterable[Node] = (),
        groups: Iterable[NodeGroup] = (),
        channels: Iterable[Channel] = (),
        drop_groups: Iterable[str] = (),
        drop_channels: Iterable[str] = (),
        purchase_limits: Mapping[str, int] | None = None,
        by: str = "",
    ) -> Network:
        """Apply a change whole, recorded in the audit trail as made by `by` (the caller's
        label), or raise InvalidArgument naming every problem (Unavailable when Redis cannot
        store it: nothing changed)."""
        try:
            return await self._change(
                nodes, groups, channels, drop_groups, drop_channels, purchase_limits, by
            )
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as error:
            raise Unavailable(f"the network cannot be stored now ({type(error).__name__}); retry") from error

    async def _change(
        self,
        nodes: Iterable[Node],
        groups: Iterable[NodeGroup],
        channels: Iterable[Channel],
        drop_groups: Iterable[str],
        drop_channels: Iterable[str],
        purchase_limits: Mapping[str, int] | None,
        by: str,
    ) -> Network:
        nodes, groups, channels = list(nodes), list(groups), list(channels)
        drop_groups, drop_channels = list(drop_groups), list(drop_channels)
        async with self._lock, self._client.pipeline(transaction=True) as pipe:
            while True:
                await pipe.watch(self._keys.network)
                current = self._decoded(cast(bytes | None, await pipe.get(self._keys.network)))
                self._take(current)
                for group_id in drop_groups:
                    if group_id not in current.groups:
                        raise NotFound("group", group_id)
                for channel_id in drop_channels:
                    if channel_id not in current.channels:
                        raise NotFound("channel", channel_id)
                in_use = current.groups_in_use(drop_groups, drop_channels)
                if in_use:
                    raise InvalidArgument(in_use)
                candidate = current.with_changes(
                    nodes, groups, channels, drop_groups, drop_channels, purchase_limits
                )
                if candidate.same_as(current):
                    await pipe.unwatch()
                    return current
                problems = candidate.problems()
                if problems:
                    raise InvalidArgument(problems)
                pipe.multi()
                pipe.set(self._keys.network, network_to_proto(candidate).SerializeToString())
                pipe.set(self._keys.network_version, candidate.version)
                for entry in network_audit(current, candidate, by, int(time.time() * 1000)):
                    pipe.xadd(self._keys.audit, entry.fields(), maxlen=AUDIT_KEPT, approximate=True)
                try:
                    await pipe.execute()
                except redis.exceptions.WatchError:
                    continue  # another gateway stored a change meanwhile: decide again on it
                # After the transaction, not in it: Redis Cluster takes no PUBLISH in one. A
                # gateway that misses it sees the version at its next poll.
                with contextlib.suppress(*REDIS_ERRORS):
                    await self._client.publish(self._keys.network_changes, candidate.version)
                self._take(candidate)
                self._told = candidate  # the caller tells its feeds (NetworkServicer._changed)
                return candidate

    # --- reads used on every request ---

    def require(self, node_ids: Iterable[str]) -> None:
        """NOT_FOUND naming the first unknown node."""
        require_nodes(self.network, node_ids)

    def channel(self, channel_id: str) -> Channel:
        return require_channel(self.network, channel_id)


def network_audit(before: Network, after: Network, by: str, at: int) -> list[AuditEntry]:
    """An audit entry for each node, group, channel and purchase limit that differs between
    the two networks: a put that changes nothing records nothing."""
    entries: list[AuditEntry] = []
    for node_id, node in after.nodes.items():
        old = before.nodes.get(node_id)
        if old != node:
            entries.append(
                audit_entry(
                    at,
                    by,
                    "network.nodes_put",
                    node_id,
                    created=old is None,
                    type=node.type.value,
                    enabled=node.enabled,
                )
            )
    for kind, was, now in (
        ("groups", before.groups, after.groups),
        ("channels", before.channels, after.channels),
    ):
        for item_id, item in now.items():
            if was.get(item_id) != item:
                entries.append(
                    audit_entry(at, by, f"network.{kind}_put", item_id, created=item_id not in was)
                )
        entries.extend(
            audit_entry(at, by, f"network.{kind}_deleted", item_id) for item_id in sorted(was.keys() - now)
        )
    limits, old_limits = after.purchase_limits, before.purchase_limits
    for sku in sorted(limits.keys() | old_limits.keys()):
        if limits.get(sku) != old_limits.get(sku):
            entries.append(
                audit_entry(at, by, "network.limits_put", sku, max_per_customer=limits.get(sku, 0))
            )
    return entries
