"""The network as a person types it (pure): node groups, channels with their safety stock,
caps and sourcing, purchase limits, and the problems of a network file, by field."""

from __future__ import annotations

import argparse
import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from omnistock.availability.network import Channel, Network, NodeGroup
from omnistock.availability.network_file import NetworkFile, NetworkFileError, parse_network_file
from omnistock.availability.nodes import Node
from omnistock.cli.common import (
    FALSE_WORDS,
    INT64,
    NODE_TYPE_LABELS,
    TRUE_WORDS,
    ProblemsError,
    UsageError,
    count_of,
    number_text,
    read_text,
)
from omnistock.cli.parsing import parse_float, parse_int, parse_node_type
from omnistock.gateway.grpc.convert import (
    Limits,
    channels_from_proto,
    groups_from_proto,
    network_from_proto,
    network_to_proto,
    node_to_proto,
    nodes_from_proto,
    purchase_limits_from_proto,
)
from omnistock.protos.gen.omnistock.v1 import common_pb2, network_pb2
from omnistock.reservations.domain.errors import InvalidArgument

STOCK_STATE_NAMES: dict[str, common_pb2.StockState] = {
    "sellable": common_pb2.STOCK_STATE_SELLABLE,
    "damaged": common_pb2.STOCK_STATE_DAMAGED,
    "quality_hold": common_pb2.STOCK_STATE_QUALITY_HOLD,
}
SAFETY_KEYS = ("units", "percent", "sku", "node", "node_type")
CAP_KEYS = ("percent", "node", "node_type")
KEY_ALIASES = {"node_id": "node", "type": "node_type", "pct": "percent"}


def split_list(text: str, what: str) -> list[str]:
    """`A,B, C` -> ["A", "B", "C"]; an empty item is a usage error."""
    items = [item.strip() for item in text.split(",")]
    if not text.strip() or not all(items):
        raise UsageError(f"{what} must be a comma-separated list without empty items, got {text!r}")
    return items


def parse_yes_no(text: str) -> bool:
    """argparse type of --ships / --pickup: yes or no (also true/false, 1/0, on/off)."""
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise argparse.ArgumentTypeError(f"must be yes or no, got {text!r}")


def _rule_fields(text: str, what: str, allowed: Sequence[str]) -> dict[str, str]:
    """`key=value,key=value` -> fields, each key known and given once."""
    fields: dict[str, str] = {}
    for item in text.split(","):
        key, sep, value = (part.strip() for part in item.partition("="))
        key = key.lower().replace("-", "_")
        key = KEY_ALIASES.get(key, key)
        if not sep or not key or not value:
            raise UsageError(
                f"{what} {text!r}: {item.strip()!r} must be key=value (keys: {', '.join(allowed)})"
            )
        if key not in allowed:
            raise UsageError(f"{what} {text!r}: unknown key {key!r}; use {', '.join(allowed)}")
        if key in fields:
            raise UsageError(f"{what} {text!r}: {key} is given twice")
        fields[key] = value
    return fields


def _percent(text: str, what: str) -> float:
    return parse_float(text.removesuffix("%"), what)


def parse_safety_rule(text: str) -> network_pb2.SafetyRule:
    """`units=2,node_type=store`, `percent=10,sku=SKU-00001`, `units=3,node=STORE-001` -> a rule.

    Ranges (percent within 0..100, units not negative) are the server's to check, so a
    refusal names the field the same way for every client.
    """
    what = "safety rule"
    fields = _rule_fields(text, what, SAFETY_KEYS)
    if "units" not in fields and "percent" not in fields:
        raise UsageError(f"{what} {text!r} needs units=N and/or percent=P")
    rule = network_pb2.SafetyRule(
        units=parse_int(fields.get("units", "0"), f"{what} {text!r}: units"),
        percent=_percent(fields.get("percent", "0"), f"{what} {text!r}: percent"),
        sku=fields.get("sku", ""),
        node_id=fields.get("node", ""),
    )
    if "node_type" in fields:
        rule.node_type = parse_node_type(fields["node_type"], f"{what} {text!r}: node_type")
    return rule


def parse_cap_rule(text: str) -> network_pb2.AllocationCap:
    """`percent=50,node_type=store` or `percent=30,node=STORE-001` or `percent=80` -> a cap."""
    what = "cap"
    fields = _rule_fields(text, what, CAP_KEYS)
    if "percent" not in fields:
        raise UsageError(f"{what} {text!r} needs percent=P")
    cap = network_pb2.AllocationCap(
        percent=_percent(fields["percent"], f"{what} {text!r}: percent"), node_id=fields.get("node", "")
    )
    if "node_type" in fields:
        cap.node_type = parse_node_type(fields["node_type"], f"{what} {text!r}: node_type")
    return cap


