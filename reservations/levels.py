"""Stock counts loaded in bulk and not touched since, kept in arrays (pure).

A retailer's catalog is millions of SKU x node positions, and most of them only ever get
a count from a LoadStock until the next one. A Position object costs a few hundred bytes;
here such a position costs 24 (its on_hand, its as_of and a pointer to its node id), so a
catalog of ten million fits in a shard's memory. The first hold, adjustment or anything
else that needs more than a count turns the position into a Position (see
Partition.position) and takes it out of here.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Iterator
from itertools import repeat

from reservations.model import PositionRow


class _SkuLevels:
    """One SKU's loaded nodes, sorted by node id, with their counts in step."""

    __slots__ = ("as_of", "node_ids", "on_hand")

    def __init__(self) -> None:
        self.node_ids: list[str] = []
        self.on_hand = array("q")
        self.as_of = array("d")


class LoadedLevels:
    """(on_hand, as_of) by SKU and node, for positions with nothing else to them."""

    def __init__(self) -> None:
        self._skus: dict[str, _SkuLevels] = {}
        # Every node id is stored once, however many SKUs it stocks.
        self._node_ids: dict[str, str] = {}
        self._count = 0

    def get(self, sku: str, node_id: str) -> tuple[int, float] | None:
        levels = self._skus.get(sku)
        if levels is None:
            return None
        i = bisect_left(levels.node_ids, node_id)
        if i == len(levels.node_ids) or levels.node_ids[i] != node_id:
            return None
        return levels.on_hand[i], levels.as_of[i]

    def put(self, sku: str, node_id: str, on_hand: int, as_of: float) -> None:
        levels = self._skus.get(sku)
        if levels is None:
            levels = self._skus[sku] = _SkuLevels()
        nodes = levels.node_ids
        i = bisect_left(nodes, node_id)
        if i < len(nodes) and nodes[i] == node_id:
            levels.on_hand[i] = on_hand
            levels.as_of[i] = as_of
            return
        node_id = self._node_ids.setdefault(node_id, node_id)
        if i == len(nodes):  # the usual case: a load sends a SKU's nodes in order
            nodes.append(node_id)
            levels.on_hand.append(on_hand)
            levels.as_of.append(as_of)
        else:
            nodes.insert(i, node_id)
            levels.on_hand.insert(i, on_hand)
            levels.as_of.insert(i, as_of)
        self._count += 1

    def pop(self, sku: str, node_id: str) -> tuple[int, float] | None:
        """Take the position out (it is becoming a Position); None if it is not here."""
        levels = self._skus.get(sku)
        if levels is None:
            return None
        nodes = levels.node_ids
        i = bisect_left(nodes, node_id)
        if i == len(nodes) or nodes[i] != node_id:
            return None
        found = levels.on_hand.pop(i), levels.as_of.pop(i)
        del nodes[i]
        if not nodes:
            del self._skus[sku]
        self._count -= 1
        return found

    def nodes(self, sku: str) -> Iterator[tuple[str, int, float]]:
        """(node_id, on_hand, as_of) of the SKU's loaded nodes, by node id."""
        levels = self._skus.get(sku)
        if levels is not None:
            yield from zip(levels.node_ids, levels.on_hand, levels.as_of, strict=True)

    def rows(self, sku: str) -> Iterator[PositionRow]:
        """The SKU's loaded positions as view rows (nothing reserved), built without a Python
        call per row: a resync sends millions."""
        levels = self._skus.get(sku)
        if levels is None:
            return iter(())
        zero, none = repeat(0), repeat(())
        return zip(
            repeat(sku), levels.node_ids, levels.on_hand, zero, zero, levels.as_of, zero, zero, none, none
        )

    def put_new(self, sku: str, levels: list[tuple[str, int, float]]) -> bool:
        """(node_id, on_hand, as_of) of a SKU not here yet, nodes all different, in one go;
        False (nothing done) if the SKU is here already."""
        if sku in self._skus:
            return False
        levels.sort()
        entry = self._skus[sku] = _SkuLevels()
        node_ids = self._node_ids
        entry.node_ids = [node_ids.setdefault(node_id, node_id) for node_id, _, _ in levels]
        entry.on_hand = array("q", [on_hand for _, on_hand, _ in levels])
        entry.as_of = array("d", [as_of for _, _, as_of in levels])
        self._count += len(levels)
        return True

    def node_count(self, sku: str) -> int:
        levels = self._skus.get(sku)
        return len(levels.node_ids) if levels is not None else 0

    def skus(self) -> Iterator[str]:
        return iter(self._skus)

    def __len__(self) -> int:
        return self._count
