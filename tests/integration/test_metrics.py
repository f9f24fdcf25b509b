"""The SRE's metrics move on a running service: scraped from its real /metrics."""

from __future__ import annotations

from typing import Any

import pytest
import ray
import redis

from omnistock.client import OmnistockClient, OmnistockRpcError, level, line
from omnistock.gateway.runtime.embedded_redis import EmbeddedRedis
from tests.integration.conftest import NODES
from tests.integration.scrape import Samples, eventually, scrape, total

FAST = {"metrics_port": 0, "stats_interval": 0.2}


def outcomes(samples: Samples) -> dict[str, float]:
    names = ("held", "refused_short", "confirmed", "released", "expired", "fulfilled", "returned")
    return {name: total(samples, "omnistock_reservations_total", outcome=name) for name in names}


async def test_reservation_outcomes_units_hold_ages_expiry_and_stockouts(make_service: Any) -> None:
    service = await make_service(**FAST)
    port = service.metrics_port
    start = scrape(port)
    assert set(outcomes(start).values()) == {0.0}  # every outcome is exported before it happens
    async with OmnistockClient(f"127.0.0.1:{service.port}") as client:
        await client.put_nodes(NODES)
        await client.set_stock([level("MX", "DC-1", 10), level("MY", "DC-2", 3)])
        await client.reserve("m-held", [line("MX", "DC-1", 2)])
        await client.reserve("m-confirm", [line("MX", "DC-1", 3)])
        await client.confirm("m-confirm")
        await client.reserve("m-release", [line("MX", "DC-1", 1)])
        await client.release("m-release")
        with pytest.raises(OmnistockRpcError):
            await client.reserve("m-short", [line("MX", "DC-1", 100)])

        samples = await eventually(
            port,
            lambda s: total(s, "omnistock_units_held") == 2 and total(s, "omnistock_units_committed") == 3,
        )
        assert (total(samples, "omnistock_units_held"), total(samples, "omnistock_units_committed")) == (2, 3)
        assert total(samples, "omnistock_hold_age_seconds_count", outcome="confirmed") == 1
        assert total(samples, "omnistock_hold_age_seconds_count", outcome="released") == 1

        await client.fulfil("m-confirm", "ship-1", [line("MX", "DC-1", 3)])
        await client.return_units("m-confirm", "ret-1", "MX", "DC-1", "DC-1", 1)

        # The last unit of MY at DC-2 held: the position sold out, until the hold is released.
        await client.reserve("m-last", [line("MY", "DC-2", 3)])
        samples = await eventually(port, lambda s: total(s, "omnistock_positions_sold_out") == 1)
        assert total(samples, "omnistock_positions_sold_out") == 1
        assert total(samples, "omnistock_stockouts_total") == 1
        await client.release("m-last")

        await client.reserve("m-expire", [line("MY", "DC-2", 1)], ttl_seconds=1)
        samples = await eventually(
            port,
            lambda s: (
                total(s, "omnistock_reservations_total", outcome="expired") >= 1
                and total(s, "omnistock_units_held") == 2
            ),
        )

    assert outcomes(samples) == {
        "held": 5,
        "refused_short": 1,
        "confirmed": 1,
        "released": 2,
        "expired": 1,
        "fulfilled": 1,
        "returned": 1,
    }
    assert (total(samples, "omnistock_units_held"), total(samples, "omnistock_units_committed")) == (2, 0)
    assert total(samples, "omnistock_positions_sold_out") == 0
    assert total(samples, "omnistock_stockouts_total") == 1
    # The expired hold lived its 1 s TTL; its units came back after expires_at, never before.
    assert total(samples, "omnistock_hold_age_seconds_count", outcome="expired") == 1
    assert 0.9 <= total(samples, "omnistock_hold_age_seconds_sum", outcome="expired") <= 1.5
    assert total(samples, "omnistock_expiry_lag_seconds_count") == 1
    assert 0.0 <= total(samples, "omnistock_expiry_lag_seconds_sum") < 30  # generous sanity bound
    for shard in ("0", "1"):
        assert ("omnistock_shard_queued_commands", frozenset({("shard", shard)})) in samples
        assert total(samples, "omnistock_shard_up", shard=shard) == 1


