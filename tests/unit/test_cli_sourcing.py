"""The CLI for sourced orders, without a server: `reserve --ship-to/--pickup-at` lines, the
explanation of where each line went and why the other nodes lost, a refused sourced order,
`reassign`, `return`, sourcing policies of channels and the nodes' sourcing settings."""

from __future__ import annotations

import io
import json
from typing import Any

import grpc
import pytest

from omnistock.availability.network_file import parse_network_file
from omnistock.cli import main
from omnistock.cli.app import build_parser
from omnistock.cli.commands import cmd_get, cmd_nodes_list, cmd_reassign, cmd_reserve, cmd_return
from omnistock.cli.common import UsageError, to_timestamp
from omnistock.cli.network_args import (
    channel_from_args,
    describe_sourcing,
    network_messages,
    network_problems,
)
from omnistock.cli.network_commands import NetworkReading, cmd_channels_put
from omnistock.cli.output import (
    Output,
    destination_text,
    format_reservation,
    history_table,
    line_rows,
    short_why,
    sourcing_text,
    to_dict,
)
from omnistock.cli.parsing import parse_nodes, parse_reserve_lines, parse_sourced_line
from omnistock.client import OmnistockRpcError
from omnistock.protos.gen.omnistock.v1 import common_pb2, network_pb2, reservation_pb2

CLOSED = "127.0.0.1:1"  # never an omnistock: a call would fail with UNAVAILABLE (exit 1), not 2
T = reservation_pb2.ReservationEventType
HELD, CONFIRMED = reservation_pb2.RESERVATION_STATE_HELD, reservation_pb2.RESERVATION_STATE_CONFIRMED
RULES = [
    "channel web's nodes",
    "ships",
    "stock",
    "daily capacity",
    "single_node",
    "nearest",
    "priority",
    "lines not split",
    "at most 2 shipments",
]


# --- lines (pure) ---


@pytest.mark.parametrize(
    ("text", "sku", "quantity"),
    [
        ("SKU-00022:2", "SKU-00022", 2),
        (" SKU-1 : 3 ", "SKU-1", 3),
        ("vendor:123:*:2", "vendor:123", 2),  # a SKU holding colons names no node with *
        ("SKU-1:+1", "SKU-1", 1),
    ],
)
def test_sourced_line_forms(text: str, sku: str, quantity: int) -> None:
    line = parse_sourced_line(text)
    assert (line.sku, line.node_id, line.quantity) == (sku, "", quantity)


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("SKU-1", "must look like SKU:QTY"),
        (":2", "must look like SKU:QTY"),
        (":*:2", "needs a SKU"),
        ("SKU-1:two", "not a whole number"),
        ("SKU-1:0", "at least 1"),
        (f"SKU-1:{2**63}", "out of range"),
        (
            "SKU-1:DC-01:2",
            "names node DC-01, but with --ship-to omnistock sources every line: write it SKU-1:2",
        ),
    ],
)
def test_bad_sourced_lines_are_usage_errors(text: str, complaint: str) -> None:
    with pytest.raises(UsageError, match=complaint.replace("*", r"\*")):
        parse_sourced_line(text)


def test_with_a_destination_every_line_is_sourced_and_each_sku_once() -> None:
    lines = parse_reserve_lines(["SKU-00022:2", "SKU-00023:1"], "--pickup-at")
    assert [(ln.sku, ln.node_id, ln.quantity) for ln in lines] == [("SKU-00022", "", 2), ("SKU-00023", "", 1)]
    with pytest.raises(UsageError, match="SKU-1 is in the order twice"):
        parse_reserve_lines(["SKU-1:1", "SKU-1:2"], "--ship-to")
    with pytest.raises(UsageError, match=r"with --pickup-at omnistock sources every line.*either every line"):
        parse_reserve_lines(["SKU-1:1", "SKU-2:DC-01:1"], "--pickup-at")


def test_without_a_destination_every_line_names_its_node() -> None:
    lines = parse_reserve_lines(["SKU-1:DC-01:2", "vendor:7:STORE-001:1"])
    assert [(ln.sku, ln.node_id) for ln in lines] == [("SKU-1", "DC-01"), ("vendor:7", "STORE-001")]


