"""A shard's state when partitions move (release, adopt) and when its partitions are journaled
in several write units (Redis Cluster's journal groups): pure, no Redis."""

from __future__ import annotations

from omnistock.reservations.domain.commands import (
    Command,
    ConfirmReservation,
    DecideHold,
    DecisionOutcome,
    DecisionResult,
    HoldOutcome,
    HoldResult,
    PlaceHold,
    RecordClaim,
    SetStock,
)
from omnistock.reservations.domain.model import Decision, Line, PartState, fingerprint
from omnistock.reservations.domain.partition import Partition
from omnistock.reservations.shard.state import Handoff, ShardState, WrongShard

PENDING = 1.0


def stock(number: int, sku: str | None = None, units: int = 100) -> SetStock:
    return SetStock(number, sku or f"sku-{number}", "dc", units, 0.0)


def reserve(home: int, parts: tuple[int, ...], reservation_id: str, now: float, ttl: float) -> list[Command]:
    """A Reserve in one batch: recorded at its home, one unit of sku-<n> held in each part, decided."""
    attempt = f"at-{reservation_id}"
    lines = {n: (Line(f"sku-{n}", "dc", 1),) for n in parts}
    digest = fingerprint([line for n in parts for line in lines[n]])
    commands: list[Command] = [
        RecordClaim(home, reservation_id, digest, parts, now, attempt=attempt, expires_at=now + ttl)
    ]
    commands += [
        PlaceHold(n, reservation_id, digest, lines[n], now, now + ttl, attempt=attempt, home=home)
        for n in parts
    ]
    commands.append(DecideHold(home, reservation_id, attempt, placed=True))
    return commands


def shard(numbers: list[int], **options: object) -> ShardState:
    state = ShardState((Partition(n) for n in numbers), pending_seconds=PENDING, **options)  # type: ignore[arg-type]
    state.apply_batch([stock(n) for n in numbers], 0.0)
    return state


def confirm_with_a_step_elsewhere(state: ShardState, home: int, away: int) -> DecisionResult:
    """A reservation of `home` with a part in partition `away` of another shard, confirmed at
    1.0: the step for `away` is left open for a gateway to carry."""
    record, hold_home, _, decide = reserve(home, (home, away), "r", 0.0, 10.0)
    state.apply_batch([record, hold_home, decide], 0.0)
    (confirmed,) = state.apply_batch([ConfirmReservation(home, "r")], 1.0).results
    assert isinstance(confirmed, DecisionResult) and confirmed.carry is not None
    assert confirmed.carry.partitions == (away,)
    return confirmed


def test_a_released_partition_answers_wrong_shard_and_leaves_nothing_behind() -> None:
    state = shard([0, 1, 2])
    confirm_with_a_step_elsewhere(state, 0, 5)
    state.apply_batch(reserve(1, (1,), "soon", 1.0, 5.0), 1.0)
    kept = state.apply_batch([], 3.0).handoffs  # the open step, handed out once its lease ran out
    assert [(h.home, h.intent.partitions) for h in kept] == [(0, (5,))]
    released = state.release(0)
    assert released is not None and released.number == 0
    assert released.parts["r"].state is PartState.CONFIRMED  # what moves carries the hold
    later = state.apply_batch([ConfirmReservation(0, "r"), stock(1, units=5)], 6.0)
    assert later.results[0] == WrongShard(0)
    assert not isinstance(later.results[1], WrongShard)
    assert later.handoffs == []  # its open decision is the next owner's to hand out
    assert later.expired == 1 and sorted(later.events) == [1]  # partition 1's timer still runs
    assert state.next_due() is None  # partition 0 left nothing on the agenda
    assert state.release(0) is None  # twice: harmless
    assert sorted(state.partitions) == [1, 2]


def test_release_keeps_the_feed_of_the_partitions_that_stay() -> None:
    state = shard([0, 1])
    epoch, version = state.epoch, state.version
    state.apply_batch([stock(1, units=7)], 1.0)
    state.release(0)
    rows = state.changes_since(epoch, version).positions
    assert [(row.sku, row.on_hand) for row in rows] == [("sku-1", 7)]


