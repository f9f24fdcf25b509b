"""What a shard tells the metrics: units held, sell-outs, hold ages, expiry lag; queue depth."""

from __future__ import annotations

import asyncio

from prometheus_client import generate_latest

from omnistock.availability.positions import PositionView
from omnistock.gateway.metrics import Metrics
from omnistock.gateway.transport.batcher import ShardBatcher
from omnistock.reservations.domain.model import Line, Part, PartChanged, PartState
from omnistock.reservations.domain.stats import HoldEndings, StockWatch


def position(sku: str, on_hand: int, reserved: int = 0, committed: int = 0) -> PositionView:
    return PositionView(sku, "DC-1", on_hand, reserved, committed, 0.0)


def test_units_held_and_committed_follow_the_changed_positions() -> None:
    watch = StockWatch([position("A", 10, reserved=2), position("B", 5, committed=1)])
    assert (watch.units_held, watch.units_committed) == (2, 1)
    watch.update([position("A", 10, reserved=5, committed=1)])
    assert (watch.units_held, watch.units_committed) == (5, 2)
    watch.update([position("A", 10), position("B", 4)])
    assert (watch.units_held, watch.units_committed) == (0, 0)


def test_a_sell_out_counts_once_until_the_position_sells_again() -> None:
    watch = StockWatch([position("A", 2), position("GONE", 3, reserved=3)])
    assert (watch.sold_out, watch.take_stockouts()) == (1, 0)  # out before: not a new sell-out
    watch.update([position("A", 2, reserved=2)])
    assert (watch.sold_out, watch.take_stockouts()) == (2, 1)
    watch.update([position("A", 0)])  # the held units shipped: still sold out, not again
    assert (watch.sold_out, watch.take_stockouts()) == (2, 0)
    watch.update([position("A", 4)])  # received
    assert (watch.sold_out, watch.take_stockouts()) == (1, 0)
    watch.update([position("A", 4, committed=4), position("EMPTY", 0)])
    assert (watch.sold_out, watch.take_stockouts()) == (2, 1)


def test_hold_endings_give_ages_and_expiry_lag() -> None:
    def part(reservation_id: str, state: PartState) -> Part:
        return Part(reservation_id, "f", (Line("A", "DC-1", 1),), state, created_at=100.0, expires_at=160.0)

    parts = {7: {p.reservation_id: p for p in (part("c", PartState.CONFIRMED), part("e", PartState.EXPIRED))}}
    endings = HoldEndings()
    events = {
        7: [
            PartChanged("c", PartState.CONFIRMED, 130.0),
            PartChanged("e", PartState.EXPIRED, 160.0),
            PartChanged("unknown", PartState.RELEASED, 150.0),
        ]
    }
    endings.note(events, parts, now=161.5)  # type: ignore[arg-type]
    assert endings.take() == ([("confirmed", 30.0), ("expired", 60.0)], [1.5])
    assert endings.take() == ([], [])


async def test_queue_depth_per_shard_is_read_when_scraped() -> None:
    release = asyncio.Event()

    async def slow_shard(batch: list[int]) -> list[int]:
        await release.wait()
        return batch

    batchers = [ShardBatcher(slow_shard), ShardBatcher(slow_shard)]
    metrics = Metrics()
    metrics.watch_queues([lambda b=b: b.queued for b in batchers])  # type: ignore[misc]
    first = asyncio.ensure_future(batchers[0].submit([1]))  # goes out at once
    waiting = asyncio.ensure_future(batchers[0].submit([2, 3]))  # waits for that call
    await asyncio.sleep(0)
    text = generate_latest(metrics.registry).decode()
    assert 'omnistock_shard_queued_commands{shard="0"} 2.0' in text
    assert 'omnistock_shard_queued_commands{shard="1"} 0.0' in text
    assert "omnistock_gateway_queued_commands 2.0" in text
    release.set()
    assert await asyncio.gather(first, waiting) == [[1], [2, 3]]
    assert 'omnistock_shard_queued_commands{shard="0"} 0.0' in generate_latest(metrics.registry).decode()