async def test_restarted_shard_is_counted_with_its_recovery_time(make_service: Any) -> None:
    service = await make_service(**FAST)
    port = service.metrics_port
    samples = await eventually(port, lambda s: total(s, "omnistock_shard_recovery_seconds_count") == 2)
    assert total(samples, "omnistock_shard_recovery_seconds_count", shard="0") == 1  # the start
    assert total(samples, "omnistock_shard_restarts_total") == 0
    async with OmnistockClient(f"127.0.0.1:{service.port}") as client:
        await client.put_nodes(NODES)
        await client.set_stock([level("R", "DC-1", 5)])
        await client.reserve("r-held", [line("R", "DC-1", 2)])
        await eventually(port, lambda s: total(s, "omnistock_units_held") == 2)

        ray.kill(service.shards[0], no_restart=False)
        await client.availability(["R"], consistent=True)  # waits for the shards to serve again
        samples = await eventually(
            port,
            lambda s: (
                total(s, "omnistock_shard_restarts_total", shard="0") == 1
                and total(s, "omnistock_shard_recovery_seconds_count", shard="0") == 2
            ),
        )
    assert total(samples, "omnistock_shard_restarts_total", shard="0") == 1
    assert total(samples, "omnistock_shard_restarts_total", shard="1") == 0
    assert total(samples, "omnistock_shard_recovery_seconds_count", shard="0") == 2
    assert total(samples, "omnistock_shard_up", shard="0") == 1
    # The restarted shard rebuilt its holds, and the gauge kept its series.
    assert total(samples, "omnistock_units_held") == 2


async def test_failed_journal_writes_are_counted(make_service: Any, redis_server: EmbeddedRedis) -> None:
    service = await make_service(**FAST)
    port = service.metrics_port
    admin = redis.Redis.from_url(redis_server.url)
    async with OmnistockClient(f"127.0.0.1:{service.port}") as client:
        await client.put_nodes(NODES)
        await client.set_stock([level("JF", "DC-1", 5)])
        assert total(scrape(port), "omnistock_journal_write_failures_total") == 0
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", "1")  # every write is now refused with OOM
        try:
            with pytest.raises(OmnistockRpcError):
                await client.reserve("jf-1", [line("JF", "DC-1", 1)])
        finally:
            admin.config_set("maxmemory", "0")
    samples = await eventually(port, lambda s: total(s, "omnistock_journal_write_failures_total") >= 1)
    # One Reserve writes its claim and its hold (each may fail); each failure rebuilt its shard.
    failures = total(samples, "omnistock_journal_write_failures_total")
    assert 1 <= failures <= 2
    assert total(samples, "omnistock_shard_recovery_seconds_count") == 2 + failures
    assert total(samples, "omnistock_rpc_requests_total", method="Reserve", code="UNAVAILABLE") == 1


async def test_a_shard_call_splits_into_the_shards_work_and_its_transport(make_service: Any) -> None:
    service = await make_service(metrics_port=0)
    async with OmnistockClient(f"127.0.0.1:{service.port}") as client:
        await client.put_nodes(NODES)
        await client.set_stock([level(f"MT-{i}", "DC-1", 5) for i in range(20)])
        for i in range(20):
            await client.reserve(f"mt-{i}", [line(f"MT-{i}", "DC-1", 1)])
    samples = scrape(service.metrics_port)
    calls = total(samples, "omnistock_shard_call_seconds_count")
    assert calls >= 20
    # One transport figure for every call observed, each the round trip less the shard's own time.
    assert total(samples, "omnistock_shard_transport_seconds_count") == calls
    round_trips = total(samples, "omnistock_shard_call_seconds_sum")
    transport = total(samples, "omnistock_shard_transport_seconds_sum")
    assert 0 < transport < round_trips
    # What the shard said it spent covers at least its apply and journal write.
    shard_work = round_trips - transport
    applied = total(samples, "omnistock_shard_apply_seconds_sum")
    assert shard_work >= applied + total(samples, "omnistock_journal_write_seconds_sum")
