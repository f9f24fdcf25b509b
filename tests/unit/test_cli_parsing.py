"""The CLI's pure parts: argument parsing, line forms, node and level files, output shapes. No server."""

from __future__ import annotations

import io
import json
import socket
from datetime import UTC, datetime

import pytest

from omnistock.cli import main
from omnistock.cli.app import build_parser
from omnistock.cli.common import TARGET_ENV, UsageError
from omnistock.cli.output import format_position, format_reservation, table, to_dict
from omnistock.cli.parsing import (
    iter_levels,
    parse_int,
    parse_item,
    parse_items,
    parse_lat_lon,
    parse_line,
    parse_nodes,
    parse_time,
)
from omnistock.cli.serve import client_target, redact
from omnistock.protos.gen.omnistock.v1 import availability_pb2, common_pb2, inventory_pb2, reservation_pb2

# --- SKU:NODE:QTY ---


@pytest.mark.parametrize(
    ("text", "sku", "node", "quantity"),
    [
        ("SKU-00001:DC-01:2", "SKU-00001", "DC-01", 2),
        (" SKU-1 : STORE-9 : 10 ", "SKU-1", "STORE-9", 10),
        ("vendor:123:STORE-001:1", "vendor:123", "STORE-001", 1),  # the last two colons separate
        ("a:b:+3", "a", "b", 3),
    ],
)
def test_line_forms_that_parse(text: str, sku: str, node: str, quantity: int) -> None:
    line = parse_line(text)
    assert (line.sku, line.node_id, line.quantity) == (sku, node, quantity)


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("SKU-1", "SKU:NODE:QTY"),
        ("SKU-1:DC-1", "SKU:NODE:QTY"),
        ("", "SKU:NODE:QTY"),
        ("SKU-1:DC-1:two", "not a whole number"),
        ("SKU-1:DC-1:1.5", "not a whole number"),
        ("SKU-1:DC-1:", "not a whole number"),
        ("SKU-1:DC-1:0", "at least 1"),
        ("SKU-1:DC-1:-2", "at least 1"),
        (":DC-1:1", "needs a SKU and a node"),
        ("SKU-1::1", "needs a SKU and a node"),
    ],
)
def test_bad_line_forms_are_usage_errors(text: str, complaint: str) -> None:
    with pytest.raises(UsageError, match=complaint):
        parse_line(text)


def test_out_of_range_numbers_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="out of range"):
        parse_line(f"SKU-1:DC-1:{2**63}")
    with pytest.raises(UsageError, match="out of range"):
        parse_int(str(2**64), "ON_HAND")
    with pytest.raises(UsageError, match="out of range"):
        parse_time("0001-01-01T00:00:00")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["reserve", "--ttl", str(2**31), "A:B:1"])


