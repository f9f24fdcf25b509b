"""`omnistock shards` and `omnistock scale --shards N`: the shards, and changing their number
while the service serves (ShardService; ops:read and ops:admin)."""

from __future__ import annotations

import argparse

from omnistock.cli.common import EXIT_OK
from omnistock.cli.output import Output, table, to_dict
from omnistock.client import OmnistockClient
from omnistock.protos.gen.omnistock.v1 import shards_pb2


def shards_count(count: int) -> str:
    return f"{count} shard" if count == 1 else f"{count} shards"


def shards_text(response: shards_pb2.GetShardsResponse) -> str:
    rows = [(str(shard.index), str(shard.partitions)) for shard in response.shards]
    lines = [
        f"{shards_count(len(response.shards))}, {response.partitions} partitions"
        f" (placement version {response.placement_version})",
        table(["SHARD", "PARTITIONS"], rows),
    ]
    if response.scaling_to:
        lines.append(f"a change to {response.scaling_to} shards is under way")
    return "\n".join(lines)


async def cmd_shards(client: OmnistockClient, args: argparse.Namespace, out: Output) -> int:
    response = await client.shards()
    out.result(response, shards_text(response))
    return EXIT_OK


async def cmd_scale(client: OmnistockClient, args: argparse.Namespace, out: Output) -> int:
    last: shards_pb2.ScaleShardsResponse | None = None
    async for progress in client.scale_shards(args.shards):
        last = progress
        if progress.done:
            break
        if not progress.partitions_moved:
            out.note(
                f"{progress.shards_from} -> {shards_count(progress.shards_to)}:"
                f" {progress.partitions_to_move} partitions to move"
            )
        elif (
            progress.partitions_moved % args.every == 0
            or progress.partitions_moved == progress.partitions_to_move
        ):
            out.note(
                f"  moved {progress.partitions_moved}/{progress.partitions_to_move}"
                f" (partition {progress.partition}: shard {progress.from_shard} -> {progress.to_shard})"
            )
    assert last is not None and last.done  # the stream ends with done, or raises
    out.result(
        to_dict(last),
        f"{shards_count(last.shards_to)} serving ({last.partitions_moved} partitions moved from"
        f" {shards_count(last.shards_from)})",
    )
    return EXIT_OK
