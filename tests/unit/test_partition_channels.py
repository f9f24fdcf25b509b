"""Channel-limited holds and unsellable stock states in the pure partition.

A hold through a channel may only take what that channel may promise at each position
(ChannelLimit.promisable, from the position before the hold); the units each channel
holds are kept per position (by_channel) by the open parts. Damaged and quality-hold
units are part of on_hand and never sellable.
"""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from omnistock.availability.atp import NO_LIMIT, ChannelLimit
from omnistock.reservations.domain.commands import (
    AdjustOutcome,
    AdjustStock,
    CarryStep,
    ConfirmReservation,
    DecideHold,
    DecisionOutcome,
    HoldOutcome,
    PartOutcome,
    PlaceHold,
    RecordClaim,
    ReleaseReservation,
    SetStock,
    ShortLine,
)
from omnistock.reservations.domain.model import (
    Decision,
    Follow,
    HoldFenced,
    HoldPlaced,
    LevelColumns,
    LevelsSet,
    Line,
    Part,
    PartState,
    StockAdjusted,
    StockState,
    Withdraw,
    fingerprint,
)
from omnistock.reservations.domain.partition import Partition
from tests.unit import homes

P = 0
PENDING = 5.0
SELLABLE, DAMAGED, QUALITY_HOLD = StockState.SELLABLE, StockState.DAMAGED, StockState.QUALITY_HOLD

# --- helpers ---


def stock(
    p: Partition, sku: str, node: str, on_hand: int, damaged: int = 0, quality_hold: int = 0, as_of=1.0
):
    result, _ = p.handle(SetStock(P, sku, node, on_hand, as_of, damaged, quality_hold))
    assert result.applied
    return result


def place(
    p: Partition,
    rid: str,
    channel: str,
    lines: list[tuple[str, str, int]],
    limits: list[ChannelLimit] | None = None,
    created: float = 100.0,
    expires: float = 200.0,
    attempt: str = "",
):
    ls = tuple(Line(*line) for line in lines)
    command = PlaceHold(
        P, rid, fingerprint(ls, channel), ls, created, expires, channel, tuple(limits or ()), attempt=attempt
    )
    return p.handle(command)


def reserve(
    p: Partition, rid: str, channel: str, lines: list[tuple[str, str, int]], expires: float, log=None
):
    """A reservation held whole in this partition (its home and its only part)."""
    ls = tuple(Line(*line) for line in lines)
    return homes.reserve(p, rid, ls, 100.0, expires, log, channel=channel)


def take(p: Partition, rid: str, state: PartState, at: float):
    """The part takes a step its home decided."""
    return p.handle(CarryStep(P, rid, Follow(state, at, 200.0)), at)


def used(p: Partition, sku: str, node: str) -> dict[str, int]:
    return dict(p.view(sku, node).by_channel)


def state_of(p: Partition) -> tuple:
    """Everything observable, with by_channel normalised (an emptied dict reads like none)."""
    positions = {(v.sku, v.node_id): v for sku in p.skus() for v in p.views(sku)}
    fences = {rid: dict(attempts) for rid, attempts in p.fences.items()}
    return positions, dict(p.parts), dict(p.claims), dict(p.adjustments), fences


def restore_dump(p: Partition) -> Partition:
    """A partition restored from a dump of `p` (what a snapshot keeps)."""
    restored = Partition(P)
    restored.restore(
        snapshot_tuples(p),
        list(p.parts.values()),
        list(p.claims.values()),
        list(p.adjustments.values()),
        fences=[
            HoldFenced(rid, a, until) for rid, attempts in p.fences.items() for a, until in attempts.items()
        ],
    )
    return restored


def snapshot_tuples(p: Partition) -> LevelColumns:
    return p.levels()


def exact_cap(limit: ChannelLimit, sellable: int) -> int:
    share = Fraction(sellable) * Fraction(limit.cap_percent) / 100
    return share.numerator // share.denominator


