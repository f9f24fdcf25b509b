"""Locust users of the peak-day load test: shoppers, checkouts, store associates, the POS /
WMS feed and marketplaces on the live feed, driven by the shape of loadtest/peak.py.

`omnistock loadtest` runs this file in its own Locust process (gevent patches that process
only). By hand:

    locust -f loadtest/locustfile.py --headless --host 127.0.0.1:50051 --orders-per-second 1 --spike 50

A target with TLS or API keys is reached as the CLI reaches it: OMNISTOCK_TLS_CA, OMNISTOCK_TLS_CERT,
OMNISTOCK_TLS_KEY and OMNISTOCK_API_KEY (or OMNISTOCK_API_KEY_FILE) in the environment.

Each gRPC call fires Locust's request event (request type "grpc", the RPC's name, its time
in ms, the answer's size, the error). A refused Reserve (FAILED_PRECONDITION: short stock,
nothing to source) is an answer, not an error: stock runs out on a peak day. The live
feed reports each update received, its time being the delay from the view's `as_of` to
its arrival. What each scenario did and every call's time, second by second, go to
--scenario-file for the verdict. `omnistock loadtest` runs a master and workers (Locust's
distributed mode) and names each worker I/N in OMNISTOCK_LOCUST_WORKER (not an option: a
worker takes the master's options when the run starts); worker I writes its own scenario
file beside --scenario-file, and its feed users change only every Nth store from the Ith, so
two processes never race a store's read-then-adjust.

The target must hold the demo network (`omnistock serve --demo`, or what `omnistock
loadtest` loads): its channels web, store-pickup and marketplace, SKU-00001.. and the nodes.
"""

from __future__ import annotations

import collections
import itertools
import json
import os
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gevent
import gevent.lock
import grpc
import grpc.experimental.gevent as grpc_gevent
from locust import LoadTestShape, User, constant, constant_throughput, events, task
from locust.env import Environment

from omnistock.availability.pickup import distance_km
from omnistock.client import Credentials
from omnistock.loadtest import peak
from omnistock.loadtest.datagen import SkuDemand, customer_location, sku_id
from omnistock.protos.gen.omnistock.v1 import (
    availability_pb2,
    availability_pb2_grpc,
    common_pb2,
    inventory_pb2,
    inventory_pb2_grpc,
    reservation_pb2,
    reservation_pb2_grpc,
)

# gRPC made gevent-friendly (a call's wait yields to the other users): after Locust patched
# the standard library (on import), before any channel is made.
grpc_gevent.init_gevent()

WORKER_ENV = "OMNISTOCK_LOCUST_WORKER"
"""I/N: this process is worker I of N (set by `omnistock loadtest`)."""
CREDENTIALS = Credentials.from_env()
"""TLS and API key of the target (`omnistock loadtest` passes them in OMNISTOCK_TLS_CA, ...)."""
WEB, PICKUP, MARKETPLACE = "web", "store-pickup", "marketplace"
ANSWERS = {"Reserve": {grpc.StatusCode.FAILED_PRECONDITION}}
"""Status codes that are business answers of a method, not errors."""
HOLD_TTL_SECONDS = 600
CALL_TIMEOUT = 30.0
SPARE_THREADS = 16
"""Threads of gevent's pool beyond one per user (the start-up read of the network, stragglers)."""
SAFE_POS_SALE_AVAILABLE = 2
"""A walk-in sale takes a unit only where at least this many are free: the web and pickup
channels keep at least one unit per store back, so a sale never takes a held unit."""


@events.init_command_line_parser.add_listener
def add_options(parser: Any) -> None:
    group = parser.add_argument_group("omnistock peak day")
    group.add_argument("--orders-per-second", type=float, default=1.0, help="normal peak orders per second")
    group.add_argument("--lines-per-order", type=float, default=2.5)
    group.add_argument("--checks-per-order", type=float, default=30.0)
    group.add_argument("--stock-updates-per-second", type=float, default=10.0)
    group.add_argument("--spike", type=float, default=50.0, help="x the normal peak held after the ramp")
    group.add_argument("--minutes", type=float, default=5.0, help="whole run, ramp included")
    group.add_argument("--ramp-minutes", type=float, default=1.0)
    group.add_argument("--skus", type=int, default=1000, help="SKU-00001.. in the target's catalog")
    group.add_argument("--scenario-file", default="", help="where to write what each scenario did (JSON)")


