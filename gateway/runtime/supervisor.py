"""The extra gateway processes of `omnistock serve --gateways N`: started, watched, restarted.

Each one runs `omnistock gateway`, reads its settings as one JSON line on stdin (they
hold the Redis URL, which may carry a password: argv is readable by every user), and
says READY on stdout once it serves. One that dies is started again, so the port keeps
its N listeners; `stop` ends them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

READY = "omnistock-gateway-ready "
"""Starts the line a gateway process prints once it serves, followed by JSON about it."""
QUICK_EXIT = 30.0
"""A gateway that dies sooner than this after its start waits longer before the next."""
MAX_DELAY = 30.0
POLL = 0.2
"""Seconds between two looks at whether a gateway process is still there."""


def gateway_command() -> list[str]:
    """`omnistock gateway`, logging at serve's level."""
    level = logging.getLevelName(logging.getLogger().getEffectiveLevel()).lower()
    if level not in ("debug", "info", "warning", "error"):
        level = "warning"
    return [sys.executable, "-m", "omnistock.cli", "gateway", "--log-level", level]


def restart_delay(previous: float, lived: float, most: float, settled: float) -> float:
    """Seconds to wait before starting again a process that ended after `lived` seconds:
    `settled` after a long life, else twice the previous wait (at least 0.5 s, at most
    `most`), so one that keeps dying at once is not started in a tight loop."""
    if lived >= QUICK_EXIT:
        return settled
    return min(most, max(0.5, previous * 2))


def exit_text(code: int | None) -> str:
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"signal {signal.Signals(-code).name}"
    return f"exit code {code}"


@dataclass
class GatewayProcess:
    """One gateway process slot: the process serving it now, and how it went."""

    index: int
    process: subprocess.Popen[bytes] | None = None
    metrics_port: int | None = None
    started_at: float = 0.0
    restarts: int = 0
    output: asyncio.ReadTransport | None = None
    forwarding: asyncio.Task[None] | None = None
    watching: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None


async def exited(process: subprocess.Popen[bytes]) -> int:
    """The exit code, once the process has ended (negative: the signal that ended it)."""
    while (code := process.poll()) is None:
        await asyncio.sleep(POLL)
    return code


class GatewaySupervisor:
    def __init__(
        self,
        settings: Callable[[int], str],
        indexes: Sequence[int],
        ready_timeout: float = 120.0,
        command: Callable[[], list[str]] = gateway_command,
    ) -> None:
        self._settings = settings
        self._ready_timeout = ready_timeout
        self._command = command
        self._stopping = False
        self.gateways = [GatewayProcess(index) for index in indexes]

    @property
    def pids(self) -> list[int | None]:
        return [gateway.pid for gateway in self.gateways]

    @property
    def metrics_ports(self) -> list[int | None]:
        return [gateway.metrics_port for gateway in self.gateways]

    async def start(self) -> None:
        """Start every gateway and wait until each serves; on a failure stop them all."""
        launches = [asyncio.ensure_future(self._launch(gateway)) for gateway in self.gateways]
        try:
            await asyncio.gather(*launches)
        except BaseException:
            for launch in launches:  # a launch cancelled kills the process it started
                launch.cancel()
            await asyncio.gather(*launches, return_exceptions=True)
            await self.stop(grace=0)
            raise
        for gateway in self.gateways:
            gateway.watching = asyncio.get_running_loop().create_task(self._watch(gateway))

    async def _launch(self, gateway: GatewayProcess) -> None:
        # subprocess, not the event loop's spawn: it uses vfork, which skips the fork
        # handlers gRPC registers (and their warning about threads in gRPC).
        process = subprocess.Popen(self._command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        output: asyncio.ReadTransport | None = None
        try:
            assert process.stdin is not None and process.stdout is not None
            process.stdin.write(self._settings(gateway.index).encode() + b"\n")
            process.stdin.close()
            reader = asyncio.StreamReader()
            output, _ = await asyncio.get_running_loop().connect_read_pipe(
                lambda: asyncio.StreamReaderProtocol(reader), process.stdout
            )
            about = await self._ready(gateway.index, process, reader)
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            process.wait()
            if output is not None:
                output.close()
            raise
        gateway.process, gateway.output, gateway.started_at = process, output, time.monotonic()
        gateway.metrics_port = about.get("metrics_port")
        gateway.forwarding = asyncio.get_running_loop().create_task(_forward(reader))
        log.info("gateway %d serving (pid %d)", gateway.index, process.pid)

    async def _ready(
        self, index: int, process: subprocess.Popen[bytes], reader: asyncio.StreamReader
    ) -> dict[str, Any]:
        try:
            async with asyncio.timeout(self._ready_timeout):
                while True:
                    raw = await reader.readline()
                    if not raw:
                        code = await exited(process)
                        raise RuntimeError(f"gateway {index} ended before serving ({exit_text(code)})")
                    text = raw.decode(errors="replace")
                    if text.startswith(READY):
                        about: dict[str, Any] = json.loads(text[len(READY) :])
                        return about
                    sys.stderr.write(text)
        except TimeoutError:
            raise RuntimeError(f"gateway {index} did not serve within {self._ready_timeout:.0f} s") from None

    async def _watch(self, gateway: GatewayProcess) -> None:
        """Start the gateway again whenever it ends, until `stop`."""
        delay = 0.0
        while True:
            assert gateway.process is not None
            code = await exited(gateway.process)
            if gateway.output is not None:
                gateway.output.close()
            if self._stopping:
                return
            lived = time.monotonic() - gateway.started_at
            delay = restart_delay(delay, lived, MAX_DELAY, settled=0.5)
            log.warning(
                "gateway %d (pid %d) ended (%s) after %.0f s; starting it again in %.1f s",
                gateway.index,
                gateway.process.pid,
                exit_text(code),
                lived,
                delay,
            )
            while True:
                await asyncio.sleep(delay)
                try:
                    await self._launch(gateway)
                except Exception as error:
                    delay = restart_delay(delay, 0.0, MAX_DELAY, settled=0.5)
                    log.error("gateway %d did not start: %s; next try in %.1f s", gateway.index, error, delay)
                    continue
                gateway.restarts += 1
                break

    async def stop(self, grace: float = 5.0) -> None:
        """SIGTERM every gateway (each drains its calls for up to `grace` s), then wait for
        them; one still there after that is killed."""
        self._stopping = True
        watchers = [g.watching for g in self.gateways if g.watching is not None]
        for task in watchers:
            task.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
        running = [g.process for g in self.gateways if g.process is not None and g.process.poll() is None]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(grace + 15.0):
                await asyncio.gather(*(exited(process) for process in running))
        except TimeoutError:
            for process in running:
                if process.poll() is None:
                    log.warning("gateway (pid %d) did not stop; killing it", process.pid)
                    with contextlib.suppress(ProcessLookupError):
                        process.kill()
                    process.wait()
        forwarding = [g.forwarding for g in self.gateways if g.forwarding is not None]
        for task in forwarding:
            task.cancel()
        await asyncio.gather(*forwarding, return_exceptions=True)
        for gateway in self.gateways:
            if gateway.output is not None:
                gateway.output.close()


async def _forward(reader: asyncio.StreamReader) -> None:
    """Whatever a gateway prints on stdout after READY goes to our stderr, so its pipe never fills."""
    while raw := await reader.readline():
        sys.stderr.write(raw.decode(errors="replace"))
