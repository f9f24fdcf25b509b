"""The client commands of expected supply and the network: groups, channels, purchase limits,
and a network file applied in one go."""

from __future__ import annotations

import argparse
import csv
import dataclasses
import sys
import time
from typing import Any

from omnistock.availability.network_file import NetworkFile
from omnistock.cli.common import (
    EXIT_OK,
    EXIT_REFUSED,
    INT64,
    NODE_TYPE_LABELS,
    ProblemsError,
    UsageError,
    count_of,
    to_timestamp,
)
from omnistock.cli.network_args import (
    cap_precedence,
    channel_from_args,
    describe_group,
    describe_limit_changes,
    describe_sourcing,
    field_by_id,
    format_cap_rule,
    format_safety_rule,
    group_from_args,
    limit_field_by_sku,
    network_messages,
    network_problems,
    parse_limit_pairs,
    read_network_file,
    safety_precedence,
)
from omnistock.cli.output import Output, limits_table, local_time, table, to_dict, wrapped
from omnistock.cli.parsing import parse_int, parse_time, read_supplies
from omnistock.client import OmnistockClient, OmnistockRpcError
from omnistock.gateway.grpc.convert import (
    Limits,
    network_from_proto,
)
from omnistock.protos.gen.omnistock.v1 import inventory_pb2, network_pb2


def supply_text(item: inventory_pb2.InboundSupply) -> str:
    if not item.quantity:
        return f"supply {item.supply_id}: {item.sku} at {item.node_id} cleared (nothing expected)"
    return (
        f"supply {item.supply_id}: {item.quantity} x {item.sku} expected at {item.node_id}"
        f" on {local_time(item.expected_at)}"
    )


async def cmd_supply_expect(client: OmnistockClient, args: argparse.Namespace, out: Output) -> int:
    quantity = parse_int(args.quantity, "QTY", (0, INT64[1]))
    if args.date is None and quantity:
        raise UsageError("--date is required: when the supply is expected, ISO 8601 (e.g. 2026-12-01)")
    expected_at = parse_time(args.date, "--date") if args.date is not None else time.time()
    item = inventory_pb2.InboundSupply(
        supply_id=args.supply_id,
        sku=args.sku,
        node_id=args.node,
        quantity=quantity,
        expected_at=to_timestamp(expected_at),
    )
    response = await client.expect_supply([item])
    out.result({"applied": response.applied, "supply": to_dict(item)}, supply_text(item))
    return EXIT_OK


async def cmd_supply_load(client: OmnistockClient, args: argparse.Namespace, out: Output) -> int:
    if args.file == "-":
        supplies = read_supplies(csv.reader(sys.stdin))
    else:
        try:
            with open(args.file, newline="", encoding="utf-8-sig") as handle:
                supplies = read_supplies(csv.reader(handle))
        except OSError as error:
            raise UsageError(f"cannot read {args.file}: {error.strerror or error}") from None
    applied = 0
    started = time.perf_counter()
    for start in range(0, len(supplies), args.chunk):
        chunk = supplies[start : start + args.chunk]
        try:
            response = await client.expect_supply(chunk)
        except OmnistockRpcError as error:
            if start:
                out.note(
                    f"the first {start} line(s) were applied, none after them"
                    " (loading the file again is safe: each line sets its quantity and date)"
                )
            return out.rpc_error(error)
        applied += response.applied
        if len(supplies) > args.chunk:
            out.note(f"sent {start + len(chunk)} of {len(supplies)} lines")
    cleared = sum(1 for item in supplies if not item.quantity)
    supply_ids = len({item.supply_id for item in supplies})
    units = sum(item.quantity for item in supplies)
    text = (
        f"{count_of(supplies, 'supply line')} applied: {supply_ids} supply id(s), {units} units expected"
        + (f", {cleared} line(s) cleared" if cleared else "")
        + f" ({time.perf_counter() - started:.1f}s)"
    )
    out.result({"applied": applied, "lines": len(supplies), "supplies": supply_ids, "cleared": cleared}, text)
    return EXIT_OK


# --- network: groups and channels ---


