"""Example tests for the pure partition core: one rule per test."""

from __future__ import annotations

import pytest

from reservations.commands import (
    AbortHold,
    AdjustOutcome,
    AdjustStock,
    ClaimOutcome,
    CloseLines,
    ConfirmPart,
    DropClaim,
    ExtendPart,
    GetClaim,
    GetPart,
    HoldOutcome,
    LoadLevels,
    LoadResult,
    PartOutcome,
    PlaceHold,
    ReadPositions,
    RecordClaim,
    ReleasePart,
    SetStock,
    ShortLine,
)
from reservations.model import (
    Claim,
    HoldAborted,
    HoldPlaced,
    LevelColumns,
    LevelsSet,
    Line,
    Part,
    PartChanged,
    PartState,
    StockAdjusted,
    StockSet,
    fingerprint,
)
from reservations.partition import Partition

P = 3  # partition number used throughout
CREATED = 100.0
EXPIRES = 160.0

# --- tiny helpers ---


def stock(p: Partition, sku: str, node: str, on_hand: int, as_of: float = 1.0):
    return p.handle(SetStock(P, sku, node, on_hand, as_of))


def hold(p: Partition, rid: str, *lines: Line, created: float = CREATED, expires: float = EXPIRES):
    return p.handle(PlaceHold(P, rid, fingerprint(lines), tuple(lines), created, expires))


def adjust(p: Partition, adj_id: str, sku: str, node: str, delta: int):
    return p.handle(AdjustStock(P, adj_id, sku, node, delta, "count"))


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
    return positions, dict(p.parts), dict(p.claims), dict(p.adjustments)


def replay(events) -> Partition:
    fresh = Partition(P)
    for event in events:
        fresh.apply(event)
    return fresh


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
    assert p.next_expiry() == EXPIRES


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
    p.handle(ConfirmPart(P, "r0", CREATED + 1))
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
    p.handle(ReleasePart(P, "r1", CREATED + 1))
    before = state(p)
    result, events = hold(p, "r1", Line("a", "n1", 4))
    assert result.outcome is HoldOutcome.REPLAYED
    assert result.part.state is PartState.RELEASED
    assert events == []
    assert state(p) == before


# --- ConfirmPart ---


def test_confirm_moves_units_from_reserved_to_committed():
    p = Partition(P)
    stock(p, "a", "n1", 10)
    stock(p, "b", "n1", 10)
    hold(p, "r1", Line("a", "n1", 4), Line("b", "n1", 1))
    result, events = p.handle(ConfirmPart(P, "r1", EXPIRES - 0.001))
    assert result.outcome is PartOutcome.CHANGED
    assert result.state is PartState.CONFIRMED
    assert result.part.state is PartState.CONFIRMED
    assert events == [PartChanged("r1", PartState.CONFIRMED, EXPIRES - 0.001)]
    assert pos(p, "a", "n1")[:3] == (10, 0, 4)
    assert pos(p, "b", "n1")[:3] == (10, 0, 1)
    assert p.view("a", "n1").available == 6


@pytest.mark.parametrize("at", [EXPIRES, EXPIRES + 0.5, EXPIRES + 1000])
def test_confirm_at_or_after_expiry_is_refused_as_expired(at):
    p = Partition(P)
    stock(p, "a", "n1", 10)
    hold(p, "r1", Line("a", "n1", 4))
    before = state(p)
    result, events = p.handle(ConfirmPart(P, "r1", at))
    assert result.outcome is PartOutcome.REFUSED
    assert result.state is PartState.EXPIRED
    assert events == []
    assert state(p) == before


def test_confirm_twice_is_replayed_without_change():
    p = Partition(P)
    stock(p, "a", "n1", 10)
    hold(p, "r1", Line("a", "n1", 4))
    p.handle(ConfirmPart(P, "r1", CREATED + 1))
    before = state(p)
    # even a retry that arrives after the expiry
    for at in (CREATED + 2, EXPIRES + 10):
        result, events = p.handle(ConfirmPart(P, "r1", at))
        assert result.outcome is PartOutcome.REPLAYED
        assert result.state is PartState.CONFIRMED
        assert events == []
    assert state(p) == before


