"""Example tests for the pure partition core: one rule per test.

A partition holds the parts of reservations (the lines it owns) and, for the reservations
whose home it is, their records (claims): the one decision about the reservation as a
whole, taken on the shard's clock. A part never decides: it takes the steps its home's
decisions ask of it (Follow, Withdraw, Close), whenever they arrive.
"""

from __future__ import annotations

import pytest

from omnistock.reservations.domain.commands import (
    AdjustOutcome,
    AdjustStock,
    CarryStep,
    ClaimOutcome,
    ConfirmReservation,
    DecideClose,
    DecideHold,
    DecisionOutcome,
    ExtendReservation,
    GetClaim,
    GetPart,
    HoldOutcome,
    LoadLevels,
    LoadResult,
    MarkCarried,
    PartOutcome,
    PlaceHold,
    ReadPositions,
    RecordClaim,
    ReleaseReservation,
    SetStock,
    ShortLine,
)
from omnistock.reservations.domain.model import (
    Claim,
    ClaimDropped,
    Close,
    Decision,
    Follow,
    HoldAborted,
    HoldExtended,
    HoldFenced,
    HoldPlaced,
    Intent,
    IntentCarried,
    LevelColumns,
    LevelsSet,
    Line,
    LinesClosed,
    Part,
    PartChanged,
    PartState,
    ReservationDecided,
    StockAdjusted,
    StockSet,
    Withdraw,
    fingerprint,
)
from omnistock.reservations.domain.partition import EXPIRY_BY, FENCE_MARGIN, Partition
from omnistock.reservations.shard.codec import decode_entry, decode_snapshot, encode_entry, encode_snapshot
from tests.unit import homes

P = 3  # partition number used throughout
CREATED = 100.0
EXPIRES = 160.0
PENDING = 5.0  # seconds a Reserve attempt may stay undecided

# --- tiny helpers ---


def stock(p: Partition, sku: str, node: str, on_hand: int, as_of: float = 1.0):
    return p.handle(SetStock(P, sku, node, on_hand, as_of))


def hold(
    p: Partition,
    rid: str,
    *lines: Line,
    created: float = CREATED,
    expires: float = EXPIRES,
    attempt: str = "",
):
    return p.handle(PlaceHold(P, rid, fingerprint(lines), tuple(lines), created, expires, attempt=attempt))


def adjust(p: Partition, adj_id: str, sku: str, node: str, delta: int):
    return p.handle(AdjustStock(P, adj_id, sku, node, delta, "count"))


def follow(p: Partition, rid: str, state: PartState, at: float, expires: float = EXPIRES, version: int = 0):
    """The part takes a step its home decided at `at` (carried at `at` too), as its decision
    number `version` (which an extension needs: see Follow.version)."""
    return p.handle(CarryStep(P, rid, Follow(state, at, expires, version)), at)


def withdraw(p: Partition, rid: str, attempt: str, until: float = EXPIRES + FENCE_MARGIN):
    return p.handle(CarryStep(P, rid, Withdraw(attempt, until)), CREATED)


def pos(p: Partition, sku: str, node: str) -> tuple[int, int, int, float]:
    """(on_hand, reserved, committed, as_of) of a position."""
    v = p.view(sku, node)
    return (v.on_hand, v.reserved, v.committed, v.as_of)


def raw_available(p: Partition, sku: str, node: str) -> int:
    v = p.view(sku, node)
    return v.on_hand - v.reserved - v.committed


def state(p: Partition) -> tuple:
    """Everything observable about a partition, as plain comparable values."""
    positions = {(v.sku, v.node_id): v for sku in p.skus() for v in p.views(sku)}
    fences = {rid: dict(attempts) for rid, attempts in p.fences.items()}
    return positions, dict(p.parts), dict(p.claims), dict(p.adjustments), fences


def replay(events) -> Partition:
    fresh = Partition(P)
    for event in events:
        fresh.apply(event)
    return fresh


def record(p: Partition, rid: str, attempt: str = "a1", *, partitions=(P,), created=CREATED, expires=EXPIRES):
    return p.handle(
        RecordClaim(P, rid, "fp-" + rid, partitions, created, attempt=attempt, expires_at=expires), created
    )


def reserved(p: Partition, rid: str, *lines: Line, created=CREATED, expires=EXPIRES, log=None):
    """A reservation held whole in this partition (its home and its only part)."""
    done = homes.reserve(p, rid, tuple(lines), created, expires, log)
    assert done.decision.decision is Decision.HELD, done
    return done


def decide(p: Partition, command, now: float, log=None):
    """Decided at the home, and carried to the part (in the same partition)."""
    return homes.decide(p, command, now, log)


# --- SetStock ---


def test_set_stock_applies_and_returns_new_position():
    p = Partition(P)
    result, events = stock(p, "sku", "n1", 7, as_of=10.0)
    assert result.applied is True
    assert (result.position.on_hand, result.position.as_of) == (7, 10.0)
    assert events == [LevelsSet(LevelColumns.of((("sku", "n1", 7, 10.0, 0, 0),)))]
    assert pos(p, "sku", "n1") == (7, 0, 0, 10.0)


def test_set_stock_with_older_as_of_is_ignored():
    p = Partition(P)
    stock(p, "sku", "n1", 7, as_of=10.0)
    before = state(p)
    result, events = stock(p, "sku", "n1", 99, as_of=9.5)
    assert result.applied is False
    assert events == []
    assert result.position.on_hand == 7
    assert state(p) == before


def test_set_stock_with_equal_or_newer_as_of_applies():
    p = Partition(P)
    stock(p, "sku", "n1", 7, as_of=10.0)
    result, _ = stock(p, "sku", "n1", 5, as_of=10.0)
    assert result.applied is True
    assert pos(p, "sku", "n1") == (5, 0, 0, 10.0)
    result, _ = stock(p, "sku", "n1", 9, as_of=11.0)
    assert result.applied is True
    assert pos(p, "sku", "n1") == (9, 0, 0, 11.0)


def test_set_stock_only_touches_its_own_position():
    p = Partition(P)
    stock(p, "sku", "n1", 7, as_of=10.0)
    stock(p, "sku", "n2", 3, as_of=20.0)
    # n2's newer as_of must not make n1's counts stale
    result, _ = stock(p, "sku", "n1", 4, as_of=11.0)
    assert result.applied is True
    assert pos(p, "sku", "n1") == (4, 0, 0, 11.0)
    assert pos(p, "sku", "n2") == (3, 0, 0, 20.0)


def test_set_stock_below_held_units_keeps_holds_and_reads_zero_available():
    p = Partition(P)
    stock(p, "sku", "n1", 10)
    hold(p, "r1", Line("sku", "n1", 6))
    stock(p, "sku", "n1", 4, as_of=2.0)
    assert pos(p, "sku", "n1") == (4, 6, 0, 2.0)
    assert p.view("sku", "n1").available == 0
    assert p.check() == []


# --- AdjustStock ---


def test_adjust_applies_delta_and_remembers_id():
    p = Partition(P)
    stock(p, "sku", "n1", 10, as_of=5.0)
    result, events = adjust(p, "a1", "sku", "n1", -3)
    assert result.outcome is AdjustOutcome.APPLIED
    assert result.position.on_hand == 7
    assert events == [StockAdjusted("a1", "sku", "n1", -3, "count")]
    assert pos(p, "sku", "n1") == (7, 0, 0, 5.0)  # as_of untouched
    assert "a1" in p.adjustments


def test_adjust_retry_with_same_content_is_replayed_without_change():
    p = Partition(P)
    stock(p, "sku", "n1", 10)
    adjust(p, "a1", "sku", "n1", 4)
    before = state(p)
    result, events = p.handle(AdjustStock(P, "a1", "sku", "n1", 4, "another reason"))
    assert result.outcome is AdjustOutcome.REPLAYED
    assert events == []
    assert result.position.on_hand == 14
    assert state(p) == before


@pytest.mark.parametrize(
    ("sku", "node", "delta"),
    [("sku", "n1", 5), ("sku", "n2", 4), ("other", "n1", 4)],
    ids=["other-delta", "other-node", "other-sku"],
)
def test_adjust_retry_with_other_content_conflicts_without_change(sku, node, delta):
    p = Partition(P)
    stock(p, "sku", "n1", 10)
    adjust(p, "a1", "sku", "n1", 4)
    before = state(p)
    result, events = adjust(p, "a1", sku, node, delta)
    assert result.outcome is AdjustOutcome.CONFLICT
    assert events == []
    assert state(p) == before


