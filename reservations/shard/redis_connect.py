"""Redis clients from omnistock's Redis URLs: one Redis, or a Redis Cluster; and WAIT for replicas.

A single Redis is any URL redis-py's `from_url` takes (`redis://`, `rediss://`, `unix://`),
used exactly as before. A Redis Cluster is

    redis+cluster://[[user]:password@]host:port[,host:port...][/]
    rediss+cluster://...   (TLS; `?ssl_ca_certs=/path/ca.pem` names the CA to trust)

the hosts being startup nodes: the client learns every master and replica from the first
that answers. A cluster has one database, so no path beyond "/" or "/0".

Here, below the gateway in the layers, so that the shards' journal and the gateways make
their clients the same way.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import parse_qsl, unquote, urlsplit

import redis
import redis.asyncio as aioredis
import redis.asyncio.cluster
import redis.asyncio.retry
import redis.cluster
import redis.exceptions
from redis.backoff import NoBackoff
from redis.retry import Retry

CLUSTER_SCHEMES = {"redis+cluster": False, "rediss+cluster": True}
"""Cluster URL schemes, and whether each is TLS."""
SINGLE_SCHEMES = ("redis", "rediss", "unix")
CLUSTER_QUERY = ("ssl_ca_certs",)
"""What a cluster URL's query may set."""

SyncClient = redis.Redis | redis.cluster.RedisCluster
AsyncClient = aioredis.Redis | redis.asyncio.cluster.RedisCluster


REDIS_ERRORS = (redis.RedisError, redis.exceptions.RedisClusterException)
"""What a failed Redis call raises: redis-py's cluster client raises RedisClusterException
(no RedisError) when it cannot reach the cluster at all."""


class RedisUrlError(ValueError):
    """A Redis URL omnistock cannot use; the message names the part at fault."""


class ReplicasBehind(redis.RedisError):
    """Fewer replicas than asked for acknowledged a write in time: the write is on the master
    but not acknowledged, so it fails like any journal write that Redis did not take."""


@dataclass(frozen=True, slots=True)
class ClusterUrl:
    """A parsed `redis+cluster://` or `rediss+cluster://` URL."""

    nodes: tuple[tuple[str, int], ...]
    """Startup nodes (host, port), in the URL's order."""
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ssl_ca_certs: str | None = None


def is_cluster_url(url: str) -> bool:
    return urlsplit(url).scheme.lower() in CLUSTER_SCHEMES


def _node(text: str, url_part: str) -> tuple[str, int]:
    if text.startswith("["):  # IPv6: [::1]:7000
        host, bracket, rest = text[1:].partition("]")
        if not bracket or not host:
            raise RedisUrlError(f"{url_part}: unclosed [ in host {text!r}")
        port_text = rest[1:] if rest.startswith(":") else ""
        if rest and not rest.startswith(":"):
            raise RedisUrlError(f"{url_part}: {text!r} has text after its ] that is no :port")
    else:
        host, _, port_text = text.rpartition(":")
        if not host:
            raise RedisUrlError(f"{url_part}: {text!r} is no host:port")
    if not port_text:
        raise RedisUrlError(f"{url_part}: {text!r} has no port (a cluster node is host:port)")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise RedisUrlError(f"{url_part}: port {port_text!r} of {text!r} is not a number in 1-65535")
    return host, int(port_text)


