"""ChannelLimit: the available-to-promise arithmetic of one position for one channel.

free = sellable - reserved - committed - safety, safety = max(units, ceil(sellable * percent / 100));
cap = floor(sellable * cap_percent / 100) - units the channel already holds here;
promisable = max(0, min(free, cap)).
"""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omnistock.availability.atp import NO_LIMIT, ChannelLimit


def exact_safety(units: int, percent: Fraction, sellable: int) -> int:
    share = Fraction(sellable) * percent / 100
    return max(units, -(-share.numerator // share.denominator))  # ceil, exactly


def exact_cap(percent: Fraction, sellable: int) -> int:
    share = Fraction(sellable) * percent / 100
    return share.numerator // share.denominator  # floor, exactly


# --- safety: units vs percent, the larger wins; percent rounds up ---


@pytest.mark.parametrize(
    ("units", "percent", "sellable", "expected"),
    [
        (0, 0.0, 100, 0),  # no safety
        (5, 0.0, 100, 5),  # units only
        (0, 10.0, 100, 10),  # percent only
        (5, 10.0, 100, 10),  # percent larger
        (15, 10.0, 100, 15),  # units larger
        (10, 10.0, 100, 10),  # equal
        (0, 10.0, 11, 2),  # 1.1 rounds UP to 2
        (0, 10.0, 1, 1),  # 0.1 rounds up to 1: any percent keeps back at least one unit
        (0, 10.0, 0, 0),  # nothing to keep back
        (3, 50.0, 5, 3),  # ceil(2.5) = 3 ties with units
        (2, 50.0, 5, 3),  # ceil(2.5) = 3 beats 2 units
        (0, 100.0, 7, 7),  # everything kept back
        (0, 12.5, 9, 2),  # 1.125 -> 2
        (4, 0.0, 0, 4),  # units apply even with nothing sellable
    ],
)
def test_safety_keeps_the_larger_of_units_and_rounded_up_percent(
    units: int, percent: float, sellable: int, expected: int
) -> None:
    assert ChannelLimit(safety_units=units, safety_percent=percent).safety(sellable) == expected


# --- promisable: free after safety, within the cap; never negative ---


@pytest.mark.parametrize(
    ("limit", "sellable", "reserved", "committed", "used", "expected"),
    [
        # no rules: plain free stock
        (NO_LIMIT, 10, 0, 0, 0, 10),
        (NO_LIMIT, 10, 3, 2, 0, 5),
        # safety comes off the free stock
        (ChannelLimit(safety_units=4), 10, 3, 0, 0, 3),
        (ChannelLimit(safety_percent=25.0), 10, 0, 0, 0, 7),  # safety ceil(2.5) = 3
        (ChannelLimit(safety_units=4, safety_percent=25.0), 10, 0, 0, 0, 6),  # units 4 > 3
        # cap rounds DOWN
        (ChannelLimit(cap_percent=50.0), 9, 0, 0, 0, 4),  # floor(4.5)
        (ChannelLimit(cap_percent=10.0), 9, 0, 0, 0, 0),  # floor(0.9)
        (ChannelLimit(cap_percent=0.0), 100, 0, 0, 0, 0),  # a channel that may see nothing
        (ChannelLimit(cap_percent=100.0), 9, 0, 0, 0, 9),
        # the cap is consumed by the channel's own holds, not by others'
        (ChannelLimit(cap_percent=50.0), 10, 3, 0, 3, 2),  # this channel holds 3 of its 5
        (ChannelLimit(cap_percent=50.0), 10, 3, 0, 0, 5),  # someone else holds 3: cap intact
        (ChannelLimit(cap_percent=50.0), 10, 2, 3, 5, 0),  # held + committed through it = cap
        (ChannelLimit(cap_percent=50.0), 10, 0, 6, 6, 0),  # over its cap (rules changed): 0
        # min of the two
        (ChannelLimit(safety_units=2, cap_percent=50.0), 10, 5, 0, 0, 3),  # free 3 < cap 5
        (ChannelLimit(safety_units=2, cap_percent=50.0), 10, 0, 0, 1, 4),  # cap 5-1 < free 8
        # never negative
        (NO_LIMIT, 10, 8, 5, 0, 0),  # oversold by an adjustment
        (ChannelLimit(safety_units=20), 10, 0, 0, 0, 0),
        (NO_LIMIT, 0, 0, 0, 0, 0),
    ],
)
def test_promisable_table(
    limit: ChannelLimit, sellable: int, reserved: int, committed: int, used: int, expected: int
) -> None:
    assert limit.promisable(sellable, reserved, committed, used) == expected


def test_no_limit_is_the_free_stock() -> None:
    assert ChannelLimit(safety_units=0, safety_percent=0.0, cap_percent=100.0) == NO_LIMIT
    assert NO_LIMIT.safety(1000) == 0


# Percents to a hundredth (as written in a network file) must round like exact maths.
percents = st.integers(0, 10_000).map(lambda k: Fraction(k, 100))


@settings(max_examples=300, deadline=None)
@given(
    sellable=st.integers(0, 5000),
    reserved=st.integers(0, 5000),
    committed=st.integers(0, 5000),
    used=st.integers(0, 5000),
    units=st.integers(0, 5000),
    safety_percent=percents,
    cap_percent=percents,
)
def test_promisable_matches_exact_arithmetic(
    sellable: int,
    reserved: int,
    committed: int,
    used: int,
    units: int,
    safety_percent: Fraction,
    cap_percent: Fraction,
) -> None:
    limit = ChannelLimit(units, float(safety_percent), float(cap_percent))
    safety = exact_safety(units, safety_percent, sellable)
    free = sellable - reserved - committed - safety
    cap = exact_cap(cap_percent, sellable) - used
    assert limit.safety(sellable) == safety
    got = limit.promisable(sellable, reserved, committed, used)
    assert got == max(0, min(free, cap))
    # What the channel may promise never breaks safety, the cap, or goes negative.
    assert got >= 0
    assert reserved + committed + got + safety <= sellable or got == 0
    assert used + got <= exact_cap(cap_percent, sellable) or got == 0


@settings(max_examples=200, deadline=None)
@given(
    sellable=st.integers(0, 1000),
    reserved=st.integers(0, 1000),
    used=st.integers(0, 1000),
    more=st.integers(1, 50),
    units=st.integers(0, 100),
    safety_percent=percents,
    cap_percent=percents,
)
def test_promisable_never_grows_when_more_is_held(
    sellable: int,
    reserved: int,
    used: int,
    more: int,
    units: int,
    safety_percent: Fraction,
    cap_percent: Fraction,
) -> None:
    limit = ChannelLimit(units, float(safety_percent), float(cap_percent))
    base = limit.promisable(sellable, reserved, 0, used)
    assert limit.promisable(sellable, reserved + more, 0, used) <= base
    assert limit.promisable(sellable, reserved, more, used) <= base
    assert limit.promisable(sellable, reserved, 0, used + more) <= base
    # and holding through the channel (reserved and used both grow) takes exactly what it holds
    if more <= base:
        assert limit.promisable(sellable, reserved + more, 0, used + more) == base - more


@pytest.mark.parametrize(
    ("limit", "sellable", "safety", "promisable"),
    [
        # float maths would say 68.99999999999999 -> 68 and 33.00000000000001 -> 34
        (ChannelLimit(cap_percent=18.4), 375, 0, 69),
        (ChannelLimit(safety_percent=8.8), 375, 33, 342),
        (ChannelLimit(safety_percent=64.4, cap_percent=64.4), 250, 161, 89),
        (ChannelLimit(safety_percent=0.01), 10_000, 1, 9_999),
        (ChannelLimit(cap_percent=0.01), 9_999, 0, 0),
        (ChannelLimit(cap_percent=99.99), 10_000, 0, 9_999),
    ],
)
def test_decimal_percents_round_the_exact_share(
    limit: ChannelLimit, sellable: int, safety: int, promisable: int
) -> None:
    assert limit.safety(sellable) == safety
    assert limit.promisable(sellable, 0, 0, 0) == promisable


@settings(max_examples=300, deadline=None)
@given(sellable=st.integers(0, 100_000), safety_percent=percents, cap_percent=percents)
def test_percents_to_a_hundredth_are_exact(
    sellable: int, safety_percent: Fraction, cap_percent: Fraction
) -> None:
    """Percents written with up to two decimals (as in a network file) round like exact maths."""
    limit = ChannelLimit(0, float(safety_percent), float(cap_percent))
    assert limit.safety(sellable) == exact_safety(0, safety_percent, sellable)
    assert limit.promisable(sellable, 0, 0, 0) == max(
        0, min(sellable - exact_safety(0, safety_percent, sellable), exact_cap(cap_percent, sellable))
    )
