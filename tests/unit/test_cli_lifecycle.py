"""The CLI's later life of a reservation, without a server: `extend`, `fulfil`, `cancel-lines`,
and `get` with fulfilled and cancelled units and the history."""

from __future__ import annotations

import io
import json
from typing import Any

import grpc
import pytest

from omnistock.cli import main
from omnistock.cli.app import build_parser
from omnistock.cli.commands import cmd_cancel_lines, cmd_extend, cmd_fulfil, cmd_get
from omnistock.cli.common import UsageError, to_timestamp
from omnistock.cli.output import Output, event_name, format_reservation, history_table, line_rows, state_name
from omnistock.cli.parsing import operation_id, parse_closing_lines
from omnistock.client import OmnistockRpcError
from omnistock.protos.gen.omnistock.v1 import reservation_pb2

CLOSED = "127.0.0.1:1"  # never an omnistock: a call would fail with UNAVAILABLE (exit 1), not 2
T = reservation_pb2.ReservationEventType


# --- parsing (pure) ---


def test_closing_lines_keep_their_order() -> None:
    lines = parse_closing_lines(["SKU-00004:DC-01:1", "vendor:7:STORE-001:2"], "fulfilment")
    assert [(ln.sku, ln.node_id, ln.quantity) for ln in lines] == [
        ("SKU-00004", "DC-01", 1),
        ("vendor:7", "STORE-001", 2),
    ]


@pytest.mark.parametrize(
    ("texts", "says"),
    [
        (["SKU-1:DC-01:1", "SKU-1:DC-01:2"], "SKU-1 at DC-01 is in the fulfilment twice"),
        ([" SKU-1 : DC-01 :1", "SKU-1:DC-01:2"], "give it once with the whole quantity"),
        ([], "needs at least one line"),
        (["SKU-1:DC-01:0"], "quantity must be at least 1"),
        (["SKU-1:DC-01:-2"], "quantity must be at least 1"),
        (["SKU-1:DC-01:x"], "is not a whole number"),
        (["SKU-1:DC-01"], "SKU:NODE:QTY"),
        ([":DC-01:1"], "needs a SKU and a node"),
    ],
)
def test_bad_closing_lines_are_usage_errors(texts: list[str], says: str) -> None:
    with pytest.raises(UsageError, match=says):
        parse_closing_lines(texts, "fulfilment")


def test_the_same_sku_at_two_nodes_is_two_lines() -> None:
    lines = parse_closing_lines(["SKU-1:DC-01:1", "SKU-1:DC-02:1"], "cancellation")
    assert [ln.node_id for ln in lines] == ["DC-01", "DC-02"]


def test_an_operation_id_is_the_one_given_or_a_new_one() -> None:
    assert operation_id("ship-1", "ful") == ("ship-1", False)
    made, generated = operation_id(None, "ful")
    again, _ = operation_id(None, "ful")
    assert generated and made.startswith("ful-") and made != again
    for empty in ("", "  "):
        with pytest.raises(UsageError, match="--id must not be empty"):
            operation_id(empty, "ful")


def test_event_and_state_names() -> None:
    assert event_name(T.RESERVATION_EVENT_TYPE_LINES_CANCELLED) == "LINES_CANCELLED"
    assert event_name(T.RESERVATION_EVENT_TYPE_EXTENDED) == "EXTENDED"
    assert event_name(999) == "EVENT_999"  # a type newer than this CLI
    assert state_name(reservation_pb2.RESERVATION_STATE_FULFILLED) == "FULFILLED"
    assert state_name(999) == "STATE_999"


# --- text ---


def stamp(seconds: int) -> Any:
    return to_timestamp(seconds)