# --- examples: a channel never takes stock hidden from it ---


def test_a_channel_hold_takes_at_most_what_the_channel_may_promise() -> None:
    p = Partition(P)
    stock(p, "a", "n1", 12, damaged=2)  # sellable 10
    web = ChannelLimit(safety_units=3, cap_percent=50.0)  # free 7, cap 5 -> 5
    result, events = place(p, "r1", "web", [("a", "n1", 6)], [web])
    assert result.outcome is HoldOutcome.SHORT
    assert result.short == (ShortLine("a", "n1", 6, 5),)
    assert events == [] and "r1" not in p.parts
    result, _ = place(p, "r1", "web", [("a", "n1", 5)], [web])
    assert result.outcome is HoldOutcome.PLACED
    assert used(p, "a", "n1") == {"web": 5}
    # the cap is used up by the channel's own hold
    result, _ = place(p, "r2", "web", [("a", "n1", 1)], [web])
    assert result.short == (ShortLine("a", "n1", 1, 0),)
    # another channel has its own cap, and sees the free stock left: 10 - 5 - safety 1
    mkt = ChannelLimit(safety_units=1, cap_percent=60.0)
    result, _ = place(p, "r3", "mkt", [("a", "n1", 5)], [mkt])
    assert result.short == (ShortLine("a", "n1", 5, 4),)
    assert place(p, "r3", "mkt", [("a", "n1", 4)], [mkt])[0].outcome is HoldOutcome.PLACED
    assert used(p, "a", "n1") == {"web": 5, "mkt": 4}
    # a hold through no channel is held to the free stock only (no safety): 1 left
    assert place(p, "r4", "", [("a", "n1", 2)])[0].short == (ShortLine("a", "n1", 2, 1),)
    assert place(p, "r4", "", [("a", "n1", 1)])[0].outcome is HoldOutcome.PLACED
    assert used(p, "a", "n1") == {"web": 5, "mkt": 4}  # channel-less units are nobody's
    assert p.view("a", "n1").reserved == 10
    assert p.check() == []


def test_confirmed_units_still_count_against_the_cap_and_released_ones_do_not() -> None:
    p = Partition(P)
    stock(p, "a", "n1", 10)
    cap = ChannelLimit(cap_percent=30.0)  # 3 units
    assert place(p, "r1", "web", [("a", "n1", 3)], [cap])[0].outcome is HoldOutcome.PLACED
    assert take(p, "r1", PartState.CONFIRMED, 150.0)[0].outcome is PartOutcome.CHANGED
    view = p.view("a", "n1")
    assert (view.reserved, view.committed, dict(view.by_channel)) == (0, 3, {"web": 3})
    assert place(p, "r2", "web", [("a", "n1", 1)], [cap])[0].outcome is HoldOutcome.SHORT
    assert take(p, "r1", PartState.RELEASED, 151.0)[0].outcome is PartOutcome.CHANGED
    assert used(p, "a", "n1") == {}
    assert place(p, "r2", "web", [("a", "n1", 3)], [cap])[0].outcome is HoldOutcome.PLACED
    assert p.check() == []


def test_expired_and_withdrawn_holds_give_the_cap_back() -> None:
    p = Partition(P)
    stock(p, "a", "n1", 10)
    reserve(p, "r1", "web", [("a", "n1", 2)], expires=120.0)
    place(p, "r2", "web", [("a", "n1", 3)], expires=500.0, attempt="a2")
    assert used(p, "a", "n1") == {"web": 5}
    assert homes.expire(p, 119.9, PENDING) == []
    assert used(p, "a", "n1") == {"web": 5}
    assert [d.reservation_id for d in homes.expire(p, 120.0, PENDING)] == ["r1"]  # decided at its home
    assert p.parts["r1"].state is PartState.EXPIRED
    assert used(p, "a", "n1") == {"web": 3}
    assert p.handle(CarryStep(P, "r2", Withdraw("a2", 560.0)))[0].outcome is PartOutcome.CHANGED
    assert used(p, "a", "n1") == {}
    assert p.view("a", "n1").reserved == 0
    assert p.check() == []


