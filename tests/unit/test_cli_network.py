"""The CLI's groups, channels and network commands, without a server: rule strings, flags,
network files (the demo's among them), pre-checks and the text they print."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import signal
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from omnistock.availability.network import Network
from omnistock.availability.network_file import parse_network
from omnistock.cli import main
from omnistock.cli.app import build_parser
from omnistock.cli.commands import cmd_availability, cmd_pickup
from omnistock.cli.common import TARGET_ENV, ProblemsError, UsageError
from omnistock.cli.network_args import (
    cap_precedence,
    channel_from_args,
    describe_group,
    format_cap_rule,
    format_safety_rule,
    group_from_args,
    network_messages,
    network_problems,
    parse_cap_rule,
    parse_safety_rule,
    parse_yes_no,
    safety_precedence,
)
from omnistock.cli.network_commands import NetworkReading
from omnistock.cli.output import Output
from omnistock.cli.serve import serve_network, service_config
from omnistock.cli.watch import WatchPrinter, _plain, cmd_watch, resume_command
from omnistock.client import OmnistockRpcError
from omnistock.gateway.grpc.convert import Limits, nodes_from_proto
from omnistock.loadtest import datagen
from omnistock.loadtest.datagen import demo_network_text, demo_nodes, load_demo
from omnistock.protos.gen.omnistock.v1 import availability_pb2, common_pb2, inventory_pb2, network_pb2

STORE, DC = common_pb2.NODE_TYPE_STORE, common_pb2.NODE_TYPE_DC
ROOT = Path(__file__).resolve().parents[2]
CLOSED = "127.0.0.1:1"  # never an omnistock: a call would fail with UNAVAILABLE (exit 1), not 2


# --- the demo network file ---


def demo_network() -> Network:
    nodes = nodes_from_proto(demo_nodes(), Limits())
    _, groups, channels = parse_network(demo_network_text())
    return Network().with_changes(nodes, groups, channels)


def test_demo_network_is_valid_over_the_demo_nodes() -> None:
    network = demo_network()
    assert network.problems() == []
    assert set(network.groups) == {"dcs", "ship-from-store", "pickup-stores", "all-stores"}
    assert set(network.channels) == {"web", "marketplace", "store-pickup", "call-centre"}
    for channel_id in network.channels:
        assert network.eligible(channel_id), f"{channel_id} sells from no node"


def test_demo_channels_sell_from_the_nodes_they_say() -> None:
    network = demo_network()
    nodes = network.nodes.values()
    dcs = {n.node_id for n in nodes if n.type.value == "dc"}
    stores = {n.node_id for n in nodes if n.type.value == "store"}
    shipping = {n.node_id for n in nodes if n.type.value == "store" and n.ships}
    assert len(dcs) == 3 and len(stores) == 50 and 0 < len(shipping) < 50
    assert network.eligible("web") == dcs | shipping
    assert network.eligible("marketplace") == dcs
    assert network.eligible("store-pickup") == stores  # every demo store offers pickup
    assert network.eligible("call-centre") == dcs | stores


def test_demo_channel_rules() -> None:
    network = demo_network()
    web, marketplace, pickup = (network.channels[c] for c in ("web", "marketplace", "store-pickup"))
    store = network.nodes["STORE-001"]
    dc = network.nodes["DC-01"]
    assert (web.low_stock, web.display_cap) == (10, 100)
    at_store = network.limit(web, "SKU-00001", store)
    assert (at_store.safety_units, at_store.cap_percent) == (2, 50.0)
    at_dc = network.limit(web, "SKU-00001", dc)
    assert (at_dc.safety_units, at_dc.cap_percent) == (0, 100.0)
    assert network.limit(marketplace, "SKU-00001", dc).safety_percent == 5.0
    assert marketplace.low_stock == 20
    assert network.limit(pickup, "SKU-00001", store).safety_units == 1
    assert pickup.low_stock == 3
    assert network.channels["call-centre"].safety == () and network.channels["call-centre"].caps == ()


def test_demo_network_file_ships_with_the_package() -> None:
    path = Path(datagen.__file__).with_name(datagen.DEMO_NETWORK_FILE)
    assert path.is_file()
    assert demo_network_text() == path.read_text(encoding="utf-8")
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "*.toml" in pyproject["tool"]["setuptools"]["package-data"]["omnistock.loadtest"]


def test_demo_network_passes_the_serve_checks() -> None:
    args = build_parser().parse_args(["serve", "--demo"])
    found = serve_network(args)
    assert found is not None
    where, (nodes, groups, channels) = found
    assert where == "loadtest/demo-network.toml"
    assert (len(nodes), len(groups), len(channels)) == (0, 4, 4)
    assert serve_network(build_parser().parse_args(["serve"])) is None


async def test_load_demo_runs_the_network_between_nodes_and_levels() -> None:
    calls: list[str] = []

    class Recorder:
        async def put_nodes(self, nodes: Any) -> inventory_pb2.PutNodesResponse:
            calls.append("nodes")
            return inventory_pb2.PutNodesResponse(created=len(nodes))

        async def load_stock(self, levels: Any, chunk_size: int = 0) -> inventory_pb2.LoadStockResponse:
            calls.append("levels")
            return inventory_pb2.LoadStockResponse(received=sum(1 for _ in levels))

    async def network() -> None:
        calls.append("network")

    await load_demo(Recorder(), skus=3, after_nodes=network)
    assert calls == ["nodes", "network", "levels"]

    async def refused() -> None:
        raise ProblemsError("bad", [("f", "d")])

    calls.clear()
    with pytest.raises(ProblemsError):
        await load_demo(Recorder(), skus=3, after_nodes=refused)
    assert calls == ["nodes"]  # no level is loaded after a refused network


# --- rule strings ---


@pytest.mark.parametrize(
    ("text", "units", "percent", "sku", "node", "node_type"),
    [
        ("units=2,node_type=store", 2, 0.0, "", "", STORE),
        ("percent=10,sku=SKU-00001", 0, 10.0, "SKU-00001", "", 0),
        ("units=3,node=STORE-001", 3, 0.0, "", "STORE-001", 0),
        ("units=3,node_id=STORE-001", 3, 0.0, "", "STORE-001", 0),
        (" units = 1 , percent = 12.5% , sku=A , node_type=DC ", 1, 12.5, "A", "", DC),
        ("percent=5", 0, 5.0, "", "", 0),
        ("units=0,sku=SKU-1,node=DC-01", 0, 0.0, "SKU-1", "DC-01", 0),
        ("percent=120", 0, 120.0, "", "", 0),  # ranges are the server's to refuse
        ("units=-1", -1, 0.0, "", "", 0),
    ],
)
def test_safety_rules(text: str, units: int, percent: float, sku: str, node: str, node_type: int) -> None:
    rule = parse_safety_rule(text)
    assert (rule.units, rule.percent, rule.sku, rule.node_id, rule.node_type) == (
        units,
        percent,
        sku,
        node,
        node_type,
    )


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("node_type=store", "needs units=N and/or percent=P"),
        ("", "must be key=value"),
        ("units", "must be key=value"),
        ("units=", "must be key=value"),
        ("units=2,,sku=A", "must be key=value"),
        ("units=2,colour=red", "unknown key 'colour'"),
        ("units=2,units=3", "units is given twice"),
        ("units=2,node=A,node_id=B", "node is given twice"),
        ("units=two", "units must be a whole number"),
        ("units=1.5", "units must be a whole number"),
        ("percent=lots", "percent must be a number"),
        ("percent=nan", "percent must be a finite number"),
        ("units=1,node_type=warehouse", "node_type must be one of store, dc, 3pl, dropship"),
        (f"units={2**63}", "out of range"),
    ],
)
def test_bad_safety_rules(text: str, complaint: str) -> None:
    with pytest.raises(UsageError, match=complaint):
        parse_safety_rule(text)


@pytest.mark.parametrize(
    ("text", "percent", "node", "node_type"),
    [
        ("percent=50,node_type=store", 50.0, "", STORE),
        ("percent=30,node=STORE-001", 30.0, "STORE-001", 0),
        ("percent=80", 80.0, "", 0),
        ("pct=5%", 5.0, "", 0),
    ],
)
def test_caps(text: str, percent: float, node: str, node_type: int) -> None:
    cap = parse_cap_rule(text)
    assert (cap.percent, cap.node_id, cap.node_type) == (percent, node, node_type)


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("node_type=store", "needs percent=P"),
        ("percent=50,units=2", "unknown key 'units'"),
        ("percent=50,sku=A", "unknown key 'sku'"),
        ("percent=half", "percent must be a number"),
    ],
)
def test_bad_caps(text: str, complaint: str) -> None:
    with pytest.raises(UsageError, match=complaint):
        parse_cap_rule(text)


@pytest.mark.parametrize(
    "text",
    [
        "units=2,node_type=store",
        "percent=10,sku=SKU-00001",
        "units=3,node=STORE-001",
        "units=0",
        "percent=12.5",
    ],
)
def test_safety_rules_print_as_they_are_typed(text: str) -> None:
    assert format_safety_rule(parse_safety_rule(text)) == text


def test_units_and_percent_together_print_both() -> None:
    rule = parse_safety_rule("percent=5,units=2,node_type=dc,sku=S,node=N")
    assert format_safety_rule(rule) == "units=2,percent=5,sku=S,node=N,node_type=dc"
    assert parse_safety_rule(format_safety_rule(rule)) == rule


@pytest.mark.parametrize("text", ["percent=50,node_type=store", "percent=30,node=STORE-001", "percent=0"])
def test_caps_print_as_they_are_typed(text: str) -> None:
    assert format_cap_rule(parse_cap_rule(text)) == text


def test_precedence_orders_rules_most_specific_first() -> None:
    texts = [
        "units=1",
        "units=2,node_type=store",
        "units=3,node=STORE-001",
        "units=4,sku=S",
        "units=5,sku=S,node_type=store",
        "units=6,sku=S,node=STORE-001",
    ]
    rules = [parse_safety_rule(t) for t in texts]
    ordered = sorted(rules, key=safety_precedence, reverse=True)
    assert [r.units for r in ordered] == [6, 5, 4, 3, 2, 1]
    caps = [parse_cap_rule(t) for t in ["percent=1", "percent=2,node=A", "percent=3,node_type=dc"]]
    assert [c.percent for c in sorted(caps, key=cap_precedence, reverse=True)] == [2, 3, 1]


# --- yes/no flags, lists, groups and channels from arguments ---


@pytest.mark.parametrize(("text", "value"), [("yes", True), ("Y", True), ("true", True), ("1", True)])
def test_yes(text: str, value: bool) -> None:
    assert parse_yes_no(text) is value


@pytest.mark.parametrize("text", ["no", "N", "false", "0", "off"])
def test_no(text: str) -> None:
    assert parse_yes_no(text) is False


@pytest.mark.parametrize("text", ["", "maybe", "any", "2"])
def test_neither_yes_nor_no(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="must be yes or no"):
        parse_yes_no(text)


def test_bad_yes_no_flag_is_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["groups", "put", "g", "--ships", "maybe"])
    assert exited.value.code == 2


def test_group_selector_from_flags() -> None:
    args = build_parser().parse_args(
        ["groups", "put", "sfs", "--types", "store, dc", "--ships", "yes", "--pickup", "no"]
    )
    group = group_from_args(args.group_id, args.nodes, args.types, args.ships, args.pickup)
    assert group.group_id == "sfs" and list(group.types) == [STORE, DC]
    assert (group.HasField("ships"), group.ships, group.HasField("pickup"), group.pickup) == (
        True,
        True,
        True,
        False,
    )
    assert list(group.node_ids) == []
    assert describe_group(group) == "types=store,dc ships=yes pickup=no"


def test_a_group_without_selector_flags_leaves_them_unset() -> None:
    group = group_from_args("few", nodes="DC-01,STORE-002")
    assert list(group.node_ids) == ["DC-01", "STORE-002"]
    assert not group.HasField("ships") and not group.HasField("pickup") and not group.types
    assert describe_group(group) == "nodes=DC-01,STORE-002"
    assert describe_group(network_pb2.NodeGroup(group_id="x")) == "(empty)"


@pytest.mark.parametrize(
    ("nodes", "types", "complaint"),
    [
        ("A,,B", None, "--nodes must be a comma-separated list"),
        (None, "dc,warehouse", "--types must be one of"),
    ],
)
def test_bad_group_flags(nodes: str | None, types: str | None, complaint: str) -> None:
    with pytest.raises(UsageError, match=complaint):
        group_from_args("g", nodes=nodes, types=types)


def test_channel_from_flags_is_the_whole_definition() -> None:
    args = build_parser().parse_args(
        [
            "channels",
            "put",
            "web",
            "--groups",
            "dcs,ship-from-store",
            "--name",
            "Web shop",
            "--low-stock",
            "10",
            "--display-cap",
            "100",
            "--safety",
            "units=2,node_type=store",
            "--safety",
            "percent=10,sku=SKU-00001",
            "--cap",
            "percent=50,node_type=store",
        ]
    )
    channel = channel_from_args(
        args.channel_id, args.groups, args.name, args.low_stock, args.display_cap, args.safety, args.cap
    )
    assert channel == network_pb2.Channel(
        channel_id="web",
        name="Web shop",
        groups=["dcs", "ship-from-store"],
        safety=[
            network_pb2.SafetyRule(units=2, node_type=STORE),
            network_pb2.SafetyRule(percent=10, sku="SKU-00001"),
        ],
        caps=[network_pb2.AllocationCap(percent=50, node_type=STORE)],
        low_stock_threshold=10,
        display_cap=100,
    )


def test_channels_put_needs_groups() -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["channels", "put", "web"])
    assert exited.value.code == 2


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["channels", "put", "web", "--groups", "dcs", "--safety", "node_type=store"], "needs units=N"),
        (["channels", "put", "web", "--groups", "dcs", "--cap", "units=3"], "unknown key 'units'"),
        (["channels", "put", "web", "--groups", "dcs,"], "--groups must be a comma-separated list"),
        (["groups", "put", "g", "--types", "warehouse"], "--types must be one of"),
    ],
)
def test_bad_rules_exit_2_before_any_call(
    argv: list[str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*argv, "--target", CLOSED]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and complaint in captured.err


# --- network files ---

BAD_FILE = """
[groups.west]
types = ["warehouse"]
colour = "red"

