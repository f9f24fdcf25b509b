"""Start-up and shutdown of a whole omnistock service: Redis, Ray shards, gateways, metrics.

`Service` is `omnistock serve`: Redis, Ray and the shard actors, then its own gateway and,
with several gateways, the supervisor of the others. `serve_gateway` is one of those
others: it joins the running Ray and Redis, finds the shards by name and serves the same
port (SO_REUSEPORT lets the kernel spread new connections over the gateways).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import faulthandler
import json
import logging
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import ray
import redis.exceptions
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server

from omnistock.availability.feed import ChangeHistory
from omnistock.availability.network_file import parse_network_file
from omnistock.availability.view import NetworkView
from omnistock.gateway.grpc.admission import (
    Admission,
    AdmissionSettings,
    server_options,
)
from omnistock.gateway.grpc.answer_cache import AnswerCache
from omnistock.gateway.grpc.convert import Limits
from omnistock.gateway.grpc.events_servicer import EventServicer
from omnistock.gateway.grpc.feed_hub import WatchHub
from omnistock.gateway.grpc.guard import Authenticator, Guard
from omnistock.gateway.grpc.jwt_tokens import JwtVerifier
from omnistock.gateway.grpc.key_servicer import KeyServicer
from omnistock.gateway.grpc.key_store import KeyStore
from omnistock.gateway.grpc.network_store import NetworkStore
from omnistock.gateway.grpc.servicers import (
    AvailabilityServicer,
    InventoryServicer,
    NetworkServicer,
    ReservationServicer,
    add_service,
)
from omnistock.gateway.grpc.shard_servicer import ShardServicer
from omnistock.gateway.metrics import Metrics
from omnistock.gateway.runtime import local_ray
from omnistock.gateway.runtime.cpus import default_shards
from omnistock.gateway.runtime.embedded_redis import EmbeddedRedis, RedisServer
from omnistock.gateway.runtime.key_layout import migrate_key_layout
from omnistock.gateway.runtime.redis_url import redacted
from omnistock.gateway.runtime.shard_control import (
    RayShards,
    ShardActor,
    shard_name,
    shard_options,
    stop_shards,
)
from omnistock.gateway.runtime.supervisor import READY, GatewaySupervisor, exit_text, restart_delay
from omnistock.gateway.transport.placement_store import PlacementStore
from omnistock.gateway.transport.router import ShardRouter
from omnistock.gateway.transport.shard_stats import ShardStatsPoller
from omnistock.gateway.transport.view_sync import ViewSync
from omnistock.gateway.usecases.access import Scope
from omnistock.gateway.usecases.checkout import Checkout
from omnistock.gateway.usecases.courier import Courier
from omnistock.gateway.usecases.reservations import ReservationCoordinator
from omnistock.gateway.usecases.scaling import Scaler
from omnistock.gateway.usecases.stock import Stock
from omnistock.reservations.domain.errors import Unavailable
from omnistock.reservations.domain.partition import PENDING_SECONDS
from omnistock.reservations.domain.placement import Placement, partition_of
from omnistock.reservations.shard.actor import JOURNAL_TIMEOUT, ShardConfig, settle_heap
from omnistock.reservations.shard.journal import RedisKeys, journal_group
from omnistock.reservations.shard.redis_connect import (
    REDIS_ERRORS,
    AsyncClient,
    check_url,
    connect_async,
    is_cluster_url,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceConfig:
    host: str = "127.0.0.1"
    """Interface for gRPC and metrics; loopback unless told otherwise."""
    port: int = 50051
    """gRPC port; 0 picks a free one."""
    metrics_port: int | None = 9464
    """Prometheus /metrics port; None disables it, 0 picks a free one."""
    shards: int = field(default_factory=default_shards)
    """Shard actors; partitions are spread over them."""
    partitions: int = 256
    """Partitions, fixed at the first start and stored in Redis."""
    redis_url: str | None = None
    """External Redis; None starts an embedded redis-server under data_dir."""
    ray_address: str | None = None
    """Ray cluster to join; None starts a local Ray runtime."""
    data_dir: Path = Path("var")
    prefix: str = "omnistock"
    """Prefix of every Redis key and of the shard actors' names."""
    pending_seconds: float = PENDING_SECONDS
    """How long a Reserve attempt may stay undecided before its home aborts it."""
    audit_interval: float = 30.0
    """Seconds between two audits of every reservation's parts by gateway 0 (the metric
    omnistock_reservations_disagreeing); 0 turns it off."""
    snapshot_every: int = 10_000
    snapshot_levels: int = 20_000
    ray_cpus: int | None = None
    """CPUs of a local Ray runtime (default: all)."""
    redis_fsync: str = "always"
    """appendfsync of the embedded Redis: always (no acknowledged loss) or everysec."""
    network_file: Path | None = None
    """TOML network (nodes, groups, channels) applied at start over what is stored."""
    view_heartbeat: float = 0.25
    """The gateway's network view fetches a shard's changes right after a batch that made
    some, and at least this often (for expiries and writes through other gateways)."""
    stats_interval: float = 1.0
    """Seconds between two polls of the shards' stats (units held, expiries, restarts, ...)."""
    limits: Limits = field(default_factory=Limits)
    gateways: int = 1
    """Gateway processes serving the port; more than one share it with SO_REUSEPORT, and
    gateway i serves its metrics on metrics_port + i."""
    network_refresh: float = 1.0
    """Seconds between two checks of the stored network's version by each gateway, in case
    it missed another gateway's announcement of a change."""
    metrics_host: str = "127.0.0.1"
    """Interface for /metrics: loopback unless told otherwise, whatever `host` is."""
    tls_cert: Path | None = None
    """PEM certificate chain of the gRPC port; with tls_key, the port serves TLS only."""
    tls_key: Path | None = None
    client_ca: Path | None = None
    """PEM CA bundle: with it, every client must show a certificate it signed (mutual TLS)."""
    auth: str = "off"
    """"keys": every call shows an API key (or a JWT when jwt_jwks is set); "off": none is
    asked for (a developer's loopback)."""
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_jwks: Path | None = None
    """JWKS file of an identity provider whose JWTs are accepted besides API keys."""
    admission: AdmissionSettings = field(default_factory=AdmissionSettings)
    """Each gateway's limits under load: calls in flight, open streams, a rate per caller."""
    redis_replicas: int = 0
    """Replicas of the journal's master that must have each batch (WAIT) before it is
    acknowledged; 0: the master's AOF alone (docs/running.md, "Redis with replicas")."""
    redis_wait_ms: int = 1000
    """How long a batch waits for those replicas before it fails (UNAVAILABLE, retry-safe)."""

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), default=str)

    @classmethod
    def from_json(cls, text: str) -> ServiceConfig:
        data = json.loads(text)
        for name in PATH_FIELDS:
            data[name] = Path(data[name]) if data.get(name) else None
        data["data_dir"] = Path(data["data_dir"])
        data["limits"] = Limits(**data["limits"])
        data["admission"] = AdmissionSettings(**data["admission"])
        return cls(**data)