def test_a_line_at_a_node_the_channel_cannot_see_is_refused() -> None:
    p = Partition(P)
    stock(p, "a", "n1", 10)
    stock(p, "a", "n2", 10)
    nothing = ChannelLimit(cap_percent=0.0)
    result, events = place(p, "r1", "web", [("a", "n1", 1), ("a", "n2", 1)], [NO_LIMIT, nothing])
    assert result.outcome is HoldOutcome.SHORT
    assert result.short == (ShortLine("a", "n2", 1, 0),)  # only the line that does not fit
    assert events == [] and p.view("a", "n1").reserved == 0


def test_lines_on_one_position_are_summed_against_the_limit() -> None:
    p = Partition(P)
    stock(p, "a", "n1", 10)
    limit = ChannelLimit(cap_percent=50.0)
    result, _ = place(p, "r1", "web", [("a", "n1", 3), ("a", "n1", 3)], [limit, limit])
    assert result.short == (ShortLine("a", "n1", 6, 5),)
    assert place(p, "r1", "web", [("a", "n1", 3), ("a", "n1", 2)], [limit, limit])[0].outcome is (
        HoldOutcome.PLACED
    )
    assert used(p, "a", "n1") == {"web": 5}


def test_a_channel_without_limits_sees_the_free_stock() -> None:
    p = Partition(P)
    stock(p, "a", "n1", 4, quality_hold=1)
    assert place(p, "r1", "web", [("a", "n1", 4)])[0].short == (ShortLine("a", "n1", 4, 3),)
    assert place(p, "r1", "web", [("a", "n1", 3)])[0].outcome is HoldOutcome.PLACED
    assert used(p, "a", "n1") == {"web": 3}


def test_the_channel_is_part_of_the_reservations_content() -> None:
    p = Partition(P)
    stock(p, "a", "n1", 10)
    assert place(p, "r1", "web", [("a", "n1", 1)])[0].outcome is HoldOutcome.PLACED
    assert place(p, "r1", "web", [("a", "n1", 1)])[0].outcome is HoldOutcome.REPLAYED
    assert place(p, "r1", "mkt", [("a", "n1", 1)])[0].outcome is HoldOutcome.CONFLICT
    assert p.parts["r1"].channel == "web"


def test_check_notices_units_by_channel_that_do_not_match_the_parts() -> None:
    p = Partition(P)
    stock(p, "a", "n1", 10)
    place(p, "r1", "web", [("a", "n1", 2)])
    assert p.check() == []
    p.positions["a"]["n1"].by_channel = {"web": 1}
    assert any("by channel" in problem for problem in p.check())
    p.positions["a"]["n1"].by_channel = {"web": 2, "mkt": 1}
    assert any("by channel" in problem for problem in p.check())


# --- damaged and quality hold ---


def test_unsellable_units_are_on_hand_but_never_held() -> None:
    p = Partition(P)
    stock(p, "a", "n1", 10, damaged=3, quality_hold=2)
    view = p.view("a", "n1")
    assert (view.on_hand, view.sellable, view.available) == (10, 5, 5)
    assert place(p, "r1", "", [("a", "n1", 6)])[0].short == (ShortLine("a", "n1", 6, 5),)
    assert place(p, "r1", "", [("a", "n1", 5)])[0].outcome is HoldOutcome.PLACED


