"""Clean text: ids, names and reasons with control characters are refused at the edge,
naming the field, and the CLI never writes a control character it read to the terminal."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest

from omnistock.cli.app import build_parser
from omnistock.cli.commands import cmd_nodes_list
from omnistock.cli.output import Output, printable, table
from omnistock.gateway.grpc.convert import (
    Limits,
    adjustments_problems,
    channel_id_from_proto,
    channels_from_proto,
    date_query_from_proto,
    groups_from_proto,
    ids_from_proto,
    network_from_proto,
    nodes_from_proto,
    pickup_query_from_proto,
    purchase_limits_from_proto,
    reserve_from_proto,
    supplies_from_proto,
)
from omnistock.protos.gen.omnistock.v1 import (
    availability_pb2,
    common_pb2,
    inventory_pb2,
    network_pb2,
    reservation_pb2,
)
from omnistock.reservations.domain.errors import InvalidArgument

LIMITS = Limits()
HOSTILE = [
    pytest.param("\x1b]0;pwned\x07Store", id="ESC: terminal title"),
    pytest.param("Store\x1b[2J", id="ESC: clear screen"),
    pytest.param("Store 1\nDC-9  dc  enabled", id="newline: a forged line"),
    pytest.param("Store\r", id="carriage return"),
    pytest.param("gnp.\u202eexe", id="U+202E right-to-left override"),
    pytest.param("\u2066Store\u2069", id="U+2066 isolate"),
    pytest.param("Store\x00", id="NUL"),
    pytest.param("Store\x7f", id="DEL"),
    pytest.param("Store\x9b31m", id="C1 CSI"),
    pytest.param("Store\u2028two", id="line separator"),
]
FINE_TEXT = [
    "Store 12 — Hauptstraße",
    "Tienda Núñez, Bogotá",
    "東京 渋谷店",
    "متجر الرياض",  # right-to-left script, no controls
    "Family \U0001f468\u200d\U0001f469\u200d\U0001f467 store",  # ZWJ inside an emoji
    "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",  # ZWNJ in Persian
    "",
]


def refused_fields(convert: Callable[[], Any]) -> list[str]:
    with pytest.raises(InvalidArgument) as refused:
        convert()
    return [field for field, _ in refused.value.violations]


def node(name: str = "", node_id: str = "STORE-1") -> common_pb2.Node:
    return common_pb2.Node(node_id=node_id, type=common_pb2.NODE_TYPE_STORE, name=name, enabled=True)


@pytest.mark.parametrize("text", HOSTILE)
def test_a_node_name_with_control_characters_is_refused_naming_the_field(text: str) -> None:
    fields = refused_fields(lambda: nodes_from_proto([node("Fine"), node(text, "STORE-2")], LIMITS))
    assert fields == ["nodes[1].name"]


def test_the_refusal_says_which_character_and_where() -> None:
    with pytest.raises(InvalidArgument) as refused:
        nodes_from_proto([node("ab\x1bc")], LIMITS)
    assert refused.value.violations == [
        ("nodes[0].name", "must not contain control characters; found U+001B at character 2")
    ]


@pytest.mark.parametrize("text", FINE_TEXT)
def test_names_in_any_script_are_taken(text: str) -> None:
    assert nodes_from_proto([node(text)], LIMITS)[0].name == text
    channel = network_pb2.Channel(channel_id="web", name=text, groups=["dcs"])
    assert channels_from_proto([channel], LIMITS)[0].name == text


@pytest.mark.parametrize("text", HOSTILE)
def test_an_adjustment_reason_with_control_characters_is_refused(text: str) -> None:
    adjustment = inventory_pb2.StockAdjustment(
        adjustment_id="a-1", sku="SKU-1", node_id="DC-1", delta=-1, reason=text
    )
    assert refused_fields(lambda: adjustments_problems([adjustment], LIMITS)) == ["adjustments[0].reason"]


def test_a_clean_reason_is_taken_and_a_long_one_is_not() -> None:
    fine = inventory_pb2.StockAdjustment(
        adjustment_id="a-1", sku="SKU-1", node_id="DC-1", delta=-1, reason="damaged in transit — box 4"
    )
    adjustments_problems([fine], LIMITS)
    fine.reason = "x" * 201
    assert refused_fields(lambda: adjustments_problems([fine], LIMITS)) == ["adjustments[0].reason"]


def test_a_channel_name_and_every_id_its_rules_name_are_checked() -> None:
    channel = network_pb2.Channel(
        channel_id="web",
        name="Web\x1b[8m",
        groups=["dcs", "stores\n"],
        safety=[network_pb2.SafetyRule(units=1, sku="SKU\u202e1", node_id="DC 1")],
        caps=[network_pb2.AllocationCap(percent=50, node_id="\x07")],
    )
    assert refused_fields(lambda: channels_from_proto([channel], LIMITS)) == [
        "channels[0].name",
        "channels[0].groups[1]",
        "channels[0].safety[0].sku",
        "channels[0].safety[0].node_id",
        "channels[0].caps[0].node_id",
    ]
    channel = network_pb2.Channel(channel_id="web", name="x" * 201, groups=["dcs"])
    assert refused_fields(lambda: channels_from_proto([channel], LIMITS)) == ["channels[0].name"]


def test_a_network_stored_before_these_checks_still_loads() -> None:
    stored = network_pb2.NetworkConfig(
        nodes=[node("Old\x1b[1m name")],
        groups=[network_pb2.NodeGroup(group_id="stores", node_ids=["STORE-1"])],
        channels=[network_pb2.Channel(channel_id="web", name="Old\nname", groups=["stores"])],
        version=3,
    )
    network = network_from_proto(stored, LIMITS)
    assert network.channels["web"].name == "Old\nname"


def reserve(**fields: Any) -> reservation_pb2.ReserveRequest:
    request = reservation_pb2.ReserveRequest(
        reservation_id="r-1", lines=[reservation_pb2.ReservationLine(sku="SKU-1", node_id="DC-1", quantity=1)]
    )
    for name, value in fields.items():
        setattr(request, name, value)
    return request


ID_CASES = [
    pytest.param(
        lambda bad: reserve_from_proto(reserve(reservation_id=bad), LIMITS), "reservation_id", id="reserve id"
    ),
    pytest.param(
        lambda bad: reserve_from_proto(reserve(channel_id=bad), LIMITS), "channel_id", id="reserve channel"
    ),
    pytest.param(
        lambda bad: reserve_from_proto(reserve(customer_id=bad), LIMITS), "customer_id", id="customer"
    ),
    pytest.param(lambda bad: channel_id_from_proto(bad, LIMITS), "channel_id", id="availability channel"),
    pytest.param(
        lambda bad: date_query_from_proto(
            availability_pb2.GetAvailabilityRequest(skus=["S"], channel_id=bad, quantity=1), LIMITS
        ),
        "channel_id",
        id="availability by date channel",
    ),
    pytest.param(
        lambda bad: pickup_query_from_proto(
            availability_pb2.FindPickupStoresRequest(
                items=[availability_pb2.BasketItem(sku="S", quantity=1)], store_id="STORE-1", channel_id=bad
            ),
            LIMITS,
        ),
        "channel_id",
        id="pickup channel",
    ),
    pytest.param(
        lambda bad: ids_from_proto(["web", bad], "channel_ids", LIMITS), "channel_ids[1]", id="delete"
    ),
    pytest.param(
        lambda bad: groups_from_proto([network_pb2.NodeGroup(group_id=bad, node_ids=["DC-1"])], LIMITS),
        "groups[0].group_id",
        id="group id",
    ),
    pytest.param(lambda bad: nodes_from_proto([node(node_id=bad)], LIMITS), "nodes[0].node_id", id="node id"),
    pytest.param(
        lambda bad: purchase_limits_from_proto(
            [network_pb2.PurchaseLimit(sku=bad, max_per_customer=1)], LIMITS
        ),
        "limits[0].sku",
        id="purchase limit sku",
    ),
    pytest.param(
        lambda bad: supplies_from_proto(
            [
                inventory_pb2.InboundSupply(
                    supply_id=bad, sku="S", node_id="DC-1", quantity=1, expected_at={"seconds": 9}
                )
            ],
            LIMITS,
            10.0,
        ),
        "supplies[0].supply_id",
        id="supply id",
    ),
]


@pytest.mark.parametrize(("convert", "field"), ID_CASES)
@pytest.mark.parametrize("bad", ["web\x1b[31m", "web\n", "w\u202eeb", "web\x00"])
def test_ids_with_control_characters_are_refused_naming_the_field(
    convert: Callable[[str], Any], field: str, bad: str
) -> None:
    assert field in refused_fields(lambda: convert(bad))


def test_an_empty_channel_id_means_none_and_a_good_one_passes() -> None:
    assert channel_id_from_proto("", LIMITS) == ""
    assert channel_id_from_proto("web", LIMITS) == "web"
    assert ids_from_proto([], "group_ids", LIMITS) == []


# --- the CLI ---


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("\x1b]0;pwned\x07Store", "\\x1b]0;pwned\\x07Store"),
        ("gnp.\u202eexe", "gnp.\\u202eexe"),
        ("a\nb\rc\td", "a\\x0ab\\x0dc\\x09d"),
        ("DEL\x7f C1\x9b", "DEL\\x7f C1\\x9b"),
        ("Tienda Núñez 東京", "Tienda Núñez 東京"),
    ],
)
def test_printable_escapes_every_control_character(raw: str, shown: str) -> None:
    assert printable(raw) == shown


def test_text_of_several_lines_keeps_its_line_breaks_only() -> None:
    assert printable("one\ntwo\x1b[0m\r\n", newlines=True) == "one\ntwo\\x1b[0m\\x0d\n"


def test_a_table_cell_never_breaks_its_row() -> None:
    text = table(["NODE", "NAME"], [("STORE-1", "Main\nSTORE-2  fake row")])
    assert text.splitlines()[1] == "STORE-1  Main\\x0aSTORE-2  fake row"


class HostileNodes:
    """A server's answer (an old network, or a server not to be trusted) with hostile names."""

    async def list_nodes(self, node_type: int = 0) -> list[common_pb2.Node]:
        return [
            common_pb2.Node(
                node_id="STORE-1", type=common_pb2.NODE_TYPE_STORE, name="\x1b]0;owned\x07\x1b[2JMain St"
            ),
            common_pb2.Node(node_id="STORE-2", type=common_pb2.NODE_TYPE_STORE, name="Mall\u202etxt.exe"),
        ]


