"""The network a retailer sells from: nodes, node groups, channels and their rules (pure).

A channel sells from named node groups. Its rules say how much of a node's stock it
may promise: safety stock (units and/or percent; the most specific rule wins) and a
cap on the share of a node's sellable units the channel may hold in total.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from omnistock.availability.atp import ChannelLimit
from omnistock.availability.nodes import Node, NodeType, node_problems

Problem = tuple[str, str]
MAX_PURCHASE_LIMIT = 1_000_000


@dataclass(frozen=True, slots=True)
class NodeGroup:
    """Named set of nodes: explicit members plus every node matching the selector."""

    group_id: str
    node_ids: tuple[str, ...] = ()
    types: tuple[NodeType, ...] = ()
    """Selector: nodes of these types (empty: any type)."""
    ships: bool | None = None
    """Selector: only nodes that ship (True) or do not (False)."""
    pickup: bool | None = None
    """Selector: only nodes that offer pickup (True) or do not (False)."""

    @property
    def has_selector(self) -> bool:
        return bool(self.types) or self.ships is not None or self.pickup is not None

    def members(self, nodes: Mapping[str, Node]) -> set[str]:
        chosen = {node_id for node_id in self.node_ids if node_id in nodes}
        if self.has_selector:
            chosen.update(
                node.node_id
                for node in nodes.values()
                if (not self.types or node.type in self.types)
                and (self.ships is None or node.ships == self.ships)
                and (self.pickup is None or node.pickup == self.pickup)
            )
        return chosen


@dataclass(frozen=True, slots=True)
class SafetyRule:
    """Units kept back from a channel where the rule matches.

    Precedence, most specific first: SKU + node, SKU + node type, SKU, node, node
    type, channel-wide. Units and percent together keep back the larger of the two.
    """

    units: int = 0
    percent: float = 0.0
    sku: str = ""
    node_id: str = ""
    node_type: NodeType | None = None

    @property
    def specificity(self) -> int:
        return 4 * bool(self.sku) + 2 * bool(self.node_id) + (self.node_type is not None)

    def matches(self, sku: str, node: Node) -> bool:
        return (
            (not self.sku or self.sku == sku)
            and (not self.node_id or self.node_id == node.node_id)
            and (self.node_type is None or self.node_type is node.type)
        )


@dataclass(frozen=True, slots=True)
class AllocationCap:
    """At most `percent` of a node's sellable units may be promised to the channel.
    A cap for a node beats a cap for its node type, which beats a channel-wide cap."""

    percent: float
    node_id: str = ""
    node_type: NodeType | None = None

    @property
    def specificity(self) -> int:
        return 2 * bool(self.node_id) + (self.node_type is not None)

    def matches(self, node: Node) -> bool:
        return (not self.node_id or self.node_id == node.node_id) and (
            self.node_type is None or self.node_type is node.type
        )


class SourcingRule(enum.Enum):
    """Preferences that rank the nodes able to take an order, applied in the channel's order."""

    SINGLE_NODE = "single_node"
    """Fill as much of the order from one node as possible (fewer shipments)."""
    NEAREST = "nearest"
    """Closer to the destination first."""
    PRIORITY = "priority"
    """Lower node priority number first."""
    COST = "cost"
    """Cheaper shipment from the node first."""


DEFAULT_SOURCING_RULES = (SourcingRule.SINGLE_NODE, SourcingRule.NEAREST, SourcingRule.PRIORITY)
MAX_SHIPMENTS_LIMIT = 100


@dataclass(frozen=True, slots=True)
class SourcingPolicy:
    """How a channel picks nodes for lines that name none.

    Hard constraints always hold: only the channel's enabled nodes, that ship (or the
    pickup store itself), with the stock, under their daily capacity."""

    rules: tuple[SourcingRule, ...] = DEFAULT_SOURCING_RULES
    split_lines: bool = False
    """A line's units may come from several nodes."""
    max_shipments: int = 0
    """Most nodes one order is sourced from; 0 means no limit."""


