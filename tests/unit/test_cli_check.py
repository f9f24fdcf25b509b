"""`omnistock check`, without a server: what a person reads, what a script parses, the exit code."""

from __future__ import annotations

import io
import json

from omnistock.cli.app import build_parser
from omnistock.cli.commands import cmd_check
from omnistock.cli.output import Output
from omnistock.protos.gen.omnistock.v1 import inventory_pb2


class CheckClient:
    def __init__(self, response: inventory_pb2.CheckConservationResponse) -> None:
        self.response = response

    async def check_conservation(self) -> inventory_pb2.CheckConservationResponse:
        return self.response


async def run(response: inventory_pb2.CheckConservationResponse, *flags: str) -> tuple[int, str]:
    args = build_parser().parse_args(["check", *flags])
    stdout = io.StringIO()
    code = await cmd_check(CheckClient(response), args, Output(args.json, stdout=stdout))  # type: ignore[arg-type]
    return code, stdout.getvalue()


async def test_all_well_says_so_in_one_line() -> None:
    ok = inventory_pb2.CheckConservationResponse(ok=True, shards_checked=2, reservations_checked=1204)
    code, out = await run(ok)
    assert code == 0
    assert out == "stock is conserved and every reservation is in one state (1,204 reservation(s) checked)\n"


async def test_disagreeing_reservations_are_listed_by_id_and_exit_1() -> None:
    broken = inventory_pb2.CheckConservationResponse(
        ok=False,
        shards_checked=2,
        reservations_checked=1204,
        reservations_in_doubt=3,
        disagreement_count=1,
        disagreements=[
            inventory_pb2.ReservationDisagreement(
                reservation_id="order-7", problem="CONFIRMED, but its part in partition 9 is HELD"
            )
        ],
    )
    code, out = await run(broken)
    assert code == 1
    assert out.splitlines() == [
        "1 reservation(s) whose parts disagree:",
        "  order-7: CONFIRMED, but its part in partition 9 is HELD",
        "(2 shard(s) and 1,204 reservation(s) checked, 3 still being carried)",
    ]
    code, out = await run(broken, "--json")
    assert code == 1
    data = json.loads(out)
    assert data["disagreements"] == [
        {"reservation_id": "order-7", "problem": "CONFIRMED, but its part in partition 9 is HELD"}
    ]
    assert (data["disagreement_count"], data["reservations_in_doubt"]) == (1, 3)


async def test_a_broken_position_and_a_cut_list_are_both_told() -> None:
    broken = inventory_pb2.CheckConservationResponse(
        ok=False,
        shards_checked=1,
        problems=["partition 3: SKU-1@DC-1: reserved/committed 2/0 but open parts hold 1/0"],
        disagreement_count=1500,
        disagreements=[
            inventory_pb2.ReservationDisagreement(reservation_id=f"r{i}", problem="p") for i in range(2)
        ],
    )
    code, out = await run(broken)
    lines = out.splitlines()
    assert code == 1
    assert lines[0] == "conservation broken at 1 position(s):"
    assert "1,500 reservation(s) whose parts disagree:" in lines
    assert "  ... and 1,498 more" in lines
