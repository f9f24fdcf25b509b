"""The embedded redis-server ends with the process that started it, however that one ends; its
data dir has one owner at a time: a start on a dir another process holds is refused naming it,
and a redis-server an earlier run left on the dir is stopped cleanly and taken over."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import redis

from omnistock.gateway.runtime.embedded_redis import (
    DataDirInUse,
    EmbeddedRedis,
    free_port,
    redis_server_binary,
)

HOLDER = """
import sys, time
from pathlib import Path
from omnistock.gateway.runtime.embedded_redis import EmbeddedRedis
EmbeddedRedis(Path(sys.argv[1]), fate=sys.argv[2]).start()
print("started", flush=True)
time.sleep(600)
"""


def redis_servers_on(data_dir: Path) -> list[psutil.Process]:
    """Running redis-servers working in `data_dir` (redis-server works in its --dir)."""
    here = os.path.realpath(data_dir)
    found = []
    for process in psutil.process_iter(["name"]):
        with contextlib.suppress(psutil.Error):
            if (
                (process.info["name"] or "").startswith("redis-server")
                and process.status() != psutil.STATUS_ZOMBIE
                and process.cwd() == here
            ):
                found.append(process)
    return found


def wait_gone(processes: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Those still running after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        running = []
        for process in processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                    running.append(process)
        if not running or time.monotonic() > deadline:
            return running
        time.sleep(0.05)


@pytest.mark.parametrize("fate", ["pdeathsig", "watchdog"])
def test_redis_server_ends_with_the_process_that_started_it_even_on_sigkill(
    tmp_path: Path, fate: str
) -> None:
    if fate == "pdeathsig" and not sys.platform.startswith("linux"):
        pytest.skip("PR_SET_PDEATHSIG is Linux's")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path), fate], stdout=subprocess.PIPE, start_new_session=True
    )
    servers: list[psutil.Process] = []
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == b"started\n"
        servers = redis_servers_on(tmp_path)
        assert len(servers) == 1
        launcher = servers[0].parent()  # the holder itself, or (watchdog) the launcher between
        holder.kill()
        holder.wait()
        left = wait_gone([*servers, *([launcher] if launcher else [])], timeout=10)
        assert not left, f"outlived the process that started redis-server: {left}"
        # It was told to stop, not killed: a clean shutdown, its AOF flushed.
        assert "ready to exit" in (tmp_path / "redis.log").read_text()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(holder.pid, signal.SIGKILL)
        holder.wait()
        for server in servers:
            with contextlib.suppress(psutil.NoSuchProcess):
                server.kill()


def test_a_data_dir_held_by_another_is_refused_naming_the_holder(tmp_path: Path) -> None:
    first = EmbeddedRedis(tmp_path).start()
    try:
        with pytest.raises(DataDirInUse) as refused:
            EmbeddedRedis(tmp_path).start()
        message = str(refused.value)
        assert f"pid {os.getpid()}" in message and f"kill -TERM {os.getpid()}" in message
        assert "--data-dir" in message
        assert len(redis_servers_on(tmp_path)) == 1  # no second one started
        redis.Redis(port=first.port).ping()  # the first one untouched
    finally:
        first.stop()
    EmbeddedRedis(tmp_path).start().stop()  # stop let go of the dir


def test_a_redis_server_left_by_an_earlier_run_is_stopped_cleanly_and_taken_over(tmp_path: Path) -> None:
    # As left by a service killed in a way its redis-server could not follow (or by a version
    # of omnistock that did not stop it): running on the dir, in a session of its own.
    port = free_port()
    args = [redis_server_binary(), "--bind", "127.0.0.1", "--port", str(port), "--dir", str(tmp_path)]
    args += ["--appendonly", "yes", "--appendfsync", "always", "--save", "", "--logfile", "redis.log"]
    orphan = subprocess.Popen(args, stdout=subprocess.DEVNULL, start_new_session=True)
    embedded: EmbeddedRedis | None = None
    try:
        client = redis.Redis(port=port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.set("written", "before")
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        embedded = EmbeddedRedis(tmp_path).start()
        assert orphan.wait(timeout=5) == 0  # stopped with SIGTERM: a clean shutdown
        assert [p.pid for p in redis_servers_on(tmp_path)] != [orphan.pid]
        assert len(redis_servers_on(tmp_path)) == 1
        assert redis.Redis(port=embedded.port).get("written") == b"before"
    finally:
        if embedded is not None:
            embedded.stop()
        if orphan.poll() is None:
            orphan.kill()
            orphan.wait()