class NetworkReading:
    """A NetworkConfig with the members of each group and the nodes each channel sells from."""

    def __init__(self, config: network_pb2.NetworkConfig) -> None:
        self.config = config
        self.network = network_from_proto(config, Limits())
        self.groups = {g.group_id: g for g in config.groups}
        self.channels = {c.channel_id: c for c in config.channels}

    def members(self, group_id: str) -> list[str]:
        group = self.network.groups.get(group_id)
        return sorted(group.members(self.network.nodes)) if group else []

    def eligible(self, channel_id: str) -> list[str]:
        return sorted(self.network.eligible(channel_id)) if channel_id in self.network.channels else []

    def groups_table(self) -> str:
        if not self.groups:
            return "no groups"
        rows = [
            (group_id, len(self.members(group_id)), describe_group(group))
            for group_id, group in sorted(self.groups.items())
        ]
        return table(["GROUP", "NODES", "DEFINITION"], rows)

    def channels_table(self) -> str:
        if not self.channels:
            return "no channels"
        rows = [
            (
                channel_id,
                channel.name or "-",
                ",".join(channel.groups),
                len(self.eligible(channel_id)),
                len(channel.safety),
                len(channel.caps),
                describe_sourcing(channel.sourcing, compact=True),
                channel.low_stock_threshold,
                channel.display_cap or "-",
                channel.future_supply_holds,
            )
            for channel_id, channel in sorted(self.channels.items())
        ]
        return table(
            [
                "CHANNEL",
                "NAME",
                "GROUPS",
                "NODES",
                "SAFETY",
                "CAPS",
                "SOURCING",
                "LOW_STOCK",
                "DISPLAY_CAP",
                "FUTURE_SUPPLY",
            ],
            rows,
        )

    def show_group(self, group_id: str) -> str:
        members = self.members(group_id)
        lines = [f"group {group_id}: {describe_group(self.groups[group_id])}, {count_of(members, 'node')}"]
        if members:
            lines.append(wrapped(members))
        return "\n".join(lines)

    def show_channel(self, channel_id: str) -> str:
        channel = self.channels[channel_id]
        eligible = self.eligible(channel_id)
        safety = sorted(channel.safety, key=safety_precedence, reverse=True)
        caps = sorted(channel.caps, key=cap_precedence, reverse=True)
        rows: list[tuple[str, str]] = [
            ("channel", channel_id),
            ("name", channel.name or "-"),
            ("groups", ", ".join(channel.groups)),
            ("nodes", f"{len(eligible)} enabled node(s) in those groups"),
            ("", wrapped(eligible, indent="", width=86)),
            ("low stock", f"LOW_STOCK when 0 < available <= {channel.low_stock_threshold}"),
            ("display cap", f"answers show at most {channel.display_cap}" if channel.display_cap else "none"),
            (
                "future supply",
                "holds may take expected inbound supply (preorders)"
                if channel.future_supply_holds
                else "no: holds take stock on hand only",
            ),
        ]
        rows += [("safety" if i == 0 else "", format_safety_rule(r)) for i, r in enumerate(safety)] or [
            ("safety", "none")
        ]
        rows += [("caps" if i == 0 else "", format_cap_rule(c)) for i, c in enumerate(caps)] or [
            ("caps", "none (up to 100% of a node)")
        ]
        rows.append(("sourcing", describe_sourcing(channel.sourcing)))
        width = max(len(label) for label, _ in rows)
        lines = []
        for label, value in rows:
            for i, part in enumerate(value.splitlines() or [""]):
                lines.append(f"{(label if i == 0 else '').ljust(width)}  {part}".rstrip())
        return "\n".join(line for line in lines if line)

    def summary(self) -> str:
        nodes = self.config.nodes
        by_type: dict[str, int] = {}
        for node in nodes:
            label = NODE_TYPE_LABELS.get(node.type, str(node.type))
            by_type[label] = by_type.get(label, 0) + 1
        kinds = ", ".join(f"{count} {label}" for label, count in sorted(by_type.items()))
        disabled = sum(1 for node in nodes if not node.enabled)
        limits = self.config.purchase_limits
        return (
            f"network version {self.config.version}: {count_of(nodes, 'node')}"
            + (f" ({kinds}; {disabled} disabled)" if nodes else "")
            + f", {count_of(self.groups, 'group')}, {count_of(self.channels, 'channel')}"
            + (f", {count_of(limits, 'purchase limit')}" if limits else "")
        )

    def limits_table(self) -> str:
        return limits_table(self.config.purchase_limits)