[channels.b2b]
groups = "dcs"
safety = [{ percent = "lots" }]
"""


def test_bad_network_file_names_every_problem_and_sends_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "network.toml"
    path.write_text(BAD_FILE)
    assert main(["network", "apply", str(path), "--target", CLOSED]) == 2
    err = capsys.readouterr().err
    assert f"error: INVALID_ARGUMENT: {path}: 4 problems, nothing was applied" in err
    for line in [
        "  groups[west].colour: is not a known setting",
        "  groups[west].types: must be one of store, dc, 3pl, dropship, got 'warehouse'",
        "  channels[b2b].groups: must be a list, got 'dcs'",
        "  channels[b2b].safety[0].percent: must be a float, got 'lots'",
    ]:
        assert line in err


def test_bad_network_file_as_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "network.toml"
    path.write_text("[channels.x]\ngroups = [1]\nlow_stock_threshold = 'ten'\n")
    assert main(["network", "apply", str(path), "--json", "--target", CLOSED]) == 2
    error = json.loads(capsys.readouterr().out)["error"]
    assert error["code"] == "INVALID_ARGUMENT"
    assert {v["field"] for v in error["field_violations"]} >= {"channels[x].low_stock_threshold"}


def test_serve_refuses_a_bad_network_file_before_starting_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "network.toml"
    path.write_text(
        '[groups.bad]\ntypes = ["dc"]\nnode_ids = ["has space"]\n'
        '[channels.x]\ngroups = ["bad"]\nsafety = [{ percent = 120 }]\ncaps = [{ percent = -1 }]\n'
    )
    data_dir = tmp_path / "var"
    assert main(["serve", "--network", str(path), "--data-dir", str(data_dir), "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert f"error: {path}: 3 problems" in err
    assert "  groups[bad].node_ids[0]: may only contain printable ASCII characters without spaces" in err
    assert "  channels[x].safety[0].percent: must be within 0..100, got 120.0" in err
    assert "  channels[x].caps[0].percent: must be within 0..100, got -1.0" in err
    assert not data_dir.exists()  # no Redis, no Ray was started


def test_serve_refuses_an_unreadable_network_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--network", str(tmp_path / "missing.toml")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_serve_leaves_references_to_the_stored_network_for_later(tmp_path: Path) -> None:
    # Nodes and groups the file names may already be stored: only the server can tell.
    path = tmp_path / "network.toml"
    path.write_text('[channels.web]\ngroups = ["dcs"]\nsafety = [{ node_id = "STORE-001", units = 1 }]\n')
    args = build_parser().parse_args(["serve", "--network", str(path)])
    assert serve_network(args) is not None
    assert service_config(args).network_file == path
    demo_args = build_parser().parse_args(["serve", "--demo", "--network", str(path)])
    assert service_config(demo_args).network_file is None  # applied after the demo nodes


def stored(*nodes: common_pb2.Node, groups: list[network_pb2.NodeGroup] | None = None) -> Any:
    return network_pb2.NetworkConfig(nodes=nodes, groups=groups or [], version=7)


DC1 = common_pb2.Node(node_id="DC-01", type=DC, ships=True, enabled=True)
STORE1 = common_pb2.Node(node_id="STORE-001", type=STORE, ships=True, pickup=True, enabled=True)


def test_a_file_is_checked_against_the_network_as_it_stands() -> None:
    nodes, groups, channels = parse_network(
        '[groups.dcs]\ntypes = ["dc"]\n'
        '[channels.web]\ngroups = ["dcs", "stores"]\nsafety = [{ node_id = "STORE-001", units = 1 }]\n'
    )
    messages = network_messages(nodes, groups, channels)
    assert network_problems(stored(DC1, STORE1), *messages) == [
        ("channels[web].groups", "unknown group 'stores'")
    ]
    with_stores = stored(DC1, STORE1, groups=[network_pb2.NodeGroup(group_id="stores", types=[STORE])])
    assert network_problems(with_stores, *messages) == []
    assert ("groups[dcs]", "has no nodes; name nodes or a selector that matches some") in network_problems(
        stored(STORE1), *messages
    )


def test_id_problems_are_named_by_id_as_in_the_file() -> None:
    nodes, groups, channels = parse_network(
        '[[nodes]]\nnode_id = "NEW 1"\ntype = "store"\n'
        '[groups.ok]\nnode_ids = ["DC-01"]\n[groups."bad one"]\nnode_ids = ["DC-01"]\n'
    )
    problems = network_problems(stored(DC1), *network_messages(nodes, groups, channels))
    fields = [field for field, _ in problems]
    assert "nodes[NEW 1].node_id" in fields
    assert "groups[bad one].group_id" in fields


def test_file_messages_keep_the_file_order() -> None:
    nodes, groups, channels = parse_network(
        '[[nodes]]\nnode_id = "Z"\ntype = "dc"\n'
        '[groups.z]\nnode_ids = ["Z"]\n[groups.a]\ntypes = ["dc"]\nships = false\n'
        '[channels.z]\ngroups = ["z"]\ncaps = [{ percent = 50, node_type = "dc" }]\n'
        '[channels.a]\ngroups = ["a"]\n'
    )
    node_messages, group_messages, channel_messages = network_messages(nodes, groups, channels)
    assert [n.node_id for n in node_messages] == ["Z"]
    assert [g.group_id for g in group_messages] == ["z", "a"]
    assert group_messages[1].HasField("ships") and not group_messages[1].ships
    assert not group_messages[1].HasField("pickup")
    assert [c.channel_id for c in channel_messages] == ["z", "a"]
    assert channel_messages[0].caps[0] == network_pb2.AllocationCap(percent=50, node_type=DC)


# --- what the commands print ---


def demo_config() -> network_pb2.NetworkConfig:
    _, groups, channels = parse_network(demo_network_text())
    _, group_messages, channel_messages = network_messages([], groups, channels)
    return network_pb2.NetworkConfig(
        nodes=demo_nodes(), groups=group_messages, channels=channel_messages, version=3
    )


def test_network_tables() -> None:
    reading = NetworkReading(demo_config())
    assert (
        reading.summary() == "network version 3: 53 nodes (3 dc, 50 store; 0 disabled), 4 groups, 4 channels"
    )
    groups = reading.groups_table().splitlines()
    assert groups[0].split() == ["GROUP", "NODES", "DEFINITION"]
    assert groups[1].split() == ["all-stores", "50", "types=store"]
    assert groups[2].split() == ["dcs", "3", "types=dc"]
    channels = reading.channels_table().splitlines()
    assert channels[0].split()[:4] == ["CHANNEL", "NAME", "GROUPS", "NODES"]
    web = next(line for line in channels if line.startswith("web"))
    assert "dcs,ship-from-store" in web and web.split()[-2:] == ["100", "no"]


def test_channel_text_lists_rules_most_specific_first() -> None:
    config = demo_config()
    web = next(c for c in config.channels if c.channel_id == "web")
    web.safety.append(network_pb2.SafetyRule(percent=10, sku="SKU-00001"))
    text = NetworkReading(config).show_channel("web")
    lines = text.splitlines()
    assert lines[0].split() == ["channel", "web"]
    safety = next(i for i, line in enumerate(lines) if line.startswith("safety"))
    assert lines[safety].split() == ["safety", "percent=10,sku=SKU-00001"]
    assert lines[safety + 1].split() == ["units=2,node_type=store"]
    assert any(line.split() == ["caps", "percent=50,node_type=store"] for line in lines)
    assert "LOW_STOCK when 0 < available <= 10" in text
    assert "answers show at most 100" in text


class FakeClient:
    def __init__(self, response: availability_pb2.GetAvailabilityResponse) -> None:
        self.response = response
        self.asked: dict[str, Any] = {}

    async def availability(self, skus: list[str], **kwargs: Any) -> availability_pb2.GetAvailabilityResponse:
        self.asked = {"skus": skus, **kwargs}
        return self.response


def answer(consistent: bool) -> availability_pb2.GetAvailabilityResponse:
    response = availability_pb2.GetAvailabilityResponse(
        version=0 if consistent else 42, consistent=consistent
    )
    response.as_of.FromSeconds(1_700_000_000)
    sku = response.skus.add(
        sku="SKU-1",
        available=100,
        on_hand=300,
        reserved=4,
        committed=1,
        damaged=2,
        quality_hold=3,
        status=common_pb2.STOCK_STATUS_IN_STOCK,
    )
    sku.nodes.add(
        node_id="DC-01", on_hand=300, reserved=4, committed=1, damaged=2, quality_hold=3, available=240
    )
    return response


async def run(argv: list[str], response: availability_pb2.GetAvailabilityResponse) -> tuple[str, FakeClient]:
    args = build_parser().parse_args(argv)
    client = FakeClient(response)
    stdout = io.StringIO()
    assert await cmd_availability(client, args, Output(args.json, stdout=stdout)) == 0  # type: ignore[arg-type]
    return stdout.getvalue(), client


async def test_channel_availability_text() -> None:
    text, client = await run(["availability", "SKU-1", "--channel", "web"], answer(consistent=False))
    assert client.asked == {
        "skus": ["SKU-1"],
        "include_nodes": False,
        "channel_id": "web",
        "consistent": False,
    }
    header, row, footer = text.splitlines()
    assert header.split() == [
        "SKU",
        "STATUS",
        "AVAILABLE",
        "ON_HAND",
        "RESERVED",
        "COMMITTED",
        "DAMAGED",
        "QUALITY_HOLD",
    ]
    assert row.split() == ["SKU-1", "IN_STOCK", "100", "300", "4", "1", "2", "3"]
    assert footer.startswith("channel web; as of ") and footer.endswith(", view version 42")


async def test_plain_consistent_availability_text() -> None:
    text, client = await run(["availability", "SKU-1", "--consistent"], answer(consistent=True))
    assert client.asked["consistent"] is True and client.asked["channel_id"] == ""
    header, _, footer = text.splitlines()
    assert "STATUS" not in header and "DAMAGED" in header
    assert footer.startswith("consistent read, as of ")


async def test_node_availability_text_tells_a_display_cap() -> None:
    text, _ = await run(["availability", "SKU-1", "--channel", "web", "--nodes"], answer(consistent=False))
    head = text.splitlines()[0]
    assert head.startswith("SKU-1: IN_STOCK, available 100 (display cap; the nodes hold 240);")
    assert "damaged 2, quality_hold 3 at 1 node(s)" in head
    assert text.splitlines()[1].split() == [
        "NODE",
        "ON_HAND",
        "DAMAGED",
        "QUALITY_HOLD",
        "RESERVED",
        "COMMITTED",
        "AVAILABLE",
    ]


async def test_availability_json_keeps_the_freshness() -> None:
    text, _ = await run(["availability", "SKU-1", "--channel", "web", "--json"], answer(consistent=False))
    data = json.loads(text)
    assert data["version"] == 42 and data["consistent"] is False
    assert data["skus"][0]["status"] == "STOCK_STATUS_IN_STOCK"
    assert (data["skus"][0]["damaged"], data["skus"][0]["quality_hold"]) == (2, 3)


def test_refusals_print_every_field(capsys: pytest.CaptureFixture[str]) -> None:
    import grpc

    from omnistock.client import OmnistockRpcError

    error = OmnistockRpcError(
        grpc.StatusCode.INVALID_ARGUMENT,
        "a: x; b: y",
        field_violations=[
            ("channels[web].groups", "unknown group 'x'"),
            ("channels[web].caps[0].percent", "y"),
        ],
    )
    assert Output(False).rpc_error(error) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "error: INVALID_ARGUMENT: 2 problems, nothing was changed",
        "  channels[web].groups: unknown group 'x'",
        "  channels[web].caps[0].percent: y",
    ]


# --- preorder channels: holds on future supply ---


def test_channels_put_takes_future_supply_holds() -> None:
    argv = ["channels", "put", "preorder", "--groups", "dcs"]
    args = build_parser().parse_args([*argv, "--future-supply-holds"])
    channel = channel_from_args(
        args.channel_id, args.groups, future_supply_holds=args.future_supply_holds, low_stock=20
    )
    assert channel == network_pb2.Channel(
        channel_id="preorder", groups=["dcs"], low_stock_threshold=20, future_supply_holds=True
    )
    # `channels put` is the whole definition: without the flag the channel holds stock on hand only.
    assert build_parser().parse_args(argv).future_supply_holds is False


def test_channel_text_and_tables_tell_future_supply_holds() -> None:
    config = demo_config()
    config.channels.add(channel_id="preorder", name="Preorders", groups=["dcs"], future_supply_holds=True)
    reading = NetworkReading(config)
    assert "future supply  holds may take expected inbound supply (preorders)" in reading.show_channel(
        "preorder"
    )
    assert "future supply  no: holds take stock on hand only" in reading.show_channel("web")
    channels = reading.channels_table().splitlines()
    assert channels[0].split()[-1] == "FUTURE_SUPPLY"
    preorder = next(line for line in channels if line.startswith("preorder"))
    assert preorder.split()[-1] == "yes"


def test_a_network_file_channel_keeps_future_supply_holds() -> None:
    _, groups, channels = parse_network(
        '[groups.dcs]\ntypes = ["dc"]\n[channels.preorder]\ngroups = ["dcs"]\nfuture_supply_holds = true\n'
    )
    _, _, messages = network_messages([], groups, channels)
    assert messages[0].future_supply_holds is True


# --- pickup in store ---


def pickup_answer() -> availability_pb2.FindPickupStoresResponse:
    response = availability_pb2.FindPickupStoresResponse(version=6)
    response.as_of.FromSeconds(1_790_000_000)
    whole = response.complete.add(distance_km=3.14159)
    whole.node.CopyFrom(common_pb2.Node(node_id="STORE-045", name="New York #3", type=STORE, pickup=True))
    whole.items.add(sku="SKU-00001", requested=2, available=22)
    whole.items.add(sku="SKU-00002", requested=1, available=2)
    part = response.partial.add(distance_km=22.4)
    part.node.CopyFrom(common_pb2.Node(node_id="STORE-001", name="New York #1", type=STORE, pickup=True))
    part.items.add(sku="SKU-00001", requested=2, available=1)
    part.items.add(sku="SKU-00002", requested=1, available=3)
    return response


class PickupClient:
    def __init__(self, response: availability_pb2.FindPickupStoresResponse) -> None:
        self.response = response
        self.asked: dict[str, Any] = {}

    async def find_pickup_stores(
        self, items: Any, **kwargs: Any
    ) -> availability_pb2.FindPickupStoresResponse:
        self.asked = {"items": [(i.sku, i.quantity) for i in items], **kwargs}
        return self.response


async def pickup(
    argv: list[str], response: availability_pb2.FindPickupStoresResponse
) -> tuple[str, PickupClient]:
    args = build_parser().parse_args(["pickup", *argv])
    client = PickupClient(response)
    stdout = io.StringIO()
    assert await cmd_pickup(client, args, Output(args.json, stdout=stdout)) == 0  # type: ignore[arg-type]
    return stdout.getvalue(), client


async def test_pickup_asks_around_a_place() -> None:
    _, client = await pickup(
        ["SKU-00001:2", "SKU-00002", "--near", "40.7128,-74.0060", "--radius", "30", "--limit", "5"],
        pickup_answer(),
    )
    assert client.asked == {
        "items": [("SKU-00001", 2), ("SKU-00002", 1)],
        "location": (40.7128, -74.006),
        "store_id": "",
        "radius_km": 30.0,
        "channel_id": "",
        "limit": 5,
    }
    _, client = await pickup(
        ["SKU-00001", "--store", "STORE-001", "--channel", "store-pickup"], pickup_answer()
    )
    assert client.asked["location"] is None and client.asked["store_id"] == "STORE-001"
    assert (client.asked["radius_km"], client.asked["limit"], client.asked["channel_id"]) == (
        0.0,
        0,
        "store-pickup",
    )


async def test_pickup_text_lists_whole_then_partial_baskets() -> None:
    text, _ = await pickup(["SKU-00001:2", "SKU-00002", "--near", "40.7128,-74.0060"], pickup_answer())
    lines = text.splitlines()
    assert lines[0] == "basket SKU-00001 x2, SKU-00002 x1; pickup stores within 50 km of 40.7128,-74.006"
    assert lines[2] == "stores with the whole basket: 1, nearest first"
    assert lines[3].split() == ["STORE", "NAME", "DISTANCE_KM", "SKU", "AVAILABLE", "REQUESTED"]
    assert lines[4].split() == ["STORE-045", "New", "York", "#3", "3.1", "SKU-00001", "22", "2"]
    assert lines[5].split() == ["SKU-00002", "2", "1"]  # the same store, next item
    assert lines[7] == "stores with part of the basket: 1, nearest first"
    assert lines[8].split()[-1] == "SHORT"
    assert lines[9].split() == ["STORE-001", "New", "York", "#1", "22.4", "SKU-00001", "1", "2", "1"]
    assert lines[10].split() == ["SKU-00002", "3", "1"]
    assert lines[-1].endswith(", view version 6")


async def test_pickup_text_when_nothing_is_found() -> None:
    empty = availability_pb2.FindPickupStoresResponse(version=6)
    text, _ = await pickup(["SKU-9", "--store", "STORE-001", "--radius", "5", "--channel", "c"], empty)
    assert text.splitlines()[:3] == [
        "basket SKU-9 x1; pickup stores within 5 km of STORE-001, channel c",
        "",
        "no pickup store there has any of the basket",
    ]
    only_partial = pickup_answer()
    del only_partial.complete[:]
    text, _ = await pickup(["SKU-00001:2", "--store", "STORE-001"], only_partial)
    assert "no store has the whole basket" in text and "stores with part of the basket: 1" in text


async def test_pickup_json_is_the_answer() -> None:
    text, _ = await pickup(["SKU-00001:2", "SKU-00002", "--store", "STORE-001", "--json"], pickup_answer())
    data = json.loads(text)
    assert data["complete"][0]["node"]["node_id"] == "STORE-045"
    assert data["partial"][0]["items"][0] == {"sku": "SKU-00001", "requested": 2, "available": 1}
    assert data["version"] == 6


# --- the live availability feed ---

IN, LOW, OUT = (
    common_pb2.STOCK_STATUS_IN_STOCK,
    common_pb2.STOCK_STATUS_LOW_STOCK,
    common_pb2.STOCK_STATUS_OUT_OF_STOCK,
)


def update(
    version: int, catch_up: bool, *changes: tuple[str, int, int, int]
) -> availability_pb2.WatchAvailabilityResponse:
    message = availability_pb2.WatchAvailabilityResponse(version=version, catch_up=catch_up)
    message.as_of.FromSeconds(1_790_000_000 + version)
    for sku, available, status, previous in changes:
        message.changes.add(sku=sku, available=available, status=status, previous_status=previous)
    return message


def test_watch_text_marks_catch_up_and_status_crossings() -> None:
    printer = WatchPrinter(Output(False))
    first = printer.format(update(6, True, ("SKU-00001", 728, IN, 0), ("SKU-00432", 18, IN, 0))).splitlines()
    assert first[0].startswith("version 6, as of ") and first[0].endswith(" (catch-up: 2 SKUs)")
    assert first[1:] == ["  SKU-00001  IN_STOCK  available 728", "  SKU-00432  IN_STOCK  available 18"]
    live = printer.format(
        update(7, False, ("SKU-00432", 3, LOW, IN), ("SKU-00001", 700, IN, IN))
    ).splitlines()
    assert "catch-up" not in live[0]
    assert live[1:] == [
        "  SKU-00432  IN_STOCK -> LOW_STOCK  available 3 (was 18)",
        "  SKU-00001  IN_STOCK               available 700 (was 728)",
    ]
    gone = printer.format(update(8, False, ("SKU-00432", 0, OUT, LOW))).splitlines()
    assert gone[1] == "  SKU-00432  LOW_STOCK -> OUT_OF_STOCK  available 0 (was 3)"


def test_watch_text_without_a_channel_has_no_status() -> None:
    printer = WatchPrinter(Output(False))
    text = printer.format(update(3, True, ("A", 5, 0, 0), ("LONG-SKU", 0, 0, 0)))
    assert text.splitlines()[1:] == ["  A         available 5", "  LONG-SKU  available 0"]


def test_watch_colors_only_crossings() -> None:
    printer = WatchPrinter(Output(False), color=True)
    printer.format(update(1, True, ("A", 5, IN, 0)))
    text = printer.format(update(2, False, ("A", 2, LOW, IN), ("B", 9, IN, IN)))
    crossing, steady = text.splitlines()[1:]
    assert "\033[1;33mIN_STOCK -> LOW_STOCK\033[0m" in crossing
    assert "\033[" not in steady
    assert _plain(crossing) == "  A  IN_STOCK -> LOW_STOCK  available 2 (was 5)"


def test_a_large_catch_up_is_counted_by_status() -> None:
    printer = WatchPrinter(Output(False), summarise_over=3)
    big = update(9, True, *[(f"S-{i}", i % 3, [OUT, LOW, IN][i % 3], 0) for i in range(10)])
    lines = printer.format(big).splitlines()
    assert lines[0].endswith("(catch-up: 10 SKUs)")
    assert lines[1] == "  IN_STOCK 3, LOW_STOCK 3, OUT_OF_STOCK 4  (--full lists every SKU)"
    assert printer.format(big).splitlines()[1] == "  IN_STOCK 3, LOW_STOCK 3, OUT_OF_STOCK 4"  # hint once
    later = printer.format(update(10, False, ("S-2", 0, OUT, IN))).splitlines()
    assert later[1] == "  S-2  IN_STOCK -> OUT_OF_STOCK  available 0 (was 2)"  # remembered from the summary
    full = WatchPrinter(Output(False), full=True, summarise_over=3)
    assert len(full.format(big).splitlines()) == 11
    small_live = WatchPrinter(Output(False), summarise_over=3)
    assert len(small_live.format(update(9, False, *big_changes(10))).splitlines()) == 11  # live: every change


def big_changes(count: int) -> list[tuple[str, int, int, int]]:
    return [(f"S-{i}", i, IN, IN) for i in range(count)]


def test_watch_json_prints_one_object_per_line() -> None:
    stdout = io.StringIO()
    printer = WatchPrinter(Output(True, stdout=stdout))
    printer.show(update(6, True, ("A", 5, IN, 0)))
    printer.show(update(7, False, ("A", 2, LOW, IN)))
    lines = stdout.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["catch_up"] is True and first["version"] == 6
    assert second["changes"] == [
        {
            "sku": "A",
            "available": 2,
            "status": "STOCK_STATUS_LOW_STOCK",
            "previous_status": "STOCK_STATUS_IN_STOCK",
        }
    ]
    assert (printer.version, printer.updates) == (7, 2)


def test_resume_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TARGET_ENV, raising=False)
    args = build_parser().parse_args(["watch", "SKU-1", "SKU 2", "--channel", "web"])
    assert resume_command(args, 42) == "omnistock watch SKU-1 'SKU 2' --channel web --from-version 42"
    args = build_parser().parse_args(["watch", "--target", "h:1", "--json", "--from-version", "3"])
    assert resume_command(args, 9) == "omnistock watch --target h:1 --json --from-version 9"
    args = build_parser().parse_args(["watch", *[f"S-{i}" for i in range(11)]])
    assert resume_command(args, 9) == "omnistock watch <the same 11 SKUs> --from-version 9"


class WatchClient:
    """Yields the given updates, then either waits (a live feed), ends, or fails."""

    def __init__(self, updates: list[availability_pb2.WatchAvailabilityResponse], then: str = "wait") -> None:
        self.updates = updates
        self.then = then
        self.asked: tuple[Any, ...] = ()

    async def watch_availability(
        self, skus: Any, channel_id: str = "", from_version: int = 0
    ) -> AsyncIterator[availability_pb2.WatchAvailabilityResponse]:
        self.asked = (list(skus), channel_id, from_version)
        for item in self.updates:
            yield item
        if self.then == "wait":
            await asyncio.Event().wait()
        elif self.then == "fail":
            raise OmnistockRpcError(grpc.StatusCode.UNAVAILABLE, "the service is stopping")


async def watch(argv: list[str], client: WatchClient, interrupt: bool = False) -> tuple[int, str, str]:
    args = build_parser().parse_args(["watch", *argv, "--target", "h:1"])
    stdout, stderr = io.StringIO(), io.StringIO()
    if interrupt:
        asyncio.get_running_loop().call_later(0.2, os.kill, os.getpid(), signal.SIGINT)
    code = await cmd_watch(client, args, Output(args.json, stdout=stdout, stderr=stderr))  # type: ignore[arg-type]
    return code, stdout.getvalue(), stderr.getvalue()


async def test_ctrl_c_ends_a_watch_cleanly_with_how_to_resume() -> None:
    client = WatchClient([update(6, True, ("A", 5, IN, 0)), update(7, False, ("A", 2, LOW, IN))])
    code, out, err = await watch(["A", "--channel", "web"], client, interrupt=True)
    assert code == 0
    assert client.asked == (["A"], "web", 0)
    assert "A  IN_STOCK -> LOW_STOCK  available 2 (was 5)" in out
    assert err.splitlines() == [
        "watching 1 SKU through channel web; Ctrl-C stops",
        "stopped at version 7; resume with:",
        "  omnistock watch A --channel web --target h:1 --from-version 7",
    ]
    # The default SIGINT handler is back: Ctrl-C outside a watch interrupts as usual.
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


async def test_ctrl_c_before_any_update() -> None:
    code, out, err = await watch(["--from-version", "12"], WatchClient([]), interrupt=True)
    assert code == 0 and out == ""
    assert err.splitlines()[-1] == "stopped before any update arrived"


async def test_a_broken_feed_says_where_to_resume() -> None:
    code, out, err = await watch(["A"], WatchClient([update(6, True, ("A", 5, 0, 0))], then="fail"))
    assert code == 1 and "A  available 5" in out
    assert err.splitlines()[-3:] == [
        "error: UNAVAILABLE: the service is stopping",
        "the feed broke at version 6; resume with:",
        "  omnistock watch A --target h:1 --from-version 6",
    ]


async def test_a_feed_the_service_ends_exits_1() -> None:
    code, _, err = await watch(["A", "--json"], WatchClient([update(6, True, ("A", 5, 0, 0))], then="end"))
    assert code == 1 and "the service ended the feed at version 6" in err


async def test_a_refused_watch_is_an_error_like_any_call() -> None:
    client = WatchClient([], then="fail")
    with pytest.raises(OmnistockRpcError):
        await watch(["A"], client)
