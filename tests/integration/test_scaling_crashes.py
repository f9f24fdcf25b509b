"""A change of the shard count cut by a crash at the worst moments of a move (named crash
points, reservations/crash_points.py): the mover's gateway dying between marking a partition
as moving, its release, its new placement and its take-over, and a shard dying as it gives a
partition up or takes one over. A checkout workload runs throughout; afterwards asking again
completes the change (or a restart of everything starts over), and every acknowledged
reservation is there, every reservation's parts agree with its decision, stock is conserved,
and the only refusals were UNAVAILABLE with RetryInfo."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import grpc
import pytest
import pytest_asyncio

from omnistock.client import OmnistockClient, OmnistockRpcError, level
from tests.integration.test_crash_consistency import Service, serving
from tests.integration.workload import Workload

pytestmark = pytest.mark.slow

SKUS = [f"MOVE-{i:03d}" for i in range(48)]
POINTS = [
    "scale.after_mark",
    "scale.after_release",
    "scale.after_placement",
    "shard.before_release",
    "shard.after_release",
    "shard.before_adopt",
]
COMPLETE_WITHIN = 90.0
"""Bound on completing the change once it was cut (the cut change's lock runs out first)."""


@pytest_asyncio.fixture(scope="module")
async def service(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Service]:
    async with serving(tmp_path_factory.mktemp("moves")) as running:
        async with OmnistockClient(running.target) as client:
            await client.set_stock([level(sku, "DC-1", 100_000) for sku in SKUS])
        yield running


async def scale(target: str, shards: int) -> bool:
    """Ask for `shards` shards; whether the change completed (False: the stream was cut)."""
    async with OmnistockClient(target, timeout=60) as client:
        try:
            async for progress in client.scale_shards(shards):
                if progress.done:
                    return True
        except OmnistockRpcError as error:
            if error.code is grpc.StatusCode.FAILED_PRECONDITION:
                raise  # the cut change's lock: complete() asks again
            # The gateway running the change died under the stream.
            assert error.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL), error
        return False


async def complete(service: Service, shards: int) -> None:
    """Ask again until the change completes (while the cut one's lock lasts, it is refused);
    start everything again first if serve itself died."""
    deadline = time.monotonic() + COMPLETE_WITHIN
    while True:
        if not service.alive():  # serve's own gateway died: everything starts again
            await service.start()
        try:
            if await scale(service.target, shards):
                return
        except OmnistockRpcError as error:
            assert error.code is grpc.StatusCode.FAILED_PRECONDITION, error
        assert time.monotonic() < deadline, f"the change to {shards} shards did not complete"
        await asyncio.sleep(1.0)


@pytest.mark.parametrize("point", POINTS)
async def test_a_move_cut_by_a_crash_loses_nothing(service: Service, point: str) -> None:
    service.kill()
    await service.start(crash=f"{point}@3")
    clients = [OmnistockClient(service.target, timeout=60) for _ in range(2)]
    workload = Workload(clients, SKUS, "DC-1", point.replace(".", "-"), retry_unavailable=True)
    stop = asyncio.Event()
    running = asyncio.ensure_future(workload.run_until(stop, callers=4))
    try:
        await asyncio.sleep(1.0)
        completed = await scale(service.target, 4)
        # A shard that died is started again by Ray, which sends it the call again: the change
        # goes on. A gateway that died cut it.
        assert completed is point.startswith("shard."), f"completed: {completed}"
        if not completed:
            await asyncio.sleep(1.0)  # a process that died is gone by then
            await complete(service, 4)
        await asyncio.sleep(1.0)
    finally:
        stop.set()
        await running
        for client in clients:
            await client.close()
    assert (service.tmp / f"crashes-{service.starts_armed}" / point).exists(), (
        "the crash point was not reached"
    )

    report = await service.recovered()
    assert report.problems == [] and report.disagreements == [], report
    async with OmnistockClient(service.target, timeout=60) as client:
        shards = await client.shards()
        assert len(shards.shards) == 4 and shards.scaling_to == 0
        assert await workload.missing(client) == []
    assert workload.acknowledged
    # UNAVAILABLE with RetryInfo only, but where a gateway died: its connections broke
    # (UNAVAILABLE without it), and when serve died its other gateway stopped, cancelling
    # what it still had in flight at the end of its grace (CANCELLED).
    allowed = {grpc.StatusCode.UNAVAILABLE}
    if point.startswith("scale."):
        allowed.add(grpc.StatusCode.CANCELLED)
    wrong = [
        r
        for r in workload.refusals
        if r.code not in allowed or (r.retry_delay is None and not point.startswith("scale."))
    ]
    assert wrong == [], wrong[:3]
