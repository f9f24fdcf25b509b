"""Redis URLs: a cluster's startup nodes and credentials, and clear errors for bad ones."""

from __future__ import annotations

import pytest
import redis
import redis.asyncio as aioredis
import redis.asyncio.cluster

from omnistock.reservations.shard.redis_connect import (
    ClusterUrl,
    RedisUrlError,
    check_url,
    connect_async,
    connect_sync,
    is_cluster_url,
    parse_cluster_url,
)


def test_a_cluster_url_gives_every_startup_node_in_order() -> None:
    parsed = parse_cluster_url("redis+cluster://:s%40cret@10.0.0.1:7000,10.0.0.2:7001,[::1]:7002/")
    assert parsed == ClusterUrl(
        nodes=(("10.0.0.1", 7000), ("10.0.0.2", 7001), ("::1", 7002)), password="s@cret"
    )


def test_user_password_and_tls_with_its_ca() -> None:
    parsed = parse_cluster_url("rediss+cluster://omnistock:pw@cache:6380?ssl_ca_certs=/etc/ca.pem")
    assert parsed.username == "omnistock" and parsed.password == "pw"
    assert parsed.tls and parsed.ssl_ca_certs == "/etc/ca.pem"
    assert parsed.nodes == (("cache", 6380),)


def test_without_credentials_or_path() -> None:
    parsed = parse_cluster_url("redis+cluster://127.0.0.1:7000")
    assert parsed == ClusterUrl(nodes=(("127.0.0.1", 7000),))
    assert parse_cluster_url("redis+cluster://127.0.0.1:7000/0").nodes == (("127.0.0.1", 7000),)


@pytest.mark.parametrize(
    ("url", "part"),
    [
        ("redis+cluster://", "hosts"),
        ("redis+cluster://:pw@/", "hosts"),
        ("redis+cluster://cache/", "hosts"),  # no port
        ("redis+cluster://cache:port/", "hosts"),
        ("redis+cluster://a:7000,b:70000/", "hosts"),
        ("redis+cluster://a:7000,/", "hosts"),
        ("redis+cluster://[::1:7000/", "hosts"),
        ("redis+cluster://a:7000/3", "path"),
        ("redis+cluster://pw@a:7000/", "credentials"),
        ("redis+cluster://a:7000/?db=2", "query"),
        ("redis+cluster://a:7000/?ssl_ca_certs=/ca.pem", "query"),
        ("http+cluster://a:7000/", "scheme"),
    ],
)
def test_a_bad_cluster_url_names_the_part_at_fault(url: str, part: str) -> None:
    with pytest.raises(RedisUrlError, match=rf"^{part}:"):
        parse_cluster_url(url)


def test_the_error_never_shows_the_password() -> None:
    with pytest.raises(RedisUrlError) as raised:
        parse_cluster_url("redis+cluster://:topsecret@a:nope/")
    assert "topsecret" not in str(raised.value)


def test_single_redis_urls_are_left_to_redis_py() -> None:
    for url in ("redis://:pw@127.0.0.1:6379/0", "rediss://cache:6380/1", "unix:///tmp/redis.sock"):
        assert not is_cluster_url(url)
        check_url(url)
    with pytest.raises(RedisUrlError, match=r"^scheme:"):
        check_url("http://cache:6379/")


def test_clients_of_each_kind_with_the_options_asked_for() -> None:
    # No connection is made until the first command: only which client, and its settings.
    single = connect_sync("redis://:pw@127.0.0.1:6399/2", socket_timeout=3.0, retries=0)
    assert isinstance(single, redis.Redis)
    kwargs = single.connection_pool.connection_kwargs
    assert kwargs["db"] == 2 and kwargs["password"] == "pw" and kwargs["socket_timeout"] == 3.0
    retry = single.get_retry()
    assert retry is not None and retry.get_retries() == 0
    assert isinstance(connect_async("redis://127.0.0.1:6399/0"), aioredis.Redis)
    cluster_async = connect_async("redis+cluster://:pw@127.0.0.1:6399", socket_timeout=2.0, retries=0)
    assert isinstance(cluster_async, redis.asyncio.cluster.RedisCluster)
    assert cluster_async.retry.get_retries() == 0


def test_a_sync_cluster_client_asks_its_startup_nodes_at_once() -> None:
    # The sync RedisCluster learns the slots as it is made: with no node there it says so.
    with pytest.raises(redis.exceptions.RedisClusterUnreachableError, match=r"127\.0\.0\.1:1\b"):
        connect_sync("redis+cluster://127.0.0.1:1/", socket_connect_timeout=0.2, retries=0)
    with pytest.raises(RedisUrlError, match=r"^hosts:"):
        connect_sync("redis+cluster://127.0.0.1/")


def test_serve_takes_the_replica_settings_into_the_service_config() -> None:
    from omnistock.cli.app import build_parser
    from omnistock.cli.serve import service_config

    parser = build_parser()
    args = parser.parse_args(["serve", "--redis-replicas", "2", "--redis-wait-ms", "300"])
    config = service_config(args)
    assert (config.redis_replicas, config.redis_wait_ms) == (2, 300)
    default = service_config(parser.parse_args(["serve"]))
    assert (default.redis_replicas, default.redis_wait_ms) == (0, 1000)
    for bad in (["--redis-replicas", "-1"], ["--redis-wait-ms", "0"]):
        with pytest.raises(SystemExit):
            parser.parse_args(["serve", *bad])


def test_a_service_refuses_a_wait_past_the_shards_redis_timeout_and_a_bad_url() -> None:
    from omnistock.gateway.runtime.service import Service, ServiceConfig

    with pytest.raises(ValueError, match=r"redis_wait_ms must be within 1\.\.4999, got 5000"):
        Service(ServiceConfig(redis_wait_ms=5000))
    with pytest.raises(RedisUrlError, match=r"^hosts:"):
        Service(ServiceConfig(redis_url="redis+cluster://:pw@cache/"))
