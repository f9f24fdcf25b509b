"""What one shard batch's journal write costs Redis: the append script, fsynced.

    .venv/bin/python scripts/bench_journal.py [--batches 2000] [--sizes 1,10,50] [--fsync always]
        [--cluster]

Starts the embedded Redis (the one `omnistock serve` runs) with `appendfsync always` in a
temporary data dir, and appends batches of N single-line Reserves (each: record the
attempt at its home, place the hold, decide, as the coordinator sends them; one batch is
what a shard writes in one call) through the shard's own RedisJournal. For each N it
prints the median and p99 wall time of one append and the CPU seconds redis-server spent
per append (its user + system time over the run, from /proc): the first bounds a shard's
batches per second, the second is what a Redis core can carry. `--json` prints them for
docs/cluster.md and `omnistock size`.

`--cluster` runs the same appends on a Redis Cluster of 3 masters and 3 replicas on
loopback (the test suite's, tests/redis_cluster.py, every node fsyncing always): one script
call per journal group a batch touches, pipelined to the masters; the CPU is every node's,
replicas included.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil
import redis

from omnistock.gateway.runtime.embedded_redis import EmbeddedRedis
from omnistock.reservations.domain.commands import Command, DecideHold, PlaceHold, RecordClaim, SetStock
from omnistock.reservations.domain.model import Line, fingerprint
from omnistock.reservations.domain.partition import Partition
from omnistock.reservations.shard.journal import RedisJournal, RedisKeys
from omnistock.reservations.shard.redis_connect import SyncClient, connect_sync
from omnistock.reservations.shard.state import ShardState

PARTITIONS = 256


def reserves(batch: int, size: int, now: float) -> list[Command]:
    """`size` single-line Reserves spread over the partitions, three commands each."""
    commands: list[Command] = []
    for i in range(size):
        number = (batch * size + i) * 7919 % PARTITIONS
        home = (number * 31 + 7) % PARTITIONS
        rid, attempt = f"r{batch}-{size}-{i}", f"a{batch}-{size}-{i}"
        lines = (Line(f"SKU-{number}", "DC-1", 1),)
        digest = fingerprint(lines, "")
        commands.append(RecordClaim(home, rid, digest, (number,), now, attempt=attempt, expires_at=now + 600))
        commands.append(PlaceHold(number, rid, digest, lines, now, now + 600, attempt=attempt, home=home))
        commands.append(DecideHold(home, rid, attempt))
    return commands


def redis_cpu_seconds(pid: int) -> float:
    """redis-server's CPU time so far (the launcher's child, when a watchdog runs it)."""
    process = psutil.Process(pid)
    found = [p for p in [process, *process.children(recursive=True)] if "server" in p.name()]
    times = (found or [process])[-1].cpu_times()
    return float(times.user + times.system)


def measure(
    client: SyncClient, pids: list[int], size: int, batches: int, masters: list[int] | None = None
) -> dict[str, float]:
    """`masters`: of `pids`, the masters' (a cluster), whose CPU is reported apart too."""
    state = ShardState((Partition(n) for n in range(PARTITIONS)), epoch="bench")
    journal = RedisJournal(client, RedisKeys(f"bench{size}"), snapshot_every=10**9)
    journal.claim(range(PARTITIONS))
    now = time.time()
    state.apply_batch([SetStock(n, f"SKU-{n}", "DC-1", 10**9, 0.0) for n in range(PARTITIONS)], now)
    seconds: list[float] = []
    partitions: list[int] = []
    cpu_before = {pid: redis_cpu_seconds(pid) for pid in pids}
    for b in range(batches):
        events = state.apply_batch(reserves(b, size, now), now).events
        started = time.perf_counter()
        journal.append(events)
        seconds.append(time.perf_counter() - started)
        partitions.append(len(events))
    spent = {pid: redis_cpu_seconds(pid) - before for pid, before in cpu_before.items()}
    cpu = sum(spent.values())
    seconds.sort()
    return {
        "reserves_per_batch": size,
        "partitions_per_batch": statistics.mean(partitions),
        "median_ms": statistics.median(seconds) * 1000,
        "p99_ms": seconds[int(len(seconds) * 0.99) - 1] * 1000,
        "redis_cpu_ms": cpu / batches * 1000,
        **(
            {"masters_cpu_ms": sum(spent[pid] for pid in masters) / batches * 1000}
            if masters is not None
            else {}
        ),
    }


def on_cluster(data_dir: Path, sizes: list[int], batches: int) -> tuple[list[dict[str, float]], str]:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.redis_cluster import RedisCluster  # the suite's fixture: scripts are run from a checkout

    cluster = RedisCluster(data_dir).start()
    try:
        client = connect_sync(cluster.url, socket_timeout=10.0, retries=0)
        pids = [node.process.pid for node in cluster.nodes if node.process is not None]
        masters = [node.process.pid for node in cluster.masters() if node.process is not None]
        rows = [measure(client, pids, size, batches, masters) for size in sizes]
        client.close()
        return rows, f"Redis Cluster of 3 masters + 3 replicas ({cluster.server.describe()})"
    finally:
        cluster.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=2000)
    parser.add_argument("--sizes", default="1,10,50", help="Reserves per batch, comma-separated")
    parser.add_argument("--fsync", choices=["always", "everysec"], default="always")
    parser.add_argument("--cluster", action="store_true", help="a Redis Cluster of 3 masters + 3 replicas")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="omnistock-bench-journal-") as data_dir:
        if args.cluster:
            rows, source = on_cluster(Path(data_dir), sizes, args.batches)
        else:
            server = EmbeddedRedis(Path(data_dir), fsync=args.fsync).start()
            try:
                client = redis.Redis.from_url(server.url)
                assert server.pid is not None
                rows = [measure(client, [server.pid], size, args.batches) for size in sizes]
                client.close()
                source = server.server.describe()
            finally:
                server.stop()
    if args.json:
        json.dump({"redis": source, "fsync": args.fsync, "cpus": os.cpu_count(), "batches": rows}, sys.stdout)
        print()
        return 0
    print(f"{source}, appendfsync {args.fsync}, {args.batches} appends per size")
    masters = "masters_cpu_ms" in rows[0]
    print(
        f"{'reserves':>9}{'partitions':>12}{'median ms':>11}{'p99 ms':>9}{'redis cpu ms':>14}"
        + (f"{'masters cpu ms':>16}" if masters else "")
    )
    for row in rows:
        print(
            f"{row['reserves_per_batch']:>9}{row['partitions_per_batch']:>12.1f}{row['median_ms']:>11.3f}"
            f"{row['p99_ms']:>9.3f}{row['redis_cpu_ms']:>14.3f}"
            + (f"{row['masters_cpu_ms']:>16.3f}" if masters else "")
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
