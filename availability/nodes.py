"""Stocking locations (pure)."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass


class NodeType(enum.Enum):
    STORE = "store"
    DC = "dc"
    THREE_PL = "3pl"
    DROPSHIP = "dropship"


@dataclass(frozen=True, slots=True)
class Node:
    node_id: str
    type: NodeType
    name: str = ""
    ships: bool = True
    """Orders may ship from here."""
    pickup: bool = False
    """Customers may collect here."""
    latitude: float = 0.0
    longitude: float = 0.0
    enabled: bool = True
    """A disabled node keeps its stock but sells nothing."""
    priority: int = 0
    """Sourcing preference: a lower number is preferred (0 is the default)."""
    shipment_cost: float = 0.0
    """Cost of one shipment from here, in the retailer's currency (sourcing may prefer cheaper)."""
    daily_capacity: int = 0
    """Most sourced orders this node takes per day (UTC); 0 means no limit."""


def node_problems(node: Node, field: str) -> list[tuple[str, str]]:
    """What is wrong with a node, as (field, description) pairs."""
    problems = []
    if not -90.0 <= node.latitude <= 90.0 or math.isnan(node.latitude):
        problems.append((f"{field}.latitude", f"must be within -90..90, got {node.latitude}"))
    if not -180.0 <= node.longitude <= 180.0 or math.isnan(node.longitude):
        problems.append((f"{field}.longitude", f"must be within -180..180, got {node.longitude}"))
    if node.priority < 0:
        problems.append((f"{field}.priority", f"must not be negative, got {node.priority}"))
    if not node.shipment_cost >= 0 or math.isinf(node.shipment_cost):
        problems.append((f"{field}.shipment_cost", f"must be a finite amount >= 0, got {node.shipment_cost}"))
    if node.daily_capacity < 0:
        problems.append(
            (f"{field}.daily_capacity", f"must not be negative (0: no limit), got {node.daily_capacity}")
        )
    if len(node.name) > 200:
        problems.append((f"{field}.name", "must be at most 200 characters"))
    return problems