def parse_cluster_url(url: str) -> ClusterUrl:
    """The startup nodes and credentials of a cluster URL; RedisUrlError naming the part at
    fault. The message never holds the password."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in CLUSTER_SCHEMES:
        raise RedisUrlError(
            f"scheme: {scheme!r} is no Redis Cluster scheme (redis+cluster:// or rediss+cluster://)"
        )
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    if path not in ("", "0"):
        raise RedisUrlError(f"path: /{path} names a database; a Redis Cluster has only database 0")
    userinfo, at, hosts = netloc.rpartition("@")
    username = password = None
    if at:
        user_text, colon, password_text = userinfo.partition(":")
        username = unquote(user_text) or None
        password = unquote(password_text) if colon else None
        if not colon:  # redis-py reads a lone userinfo as a password; say what was meant
            raise RedisUrlError("credentials: write :password@ (or user:password@) before the hosts")
    if not hosts:
        raise RedisUrlError("hosts: no host:port given (redis+cluster://host:port[,host:port...]/)")
    nodes = tuple(_node(text.strip(), "hosts") for text in hosts.split(","))
    options = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=False))
    unknown = sorted(set(options) - set(CLUSTER_QUERY))
    if unknown:
        raise RedisUrlError(f"query: {', '.join(unknown)} not understood (only {', '.join(CLUSTER_QUERY)})")
    tls = CLUSTER_SCHEMES[scheme.lower()]
    ca = options.get("ssl_ca_certs") or None
    if ca and not tls:
        raise RedisUrlError("query: ssl_ca_certs needs TLS: use rediss+cluster://")
    return ClusterUrl(nodes, username, password, tls, ca)


def check_url(url: str) -> None:
    """RedisUrlError if omnistock cannot use `url` (checked before anything starts)."""
    if is_cluster_url(url):
        parse_cluster_url(url)
        return
    scheme = urlsplit(url).scheme.lower()
    if scheme not in SINGLE_SCHEMES:
        raise RedisUrlError(
            f"scheme: {scheme or url!r} is not one of redis://, rediss://, unix://,"
            " redis+cluster://, rediss+cluster://"
        )


def _client_options(
    url: str, socket_timeout: float | None, socket_connect_timeout: float | None
) -> dict[str, Any]:
    """The options both connectors pass on (the URL checked first); their Retry is their own."""
    check_url(url)
    options: dict[str, Any] = {}
    if socket_timeout is not None:
        options["socket_timeout"] = socket_timeout
    if socket_connect_timeout is not None:
        options["socket_connect_timeout"] = socket_connect_timeout
    return options


def _cluster_options(parsed: ClusterUrl) -> dict[str, Any]:
    options: dict[str, Any] = {"username": parsed.username, "password": parsed.password}
    if parsed.tls:
        options["ssl"] = True
        if parsed.ssl_ca_certs:
            options["ssl_ca_certs"] = parsed.ssl_ca_certs
    return options


def connect_sync(
    url: str,
    *,
    socket_timeout: float | None = None,
    socket_connect_timeout: float | None = None,
    retries: int | None = None,
) -> SyncClient:
    """A client of the Redis or Redis Cluster at `url`. `retries`: how often a command that met
    a connection error is sent again (None: redis-py's default; 0: never, for a write that must
    not be applied twice). In a cluster, a redirection (MOVED, ASK) is followed whatever it is:
    the node that answered it did not run the command."""
    options = _client_options(url, socket_timeout, socket_connect_timeout)
    if retries is not None:
        options["retry"] = Retry(NoBackoff(), retries)
    if not is_cluster_url(url):
        return redis.Redis.from_url(url, **options)
    parsed = parse_cluster_url(url)
    return redis.cluster.RedisCluster(
        startup_nodes=[redis.cluster.ClusterNode(host, port) for host, port in parsed.nodes],
        **_cluster_options(parsed),
        **options,
    )


def connect_async(
    url: str,
    *,
    socket_timeout: float | None = None,
    socket_connect_timeout: float | None = None,
    retries: int | None = None,
) -> AsyncClient:
    """As connect_sync, for asyncio."""
    options = _client_options(url, socket_timeout, socket_connect_timeout)
    if retries is not None:
        options["retry"] = redis.asyncio.retry.Retry(NoBackoff(), retries)
    if not is_cluster_url(url):
        return aioredis.Redis.from_url(url, **options)
    parsed = parse_cluster_url(url)
    return redis.asyncio.cluster.RedisCluster(
        startup_nodes=[redis.asyncio.cluster.ClusterNode(host, port) for host, port in parsed.nodes],
        **_cluster_options(parsed),
        **options,
    )


def _shortfall(acknowledged: int, replicas: int, timeout_ms: int, where: str) -> None:
    if acknowledged < replicas:
        raise ReplicasBehind(
            f"{acknowledged} of {replicas} replicas of {where} acknowledged the write within {timeout_ms} ms"
        )


def wait_for_replicas(client: SyncClient, key: str, replicas: int, timeout_ms: int) -> int:
    """After a write to `key`, wait until `replicas` replicas of the master holding it have it
    (WAIT); ReplicasBehind when fewer did within `timeout_ms`. Returns how many did.

    Call it from the thread that wrote, right after the write: WAIT counts the replicas that
    have the last write of its own connection, and redis-py's pool hands a thread that runs
    one command at a time the connection it just gave back."""
    if isinstance(client, redis.cluster.RedisCluster):
        node = client.get_node_from_key(key)
        acknowledged = int(client.execute_command("WAIT", replicas, timeout_ms, target_nodes=node))
        where = f"{node.host}:{node.port}" if node is not None else "the master"
    else:
        acknowledged = int(cast(int, client.wait(replicas, timeout_ms)))
        where = "the master"
    _shortfall(acknowledged, replicas, timeout_ms, where)
    return acknowledged


async def wait_for_replicas_async(client: AsyncClient, key: str, replicas: int, timeout_ms: int) -> int:
    """As wait_for_replicas, for asyncio: await it in the task that wrote, right after the write."""
    if isinstance(client, redis.asyncio.cluster.RedisCluster):
        node = client.get_node_from_key(key)
        answer = await client.execute_command("WAIT", replicas, timeout_ms, target_nodes=node)
        where = f"{node.host}:{node.port}" if node is not None else "the master"
    else:
        answer = await cast(Awaitable[int], client.wait(replicas, timeout_ms))
        where = "the master"
    acknowledged = int(answer)
    _shortfall(acknowledged, replicas, timeout_ms, where)
    return acknowledged
