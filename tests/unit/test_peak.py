"""The peak-day model: rates from a retailer's numbers, users per Locust class, the shape."""

from __future__ import annotations

import math

import pytest

from omnistock.loadtest import peak
from omnistock.loadtest.peak import NormalPeak

NORMAL = NormalPeak(
    orders_per_second=1, lines_per_order=2.5, checks_per_order=30, stock_updates_per_second=10
)


def test_browse_to_buy_ratio_follows_the_checks_per_order() -> None:
    rates = peak.scenario_rates(NORMAL)
    assert rates[peak.SHOPPER] / rates[peak.CHECKOUT] == pytest.approx(30)
    other = peak.scenario_rates(NormalPeak(2, checks_per_order=45))
    assert other[peak.SHOPPER] == pytest.approx(90) and other[peak.CHECKOUT] == pytest.approx(2)


def test_rates_scale_with_the_spike() -> None:
    normal, spike = peak.scenario_rates(NORMAL), peak.scenario_rates(NORMAL, 50)
    for scenario, rate in normal.items():
        assert spike[scenario] == pytest.approx(50 * rate)


def test_associates_fulfil_the_confirmed_orders() -> None:
    rates = peak.scenario_rates(NORMAL, 10)
    assert rates[peak.ASSOCIATE] == pytest.approx(10 * peak.CHECKOUT_ENDINGS["confirm"])


def test_the_feed_delivers_the_stock_updates() -> None:
    rpcs = peak.rpc_rates(NORMAL, 50)
    updates = rpcs["AdjustStock"] * peak.ADJUSTMENTS_PER_CALL + rpcs["SetStock"] * peak.SNAPSHOT_LEVELS
    assert updates == pytest.approx(10 * 50)


def test_rpc_rates_of_an_order() -> None:
    rpcs = peak.rpc_rates(NORMAL, 1)
    assert rpcs["Reserve"] == pytest.approx(1)
    assert rpcs["Confirm"] + rpcs["Release"] == pytest.approx(1 - peak.CHECKOUT_ENDINGS["expire"])
    assert rpcs["Fulfil"] == pytest.approx(rpcs["Confirm"])
    assert rpcs["Return"] == pytest.approx(rpcs["Fulfil"] * peak.RETURN_SHARE)
    # Every check is a GetAvailability or a FindPickupStores; the feed reads before it writes.
    feed_calls = rpcs["AdjustStock"] + rpcs["SetStock"]
    assert rpcs["GetAvailability"] + rpcs["FindPickupStores"] - feed_calls == pytest.approx(30)


def test_shares_add_up() -> None:
    assert sum(peak.BROWSE_MIX.values()) == pytest.approx(1)
    assert sum(peak.CHECKOUT_ENDINGS.values()) == pytest.approx(1)


@pytest.mark.parametrize(("orders", "spike"), [(1, 50), (0.3, 7), (12.5, 3), (1, 1)])
def test_users_times_pace_meet_the_spike_exactly(orders: float, spike: float) -> None:
    normal = NormalPeak(orders_per_second=orders)
    planned = peak.plan(normal, spike, minutes=5, ramp_minutes=1)
    targets = peak.scenario_rates(normal, spike)
    assert set(planned.classes) == set(targets)
    for scenario, target in targets.items():
        cls = planned.classes[scenario]
        assert cls.users >= 1
        assert cls.users * cls.per_user_rate == pytest.approx(target)
        assert cls.per_user_rate <= peak.PER_USER_RATE[scenario] + 1e-9  # never faster than the nominal pace
        assert cls.users == max(1, math.ceil(target / peak.PER_USER_RATE[scenario]))


def test_users_at_fifty_times_one_order_a_second() -> None:
    planned = peak.plan(NORMAL, 50, minutes=5, ramp_minutes=1)
    users = {name: c.users for name, c in planned.classes.items()}
    # 1500 checks/s at 5 per user, 50 orders/s, 40 fulfilments/s, 500 updates / 12 per call.
    assert users == {peak.SHOPPER: 300, peak.CHECKOUT: 50, peak.ASSOCIATE: 40, peak.FEED: 42}
    assert planned.spike_users == 432


def test_no_stock_updates_no_feed() -> None:
    planned = peak.plan(NormalPeak(1, stock_updates_per_second=0), 10, 5, 1)
    assert peak.FEED not in planned.classes


def test_shape_starts_at_the_normal_peak_ramps_and_holds() -> None:
    planned = peak.plan(NORMAL, 50, minutes=5, ramp_minutes=1)
    streams = peak.MARKETPLACE_STREAMS
    assert planned.factor_at(0) == 1 and planned.factor_at(30) == pytest.approx(25.5)
    assert planned.factor_at(60) == 50 and planned.factor_at(299) == 50
    first = planned.users_at(0)
    assert first is not None
    # 300/50 + 50/50 + 40/50 (rounded, at least one) + 42/50 = 6 + 1 + 1 + 1
    assert first[0] == 9 + streams
    counts = []
    for second in range(0, 300, 5):
        tick = planned.users_at(second)
        assert tick is not None
        users, spawn_rate = tick
        assert spawn_rate >= 1
        counts.append(users)
    assert counts == sorted(counts)  # never down while ramping or holding
    assert planned.users_at(60) == (432 + streams, 432 + streams)
    assert planned.users_at(299.9) == planned.users_at(60)
    assert planned.users_at(300) is None
    assert planned.hold_seconds == 240


def test_no_ramp_starts_at_the_spike() -> None:
    planned = peak.plan(NORMAL, 10, minutes=1, ramp_minutes=0)
    assert planned.factor_at(0) == 10
    assert planned.users_at(0) == (planned.spike_users + peak.MARKETPLACE_STREAMS,) * 2


@pytest.mark.parametrize(
    ("normal", "spike", "minutes", "ramp"),
    [
        (dict(orders_per_second=1), 0.5, 5, 1),
        (dict(orders_per_second=1), 50, 0, 0),
        (dict(orders_per_second=1), 50, 5, 5),
        (dict(orders_per_second=1), 50, 5, -1),
    ],
)
def test_a_wrong_plan_says_what_is_wrong(
    normal: dict[str, float], spike: float, minutes: float, ramp: float
) -> None:
    with pytest.raises(ValueError, match=r"spike|minutes"):
        peak.plan(NormalPeak(**normal), spike, minutes, ramp)


@pytest.mark.parametrize(
    "numbers",
    [
        dict(orders_per_second=0),
        dict(orders_per_second=1, lines_per_order=0.5),
        dict(orders_per_second=1, checks_per_order=-1),
        dict(orders_per_second=1, stock_updates_per_second=-3),
    ],
)
def test_a_wrong_normal_peak_is_refused(numbers: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must"):
        NormalPeak(**numbers)


@pytest.mark.parametrize("mean", [1.0, 1.5, 2.5, 3.2])
def test_orders_average_the_lines_per_order(mean: float) -> None:
    draws = [i / 1000 for i in range(1000)]
    lines = [peak.order_lines(mean, draw) for draw in draws]
    assert sum(lines) / len(lines) == pytest.approx(mean, abs=0.002)
    assert set(lines) <= {math.floor(mean), math.floor(mean) + 1}