def test_bad_line_exits_2_before_any_call(capsys: pytest.CaptureFixture[str]) -> None:
    # Port 1 is never an omnistock: a call would fail with UNAVAILABLE (exit 1), not 2.
    assert main(["reserve", "--target", "127.0.0.1:1", "SKU-1:DC-1:1", "SKU-2:DC-1"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "error: line 'SKU-2:DC-1' must look like SKU:NODE:QTY" in captured.err


def test_bad_line_with_json_prints_a_json_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reserve", "--json", "--target", "127.0.0.1:1", "SKU-1:DC-1:x"]) == 2
    error = json.loads(capsys.readouterr().out)["error"]
    assert error["code"] == "INVALID_ARGUMENT"
    assert "not a whole number" in error["message"]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_server_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    target = f"127.0.0.1:{_closed_port()}"
    assert main(["get", "r-1", "--target", target, "--timeout", "5"]) == 1
    err = capsys.readouterr().err
    assert f'cannot reach omnistock at {target}; is "omnistock serve" running?' in err


# --- the parser ---


def test_reserve_arguments() -> None:
    args = build_parser().parse_args(["reserve", "--id", "web-1", "--ttl", "60", "A:DC-1:1", "B:DC-1:2"])
    assert (args.id, args.ttl, args.lines) == ("web-1", 60, ["A:DC-1:1", "B:DC-1:2"])
    assert args.json is False


def test_negative_delta_is_a_value_not_an_option() -> None:
    args = build_parser().parse_args(["stock", "adjust", "SKU-1", "DC-1", "-3", "--reason", "damage"])
    assert (args.sku, args.node, args.delta, args.reason, args.id) == ("SKU-1", "DC-1", "-3", "damage", None)


def test_target_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TARGET_ENV, raising=False)
    assert build_parser().parse_args(["get", "x"]).target == "127.0.0.1:50051"
    monkeypatch.setenv(TARGET_ENV, "inventory.internal:443")
    assert build_parser().parse_args(["get", "x"]).target == "inventory.internal:443"
    assert build_parser().parse_args(["get", "x", "--target", "h:1"]).target == "h:1"


def test_serve_defaults() -> None:
    args = build_parser().parse_args(["serve"])
    assert (args.host, args.port, args.metrics_port, args.partitions) == ("127.0.0.1", 50051, 9464, 256)
    assert (args.data_dir, args.redis_fsync, args.demo, args.redis_url, args.ray_address) == (
        "./var",
        "always",
        False,
        None,
        None,
    )
    assert args.shards >= 1


@pytest.mark.parametrize(
    "argv",
    [
        ["serve", "--shards", "0"],
        ["serve", "--gateways", "0"],
        ["serve", "--port", "70000"],
        ["serve", "--redis-fsync", "never"],
        ["nodes", "list", "--type", "warehouse"],
        ["reserve"],
        ["availability"],
        ["stock"],
    ],
)
def test_argparse_refuses_bad_usage_with_exit_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(argv)
    assert exited.value.code == 2


def test_a_gateway_started_by_hand_says_who_starts_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["gateway"]) == 2
    assert "serve starts it" in capsys.readouterr().err


def test_passwords_stay_out_of_the_banner() -> None:
    assert redact("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert redact("redis://:s3cret@redis.internal:6379/0") == "redis://:***@redis.internal:6379/0"
    assert redact("rediss://app:pw@[::1]:6380/1") == "rediss://app:***@[::1]:6380/1"


def test_client_target_of_a_wildcard_host() -> None:
    assert client_target("0.0.0.0", 50051) == "127.0.0.1:50051"
    assert client_target("::1", 7) == "[::1]:7"
    assert client_target("10.0.0.5", 7) == "10.0.0.5:7"


# --- node files ---

CSV_NODES = """\ufeffnode_id,type,name,latitude,longitude,ships,pickup,enabled
DC-01,dc,Columbus DC,39.96,-82.99,yes,no,yes
STORE-001, Store ,"New York, #1",40.71,-74.0,false,true,1

3PL-01,3PL,,,,,,
"""


def test_csv_nodes() -> None:
    dc, store, tpl = parse_nodes(CSV_NODES, "nodes.csv")
    assert (dc.node_id, dc.type, dc.name, dc.latitude, dc.longitude) == (
        "DC-01",
        common_pb2.NODE_TYPE_DC,
        "Columbus DC",
        39.96,
        -82.99,
    )
    assert (dc.ships, dc.pickup, dc.enabled) == (True, False, True)
    assert (store.type, store.name, store.ships, store.pickup, store.enabled) == (
        common_pb2.NODE_TYPE_STORE,
        "New York, #1",
        False,
        True,
        True,
    )
    # Empty cells take the defaults: ships and enabled true, pickup false.
    assert (tpl.type, tpl.name, tpl.ships, tpl.pickup, tpl.enabled, tpl.latitude) == (
        common_pb2.NODE_TYPE_3PL,
        "",
        True,
        False,
        True,
        0.0,
    )


def test_csv_with_only_the_required_columns() -> None:
    (node,) = parse_nodes("node_id,type\nDS-1,dropship\n")
    assert (node.node_id, node.type, node.enabled) == ("DS-1", common_pb2.NODE_TYPE_DROPSHIP, True)


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("node_id,name\nX,y\n", "must name at least node_id and type"),
        ("node_id,type\nX,warehouse\n", r"line 2: type must be one of store, dc, 3pl, dropship"),
        ("node_id,type\n,store\n", "line 2: node_id is required"),
        ("node_id,type\nX,\n", "line 2: type is required"),
        ("node_id,type,ships\nX,store,maybe\n", "line 2: ships must be true or false"),
        ("node_id,type,latitude\nX,store,north\n", "line 2: latitude must be a number"),
        ("node_id,type,latitude\nX,store,nan\n", "line 2: latitude must be a finite number"),
        ("node_id,type,colour\nX,store,red\n", "unknown field"),
        ("node_id,type\nX,store,extra\n", "more values than header fields"),
        ("node_id,type\n", "no nodes"),
    ],
)
def test_bad_csv_nodes(text: str, complaint: str) -> None:
    with pytest.raises(UsageError, match=complaint):
        parse_nodes(text, "nodes.csv")


