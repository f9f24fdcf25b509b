"""A Ray runtime started by omnistock itself (no --ray-address) listens on loopback only.

Ray binds its servers (GCS, raylet, object manager, the dashboard and runtime-env agents, every
worker's gRPC server) to the node's address, and the shards' batch ports bind to it too. So
the node's address must be 127.0.0.1. But Ray takes 127.0.0.1, as `_node_ip_address` or as
the host of a cluster's address, for this machine's address on the network
(services.resolve_ip_for_localhost), unless ray_constants.ENABLE_RAY_CLUSTER is off, as it is
by default on macOS and Windows (the RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER setting). So it is off
while Ray starts here, and while a process joins a runtime whose address is loopback (the
gateways `serve --gateways N` starts): then Ray keeps to loopback. Joining any other cluster is
left as Ray does it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
from collections.abc import Iterator
from typing import Any

import ray
from ray._private import ray_constants

LOOPBACK = "127.0.0.1"


def init(address: str | None = None, **options: Any) -> None:
    """ray.init(address=address, **options); a runtime started here, or joined on a loopback
    address, listens on loopback only."""
    target = address or os.environ.get("RAY_ADDRESS") or None
    if target is None:
        # "local": a runtime of our own, never one that `ray start` left on this machine (a
        # plain ray.init() joins that one, found through /tmp/ray/ray_current_cluster).
        with _single_node():
            ray.init(address="local", _node_ip_address=LOOPBACK, **options)
    elif on_loopback(target):
        with _single_node():
            ray.init(address=address, **options)
    else:
        ray.init(address=address, **options)


def on_loopback(address: str) -> bool:
    """Whether a Ray address ("host:port") names this machine's loopback."""
    host = address.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # "auto", a name, a ray:// client address: Ray's own way


@contextlib.contextmanager
def _single_node() -> Iterator[None]:
    enabled = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = enabled