@dataclass
class RunState:
    """What the users share in this Locust process."""

    plan: peak.Plan | None = None
    demand: SkuDemand = field(default_factory=lambda: SkuDemand(1000))
    lines_per_order: float = 2.5
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    stores: list[common_pb2.Node] = field(default_factory=list)
    dcs: list[str] = field(default_factory=list)
    ids: Iterator[int] = field(default_factory=itertools.count)
    confirmed: collections.deque[tuple[str, list[reservation_pb2.ReservationLine]]] = field(
        default_factory=lambda: collections.deque(maxlen=50_000)
    )
    """Confirmed orders the checkouts hand to the store associates."""
    store_locks: dict[str, gevent.lock.Semaphore] = field(default_factory=dict)
    """One feed user at a time per store: its read-then-adjust is not raced by another feed."""
    started: float = field(default_factory=time.time)
    per_second: Counter[tuple[str, int]] = field(default_factory=Counter)
    """Iterations by (scenario, second since the epoch): the processes' clocks are one machine's."""
    calls: Counter[tuple[str, int]] = field(default_factory=Counter)
    """Calls (and stream updates) by (RPC, second since the epoch)."""
    latency: dict[tuple[str, int], Counter[int]] = field(default_factory=dict)
    """Calls by (RPC, second since the epoch), then by rounded time in ms: percentiles of any window."""
    feed_stores: list[str] = field(default_factory=list)
    """The stores this process's feed users change (its --store-share)."""
    outcomes: Counter[tuple[str, str]] = field(default_factory=Counter)
    expiring: list[tuple[str, float]] = field(default_factory=list)
    """Holds left to expire: (reservation id, expiry in seconds since the epoch)."""

    def record(self, scenario: str, outcome: str, iteration: bool = True) -> None:
        """Count an outcome; `iteration` false for a second outcome of the same iteration."""
        if iteration:
            self.per_second[scenario, int(time.time())] += 1
        self.outcomes[scenario, outcome] += 1

    def call(self, name: str, milliseconds: float) -> None:
        second = int(time.time())
        self.calls[name, second] += 1
        self.latency.setdefault((name, second), Counter())[rounded_ms(milliseconds)] += 1

    def next_id(self, kind: str) -> str:
        return f"{self.run_id}-{kind}-{next(self.ids)}"

    def report(self) -> dict[str, Any]:
        per_second: dict[str, dict[int, int]] = {}
        for (scenario, second), count in sorted(self.per_second.items()):
            per_second.setdefault(scenario, {})[second] = count
        calls: dict[str, dict[int, int]] = {}
        for (name, second), count in sorted(self.calls.items()):
            calls.setdefault(name, {})[second] = count
        latency: dict[str, dict[int, dict[int, int]]] = {}
        for (name, second), times in sorted(self.latency.items()):
            latency.setdefault(name, {})[second] = dict(sorted(times.items()))
        outcomes: dict[str, dict[str, int]] = {}
        for (scenario, outcome), count in sorted(self.outcomes.items()):
            outcomes.setdefault(scenario, {})[outcome] = count
        return {
            "run_id": self.run_id,
            "started": self.started,
            "per_second": per_second,
            "calls": calls,
            "latency_ms": latency,
            "outcomes": outcomes,
            "expiring": self.expiring,
        }


def rounded_ms(milliseconds: float) -> int:
    """A call's time kept to two significant digits (1 ms below 100 ms): percentiles within 1%."""
    whole = max(0, round(milliseconds))
    if whole < 100:
        return whole
    step = 10 ** (len(str(whole)) - 2)
    return round(whole / step) * step


STATE = RunState()


@events.request.add_listener
def count_call(name: str, response_time: float, **_: Any) -> None:
    """Every call this process made, for the verdict's windows (Locust's own stats are cumulative)."""
    STATE.call(name, response_time)