def test_adjust_below_zero_is_refused_changes_nothing_and_is_not_remembered():
    p = Partition(P)
    stock(p, "sku", "n1", 3)
    before = state(p)
    result, events = adjust(p, "a1", "sku", "n1", -4)
    assert result.outcome is AdjustOutcome.REFUSED_NEGATIVE
    assert result.position.on_hand == 3
    assert events == []
    assert state(p) == before
    assert "a1" not in p.adjustments
    # the id was not taken: a corrected retry under it applies
    result, _ = adjust(p, "a1", "sku", "n1", -3)
    assert result.outcome is AdjustOutcome.APPLIED
    assert pos(p, "sku", "n1")[0] == 0


# --- PlaceHold ---


def test_place_hold_reserves_every_line():
    p = Partition(P)
    stock(p, "a", "n1", 10)
    stock(p, "b", "n2", 5)
    lines = (Line("a", "n1", 4), Line("b", "n2", 5))
    result, events = hold(p, "r1", *lines)
    assert result.outcome is HoldOutcome.PLACED
    assert result.part == Part("r1", fingerprint(lines), lines, PartState.HELD, CREATED, EXPIRES)
    assert events == [HoldPlaced("r1", fingerprint(lines), lines, CREATED, EXPIRES)]
    assert pos(p, "a", "n1")[:3] == (10, 4, 0)
    assert pos(p, "b", "n2")[:3] == (5, 5, 0)
    assert p.next_due() is None  # a part never expires on its own: its home decides


def test_short_hold_names_every_short_line_and_changes_nothing():
    p = Partition(P)
    stock(p, "a", "n1", 10)
    stock(p, "b", "n1", 2)
    stock(p, "c", "n1", 8)
    hold(p, "r0", Line("c", "n1", 5))  # c@n1: 3 available
    before = state(p)
    lines = (Line("a", "n1", 10), Line("b", "n1", 3), Line("c", "n1", 4), Line("d", "n9", 1))
    result, events = hold(p, "r1", *lines)
    assert result.outcome is HoldOutcome.SHORT
    assert result.part is None
    assert result.short == (
        ShortLine("b", "n1", requested=3, available=2),
        ShortLine("c", "n1", requested=4, available=3),
        ShortLine("d", "n9", requested=1, available=0),
    )
    assert events == []
    assert state(p) == before
    assert "r1" not in p.parts
    # the id is still free
    result, _ = hold(p, "r1", Line("a", "n1", 10))
    assert result.outcome is HoldOutcome.PLACED


def test_hold_of_exactly_available_fits_and_one_more_is_short():
    p = Partition(P)
    stock(p, "a", "n1", 10)
    hold(p, "r0", Line("a", "n1", 3))
    follow(p, "r0", PartState.CONFIRMED, CREATED + 1)
    hold(p, "r1", Line("a", "n1", 2))  # 3 committed + 2 reserved: 5 available
    result, _ = hold(p, "r2", Line("a", "n1", 6))
    assert result.outcome is HoldOutcome.SHORT
    assert result.short == (ShortLine("a", "n1", 6, 5),)
    result, _ = hold(p, "r3", Line("a", "n1", 5))
    assert result.outcome is HoldOutcome.PLACED
    assert raw_available(p, "a", "n1") == 0


def test_hold_when_on_hand_is_below_open_units_reports_zero_available():
    p = Partition(P)
    stock(p, "a", "n1", 10)
    hold(p, "r0", Line("a", "n1", 8))
    stock(p, "a", "n1", 5, as_of=2.0)
    result, events = hold(p, "r1", Line("a", "n1", 1))
    assert result.outcome is HoldOutcome.SHORT
    assert result.short == (ShortLine("a", "n1", 1, 0),)
    assert events == []


def test_place_hold_retry_with_same_fingerprint_is_replayed_without_change():
    p = Partition(P)
    stock(p, "a", "n1", 10)
    lines = (Line("a", "n1", 4),)
    placed, _ = hold(p, "r1", *lines)
    before = state(p)
    # a retry that arrives later still replays the original part
    result, events = hold(p, "r1", *lines, created=CREATED + 5, expires=EXPIRES + 5)
    assert result.outcome is HoldOutcome.REPLAYED
    assert result.part == placed.part
    assert events == []
    assert state(p) == before


def test_place_hold_retry_in_other_line_order_is_replayed():
    p = Partition(P)
    stock(p, "a", "n1", 10)
    stock(p, "b", "n1", 10)
    hold(p, "r1", Line("a", "n1", 1), Line("b", "n1", 2))
    before = state(p)
    result, events = hold(p, "r1", Line("b", "n1", 2), Line("a", "n1", 1))
    assert result.outcome is HoldOutcome.REPLAYED
    assert events == []
    assert state(p) == before


def test_place_hold_retry_with_other_fingerprint_conflicts_without_change():
    p = Partition(P)
    stock(p, "a", "n1", 10)
    placed, _ = hold(p, "r1", Line("a", "n1", 4))
    before = state(p)
    result, events = hold(p, "r1", Line("a", "n1", 5))
    assert result.outcome is HoldOutcome.CONFLICT
    assert result.part == placed.part
    assert events == []
    assert state(p) == before


def test_place_hold_retry_after_release_is_still_replayed_not_placed_again():
    p = Partition(P)
    stock(p, "a", "n1", 10)
    hold(p, "r1", Line("a", "n1", 4))
    follow(p, "r1", PartState.RELEASED, CREATED + 1)
    before = state(p)
    result, events = hold(p, "r1", Line("a", "n1", 4))
    assert result.outcome is HoldOutcome.REPLAYED
    assert result.part.state is PartState.RELEASED
    assert events == []
    assert state(p) == before


# --- Follow: a part takes its reservation's decided state ---


def test_a_confirmed_step_moves_units_from_reserved_to_committed():
    p = Partition(P)
    stock(p, "a", "n1", 10)
    stock(p, "b", "n1", 10)
    hold(p, "r1", Line("a", "n1", 4), Line("b", "n1", 1))
    result, events = follow(p, "r1", PartState.CONFIRMED, EXPIRES - 0.001)
    assert result.outcome is PartOutcome.CHANGED
    assert result.state is PartState.CONFIRMED
    assert result.part.state is PartState.CONFIRMED
    assert events == [PartChanged("r1", PartState.CONFIRMED, EXPIRES - 0.001)]
    assert pos(p, "a", "n1")[:3] == (10, 0, 4)
    assert pos(p, "b", "n1")[:3] == (10, 0, 1)
    assert p.view("a", "n1").available == 6
    assert p.parts["r1"].history == (("held", CREATED, ""), ("confirmed", EXPIRES - 0.001, ""))


@pytest.mark.parametrize("carried_at", [EXPIRES, EXPIRES + 0.5, EXPIRES + 1000])
def test_a_part_never_expires_on_its_own_and_takes_a_step_whenever_it_arrives(carried_at):
    """A confirm decided at the home in time holds, however late its step reaches the part."""
    p = Partition(P)
    stock(p, "a", "n1", 10)
    hold(p, "r1", Line("a", "n1", 4))
    assert p.next_due() is None
    assert p.expire_due(carried_at + 100, 0.0) == []
    assert p.parts["r1"].state is PartState.HELD
    step = Follow(PartState.CONFIRMED, EXPIRES - 1, EXPIRES)  # decided a second before expiry
    result, events = p.handle(CarryStep(P, "r1", step), carried_at)
    assert result.outcome is PartOutcome.CHANGED
    assert events == [PartChanged("r1", PartState.CONFIRMED, EXPIRES - 1)]
    assert p.parts["r1"].changed_at == EXPIRES - 1  # the decision's time, not the carrier's
    assert pos(p, "a", "n1")[:3] == (10, 0, 4)


@pytest.mark.parametrize("target", [PartState.CONFIRMED, PartState.RELEASED, PartState.EXPIRED])
def test_a_step_taken_twice_is_replayed_without_change(target):
    p = Partition(P)
    stock(p, "a", "n1", 10)
    hold(p, "r1", Line("a", "n1", 4))
    follow(p, "r1", target, CREATED + 1)
    before = state(p)
    for at in (CREATED + 1, CREATED + 2, EXPIRES + 10):  # a retry, or a courier later still
        result, events = follow(p, "r1", target, at)
        assert result.outcome is PartOutcome.REPLAYED
        assert result.state is target
        assert events == []
    assert state(p) == before


@pytest.mark.parametrize(
    ("first", "late"),
    [
        (PartState.CONFIRMED, PartState.HELD),
        (PartState.RELEASED, PartState.HELD),
        (PartState.RELEASED, PartState.CONFIRMED),
        (PartState.EXPIRED, PartState.CONFIRMED),
        (PartState.EXPIRED, PartState.RELEASED),
        (PartState.RELEASED, PartState.EXPIRED),
        (PartState.FULFILLED, PartState.RELEASED),
    ],
)
def test_a_step_that_would_move_a_part_backwards_or_sideways_is_replayed(first, late):
    """Parts only move forward (HELD, CONFIRMED, then one end): a step that arrives after a
    later one changes nothing."""
    p = Partition(P)
    stock(p, "a", "n1", 10)
    hold(p, "r1", Line("a", "n1", 4))
    follow(p, "r1", first, CREATED + 2, version=3)
    before = state(p)
    result, events = follow(p, "r1", late, CREATED + 1, expires=EXPIRES + 100, version=2)
    assert result.outcome is PartOutcome.REPLAYED
    assert result.state is first
    assert events == []
    assert state(p) == before


