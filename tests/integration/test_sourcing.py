"""Sourced reserves and reassignment over real gRPC + Ray + Redis: the rules choose the
nodes, the answer says why, a node's daily capacity holds, and nothing oversells."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
import pytest_asyncio

from omnistock.client import OmnistockClient, OmnistockRpcError, level, line
from omnistock.protos.gen.omnistock.v1 import common_pb2, network_pb2, reservation_pb2

DC, STORE = common_pb2.NODE_TYPE_DC, common_pb2.NODE_TYPE_STORE
HELD, CONFIRMED = reservation_pb2.RESERVATION_STATE_HELD, reservation_pb2.RESERVATION_STATE_CONFIRMED
CUSTOMER = (51.50, -0.12)  # London
NODES = [
    common_pb2.Node(
        node_id="DC-NORTH", type=DC, ships=True, enabled=True, latitude=53.48, longitude=-2.24, priority=1
    ),
    common_pb2.Node(
        node_id="DC-SOUTH", type=DC, ships=True, enabled=True, latitude=50.90, longitude=-1.40, priority=1
    ),
    common_pb2.Node(
        node_id="STORE-CITY",
        type=STORE,
        ships=True,
        pickup=True,
        enabled=True,
        latitude=51.51,
        longitude=-0.13,
        priority=2,
        daily_capacity=2,
    ),
    common_pb2.Node(
        node_id="STORE-MALL",
        type=STORE,
        ships=False,
        pickup=True,
        enabled=True,
        latitude=51.40,
        longitude=-0.30,
    ),
]
GROUPS = [
    network_pb2.NodeGroup(group_id="dcs", types=[DC]),
    network_pb2.NodeGroup(group_id="ship-from-store", types=[STORE], ships=True),
    network_pb2.NodeGroup(group_id="pickup", types=[STORE], pickup=True),
]
WEB = network_pb2.Channel(
    channel_id="web",
    groups=["dcs", "ship-from-store"],
    sourcing=network_pb2.SourcingPolicy(rules=["single_node", "nearest", "priority"], max_shipments=2),
)
PICKUP = network_pb2.Channel(channel_id="store-pickup", groups=["pickup"])
FAILED = grpc.StatusCode.FAILED_PRECONDITION


@pytest_asyncio.fixture
async def shop(client: OmnistockClient) -> OmnistockClient:
    await client.put_nodes(NODES)
    await client.put_groups(GROUPS)
    await client.put_channels([WEB, PICKUP])
    return client


def want(sku: str, quantity: int) -> reservation_pb2.ReservationLine:
    return line(sku, "", quantity)


def where(reservation: reservation_pb2.Reservation) -> dict[str, str]:
    return {ln.sku: ln.node_id for ln in reservation.lines}


def verdicts(sourcing: reservation_pb2.LineSourcing) -> dict[str, str]:
    return {v.node_id: v.reason for v in sourcing.considered}


async def positions(client: OmnistockClient, sku: str) -> dict[str, tuple[int, int]]:
    answer = await client.availability([sku], include_nodes=True, consistent=True)
    return {p.node_id: (p.reserved, p.committed) for p in answer.skus[0].nodes}


async def test_one_node_that_has_everything_beats_a_nearer_node_that_has_part(shop: OmnistockClient) -> None:
    await shop.set_stock(
        [level("A1", "DC-NORTH", 5), level("B1", "DC-NORTH", 5), level("A1", "STORE-CITY", 5)]
    )
    response = await shop.reserve(
        "one-box", [want("A1", 1), want("B1", 1)], channel_id="web", ship_to=CUSTOMER
    )
    reservation = response.reservation
    assert where(reservation) == {"A1": "DC-NORTH", "B1": "DC-NORTH"}
    first = reservation.sourcing[0]
    assert first.sku == "A1" and list(first.rules)[-3:][0:1]  # the rules in order are listed
    assert "single_node" in " ".join(first.rules) and "nearest" in " ".join(first.rules)
    assert first.considered[0].node_id == "DC-NORTH" and first.considered[0].units == 1
    assert "lost on single_node" in verdicts(first)["STORE-CITY"]
    assert "not in channel web" in verdicts(first)["STORE-MALL"]
    # GetReservation explains it later, and says where the order goes.
    again = await shop.get_reservation("one-box")
    assert list(again.sourcing) == list(reservation.sourcing)
    assert again.destination.address.latitude == pytest.approx(CUSTOMER[0])


async def test_the_nearest_node_wins_when_several_have_everything(shop: OmnistockClient) -> None:
    await shop.set_stock([level("N1", n, 5) for n in ("DC-NORTH", "DC-SOUTH", "STORE-CITY")])
    reservation = (
        await shop.reserve("near", [want("N1", 2)], channel_id="web", ship_to=CUSTOMER)
    ).reservation
    assert where(reservation) == {"N1": "STORE-CITY"}
    why = verdicts(reservation.sourcing[0])
    assert why["DC-SOUTH"].startswith("lost on nearest") and why["DC-NORTH"].startswith("lost on nearest")
    assert reservation.sourcing[0].considered[0].distance_km < 5


async def test_a_store_takes_no_more_orders_than_its_daily_capacity(shop: OmnistockClient) -> None:
    await shop.set_stock([level("C1", "STORE-CITY", 50), level("C1", "DC-SOUTH", 50)])
    ids = [f"cap-{i}" for i in range(3)]
    placed = [(await shop.reserve(rid, [want("C1", 1)], channel_id="web", ship_to=CUSTOMER)) for rid in ids]
    assert [where(r.reservation)["C1"] for r in placed] == ["STORE-CITY", "STORE-CITY", "DC-SOUTH"]
    assert "daily capacity reached" in verdicts(placed[2].reservation.sourcing[0])["STORE-CITY"]
    # A released order gives its capacity back.
    await shop.release("cap-0")
    back = await shop.reserve("cap-3", [want("C1", 1)], channel_id="web", ship_to=CUSTOMER)
    assert where(back.reservation)["C1"] == "STORE-CITY"


async def test_an_order_the_rules_cannot_fill_is_refused_with_reasons_and_holds_nothing(
    shop: OmnistockClient,
) -> None:
    await shop.set_stock([level("X1", "DC-NORTH", 3), level("X1", "STORE-MALL", 50)])
    with pytest.raises(OmnistockRpcError) as refused:
        await shop.reserve("too-many", [want("X1", 4)], channel_id="web", ship_to=CUSTOMER)
    assert refused.value.code is FAILED
    assert refused.value.precondition_violations == [("CANNOT_SOURCE", "X1", "requested 4, could source 0")]
    (why,) = refused.value.sourcing
    assert "short: 3 of 4" in verdicts(why)["DC-NORTH"]
    assert await positions(shop, "X1") == {"DC-NORTH": (0, 0), "STORE-MALL": (0, 0)}
    with pytest.raises(OmnistockRpcError) as missing:
        await shop.get_reservation("too-many")
    assert missing.value.code is grpc.StatusCode.NOT_FOUND


async def test_a_pickup_order_is_held_at_the_pickup_store_only(shop: OmnistockClient) -> None:
    await shop.set_stock([level("P1", "STORE-MALL", 2), level("P1", "STORE-CITY", 9)])
    done = await shop.reserve("bopis", [want("P1", 2)], channel_id="store-pickup", pickup_at="STORE-MALL")
    assert where(done.reservation) == {"P1": "STORE-MALL"}
    with pytest.raises(OmnistockRpcError) as refused:
        await shop.reserve("bopis-2", [want("P1", 1)], channel_id="store-pickup", pickup_at="STORE-MALL")
    assert "not the pickup store" in verdicts(refused.value.sourcing[0])["STORE-CITY"]


async def test_a_retry_replays_and_the_same_id_for_another_order_is_refused(shop: OmnistockClient) -> None:
    await shop.set_stock([level("R1", "DC-NORTH", 10)])
    first = await shop.reserve("retry", [want("R1", 2)], channel_id="web", ship_to=CUSTOMER)
    again = await shop.reserve("retry", [want("R1", 2)], channel_id="web", ship_to=CUSTOMER)
    assert again.replayed and not first.replayed
    assert list(again.reservation.lines) == list(first.reservation.lines)
    with pytest.raises(OmnistockRpcError) as other:
        await shop.reserve("retry", [want("R1", 2)], channel_id="web", ship_to=(40.0, -3.7))
    assert other.value.code is grpc.StatusCode.ALREADY_EXISTS
    assert await positions(shop, "R1") == {"DC-NORTH": (2, 0)}


async def test_concurrent_sourced_orders_never_oversell(shop: OmnistockClient) -> None:
    stock = {"DC-NORTH": 7, "DC-SOUTH": 6, "STORE-CITY": 9}
    await shop.set_stock([level("HOT", node, units) for node, units in stock.items()])

    async def order(i: int) -> str | None:
        try:
            response = await shop.reserve(f"hot-{i}", [want("HOT", 1)], channel_id="web", ship_to=CUSTOMER)
            return where(response.reservation)["HOT"]
        except OmnistockRpcError as error:
            assert error.code is FAILED, error
            return None

    chosen = await asyncio.gather(*(order(i) for i in range(40)))
    # STORE-CITY takes 2 orders a day; the DCs the rest of the stock.
    placed = [node for node in chosen if node]
    assert len(placed) == 2 + 7 + 6
    assert placed.count("STORE-CITY") == 2
    held = await positions(shop, "HOT")
    assert {n: r for n, (r, _) in held.items()} == {"DC-NORTH": 7, "DC-SOUTH": 6, "STORE-CITY": 2}
    assert (await shop.check_conservation()).ok


async def test_reassign_moves_a_confirmed_line_in_one_step(shop: OmnistockClient) -> None:
    await shop.set_stock(
        [level("M1", "STORE-CITY", 3), level("M1", "DC-SOUTH", 1), level("M1", "DC-NORTH", 5)]
    )
    await shop.reserve("lost-item", [want("M1", 2)], channel_id="web", ship_to=CUSTOMER)
    await shop.confirm("lost-item")
    assert (await positions(shop, "M1"))["STORE-CITY"] == (0, 2)
    # DC-SOUTH has 1 unit, the line needs 2: refused, nothing changes.
    with pytest.raises(OmnistockRpcError) as short:
        await shop.reassign("lost-item", "move-1", "M1", "STORE-CITY", "DC-SOUTH")
    assert short.value.code is FAILED and "1 promisable, the line needs 2" in short.value.message
    assert await positions(shop, "M1") == {"STORE-CITY": (0, 2), "DC-SOUTH": (0, 0), "DC-NORTH": (0, 0)}
    moved = await shop.reassign("lost-item", "move-2", "M1", "STORE-CITY", "DC-NORTH")
    assert where(moved.reservation) == {"M1": "DC-NORTH"} and moved.reservation.state == CONFIRMED
    assert await positions(shop, "M1") == {"STORE-CITY": (0, 0), "DC-SOUTH": (0, 0), "DC-NORTH": (0, 2)}
    assert moved.reservation.history[-1].type == reservation_pb2.RESERVATION_EVENT_TYPE_MOVED
    again = await shop.reassign("lost-item", "move-2", "M1", "STORE-CITY", "DC-NORTH")
    assert again.replayed and where(again.reservation) == {"M1": "DC-NORTH"}


async def test_reassign_without_a_node_sources_one_by_the_channel_rules(shop: OmnistockClient) -> None:
    await shop.set_stock(
        [level("M2", "STORE-CITY", 1), level("M2", "DC-SOUTH", 4), level("M2", "DC-NORTH", 4)]
    )
    await shop.reserve("find-another", [want("M2", 1)], channel_id="web", ship_to=CUSTOMER)
    moved = await shop.reassign("find-another", "move-1", "M2", "STORE-CITY")
    assert where(moved.reservation) == {"M2": "DC-SOUTH"}  # nearer to London than DC-NORTH
    why = verdicts(moved.sourcing)
    assert "excluded" in why["STORE-CITY"] and why["DC-NORTH"].startswith("lost on nearest")
    # A retry (the caller does not know where the line went) replays the first move.
    again = await shop.reassign("find-another", "move-1", "M2", "STORE-CITY")
    assert again.replayed and where(again.reservation) == {"M2": "DC-SOUTH"}
    assert await positions(shop, "M2") == {"STORE-CITY": (0, 0), "DC-SOUTH": (1, 0), "DC-NORTH": (0, 0)}


async def test_a_pickup_line_is_only_moved_to_a_named_store(shop: OmnistockClient) -> None:
    await shop.set_stock([level("M4", "STORE-MALL", 1), level("M4", "STORE-CITY", 1)])
    await shop.reserve("collect", [want("M4", 1)], channel_id="store-pickup", pickup_at="STORE-MALL")
    with pytest.raises(OmnistockRpcError) as unnamed:
        await shop.reassign("collect", "move-1", "M4", "STORE-MALL")
    assert unnamed.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in unnamed.value.field_violations] == ["to_node_id"]
    moved = await shop.reassign("collect", "move-1", "M4", "STORE-MALL", "STORE-CITY")
    assert where(moved.reservation) == {"M4": "STORE-CITY"}


async def test_concurrent_reassigns_onto_one_node_never_oversell_it(
    shop: OmnistockClient, service: Any
) -> None:
    await shop.set_stock([level("M3", "STORE-CITY", 10), level("M3", "DC-SOUTH", 3)])
    ids = [f"move-race-{i}" for i in range(6)]
    for rid in ids:
        await shop.reserve(rid, [line("M3", "STORE-CITY", 1)], channel_id="web")

    async def move(rid: str) -> bool:
        try:
            await shop.reassign(rid, "m", "M3", "STORE-CITY", "DC-SOUTH")
            return True
        except OmnistockRpcError as error:
            assert error.code is FAILED
            return False

    results = await asyncio.gather(*(move(rid) for rid in ids))
    assert sum(results) == 3
    assert await positions(shop, "M3") == {"STORE-CITY": (3, 0), "DC-SOUTH": (3, 0)}
    assert (await shop.check_conservation()).ok


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"lines": [want("S", 1)], "channel_id": "web"}, "destination"),
        ({"lines": [line("S", "DC-NORTH", 1)], "channel_id": "web", "ship_to": CUSTOMER}, "lines"),
        ({"lines": [want("S", 1)], "ship_to": CUSTOMER}, "channel_id"),
        ({"lines": [want("S", 1), want("S", 2)], "channel_id": "web", "ship_to": CUSTOMER}, "lines[1]"),
        ({"lines": [want("S", 1)], "channel_id": "web", "ship_to": (91.0, 0.0)}, "destination.address"),
    ],
)
async def test_bad_sourced_requests_name_the_field(
    shop: OmnistockClient, request_fields: dict[str, Any], field: str
) -> None:
    with pytest.raises(OmnistockRpcError) as bad:
        await shop.reserve("bad", **request_fields)
    assert bad.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert field in [f for f, _ in bad.value.field_violations]


async def test_unknown_channel_or_pickup_store_is_not_found(shop: OmnistockClient) -> None:
    for kwargs in ({"channel_id": "nope", "ship_to": CUSTOMER}, {"channel_id": "web", "pickup_at": "NOPE"}):
        with pytest.raises(OmnistockRpcError) as missing:
            await shop.reserve("missing", [want("S", 1)], **kwargs)
        assert missing.value.code is grpc.StatusCode.NOT_FOUND
