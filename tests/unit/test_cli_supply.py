"""Future supply from the command line, without a server: supply CSV files, `supply expect` and
`supply load`, receipts (`stock adjust --supply-id`), availability by date, and the client's
request building for them."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from omnistock.cli import main
from omnistock.cli.app import build_parser
from omnistock.cli.commands import cmd_availability, cmd_stock_adjust
from omnistock.cli.common import ProblemsError, UsageError
from omnistock.cli.network_commands import cmd_supply_expect, cmd_supply_load
from omnistock.cli.output import Output, local_time
from omnistock.cli.parsing import read_supplies
from omnistock.client import OmnistockClient, basket_item, supply, to_timestamp
from omnistock.protos.gen.omnistock.v1 import availability_pb2, common_pb2, inventory_pb2

DEC_1 = datetime(2026, 12, 1, tzinfo=UTC).timestamp()
CLOSED = "127.0.0.1:1"  # never an omnistock: a call would fail with UNAVAILABLE (exit 1), not 2


def rows(text: str) -> list[list[str]]:
    return [line.split(",") for line in text.strip().splitlines()]


# --- supply CSV files ---


def test_supply_rows_without_a_header() -> None:
    supplies = read_supplies(
        rows("PO-1,SKU-1,DC-01,120,2026-12-01T00:00:00Z\nPO-1,SKU-2,DC-01,0,2026-12-01T00:00:00Z")
    )
    assert [(s.supply_id, s.sku, s.node_id, s.quantity) for s in supplies] == [
        ("PO-1", "SKU-1", "DC-01", 120),
        ("PO-1", "SKU-2", "DC-01", 0),  # 0 clears the line
    ]
    assert supplies[0].expected_at.ToSeconds() == DEC_1


def test_a_supply_header_names_the_columns_in_any_order() -> None:
    supplies = read_supplies(
        rows(
            "Expected_At,quantity,node_id,sku,supply_id\n"
            "2026-12-01T00:00:00Z,5,DC-01,SKU-1,TR-9\n"
            "\n"
            "# a comment\n"
            " 2026-12-01T00:00:00+00:00 , 7 , DC-02 , SKU-1 , TR-9 "
        )
    )
    assert [(s.supply_id, s.sku, s.node_id, s.quantity, s.expected_at.ToSeconds()) for s in supplies] == [
        ("TR-9", "SKU-1", "DC-01", 5, DEC_1),
        ("TR-9", "SKU-1", "DC-02", 7, DEC_1),
    ]


def test_a_date_alone_is_local_midnight() -> None:
    (line,) = read_supplies([["PO-1", "SKU-1", "DC-01", "1", "2026-12-01"]])
    assert line.expected_at.ToSeconds() == int(datetime(2026, 12, 1).astimezone().timestamp())


@pytest.mark.parametrize(
    ("header", "complaint"),
    [
        ("supply_id,sku,node_id,quantity", "the header must name expected_at"),
        ("supply_id,sku,node,quantity,expected_at", "unknown column(s) node"),
        ("supply_id,sku,sku,quantity,expected_at", "column(s) sku named twice"),
    ],
)
def test_bad_supply_headers(header: str, complaint: str) -> None:
    with pytest.raises(UsageError) as refused:
        read_supplies(rows(f"{header}\nPO-1,SKU-1,DC-01,1,2026-12-01"))
    assert complaint in str(refused.value)


def test_every_bad_supply_row_is_named_and_nothing_is_returned() -> None:
    text = (
        "PO-1,SKU-1,DC-01,ten,2026-12-01\n"
        "PO-1,SKU-1,DC-01,5,someday\n"
        "PO-2,SKU-1\n"
        "PO-3,SKU-2,DC-01,5,2026-12-01\n"
        "PO-3,SKU-2,DC-01,6,2026-12-02\n"
        ",SKU-3,DC-01,-1,\n"
        "PO-4,SKU-4,DC-01,1,2026-12-01\n"
    )
    with pytest.raises(ProblemsError) as refused:
        read_supplies(rows(text))
    assert str(refused.value) == "7 problems, nothing was sent"
    assert refused.value.problems == [
        ("line 1", "quantity must be a whole number, 0 or more (0 clears), got 'ten'"),
        ("line 2", "expected_at must be an ISO 8601 time such as 2024-06-11T09:30:00Z, got 'someday'"),
        ("line 3", "expected 5 values (supply_id,sku,node_id,quantity,expected_at), got 2"),
        ("line 5", "PO-3 for SKU-2 at DC-01 is on line 4 too"),
        ("line 6", "supply_id is required"),
        ("line 6", "quantity must be a whole number, 0 or more (0 clears), got '-1'"),
        ("line 6", "expected_at is required"),
    ]


def test_the_same_supply_id_may_have_lines_for_many_skus_and_nodes() -> None:
    supplies = read_supplies(
        rows("PO-1,A,DC-01,1,2026-12-01\nPO-1,B,DC-01,1,2026-12-01\nPO-1,A,DC-02,1,2026-12-01")
    )
    assert len(supplies) == 3


def test_a_long_list_of_problems_stops_at_the_first_ones() -> None:
    bad = [["PO-1", "SKU-1", "DC-01", "x", "2026-12-01"]] * 50
    with pytest.raises(ProblemsError) as refused:
        read_supplies(bad, most_problems=5)
    assert str(refused.value) == "the first 5 problems, nothing was sent"
    assert len(refused.value.problems) == 5


def test_an_empty_supply_file_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="no supply lines in the file"):
        read_supplies(rows("supply_id,sku,node_id,quantity,expected_at\n# nothing yet"))


def test_a_bad_supply_file_exits_2_before_any_call(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "po.csv"
    path.write_text("PO-1,SKU-1,DC-01,5,next week\n")
    assert main(["supply", "load", str(path), "--target", CLOSED]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "error: INVALID_ARGUMENT: 1 problem, nothing was sent",
        "  line 1: expected_at must be an ISO 8601 time such as 2024-06-11T09:30:00Z, got 'next week'",
    ]
    assert main(["supply", "load", str(tmp_path / "missing.csv"), "--target", CLOSED]) == 2
    assert "cannot read" in capsys.readouterr().err


# --- commands against a recording client ---


class Recorder:
    """Records what a command asks; answers like the service would."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.adjust_outcome = inventory_pb2.ADJUSTMENT_OUTCOME_APPLIED
        self.availability_answer = availability_pb2.GetAvailabilityResponse()

    async def expect_supply(self, supplies: Any) -> inventory_pb2.ExpectSupplyResponse:
        self.calls.append(("expect_supply", list(supplies)))
        return inventory_pb2.ExpectSupplyResponse(applied=len(supplies))

    async def adjust(
        self, adjustment_id: str, sku: str, node_id: str, delta: int, *args: Any, **kwargs: Any
    ) -> Any:
        self.calls.append(("adjust", (adjustment_id, sku, node_id, delta, args, kwargs)))
        position = common_pb2.Position(sku=sku, node_id=node_id, on_hand=27, available=27, inbound=20)
        return inventory_pb2.AdjustmentResult(
            adjustment_id=adjustment_id, outcome=self.adjust_outcome, position=position
        )

    async def availability(self, skus: list[str], **kwargs: Any) -> availability_pb2.GetAvailabilityResponse:
        self.calls.append(("availability", {"skus": skus, **kwargs}))
        return self.availability_answer


