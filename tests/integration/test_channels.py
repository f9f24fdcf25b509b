"""Channel availability over real gRPC + Ray + Redis: groups, rules, caps, holds, the view."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import grpc
import pytest
import pytest_asyncio

from omnistock.client import OmnistockClient, OmnistockRpcError, level, line
from omnistock.protos.gen.omnistock.v1 import common_pb2, network_pb2, network_pb2_grpc

DC, STORE = common_pb2.NODE_TYPE_DC, common_pb2.NODE_TYPE_STORE
NODES = [
    common_pb2.Node(node_id="DC-1", type=DC, ships=True, enabled=True),
    common_pb2.Node(node_id="STORE-1", type=STORE, ships=True, pickup=True, enabled=True),
    common_pb2.Node(node_id="STORE-2", type=STORE, ships=False, pickup=True, enabled=True),
]
GROUPS = [
    network_pb2.NodeGroup(group_id="dcs", types=[DC]),
    network_pb2.NodeGroup(group_id="ship-from-store", types=[STORE], ships=True),
    network_pb2.NodeGroup(group_id="pickup", types=[STORE], pickup=True),
]
WEB = network_pb2.Channel(
    channel_id="web",
    groups=["dcs", "ship-from-store"],
    safety=[network_pb2.SafetyRule(units=2, node_type=STORE)],
    caps=[network_pb2.AllocationCap(percent=50, node_type=STORE)],
    low_stock_threshold=10,
)
MARKETPLACE = network_pb2.Channel(
    channel_id="marketplace", groups=["dcs"], safety=[network_pb2.SafetyRule(percent=10)], display_cap=50
)
PICKUP = network_pb2.Channel(channel_id="store-pickup", groups=["pickup"], low_stock_threshold=3)


class Admin:
    def __init__(self, client: OmnistockClient) -> None:
        self.stub = network_pb2_grpc.NetworkServiceStub(client.channel)
        self.client = client

    async def __call__(self, method: str, request: Any) -> network_pb2.NetworkConfig:
        """Call a NetworkService method; the network its response carries."""
        response = await self.client._call(getattr(self.stub, method), request)
        return response.network


@pytest_asyncio.fixture
async def shop(client: OmnistockClient) -> Admin:
    admin = Admin(client)
    await client.put_nodes(NODES)
    await admin("PutGroups", network_pb2.PutGroupsRequest(groups=GROUPS))
    await admin("PutChannels", network_pb2.PutChannelsRequest(channels=[WEB, MARKETPLACE, PICKUP]))
    return admin


async def per_node(client: OmnistockClient, sku: str, channel: str) -> tuple[int, dict[str, int], int]:
    answer = (await client.availability([sku], include_nodes=True, channel_id=channel, consistent=True)).skus[
        0
    ]
    return answer.available, {p.node_id: p.available for p in answer.nodes}, answer.status


async def test_each_channel_sees_its_own_share(client: OmnistockClient, shop: Admin) -> None:
    await client.set_stock([level("S", "DC-1", 100), level("S", "STORE-1", 10), level("S", "STORE-2", 6)])
    # web: DC in full; STORE-1 min(10 - 2 safety, 50% of 10) = 5; STORE-2 does not ship.
    assert await per_node(client, "S", "web") == (105, {"DC-1": 100, "STORE-1": 5}, 1)
    # marketplace: DCs only, 10% safety, shows at most 50.
    assert await per_node(client, "S", "marketplace") == (50, {"DC-1": 90}, 1)
    # store pickup: every pickup store, no safety; 16 > low-stock 3.
    assert await per_node(client, "S", "store-pickup") == (16, {"STORE-1": 10, "STORE-2": 6}, 1)
    # No channel: every enabled node's free units.
    plain = (await client.availability(["S"], consistent=True)).skus[0]
    assert (plain.available, plain.status) == (116, 0)


async def test_status_follows_the_channel_threshold(client: OmnistockClient, shop: Admin) -> None:
    await client.set_stock([level("T", "STORE-1", 3), level("T", "STORE-2", 0)])
    assert (await per_node(client, "T", "store-pickup"))[2] == common_pb2.STOCK_STATUS_LOW_STOCK
    await client.set_stock([level("T", "STORE-1", 0)])
    assert (await per_node(client, "T", "store-pickup"))[2] == common_pb2.STOCK_STATUS_OUT_OF_STOCK


async def test_damaged_and_quality_hold_are_never_sold(client: OmnistockClient, shop: Admin) -> None:
    await client.set_stock([level("Q", "STORE-1", 10)])
    response = await client.adjust_stock(
        [
            _adjustment("dmg-1", "Q", "STORE-1", +2, common_pb2.STOCK_STATE_DAMAGED),
            _adjustment("qh-1", "Q", "STORE-1", +3, common_pb2.STOCK_STATE_QUALITY_HOLD),
        ]
    )
    assert [r.outcome for r in response.results] == [1, 1]
    answer = (await client.availability(["Q"], consistent=True, channel_id="store-pickup")).skus[0]
    assert (answer.on_hand, answer.damaged, answer.quality_hold, answer.available) == (15, 2, 3, 10)
    with pytest.raises(OmnistockRpcError) as refused:
        await client.reserve("q", [line("Q", "STORE-1", 11)], channel_id="store-pickup")
    assert refused.value.short_lines[0].available == 10


def _adjustment(aid: str, sku: str, node: str, delta: int, state: int) -> Any:
    from omnistock.protos.gen.omnistock.v1 import inventory_pb2

    return inventory_pb2.StockAdjustment(adjustment_id=aid, sku=sku, node_id=node, delta=delta, state=state)


async def test_a_channel_hold_never_takes_stock_hidden_from_it(
    service: Any, client: OmnistockClient, shop: Admin
) -> None:
    await client.set_stock([level("H", "STORE-1", 10), level("H", "DC-1", 3)])

    async def web_hold(i: int) -> bool:
        try:
            await client.reserve(f"web-{i}", [line("H", "STORE-1", 1)], channel_id="web")
            return True
        except OmnistockRpcError as error:
            assert error.code is grpc.StatusCode.FAILED_PRECONDITION
            return False

    # web may promise min(10 - 2 safety, 50% cap) = 5 units of the store's 10, however many ask at once.
    assert sum(await asyncio.gather(*(web_hold(i) for i in range(40)))) == 5
    # Other channels still see the rest of the shelf.
    assert (await per_node(client, "H", "store-pickup"))[1]["STORE-1"] == 5
    # marketplace does not sell from stores at all.
    with pytest.raises(OmnistockRpcError) as refused:
        await client.reserve("mkt", [line("H", "STORE-1", 1)], channel_id="marketplace")
    assert [(s.node_id, s.available) for s in refused.value.short_lines] == [("STORE-1", 0)]
    # A hold with no channel may take every free unit.
    await client.reserve("plain", [line("H", "STORE-1", 5)])
    assert (await client.check_conservation()).ok


async def test_rule_changes_apply_at_once_and_bad_rules_change_nothing(
    client: OmnistockClient, shop: Admin
) -> None:
    await client.set_stock([level("R", "STORE-1", 20)])
    assert (await per_node(client, "R", "web"))[1]["STORE-1"] == 10  # 50% cap
    stricter = network_pb2.Channel()
    stricter.CopyFrom(WEB)
    del stricter.caps[:]
    stricter.safety.append(network_pb2.SafetyRule(units=15, sku="R", node_id="STORE-1"))
    config = await shop("PutChannels", network_pb2.PutChannelsRequest(channels=[stricter]))
    assert (await per_node(client, "R", "web"))[1]["STORE-1"] == 5  # 20 - 15, the most specific rule
    version = config.version

    bad_requests = [
        ("PutChannels", network_pb2.PutChannelsRequest(channels=[_channel(groups=["nowhere"])]), "groups"),
        (
            "PutChannels",
            network_pb2.PutChannelsRequest(channels=[_channel(safety=[network_pb2.SafetyRule(percent=120)])]),
            "safety[0].percent",
        ),
        (
            "PutChannels",
            network_pb2.PutChannelsRequest(channels=[_channel(safety=[network_pb2.SafetyRule(units=-1)])]),
            "safety[0].units",
        ),
        (
            "PutGroups",
            network_pb2.PutGroupsRequest(groups=[network_pb2.NodeGroup(group_id="empty")]),
            "empty",
        ),
        ("DeleteGroups", network_pb2.DeleteGroupsRequest(group_ids=["dcs"]), "groups"),
    ]
    for method, request, field in bad_requests:
        with pytest.raises(OmnistockRpcError) as refused:
            await shop(method, request)
        assert refused.value.code is grpc.StatusCode.INVALID_ARGUMENT, method
        assert any(field in f for f, _ in refused.value.field_violations), refused.value.field_violations
    unknown = [
        ("DeleteChannels", network_pb2.DeleteChannelsRequest(channel_ids=["nope"])),
        ("DeleteGroups", network_pb2.DeleteGroupsRequest(group_ids=["nope"])),
    ]
    for method, request in unknown:
        with pytest.raises(OmnistockRpcError) as missing:
            await shop(method, request)
        assert missing.value.code is grpc.StatusCode.NOT_FOUND
    with pytest.raises(OmnistockRpcError) as missing:
        await client.availability(["R"], channel_id="nope")
    assert missing.value.code is grpc.StatusCode.NOT_FOUND
    after = await shop("GetNetwork", network_pb2.GetNetworkRequest())
    assert after.version == version
    assert {c.channel_id for c in after.channels} == {"web", "marketplace", "store-pickup"}


def _channel(**fields: Any) -> network_pb2.Channel:
    fields.setdefault("groups", ["dcs"])
    return network_pb2.Channel(channel_id="new", **fields)


async def test_network_is_durable(make_service: Any) -> None:
    first = await make_service()
    prefix = first.config.prefix
    async with OmnistockClient(f"127.0.0.1:{first.port}") as client:
        await client.put_nodes(NODES)
        admin = Admin(client)
        await admin("PutGroups", network_pb2.PutGroupsRequest(groups=GROUPS))
        await admin("PutChannels", network_pb2.PutChannelsRequest(channels=[WEB]))
    await first.stop(grace=1)
    second = await make_service(prefix=prefix)
    async with OmnistockClient(f"127.0.0.1:{second.port}") as client:
        config = await Admin(client)("GetNetwork", network_pb2.GetNetworkRequest())
    assert [c.channel_id for c in config.channels] == ["web"]
    assert config.channels[0].caps[0].percent == 50
    assert len(config.nodes) == 3 and len(config.groups) == 3


async def test_view_stays_fresh_under_concurrent_writes(client: OmnistockClient, shop: Admin) -> None:
    await client.set_stock([level(f"V-{i}", "DC-1", 1_000) for i in range(20)])
    stop = time.monotonic() + 2.0
    ages: list[float] = []

    async def writer(k: int) -> None:
        n = 0
        while time.monotonic() < stop:
            await client.adjust(f"w{k}-{n}", f"V-{n % 20}", "DC-1", -1)
            n += 1

    async def reader() -> None:
        while time.monotonic() < stop:
            answer = await client.availability([f"V-{i}" for i in range(20)], channel_id="web")
            ages.append(time.time() - answer.as_of.ToNanoseconds() / 1e9)
            await asyncio.sleep(0.01)

    await asyncio.gather(*(writer(k) for k in range(4)), reader(), reader())
    ages.sort()
    # A generous sanity bound; the benchmark reports the real figure.
    assert ages[int(len(ages) * 0.99)] < 1.0, ages[-10:]
    # Once writes stop, the view converges on what the shards say.
    await asyncio.sleep(0.3)
    skus = [f"V-{i}" for i in range(20)]
    viewed = await client.availability(skus, channel_id="web")
    exact = await client.availability(skus, channel_id="web", consistent=True)
    assert [a.available for a in viewed.skus] == [a.available for a in exact.skus]
    assert viewed.version > 0 and not viewed.consistent and exact.consistent


async def test_pickup_search_finds_the_nearest_stores_with_the_basket(
    client: OmnistockClient, shop: Admin
) -> None:
    from omnistock.protos.gen.omnistock.v1 import availability_pb2

    lat, lon = 48.8566, 2.3522  # 0.009 degrees of latitude is about 1 km
    stores = {"P-1KM": 0.009, "P-5KM": 0.045, "P-20KM": 0.18, "P-90KM": 0.81}
    nodes = [
        common_pb2.Node(node_id=n, type=STORE, pickup=True, enabled=True, latitude=lat + d, longitude=lon)
        for n, d in stores.items()
    ]
    nodes.append(common_pb2.Node(node_id="P-NOPICK", type=STORE, pickup=False, enabled=True, latitude=lat))
    await client.put_nodes(nodes)
    await client.set_stock(
        [
            level("A", "P-1KM", 5),  # A only: partial
            level("A", "P-5KM", 2),
            level("B", "P-5KM", 1),  # whole basket, but farther
            level("A", "P-20KM", 9),
            level("B", "P-20KM", 9),  # whole basket
            level("A", "P-90KM", 9),
            level("B", "P-90KM", 9),  # outside a 50 km radius
            level("A", "P-NOPICK", 9),
            level("B", "P-NOPICK", 9),  # no pickup
        ]
    )
    await asyncio.sleep(0.2)  # the search reads the gateway's view
    request = availability_pb2.FindPickupStoresRequest(
        items=[availability_pb2.BasketItem(sku="A", quantity=2), availability_pb2.BasketItem(sku="B")],
        location=common_pb2.Location(latitude=lat, longitude=lon),
    )
    answer = await client._call(client.availability_stub.FindPickupStores, request)
    assert [s.node.node_id for s in answer.complete] == ["P-5KM", "P-20KM"]
    assert [s.node.node_id for s in answer.partial] == ["P-1KM"]
    assert answer.complete[0].distance_km == pytest.approx(5.0, rel=0.01)
    assert [(i.sku, i.requested, i.available) for i in answer.partial[0].items] == [("A", 2, 5), ("B", 1, 0)]

    wider = availability_pb2.FindPickupStoresRequest()
    wider.CopyFrom(request)
    wider.radius_km = 200
    wider.limit = 2
    answer = await client._call(client.availability_stub.FindPickupStores, wider)
    assert [s.node.node_id for s in answer.complete] == ["P-5KM", "P-20KM"]  # limited to 2

    around_store = availability_pb2.FindPickupStoresRequest(
        items=[availability_pb2.BasketItem(sku="A")], store_id="P-1KM", radius_km=6
    )
    answer = await client._call(client.availability_stub.FindPickupStores, around_store)
    assert [(s.node.node_id, round(s.distance_km)) for s in answer.complete] == [("P-1KM", 0), ("P-5KM", 4)]

    for bad, field in [
        (availability_pb2.FindPickupStoresRequest(items=[availability_pb2.BasketItem(sku="A")]), "origin"),
        (availability_pb2.FindPickupStoresRequest(store_id="P-1KM"), "items"),
        (
            availability_pb2.FindPickupStoresRequest(
                items=[availability_pb2.BasketItem(sku="A")], store_id="P-1KM", radius_km=-1
            ),
            "radius_km",
        ),
    ]:
        with pytest.raises(OmnistockRpcError) as refused:
            await client._call(client.availability_stub.FindPickupStores, bad)
        assert refused.value.code is grpc.StatusCode.INVALID_ARGUMENT
        assert field in [f for f, _ in refused.value.field_violations]


async def next_update(stream: Any, timeout: float = 5.0) -> Any:
    return await asyncio.wait_for(stream.read(), timeout)


async def test_watch_pushes_changes_and_status_crossings_and_resumes(
    client: OmnistockClient, shop: Admin
) -> None:
    from omnistock.protos.gen.omnistock.v1 import availability_pb2

    IN, LOW, OUT = (
        common_pb2.STOCK_STATUS_IN_STOCK,
        common_pb2.STOCK_STATUS_LOW_STOCK,
        common_pb2.STOCK_STATUS_OUT_OF_STOCK,
    )
    request = availability_pb2.WatchAvailabilityRequest(channel_id="store-pickup", skus=["W1", "W2"])
    stream = client.availability_stub.WatchAvailability(request)
    first = await next_update(stream)
    assert first.catch_up
    assert [(c.sku, c.available, c.status) for c in first.changes] == [("W1", 0, OUT), ("W2", 0, OUT)]

    await client.set_stock([level("W1", "STORE-1", 10)])
    update = await next_update(stream)
    assert [(c.sku, c.available, c.status, c.previous_status) for c in update.changes] == [
        ("W1", 10, IN, OUT)
    ]
    await client.adjust("w1-sale", "W1", "STORE-1", -8)
    update = await next_update(stream)
    assert [(c.sku, c.available, c.status, c.previous_status) for c in update.changes] == [("W1", 2, LOW, IN)]
    # A change to a SKU nobody watches sends nothing; the next update is about W2.
    await client.set_stock([level("UNWATCHED", "STORE-1", 4)])
    await client.set_stock([level("W2", "STORE-2", 1)])
    update = await next_update(stream)
    assert [c.sku for c in update.changes] == ["W2"]
    last_version = update.version
    stream.cancel()

    # Resume: only what changed after the last version seen comes first.
    await client.set_stock([level("W1", "STORE-1", 50)])
    await asyncio.sleep(0.2)
    resumed = client.availability_stub.WatchAvailability(
        availability_pb2.WatchAvailabilityRequest(
            channel_id="store-pickup", skus=["W1", "W2"], from_version=last_version
        )
    )
    catch_up = await next_update(resumed)
    assert catch_up.catch_up and [(c.sku, c.available) for c in catch_up.changes] == [("W1", 50)]

    # A rule change reaches open streams at once.
    stricter = network_pb2.Channel()
    stricter.CopyFrom(PICKUP)
    stricter.safety.append(network_pb2.SafetyRule(units=49, node_id="STORE-1"))
    await shop("PutChannels", network_pb2.PutChannelsRequest(channels=[stricter]))
    update = await next_update(resumed)
    # W1 drops to 1; W2 (unchanged, but not yet sent on this stream) comes along once.
    assert [(c.sku, c.available, c.status) for c in update.changes] == [("W1", 1, LOW), ("W2", 1, LOW)]
    resumed.cancel()

    with pytest.raises(grpc.aio.AioRpcError) as missing:
        bad = client.availability_stub.WatchAvailability(
            availability_pb2.WatchAvailabilityRequest(channel_id="nope")
        )
        await next_update(bad)
    assert missing.value.code() is grpc.StatusCode.NOT_FOUND


async def test_future_supply_dates_and_preorder_holds(client: OmnistockClient, shop: Admin) -> None:
    from google.protobuf.timestamp_pb2 import Timestamp

    from omnistock.protos.gen.omnistock.v1 import availability_pb2, inventory_pb2

    def ts(seconds: float) -> Timestamp:
        stamp = Timestamp()
        stamp.FromNanoseconds(int(seconds * 1e9))
        return stamp

    day = 86_400.0
    now = time.time()
    preorder = network_pb2.Channel(channel_id="preorder", groups=["dcs"], future_supply_holds=True)
    await shop("PutChannels", network_pb2.PutChannelsRequest(channels=[preorder]))
    await client.set_stock([level("F", "DC-1", 2)])
    supplies = [
        inventory_pb2.InboundSupply(
            supply_id="PO-1", sku="F", node_id="DC-1", quantity=5, expected_at=ts(now + 2 * day)
        ),
        inventory_pb2.InboundSupply(
            supply_id="PO-2", sku="F", node_id="DC-1", quantity=10, expected_at=ts(now + 10 * day)
        ),
    ]
    response = await client._call(
        client.inventory.ExpectSupply, inventory_pb2.ExpectSupplyRequest(supplies=supplies)
    )
    assert response.applied == 2

    async def dates(quantity: int, by: float) -> tuple[int, int, float | None]:
        request = availability_pb2.GetAvailabilityRequest(
            skus=["F"], channel_id="preorder", consistent=True, quantity=quantity, by_date=ts(by)
        )
        answer = (await client._call(client.availability_stub.GetAvailability, request)).skus[0]
        earliest = answer.earliest_date.ToNanoseconds() / 1e9 if answer.HasField("earliest_date") else None
        return answer.inbound, answer.available_by_date, earliest

    inbound, by_day_5, earliest = await dates(6, now + 5 * day)
    assert (inbound, by_day_5) == (15, 7) and earliest == pytest.approx(now + 2 * day, abs=1)
    assert (await dates(15, now))[2] == pytest.approx(now + 10 * day, abs=1)
    assert (await dates(30, now))[2] is None

    # web cannot promise supply that has not arrived; the preorder channel can, up to what is expected.
    with pytest.raises(OmnistockRpcError):
        await client.reserve("web-f", [line("F", "DC-1", 3)], channel_id="web")
    await client.reserve("pre-1", [line("F", "DC-1", 12)], channel_id="preorder")
    await client.reserve("pre-2", [line("F", "DC-1", 5)], channel_id="preorder")
    with pytest.raises(OmnistockRpcError) as refused:
        await client.reserve("pre-3", [line("F", "DC-1", 1)], channel_id="preorder")
    assert refused.value.short_lines[0].available == 0

    # The purchase order arrives: on hand up, supply down, in one step.
    receipt = inventory_pb2.StockAdjustment(
        adjustment_id="rcv-1", sku="F", node_id="DC-1", delta=5, supply_id="PO-1"
    )
    result = (await client.adjust_stock([receipt])).results[0]
    assert result.outcome == inventory_pb2.ADJUSTMENT_OUTCOME_APPLIED
    assert (result.position.on_hand, result.position.inbound) == (7, 10)
    unknown = inventory_pb2.StockAdjustment(
        adjustment_id="rcv-2", sku="F", node_id="DC-1", delta=5, supply_id="PO-9"
    )
    assert (await client.adjust_stock([unknown])).results[0].outcome == (
        inventory_pb2.ADJUSTMENT_OUTCOME_UNKNOWN_SUPPLY
    )
    # A purchase order has lines for many SKUs: the same id elsewhere is another line.
    other = inventory_pb2.InboundSupply(
        supply_id="PO-2", sku="OTHER", node_id="DC-1", quantity=1, expected_at=ts(now + day)
    )
    await client._call(client.inventory.ExpectSupply, inventory_pb2.ExpectSupplyRequest(supplies=[other]))
    assert (await dates(15, now))[0] == 10
    assert (await client.check_conservation()).ok


async def test_a_change_that_changes_nothing_keeps_the_version(client: OmnistockClient, shop: Admin) -> None:
    before = await shop("GetNetwork", network_pb2.GetNetworkRequest())
    again = await shop("PutChannels", network_pb2.PutChannelsRequest(channels=[WEB]))
    assert again.version == before.version
    with pytest.raises(OmnistockRpcError) as refused:
        await shop("DeleteGroups", network_pb2.DeleteGroupsRequest(group_ids=["pickup"]))
    assert refused.value.field_violations == [("groups[pickup]", "is still used by channel(s) store-pickup")]


async def test_a_deleted_channel_is_refused_though_its_answers_were_cached(
    client: OmnistockClient, shop: Admin
) -> None:
    await client.set_stock([level("R", "DC-1", 20)])
    for _ in range(2):  # the second answer comes from the gateway's answer cache
        assert (await client.availability(["R"], channel_id="marketplace")).skus[0].available == 18
    await shop("DeleteChannels", network_pb2.DeleteChannelsRequest(channel_ids=["marketplace"]))
    with pytest.raises(OmnistockRpcError) as missing:
        await client.availability(["R"], channel_id="marketplace")
    assert missing.value.code is grpc.StatusCode.NOT_FOUND


async def test_expiry_reaches_the_view_without_any_write(client: OmnistockClient, shop: Admin) -> None:
    await client.set_stock([level("X", "DC-1", 3)])
    await client.reserve("x", [line("X", "DC-1", 3)], ttl_seconds=1)
    deadline = asyncio.get_running_loop().time() + 10
    seen_held = False
    while True:  # the view, not a consistent read: the timer's change must reach it by itself
        available = (await client.availability(["X"])).skus[0].available
        seen_held = seen_held or available == 0
        if seen_held and available == 3:
            break
        assert asyncio.get_running_loop().time() < deadline, "the view never saw the expiry"
        await asyncio.sleep(0.05)


async def test_purchase_limits_hold_under_concurrency(client: OmnistockClient, shop: Admin) -> None:
    await client.set_stock(
        [level("DROP", "DC-1", 100), level("DROP", "STORE-1", 100), level("PLAIN", "DC-1", 9)]
    )
    config = await client.put_purchase_limits({"DROP": 2})
    assert [(p.sku, p.max_per_customer) for p in config.purchase_limits] == [("DROP", 2)]

    async def attempt(i: int, customer: str) -> bool:
        node = "DC-1" if i % 2 else "STORE-1"  # the limit spans nodes (and reservations)
        try:
            await client.reserve(f"{customer}-{i}", [line("DROP", node, 1)], customer_id=customer)
            return True
        except OmnistockRpcError as error:
            assert error.code is grpc.StatusCode.RESOURCE_EXHAUSTED, error
            assert error.quota_violations[0][0] == f"customer:{customer}/sku:DROP"
            return False

    alice = await asyncio.gather(*(attempt(i, "alice") for i in range(20)))
    bob = await asyncio.gather(*(attempt(i, "bob") for i in range(3)))
    assert (sum(alice), sum(bob)) == (2, 2)

    # Releasing gives the allowance back; unlimited SKUs ride along freely.
    first = next(f"alice-{i}" for i, ok in enumerate(alice) if ok)
    await client.release(first)
    held = await client.reserve(
        "alice-again", [line("DROP", "DC-1", 1), line("PLAIN", "DC-1", 5)], customer_id="alice"
    )
    assert held.reservation.customer_id == "alice"
    with pytest.raises(OmnistockRpcError) as refused:
        await client.reserve("anonymous", [line("DROP", "DC-1", 1)])
    assert refused.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.field_violations[0][0] == "customer_id"
    with pytest.raises(OmnistockRpcError) as over:
        await client.reserve("greedy", [line("DROP", "DC-1", 3)], customer_id="carol")
    assert over.value.quota_violations == [
        ("customer:carol/sku:DROP", "limit 2, already held 0, requested 3")
    ]
    await client.put_purchase_limits({"DROP": 0})  # lifted
    await client.reserve("carol-1", [line("DROP", "DC-1", 3)], customer_id="carol")
    assert (await client.check_conservation()).ok