def test_json_nodes() -> None:
    text = json.dumps(
        [
            {"node_id": "DC-01", "type": "dc", "latitude": 39.9, "longitude": -83.0},
            {"node_id": "STORE-9", "type": "store", "pickup": True, "ships": False, "enabled": False},
        ]
    )
    dc, store = parse_nodes(text)
    assert (dc.type, dc.latitude, dc.ships, dc.enabled) == (common_pb2.NODE_TYPE_DC, 39.9, True, True)
    assert (store.pickup, store.ships, store.enabled) == (True, False, False)


def test_nodes_list_json_round_trips_into_nodes_put() -> None:
    nodes = [
        common_pb2.Node(node_id="DC-01", type=common_pb2.NODE_TYPE_DC, name="A", ships=True, enabled=True),
        common_pb2.Node(
            node_id="S-1", type=common_pb2.NODE_TYPE_STORE, pickup=True, latitude=1.5, enabled=False
        ),
    ]
    printed = json.dumps(to_dict(inventory_pb2.ListNodesResponse(nodes=nodes)))
    assert parse_nodes(printed, "nodes.json") == nodes


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("[{]", "invalid JSON"),
        ('{"node_id": "X"}', "expected a JSON list"),
        ("[1]", "node 0: expected an object"),
        ('[{"node_id": "X", "type": "dc", "ships": "sometimes"}]', "node 0: ships must be true or false"),
        ('[{"node_id": "X", "type": "dc", "latitude": true}]', "node 0: latitude must be a number"),
        ("[]", "no nodes"),
    ],
)
def test_bad_json_nodes(text: str, complaint: str) -> None:
    with pytest.raises(UsageError, match=complaint):
        parse_nodes(text, "nodes.json")


# --- level files ---


def test_levels_with_and_without_header() -> None:
    rows = [["sku", "node_id", "on_hand", "as_of"], ["SKU-1", "DC-1", "7", ""], ["SKU-2", "DC-1", "0"]]
    first, second = iter_levels(rows)
    assert (first.sku, first.node_id, first.on_hand, first.HasField("as_of")) == ("SKU-1", "DC-1", 7, False)
    assert (second.sku, second.on_hand) == ("SKU-2", 0)
    assert [level.sku for level in iter_levels(rows[1:])] == ["SKU-1", "SKU-2"]


def test_levels_with_damaged_and_quality_hold() -> None:
    first, second = iter_levels([["SKU-1", "DC-1", "10", "", "2", "3"], ["SKU-2", "DC-1", "4", "", "", ""]])
    assert (first.on_hand, first.damaged, first.quality_hold, first.HasField("as_of")) == (10, 2, 3, False)
    assert (second.on_hand, second.damaged, second.quality_hold) == (4, 0, 0)