def version_line(config: network_pb2.NetworkConfig) -> str:
    return f"network version {config.version}"


async def cmd_groups_list(client: OmnistockClient, args: argparse.Namespace, out: Output) -> int:
    reading = NetworkReading(await client.get_network())
    data = {
        "version": reading.config.version,
        "groups": [
            {**to_dict(group), "members": reading.members(group.group_id)} for group in reading.config.groups
        ],
    }
    out.result(data, f"{reading.groups_table()}\n{version_line(reading.config)}")
    return EXIT_OK


async def cmd_groups_put(client: OmnistockClient, args: argparse.Namespace, out: Output) -> int:
    group = group_from_args(args.group_id, args.nodes, args.types, args.ships, args.pickup)
    reading = NetworkReading(await client.put_groups([group]))
    data = {
        "version": reading.config.version,
        "group": to_dict(reading.groups[group.group_id]),
        "members": reading.members(group.group_id),
    }
    out.result(data, f"{reading.show_group(group.group_id)}\n{version_line(reading.config)}")
    return EXIT_OK


async def cmd_groups_delete(client: OmnistockClient, args: argparse.Namespace, out: Output) -> int:
    config = await client.delete_groups(args.group_ids)
    data = {"version": config.version, "deleted": list(args.group_ids)}
    out.result(data, f"deleted group(s) {', '.join(args.group_ids)}\n{version_line(config)}")
    return EXIT_OK


async def cmd_channels_list(client: OmnistockClient, args: argparse.Namespace, out: Output) -> int:
    reading = NetworkReading(await client.get_network())
    data = {
        "version": reading.config.version,
        "channels": [
            {**to_dict(channel), "eligible_nodes": reading.eligible(channel.channel_id)}
            for channel in reading.config.channels
        ],
    }
    out.result(data, f"{reading.channels_table()}\n{version_line(reading.config)}")
    return EXIT_OK


async def cmd_channels_show(client: OmnistockClient, args: argparse.Namespace, out: Output) -> int:
    reading = NetworkReading(await client.get_network())
    if args.channel_id not in reading.channels:
        known = ", ".join(sorted(reading.channels)) or "none"
        out.error(
            "NOT_FOUND",
            f"channel {args.channel_id!r} not found (channels: {known})",
            {"channel_id": args.channel_id},
        )
        return EXIT_REFUSED
    data = {
        "version": reading.config.version,
        "channel": to_dict(reading.channels[args.channel_id]),
        "eligible_nodes": reading.eligible(args.channel_id),
    }
    out.result(data, f"{reading.show_channel(args.channel_id)}\n{version_line(reading.config)}")
    return EXIT_OK


async def cmd_channels_put(client: OmnistockClient, args: argparse.Namespace, out: Output) -> int:
    channel = channel_from_args(
        args.channel_id,
        args.groups,
        args.name,
        args.low_stock,
        args.display_cap,
        args.safety,
        args.cap,
        args.future_supply_holds,
        args.sourcing,
        args.split_lines,
        args.max_shipments,
    )
    try:
        config = await client.put_channels([channel])
    except OmnistockRpcError as error:
        # Some checks name the channel by its place in the call (`channels[0]`): name it by id.
        named = [(field_by_id(field, [], [], [channel]), text) for field, text in error.field_violations]
        return out.rpc_error(dataclasses.replace(error, field_violations=named))
    reading = NetworkReading(config)
    data = {
        "version": reading.config.version,
        "channel": to_dict(reading.channels[channel.channel_id]),
        "eligible_nodes": reading.eligible(channel.channel_id),
    }
    out.result(data, f"{reading.show_channel(channel.channel_id)}\n{version_line(reading.config)}")
    return EXIT_OK


async def cmd_channels_delete(client: OmnistockClient, args: argparse.Namespace, out: Output) -> int:
    config = await client.delete_channels(args.channel_ids)
    data = {"version": config.version, "deleted": list(args.channel_ids)}
    out.result(data, f"deleted channel(s) {', '.join(args.channel_ids)}\n{version_line(config)}")
    return EXIT_OK


