"""A whole Reserve sent to one shard (ReserveTogether): the same steps, answered in one word."""

from __future__ import annotations

from omnistock.availability.atp import ChannelLimit
from omnistock.reservations.domain.commands import (
    ClaimOutcome,
    ClaimResult,
    DecisionResult,
    HoldOutcome,
    HoldResult,
    ReserveTogether,
    ReserveTogetherResult,
    SetStock,
)
from omnistock.reservations.domain.model import Decision, Line, fingerprint
from omnistock.reservations.domain.partition import Partition
from omnistock.reservations.domain.reservation_view import fresh_hold, merge
from omnistock.reservations.shard.state import ShardState, WrongShard

NOW = 1_000.0


def plan(rid: str, lines: list[tuple[str, str, int, int]], **fields: object) -> ReserveTogether:
    """lines: (sku, node, quantity, partition)."""
    held = tuple(Line(sku, node, quantity) for sku, node, quantity, _ in lines)
    settings: dict[str, object] = {"by": "key:web"} | fields
    return ReserveTogether(
        0,
        rid,
        fingerprint(held, str(settings.get("channel", "")), str(settings.get("customer", ""))),
        held,
        tuple(p for *_, p in lines),
        NOW,
        NOW + 600,
        f"{rid}-attempt",
        **settings,  # type: ignore[arg-type]
    )


def stocked(partitions: tuple[int, ...] = (0, 1, 2)) -> ShardState:
    state = ShardState((Partition(n) for n in partitions), epoch="t")
    levels = [SetStock(n, f"SKU-{n}", node, 10, 0.0) for n in partitions for node in ("DC-1", "DC-2")]
    state.apply_batch(levels, NOW)
    return state


def test_a_fresh_hold_reads_as_merging_its_parts_and_record_would() -> None:
    limit = ChannelLimit(safety_units=1)
    cases = [
        plan("r-1", [("SKU-1", "DC-1", 2, 1)]),
        plan(
            "r-2",
            [("SKU-2", "DC-2", 1, 2), ("SKU-1", "DC-2", 3, 1), ("SKU-1", "DC-1", 1, 1)],
            channel="web",
            limits=(limit, limit, limit),
            customer="c-9",
            purchase_limits=(("SKU-1", 5),),
        ),
    ]
    for together in cases:
        state = stocked()
        claimed, *placed, decided = state.apply_batch(together.steps(), NOW).results
        assert isinstance(claimed, ClaimResult) and claimed.outcome is ClaimOutcome.RECORDED
        assert isinstance(decided, DecisionResult) and decided.decision is Decision.HELD
        parts = [r.part for r in placed if isinstance(r, HoldResult) and r.part is not None]
        assert fresh_hold(together) == merge(together.reservation_id, parts, decided.claim, Decision.HELD)


def test_one_shard_takes_the_steps_in_a_row_and_answers_a_fresh_hold_in_one_word() -> None:
    state = stocked()
    together = plan("r-3", [("SKU-1", "DC-1", 2, 1), ("SKU-2", "DC-1", 1, 2)])
    (answer,) = state.apply_batch([together], NOW).results
    assert answer == ReserveTogetherResult(True)
    assert (
        state.partitions[1].view("SKU-1", "DC-1").reserved,
        state.partitions[0].claims["r-3"].decision,
    ) == (
        2,
        Decision.HELD,
    )
    # The same Reserve again (a retry) is a replay: the steps' answers say so, nothing changes.
    (again,) = state.apply_batch([together], NOW).results
    assert isinstance(again, ReserveTogetherResult) and not again.held
    claimed = again.steps[0]
    assert isinstance(claimed, ClaimResult) and claimed.outcome is ClaimOutcome.EXISTS
    assert state.partitions[1].view("SKU-1", "DC-1").reserved == 2


def test_a_short_line_refuses_the_whole_reserve_with_the_steps_answers() -> None:
    state = stocked()
    (answer,) = state.apply_batch(
        [plan("r-4", [("SKU-1", "DC-1", 1, 1), ("SKU-2", "DC-1", 99, 2)])], NOW
    ).results
    assert isinstance(answer, ReserveTogetherResult) and not answer.held
    outcomes = [r.outcome for r in answer.steps if isinstance(r, HoldResult)]
    assert outcomes == [HoldOutcome.PLACED, HoldOutcome.SHORT]
    assert state.partitions[1].view("SKU-1", "DC-1").reserved == 0  # withdrawn with the abort


def test_a_partition_not_in_the_shard_applies_nothing() -> None:
    state = stocked((0, 1))
    (answer,) = state.apply_batch(
        [plan("r-5", [("SKU-1", "DC-1", 1, 1), ("SKU-2", "DC-1", 1, 2)])], NOW
    ).results
    assert answer == WrongShard(2)
    assert "r-5" not in state.partitions[0].claims and state.partitions[1].view("SKU-1", "DC-1").reserved == 0


def test_parts_outside_the_home_s_write_unit_apply_nothing() -> None:
    """On Redis Cluster only one journal group is written at once: a Reserve spanning groups
    goes back to the coordinator, which takes the steps across shards."""
    state = ShardState((Partition(n) for n in (0, 1, 2)), epoch="t", write_unit=lambda p: p % 2)
    state.apply_batch([SetStock(n, f"SKU-{n}", "DC-1", 10, 0.0) for n in (0, 1, 2)], NOW)
    (answer,) = state.apply_batch(
        [plan("r-6", [("SKU-2", "DC-1", 1, 2), ("SKU-1", "DC-1", 1, 1)])], NOW
    ).results
    assert answer == WrongShard(1)
    assert "r-6" not in state.partitions[0].claims
    assert state.partitions[1].view("SKU-1", "DC-1").reserved == 0
    (same_group,) = state.apply_batch([plan("r-7", [("SKU-2", "DC-1", 1, 2)])], NOW).results
    assert same_group == ReserveTogetherResult(True)