def test_a_part_goes_forward_from_held_to_confirmed_to_an_end():
    p = Partition(P)
    stock(p, "a", "n1", 10)
    hold(p, "r1", Line("a", "n1", 4))
    for target, expected in [
        (PartState.CONFIRMED, (10, 0, 4)),
        (PartState.RELEASED, (10, 0, 0)),
    ]:
        result, _ = follow(p, "r1", target, CREATED + 1)
        assert result.outcome is PartOutcome.CHANGED
        assert pos(p, "a", "n1")[:3] == expected
    assert p.check() == []


def test_a_released_step_returns_the_units_of_a_held_part():
    p = Partition(P)
    stock(p, "a", "n1", 10)
    hold(p, "r1", Line("a", "n1", 4))
    result, events = follow(p, "r1", PartState.RELEASED, CREATED + 1)
    assert result.outcome is PartOutcome.CHANGED
    assert result.state is PartState.RELEASED
    assert events == [PartChanged("r1", PartState.RELEASED, CREATED + 1)]
    assert pos(p, "a", "n1")[:3] == (10, 0, 0)
    assert p.parts["r1"].changed_at == CREATED + 1


def test_a_released_step_returns_the_committed_units_of_a_confirmed_part_even_after_expiry():
    p = Partition(P)
    stock(p, "a", "n1", 10)
    hold(p, "r1", Line("a", "n1", 4))
    follow(p, "r1", PartState.CONFIRMED, CREATED + 1)
    result, _ = follow(p, "r1", PartState.RELEASED, EXPIRES + 100)
    assert result.outcome is PartOutcome.CHANGED
    assert result.state is PartState.RELEASED
    assert pos(p, "a", "n1")[:3] == (10, 0, 0)


def test_an_expired_step_returns_the_units_as_of_the_expiry():
    p = Partition(P)
    stock(p, "a", "n1", 10)
    hold(p, "r1", Line("a", "n1", 4))
    result, events = p.handle(CarryStep(P, "r1", Follow(PartState.EXPIRED, EXPIRES, EXPIRES)), EXPIRES + 3)
    assert result.outcome is PartOutcome.CHANGED
    assert events == [PartChanged("r1", PartState.EXPIRED, EXPIRES)]
    assert (p.parts["r1"].state, p.parts["r1"].changed_at) == (PartState.EXPIRED, EXPIRES)
    assert pos(p, "a", "n1")[:3] == (10, 0, 0)
    assert p.check() == []


def test_a_held_step_with_another_expiry_extends_a_held_part_only():
    p = Partition(P)
    stock(p, "a", "n1", 10)
    hold(p, "r1", Line("a", "n1", 4))
    hold(p, "r2", Line("a", "n1", 1))
    # the home's second decision (its first, HELD, had no step to carry)
    result, events = follow(p, "r1", PartState.HELD, CREATED + 5, expires=EXPIRES + 60, version=2)
    assert result.outcome is PartOutcome.CHANGED
    assert events == [HoldExtended("r1", EXPIRES + 60, CREATED + 5, 2)]
    assert result.part.expires_at == EXPIRES + 60
    assert result.part.followed == 2
    assert result.part.history[-1] == ("extended", CREATED + 5, "")
    assert pos(p, "a", "n1")[:3] == (10, 5, 0)  # an extension moves no units
    before = state(p)
    again, events = follow(p, "r1", PartState.HELD, CREATED + 5, expires=EXPIRES + 60, version=2)
    assert (again.outcome, events) == (PartOutcome.REPLAYED, [])
    assert state(p) == before
    # A confirmed part keeps its expiry: a HELD step is behind it.
    follow(p, "r2", PartState.CONFIRMED, CREATED + 6, version=3)
    before = state(p)
    late, events = follow(p, "r2", PartState.HELD, CREATED + 5, expires=EXPIRES + 60, version=2)
    assert (late.outcome, late.state, events) == (PartOutcome.REPLAYED, PartState.CONFIRMED, [])
    assert p.parts["r2"].expires_at == EXPIRES
    assert state(p) == before


def test_an_older_extension_arriving_after_a_newer_one_changes_nothing():
    p = Partition(P)
    stock(p, "a", "n1", 10)
    reserved(p, "r1", Line("a", "n1", 4))
    # Two extensions decided at the home; the first one's steps are still on their way
    # (a gateway carrying them) when the second one is decided: it is not BUSY.
    first, _ = p.handle(ExtendReservation(P, "r1", 300.0), 110.0)
    second, _ = p.handle(ExtendReservation(P, "r1", 400.0), 120.0)
    assert (first.outcome, second.outcome) == (DecisionOutcome.DECIDED, DecisionOutcome.DECIDED)
    assert [intent.operation for intent in p.claims["r1"].intents] == [second.carry.operation]
    # The second's step reaches the part first, then the first's.
    homes.carry(p, P, "r1", second.carry, 121.0)
    late, _ = p.handle(CarryStep(P, "r1", first.carry.steps[0][1]), 122.0)
    assert late.outcome is PartOutcome.REPLAYED
    assert p.parts["r1"].expires_at == p.claims["r1"].expires_at == 400.0


def test_an_extension_is_taken_whatever_clock_stamped_the_hold():
    p = Partition(P)
    stock(p, "a", "n1", 10)
    # The gateway's clock is 2 s ahead of the shard's: it stamps the Reserve 102, the home
    # decides it at 100 and, a second later, an extension.
    digest = fingerprint((Line("a", "n1", 1),))
    p.handle(RecordClaim(P, "r1", digest, (P,), 102.0, attempt="a1", expires_at=162.0), 100.0)
    hold(p, "r1", Line("a", "n1", 1), created=102.0, expires=162.0, attempt="a1")
    assert decide(p, DecideHold(P, "r1", "a1", placed=True), 100.0).decision is Decision.HELD
    extended = decide(p, ExtendReservation(P, "r1", 400.0), 101.0)
    assert extended.outcome is DecisionOutcome.DECIDED
    assert p.parts["r1"].expires_at == p.claims["r1"].expires_at == 400.0


def test_an_older_extension_decided_at_the_same_instant_arriving_late_changes_nothing():
    p = Partition(P)
    stock(p, "a", "n1", 10)
    reserved(p, "r1", Line("a", "n1", 4))
    first, _ = p.handle(ExtendReservation(P, "r1", 300.0), 110.0)
    second, _ = p.handle(ExtendReservation(P, "r1", 400.0), 110.0)  # in the same batch
    assert (first.outcome, second.outcome) == (DecisionOutcome.DECIDED, DecisionOutcome.DECIDED)
    assert (first.carry.operation, second.carry.operation) == ("extend#2", "extend#3")
    homes.carry(p, P, "r1", second.carry, 111.0)
    late, _ = p.handle(CarryStep(P, "r1", first.carry.steps[0][1]), 112.0)
    assert late.outcome is PartOutcome.REPLAYED
    assert p.parts["r1"].expires_at == p.claims["r1"].expires_at == 400.0


def test_an_older_extension_arriving_after_a_newer_one_to_the_expiry_the_part_has_changes_nothing():
    p = Partition(P)
    stock(p, "a", "n1", 10)
    reserved(p, "r1", Line("a", "n1", 4))
    # Three extensions, the third (a shorter TTL) back to the first one's expiry.
    first, _ = p.handle(ExtendReservation(P, "r1", 300.0), 110.0)
    second, _ = p.handle(ExtendReservation(P, "r1", 400.0), 120.0)
    third, _ = p.handle(ExtendReservation(P, "r1", 300.0), 130.0)
    assert [r.outcome for r in (first, second, third)] == [DecisionOutcome.DECIDED] * 3
    # The first's step arrives, then the third's, then (late) the second's.
    assert p.handle(CarryStep(P, "r1", first.carry.steps[0][1]), 131.0)[0].outcome is PartOutcome.CHANGED
    homes.carry(p, P, "r1", third.carry, 132.0)
    late, _ = p.handle(CarryStep(P, "r1", second.carry.steps[0][1]), 133.0)
    assert late.outcome is PartOutcome.REPLAYED
    assert p.parts["r1"].expires_at == p.claims["r1"].expires_at == 300.0


