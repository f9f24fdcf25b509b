"""Pickup search (BOPIS / ROPIS): the nearest pickup stores that have a basket (pure)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from omnistock.availability.network import Network
from omnistock.availability.nodes import Node

EARTH_RADIUS_KM = 6371.0088


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle (haversine) distance."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


@dataclass(frozen=True, slots=True)
class BasketItem:
    sku: str
    quantity: int = 1


@dataclass(frozen=True, slots=True)
class ItemAtStore:
    sku: str
    requested: int
    available: int


@dataclass(frozen=True, slots=True)
class PickupStore:
    node: Node
    distance_km: float
    items: tuple[ItemAtStore, ...]

    @property
    def complete(self) -> bool:
        return all(item.available >= item.requested for item in self.items)


def find_pickup_stores(
    basket: Sequence[BasketItem],
    latitude: float,
    longitude: float,
    radius_km: float,
    network: Network,
    available_at: Callable[[str, Node], int],
    eligible: frozenset[str] | None = None,
    limit: int = 10,
) -> tuple[list[PickupStore], list[PickupStore]]:
    """(stores with the whole basket, stores with part of it), each nearest first.

    `available_at(sku, node)` is what the asker may promise there (a channel's share,
    or the free units); `eligible` narrows the stores to a channel's nodes.
    """
    complete: list[PickupStore] = []
    partial: list[PickupStore] = []
    candidates = []
    for node in network.nodes.values():
        if not (node.pickup and node.enabled) or (eligible is not None and node.node_id not in eligible):
            continue
        distance = distance_km(latitude, longitude, node.latitude, node.longitude)
        if distance <= radius_km:
            candidates.append((distance, node.node_id, node))
    for distance, _, node in sorted(candidates):
        items = tuple(ItemAtStore(i.sku, i.quantity, available_at(i.sku, node)) for i in basket)
        store = PickupStore(node, round(distance, 3), items)
        if store.complete:
            if len(complete) < limit:
                complete.append(store)
        elif any(item.available > 0 for item in items) and len(partial) < limit:
            partial.append(store)
        if len(complete) >= limit and len(partial) >= limit:
            break
    return complete, partial
