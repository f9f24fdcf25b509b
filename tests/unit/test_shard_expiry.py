"""A shard expires holds from its agenda (when each partition's next hold is due), and
expires exactly what looking at every partition would."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from reservations.commands import ConfirmPart, ExtendPart, PlaceHold, ReleasePart, SetStock
from reservations.model import Event, Line, PartState, fingerprint
from reservations.partition import Partition
from reservations.shard import ShardState

GRACE = 1.0
PARTITIONS = 6


def stock(number: int) -> SetStock:
    return SetStock(number, f"sku-{number}", "dc", 1_000, 0.0)


def hold(number: int, reservation_id: str, now: float, ttl: float) -> PlaceHold:
    lines = (Line(f"sku-{number}", "dc", 1),)
    return PlaceHold(number, reservation_id, fingerprint(lines, ""), lines, now, now + ttl)


def expire_everywhere(partitions: dict[int, Partition], now: float) -> dict[int, list[Event]]:
    """The reference: look at every partition."""
    events = {}
    for number, partition in partitions.items():
        expired = partition.expire_due(now, GRACE)
        if expired:
            events[number] = expired
    return events


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_the_agenda_expires_what_looking_at_every_partition_would(data: st.DataObject) -> None:
    state = ShardState((Partition(n) for n in range(PARTITIONS)), GRACE)
    reference = {n: Partition(n) for n in range(PARTITIONS)}
    setup = [stock(n) for n in range(PARTITIONS)]
    state.apply_batch(setup, now=0.0)
    for command in setup:
        reference[command.partition].handle(command)
    now, placed = 0.0, []
    for step in range(data.draw(st.integers(1, 30), label="steps")):
        now += data.draw(st.sampled_from([0.0, 0.5, 1.0, 3.0, 10.0]), label="time passes")
        batch = []
        for i in range(data.draw(st.integers(0, 4), label="commands")):
            kind = data.draw(st.sampled_from(["hold", "hold", "extend", "confirm", "release"]))
            if kind == "hold" or not placed:
                number = data.draw(st.integers(0, PARTITIONS - 1))
                ttl = data.draw(st.sampled_from([0.5, 2.0, 5.0, 30.0]))
                batch.append(hold(number, f"r{step}-{i}", now, ttl))
                placed.append((number, f"r{step}-{i}"))
                continue
            number, reservation_id = data.draw(st.sampled_from(placed))
            if kind == "extend":  # earlier or later than it was
                expires_at = now + data.draw(st.sampled_from([0.5, 4.0, 40.0]))
                batch.append(ExtendPart(number, reservation_id, expires_at, now))
            elif kind == "confirm":
                batch.append(ConfirmPart(number, reservation_id, now))
            else:
                batch.append(ReleasePart(number, reservation_id, now))
        if data.draw(st.booleans(), label="the timer runs"):
            assert state.expire_due(now) == expire_everywhere(reference, now)
        outcome = state.apply_batch(batch, now)
        expected = expire_everywhere(reference, now)
        for command in batch:
            _, events = reference[command.partition].handle(command)
            if events:
                expected.setdefault(command.partition, []).extend(events)
        assert outcome.events == expected
    late = now + 100
    assert state.expire_due(late) == expire_everywhere(reference, late)
    for number in range(PARTITIONS):
        assert state.partitions[number].parts == reference[number].parts
        assert state.partitions[number].next_expiry() is None


def test_a_batch_expires_only_partitions_with_a_hold_due() -> None:
    state = ShardState((Partition(n) for n in range(PARTITIONS)), GRACE)
    state.apply_batch([stock(n) for n in range(PARTITIONS)], now=0.0)
    state.apply_batch([hold(1, "soon", 0.0, 10.0), hold(4, "later", 0.0, 60.0)], now=0.0)
    assert state.apply_batch([], now=10.5).events == {}  # due, but inside the grace
    assert list(state.apply_batch([], now=11.0).events) == [1]
    assert state.partitions[1].parts["soon"].state is PartState.EXPIRED
    assert state.partitions[4].parts["later"].state is PartState.HELD


def test_a_hold_extended_past_its_old_expiry_expires_at_the_new_one() -> None:
    state = ShardState((Partition(n) for n in range(PARTITIONS)), GRACE)
    state.apply_batch([stock(2), hold(2, "r", 0.0, 10.0)], now=0.0)
    state.apply_batch([ExtendPart(2, "r", 100.0, 5.0)], now=5.0)
    assert state.expire_due(50.0) == {}
    assert state.partitions[2].parts["r"].state is PartState.HELD
    assert list(state.expire_due(101.0)) == [2]


def test_holds_recovered_into_a_new_shard_state_are_on_its_agenda() -> None:
    partitions = [Partition(n) for n in range(PARTITIONS)]
    before = ShardState(partitions, GRACE)
    before.apply_batch([stock(3), hold(3, "r", 0.0, 10.0)], now=0.0)
    after = ShardState(partitions, GRACE)  # a restart: the same partitions, recovered
    assert list(after.expire_due(11.0)) == [3]
