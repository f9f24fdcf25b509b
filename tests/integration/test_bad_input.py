"""Malformed and hostile requests get a clear status with details and change nothing."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
import pytest_asyncio
from google.protobuf.descriptor import MethodDescriptor

from omnistock.client import OmnistockClient, OmnistockRpcError, level, line
from omnistock.protos.gen.omnistock.v1 import (
    availability_pb2,
    common_pb2,
    inventory_pb2,
    network_pb2,
    reservation_pb2,
)

INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND


@pytest_asyncio.fixture(scope="module")
async def service(module_service: Any) -> Any:
    """Refusals change nothing, so these tests can share one service."""
    return module_service


def reserve(rid: str, lines: list[Any], ttl: int = 0) -> reservation_pb2.ReserveRequest:
    return reservation_pb2.ReserveRequest(reservation_id=rid, lines=lines, ttl_seconds=ttl)


BAD_RESERVES = [
    ("empty id", reserve("", [line("S", "DC-1", 1)]), INVALID, "reservation_id"),
    ("long id", reserve("x" * 129, [line("S", "DC-1", 1)]), INVALID, "reservation_id"),
    ("id with space", reserve("a b", [line("S", "DC-1", 1)]), INVALID, "reservation_id"),
    ("no lines", reserve("r", []), INVALID, "lines"),
    ("zero quantity", reserve("r", [line("S", "DC-1", 0)]), INVALID, "lines[0].quantity"),
    ("negative quantity", reserve("r", [line("S", "DC-1", -3)]), INVALID, "lines[0].quantity"),
    ("absurd quantity", reserve("r", [line("S", "DC-1", 10**12)]), INVALID, "lines[0].quantity"),
    ("duplicate lines", reserve("r", [line("S", "DC-1", 1), line("S", "DC-1", 2)]), INVALID, "lines[1]"),
    ("ttl too long", reserve("r", [line("S", "DC-1", 1)], ttl=86_401), INVALID, "ttl_seconds"),
    ("ttl negative", reserve("r", [line("S", "DC-1", 1)], ttl=-5), INVALID, "ttl_seconds"),
    ("too many lines", reserve("r", [line(f"S{i}", "DC-1", 1) for i in range(101)]), INVALID, "lines"),
    ("empty sku", reserve("r", [line("", "DC-1", 1)]), INVALID, "lines[0].sku"),
    ("unknown node", reserve("r", [line("S", "NOWHERE", 1)]), NOT_FOUND, ""),
]


@pytest.mark.parametrize(
    ("name", "request_", "code", "field"), BAD_RESERVES, ids=[b[0] for b in BAD_RESERVES]
)
async def test_bad_reserve_is_refused_and_changes_nothing(
    client: OmnistockClient, service: Any, name: str, request_: Any, code: grpc.StatusCode, field: str
) -> None:
    await client.set_stock([level("S", "DC-1", 5)])
    with pytest.raises(OmnistockRpcError) as refused:
        await client._call(client.reservations.Reserve, request_)
    assert refused.value.code is code
    if field:
        assert field in [f for f, _ in refused.value.field_violations]
    answer = await client.availability(["S"], consistent=True)
    assert answer.skus[0].available == 5
    assert answer.skus[0].reserved == 0
    assert await service.check() == []


async def test_every_bad_field_is_reported_at_once(client: OmnistockClient) -> None:
    request = reserve("", [line("", "DC-1", 0)], ttl=10**6)
    with pytest.raises(OmnistockRpcError) as refused:
        await client._call(client.reservations.Reserve, request)
    fields = {f for f, _ in refused.value.field_violations}
    assert fields == {"reservation_id", "lines[0].sku", "lines[0].quantity", "ttl_seconds"}


async def test_unknown_reservation_is_not_found(client: OmnistockClient) -> None:
    for call in (client.confirm, client.release, client.get_reservation):
        with pytest.raises(OmnistockRpcError) as refused:
            await call("never-made")
        assert refused.value.code is NOT_FOUND


async def test_bad_stock_requests(client: OmnistockClient) -> None:
    await client.set_stock([level("S", "DC-1", 5)])
    cases = [
        (client.set_stock([level("S", "DC-1", -1)]), INVALID),
        (client.set_stock([level("S", "DC-1", 1), level("S", "DC-1", 2)]), INVALID),
        (client.set_stock([level("S", "GHOST", 1)]), NOT_FOUND),
        (client.adjust("a1", "S", "DC-1", 0), INVALID),
        (client.adjust("", "S", "DC-1", 1), INVALID),
        (client.adjust("a2", "S", "GHOST", 1), NOT_FOUND),
        (client.availability([]), INVALID),
        (client.availability(["S"] * 1001), INVALID),
        (client.put_nodes([common_pb2.Node(node_id="N", type=common_pb2.NODE_TYPE_UNSPECIFIED)]), INVALID),
        (
            client.put_nodes([common_pb2.Node(node_id="N", type=common_pb2.NODE_TYPE_DC, latitude=91)]),
            INVALID,
        ),
    ]
    for call, code in cases:
        with pytest.raises(OmnistockRpcError) as refused:
            await call
        assert refused.value.code is code, refused.value
    # Nothing above changed the position or the network.
    answer = await client.availability(["S"], include_nodes=True, consistent=True)
    assert [(p.node_id, p.on_hand) for p in answer.skus[0].nodes] == [("DC-1", 5)]
    assert "N" not in {n.node_id for n in await client.list_nodes()}


HOSTILE_TEXT = [
    pytest.param("Main St\x1b]0;owned\x07\x1b[2J", id="terminal escapes"),
    pytest.param("Store 1\nDC-9  dc  enabled", id="newline"),
    pytest.param("gnp.\u202eexe", id="right-to-left override"),
]


@pytest.mark.parametrize("text", HOSTILE_TEXT)
async def test_control_characters_in_names_ids_and_reasons_are_refused_and_change_nothing(
    client: OmnistockClient, service: Any, text: str
) -> None:
    await client.set_stock([level("CLEAN", "DC-1", 5)])
    adjustment_id = f"clean-{text.encode().hex()[:24]}"
    hostile_node = common_pb2.Node(node_id="HOSTILE", type=common_pb2.NODE_TYPE_DC, name=text, enabled=True)
    hostile_channel = network_pb2.Channel(channel_id="hostile", name=text, groups=["dcs"])
    cases = [
        (client.put_nodes([hostile_node]), "nodes[0].name"),
        (client.adjust(adjustment_id, "CLEAN", "DC-1", -1, reason=text), "adjustments[0].reason"),
        (client.put_channels([hostile_channel]), "channels[0].name"),
        (client.availability(["CLEAN"], channel_id=text), "channel_id"),
        (client.reserve("clean-r1", [line("CLEAN", "DC-1", 1)], channel_id=text), "channel_id"),
        (client.reserve("clean-r2", [line("CLEAN", "DC-1", 1)], customer_id=text), "customer_id"),
        (client.delete_channels([text]), "channel_ids[0]"),
    ]
    for call, field in cases:
        with pytest.raises(OmnistockRpcError) as refused:
            await call
        assert refused.value.code is INVALID, refused.value
        assert field in [f for f, _ in refused.value.field_violations], refused.value
    # Nothing above changed the stock, the network or any reservation.
    position = (await client.availability(["CLEAN"], consistent=True)).skus[0]
    assert (position.on_hand, position.reserved) == (5, 0)
    network = await client.get_network()
    assert "HOSTILE" not in {node.node_id for node in network.nodes}
    assert "hostile" not in {channel.channel_id for channel in network.channels}
    for reservation_id in ("clean-r1", "clean-r2"):
        with pytest.raises(OmnistockRpcError) as missing:
            await client.get_reservation(reservation_id)
        assert missing.value.code is NOT_FOUND
    # The refused adjustment's id was never used: the same id with a clean reason applies.
    applied = await client.adjust(adjustment_id, "CLEAN", "DC-1", -1, reason="damage")
    assert applied.outcome == inventory_pb2.ADJUSTMENT_OUTCOME_APPLIED
    assert await service.check() == []


async def test_adjustment_below_zero_is_refused(client: OmnistockClient) -> None:
    await client.set_stock([level("Z", "DC-1", 2)])
    result = await client.adjust("sale-1", "Z", "DC-1", -3, "pos-sale")
    assert result.outcome == inventory_pb2.ADJUSTMENT_OUTCOME_REFUSED_NEGATIVE
    assert result.position.on_hand == 2


async def test_oversized_message_is_refused_and_server_lives(client: OmnistockClient) -> None:
    huge = [level(f"S{i:07d}", "DC-1", 1) for i in range(10_001)]
    with pytest.raises(OmnistockRpcError) as refused:
        await client.set_stock(huge)
    assert refused.value.code in (INVALID, grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert (await client.availability(["S"])).skus[0].sku == "S"


@pytest.mark.parametrize(
    ("skus", "field"),
    [
        (["S", "a b"], "skus[1]"),
        (["x" * 129], "skus[0]"),
        (["S", ""], "skus[1]"),
        (["S", "caf\u00e9"], "skus[1]"),
    ],
)
async def test_a_bad_sku_in_an_availability_ask_is_named(
    client: OmnistockClient, skus: list[str], field: str
) -> None:
    with pytest.raises(OmnistockRpcError) as refused:
        await client.availability(skus)
    assert refused.value.code is INVALID
    assert [f for f, _ in refused.value.field_violations] == [field]


async def test_a_bad_sku_is_named_even_beside_cached_answers(client: OmnistockClient) -> None:
    await client.set_stock([level("CACHED", "DC-1", 4)])
    for _ in range(2):  # the second answer comes from the gateway's answer cache
        assert (await client.availability(["CACHED"])).skus[0].available == 4
    with pytest.raises(OmnistockRpcError) as refused:
        await client.availability(["CACHED", "CACHED", "a b"])
    assert refused.value.code is INVALID
    assert [f for f, _ in refused.value.field_violations] == ["skus[2]"]
    with pytest.raises(OmnistockRpcError) as refused:
        await client.availability(["CACHED"] * 1001)
    assert [f for f, _ in refused.value.field_violations] == ["skus"]


def omnistock_methods() -> Iterator[tuple[str, MethodDescriptor]]:
    """Every method of every omnistock service, from the descriptors: a new one is covered."""
    for module in (inventory_pb2, availability_pb2, reservation_pb2, network_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                yield f"/{service.full_name}/{method.name}", method


METHODS = list(omnistock_methods())
UNDECODABLE = {
    "garbage": b"\xff\xff\xff\xff\xff",
    "truncated": b"\x0a\x05ab",  # field 1, 5 bytes long, but 2 sent
}


async def one_call(channel: grpc.aio.Channel, path: str, method: MethodDescriptor, data: bytes) -> None:
    """`data` as the request (each request of a stream), unserialized, answers ignored."""
    match method.client_streaming, method.server_streaming:
        case False, False:
            await channel.unary_unary(path)(data, timeout=10)
        case False, True:
            async for _ in channel.unary_stream(path)(data, timeout=10):
                pass
        case True, False:
            await channel.stream_unary(path)(iter([data]), timeout=10)
        case True, True:
            async for _ in channel.stream_stream(path)(iter([data]), timeout=10):
                pass


@pytest.mark.parametrize(("path", "method"), METHODS, ids=[path.rsplit(".", 1)[1] for path, _ in METHODS])
async def test_undecodable_bytes_are_refused_naming_the_method(
    client: OmnistockClient,
    service: Any,
    path: str,
    method: MethodDescriptor,
    caplog: pytest.LogCaptureFixture,
) -> None:
    expected = f"request to {path} is not a valid {method.input_type.full_name} message"
    async with grpc.aio.insecure_channel(f"127.0.0.1:{service.port}") as channel:
        for name, data in UNDECODABLE.items():
            with caplog.at_level(logging.WARNING), pytest.raises(grpc.aio.AioRpcError) as refused:
                await one_call(channel, path, method, data)
            assert refused.value.code() is INVALID, (name, refused.value)
            assert refused.value.details() == expected
            parsed = OmnistockRpcError.from_grpc(refused.value)
            ((_, description),) = parsed.field_violations
            assert method.input_type.full_name in description
            # One warning line for it, no traceback, nothing at ERROR.
            assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
            assert [r.getMessage() for r in caplog.records if path in r.getMessage()] == [
                f"refused {len(data)} bytes sent to {path}: not a valid {method.input_type.full_name} message"
            ]
            caplog.clear()
    # The service goes on answering, on the same connection as on a new one.
    await client.set_stock([level("UNDECODABLE", "DC-1", 3)])
    assert (await client.availability(["UNDECODABLE"], consistent=True)).skus[0].on_hand == 3


async def test_undecodable_bytes_after_good_ones_in_a_stream_are_refused(
    client: OmnistockClient, service: Any
) -> None:
    chunk = inventory_pb2.LoadStockRequest(levels=[level("STREAMED", "DC-1", 4)]).SerializeToString()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{service.port}") as channel:
        load = channel.stream_unary("/omnistock.v1.InventoryService/LoadStock")
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await load(iter([chunk, UNDECODABLE["truncated"], chunk]), timeout=10)
    assert refused.value.code() is INVALID
    assert "omnistock.v1.LoadStockRequest" in (refused.value.details() or "")
    assert (await client.list_nodes())[0].node_id == "DC-1"


def trailer_size(error: grpc.aio.AioRpcError) -> int:
    """The trailers' size as HTTP/2 counts it (name + value + 32 an entry), as gRPC sends
    them: binary values in base64, the message percent-encoded."""
    message = sum(1 if 0x20 <= b < 0x7F and b != 0x25 else 3 for b in (error.details() or "").encode())
    size = len("grpc-status") + 2 + 32 + len("grpc-message") + message + 32
    for key, value in error.trailing_metadata() or ():
        encoded = base64.b64encode(value) if isinstance(value, bytes) else value.encode()
        size += len(key) + len(encoded) + 32
    return size


async def test_a_refusal_with_thousands_of_violations_stays_small(client: OmnistockClient) -> None:
    levels = [level(f"OUT-OF-RANGE-{i:05d}", "DC-1", -1) for i in range(2_000)]
    request = inventory_pb2.SetStockRequest(levels=levels)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await client.inventory.SetStock(request, timeout=10)
    assert refused.value.code() is INVALID, refused.value
    assert trailer_size(refused.value) < 8 * 1024
    violations = OmnistockRpcError.from_grpc(refused.value).field_violations
    assert 10 <= len(violations) <= 101
    *listed, more = violations
    assert [field for field, _ in listed] == [f"levels[{i}].on_hand" for i in range(len(listed))]
    assert more == ("...", f"{2_000 - len(listed):,} more violations not listed")
    assert len(refused.value.details() or "") <= 400
