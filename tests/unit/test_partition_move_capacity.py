"""A partition's part of sourcing and reassignment: daily capacity counted with the holds,
and a line moved to another node in one step."""

from __future__ import annotations

from omnistock.availability.atp import ChannelLimit
from omnistock.reservations.domain.commands import (
    CapacityResult,
    CarryStep,
    CloseLines,
    HoldOutcome,
    MoveLine,
    PartOutcome,
    PlaceHold,
    ReadCapacity,
    RecordClaim,
    SetStock,
)
from omnistock.reservations.domain.model import Event, Follow, Line, PartState, Withdraw, fingerprint, utc_day
from omnistock.reservations.domain.partition import Partition
from omnistock.reservations.domain.sourcing import Destination, LineSourcing, NodeVerdict
from omnistock.reservations.shard.codec import decode_entry, decode_snapshot, encode_entry, encode_snapshot

P = 1
NOW = 1_800_000_000.0
DAY = utc_day(NOW)


def partition_with_stock() -> Partition:
    p = Partition(P)
    for node, units in (("DC-1", 10), ("DC-2", 4)):
        p.handle(SetStock(P, "SKU", node, units, 1.0))
    return p


def hold(p: Partition, rid: str, *lines: Line, capacity: tuple[tuple[str, int, int], ...] = ()):
    command = PlaceHold(
        P, rid, fingerprint(lines), tuple(lines), NOW, NOW + 600, capacity=capacity, attempt=f"a-{rid}"
    )
    return p.handle(command)


def take(p: Partition, rid: str, state: PartState, at: float):
    """The part takes a step its home decided at `at` (the part never decides one itself)."""
    return p.handle(CarryStep(P, rid, Follow(state, at, NOW + 600)), at)


def used(p: Partition, *nodes: str) -> dict[str, int]:
    result, _ = p.handle(ReadCapacity(P, DAY, nodes))
    assert isinstance(result, CapacityResult)
    return dict(result.used)


def test_a_node_takes_no_more_orders_than_its_daily_capacity() -> None:
    p = partition_with_stock()
    assert hold(p, "r1", capacity=(("DC-1", DAY, 2),))[0].outcome is HoldOutcome.PLACED
    assert hold(p, "r2", capacity=(("DC-1", DAY, 2),))[0].outcome is HoldOutcome.PLACED
    refused, events = hold(p, "r3", capacity=(("DC-1", DAY, 2),))
    assert refused.outcome is HoldOutcome.FULL and refused.full == ("DC-1",)
    assert events == [] and "r3" not in p.parts
    assert used(p, "DC-1", "DC-2") == {"DC-1": 2, "DC-2": 0}
    # Another day is another count.
    assert p.handle(ReadCapacity(P, DAY + 1, ("DC-1",)))[0] == CapacityResult((("DC-1", 0),))


def test_released_expired_and_withdrawn_orders_give_capacity_back_fulfilled_ones_do_not() -> None:
    p = partition_with_stock()
    cap = (("DC-1", DAY, 10),)
    hold(p, "released", Line("SKU", "DC-1", 1), capacity=cap)
    hold(p, "withdrawn", capacity=cap)
    hold(p, "expired", capacity=cap)
    hold(p, "shipped", Line("SKU", "DC-1", 1), capacity=cap)
    assert used(p, "DC-1") == {"DC-1": 4}
    take(p, "shipped", PartState.CONFIRMED, NOW + 1)
    take(p, "released", PartState.RELEASED, NOW + 1)
    p.handle(CarryStep(P, "withdrawn", Withdraw("a-withdrawn", NOW + 660)))
    assert "withdrawn" not in p.parts
    assert p.expire_due(NOW + 700) == [] and used(p, "DC-1") == {"DC-1": 2}  # no part expires on its own
    take(p, "expired", PartState.EXPIRED, NOW + 600)
    assert p.parts["expired"].state is PartState.EXPIRED
    assert used(p, "DC-1") == {"DC-1": 1}
    p.handle(CloseLines(P, "shipped", "f1", "fulfilled", (Line("SKU", "DC-1", 1),), NOW + 2))
    assert p.parts["shipped"].state is PartState.FULFILLED
    assert used(p, "DC-1") == {"DC-1": 1}
    assert p.check() == []