def test_a_header_names_the_columns_in_any_order() -> None:
    rows = [["sku", "quality_hold", "node_id", "on_hand"], ["SKU-1", "1", "DC-1", "7"], ["SKU-2", "", "DC-2"]]
    with pytest.raises(UsageError, match="line 3: on_hand is required"):
        list(iter_levels(rows))
    (level,) = iter_levels(rows[:2])
    assert (level.sku, level.node_id, level.on_hand, level.quality_hold, level.damaged) == (
        "SKU-1",
        "DC-1",
        7,
        1,
        0,
    )


@pytest.mark.parametrize(
    ("header", "complaint"),
    [
        (["sku", "node_id", "on_hand", "colour"], "unknown column"),
        (["sku", "node_id", "damaged"], "the header must name on_hand"),
        (["sku", "node_id", "on_hand", "on_hand"], "named twice"),
    ],
)
def test_bad_level_headers(header: list[str], complaint: str) -> None:
    with pytest.raises(UsageError, match=complaint):
        list(iter_levels([header, ["SKU-1", "DC-1", "1"]]))


def test_a_row_longer_than_the_header_is_refused() -> None:
    with pytest.raises(UsageError, match="line 2: 4 values but the header names 3 columns"):
        list(iter_levels([["sku", "node_id", "on_hand"], ["SKU-1", "DC-1", "1", "2"]]))


def test_levels_carry_as_of() -> None:
    (level,) = iter_levels([["SKU-1", "DC-1", "3", "2024-06-11T09:30:00Z"]])
    assert level.as_of.seconds == int(datetime(2024, 6, 11, 9, 30, tzinfo=UTC).timestamp())


def test_levels_are_read_lazily() -> None:
    def rows() -> object:
        yield ["SKU-1", "DC-1", "1"]
        raise AssertionError("read past what was asked for")

    levels = iter_levels(rows())  # type: ignore[arg-type]
    assert next(levels).sku == "SKU-1"


@pytest.mark.parametrize(
    ("row", "complaint"),
    [
        (["SKU-1", "DC-1"], "line 1: expected sku,node_id,on_hand"),
        (["SKU-1", "DC-1", "1", "", "0", "0", "x"], "line 1: expected sku,node_id,on_hand"),
        (["SKU-1", "DC-1", "1", "", "x"], "line 1: damaged must be a whole number"),
        (["SKU-1", "DC-1", "1", "", "0", "some"], "line 1: quality_hold must be a whole number"),
        (["SKU-1", "DC-1", "lots"], "line 1: on_hand must be a whole number"),
        (["", "DC-1", "1"], "line 1: sku and node_id are required"),
        (["SKU-1", "DC-1", "1", "last tuesday"], "line 1: as_of must be an ISO 8601 time"),
    ],
)
def test_bad_level_rows(row: list[str], complaint: str) -> None:
    with pytest.raises(UsageError, match=complaint):
        list(iter_levels([row]))


def test_times() -> None:
    assert parse_time("2024-06-11T09:30:00Z") == datetime(2024, 6, 11, 9, 30, tzinfo=UTC).timestamp()
    assert parse_time("2024-06-11T11:30:00+02:00") == parse_time("2024-06-11T09:30:00Z")
    naive = datetime(2024, 6, 11, 9, 30)
    assert parse_time("2024-06-11T09:30:00") == naive.astimezone().timestamp()  # local time
    with pytest.raises(UsageError):
        parse_time("11/06/2024")


# --- output ---


def test_table_aligns_numbers_right_and_text_left() -> None:
    text = table(["SKU", "QTY", "OK"], [("A", 5, True), ("LONGER", 120, False)])
    assert text.splitlines() == ["SKU     QTY  OK", "A         5  yes", "LONGER  120  no"]


def test_json_output_keeps_zeros_as_numbers_in_field_order() -> None:
    answer = availability_pb2.SkuAvailability(sku="SKU-1", available=0, on_hand=5, reserved=5)
    data = to_dict(answer)
    assert list(data)[:6] == ["sku", "available", "on_hand", "reserved", "committed", "nodes"]
    assert data["available"] == 0 and data["on_hand"] == 5


