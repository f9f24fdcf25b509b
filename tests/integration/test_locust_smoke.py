"""`omnistock loadtest` end to end at a low rate against a real service: a minute of every
Locust scenario, no failed call, nothing oversold, every due hold expired.

A smoke test of the scenarios and the verdict, not of the figures (docs/peak-day.md has those).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from omnistock.loadtest import peak

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


async def test_a_minute_of_every_scenario_without_errors_or_oversell(
    make_service: Any, tmp_path: Path
) -> None:
    service = await make_service()  # empty: the load test loads the demo network into it
    argv = [
        "-m",
        "omnistock.cli",
        "loadtest",
        "--target",
        f"127.0.0.1:{service.port}",
        "--headless",
        "--json",
    ]
    argv += ["--out", str(tmp_path), "--orders-per-second", "1", "--spike", "2", "--minutes", "1"]
    argv += ["--ramp-minutes", "0.25"]
    # Awaited, not run: the service under test lives in this process's event loop.
    process = await asyncio.create_subprocess_exec(
        sys.executable, *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=300)
    stdout, stderr = out.decode(), err.decode()
    log = tmp_path / "locust.log"
    tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
    assert process.returncode == 0, f"{stdout[-4000:]}\n{stderr[-3000:]}\n{tail}"
    verdict = json.loads(stdout)

    assert verdict["passed"] and verdict["errors"] == 0 and verdict["locust_exit_code"] == 0
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
    assert scenarios[peak.CHECKOUT]["outcomes"].get("confirm", 0) > 0
    assert scenarios[peak.ASSOCIATE]["outcomes"].get("fulfilled (checkout)", 0) > 0
    assert scenarios[peak.MARKETPLACE]["outcomes"].get("update", 0) > 0

    for made in ("peak_stats.csv", "peak_stats_history.csv", "report.html", "verdict.json", "scenarios.json"):
        assert (tmp_path / made).stat().st_size > 0, made
    # A person reads the progress on stderr; stdout is only the JSON.
    assert "running Locust for 1 min" in stderr