def test_capacity_survives_replay_and_snapshots() -> None:
    live, log = partition_with_stock(), []
    for rid in ("a", "b", "c"):
        log += hold(live, rid, capacity=(("DC-2", DAY, 5),))[1]
    log += take(live, "b", PartState.RELEASED, NOW + 1)[1]
    replayed = partition_with_stock()
    for event in decode_entry(encode_entry(log)):
        replayed.apply(event)
    restored, _ = decode_snapshot(encode_snapshot(live, "1-0"))
    for p in (replayed, restored):
        assert used(p, "DC-2") == {"DC-2": 2}
        assert p.check() == []


def test_move_line_holds_the_new_node_and_frees_the_old_in_one_step() -> None:
    p = partition_with_stock()
    hold(p, "r", Line("SKU", "DC-1", 3))
    take(p, "r", PartState.CONFIRMED, NOW + 1)
    result, events = p.handle(MoveLine(P, "r", "m1", "SKU", "DC-1", "DC-2", NOW + 2))
    assert result.outcome is PartOutcome.CHANGED and len(events) == 1
    assert p.parts["r"].lines == (Line("SKU", "DC-2", 3),)
    assert (p.view("SKU", "DC-1").committed, p.view("SKU", "DC-2").committed) == (0, 3)
    assert p.parts["r"].history[-1][0] == "moved"
    # A retry is a replay; the same id with another move is refused.
    again, events = p.handle(MoveLine(P, "r", "m1", "SKU", "DC-1", "DC-2", NOW + 3))
    assert again.outcome is PartOutcome.REPLAYED and events == []
    other, _ = p.handle(MoveLine(P, "r", "m1", "SKU", "DC-2", "DC-1", NOW + 3))
    assert other.outcome is PartOutcome.REFUSED and "other content" in other.reason
    assert p.check() == []


def test_move_line_is_refused_and_changes_nothing_when_the_new_node_cannot_take_it() -> None:
    p = partition_with_stock()
    hold(p, "r", Line("SKU", "DC-1", 5))
    before = (p.view("SKU", "DC-1"), p.view("SKU", "DC-2"), p.parts["r"])
    result, events = p.handle(MoveLine(P, "r", "m1", "SKU", "DC-1", "DC-2", NOW + 1))
    assert result.outcome is PartOutcome.REFUSED and events == []
    assert result.reason == "SKU at DC-2: 4 promisable, the line needs 5"
    assert (p.view("SKU", "DC-1"), p.view("SKU", "DC-2"), p.parts["r"]) == before


def test_move_line_respects_the_channel_at_the_new_node() -> None:
    p = partition_with_stock()
    lines = (Line("SKU", "DC-1", 2),)
    p.handle(PlaceHold(P, "r", fingerprint(lines), lines, NOW, NOW + 600, "web", (ChannelLimit(),)))
    safety = ChannelLimit(safety_units=3)  # DC-2 has 4: web may take 1 there
    refused, _ = p.handle(MoveLine(P, "r", "m1", "SKU", "DC-1", "DC-2", NOW + 1, safety))
    assert refused.outcome is PartOutcome.REFUSED and "1 promisable" in refused.reason
    moved, _ = p.handle(MoveLine(P, "r", "m2", "SKU", "DC-1", "DC-2", NOW + 1, ChannelLimit()))
    assert moved.outcome is PartOutcome.CHANGED
    assert p.view("SKU", "DC-2").by_channel == (("web", 2),)


