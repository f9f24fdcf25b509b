"""`omnistock bench` end to end: its own echo server and service, every scenario, no errors.

A smoke test of the harness, not of the figures (they belong to docs/performance.md).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from omnistock.gateway.runtime.event_loop import loop_name
from omnistock.loadtest.bench import ONLY_KEYS, render
from omnistock.loadtest.sizing import Demand, capacity_from_bench, plan, predict, predicted_core_ms_per_call

pytestmark = pytest.mark.slow

MIX_SHAPES = (
    "listing_48",
    "product_page",
    "pickup_search",
    "reserve_sourced",
    "stock_check",
    "adjust_stock",
    "confirm",
    "fulfil",
    "feed_update",
)
"""The peak-day mix's call shapes, written out here: the bench must measure each of these."""
ALONE = {f"{key}_alone" for key in MIX_SHAPES if key != "feed_update"}
"""Each call shape of the peak-day mix with one caller (feed_update has none)."""
SCENARIOS = {
    "echo",
    "echo_end",
    "reserve_1",
    "reserve_5",
    "peer_reserve_1",
    "peer_reserve_5",
    "availability_1",
    "availability_200",
    "hot_sku",
    "checkout",
    *MIX_SHAPES,
    "reserve_1_quarter_rate",
    "reserve_1_half_rate",
    "reserve_1_at_50",
    "view_freshness",
}
SCENARIOS |= ALONE
BROUGHT_ALONG = {"echo_end", "reserve_1_quarter_rate", "reserve_1_half_rate", "reserve_1_at_50", *ALONE}
"""Scenarios --only cannot name: they come with others (echo, reserve_1, a shape of the mix) or
with --rates."""