class RequestEvents(grpc.UnaryUnaryClientInterceptor):
    """Fires Locust's request event for every unary call made through the channel."""

    def __init__(self, environment: Environment) -> None:
        self.environment = environment

    def intercept_unary_unary(
        self, continuation: Callable[[Any, Any], Any], client_call_details: Any, request: Any
    ) -> Any:
        method = client_call_details.method
        name = (method.decode() if isinstance(method, bytes) else method).rsplit("/", 1)[-1]
        began = time.perf_counter()
        call = continuation(client_call_details, request)
        exception: Exception | None = None
        length = 0
        try:
            length = call.result().ByteSize()
        except grpc.RpcError as error:
            if error.code() not in ANSWERS.get(name, ()):
                exception = error
        self.environment.events.request.fire(
            request_type="grpc",
            name=name,
            response_time=(time.perf_counter() - began) * 1000,
            response_length=length,
            exception=exception,
            context={},
        )
        return call


class OmnistockUser(User):
    """A gRPC user: its own channel to the target, every call reported to Locust."""

    abstract = True
    scenario = ""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self.rng = random.Random(next(STATE.ids))
        channel = CREDENTIALS.channel(self.host or "127.0.0.1:50051")
        self.channel = grpc.intercept_channel(channel, RequestEvents(environment))
        self._raw_channel = channel
        self.availability = availability_pb2_grpc.AvailabilityServiceStub(self.channel)
        self.inventory = inventory_pb2_grpc.InventoryServiceStub(self.channel)
        self.reservations = reservation_pb2_grpc.ReservationServiceStub(self.channel)

    def on_stop(self) -> None:
        self._raw_channel.close()

    def nearest_store(self, latitude: float, longitude: float) -> common_pb2.Node:
        return min(STATE.stores, key=lambda s: distance_km(latitude, longitude, s.latitude, s.longitude))


def weight(share: float) -> int:
    """A task weight (whole number) for a share."""
    return max(1, round(share * 100))


class Shopper(OmnistockUser):
    """Browsing: product-listing pages, product pages with their nodes, pickup searches."""

    scenario = peak.SHOPPER

    @task(weight(peak.BROWSE_MIX["listing"]))
    def listing_page(self) -> None:
        size = peak.LISTING_PAGE_SKUS
        first = (STATE.demand.number(self.rng) - 1) // size * size + 1
        skus = [sku_id(n) for n in range(first, min(first + size, STATE.demand.skus + 1))]
        self.availability.GetAvailability(
            availability_pb2.GetAvailabilityRequest(skus=skus, channel_id=WEB), timeout=CALL_TIMEOUT
        )
        STATE.record(self.scenario, "listing")

    @task(weight(peak.BROWSE_MIX["product"]))
    def product_page(self) -> None:
        request = availability_pb2.GetAvailabilityRequest(
            skus=[STATE.demand.sku(self.rng)], include_nodes=True, channel_id=WEB
        )
        self.availability.GetAvailability(request, timeout=CALL_TIMEOUT)
        STATE.record(self.scenario, "product")

    @task(weight(peak.BROWSE_MIX["pickup"]))
    def pickup_search(self) -> None:
        latitude, longitude = customer_location(self.rng)
        basket = STATE.demand.basket(self.rng, self.rng.choice((1, 1, 2)))
        request = availability_pb2.FindPickupStoresRequest(
            items=[availability_pb2.BasketItem(sku=sku, quantity=1) for sku in basket],
            location=common_pb2.Location(latitude=latitude, longitude=longitude),
            channel_id=PICKUP,
        )
        self.availability.FindPickupStores(request, timeout=CALL_TIMEOUT)
        STATE.record(self.scenario, "pickup")


class OrderingUser(OmnistockUser):
    """A user that places orders: shipped (sourced by the web channel) or collected at the
    customer's nearest store."""

    abstract = True

    def hold(self, reservation_id: str, ttl: int) -> reservation_pb2.Reservation | None:
        """The order's hold, or None when refused (short stock, nothing to source)."""
        lines = peak.order_lines(STATE.lines_per_order, self.rng.random())
        skus = STATE.demand.basket(self.rng, lines)
        latitude, longitude = customer_location(self.rng)
        if self.rng.random() < peak.PICKUP_ORDER_SHARE:
            store = self.nearest_store(latitude, longitude)
            channel, destination = PICKUP, reservation_pb2.Destination(pickup_node_id=store.node_id)
        else:
            address = common_pb2.Location(latitude=latitude, longitude=longitude)
            channel, destination = WEB, reservation_pb2.Destination(address=address)
        request = reservation_pb2.ReserveRequest(
            reservation_id=reservation_id,
            lines=[reservation_pb2.ReservationLine(sku=sku, quantity=1) for sku in skus],
            ttl_seconds=ttl,
            channel_id=channel,
            destination=destination,
        )
        try:
            return self.reservations.Reserve(request, timeout=CALL_TIMEOUT).reservation
        except grpc.RpcError as error:
            if error.code() in ANSWERS["Reserve"]:
                return None
            raise