def test_move_line_refuses_closed_unknown_and_duplicate_lines() -> None:
    p = partition_with_stock()
    hold(p, "r", Line("SKU", "DC-1", 1), Line("SKU", "DC-2", 1))
    cases = {
        ("SKU", "DC-3", "DC-1"): "SKU at DC-3 is not in this reservation",
        ("SKU", "DC-1", "DC-2"): "the reservation already has a line of SKU at DC-2",
    }
    for (sku, src, dst), reason in cases.items():
        result, events = p.handle(MoveLine(P, "r", f"{src}>{dst}", sku, src, dst, NOW + 1))
        assert (result.outcome, result.reason, events) == (PartOutcome.REFUSED, reason, [])
    take(p, "r", PartState.RELEASED, NOW + 1)
    result, _ = p.handle(MoveLine(P, "r", "late", "SKU", "DC-1", "DC-3", NOW + 2))
    assert result.outcome is PartOutcome.REFUSED and result.state is PartState.RELEASED


def test_moving_a_partly_fulfilled_line_moves_only_its_open_units() -> None:
    p = partition_with_stock()
    hold(p, "r", Line("SKU", "DC-1", 3))
    take(p, "r", PartState.CONFIRMED, NOW + 1)
    p.handle(CloseLines(P, "r", "f1", "fulfilled", (Line("SKU", "DC-1", 1),), NOW + 2))
    log: list[Event] = []
    log += p.handle(MoveLine(P, "r", "m1", "SKU", "DC-1", "DC-2", NOW + 3))[1]
    part = p.parts["r"]
    assert part.lines == (Line("SKU", "DC-1", 1), Line("SKU", "DC-2", 2))
    assert (part.fulfilled, part.open_units(0), part.open_units(1)) == ((1, 0), 0, 2)
    assert (p.view("SKU", "DC-1").committed, p.view("SKU", "DC-2").committed) == (0, 2)
    assert p.view("SKU", "DC-1").on_hand == 9
    assert p.check() == []
    restored, _ = decode_snapshot(encode_snapshot(p, "1-0"))
    assert restored.parts["r"] == part and restored.check() == []
    (moved,) = decode_entry(encode_entry(log))
    assert moved == log[0]


def test_a_claim_keeps_the_sourcing_explanation_and_destination() -> None:
    p = Partition(P)
    why = (
        LineSourcing(
            "SKU",
            2,
            ("channel web's nodes", "nearest"),
            (NodeVerdict("DC-1", 2, "chosen: 1.0 km", 1.0), NodeVerdict("DC-2", 0, "lost on nearest", None)),
            omitted=3,
        ),
    )
    where = Destination(51.5, -0.1)
    _, events = p.handle(RecordClaim(P, "r", "fp", (1, 2), NOW, why, where))
    for restored in (
        decode_snapshot(encode_snapshot(p, "1-0"))[0].claims["r"],
        decode_entry(encode_entry(events))[0],
    ):
        assert (restored.sourcing, restored.destination) == (why, where)


def test_a_retry_of_a_sourced_move_replays_wherever_the_line_went() -> None:
    p = partition_with_stock()
    hold(p, "r", Line("SKU", "DC-1", 2))
    p.handle(MoveLine(P, "r", "m1", "SKU", "DC-1", "DC-2", NOW + 1))
    # The retry does not know where the first attempt sent the line: it names no node.
    retry, events = p.handle(MoveLine(P, "r", "m1", "SKU", "DC-1", "", NOW + 2))
    assert retry.outcome is PartOutcome.REPLAYED and events == []
    other, _ = p.handle(MoveLine(P, "r", "m2", "SKU", "DC-1", "", NOW + 2))
    assert other.outcome is PartOutcome.REFUSED and other.reason == "SKU at DC-1 is not in this reservation"
    nowhere, _ = p.handle(MoveLine(P, "r", "m3", "SKU", "DC-2", "", NOW + 2))
    assert nowhere.outcome is PartOutcome.REFUSED and nowhere.reason.startswith("name the node")
    assert p.parts["r"].lines == (Line("SKU", "DC-2", 2),)