def _scope(sku: str, node_id: str, node_type: common_pb2.NodeType) -> list[str]:
    parts = []
    if sku:
        parts.append(f"sku={sku}")
    if node_id:
        parts.append(f"node={node_id}")
    if node_type:
        parts.append(f"node_type={NODE_TYPE_LABELS.get(node_type, str(node_type))}")
    return parts


def format_safety_rule(rule: network_pb2.SafetyRule) -> str:
    """The rule as `--safety` takes it (parse_safety_rule reads it back)."""
    share = []
    if rule.units or not rule.percent:
        share.append(f"units={rule.units}")
    if rule.percent:
        share.append(f"percent={number_text(rule.percent)}")
    return ",".join(share + _scope(rule.sku, rule.node_id, rule.node_type))


def format_cap_rule(cap: network_pb2.AllocationCap) -> str:
    """The cap as `--cap` takes it (parse_cap_rule reads it back)."""
    return ",".join([f"percent={number_text(cap.percent)}", *_scope("", cap.node_id, cap.node_type)])


def safety_precedence(rule: network_pb2.SafetyRule) -> int:
    """Higher wins: sku + node > sku + node type > sku > node > node type > channel-wide."""
    return 4 * bool(rule.sku) + 2 * bool(rule.node_id) + bool(rule.node_type)


def cap_precedence(cap: network_pb2.AllocationCap) -> int:
    """Higher wins: node > node type > channel-wide."""
    return 2 * bool(cap.node_id) + bool(cap.node_type)


def describe_group(group: network_pb2.NodeGroup) -> str:
    """The group's definition as `groups put` flags take it."""
    parts = []
    if group.node_ids:
        parts.append(f"nodes={','.join(group.node_ids)}")
    if group.types:
        parts.append(f"types={','.join(NODE_TYPE_LABELS.get(t, str(t)) for t in group.types)}")
    if group.HasField("ships"):
        parts.append(f"ships={'yes' if group.ships else 'no'}")
    if group.HasField("pickup"):
        parts.append(f"pickup={'yes' if group.pickup else 'no'}")
    return " ".join(parts) or "(empty)"


def group_from_args(
    group_id: str,
    nodes: str | None = None,
    types: str | None = None,
    ships: bool | None = None,
    pickup: bool | None = None,
) -> network_pb2.NodeGroup:
    group = network_pb2.NodeGroup(group_id=group_id)
    if nodes is not None:
        group.node_ids.extend(split_list(nodes, "--nodes"))
    if types is not None:
        group.types.extend(parse_node_type(t, "--types") for t in split_list(types, "--types"))
    if ships is not None:
        group.ships = ships
    if pickup is not None:
        group.pickup = pickup
    return group


def channel_from_args(
    channel_id: str,
    groups: str,
    name: str = "",
    low_stock: int = 0,
    display_cap: int = 0,
    safety: Sequence[str] = (),
    caps: Sequence[str] = (),
    future_supply_holds: bool = False,
    sourcing: str | None = None,
    split_lines: bool = False,
    max_shipments: int = 0,
) -> network_pb2.Channel:
    """The whole definition of a channel (`channels put` replaces what was there). Without
    sourcing settings the channel sources by the default policy."""
    channel = network_pb2.Channel(
        channel_id=channel_id,
        name=name,
        groups=split_list(groups, "--groups"),
        safety=[parse_safety_rule(text) for text in safety],
        caps=[parse_cap_rule(text) for text in caps],
        low_stock_threshold=low_stock,
        display_cap=display_cap,
        future_supply_holds=future_supply_holds,
    )
    if sourcing is not None or split_lines or max_shipments:
        channel.sourcing.CopyFrom(sourcing_policy(sourcing, split_lines, max_shipments))
    return channel


SOURCING_RULES = ("single_node", "nearest", "priority", "cost")
DEFAULT_SOURCING = ("single_node", "nearest", "priority")


def sourcing_policy(
    rules: str | None = None, split_lines: bool = False, max_shipments: int = 0
) -> network_pb2.SourcingPolicy:
    """`--sourcing single_node,nearest,priority` (in order; the first decides), `--split-lines`,
    `--max-shipments N` -> a policy. Rule names are the server's to check, so a refusal
    names the field the same way for every client."""
    policy = network_pb2.SourcingPolicy(split_lines=split_lines, max_shipments=max_shipments)
    if rules is not None:
        policy.rules.extend(rule.lower() for rule in split_list(rules, "--sourcing"))
    return policy