@pytest.mark.parametrize(
    ("state", "delta", "outcome", "after"),
    [
        # from on_hand 10, damaged 3, quality_hold 2 (sellable 5); after = (on_hand, damaged, hold, sellable)
        (DAMAGED, 2, AdjustOutcome.APPLIED, (12, 5, 2, 5)),
        (DAMAGED, -3, AdjustOutcome.APPLIED, (7, 0, 2, 5)),  # written off
        (DAMAGED, -4, AdjustOutcome.REFUSED_NEGATIVE, (10, 3, 2, 5)),  # only 3 damaged
        (QUALITY_HOLD, 4, AdjustOutcome.APPLIED, (14, 3, 6, 5)),
        (QUALITY_HOLD, -2, AdjustOutcome.APPLIED, (8, 3, 0, 5)),
        (QUALITY_HOLD, -3, AdjustOutcome.REFUSED_NEGATIVE, (10, 3, 2, 5)),
        (SELLABLE, 1, AdjustOutcome.APPLIED, (11, 3, 2, 6)),
        (SELLABLE, -5, AdjustOutcome.APPLIED, (5, 3, 2, 0)),
        (SELLABLE, -6, AdjustOutcome.REFUSED_NEGATIVE, (10, 3, 2, 5)),  # on_hand would cover it; sellable not
    ],
)
def test_adjusting_one_stock_state(
    state: StockState, delta: int, outcome: AdjustOutcome, after: tuple
) -> None:
    p = Partition(P)
    stock(p, "a", "n1", 10, damaged=3, quality_hold=2)
    before = state_of(p)
    result, events = p.handle(AdjustStock(P, "adj1", "a", "n1", delta, "count", state))
    assert result.outcome is outcome
    view = p.view("a", "n1")
    assert (view.on_hand, view.damaged, view.quality_hold, view.sellable) == after
    if outcome is AdjustOutcome.REFUSED_NEGATIVE:
        assert events == [] and state_of(p) == before
        assert result.position == p.view("a", "n1")
    else:
        assert events == [StockAdjusted("adj1", "a", "n1", delta, "count", state)]
        assert result.position == view
    assert p.check() == []


def test_sellable_may_fall_below_what_is_held_but_not_below_zero() -> None:
    p = Partition(P)
    stock(p, "a", "n1", 6, damaged=1)
    place(p, "r1", "web", [("a", "n1", 4)])
    result, _ = p.handle(AdjustStock(P, "lost", "a", "n1", -3, "shrink"))
    assert result.outcome is AdjustOutcome.APPLIED  # a count is a fact: 2 sellable, 4 held
    assert p.view("a", "n1").available == 0
    assert place(p, "r2", "web", [("a", "n1", 1)])[0].outcome is HoldOutcome.SHORT
    assert (
        p.handle(AdjustStock(P, "lost2", "a", "n1", -3, "shrink"))[0].outcome
        is AdjustOutcome.REFUSED_NEGATIVE
    )


def test_an_adjustment_id_is_bound_to_its_state() -> None:
    p = Partition(P)
    stock(p, "a", "n1", 10)
    assert p.handle(AdjustStock(P, "x", "a", "n1", 2, "", DAMAGED))[0].outcome is AdjustOutcome.APPLIED
    assert p.handle(AdjustStock(P, "x", "a", "n1", 2, "", DAMAGED))[0].outcome is AdjustOutcome.REPLAYED
    before = state_of(p)
    assert p.handle(AdjustStock(P, "x", "a", "n1", 2, "", QUALITY_HOLD))[0].outcome is AdjustOutcome.CONFLICT
    assert p.handle(AdjustStock(P, "x", "a", "n1", 2, "", SELLABLE))[0].outcome is AdjustOutcome.CONFLICT
    assert state_of(p) == before
    assert p.view("a", "n1").damaged == 2


