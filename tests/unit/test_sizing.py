"""`omnistock size`: the arithmetic from a busy hour to gateways, shards and cores."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from ray.scripts.scripts import start as ray_start

from omnistock.cli import main
from omnistock.cli.app import build_parser
from omnistock.loadtest import peakday
from omnistock.loadtest.sizing import (
    GATEWAY_SHARE_OF_WRITES,
    JOURNAL_MEASURED,
    MEASURED,
    Capacity,
    Demand,
    JournalCost,
    availability_core_ms,
    capacity_from_bench,
    close_core_ms,
    plan,
    plan_cluster,
    predict,
    predicted_core_ms_per_call,
    render,
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


def test_a_cluster_keeps_a_core_a_node_for_ray_and_a_spare_node() -> None:
    # As above: 2 gateways and 1 shard.
    demand = Demand(
        orders_per_hour=3600, lines_per_order=1, checks_per_order=100, stock_updates_per_second=0, spike=10
    )
    result = plan(demand, ROUND)
    assert (result.gateways, result.shards) == (2, 1)
    # 4-core nodes: 3 cores for omnistock, so one node carries the peak; a second is the spare.
    cluster = plan_cluster(result, 4)
    assert (cluster.nodes, cluster.gateways_per_node, cluster.shards_per_node) == (2, 2, 1)
    assert cluster.gateways == 4  # gateways on every node, the spare's too
    # 3-core nodes: a gateway and a shard a node, so 2 nodes for the peak and a spare.
    small = plan_cluster(result, 3)
    assert (small.nodes, small.gateways_per_node, small.shards_per_node) == (3, 1, 1)
    assert small.gateways == 3
    # The manifests run one gateway or one shard a pod, each with a spare pod.
    assert (cluster.worker_replicas, cluster.gateway_replicas) == (2, 3)
    assert any(c.startswith("ray start --head") and "--num-cpus 3" in c for c in cluster.commands)


def test_redis_masters_from_the_journal_cost_of_the_writes() -> None:
    journal = JournalCost("round figures", (1, 10), redis_cpu_ms=(0.5, 1.0), median_ms=(1.0, 2.0))
    assert journal.per_write_core_ms() == 0.5
    # Every write RPC is journaled: 50 Reserves, 40 Confirms, 10 Releases and 100 stock updates a second.
    demand = Demand(orders_per_hour=3600 * 4, checks_per_order=0, stock_updates_per_second=10, spike=10)
    writes = plan_cluster(plan(demand, ROUND), 8, journal)
    assert writes.journal_writes_per_second == pytest.approx(200)
    assert writes.redis_cores == pytest.approx(0.1)
    assert (writes.redis_masters, writes.redis_replicas) == (1, 1)  # one Redis and its replica
    # Ten times the writes: 1 core at 70% busy is 2 masters, and a Redis Cluster has at least 3.
    busier = plan_cluster(plan(dataclasses.replace(demand, spike=100), ROUND), 8, journal)
    assert busier.redis_cores == pytest.approx(1)
    assert (busier.redis_masters, busier.redis_replicas) == (3, 3)
    # A hundred times: 10 cores, 15 masters.
    biggest = plan_cluster(plan(dataclasses.replace(demand, spike=1000), ROUND), 8, journal)
    assert (biggest.redis_masters, biggest.redis_replicas) == (15, 15)


def test_a_redis_cluster_is_costed_with_its_masters_own_figures() -> None:
    # One Redis: 0.5 core-ms a write; a cluster's masters: 1.0 together (a call per journal
    # group, the replicas fed), 2.0 for a batch of 10.
    journal = JournalCost(
        "round figures",
        (1, 10),
        redis_cpu_ms=(0.5, 1.0),
        median_ms=(1.0, 2.0),
        cluster_masters_cpu_ms=(1.0, 2.0),
    )
    assert journal.per_write_core_ms(cluster=True) == 1.0
    assert journal.per_write_core_ms(cluster=True, batched=True) == 0.2
    demand = Demand(orders_per_hour=3600 * 4, checks_per_order=0, stock_updates_per_second=10, spike=500)
    # 10,000 writes a second need a cluster, planned at its own cost: 10 cores, 15 masters.
    busy = plan_cluster(plan(demand, ROUND), 8, journal)
    assert (busy.redis_core_ms_per_write, busy.redis_masters, busy.redis_replicas) == (1.0, 15, 15)
    # 20,000: 29 masters, more than the journal's 16 groups can use; at such rates the shards'
    # batches are large, and the plan counts on a batch of 10: 4 cores, 6 masters.
    busier = plan_cluster(plan(dataclasses.replace(demand, spike=1000), ROUND), 8, journal)
    assert busier.redis_core_ms_per_write == pytest.approx(0.2)
    assert busier.redis_cores == pytest.approx(4)
    assert busier.redis_masters == 6
    # Few writes: one Redis, at one Redis's cost.
    quiet = plan_cluster(plan(dataclasses.replace(demand, spike=10), ROUND), 8, journal)
    assert (quiet.redis_core_ms_per_write, quiet.redis_masters) == (0.5, 1)


def test_the_measured_journal_cost_grows_slower_than_the_batch() -> None:
    # A batch of 50 Reserves costs Redis less than 50 batches of one: what makes group commit pay.
    costs = dict(zip(JOURNAL_MEASURED.reserves_per_batch, JOURNAL_MEASURED.redis_cpu_ms, strict=True))
    assert costs[50] < 50 * costs[1] / 5
    assert JOURNAL_MEASURED.per_write_core_ms() == costs[1]


def test_node_cores_in_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["size", "--orders-per-hour", "20000", "--node-cores", "8"]) == 0
    table = capsys.readouterr().out
    assert "ray nodes      3  (2 for the peak, 1 spare for a node lost)" in table
    assert "workerGroupSpecs[shards].replicas: 3" in table
    assert "journal figures: scripts/bench_journal.py" in table
    assert main(["size", "--orders-per-hour", "20000", "--node-cores", "8", "--json"]) == 0
    cluster = json.loads(capsys.readouterr().out)["cluster"]
    assert (cluster["nodes"], cluster["shards"], cluster["redis_masters"]) == (3, 2, 1)
    assert main(["size", "--orders-per-hour", "20000", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["cluster"] is None
    for bad in ("2", "2.5", "many"):
        with pytest.raises(SystemExit):
            main(["size", "--orders-per-hour", "20000", "--node-cores", bad])
        assert "--node-cores" in capsys.readouterr().err


def test_the_printed_commands_are_ones_omnistock_and_ray_take() -> None:
    cluster = plan_cluster(plan(Demand(orders_per_hour=20000)), 8)
    ray_options = {name for param in ray_start.params for name in param.opts}
    placeholders = {"HEAD": "10.0.0.5", "URL": "redis://10.0.0.9:6379/0", "P": "50052", "M": "9465"}
    ran = []
    for line in cluster.commands:
        words = line.split("  # ", 1)[0].split()
        words = [w for w in words if "=" not in w or w.startswith("-")]  # an environment setting
        words = [placeholders.get(w, w).replace("HEAD:", "10.0.0.5:") for w in words]
        if words[0] == "ray":
            assert {w for w in words[2:] if w.startswith("-")} <= ray_options, line
        else:
            args = build_parser().parse_args(words[1:])
            ran.append(args.command)
            if args.command == "serve":
                assert (args.shards, args.gateways) == (cluster.shards, cluster.gateways_per_node)
    assert ran == ["serve", "gateway"]


# Round figures of the mix's call shapes: the service's core-ms per call of a call that finds
# it idle, beyond its share of the idle cost (gateway share 0.5).
SHAPE_COSTS = {
    "listing_48": 2.0,
    "product_page": 1.0,
    "pickup_search": 3.0,
    "reserve_sourced": 8.0,
    "stock_check": 4.0,
    "confirm": 2.0,
    "fulfil": 3.0,
    "adjust_stock": 10.0,
    "feed_update": 0.5,
}
IDLE_PARTS = {"gateway": 0.04, "shards": 0.02, "redis": 0.01, "ray": 0.03}
"""The idle service: 0.1 cores, 100 core-ms a second; each 1-caller run makes 100 calls a
second, so its share of the idle cost is 1 core-ms a call (0.4 of it in the gateway)."""


def scenario(key: str, cost: float, parts: dict[str, float], per_second: float = 100) -> dict[str, Any]:
    return {
        "key": key,
        "per_second": per_second,
        "calls": per_second * 10,
        "cpu_ms": {"load generator": 9.0, "echo server": 0.0, "omnistock": cost},
        "cpu_ms_parts": parts,
    }


def shape_report(
    costs: dict[str, float] = SHAPE_COSTS, alone: bool = True, idle: bool = True
) -> dict[str, Any]:
    """A bench report whose closed loops cost half of `costs` (saturated), whose 1-caller runs
    cost `costs` plus their share of the idle service; feed_update costs its figure."""
    scenarios = [{"key": "reserve_1", "per_second": 400, "calls": 4000, "cpu_ms": {"omnistock": 5.0}}]
    for key, cost in costs.items():
        half = cost if key == "feed_update" else cost / 2  # a feed update has one figure
        scenarios.append(
            scenario(key, half, {"gateway": half / 2, "shards": half / 4, "redis": half / 8, "ray": half / 8})
        )
        if alone and key != "feed_update":
            per_call_idle = {part: cores * 1000 / 100 for part, cores in IDLE_PARTS.items()}
            parts = {"gateway": cost / 2, "shards": cost / 4, "redis": cost / 8, "ray": cost / 8}
            scenarios.append(
                scenario(f"{key}_alone", cost + 1.0, {p: parts[p] + per_call_idle[p] for p in parts})
            )
    report: dict[str, Any] = {"machine": {"cpus": 4}, "scenarios": scenarios}
    if idle:
        report["idle"] = {"seconds": 10.0, "cores": 0.1, "cores_parts": IDLE_PARTS}
    return report


def test_predicted_cost_is_the_idle_service_and_each_call_finding_it_idle() -> None:
    report = shape_report()
    # 50 Confirms a second: the idle service's 100 core-ms a second, and 2 core-ms each
    # (3 measured alone, less its 1 core-ms share of the idle cost); the load generator's
    # 9 core-ms and the saturated figure (1 core-ms) never count.
    assert predicted_core_ms_per_call({"Confirm": 50}, report) == pytest.approx((100 + 50 * 2.0) / 50)
    # 100 Reserves at 8 and 300 Confirms at 2: (100 + 800 + 600) / 400, made of its parts.
    mix = predict({"Reserve": 100, "Confirm": 300}, report)
    assert mix.core_ms_per_call == pytest.approx(3.75)
    assert mix.idle_core_ms == pytest.approx(0.25)
    assert mix.by_shape == pytest.approx({"reserve_sourced": 2.0, "confirm": 1.5})
    # The busier the service, the smaller the idle share of a call.
    assert predicted_core_ms_per_call({"Reserve": 100, "Confirm": 300}, report) > predicted_core_ms_per_call(
        {"Reserve": 1000, "Confirm": 3000}, report
    )
    # A Release is costed as a Confirm, a Return as a Fulfil, a store count as 5 batches of 10.
    assert predicted_core_ms_per_call({"Release": 1, "Return": 1}, report) == pytest.approx((100 + 5) / 2)
    assert predicted_core_ms_per_call({"SetStock": 10}, report) == pytest.approx((100 + 500) / 10)
    # GetAvailability: one feed read per feed call, the rest listing and product pages 35:50;
    # a feed update keeps its own figure (a difference of two windows, with no 1-caller run).
    mixed = predicted_core_ms_per_call(
        {"GetAvailability": 95, "AdjustStock": 10, "WatchAvailability": 20}, report
    )
    shopper = (35 * 2.0 + 50 * 1.0) / 85
    assert mixed == pytest.approx((100 + 85 * shopper + 10 * 4.0 + 10 * 10.0 + 20 * 0.5) / 125)


def test_a_call_cheaper_than_its_share_of_the_idle_cost_costs_nothing_more() -> None:
    report = shape_report()
    report["scenarios"] = [s for s in report["scenarios"] if s["key"] != "product_page_alone"]
    # 0.6 core-ms a call at 200 calls a second: its share of the idle cost is 0.5, 0.1 more.
    report["scenarios"].append(scenario("product_page_alone", 0.6, {"gateway": 0.6}, per_second=200))
    rates = {"GetAvailability": 50}  # 50 x 35/85 listing pages, 50 x 50/85 product pages
    listing, product = 50 * 35 / 85, 50 * 50 / 85
    assert predict(rates, report).by_shape["product_page"] == pytest.approx(product * 0.1 / 50)
    # At 100 calls a second its share is 1 core-ms: the call is floored at 0, not below.
    report["scenarios"][-1]["per_second"] = 100
    assert predict(rates, report).by_shape["product_page"] == 0
    assert predicted_core_ms_per_call(rates, report) == pytest.approx((100 + listing * 2.0) / 50)


def test_predicted_cost_refuses_a_name_or_a_report_it_has_no_figure_for() -> None:
    with pytest.raises(ValueError, match=r"no bench figure for Locust request 'GetAvailability listing'"):
        predicted_core_ms_per_call({"Reserve": 1, "GetAvailability listing": 1}, shape_report())
    without_fulfil = {key: cost for key, cost in SHAPE_COSTS.items() if key != "fulfil"}
    with pytest.raises(ValueError, match=r"no service CPU with one caller for fulfil \(fulfil_alone\)"):
        predicted_core_ms_per_call({"Fulfil": 1}, shape_report(without_fulfil))
    # Without it, the other calls are still costed.
    assert predicted_core_ms_per_call({"Reserve": 1}, shape_report(without_fulfil)) == pytest.approx(108)
    # A report of the closed loops only, or without the idle service, is refused: run it in full.
    for older in (shape_report(alone=False), shape_report(idle=False)):
        with pytest.raises(ValueError, match=r"run `omnistock bench --json` in full"):
            predicted_core_ms_per_call({"Reserve": 1}, older)
    with pytest.raises(ValueError, match="no idle service"):
        predicted_core_ms_per_call({"Reserve": 1}, shape_report(idle=False))
    without_feed = {key: cost for key, cost in SHAPE_COSTS.items() if key != "feed_update"}
    with pytest.raises(ValueError, match="with one caller for feed_update:"):
        predicted_core_ms_per_call({"WatchAvailability": 1}, shape_report(without_feed))
    with pytest.raises(ValueError, match="every rate is 0"):
        predicted_core_ms_per_call({"Reserve": 0}, shape_report())


def test_size_costs_the_mix_by_its_call_shapes_when_the_bench_measured_them() -> None:
    capacity = capacity_from_bench(shape_report(), "bench.json")
    # Each call as it costs when it finds the service idle, beyond its share of the idle cost.
    assert capacity.shapes == pytest.approx(SHAPE_COSTS)
    assert capacity.gateway_shares["confirm"] == pytest.approx(0.5)
    assert "call shapes" in capacity.source and "added once" in capacity.source
    assert (capacity.idle_cores, capacity.idle_gateway_cores) == (0.1, 0.04)
    demand = Demand(orders_per_hour=3600, checks_per_order=20, stock_updates_per_second=10, spike=10)
    result = plan(demand, capacity)
    by_rpc = {r.rpc: r for r in result.rpcs}
    assert list(by_rpc) == [
        "GetAvailability",
        "FindPickupStores",
        "Reserve",
        "Confirm",
        "Release",
        "Fulfil",
        "AdjustStock",
    ]
    # 1 order/s, 20 checks an order: 17 pages (35:50 listing and product) and 3 pickup searches.
    assert by_rpc["GetAvailability"].normal_per_second == pytest.approx(17)
    assert by_rpc["GetAvailability"].core_ms == pytest.approx((35 * 2.0 + 50 * 1.0) / 85)
    assert by_rpc["FindPickupStores"].normal_per_second == pytest.approx(3)
    assert by_rpc["Reserve"].core_ms == 8.0 and by_rpc["Release"].core_ms == 2.0
    assert by_rpc["Fulfil"].peak_per_second == pytest.approx(10)
    assert by_rpc["AdjustStock"].core_ms == pytest.approx(1.0)  # one delta of a batch of 10
    # The measured gateway share splits each row: 10 Reserves/s... x 8 core-ms, half in the gateway.
    reserve = by_rpc["Reserve"]
    assert reserve.gateway_cores == pytest.approx(reserve.peak_per_second * 8 / 1000 / 2)
    # The idle service, once: its gateway part to the gateways, the rest to the shards.
    assert (result.idle_gateway_cores, result.idle_shard_cores) == pytest.approx((0.04, 0.06))
    assert result.gateway_cores == pytest.approx(sum(r.gateway_cores for r in result.rpcs) + 0.04)
    assert result.shard_cores == pytest.approx(sum(r.shard_cores for r in result.rpcs) + 0.06)
    assert "idle service" in render(result) and "added once" in render(result)
    # A report of the closed loops only costs the calls saturated, with no idle service.
    saturated = capacity_from_bench(shape_report(alone=False, idle=False), "bench.json")
    assert saturated.shapes == pytest.approx(
        {key: cost if key == "feed_update" else cost / 2 for key, cost in SHAPE_COSTS.items()}
    )
    assert saturated.idle_cores == 0 and "idle service" not in render(plan(demand, saturated))
    assert "a lower bound" in saturated.source
    # A report with only a part of the mix keeps the older model, whole.
    partial = capacity_from_bench(shape_report({"confirm": 2.0}), "bench.json")
    assert partial.shapes == {}
    assert [r.rpc for r in plan(demand, partial).rpcs] == [
        "GetAvailability",
        "Reserve",
        "Confirm",
        "Release",
        "AdjustStock",
    ]
    # The journal's writes leave out both reads.
    cluster = plan_cluster(result, 8)
    writes = sum(
        r.peak_per_second for r in result.rpcs if r.rpc not in ("GetAvailability", "FindPickupStores")
    )
    assert cluster.journal_writes_per_second == pytest.approx(writes)


def test_size_and_the_loadtests_prediction_agree_for_the_same_rates() -> None:
    report = shape_report()
    # No stock updates: size costs one as a delta, the loadtest an AdjustStock call and its read.
    demand = Demand(orders_per_hour=7200, checks_per_order=25, stock_updates_per_second=0, spike=3)
    result = plan(demand, capacity_from_bench(report, "bench.json"))
    rates = {r.rpc: r.peak_per_second for r in result.rpcs}
    cores = result.gateway_cores + result.shard_cores
    assert cores * 1000 / sum(rates.values()) == pytest.approx(predicted_core_ms_per_call(rates, report))


def test_the_loadtest_shows_the_prediction_and_its_idle_part(tmp_path: Path) -> None:
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps(shape_report()))
    cpu = peakday.CpuPerCall(10, 4000, 400, 3, 1.0, 4.5, {}, rates={"Reserve": 100, "Confirm": 300})
    peakday.predict(cpu, str(bench))
    assert (cpu.predicted_core_ms, cpu.predicted_idle_core_ms, cpu.measured_over_predicted) == (
        3.75,
        0.25,
        1.2,
    )
    shown = "\n".join(peakday.cpu_lines(cpu))
    assert "measured 4.500 vs predicted 3.750 core-ms (1.20x)" in shown
    assert "the idle service 0.250 + the calls finding it idle 3.500 core-ms" in shown
    # A bench report of the closed loops only says what to run instead.
    bench.write_text(json.dumps(shape_report(alone=False)))
    older = peakday.CpuPerCall(10, 4000, 400, 3, 1.0, 4.5, {}, rates={"Reserve": 100})
    peakday.predict(older, str(bench))
    assert older.predicted_core_ms is None and "in full" in older.prediction_note
