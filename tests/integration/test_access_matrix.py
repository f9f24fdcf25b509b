"""The deny matrix: every RPC of every omnistock service, over TLS, with no key, a wrong key,
a revoked key and a key of each single scope. Each answer is OK, UNAUTHENTICATED or
PERMISSION_DENIED (naming the scope) as METHOD_SCOPES and the scopes' implications say,
and a refused call changes nothing. Then channel-bound keys, customer ids and JWTs."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric import ec
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from google.protobuf.timestamp_pb2 import Timestamp

from omnistock.cli.certs import make_dev_certificates
from omnistock.gateway.grpc.guard import METHOD_SCOPES
from omnistock.gateway.runtime.service import ADMIN_KEY_FILE
from omnistock.gateway.usecases.access import Scope, expand
from omnistock.protos.gen.omnistock.v1 import (
    availability_pb2,
    common_pb2,
    events_pb2,
    inventory_pb2,
    keys_pb2,
    network_pb2,
    reservation_pb2,
    shards_pb2,
)

SERVICES = [
    descriptor
    for module in (
        availability_pb2,
        inventory_pb2,
        network_pb2,
        reservation_pb2,
        keys_pb2,
        events_pb2,
        shards_pb2,
    )
    for descriptor in module.DESCRIPTOR.services_by_name.values()
]
METHODS = {
    f"/{service.full_name}/{method.name}": method for service in SERVICES for method in service.methods
}
V1 = "/omnistock.v1."


def now_stamp(offset: float = 0.0) -> Timestamp:
    stamp = Timestamp()
    stamp.FromNanoseconds(int((time.time() + offset) * 1e9))
    return stamp


class Api:
    """Any method by its path, on one channel, with a bearer token per call."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.channel = channel

    async def call(self, path: str, request: Any, token: str | None) -> Any:
        method = METHODS[path]
        response_class = GetMessageClass(method.output_type)
        metadata = (("authorization", f"Bearer {token}"),) if token else ()
        if method.client_streaming:
            stub = self.channel.stream_unary(
                path,
                request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=response_class.FromString,
            )
            return await stub(iter(request), metadata=metadata, timeout=30)
        if method.server_streaming:
            stub_stream = self.channel.unary_stream(
                path,
                request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=response_class.FromString,
            )
            call = stub_stream(request, metadata=metadata, timeout=30)
            try:
                return await call.read()  # the first answer (the state as it is) is enough
            finally:
                call.cancel()
        stub_unary = self.channel.unary_unary(
            path,
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=response_class.FromString,
        )
        return await stub_unary(request, metadata=metadata, timeout=30)


@dataclass
class World:
    api: Api
    admin: str
    tls: Any
    service: Any
    counter: itertools.count[int]

    def next(self) -> int:
        return next(self.counter)

    async def reserve(self, channel: str = "web", units: int = 2) -> str:
        reservation_id = f"r-{self.next()}"
        await self.api.call(
            V1 + "ReservationService/Reserve",
            reservation_pb2.ReserveRequest(
                reservation_id=reservation_id,
                lines=[reservation_pb2.ReservationLine(sku="SKU-A", node_id="DC-1", quantity=units)],
                channel_id=channel,
            ),
            self.admin,
        )
        return reservation_id

    async def step(self, method: str, request: Message) -> None:
        await self.api.call(V1 + "ReservationService/" + method, request, self.admin)

    async def snapshot(self, reservation_id: str | None) -> tuple[Any, ...]:
        """What a refused call must leave as it was: the network, stock, the reservation, keys."""
        network = await self.api.call(
            V1 + "NetworkService/GetNetwork", network_pb2.GetNetworkRequest(), self.admin
        )
        stock = await self.api.call(
            V1 + "AvailabilityService/GetAvailability",
            availability_pb2.GetAvailabilityRequest(
                skus=["SKU-A", "SKU-B", "SKU-C"], consistent=True, include_nodes=True
            ),
            self.admin,
        )
        for sku in stock.skus:
            for node in sku.nodes:
                node.ClearField("as_of")
        keys = await self.api.call(V1 + "KeyService/ListKeys", keys_pb2.ListKeysRequest(), self.admin)
        reservation = None
        if reservation_id:
            reservation = await self.api.call(
                V1 + "ReservationService/GetReservation",
                reservation_pb2.GetReservationRequest(reservation_id=reservation_id),
                self.admin,
            )
        network.network.ClearField("version")
        return network.network, list(stock.skus), keys, reservation


