"""Start-up and shutdown of a whole omnistock service: Redis, Ray shards, gRPC, metrics."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import ray
import redis.asyncio as aioredis
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server

from availability.feed import ChangeHistory
from availability.network_file import parse_network_file
from availability.view import NetworkView
from gateway.convert import Limits
from gateway.metrics import Metrics
from gateway.network_store import NetworkStore
from gateway.redis_server import EmbeddedRedis
from gateway.routing import partition_of, partitions_of_shard
from gateway.servicers import (
    AvailabilityServicer,
    Backend,
    InventoryServicer,
    NetworkServicer,
    ReservationServicer,
)
from gateway.shard_stats import ShardStatsPoller
from gateway.shards import ShardRouter
from gateway.view_sync import ViewSync
from gateway.watch import WatchHub
from protos.gen.omnistock.v1 import (
    availability_pb2,
    availability_pb2_grpc,
    inventory_pb2,
    inventory_pb2_grpc,
    network_pb2,
    network_pb2_grpc,
    reservation_pb2,
    reservation_pb2_grpc,
)
from reservations.actor import Shard, ShardConfig
from reservations.coordinator import ReservationCoordinator
from reservations.journal import RedisKeys

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceConfig:
    host: str = "127.0.0.1"
    """Interface for gRPC and metrics; loopback unless told otherwise."""
    port: int = 50051
    """gRPC port; 0 picks a free one."""
    metrics_port: int | None = 9464
    """Prometheus /metrics port; None disables it, 0 picks a free one."""
    shards: int = field(default_factory=lambda: os.cpu_count() or 1)
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
    expiry_grace: float = 1.0
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


ShardActor = ray.remote(Shard)


class Service:
    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self.metrics = Metrics()
        self.port = 0
        self.metrics_port = 0
        self.redis_url = ""
        self._embedded: EmbeddedRedis | None = None
        self._redis: aioredis.Redis | None = None
        self._started_ray = False
        self._server: grpc.aio.Server | None = None
        self._metrics_server: Any = None
        self._health = health.aio.HealthServicer()
        self._view_sync: ViewSync | None = None
        self._stats: asyncio.Task[None] | None = None
        self.shards: list[Any] = []
        self.backend: Backend | None = None

    async def start(self) -> Service:
        config = self.config
        started = time.perf_counter()
        if config.redis_url:
            self.redis_url = config.redis_url
        else:
            self._embedded = EmbeddedRedis(config.data_dir / "redis", fsync=config.redis_fsync)
            self._embedded.start()
            self.redis_url = self._embedded.url
            log.info("embedded redis-server on %s (data in %s)", self.redis_url, self._embedded.data_dir)
        self._redis = aioredis.Redis.from_url(self.redis_url)
        keys = RedisKeys(config.prefix)
        await self._redis.setnx(keys.partitions, config.partitions)
        partitions = int(await self._redis.get(keys.partitions))  # type: ignore[arg-type]
        if partitions != config.partitions:
            log.warning(
                "using the %d partitions fixed at first start (not %d): partitions never change",
                partitions,
                config.partitions,
            )

        if not ray.is_initialized():
            ray.init(
                address=config.ray_address,
                num_cpus=None if config.ray_address else config.ray_cpus,
                include_dashboard=False,
                namespace="omnistock",
                logging_level=logging.WARNING,
                log_to_driver=True,
            )
            self._started_ray = True
        self.shards = [await self._start_shard(index, partitions) for index in range(config.shards)]
        await asyncio.gather(*(shard.ping.remote() for shard in self.shards))

        router = ShardRouter(self.shards, partitions, self.metrics)
        self.metrics.watch_queues(router.queue_depths())
        stats = ShardStatsPoller(self.shards, self.metrics, config.stats_interval)
        await stats.poll_once()
        self._stats = asyncio.get_running_loop().create_task(stats.run())
        coordinator = ReservationCoordinator(
            router.execute, lambda key: partition_of(key, partitions), time.time
        )
        network = NetworkStore(self._redis, keys, config.limits)
        await network.load()
        if config.network_file is not None:
            parsed = parse_network_file(config.network_file.read_text())
            await network.change(
                parsed.nodes, parsed.groups, parsed.channels, purchase_limits=parsed.purchase_limits
            )
        first_version = int(time.time() * 1000)
        view = NetworkView(len(self.shards), first_version)
        watch = WatchHub(view, ChangeHistory(first_version))
        self._view_sync = ViewSync(view, self.shards, self.metrics, config.view_heartbeat, watch.on_change)
        await self._view_sync.sync_once()
        router.on_changes = self._view_sync.note
        self._view_sync.start()
        self.backend = Backend(router, coordinator, network, view, watch, self.metrics, config.limits)

        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", config.limits.max_message_bytes),
                ("grpc.max_send_message_length", config.limits.max_message_bytes),
                ("grpc.so_reuseport", 0),
            ]
        )
        inventory_pb2_grpc.add_InventoryServiceServicer_to_server(InventoryServicer(self.backend), server)
        availability_pb2_grpc.add_AvailabilityServiceServicer_to_server(
            AvailabilityServicer(self.backend), server
        )
        reservation_pb2_grpc.add_ReservationServiceServicer_to_server(
            ReservationServicer(self.backend), server
        )
        network_pb2_grpc.add_NetworkServiceServicer_to_server(NetworkServicer(self.backend), server)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        services = [
            inventory_pb2.DESCRIPTOR.services_by_name["InventoryService"].full_name,
            availability_pb2.DESCRIPTOR.services_by_name["AvailabilityService"].full_name,
            reservation_pb2.DESCRIPTOR.services_by_name["ReservationService"].full_name,
            network_pb2.DESCRIPTOR.services_by_name["NetworkService"].full_name,
            health.SERVICE_NAME,
            reflection.SERVICE_NAME,
        ]
        reflection.enable_server_reflection(services, server)
        self.port = server.add_insecure_port(f"{config.host}:{config.port}")
        if self.port == 0:
            raise RuntimeError(f"cannot listen on {config.host}:{config.port}; is the port in use?")
        await server.start()
        self._server = server
        for name in ["", *services[:4]]:
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        if config.metrics_port is not None:
            self._metrics_server, _ = start_http_server(
                config.metrics_port, addr=config.host, registry=self.metrics.registry
            )
            self.metrics_port = self._metrics_server.server_port
        log.info(
            "omnistock serving on %s:%d (%d shards, %d partitions) in %.1fs",
            config.host,
            self.port,
            config.shards,
            partitions,
            time.perf_counter() - started,
        )
        return self

    async def _start_shard(self, index: int, partitions: int, wait: float = 30.0) -> Any:
        """A named shard actor. The name guards against two services owning the same
        partitions on one Ray cluster; a name left by a crashed service is waited out."""
        config = self.config
        shard_config = ShardConfig(
            index=index,
            partitions=partitions_of_shard(index, config.shards, partitions),
            redis_url=self.redis_url,
            prefix=config.prefix,
            expiry_grace=config.expiry_grace,
            snapshot_every=config.snapshot_every,
            snapshot_levels=config.snapshot_levels,
        )
        deadline = time.monotonic() + wait
        while True:
            try:
                return ShardActor.options(
                    name=f"{config.prefix}-shard-{index}",
                    max_restarts=-1,
                    max_task_retries=3,
                    num_cpus=0,
                ).remote(shard_config)
            except ValueError as error:  # the name is taken
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"shard actor {config.prefix}-shard-{index} already exists on this Ray cluster:"
                        " is another omnistock with the same --prefix running?"
                    ) from error
                await asyncio.sleep(0.5)

    async def check(self) -> list[str]:
        """Conservation check over every shard."""
        assert self.backend is not None
        return await self.backend.router.check()

    async def stop(self, grace: float = 5.0) -> None:
        """Stop taking calls, drain those in flight, then stop shards and Redis."""
        await self._health.enter_graceful_shutdown()
        if self._server is not None:
            await self._server.stop(grace)
        if self._view_sync is not None:
            await self._view_sync.stop()
        if self._stats is not None:
            self._stats.cancel()
            await asyncio.gather(self._stats, return_exceptions=True)
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
            self._metrics_server.server_close()
        for shard in self.shards:
            ray.kill(shard, no_restart=True)
        self.shards = []
        if self._redis is not None:
            await self._redis.aclose()
        if self._started_ray:
            ray.shutdown()
        if self._embedded is not None:
            self._embedded.stop()
