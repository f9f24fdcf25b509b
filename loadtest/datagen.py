"""A deterministic demo network: distribution centres and stores around US metro areas, and their stock.

Pure data plus one async loader. The same seed always gives the same nodes and the
same levels, so demos, benchmarks and tests can name `SKU-00001` at `STORE-001`
and mean the same thing everywhere.

    nodes = demo_nodes(dcs=3, stores=50)
    levels = demo_levels(skus=1000, nodes=nodes)   # lazy iterator of StockLevel
    await load_demo(client, progress=print)        # puts the nodes, streams the levels
    demo_network_text()                            # its groups and channels (TOML)

Demand to match, for load tests: `SkuDemand` draws SKUs with Zipf-like popularity (a few
hot SKUs take a large share of the views and orders) and `customer_location` draws
shoppers around the same metros as the stores.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from omnistock.protos.gen.omnistock.v1 import common_pb2, inventory_pb2

DEFAULT_SEED = 20240611
"""The seed of the demo network `omnistock serve --demo` loads."""


@dataclass(frozen=True, slots=True)
class Metro:
    name: str
    latitude: float
    longitude: float
    weight: float
    """Relative share of the stores (roughly the metro's population, in millions)."""


METROS: tuple[Metro, ...] = (
    Metro("New York", 40.7128, -74.0060, 19.5),
    Metro("Los Angeles", 34.0522, -118.2437, 12.9),
    Metro("Chicago", 41.8781, -87.6298, 9.4),
    Metro("Dallas", 32.7767, -96.7970, 7.9),
    Metro("Houston", 29.7604, -95.3698, 7.3),
    Metro("Atlanta", 33.7490, -84.3880, 6.2),
    Metro("Washington", 38.9072, -77.0369, 6.3),
    Metro("Miami", 25.7617, -80.1918, 6.1),
    Metro("Philadelphia", 39.9526, -75.1652, 6.2),
    Metro("Phoenix", 33.4484, -112.0740, 5.0),
    Metro("Boston", 42.3601, -71.0589, 4.9),
    Metro("San Francisco", 37.7749, -122.4194, 4.6),
    Metro("Seattle", 47.6062, -122.3321, 4.0),
    Metro("Minneapolis", 44.9778, -93.2650, 3.7),
    Metro("Denver", 39.7392, -104.9903, 3.0),
)

DC_SITES: tuple[Metro, ...] = (
    Metro("Columbus, OH", 39.9612, -82.9988, 1.0),
    Metro("Fort Worth, TX", 32.7555, -97.3308, 1.0),
    Metro("Reno, NV", 39.5296, -119.8138, 1.0),
    Metro("Allentown, PA", 40.6023, -75.4714, 1.0),
    Metro("Atlanta, GA", 33.6407, -84.4277, 1.0),
    Metro("Riverside, CA", 33.9533, -117.3962, 1.0),
    Metro("Memphis, TN", 35.1495, -90.0490, 1.0),
    Metro("Indianapolis, IN", 39.7684, -86.1581, 1.0),
)

SHIP_FROM_STORE_SHARE = 0.4
"""Share of stores that also ship orders (ship-from-store); every store offers pickup."""

DEMO_NETWORK_FILE = "demo-network.toml"
"""Groups and channels of the demo network, shipped inside this package."""


def demo_network_text() -> str:
    """The demo network's node groups and channels as TOML (`omnistock serve --network` format)."""
    # Next to this module (package data), in a source tree and in an installed package alike.
    return (Path(__file__).parent / DEMO_NETWORK_FILE).read_text(encoding="utf-8")


def sku_id(number: int) -> str:
    """`SKU-00001` for 1; wider numbers keep their digits."""
    return f"SKU-{number:05d}"


def dc_id(number: int) -> str:
    return f"DC-{number:02d}"


def store_id(number: int) -> str:
    return f"STORE-{number:03d}"


DC_SHIPMENT_COST = 4.5
STORE_SHIPMENT_COST = 7.0
"""Ship-from-store costs more (store labour, small parcels) than shipping from a DC."""
STORE_DAILY_ORDERS = 200
"""Orders a store's staff can pick and pack a day."""


def demo_nodes(dcs: int = 3, stores: int = 50, seed: int = DEFAULT_SEED) -> list[common_pb2.Node]:
    """DCs (ship, no pickup) at logistics hubs, then stores (pickup; some ship) around metros."""
    if dcs < 0 or stores < 0:
        raise ValueError("dcs and stores must not be negative")
    rng = random.Random(seed)
    nodes: list[common_pb2.Node] = []
    for i in range(dcs):
        site = DC_SITES[i % len(DC_SITES)]
        lap = i // len(DC_SITES)
        nodes.append(
            common_pb2.Node(
                node_id=dc_id(i + 1),
                type=common_pb2.NODE_TYPE_DC,
                name=f"{site.name} DC" + (f" {lap + 1}" if lap else ""),
                ships=True,
                pickup=False,
                latitude=round(site.latitude + (rng.uniform(-0.05, 0.05) if lap else 0.0), 4),
                longitude=round(site.longitude + (rng.uniform(-0.05, 0.05) if lap else 0.0), 4),
                enabled=True,
                priority=1,
                shipment_cost=DC_SHIPMENT_COST,
            )
        )
    weights = [metro.weight for metro in METROS]
    per_metro: dict[str, int] = {}
    for i in range(stores):
        # The first stores go one per metro so even a small network spans the map.
        metro = METROS[i] if i < len(METROS) else rng.choices(METROS, weights)[0]
        per_metro[metro.name] = per_metro.get(metro.name, 0) + 1
        # About 0.15 degrees (15 km) around the city centre: suburbs, not the ocean's middle.
        latitude = _clamp(metro.latitude + rng.gauss(0.0, 0.12), -90.0, 90.0)
        longitude = _clamp(metro.longitude + rng.gauss(0.0, 0.15), -180.0, 180.0)
        nodes.append(
            common_pb2.Node(
                node_id=store_id(i + 1),
                type=common_pb2.NODE_TYPE_STORE,
                name=f"{metro.name} #{per_metro[metro.name]}",
                ships=i == 0 or rng.random() < SHIP_FROM_STORE_SHARE,
                pickup=True,
                latitude=round(latitude, 4),
                longitude=round(longitude, 4),
                enabled=True,
                priority=2,
                shipment_cost=STORE_SHIPMENT_COST,
                daily_capacity=STORE_DAILY_ORDERS,
            )
        )
    return nodes


def demo_levels(
    skus: int = 1000,
    nodes: Sequence[common_pb2.Node] | None = None,
    *,
    seed: int = DEFAULT_SEED,
) -> Iterator[inventory_pb2.StockLevel]:
    """Absolute on_hand per SKU x node, lazily, SKU by SKU in node order.

    Popularity falls with the SKU number (SKU-00001 sells most and is stocked
    everywhere). DCs hold deep stock and carry almost every SKU; stores carry a
    subset with a few units each. About one position in ten is an explicit zero
    (carried, out of stock). `as_of` is left unset: the server stamps its time.
    """
    if skus < 0:
        raise ValueError("skus must not be negative")
    if nodes is None:
        nodes = demo_nodes(seed=seed)
    rng = random.Random(seed ^ 0x5EED)
    for number in range(1, skus + 1):
        sku = sku_id(number)
        popularity = 1.0 / math.sqrt(number)  # 1.0 for the best seller, ~0.03 at 1000
        for node in nodes:
            if node.type == common_pb2.NODE_TYPE_STORE:
                carried = number == 1 or rng.random() < 0.35 + 0.6 * popularity
                if not carried:
                    continue
                if number != 1 and rng.random() < 0.12:
                    on_hand = 0
                else:
                    on_hand = 1 + int(rng.expovariate(1.0 / (2.0 + 10.0 * popularity)))
            else:
                if number != 1 and rng.random() < 0.03:
                    continue
                if number != 1 and rng.random() < 0.06:
                    on_hand = 0
                else:
                    mean = 40.0 + 2_000.0 * popularity
                    on_hand = max(1, int(rng.lognormvariate(math.log(mean), 0.6)))
            yield inventory_pb2.StockLevel(sku=sku, node_id=node.node_id, on_hand=on_hand)


DEMAND_EXPONENT = 1.0
"""Zipf exponent of demand: with 1000 SKUs the best seller takes ~13% of the demand, the top 1% ~40%."""


def demand_shares(skus: int, exponent: float = DEMAND_EXPONENT) -> list[float]:
    """Share of the demand of SKU number 1..skus (index 0 is SKU 1): Zipf-like, summing to 1."""
    if skus < 1:
        raise ValueError("skus must be at least 1")
    if exponent < 0:
        raise ValueError("exponent must not be negative")
    weights = [number**-exponent for number in range(1, skus + 1)]
    total = sum(weights)
    return [weight / total for weight in weights]


class SkuDemand:
    """Draws SKU numbers (1..skus) by Zipf-like popularity: SKU 1 is the best seller."""

    def __init__(self, skus: int, exponent: float = DEMAND_EXPONENT) -> None:
        self.skus = skus
        self._cumulative = list(itertools.accumulate(demand_shares(skus, exponent)))

    def number(self, rng: random.Random) -> int:
        index = bisect.bisect_left(self._cumulative, rng.random() * self._cumulative[-1])
        return min(index, self.skus - 1) + 1

    def sku(self, rng: random.Random) -> str:
        return sku_id(self.number(rng))

    def basket(self, rng: random.Random, size: int) -> list[str]:
        """`size` distinct SKUs (at most the catalog), each drawn by popularity."""
        size = min(size, self.skus)
        chosen: dict[str, None] = {}
        while len(chosen) < size:
            chosen[self.sku(rng)] = None
        return list(chosen)


def customer_location(rng: random.Random) -> tuple[float, float]:
    """Where a shopper is: around a metro (by population), like the stores (latitude, longitude)."""
    metro = rng.choices(METROS, [metro.weight for metro in METROS])[0]
    latitude = _clamp(metro.latitude + rng.gauss(0.0, 0.2), -90.0, 90.0)
    longitude = _clamp(metro.longitude + rng.gauss(0.0, 0.25), -180.0, 180.0)
    return round(latitude, 4), round(longitude, 4)


class DemoClient(Protocol):
    """What `load_demo` needs of a client (OmnistockClient has it)."""

    async def put_nodes(self, nodes: Sequence[common_pb2.Node]) -> inventory_pb2.PutNodesResponse: ...

    async def load_stock(
        self, levels: Iterator[inventory_pb2.StockLevel], chunk_size: int = ...
    ) -> inventory_pb2.LoadStockResponse: ...


async def load_demo(
    client: DemoClient,
    progress: Callable[[str], None] | None = None,
    *,
    dcs: int = 3,
    stores: int = 50,
    skus: int = 1000,
    seed: int = DEFAULT_SEED,
    chunk_size: int = 5_000,
    after_nodes: Callable[[], Awaitable[object]] | None = None,
) -> inventory_pb2.LoadStockResponse:
    """Put the demo nodes, then stream their levels; `progress` gets short human-readable lines.

    `after_nodes` runs between the two (the groups and channels, which need the nodes);
    when it raises, no level is loaded.
    """
    say = progress or (lambda text: None)
    nodes = demo_nodes(dcs=dcs, stores=stores, seed=seed)
    put = await client.put_nodes(nodes)
    say(f"nodes: {len(nodes)} ({dcs} DCs, {stores} stores): {put.created} created, {put.updated} updated")
    if after_nodes is not None:
        await after_nodes()

    def counted() -> Iterator[inventory_pb2.StockLevel]:
        for sent, item in enumerate(demo_levels(skus=skus, nodes=nodes, seed=seed), start=1):
            yield item
            if sent % chunk_size == 0:
                say(f"levels: {sent} sent")

    result = await client.load_stock(counted(), chunk_size=chunk_size)
    say(
        f"levels: {result.received} received, {result.applied} applied, {result.stale} stale"
        f" ({skus} SKUs over {len(nodes)} nodes)"
    )
    return result


def _clamp(value: float, low: float, high: float) -> float:
    return min(high, max(low, value))