Prepared = tuple[Any, str | None]
"""A request and the reservation it touches (for the snapshot)."""


def requests() -> dict[str, Callable[[World], Awaitable[Prepared]]]:
    """A request per method that the admin key's call would answer OK, with what it needs made first."""

    async def none(_: World) -> None:
        return None

    def plain(make: Callable[[World], Any]) -> Callable[[World], Awaitable[Prepared]]:
        async def prepare(world: World) -> Prepared:
            return make(world), None

        return prepare

    async def held(world: World) -> str:
        return await world.reserve()

    async def confirmed(world: World) -> str:
        reservation_id = await world.reserve()
        await world.step("Confirm", reservation_pb2.ConfirmRequest(reservation_id=reservation_id))
        return reservation_id

    async def fulfilled(world: World) -> str:
        reservation_id = await confirmed(world)
        await world.step(
            "Fulfil",
            reservation_pb2.FulfilRequest(
                reservation_id=reservation_id,
                fulfilment_id=f"f-{world.next()}",
                lines=[reservation_pb2.ReservationLine(sku="SKU-A", node_id="DC-1", quantity=2)],
            ),
        )
        return reservation_id

    def on(
        state: Callable[[World], Awaitable[str]], make: Callable[[World, str], Any]
    ) -> Callable[[World], Awaitable[Prepared]]:
        async def prepare(world: World) -> Prepared:
            reservation_id = await state(world)
            return make(world, reservation_id), reservation_id

        return prepare

    async def deletable_group(world: World) -> Prepared:
        group_id = f"g-del-{world.next()}"
        await world.api.call(
            V1 + "NetworkService/PutGroups",
            network_pb2.PutGroupsRequest(
                groups=[network_pb2.NodeGroup(group_id=group_id, node_ids=["DC-1"])]
            ),
            world.admin,
        )
        return network_pb2.DeleteGroupsRequest(group_ids=[group_id]), None

    async def deletable_channel(world: World) -> Prepared:
        channel_id = f"c-del-{world.next()}"
        await world.api.call(
            V1 + "NetworkService/PutChannels",
            network_pb2.PutChannelsRequest(
                channels=[network_pb2.Channel(channel_id=channel_id, groups=["all"])]
            ),
            world.admin,
        )
        return network_pb2.DeleteChannelsRequest(channel_ids=[channel_id]), None

    async def throwaway_key(world: World) -> str:
        name = f"k-{world.next()}"
        await world.api.call(
            V1 + "KeyService/CreateKey",
            keys_pb2.CreateKeyRequest(name=name, scopes=["availability:read"]),
            world.admin,
        )
        return name

    async def rotate(world: World) -> Prepared:
        return keys_pb2.RotateKeyRequest(name=await throwaway_key(world)), None

    async def revoke(world: World) -> Prepared:
        return keys_pb2.RevokeKeyRequest(name=await throwaway_key(world)), None

    a_line = reservation_pb2.ReservationLine(sku="SKU-A", node_id="DC-1", quantity=1)
    del none
    return {
        V1 + "AvailabilityService/GetAvailability": plain(
            lambda w: availability_pb2.GetAvailabilityRequest(skus=["SKU-A"], channel_id="web")
        ),
        V1 + "AvailabilityService/FindPickupStores": plain(
            lambda w: availability_pb2.FindPickupStoresRequest(
                items=[availability_pb2.BasketItem(sku="SKU-A", quantity=1)], store_id="STORE-1", radius_km=50
            )
        ),
        V1 + "AvailabilityService/WatchAvailability": plain(
            lambda w: availability_pb2.WatchAvailabilityRequest(skus=["SKU-A"])
        ),
        V1 + "InventoryService/PutNodes": plain(
            lambda w: inventory_pb2.PutNodesRequest(
                nodes=[
                    common_pb2.Node(
                        node_id=f"N-{w.next()}", type=common_pb2.NODE_TYPE_DC, ships=True, enabled=True
                    )
                ]
            )
        ),
        V1 + "InventoryService/ListNodes": plain(lambda w: inventory_pb2.ListNodesRequest()),
        V1 + "InventoryService/SetStock": plain(
            lambda w: inventory_pb2.SetStockRequest(
                levels=[
                    inventory_pb2.StockLevel(
                        sku="SKU-B", node_id="DC-1", on_hand=50 + w.next(), as_of=now_stamp()
                    )
                ]
            )
        ),
        V1 + "InventoryService/AdjustStock": plain(
            lambda w: inventory_pb2.AdjustStockRequest(
                adjustments=[
                    inventory_pb2.StockAdjustment(
                        adjustment_id=f"adj-{w.next()}",
                        sku="SKU-A",
                        node_id="DC-1",
                        delta=1,
                        reason="cycle count",
                    )
                ]
            )
        ),
        V1 + "InventoryService/LoadStock": plain(
            lambda w: [
                inventory_pb2.LoadStockRequest(
                    levels=[
                        inventory_pb2.StockLevel(
                            sku="SKU-C", node_id="DC-1", on_hand=5 + w.next(), as_of=now_stamp()
                        )
                    ]
                )
            ]
        ),
        V1 + "InventoryService/ExpectSupply": plain(
            lambda w: inventory_pb2.ExpectSupplyRequest(
                supplies=[
                    inventory_pb2.InboundSupply(
                        supply_id=f"po-{w.next()}",
                        sku="SKU-A",
                        node_id="DC-1",
                        quantity=5,
                        expected_at=now_stamp(86_400),
                    )
                ]
            )
        ),
        V1 + "InventoryService/CheckConservation": plain(lambda w: inventory_pb2.CheckConservationRequest()),
        V1 + "NetworkService/GetNetwork": plain(lambda w: network_pb2.GetNetworkRequest()),
        V1 + "NetworkService/PutGroups": plain(
            lambda w: network_pb2.PutGroupsRequest(
                groups=[network_pb2.NodeGroup(group_id=f"g-{w.next()}", node_ids=["DC-1"])]
            )
        ),
        V1 + "NetworkService/DeleteGroups": deletable_group,
        V1 + "NetworkService/PutChannels": plain(
            lambda w: network_pb2.PutChannelsRequest(
                channels=[network_pb2.Channel(channel_id=f"c-{w.next()}", groups=["all"])]
            )
        ),
        V1 + "NetworkService/DeleteChannels": deletable_channel,
        V1 + "NetworkService/PutPurchaseLimits": plain(
            lambda w: network_pb2.PutPurchaseLimitsRequest(
                limits=[network_pb2.PurchaseLimit(sku="SKU-L", max_per_customer=1 + w.next())]
            )
        ),
        V1 + "ReservationService/Reserve": plain(
            lambda w: reservation_pb2.ReserveRequest(
                reservation_id=f"r-{w.next()}", lines=[a_line], channel_id="web"
            )
        ),
        V1 + "ReservationService/Confirm": on(
            held, lambda w, r: reservation_pb2.ConfirmRequest(reservation_id=r)
        ),
        V1 + "ReservationService/Release": on(
            held, lambda w, r: reservation_pb2.ReleaseRequest(reservation_id=r)
        ),
        V1 + "ReservationService/Extend": on(
            held, lambda w, r: reservation_pb2.ExtendRequest(reservation_id=r, ttl_seconds=600)
        ),
        V1 + "ReservationService/Fulfil": on(
            confirmed,
            lambda w, r: reservation_pb2.FulfilRequest(
                reservation_id=r, fulfilment_id=f"f-{w.next()}", lines=[a_line]
            ),
        ),
        V1 + "ReservationService/CancelLines": on(
            confirmed,
            lambda w, r: reservation_pb2.CancelLinesRequest(
                reservation_id=r, cancellation_id=f"x-{w.next()}", lines=[a_line]
            ),
        ),
        V1 + "ReservationService/Return": on(
            fulfilled,
            lambda w, r: reservation_pb2.ReturnRequest(
                reservation_id=r,
                return_id=f"ret-{w.next()}",
                sku="SKU-A",
                line_node_id="DC-1",
                node_id="DC-1",
                quantity=1,
            ),
        ),
        V1 + "ReservationService/Reassign": on(
            held,
            lambda w, r: reservation_pb2.ReassignRequest(
                reservation_id=r,
                reassignment_id=f"m-{w.next()}",
                sku="SKU-A",
                from_node_id="DC-1",
                to_node_id="DC-2",
            ),
        ),
        V1 + "ReservationService/GetReservation": on(
            held, lambda w, r: reservation_pb2.GetReservationRequest(reservation_id=r)
        ),
        V1 + "KeyService/CreateKey": plain(
            lambda w: keys_pb2.CreateKeyRequest(name=f"new-{w.next()}", scopes=["availability:read"])
        ),
        V1 + "KeyService/ListKeys": plain(lambda w: keys_pb2.ListKeysRequest()),
        V1 + "KeyService/RotateKey": rotate,
        V1 + "KeyService/RevokeKey": revoke,
        V1 + "EventService/ReadReservationEvents": plain(
            lambda w: events_pb2.ReadReservationEventsRequest(limit=1)
        ),
        V1 + "EventService/ReadAuditEvents": plain(lambda w: events_pb2.ReadAuditEventsRequest(limit=1)),
        V1 + "ShardService/GetShards": plain(lambda w: shards_pb2.GetShardsRequest()),
        # To the count it has: allowed, it moves nothing.
        V1 + "ShardService/ScaleShards": plain(
            lambda w: shards_pb2.ScaleShardsRequest(shards=len(w.service.shards))
        ),
    }