async def cmd_network_show(client: OmnistockClient, args: argparse.Namespace, out: Output) -> int:
    reading = NetworkReading(await client.get_network())
    text = "\n\n".join(
        [reading.summary(), reading.groups_table(), reading.channels_table(), reading.limits_table()]
    )
    out.result(reading.config, text)
    return EXIT_OK


def limits_data(config: network_pb2.NetworkConfig) -> list[dict[str, Any]]:
    return [to_dict(limit) for limit in sorted(config.purchase_limits, key=lambda limit: limit.sku)]


async def cmd_limits_list(client: OmnistockClient, args: argparse.Namespace, out: Output) -> int:
    config = await client.get_network()
    data = {"version": config.version, "purchase_limits": limits_data(config)}
    out.result(data, f"{limits_table(config.purchase_limits)}\n{version_line(config)}")
    return EXIT_OK


async def cmd_limits_put(client: OmnistockClient, args: argparse.Namespace, out: Output) -> int:
    limits = parse_limit_pairs(args.pairs)
    try:
        config = await client.put_purchase_limits(limits)
    except OmnistockRpcError as error:
        named = [(limit_field_by_sku(field, list(limits)), text) for field, text in error.field_violations]
        return out.rpc_error(dataclasses.replace(error, field_violations=named))
    data = {
        "version": config.version,
        "changed": [{"sku": sku, "max_per_customer": most} for sku, most in limits.items()],
        "purchase_limits": limits_data(config),
    }
    text = f"purchase limits: {describe_limit_changes(limits)}\n{limits_table(config.purchase_limits)}"
    out.result(data, f"{text}\n{version_line(config)}")
    return EXIT_OK


async def apply_network(client: OmnistockClient, network: NetworkFile, where: str) -> dict[str, Any]:
    """Put a parsed network file's nodes, then groups, then channels, then purchase limits.

    Everything is checked first against the network as it stands, with the server's own
    rules, so a bad file changes nothing (ProblemsError names every problem).
    """
    node_messages, group_messages, channel_messages = network_messages(
        network.nodes, network.groups, network.channels
    )
    problems = network_problems(
        await client.get_network(), node_messages, group_messages, channel_messages, network.purchase_limits
    )
    if problems:
        raise ProblemsError(f"{where}: {count_of(problems, 'problem')}, nothing was applied", problems)
    applied: dict[str, Any] = {}
    config: network_pb2.NetworkConfig | None = None
    if node_messages:
        put = await client.put_nodes(node_messages)
        applied["nodes"] = {"created": put.created, "updated": put.updated}
    if group_messages:
        config = await client.put_groups(group_messages)
        applied["groups"] = [g.group_id for g in group_messages]
    if channel_messages:
        config = await client.put_channels(channel_messages)
        applied["channels"] = [c.channel_id for c in channel_messages]
    if network.purchase_limits:
        config = await client.put_purchase_limits(network.purchase_limits)
        applied["purchase_limits"] = dict(network.purchase_limits)
    if config is None:
        config = await client.get_network()
    applied["version"] = config.version
    return applied


def describe_applied(applied: dict[str, Any]) -> str:
    lines = []
    if "nodes" in applied:
        nodes = applied["nodes"]
        lines.append(f"nodes     {nodes['created']} created, {nodes['updated']} updated")
    if "groups" in applied:
        lines.append(f"groups    {', '.join(applied['groups'])}")
    if "channels" in applied:
        lines.append(f"channels  {', '.join(applied['channels'])}")
    if "purchase_limits" in applied:
        lines.append(f"limits    {describe_limit_changes(applied['purchase_limits'])}")
    lines.append(f"network version {applied['version']}")
    return "\n".join(lines)


async def cmd_network_apply(client: OmnistockClient, args: argparse.Namespace, out: Output) -> int:
    network = read_network_file(args.file, ", nothing was applied")
    if not (network.nodes or network.groups or network.channels or network.purchase_limits):
        raise UsageError(f"{args.file}: no nodes, groups, channels or purchase limits in the file")
    applied = await apply_network(client, network, args.file)
    out.result(applied, f"applied {args.file}\n{describe_applied(applied)}")
    return EXIT_OK
