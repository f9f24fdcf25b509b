"""A shard keeps what it holds out of the garbage collector's full scans while it takes batches."""

from __future__ import annotations

import gc
import time

from omnistock.gateway.runtime.embedded_redis import EmbeddedRedis
from omnistock.reservations.shard import wire
from omnistock.reservations.shard.actor import Shard, ShardConfig


def test_a_running_shard_settles_its_heap(redis_server: EmbeddedRedis) -> None:
    config = ShardConfig(0, (0, 1), redis_server.url, prefix="heap-test", settle_seconds=0.2)
    shard = Shard(config)  # settles once after recovery
    try:
        after_start = gc.get_freeze_count()
        assert after_start > 0
        grown = [[n] for n in range(5_000)]  # what piles up while it serves: open holds
        shard.apply_packed(wire.pack([]))  # too soon after the last time: nothing settled
        assert gc.get_freeze_count() == after_start
        time.sleep(0.3)
        shard.apply_packed(wire.pack([]))
        assert gc.get_freeze_count() >= after_start + len(grown)
    finally:
        shard.close()
        gc.unfreeze()  # the rest of the test session collects as usual
