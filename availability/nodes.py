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


def node_problems(node: Node, field: str) -> list[tuple[str, str]]:
    """What is wrong with a node, as (field, description) pairs."""
    problems = []
    if not -90.0 <= node.latitude <= 90.0 or math.isnan(node.latitude):
        problems.append((f"{field}.latitude", f"must be within -90..90, got {node.latitude}"))
    if not -180.0 <= node.longitude <= 180.0 or math.isnan(node.longitude):
        problems.append((f"{field}.longitude", f"must be within -180..180, got {node.longitude}"))
    if len(node.name) > 200:
        problems.append((f"{field}.name", "must be at most 200 characters"))
    return problems