@pytest.mark.parametrize(
    ("texts", "complaint"),
    [
        (["SKU-1:2"], "names no node: to let omnistock choose one, say where the order goes with --ship-to"),
        (["SKU-1:*:2"], "names no node"),
        (["SKU-1:DC-01:1", "SKU-2:2"], "'SKU-2:2' names no node while 'SKU-1:DC-01:1' does: either every"),
        (
            ["SKU-1:DC-01:1", "SKU-2:DC-01"],
            "'SKU-2:DC-01' must look like SKU:NODE:QTY",
        ),  # a typo, not sourced
    ],
)
def test_lines_without_a_node_need_a_destination(texts: list[str], complaint: str) -> None:
    with pytest.raises(UsageError, match=complaint.replace("*", r"\*")):
        parse_reserve_lines(texts)


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["SKU-1:2"], "names no node"),
        (["SKU-1:2", "--ship-to", "40.7,-74.0"], "--ship-to needs --channel"),
        (["SKU-1:2", "--channel", "web", "--ship-to", "91,0"], "--ship-to latitude must be within -90..90"),
        (["SKU-1:2", "--channel", "web", "--ship-to", "40.7"], "--ship-to must be LAT,LON"),
        (["SKU-1:2", "--channel", "web", "--pickup-at", " "], "--pickup-at must name the store"),
        (["SKU-1:DC-01:2", "--channel", "web", "--pickup-at", "STORE-001"], "names node DC-01"),
    ],
)
def test_bad_sourced_reserves_exit_2_before_any_call(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["reserve", *argv, "--target", CLOSED, "--timeout", "1"]) == 2
    assert says in capsys.readouterr().err


def test_ship_to_and_pickup_at_exclude_each_other() -> None:
    with pytest.raises(SystemExit) as stopped:
        build_parser().parse_args(["reserve", "A:1", "--ship-to", "1,2", "--pickup-at", "STORE-001"])
    assert stopped.value.code == 2


# --- what a sourced reservation looks like ---


def stamp(seconds: int) -> Any:
    return to_timestamp(seconds)


def verdict(node_id: str, units: int, reason: str, km: float | None = None) -> reservation_pb2.NodeVerdict:
    message = reservation_pb2.NodeVerdict(node_id=node_id, units=units, reason=reason)
    if km is not None:
        message.distance_km = km
    return message


def why_022(units: int = 2) -> reservation_pb2.LineSourcing:
    return reservation_pb2.LineSourcing(
        sku="SKU-00022",
        quantity=2,
        rules=RULES,
        considered=[
            verdict("STORE-049", units, "chosen: fills the whole order; 24.2 km; priority 2", 24.2),
            verdict("STORE-001", 0, "lost on single_node: fills 1 of 2 lines vs 2", 22.5),
            verdict("DC-02", 0, "lost on nearest: 2250.2 km vs 24.2 km", 2250.2),
        ],
        omitted=50,
    )


def why_028() -> reservation_pb2.LineSourcing:
    return reservation_pb2.LineSourcing(
        sku="SKU-00028",
        quantity=1,
        rules=RULES,
        considered=[verdict("STORE-049", 1, "chosen: fills the whole order; 24.2 km; priority 2", 24.2)],
    )


def sourced(state: int = HELD, at_028: str = "STORE-049") -> reservation_pb2.Reservation:
    message = reservation_pb2.Reservation(
        reservation_id="web-5001",
        state=state,
        channel_id="web",
        lines=[
            reservation_pb2.ReservationLine(sku="SKU-00022", node_id="STORE-049", quantity=2),
            reservation_pb2.ReservationLine(sku="SKU-00028", node_id=at_028, quantity=1),
        ],
        created_at=stamp(1_800_000_000),
        expires_at=stamp(1_800_000_900),
        sourcing=[why_022(), why_028()],
    )
    message.destination.address.latitude, message.destination.address.longitude = 40.7128, -74.006
    if state != HELD:
        message.changed_at.CopyFrom(stamp(1_800_000_001))
    return message


def test_destination_text() -> None:
    assert destination_text(sourced().destination) == "ship to 40.7128,-74.006"
    assert destination_text(reservation_pb2.Destination(pickup_node_id="STORE-001")) == "pickup at STORE-001"
    assert destination_text(reservation_pb2.Destination()) == ""


def test_each_line_says_why_it_is_at_its_node() -> None:
    headers, rows = line_rows(sourced().lines, sourced().sourcing)
    assert headers == ["SKU", "NODE", "QUANTITY", "WHY"]
    assert rows[0] == ("SKU-00022", "STORE-049", 2, "fills the whole order; 24.2 km; priority 2")
    # Without sourcing (lines named their nodes) there is no WHY column.
    assert line_rows(sourced().lines)[0] == ["SKU", "NODE", "QUANTITY"]