def test_a_settled_part_sits_out_every_follow():
    p = Partition(P)
    stock(p, "a", "n1", 10)
    hold(p, "r1", Line("a", "n1", 2))
    close = Close("c1", "cancelled", (Line("a", "n1", 2),), CREATED + 1)
    assert p.handle(CarryStep(P, "r1", close), CREATED + 1)[0].outcome is PartOutcome.CHANGED
    assert p.parts["r1"].settled and p.parts["r1"].state is PartState.RELEASED
    before = state(p)
    for target in (PartState.HELD, PartState.CONFIRMED, PartState.RELEASED, PartState.EXPIRED):
        result, events = follow(p, "r1", target, CREATED + 2, expires=EXPIRES + 1, version=2)
        assert (result.outcome, events) == (PartOutcome.SETTLED, [])
    assert state(p) == before


def test_a_close_step_closes_lines_as_close_lines_does_and_once():
    p = Partition(P)
    stock(p, "a", "n1", 10)
    hold(p, "r1", Line("a", "n1", 3))
    follow(p, "r1", PartState.CONFIRMED, CREATED + 1)
    ship = Close("ship-1", "fulfilled", (Line("a", "n1", 2),), CREATED + 2)
    result, events = p.handle(CarryStep(P, "r1", ship), CREATED + 5)
    assert result.outcome is PartOutcome.CHANGED
    assert events == [LinesClosed("r1", "ship-1", "fulfilled", ((0, 2),), CREATED + 2, (Line("a", "n1", 2),))]
    assert pos(p, "a", "n1")[:3] == (8, 0, 1)
    before = state(p)
    again, events = p.handle(CarryStep(P, "r1", ship), CREATED + 6)
    assert (again.outcome, events) == (PartOutcome.REPLAYED, [])
    assert state(p) == before


def test_follow_and_close_steps_for_an_unknown_part_are_not_found():
    p = Partition(P)
    for step in (
        Follow(PartState.CONFIRMED, 1.0, EXPIRES),
        Follow(PartState.RELEASED, 1.0, EXPIRES),
        Close("c", "cancelled", (Line("a", "n1", 1),), 1.0),
    ):
        result, events = p.handle(CarryStep(P, "nope", step), 1.0)
        assert result.outcome is PartOutcome.NOT_FOUND
        assert events == []
    assert state(p) == ({}, {}, {}, {}, {})


# --- Withdraw: an aborted attempt's part goes, or the attempt is fenced out ---


def test_withdraw_removes_a_held_part_of_its_attempt_and_returns_its_units():
    p = Partition(P)
    stock(p, "a", "n1", 10)
    hold(p, "r1", Line("a", "n1", 4), attempt="a1")
    result, events = withdraw(p, "r1", "a1")
    assert result.outcome is PartOutcome.CHANGED
    assert events == [HoldAborted("r1")]
    assert "r1" not in p.parts and p.fences == {}
    assert pos(p, "a", "n1")[:3] == (10, 0, 0)
    assert p.check() == []


@pytest.mark.parametrize("case", ["other attempt", "confirmed", "released", "expired"])
def test_withdraw_leaves_a_part_of_another_attempt_or_one_that_moved_on(case):
    p = Partition(P)
    stock(p, "a", "n1", 10)
    hold(p, "r1", Line("a", "n1", 4), attempt="a2" if case == "other attempt" else "a1")
    if case != "other attempt":
        follow(p, "r1", PartState[case.upper()], CREATED + 1)
    before = state(p)
    result, events = withdraw(p, "r1", "a1")
    assert result.outcome is PartOutcome.REPLAYED
    assert events == []
    assert state(p) == before


def test_withdraw_where_no_part_arrived_fences_the_attempt_out_until_its_time():
    p = Partition(P)
    stock(p, "a", "n1", 10)
    until = EXPIRES + FENCE_MARGIN
    result, events = withdraw(p, "r1", "a1", until)
    assert result.outcome is PartOutcome.CHANGED
    assert events == [HoldFenced("r1", "a1", until)]
    assert p.fences == {"r1": {"a1": until}}
    again, events = withdraw(p, "r1", "a1", until)
    assert (again.outcome, events) == (PartOutcome.REPLAYED, [])
    # The aborted attempt's PlaceHold, still on its way, is refused and changes nothing.
    before = state(p)
    late, events = hold(p, "r1", Line("a", "n1", 4), attempt="a1")
    assert (late.outcome, late.part, events) == (HoldOutcome.FENCED, None, [])
    assert state(p) == before
    # The fence is the attempt's: another attempt of the same id is placed.
    assert hold(p, "r1", Line("a", "n1", 4), attempt="a2")[0].outcome is HoldOutcome.PLACED
    # The fence goes once its time has come (the home's timer runs in every partition).
    withdraw(p, "r2", "a1", until)
    assert p.next_due() == until
    assert p.expire_due(until - 0.001, PENDING) == []
    assert "r2" in p.fences
    assert p.expire_due(until, PENDING) == []  # dropping a fence is not journaled
    assert p.fences == {} and p.next_due() is None
    assert hold(p, "r2", Line("a", "n1", 1), attempt="a1")[0].outcome is HoldOutcome.PLACED


def test_a_withdrawn_id_can_be_held_again_by_another_attempt():
    p = Partition(P)
    stock(p, "a", "n1", 10)
    hold(p, "r1", Line("a", "n1", 4), attempt="a1")
    withdraw(p, "r1", "a1")
    result, _ = hold(p, "r1", Line("a", "n1", 6), expires=EXPIRES + 50, attempt="a2")
    assert result.outcome is HoldOutcome.PLACED
    assert (result.part.attempt, result.part.expires_at) == ("a2", EXPIRES + 50)
    assert pos(p, "a", "n1")[:3] == (10, 6, 0)
    assert withdraw(p, "r1", "a1")[0].outcome is PartOutcome.REPLAYED  # a stale Withdraw
    assert pos(p, "a", "n1")[:3] == (10, 6, 0)


# --- the home: a reservation's record and its one decision ---


def test_record_claim_starts_a_pending_record_then_same_fingerprint_exists_and_other_conflicts():
    p = Partition(P)
    result, events = p.handle(RecordClaim(P, "r1", "fp1", (1, 2), 10.0, attempt="a1", expires_at=70.0), 10.0)
    pending = Claim(
        "r1", "fp1", (1, 2), 10.0, attempt="a1", decision=Decision.PENDING, expires_at=70.0, decided_at=10.0
    )
    assert (result.outcome, result.claim, result.decision) == (
        ClaimOutcome.RECORDED,
        pending,
        Decision.PENDING,
    )
    assert len(events) == 1
    assert p.claims == {"r1": pending}
    before = state(p)
    result, events = p.handle(RecordClaim(P, "r1", "fp1", (1, 2), 11.0, attempt="a2", expires_at=71.0), 11.0)
    assert (result.outcome, result.claim, events) == (ClaimOutcome.EXISTS, pending, [])
    result, events = p.handle(RecordClaim(P, "r1", "fp2", (1,), 12.0, attempt="a3", expires_at=72.0), 12.0)
    assert (result.outcome, result.claim, events) == (ClaimOutcome.CONFLICT, pending, [])
    assert state(p) == before


def test_decide_hold_holds_a_reservation_whose_parts_were_all_placed():
    p = Partition(P)
    stock(p, "a", "n1", 10)
    record(p, "r1")
    hold(p, "r1", Line("a", "n1", 2), attempt="a1")
    result, events = p.handle(DecideHold(P, "r1", "a1", placed=True), CREATED + 1)
    assert (result.outcome, result.decision, result.carry) == (DecisionOutcome.DECIDED, Decision.HELD, None)
    assert events == [ReservationDecided("r1", Decision.HELD, CREATED + 1, EXPIRES)]
    claim = p.claims["r1"]
    assert (claim.decision, claim.decided_at, claim.expires_at) == (Decision.HELD, CREATED + 1, EXPIRES)
    assert claim.history == (("held", CREATED, ""),)  # as its parts have it
    assert result.claim == claim
    before = state(p)
    again, events = p.handle(DecideHold(P, "r1", "a1", placed=True), CREATED + 2)
    assert (again.outcome, again.decision, events) == (DecisionOutcome.REPLAYED, Decision.HELD, [])
    other, events = p.handle(DecideHold(P, "r1", "a0", placed=True), CREATED + 2)
    assert (other.outcome, events) == (DecisionOutcome.REFUSED, [])
    assert state(p) == before
    assert p.handle(DecideHold(P, "r9", "a1", placed=True), CREATED)[0].outcome is DecisionOutcome.NOT_FOUND


def test_a_decide_hold_of_an_attempt_aborted_meanwhile_reads_aborted():
    p = Partition(P)
    stock(p, "a", "n1", 10)
    record(p, "r1", "a1")
    # The first attempt's gateway is slow: the home's timer aborts it, and as it placed
    # nothing, the id is free once its Withdraw is carried.
    homes.expire(p, CREATED + PENDING, PENDING)
    assert "r1" not in p.claims
    reserved(p, "r1", Line("a", "n1", 1), created=CREATED + 6)  # another attempt takes the id
    late, events = p.handle(DecideHold(P, "r1", "a1", placed=True), CREATED + 7)
    assert (late.outcome, events) == (DecisionOutcome.REFUSED, [])
    assert late.decision is Decision.ABORTED


