"""`omnistock loadtest` end to end against a real service: a minute of every Locust scenario
at a low rate (two Locust workers, the service started by the load test), no failed call,
nothing oversold, every due hold expired, the CPU per call of the load generator and of the
service; and a spike this machine cannot carry, which the verdict fails on its rates.

A smoke test of the scenarios and the verdict, not of the figures (docs/peak-day.md has those).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from omnistock.loadtest import peak, peakday

pytestmark = pytest.mark.slow

RPCS = {
    "GetAvailability",
    "FindPickupStores",
    "Reserve",
    "Confirm",
    "Release",
    "Fulfil",
    "AdjustStock",
    "WatchAvailability",
}
"""Called in any minute at this rate (Return and SetStock are rarer: a few per minute)."""


async def run_loadtest(tmp_path: Path, *argv: str) -> tuple[int | None, dict[str, Any], str]:
    """(exit status, verdict, stderr) of `omnistock loadtest --headless --json` with argv."""
    command = ["-m", "omnistock.cli", "loadtest", "--headless", "--json", "--out", str(tmp_path), *argv]
    # Awaited, not run: a service under test may live in this process's event loop.
    process = await asyncio.create_subprocess_exec(
        sys.executable, *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=300)
    stdout, stderr = out.decode(), err.decode()
    tail = ""
    for log in sorted(tmp_path.glob("locust*.log")):
        tail += f"{log.name}: {log.read_text(errors='replace')[-1500:]}\n"
    assert process.returncode in (0, 1), f"{stdout[-4000:]}\n{stderr[-3000:]}\n{tail}"
    return process.returncode, json.loads(stdout), stderr


def rules_of(verdict: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(rule["rule"], rule["subject"]): rule for rule in verdict["rules"]}


async def test_a_minute_of_every_scenario_without_errors_or_oversell(tmp_path: Path) -> None:
    returncode, verdict, stderr = await run_loadtest(
        tmp_path,
        *("--processes", "2", "--shards", "1", "--partitions", "64"),
        *("--orders-per-second", "1", "--spike", "2", "--minutes", "1", "--ramp-minutes", "0.25"),
    )
    # Every rule is in the JSON with what it measured and required; the exit status follows them.
    rules = rules_of(verdict)
    assert all({"measured", "required", "comparison", "met"} <= set(rule) for rule in rules.values())
    assert verdict["passed"] == all(rule["met"] for rule in rules.values())
    assert returncode == (0 if verdict["passed"] else 1)
    assert {("rate (achieved / target)", s) for s in (peak.SHOPPER, peak.CHECKOUT)} <= set(rules)
    assert ("p99 ms", "Reserve") in rules and rules["p99 ms", "Reserve"]["required"] == 100
    for must in ("errors", "oversold units", "available below zero", "conservation problems"):
        assert next(r for (name, _), r in rules.items() if name == must)["met"], must

    # The CPU per call while the spike was held, by the kernel's counters.
    cpu = verdict["cpu"]
    assert cpu["load_generator_processes"] == 3  # the master and two workers
    assert cpu["calls"] > 0 and cpu["window_seconds"] >= 20
    assert cpu["load_generator_core_ms"] > 0
    assert cpu["service_core_ms"] > 0 and set(cpu["service_by_role"]) == set(peakday.SERVICE_ROLES)
    assert cpu["service_by_role"]["gateway"] > 0 and cpu["service_by_role"]["shards"] > 0
    assert cpu["service_core_ms"] == pytest.approx(sum(cpu["service_by_role"].values()), abs=0.01)
    assert cpu["rates"]["Reserve"] > 0

    assert verdict["errors"] == 0 and verdict["locust_exit_code"] == 0
    assert verdict["conservation_ok"] and verdict["oversold_units"] == 0
    assert verdict["negative_available_positions"] == 0
    assert verdict["positions_checked"] > 20_000  # the demo catalog, every position read
    assert verdict["expiring_checked"] > 0 and verdict["expiring_still_open"] == 0

    rpcs = {r["name"]: r for r in verdict["rpcs"]}
    assert set(rpcs) >= RPCS
    assert all(r["errors"] == 0 and r["calls"] > 0 and r["p50_ms"] <= r["p99_ms"] for r in rpcs.values())

    scenarios = {s["scenario"]: s for s in verdict["scenarios"]}
    assert list(scenarios) == list(peak.SCENARIOS)
    for name, scenario in scenarios.items():
        assert scenario["achieved_per_second"] > 0, (name, scenario)
    # At this rate the machine keeps up: the checks and orders run near their targets.
    assert scenarios[peak.SHOPPER]["ratio"] > 0.5 and scenarios[peak.CHECKOUT]["ratio"] > 0.5
    # Every worker's share is merged: the checkouts of one hand orders to the associates of it.
    assert scenarios[peak.CHECKOUT]["outcomes"].get("confirm", 0) > 0
    assert scenarios[peak.ASSOCIATE]["outcomes"].get("fulfilled (checkout)", 0) > 0
    assert scenarios[peak.MARKETPLACE]["outcomes"].get("update", 0) > 0

    for made in ("peak_stats.csv", "peak_stats_history.csv", "report.html", "verdict.json", "scenarios.json"):
        assert (tmp_path / made).stat().st_size > 0, made
    # A person reads the progress on stderr; stdout is only the JSON.
    assert "running Locust for 1 min" in stderr


async def test_a_spike_the_machine_cannot_carry_fails_on_its_rates(make_service: Any, tmp_path: Path) -> None:
    service = await make_service()  # empty: the load test loads the demo network into it
    # 40 orders a second and 30 checks each: 1,200 availability checks a second, for 15 s.
    returncode, verdict, _ = await run_loadtest(
        tmp_path,
        *("--target", f"127.0.0.1:{service.port}", "--processes", "2"),
        *("--orders-per-second", "40", "--spike", "1", "--minutes", "0.25", "--ramp-minutes", "0"),
    )
    assert returncode == 1 and not verdict["passed"]
    shopper = rules_of(verdict)["rate (achieved / target)", peak.SHOPPER]
    assert not shopper["met"] and shopper["required"] == peakday.MIN_RATE_RATIO
    assert shopper["measured"] < peakday.MIN_RATE_RATIO
    # With the service elsewhere its CPU is not measurable; the load generator's is.
    assert verdict["cpu"]["service_core_ms"] is None and "--target" in verdict["cpu"]["service_note"]
    assert verdict["cpu"]["load_generator_core_ms"] > 0