def test_a_line_no_longer_where_it_was_sourced_was_reassigned() -> None:
    moved = sourced(CONFIRMED, at_028="STORE-040")
    assert short_why(moved.sourcing, "SKU-00028", "STORE-040") == "reassigned (sourced at STORE-049)"
    assert short_why(moved.sourcing, "SKU-00022", "STORE-049").startswith("fills the whole order")
    assert short_why(moved.sourcing, "SKU-99999", "DC-01") == ""


def test_reservation_text_shows_the_destination_and_why() -> None:
    lines = format_reservation(sourced(), why=True).splitlines()
    assert "destination  ship to 40.7128,-74.006" in lines
    assert lines.index("destination  ship to 40.7128,-74.006") == lines.index("channel      web") + 1
    assert "  SKU-00022  STORE-049         2  fills the whole order; 24.2 km; priority 2" in lines
    assert "sourcing, as decided at the reserve" not in lines
    # Other answers (confirm, fulfil, ...) keep the destination but not the WHY column.
    plain = format_reservation(sourced()).splitlines()
    assert "destination  ship to 40.7128,-74.006" in plain and "WHY" not in plain[-3]


def test_explain_lists_every_node_considered_with_its_distance() -> None:
    text = format_reservation(sourced(), why=True, explain=True, history=True)
    lines = text.splitlines()
    start = lines.index("sourcing, as decided at the reserve")
    assert lines[start + 1] == "  rules, in order: " + ", ".join(RULES)  # once: every line shares them
    assert lines[start + 2] == "  SKU-00022 x2: STORE-049 (2)"
    assert lines[start + 3].split() == ["NODE", "UNITS", "DISTANCE_KM", "WHY"]
    assert lines[start + 4].split()[:3] == ["STORE-049", "2", "24.2"]
    assert lines[start + 5].split()[:3] == ["STORE-001", "0", "22.5"]
    assert lines[start + 5].endswith("lost on single_node: fills 1 of 2 lines vs 2")
    assert "    ... and 50 more nodes that lost, not listed" in lines
    assert lines.index("history") > lines.index("  SKU-00028 x1: STORE-049 (1)")


def test_lines_with_other_rules_say_theirs() -> None:
    other = why_028()
    other.rules[:] = ["channel web's nodes", "pickup store STORE-049"]
    text = sourcing_text([why_022(), other])
    assert "rules, in order" not in text.splitlines()[0]
    assert "    rules, in order: channel web's nodes, pickup store STORE-049" in text.splitlines()


def test_history_details_a_move_when_the_event_says_where_from() -> None:
    moved = reservation_pb2.ReservationEvent(
        type=T.RESERVATION_EVENT_TYPE_MOVED,
        at=stamp(1_800_000_005),
        from_node_id="STORE-049",
        by="key:store-app",
    )
    moved.lines.add(sku="SKU-00028", node_id="STORE-040", quantity=1)
    held = reservation_pb2.ReservationEvent(type=T.RESERVATION_EVENT_TYPE_HELD, at=stamp(1_800_000_000))
    lines = history_table([held, moved]).splitlines()
    assert lines[0].split() == ["TIME", "EVENT", "BY", "DETAIL"]
    assert lines[1].split()[1:] == ["HELD", "-"]  # no one recorded (an event from before `by`)
    assert lines[2].split()[1:] == [
        "MOVED",
        "key:store-app",
        "SKU-00028",
        "x1:",
        "STORE-049",
        "->",
        "STORE-040",
    ]
    # The history of GetReservation has no lines: no DETAIL column then.
    bare = reservation_pb2.ReservationEvent(type=T.RESERVATION_EVENT_TYPE_MOVED, at=stamp(1_800_000_005))
    assert history_table([held, bare]).splitlines()[0].split() == ["TIME", "EVENT", "BY"]


def test_returned_units_get_their_column() -> None:
    line = reservation_pb2.ReservationLine(sku="S", node_id="N", quantity=2, fulfilled=2, returned=1)
    headers, rows = line_rows([line])
    assert headers == ["SKU", "NODE", "QUANTITY", "FULFILLED", "CANCELLED", "RETURNED"]
    assert rows == [("S", "N", 2, 2, 0, 1)]


# --- commands, with a client standing in for the service ---