REQUESTS = requests()


@pytest_asyncio.fixture
async def world(make_service: Any, tmp_path: Path) -> AsyncIterator[World]:
    tls = make_dev_certificates(tmp_path / "tls")
    service = await make_service(
        auth="keys", data_dir=tmp_path, tls_cert=tls.server_cert, tls_key=tls.server_key
    )
    admin = (tmp_path / ADMIN_KEY_FILE).read_text().strip()
    credentials = grpc.ssl_channel_credentials(root_certificates=tls.ca_cert.read_bytes())
    async with grpc.aio.secure_channel(f"localhost:{service.port}", credentials) as channel:
        api = Api(channel)
        nodes = [
            common_pb2.Node(node_id="DC-1", type=common_pb2.NODE_TYPE_DC, ships=True, enabled=True),
            common_pb2.Node(node_id="DC-2", type=common_pb2.NODE_TYPE_DC, ships=True, enabled=True),
            common_pb2.Node(
                node_id="STORE-1",
                type=common_pb2.NODE_TYPE_STORE,
                pickup=True,
                enabled=True,
                latitude=52.37,
                longitude=4.89,
            ),
        ]
        await api.call(V1 + "InventoryService/PutNodes", inventory_pb2.PutNodesRequest(nodes=nodes), admin)
        await api.call(
            V1 + "NetworkService/PutGroups",
            network_pb2.PutGroupsRequest(
                groups=[network_pb2.NodeGroup(group_id="all", node_ids=["DC-1", "DC-2", "STORE-1"])]
            ),
            admin,
        )
        await api.call(
            V1 + "NetworkService/PutChannels",
            network_pb2.PutChannelsRequest(
                channels=[
                    network_pb2.Channel(channel_id="web", groups=["all"]),
                    network_pb2.Channel(channel_id="app", groups=["all"]),
                ]
            ),
            admin,
        )
        levels = [
            inventory_pb2.StockLevel(sku=sku, node_id=node, on_hand=10_000, as_of=now_stamp())
            for sku in ("SKU-A", "SKU-B", "SKU-C", "SKU-L")
            for node in ("DC-1", "DC-2", "STORE-1")
        ]
        await api.call(V1 + "InventoryService/SetStock", inventory_pb2.SetStockRequest(levels=levels), admin)
        yield World(api, admin, tls, service, itertools.count())