def test_set_stock_carries_the_unsellable_counts() -> None:
    p = Partition(P)
    stock(p, "a", "n1", 10, damaged=1, quality_hold=1, as_of=5.0)
    # the same count again changes nothing; a changed damaged count is a change
    assert p.handle(SetStock(P, "a", "n1", 10, 5.0, 1, 1))[1] == []
    assert p.handle(SetStock(P, "a", "n1", 10, 5.0, 2, 1))[1] == [
        LevelsSet(LevelColumns.of((("a", "n1", 10, 5.0, 2, 1),)))
    ]
    # an older count is refused whatever its states
    result, events = p.handle(SetStock(P, "a", "n1", 10, 4.0, 0, 0))
    assert not result.applied and events == []
    assert (p.view("a", "n1").damaged, p.view("a", "n1").quality_hold) == (2, 1)


def test_check_notices_unsellable_units_beyond_on_hand() -> None:
    p = Partition(P)
    p.restore(LevelColumns.of([("a", "n1", 3, 1.0, 2, 2)]), [], [], [])
    assert any("negative" in problem for problem in p.check())


# --- replay and restore ---


def busy_partition() -> tuple[Partition, list]:
    p = Partition(P)
    log: list = []

    def run(command, now: float = 0.0):
        result, events = p.handle(command, now)
        log.extend(events)
        return result

    run(SetStock(P, "a", "n1", 20, 1.0, 2, 3))
    run(SetStock(P, "a", "n2", 8, 1.0))
    run(AdjustStock(P, "d1", "a", "n1", 1, "broken", DAMAGED))
    run(AdjustStock(P, "q1", "a", "n2", 2, "inspect", QUALITY_HOLD))
    run(AdjustStock(P, "s1", "a", "n2", -1, "shrink"))
    lim = ChannelLimit(safety_units=1, cap_percent=50.0)
    for rid, channel, lines in [
        ("r1", "web", [("a", "n1", 3), ("a", "n2", 2)]),
        ("r2", "mkt", [("a", "n1", 2)]),
        ("r3", "", [("a", "n2", 1)]),
        ("r4", "web", [("a", "n1", 1)]),
    ]:
        ls = tuple(Line(*line) for line in lines)
        done = homes.reserve(p, rid, ls, 100.0, 200.0, log, channel=channel, limits=(lim,) * len(ls))
        assert done.hold.outcome is HoldOutcome.PLACED, (rid, done)
    # r5: placed, but its Reserve failed elsewhere: aborted, the part withdrawn
    r5 = (Line("a", "n2", 1),)
    run(RecordClaim(P, "r5", fingerprint(r5, "mkt"), (P,), 100.0, attempt="a5", expires_at=200.0), 100.0)
    run(PlaceHold(P, "r5", fingerprint(r5, "mkt"), r5, 100.0, 200.0, "mkt", (lim,), attempt="a5"), 100.0)
    homes.decide(p, DecideHold(P, "r5", "a5", placed=False), 100.0, log)
    assert "r5" not in p.parts
    homes.decide(p, ConfirmReservation(P, "r1"), 150.0, log)
    homes.decide(p, ReleaseReservation(P, "r4"), 150.0, log)
    assert [d.reservation_id for d in homes.expire(p, 250.0, PENDING, log)] == ["r2", "r3"]
    homes.reserve(p, "r6", (Line("a", "n1", 2),), 300.0, 400.0, log, channel="web")
    assert p.check() == []
    return p, log


def test_replaying_the_events_rebuilds_the_partition() -> None:
    p, log = busy_partition()
    assert any(isinstance(e, HoldPlaced) and e.channel == "mkt" for e in log)
    assert any(isinstance(e, StockAdjusted) and e.state is QUALITY_HOLD for e in log)
    replayed = Partition(P)
    for event in log:
        replayed.apply(event)
    assert state_of(replayed) == state_of(p)
    assert used(replayed, "a", "n1") == {"web": 5}  # r1 confirmed (3) + r6 held (2)
    assert (replayed.view("a", "n1").damaged, replayed.view("a", "n2").quality_hold) == (3, 2)
    assert replayed.check() == []