def test_every_scenario_runs_without_errors() -> None:
    argv = [sys.executable, "-m", "omnistock.loadtest.bench", "--seconds", "1", "--warmup", "0.3"]
    argv += ["--concurrency", "4", "--skus", "200", "--shards", "2", "--catalog", "5000", "--rates", "50"]
    argv += ["--json"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    report = json.loads(done.stdout)
    by_key = {s["key"]: s for s in report["scenarios"]}
    assert set(by_key) == SCENARIOS
    assert set(ONLY_KEYS) == SCENARIOS - BROUGHT_ALONG  # --only can name every other one
    for key, scenario in by_key.items():
        assert scenario["calls"] > 0 and scenario["errors"] == 0, (key, scenario)
        assert 0 < scenario["p50_ms"] <= scenario["p99_ms"] <= scenario["max_ms"], (key, scenario)
    # What each call cost in CPU, by role, over every timed scenario (not the view's probe).
    for key, scenario in by_key.items():
        if key != "view_freshness":
            assert set(scenario["cpu_ms"]) == {"load generator", "echo server", "omnistock", "peer"}, key
            assert scenario["cpu_ms"]["load generator"] > 0, key
    assert by_key["echo"]["cpu_ms"]["echo server"] > by_key["echo"]["cpu_ms"]["omnistock"]
    # The Redis+Lua peer's Reserves are its processes' work, not omnistock's.
    for key in ("peer_reserve_1", "peer_reserve_5"):
        assert by_key[key]["cpu_ms"]["peer"] > by_key[key]["cpu_ms"]["omnistock"], key
    assert by_key["reserve_1"]["cpu_ms"]["omnistock"] > by_key["reserve_1"]["cpu_ms"]["echo server"]
    # Ratios are over the mean of the two echo runs (start and end).
    assert (by_key["echo"]["ratio"] + by_key["echo_end"]["ratio"]) / 2 == pytest.approx(1.0, abs=0.002)
    assert by_key["reserve_1"]["ratio"] > 0
    assert by_key["checkout"]["grpc_per_second"] == pytest.approx(2 * by_key["checkout"]["per_second"])
    judged = {t["what"]: t for t in report["targets"]}
    assert set(judged) >= {
        "1-line Reserve, CPU per call",
        "5-line Reserve, CPU per call",
        "1-SKU availability, CPU per call",
        "Reserve p99 at a quarter of the rate",
        "hot SKU Reserve",
    }
    assert judged["1-line Reserve, CPU per call"]["met"] is not None  # measured against the peer
    assert report["settings"]["positions"] == 201 * 8  # at 4 DCs and 4 pickup stores
    assert by_key["reserve_1_at_50"]["per_second"] == pytest.approx(50, rel=0.2)  # the rate asked
    catalog = report["catalog"]
    assert (catalog["positions"], catalog["nodes"]) == (5000, 50)
    assert catalog["load_seconds"] > 0 and catalog["recovery_seconds"] > 0
    assert catalog["resident_by_process"]["ray::Shard"] > 0
    assert catalog["resident_bytes"] == sum(catalog["resident_by_process"].values())
    assert catalog["resident_before_bytes"] > 0
    assert {"LoadStock of 10M positions", "memory with 10M positions", "shard restart"} <= {
        t["what"] for t in report["targets"]
    }
    assert report["command"].startswith("omnistock bench --seconds 1")
    # A person reads the progress on stderr; stdout is only the JSON.
    assert "loading 1,608 positions" in done.stderr
    # The ceiling runs on the event loop the gateway runs on (uvloop carries more calls).
    assert report["machine"]["event_loop"] == loop_name() == "uvloop"
    assert f"with {loop_name()}" in done.stderr


def test_every_call_shape_of_the_peak_day_mix_is_measured_and_costs_a_profile() -> None:
    argv = [sys.executable, "-m", "omnistock.loadtest.bench", "--seconds", "1", "--warmup", "0.5"]
    argv += ["--concurrency", "4", "--skus", "200", "--shards", "2", "--only", ",".join(MIX_SHAPES), "--json"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    report = json.loads(done.stdout)
    by_key = {s["key"]: s for s in report["scenarios"]}
    assert set(by_key) == {"echo", "echo_end", *MIX_SHAPES, *(f"{k}_alone" for k in MIX_SHAPES[:-1])}
    # Each shape again with one caller, right after its closed loop, for half the seconds.
    keys = [s["key"] for s in report["scenarios"]]
    for key in MIX_SHAPES[:-1]:
        alone = by_key[f"{key}_alone"]
        assert keys.index(f"{key}_alone") == keys.index(key) + 1, keys
        assert alone["concurrency"] == 1 and alone["seconds"] == 0.5, alone
        assert alone["calls"] > 0 and alone["errors"] == 0, alone
        assert alone["cpu_ms"]["omnistock"] > 0, key
        assert set(alone["cpu_ms_parts"]) == {"gateway", "shards", "redis", "ray"}, key
    # The service idle, before the scenarios: Ray, the pollers and the view's sync.
    idle = report["idle"]
    assert idle["seconds"] == 1 and idle["cores"] > 0, idle
    assert set(idle["cores_parts"]) == {"gateway", "shards", "redis", "ray"}
    assert sum(idle["cores_parts"].values()) == pytest.approx(idle["cores"], abs=0.002)
    for key in MIX_SHAPES:
        scenario = by_key[key]
        assert scenario["calls"] > 0 and scenario["errors"] == 0, (key, scenario)
        assert scenario["cpu_ms"]["omnistock"] > 0, key
        assert set(scenario["cpu_ms_parts"]) == {"gateway", "shards", "redis", "ray"}, key
        if key != "feed_update":  # a difference of two windows, not one window's whole
            assert sum(scenario["cpu_ms_parts"].values()) == pytest.approx(
                scenario["cpu_ms"]["omnistock"], abs=0.01
            ), key
    # Reads are answered by the gateway; every write goes through a shard to the journal.
    for key in ("listing_48", "product_page"):
        assert by_key[key]["cpu_ms_parts"]["gateway"] > by_key[key]["cpu_ms_parts"]["shards"], key
    for key in ("reserve_sourced", "confirm", "fulfil", "adjust_stock"):
        assert by_key[key]["cpu_ms_parts"]["shards"] > 0 and by_key[key]["cpu_ms_parts"]["redis"] > 0, key
    assert by_key["listing_48"]["skus_each"] == 48
    # The rendered table shows the parts too.
    assert "omnistock CPU ms per call, by part" in render(report)
    assert "cores over 1 s with no call in flight" in render(report)
    # The same figures cost a mix of Locust's request names and an `omnistock size` plan.
    rates = {
        "GetAvailability": 100.0,
        "FindPickupStores": 10.0,
        "Reserve": 5.0,
        "Confirm": 4.0,
        "Fulfil": 4.0,
    }
    prediction = predict(rates, report)
    assert prediction.core_ms_per_call > prediction.idle_core_ms > 0
    assert prediction.core_ms_per_call == predicted_core_ms_per_call(rates, report)
    capacity = capacity_from_bench(report | {"machine": {"cpus": 2}}, "bench.json")
    assert set(capacity.shapes) == set(MIX_SHAPES)
    assert capacity.idle_cores == idle["cores"] and "added once" in capacity.source
    rows = {r.rpc for r in plan(Demand(orders_per_hour=3600), capacity).rpcs}
    assert {"FindPickupStores", "Fulfil"} <= rows
