"""Network-wide availability of a SKU from its positions (pure)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from reservations.model import PositionView


@dataclass(frozen=True, slots=True)
class SkuAvailability:
    sku: str
    available: int
    """Sum over enabled nodes of max(0, on_hand - reserved - committed)."""
    on_hand: int
    reserved: int
    committed: int
    nodes: tuple[PositionView, ...]


def node_available(position: PositionView, enabled: bool) -> int:
    return position.available if enabled else 0


def summarize(
    sku: str, positions: Iterable[PositionView], is_enabled: Callable[[str], bool]
) -> SkuAvailability:
    rows = tuple(positions)
    return SkuAvailability(
        sku=sku,
        available=sum(node_available(p, is_enabled(p.node_id)) for p in rows),
        on_hand=sum(p.on_hand for p in rows),
        reserved=sum(p.reserved for p in rows),
        committed=sum(p.committed for p in rows),
        nodes=rows,
    )