def test_stock_arguments() -> None:
    args = build_parser().parse_args(
        ["stock", "set", "S", "N", "10", "--damaged", "2", "--quality-hold", "1"]
    )
    assert (args.on_hand, args.damaged, args.quality_hold) == ("10", "2", "1")
    args = build_parser().parse_args(["stock", "adjust", "S", "N", "-2", "--state", "DAMAGED"])
    assert (args.delta, args.state) == ("-2", "damaged")
    assert build_parser().parse_args(["stock", "adjust", "S", "N", "1"]).state == "sellable"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["stock", "adjust", "S", "N", "1", "--state", "broken"])


def test_reserve_and_availability_take_a_channel() -> None:
    args = build_parser().parse_args(["reserve", "--channel", "web", "A:DC-1:1"])
    assert args.channel == "web"
    args = build_parser().parse_args(
        ["availability", "A", "B", "--channel", "web", "--consistent", "--nodes"]
    )
    assert (args.skus, args.channel, args.consistent, args.nodes) == (["A", "B"], "web", True, True)
    args = build_parser().parse_args(["availability", "A"])
    assert (args.channel, args.consistent) == (None, False)


def test_position_text_shows_states_only_when_there_are_some() -> None:
    plain = common_pb2.Position(sku="S", node_id="N", on_hand=5, available=5)
    assert format_position(plain) == "S at N: on_hand 5, reserved 0, committed 0, available 5"
    damaged = common_pb2.Position(sku="S", node_id="N", on_hand=5, damaged=2, available=3)
    assert "on_hand 5 (damaged 2, quality_hold 0)," in format_position(damaged)


def test_reservation_text_names_its_channel() -> None:
    reservation = reservation_pb2.Reservation(
        reservation_id="web-1", state=reservation_pb2.RESERVATION_STATE_HELD, channel_id="web"
    )
    assert "channel      web" in format_reservation(reservation)
    assert "channel" not in format_reservation(reservation_pb2.Reservation(reservation_id="x"))


def test_reservation_text() -> None:
    reservation = reservation_pb2.Reservation(
        reservation_id="web-1",
        state=reservation_pb2.RESERVATION_STATE_CONFIRMED,
        lines=[reservation_pb2.ReservationLine(sku="SKU-1", node_id="DC-1", quantity=2)],
    )
    reservation.created_at.FromSeconds(1_700_000_000)
    reservation.changed_at.FromSeconds(1_700_000_060)
    text = format_reservation(reservation, replayed=True)
    assert "reservation  web-1" in text
    assert "state        CONFIRMED" in text
    assert "confirmed    " in text
    assert "replayed" in text
    assert text.splitlines()[-1].split() == ["SKU-1", "DC-1", "2"]


# --- pickup baskets: SKU[:QTY] ---


@pytest.mark.parametrize(
    ("text", "sku", "quantity"),
    [
        ("SKU-00001", "SKU-00001", 1),
        ("SKU-00001:3", "SKU-00001", 3),
        (" SKU-1 : 2 ", "SKU-1", 2),
        ("vendor:123:1", "vendor:123", 1),  # the part after the last colon is the quantity
        ("vendor:123", "vendor", 123),
        ("A:+4", "A", 4),
    ],
)
def test_basket_items_that_parse(text: str, sku: str, quantity: int) -> None:
    item = parse_item(text)
    assert (item.sku, item.quantity) == (sku, quantity)


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("", "must look like SKU or SKU:QTY"),
        (":2", "must look like SKU or SKU:QTY"),
        ("SKU-1:", "not a whole number"),
        ("SKU-1:two", "a SKU holding colons needs an explicit quantity"),
        ("SKU-1:1.5", "not a whole number"),
        ("SKU-1:0", "at least 1"),
        ("SKU-1:-1", "at least 1"),
        (f"SKU-1:{2**63}", "out of range"),
    ],
)
def test_bad_basket_items(text: str, complaint: str) -> None:
    with pytest.raises(UsageError, match=complaint):
        parse_item(text)