class Checkout(OrderingUser):
    """An order's hold, then paid (Confirm), abandoned (Release) or left to expire."""

    scenario = peak.CHECKOUT

    @task
    def checkout(self) -> None:
        ending = self.rng.choices(list(peak.CHECKOUT_ENDINGS), list(peak.CHECKOUT_ENDINGS.values()))[0]
        reservation_id = STATE.next_id("order")
        ttl = peak.EXPIRING_HOLD_SECONDS if ending == "expire" else HOLD_TTL_SECONDS
        held = self.hold(reservation_id, ttl)
        if held is None:
            STATE.record(self.scenario, "refused")
            return
        if ending == "confirm":
            self.reservations.Confirm(
                reservation_pb2.ConfirmRequest(reservation_id=reservation_id), timeout=CALL_TIMEOUT
            )
            STATE.confirmed.append((reservation_id, list(held.lines)))
        elif ending == "release":
            self.reservations.Release(
                reservation_pb2.ReleaseRequest(reservation_id=reservation_id), timeout=CALL_TIMEOUT
            )
        else:
            STATE.expiring.append((reservation_id, held.expires_at.ToNanoseconds() / 1e9))
        STATE.record(self.scenario, ending)


class StoreAssociate(OrderingUser):
    """Picks and ships (or hands over) confirmed orders, and takes some back at a store.

    Orders come from the checkouts; when none is waiting (the first seconds) the associate
    places and confirms one itself, so the scenario keeps its rate.
    """

    scenario = peak.ASSOCIATE

    @task
    def fulfil(self) -> None:
        if STATE.confirmed:
            reservation_id, lines = STATE.confirmed.popleft()
            source = "checkout"
        else:
            reservation_id = STATE.next_id("store-order")
            held = self.hold(reservation_id, HOLD_TTL_SECONDS)
            if held is None:
                STATE.record(self.scenario, "own order refused")
                return
            self.reservations.Confirm(
                reservation_pb2.ConfirmRequest(reservation_id=reservation_id), timeout=CALL_TIMEOUT
            )
            lines, source = list(held.lines), "own order"
        shipped = [
            reservation_pb2.ReservationLine(sku=x.sku, node_id=x.node_id, quantity=x.quantity) for x in lines
        ]
        self.reservations.Fulfil(
            reservation_pb2.FulfilRequest(
                reservation_id=reservation_id, fulfilment_id=f"{reservation_id}-ship", lines=shipped
            ),
            timeout=CALL_TIMEOUT,
        )
        STATE.record(self.scenario, f"fulfilled ({source})")
        if self.rng.random() < peak.RETURN_SHARE:
            line = self.rng.choice(shipped)
            back_at = self.rng.choice(STATE.stores).node_id  # buy online, return anywhere
            self.reservations.Return(
                reservation_pb2.ReturnRequest(
                    reservation_id=reservation_id,
                    return_id=f"{reservation_id}-return",
                    sku=line.sku,
                    line_node_id=line.node_id,
                    node_id=back_at,
                    quantity=1,
                    damaged=self.rng.random() < 0.2,
                ),
                timeout=CALL_TIMEOUT,
            )
            STATE.record(self.scenario, "returned", iteration=False)


