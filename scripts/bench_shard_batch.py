"""What one shard batch costs in process: the pure ShardState, no Ray, no Redis.

    .venv/bin/python scripts/bench_shard_batch.py [--partitions 256] [--batches 20000]

Each batch is 8 single-line Reserves spread over the partitions, each as the coordinator
sends it to one shard (record the attempt at its home, place the hold, decide), then the
read of the feed the shard actor makes after every batch (changes_since). Prints the
median time per batch over all but the first tenth; the holds stay open (a 10-minute
TTL), as at a peak.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from omnistock.reservations.domain.commands import Command, DecideHold, PlaceHold, RecordClaim, SetStock
from omnistock.reservations.domain.model import Line, fingerprint
from omnistock.reservations.domain.partition import Partition
from omnistock.reservations.shard.state import ShardState

HOLDS_PER_BATCH = 8


def measure(partitions: int, batches: int) -> float:
    """Median seconds per batch."""
    state = ShardState((Partition(n) for n in range(partitions)), epoch="bench")
    now = 1_000.0
    state.apply_batch([SetStock(n, f"SKU-{n}", "DC-1", 10**9, 0.0) for n in range(partitions)], now)
    seconds = []
    for b in range(batches):
        batch: list[Command] = []
        for i in range(HOLDS_PER_BATCH):
            number = (b * HOLDS_PER_BATCH + i) * 7919 % partitions
            home = (number * 31 + 7) % partitions
            rid, attempt = f"r{b}-{i}", f"a{b}-{i}"
            lines = (Line(f"SKU-{number}", "DC-1", 1),)
            digest = fingerprint(lines, "")
            batch.append(
                RecordClaim(home, rid, digest, (number,), now, attempt=attempt, expires_at=now + 600)
            )
            batch.append(PlaceHold(number, rid, digest, lines, now, now + 600, attempt=attempt, home=home))
            batch.append(DecideHold(home, rid, attempt))
        started = time.perf_counter()
        since = state.version
        state.apply_batch(batch, now)
        state.changes_since("bench", since)
        seconds.append(time.perf_counter() - started)
        now += 0.01
    return statistics.median(seconds[batches // 10 :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--partitions", type=int, default=256, help="partitions the shard owns (default 256)")
    parser.add_argument("--batches", type=int, default=20_000, help="batches to time (default 20000)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a sentence")
    args = parser.parse_args()
    median = measure(args.partitions, args.batches)
    if args.json:
        report = {"partitions": args.partitions, "batches": args.batches, "median_us": round(median * 1e6, 1)}
        print(json.dumps(report))
    else:
        print(
            f"{median * 1e6:.1f} µs per batch of {HOLDS_PER_BATCH} holds over {args.partitions} partitions "
            f"(median of {args.batches - args.batches // 10} batches)"
        )


if __name__ == "__main__":
    main()
