"""Closed by default: a service with a local Ray runtime and its own redis-server listens on
loopback only (DESIGN.md, promise 7). Every listening TCP socket of this process and of every
process it started (Ray's GCS, raylet, agents and workers, the shards and their batch ports,
the redis-server) is on 127.0.0.1 or ::1."""

from __future__ import annotations

import ipaddress
from typing import Any

import psutil

from omnistock.client import OmnistockClient, level, line
from omnistock.gateway.runtime.embedded_redis import free_port
from tests.integration.conftest import NODES


def is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # an IPv6 socket bound to ::ffff:127.0.0.1
    return ip.is_loopback


def listening() -> list[tuple[str, int, str]]:
    """(address, port, process) of every listening TCP socket of this process and all it started."""
    found: list[tuple[str, int, str]] = []
    me = psutil.Process()
    for process in [me, *me.children(recursive=True)]:
        try:
            connections = process.net_connections(kind="tcp")
            name = " ".join(process.cmdline())[:100] or process.name()
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue  # a worker that ended meanwhile
        for connection in connections:
            if connection.status == psutil.CONN_LISTEN:
                found.append((connection.laddr.ip, connection.laddr.port, name))
    return found


async def test_a_local_service_listens_on_loopback_only(make_service: Any, redis_server: Any) -> None:
    # Two gateways: the second is a process of its own that joins Ray as a driver.
    service = await make_service(shards=2, gateways=2, port=free_port(), metrics_port=0)
    async with OmnistockClient(f"127.0.0.1:{service.port}") as client:
        await client.put_nodes(NODES)
        await client.set_stock([level("SKU-1", "DC-1", 5)])
        await client.reserve("order-1", [line("SKU-1", "DC-1", 1)])
    batch_ports = [await shard.batch_endpoint.remote() for shard in service.shards]

    sockets = listening()
    exposed = [where for where in sockets if not is_loopback(where[0])]
    assert exposed == [], f"listening beyond loopback: {exposed}"
    # The test saw what it should: the API, every shard's batch port, Redis and Ray's own.
    ports = {port for _, port, _ in sockets}
    assert service.port in ports
    assert {port for _, port, _ in batch_ports} <= ports
    assert {host for host, _, _ in batch_ports} == {"127.0.0.1"}
    assert redis_server.port in ports
    assert set(service.metrics_ports) <= ports and len(service.metrics_ports) == 2
    owners = " ".join(who for _, _, who in sockets)
    assert "gcs_server" in owners and "raylet" in owners, owners
    assert "omnistock.cli gateway" in owners