class PosWmsFeed(OmnistockUser):
    """Stock from the stores' tills and the warehouses: AdjustStock batches (walk-in sales,
    receipts) with unique adjustment ids, and store counts (SetStock of a department)."""

    scenario = peak.FEED

    def store_positions(self, store: str, skus: list[str]) -> dict[str, common_pb2.Position]:
        """The store's positions of these SKUs, read from the shards (never stale)."""
        request = availability_pb2.GetAvailabilityRequest(skus=skus, include_nodes=True, consistent=True)
        answer = self.availability.GetAvailability(request, timeout=CALL_TIMEOUT)
        return {
            sku.sku: position for sku in answer.skus for position in sku.nodes if position.node_id == store
        }

    def locked_store(self) -> tuple[str, gevent.lock.Semaphore]:
        while True:
            store = self.rng.choice(STATE.feed_stores)
            lock = STATE.store_locks.setdefault(store, gevent.lock.Semaphore())
            if lock.acquire(blocking=False):
                return store, lock

    @task(weight(1 - peak.SNAPSHOT_SHARE))
    def adjustments(self) -> None:
        sales = round(peak.ADJUSTMENTS_PER_CALL * 0.7)
        store, lock = self.locked_store()
        try:
            skus = STATE.demand.basket(self.rng, sales)
            positions = self.store_positions(store, skus)
            changes: list[inventory_pb2.StockAdjustment] = []
            for sku in skus:
                free = positions[sku].available if sku in positions else 0
                if free >= SAFE_POS_SALE_AVAILABLE:
                    changes.append(self.change(sku, store, -1, "pos-sale"))
                else:  # the shelf is bare: the store's delivery
                    changes.append(self.change(sku, store, self.rng.randint(2, 8), "receipt"))
            for sku in STATE.demand.basket(self.rng, peak.ADJUSTMENTS_PER_CALL - sales):
                changes.append(
                    self.change(sku, self.rng.choice(STATE.dcs), self.rng.randint(20, 200), "receipt")
                )
            answer = self.inventory.AdjustStock(
                inventory_pb2.AdjustStockRequest(adjustments=changes), timeout=CALL_TIMEOUT
            )
        finally:
            lock.release()
        applied = sum(r.outcome == inventory_pb2.ADJUSTMENT_OUTCOME_APPLIED for r in answer.results)
        STATE.record(self.scenario, "adjusted" if applied == len(changes) else "adjustment refused")

    def change(self, sku: str, node: str, delta: int, reason: str) -> inventory_pb2.StockAdjustment:
        return inventory_pb2.StockAdjustment(
            adjustment_id=STATE.next_id("adj"), sku=sku, node_id=node, delta=delta, reason=reason
        )

    @task(weight(peak.SNAPSHOT_SHARE))
    def store_count(self) -> None:
        store, lock = self.locked_store()
        try:
            skus = STATE.demand.basket(self.rng, peak.SNAPSHOT_LEVELS)
            positions = self.store_positions(store, skus)
            # A count after a delivery: never below what was on hand, so held and committed
            # units stay covered (a count that finds less is a real shortage, not the service's).
            levels = [
                inventory_pb2.StockLevel(
                    sku=sku,
                    node_id=store,
                    on_hand=(positions[sku].on_hand if sku in positions else 0) + self.rng.randint(0, 3),
                )
                for sku in skus
            ]
            self.inventory.SetStock(inventory_pb2.SetStockRequest(levels=levels), timeout=CALL_TIMEOUT)
        finally:
            lock.release()
        STATE.record(self.scenario, "counted")


class Marketplace(OmnistockUser):
    """A marketplace keeping its listings in sync through WatchAvailability: one long-lived
    stream (the whole catalog, or its best sellers), each update reported as it arrives."""

    scenario = peak.MARKETPLACE
    fixed_count = peak.MARKETPLACE_STREAMS
    wait_time = constant(1)
    best_sellers = 100
    streams = itertools.count()

    def on_start(self) -> None:
        self.whole_catalog = next(self.streams) % 2 == 0
        self.call: Any = None

    @task
    def sync(self) -> None:
        skus = [] if self.whole_catalog else [sku_id(n) for n in range(1, self.best_sellers + 1)]
        stub = availability_pb2_grpc.AvailabilityServiceStub(self._raw_channel)
        self.call = stub.WatchAvailability(
            availability_pb2.WatchAvailabilityRequest(channel_id=MARKETPLACE, skus=skus)
        )
        began = time.perf_counter()
        try:
            for update in self.call:
                delay = max(0.0, time.time() - update.as_of.ToNanoseconds() / 1e9) * 1000
                self.fire(delay, update.ByteSize(), None)
                STATE.record(self.scenario, "catch-up" if update.catch_up else "update")
        except grpc.RpcError as error:
            if error.code() != grpc.StatusCode.CANCELLED:
                self.fire((time.perf_counter() - began) * 1000, 0, error)

    def fire(self, milliseconds: float, length: int, exception: Exception | None) -> None:
        self.environment.events.request.fire(
            request_type="grpc",
            name="WatchAvailability",
            response_time=milliseconds,
            response_length=length,
            exception=exception,
            context={},
        )

    def on_stop(self) -> None:
        if self.call is not None:
            self.call.cancel()
        super().on_stop()


