"""`omnistock size`: the arithmetic from a busy hour to gateways, shards and cores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from omnistock.cli import main
from omnistock.loadtest.sizing import (
    GATEWAY_SHARE_OF_WRITES,
    MEASURED,
    Capacity,
    Demand,
    availability_core_ms,
    capacity_from_bench,
    close_core_ms,
    plan,
    reserve_core_ms,
)

# Round figures: 4 cores; a 1-line Reserve 400/s (10 core-ms), 5 lines 200/s (20 core-ms);
# availability 4000/s for 1 SKU (1 core-ms), 200/s for 200 SKUs (20 core-ms); checkouts 100/s (40 core-ms).
ROUND = Capacity("round figures", 4, 400, 200, 4000, 200, 100)


def test_cost_of_a_call_is_the_bench_machine_cores_over_its_rate() -> None:
    assert reserve_core_ms(ROUND, 1) == 10
    assert reserve_core_ms(ROUND, 5) == 20
    assert reserve_core_ms(ROUND, 3) == 15  # in between, on the straight line
    assert reserve_core_ms(ROUND, 9) == 30  # beyond 5 lines, the same slope
    assert availability_core_ms(ROUND, 1) == 1
    assert availability_core_ms(ROUND, 200) == 20
    assert availability_core_ms(ROUND, 100.5) == pytest.approx(10.5)
    # A checkout (40) is a 2-line Reserve (12.5) and a Confirm or Release.
    assert close_core_ms(ROUND) == 27.5


def test_rates_per_rpc_at_the_spike() -> None:
    demand = Demand(
        orders_per_hour=3600, checks_per_order=20, stock_updates_per_second=2, spike=10, abandon=0.2
    )
    result = plan(demand, ROUND)
    rates = {r.rpc: (r.normal_per_second, r.peak_per_second) for r in result.rpcs}
    assert result.orders_per_second_peak == 10
    assert rates["GetAvailability"] == (20, 200)
    assert rates["Reserve"] == pytest.approx((1.25, 12.5))  # 1 order/s is 4 in 5 of the checkouts
    assert rates["Confirm"] == (1, 10)
    assert rates["Release"] == pytest.approx((0.25, 2.5))
    assert rates["AdjustStock"] == (2, 20)


def test_cores_split_between_gateways_and_shards_with_headroom() -> None:
    demand = Demand(
        orders_per_hour=3600, lines_per_order=1, checks_per_order=100, stock_updates_per_second=0, spike=10
    )
    result = plan(demand, ROUND)
    by_rpc = {r.rpc: r for r in result.rpcs}
    # 1000 availability calls/s x 1 core-ms: one gateway core, nothing on the shards.
    assert (by_rpc["GetAvailability"].gateway_cores, by_rpc["GetAvailability"].shard_cores) == (1, 0)
    # 12.5 Reserves/s x 10 core-ms = 0.125 cores, split as profiled.
    reserve = by_rpc["Reserve"]
    assert reserve.gateway_cores + reserve.shard_cores == pytest.approx(0.125)
    assert reserve.gateway_cores == pytest.approx(0.125 * GATEWAY_SHARE_OF_WRITES)
    writes = 0.125 + 10 * 0.0275 + 2.5 * 0.0275
    assert result.gateway_cores == pytest.approx(1 + writes * GATEWAY_SHARE_OF_WRITES)
    assert result.shard_cores == pytest.approx(writes * (1 - GATEWAY_SHARE_OF_WRITES))
    # At most 70% busy: 1.26 gateway cores need 2 gateways, 0.2 shard cores 1 shard; Redis 1.
    assert (result.gateways, result.shards, result.redis_cores, result.cores) == (2, 1, 1, 4)
    assert plan(Demand(orders_per_hour=3600, headroom=0.9), ROUND).gateways > result.gateways


def test_capacity_from_a_bench_report() -> None:
    report = {
        "machine": {"cpus": 8},
        "scenarios": [
            {"key": "echo", "per_second": 9000},
            {"key": "reserve_1", "per_second": 2000},
            {"key": "reserve_5", "per_second": 1500},
            {"key": "availability_1", "per_second": 8000},
            {"key": "availability_200", "per_second": 2500},
        ],
    }
    capacity = capacity_from_bench(report, "bench.json")
    assert (capacity.cores, capacity.reserve_1, capacity.availability_200) == (8, 2000, 2500)
    # No checkout in that run: the default's, scaled from its 2 cores to these 8.
    assert capacity.checkout == MEASURED.checkout * 4
    assert "checkout from the defaults" in capacity.source
    with pytest.raises(ValueError, match=r"machine\.cpus"):
        capacity_from_bench({"scenarios": []}, "x")
    with pytest.raises(ValueError, match="none of its scenarios"):
        capacity_from_bench({"machine": {"cpus": 2}, "scenarios": [{"key": "echo", "per_second": 1}]}, "x")


def test_the_command_prints_a_table_or_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["size", "--orders-per-hour", "20000"]) == 0
    table = capsys.readouterr().out
    assert "spike: x50 = 277.8 orders/s" in table
    assert "per-core figures: docs/performance.md" in table

    bench = tmp_path / "bench.json"
    bench.write_text(
        json.dumps({"machine": {"cpus": 2}, "scenarios": [{"key": "reserve_1", "per_second": 1}]})
    )
    assert main(["size", "--orders-per-hour", "20000", "--bench", str(bench), "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    reserve = next(r for r in answer["rpcs"] if r["rpc"] == "Reserve")
    assert reserve["core_ms"] > 1000  # 1 Reserve/s on 2 cores: 2000 core-ms for one line
    assert answer["capacity"]["source"].startswith(f"omnistock bench --json in {bench}")

    assert main(["size", "--orders-per-hour", "1", "--bench", str(tmp_path / "missing.json")]) == 2
    assert "cannot use" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["size", "--orders-per-hour", "0"])


def test_the_worked_example_in_the_docs_is_what_the_command_prints(
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "sizing.md").read_text()
    block = text.split("```console\n$ omnistock size ", 1)[1].split("```", 1)[0]
    command, printed = block.split("\n", 1)
    assert main(["size", *command.split()]) == 0
    assert capsys.readouterr().out == printed
