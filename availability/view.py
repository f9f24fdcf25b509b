"""The gateway's in-memory network view: every position, kept fresh from the shards (pure).

Availability for product listings is answered from here instead of a shard call per
request. Each shard streams the positions changed after the version the view has;
a new shard epoch (a restarted shard) resends everything. Answers carry the view's
version and as-of time: the moment of the oldest shard's last sync.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from reservations.model import PositionView


@dataclass(slots=True)
class ShardCursor:
    epoch: str = ""
    version: int = 0
    synced_at: float = 0.0
    """When the last successful sync of this shard was asked for."""


class NetworkView:
    def __init__(self, shards: int, first_version: int = 0) -> None:
        self._positions: dict[str, dict[str, PositionView]] = {}
        self._stamps: dict[str, int] = {}
        self.cursors = [ShardCursor() for _ in range(shards)]
        self.version = first_version
        """Goes up by one with every sync that changed something. Starting from the clock in
        milliseconds keeps versions of a restarted gateway apart from the old ones."""

    def apply(
        self, shard: int, epoch: str, version: int, positions: Iterable[PositionView], synced_at: float
    ) -> set[str]:
        """Take a shard's changes; returns the SKUs that changed. Changes older than what
        the view has of the shard (a fetch overtaken by a batch reply) are left out."""
        cursor = self.cursors[shard]
        if epoch == cursor.epoch and version < cursor.version:
            return set()
        changed: set[str] = set()
        for position in positions:
            self._positions.setdefault(position.sku, {})[position.node_id] = position
            changed.add(position.sku)
        cursor.epoch, cursor.version, cursor.synced_at = epoch, version, synced_at
        if changed:
            self.version += 1
            for sku in changed:
                self._stamps[sku] = self.version
        return changed

    def stamp(self, sku: str) -> int:
        """The view version at which the SKU's positions last changed (0: never seen): an
        answer built at this stamp holds until the stamp moves."""
        return self._stamps.get(sku, 0)

    def positions(self, sku: str) -> list[PositionView]:
        nodes = self._positions.get(sku)
        return [nodes[node_id] for node_id in sorted(nodes)] if nodes else []

    def skus(self) -> list[str]:
        return list(self._positions)

    def position(self, sku: str, node_id: str) -> PositionView | None:
        return self._positions.get(sku, {}).get(node_id)

    @property
    def as_of(self) -> float:
        return min(cursor.synced_at for cursor in self.cursors)

    @property
    def ready(self) -> bool:
        return all(cursor.epoch for cursor in self.cursors)

    def __len__(self) -> int:
        return sum(len(nodes) for nodes in self._positions.values())
