"""The demo network generator: deterministic, well-shaped, lazy."""

from __future__ import annotations

import itertools
import random
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from statistics import mean

import pytest

from omnistock.loadtest.datagen import (
    DEFAULT_SEED,
    METROS,
    SkuDemand,
    customer_location,
    demand_shares,
    demo_levels,
    demo_nodes,
    load_demo,
    sku_id,
)
from omnistock.protos.gen.omnistock.v1 import common_pb2, inventory_pb2


def serialized(messages: Iterable[object]) -> list[bytes]:
    return [m.SerializeToString() for m in messages]  # type: ignore[attr-defined]


def test_same_seed_same_network() -> None:
    assert serialized(demo_nodes()) == serialized(demo_nodes(seed=DEFAULT_SEED))
    assert serialized(demo_levels(200)) == serialized(demo_levels(200, seed=DEFAULT_SEED))


def test_other_seed_other_network() -> None:
    assert serialized(demo_nodes(seed=1)) != serialized(demo_nodes(seed=2))
    assert serialized(demo_levels(50, seed=1)) != serialized(demo_levels(50, seed=2))


@pytest.mark.parametrize(("dcs", "stores"), [(3, 50), (1, 0), (0, 5), (10, 200)])
def test_node_counts_types_and_ids(dcs: int, stores: int) -> None:
    nodes = demo_nodes(dcs=dcs, stores=stores)
    assert len(nodes) == dcs + stores
    assert len({n.node_id for n in nodes}) == len(nodes)
    dc_nodes = [n for n in nodes if n.type == common_pb2.NODE_TYPE_DC]
    store_nodes = [n for n in nodes if n.type == common_pb2.NODE_TYPE_STORE]
    assert [n.node_id for n in dc_nodes] == [f"DC-{i:02d}" for i in range(1, dcs + 1)]
    assert [n.node_id for n in store_nodes] == [f"STORE-{i:03d}" for i in range(1, stores + 1)]
    assert all(n.enabled and n.name for n in nodes)


def test_dcs_ship_and_stores_offer_pickup_some_ship() -> None:
    nodes = demo_nodes()
    dcs = [n for n in nodes if n.type == common_pb2.NODE_TYPE_DC]
    stores = [n for n in nodes if n.type == common_pb2.NODE_TYPE_STORE]
    assert all(n.ships and not n.pickup for n in dcs)
    assert all(n.pickup for n in stores)
    shipping = sum(n.ships for n in stores)
    assert 0 < shipping < len(stores)


def test_nodes_sit_in_the_continental_us() -> None:
    for node in demo_nodes(dcs=8, stores=300):
        assert 24.0 < node.latitude < 50.0, node
        assert -125.0 < node.longitude < -66.0, node


def test_sku_ids() -> None:
    assert sku_id(1) == "SKU-00001"
    assert sku_id(99999) == "SKU-99999"
    skus = list(dict.fromkeys(level.sku for level in demo_levels(1000)))
    assert skus == [f"SKU-{i:05d}" for i in range(1, 1001)]
    assert all(re.fullmatch(r"SKU-\d{5}", sku) for sku in skus)


def test_levels_shape() -> None:
    nodes = demo_nodes()
    node_ids = {n.node_id for n in nodes}
    levels = list(demo_levels(1000, nodes))
    assert all(level.node_id in node_ids for level in levels)
    assert all(level.on_hand >= 0 for level in levels)
    assert not any(level.HasField("as_of") for level in levels)
    assert len({(level.sku, level.node_id) for level in levels}) == len(levels)
    zeros = sum(1 for level in levels if level.on_hand == 0)
    assert 0.02 * len(levels) < zeros < 0.3 * len(levels)
    dc_stock = [lv.on_hand for lv in levels if lv.node_id.startswith("DC-") and lv.on_hand]
    store_stock = [lv.on_hand for lv in levels if lv.node_id.startswith("STORE-") and lv.on_hand]
    assert mean(dc_stock) > 10 * mean(store_stock)  # DCs deep, stores shallow
    # Not every store carries every SKU, and the best seller is everywhere.
    assert len(levels) < 1000 * len(nodes)
    best = [lv for lv in levels if lv.sku == "SKU-00001"]
    assert {lv.node_id for lv in best} == node_ids and all(lv.on_hand > 0 for lv in best)