@pytest.mark.parametrize("end", ["released", "expired"])
def test_confirm_of_ended_part_is_refused(end):
    p = Partition(P)
    stock(p, "a", "n1", 10)
    hold(p, "r1", Line("a", "n1", 4))
    if end == "released":
        p.handle(ReleasePart(P, "r1", CREATED + 1))
        expected = PartState.RELEASED
    else:
        assert p.expire_due(EXPIRES, 0.0)
        expected = PartState.EXPIRED
    before = state(p)
    result, events = p.handle(ConfirmPart(P, "r1", CREATED + 2))
    assert result.outcome is PartOutcome.REFUSED
    assert result.state is expected
    assert events == []
    assert state(p) == before


def test_confirm_release_abort_of_unknown_part_are_not_found():
    p = Partition(P)
    for command in (ConfirmPart(P, "nope", 1.0), ReleasePart(P, "nope", 1.0), AbortHold(P, "nope")):
        result, events = p.handle(command)
        assert result.outcome is PartOutcome.NOT_FOUND
        assert events == []
    assert state(p) == ({}, {}, {}, {})


# --- ReleasePart ---


def test_release_of_held_part_returns_reserved_units():
    p = Partition(P)
    stock(p, "a", "n1", 10)
    hold(p, "r1", Line("a", "n1", 4))
    result, events = p.handle(ReleasePart(P, "r1", CREATED + 1))
    assert result.outcome is PartOutcome.CHANGED
    assert result.state is PartState.RELEASED
    assert events == [PartChanged("r1", PartState.RELEASED, CREATED + 1)]
    assert pos(p, "a", "n1")[:3] == (10, 0, 0)
    assert p.parts["r1"].changed_at == CREATED + 1


def test_release_of_confirmed_part_returns_committed_units_even_after_expiry():
    p = Partition(P)
    stock(p, "a", "n1", 10)
    hold(p, "r1", Line("a", "n1", 4))
    p.handle(ConfirmPart(P, "r1", CREATED + 1))
    result, _ = p.handle(ReleasePart(P, "r1", EXPIRES + 100))
    assert result.outcome is PartOutcome.CHANGED
    assert result.state is PartState.RELEASED
    assert pos(p, "a", "n1")[:3] == (10, 0, 0)


def test_release_twice_is_replayed_without_change():
    p = Partition(P)
    stock(p, "a", "n1", 10)
    hold(p, "r1", Line("a", "n1", 4))
    p.handle(ReleasePart(P, "r1", CREATED + 1))
    before = state(p)
    result, events = p.handle(ReleasePart(P, "r1", CREATED + 2))
    assert result.outcome is PartOutcome.REPLAYED
    assert result.state is PartState.RELEASED
    assert events == []
    assert state(p) == before


@pytest.mark.parametrize("expired_by_timer", [False, True])
def test_release_of_expired_hold_is_refused(expired_by_timer):
    p = Partition(P)
    stock(p, "a", "n1", 10)
    hold(p, "r1", Line("a", "n1", 4))
    if expired_by_timer:
        p.expire_due(EXPIRES + 1, 1.0)
        assert p.parts["r1"].state is PartState.EXPIRED
    before = state(p)
    result, events = p.handle(ReleasePart(P, "r1", EXPIRES))
    assert result.outcome is PartOutcome.REFUSED
    assert result.state is PartState.EXPIRED
    assert events == []
    assert state(p) == before


# --- AbortHold ---


def test_abort_removes_held_part_and_returns_its_units():
    p = Partition(P)
    stock(p, "a", "n1", 10)
    hold(p, "r1", Line("a", "n1", 4))
    result, events = p.handle(AbortHold(P, "r1"))
    assert result.outcome is PartOutcome.CHANGED
    assert events == [HoldAborted("r1")]
    assert "r1" not in p.parts
    assert pos(p, "a", "n1")[:3] == (10, 0, 0)
    assert p.check() == []