class SourcingClient:
    def __init__(self, refusal: OmnistockRpcError | None = None) -> None:
        self.refusal = refusal
        self.calls: list[tuple[Any, ...]] = []
        self.current = sourced(CONFIRMED)

    def _maybe_refuse(self) -> None:
        if self.refusal is not None:
            raise self.refusal

    async def reserve(
        self, reservation_id: str, lines: Any, **kwargs: Any
    ) -> reservation_pb2.ReserveResponse:
        self.calls.append(
            ("reserve", reservation_id, [(ln.sku, ln.node_id, ln.quantity) for ln in lines], kwargs)
        )
        self._maybe_refuse()
        return reservation_pb2.ReserveResponse(reservation=sourced())

    async def reassign(
        self, reservation_id: str, reassignment_id: str, sku: str, from_node_id: str, to_node_id: str = ""
    ) -> reservation_pb2.ReassignResponse:
        self.calls.append(("reassign", reservation_id, reassignment_id, sku, from_node_id, to_node_id))
        self._maybe_refuse()
        response = reservation_pb2.ReassignResponse(
            reservation=sourced(CONFIRMED, at_028=to_node_id or "STORE-040")
        )
        if not to_node_id:
            response.sourcing.CopyFrom(
                reservation_pb2.LineSourcing(
                    sku=sku,
                    quantity=1,
                    rules=[*RULES[:2], "not excluded", *RULES[2:]],
                    considered=[
                        verdict("STORE-040", 1, "chosen: fills the whole order; 25.5 km; priority 2", 25.5),
                        verdict("STORE-046", 0, "lost on nearest: 139.9 km vs 25.5 km", 139.9),
                        verdict("STORE-049", 0, "excluded: the line is moving away from it", 24.2),
                    ],
                )
            )
        return response

    async def return_units(
        self,
        reservation_id: str,
        return_id: str,
        sku: str,
        line_node_id: str,
        node_id: str,
        quantity: int,
        damaged: bool = False,
    ) -> reservation_pb2.ReturnResponse:
        self.calls.append(
            ("return", reservation_id, return_id, sku, line_node_id, node_id, quantity, damaged)
        )
        self._maybe_refuse()
        return reservation_pb2.ReturnResponse(reservation=self.current, replayed=return_id == "rtn-1")

    async def get_reservation(self, reservation_id: str) -> reservation_pb2.Reservation:
        self.calls.append(("get", reservation_id))
        return self.current


COMMANDS = {
    "reserve": cmd_reserve,
    "get": cmd_get,
    "reassign": cmd_reassign,
    "return": cmd_return,
}


async def run(argv: list[str], client: Any) -> tuple[int, str, str]:
    args = build_parser().parse_args(argv)
    stdout, stderr = io.StringIO(), io.StringIO()
    out = Output(args.json, stdout=stdout, stderr=stderr)
    code = await COMMANDS[argv[0]](client, args, out)
    return code, stdout.getvalue(), stderr.getvalue()


async def test_reserve_ships_to_an_address() -> None:
    client = SourcingClient()
    code, out, _ = await run(
        [
            "reserve",
            "--id",
            "web-5001",
            "--channel",
            "web",
            "--ship-to",
            "40.7128,-74.0060",
            "SKU-00022:2",
            "SKU-00028:1",
        ],
        client,
    )
    assert code == 0
    _, reservation_id, lines, kwargs = client.calls[0]
    assert reservation_id == "web-5001" and lines == [("SKU-00022", "", 2), ("SKU-00028", "", 1)]
    assert kwargs["ship_to"] == (40.7128, -74.006) and kwargs["channel_id"] == "web"
    assert "pickup_at" not in kwargs
    lines_out = out.splitlines()
    assert "destination  ship to 40.7128,-74.006" in lines_out
    assert lines_out[-3].split() == ["SKU", "NODE", "QUANTITY", "WHY"]
    assert "sourcing, as decided at the reserve" not in lines_out


async def test_reserve_for_pickup_with_the_explanation() -> None:
    client = SourcingClient()
    code, out, _ = await run(
        ["reserve", "--channel", "store-pickup", "--pickup-at", "STORE-049", "SKU-00022:2", "--explain"],
        client,
    )
    assert code == 0 and client.calls[0][3]["pickup_at"] == "STORE-049"
    assert "ship_to" not in client.calls[0][3] and client.calls[0][1].startswith("res-")
    assert "sourcing, as decided at the reserve" in out.splitlines()
    assert "  SKU-00022 x2: STORE-049 (2)" in out.splitlines()


