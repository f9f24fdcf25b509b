"""Availability answers for one SKU, network-wide or for a channel (pure)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from omnistock.availability.atp import future_free
from omnistock.availability.network import Channel, Network, StockStatus
from omnistock.availability.positions import PositionView


@dataclass(frozen=True, slots=True)
class NodeAvailability:
    position: PositionView
    available: int
    """What the asker may promise here (the channel's share, or the free units)."""
    counts: bool = True
    """False at a disabled node: neither its stock nor its expected supply count."""

    def by_date(self, on: float) -> int:
        """Promisable on day `on`: today's share plus supply expected by then and not yet promised."""
        if not self.counts:
            return 0
        p = self.position
        arriving = sum(units for expected_at, units in p.inbound if expected_at <= on)
        return self.available + future_free(p.sellable, p.reserved, p.committed, arriving)


@dataclass(frozen=True, slots=True)
class SkuAvailability:
    sku: str
    available: int
    """Sum over the nodes that count (enabled, and eligible for the channel if one was asked)."""
    on_hand: int
    reserved: int
    committed: int
    damaged: int
    quality_hold: int
    nodes: tuple[NodeAvailability, ...]
    status: StockStatus | None = None
    """By the channel's low-stock threshold; None without a channel."""

    @property
    def inbound(self) -> int:
        return sum(n.position.inbound_units for n in self.nodes if n.counts)

    def available_on(self, on: float) -> int:
        return sum(node.by_date(on) for node in self.nodes)

    def earliest(self, quantity: int, now: float) -> float | None:
        """The first moment `quantity` units can be promised (now, or when supply arrives)."""
        if self.available_on(now) >= quantity:
            return now
        dates = sorted({d for n in self.nodes if n.counts for d, _ in n.position.inbound if d > now})
        return next((d for d in dates if self.available_on(d) >= quantity), None)


def _answer(
    sku: str, rows: list[NodeAvailability], status: StockStatus | None = None, shown: int | None = None
) -> SkuAvailability:
    positions = [row.position for row in rows]
    return SkuAvailability(
        sku=sku,
        available=sum(row.available for row in rows) if shown is None else shown,
        on_hand=sum(p.on_hand for p in positions),
        reserved=sum(p.reserved for p in positions),
        committed=sum(p.committed for p in positions),
        damaged=sum(p.damaged for p in positions),
        quality_hold=sum(p.quality_hold for p in positions),
        nodes=tuple(rows),
        status=status,
    )


def network_availability(sku: str, positions: Iterable[PositionView], network: Network) -> SkuAvailability:
    """Free units over every enabled node, with no channel rule applied."""
    rows = []
    for position in positions:
        node = network.nodes.get(position.node_id)
        enabled = node is not None and node.enabled
        rows.append(NodeAvailability(position, position.available if enabled else 0, enabled))
    return _answer(sku, rows)


def promisable_at(position: PositionView | None, network: Network, channel: Channel | None) -> int:
    """What the asker may promise at one position (its node must count for the asker)."""
    if position is None:
        return 0
    if channel is None:
        return position.available
    limit = network.limit(channel, position.sku, network.nodes[position.node_id])
    return limit.promisable(
        position.sellable, position.reserved, position.committed, position.channel_used(channel.channel_id)
    )


def channel_availability(
    sku: str, positions: Iterable[PositionView], network: Network, channel: Channel
) -> SkuAvailability:
    """What `channel` may promise: eligible nodes only, after safety stock and caps."""
    eligible = network.eligible(channel.channel_id)
    rows = []
    for position in positions:
        if position.node_id in eligible:
            rows.append(NodeAvailability(position, promisable_at(position, network, channel)))
    total = sum(row.available for row in rows)
    return _answer(sku, rows, channel.status(total), channel.shown(total))