@pytest.mark.parametrize("end", ["confirmed", "released", "expired"])
def test_abort_of_non_held_part_is_a_no_op(end):
    p = Partition(P)
    stock(p, "a", "n1", 10)
    hold(p, "r1", Line("a", "n1", 4))
    if end == "confirmed":
        p.handle(ConfirmPart(P, "r1", CREATED + 1))
    elif end == "released":
        p.handle(ReleasePart(P, "r1", CREATED + 1))
    else:
        p.expire_due(EXPIRES, 0.0)
    before = state(p)
    result, events = p.handle(AbortHold(P, "r1"))
    assert result.outcome is PartOutcome.NOT_FOUND
    assert events == []
    assert state(p) == before


def test_aborted_id_can_be_held_again_and_expires_on_its_new_expiry():
    p = Partition(P)
    stock(p, "a", "n1", 10)
    hold(p, "r1", Line("a", "n1", 4), expires=EXPIRES)
    p.handle(AbortHold(P, "r1"))
    result, _ = hold(p, "r1", Line("a", "n1", 6), expires=EXPIRES + 50)
    assert result.outcome is HoldOutcome.PLACED
    # the first placement's timer must not expire the second placement
    assert p.expire_due(EXPIRES + 10, 0.0) == []
    assert p.parts["r1"].state is PartState.HELD
    assert pos(p, "a", "n1")[:3] == (10, 6, 0)
    assert p.expire_due(EXPIRES + 50, 0.0) == [PartChanged("r1", PartState.EXPIRED, EXPIRES + 50)]
    assert pos(p, "a", "n1")[:3] == (10, 0, 0)


# --- expire_due ---


def test_expire_due_waits_for_the_grace_then_returns_units():
    p = Partition(P)
    stock(p, "a", "n1", 10)
    hold(p, "r1", Line("a", "n1", 4))
    assert p.expire_due(EXPIRES + 4.999, 5.0) == []
    assert p.parts["r1"].state is PartState.HELD
    assert pos(p, "a", "n1")[:3] == (10, 4, 0)
    events = p.expire_due(EXPIRES + 5.0, 5.0)
    assert events == [PartChanged("r1", PartState.EXPIRED, EXPIRES)]
    assert p.parts["r1"].state is PartState.EXPIRED
    assert p.parts["r1"].changed_at == EXPIRES
    assert pos(p, "a", "n1")[:3] == (10, 0, 0)
    assert p.expire_due(EXPIRES + 100, 5.0) == []
    assert p.next_expiry() is None


def test_expire_due_expires_only_due_holds_and_skips_ended_ones():
    p = Partition(P)
    stock(p, "a", "n1", 100)
    hold(p, "early", Line("a", "n1", 1), expires=110.0)
    hold(p, "confirmed", Line("a", "n1", 2), expires=120.0)
    hold(p, "released", Line("a", "n1", 4), expires=130.0)
    hold(p, "late", Line("a", "n1", 8), expires=200.0)
    hold(p, "mid", Line("a", "n1", 16), expires=140.0)
    p.handle(ConfirmPart(P, "confirmed", 105.0))
    p.handle(ReleasePart(P, "released", 105.0))
    events = p.expire_due(150.0, 0.0)
    assert events == [
        PartChanged("early", PartState.EXPIRED, 110.0),
        PartChanged("mid", PartState.EXPIRED, 140.0),
    ]
    assert {rid: part.state for rid, part in p.parts.items()} == {
        "early": PartState.EXPIRED,
        "confirmed": PartState.CONFIRMED,
        "released": PartState.RELEASED,
        "late": PartState.HELD,
        "mid": PartState.EXPIRED,
    }
    assert pos(p, "a", "n1")[:3] == (100, 8, 2)
    assert p.next_expiry() == 200.0
    assert p.check() == []


# --- claims ---


def test_record_claim_then_same_fingerprint_exists_and_other_conflicts():
    p = Partition(P)
    result, events = p.handle(RecordClaim(P, "r1", "fp1", (1, 2), 10.0))
    assert result.outcome is ClaimOutcome.RECORDED
    assert result.claim == Claim("r1", "fp1", (1, 2), 10.0)
    assert len(events) == 1
    before = state(p)
    result, events = p.handle(RecordClaim(P, "r1", "fp1", (1, 2), 11.0))
    assert (result.outcome, result.claim, events) == (
        ClaimOutcome.EXISTS,
        Claim("r1", "fp1", (1, 2), 10.0),
        [],
    )
    result, events = p.handle(RecordClaim(P, "r1", "fp2", (1,), 12.0))
    assert (result.outcome, result.claim, events) == (
        ClaimOutcome.CONFLICT,
        Claim("r1", "fp1", (1, 2), 10.0),
        [],
    )
    assert state(p) == before


