"""Stock positions as availability reads them: a read-only copy of one SKU at one node, and
the plain rows the view feed carries by the million (pure)."""

from __future__ import annotations

from array import array
from collections.abc import Iterator
from itertools import repeat
from typing import NamedTuple

PositionRow = tuple[
    str, str, int, int, int, float, int, int, tuple[tuple[str, int], ...], tuple[tuple[float, int], ...]
]
"""A PositionView's fields as a plain tuple: what the view feed carries by the million, as
the standard pickler writes and reads plain tuples without a Python call per row."""


LoadedBlock = tuple[str, tuple[str, ...], "array[int]", "array[float]"]
"""A SKU's positions that only have a loaded count, as the view feed carries them: (sku,
node ids in order, on_hand of each, as_of of each); nothing reserved, damaged or held."""


def loaded_rows(block: LoadedBlock) -> Iterator[PositionRow]:
    """The block's positions as rows, built without a Python call per row."""
    sku, node_ids, on_hand, as_of = block
    zero, none = repeat(0), repeat(())
    return zip(repeat(sku), node_ids, on_hand, zero, zero, as_of, zero, zero, none, none)


class PositionView(NamedTuple):
    """A read-only copy of a position, safe to hand out of the partition. A tuple: the view
    feed carries millions of them, and a tuple is the cheapest thing to build and to pickle."""

    sku: str
    node_id: str
    on_hand: int
    reserved: int
    committed: int
    as_of: float
    damaged: int = 0
    quality_hold: int = 0
    by_channel: tuple[tuple[str, int], ...] = ()
    inbound: tuple[tuple[float, int], ...] = ()
    """Expected supply as (expected_at, units), earliest first."""

    @property
    def inbound_units(self) -> int:
        return sum(units for _, units in self.inbound)

    @property
    def sellable(self) -> int:
        return self.on_hand - self.damaged - self.quality_hold

    @property
    def available(self) -> int:
        return max(0, self.sellable - self.reserved - self.committed)

    def channel_used(self, channel: str) -> int:
        return dict(self.by_channel).get(channel, 0)