async def make_key(world: World, *scopes: str, **more: Any) -> str:
    response = await world.api.call(
        V1 + "KeyService/CreateKey",
        keys_pb2.CreateKeyRequest(name=f"key-{world.next()}", scopes=scopes, **more),
        world.admin,
    )
    return str(response.token)


def test_every_method_has_a_scope_and_a_request() -> None:
    assert set(METHODS) == set(METHOD_SCOPES), (
        "a method without a scope is closed to all; say who may call it"
    )
    assert set(METHODS) == set(REQUESTS)


async def test_deny_matrix_over_tls(world: World) -> None:
    revoked = await make_key(world, *[scope.value for scope in Scope])
    revoked_name = (
        await world.api.call(V1 + "KeyService/ListKeys", keys_pb2.ListKeysRequest(), world.admin)
    ).keys[-1]
    await world.api.call(
        V1 + "KeyService/RevokeKey", keys_pb2.RevokeKeyRequest(name=revoked_name.name), world.admin
    )
    credentials: dict[str, tuple[str | None, frozenset[Scope]]] = {
        "no key": (None, frozenset()),
        "wrong key": ("osk_0123456789ab_" + "x" * 43, frozenset()),
        "not a key": ("hunter2", frozenset()),
        "revoked key": (revoked, frozenset()),
    }
    for scope in Scope:
        credentials[f"only {scope.value}"] = (await make_key(world, scope.value), expand([scope]))
    await asyncio.sleep(0.05)
    outcomes: dict[str, int] = {"OK": 0, "UNAUTHENTICATED": 0, "PERMISSION_DENIED": 0}
    for path, prepare in REQUESTS.items():
        needed = METHOD_SCOPES[path]
        for label, (token, held) in credentials.items():
            request, reservation_id = await prepare(world)
            if token is None or label in ("wrong key", "not a key", "revoked key"):
                expected = grpc.StatusCode.UNAUTHENTICATED
            elif needed in held:
                expected = grpc.StatusCode.OK
            else:
                expected = grpc.StatusCode.PERMISSION_DENIED
            before = await world.snapshot(reservation_id) if expected != grpc.StatusCode.OK else None
            try:
                await world.api.call(path, request, token)
                code, details = grpc.StatusCode.OK, ""
            except grpc.aio.AioRpcError as error:
                code, details = error.code(), error.details() or ""
            assert code == expected, f"{path} with {label}: {code.name} ({details}), expected {expected.name}"
            outcomes[code.name] += 1
            if expected == grpc.StatusCode.PERMISSION_DENIED:
                assert needed.value in details, f"{path} with {label}: the scope is not named: {details}"
            if before is not None:
                after = await world.snapshot(reservation_id)
                assert after == before, f"{path} with {label} was refused but changed something"
    # Every kind of answer was seen, and every method was allowed to some single scope.
    assert all(outcomes.values()), outcomes
    assert {METHOD_SCOPES[path] for path in REQUESTS} <= {s for _, held in credentials.values() for s in held}