async def test_reserve_json_is_the_whole_reservation_with_its_sourcing() -> None:
    code, out, _ = await run(
        ["reserve", "--channel", "web", "--ship-to", "40.7128,-74.006", "SKU-00022:2", "--json"],
        SourcingClient(),
    )
    reservation = json.loads(out)["reservation"]
    assert code == 0 and reservation["destination"] == {
        "address": {"latitude": 40.7128, "longitude": -74.006}
    }
    considered = reservation["sourcing"][0]["considered"]
    assert considered[1] == {
        "node_id": "STORE-001",
        "units": 0,
        "reason": "lost on single_node: fills 1 of 2 lines vs 2",
        "distance_km": 22.5,
    }


def cannot_source() -> OmnistockRpcError:
    short = reservation_pb2.LineSourcing(
        sku="SKU-00432",
        quantity=4,
        rules=RULES,
        considered=[
            verdict("STORE-049", 0, "short: 3 of 4 promisable", 24.2),
            *(verdict(f"DC-0{i}", 0, "out of stock: 0 of 4 promisable", 700.0 + i) for i in range(1, 4)),
        ],
        omitted=49,
    )
    fine = reservation_pb2.LineSourcing(
        sku="SKU-00022",
        quantity=1,
        rules=RULES,
        considered=[
            verdict("STORE-049", 1, "chosen: fills 1 of 2 lines (1 unit); 24.2 km; priority 2", 24.2)
        ],
    )
    return OmnistockRpcError(
        grpc.StatusCode.FAILED_PRECONDITION,
        "cannot source 1 line(s) within the channel's rules: SKU-00432 (requested 4, could source 0)",
        sourcing=[short, fine],
        precondition_violations=[("CANNOT_SOURCE", "SKU-00432", "requested 4, could source 0")],
    )


SHIP = ["--channel", "web", "--ship-to", "40.7128,-74.006", "SKU-00432:4", "SKU-00022:1"]


async def test_a_refused_sourced_order_says_why_each_node_lost() -> None:
    code, _, err = await run(["reserve", "--id", "web-5002", *SHIP], SourcingClient(cannot_source()))
    lines = err.splitlines()
    assert code == 1
    assert lines[0].startswith("error: FAILED_PRECONDITION: cannot source 1 line(s)")
    assert lines[1] == "sourcing, by the channel's rules:"
    assert "  SKU-00432 x4: could source 0 of 4" in lines
    assert any(
        line.split() == ["STORE-049", "0", "24.2", "short:", "3", "of", "4", "promisable"] for line in lines
    )
    # A reason shared by several nodes is said once, with the nodes.
    assert "    out of stock: 0 of 4 promisable (3 nodes): DC-01 DC-02 DC-03" in lines
    assert "    ... and 49 more nodes that lost, not listed" in lines
    assert (
        "  SKU-00022 x1: could be sourced at STORE-049 (fills 1 of 2 lines (1 unit); 24.2 km; priority 2)"
        in lines
    )
    assert lines[-1].startswith("hint: --explain lists every node")


async def test_a_refused_sourced_order_explained_lists_every_node() -> None:
    code, _, err = await run(["reserve", *SHIP, "--explain"], SourcingClient(cannot_source()))
    lines = err.splitlines()
    assert code == 1 and not any(line.startswith("hint:") for line in lines)
    assert sum(1 for line in lines if "out of stock: 0 of 4 promisable" in line) == 3
    assert "  SKU-00022 x1: STORE-049 (1)" in lines


async def test_a_refused_sourced_order_as_json() -> None:
    code, out, _ = await run(["reserve", *SHIP, "--json"], SourcingClient(cannot_source()))
    error = json.loads(out)["error"]
    assert code == 1 and error["reservation_id"].startswith("res-")
    assert error["precondition_violations"] == [
        {"type": "CANNOT_SOURCE", "subject": "SKU-00432", "description": "requested 4, could source 0"}
    ]
    assert [line["sku"] for line in error["sourcing"]] == ["SKU-00432", "SKU-00022"]
    assert error["sourcing"][0]["considered"][0]["reason"] == "short: 3 of 4 promisable"