def test_decide_hold_aborts_an_attempt_with_a_missing_part_and_withdraws_the_others():
    p = Partition(P)
    stock(p, "a", "n1", 10)
    record(p, "r1", partitions=(P, P + 1))
    hold(p, "r1", Line("a", "n1", 2), attempt="a1")
    result, events = p.handle(DecideHold(P, "r1", "a1", placed=False), CREATED + 1)
    until = EXPIRES + FENCE_MARGIN
    intent = Intent("abort:a1", ((P, Withdraw("a1", until)), (P + 1, Withdraw("a1", until))))
    assert (result.outcome, result.decision, result.carry) == (
        DecisionOutcome.DECIDED,
        Decision.ABORTED,
        intent,
    )
    assert events == [ReservationDecided("r1", Decision.ABORTED, CREATED + 1, EXPIRES, intent)]
    assert p.handle(GetClaim(P, "r1"), CREATED + 1)[0].decision is Decision.ABORTED
    # Nobody may see it, nor take the id while its parts are being withdrawn.
    assert p.handle(ConfirmReservation(P, "r1"), CREATED + 1)[0].outcome is DecisionOutcome.NOT_FOUND
    busy, _ = record(p, "r1", "a2", created=CREATED + 2)
    assert busy.outcome is ClaimOutcome.BUSY
    # Its steps: here the part goes; the other partition's step is taken elsewhere.
    log: list = []
    homes.carry(p, P, "r1", intent, CREATED + 2, log)
    assert log == [HoldAborted("r1"), IntentCarried("r1", "abort:a1", (P,))]
    assert pos(p, "a", "n1")[:3] == (10, 0, 0)
    assert p.claims["r1"].intents == (Intent("abort:a1", ((P + 1, Withdraw("a1", until)),)),)
    _, events = p.handle(MarkCarried(P, "r1", "abort:a1", (P + 1,)), CREATED + 3)
    assert events == [IntentCarried("r1", "abort:a1", (P + 1,)), ClaimDropped("r1")]
    assert p.claims == {}
    # The id is free again, for any content.
    assert p.handle(RecordClaim(P, "r1", "other", (P,), CREATED + 4, attempt="a3"))[0].outcome is (
        ClaimOutcome.RECORDED
    )


def test_an_attempt_refused_everywhere_frees_its_id_at_once():
    p = Partition(P)
    record(p, "r1")
    result, events = p.handle(DecideHold(P, "r1", "a1", placed=False, unplaced=(P,)), CREATED + 1)
    assert (result.outcome, result.decision, result.carry) == (
        DecisionOutcome.DECIDED,
        Decision.ABORTED,
        None,
    )
    assert events == [ReservationDecided("r1", Decision.ABORTED, CREATED + 1, EXPIRES), ClaimDropped("r1")]
    assert p.claims == {} and p.fences == {}
    assert p.handle(GetClaim(P, "r1"))[0].outcome is ClaimOutcome.NOT_FOUND


def test_a_held_reservation_reads_expired_from_its_expiry_before_the_timer_runs():
    p = Partition(P)
    stock(p, "a", "n1", 10)
    reserved(p, "r1", Line("a", "n1", 2))
    assert p.handle(GetClaim(P, "r1"), EXPIRES - 0.001)[0].decision is Decision.HELD
    found, _ = p.handle(GetClaim(P, "r1"), EXPIRES)
    assert (found.outcome, found.decision, found.claim.decision) == (
        ClaimOutcome.FOUND,
        Decision.EXPIRED,
        Decision.HELD,
    )
    for command in (ConfirmReservation(P, "r1"), ExtendReservation(P, "r1", EXPIRES + 60)):
        before = state(p)
        refused, events = p.handle(command, EXPIRES)
        assert (refused.outcome, refused.decision, events) == (DecisionOutcome.REFUSED, Decision.EXPIRED, [])
        assert state(p) == before


def test_confirm_is_decided_at_the_home_first_then_carried_to_the_part():
    p = Partition(P)
    stock(p, "a", "n1", 10)
    reserved(p, "r1", Line("a", "n1", 4))
    now = EXPIRES - 0.001
    result, events = p.handle(ConfirmReservation(P, "r1"), now)
    step = Follow(PartState.CONFIRMED, now, EXPIRES, 2)  # the home's second decision, after HELD
    intent = Intent("confirmed#2", ((P, step),))
    assert (result.outcome, result.decision, result.carry) == (
        DecisionOutcome.DECIDED,
        Decision.CONFIRMED,
        intent,
    )
    assert events == [ReservationDecided("r1", Decision.CONFIRMED, now, EXPIRES, intent)]
    assert p.claims["r1"].history == (("held", CREATED, ""), ("confirmed", now, ""))
    # Decided, not yet taken: the part still holds its units as reserved.
    assert p.parts["r1"].state is PartState.HELD and pos(p, "a", "n1")[:3] == (10, 4, 0)
    homes.carry(p, P, "r1", intent, EXPIRES + 30)
    assert p.parts["r1"].state is PartState.CONFIRMED and pos(p, "a", "n1")[:3] == (10, 0, 4)
    assert p.claims["r1"].intents == ()
    again, events = p.handle(ConfirmReservation(P, "r1"), EXPIRES + 31)
    assert (again.outcome, again.decision, again.carry, events) == (
        DecisionOutcome.REPLAYED,
        Decision.CONFIRMED,
        None,
        [],
    )


@pytest.mark.parametrize("expired_by_timer", [False, True])
def test_release_of_an_expired_reservation_is_refused(expired_by_timer):
    p = Partition(P)
    stock(p, "a", "n1", 10)
    reserved(p, "r1", Line("a", "n1", 4))
    if expired_by_timer:
        homes.expire(p, EXPIRES + 1, PENDING)
        assert p.parts["r1"].state is PartState.EXPIRED
    before = state(p)
    result, events = p.handle(ReleaseReservation(P, "r1"), EXPIRES)
    assert result.outcome is DecisionOutcome.REFUSED
    assert result.decision is Decision.EXPIRED
    assert events == []
    assert state(p) == before


def test_release_of_a_confirmed_reservation_after_its_expiry_releases_it():
    p = Partition(P)
    stock(p, "a", "n1", 10)
    reserved(p, "r1", Line("a", "n1", 4))
    decide(p, ConfirmReservation(P, "r1"), CREATED + 1)
    result = decide(p, ReleaseReservation(P, "r1"), EXPIRES + 100)
    assert (result.outcome, result.decision) == (DecisionOutcome.DECIDED, Decision.RELEASED)
    assert p.parts["r1"].state is PartState.RELEASED
    assert pos(p, "a", "n1")[:3] == (10, 0, 0)
    assert p.handle(ReleaseReservation(P, "r1"), EXPIRES + 101)[0].outcome is DecisionOutcome.REPLAYED
    refused, _ = p.handle(ConfirmReservation(P, "r1"), EXPIRES + 101)
    assert (refused.outcome, refused.decision) == (DecisionOutcome.REFUSED, Decision.RELEASED)


def test_decisions_about_an_unknown_or_undecided_reservation_are_not_found():
    p = Partition(P)
    record(p, "pending")
    before = state(p)
    for rid in ("nope", "pending"):
        for command in (
            ConfirmReservation(P, rid),
            ReleaseReservation(P, rid),
            ExtendReservation(P, rid, EXPIRES + 1),
            DecideClose(P, rid, "op", (), (Decision.HELD,)),
        ):
            result, events = p.handle(command, CREATED)
            assert (result.outcome, events) == (DecisionOutcome.NOT_FOUND, [])
    assert state(p) == before


# --- the home's timer: expiries, undecided attempts, fences ---


def test_the_home_decides_expired_at_the_expiry_as_of_the_expiry():
    p = Partition(P)
    stock(p, "a", "n1", 10)
    reserved(p, "r1", Line("a", "n1", 4))
    assert p.expire_due(CREATED + PENDING, PENDING) == []  # decided in time: not aborted
    assert p.next_due(PENDING) == EXPIRES
    assert p.expire_due(EXPIRES - 0.001, PENDING) == []
    assert p.claims["r1"].decision is Decision.HELD
    step = Follow(PartState.EXPIRED, EXPIRES, EXPIRES, 2, EXPIRY_BY)  # the second decision, after HELD
    intent = Intent("expire#2", ((P, step),))
    # However late the timer runs, the reservation expired at its expiry.
    events = p.expire_due(EXPIRES + 4, PENDING)
    assert events == [ReservationDecided("r1", Decision.EXPIRED, EXPIRES, EXPIRES, intent, EXPIRY_BY)]
    claim = p.claims["r1"]
    assert (claim.decision, claim.decided_at, claim.intents) == (Decision.EXPIRED, EXPIRES, (intent,))
    assert claim.history[-1] == ("expired", EXPIRES, EXPIRY_BY)
    # Decided: the part follows once the step is carried.
    assert p.parts["r1"].state is PartState.HELD and pos(p, "a", "n1")[:3] == (10, 4, 0)
    log: list = []
    homes.carry(p, P, "r1", intent, EXPIRES + 4, log)
    expired = PartChanged("r1", PartState.EXPIRED, EXPIRES, EXPIRY_BY)
    assert log == [expired, IntentCarried("r1", intent.operation, (P,))]
    assert (p.parts["r1"].state, p.parts["r1"].changed_at) == (PartState.EXPIRED, EXPIRES)
    assert pos(p, "a", "n1")[:3] == (10, 0, 0)
    assert p.claims["r1"].intents == ()
    assert p.expire_due(EXPIRES + 100, PENDING) == []
    assert p.next_due(PENDING) is None
    assert p.check() == []