def test_skewed_popularity() -> None:
    levels = list(demo_levels(1000))
    totals: dict[str, int] = {}
    for level in levels:
        totals[level.sku] = totals.get(level.sku, 0) + level.on_hand
    head = mean(totals[sku_id(i)] for i in range(1, 11))
    tail = mean(totals[sku_id(i)] for i in range(991, 1001))
    assert head > 3 * tail


def test_levels_are_lazy() -> None:
    levels = demo_levels(10**9)  # would never finish if it were a list
    assert len(list(itertools.islice(levels, 100))) == 100


def test_negative_sizes_are_refused() -> None:
    with pytest.raises(ValueError):
        demo_nodes(dcs=-1)
    with pytest.raises(ValueError):
        list(demo_levels(-1))


class RecordingClient:
    def __init__(self) -> None:
        self.nodes: list[common_pb2.Node] = []
        self.chunks: list[int] = []
        self.levels: list[inventory_pb2.StockLevel] = []

    async def put_nodes(self, nodes: Sequence[common_pb2.Node]) -> inventory_pb2.PutNodesResponse:
        self.nodes = list(nodes)
        return inventory_pb2.PutNodesResponse(created=len(nodes))

    async def load_stock(
        self, levels: Iterable[inventory_pb2.StockLevel], chunk_size: int = 5_000
    ) -> inventory_pb2.LoadStockResponse:
        batch: list[inventory_pb2.StockLevel] = []
        for level in levels:
            batch.append(level)
            if len(batch) == chunk_size:
                self.chunks.append(len(batch))
                self.levels += batch
                batch = []
        if batch:
            self.chunks.append(len(batch))
            self.levels += batch
        count = len(self.levels)
        return inventory_pb2.LoadStockResponse(received=count, applied=count)


async def test_load_demo_puts_nodes_then_streams_levels() -> None:
    client = RecordingClient()
    said: list[str] = []
    result = await load_demo(client, progress=said.append, skus=300, chunk_size=1_000)
    assert serialized(client.nodes) == serialized(demo_nodes())
    assert serialized(client.levels) == serialized(demo_levels(300, demo_nodes()))
    assert max(client.chunks) <= 1_000
    assert result.received == len(client.levels)
    assert said[0].startswith("nodes: 53")
    assert said[-1].startswith(f"levels: {len(client.levels)} received")


def test_demand_is_skewed_to_a_few_hot_skus() -> None:
    shares = demand_shares(1000)
    assert sum(shares) == pytest.approx(1)
    assert shares == sorted(shares, reverse=True)
    assert shares[0] == pytest.approx(0.134, abs=0.001)  # the best seller
    assert sum(shares[:10]) == pytest.approx(0.39, abs=0.01)  # the top 1% of SKUs
    assert sum(shares[500:]) < 0.1  # the long tail half
    assert demand_shares(5, exponent=0) == pytest.approx([0.2] * 5)  # no skew at all


def test_drawn_skus_follow_the_demand() -> None:
    demand = SkuDemand(1000)
    rng = random.Random(7)
    drawn = Counter(demand.number(rng) for _ in range(20_000))
    assert set(drawn) <= set(range(1, 1001))
    assert drawn[1] / 20_000 == pytest.approx(0.134, abs=0.01)
    assert sum(drawn[n] for n in range(1, 11)) / 20_000 == pytest.approx(0.39, abs=0.02)
    assert demand.sku(rng).startswith("SKU-")


def test_a_basket_has_distinct_skus() -> None:
    demand = SkuDemand(20)
    rng = random.Random(3)
    for size in (1, 3, 20, 25):
        basket = demand.basket(rng, size)
        assert len(basket) == len(set(basket)) == min(size, 20)


def test_customers_live_around_the_metros() -> None:
    rng = random.Random(11)
    for _ in range(500):
        latitude, longitude = customer_location(rng)
        nearest = min(
            METROS, key=lambda metro: abs(metro.latitude - latitude) + abs(metro.longitude - longitude)
        )
        assert abs(nearest.latitude - latitude) < 1.5 and abs(nearest.longitude - longitude) < 1.5


def test_demand_needs_a_catalog() -> None:
    with pytest.raises(ValueError, match="skus"):
        demand_shares(0)