PATH_FIELDS = ("network_file", "tls_cert", "tls_key", "client_ca", "jwt_jwks")
"""ServiceConfig's optional paths (to_json writes them as strings)."""


def server_credentials(config: ServiceConfig) -> grpc.ServerCredentials | None:
    """TLS of the gRPC port from tls_cert and tls_key (mutual TLS with client_ca); None for
    plain text. ValueError names a missing setting; OSError a file that cannot be read."""
    if config.tls_cert is None and config.tls_key is None:
        if config.client_ca is not None:
            raise ValueError("client_ca needs tls_cert and tls_key: client certificates are checked over TLS")
        return None
    if config.tls_cert is None or config.tls_key is None:
        missing = "tls_key" if config.tls_key is None else "tls_cert"
        raise ValueError(f"TLS needs both tls_cert and tls_key: {missing} is missing")
    client_ca = config.client_ca.read_bytes() if config.client_ca is not None else None
    return grpc.ssl_server_credentials(
        [(config.tls_key.read_bytes(), config.tls_cert.read_bytes())],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )


VIEW_VERSIONS_PER_GATEWAY = 10**13
"""Gateway i numbers its view versions from i times this plus the clock in milliseconds
(below 10**13 until the year 2286), so no two gateways, nor two runs of one, hand out the
same version: a watch resumed at another gateway starts again from the whole state
instead of skipping changes it never saw."""


def first_view_version(index: int, now: float) -> int:
    return index * VIEW_VERSIONS_PER_GATEWAY + int(now * 1000)


FIRST_STANDALONE_GATEWAY = 1000
"""serve's gateways are numbered 0..N-1 (N below this); a gateway started on its own
(`omnistock gateway --ray-address`, any host) takes this plus a number from a Redis counter
(RedisKeys.service, HINCRBY), so no two gateways of one service share an index, whichever
host they run on."""
STANDALONE_GATEWAYS = 1_000_000
"""Standalone indexes cycle through this many: with VIEW_VERSIONS_PER_GATEWAY, every view
version still fits the API's uint64. An index comes round again a million starts later,
with a later clock, so its versions are still new."""


def standalone_gateway_index(count: int) -> int:
    """The index of the `count`th standalone gateway started (1 for the first)."""
    return FIRST_STANDALONE_GATEWAY + (count - 1) % STANDALONE_GATEWAYS


def gateway_metrics_port(config: ServiceConfig, index: int) -> int | None:
    """Gateway i's metrics port: metrics_port + i (0: any free port; None: no metrics). A
    standalone gateway is the only one of its process: it serves on metrics_port itself."""
    if config.metrics_port is None or config.metrics_port == 0 or index >= FIRST_STANDALONE_GATEWAY:
        return config.metrics_port
    return config.metrics_port + index