async def test_plain_text_is_refused_by_a_tls_port(world: World) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{world.service.port}") as plain:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await Api(plain).call(
                V1 + "NetworkService/GetNetwork", network_pb2.GetNetworkRequest(), world.admin
            )
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_a_channel_bound_key_sees_and_holds_only_through_its_channels(world: World) -> None:
    web = await make_key(world, "availability:read", "reservations:write", channels=["web"])
    api = world.api
    await api.call(
        V1 + "AvailabilityService/GetAvailability",
        availability_pb2.GetAvailabilityRequest(skus=["SKU-A"], channel_id="web"),
        web,
    )
    other_channel_calls: list[tuple[str, Any]] = [
        (
            V1 + "AvailabilityService/GetAvailability",
            availability_pb2.GetAvailabilityRequest(skus=["SKU-A"], channel_id="app"),
        ),
        (V1 + "AvailabilityService/GetAvailability", availability_pb2.GetAvailabilityRequest(skus=["SKU-A"])),
        (
            V1 + "AvailabilityService/GetAvailability",
            availability_pb2.GetAvailabilityRequest(skus=["SKU-A"], channel_id="app", consistent=True),
        ),
        (
            V1 + "AvailabilityService/FindPickupStores",
            availability_pb2.FindPickupStoresRequest(
                items=[availability_pb2.BasketItem(sku="SKU-A", quantity=1)],
                store_id="STORE-1",
                radius_km=50,
                channel_id="app",
            ),
        ),
        (
            V1 + "AvailabilityService/WatchAvailability",
            availability_pb2.WatchAvailabilityRequest(skus=["SKU-A"], channel_id="app"),
        ),
        (
            V1 + "ReservationService/Reserve",
            reservation_pb2.ReserveRequest(
                reservation_id="through-app",
                lines=[reservation_pb2.ReservationLine(sku="SKU-A", node_id="DC-1", quantity=1)],
                channel_id="app",
            ),
        ),
    ]
    app_reservation = await world.reserve(channel="app")
    for method, request in [
        ("Confirm", reservation_pb2.ConfirmRequest(reservation_id=app_reservation)),
        ("Release", reservation_pb2.ReleaseRequest(reservation_id=app_reservation)),
        ("Extend", reservation_pb2.ExtendRequest(reservation_id=app_reservation, ttl_seconds=60)),
        ("GetReservation", reservation_pb2.GetReservationRequest(reservation_id=app_reservation)),
        (
            "Reassign",
            reservation_pb2.ReassignRequest(
                reservation_id=app_reservation,
                reassignment_id="m",
                sku="SKU-A",
                from_node_id="DC-1",
                to_node_id="DC-2",
            ),
        ),
    ]:
        other_channel_calls.append((V1 + "ReservationService/" + method, request))
    before = await world.snapshot(app_reservation)
    for path, request in other_channel_calls:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await api.call(path, request, web)
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED, (path, refused.value.details())
        assert "web" in (refused.value.details() or "")
    assert await world.snapshot(app_reservation) == before
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await api.call(
            V1 + "ReservationService/GetReservation",
            reservation_pb2.GetReservationRequest(reservation_id="through-app"),
            world.admin,
        )
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    mine = await api.call(
        V1 + "ReservationService/Reserve",
        reservation_pb2.ReserveRequest(
            reservation_id="through-web",
            lines=[reservation_pb2.ReservationLine(sku="SKU-A", node_id="DC-1", quantity=1)],
            channel_id="web",
        ),
        web,
    )
    assert mine.reservation.channel_id == "web"
    await api.call(
        V1 + "ReservationService/Confirm", reservation_pb2.ConfirmRequest(reservation_id="through-web"), web
    )