async def test_get_explains_on_request() -> None:
    client = SourcingClient()
    client.current = sourced(CONFIRMED, at_028="STORE-040")
    _, short, _ = await run(["get", "web-5001"], client)
    assert "  SKU-00028  STORE-040         1  reassigned (sourced at STORE-049)" in short.splitlines()
    assert "destination  ship to 40.7128,-74.006" in short.splitlines()
    assert "sourcing, as decided at the reserve" not in short
    _, full, _ = await run(["get", "web-5001", "--explain"], client)
    assert "sourcing, as decided at the reserve" in full.splitlines() and "history" in full.splitlines()


async def test_reassign_without_a_node_lets_the_rules_choose() -> None:
    client = SourcingClient()
    code, out, _ = await run(["reassign", "web-5001", "SKU-00028", "STORE-049"], client)
    kind, reservation_id, made, sku, from_node, to_node = client.calls[0]
    assert code == 0 and (kind, reservation_id, sku, from_node, to_node) == (
        "reassign",
        "web-5001",
        "SKU-00028",
        "STORE-049",
        "",
    )
    lines = out.splitlines()
    assert made.startswith("mv-") and f"reassignment  {made}" in lines
    assert (
        "moved         SKU-00028 STORE-049 -> STORE-040 (sourced: fills the whole order; 25.5 km; priority 2)"
        in lines
    )
    assert "sourcing of the move" not in lines


async def test_reassign_explained_and_as_json() -> None:
    _, out, _ = await run(["reassign", "web-5001", "SKU-00028", "STORE-049", "--explain"], SourcingClient())
    lines = out.splitlines()
    start = lines.index("sourcing of the move")
    assert lines[start + 2] == "  SKU-00028 x1: STORE-040 (1)"
    assert lines[-1].split()[:3] == ["STORE-049", "0", "24.2"] and lines[-1].endswith("moving away from it")
    _, out, _ = await run(
        ["reassign", "web-5001", "SKU-00028", "STORE-049", "DC-01", "--id", "mv-1", "--json"],
        SourcingClient(),
    )
    data = json.loads(out)
    assert list(data) == ["reassignment_id", "reservation", "replayed"]  # no sourcing: the node was named
    assert data["reassignment_id"] == "mv-1" and data["reservation"]["lines"][1]["node_id"] == "DC-01"


async def test_reassign_to_a_named_node() -> None:
    client = SourcingClient()
    code, out, _ = await run(
        ["reassign", "web-5001", "SKU-00028", "STORE-049", "DC-01", "--id", "mv-1"], client
    )
    assert code == 0 and client.calls == [("reassign", "web-5001", "mv-1", "SKU-00028", "STORE-049", "DC-01")]
    assert "moved         SKU-00028 STORE-049 -> DC-01" in out.splitlines()


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["web-5001", "SKU-1", "STORE-049", "STORE-049"], "the line is at STORE-049 already"),
        (["web-5001", "SKU-1", "STORE-049", " "], "TO_NODE must not be empty"),
        (["web-5001", "SKU-1", "STORE-049", "--id", ""], "--id must not be empty"),
    ],
)
def test_bad_reassigns_exit_2_before_any_call(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["reassign", *argv, "--target", CLOSED, "--timeout", "1"]) == 2
    assert says in capsys.readouterr().err


async def test_a_refused_reassign_shows_the_reservation_as_it_stands() -> None:
    refusal = OmnistockRpcError(
        grpc.StatusCode.FAILED_PRECONDITION,
        "cannot move the line of reservation 'web-5001': SKU-00028 at DC-02: 0 promisable, the line needs 1",
    )
    client = SourcingClient(refusal)
    code, _, err = await run(["reassign", "web-5001", "SKU-00028", "STORE-049", "DC-02"], client)
    assert code == 1 and client.calls[-1] == ("get", "web-5001")
    lines = err.splitlines()
    assert lines[1] == "current state:" and "    SKU-00028  STORE-049         1" in lines


async def test_a_reassign_without_a_channel_hints_at_naming_the_node() -> None:
    refusal = OmnistockRpcError(
        grpc.StatusCode.INVALID_ARGUMENT,
        "to_node_id: is required",
        field_violations=[
            ("to_node_id", "is required: the reservation has no channel whose rules could choose")
        ],
    )
    code, _, err = await run(["reassign", "order-1", "SKU-1", "DC-01"], SourcingClient(refusal))
    assert code == 2
    assert (
        err.splitlines()[-1]
        == "hint: name the node to move it to: omnistock reassign order-1 SKU-1 DC-01 TO_NODE"
    )