def test_a_basket_names_each_sku_once() -> None:
    items = parse_items(["A:2", "B"])
    assert [(i.sku, i.quantity) for i in items] == [("A", 2), ("B", 1)]
    with pytest.raises(UsageError, match="A is in the basket twice \\('A:2', 'A'\\); give it once"):
        parse_items(["A:2", "B", "A"])


# --- places: LAT,LON ---


@pytest.mark.parametrize(
    ("text", "latitude", "longitude"),
    [
        ("40.7128,-74.0060", 40.7128, -74.006),
        (" -33.87 , 151.21 ", -33.87, 151.21),
        ("0,0", 0.0, 0.0),
        ("90,180", 90.0, 180.0),
        ("-90,-180", -90.0, -180.0),
    ],
)
def test_places(text: str, latitude: float, longitude: float) -> None:
    assert parse_lat_lon(text) == (latitude, longitude)


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("40.7128", "must be LAT,LON"),
        ("40.7,-74.0,3", "must be LAT,LON"),
        (",-74", "must be LAT,LON"),
        ("north,west", "latitude must be a number"),
        ("40,west", "longitude must be a number"),
        ("nan,1", "latitude must be a finite number"),
        ("90.5,0", "latitude must be within -90..90, got 90.5"),
        ("0,-181", "longitude must be within -180..180, got -181"),
    ],
)
def test_bad_places(text: str, complaint: str) -> None:
    with pytest.raises(UsageError, match=complaint):
        parse_lat_lon(text)


def test_pickup_arguments() -> None:
    args = build_parser().parse_args(
        ["pickup", "A:2", "B", "--near", "40.7,-74.0", "--radius", "25", "--channel", "store-pickup"]
    )
    assert (args.items, args.near, args.store, args.radius, args.channel, args.limit) == (
        ["A:2", "B"],
        "40.7,-74.0",
        None,
        25.0,
        "store-pickup",
        None,
    )
    # A negative latitude needs the = form (argparse would take it for an option).
    assert build_parser().parse_args(["pickup", "A", "--near=-33.87,151.21"]).near == "-33.87,151.21"
    assert build_parser().parse_args(["pickup", "A", "--store", "STORE-001", "--limit", "3"]).limit == 3


@pytest.mark.parametrize(
    "argv",
    [
        ["pickup", "A"],  # no origin
        ["pickup", "A", "--near", "1,2", "--store", "S"],  # two origins
        ["pickup", "--store", "S"],  # no item
        ["pickup", "A", "--store", "S", "--limit", "0"],
        ["pickup", "A", "--store", "S", "--radius", "far"],
    ],
)
def test_bad_pickup_usage_exits_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(argv)
    assert exited.value.code == 2


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["pickup", "A", "A:2", "--store", "S"], "A is in the basket twice"),
        (["pickup", "A:0", "--store", "S"], "quantity must be at least 1"),
        (["pickup", "A", "--near", "91,0"], "--near latitude must be within -90..90"),
        (["pickup", "A", "--store", "S", "--radius", "0"], "--radius must be more than 0 km"),
        (["pickup", "A", "--store", "S", "--radius", "nan"], "--radius must be more than 0 km"),
    ],
)
def test_bad_pickup_input_exits_2_before_any_call(
    argv: list[str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*argv, "--target", "127.0.0.1:1"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and complaint in captured.err


# --- watch, supply, dates ---


def test_watch_arguments() -> None:
    args = build_parser().parse_args(["watch"])
    assert (args.skus, args.channel, args.from_version, args.full, args.json) == ([], None, 0, False, False)
    args = build_parser().parse_args(
        ["watch", "A", "B", "--channel", "web", "--from-version", "42", "--json"]
    )
    assert (args.skus, args.channel, args.from_version, args.json) == (["A", "B"], "web", 42, True)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["watch", "--from-version", "-1"])


def test_supply_arguments() -> None:
    args = build_parser().parse_args(
        ["supply", "expect", "PO-1", "SKU-1", "DC-01", "120", "--date", "2026-12-01"]
    )
    assert (args.supply_id, args.sku, args.node, args.quantity, args.date) == (
        "PO-1",
        "SKU-1",
        "DC-01",
        "120",
        "2026-12-01",
    )
    args = build_parser().parse_args(["supply", "load", "po.csv"])
    assert (args.file, args.chunk) == ("po.csv", 10_000)
    args = build_parser().parse_args(["stock", "adjust", "SKU-1", "DC-01", "5", "--supply-id", "PO-1"])
    assert args.supply_id == "PO-1"
    assert build_parser().parse_args(["stock", "adjust", "SKU-1", "DC-01", "5"]).supply_id is None


def test_availability_date_arguments() -> None:
    args = build_parser().parse_args(["availability", "A", "--by-date", "2026-12-01", "--quantity", "6"])
    assert (args.by_date, args.quantity) == ("2026-12-01", 6)
    args = build_parser().parse_args(["availability", "A"])
    assert (args.by_date, args.quantity) == (None, None)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["availability", "A", "--quantity", "0"])