def unshared_port(host: str, port: int) -> int:
    """`port` (0: a free one) if no one listens on it. Listening with SO_REUSEPORT would
    share a port someone else serves (a second omnistock there would take half the calls),
    so the first gateway checks with a plain bind, which fails on a taken port."""
    for family, kind, proto, _, address in socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    ):
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is no owner
            try:
                probe.bind((address[0], port, *address[2:]))
            except OSError as error:
                raise RuntimeError(
                    f"cannot listen on {host}:{port}: {error.strerror}; is the port in use?"
                ) from None
            port = int(probe.getsockname()[1])
    return port


PLACEMENT_REFRESH = 0.25
"""Seconds between two reads of the placement by each gateway (a moved partition's calls make
it read at once; this brings idle gateways, their views and feeds, to new shards)."""
REDIS_CHECK = 0.5
"""Seconds between two writes by which each gateway checks that Redis takes writes; health
says NOT_SERVING from the first that fails to the next that succeeds."""
REDIS_CHECK_TIMEOUT = 2.0
"""A check write not answered within this many seconds failed (a Redis that hangs)."""
REDIS_WATCH = 0.2
"""Seconds between two looks at whether the embedded redis-server still runs."""
REDIS_RESTART_MAX_DELAY = 5.0
"""Longest wait between two tries to start the embedded redis-server again."""


