"""The network as a TOML file (`omnistock serve --network FILE`).

[[nodes]]                      # optional; nodes may also come through PutNodes
node_id = "DC-01"
type = "dc"                    # store | dc | 3pl | dropship
ships = true
priority = 1                   # sourcing: lower is preferred
shipment_cost = 4.5            # sourcing: cost of one shipment from here
daily_capacity = 5000          # sourcing: orders a day (UTC); 0 = no limit

[groups.dcs]
types = ["dc"]                 # selector; or node_ids = ["DC-01", ...]

[groups.ship-from-store]
types = ["store"]
ships = true

[channels.web]
groups = ["dcs", "ship-from-store"]
low_stock_threshold = 5
display_cap = 50
safety = [{ node_type = "store", units = 2 }, { sku = "SKU-00001", percent = 10 }]
caps = [{ node_type = "store", percent = 50 }]

[channels.web.sourcing]        # lines without a node: how nodes are chosen
rules = ["single_node", "nearest", "priority"]   # also "cost"; first decides
split_lines = false
max_shipments = 2              # 0 = no limit
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from typing import Any

from omnistock.availability.network import (
    DEFAULT_SOURCING_RULES,
    AllocationCap,
    Channel,
    NodeGroup,
    Problem,
    SafetyRule,
    SourcingPolicy,
    SourcingRule,
)
from omnistock.availability.nodes import Node, NodeType

TYPES = {t.value: t for t in NodeType}


class NetworkFileError(ValueError):
    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{field}: {text}" for field, text in problems))


class _Reader:
    """Reads typed values out of TOML tables, collecting every problem."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def get(self, table: dict[str, Any], key: str, kind: type, where: str, default: Any = None) -> Any:
        value = table.get(key, default)
        if value is default:
            return value
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            self.problems.append((f"{where}.{key}", f"must be a {kind.__name__}, got {value!r}"))
            return default
        return value

    def strings(self, table: dict[str, Any], key: str, where: str) -> list[str]:
        values = self.get(table, key, list, where, [])
        if not all(isinstance(v, str) for v in values):
            self.problems.append((f"{where}.{key}", f"must be a list of strings, got {values!r}"))
            return []
        return values

    def tables(self, value: Any, where: str) -> list[dict[str, Any]]:
        """An array of tables ([[x]] or [{...}, ...]); anything else is a problem."""
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            self.problems.append((where, f"must be an array of tables, got {value!r}"))
            return []
        return value

    def named_tables(self, value: Any, where: str) -> dict[str, dict[str, Any]]:
        """A table of tables ([x.name] sections); anything else is a problem."""
        if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
            self.problems.append((where, f"must be a table of [{where}.NAME] sections, got {value!r}"))
            return {}
        return value

    def named_values(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.problems.append((where, f"must be a table of NAME = value, got {value!r}"))
            return {}
        return value

    def node_type(self, value: Any, where: str) -> NodeType | None:
        if value is None:
            return None
        if not isinstance(value, str) or value not in TYPES:
            self.problems.append((where, f"must be one of {', '.join(TYPES)}, got {value!r}"))
            return None
        return TYPES[value]

    def unknown_keys(self, table: dict[str, Any], allowed: set[str], where: str) -> None:
        for key in sorted(set(table) - allowed):
            self.problems.append((f"{where}.{key}", "is not a known setting"))


@dataclass(frozen=True, slots=True)
class NetworkFile:
    nodes: list[Node]
    groups: list[NodeGroup]
    channels: list[Channel]
    purchase_limits: dict[str, int]


NODE_KEYS = {
    "node_id",
    "type",
    "name",
    "ships",
    "pickup",
    "latitude",
    "longitude",
    "enabled",
    "priority",
    "shipment_cost",
    "daily_capacity",
}


def _sourcing(r: _Reader, table: Any, where: str) -> SourcingPolicy:
    """[channels.<id>.sourcing]: rules (in order), split_lines, max_shipments."""
    if not isinstance(table, dict):
        r.problems.append((where, f"must be a table, got {table!r}"))
        return SourcingPolicy()
    r.unknown_keys(table, {"rules", "split_lines", "max_shipments"}, where)
    rules = []
    for i, name in enumerate(r.strings(table, "rules", where)):
        try:
            rules.append(SourcingRule(name))
        except ValueError:
            known = ", ".join(rule.value for rule in SourcingRule)
            r.problems.append((f"{where}.rules[{i}]", f"unknown rule {name!r}; use {known}"))
    return SourcingPolicy(
        rules=tuple(rules) if "rules" in table else DEFAULT_SOURCING_RULES,
        split_lines=r.get(table, "split_lines", bool, where, False),
        max_shipments=r.get(table, "max_shipments", int, where, 0),
    )


def parse_network(text: str) -> tuple[list[Node], list[NodeGroup], list[Channel]]:
    """Nodes, groups and channels of a network file; raises NetworkFileError naming every problem."""
    parsed = parse_network_file(text)
    return parsed.nodes, parsed.groups, parsed.channels


def parse_network_file(text: str) -> NetworkFile:
    """Everything in a network file; raises NetworkFileError naming every problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise NetworkFileError([("file", f"is not valid TOML: {error}")]) from None
    r = _Reader()
    r.unknown_keys(data, {"nodes", "groups", "channels", "purchase_limits"}, "network")
    nodes = []
    for i, table in enumerate(r.tables(data.get("nodes", []), "nodes")):
        where = f"nodes[{i}]"
        r.unknown_keys(table, NODE_KEYS, where)
        node_type = r.node_type(table.get("type"), f"{where}.type")
        node_id = r.get(table, "node_id", str, where, "")
        if not node_id:
            r.problems.append((f"{where}.node_id", "is required"))
        if "type" not in table:
            r.problems.append((f"{where}.type", "is required"))
        if node_type is not None and node_id:
            nodes.append(
                Node(
                    node_id=node_id,
                    type=node_type,
                    name=r.get(table, "name", str, where, ""),
                    ships=r.get(table, "ships", bool, where, True),
                    pickup=r.get(table, "pickup", bool, where, False),
                    latitude=r.get(table, "latitude", float, where, 0.0),
                    longitude=r.get(table, "longitude", float, where, 0.0),
                    enabled=r.get(table, "enabled", bool, where, True),
                    priority=r.get(table, "priority", int, where, 0),
                    shipment_cost=r.get(table, "shipment_cost", float, where, 0.0),
                    daily_capacity=r.get(table, "daily_capacity", int, where, 0),
                )
            )
    groups = []
    for group_id, table in r.named_tables(data.get("groups", {}), "groups").items():
        where = f"groups[{group_id}]"
        r.unknown_keys(table, {"node_ids", "types", "ships", "pickup"}, where)
        types = [r.node_type(t, f"{where}.types") for t in r.strings(table, "types", where)]
        groups.append(
            NodeGroup(
                group_id=group_id,
                node_ids=tuple(r.strings(table, "node_ids", where)),
                types=tuple(t for t in types if t is not None),
                ships=r.get(table, "ships", bool, where),
                pickup=r.get(table, "pickup", bool, where),
            )
        )
    channels = []
    for channel_id, table in r.named_tables(data.get("channels", {}), "channels").items():
        where = f"channels[{channel_id}]"
        r.unknown_keys(
            table,
            {
                "name",
                "groups",
                "safety",
                "caps",
                "low_stock_threshold",
                "display_cap",
                "future_supply_holds",
                "sourcing",
            },
            where,
        )
        safety = []
        for i, rule in enumerate(r.tables(table.get("safety", []), f"{where}.safety")):
            at = f"{where}.safety[{i}]"
            r.unknown_keys(rule, {"units", "percent", "sku", "node_id", "node_type"}, at)
            safety.append(
                SafetyRule(
                    units=r.get(rule, "units", int, at, 0),
                    percent=r.get(rule, "percent", float, at, 0.0),
                    sku=r.get(rule, "sku", str, at, ""),
                    node_id=r.get(rule, "node_id", str, at, ""),
                    node_type=r.node_type(rule.get("node_type"), f"{at}.node_type"),
                )
            )
        caps = []
        for i, cap in enumerate(r.tables(table.get("caps", []), f"{where}.caps")):
            at = f"{where}.caps[{i}]"
            r.unknown_keys(cap, {"percent", "node_id", "node_type"}, at)
            if "percent" not in cap:
                r.problems.append((f"{at}.percent", "is required"))
            caps.append(
                AllocationCap(
                    percent=r.get(cap, "percent", float, at, 100.0),
                    node_id=r.get(cap, "node_id", str, at, ""),
                    node_type=r.node_type(cap.get("node_type"), f"{at}.node_type"),
                )
            )
        channels.append(
            Channel(
                channel_id=channel_id,
                name=r.get(table, "name", str, where, ""),
                groups=tuple(r.strings(table, "groups", where)),
                safety=tuple(safety),
                caps=tuple(caps),
                low_stock=r.get(table, "low_stock_threshold", int, where, 0),
                display_cap=r.get(table, "display_cap", int, where, 0),
                future_supply_holds=r.get(table, "future_supply_holds", bool, where, False),
                sourcing=_sourcing(r, table.get("sourcing", {}), f"{where}.sourcing"),
            )
        )
    purchase_limits: dict[str, int] = {}
    for sku, most in r.named_values(data.get("purchase_limits", {}), "purchase_limits").items():
        if isinstance(most, bool) or not isinstance(most, int):
            r.problems.append((f"purchase_limits[{sku}]", f"must be a whole number of units, got {most!r}"))
        else:
            purchase_limits[sku] = most
    if r.problems:
        raise NetworkFileError(r.problems)
    return NetworkFile(nodes, groups, channels, purchase_limits)
