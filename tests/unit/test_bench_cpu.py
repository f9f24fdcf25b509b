"""The bench's CPU figures: a process's time over a window, by role, per call."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import asdict

import psutil
import pytest

from omnistock.loadtest.bench import (
    CpuMeter,
    CpuSpent,
    Idle,
    Measurement,
    cpu_ms_per_call,
    cpu_total,
    idle_lines,
    idle_of,
    service_part,
)

SPIN = "import time\nend = time.process_time() + {seconds}\nwhile time.process_time() < end: pass\n"
SLEEP = "import time\ntime.sleep({seconds})\n"


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for child in started:
        child.kill()
        child.wait()


def python(children: list[subprocess.Popen[bytes]], code: str) -> psutil.Process:
    child = subprocess.Popen([sys.executable, "-c", code])
    children.append(child)
    return psutil.Process(child.pid)


async def test_a_busy_process_is_counted_in_its_role_and_an_idle_one_is_not(
    children: list[subprocess.Popen[bytes]],
) -> None:
    busy = python(children, SPIN.format(seconds=5))
    idle = python(children, SLEEP.format(seconds=5))
    meter = CpuMeter({"server": lambda: [busy], "other": lambda: [idle]})
    spent = await meter.over(0.1, 0.6)
    assert set(spent) == {"server", "other"}
    # On a shared 2-core machine the spinner gets most of a core, the sleeper nothing.
    assert 0.2 < spent["server"] <= 0.7
    assert spent["other"] < 0.05


def test_a_process_gone_by_the_end_of_the_window_is_left_out() -> None:
    before = {"omnistock": {1: 10.0, 2: 5.0}, "load generator": {3: 1.0}}
    after = {"omnistock": {1: 10.5, 4: 100.0}, "load generator": {3: 1.25}}
    assert CpuMeter.spent(before, after) == {"omnistock": 0.5, "load generator": 0.25}


def measurement(key: str, calls: int, calls_each: int = 1) -> Measurement:
    return Measurement(key, key, 32, 10.0, calls, 0, calls / 10, 1.0, 2.0, 3.0, calls_each=calls_each)


def test_cpu_is_per_grpc_call_and_whole_only_with_every_process_measured() -> None:
    checkout = measurement("checkout", 1_000, calls_each=2)  # a Reserve and a Confirm each
    assert cpu_ms_per_call({"omnistock": 1.0, "load generator": 0.5}, checkout) == {
        "omnistock": 0.5,
        "load generator": 0.25,
    }
    assert cpu_ms_per_call({"omnistock": 1.0}, measurement("reserve_1", 0)) == {}
    whole = {"key": "reserve_1", "cpu_ms": {"omnistock": 0.5, "load generator": 0.25, "echo server": 0.0}}
    assert cpu_total(whole) == 0.75
    # With --target omnistock's processes are not the bench's to read: only echo is whole.
    assert cpu_total({"key": "reserve_1", "cpu_ms": {"load generator": 0.25, "echo server": 0.0}}) is None
    assert cpu_total({"key": "echo_end", "cpu_ms": {"load generator": 0.2, "echo server": 0.3}}) == 0.5
    assert cpu_total({"key": "view_freshness", "cpu_ms": {}}) is None


def test_the_meter_survives_a_role_whose_process_is_gone(children: list[subprocess.Popen[bytes]]) -> None:
    gone = python(children, SLEEP.format(seconds=0))
    children[-1].wait()

    def members() -> list[psutil.Process]:
        return [psutil.Process(gone.pid)]  # raises NoSuchProcess

    assert asyncio.run(CpuMeter({"omnistock": members}).over(0, 0.01)) == {"omnistock": 0}


@pytest.mark.parametrize(
    ("name", "cmdline", "is_root", "part"),
    [
        ("python", ["/venv/bin/python", "-m", "omnistock.cli", "serve", "--port", "1"], True, "gateway"),
        (
            "python",
            ["/venv/bin/python", "-m", "omnistock.cli", "gateway", "--log-level", "warning"],
            False,
            "gateway",
        ),
        ("omnistock", ["/venv/bin/omnistock", "gateway"], False, "gateway"),
        ("ray::Shard", ["ray::Shard"], False, "shards"),
        ("ray::Shard.appl", ["ray::Shard.apply"], False, "shards"),
        ("ray::IDLE", ["ray::IDLE"], False, "ray"),
        ("raylet", ["/venv/lib/ray/core/src/ray/raylet/raylet", "--node_ip_address=127.0.0.1"], False, "ray"),
        ("gcs_server", ["/venv/lib/ray/core/src/ray/gcs/gcs_server", "--gcs_server_port=1"], False, "ray"),
        ("python", ["/venv/bin/python", "-u", "/venv/lib/ray/dashboard/agent.py"], False, "ray"),
        ("valkey-server", ["/venv/bin/valkey-server *:20001"], False, "redis"),
        ("redis-server", ["redis-server", "/data/redis.conf"], False, "redis"),
        (
            "python",
            ["/venv/bin/python", "-c", "...", "1", "watchdog", "/usr/bin/redis-server", "x"],
            False,
            "redis",
        ),
    ],
)
def test_each_process_of_the_service_is_one_part(
    name: str, cmdline: list[str], is_root: bool, part: str
) -> None:
    assert service_part(name, cmdline, is_root) == part


def test_the_service_cpu_is_also_counted_by_part(children: list[subprocess.Popen[bytes]]) -> None:
    busy = python(children, SPIN.format(seconds=5))
    idle = python(children, SLEEP.format(seconds=5))
    parts = {busy.pid: "shards", idle.pid: "redis"}
    meter = CpuMeter(
        {"omnistock": lambda: [busy, idle], "load generator": lambda: [idle]},
        ("omnistock", lambda p: parts[p.pid]),
    )
    spent = asyncio.run(meter.window(0.1, 0.5))
    assert set(spent.parts) == {"gateway", "shards", "redis", "ray"}
    assert spent.parts["shards"] > 0.15 and spent.parts["redis"] < 0.05
    assert sum(spent.parts.values()) == pytest.approx(spent.roles["omnistock"])
    # Only the parted role is split: a meter without one has no parts.
    assert asyncio.run(CpuMeter({"omnistock": lambda: [busy]}).window(0, 0.05)).parts == {}


def test_the_idle_service_in_cores_and_in_one_line_of_the_report() -> None:
    parts = {"gateway": 0.4, "shards": 0.3, "redis": 0.0, "ray": 0.3}
    idle = idle_of(CpuSpent({"omnistock": 1.0, "load generator": 0.2}, parts), 10.0)
    # CPU seconds over 10 s with no call in flight: cores, the service's only, and by part.
    assert idle == Idle(10.0, 0.1, {"gateway": 0.04, "shards": 0.03, "redis": 0.0, "ray": 0.03})
    assert idle_lines(asdict(idle)) == [
        "idle: omnistock 0.100 cores over 10 s with no call in flight"
        " (gateway 0.040, shards 0.030, redis 0.000, ray 0.030)"
    ]
    assert idle_lines(None) == []  # --target: the service's processes are elsewhere
