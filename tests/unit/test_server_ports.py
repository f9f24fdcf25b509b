"""Servers' ports are picked outside the kernel's ephemeral range, so a server that died for a
moment finds its port free again: no client connection can have taken it meanwhile."""

from __future__ import annotations

import socket

from omnistock.gateway.runtime.embedded_redis import SERVER_PORTS, free_port


def test_a_picked_port_binds_and_is_below_the_ephemeral_range() -> None:
    with open("/proc/sys/net/ipv4/ip_local_port_range") as ranges:
        ephemeral_low = int(ranges.read().split()[0])
    ports = {free_port() for _ in range(20)}
    assert all(SERVER_PORTS[0] <= port < SERVER_PORTS[1] <= ephemeral_low for port in ports)
    assert len(ports) > 1  # picked at random, not one port for every server
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))