USER_CLASSES: dict[str, type[OmnistockUser]] = {
    peak.SHOPPER: Shopper,
    peak.CHECKOUT: Checkout,
    peak.ASSOCIATE: StoreAssociate,
    peak.FEED: PosWmsFeed,
}


@events.init.add_listener
def plan_users(environment: Environment, **_: Any) -> None:
    """Users per class and their pace, from the retailer's numbers."""
    options = environment.parsed_options
    if options is None:
        return
    normal = peak.NormalPeak(
        options.orders_per_second,
        options.lines_per_order,
        options.checks_per_order,
        options.stock_updates_per_second,
    )
    STATE.plan = peak.plan(normal, options.spike, options.minutes, options.ramp_minutes)
    # gRPC on gevent waits for each call in gevent's thread pool (10 threads by default): one
    # thread per user, or calls queue here and their time is the load generator's, not the service's.
    users = STATE.plan.spike_users + peak.MARKETPLACE_STREAMS
    gevent.get_hub().threadpool.maxsize = max(users + SPARE_THREADS, gevent.get_hub().threadpool.maxsize)
    STATE.demand = SkuDemand(options.skus)
    STATE.lines_per_order = normal.lines_per_order
    for scenario, user_class in USER_CLASSES.items():
        planned = STATE.plan.classes.get(scenario)
        user_class.weight = planned.users if planned else 0
        if planned:
            user_class.wait_time = constant_throughput(planned.per_user_rate)


@events.test_start.add_listener
def read_network(environment: Environment, **_: Any) -> None:
    """The target's stores and DCs (the checkouts and the feed pick among them)."""
    with CREDENTIALS.channel(environment.host or "127.0.0.1:50051") as channel:
        nodes = inventory_pb2_grpc.InventoryServiceStub(channel).ListNodes(
            inventory_pb2.ListNodesRequest(), timeout=CALL_TIMEOUT
        )
    STATE.stores = [n for n in nodes.nodes if n.type == common_pb2.NODE_TYPE_STORE and n.pickup and n.enabled]
    STATE.dcs = [n.node_id for n in nodes.nodes if n.type == common_pb2.NODE_TYPE_DC and n.enabled]
    if not STATE.stores or not STATE.dcs:
        raise RuntimeError(f"{environment.host} has no pickup stores or DCs: load the demo network first")
    index, shares = worker_share()
    ordered = sorted(store.node_id for store in STATE.stores)  # the same order in every process
    STATE.feed_stores = ordered[index::shares] or ordered
    STATE.started = time.time()


def worker_share(text: str | None = None) -> tuple[int, int]:
    """(I, N) of OMNISTOCK_LOCUST_WORKER=I/N; (0, 1) for a process that is not a numbered worker."""
    text = os.environ.get(WORKER_ENV, "0/1") if text is None else text
    index, _, shares = text.partition("/")
    found = int(index), int(shares)
    if not 0 <= found[0] < found[1]:
        raise ValueError(f"{WORKER_ENV} wants I/N with 0 <= I < N, got {text!r}")
    return found


def scenario_file(given: str) -> Path:
    """Where this process writes what it did: --scenario-file, or beside it for a worker."""
    path = Path(given)
    if WORKER_ENV not in os.environ:
        return path
    return path.with_name(f"{path.stem}-worker-{worker_share()[0]}{path.suffix}")


@events.test_stop.add_listener
def write_scenarios(environment: Environment, **_: Any) -> None:
    options = environment.parsed_options
    if options is not None and options.scenario_file:
        scenario_file(options.scenario_file).write_text(json.dumps(STATE.report()), encoding="utf-8")


class PeakDayShape(LoadTestShape):
    """The normal peak at once, a linear ramp to the spike, the spike held (loadtest/peak.py)."""

    def tick(self) -> tuple[int, float] | None:
        if STATE.plan is None:
            return None
        return STATE.plan.users_at(self.get_run_time())