def test_expire_due_decides_only_the_due_holds_and_skips_decided_ones():
    p = Partition(P)
    stock(p, "a", "n1", 100)
    for rid, quantity, expires in [
        ("early", 1, 110.0),
        ("confirmed", 2, 120.0),
        ("released", 4, 130.0),
        ("late", 8, 200.0),
        ("mid", 16, 140.0),
    ]:
        reserved(p, rid, Line("a", "n1", quantity), expires=expires)
    decide(p, ConfirmReservation(P, "confirmed"), 105.0)
    decide(p, ReleaseReservation(P, "released"), 105.0)
    decided = homes.expire(p, 150.0, PENDING)
    assert [(d.reservation_id, d.decision, d.at) for d in decided] == [
        ("early", Decision.EXPIRED, 110.0),
        ("mid", Decision.EXPIRED, 140.0),
    ]
    assert {rid: part.state for rid, part in p.parts.items()} == {
        "early": PartState.EXPIRED,
        "confirmed": PartState.CONFIRMED,
        "released": PartState.RELEASED,
        "late": PartState.HELD,
        "mid": PartState.EXPIRED,
    }
    assert {rid: claim.decision for rid, claim in p.claims.items()} == {
        "early": Decision.EXPIRED,
        "confirmed": Decision.CONFIRMED,
        "released": Decision.RELEASED,
        "late": Decision.HELD,
        "mid": Decision.EXPIRED,
    }
    assert pos(p, "a", "n1")[:3] == (100, 8, 2)
    assert p.next_due(PENDING) == 200.0
    assert p.check() == []


def test_an_extended_reservation_expires_at_its_new_expiry_only():
    p = Partition(P)
    stock(p, "a", "n1", 10)
    reserved(p, "r1", Line("a", "n1", 4))
    extended = decide(p, ExtendReservation(P, "r1", EXPIRES + 50), CREATED + 10)
    assert (extended.outcome, extended.claim.expires_at) == (DecisionOutcome.DECIDED, EXPIRES + 50)
    assert p.parts["r1"].expires_at == EXPIRES + 50
    assert p.claims["r1"].history[-1] == ("extended", CREATED + 10, "")
    # the old expiry's timer must not expire it
    assert p.expire_due(EXPIRES + 10, PENDING) == []
    assert p.claims["r1"].decision is Decision.HELD and pos(p, "a", "n1")[:3] == (10, 4, 0)
    assert [d.at for d in homes.expire(p, EXPIRES + 50, PENDING)] == [EXPIRES + 50]
    assert p.parts["r1"].state is PartState.EXPIRED and pos(p, "a", "n1")[:3] == (10, 0, 0)


def test_an_undecided_attempt_is_aborted_after_pending_seconds_and_its_parts_withdrawn():
    p = Partition(P)
    stock(p, "a", "n1", 10)
    record(p, "r1")  # its gateway died after placing the part
    hold(p, "r1", Line("a", "n1", 4), attempt="a1")
    reserved(p, "r2", Line("a", "n1", 1))  # decided: not aborted
    assert p.next_due(PENDING) == CREATED + PENDING
    assert p.expire_due(CREATED + PENDING - 0.001, PENDING) == []
    assert pos(p, "a", "n1")[:3] == (10, 5, 0)
    until = EXPIRES + FENCE_MARGIN
    intent = Intent("abort:a1", ((P, Withdraw("a1", until, EXPIRY_BY)),))
    log: list = []
    decided = homes.expire(p, CREATED + PENDING, PENDING, log)
    assert decided == [
        ReservationDecided("r1", Decision.ABORTED, CREATED + PENDING, EXPIRES, intent, EXPIRY_BY)
    ]
    assert log[1:] == [
        HoldAborted("r1", EXPIRY_BY),
        IntentCarried("r1", "abort:a1", (P,)),
        ClaimDropped("r1"),
    ]
    assert set(p.parts) == {"r2"} and set(p.claims) == {"r2"}
    assert pos(p, "a", "n1")[:3] == (10, 1, 0)
    assert p.check() == []


def test_an_attempt_recorded_again_is_not_aborted_by_the_earlier_attempts_timer():
    p = Partition(P)
    record(p, "r1", "a1")
    p.handle(DecideHold(P, "r1", "a1", placed=False, unplaced=(P,)), CREATED + 1)
    record(p, "r1", "a2", created=CREATED + 3)
    assert p.expire_due(CREATED + PENDING, PENDING) == []
    assert p.claims["r1"].decision is Decision.PENDING
    (aborted,) = p.expire_due(CREATED + 3 + PENDING, PENDING)
    assert (aborted.reservation_id, aborted.decision, aborted.intent.operation) == (
        "r1",
        Decision.ABORTED,
        "abort:a2",
    )


# --- reads ---


def test_get_part_and_read_positions():
    p = Partition(P)
    stock(p, "a", "n2", 5, as_of=2.0)
    stock(p, "a", "n1", 10, as_of=3.0)
    stock(p, "b", "n1", 1)
    placed, _ = hold(p, "r1", Line("a", "n1", 4))
    found, events = p.handle(GetPart(P, "r1"))
    assert (found.outcome, found.part, found.state, events) == (
        PartOutcome.FOUND,
        placed.part,
        PartState.HELD,
        [],
    )
    assert p.handle(GetPart(P, "r2"))[0].outcome is PartOutcome.NOT_FOUND
    rows, _ = p.handle(ReadPositions(P, ("a", "zzz")))
    assert [(v.sku, v.node_id, v.on_hand, v.reserved, v.committed, v.as_of) for v in rows.positions] == [
        ("a", "n1", 10, 4, 0, 3.0),
        ("a", "n2", 5, 0, 0, 2.0),
    ]


# --- recovery: replay, restore and snapshots ---

R10_ATTEMPT = "at-r10"


