"""Stock counts in and positions out: absolute counts, adjustments and expected supply sent to
the partitions that own their SKUs, and positions read strongly consistently from them."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from omnistock.availability.network import Network
from omnistock.availability.positions import PositionView
from omnistock.gateway.usecases.network_rules import require_nodes
from omnistock.gateway.usecases.reservations import Execute
from omnistock.reservations.domain.commands import (
    AdjustResult,
    AdjustStock,
    ExpectSupply,
    LoadLevels,
    LoadResult,
    PositionsResult,
    ReadPositions,
)
from omnistock.reservations.domain.model import LevelColumns


class Stock:
    def __init__(self, execute: Execute, partition_of: Callable[[str], int], network: Callable[[], Network]):
        self._execute = execute
        self._partition_of = partition_of
        self._network = network

    async def set_levels(self, levels: LevelColumns, by: str = "") -> tuple[int, int]:
        """Apply absolute counts sent by `by` (the caller's label); returns (applied, stale)."""
        require_nodes(self._network(), set(levels.node_id))
        # A SKU's nodes come together: one partition lookup a run of them.
        by_partition: dict[int, list[tuple[int, int]]] = {}
        for sku, start, end in levels.sku_runs():
            by_partition.setdefault(self._partition_of(sku), []).append((start, end))
        results = await self._execute([LoadLevels(p, levels.runs(r), by) for p, r in by_partition.items()])
        loaded = [r for r in results if isinstance(r, LoadResult)]
        return sum(r.applied for r in loaded), sum(r.stale for r in loaded)

    async def positions(self, skus: list[str]) -> dict[str, list[PositionView]]:
        """Every position of these SKUs, read from their partitions (not from a view)."""
        by_partition: dict[int, list[str]] = {}
        for sku in dict.fromkeys(skus):
            by_partition.setdefault(self._partition_of(sku), []).append(sku)
        results = await self._execute([ReadPositions(p, tuple(s)) for p, s in by_partition.items()])
        found: dict[str, list[PositionView]] = {sku: [] for sku in skus}
        for result in results:
            assert isinstance(result, PositionsResult)
            for position in result.positions:
                found[position.sku].append(position)
        return found

    async def adjust(self, adjustments: Sequence[AdjustStock]) -> list[tuple[AdjustResult, int]]:
        """Apply relative changes (each once by its id); returns each result with the units
        available at its node afterwards (none at a disabled node)."""
        network = self._network()
        require_nodes(network, {a.node_id for a in adjustments})
        results = await self._execute(list(adjustments))
        answers = []
        for adjustment, result in zip(adjustments, results, strict=True):
            assert isinstance(result, AdjustResult)
            node = network.nodes.get(adjustment.node_id)
            answers.append((result, result.position.available if node and node.enabled else 0))
        return answers

    async def expect_supply(self, supplies: Sequence[ExpectSupply]) -> int:
        """Record purchase orders and transfers on their way; returns how many were applied."""
        require_nodes(self._network(), {s.node_id for s in supplies})
        await self._execute(list(supplies))
        return len(supplies)

    def partition(self, sku: str) -> int:
        return self._partition_of(sku)