def test_restoring_a_snapshot_keeps_states_and_recomputes_units_by_channel() -> None:
    p, _ = busy_partition()
    restored = restore_dump(p)
    assert state_of(restored) == state_of(p)
    assert [v for v in restored.views("a")] == [v for v in p.views("a")]
    assert restored.check() == []
    # and it goes on working: the restored position still refuses what web may not take
    lim = ChannelLimit(cap_percent=50.0)  # a@n1: sellable 15, cap 7, web holds 5 -> 2
    assert place(restored, "r9", "web", [("a", "n1", 3)], [lim])[0].short == (ShortLine("a", "n1", 3, 2),)


# --- property: a PlaceHold through C succeeds iff every position fits what C may promise ---

SKUS = ("a", "b")
NODES = ("n1", "n2")
KEYS = tuple((sku, node) for sku in SKUS for node in NODES)
CHANNELS = ("web", "mkt", "")

halves = st.integers(0, 200).map(lambda h: h / 2)  # exact in binary, so floats round like exact maths
limits = st.builds(
    ChannelLimit,
    safety_units=st.integers(0, 4),
    safety_percent=st.one_of(st.just(0.0), halves.filter(lambda x: x <= 40)),
    cap_percent=st.one_of(st.sampled_from([0.0, 50.0, 100.0]), halves),
)


@st.composite
def stock_levels(draw: st.DrawFn) -> tuple[int, int, int]:
    on_hand = draw(st.integers(0, 30))
    damaged = draw(st.integers(0, on_hand))
    return on_hand, damaged, draw(st.integers(0, on_hand - damaged))


@st.composite
def existing_parts(draw: st.DrawFn) -> list[Part]:
    """Open and closed parts through channels, in any amounts (rules may have changed since)."""
    parts = []
    for i in range(draw(st.integers(0, 6))):
        rows = draw(st.lists(st.tuples(st.sampled_from(KEYS), st.integers(1, 8)), min_size=1, max_size=3))
        lines = tuple(Line(sku, node, q) for (sku, node), q in rows)
        channel = draw(st.sampled_from(CHANNELS))
        state = draw(st.sampled_from(list(PartState)))
        parts.append(Part(f"old{i}", fingerprint(lines, channel), lines, state, 1.0, 1000.0, 0.0, channel))
    return parts


@settings(max_examples=250, deadline=None)
@given(
    levels=st.lists(stock_levels(), min_size=len(KEYS), max_size=len(KEYS)),
    parts=existing_parts(),
    by_position=st.fixed_dictionaries({key: limits for key in KEYS}),
    channel=st.sampled_from(["web", "mkt"]),
    rows=st.lists(st.tuples(st.sampled_from(KEYS), st.integers(1, 12)), min_size=1, max_size=4),
)
def test_a_channel_hold_succeeds_iff_every_position_fits_its_limit(
    levels: list, parts: list[Part], by_position: dict, channel: str, rows: list
) -> None:
    p = Partition(P)
    p.restore(
        LevelColumns.of(
            (sku, node, on_hand, 1.0, damaged, hold)
            for (sku, node), (on_hand, damaged, hold) in zip(KEYS, levels, strict=True)
        ),
        parts,
        [],
        [],
    )
    before = {key: p.view(*key) for key in KEYS}
    lines = tuple(Line(sku, node, q) for (sku, node), q in rows)
    wanted: dict[tuple[str, str], int] = {}
    for line in lines:
        wanted[(line.sku, line.node_id)] = wanted.get((line.sku, line.node_id), 0) + line.quantity
    may = {
        key: by_position[key].promisable(v.sellable, v.reserved, v.committed, v.channel_used(channel))
        for key, v in before.items()
    }
    fits = all(quantity <= may[key] for key, quantity in wanted.items())
    state = state_of(p)

    command = PlaceHold(
        P, "new", fingerprint(lines, channel), lines, 2.0, 50.0, channel,
        tuple(by_position[(line.sku, line.node_id)] for line in lines),
    )  # fmt: skip
    result, events = p.handle(command)

    if not fits:
        assert result.outcome is HoldOutcome.SHORT
        assert events == [] and state_of(p) == state
        assert set(result.short) == {
            ShortLine(sku, node, quantity, may[(sku, node)])
            for (sku, node), quantity in wanted.items()
            if quantity > may[(sku, node)]
        }
        return
    assert result.outcome is HoldOutcome.PLACED
    for key, view in before.items():
        after = p.view(*key)
        quantity = wanted.get(key, 0)
        limit = by_position[key]
        assert after.reserved == view.reserved + quantity
        assert after.channel_used(channel) == view.channel_used(channel) + quantity
        if quantity:
            # never past the channel's cap nor into safety stock, never negative
            assert after.channel_used(channel) <= exact_cap(limit, view.sellable)
            assert after.sellable - after.reserved - after.committed >= limit.safety(view.sellable) >= 0
    assert p.check() == []