async def run(argv: list[str], client: Recorder) -> tuple[int, str, str]:
    args = build_parser().parse_args(argv)
    stdout, stderr = io.StringIO(), io.StringIO()
    handler = {
        ("supply", "expect"): cmd_supply_expect,
        ("supply", "load"): cmd_supply_load,
        ("stock", "adjust"): cmd_stock_adjust,
        ("availability", None): cmd_availability,
    }[(argv[0], argv[1] if argv[0] in ("supply", "stock") else None)]
    code = await handler(client, args, Output(args.json, stdout=stdout, stderr=stderr))  # type: ignore[arg-type]
    return code, stdout.getvalue(), stderr.getvalue()


async def test_supply_expect_sends_one_line() -> None:
    client = Recorder()
    code, out, _ = await run(
        ["supply", "expect", "PO-1", "SKU-1", "DC-01", "120", "--date", "2026-12-01T00:00:00Z"], client
    )
    assert code == 0
    ((name, (line,)),) = client.calls
    assert name == "expect_supply"
    assert (line.supply_id, line.sku, line.node_id, line.quantity) == ("PO-1", "SKU-1", "DC-01", 120)
    assert line.expected_at.ToSeconds() == DEC_1
    assert out.startswith("supply PO-1: 120 x SKU-1 expected at DC-01 on 2026-12-0")