def reservation(
    state: int = reservation_pb2.RESERVATION_STATE_CONFIRMED,
    done: tuple[tuple[int, int], ...] = ((0, 0), (0, 0)),
    history: tuple[int, ...] = (),
) -> reservation_pb2.Reservation:
    message = reservation_pb2.Reservation(
        reservation_id="order-1003",
        state=state,
        lines=[
            reservation_pb2.ReservationLine(
                sku="SKU-00003", node_id="STORE-001", quantity=2, fulfilled=done[0][0], cancelled=done[0][1]
            ),
            reservation_pb2.ReservationLine(
                sku="SKU-00004", node_id="DC-01", quantity=3, fulfilled=done[1][0], cancelled=done[1][1]
            ),
        ],
        created_at=stamp(1_800_000_000),
        expires_at=stamp(1_800_000_900),
        history=[
            reservation_pb2.ReservationEvent(
                event_id=f"order-1003/{i}", type=kind, at=stamp(1_800_000_000 + i)
            )
            for i, kind in enumerate(history)
        ],
    )
    if state != reservation_pb2.RESERVATION_STATE_HELD:
        message.changed_at.CopyFrom(stamp(1_800_000_001))
    return message


def test_fulfilled_and_cancelled_columns_only_once_a_unit_is_closed() -> None:
    headers, rows = line_rows(reservation().lines)
    assert headers == ["SKU", "NODE", "QUANTITY"] and rows[0] == ("SKU-00003", "STORE-001", 2)
    headers, rows = line_rows(reservation(done=((0, 1), (1, 0))).lines)
    assert headers == ["SKU", "NODE", "QUANTITY", "FULFILLED", "CANCELLED"]
    assert rows == [("SKU-00003", "STORE-001", 2, 0, 1), ("SKU-00004", "DC-01", 3, 1, 0)]


def test_reservation_text_names_the_operation_and_the_replay() -> None:
    text = format_reservation(reservation(done=((0, 0), (1, 0))), True, ("fulfilment", "ship-1"))
    lines = text.splitlines()
    assert "fulfilment   ship-1" in lines
    assert "replayed     yes: this id was seen before, nothing changed" in lines
    assert lines.index("fulfilment   ship-1") < lines.index(
        "replayed     yes: this id was seen before, nothing changed"
    )
    assert "  SKU        NODE       QUANTITY  FULFILLED  CANCELLED" in lines
    assert "  SKU-00004  DC-01             3          1          0" in lines
    assert "history" not in lines


def test_history_lists_every_transition_oldest_first() -> None:
    kinds = (
        T.RESERVATION_EVENT_TYPE_HELD,
        T.RESERVATION_EVENT_TYPE_CONFIRMED,
        T.RESERVATION_EVENT_TYPE_FULFILLED,
    )
    text = format_reservation(reservation(history=kinds), history=True)
    lines = text.splitlines()
    start = lines.index("history")
    assert lines[start + 1].split() == ["TIME", "EVENT", "BY"]
    assert [line.split()[1] for line in lines[start + 2 :]] == ["HELD", "CONFIRMED", "FULFILLED"]
    assert history_table([]) == "  (no events)"


# --- commands, with a client standing in for the service ---


class LifeClient:
    def __init__(self, refusal: OmnistockRpcError | None = None) -> None:
        self.refusal = refusal
        self.calls: list[tuple[Any, ...]] = []
        self.current = reservation(done=((0, 0), (1, 0)))

    def _maybe_refuse(self) -> None:
        if self.refusal is not None:
            raise self.refusal

    async def extend(self, reservation_id: str, ttl_seconds: int) -> reservation_pb2.Reservation:
        self.calls.append(("extend", reservation_id, ttl_seconds))
        self._maybe_refuse()
        return reservation(reservation_pb2.RESERVATION_STATE_HELD)

    async def fulfil(
        self, reservation_id: str, fulfilment_id: str, lines: Any
    ) -> reservation_pb2.FulfilResponse:
        self.calls.append(("fulfil", reservation_id, fulfilment_id, [(ln.sku, ln.quantity) for ln in lines]))
        self._maybe_refuse()
        return reservation_pb2.FulfilResponse(reservation=self.current, replayed=fulfilment_id == "ship-1")

    async def cancel_lines(
        self, reservation_id: str, cancellation_id: str, lines: Any
    ) -> reservation_pb2.CancelLinesResponse:
        self.calls.append(
            ("cancel", reservation_id, cancellation_id, [(ln.sku, ln.quantity) for ln in lines])
        )
        self._maybe_refuse()
        return reservation_pb2.CancelLinesResponse(reservation=self.current)

    async def get_reservation(self, reservation_id: str) -> reservation_pb2.Reservation:
        self.calls.append(("get", reservation_id))
        return self.current