def test_get_and_drop_claim():
    p = Partition(P)
    assert p.handle(GetClaim(P, "r1"))[0].outcome is ClaimOutcome.NOT_FOUND
    not_found, events = p.handle(DropClaim(P, "r1"))
    assert (not_found.outcome, events) == (ClaimOutcome.NOT_FOUND, [])
    p.handle(RecordClaim(P, "r1", "fp1", (1,), 10.0))
    found, _ = p.handle(GetClaim(P, "r1"))
    assert (found.outcome, found.claim) == (ClaimOutcome.FOUND, Claim("r1", "fp1", (1,), 10.0))
    dropped, events = p.handle(DropClaim(P, "r1"))
    assert dropped.outcome is ClaimOutcome.DROPPED
    assert len(events) == 1
    assert p.claims == {}
    assert p.handle(GetClaim(P, "r1"))[0].outcome is ClaimOutcome.NOT_FOUND
    # a dropped id may be claimed again, even with another fingerprint
    assert p.handle(RecordClaim(P, "r1", "fp2", (1,), 20.0))[0].outcome is ClaimOutcome.RECORDED


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


# --- recovery: replay and restore ---


def _busy_partition() -> tuple[Partition, list]:
    """A partition that went through every kind of event; returns it and its events."""
    p = Partition(P)
    log: list = []

    def run(command):
        result, events = p.handle(command)
        log.extend(events)
        return result

    run(SetStock(P, "a", "n1", 20, 1.0))
    run(SetStock(P, "a", "n2", 5, 1.0))
    run(SetStock(P, "b", "n1", 9, 1.0))
    run(SetStock(P, "a", "n1", 99, 0.5))  # stale
    run(AdjustStock(P, "adj1", "a", "n1", -2))
    run(AdjustStock(P, "adj1", "a", "n1", -2))  # replayed
    run(AdjustStock(P, "adj2", "b", "n1", -100))  # refused
    run(RecordClaim(P, "r1", "fp", (P,), 100.0))
    run(RecordClaim(P, "r9", "fp", (P,), 100.0))
    run(DropClaim(P, "r9"))
    lines = (Line("a", "n1", 3), Line("b", "n1", 2))
    run(PlaceHold(P, "r1", fingerprint(lines), lines, 100.0, 160.0))
    run(PlaceHold(P, "r2", "fp2", (Line("a", "n2", 5),), 100.0, 130.0))
    run(PlaceHold(P, "r3", "fp3", (Line("a", "n1", 1),), 100.0, 200.0))
    run(PlaceHold(P, "r4", "fp4", (Line("b", "n1", 4),), 100.0, 300.0))
    run(PlaceHold(P, "r5", "fp5", (Line("a", "n1", 6),), 100.0, 400.0))
    run(PlaceHold(P, "r6", "fp6", (Line("a", "n1", 1),), 100.0, 500.0))
    run(ConfirmPart(P, "r1", 120.0))
    run(ReleasePart(P, "r3", 121.0))
    run(ConfirmPart(P, "r4", 122.0))
    run(ReleasePart(P, "r4", 123.0))
    run(AbortHold(P, "r5"))
    log.extend(p.expire_due(140.0, 5.0))  # expires r2
    run(SetStock(P, "a", "n1", 15, 2.0))
    run(PlaceHold(P, "r7", "fp7", (Line("a", "n1", 2), Line("b", "n1", 1)), 150.0, 600.0))
    run(ExtendPart(P, "r7", 900.0, 151.0))
    run(ConfirmPart(P, "r7", 152.0))
    run(CloseLines(P, "r7", "cancel-1", "cancelled", (Line("a", "n1", 1),), 153.0))
    run(CloseLines(P, "r7", "ship-1", "fulfilled", (Line("a", "n1", 1), Line("b", "n1", 1)), 154.0))
    return p, log


