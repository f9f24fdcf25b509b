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
from collections.abc import Iterator, Sequence

from omnistock.availability.positions import LoadedBlock, PositionRow, loaded_rows
from omnistock.reservations.domain.model import LevelColumns


class _SkuLevels:
    """One SKU's loaded nodes, sorted by node id, with their counts in step."""

    __slots__ = ("as_of", "node_ids", "on_hand")

    def __init__(
        self,
        node_ids: list[str] | None = None,
        on_hand: array[int] | None = None,
        as_of: array[float] | None = None,
    ) -> None:
        self.node_ids: list[str] = node_ids if node_ids is not None else []
        self.on_hand = on_hand if on_hand is not None else array("q")
        self.as_of = as_of if as_of is not None else array("d")


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
        """The SKU's loaded positions as view rows (nothing reserved)."""
        block = self.block(sku)
        return loaded_rows(block) if block is not None else iter(())

    def put_new(self, sku: str, node_ids: Sequence[str], on_hand: array[int], as_of: array[float]) -> bool:
        """A SKU not here yet, in one go: its nodes, each once, and their counts in step (the
        arrays are kept as they are). False, and nothing done, if the SKU is here already or
        a node comes twice."""
        if sku in self._skus or len(set(node_ids)) != len(node_ids):
            return False
        intern = self._node_ids.setdefault
        ordered = sorted(node_ids)
        if ordered != list(node_ids):  # a load usually sends a SKU's nodes in order
            order = sorted(range(len(node_ids)), key=node_ids.__getitem__)
            on_hand = array("q", [on_hand[i] for i in order])
            as_of = array("d", [as_of[i] for i in order])
        self._skus[sku] = _SkuLevels(list(map(intern, ordered, ordered)), on_hand, as_of)
        self._count += len(ordered)
        return True

    def columns(self, sku: str) -> LevelColumns:
        """The SKU's loaded levels (none damaged or held), by node id."""
        levels = self._skus[sku]
        count = len(levels.node_ids)
        zeros = array("q", bytes(8 * count))
        return LevelColumns(
            (sku,) * count,
            tuple(levels.node_ids),
            array("q", levels.on_hand),
            array("d", levels.as_of),
            zeros,
            zeros,
        )

    def block(self, sku: str) -> LoadedBlock | None:
        """The SKU's loaded positions for the view feed, copied: (sku, node ids, on_hand,
        as_of), nothing reserved. A few arrays a SKU instead of a tuple a position."""
        levels = self._skus.get(sku)
        if levels is None:
            return None
        return sku, tuple(levels.node_ids), array("q", levels.on_hand), array("d", levels.as_of)

    def node_count(self, sku: str) -> int:
        levels = self._skus.get(sku)
        return len(levels.node_ids) if levels is not None else 0

    def skus(self) -> Iterator[str]:
        return iter(self._skus)

    def __len__(self) -> int:
        return self._count
