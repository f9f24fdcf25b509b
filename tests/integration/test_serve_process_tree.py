"""`omnistock serve` killed with SIGKILL leaves no process of it behind (its redis-server, Ray's
processes, the shard actors, the other gateways), and a start on the same data dir afterwards
finds its data and runs one redis-server; a start while another serve holds the dir is refused."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest

from omnistock.cli.common import EXIT_REFUSED
from omnistock.client import OmnistockClient, level, line
from omnistock.gateway.runtime.embedded_redis import SERVER_NAMES, choose_server, free_port
from tests.integration.conftest import NODES
from tests.integration.test_crash_restart import kill_group, wait_exit, wait_serving

pytestmark = pytest.mark.slow
OMNISTOCK = str(Path(sys.executable).parent / "omnistock")
MARKER = "OMNISTOCK_TEST_MARKER"
GONE_WITHIN = 90.0
"""A generous bound: Ray's own agents (DashboardAgent, RuntimeEnvAgent) end once they see their
raylet gone, which on a loaded 2-core machine has taken over 30 s; a process left for good still
fails."""


def start_serve(
    data_dir: Path, port: int, marker: str, log: Path, gateways: int = 1
) -> subprocess.Popen[bytes]:
    args = [OMNISTOCK, "serve", "--port", str(port), "--metrics-port", "0", "--shards", "1"]
    args += ["--gateways", str(gateways), "--data-dir", str(data_dir)]
    env = {**os.environ, "RAY_ADDRESS": "", MARKER: marker}
    with log.open("ab") as out:
        return subprocess.Popen(args, stdout=out, stderr=out, env=env, start_new_session=True)


async def wait_banner(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    await wait_serving(port, process, log)
    deadline = time.monotonic() + 90
    while "omnistock is serving" not in log.read_text():  # once every gateway serves
        assert process.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        await asyncio.sleep(0.2)


def of_the_service(marker: str, data_dir: Path) -> dict[int, str]:
    """pid: command line of every running process that carries `marker` in its environment
    (inherited from serve) or works in `data_dir` (redis-server, which overwrites its
    environment and command line with its title, works in its --dir)."""
    inside = os.path.realpath(data_dir)
    found = {}
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if process.pid == os.getpid() or process.status() == psutil.STATUS_ZOMBIE:
                continue
            if process.environ().get(MARKER) == marker or process.cwd().startswith(inside):
                found[process.pid] = " ".join(process.cmdline())[:120] or process.name()
    return found


def redis_servers_on(data_dir: Path) -> list[int]:
    here = os.path.realpath(data_dir)
    found = []
    for process in psutil.process_iter(["name"]):
        with contextlib.suppress(psutil.Error, OSError):
            if (
                (process.info["name"] or "").startswith(SERVER_NAMES)
                and process.status() != psutil.STATUS_ZOMBIE
                and process.cwd() == here
            ):
                found.append(process.pid)
    return found


async def wait_none_left(marker: str, data_dir: Path) -> dict[int, str]:
    deadline = time.monotonic() + GONE_WITHIN
    while (left := of_the_service(marker, data_dir)) and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    return left


def kill_leftovers(marker: str, data_dir: Path) -> None:
    for pid in of_the_service(marker, data_dir):
        with contextlib.suppress(psutil.Error):
            psutil.Process(pid).kill()


@pytest.mark.parametrize("kill", ["process group", "serve alone", "serve alone, after a scale"])
async def test_sigkill_leaves_no_process_of_the_service_behind(tmp_path: Path, kill: str) -> None:
    marker, data_dir, port, log = uuid.uuid4().hex, tmp_path / "var", free_port(), tmp_path / "serve.log"
    process = start_serve(data_dir, port, marker, log, gateways=2)
    try:
        await wait_banner(port, process, log)
        if kill.endswith("after a scale"):
            # Shards a change of the count starts are detached actors: they go with serve too.
            async with OmnistockClient(f"127.0.0.1:{port}") as client:
                [progress async for progress in client.scale_shards(4)]
            shards = [cmd for cmd in of_the_service(marker, data_dir).values() if "ray::Shard" in cmd]
            assert len(shards) == 4, shards
        running = " ".join(of_the_service(marker, data_dir).values())
        server = Path(choose_server().path).name  # valkey-server or redis-server
        for part in (server, "raylet", "gcs_server", "ray::Shard", "omnistock.cli gateway"):
            assert part in running, f"{part} not found among {running}"
        if kill == "process group":
            kill_group(process, signal.SIGKILL)
        else:
            process.kill()
        process.wait()
        left = await wait_none_left(marker, data_dir)
        assert not left, f"still running {GONE_WITHIN:.0f} s after serve was killed: {left}"
    finally:
        kill_group(process, signal.SIGKILL)
        kill_leftovers(marker, data_dir)


async def test_a_start_after_sigkill_finds_its_data_and_runs_one_redis_server(tmp_path: Path) -> None:
    marker, data_dir, log = uuid.uuid4().hex, tmp_path / "var", tmp_path / "serve.log"
    port = free_port()
    first = start_serve(data_dir, port, marker, log)
    second: subprocess.Popen[bytes] | None = None
    try:
        await wait_banner(port, first, log)
        async with OmnistockClient(f"127.0.0.1:{port}") as client:
            await client.put_nodes(NODES)
            await client.set_stock([level("KEEP", "DC-1", 7)])
            await client.reserve("before", [line("KEEP", "DC-1", 2)])

        # Another serve on the same data dir is refused, naming the one that holds it.
        refused = subprocess.run(
            [
                OMNISTOCK,
                "serve",
                "--port",
                str(free_port()),
                "--metrics-port",
                "0",
                "--data-dir",
                str(data_dir),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "RAY_ADDRESS": "", MARKER: marker},
        )
        assert refused.returncode == EXIT_REFUSED, refused.stderr
        assert f"kill -TERM {first.pid}" in refused.stderr and "--data-dir" in refused.stderr
        assert f"kill -TERM {first.pid}" in log.read_text()  # the banner says how to stop it

        kill_group(first, signal.SIGKILL)
        first.wait()
        port = free_port()
        second = start_serve(data_dir, port, marker, log)  # at once: the old Redis may still be stopping
        await wait_banner(port, second, log)
        async with OmnistockClient(f"127.0.0.1:{port}") as client:
            answer = await client.availability(["KEEP"], consistent=True)
            assert (answer.skus[0].on_hand, answer.skus[0].reserved) == (7, 2)
            assert (await client.get_reservation("before")).reservation_id == "before"
        assert len(redis_servers_on(data_dir / "redis")) == 1

        second.send_signal(signal.SIGTERM)
        assert wait_exit(second, log, timeout=60) == 0, log.read_text()[-3000:]
        left = await wait_none_left(marker, data_dir)
        assert not left, f"still running after a clean stop: {left}"
    finally:
        for process in (first, second):
            if process is not None:
                kill_group(process, signal.SIGKILL)
        kill_leftovers(marker, data_dir)