def _busy_partition() -> tuple[Partition, list]:
    """A partition that went through every kind of event, as home and as part, and holds
    records in every decision (some with steps still to carry); returns it and its events."""
    p = Partition(P)
    log: list = []

    def run(command, now: float = 0.0):
        result, events = p.handle(command, now)
        log.extend(events)
        return result

    def reserve(rid: str, lines: tuple[Line, ...], now: float, expires: float):
        assert homes.reserve(p, rid, lines, now, expires, log).decision.decision is Decision.HELD

    def decide(command, now: float):
        result = homes.decide(p, command, now, log)
        assert result.outcome is DecisionOutcome.DECIDED, (command, result)

    run(SetStock(P, "a", "n1", 20, 1.0))
    run(SetStock(P, "a", "n2", 5, 1.0))
    run(SetStock(P, "b", "n1", 9, 1.0))
    run(SetStock(P, "a", "n1", 99, 0.5))  # stale
    run(AdjustStock(P, "adj1", "a", "n1", -2))
    run(AdjustStock(P, "adj1", "a", "n1", -2))  # replayed
    run(AdjustStock(P, "adj2", "b", "n1", -100))  # refused
    reserve("r1", (Line("a", "n1", 3), Line("b", "n1", 2)), 100.0, 160.0)
    reserve("r2", (Line("a", "n2", 5),), 100.0, 130.0)
    reserve("r3", (Line("a", "n1", 1),), 100.0, 200.0)
    reserve("r4", (Line("b", "n1", 4),), 100.0, 300.0)
    reserve("r6", (Line("a", "n1", 1),), 100.0, 500.0)
    # r5: its part was placed, but not every part: aborted, the part withdrawn, the id freed.
    run(RecordClaim(P, "r5", "fp5", (P,), 100.0, attempt="a5", expires_at=400.0), 100.0)
    run(PlaceHold(P, "r5", "fp5", (Line("a", "n1", 6),), 100.0, 400.0, attempt="a5", home=P), 100.0)
    decide(DecideHold(P, "r5", "a5", placed=False), 100.0)
    # r9: refused everywhere, so nothing to withdraw.
    run(RecordClaim(P, "r9", "fp9", (P,), 100.0, attempt="a9", expires_at=160.0), 100.0)
    decide(DecideHold(P, "r9", "a9", placed=False, unplaced=(P,)), 100.0)
    # r8: aborted before its part arrived: the attempt is fenced out here.
    run(RecordClaim(P, "r8", "fp8", (P,), 100.0, attempt="a8", expires_at=160.0), 100.0)
    decide(DecideHold(P, "r8", "a8", placed=False), 100.0)
    decide(ConfirmReservation(P, "r1"), 120.0)
    decide(ReleaseReservation(P, "r3"), 121.0)
    decide(ConfirmReservation(P, "r4"), 122.0)
    decide(ReleaseReservation(P, "r4"), 123.0)
    assert [d.reservation_id for d in homes.expire(p, 140.0, PENDING, log)] == ["r2"]
    run(SetStock(P, "a", "n1", 15, 2.0))
    reserve("r7", (Line("a", "n1", 2), Line("b", "n1", 1)), 150.0, 600.0)
    decide(ExtendReservation(P, "r7", 900.0), 151.0)
    decide(ConfirmReservation(P, "r7"), 152.0)
    cancel = Close("cancel-1", "cancelled", (Line("a", "n1", 1),), 153.0)
    decide(DecideClose(P, "r7", "cancel-1", ((P, cancel),), (Decision.HELD, Decision.CONFIRMED)), 153.0)
    ship = Close("ship-1", "fulfilled", (Line("a", "n1", 1), Line("b", "n1", 1)), 154.0)
    decide(DecideClose(P, "r7", "ship-1", ((P, ship),), (Decision.CONFIRMED,), Decision.FULFILLED), 154.0)
    # r10: recorded, never decided (its gateway died): PENDING.
    run(RecordClaim(P, "r10", "fp10", (P,), 155.0, attempt=R10_ATTEMPT, expires_at=700.0), 155.0)
    # r11: aborted; its part here is withdrawn, its step for another partition not yet carried.
    run(RecordClaim(P, "r11", "fp11", (P, P + 1), 156.0, attempt="a11", expires_at=400.0), 156.0)
    run(PlaceHold(P, "r11", "fp11", (Line("b", "n1", 1),), 156.0, 400.0, attempt="a11", home=P), 156.0)
    decide(DecideHold(P, "r11", "a11", placed=False), 156.0)
    # r12: confirmed at its home, the step not yet taken by its part.
    reserve("r12", (Line("b", "n1", 1),), 157.0, 800.0)
    run(ConfirmReservation(P, "r12"), 158.0)
    assert p.check() == []
    return p, log


def _after_the_timer_at_1000() -> list[ReservationDecided]:
    expired = Follow(PartState.EXPIRED, 500.0, 500.0, 2, EXPIRY_BY)  # r6's second decision, after HELD
    withdrawn = Withdraw(R10_ATTEMPT, 1000.0 + FENCE_MARGIN, EXPIRY_BY)
    return [
        ReservationDecided(
            "r6", Decision.EXPIRED, 500.0, 500.0, Intent("expire#2", ((P, expired),)), EXPIRY_BY
        ),
        ReservationDecided(
            "r10",
            Decision.ABORTED,
            1000.0,
            700.0,
            Intent(f"abort:{R10_ATTEMPT}", ((P, withdrawn),)),
            EXPIRY_BY,
        ),
    ]


def test_the_busy_partition_covers_every_event_state_and_decision():
    live, log = _busy_partition()
    assert {type(e).__name__ for e in log} == {
        "LevelsSet",
        "StockAdjusted",
        "HoldPlaced",
        "PartChanged",
        "HoldAborted",
        "ClaimRecorded",
        "ClaimDropped",
        "HoldExtended",
        "LinesClosed",
        "ReservationDecided",
        "IntentCarried",
        "HoldFenced",
    }
    assert {part.state for part in live.parts.values()} == set(PartState)
    assert {claim.decision for claim in live.claims.values()} == set(Decision)
    assert {rid for rid, claim in live.claims.items() if claim.intents} == {"r11", "r12"}
    assert live.fences == {"r8": {"a8": 160.0 + FENCE_MARGIN}}


def test_replaying_events_rebuilds_identical_state():
    live, log = _busy_partition()
    rebuilt = replay(log)
    assert state(rebuilt) == state(live)
    assert sorted(rebuilt.levels().rows()) == sorted(live.levels().rows())
    assert rebuilt.parts == live.parts
    assert rebuilt.claims == live.claims
    assert rebuilt.adjustments == live.adjustments
    assert rebuilt.check() == [] == live.check()
    # and the rebuilt partition goes on exactly like the live one: the same decisions due
    assert rebuilt.next_due(PENDING) is not None
    assert (
        rebuilt.expire_due(1000.0, PENDING) == live.expire_due(1000.0, PENDING) == _after_the_timer_at_1000()
    )
    assert state(rebuilt) == state(live)
    assert rebuilt.fences == {}  # r8's fence had done its work


def test_replay_remembers_adjustment_ids():
    _, log = _busy_partition()
    rebuilt = replay(log)
    result, events = rebuilt.handle(AdjustStock(P, "adj1", "a", "n1", -2))
    assert (result.outcome, events) == (AdjustOutcome.REPLAYED, [])
    result, _ = rebuilt.handle(AdjustStock(P, "adj1", "a", "n1", -3))
    assert result.outcome is AdjustOutcome.CONFLICT


def test_replay_remembers_claims_fences_and_intents():
    _, log = _busy_partition()
    rebuilt = replay(log)
    assert (
        rebuilt.handle(RecordClaim(P, "r11", "fp11", (P,), 200.0, attempt="x"))[0].outcome
        is ClaimOutcome.BUSY
    )
    late, _ = rebuilt.handle(PlaceHold(P, "r8", "fp8", (Line("a", "n1", 1),), 100.0, 160.0, attempt="a8"))
    assert late.outcome is HoldOutcome.FENCED
    # r12's confirm is still to be carried
    released, _ = rebuilt.handle(ReleaseReservation(P, "r12"), 200.0)
    assert released.outcome is DecisionOutcome.DECIDED  # a later state change covers the confirm's step
    # (r12's third decision: HELD, CONFIRMED, then RELEASED)
    assert [intent.operation for intent in rebuilt.claims["r12"].intents] == ["released#3"]


def test_restore_recomputes_reserved_and_committed_from_parts_and_times_the_records_again():
    p = Partition(P)
    parts = [
        Part("h1", "f", (Line("a", "n1", 2), Line("b", "n1", 1)), PartState.HELD, 100.0, 160.0),
        Part("h2", "f", (Line("a", "n1", 3),), PartState.HELD, 100.0, 170.0),
        Part("c1", "f", (Line("a", "n1", 4),), PartState.CONFIRMED, 100.0, 160.0, 110.0),
        Part("x1", "f", (Line("a", "n1", 50),), PartState.RELEASED, 100.0, 160.0, 110.0),
        Part("x2", "f", (Line("b", "n1", 50),), PartState.EXPIRED, 100.0, 150.0, 150.0),
        Part("p1", "f", (Line("b", "n1", 1),), PartState.HELD, 100.0, 165.0, attempt="ap"),
    ]
    claims = [
        Claim(
            "h1", "f", (P,), 100.0, attempt="a", decision=Decision.HELD, expires_at=160.0, decided_at=100.0
        ),
        Claim(
            "h2", "f", (P,), 100.0, attempt="a", decision=Decision.HELD, expires_at=170.0, decided_at=100.0
        ),
        Claim("p1", "f", (P,), 100.0, attempt="ap", decision=Decision.PENDING, expires_at=165.0),
    ]
    adjustments = [StockAdjusted("adj1", "a", "n1", 5, "count")]
    fences = [HoldFenced("f1", "af", 190.0)]
    p.restore(
        LevelColumns.of([("a", "n1", 20, 7.0, 0, 0), ("b", "n1", 3, 8.0, 0, 0)]),
        parts,
        claims,
        adjustments,
        fences=fences,
    )
    assert pos(p, "a", "n1") == (20, 5, 4, 7.0)
    assert pos(p, "b", "n1") == (3, 2, 0, 8.0)
    assert p.parts == {part.reservation_id: part for part in parts}
    assert p.claims == {claim.reservation_id: claim for claim in claims}
    assert p.fences == {"f1": {"af": 190.0}}
    assert p.check() == []
    assert adjust(p, "adj1", "a", "n1", 5)[0].outcome is AdjustOutcome.REPLAYED
    # restored records are timed again: the PENDING one first, then the HELD ones, then the fence
    assert p.next_due(PENDING) == 105.0
    decided = homes.expire(p, 170.0, PENDING)
    assert [(d.reservation_id, d.decision, d.at) for d in decided] == [
        ("h1", Decision.EXPIRED, 160.0),
        ("h2", Decision.EXPIRED, 170.0),
        ("p1", Decision.ABORTED, 170.0),
    ]
    assert pos(p, "a", "n1") == (20, 0, 4, 7.0)
    assert "p1" not in p.parts and "p1" not in p.claims
    assert p.next_due(PENDING) == 190.0
    p.expire_due(190.0, PENDING)
    assert p.fences == {} and p.next_due(PENDING) is None


