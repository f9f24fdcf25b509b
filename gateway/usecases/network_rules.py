"""What a request may name in the network as it is: known nodes, enabled nodes, channels, and
what a channel may promise at a node."""

from __future__ import annotations

from collections.abc import Iterable

from omnistock.availability.atp import ChannelLimit
from omnistock.availability.network import Channel, Network
from omnistock.reservations.domain.errors import FailedPrecondition, NotFound
from omnistock.reservations.domain.model import Line

NOTHING = ChannelLimit(cap_percent=0.0)
"""The limit at a node a channel does not sell from: it may promise nothing there."""


def require_nodes(network: Network, node_ids: Iterable[str]) -> None:
    """NOT_FOUND naming the first unknown node."""
    for node_id in node_ids:
        if node_id not in network.nodes:
            raise NotFound("node", node_id)


def require_channel(network: Network, channel_id: str) -> Channel:
    channel = network.channels.get(channel_id)
    if channel is None:
        raise NotFound("channel", channel_id)
    return channel


def is_enabled(network: Network, node_id: str) -> bool:
    node = network.nodes.get(node_id)
    return node is not None and node.enabled


def require_enabled(network: Network, node_ids: Iterable[str]) -> None:
    """Known nodes that sell: a disabled node (closed for a stock count, say) sells nothing."""
    node_ids = list(node_ids)
    require_nodes(network, node_ids)
    disabled = sorted({n for n in node_ids if not is_enabled(network, n)})
    if len(disabled) == 1:
        raise FailedPrecondition(f"node {disabled[0]} is disabled and sells nothing")
    if disabled:
        raise FailedPrecondition(f"node(s) {', '.join(disabled)} are disabled and sell nothing")


def channel_limits(
    network: Network, channel_id: str, lines: Iterable[Line]
) -> dict[tuple[str, str], ChannelLimit]:
    """The channel's rules at each line's position; a node it cannot sell from gets nothing."""
    channel = require_channel(network, channel_id)
    eligible = network.eligible(channel_id)
    return {
        (line.sku, line.node_id): network.limit(channel, line.sku, network.nodes[line.node_id])
        if line.node_id in eligible
        else NOTHING
        for line in lines
    }