async def test_nodes_list_writes_no_control_character_of_a_hostile_name() -> None:
    raw = io.BytesIO()
    stdout = io.TextIOWrapper(raw, encoding="utf-8", write_through=True)
    args = build_parser().parse_args(["nodes", "list"])
    assert await cmd_nodes_list(HostileNodes(), args, Output(False, stdout=stdout)) == 0  # type: ignore[arg-type]
    written = raw.getvalue()
    assert b"\x1b" not in written and b"\x07" not in written
    assert "\u202e".encode() not in written
    assert b"\\x1b]0;owned\\x07\\x1b[2JMain St" in written
    assert b"Mall\\u202etxt.exe" in written
    assert written.count(b"\n") == 3  # the header and one line a node


async def test_json_output_escapes_control_characters_too() -> None:
    raw = io.BytesIO()
    stdout = io.TextIOWrapper(raw, encoding="utf-8", write_through=True)
    args = build_parser().parse_args(["nodes", "list", "--json"])
    await cmd_nodes_list(HostileNodes(), args, Output(True, stdout=stdout))  # type: ignore[arg-type]
    written = raw.getvalue()
    assert b"\x1b" not in written and "\u202e".encode() not in written
    assert b"\\u001b]0;owned" in written


def test_an_error_message_from_the_server_is_printed_escaped() -> None:
    stderr = io.StringIO()
    Output(False, stderr=stderr).error("NOT_FOUND", "channel 'web\x1b[2J' not found", text="  a\x07\n  b")
    assert stderr.getvalue() == "error: NOT_FOUND: channel 'web\\x1b[2J' not found\n  a\\x07\n  b\n"
