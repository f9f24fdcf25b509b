"""Health, reflection and metrics of a running service."""

from __future__ import annotations

import contextlib
import urllib.request
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from omnistock.client import OmnistockClient, OmnistockRpcError, level, line
from tests.integration.conftest import NODES


async def test_health_reflection_and_metrics(make_service: Any) -> None:
    service = await make_service(metrics_port=0)
    target = f"127.0.0.1:{service.port}"
    async with grpc.aio.insecure_channel(target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        reply = await health.Check(health_pb2.HealthCheckRequest(service=""))
        assert reply.status == health_pb2.HealthCheckResponse.SERVING

        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        async for answer in stub.ServerReflectionInfo(iter([request])):
            names = {s.name for s in answer.list_services_response.service}
            break
        assert {"omnistock.v1.ReservationService", "omnistock.v1.InventoryService"} <= names

    async with OmnistockClient(target) as client:
        await client.put_nodes(NODES)
        await client.set_stock([level("M", "DC-1", 1)])
        await client.reserve("m1", [line("M", "DC-1", 1)])
        with contextlib.suppress(OmnistockRpcError):
            await client.reserve("m2", [line("M", "DC-1", 1)])

    with urllib.request.urlopen(f"http://127.0.0.1:{service.metrics_port}/metrics") as response:
        text = response.read().decode()
    metrics = [row for row in text.splitlines() if row.startswith("omnistock_") and "_bucket" not in row]
    assert 'omnistock_rpc_requests_total{code="OK",method="Reserve"} 1.0' in text, metrics
    assert 'omnistock_rpc_requests_total{code="FAILED_PRECONDITION",method="Reserve"} 1.0' in text
    assert 'omnistock_reservations_total{outcome="held"} 1.0' in text
    assert 'omnistock_reservations_total{outcome="refused_short"} 1.0' in text
    assert "omnistock_shard_batch_commands_bucket" in text
    assert "omnistock_journal_write_seconds_bucket" in text
    staleness = next(
        float(row.split()[1])
        for row in text.splitlines()
        if row.startswith("omnistock_view_staleness_seconds ")
    )
    assert 0 <= staleness < 5, metrics  # the view syncs within 250 ms; a generous sanity bound
    assert "sku=" not in text and "M" not in {line.split("{")[0] for line in text.splitlines()}