async def test_supply_expect_with_zero_clears_without_a_date() -> None:
    client = Recorder()
    code, out, _ = await run(["supply", "expect", "PO-1", "SKU-1", "DC-01", "0", "--json"], client)
    assert code == 0
    line = client.calls[0][1][0]
    assert line.quantity == 0 and line.HasField("expected_at")  # the service wants a date on every line
    data = json.loads(out)
    assert data["applied"] == 1 and data["supply"]["supply_id"] == "PO-1" and data["supply"]["quantity"] == 0


async def test_supply_load_sends_chunks(tmp_path: Path) -> None:
    path = tmp_path / "po.csv"
    path.write_text(
        "supply_id,sku,node_id,quantity,expected_at\n"
        + "".join(f"PO-{i // 3},SKU-{i},DC-01,{i},2026-12-01\n" for i in range(7))
    )
    client = Recorder()
    code, out, err = await run(["supply", "load", str(path), "--chunk", "3"], client)
    assert code == 0
    assert [len(lines) for _, lines in client.calls] == [3, 3, 1]
    assert out.startswith("7 supply lines applied: 3 supply id(s), 21 units expected, 1 line(s) cleared (")
    assert err.splitlines() == ["sent 3 of 7 lines", "sent 6 of 7 lines", "sent 7 of 7 lines"]
    code, out, _ = await run(["supply", "load", str(path), "--json"], client)
    assert json.loads(out) == {"applied": 7, "lines": 7, "supplies": 3, "cleared": 1}


async def test_a_receipt_names_its_supply() -> None:
    client = Recorder()
    code, out, _ = await run(
        ["stock", "adjust", "SKU-1", "DC-01", "5", "--supply-id", "PO-1", "--id", "rcv-1"], client
    )
    assert code == 0
    _, (adjustment_id, sku, node_id, delta, _, kwargs) = client.calls[0]
    assert (adjustment_id, sku, node_id, delta, kwargs) == (
        "rcv-1",
        "SKU-1",
        "DC-01",
        5,
        {"supply_id": "PO-1"},
    )
    assert out.splitlines() == [
        "adjustment rcv-1: APPLIED (received against supply PO-1)",
        "SKU-1 at DC-01: on_hand 27, reserved 0, committed 0, available 27, inbound 20",
    ]


async def test_an_unknown_supply_is_a_refusal_that_says_why() -> None:
    client = Recorder()
    client.adjust_outcome = inventory_pb2.ADJUSTMENT_OUTCOME_UNKNOWN_SUPPLY
    code, out, _ = await run(
        ["stock", "adjust", "SKU-1", "DC-03", "5", "--supply-id", "PO-9", "--id", "r"], client
    )
    assert code == 1
    assert out.splitlines()[0] == (
        "adjustment r: UNKNOWN_SUPPLY: no supply PO-9 is expected for SKU-1 at DC-03; nothing changed"
    )
    code, out, _ = await run(
        ["stock", "adjust", "SKU-1", "DC-03", "5", "--supply-id", "PO-9", "--id", "r", "--json"], client
    )
    assert code == 1 and json.loads(out)["outcome"] == "ADJUSTMENT_OUTCOME_UNKNOWN_SUPPLY"