async def test_only_trusted_keys_name_customers(world: World) -> None:
    storefront = await make_key(world, "reservations:write")
    order_service = await make_key(world, "reservations:write", asserts_customers=True)

    def reserve(reservation_id: str) -> reservation_pb2.ReserveRequest:
        return reservation_pb2.ReserveRequest(
            reservation_id=reservation_id,
            lines=[reservation_pb2.ReservationLine(sku="SKU-A", node_id="DC-1", quantity=1)],
            channel_id="web",
            customer_id="customer-7",
        )

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await world.api.call(V1 + "ReservationService/Reserve", reserve("by-storefront"), storefront)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "customer_id" in (refused.value.details() or "")
    held = await world.api.call(V1 + "ReservationService/Reserve", reserve("by-order-service"), order_service)
    assert held.reservation.customer_id == "customer-7"


@pytest_asyncio.fixture
async def with_jwt(make_service: Any, tmp_path: Path) -> AsyncIterator[tuple[Api, Callable[..., str], str]]:
    signing = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(signing.public_key()))
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**jwk, "kid": "idp-1", "alg": "ES256", "use": "sig"}]}))
    service = await make_service(
        auth="keys",
        data_dir=tmp_path,
        jwt_jwks=jwks,
        jwt_issuer="https://idp.example",
        jwt_audience="omnistock",
    )
    admin = (tmp_path / ADMIN_KEY_FILE).read_text().strip()

    def token(subject: str = "customer-1", scope: str = "reservations:write", **claims: Any) -> str:
        key = claims.pop("key", signing)
        body = {
            "iss": "https://idp.example",
            "aud": "omnistock",
            "sub": subject,
            "scope": scope,
            "exp": int(time.time()) + 300,
            **claims,
        }
        return jwt.encode(body, key, algorithm="ES256", headers={"kid": "idp-1"})

    async with grpc.aio.insecure_channel(f"127.0.0.1:{service.port}") as channel:
        api = Api(channel)
        await api.call(
            V1 + "InventoryService/PutNodes",
            inventory_pb2.PutNodesRequest(
                nodes=[
                    common_pb2.Node(node_id="DC-1", type=common_pb2.NODE_TYPE_DC, ships=True, enabled=True)
                ]
            ),
            admin,
        )
        await api.call(
            V1 + "InventoryService/SetStock",
            inventory_pb2.SetStockRequest(
                levels=[inventory_pb2.StockLevel(sku="SKU-A", node_id="DC-1", on_hand=100, as_of=now_stamp())]
            ),
            admin,
        )
        yield api, token, admin


async def test_a_jwt_acts_for_its_subject_only(with_jwt: Any) -> None:
    api, token, _ = with_jwt

    async def reserve(credential: str, reservation_id: str, customer: str) -> Any:
        return await api.call(
            V1 + "ReservationService/Reserve",
            reservation_pb2.ReserveRequest(
                reservation_id=reservation_id,
                lines=[reservation_pb2.ReservationLine(sku="SKU-A", node_id="DC-1", quantity=1)],
                customer_id=customer,
            ),
            credential,
        )

    held = await reserve(token("customer-1"), "jwt-1", "customer-1")
    assert held.reservation.customer_id == "customer-1"
    with pytest.raises(grpc.aio.AioRpcError) as other:
        await reserve(token("customer-1"), "jwt-2", "customer-2")
    assert other.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as scope:
        await reserve(token("customer-1", scope="availability:read"), "jwt-3", "customer-1")
    assert scope.value.code() == grpc.StatusCode.PERMISSION_DENIED
    for bad in [
        token(exp=int(time.time()) - 120),
        token(iss="https://other.example"),
        token(aud="someone-else"),
        token(key=ec.generate_private_key(ec.SECP256R1())),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await reserve(bad, "jwt-4", "customer-1")
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
