from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio

from omnistock.client import OmnistockClient
from omnistock.protos.gen.omnistock.v1 import common_pb2
from omnistock.reservations.domain.placement import partition_of, shard_of

NODES = [
    common_pb2.Node(node_id="DC-1", type=common_pb2.NODE_TYPE_DC, ships=True, enabled=True),
    common_pb2.Node(node_id="DC-2", type=common_pb2.NODE_TYPE_DC, ships=True, enabled=True),
    common_pb2.Node(node_id="STORE-1", type=common_pb2.NODE_TYPE_STORE, pickup=True, enabled=True),
    common_pb2.Node(node_id="STORE-OFF", type=common_pb2.NODE_TYPE_STORE, pickup=True, enabled=False),
]


@pytest_asyncio.fixture
async def service(make_service: Any) -> Any:
    return await make_service()


@pytest_asyncio.fixture
async def client(service: Any) -> AsyncIterator[OmnistockClient]:
    async with OmnistockClient(f"127.0.0.1:{service.port}") as client:
        await client.put_nodes(NODES)
        yield client


def skus_on_shards(service: Any, shards: list[int], prefix: str = "SKU") -> list[str]:
    """One SKU per requested shard index (so a test can span shards on purpose)."""
    partitions = service.router.partitions
    count = len(service.shards)
    found: dict[int, str] = {}
    i = 0
    while len(found) < len(set(shards)):
        sku = f"{prefix}-{i}"
        shard = shard_of(partition_of(sku, partitions), count)
        if shard in shards and shard not in found:
            found[shard] = sku
        i += 1
    return [found[s] for s in shards]
