"""The gateway's in-memory network view: every position, kept fresh from the shards (pure).

Availability for product listings is answered from here instead of a shard call per
request. Each shard streams the positions changed after the version the view has;
a new shard epoch (a restarted shard) resends everything. Answers carry the view's
version and as-of time: the moment of the oldest shard's last sync.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import chain
from operator import itemgetter

from omnistock.availability.positions import LoadedBlock, PositionRow, PositionView, loaded_rows


@dataclass(slots=True)
class ShardCursor:
    epoch: str = ""
    version: int = 0
    synced_at: float = 0.0
    """When the last successful sync of this shard was asked for."""


_node_of = itemgetter(1)
_counts_of = itemgetter(2, 3, 4, 6, 7)  # on_hand, reserved, committed, damaged, quality_hold
_as_of_of = itemgetter(5)


class _SkuNodes:
    """One SKU's positions in columns, by node id: 56 bytes a position where a PositionView
    each would cost a few hundred, so a catalog of ten million fits in a gateway."""

    __slots__ = ("as_of", "counts", "extras", "node_ids")

    def __init__(self) -> None:
        self.node_ids: list[str] = []
        self.counts = array("q")
        """on_hand, reserved, committed, damaged, quality_hold of each node in turn."""
        self.as_of = array("d")
        self.extras: dict[str, tuple[tuple[tuple[str, int], ...], tuple[tuple[float, int], ...]]] = {}
        """by_channel and inbound of the nodes that have either."""

    def put(self, row: PositionRow, node_ids: dict[str, str]) -> None:
        _, node_id, on_hand, reserved, committed, as_of, damaged, quality_hold, by_channel, inbound = row
        nodes, counts = self.node_ids, self.counts
        i = bisect_left(nodes, node_id)
        if i < len(nodes) and nodes[i] == node_id:
            at = 5 * i
            counts[at], counts[at + 1], counts[at + 2] = on_hand, reserved, committed
            counts[at + 3], counts[at + 4] = damaged, quality_hold
            self.as_of[i] = as_of
        else:
            nodes.insert(i, node_ids.setdefault(node_id, node_id))
            counts[5 * i : 5 * i] = array("q", (on_hand, reserved, committed, damaged, quality_hold))
            self.as_of.insert(i, as_of)
        if by_channel or inbound:
            self.extras[node_id] = (by_channel, inbound)
        elif self.extras:
            self.extras.pop(node_id, None)

    def fill(self, rows: list[PositionRow], node_ids: dict[str, str]) -> None:
        """All of a new SKU's rows at once (a load, a resync): arrays built in one go."""
        rows.sort(key=_node_of)
        self.node_ids = [node_ids.setdefault(row[1], row[1]) for row in rows]
        self.counts = array("q", chain.from_iterable(map(_counts_of, rows)))
        self.as_of = array("d", map(_as_of_of, rows))
        self.extras = {row[1]: (row[8], row[9]) for row in rows if row[8] or row[9]}

    def fill_loaded(self, block: LoadedBlock, node_ids: dict[str, str]) -> None:
        """All of a SKU's nodes from a block of loaded counts (nothing reserved or held)."""
        _, nodes, on_hand, as_of = block
        self.node_ids = list(map(node_ids.setdefault, nodes, nodes))
        self.counts = array("q", bytes(40 * len(nodes)))
        self.counts[0::5] = on_hand
        self.as_of = array("d", as_of)
        self.extras = {}

    def view(self, sku: str, i: int) -> PositionView:
        c, node_id, at = self.counts, self.node_ids[i], 5 * i
        by_channel, inbound = self.extras.get(node_id, ((), ())) if self.extras else ((), ())
        return PositionView(
            sku,
            node_id,
            c[at],
            c[at + 1],
            c[at + 2],
            self.as_of[i],
            c[at + 3],
            c[at + 4],
            by_channel,
            inbound,
        )