class Gateway:
    """One gateway: the gRPC server and what answers behind it (batchers per shard, the
    network view, answer cache and watch hub, the shard-stats poller), with its metrics.
    Nothing in it is shared with other gateways but the shards and Redis."""

    def __init__(
        self,
        config: ServiceConfig,
        index: int,
        redis_url: str,
        shards: list[Any],
        partitions: int,
        metrics: Metrics | None = None,
    ) -> None:
        self.config = config
        self.index = index
        self.metrics = metrics or Metrics()
        self.admission = Admission(config.admission, self.metrics)
        self.port = 0
        self.metrics_port = 0
        self._redis_url = redis_url
        self._shards = shards
        self._partitions = partitions
        self._redis: AsyncClient | None = None
        self._server: grpc.aio.Server | None = None
        self._metrics_server: Any = None
        self._health = health.aio.HealthServicer()
        self._view_sync: ViewSync | None = None
        self._courier: Courier | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.router: ShardRouter | None = None
        self.network: NetworkStore | None = None
        self._shard_servicer: ShardServicer | None = None

    async def start(self, apply_network_file: bool = False) -> Gateway:
        config, shards, partitions = self.config, self._shards, self._partitions
        loop = asyncio.get_running_loop()
        self._redis = connect_async(self._redis_url)
        placements = PlacementStore(self._redis, RedisKeys(config.prefix))
        placement = await placements.read() or Placement.even(partitions, len(shards))
        namespace = ray.get_runtime_context().namespace
        if placement.shards != len(shards):  # the shard count changed since this gateway was made
            shards = [
                ray.get_actor(shard_name(config.prefix, i), namespace=namespace)
                for i in range(placement.shards)
            ]
        router = ShardRouter(
            shards,
            partitions,
            self.metrics,
            placement=placement,
            fetch_placement=placements.read,
            find_shard=lambda index: ray.get_actor(shard_name(config.prefix, index), namespace=namespace),
            write_unit=journal_group if is_cluster_url(self._redis_url) else lambda partition: 0,
        )
        self.metrics.watch_queues(router.queue_depths())
        stats = ShardStatsPoller(shards, self.metrics, config.stats_interval)
        await stats.poll_once()
        self._tasks.append(loop.create_task(stats.run()))
        router.on_resize.append(stats.resize)

        def partition(key: str) -> int:
            return partition_of(key, partitions)

        coordinator = ReservationCoordinator(
            router.execute, partition, time.time, colocated=router.colocated, execute_once=router.execute_once
        )
        self._courier = Courier(coordinator, router.pollers(), router.last_reply, self.metrics)
        router.on_handoffs = self._courier.take
        self._courier.start()
        courier = self._courier
        router.on_resize.append(lambda handles: courier.resize(router.pollers()))
        if self.index == 0 and config.audit_interval > 0:
            self._tasks.append(loop.create_task(audit_every(router, self.metrics, config.audit_interval)))
        network = NetworkStore(self._redis, RedisKeys(config.prefix), config.limits)
        await network.load()
        if apply_network_file and config.network_file is not None:
            parsed = parse_network_file(config.network_file.read_text())
            await network.change(
                parsed.nodes,
                parsed.groups,
                parsed.channels,
                purchase_limits=parsed.purchase_limits,
                by="startup",  # the audit trail's name for `serve --network`
            )
        first_version = first_view_version(self.index, time.time())
        view = NetworkView(len(shards), first_version)
        watch = WatchHub(view, ChangeHistory(first_version))
        self._view_sync = ViewSync(
            view, shards, self.metrics, config.view_heartbeat, watch.on_change, settle=settle_heap
        )
        await self._view_sync.sync_once()
        router.on_changes = self._view_sync.note
        router.on_resize.append(self._view_sync.resize)
        self._view_sync.start()
        # Partitions moved by a change of the shard count: routed by the new placement at once.
        self._tasks.append(loop.create_task(follow_placement(router, PLACEMENT_REFRESH)))
        # A rule changed through another gateway applies to this one's open feeds too.
        self._tasks.append(loop.create_task(network.follow(watch.rules_changed, config.network_refresh)))
        self.router, self.network = router, network
        keys = KeyStore(self._redis, config.prefix)
        authenticator = await self._authenticator(keys)
        answers = AnswerCache()
        self.metrics.watch_answer_cache(lambda: answers.hits, lambda: answers.misses, lambda: len(answers))
        stock = Stock(router.execute, partition, lambda: network.network)
        checkout = Checkout(coordinator, stock.positions, lambda: network.network)
        edge = (network, config.limits, self.metrics)
        servicers = [
            InventoryServicer(*edge, stock, router),
            AvailabilityServicer(*edge, stock, view, watch, answers),
            ReservationServicer(*edge, checkout, coordinator),
            NetworkServicer(*edge, watch),
            KeyServicer(*edge, keys),
            EventServicer(*edge, self._redis, RedisKeys(config.prefix)),
        ]
        shard_control = RayShards(config.prefix, namespace)
        self._shard_servicer = ShardServicer(
            *edge,
            self._redis,
            RedisKeys(config.prefix),
            lambda: Scaler(shard_control, placements.read, placements.write),
        )
        servicers.append(self._shard_servicer)

        shared = config.gateways > 1
        port = unshared_port(config.host, config.port) if shared and self.index == 0 else config.port
        server = grpc.aio.server(
            interceptors=[Guard(authenticator, self.metrics, self.admission)],
            options=[
                ("grpc.max_receive_message_length", config.limits.max_message_bytes),
                ("grpc.max_send_message_length", config.limits.max_message_bytes),
                # One gateway owns its port alone, so a second service on it fails loudly.
                ("grpc.so_reuseport", 1 if shared else 0),
                *server_options(config.admission),
            ],
        )
        # Each from its service's descriptor, undecodable requests refused (add_service).
        for servicer in servicers:
            add_service(servicer, server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        api = [servicer.SERVICE.full_name for servicer in servicers]
        reflection.enable_server_reflection([*api, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
        address, credentials = f"{config.host}:{port}", server_credentials(config)
        # Health and reflection share the port, so they are served over TLS too.
        self.port = (
            server.add_secure_port(address, credentials)
            if credentials is not None
            else server.add_insecure_port(address)
        )
        if self.port == 0:
            raise RuntimeError(f"cannot listen on {config.host}:{port}; is the port in use?")
        await server.start()
        self._server = server
        for name in ["", *api]:
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self._tasks.append(loop.create_task(self._watch_redis(["", *api])))
        metrics_port = gateway_metrics_port(config, self.index)
        if metrics_port is not None:
            self._metrics_server, _ = start_http_server(
                metrics_port, addr=config.metrics_host, registry=self.metrics.registry
            )
            self.metrics_port = self._metrics_server.server_port
        return self

    async def _authenticator(self, keys: KeyStore) -> Authenticator | None:
        """What the guard checks tokens with (None: auth off), kept up to date with the keys."""
        config = self.config
        if config.auth == "off":
            return None
        if config.auth != "keys":
            raise ValueError(f"auth must be 'keys' or 'off', got {config.auth!r}")
        tokens = None
        if config.jwt_jwks is not None:
            if not config.jwt_issuer or not config.jwt_audience:
                raise ValueError("a JWKS file needs jwt_issuer and jwt_audience too")
            tokens = JwtVerifier(config.jwt_jwks, config.jwt_issuer, config.jwt_audience)
        authenticator = Authenticator(await keys.keys(), tokens)
        self._tasks.append(asyncio.get_running_loop().create_task(keys.follow(authenticator.replace_keys)))
        return authenticator

    async def _watch_redis(self, names: list[str]) -> None:
        """Health of `names` NOT_SERVING while Redis does not take a write (down, hanging,
        refusing writes), SERVING again once it does: calls that write or read consistently
        need the shards' journal in Redis. Each gateway process checks for itself."""
        probe = connect_async(
            self._redis_url,
            socket_timeout=REDIS_CHECK_TIMEOUT,
            socket_connect_timeout=REDIS_CHECK_TIMEOUT,
            retries=1,  # once more on a new connection: one left by a restart
        )
        key = f"{self.config.prefix}:health:gateway-{self.index}"
        serving = True
        try:
            while True:
                try:
                    async with asyncio.timeout(REDIS_CHECK_TIMEOUT * 2):
                        await probe.set(key, int(time.time() * 1000), px=int(REDIS_CHECK * 20_000))
                    healthy, reason = True, ""
                except (redis.exceptions.RedisError, OSError, TimeoutError) as error:
                    task = asyncio.current_task()
                    if task is not None and task.cancelling():
                        raise  # stopping: redis-py turned the cancellation into its own error
                    healthy, reason = False, f"{type(error).__name__}: {error}"
                if healthy != serving:
                    serving = healthy
                    if healthy:
                        log.warning("gateway %d: Redis takes writes again; health SERVING", self.index)
                    else:
                        log.error(
                            "gateway %d: Redis does not take writes (%s); health NOT_SERVING",
                            self.index,
                            reason,
                        )
                    status = (
                        health_pb2.HealthCheckResponse.SERVING
                        if healthy
                        else health_pb2.HealthCheckResponse.NOT_SERVING
                    )
                    for name in names:
                        await self._health.set(name, status)
                await asyncio.sleep(REDIS_CHECK)
        finally:
            await probe.aclose()

    async def stop(self, grace: float = 5.0) -> None:
        """Stop taking calls and drain those in flight; the shards are left as they are."""
        await self._health.enter_graceful_shutdown()
        if self._server is not None:
            await self._server.stop(grace)
        if self._shard_servicer is not None:
            await self._shard_servicer.stop()
        if self._view_sync is not None:
            await self._view_sync.stop()
        if self._courier is not None:
            await self._courier.stop()
        await cancel_all(self._tasks)
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
            self._metrics_server.server_close()
        if self.router is not None:
            self.router.close()
        if self._redis is not None:
            await self._redis.aclose()


async def cancel_all(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel `tasks` and wait for them to end. A cancellation that lands inside a redis-py
    command can be swallowed there (the task goes on with its loop), so a task still running
    after a moment is cancelled again."""
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.5)
    await asyncio.gather(*tasks, return_exceptions=True)


AUDIT_SHARE = 0.02
"""The most of its time the background audit may take: it reads every open reservation, so at
a peak with a million of them the pause between two audits grows to keep it under this."""


async def audit_every(router: ShardRouter, metrics: Metrics, interval: float) -> None:
    """Audit every reservation's parts (reservations/domain/audit.py) now and then, for the metric
    and its alert; `omnistock check` runs the same audit on demand."""
    pause = interval
    while True:
        await asyncio.sleep(pause)
        began = time.monotonic()
        try:
            metrics.observe_audit(await router.audit())
        except Unavailable as error:
            log.info("reservation audit skipped: %s", error)
        pause = max(interval, (time.monotonic() - began) / AUDIT_SHARE)


class Service:
    def __init__(self, config: ServiceConfig) -> None:
        if not 1 <= config.gateways < FIRST_STANDALONE_GATEWAY:
            raise ValueError(
                f"gateways must be within 1..{FIRST_STANDALONE_GATEWAY - 1}, got {config.gateways}"
            )
        server_credentials(config)  # bad TLS settings or files fail before anything starts
        if config.redis_url:
            check_url(config.redis_url)
        if not 0 < config.redis_wait_ms < JOURNAL_TIMEOUT * 1000:
            # Longer, and the shard's socket gives up first with a less telling error.
            longest = int(JOURNAL_TIMEOUT * 1000) - 1
            raise ValueError(f"redis_wait_ms must be within 1..{longest}, got {config.redis_wait_ms}")
        self.config = config
        self.metrics = Metrics()
        self.redis_url = ""
        self._embedded: EmbeddedRedis | None = None
        self._keeper: asyncio.Task[None] | None = None
        self._redis: AsyncClient | None = None
        self._started_ray = False
        self.gateway: Gateway | None = None
        self.supervisor: GatewaySupervisor | None = None
        self.shards: list[Any] = []
        self.admin_key_file: Path | None = None
        """With auth "keys": where the first admin key's token was written (ADMIN_KEY_FILE)."""

    @property
    def port(self) -> int:
        return self.gateway.port if self.gateway else 0

    @property
    def redis_server(self) -> RedisServer | None:
        """The embedded Redis's binary; None with an external Redis."""
        return self._embedded.server if self._embedded else None

    @property
    def metrics_port(self) -> int:
        """Gateway 0's metrics port (0: none)."""
        return self.gateway.metrics_port if self.gateway else 0

    @property
    def metrics_ports(self) -> list[int | None]:
        """Every gateway's metrics port, gateway 0 first."""
        others = self.supervisor.metrics_ports if self.supervisor else []
        return [self.metrics_port or None, *others]

    @property
    def router(self) -> ShardRouter | None:
        """Gateway 0's handle on the shards."""
        return self.gateway.router if self.gateway else None

    @property
    def network(self) -> NetworkStore | None:
        """Gateway 0's network."""
        return self.gateway.network if self.gateway else None

    async def start(self) -> Service:
        config = self.config
        started = time.perf_counter()
        if config.redis_url:
            self.redis_url = config.redis_url
        else:
            self._embedded = EmbeddedRedis(config.data_dir / "redis", fsync=config.redis_fsync)
            self._embedded.start()
            self.redis_url = self._embedded.url
            log.info(
                "embedded %s on %s (data in %s)",
                self._embedded.server.describe(),
                redacted(self.redis_url),
                self._embedded.data_dir,
            )
            self._keeper = asyncio.get_running_loop().create_task(self._keep_redis(self._embedded))
        self._redis = connect_async(self.redis_url)
        keys = RedisKeys(config.prefix)
        if not is_cluster_url(self.redis_url):  # first: the keys of an earlier version are kept
            await migrate_key_layout(self._redis, keys)
        if config.auth == "keys":
            store = KeyStore(self._redis, config.prefix)
            self.admin_key_file = await bootstrap_admin_key(store, config.data_dir)
        await self._redis.setnx(keys.partitions, config.partitions)
        partitions = int(await self._redis.get(keys.partitions))  # type: ignore[arg-type]
        if partitions != config.partitions:
            log.warning(
                "using the %d partitions fixed at first start (not %d): partitions never change",
                partitions,
                config.partitions,
            )

        if not ray.is_initialized():
            local_ray.init(  # a runtime started here listens on loopback only
                address=config.ray_address,
                num_cpus=None if config.ray_address else config.ray_cpus,
                include_dashboard=False,
                namespace="omnistock",
                logging_level=logging.WARNING,
                log_to_driver=True,
            )
            self._started_ray = True
        placements = PlacementStore(self._redis, keys)
        earlier = await placements.read()
        # Before the placement is written: another service on this prefix keeps its own.
        await self._wait_until_free(shard_name(config.prefix, 0))
        placement = await placements.start_with(config.shards, partitions)
        self.shards = [await self._start_shard(index, placement) for index in range(config.shards)]
        if earlier is not None and earlier.shards > config.shards:
            # Shards a change of the count started in a run that ended without stopping them.
            namespace = ray.get_runtime_context().namespace
            await asyncio.to_thread(stop_shards, config.prefix, namespace, earlier.shards, config.shards)
        await asyncio.gather(*(shard.ping.remote() for shard in self.shards))
        # For gateways started on their own (serve_standalone_gateway): how many shards to
        # look up by name, and in which Ray namespace.
        await self._redis.hset(
            keys.service, mapping={"shards": config.shards, "namespace": ray.get_runtime_context().namespace}
        )

        self.gateway = Gateway(config, 0, self.redis_url, self.shards, partitions, self.metrics)
        await self.gateway.start(apply_network_file=True)
        if config.gateways > 1:
            context = ray.get_runtime_context()
            joined = dataclasses.replace(
                config,
                port=self.gateway.port,
                redis_url=self.redis_url,
                ray_address=context.gcs_address,
                partitions=partitions,
                network_file=None,
            )
            self.supervisor = GatewaySupervisor(
                lambda index: json.dumps(
                    {"config": joined.to_json(), "index": index, "namespace": context.namespace}
                ),
                range(1, config.gateways),
            )
            await self.supervisor.start()
        log.info(
            "omnistock serving on %s:%d (%d gateway(s), %d shards, %d partitions) in %.1fs",
            config.host,
            self.port,
            config.gateways,
            config.shards,
            partitions,
            time.perf_counter() - started,
        )
        return self

    async def _wait_until_free(self, name: str, wait: float = 30.0) -> None:
        """Until no actor has this name (one left by a crashed service goes with its runtime)."""
        namespace = ray.get_runtime_context().namespace
        deadline = time.monotonic() + wait
        while True:
            try:
                await asyncio.to_thread(ray.get_actor, name, namespace)
            except ValueError:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"shard actor {name} already exists on this Ray cluster:"
                    " is another omnistock with the same --prefix running?"
                )
            await asyncio.sleep(0.5)

    async def _start_shard(self, index: int, placement: Placement, wait: float = 30.0) -> Any:
        """A named shard actor (gateway/runtime/shard_control.py). The name guards against two
        services owning the same partitions on one Ray cluster; a name left by a crashed
        service is waited out. Gateways find it by name and reach its batch port at the
        address it reports."""
        config = self.config
        shard_config = ShardConfig(
            index=index,
            partitions=placement.partitions_of(index),
            redis_url=self.redis_url,
            prefix=config.prefix,
            pending_seconds=config.pending_seconds,
            snapshot_every=config.snapshot_every,
            snapshot_levels=config.snapshot_levels,
            redis_replicas=config.redis_replicas,
            redis_wait_ms=config.redis_wait_ms,
        )
        deadline = time.monotonic() + wait
        while True:
            try:
                return ShardActor.options(**shard_options(config.prefix, index)).remote(shard_config)
            except ValueError as error:  # the name is taken
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"shard actor {shard_name(config.prefix, index)} already exists on this Ray"
                        " cluster: is another omnistock with the same --prefix running?"
                    ) from error
                await asyncio.sleep(0.5)

    async def _keep_redis(self, embedded: EmbeddedRedis) -> None:
        """Start the embedded redis-server again, from its AOF on the same port, whenever it
        ends, until `stop`. On this task's thread (the loop's), which lives as long as the
        service: redis-server is told to end when the thread that started it ends."""
        delay = 0.0
        while True:
            while (code := embedded.returncode) is None:
                await asyncio.sleep(REDIS_WATCH)
            lived = time.monotonic() - embedded.started_at
            delay = restart_delay(delay, lived, REDIS_RESTART_MAX_DELAY, settled=0.0)
            log.error(
                "embedded redis-server (pid %s) ended (%s) after %.0f s; starting it again from its AOF"
                " on port %d in %.1f s",
                embedded.pid,
                exit_text(code),
                lived,
                embedded.port,
                delay,
            )
            while True:
                await asyncio.sleep(delay)
                try:
                    await embedded.restart()
                except Exception as error:
                    delay = restart_delay(delay, 0.0, REDIS_RESTART_MAX_DELAY, settled=0.0)
                    log.error(
                        "embedded redis-server did not start again: %s; next try in %.1f s", error, delay
                    )
                    continue
                log.warning(
                    "embedded redis-server serving again on port %d (pid %s)", embedded.port, embedded.pid
                )
                break

    async def check(self) -> list[str]:
        """Conservation check over every shard."""
        assert self.router is not None
        return await self.router.check()

    async def stop(self, grace: float = 5.0) -> None:
        """Stop taking calls at every gateway, drain those in flight, then stop shards and Redis."""
        gateways = []
        if self.supervisor is not None:
            gateways.append(self.supervisor.stop(grace))
        if self.gateway is not None:
            gateways.append(self.gateway.stop(grace))
        await asyncio.gather(*gateways)
        for shard in self.shards:
            ray.kill(shard, no_restart=True)
        if self._redis is not None and self.shards:
            # Shards a change of the shard count started (detached): stopped by name.
            with contextlib.suppress(*REDIS_ERRORS):
                stored = await PlacementStore(self._redis, RedisKeys(self.config.prefix)).read()
                if stored is not None and stored.shards > len(self.shards):
                    namespace = ray.get_runtime_context().namespace
                    await asyncio.to_thread(stop_shards, self.config.prefix, namespace, stored.shards)
        self.shards = []
        if self._redis is not None:
            await self._redis.aclose()
        if self._started_ray:
            ray.shutdown()
        if self._keeper is not None:
            self._keeper.cancel()
            await asyncio.gather(self._keeper, return_exceptions=True)
            self._keeper = None
        if self._embedded is not None:
            self._embedded.stop()


ADMIN_KEY_FILE = "admin.key"
"""In the data dir, mode 0600: the token of the key `admin` (every scope), made at the first
start with auth on, so there is a key to create the others with (`omnistock keys create`)."""


async def bootstrap_admin_key(keys: KeyStore, data_dir: Path) -> Path | None:
    """The admin key's file: made (with the key) when no key exists yet; else the file an
    earlier start made, if it is still there (None if someone removed it, as they should
    once they made their own keys)."""
    path = data_dir / ADMIN_KEY_FILE
    if await keys.keys():
        return path if path.exists() else None
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    every_scope = [scope.value for scope in Scope]
    _, token = await keys.create("admin", every_scope, asserts_customers=True, by="bootstrap")
    path.unlink(missing_ok=True)  # left by a run on another (now empty) Redis
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(token + "\n")
    log.warning("no API key existed: created the key 'admin' with every scope; its token is in %s", path)
    return path


async def follow_placement(router: ShardRouter, every: float) -> None:
    """Read the stored placement every `every` seconds and route by it when it changed (a call
    sent to a shard that lost its partition makes the router read it at once, too)."""
    while True:
        await asyncio.sleep(every)
        await router.refresh()


async def serve_gateway(settings: str) -> None:
    """One more gateway of a running `omnistock serve` (see gateway/runtime/supervisor.py): join its
    Ray and Redis, find its shards, serve its port until SIGTERM or until serve is gone."""
    about = json.loads(settings)
    config = ServiceConfig.from_json(about["config"])
    index, namespace = int(about["index"]), about["namespace"]
    parent = os.getppid()
    local_ray.init(  # the service's runtime: on loopback, it stays there
        address=config.ray_address,
        namespace=namespace,
        logging_level=logging.WARNING,
        log_to_driver=False,  # serve prints the shards' logs once
    )
    stop = asyncio.Event()
    # Installed after ray.init, which replaces the SIGTERM handler. Ctrl-C reaches the whole
    # process group: serve stops its gateways itself, in order, so this one ignores SIGINT.
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    shards = [ray.get_actor(shard_name(config.prefix, i), namespace=namespace) for i in range(config.shards)]
    gateway = Gateway(config, index, config.redis_url or "", shards, config.partitions)
    try:
        await gateway.start()
        settle_heap()
        print(READY + json.dumps({"metrics_port": gateway.metrics_port or None}), flush=True)
        while not stop.is_set():
            if os.getppid() != parent:  # serve is gone (killed): no one would stop this gateway
                log.warning("gateway %d: omnistock serve is gone; stopping", index)
                break
            with contextlib.suppress(TimeoutError):  # asyncio.timeout: see ViewSync._run
                async with asyncio.timeout(0.5):
                    await stop.wait()
    finally:
        # A stop that hangs (Ray gone with a killed serve) must not leave this process behind.
        faulthandler.dump_traceback_later(60, exit=True)
        await gateway.stop(grace=5)
        ray.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()


class NoService(RuntimeError):
    """No omnistock service has started on this Redis under this prefix."""


class ServiceGone(RuntimeError):
    """serve stopped the shards a standalone gateway was started against (it stopped, or
    started again with new ones): the gateway ends, for its supervisor to start it again."""


SHARDS_CHECK = 2.0
"""Seconds between two looks, by a standalone gateway, at whether its shards are still there."""


def shards_replaced(first_shard: Any, prefix: str, namespace: str) -> bool:
    """Whether shard 0's name is gone or names another actor: serve stopped its shards, for
    good (a shard Ray restarts keeps its actor, so its handle stays equal). Shard 0 is the
    witness: a change of the shard count adds and removes only shards after it."""
    try:
        return bool(ray.get_actor(shard_name(prefix, 0), namespace=namespace) != first_shard)
    except ValueError:  # no actor by that name
        return True


async def serve_standalone_gateway(config: ServiceConfig) -> None:
    """A gateway on its own (`omnistock gateway --ray-address ADDR`), on any host of the
    cluster: it learns the running service's partitions, shard count and Ray namespace from
    Redis (RedisKeys.service, written by serve), takes an index of its own from Redis's
    counter, finds the shards by name and serves its port until SIGTERM or Ctrl-C, or until
    serve stops those shards (ServiceGone). Its view, feed versions and answer cache are its
    own, as every gateway's; clients spread over several gateways through a load balancer or
    DNS."""
    keys = RedisKeys(config.prefix)
    redis_url = config.redis_url or ""
    client = connect_async(redis_url)
    try:
        about = await client.hgetall(keys.service)
        partitions = await client.get(keys.partitions)
        if b"shards" not in about or partitions is None:
            raise NoService(
                f"no omnistock service with prefix {config.prefix!r} has started on {redacted(redis_url)}:"
                " start `omnistock serve` first"
            )
        index = standalone_gateway_index(await client.hincrby(keys.service, "gateways", 1))
    finally:
        await client.aclose()
    raw_namespace = about[b"namespace"]
    namespace = raw_namespace.decode() if isinstance(raw_namespace, bytes) else str(raw_namespace)
    config = dataclasses.replace(
        config, shards=int(about[b"shards"]), partitions=int(partitions), gateways=1, network_file=None
    )
    local_ray.init(
        address=config.ray_address,
        namespace=namespace,
        logging_level=logging.WARNING,
        log_to_driver=False,  # the shards' logs are serve's to print
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):  # after ray.init, which replaces SIGTERM's handler
        loop.add_signal_handler(signum, stop.set)
    gateway: Gateway | None = None
    try:
        shards = [
            ray.get_actor(shard_name(config.prefix, i), namespace=namespace) for i in range(config.shards)
        ]
        gateway = Gateway(config, index, redis_url, shards, config.partitions)
        await gateway.start()
        settle_heap()
        log.warning(
            "omnistock gateway %d serving on %s:%d (%d shards, %d partitions, Ray %s)",
            index,
            config.host,
            gateway.port,
            config.shards,
            config.partitions,
            config.ray_address,
        )
        while not stop.is_set():
            if await asyncio.to_thread(shards_replaced, shards[0], config.prefix, namespace):
                raise ServiceGone(
                    f"gateway {index}: the service's shards were stopped (serve stopped or started"
                    " again); start this gateway again to serve the new ones"
                )
            with contextlib.suppress(TimeoutError):  # asyncio.timeout: see ViewSync._run
                async with asyncio.timeout(SHARDS_CHECK):
                    await stop.wait()
    finally:
        faulthandler.dump_traceback_later(60, exit=True)  # a stop that hangs must not stay behind
        if gateway is not None:
            await gateway.stop(grace=5)
        ray.shutdown()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
