"""API keys at work on a real service: a missing or bad key is UNAUTHENTICATED, a key
without the scope PERMISSION_DENIED naming it, changes reach the guard within a second."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import pytest_asyncio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from omnistock.gateway.runtime.service import ADMIN_KEY_FILE
from omnistock.protos.gen.omnistock.v1 import (
    availability_pb2,
    availability_pb2_grpc,
    keys_pb2,
    keys_pb2_grpc,
    network_pb2,
    network_pb2_grpc,
)


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


@pytest_asyncio.fixture
async def secured(make_service: Any, tmp_path: Path) -> AsyncIterator[tuple[Any, grpc.aio.Channel, str]]:
    service = await make_service(auth="keys", data_dir=tmp_path)
    admin = (tmp_path / ADMIN_KEY_FILE).read_text().strip()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{service.port}") as channel:
        yield service, channel, admin


async def create_key(channel: grpc.aio.Channel, admin: str, name: str, *scopes: str, **more: Any) -> str:
    keys = keys_pb2_grpc.KeyServiceStub(channel)
    response = await keys.CreateKey(
        keys_pb2.CreateKeyRequest(name=name, scopes=scopes, **more), metadata=bearer(admin)
    )
    return str(response.token)


async def test_admin_key_is_made_once_with_mode_0600(secured: Any, tmp_path: Path) -> None:
    service, channel, admin = secured
    path = tmp_path / ADMIN_KEY_FILE
    assert service.admin_key_file == path
    assert path.stat().st_mode & 0o777 == 0o600
    listed = await keys_pb2_grpc.KeyServiceStub(channel).ListKeys(
        keys_pb2.ListKeysRequest(), metadata=bearer(admin)
    )
    assert [key.name for key in listed.keys] == ["admin"]
    assert admin not in str(listed)  # no secret, nor its hash's source, is listed


async def test_no_key_wrong_key_and_health(secured: Any) -> None:
    _, channel, admin = secured
    network = network_pb2_grpc.NetworkServiceStub(channel)
    for metadata in [(), bearer("osk_000000000000_nope"), bearer("garbage"), (("authorization", "Basic x"),)]:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await network.GetNetwork(network_pb2.GetNetworkRequest(), metadata=metadata)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    await network.GetNetwork(network_pb2.GetNetworkRequest(), metadata=bearer(admin))
    health = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    assert health.status == health_pb2.HealthCheckResponse.SERVING


async def test_a_scope_missing_is_named(secured: Any) -> None:
    _, channel, admin = secured
    reader = await create_key(channel, admin, "web-storefront", "availability:read")
    availability = availability_pb2_grpc.AvailabilityServiceStub(channel)
    await availability.GetAvailability(
        availability_pb2.GetAvailabilityRequest(skus=["SKU-1"]), metadata=bearer(reader)
    )
    network = network_pb2_grpc.NetworkServiceStub(channel)
    before = await network.GetNetwork(network_pb2.GetNetworkRequest(), metadata=bearer(admin))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await network.PutPurchaseLimits(
            network_pb2.PutPurchaseLimitsRequest(
                limits=[network_pb2.PurchaseLimit(sku="SKU-1", max_per_customer=1)]
            ),
            metadata=bearer(reader),
        )
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "network:admin" in (refused.value.details() or "")
    assert "key:web-storefront" in (refused.value.details() or "")
    after = await network.GetNetwork(network_pb2.GetNetworkRequest(), metadata=bearer(admin))
    assert after.network == before.network


async def test_revoked_and_rotated_keys_stop_within_a_second(secured: Any) -> None:
    _, channel, admin = secured
    token = await create_key(channel, admin, "order-service", "reservations:write", "network:read")
    network = network_pb2_grpc.NetworkServiceStub(channel)
    keys = keys_pb2_grpc.KeyServiceStub(channel)

    async def refused_after(credential: str) -> float:
        started = time.monotonic()
        while time.monotonic() - started < 10:
            try:
                await network.GetNetwork(network_pb2.GetNetworkRequest(), metadata=bearer(credential))
            except grpc.aio.AioRpcError as error:
                assert error.code() == grpc.StatusCode.UNAUTHENTICATED
                return time.monotonic() - started
            await asyncio.sleep(0.02)
        raise AssertionError("still accepted after 10 s")

    await network.GetNetwork(network_pb2.GetNetworkRequest(), metadata=bearer(token))
    rotated = await keys.RotateKey(
        keys_pb2.RotateKeyRequest(name="order-service", grace_seconds=60), metadata=bearer(admin)
    )
    # Within the grace both secrets open the key; the new one at once (it changed the store).
    await asyncio.sleep(0.6)
    await network.GetNetwork(network_pb2.GetNetworkRequest(), metadata=bearer(token))
    await network.GetNetwork(network_pb2.GetNetworkRequest(), metadata=bearer(rotated.token))
    again = await keys.RotateKey(keys_pb2.RotateKeyRequest(name="order-service"), metadata=bearer(admin))
    assert await refused_after(rotated.token) < 2.0  # the promise is 1 s; 2 s is the sanity bound
    await network.GetNetwork(network_pb2.GetNetworkRequest(), metadata=bearer(again.token))
    revoked = await keys.RevokeKey(keys_pb2.RevokeKeyRequest(name="order-service"), metadata=bearer(admin))
    assert revoked.key.HasField("revoked_at")
    assert await refused_after(again.token) < 2.0


async def test_bad_key_requests_are_invalid_argument(secured: Any) -> None:
    _, channel, admin = secured
    keys = keys_pb2_grpc.KeyServiceStub(channel)
    for request in [
        keys_pb2.CreateKeyRequest(name="Bad Name", scopes=["availability:read"]),
        keys_pb2.CreateKeyRequest(name="ok-name", scopes=["everything:write"]),
        keys_pb2.CreateKeyRequest(name="ok-name"),
        keys_pb2.CreateKeyRequest(name="ok-name", scopes=["availability:read"], channels=["no-such-channel"]),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await keys.CreateKey(request, metadata=bearer(admin))
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    listed = await keys.ListKeys(keys_pb2.ListKeysRequest(), metadata=bearer(admin))
    assert [key.name for key in listed.keys] == ["admin"]
    await create_key(channel, admin, "twice", "availability:read")
    with pytest.raises(grpc.aio.AioRpcError) as taken:
        await create_key(channel, admin, "twice", "availability:read")
    assert taken.value.code() == grpc.StatusCode.ALREADY_EXISTS


async def test_another_gateway_sees_a_revocation_within_a_second(redis_server: Any) -> None:
    """Two gateways' key stores on one Redis: a key revoked through one stops at the other
    by its `follow` loop alone (no announcement between them)."""
    import redis.asyncio as aioredis

    from omnistock.gateway.grpc.guard import Authenticator, Unauthenticated
    from omnistock.gateway.grpc.key_store import KeyStore

    prefix = f"test-keys-{time.monotonic_ns()}"
    client = aioredis.Redis.from_url(redis_server.url)
    here, there = KeyStore(client, prefix), KeyStore(client, prefix)
    _, token = await here.create("marketplace-feed", ["availability:read"])
    authenticator = Authenticator()
    follower = asyncio.get_running_loop().create_task(there.follow(authenticator.replace_keys))
    try:
        started = time.monotonic()
        while True:  # the key reaches the other gateway
            try:
                authenticator.caller(token)
                break
            except Unauthenticated:
                assert time.monotonic() - started < 2.0
                await asyncio.sleep(0.01)
        await here.revoke("marketplace-feed")
        revoked_at = time.monotonic()
        while True:
            try:
                authenticator.caller(token)
            except Unauthenticated:
                break
            await asyncio.sleep(0.01)
        assert time.monotonic() - revoked_at < 1.0
    finally:
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)
        await client.aclose()
