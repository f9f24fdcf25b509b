"""Purchase limits in the partition: counted over a customer's open parts, atomically with the hold."""

from __future__ import annotations

from omnistock.reservations.domain.commands import CarryStep, HoldOutcome, PlaceHold, SetStock
from omnistock.reservations.domain.model import Follow, Line, PartState, Withdraw, fingerprint
from omnistock.reservations.domain.partition import Partition
from omnistock.reservations.shard.codec import decode_entry, decode_snapshot, encode_entry, encode_snapshot

P = 0


def hold(p: Partition, rid: str, customer: str, *lines: Line, limit: int = 2) -> HoldOutcome:
    skus = sorted({line.sku for line in lines})
    command = PlaceHold(
        P,
        rid,
        fingerprint(lines, "", customer),
        lines,
        0.0,
        100.0,
        customer=customer,
        purchase_limits=tuple((sku, limit) for sku in skus if sku == "drop"),
        attempt=f"a-{rid}",
    )
    result, _ = p.handle(command)
    return result.outcome


def take(p: Partition, rid: str, state: PartState, at: float, expires: float = 100.0, version: int = 0):
    """The part takes a step its home decided at `at`, as its decision number `version`."""
    return p.handle(CarryStep(P, rid, Follow(state, at, expires, version)), at)


def stocked() -> Partition:
    p = Partition(P)
    for node in ("n1", "n2"):
        p.handle(SetStock(P, "drop", node, 50, 1.0))
    return p


def test_the_limit_counts_every_open_part_of_the_customer_across_nodes() -> None:
    p = stocked()
    assert hold(p, "r1", "alice", Line("drop", "n1", 1)) is HoldOutcome.PLACED
    assert hold(p, "r2", "alice", Line("drop", "n2", 1)) is HoldOutcome.PLACED
    before = (dict(p.customer_units), p.view("drop", "n1"))
    result, events = p.handle(
        PlaceHold(
            P,
            "r3",
            "f",
            (Line("drop", "n1", 1),),
            0.0,
            100.0,
            customer="alice",
            purchase_limits=(("drop", 2),),
        )
    )
    assert result.outcome is HoldOutcome.OVER_LIMIT and events == []
    assert [(o.sku, o.limit, o.held, o.requested) for o in result.over_limit] == [("drop", 2, 2, 1)]
    assert (dict(p.customer_units), p.view("drop", "n1")) == before
    assert hold(p, "r4", "bob", Line("drop", "n1", 2)) is HoldOutcome.PLACED  # others are not affected


def test_two_lines_of_one_hold_are_summed_and_a_release_gives_the_allowance_back() -> None:
    p = stocked()
    assert hold(p, "r1", "alice", Line("drop", "n1", 2), Line("drop", "n2", 1)) is HoldOutcome.OVER_LIMIT
    assert hold(p, "r2", "alice", Line("drop", "n1", 2)) is HoldOutcome.PLACED
    take(p, "r2", PartState.RELEASED, 1.0)
    assert p.parts["r2"].state is PartState.RELEASED
    assert p.customer_units == {}
    assert hold(p, "r3", "alice", Line("drop", "n2", 2)) is HoldOutcome.PLACED
    assert p.check() == []


def test_expired_and_withdrawn_parts_give_the_allowance_back_and_confirmed_ones_keep_it() -> None:
    p = stocked()
    assert hold(p, "r1", "alice", Line("drop", "n1", 1)) is HoldOutcome.PLACED
    assert hold(p, "r2", "alice", Line("drop", "n2", 1)) is HoldOutcome.PLACED
    take(p, "r1", PartState.CONFIRMED, 1.0)
    assert p.customer_units == {("drop", "alice"): 2}
    assert hold(p, "r3", "alice", Line("drop", "n1", 1)) is HoldOutcome.OVER_LIMIT
    take(p, "r2", PartState.EXPIRED, 100.0)
    assert p.customer_units == {("drop", "alice"): 1}
    assert hold(p, "r3", "alice", Line("drop", "n1", 1)) is HoldOutcome.PLACED
    p.handle(CarryStep(P, "r3", Withdraw("a-r3", 160.0)))
    assert "r3" not in p.parts and p.customer_units == {("drop", "alice"): 1}
    assert p.check() == []


def test_replay_and_snapshots_keep_the_customer() -> None:
    live = stocked()
    log = []
    for rid, customer in (("r1", "alice"), ("r2", "bob")):
        command = PlaceHold(
            P,
            rid,
            "f" + rid,
            (Line("drop", "n1", 1),),
            0.0,
            100.0,
            customer=customer,
            purchase_limits=(("drop", 2),),
        )
        log.extend(live.handle(command)[1])
    replayed = stocked()
    for event in decode_entry(encode_entry(log)):
        replayed.apply(event)
    assert replayed.customer_units == live.customer_units == {("drop", "alice"): 1, ("drop", "bob"): 1}
    restored, _ = decode_snapshot(encode_snapshot(live, "1-0"))
    assert restored.customer_units == live.customer_units
    assert restored.parts["r1"].customer == "alice"
    assert restored.check() == []


def test_history_records_every_transition_and_survives_replay_and_snapshots() -> None:
    live = stocked()
    log = []
    log += live.handle(PlaceHold(P, "h", "f", (Line("drop", "n1", 1),), 10.0, 100.0))[1]
    log += take(live, "h", PartState.HELD, 20.0, expires=200.0, version=2)[1]  # extended
    log += take(live, "h", PartState.CONFIRMED, 30.0, expires=200.0, version=3)[1]
    expected = (("held", 10.0, ""), ("extended", 20.0, ""), ("confirmed", 30.0, ""))
    assert live.parts["h"].history == expected
    replayed = stocked()
    for event in decode_entry(encode_entry(log)):
        replayed.apply(event)
    assert replayed.parts["h"].history == expected
    restored, _ = decode_snapshot(encode_snapshot(live, "1-0"))
    assert restored.parts["h"].history == expected
