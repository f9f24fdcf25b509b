"""The network (nodes, groups, channels) kept in Redis as one protobuf value, cached here.

Every change builds a whole new Network, validates it and only then writes it:
nothing applies partially.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import cast

import redis.asyncio as aioredis

from availability.network import Channel, Network, NodeGroup
from availability.nodes import Node
from gateway.convert import Limits, network_from_proto, network_to_proto
from protos.gen.omnistock.v1 import network_pb2
from reservations.errors import InvalidArgument, NotFound
from reservations.journal import RedisKeys


class NetworkStore:
    def __init__(self, client: aioredis.Redis, keys: RedisKeys, limits: Limits) -> None:
        self._client = client
        self._keys = keys
        self._limits = limits
        self._lock = asyncio.Lock()
        self.network = Network()

    async def load(self) -> Network:
        data = cast(bytes | None, await self._client.get(self._keys.network))
        if data:
            self.network = network_from_proto(network_pb2.NetworkConfig.FromString(data), self._limits)
        return self.network

    async def change(
        self,
        nodes: Iterable[Node] = (),
        groups: Iterable[NodeGroup] = (),
        channels: Iterable[Channel] = (),
        drop_groups: Iterable[str] = (),
        drop_channels: Iterable[str] = (),
        purchase_limits: Mapping[str, int] | None = None,
    ) -> Network:
        """Apply a change whole, or raise InvalidArgument naming every problem."""
        drop_groups, drop_channels = list(drop_groups), list(drop_channels)
        async with self._lock:
            current = self.network
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
                return current
            problems = candidate.problems()
            if problems:
                raise InvalidArgument(problems)
            await self._client.set(self._keys.network, network_to_proto(candidate).SerializeToString())
            self.network = candidate
            return candidate

    # --- reads used on every request ---

    def require(self, node_ids: Iterable[str]) -> None:
        """NOT_FOUND naming the first unknown node."""
        for node_id in node_ids:
            if node_id not in self.network.nodes:
                raise NotFound("node", node_id)

    def channel(self, channel_id: str) -> Channel:
        channel = self.network.channels.get(channel_id)
        if channel is None:
            raise NotFound("channel", channel_id)
        return channel

    def is_enabled(self, node_id: str) -> bool:
        node = self.network.nodes.get(node_id)
        return node is not None and node.enabled
