"""The processes the load tools start (servers, Locust workers): each in a session of its own
with its output in a log file, stopped by SIGTERM and then, if need be, SIGKILL, and sent
SIGTERM by the kernel when the tool that started it dies, however it dies."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from omnistock.gateway.runtime.embedded_redis import sharing_fate


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 60.0) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def start(name: str, argv: list[str], workdir: Path, env: dict[str, str] | None = None) -> Process:
    """`argv` (argv[0] a path) in a session of its own (a Ctrl-C to the caller's group does not
    cut it), its output in workdir/<name>.log; `env` replaces the environment when given. Call
    it from a thread that lives as long as the process should: the kernel's signal follows
    the thread that started it."""
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            sharing_fate(argv), stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env
        )
    return Process(name, popen, log)


async def until_stopped() -> None:
    """Inside such a process: until SIGTERM (what Process.stop sends) or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