class NetworkView:
    def __init__(self, shards: int, first_version: int = 0) -> None:
        self._skus: dict[str, _SkuNodes] = {}
        # Every node id is stored once, however many SKUs it stocks.
        self._node_ids: dict[str, str] = {}
        self._stamps: dict[str, int] = {}
        self.cursors = [ShardCursor() for _ in range(shards)]
        self.version = first_version
        """Goes up by one with every sync that changed something. Starting from the clock in
        milliseconds keeps versions of a restarted gateway apart from the old ones."""
        self.skus_built = 0
        """SKUs whose columns were built anew (new, loaded or rebuilt whole) since the view
        began: how much long-lived data it made, which the gateway leaves out of the
        garbage collector's scans once it is settled (gateway/transport/view_sync.py)."""

    def apply(
        self,
        shard: int,
        epoch: str,
        version: int,
        rows: Iterable[PositionRow],
        synced_at: float,
        loaded: Iterable[LoadedBlock] = (),
    ) -> set[str]:
        """Take a shard's changes (rows, and blocks of loaded counts); returns the SKUs that
        changed. Changes older than what the view has of the shard (a fetch overtaken by a
        batch reply) are left out."""
        cursor = self.cursors[shard]
        if epoch == cursor.epoch and version < cursor.version:
            return set()
        skus, node_ids = self._skus, self._node_ids
        by_sku: dict[str, list[PositionRow]] = {}
        for row in rows:
            sku_rows = by_sku.get(row[0])
            if sku_rows is None:
                by_sku[row[0]] = [row]
            else:
                sku_rows.append(row)
        blocks: list[str] = []
        built = 0
        for block in loaded:
            sku = block[0]
            nodes = skus.get(sku)
            if sku not in by_sku and (nodes is None or set(block[1]).issuperset(nodes.node_ids)):
                nodes = skus[sku] = _SkuNodes()
                nodes.fill_loaded(block, node_ids)  # the usual case: a load of a whole SKU
                blocks.append(sku)
                built += 1
            else:  # with other rows of the SKU, or some nodes only: row by row
                by_sku.setdefault(sku, []).extend(loaded_rows(block))
        for sku, sku_rows in by_sku.items():
            nodes = skus.get(sku)
            fresh = nodes is None
            if nodes is None:
                nodes = skus[sku] = _SkuNodes()
                built += 1
            if len(sku_rows) == 1:
                nodes.put(sku_rows[0], node_ids)
                continue
            named = {row[1] for row in sku_rows}
            if len(named) == len(sku_rows) and named.issuperset(nodes.node_ids):
                nodes.fill(sku_rows, node_ids)  # every node of the SKU: rebuilt in one go
                built += not fresh
            else:  # the same node twice (the later row wins) or some nodes only
                for row in sku_rows:
                    nodes.put(row, node_ids)
        changed = {*by_sku, *blocks}
        self.skus_built += built
        cursor.epoch, cursor.version, cursor.synced_at = epoch, version, synced_at
        if changed:
            self.version += 1
            for sku in changed:
                self._stamps[sku] = self.version
        return changed

    def resize(self, shards: int) -> None:
        """Shards added (their cursors start empty: their first sync sends everything) or the
        last ones removed (their partitions moved to the others first)."""
        if shards > len(self.cursors):
            self.cursors.extend(ShardCursor() for _ in range(shards - len(self.cursors)))
        else:
            del self.cursors[shards:]

    def stamp(self, sku: str) -> int:
        """The view version at which the SKU's positions last changed (0: never seen): an
        answer built at this stamp holds until the stamp moves."""
        return self._stamps.get(sku, 0)

    def positions(self, sku: str) -> list[PositionView]:
        """The SKU's positions, by node id."""
        nodes = self._skus.get(sku)
        return [nodes.view(sku, i) for i in range(len(nodes.node_ids))] if nodes else []

    def skus(self) -> list[str]:
        return list(self._skus)

    def position(self, sku: str, node_id: str) -> PositionView | None:
        nodes = self._skus.get(sku)
        if nodes is None:
            return None
        i = bisect_left(nodes.node_ids, node_id)
        return nodes.view(sku, i) if i < len(nodes.node_ids) and nodes.node_ids[i] == node_id else None

    @property
    def as_of(self) -> float:
        return min(cursor.synced_at for cursor in self.cursors)

    @property
    def ready(self) -> bool:
        return all(cursor.epoch for cursor in self.cursors)

    def __len__(self) -> int:
        return sum(len(nodes.node_ids) for nodes in self._skus.values())