def describe_sourcing(policy: network_pb2.SourcingPolicy, compact: bool = False) -> str:
    """`single_node,nearest,priority; lines not split; at most 2 shipments` (compact: for a
    table cell, `single_node,nearest,priority max 2`)."""
    rules = ",".join(policy.rules or DEFAULT_SOURCING)
    if compact:
        return (
            rules
            + (" split" if policy.split_lines else "")
            + (f" max {policy.max_shipments}" if policy.max_shipments else "")
        )
    split = "lines may be split over nodes" if policy.split_lines else "lines not split"
    most = (
        f"at most {count_of(range(policy.max_shipments), 'shipment')} per order"
        if policy.max_shipments
        else "no limit of shipments"
    )
    return f"{rules}; {split}; {most}"


# --- purchase limits ---


def parse_limit_pairs(texts: Sequence[str]) -> dict[str, int]:
    """`SKU MAX [SKU MAX ...]` -> {sku: max}, in the order given; MAX 0 removes the SKU's limit.

    Each SKU once; MAX a whole number, 0 or more (the upper bound is the server's to check,
    so a refusal names the field the same way for every client)."""
    if len(texts) % 2:
        given = " ".join(shlex.quote(text) for text in texts)
        raise UsageError(
            f"expected SKU MAX pairs, e.g. SKU-00042 2 SKU-00043 0; got {count_of(texts, 'value')}: {given}"
        )
    limits: dict[str, int] = {}
    for sku, most in zip(texts[::2], texts[1::2], strict=True):
        sku = sku.strip()
        if not sku:
            raise UsageError(f"a SKU must not be empty (before MAX {most!r})")
        if sku in limits:
            raise UsageError(f"{sku} is given twice; give each SKU once")
        try:
            limits[sku] = parse_int(most, f"{sku}: MAX", (0, INT64[1]))
        except UsageError:
            raise UsageError(
                f"{sku}: MAX must be a whole number of units, 0 or more (0 removes the limit), got {most!r}"
            ) from None
    return limits


QUOTA_SUBJECT = re.compile(r"^customer:(?P<customer>.*?)/sku:(?P<sku>.*)$", re.DOTALL)


def parse_quota_subject(subject: str, customer: str = "") -> tuple[str, str]:
    """`customer:alice/sku:SKU-00042` -> ("alice", "SKU-00042"); ("", subject) when it is not one.

    With the customer that was sent, a customer id holding `/sku:` is split right."""
    known = f"customer:{customer}/sku:"
    if customer and subject.startswith(known):
        return customer, subject[len(known) :]
    match = QUOTA_SUBJECT.match(subject)
    if not match:
        return "", subject
    return match.group("customer"), match.group("sku")


def quota_text(subject: str, description: str, customer: str = "") -> str:
    """One purchase limit a hold would exceed, e.g.
    `customer alice, SKU-00042: limit 2, already held 2, requested 1`."""
    who, sku = parse_quota_subject(subject, customer)
    return f"customer {who}, {sku}: {description}" if who else f"{subject}: {description}"


def describe_limit_changes(limits: Mapping[str, int]) -> str:
    """`SKU-00042 2, SKU-00043 removed`: what a put of these limits does."""
    return ", ".join(f"{sku} {most}" if most else f"{sku} removed" for sku, most in limits.items())


def network_messages(
    nodes: Sequence[Node], groups: Sequence[NodeGroup], channels: Sequence[Channel]
) -> tuple[list[common_pb2.Node], list[network_pb2.NodeGroup], list[network_pb2.Channel]]:
    """A parsed network file as the messages PutNodes, PutGroups and PutChannels take (file order)."""
    config = network_to_proto(
        Network(groups={g.group_id: g for g in groups}, channels={c.channel_id: c for c in channels})
    )
    by_group = {g.group_id: g for g in config.groups}
    by_channel = {c.channel_id: c for c in config.channels}
    return (
        [node_to_proto(node) for node in nodes],
        [by_group[g.group_id] for g in groups],
        [by_channel[c.channel_id] for c in channels],
    )


def read_network_file(path: str, then: str = "") -> NetworkFile:
    """Parse a TOML network file, raising ProblemsError naming every problem."""
    return parse_network_text(read_text(path), path, then)


def parse_network_text(text: str, where: str, then: str = "") -> NetworkFile:
    try:
        return parse_network_file(text)
    except NetworkFileError as error:
        raise ProblemsError(f"{where}: {count_of(error.problems, 'problem')}{then}", error.problems) from None


