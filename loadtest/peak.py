"""The peak-day model: a retailer's normal peak, scaled to a spike, as Locust users.

Pure arithmetic (no Locust, no gRPC), shared by the Locust file that runs the load and by
`omnistock loadtest`, which reports against the same targets.

A retailer states its normal peak in business terms:

    peak = NormalPeak(orders_per_second=1, lines_per_order=2.5, checks_per_order=30,
                      stock_updates_per_second=10)

Every scenario's rate follows from those four numbers (`scenario_rates`): shoppers make
`checks_per_order` availability checks per order, each order is one checkout, the
confirmed share of the orders is fulfilled by store associates, and the POS / WMS feed
delivers the stock updates. Locust shapes set users, not rates, so each scenario is a
constant-throughput user class, and `plan` turns the rates at the spike into users per
class (its weight) and a per-user rate such that users x rate = the target exactly.
`users_at` is the shape over time: the normal peak at once, a linear ramp to the spike,
then the spike held.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SHOPPER = "shopper"
CHECKOUT = "checkout"
ASSOCIATE = "associate"
FEED = "feed"
MARKETPLACE = "marketplace"
SCENARIOS = (SHOPPER, CHECKOUT, ASSOCIATE, FEED, MARKETPLACE)

BROWSE_MIX = {"listing": 0.35, "product": 0.5, "pickup": 0.15}
"""What a shopper's availability check is: a product-listing page, a product page, a pickup search."""
LISTING_PAGE_SKUS = 48
"""SKUs on a product-listing page (one GetAvailability)."""

CHECKOUT_ENDINGS = {"confirm": 0.8, "release": 0.1, "expire": 0.1}
"""How a checkout's hold ends: paid, abandoned at payment (released), or left to expire."""
EXPIRING_HOLD_SECONDS = 5
"""TTL of the holds left to expire, so they end during the run."""
PICKUP_ORDER_SHARE = 0.2
"""Orders collected in store (held at one store); the rest are shipped (sourced by the web channel)."""
RETURN_SHARE = 0.1
"""Fulfilled orders that come back (a unit returned at a store)."""

ADJUSTMENTS_PER_CALL = 10
"""Stock deltas per AdjustStock call (a POS / WMS batch)."""
SNAPSHOT_LEVELS = 50
"""Levels in a store count (one SetStock of a department of a store)."""
SNAPSHOT_SHARE = 0.05
"""Share of the feed's calls that are store counts; the rest are adjustment batches."""

MARKETPLACE_STREAMS = 2
"""Marketplaces syncing through WatchAvailability: long-lived streams, not a rate."""

PER_USER_RATE = {SHOPPER: 5.0, CHECKOUT: 1.0, ASSOCIATE: 1.0, FEED: 1.0}
"""Iterations per second one Locust user aims at (before `plan` rounds users to whole numbers)."""


@dataclass(frozen=True, slots=True)
class NormalPeak:
    """A retailer's busiest normal hour, per second."""

    orders_per_second: float
    """Orders placed (one checkout each)."""
    lines_per_order: float = 2.5
    """Mean order lines (distinct SKUs) per order."""
    checks_per_order: float = 30.0
    """Availability checks (listing pages, product pages, pickup searches) per order placed."""
    stock_updates_per_second: float = 10.0
    """Positions changed by the POS / WMS feed per second (adjustments and counts)."""

    def __post_init__(self) -> None:
        if self.orders_per_second <= 0:
            raise ValueError("orders per second must be positive")
        if self.lines_per_order < 1:
            raise ValueError("lines per order must be at least 1")
        if self.checks_per_order < 0 or self.stock_updates_per_second < 0:
            raise ValueError("checks per order and stock updates per second must not be negative")


def order_lines(mean: float, draw: float) -> int:
    """Lines of one order, so that orders average `mean` lines: floor(mean), plus one with the
    fractional part's probability (`draw` is uniform in [0, 1))."""
    whole = math.floor(mean)
    return whole + (1 if draw < mean - whole else 0)


def updates_per_feed_call() -> float:
    """Mean positions one feed call changes (adjustment batches and store counts mixed)."""
    return (1 - SNAPSHOT_SHARE) * ADJUSTMENTS_PER_CALL + SNAPSHOT_SHARE * SNAPSHOT_LEVELS