def test_an_adopted_partition_is_on_the_feed_whole_and_its_open_decisions_handed_out() -> None:
    source = shard([0, 1])
    source.apply_batch([stock(0, "sku-other", 30)], 0.0)
    confirm_with_a_step_elsewhere(source, 0, 5)
    moved = source.release(0)
    assert moved is not None

    target = shard([2, 3])
    epoch, version = target.epoch, target.version
    target.adopt(moved)
    assert target.version > version
    rows = target.changes_since(epoch, version).positions
    assert sorted((row.sku, row.on_hand, row.committed) for row in rows) == [
        ("sku-0", 100, 1),
        ("sku-other", 30, 0),
    ]
    # The step for partition 5 that the source had handed out: the new owner hands it out at once.
    outcome = target.apply_batch([], 1.1)
    assert [(h.home, h.reservation_id, h.intent.partitions) for h in outcome.handoffs] == [(0, "r", (5,))]
    assert isinstance(outcome.handoffs[0], Handoff)
    assert 0 in target.partitions and target.check() == []


def test_an_adopted_partition_expires_its_holds_on_the_new_owner() -> None:
    source = shard([0, 1])
    source.apply_batch(reserve(0, (0,), "r", 0.0, 10.0), 0.0)
    moved = source.release(0)
    assert moved is not None
    target = shard([2])
    target.adopt(moved)
    assert target.next_due() is not None
    assert target.apply_batch([], 9.9).expired == 0
    expired = target.apply_batch([], 10.0)
    assert expired.expired == 1 and target.partitions[0].parts["r"].state is PartState.EXPIRED
    assert source.apply_batch([], 10.0).events == {}


def test_a_partition_adopted_by_its_homes_shard_has_the_step_taken_there() -> None:
    home_shard = shard([0, 1])
    part_shard = shard([4, 5])
    record, hold_0, hold_5, decide = reserve(0, (0, 5), "r", 0.0, 10.0)
    home_shard.apply_batch([record, hold_0], 0.0)
    placed = part_shard.apply_batch([hold_5], 0.0).results[0]
    assert isinstance(placed, HoldResult) and placed.outcome is HoldOutcome.PLACED
    home_shard.apply_batch([decide], 0.0)
    (confirmed,) = home_shard.apply_batch([ConfirmReservation(0, "r")], 1.0).results
    assert isinstance(confirmed, DecisionResult) and confirmed.carry is not None
    # Partition 5 moves to the home's shard before anyone carried its step.
    moved = part_shard.release(5)
    assert moved is not None
    home_shard.adopt(moved)
    outcome = home_shard.apply_batch([], 3.5)  # the lease of the first carrier is over
    assert outcome.handoffs == []  # taken here: nothing left to hand out
    assert home_shard.partitions[5].parts["r"].state is PartState.CONFIRMED
    assert home_shard.partitions[0].claims["r"].intents == ()
    assert home_shard.check() == []


def units_shard(write_unit: object) -> ShardState:
    return shard([0, 1, 2, 3], write_unit=write_unit)


def test_a_decision_carries_at_once_only_the_steps_in_its_homes_write_unit() -> None:
    state = units_shard(lambda p: p % 2)
    state.apply_batch(reserve(0, (1, 2), "r", 0.0, 10.0), 0.0)
    (decided,) = state.apply_batch([ConfirmReservation(0, "r")], 1.0).results
    assert isinstance(decided, DecisionResult) and decided.outcome is DecisionOutcome.DECIDED
    assert [number for number, _ in decided.carried] == [2]  # unit 0, as the home
    assert decided.carry is not None and decided.carry.partitions == (1,)  # unit 1: handed out
    assert state.partitions[1].parts["r"].state is PartState.HELD
    assert state.partitions[2].parts["r"].state is PartState.CONFIRMED
    # Not taken by a later batch either: a gateway carries it (its own call, its own append).
    later = state.apply_batch([], 3.5)
    assert [(h.home, h.intent.partitions) for h in later.handoffs] == [(0, (1,))]
    assert state.partitions[1].parts["r"].state is PartState.HELD
    assert state.partitions[0].claims["r"].decision is Decision.CONFIRMED


def test_with_one_write_unit_a_decision_carries_every_step_of_the_shard_at_once() -> None:
    state = units_shard(lambda p: 0)
    state.apply_batch(reserve(0, (1, 2), "r", 0.0, 10.0), 0.0)
    (decided,) = state.apply_batch([ConfirmReservation(0, "r")], 1.0).results
    assert isinstance(decided, DecisionResult) and decided.carry is None
    assert sorted(number for number, _ in decided.carried) == [1, 2]
    assert state.partitions[1].parts["r"].state is PartState.CONFIRMED
    assert state.apply_batch([], 3.5).handoffs == []