def test_replaying_events_rebuilds_identical_state():
    live, log = _busy_partition()
    # the scenario really covers every kind of event and every part state
    kinds = {type(e).__name__ for e in log}
    assert kinds == {
        "LevelsSet",
        "StockAdjusted",
        "HoldPlaced",
        "PartChanged",
        "HoldAborted",
        "ClaimRecorded",
        "ClaimDropped",
        "HoldExtended",
        "LinesClosed",
    }
    assert {part.state for part in live.parts.values()} == set(PartState)
    rebuilt = replay(log)
    assert state(rebuilt) == state(live)
    assert sorted(rebuilt.levels().rows()) == sorted(live.levels().rows())
    assert rebuilt.parts == live.parts
    assert rebuilt.claims == live.claims
    assert rebuilt.adjustments == live.adjustments
    assert rebuilt.check() == [] == live.check()
    # and the rebuilt partition goes on exactly like the live one
    assert rebuilt.next_expiry() is not None
    assert (
        rebuilt.expire_due(1000.0, 5.0)
        == live.expire_due(1000.0, 5.0)
        == [PartChanged("r6", PartState.EXPIRED, 500.0)]
    )
    assert state(rebuilt) == state(live)


def test_replay_remembers_adjustment_ids():
    _, log = _busy_partition()
    rebuilt = replay(log)
    result, events = rebuilt.handle(AdjustStock(P, "adj1", "a", "n1", -2))
    assert (result.outcome, events) == (AdjustOutcome.REPLAYED, [])
    result, _ = rebuilt.handle(AdjustStock(P, "adj1", "a", "n1", -3))
    assert result.outcome is AdjustOutcome.CONFLICT


def test_restore_recomputes_reserved_and_committed_from_parts():
    p = Partition(P)
    parts = [
        Part("h1", "f", (Line("a", "n1", 2), Line("b", "n1", 1)), PartState.HELD, 100.0, 160.0),
        Part("h2", "f", (Line("a", "n1", 3),), PartState.HELD, 100.0, 170.0),
        Part("c1", "f", (Line("a", "n1", 4),), PartState.CONFIRMED, 100.0, 160.0, 110.0),
        Part("x1", "f", (Line("a", "n1", 50),), PartState.RELEASED, 100.0, 160.0, 110.0),
        Part("x2", "f", (Line("b", "n1", 50),), PartState.EXPIRED, 100.0, 150.0, 150.0),
    ]
    claims = [Claim("h1", "f", (P,), 100.0)]
    adjustments = [StockAdjusted("adj1", "a", "n1", 5, "count")]
    p.restore(
        LevelColumns.of([("a", "n1", 20, 7.0, 0, 0), ("b", "n1", 3, 8.0, 0, 0)]), parts, claims, adjustments
    )
    assert pos(p, "a", "n1") == (20, 5, 4, 7.0)
    assert pos(p, "b", "n1") == (3, 1, 0, 8.0)
    assert p.parts == {part.reservation_id: part for part in parts}
    assert p.claims == {"h1": claims[0]}
    assert p.check() == []
    assert adjust(p, "adj1", "a", "n1", 5)[0].outcome is AdjustOutcome.REPLAYED
    # restored HELD parts are timed again; nothing else is
    assert p.next_expiry() == 160.0
    assert p.expire_due(170.0, 0.0) == [
        PartChanged("h1", PartState.EXPIRED, 160.0),
        PartChanged("h2", PartState.EXPIRED, 170.0),
    ]
    assert pos(p, "a", "n1") == (20, 0, 4, 7.0)


def test_restore_from_a_dump_of_a_live_partition_equals_it():
    live, _ = _busy_partition()
    dump = (
        live.levels(),
        list(live.parts.values()),
        list(live.claims.values()),
        list(live.adjustments.values()),
    )
    restored = Partition(P)
    restored.restore(*dump)
    assert state(restored) == state(live)
    assert restored.expire_due(1000.0, 5.0) == live.expire_due(1000.0, 5.0)
    assert state(restored) == state(live)


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
    p.handle(ReleasePart(P, "r1", CREATED + 1))
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
