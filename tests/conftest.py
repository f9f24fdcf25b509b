"""Shared fixtures: one real redis-server and one Ray runtime per test session."""

from __future__ import annotations

import asyncio
import logging
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import pytest_asyncio

from omnistock.gateway.runtime.embedded_redis import EmbeddedRedis

if TYPE_CHECKING:
    from tests.redis_cluster import RedisCluster


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    """3 masters and 3 replicas on loopback (tests/redis_cluster.py); started only when asked for."""
    from tests.redis_cluster import RedisCluster

    cluster = RedisCluster(tmp_path_factory.mktemp("redis-cluster")).start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def ray_runtime() -> Iterator[None]:
    import ray

    from omnistock.gateway.runtime import local_ray

    local_ray.init(  # on loopback only, as `omnistock serve` starts it
        num_cpus=2,
        include_dashboard=False,
        namespace="omnistock",
        logging_level=logging.WARNING,
        log_to_driver=False,
    )
    yield
    ray.shutdown()


ServiceFactory = Callable[..., Awaitable[Any]]
STOP_SECONDS = 60.0


@asynccontextmanager
async def services(redis_url: str) -> AsyncIterator[ServiceFactory]:
    """Start services on the shared Redis and Ray, each under its own key prefix."""
    from omnistock.gateway.runtime.service import Service, ServiceConfig

    started: list[Service] = []

    async def start(**overrides: Any) -> Service:
        settings: dict[str, Any] = {
            "port": 0,
            "metrics_port": None,
            "shards": 2,
            "partitions": 64,
            "redis_url": redis_url,
            "prefix": f"test-{uuid.uuid4().hex[:12]}",
            "data_dir": Path("unused"),
        }
        settings.update(overrides)
        service = await Service(ServiceConfig(**settings)).start()
        started.append(service)
        return service

    try:
        yield start
    finally:
        for service in started:
            try:
                async with asyncio.timeout(STOP_SECONDS):
                    await service.stop(grace=1)
            except TimeoutError:
                # A stop that hangs is a defect: fail with where every task waits, not hang the run.
                for task in asyncio.all_tasks():
                    task.print_stack(file=sys.stderr)
                raise


@pytest_asyncio.fixture
async def make_service(redis_server: EmbeddedRedis, ray_runtime: None) -> AsyncIterator[ServiceFactory]:
    async with services(redis_server.url) as start:
        yield start


@pytest_asyncio.fixture(scope="module")
async def module_service(redis_server: EmbeddedRedis, ray_runtime: None) -> AsyncIterator[Any]:
    """One service for a whole module whose tests do not disturb each other."""
    async with services(redis_server.url) as start:
        yield await start()
