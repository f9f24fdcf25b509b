"""A gateway following network changes stops when told to, even when the Redis client loses
the cancel (redis-py does when it lands as its read times out)."""

from __future__ import annotations

import asyncio
from typing import Any

from omnistock.gateway.grpc.convert import Limits
from omnistock.gateway.grpc.network_store import NetworkStore
from omnistock.reservations.shard.journal import RedisKeys


class CancelLosingPubSub:
    async def subscribe(self, *channels: str) -> None:
        pass

    async def get_message(self, timeout: float) -> None:
        try:
            await asyncio.sleep(timeout)
        except asyncio.CancelledError:
            return None  # the cancel is gone, as with a read timing out at the same moment
        return None

    async def aclose(self) -> None:
        pass


class NothingStored:
    def pubsub(self, **options: Any) -> CancelLosingPubSub:
        return CancelLosingPubSub()

    async def get(self, key: str) -> None:
        return None


async def test_following_ends_when_cancelled_even_if_the_client_loses_the_cancel() -> None:
    store = NetworkStore(NothingStored(), RedisKeys("t"), Limits())  # type: ignore[arg-type]
    following = asyncio.create_task(store.follow(lambda: None, every=0.05))
    await asyncio.sleep(0.1)
    following.cancel()
    done, _ = await asyncio.wait({following}, timeout=2)
    assert done and following.cancelled()  # else serve would wait for it forever when stopping