def scenario_rates(peak: NormalPeak, factor: float = 1.0) -> dict[str, float]:
    """Iterations per second of each rate-driven scenario at `factor` x the normal peak.

    shopper: availability checks; checkout: orders; associate: confirmed orders fulfilled
    (a share also returned); feed: AdjustStock or SetStock calls.
    """
    orders = peak.orders_per_second * factor
    return {
        SHOPPER: orders * peak.checks_per_order,
        CHECKOUT: orders,
        ASSOCIATE: orders * CHECKOUT_ENDINGS["confirm"],
        FEED: peak.stock_updates_per_second * factor / updates_per_feed_call(),
    }


def rpc_rates(peak: NormalPeak, factor: float = 1.0) -> dict[str, float]:
    """Expected gRPC calls per second by method at `factor` x the normal peak (the reads the
    feed makes before it changes stock included)."""
    rates = scenario_rates(peak, factor)
    checks, orders, fulfils, feed = (rates[s] for s in (SHOPPER, CHECKOUT, ASSOCIATE, FEED))
    return {
        "GetAvailability": checks * (BROWSE_MIX["listing"] + BROWSE_MIX["product"]) + feed,
        "FindPickupStores": checks * BROWSE_MIX["pickup"],
        "Reserve": orders,
        "Confirm": orders * CHECKOUT_ENDINGS["confirm"],
        "Release": orders * CHECKOUT_ENDINGS["release"],
        "Fulfil": fulfils,
        "Return": fulfils * RETURN_SHARE,
        "AdjustStock": feed * (1 - SNAPSHOT_SHARE),
        "SetStock": feed * SNAPSHOT_SHARE,
    }


@dataclass(frozen=True, slots=True)
class ClassPlan:
    """One scenario's Locust user class at the spike."""

    users: int
    """Users at the spike (also the class weight, so Locust keeps the classes in proportion)."""
    per_user_rate: float
    """Iterations per second of each user (constant throughput)."""

    @property
    def rate(self) -> float:
        return self.users * self.per_user_rate


@dataclass(frozen=True, slots=True)
class Plan:
    peak: NormalPeak
    spike: float
    ramp_seconds: float
    total_seconds: float
    classes: dict[str, ClassPlan]
    """The rate-driven scenarios; the marketplace streams come on top (MARKETPLACE_STREAMS users)."""

    @property
    def spike_users(self) -> int:
        return sum(c.users for c in self.classes.values())

    def factor_at(self, seconds: float) -> float:
        """x the normal peak at `seconds` into the run: 1 at the start, `spike` from the ramp's end."""
        if self.ramp_seconds <= 0 or seconds >= self.ramp_seconds:
            return self.spike
        return 1 + (self.spike - 1) * max(0.0, seconds) / self.ramp_seconds

    def users_at(self, seconds: float) -> tuple[int, float] | None:
        """(users, spawn rate) of the Locust shape at `seconds`; None once the run is over.

        Users scale with the factor; every class keeps at least one user, so each scenario
        runs from the first second. The spawn rate reaches each tick's count within a second.
        """
        if seconds >= self.total_seconds:
            return None
        share = self.factor_at(seconds) / self.spike
        weighted = sum(max(1, round(c.users * share)) for c in self.classes.values())
        users = weighted + MARKETPLACE_STREAMS
        return users, float(max(users, 1))

    @property
    def hold_seconds(self) -> float:
        return max(0.0, self.total_seconds - self.ramp_seconds)


def plan(peak: NormalPeak, spike: float, minutes: float, ramp_minutes: float) -> Plan:
    """Users per class and per-user rates so the spike's rates are met exactly."""
    if spike < 1:
        raise ValueError("spike must be at least 1 (x the normal peak)")
    if minutes <= 0:
        raise ValueError("minutes must be positive")
    if not 0 <= ramp_minutes < minutes:
        raise ValueError("ramp minutes must be at least 0 and shorter than the run")
    classes: dict[str, ClassPlan] = {}
    for scenario, rate in scenario_rates(peak, spike).items():
        if rate <= 0:
            continue  # e.g. no stock updates: no feed users
        users = max(1, math.ceil(rate / PER_USER_RATE[scenario]))
        classes[scenario] = ClassPlan(users, rate / users)
    return Plan(peak, spike, ramp_minutes * 60, minutes * 60, classes)