async def test_a_receipt_without_an_id_gets_one() -> None:
    client = Recorder()
    await run(["stock", "adjust", "SKU-1", "DC-01", "5", "--supply-id", "PO-1"], client)
    assert client.calls[0][1][0].startswith("rcv-")
    await run(["stock", "adjust", "SKU-1", "DC-01", "5"], client)
    assert client.calls[1][1][0].startswith("adj-") and client.calls[1][1][5] == {"supply_id": ""}


@pytest.mark.parametrize(
    ("outcome", "says"),
    [
        (inventory_pb2.ADJUSTMENT_OUTCOME_REFUSED_NEGATIVE, "REFUSED_NEGATIVE: on_hand would go below zero"),
        (
            inventory_pb2.ADJUSTMENT_OUTCOME_CONFLICT,
            "CONFLICT: this id was used before with different content",
        ),
    ],
)
async def test_refused_adjustments_say_why(outcome: int, says: str) -> None:
    client = Recorder()
    client.adjust_outcome = outcome
    code, out, _ = await run(["stock", "adjust", "SKU-1", "DC-01", "-5", "--id", "a"], client)
    assert code == 1 and out.startswith(f"adjustment a: {says}")


# --- availability by date ---


def dated_answer(earliest: float | None, channel: bool = False) -> availability_pb2.GetAvailabilityResponse:
    response = availability_pb2.GetAvailabilityResponse(version=9)
    response.as_of.FromSeconds(1_790_000_000)
    sku = response.skus.add(
        sku="SKU-1",
        available=434,
        on_hand=434,
        inbound=200,
        available_by_date=634,
        status=common_pb2.STOCK_STATUS_IN_STOCK if channel else common_pb2.STOCK_STATUS_UNSPECIFIED,
    )
    if earliest is not None:
        sku.earliest_date.CopyFrom(to_timestamp(earliest))
    sku.nodes.add(node_id="DC-01", on_hand=170, available=170, inbound=120)
    return response


async def test_availability_by_date_and_earliest_columns() -> None:
    client = Recorder()
    client.availability_answer = dated_answer(DEC_1, channel=True)
    code, out, _ = await run(
        [
            "availability",
            "SKU-1",
            "--channel",
            "preorder",
            "--by-date",
            "2026-12-20T00:00:00Z",
            "--quantity",
            "500",
        ],
        client,
    )
    assert code == 0
    asked = client.calls[0][1]
    assert asked["by_date"] == datetime(2026, 12, 20, tzinfo=UTC).timestamp() and asked["quantity"] == 500
    header, row, *footer = out.splitlines()
    assert header.split()[-3:] == ["INBOUND", "BY_DATE", "EARLIEST"]
    assert row.split()[-3:-1] == ["200", "634"]
    assert row.split()[-1] == local_time(to_timestamp(DEC_1))
    assert (
        footer[0] == f"channel preorder; as of {local_time(client.availability_answer.as_of)}, view version 9"
    )
    assert footer[1].startswith("BY_DATE: promisable by ") and footer[2].startswith(
        "EARLIEST: when 500 unit(s)"
    )


async def test_earliest_is_now_or_a_dash() -> None:
    now = 1_790_000_000.5  # the service answers "now" with its own clock, a moment after as_of
    for earliest, shown in ((now, "now"), (None, "-")):
        client = Recorder()
        client.availability_answer = dated_answer(earliest)
        _, out, _ = await run(["availability", "SKU-1", "--quantity", "5"], client)
        header, row, *_ = out.splitlines()
        assert header.split()[-2:] == ["INBOUND", "EARLIEST"] and row.split()[-1] == shown
        assert "by_date" not in client.calls[0][1]


async def test_inbound_shows_whenever_supply_is_expected() -> None:
    client = Recorder()
    client.availability_answer = dated_answer(None)
    _, out, _ = await run(["availability", "SKU-1"], client)
    header, row, _ = out.splitlines()
    assert header.split()[-1] == "INBOUND" and row.split()[-1] == "200"
    assert client.calls[0][1] == {
        "skus": ["SKU-1"],
        "include_nodes": False,
        "channel_id": "",
        "consistent": False,
    }
    client.availability_answer.skus[0].inbound = 0
    _, out, _ = await run(["availability", "SKU-1"], client)
    assert "INBOUND" not in out