async def test_return_at_another_store() -> None:
    client = SourcingClient()
    code, out, _ = await run(["return", "web-5001", "SKU-00022:STORE-049:1", "--at", "STORE-001"], client)
    kind, reservation_id, made, *rest = client.calls[0]
    assert code == 0 and (kind, reservation_id) == ("return", "web-5001")
    assert rest == ["SKU-00022", "STORE-049", "STORE-001", 1, False]
    lines = out.splitlines()
    assert made.startswith("rtn-") and f"return       {made}" in lines
    assert (
        "returned     1 x SKU-00022 (of the line at STORE-049) at STORE-001, on hand and sellable again"
        in lines
    )


async def test_return_damaged_at_the_lines_node_by_default() -> None:
    client = SourcingClient()
    code, out, _ = await run(
        ["return", "web-5001", "SKU-00022:STORE-049:2", "--damaged", "--id", "rtn-1"], client
    )
    assert code == 0 and client.calls[0][2:] == ("rtn-1", "SKU-00022", "STORE-049", "STORE-049", 2, True)
    assert "damaged: on hand, not sellable" in out and "replayed     yes" in out


async def test_a_refused_return_shows_the_reservation_and_the_made_up_id() -> None:
    refusal = OmnistockRpcError(
        grpc.StatusCode.FAILED_PRECONDITION,
        "cannot return to reservation 'web-5001': SKU-00022: 1 fulfilled and not yet returned, asked 2",
    )
    code, out, _ = await run(
        ["return", "web-5001", "SKU-00022:STORE-049:2", "--json"], SourcingClient(refusal)
    )
    error = json.loads(out)["error"]
    assert code == 1 and error["return_id"].startswith("rtn-")
    assert error["reservation"]["reservation_id"] == "web-5001"


def test_return_needs_a_line_with_its_node(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["return", "web-5001", "SKU-00022:2", "--target", CLOSED, "--timeout", "1"]) == 2
    assert "must look like SKU:NODE:QTY" in capsys.readouterr().err


# --- channels: the sourcing policy ---


def test_channels_put_sets_the_sourcing_policy() -> None:
    args = build_parser().parse_args(
        [
            "channels",
            "put",
            "web",
            "--groups",
            "dcs",
            "--sourcing",
            "cost, nearest",
            "--split-lines",
            "--max-shipments",
            "3",
        ]
    )
    channel = channel_from_args(
        args.channel_id,
        args.groups,
        future_supply_holds=args.future_supply_holds,
        sourcing=args.sourcing,
        split_lines=args.split_lines,
        max_shipments=args.max_shipments,
    )
    assert channel.sourcing == network_pb2.SourcingPolicy(
        rules=["cost", "nearest"], split_lines=True, max_shipments=3
    )


def test_a_channel_without_sourcing_flags_sources_by_the_default() -> None:
    args = build_parser().parse_args(["channels", "put", "web", "--groups", "dcs"])
    assert (args.sourcing, args.split_lines, args.max_shipments) == (None, False, 0)
    channel = channel_from_args("web", "dcs", sourcing=args.sourcing)
    assert not channel.HasField("sourcing")
    assert channel_from_args("web", "dcs", max_shipments=2).sourcing == network_pb2.SourcingPolicy(
        max_shipments=2
    )
    with pytest.raises(UsageError, match="--sourcing must be a comma-separated list"):
        channel_from_args("web", "dcs", sourcing="nearest,,cost")


def test_sourcing_policies_in_words() -> None:
    demo = network_pb2.SourcingPolicy(rules=["single_node", "nearest", "priority"], max_shipments=2)
    assert (
        describe_sourcing(demo)
        == "single_node,nearest,priority; lines not split; at most 2 shipments per order"
    )
    assert describe_sourcing(demo, compact=True) == "single_node,nearest,priority max 2"
    split = network_pb2.SourcingPolicy(rules=["cost"], split_lines=True)
    assert describe_sourcing(split) == "cost; lines may be split over nodes; no limit of shipments"
    assert describe_sourcing(split, compact=True) == "cost split"
    assert describe_sourcing(network_pb2.SourcingPolicy()).startswith("single_node,nearest,priority;")


def demo_reading() -> NetworkReading:
    from omnistock.loadtest.datagen import demo_network_text, demo_nodes

    parsed = parse_network_file(demo_network_text())
    _, groups, channels = network_messages([], parsed.groups, parsed.channels)
    return NetworkReading(
        network_pb2.NetworkConfig(nodes=demo_nodes(), groups=groups, channels=channels, version=3)
    )