class StockStatus(enum.Enum):
    IN_STOCK = "in_stock"
    LOW_STOCK = "low_stock"
    OUT_OF_STOCK = "out_of_stock"


@dataclass(frozen=True, slots=True)
class Channel:
    channel_id: str
    name: str = ""
    groups: tuple[str, ...] = ()
    """Node groups the channel sells from."""
    safety: tuple[SafetyRule, ...] = ()
    caps: tuple[AllocationCap, ...] = ()
    low_stock: int = 0
    """LOW_STOCK when 0 < available <= low_stock."""
    display_cap: int = 0
    """Answers show at most this many units (0: no cap); holds are not limited by it."""
    future_supply_holds: bool = False
    """Holds may take expected inbound supply (preorders, backorders), not only stock on hand."""
    sourcing: SourcingPolicy = SourcingPolicy()
    """How lines without a node are sourced for this channel."""

    def status(self, available: int) -> StockStatus:
        if available <= 0:
            return StockStatus.OUT_OF_STOCK
        return StockStatus.LOW_STOCK if available <= self.low_stock else StockStatus.IN_STOCK

    def shown(self, available: int) -> int:
        return min(available, self.display_cap) if self.display_cap else available


@dataclass
class Network:
    """An immutable version of the whole network; build a new one to change anything."""

    nodes: dict[str, Node] = field(default_factory=dict)
    groups: dict[str, NodeGroup] = field(default_factory=dict)
    channels: dict[str, Channel] = field(default_factory=dict)
    version: int = 0
    purchase_limits: dict[str, int] = field(default_factory=dict)
    """sku -> most units one customer may hold in open reservations."""

    def __post_init__(self) -> None:
        self._eligible: dict[str, frozenset[str]] = {}

    def eligible(self, channel_id: str) -> frozenset[str]:
        """Enabled nodes in any of the channel's groups."""
        cached = self._eligible.get(channel_id)
        if cached is None:
            channel = self.channels[channel_id]
            members: set[str] = set()
            for group_id in channel.groups:
                members |= self.groups[group_id].members(self.nodes)
            cached = frozenset(n for n in members if self.nodes[n].enabled)
            self._eligible[channel_id] = cached
        return cached

    def limit(self, channel: Channel, sku: str, node: Node) -> ChannelLimit:
        """The channel's resolved rules at one position."""
        safety = max(
            (rule for rule in channel.safety if rule.matches(sku, node)),
            key=lambda rule: rule.specificity,
            default=None,
        )
        cap = max((c for c in channel.caps if c.matches(node)), key=lambda c: c.specificity, default=None)
        return ChannelLimit(
            safety_units=safety.units if safety else 0,
            safety_percent=safety.percent if safety else 0.0,
            cap_percent=cap.percent if cap else 100.0,
            future_supply=channel.future_supply_holds,
        )

    def groups_in_use(self, drop_groups: Iterable[str], drop_channels: Iterable[str]) -> list[Problem]:
        """Groups about to be deleted that a channel staying in the network still sells from."""
        dropped_channels = set(drop_channels)
        found = []
        for group_id in drop_groups:
            users = sorted(
                c.channel_id
                for c in self.channels.values()
                if group_id in c.groups and c.channel_id not in dropped_channels
            )
            if users:
                found.append((f"groups[{group_id}]", f"is still used by channel(s) {', '.join(users)}"))
        return found

    def with_changes(
        self,
        nodes: Iterable[Node] = (),
        groups: Iterable[NodeGroup] = (),
        channels: Iterable[Channel] = (),
        drop_groups: Iterable[str] = (),
        drop_channels: Iterable[str] = (),
        purchase_limits: Mapping[str, int] | None = None,
    ) -> Network:
        """A new version with the changes applied (not yet validated); a purchase limit
        of 0 removes the SKU's limit."""
        new_nodes = dict(self.nodes) | {n.node_id: n for n in nodes}
        new_groups = dict(self.groups) | {g.group_id: g for g in groups}
        new_channels = dict(self.channels) | {c.channel_id: c for c in channels}
        for group_id in drop_groups:
            new_groups.pop(group_id, None)
        for channel_id in drop_channels:
            new_channels.pop(channel_id, None)
        limits = dict(self.purchase_limits)
        for sku, most in (purchase_limits or {}).items():
            if most == 0:
                limits.pop(sku, None)
            else:
                limits[sku] = most
        return Network(new_nodes, new_groups, new_channels, self.version + 1, limits)

    def same_as(self, other: Network) -> bool:
        """Same content (versions aside): a change that changes nothing keeps the version."""
        mine = (self.nodes, self.groups, self.channels, self.purchase_limits)
        return mine == (other.nodes, other.groups, other.channels, other.purchase_limits)

    def problems(self) -> list[Problem]:
        """Everything wrong with this network, as (field, description) pairs."""
        found: list[Problem] = []
        for sku, most in self.purchase_limits.items():
            if not 1 <= most <= MAX_PURCHASE_LIMIT:
                found.append(
                    (
                        f"purchase_limits[{sku}]",
                        f"must be within 1..{MAX_PURCHASE_LIMIT} (0 removes it), got {most}",
                    )
                )
        for node_id, node in self.nodes.items():
            found += node_problems(node, f"nodes[{node_id}]")
        for group_id, group in self.groups.items():
            where = f"groups[{group_id}]"
            unknown = [n for n in group.node_ids if n not in self.nodes]
            if unknown:
                found.append((f"{where}.node_ids", f"unknown node(s): {', '.join(sorted(unknown))}"))
            elif not group.members(self.nodes):
                found.append((where, "has no nodes; name nodes or a selector that matches some"))
        for channel_id, channel in self.channels.items():
            where = f"channels[{channel_id}]"
            if not channel.groups:
                found.append((f"{where}.groups", "a channel sells from at least one node group"))
            for group_id in channel.groups:
                if group_id not in self.groups:
                    found.append((f"{where}.groups", f"unknown group {group_id!r}"))
            for i, rule in enumerate(channel.safety):
                found += _share_problems(f"{where}.safety[{i}]", rule.units, rule.percent)
                if rule.node_id and rule.node_id not in self.nodes:
                    found.append((f"{where}.safety[{i}].node_id", f"unknown node {rule.node_id!r}"))
            for i, cap in enumerate(channel.caps):
                if not 0 <= cap.percent <= 100:
                    found.append((f"{where}.caps[{i}].percent", f"must be within 0..100, got {cap.percent}"))
                if cap.node_id and cap.node_id not in self.nodes:
                    found.append((f"{where}.caps[{i}].node_id", f"unknown node {cap.node_id!r}"))
            if channel.low_stock < 0:
                found.append(
                    (f"{where}.low_stock_threshold", f"must not be negative, got {channel.low_stock}")
                )
            policy = channel.sourcing
            if len(set(policy.rules)) != len(policy.rules):
                found.append((f"{where}.sourcing.rules", "names a rule twice"))
            if not 0 <= policy.max_shipments <= MAX_SHIPMENTS_LIMIT:
                found.append(
                    (
                        f"{where}.sourcing.max_shipments",
                        f"must be within 0..{MAX_SHIPMENTS_LIMIT} (0: no limit), got {policy.max_shipments}",
                    )
                )
            if channel.display_cap < 0:
                found.append((f"{where}.display_cap", f"must not be negative, got {channel.display_cap}"))
        return found


def _share_problems(where: str, units: int, percent: float) -> list[Problem]:
    found = []
    if units < 0:
        found.append((f"{where}.units", f"must not be negative, got {units}"))
    if not 0 <= percent <= 100:
        found.append((f"{where}.percent", f"must be within 0..100, got {percent}"))
    return found