def message_problems(
    nodes: Sequence[common_pb2.Node],
    groups: Sequence[network_pb2.NodeGroup],
    channels: Sequence[network_pb2.Channel],
) -> tuple[tuple[list[Node], list[NodeGroup], list[Channel]], list[tuple[str, str]]]:
    """The server's checks of each message on its own (ids, types, counts), and what they convert to."""
    limits = Limits()
    found: list[tuple[str, str]] = []

    def checked(convert: Callable[[Any, Limits], list[Any]], items: Sequence[Any]) -> list[Any]:
        try:
            return convert(items, limits) if items else []
        except InvalidArgument as error:
            found.extend(
                (field_by_id(field, nodes, groups, channels), text) for field, text in error.violations
            )
            return []

    converted = (
        checked(nodes_from_proto, nodes),
        checked(groups_from_proto, groups),
        checked(channels_from_proto, channels),
    )
    return converted, found


INDEXED_FIELD = re.compile(r"^(nodes|groups|channels)\[(\d+)\]")


def field_by_id(
    field: str,
    nodes: Sequence[common_pb2.Node],
    groups: Sequence[network_pb2.NodeGroup],
    channels: Sequence[network_pb2.Channel],
) -> str:
    """`groups[2].node_ids[0]` -> `groups[west].node_ids[0]`: a file names things by id."""
    match = INDEXED_FIELD.match(field)
    if not match:
        return field
    kind, index = match.group(1), int(match.group(2))
    items: Sequence[Any] = {"nodes": nodes, "groups": groups, "channels": channels}[kind]
    if index >= len(items):
        return field
    item = items[index]
    name = {"nodes": "node_id", "groups": "group_id", "channels": "channel_id"}[kind]
    return f"{kind}[{getattr(item, name) or index}]{field[match.end() :]}"


def limit_problems(purchase_limits: Mapping[str, int]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """The server's checks of a PutPurchaseLimits (ids, ranges), named as a network file names
    them (`purchase_limits[SKU]`), and the limits they convert to."""
    if not purchase_limits:
        return {}, []
    huge = [
        (f"purchase_limits[{sku}]", f"is out of range: {most}")
        for sku, most in purchase_limits.items()
        if not INT64[0] <= most <= INT64[1]
    ]
    if huge:
        return {}, huge
    limits = [
        network_pb2.PurchaseLimit(sku=sku, max_per_customer=most) for sku, most in purchase_limits.items()
    ]
    try:
        return purchase_limits_from_proto(limits, Limits()), []
    except InvalidArgument as error:
        return {}, [(_limit_field(field, limits), text) for field, text in error.violations]


LIMIT_FIELD = re.compile(r"^limits\[(\d+)\](\.\w+)?")


def limit_field_by_sku(field: str, skus: Sequence[str]) -> str:
    """`limits[1].max_per_customer` -> `limits[SKU-00042].max_per_customer`, as `limits put` names them."""
    match = LIMIT_FIELD.match(field)
    if not match or int(match.group(1)) >= len(skus):
        return field
    return f"limits[{skus[int(match.group(1))] or match.group(1)}]{field[match.end(1) + 1 :]}"


def _limit_field(field: str, limits: Sequence[network_pb2.PurchaseLimit]) -> str:
    """`limits[1].max_per_customer` -> `purchase_limits[SKU-00042]`."""
    match = LIMIT_FIELD.match(field)
    if not match:
        return "purchase_limits" if field == "limits" else field
    index = int(match.group(1))
    sku = limits[index].sku if index < len(limits) else ""
    return f"purchase_limits[{sku or index}]"


def network_problems(
    current: network_pb2.NetworkConfig | None,
    nodes: Sequence[common_pb2.Node],
    groups: Sequence[network_pb2.NodeGroup],
    channels: Sequence[network_pb2.Channel],
    purchase_limits: Mapping[str, int] | None = None,
) -> list[tuple[str, str]]:
    """What the server would refuse if these were put over `current`: the same checks, run first,
    so a file applies whole or not at all. `current` None: only the checks that hold whatever
    the stored network is (ids, types, ranges), not references to nodes and groups."""
    parsed, found = message_problems(nodes, groups, channels)
    limits, found_in_limits = limit_problems(purchase_limits or {})
    found += found_in_limits
    base = network_from_proto(current, Limits()) if current is not None else Network()
    problems = base.with_changes(*parsed, purchase_limits=limits).problems()
    if found or current is None:
        # References may be to what failed to convert (or to what is stored): values only.
        problems = [p for p in problems if p[0].rsplit(".", 1)[-1] in VALUE_SETTINGS]
    return found + problems


VALUE_SETTINGS = {
    "percent",
    "units",
    "low_stock",
    "display_cap",
    "latitude",
    "longitude",
    "name",
    "rules",
    "max_shipments",
}
"""Settings whose value is right or wrong whatever else the network holds."""