def _dump(p: Partition) -> tuple:
    fences = [
        HoldFenced(rid, attempt, until)
        for rid, attempts in p.fences.items()
        for attempt, until in attempts.items()
    ]
    return (
        p.levels(),
        list(p.parts.values()),
        list(p.claims.values()),
        list(p.adjustments.values()),
        (),
        fences,
    )


def test_restore_from_a_dump_of_a_live_partition_equals_it():
    live, _ = _busy_partition()
    restored = Partition(P)
    restored.restore(*_dump(live))
    assert state(restored) == state(live)
    assert (
        restored.expire_due(1000.0, PENDING) == live.expire_due(1000.0, PENDING) == _after_the_timer_at_1000()
    )
    assert state(restored) == state(live)


def test_a_snapshot_round_trip_keeps_records_decisions_intents_history_and_fences():
    live, _ = _busy_partition()
    restored, last = decode_snapshot(encode_snapshot(live, "7-0"))
    assert last == "7-0"
    assert state(restored) == state(live)
    assert restored.claims == live.claims  # decision, expiry, decided_at, intents, history
    assert restored.claims["r12"].intents == live.claims["r12"].intents != ()
    assert restored.claims["r11"].intents[0].steps == ((P + 1, Withdraw("a11", 400.0 + FENCE_MARGIN)),)
    assert restored.claims["r7"].history == live.claims["r7"].history
    # r7: HELD, extended, confirmed, two closes; its part took the extension, decision 2
    assert restored.claims["r7"].decisions == live.claims["r7"].decisions == 5
    assert restored.parts["r7"].followed == live.parts["r7"].followed == 2
    assert {rid: part.history for rid, part in restored.parts.items()} == {
        rid: part.history for rid, part in live.parts.items()
    }
    assert restored.check() == []
    assert (
        restored.expire_due(1000.0, PENDING) == live.expire_due(1000.0, PENDING) == _after_the_timer_at_1000()
    )
    assert state(restored) == state(live)


def test_journal_entries_round_trip_every_event():
    _, log = _busy_partition()
    assert decode_entry(encode_entry(log)) == log
    for event in log:
        assert decode_entry(encode_entry([event])) == [event], event
    steps = [
        ReservationDecided("r", Decision.HELD, 1.5, 60.0),
        ReservationDecided(
            "r",
            Decision.FULFILLED,
            2.5,
            60.0,
            Intent(
                "close:op",
                (
                    (1, Close("op", "fulfilled", (Line("a", "n1", 1),), 2.5)),
                    (4, Follow(PartState.FULFILLED, 2.5, 60.0)),
                    (7, Withdraw("att", 120.0)),
                ),
            ),
        ),
        IntentCarried("r", "close:op", (1, 4)),
        HoldFenced("r", "att", 120.0),
    ]
    assert decode_entry(encode_entry(steps)) == steps


# --- check ---


def test_check_is_clean_on_a_healthy_partition():
    live, _ = _busy_partition()
    assert live.check() == []
    assert Partition(P).check() == []


def test_check_reports_reserved_that_does_not_match_the_parts():
    live, _ = _busy_partition()
    live.positions["a"]["n1"].reserved += 1
    problems = live.check()
    assert len(problems) == 1
    assert problems[0].startswith("a@n1:")


def test_check_reports_committed_that_does_not_match_the_parts():
    live, _ = _busy_partition()
    live.positions["b"]["n1"].committed -= 2
    problems = live.check()
    assert len(problems) == 1
    assert problems[0].startswith("b@n1:")


def test_check_reports_a_part_that_was_dropped_by_hand():
    live, _ = _busy_partition()
    del live.parts["r6"]  # HELD a@n1 x1, but the position still counts it
    assert [problem.split(":")[0] for problem in live.check()] == ["a@n1"]


def test_check_reports_negative_on_hand_and_parts_without_position():
    p = Partition(P)
    stock(p, "a", "n1", 10)
    stock(p, "b", "n1", 10)
    hold(p, "r1", Line("b", "n1", 2))
    p.position("a", "n1").on_hand = -1
    del p.positions["b"]
    problems = p.check()
    assert len(problems) == 2
    assert any(problem.startswith("a@n1") and "on_hand" in problem for problem in problems)
    assert any(problem.startswith("b@n1") and "without a position" in problem for problem in problems)


# --- repeated positions and invalid quantities ---


def test_lines_on_one_position_are_summed_against_available():
    p = Partition(P)
    stock(p, "a", "n1", 5)
    stock(p, "b", "n1", 5)
    before = state(p)
    # each line alone fits; together they do not
    lines = (Line("a", "n1", 3), Line("b", "n1", 1), Line("a", "n1", 3))
    result, events = hold(p, "r1", *lines)
    assert result.outcome is HoldOutcome.SHORT
    assert result.short == (ShortLine("a", "n1", requested=6, available=5),)
    assert events == []
    assert state(p) == before
    result, _ = hold(p, "r1", Line("a", "n1", 3), Line("a", "n1", 2))
    assert result.outcome is HoldOutcome.PLACED
    assert pos(p, "a", "n1")[:3] == (5, 5, 0)
    assert raw_available(p, "a", "n1") == 0
    # and the units come back, summed, when the hold ends
    follow(p, "r1", PartState.RELEASED, CREATED + 1)
    assert pos(p, "a", "n1")[:3] == (5, 0, 0)
    assert p.check() == []


def test_retry_with_repeated_position_in_other_order_is_replayed():
    p = Partition(P)
    stock(p, "a", "n1", 10)
    hold(p, "r1", Line("a", "n1", 1), Line("a", "n1", 2))
    before = state(p)
    result, events = hold(p, "r1", Line("a", "n1", 2), Line("a", "n1", 1))
    assert result.outcome is HoldOutcome.REPLAYED
    assert events == []
    assert state(p) == before
    # but other quantities on the same position are another request
    assert hold(p, "r1", Line("a", "n1", 3))[0].outcome is HoldOutcome.CONFLICT


@pytest.mark.parametrize("quantity", [0, -3])
def test_hold_with_a_quantity_below_one_is_invalid_and_changes_nothing(quantity):
    p = Partition(P)
    stock(p, "a", "n1", 5)
    hold(p, "r0", Line("a", "n1", 5))
    before = state(p)
    result, events = hold(p, "r1", Line("a", "n1", 1), Line("b", "n1", quantity))
    assert result.outcome is HoldOutcome.INVALID
    assert result.part is None
    assert events == []
    assert state(p) == before
    assert raw_available(p, "a", "n1") == 0


# --- bulk loads ---


def test_a_load_takes_each_level_by_the_set_stock_rule_and_answers_with_counts() -> None:
    p = Partition(P)
    p.handle(SetStock(P, "a", "n1", 7, 5.0))
    p.handle(SetStock(P, "b", "n1", 3, 1.0))
    levels = (
        ("a", "n1", 9, 4.0, 0, 0),  # older than the count there: stale
        ("b", "n1", 3, 1.0, 0, 0),  # the same as there: taken, nothing to journal
        ("c", "n1", 4, 2.0, 1, 0),  # new
        ("c", "n1", 6, 1.5, 0, 0),  # older than the level before it in this load: stale
        ("d", "n2", 2, 2.0, 0, 0),
        ("d", "n2", 8, 2.0, 0, 1),  # same as_of as the level before it: the later one wins
    )
    result, events = p.handle(LoadLevels(P, LevelColumns.of(levels)))
    assert result == LoadResult(applied=4, stale=2)
    assert [
        (level[0], level[2]) for e in events if isinstance(e, LevelsSet) for level in e.levels.rows()
    ] == [
        ("c", 4),
        ("d", 2),
        ("d", 8),
    ]
    assert [(v.sku, v.node_id, v.on_hand, v.damaged, v.quality_hold) for v in p.views("c")] == [
        ("c", "n1", 4, 1, 0)
    ]
    assert (p.view("d", "n2").on_hand, p.view("d", "n2").quality_hold) == (8, 1)
    assert p.view("a", "n1").on_hand == 7
    # Replayed from its events, the partition is the same.
    replayed = Partition(P)
    for event in [StockSet("a", "n1", 7, 5.0, 0, 0), StockSet("b", "n1", 3, 1.0, 0, 0), *events]:
        replayed.apply(event)
    assert [replayed.view(s, n) for s, n in (("c", "n1"), ("d", "n2"))] == [
        p.view("c", "n1"),
        p.view("d", "n2"),
    ]