async def test_node_availability_shows_inbound_per_node() -> None:
    client = Recorder()
    client.availability_answer = dated_answer(DEC_1)
    _, out, _ = await run(
        ["availability", "SKU-1", "--nodes", "--by-date", "2026-12-20", "--quantity", "9"], client
    )
    head, nodes_header, node, *_ = out.splitlines()
    assert ", inbound 200, by date 634, earliest for 9: " in head
    assert nodes_header.split()[-1] == "INBOUND" and node.split() == [
        "DC-01",
        "170",
        "0",
        "0",
        "0",
        "0",
        "170",
        "120",
    ]


# --- the client builds the requests ---


class Stub:
    """Stands in for a gRPC stub method: records the request."""

    def __init__(self, response: Any) -> None:
        self.response = response
        self.requests: list[Any] = []

    async def __call__(self, request: Any, timeout: float | None = None) -> Any:
        self.requests.append(request)
        return self.response


def test_client_helpers() -> None:
    line = supply("PO-1", "SKU-1", "DC-01", 5, datetime(2026, 12, 1, tzinfo=UTC))
    assert (line.supply_id, line.sku, line.node_id, line.quantity) == ("PO-1", "SKU-1", "DC-01", 5)
    assert line.expected_at.ToSeconds() == DEC_1
    assert supply("PO-1", "S", "N", 0, DEC_1 + 0.25).expected_at.nanos == 250_000_000
    assert (basket_item("SKU-1").quantity, basket_item("SKU-1", 3).quantity) == (1, 3)


async def test_client_requests() -> None:
    async with OmnistockClient(CLOSED) as client:
        get = Stub(availability_pb2.GetAvailabilityResponse())
        client.availability_stub.GetAvailability = get
        await client.availability(["A"], channel_id="web", by_date=DEC_1, quantity=6)
        await client.availability(["A"])
        dated, plain = get.requests
        assert dated.by_date.ToSeconds() == DEC_1 and dated.quantity == 6 and dated.channel_id == "web"
        assert not plain.HasField("by_date") and plain.quantity == 0

        find = Stub(availability_pb2.FindPickupStoresResponse())
        client.availability_stub.FindPickupStores = find
        await client.find_pickup_stores([basket_item("A", 2)], location=(40.7, -74.0), radius_km=25, limit=3)
        await client.find_pickup_stores([basket_item("A")], store_id="STORE-001", channel_id="store-pickup")
        near, around = find.requests
        assert near.WhichOneof("origin") == "location" and (
            near.location.latitude,
            near.location.longitude,
        ) == (
            40.7,
            -74.0,
        )
        assert (near.radius_km, near.limit, near.items[0].quantity) == (25, 3, 2)
        assert around.WhichOneof("origin") == "store_id" and around.channel_id == "store-pickup"
        with pytest.raises(ValueError, match="either location"):
            await client.find_pickup_stores([basket_item("A")])
        with pytest.raises(ValueError, match="either location"):
            await client.find_pickup_stores([basket_item("A")], location=(1, 2), store_id="S")

        expect = Stub(inventory_pb2.ExpectSupplyResponse(applied=1))
        client.inventory.ExpectSupply = expect
        assert (await client.expect_supply([supply("PO-1", "A", "DC-01", 5, DEC_1)])).applied == 1
        assert expect.requests[0].supplies[0].supply_id == "PO-1"

        adjust = Stub(inventory_pb2.AdjustStockResponse(results=[inventory_pb2.AdjustmentResult()]))
        client.inventory.AdjustStock = adjust
        await client.adjust("rcv-1", "A", "DC-01", 5, "receipt", supply_id="PO-1")
        await client.adjust("adj-1", "A", "DC-01", -1)  # the old positional form still works
        receipt, plain_adjust = (r.adjustments[0] for r in adjust.requests)
        assert (receipt.supply_id, receipt.reason) == ("PO-1", "receipt")
        assert plain_adjust.supply_id == "" and plain_adjust.delta == -1
