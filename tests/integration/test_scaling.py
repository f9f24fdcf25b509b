"""Changing the number of shards while serving (ShardService.ScaleShards, `omnistock scale`):
partitions move one at a time under a checkout workload, and no call is refused for it,
nothing acknowledged is lost, stock is conserved and every reservation's parts agree."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from omnistock.client import OmnistockClient, OmnistockRpcError, level, line
from omnistock.reservations.domain.placement import partition_of
from tests.integration.conftest import NODES
from tests.integration.workload import Workload

SKUS = [f"SCALE-{i:03d}" for i in range(96)]
NODE = "DC-1"


async def stocked(service: Any) -> OmnistockClient:
    client = OmnistockClient(f"127.0.0.1:{service.port}")
    await client.put_nodes(NODES)
    await client.set_stock([level(sku, NODE, 100_000) for sku in SKUS])
    return client


async def scale_under_workload(service: Any, client: OmnistockClient, shards: int, tag: str) -> Workload:
    """Scale to `shards` while callers reserve, confirm and read; returns the workload."""
    workload = Workload([client], SKUS, NODE, tag)
    stop = asyncio.Event()
    running = asyncio.ensure_future(workload.run_until(stop))
    try:
        await asyncio.sleep(0.5)  # the workload is under way before the first move
        progress = [update async for update in client.scale_shards(shards)]
        await asyncio.sleep(0.5)
    finally:
        stop.set()
        await running
    assert progress[-1].done and progress[-1].shards_to == shards
    moved = [update for update in progress if update.partitions_moved and not update.done]
    assert len(moved) == progress[0].partitions_to_move
    assert [update.partitions_moved for update in moved] == list(range(1, len(moved) + 1))
    return workload


async def assert_intact(client: OmnistockClient, workload: Workload) -> None:
    assert workload.refusals == [], workload.refusals[:5]
    assert workload.acknowledged, "the workload made no reservation"
    assert await workload.missing(client) == []
    report = await client.check_conservation()
    assert report.ok, (list(report.problems)[:5], list(report.disagreements)[:5])


async def test_grow_then_shrink_while_serving(make_service: Any) -> None:
    service = await make_service(shards=2)
    client = await stocked(service)
    try:
        grown = await scale_under_workload(service, client, 4, "grow")
        shards = await client.shards()
        assert [s.partitions for s in shards.shards] == [16, 16, 16, 16]
        assert shards.scaling_to == 0
        assert len(service.gateway.router.handles) == 4
        await assert_intact(client, grown)

        shrunk = await scale_under_workload(service, client, 2, "shrink")
        shards = await client.shards()
        assert [s.partitions for s in shards.shards] == [32, 32]
        await assert_intact(client, grown)
        await assert_intact(client, shrunk)
        # Every unit held or committed by the workloads is accounted for in availability.
        held = sum(grown.acknowledged.values()) + sum(shrunk.acknowledged.values())
        answer = await client.availability(SKUS, include_nodes=True, consistent=True)
        available = sum(sku.available for sku in answer.skus)
        assert available == 100_000 * len(SKUS) - held
    finally:
        await client.close()


async def test_scaling_to_the_same_count_moves_nothing(make_service: Any) -> None:
    service = await make_service(shards=2)
    client = await stocked(service)
    try:
        before = await client.shards()
        progress = [update async for update in client.scale_shards(2)]
        assert [(u.partitions_to_move, u.done) for u in progress] == [(0, False), (0, True)]
        after = await client.shards()
        assert [s.partitions for s in after.shards] == [s.partitions for s in before.shards]
    finally:
        await client.close()


@pytest.mark.parametrize("shards", [0, 65])
async def test_a_count_out_of_range_is_refused_naming_the_field(make_service: Any, shards: int) -> None:
    service = await make_service(shards=2)
    async with OmnistockClient(f"127.0.0.1:{service.port}") as client:
        with pytest.raises(OmnistockRpcError) as refused:
            async for _ in client.scale_shards(shards):
                pass
        assert refused.value.code is grpc.StatusCode.INVALID_ARGUMENT
        assert [field for field, _ in refused.value.field_violations] == ["shards"]
        assert len((await client.shards()).shards) == 2


async def test_one_change_at_a_time(make_service: Any) -> None:
    service = await make_service(shards=1)
    client = await stocked(service)
    try:
        first = client.scale_shards(3)
        await first.__anext__()  # the change holds the lock
        with pytest.raises(OmnistockRpcError) as refused:
            async for _ in client.scale_shards(2):
                pass
        assert refused.value.code is grpc.StatusCode.FAILED_PRECONDITION
        assert "to 3 shards is under way" in refused.value.message
        assert (await client.shards()).scaling_to == 3
        last = [update async for update in first][-1]
        assert last.done and len((await client.shards()).shards) == 3
    finally:
        await client.close()


async def test_a_move_cut_between_release_and_placement_is_healed(make_service: Any) -> None:
    """The old owner gave the partition up and nothing placed it elsewhere (a mover that
    stopped): the next command for it is served, by the old owner taking it back."""
    service = await make_service(shards=2)
    client = await stocked(service)
    try:
        router = service.gateway.router
        sku = SKUS[0]
        partition = partition_of(sku, router.partitions)
        owner = router.placement.shard_of(partition)
        assert await service.shards[owner].release.remote(partition)
        held = await client.reserve("healed-1", [line(sku, NODE, 2)])
        assert held.reservation.reservation_id == "healed-1"
        assert partition in await service.shards[owner].owned.remote()
    finally:
        await client.close()
