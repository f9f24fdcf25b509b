"""A shard runs its homes' timers from its agenda (when each partition next has something
due), decides exactly what looking at every partition would, carries the decisions' steps
to its own partitions at once and hands out the steps for other shards."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

from hypothesis import given, settings
from hypothesis import strategies as st

from omnistock.reservations.domain.commands import (
    CarryStep,
    Command,
    ConfirmReservation,
    DecideClose,
    DecideHold,
    DecisionOutcome,
    DecisionResult,
    ExtendReservation,
    HoldOutcome,
    MarkCarried,
    PartOutcome,
    PlaceHold,
    RecordClaim,
    ReleaseReservation,
    SetStock,
)
from omnistock.reservations.domain.model import (
    ClaimDropped,
    Close,
    Decision,
    Event,
    Follow,
    HoldAborted,
    HoldFenced,
    Intent,
    IntentCarried,
    Line,
    PartChanged,
    PartState,
    ReservationDecided,
    Withdraw,
    fingerprint,
)
from omnistock.reservations.domain.partition import EXPIRY_BY, FENCE_MARGIN, Partition
from omnistock.reservations.shard.state import Handoff, ShardState

PENDING = 1.0
PARTITIONS = 6


def stock(number: int) -> SetStock:
    return SetStock(number, f"sku-{number}", "dc", 1_000, 0.0)


def lines_in(number: int) -> tuple[Line, ...]:
    return (Line(f"sku-{number}", "dc", 1),)


def reserve(
    home: int, parts: tuple[int, ...], reservation_id: str, now: float, ttl: float, decide: bool = True
) -> list[Command]:
    """A Reserve in one batch: the attempt recorded, its parts placed, and (unless its gateway
    died first) decided."""
    attempt = f"at-{reservation_id}"
    digest = fingerprint([line for number in parts for line in lines_in(number)])
    commands: list[Command] = [
        RecordClaim(home, reservation_id, digest, parts, now, attempt=attempt, expires_at=now + ttl)
    ]
    commands += [
        PlaceHold(n, reservation_id, digest, lines_in(n), now, now + ttl, attempt=attempt, home=home)
        for n in parts
    ]
    if decide:
        commands.append(DecideHold(home, reservation_id, attempt, placed=True))
    return commands


# --- the reference: every partition looked at, every step carried by hand ---


def _add(events: dict[int, list[Event]], number: int, new: list[Event]) -> None:
    if new:
        events.setdefault(number, []).extend(new)


def _carry(
    partitions: dict[int, Partition], home: int, rid: str, intent: Intent, now: float, events: dict
) -> None:
    for number, step in intent.steps:
        _add(events, number, partitions[number].handle(CarryStep(number, rid, step), now)[1])
    taken = tuple(number for number, _ in intent.steps)
    _add(events, home, partitions[home].handle(MarkCarried(home, rid, intent.operation, taken), now)[1])


def expire_everywhere(partitions: dict[int, Partition], now: float) -> dict[int, list[Event]]:
    events: dict[int, list[Event]] = {}
    for number, partition in partitions.items():
        decided = partition.expire_due(now, PENDING)
        _add(events, number, decided)
        for event in decided:
            assert isinstance(event, ReservationDecided)
            if event.intent is not None:
                _carry(partitions, number, event.reservation_id, event.intent, now, events)
    return events


def handle_everywhere(partitions: dict[int, Partition], command: Command, now: float, events: dict) -> None:
    result, new = partitions[command.partition].handle(command, now)
    _add(events, command.partition, new)
    if isinstance(result, DecisionResult) and result.carry is not None:
        assert result.claim is not None
        _carry(partitions, command.partition, result.claim.reservation_id, result.carry, now, events)


def ordered(events: dict[int, list[Event]]) -> dict[int, list[str]]:
    """Events by partition, in a fixed order: partitions take steps from several homes, and
    the shard runs the homes in the order they are due, the reference by number."""
    return {number: sorted(map(repr, evs)) for number, evs in events.items()}


numbers = st.integers(0, PARTITIONS - 1)
command_specs = st.tuples(
    st.sampled_from(["reserve", "reserve", "abandon", "extend", "confirm", "release"]),
    numbers,  # the home of a new reservation
    st.sets(numbers, min_size=1, max_size=2),  # its parts
    st.sampled_from([0.5, 2.0, 5.0, 30.0]),  # its time to live
    st.sampled_from([0.5, 4.0, 40.0]),  # an extension: earlier or later than it was
    st.integers(0, 10**6),  # which earlier reservation a change is for
)


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_the_agenda_decides_what_looking_at_every_partition_would(data: st.DataObject) -> None:
    state = ShardState((Partition(n) for n in range(PARTITIONS)), pending_seconds=PENDING)
    reference = {n: Partition(n) for n in range(PARTITIONS)}
    setup = [stock(n) for n in range(PARTITIONS)]
    state.apply_batch(setup, now=0.0)
    for command in setup:
        reference[command.partition].handle(command, 0.0)
    now, placed = 0.0, []
    for step in range(data.draw(st.integers(1, 30), label="steps")):
        now += data.draw(st.sampled_from([0.0, 0.5, 1.0, 3.0, 10.0]), label="time passes")
        batch: list[Command] = []
        specs = data.draw(st.lists(command_specs, max_size=4), label="commands")
        for i, (kind, home, parts, ttl, extension, which) in enumerate(specs):
            if kind in ("reserve", "abandon") or not placed:
                rid = f"r{step}-{i}"
                batch += reserve(home, tuple(sorted(parts)), rid, now, ttl, decide=kind != "abandon")
                placed.append((home, rid))
                continue
            home, reservation_id = placed[which % len(placed)]
            if kind == "extend":
                batch.append(ExtendReservation(home, reservation_id, now + extension))
            elif kind == "confirm":
                batch.append(ConfirmReservation(home, reservation_id))
            else:
                batch.append(ReleaseReservation(home, reservation_id))
        if data.draw(st.booleans(), label="the timer runs"):
            assert ordered(state.expire_due(now)) == ordered(expire_everywhere(reference, now))
        outcome = state.apply_batch(batch, now)
        expected = expire_everywhere(reference, now)
        for command in batch:
            handle_everywhere(reference, command, now, expected)
        assert ordered(outcome.events) == ordered(expected)
        assert outcome.handoffs == []  # every partition is this shard's
        assert outcome.expired == sum(
            isinstance(e, PartChanged) and e.state is PartState.EXPIRED
            for evs in expected.values()
            for e in evs
        )
        assert state.check() == []
    late = now + 100  # past every expiry, PENDING timeout and fence
    assert ordered(state.expire_due(late)) == ordered(expire_everywhere(reference, late))
    for number in range(PARTITIONS):
        live = state.partitions[number]
        assert live.parts == reference[number].parts
        assert live.claims == reference[number].claims
        assert live.fences == reference[number].fences == {}
        assert all(claim.intents == () for claim in live.claims.values())
        assert all(part.state is not PartState.HELD for part in live.parts.values())
        assert live.next_due(PENDING) is None
    assert state.next_due() is None


def test_a_batch_decides_only_for_homes_with_something_due() -> None:
    state = ShardState((Partition(n) for n in range(PARTITIONS)), pending_seconds=PENDING)
    state.apply_batch([stock(n) for n in range(PARTITIONS)], now=0.0)
    state.apply_batch([*reserve(1, (3,), "soon", 0.0, 10.0), *reserve(4, (4,), "later", 0.0, 60.0)], now=0.0)
    assert state.apply_batch([], now=9.99).events == {}  # no grace any more, but not due yet
    outcome = state.apply_batch([], now=10.0)
    assert sorted(outcome.events) == [1, 3]  # the home decided, its part (here) followed
    assert outcome.expired == 1
    assert [type(e).__name__ for e in outcome.events[1]] == ["ReservationDecided", "IntentCarried"]
    assert outcome.events[3] == [PartChanged("soon", PartState.EXPIRED, 10.0, EXPIRY_BY)]
    assert state.partitions[1].claims["soon"].decision is Decision.EXPIRED
    assert state.partitions[3].parts["soon"].state is PartState.EXPIRED
    assert state.partitions[4].parts["later"].state is PartState.HELD
    assert state.next_due() == 60.0


def test_a_reservation_extended_past_its_old_expiry_expires_at_the_new_one() -> None:
    state = ShardState((Partition(n) for n in range(PARTITIONS)), pending_seconds=PENDING)
    state.apply_batch([stock(2), *reserve(5, (2,), "r", 0.0, 10.0)], now=0.0)
    (extended,) = state.apply_batch([ExtendReservation(5, "r", 100.0)], now=5.0).results
    assert isinstance(extended, DecisionResult) and extended.outcome is DecisionOutcome.DECIDED
    assert extended.carry is None and [p for p, _ in extended.carried] == [2]  # taken here, at once
    assert state.partitions[2].parts["r"].expires_at == 100.0
    assert state.expire_due(50.0) == {}
    assert state.partitions[2].parts["r"].state is PartState.HELD
    assert sorted(state.expire_due(100.0)) == [2, 5]
    assert state.partitions[2].parts["r"].state is PartState.EXPIRED


def test_records_recovered_into_a_new_shard_state_are_on_its_agenda() -> None:
    partitions = [Partition(n) for n in range(PARTITIONS)]
    before = ShardState(partitions, pending_seconds=PENDING)
    before.apply_batch(
        [stock(3), *reserve(3, (3,), "held", 0.0, 10.0), *reserve(0, (3,), "undecided", 0.0, 10.0, False)],
        now=0.0,
    )
    after = ShardState(partitions, pending_seconds=PENDING)  # a restart: the same partitions, recovered
    assert after.next_due() == PENDING
    aborted = after.expire_due(PENDING)
    assert sorted(aborted) == [0, 3] and [e for e in aborted[3] if isinstance(e, HoldAborted)]
    assert "undecided" not in partitions[3].parts and "undecided" not in partitions[0].claims
    assert sorted(after.expire_due(10.0)) == [3]
    assert partitions[3].parts["held"].state is PartState.EXPIRED


def two_shards() -> tuple[ShardState, ShardState]:
    """Shard A owns partitions 0 and 1, shard B 2 and 3."""
    a = ShardState([Partition(0), Partition(1)], pending_seconds=PENDING)
    b = ShardState([Partition(2), Partition(3)], pending_seconds=PENDING)
    a.apply_batch([stock(1)], 0.0)
    b.apply_batch([stock(2)], 0.0)
    return a, b


def test_an_expiry_is_taken_here_at_once_and_handed_out_for_the_other_shards_until_carried() -> None:
    a, b = two_shards()
    record, hold_1, hold_2, decide = reserve(0, (1, 2), "r", 0.0, 10.0)
    a.apply_batch([record, hold_1], 0.0)
    assert b.apply_batch([hold_2], 0.0).results[0].outcome is HoldOutcome.PLACED  # type: ignore[union-attr]
    a.apply_batch([decide], 0.0)
    outcome = a.apply_batch([], 10.0)
    step = Follow(PartState.EXPIRED, 10.0, 10.0, 2, EXPIRY_BY)  # the home's second decision, after HELD
    assert outcome.events[1] == [PartChanged("r", PartState.EXPIRED, 10.0, EXPIRY_BY)]
    assert outcome.handoffs == [Handoff(0, "r", Intent("expire#2", ((2, step),)))]
    assert b.partitions[2].parts["r"].state is PartState.HELD  # until a gateway carries it
    # Nobody carried it: it is handed out again once the lease of the first carrier is over.
    assert a.apply_batch([], 11.9).handoffs == []
    assert a.apply_batch([], 12.0).handoffs == outcome.handoffs
    (taken,) = b.apply_batch([CarryStep(2, "r", step)], 12.5).results
    assert taken.outcome is PartOutcome.CHANGED  # type: ignore[union-attr]
    marked = a.apply_batch([MarkCarried(0, "r", "expire#2", (2,))], 12.5)
    assert marked.events == {0: [IntentCarried("r", "expire#2", (2,))]}
    assert a.partitions[0].claims["r"].intents == ()
    assert a.apply_batch([], 20.0).handoffs == []
    assert a.check() == [] and b.check() == []


def test_an_undecided_attempt_is_withdrawn_here_and_fenced_out_where_its_part_never_arrived() -> None:
    a, b = two_shards()
    record, hold_1, hold_2, _ = reserve(0, (1, 2), "r", 0.0, 10.0)
    a.apply_batch([record, hold_1], 0.0)  # the gateway dies: no part in B, no decision
    outcome = a.apply_batch([], PENDING)
    until = 10.0 + FENCE_MARGIN
    assert outcome.events[1] == [HoldAborted("r", EXPIRY_BY)]
    withdraw = Withdraw("at-r", until, EXPIRY_BY)
    assert outcome.handoffs == [Handoff(0, "r", Intent("abort:at-r", ((2, withdraw),)))]
    assert a.partitions[1].view("sku-1", "dc").reserved == 0
    (fenced,) = b.apply_batch([CarryStep(2, "r", withdraw)], 1.5).events[2]
    assert fenced == HoldFenced("r", "at-r", until)
    # The dead gateway's PlaceHold arrives only now: refused, nothing held.
    (late,) = b.apply_batch([hold_2], 1.6).results
    assert late.outcome is HoldOutcome.FENCED  # type: ignore[union-attr]
    assert b.partitions[2].view("sku-2", "dc").reserved == 0
    marked = a.apply_batch([MarkCarried(0, "r", "abort:at-r", (2,))], 2.0)
    assert marked.events[0][-1] == ClaimDropped("r")  # every part withdrawn: the id is free
    # B's own timer drops the fence once it has done its work.
    assert b.next_due() == until
    b.apply_batch([], until)
    assert b.partitions[2].fences == {}


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Fail (TimeoutError) instead of hanging: the pure core's loops are Python, so the
    alarm interrupts them."""

    def expired(signum: int, frame: object) -> None:
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_an_expiry_waiting_for_a_close_to_be_carried_does_not_stop_the_shard() -> None:
    a, b = two_shards()
    record, hold_2, decide = reserve(0, (2,), "r", 0.0, 10.0)
    a.apply_batch([record], 0.0)
    b.apply_batch([hold_2], 0.0)
    a.apply_batch([decide], 0.0)
    cancel = Close("c1", "cancelled", (Line("sku-2", "dc", 1),), 5.0)
    close = DecideClose(0, "r", "c1", ((2, cancel),), (Decision.HELD, Decision.CONFIRMED))
    (decided,) = a.apply_batch([close], 5.0).results
    assert isinstance(decided, DecisionResult) and decided.carry == Intent("close:c1", ((2, cancel),))
    # Its gateway dies before carrying the cancel; the reservation's expiry passes.
    with deadline(1.0):
        outcome = a.apply_batch([], 11.0)
        assert outcome.handoffs == [Handoff(0, "r", decided.carry)]  # the cancel first
        b.apply_batch([CarryStep(2, "r", cancel)], 11.0)
        a.apply_batch([MarkCarried(0, "r", "close:c1", (2,))], 11.0)
        expired = a.apply_batch([], 11.5)
    assert a.partitions[0].claims["r"].decision is Decision.EXPIRED
    # the home's third decision: HELD, the cancel, then EXPIRED (as of the expiry)
    assert expired.handoffs and expired.handoffs[0].intent.operation == "expire#3"
    assert expired.handoffs[0].intent.steps == ((2, Follow(PartState.EXPIRED, 10.0, 10.0, 3, EXPIRY_BY)),)
