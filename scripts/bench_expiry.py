"""How late a hold's units come back after its expires_at, for holds that span two shards.

    .venv/bin/python scripts/bench_expiry.py [--holds 2000] [--ttl 3] [--rate 400] [--busy] [--json]

Starts a whole service in this process (embedded redis-server in a temporary directory, a
local Ray with 2 CPUs, two shards, one gateway), places --holds reservations of one unit
of a SKU on each shard at --rate a second, each expiring --ttl seconds after it was made,
and lets them expire. Each shard reports, for every part it expired, how long after
expires_at the expiry was journaled there (the units free again): the home decides at
expires_at and the part in the other shard takes the step when a gateway carries it. With
--busy, callers keep reserving and reading availability meanwhile. Prints p50, p99 and max
in ms (JSON with --json).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from omnistock.client import OmnistockClient, OmnistockRpcError, level, line
from omnistock.gateway.runtime.event_loop import loop_runner
from omnistock.gateway.runtime.service import Service, ServiceConfig
from omnistock.protos.gen.omnistock.v1 import common_pb2
from omnistock.reservations.domain.placement import partition_of, shard_of

PARTITIONS = 64


def sku_on(shard: int, prefix: str) -> str:
    return next(
        f"{prefix}-{i}"
        for i in range(10_000)
        if shard_of(partition_of(f"{prefix}-{i}", PARTITIONS), 2) == shard
    )


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        config = ServiceConfig(
            port=0,
            metrics_port=None,
            shards=2,
            partitions=PARTITIONS,
            data_dir=Path(tmp),
            ray_cpus=2,
            stats_interval=3600.0,  # the figures are this script's to take
            audit_interval=0.0,
        )
        service = await Service(config).start()
        try:
            return await run(service, args)
        finally:
            await service.stop(grace=1)


async def run(service: Service, args: argparse.Namespace) -> dict[str, Any]:
    first, second = sku_on(0, "EXP"), sku_on(1, "EXP")
    async with OmnistockClient(f"127.0.0.1:{service.port}", timeout=30) as client:
        node = common_pb2.Node(node_id="DC-1", type=common_pb2.NODE_TYPE_DC, ships=True, enabled=True)
        await client.put_nodes([node])
        await client.set_stock([level(first, "DC-1", 10**9), level(second, "DC-1", 10**9)])
        for shard in service.shards:  # what came before the run is not counted
            await shard.stats.remote()
        stop = asyncio.Event()
        busy = [
            asyncio.create_task(keep_busy(client, first, second, stop, i))
            for i in range(8 if args.busy else 0)
        ]
        started = time.monotonic()
        for i in range(args.holds):
            lines = [line(first, "DC-1", 1), line(second, "DC-1", 1)]
            await client.reserve(f"exp-{i}", lines, args.ttl)
            ahead = started + (i + 1) / args.rate - time.monotonic()
            if ahead > 0:
                await asyncio.sleep(ahead)
        await asyncio.sleep(args.ttl + 2.0)
        stop.set()
        await asyncio.gather(*busy)
        lags: list[float] = []
        for shard in service.shards:
            lags.extend((await shard.stats.remote()).expiry_lags)
    lags.sort()
    ms = [lag * 1000 for lag in lags]
    return {
        "parts_expired": len(ms),
        "p50_ms": round(statistics.median(ms), 1),
        "p99_ms": round(ms[int(len(ms) * 0.99) - 1], 1),
        "max_ms": round(ms[-1], 1),
        "holds": args.holds,
        "rate": args.rate,
        "busy": args.busy,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "commit": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip(),
    }


async def keep_busy(
    client: OmnistockClient, first: str, second: str, stop: asyncio.Event, caller: int
) -> None:
    made = 0
    while not stop.is_set():
        made += 1
        try:
            await client.reserve(
                f"busy-{caller}-{made}", [line(first, "DC-1", 1), line(second, "DC-1", 1)], 600
            )
            await client.availability([first, second])
        except OmnistockRpcError:
            await asyncio.sleep(0.01)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--holds", type=int, default=2000)
    parser.add_argument("--ttl", type=int, default=3, help="seconds each hold lives")
    parser.add_argument("--rate", type=float, default=400.0, help="holds placed a second")
    parser.add_argument("--busy", action="store_true", help="reserve and read availability meanwhile")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = loop_runner()(measure(args))
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{result['parts_expired']} parts expired: units back p50 {result['p50_ms']} ms,"
            f" p99 {result['p99_ms']} ms, max {result['max_ms']} ms after expires_at"
            f" ({'busy' if args.busy else 'idle'}, {result['machine']}, commit {result['commit']})"
        )


if __name__ == "__main__":
    main()
