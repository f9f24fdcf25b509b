"""Micro-batching: concurrent submissions share actor calls, results go back in order."""

from __future__ import annotations

import asyncio

import pytest

from omnistock.gateway.transport.batcher import ShardBatcher


class SlowShard:
    def __init__(self) -> None:
        self.calls: list[list[int]] = []

    async def __call__(self, batch: list[int]) -> list[int]:
        self.calls.append(batch)
        await asyncio.sleep(0.01)
        return [command * 10 for command in batch]


async def test_concurrent_requests_share_calls_and_get_their_own_results() -> None:
    shard = SlowShard()
    batcher: ShardBatcher[int, int] = ShardBatcher(shard, max_in_flight=1)
    results = await asyncio.gather(*(batcher.submit([i, i + 1000]) for i in range(200)))
    assert results == [[i * 10, (i + 1000) * 10] for i in range(200)]
    # The first call leaves alone; everything that queued behind it goes in the next one.
    assert len(shard.calls) == 2
    assert sum(len(call) for call in shard.calls) == 400


async def test_batches_respect_the_size_cap_without_splitting_a_request() -> None:
    shard = SlowShard()
    batcher: ShardBatcher[int, int] = ShardBatcher(shard, max_batch=10, max_in_flight=1)
    await asyncio.gather(*(batcher.submit([i, i, i]) for i in range(20)))
    assert all(len(call) <= 10 and len(call) % 3 == 0 for call in shard.calls)


async def test_a_failed_call_fails_only_its_own_requests() -> None:
    attempts = 0

    async def flaky(batch: list[int]) -> list[int]:
        nonlocal attempts
        attempts += 1
        await asyncio.sleep(0.01)
        if attempts == 1:
            raise ConnectionError("shard died")
        return batch

    batcher: ShardBatcher[int, int] = ShardBatcher(flaky, max_in_flight=1)
    first = asyncio.ensure_future(batcher.submit([1]))
    await asyncio.sleep(0)
    later = [asyncio.ensure_future(batcher.submit([n])) for n in (2, 3)]
    with pytest.raises(ConnectionError):
        await first
    assert [await f for f in later] == [[2], [3]]
    assert batcher.queued == 0