def test_channel_text_and_table_show_the_demo_webs_sourcing() -> None:
    reading = demo_reading()
    assert (
        "sourcing       single_node,nearest,priority; lines not split; at most 2 shipments per order"
        in reading.show_channel("web").splitlines()
    )
    rows = reading.channels_table().splitlines()
    assert "SOURCING" in rows[0].split()
    web = next(line for line in rows if line.startswith("web"))
    assert "single_node,nearest,priority max 2" in web


def test_a_bad_sourcing_setting_in_a_file_stops_serve_before_anything_starts() -> None:
    parsed = parse_network_file(
        '[groups.dcs]\ntypes = ["dc"]\n[channels.web]\ngroups = ["dcs"]\n'
        '[channels.web.sourcing]\nrules = ["nearest", "nearest"]\nmax_shipments = 500\n'
    )
    messages = network_messages(parsed.nodes, parsed.groups, parsed.channels)
    fields = [field for field, _ in network_problems(None, *messages)]
    assert fields == ["channels[web].sourcing.rules", "channels[web].sourcing.max_shipments"]


# --- nodes: their sourcing settings ---


class NodesClient:
    async def list_nodes(self, node_type: int = 0) -> list[common_pb2.Node]:
        return [
            common_pb2.Node(
                node_id="DC-01",
                type=common_pb2.NODE_TYPE_DC,
                ships=True,
                enabled=True,
                priority=1,
                shipment_cost=4.5,
            ),
            common_pb2.Node(
                node_id="STORE-001",
                type=common_pb2.NODE_TYPE_STORE,
                ships=True,
                pickup=True,
                enabled=True,
                priority=2,
                shipment_cost=7,
                daily_capacity=200,
            ),
        ]


async def test_nodes_list_shows_priority_cost_and_daily_capacity() -> None:
    args = build_parser().parse_args(["nodes", "list"])
    stdout = io.StringIO()
    assert await cmd_nodes_list(NodesClient(), args, Output(False, stdout=stdout)) == 0  # type: ignore[arg-type]
    header, dc, store = stdout.getvalue().splitlines()
    assert header.split()[-3:] == ["PRIORITY", "SHIPMENT_COST", "DAILY_CAPACITY"]
    assert dc.split()[-3:] == ["1", "4.50", "-"]  # 0: no limit
    assert store.split()[-3:] == ["2", "7.00", "200"]
    args = build_parser().parse_args(["nodes", "list", "--json"])
    stdout = io.StringIO()
    await cmd_nodes_list(NodesClient(), args, Output(True, stdout=stdout))  # type: ignore[arg-type]
    node = json.loads(stdout.getvalue())["nodes"][1]
    assert (node["priority"], node["shipment_cost"], node["daily_capacity"]) == (2, 7.0, 200)


def test_a_node_file_round_trips_the_sourcing_settings() -> None:
    nodes = parse_nodes("node_id,type,priority,shipment_cost,daily_capacity\nSTORE-9,store,2,7.25,150\n")
    assert (nodes[0].priority, nodes[0].shipment_cost, nodes[0].daily_capacity) == (2, 7.25, 150)
    listed = json.dumps({"nodes": [to_dict(node) for node in nodes]})
    assert parse_nodes(listed) == nodes  # `nodes list --json` reads back with `nodes put`


class RefusingChannels:
    async def put_channels(self, channels: Any) -> network_pb2.NetworkConfig:
        raise OmnistockRpcError(
            grpc.StatusCode.INVALID_ARGUMENT,
            "channels[0].sourcing.rules[1]: unknown rule 'fastest'",
            field_violations=[
                (
                    "channels[0].sourcing.rules[1]",
                    "unknown rule 'fastest'; use single_node, nearest, priority, cost",
                )
            ],
        )


async def test_a_refused_sourcing_rule_is_named_by_channel_id() -> None:
    args = build_parser().parse_args(
        ["channels", "put", "web", "--groups", "dcs", "--sourcing", "nearest,fastest"]
    )
    stderr = io.StringIO()
    code = await cmd_channels_put(RefusingChannels(), args, Output(False, stderr=stderr))  # type: ignore[arg-type]
    assert code == 2
    assert stderr.getvalue().splitlines() == [
        "error: INVALID_ARGUMENT: 1 problem, nothing was changed",
        "  channels[web].sourcing.rules[1]: unknown rule 'fastest'; use single_node, nearest, priority, cost",
    ]