# --- stateful: any sequence of holds, confirms, releases, expiries and counts ---


class ChannelMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.p = Partition(P)
        self.log: list = []
        self.now = 10.0
        self.as_of = 1.0
        self.ids = 0
        self.open: dict[str, tuple[str, tuple[Line, ...], PartState]] = {}  # open parts, as the results say

    def run(self, command):
        result, events = self.p.handle(command, self.now)
        self.log.extend(events)
        return result, events

    @initialize(levels=st.lists(stock_levels(), min_size=len(KEYS), max_size=len(KEYS)))
    def start(self, levels: list) -> None:
        for (sku, node), (on_hand, damaged, hold) in zip(KEYS, levels, strict=True):
            self.run(SetStock(P, sku, node, on_hand, self.as_of, damaged, hold))

    @rule(
        channel=st.sampled_from(CHANNELS),
        rows=st.lists(st.tuples(st.sampled_from(KEYS), st.integers(1, 6)), min_size=1, max_size=3),
        by_position=st.fixed_dictionaries({key: limits for key in KEYS}),
        ttl=st.integers(1, 30),
    )
    def hold(self, channel: str, rows: list, by_position: dict, ttl: int) -> None:
        self.ids += 1
        rid = f"r{self.ids}"
        lines = tuple(Line(sku, node, q) for (sku, node), q in rows)
        wanted: dict[tuple[str, str], int] = {}
        for line in lines:
            wanted[(line.sku, line.node_id)] = wanted.get((line.sku, line.node_id), 0) + line.quantity
        before = {key: self.p.view(*key) for key in wanted}
        if channel:
            may = {
                key: by_position[key].promisable(v.sellable, v.reserved, v.committed, v.channel_used(channel))
                for key, v in before.items()
            }
        else:
            may = {key: v.available for key, v in before.items()}
        fits = all(quantity <= may[key] for key, quantity in wanted.items())
        limits_sent = tuple(by_position[(line.sku, line.node_id)] for line in lines) if channel else ()
        digest, attempt = fingerprint(lines, channel), f"a{self.ids}"
        self.run(RecordClaim(P, rid, digest, (P,), self.now, attempt=attempt, expires_at=self.now + ttl))
        command = PlaceHold(
            P, rid, digest, lines, self.now, self.now + ttl, channel, limits_sent, attempt=attempt, home=P
        )
        result, _ = self.run(command)
        assert (result.outcome is HoldOutcome.PLACED) == fits, (result, may, wanted)
        decided = homes.decide(
            self.p, DecideHold(P, rid, attempt, fits, () if fits else (P,)), self.now, self.log
        )
        assert decided.decision is (Decision.HELD if fits else Decision.ABORTED)
        if not fits:
            assert rid not in self.p.claims
            return
        self.open[rid] = (channel, lines, PartState.HELD)
        for key in wanted:
            after = self.p.view(*key)
            # free stock never goes negative through a hold
            assert after.sellable - after.reserved - after.committed >= 0
            if channel:
                limit = by_position[key]
                assert after.channel_used(channel) <= exact_cap(limit, before[key].sellable)
                assert after.sellable - after.reserved - after.committed >= limit.safety(before[key].sellable)

    def pick(self, data: st.DataObject) -> str:
        return data.draw(st.sampled_from(sorted(self.open)), label="reservation")

    @precondition(lambda self: self.open)
    @rule(data=st.data())
    def confirm(self, data: st.DataObject) -> None:
        rid = self.pick(data)
        result = homes.decide(self.p, ConfirmReservation(P, rid), self.now, self.log)
        channel, lines, state = self.open[rid]
        expired = self.now >= self.p.claims[rid].expires_at
        if state is PartState.HELD and not expired:
            assert result.outcome is DecisionOutcome.DECIDED
            self.open[rid] = (channel, lines, PartState.CONFIRMED)
        else:
            assert result.outcome is (
                DecisionOutcome.REPLAYED if state is PartState.CONFIRMED else DecisionOutcome.REFUSED
            )

    @precondition(lambda self: self.open)
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        rid = self.pick(data)
        result = homes.decide(self.p, ReleaseReservation(P, rid), self.now, self.log)
        expired = self.open[rid][2] is PartState.HELD and self.now >= self.p.claims[rid].expires_at
        assert result.outcome is (DecisionOutcome.REFUSED if expired else DecisionOutcome.DECIDED)
        if not expired:
            del self.open[rid]

    @rule(seconds=st.integers(1, 20))
    def time_passes(self, seconds: int) -> None:
        self.now += seconds
        for decided in homes.expire(self.p, self.now, PENDING, self.log):
            assert decided.decision is Decision.EXPIRED
            assert self.open.pop(decided.reservation_id)[2] is PartState.HELD

    @rule(key=st.sampled_from(KEYS), state=st.sampled_from(list(StockState)), delta=st.integers(-4, 4))
    def adjust(self, key: tuple[str, str], state: StockState, delta: int) -> None:
        self.ids += 1
        view = self.p.view(*key)
        bucket = {SELLABLE: view.sellable, DAMAGED: view.damaged, QUALITY_HOLD: view.quality_hold}[state]
        result, _ = self.run(AdjustStock(P, f"adj{self.ids}", *key, delta, "count", state))
        expected = AdjustOutcome.REFUSED_NEGATIVE if bucket + delta < 0 else AdjustOutcome.APPLIED
        assert result.outcome is expected

    @rule(key=st.sampled_from(KEYS), level=stock_levels())
    def count(self, key: tuple[str, str], level: tuple[int, int, int]) -> None:
        self.as_of += 1
        self.run(SetStock(P, *key, level[0], self.as_of, level[1], level[2]))

    @invariant()
    def units_by_channel_follow_the_open_parts(self) -> None:
        expected: dict[tuple[str, str], dict[str, int]] = {}
        counts: dict[tuple[str, str], list[int]] = {}
        for channel, lines, state in self.open.values():
            for line in lines:
                key = (line.sku, line.node_id)
                counts.setdefault(key, [0, 0])[state is PartState.CONFIRMED] += line.quantity
                if channel:
                    per = expected.setdefault(key, {})
                    per[channel] = per.get(channel, 0) + line.quantity
        for key in KEYS:
            view = self.p.view(*key)
            assert dict(view.by_channel) == expected.get(key, {})
            assert [view.reserved, view.committed] == counts.get(key, [0, 0])
            assert min(view.damaged, view.quality_hold, view.sellable) >= 0
        assert self.p.check() == []

    @invariant()
    def replay_and_restore_rebuild_it(self) -> None:
        replayed = Partition(P)
        for event in self.log:
            replayed.apply(event)
        assert state_of(replayed) == state_of(self.p)
        assert state_of(restore_dump(self.p)) == state_of(self.p)


ChannelMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestChannelMachine = ChannelMachine.TestCase
