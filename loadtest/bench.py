"""A lean closed-loop load generator: N concurrent callers, each issuing calls back to back.

    python -m loadtest.bench [--target HOST:PORT] [--seconds 10] [--concurrency 64] [--json]

Without --target it starts its own service (embedded Redis, local Ray) and stops it after.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from gateway.client import OmnistockClient, OmnistockRpcError, level, line
from protos.gen.omnistock.v1 import common_pb2, network_pb2

SKUS = 2_000
NODES = [f"BENCH-DC-{i}" for i in range(4)]


@dataclass
class Stats:
    scenario: str
    calls: int
    errors: int
    seconds: float
    per_second: float
    p50_ms: float
    p99_ms: float
    max_ms: float


async def run(name: str, call: Callable[[int], Awaitable[object]], concurrency: int, seconds: float) -> Stats:
    latencies: list[float] = []
    errors = 0
    counter = itertools.count()
    deadline = time.perf_counter() + seconds

    async def caller() -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                await call(next(counter))
            except OmnistockRpcError:
                errors += 1
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    ordered = sorted(latencies) or [0.0]
    return Stats(
        name,
        len(latencies),
        errors,
        round(elapsed, 2),
        round(len(latencies) / elapsed, 1),
        round(statistics.median(ordered) * 1000, 2),
        round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 2),
        round(ordered[-1] * 1000, 2),
    )


SHIP_TO = (51.5, -0.12)
CHANNEL = "bench-web"


async def prepare(client: OmnistockClient) -> None:
    await client.put_nodes(
        [
            common_pb2.Node(
                node_id=n,
                type=common_pb2.NODE_TYPE_DC,
                ships=True,
                enabled=True,
                latitude=50.0 + i,
                longitude=-1.0 - i,
                priority=i % 2,
            )
            for i, n in enumerate(NODES)
        ]
    )
    await client.put_groups([network_pb2.NodeGroup(group_id="bench-dcs", node_ids=NODES)])
    await client.put_channels([network_pb2.Channel(channel_id=CHANNEL, groups=["bench-dcs"])])
    await client.load_stock(level(f"B-{s:05d}", n, 1_000_000) for s in range(SKUS) for n in NODES)


async def bench(target: str, seconds: float, concurrency: int) -> list[Stats]:
    run_id = os.urandom(4).hex()
    async with OmnistockClient(target) as client:
        await prepare(client)
        page = [f"B-{s:05d}" for s in range(200)]
        scenarios: list[tuple[str, Callable[[int], Awaitable[object]]]] = [
            (
                "reserve 1 line",
                lambda i: client.reserve(f"{run_id}-{i}", [line(f"B-{i % SKUS:05d}", NODES[i % 4], 1)], 60),
            ),
            (
                "reserve 1 line sourced",
                lambda i: client.reserve(
                    f"{run_id}-s{i}", [line(f"B-{i % SKUS:05d}", "", 1)], 60, CHANNEL, ship_to=SHIP_TO
                ),
            ),
            ("availability 1 sku", lambda i: client.availability([f"B-{i % SKUS:05d}"])),
            ("availability 200 skus", lambda i: client.availability(page)),
        ]
        results = [await run(name, call, concurrency, seconds) for name, call in scenarios]
        results.append(await freshness(client, run_id, seconds))
        return results


async def freshness(client: OmnistockClient, run_id: str, seconds: float) -> Stats:
    """Write-to-visible delay of the network view: adjust a position, then read the view
    until the new on_hand shows (while the other scenarios' holds are still open)."""
    delays: list[float] = []
    deadline = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < deadline:
        sku = f"B-{n % SKUS:05d}"
        written = await client.adjust(f"{run_id}-fresh-{n}", sku, NODES[0], 1, "bench")
        started = time.perf_counter()
        while True:
            answer = await client.availability([sku], include_nodes=True)
            on_hand = {p.node_id: p.on_hand for p in answer.skus[0].nodes}.get(NODES[0])
            if on_hand == written.position.on_hand:
                break
            await asyncio.sleep(0.001)
        delays.append(time.perf_counter() - started)
        n += 1
    ordered = sorted(delays)
    return Stats(
        "view write-to-visible",
        len(delays),
        0,
        round(seconds, 2),
        0.0,
        round(statistics.median(ordered) * 1000, 2),
        round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 2),
        round(ordered[-1] * 1000, 2),
    )


async def main_async(args: argparse.Namespace) -> list[Stats]:
    if args.target:
        return await bench(args.target, args.seconds, args.concurrency)
    from gateway.service import Service, ServiceConfig

    with tempfile.TemporaryDirectory() as data_dir:
        config = ServiceConfig(port=0, metrics_port=None, shards=args.shards, data_dir=Path(data_dir))
        service = await Service(config).start()
        try:
            return await bench(f"127.0.0.1:{service.port}", args.seconds, args.concurrency)
        finally:
            await service.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description="Measure reserve and availability rates.")
    parser.add_argument("--target", help="HOST:PORT of a running omnistock (default: start one)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--shards", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = asyncio.run(main_async(args))
    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=2))
        return
    print(f"{'scenario':<24}{'calls/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'errors':>8}")
    for r in results:
        print(
            f"{r.scenario:<24}{r.per_second:>10.0f}{r.p50_ms:>9.2f}{r.p99_ms:>9.2f}{r.max_ms:>9.2f}{r.errors:>8}"
        )


if __name__ == "__main__":
    main()
