"""LoadStock's batches: every batch sent is waited for and counted before the reply."""

from __future__ import annotations

import asyncio

import pytest

from omnistock.gateway.grpc.load_batches import LoadBatches
from omnistock.reservations.domain.model import LevelColumns


def chunk(name: str, count: int) -> LevelColumns:
    return LevelColumns.of((f"{name}-{i}", "DC-1", i, 1.0, 0, 0) for i in range(count))


class HeldShards:
    """Applies each batch only when the test lets it go."""

    def __init__(self) -> None:
        self.batches: list[tuple[LevelColumns, asyncio.Event]] = []

    async def apply(self, levels: LevelColumns) -> tuple[int, int]:
        go = asyncio.Event()
        self.batches.append((levels, go))
        await go.wait()
        return len(levels), 0

    def release(self, index: int) -> None:
        self.batches[index][1].set()


async def settle() -> None:
    await asyncio.sleep(0.03)  # past the gather time (10 ms): the timer has sent


async def test_a_batch_the_timer_sends_during_a_wait_is_waited_for_and_counted() -> None:
    shards = HeldShards()
    batches = LoadBatches(shards.apply, batch_levels=1_000, gather_seconds=0.01, most_in_flight=2)
    await batches.add(chunk("a", 3))
    await settle()
    await batches.add(chunk("b", 5))
    await settle()
    assert len(shards.batches) == 2  # two batches applying: the next chunk waits
    adding = asyncio.create_task(batches.add(chunk("c", 7)))
    await settle()  # the timer sends "c" while the add waits
    assert len(shards.batches) == 3 and not adding.done()
    shards.release(0)
    shards.release(1)
    await adding
    finishing = asyncio.create_task(batches.finish())
    await settle()
    assert not finishing.done(), "finished before the batch the timer sent had applied"
    shards.release(2)
    await finishing
    assert (batches.received, batches.applied, batches.stale) == (15, 15, 0)


async def test_chunks_gather_into_batches_of_the_set_size_and_finish_sends_the_rest() -> None:
    shards = HeldShards()
    batches = LoadBatches(shards.apply, batch_levels=10, gather_seconds=60, most_in_flight=2)
    for name in "abc":
        await batches.add(chunk(name, 4))  # 4, 8 gathered, then 12: one batch
    await batches.add(chunk("d", 3))
    await asyncio.sleep(0)
    assert [len(levels) for levels, _ in shards.batches] == [12]
    finishing = asyncio.create_task(batches.finish())
    await settle()
    assert [len(levels) for levels, _ in shards.batches] == [12, 3]
    shards.release(0)
    shards.release(1)
    await finishing
    assert (batches.received, batches.applied) == (15, 15)


async def test_a_failed_batch_fails_the_stream_and_cancel_stops_the_rest() -> None:
    async def refuse(levels: LevelColumns) -> tuple[int, int]:
        raise ValueError("no such node")

    batches = LoadBatches(refuse, batch_levels=2, gather_seconds=60, most_in_flight=1)
    with pytest.raises(ValueError, match="no such node"):
        await batches.add(chunk("a", 3))
    batches.cancel()
