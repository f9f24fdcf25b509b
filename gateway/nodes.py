"""The node registry: stored in Redis (protobuf, never pickle), cached in the gateway."""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

import redis.asyncio as aioredis

from availability.nodes import Node, NodeType
from gateway.convert import node_from_proto, node_to_proto
from protos.gen.omnistock.v1 import common_pb2
from reservations.errors import NotFound
from reservations.journal import RedisKeys


class NodeRegistry:
    def __init__(self, client: aioredis.Redis, keys: RedisKeys) -> None:
        self._client = client
        self._keys = keys
        self._nodes: dict[str, Node] = {}

    async def load(self) -> None:
        stored = cast(dict[bytes, bytes], await self._client.hgetall(self._keys.nodes))
        self._nodes = {
            node_id.decode(): node_from_proto(common_pb2.Node.FromString(data))
            for node_id, data in stored.items()
        }

    async def put(self, nodes: Iterable[Node]) -> tuple[int, int]:
        """Create or replace; returns (created, updated)."""
        nodes = list(nodes)
        mapping: dict[str | bytes, bytes] = {
            node.node_id: node_to_proto(node).SerializeToString() for node in nodes
        }
        await self._client.hset(self._keys.nodes, mapping=mapping)  # type: ignore[arg-type]
        created = sum(1 for node in nodes if node.node_id not in self._nodes)
        self._nodes.update((node.node_id, node) for node in nodes)
        return created, len(nodes) - created

    def list(self, node_type: NodeType | None = None) -> list[Node]:
        return sorted(
            (n for n in self._nodes.values() if node_type is None or n.type is node_type),
            key=lambda n: n.node_id,
        )

    def is_enabled(self, node_id: str) -> bool:
        node = self._nodes.get(node_id)
        return node is not None and node.enabled

    @property
    def enabled_ids(self) -> set[str]:
        return {node_id for node_id, node in self._nodes.items() if node.enabled}

    def require(self, node_ids: Iterable[str]) -> None:
        """NOT_FOUND naming the first unknown node."""
        for node_id in node_ids:
            if node_id not in self._nodes:
                raise NotFound("node", node_id)

    def __len__(self) -> int:
        return len(self._nodes)
