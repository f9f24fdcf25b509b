"""One shard call's round trip: a Ray actor call against the batch port, into the same actor.

    .venv/bin/python scripts/bench_batch_port.py [--seconds 3] [--rounds 2] [--bytes 2000]

Starts a local Ray (2 CPUs, no dashboard) and one actor that answers a blob of bytes both
as an actor method and through a BatchPort, then calls it back to back from a uvloop event
loop, the gateway's, one way then the other, for --seconds each, --rounds times. Prints the
mean, p50 and p99 of each round trip in ms (JSON with --json). Nothing of the shard runs:
this is the transport alone.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import ray

from omnistock.gateway.runtime.event_loop import loop_runner
from omnistock.gateway.transport.shard_link import ShardLink
from omnistock.reservations.shard.batch_port import BatchPort


class Answerer:
    """A stand-in shard: replies with the first bytes of what it gets, under a lock, as
    Shard.apply_packed does."""

    def __init__(self) -> None:
        self._port: BatchPort | None = None

    def answer(self, batch: bytes) -> bytes:
        return batch[:1500]

    def batch_endpoint(self) -> tuple[str, int, bytes]:
        if self._port is None:
            self._port = BatchPort(self.answer, ray.util.get_node_ip_address())
        return self._port.endpoint


async def timed(call: Callable[[], Awaitable[Any]], seconds: float) -> dict[str, float]:
    for _ in range(50):  # warm up
        await call()
    took: list[float] = []
    ends = time.perf_counter() + seconds
    while time.perf_counter() < ends:
        started = time.perf_counter()
        await call()
        took.append(time.perf_counter() - started)
    took.sort()
    return {
        "calls": len(took),
        "mean_ms": round(statistics.mean(took) * 1e3, 3),
        "p50_ms": round(took[len(took) // 2] * 1e3, 3),
        "p99_ms": round(took[int(len(took) * 0.99)] * 1e3, 3),
    }


async def main(seconds: float, rounds: int, size: int) -> list[dict[str, Any]]:
    actor = ray.remote(Answerer).options(num_cpus=0).remote()
    link = ShardLink(0, actor)
    payload = os.urandom(size)
    ways: dict[str, Callable[[], Awaitable[Any]]] = {
        "ray actor call": lambda: actor.answer.remote(payload),
        "batch port": lambda: link.call(payload),
    }
    results = []
    for round_ in range(1, rounds + 1):
        for way, call in ways.items():
            results.append({"round": round_, "way": way, **await timed(call, seconds)})
    link.close()
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--bytes", type=int, default=2000, help="size of the blob sent (default 2000)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    try:
        results = loop_runner()(main(args.seconds, args.rounds, args.bytes))
    finally:
        ray.shutdown()
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            print(
                f"round {r['round']}  {r['way']:15s} {r['calls']:7,d} calls  mean {r['mean_ms']:.3f} ms"
                f"  p50 {r['p50_ms']:.3f}  p99 {r['p99_ms']:.3f}"
            )