async def run(argv: list[str], client: LifeClient) -> tuple[int, str, str]:
    args = build_parser().parse_args(argv)
    stdout, stderr = io.StringIO(), io.StringIO()
    out = Output(args.json, stdout=stdout, stderr=stderr)
    code = await COMMANDS[argv[0]](client, args, out)  # type: ignore[arg-type]
    return code, stdout.getvalue(), stderr.getvalue()


COMMANDS = {
    "extend": cmd_extend,
    "fulfil": cmd_fulfil,
    "cancel-lines": cmd_cancel_lines,
    "get": cmd_get,
}


async def test_extend_sends_the_ttl() -> None:
    client = LifeClient()
    code, out, _ = await run(["extend", "order-1003", "--ttl", "1800"], client)
    assert code == 0 and client.calls == [("extend", "order-1003", 1800)]
    assert "state        HELD" in out.splitlines()


async def test_extend_as_json_is_an_extend_response() -> None:
    code, out, _ = await run(["extend", "order-1003", "--ttl", "60", "--json"], LifeClient())
    assert code == 0 and json.loads(out)["reservation"]["state"] == "RESERVATION_STATE_HELD"


async def test_fulfil_without_an_id_makes_one_and_prints_it() -> None:
    client = LifeClient()
    code, out, _ = await run(["fulfil", "order-1003", "SKU-00004:DC-01:1"], client)
    assert code == 0
    kind, reservation_id, made, lines = client.calls[0]
    assert (kind, reservation_id, lines) == ("fulfil", "order-1003", [("SKU-00004", 1)])
    assert made.startswith("ful-") and f"fulfilment   {made}" in out.splitlines()


async def test_fulfil_with_a_known_id_says_it_was_a_replay() -> None:
    code, out, _ = await run(["fulfil", "order-1003", "SKU-00004:DC-01:1", "--id", "ship-1"], LifeClient())
    assert code == 0 and "replayed     yes: this id was seen before, nothing changed" in out.splitlines()


async def test_fulfil_as_json_carries_the_id() -> None:
    code, out, _ = await run(
        ["fulfil", "order-1003", "SKU-00004:DC-01:1", "--id", "ship-9", "--json"], LifeClient()
    )
    data = json.loads(out)
    assert code == 0 and list(data) == ["fulfilment_id", "reservation", "replayed"]
    assert data["fulfilment_id"] == "ship-9" and data["reservation"]["lines"][1]["fulfilled"] == 1


async def test_cancel_lines_sends_the_lines_under_its_id() -> None:
    client = LifeClient()
    code, out, _ = await run(
        ["cancel-lines", "order-1003", "SKU-00003:STORE-001:1", "--id", "cancel-1"], client
    )
    assert code == 0 and client.calls == [("cancel", "order-1003", "cancel-1", [("SKU-00003", 1)])]
    assert "cancellation  cancel-1" in out.splitlines()
    _, _, _ = await run(["cancel-lines", "order-1003", "SKU-00003:STORE-001:1"], client)
    assert client.calls[-1][2].startswith("cxl-")


async def test_too_many_units_is_refused_with_the_reservation_as_it_stands() -> None:
    refusal = OmnistockRpcError(
        grpc.StatusCode.FAILED_PRECONDITION,
        "cannot fulfil reservation 'order-1003': SKU-00004 at DC-01: 2 open, asked 3",
    )
    client = LifeClient(refusal)
    code, _, err = await run(["fulfil", "order-1003", "SKU-00004:DC-01:3", "--id", "ship-2"], client)
    assert code == 1 and client.calls[-1] == ("get", "order-1003")
    lines = err.splitlines()
    assert lines[0] == (
        "error: FAILED_PRECONDITION: cannot fulfil reservation 'order-1003':"
        " SKU-00004 at DC-01: 2 open, asked 3"
    )
    assert lines[1] == "current state:"
    assert "    SKU-00004  DC-01             3          1          0" in lines