def test_dates_take_every_iso_8601_form() -> None:
    midnight = datetime(2026, 12, 1).astimezone().timestamp()
    assert parse_time("2026-12-01") == midnight  # a date alone is local midnight
    assert parse_time("2026-12-01T00:00:00") == midnight
    assert parse_time("2026-12-01T09:00:00Z") == datetime(2026, 12, 1, 9, tzinfo=UTC).timestamp()
    assert parse_time("2026-12-01T10:00:00+01:00") == parse_time("2026-12-01T09:00:00Z")
    assert parse_time("2026-12-01 09:00:00+00:00") == parse_time("2026-12-01T09:00:00Z")
    for bad in ("01.12.2026", "2026-13-01", "tomorrow", ""):
        with pytest.raises(UsageError, match="ISO 8601"):
            parse_time(bad, "--date")


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["availability", "A", "--by-date", "soon"], "--by-date must be an ISO 8601 time"),
        (["supply", "expect", "PO-1", "A", "DC-1", "5"], "--date is required"),
        (["supply", "expect", "PO-1", "A", "DC-1", "5", "--date", "12/01"], "--date must be an ISO 8601"),
        (["supply", "expect", "PO-1", "A", "DC-1", "-5", "--date", "2026-12-01"], "QTY is out of range"),
        (["supply", "expect", "PO-1", "A", "DC-1", "many", "--date", "2026-12-01"], "QTY must be a whole"),
        (
            ["stock", "adjust", "A", "DC-1", "-5", "--supply-id", "PO-1"],
            "a receipt (--supply-id) takes a positive",
        ),
        (
            ["stock", "adjust", "A", "DC-1", "5", "--supply-id", "PO-1", "--state", "damaged"],
            "with --state damaged",
        ),
        (["stock", "adjust", "A", "DC-1", "5", "--supply-id", " "], "--supply-id must not be empty"),
    ],
)
def test_bad_dates_and_receipts_exit_2_before_any_call(
    argv: list[str], complaint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*argv, "--target", "127.0.0.1:1"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and complaint in captured.err


def test_table_rows_may_continue_the_row_above() -> None:
    text = table(
        ["STORE", "KM", "SKU", "AVAILABLE"], [("S-1", 1.5, "A", 10), ("", "", "B", 2), ("S-22", 12.0, "A", 3)]
    )
    assert text.splitlines() == [
        "STORE    KM  SKU  AVAILABLE",
        "S-1     1.5  A           10",
        "             B            2",
        "S-22   12.0  A            3",
    ]


def test_position_text_shows_inbound_supply_when_there_is_some() -> None:
    position = common_pb2.Position(sku="S", node_id="N", on_hand=5, available=5, inbound=20)
    assert format_position(position).endswith("available 5, inbound 20")