async def test_a_refusal_in_json_has_the_reservation_and_the_made_up_id() -> None:
    refusal = OmnistockRpcError(grpc.StatusCode.FAILED_PRECONDITION, "... 2 open, asked 3")
    code, out, _ = await run(["fulfil", "order-1003", "SKU-00004:DC-01:3", "--json"], LifeClient(refusal))
    error = json.loads(out)["error"]
    assert code == 1 and error["code"] == "FAILED_PRECONDITION"
    assert (
        error["fulfilment_id"].startswith("ful-") and error["reservation"]["reservation_id"] == "order-1003"
    )


async def test_fulfilling_a_held_reservation_hints_at_confirm() -> None:
    held = reservation(reservation_pb2.RESERVATION_STATE_HELD)
    refusal = OmnistockRpcError(
        grpc.StatusCode.FAILED_PRECONDITION,
        "cannot fulfil reservation 'order-1003': it is HELD",
        reservation=held,
    )
    client = LifeClient(refusal)
    code, _, err = await run(["fulfil", "order-1003", "SKU-00004:DC-01:1", "--id", "ship-1"], client)
    assert code == 1 and ("get", "order-1003") not in client.calls  # the refusal carried the state
    assert "  state        HELD" in err.splitlines()
    assert err.splitlines()[-1].startswith("hint: confirm it first (omnistock confirm order-1003)")


async def test_a_line_not_in_the_reservation_exits_2() -> None:
    refusal = OmnistockRpcError(
        grpc.StatusCode.INVALID_ARGUMENT,
        "lines: SKU-00009 at DC-01 is not in this reservation",
        field_violations=[("lines", "SKU-00009 at DC-01 is not in this reservation")],
    )
    code, _, err = await run(["cancel-lines", "order-1003", "SKU-00009:DC-01:1"], LifeClient(refusal))
    assert code == 2 and "  lines: SKU-00009 at DC-01 is not in this reservation" in err.splitlines()


async def test_extend_refused_shows_the_state() -> None:
    released = reservation(reservation_pb2.RESERVATION_STATE_RELEASED)
    refusal = OmnistockRpcError(
        grpc.StatusCode.FAILED_PRECONDITION,
        "cannot extend reservation 'order-1003': it is RELEASED",
        reservation=released,
    )
    code, _, err = await run(["extend", "order-1003", "--ttl", "60"], LifeClient(refusal))
    assert code == 1 and "  state        RELEASED" in err.splitlines()


async def test_get_shows_the_history() -> None:
    client = LifeClient()
    client.current = reservation(history=(T.RESERVATION_EVENT_TYPE_HELD, T.RESERVATION_EVENT_TYPE_EXTENDED))
    code, out, _ = await run(["get", "order-1003"], client)
    assert code == 0 and "history" in out.splitlines()
    assert [line.split()[1] for line in out.splitlines()[-2:]] == ["HELD", "EXTENDED"]


# --- usage errors exit 2 before anything is sent ---


@pytest.mark.parametrize(
    "argv",
    [
        ["extend", "order-1003"],
        ["extend", "order-1003", "--ttl", "soon"],
        ["extend", "order-1003", "--ttl", str(2**31)],
        ["fulfil", "order-1003"],
        ["cancel-lines", "order-1003"],
    ],
)
def test_bad_usage_exits_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main([*argv, "--target", CLOSED])
    assert stopped.value.code == 2


@pytest.mark.parametrize(
    "argv",
    [
        ["fulfil", "order-1003", "SKU-1:DC-01:1", "SKU-1:DC-01:1"],
        ["fulfil", "order-1003", "SKU-1:DC-01:0"],
        ["cancel-lines", "order-1003", "SKU-1:DC-01:1", "--id", ""],
    ],
)
def test_bad_lines_and_ids_exit_2_without_a_call(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*argv, "--target", CLOSED, "--timeout", "1"]) == 2
    assert capsys.readouterr().err.startswith("error: ")
