"""Stateful property test: a Partition, as reservations' home and as their parts' place,
against a small reference model.

Every rule sends one command (or runs the home's timer) to the real partition, predicts
the outcome from the model, and updates the model. Reserve is driven as the two-phase
commit it is: the attempt is recorded PENDING, its part placed, then the home decides
HELD or ABORTED; every later change is decided at the home and carried to the part as a
step, at a time of the machine's choosing (or, for a second partition Q of another shard,
only reported as taken). The invariants compare the partition with the model after every
step: positions, parts, records and fences, conservation, parts following their home's
decision once its step was taken, and that replaying every event emitted so far on a
fresh Partition rebuilds the live one.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from omnistock.reservations.domain.commands import (
    AdjustOutcome,
    AdjustStock,
    CarryStep,
    ClaimOutcome,
    ConfirmReservation,
    DecideHold,
    DecisionOutcome,
    DecisionResult,
    ExtendReservation,
    GetClaim,
    HoldOutcome,
    MarkCarried,
    PartOutcome,
    PlaceHold,
    RecordClaim,
    ReleaseReservation,
    SetStock,
    ShortLine,
)
from omnistock.reservations.domain.model import (
    Claim,
    ClaimDropped,
    Decision,
    Event,
    Follow,
    HoldAborted,
    HoldExtended,
    HoldFenced,
    HoldPlaced,
    Intent,
    IntentCarried,
    Line,
    Part,
    PartChanged,
    PartState,
    ReservationDecided,
    Step,
    Withdraw,
    fingerprint,
)
from omnistock.reservations.domain.partition import EXPIRY_BY, FENCE_MARGIN, Partition
from omnistock.reservations.shard.codec import decode_entry, decode_snapshot, encode_entry, encode_snapshot

P = 0
Q = 1  # a partition of another shard: its steps are taken there, the machine only reports them
SKUS = ("a", "b", "c")
NODES = ("n1", "n2")
KEYS = tuple((sku, node) for sku in SKUS for node in NODES)
PENDING = 4.0  # seconds an attempt may stay undecided
GHOST = "ghost"  # an id that is never recorded
RANK = {
    PartState.HELD: 0,
    PartState.CONFIRMED: 1,
    PartState.RELEASED: 2,
    PartState.EXPIRED: 2,
    PartState.FULFILLED: 2,
}

keys = st.sampled_from(KEYS)


def lines_of(quantities: st.SearchStrategy[int]) -> st.SearchStrategy[tuple[Line, ...]]:
    """1-3 lines; a position may appear twice (the gateway refuses that, the partition sums)."""
    return st.lists(st.tuples(keys, quantities), min_size=1, max_size=3).map(
        lambda rows: tuple(Line(sku, node, quantity) for (sku, node), quantity in rows)
    )


hold_lines = lines_of(st.integers(1, 6))
invalid_lines = lines_of(st.integers(-2, 6)).filter(lambda ls: any(line.quantity < 1 for line in ls))


@dataclass
class ModelPart:
    lines: tuple[Line, ...]
    fingerprint: str
    state: PartState
    created_at: float
    expires_at: float
    attempt: str
    changed_at: float = 0.0
    followed: int = 0
    """The number of the last decision whose expiry it took (an older extension is behind it)."""

    def part(self, rid: str) -> Part:
        return Part(
            rid,
            self.fingerprint,
            self.lines,
            self.state,
            self.created_at,
            self.expires_at,
            self.changed_at,
            attempt=self.attempt,
            followed=self.followed,
        )


@dataclass
class ModelRecord:
    rid: str
    fingerprint: str
    lines: tuple[Line, ...]
    partitions: tuple[int, ...]
    created_at: float
    attempt: str
    expires_at: float
    decision: Decision = Decision.PENDING
    decided_at: float = 0.0
    intents: list[Intent] = field(default_factory=list)
    history: list[tuple[str, float, str]] = field(default_factory=list)
    decisions: int = 0
    """Decisions taken after PENDING: the next one's steps carry decisions + 1."""
    tried: bool = False
    """Its PlaceHold was sent to P (a PlaceHold is delivered once)."""
    refused: bool = False
    """... and refused there: P holds no part of it, ever."""

    def claim(self) -> Claim:
        return Claim(
            self.rid,
            self.fingerprint,
            self.partitions,
            self.created_at,
            (),
            None,
            self.attempt,
            self.decision,
            self.expires_at,
            self.decided_at,
            tuple(self.intents),
            tuple(self.history),
            self.decisions,
        )

    def decision_at(self, now: float) -> Decision:
        if self.decision is Decision.HELD and now >= self.expires_at:
            return Decision.EXPIRED
        return self.decision


@dataclass
class Late:
    """An aborted attempt whose PlaceHold for P was never delivered: it may still arrive."""

    fingerprint: str
    lines: tuple[Line, ...]
    created_at: float
    expires_at: float
    until: float


def snapshot(p: Partition) -> tuple:
    positions = {(v.sku, v.node_id): v for sku in p.skus() for v in p.views(sku)}
    fences = {rid: dict(attempts) for rid, attempts in p.fences.items()}
    # (a snapshot keeps what an adjustment id stands for, not its free-text reason)
    adjustments = {i: (a.sku, a.node_id, a.delta, a.state, a.supply_id) for i, a in p.adjustments.items()}
    return positions, dict(p.parts), dict(p.claims), adjustments, fences


def finish(p: Partition, now: float) -> tuple[float, list[Event]]:
    """Bring every reservation to an end as recovery would: the timer past every deadline,
    every decided step carried (Q's reported taken), then the timer past every fence."""
    events: list[Event] = []
    deadlines = [now, *(until for attempts in p.fences.values() for until in attempts.values())]
    for claim in p.claims.values():
        deadlines.append(
            claim.created_at + PENDING if claim.decision is Decision.PENDING else claim.expires_at
        )
    now = max(d for d in deadlines if d != float("inf"))
    events += p.expire_due(now, PENDING)
    for rid in sorted(p.claims):
        for intent in p.claims[rid].intents if rid in p.claims else ():
            for number, step in intent.steps:
                if number == P:
                    events += p.handle(CarryStep(P, rid, step), now)[1]
            events += p.handle(MarkCarried(P, rid, intent.operation, intent.partitions), now)[1]
    now = max([now, *(until for attempts in p.fences.values() for until in attempts.values())])
    events += p.expire_due(now, PENDING)
    return now, events


class PartitionMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.p = Partition(P)
        self.log: list[Event] = []
        self.now = 1000.0
        self.on_hand = dict.fromkeys(KEYS, 0)
        self.as_of = dict.fromkeys(KEYS, 0.0)
        self.adjustments: dict[str, tuple[str, str, int]] = {}
        self.refused_adjustments: set[str] = set()
        self.parts: dict[str, ModelPart] = {}
        self.records: dict[str, ModelRecord] = {}
        self.fences: dict[str, dict[str, float]] = {}
        self.dropped_fences: set[tuple[str, str, float]] = set()  # by the timer (not journaled)
        self.late: dict[tuple[str, str], Late] = {}
        self.dropped: set[str] = set()
        self.taken: dict[str, Step] = {}  # the last step each reservation's part took
        # Steps of decisions a later one superseded before they were carried: a carrier
        # that had them may still deliver them (an extension superseded at the same instant
        # too: its decision number tells it is older).
        self.superseded: dict[str, list[Step]] = {}
        self.ids = 0

    # --- helpers ---

    def new_id(self, prefix: str) -> str:
        self.ids += 1
        return f"{prefix}{self.ids}"

    def run(self, command):
        result, events = self.p.handle(command, self.now)
        self.log.extend(events)
        return result, events

    def run_unchanged(self, command):
        """Run a command that must change nothing: no events, identical state."""
        before = snapshot(self.p)
        result, events = self.run(command)
        assert events == [], (command, events)
        assert snapshot(self.p) == before, command
        return result

    def model_counts(self) -> dict[tuple[str, str], tuple[int, int]]:
        counts = dict.fromkeys(KEYS, (0, 0))
        for part in self.parts.values():
            for line in part.lines:
                reserved, committed = counts[(line.sku, line.node_id)]
                if part.state is PartState.HELD:
                    reserved += line.quantity
                elif part.state is PartState.CONFIRMED:
                    committed += line.quantity
                counts[(line.sku, line.node_id)] = (reserved, committed)
        return counts

    def model_available(self, key: tuple[str, str]) -> int:
        reserved, committed = self.model_counts()[key]
        return max(0, self.on_hand[key] - reserved - committed)

    def pick(self, data, ids) -> str:
        """Mostly one of `ids`, now and then a dropped or never-recorded id."""
        if ids and data.draw(st.integers(0, 7), label="unknown?") < 7:
            return data.draw(st.sampled_from(sorted(ids)), label="reservation_id")
        return data.draw(st.sampled_from([*sorted(self.dropped), GHOST]), label="reservation_id")

    # --- the model's rules for a part ---

    def place(self, rid: str, attempt: str, digest: str, lines, created_at: float, expires_at: float):
        """Send a PlaceHold; predict and check its outcome from the model."""
        command = PlaceHold(P, rid, digest, lines, created_at, expires_at, attempt=attempt, home=P)
        existing = self.parts.get(rid)
        if existing is not None:
            result = self.run_unchanged(command)
            same = existing.fingerprint == digest
            assert result.outcome is (HoldOutcome.REPLAYED if same else HoldOutcome.CONFLICT)
            assert result.part == existing.part(rid)
            return result
        if attempt in self.fences.get(rid, {}):
            result = self.run_unchanged(command)
            assert (result.outcome, result.part) == (HoldOutcome.FENCED, None)
            return result
        if any(line.quantity < 1 for line in lines):
            result = self.run_unchanged(command)
            assert result.outcome is HoldOutcome.INVALID
            return result
        wanted: dict[tuple[str, str], int] = {}  # per position, in order of first mention
        for line in lines:
            wanted[(line.sku, line.node_id)] = wanted.get((line.sku, line.node_id), 0) + line.quantity
        short = tuple(
            ShortLine(sku, node, quantity, available)
            for (sku, node), quantity in wanted.items()
            if quantity > (available := self.model_available((sku, node)))
        )
        if short:
            result = self.run_unchanged(command)
            assert (result.outcome, result.short) == (HoldOutcome.SHORT, short)
            return result
        before = {key: self.p.view(*key) for key in wanted}
        result, events = self.run(command)
        assert result.outcome is HoldOutcome.PLACED, (result, short)
        assert events == [HoldPlaced(rid, digest, lines, created_at, expires_at, attempt=attempt)]
        for key, quantity in wanted.items():
            after, prior = self.p.view(*key), before[key]
            # a successful hold never drives available below zero
            assert after.on_hand - after.reserved - after.committed >= 0
            assert after.reserved == prior.reserved + quantity
            assert (after.on_hand, after.committed) == (prior.on_hand, prior.committed)
        self.parts[rid] = ModelPart(lines, digest, PartState.HELD, created_at, expires_at, attempt)
        return result

    def take(self, rid: str, step: Step, decided: bool = True) -> None:
        """Carry one step to the part at P; predict and check what the part does. A step a
        home `decided` may be carried again."""
        part = self.parts.get(rid)
        expected: list[Event] = []
        outcome = PartOutcome.REPLAYED
        match step:
            case Follow():
                if part is None:
                    outcome = PartOutcome.NOT_FOUND
                elif part.state is step.state:
                    # The later-decided extension is taken even when it brings the expiry the
                    # part has (its number kept, so an older one arriving after it is refused).
                    if (
                        step.state is PartState.HELD
                        and step.version > part.followed  # not an older extension arriving late
                    ):
                        extended = HoldExtended(rid, step.expires_at, step.at, step.version, step.by)
                        outcome, expected = PartOutcome.CHANGED, [extended]
                        part.expires_at, part.followed = step.expires_at, step.version
                elif RANK[step.state] > RANK[part.state]:
                    outcome, expected = PartOutcome.CHANGED, [PartChanged(rid, step.state, step.at, step.by)]
                    part.state, part.changed_at = step.state, step.at
            case Withdraw():
                if part is not None:
                    if part.attempt == step.attempt and part.state is PartState.HELD:
                        outcome, expected = PartOutcome.CHANGED, [HoldAborted(rid, step.by)]
                        del self.parts[rid]
                elif step.attempt not in self.fences.get(rid, {}):
                    outcome, expected = PartOutcome.CHANGED, [HoldFenced(rid, step.attempt, step.until)]
                    self.fences.setdefault(rid, {})[step.attempt] = step.until
                    self.dropped_fences.discard((rid, step.attempt, step.until))
        if outcome is PartOutcome.CHANGED:
            result, events = self.run(CarryStep(P, rid, step))
            assert events == expected
        else:
            result = self.run_unchanged(CarryStep(P, rid, step))
        assert result.outcome is outcome, (step, result)
        if decided:
            self.taken[rid] = step

    # --- the model's rules for a home ---

    def decided(
        self,
        record: ModelRecord,
        decision: Decision,
        at: float,
        expires_at: float,
        intent: Intent | None,
        by: str = "",
    ) -> ReservationDecided:
        """The record after a decision (and the event that says so)."""
        if intent is not None:
            if intent.follows_only:  # its steps take the part at least as far as earlier ones
                for old in record.intents:
                    step = dict(old.steps).get(P)
                    if old.follows_only and isinstance(step, Follow):
                        self.superseded.setdefault(record.rid, []).append(step)
                record.intents = [i for i in record.intents if not i.follows_only]
            record.intents.append(intent)
        if decision is Decision.HELD and record.decision is Decision.PENDING:
            record.history.append(("held", record.created_at, by))
        elif decision is not record.decision and decision is not Decision.ABORTED:
            record.history.append((decision.name.lower(), at, by))
        elif decision is Decision.HELD and expires_at != record.expires_at:
            record.history.append(("extended", at, by))
        record.decision, record.decided_at, record.expires_at = decision, at, expires_at
        record.decisions += 1
        return ReservationDecided(record.rid, decision, at, expires_at, intent, by)

    def aborted(
        self, record: ModelRecord, unplaced: tuple[int, ...] = (), by: str = ""
    ) -> ReservationDecided:
        until = max(record.expires_at, self.now) + FENCE_MARGIN
        step = Withdraw(record.attempt, until, by)
        steps = tuple((p, step) for p in record.partitions if p not in unplaced)
        if P in dict(steps) and not record.tried:
            lines, created, expires = record.lines, record.created_at, record.expires_at
            self.late[(record.rid, record.attempt)] = Late(record.fingerprint, lines, created, expires, until)
        intent = Intent(f"abort:{record.attempt}", steps) if steps else None
        return self.decided(record, Decision.ABORTED, self.now, record.expires_at, intent, by)

    def drop(self, rid: str) -> None:
        del self.records[rid]
        self.dropped.add(rid)

    def check_decision(self, result, outcome: DecisionOutcome, record: ModelRecord, carry: Intent | None):
        assert isinstance(result, DecisionResult)
        assert result.outcome is outcome, (result, outcome)
        assert result.decision is record.decision_at(self.now)
        assert result.carry == carry
        assert result.claim == record.claim()

    def decided_record(self, rid: str) -> ModelRecord | None:
        record = self.records.get(rid)
        if record is None or record.decision in (Decision.PENDING, Decision.ABORTED):
            return None
        assert all(intent.follows_only for intent in record.intents)  # nothing here decides a close
        return record

    def decide_state(
        self, rid: str, command, target: Decision | None, expires_at: float | None = None
    ) -> None:
        """Confirm (target CONFIRMED), release (RELEASED) or extend (None, to `expires_at`)."""
        record = self.decided_record(rid)
        if record is None:
            result = self.run_unchanged(command)
            assert result.outcome is DecisionOutcome.NOT_FOUND
            return
        current = record.decision_at(self.now)
        if target is None:
            assert expires_at is not None
            allowed, same = (
                current is Decision.HELD,
                current is Decision.HELD and expires_at == record.expires_at,
            )
        else:
            allowed = current is Decision.HELD or (
                target is Decision.RELEASED and current is Decision.CONFIRMED
            )
            same, expires_at = current is target, record.expires_at
        if same:
            result = self.run_unchanged(command)
            self.check_decision(
                result, DecisionOutcome.REPLAYED, record, record.intents[0] if record.intents else None
            )
            return
        if not allowed:
            result = self.run_unchanged(command)
            self.check_decision(result, DecisionOutcome.REFUSED, record, None)
            assert result.decision is current
            return
        version = record.decisions + 1
        if target is None:
            follow = Follow(PartState.HELD, self.now, expires_at, version)
            intent = Intent(f"extend#{version}", tuple((p, follow) for p in record.partitions))
            event = self.decided(record, Decision.HELD, self.now, expires_at, intent)
        else:
            follow = Follow(target.part_state, self.now, record.expires_at, version)
            intent = Intent(f"{target.name.lower()}#{version}", tuple((p, follow) for p in record.partitions))
            event = self.decided(record, target, self.now, record.expires_at, intent)
        result, events = self.run(command)
        assert events == [event]
        self.check_decision(result, DecisionOutcome.DECIDED, record, intent)

    def mark(self, record: ModelRecord, intent: Intent, partitions: tuple[int, ...]) -> None:
        """Tell the home that the parts in `partitions` took their steps of `intent`."""
        expected: list[Event] = [IntentCarried(record.rid, intent.operation, partitions)]
        left = intent.without(partitions)
        if record.decision is Decision.ABORTED and len(record.intents) == 1 and left is None:
            expected.append(ClaimDropped(record.rid))
        result, events = self.run(MarkCarried(P, record.rid, intent.operation, partitions))
        assert events == expected
        assert result.outcome is DecisionOutcome.DECIDED
        index = record.intents.index(intent)
        if left is None:
            del record.intents[index]
        else:
            record.intents[index] = left
        if ClaimDropped(record.rid) in expected:
            self.drop(record.rid)

    # --- stock ---

    @initialize(levels=st.lists(st.integers(0, 30), min_size=len(KEYS), max_size=len(KEYS)))
    def stock_every_position(self, levels):
        for key, on_hand in zip(KEYS, levels, strict=True):
            self.run(SetStock(P, key[0], key[1], on_hand, 1.0))
            self.on_hand[key] = on_hand
            self.as_of[key] = 1.0

    @rule(key=keys, on_hand=st.integers(0, 30), step=st.integers(-3, 3))
    def set_stock(self, key, on_hand, step):
        as_of = self.as_of[key] + step
        command = SetStock(P, key[0], key[1], on_hand, as_of)
        if step < 0:
            result = self.run_unchanged(command)
            assert result.applied is False
            return
        result, _ = self.run(command)
        assert result.applied is True
        assert (result.position.on_hand, result.position.as_of) == (on_hand, as_of)
        self.on_hand[key] = on_hand
        self.as_of[key] = as_of

    def _adjust_new(self, adjustment_id: str, key, delta: int) -> None:
        command = AdjustStock(P, adjustment_id, key[0], key[1], delta, "r")
        if self.on_hand[key] + delta < 0:
            result = self.run_unchanged(command)
            assert result.outcome is AdjustOutcome.REFUSED_NEGATIVE
            self.refused_adjustments.add(adjustment_id)
            return
        result, events = self.run(command)
        assert result.outcome is AdjustOutcome.APPLIED
        assert len(events) == 1
        self.on_hand[key] += delta
        assert result.position.on_hand == self.on_hand[key]
        self.adjustments[adjustment_id] = (key[0], key[1], delta)
        self.refused_adjustments.discard(adjustment_id)

    @rule(key=keys, delta=st.integers(-25, 12))
    def adjust(self, key, delta):
        self._adjust_new(self.new_id("adj"), key, delta)

    @precondition(lambda self: self.refused_adjustments)
    @rule(data=st.data(), key=keys, delta=st.integers(-12, 12))
    def adjust_reusing_refused_id(self, data, key, delta):
        adjustment_id = data.draw(st.sampled_from(sorted(self.refused_adjustments)))
        self._adjust_new(adjustment_id, key, delta)

    @precondition(lambda self: self.adjustments)
    @rule(data=st.data(), same=st.booleans())
    def adjust_retry(self, data, same):
        adjustment_id = data.draw(st.sampled_from(sorted(self.adjustments)))
        original = self.adjustments[adjustment_id]
        if same:
            content = original
        else:
            content = data.draw(
                st.tuples(st.sampled_from(SKUS), st.sampled_from(NODES), st.integers(-12, 12)).filter(
                    lambda c: c != original
                )
            )
        result = self.run_unchanged(AdjustStock(P, adjustment_id, *content, "retry"))
        assert result.outcome is (AdjustOutcome.REPLAYED if same else AdjustOutcome.CONFLICT)

    # --- Reserve: record the attempt, place its part, decide ---

    def _record(self, rid: str, lines, ttl: int, elsewhere: bool) -> ModelRecord:
        attempt = self.new_id("a")
        partitions = (P, Q) if elsewhere else (P,)
        record = ModelRecord(
            rid, fingerprint(lines), lines, partitions, self.now, attempt, self.now + ttl, decided_at=self.now
        )
        command = RecordClaim(
            P, rid, record.fingerprint, partitions, self.now, attempt=attempt, expires_at=self.now + ttl
        )
        result, events = self.run(command)
        assert (result.outcome, result.decision) == (ClaimOutcome.RECORDED, Decision.PENDING)
        assert result.claim == record.claim()
        assert len(events) == 1
        self.records[rid] = record
        self.dropped.discard(rid)
        return record

    def _reserve(self, rid: str, lines, ttl: int, elsewhere: bool = False, q_placed: bool = True) -> None:
        """A whole Reserve: recorded, placed, decided (HELD if every part was placed)."""
        record = self._record(rid, lines, ttl, elsewhere)
        self._place_part(record)
        self._decide_hold(record, q_placed, q_refused=not q_placed)

    @rule(lines=hold_lines, ttl=st.integers(1, 40), elsewhere=st.booleans(), q_placed=st.booleans())
    def reserve(self, lines, ttl, elsewhere, q_placed):
        self._reserve(self.new_id("r"), lines, ttl, elsewhere, q_placed)

    @rule(lines=hold_lines, ttl=st.integers(1, 40), elsewhere=st.booleans())
    def record_attempt(self, lines, ttl, elsewhere):
        """Only the first phase: its part and decision come later, or never."""
        self._record(self.new_id("r"), lines, ttl, elsewhere)

    @rule(lines=invalid_lines, ttl=st.integers(1, 40), whole=st.booleans())
    def reserve_invalid(self, lines, ttl, whole):
        if whole:
            self._reserve(self.new_id("r"), lines, ttl)
        else:
            self._record(self.new_id("r"), lines, ttl, False)

    @rule(key=keys, extra=st.sampled_from((0, 1)), ttl=st.integers(1, 40))
    def reserve_at_the_boundary(self, key, extra, ttl):
        """Ask for exactly what is available (fits) or one more (short)."""
        quantity = self.model_available(key) + extra
        if quantity >= 1:
            self._reserve(self.new_id("r"), (Line(key[0], key[1], quantity),), ttl)

    @precondition(lambda self: self.dropped)
    @rule(data=st.data(), lines=hold_lines, ttl=st.integers(1, 40), whole=st.booleans())
    def reserve_a_freed_id_again(self, data, lines, ttl, whole):
        rid = data.draw(st.sampled_from(sorted(self.dropped)))
        if whole:
            self._reserve(rid, lines, ttl)
        else:
            self._record(rid, lines, ttl, False)

    @precondition(lambda self: self.records)
    @rule(data=st.data(), same=st.booleans())
    def record_again(self, data, same):
        rid = data.draw(st.sampled_from(sorted(self.records)))
        record = self.records[rid]
        digest = record.fingerprint if same else "other"
        result = self.run_unchanged(
            RecordClaim(P, rid, digest, (P,), self.now, attempt="retry", expires_at=self.now)
        )
        if record.decision is Decision.ABORTED:
            expected = ClaimOutcome.BUSY  # its parts are being withdrawn
        else:
            expected = ClaimOutcome.EXISTS if same else ClaimOutcome.CONFLICT
        assert (result.outcome, result.claim, result.decision) == (expected, record.claim(), record.decision)

    def pending(self) -> list[str]:
        return sorted(rid for rid, record in self.records.items() if record.decision is Decision.PENDING)

    @precondition(lambda self: any(not self.records[rid].tried for rid in self.pending()))
    @rule(data=st.data())
    def place_part(self, data):
        rid = data.draw(st.sampled_from([rid for rid in self.pending() if not self.records[rid].tried]))
        self._place_part(self.records[rid])

    def _place_part(self, record: ModelRecord) -> None:
        rid, ends = record.rid, (record.created_at, record.expires_at)
        result = self.place(rid, record.attempt, record.fingerprint, record.lines, *ends)
        record.tried = True
        record.refused = result.outcome in (HoldOutcome.SHORT, HoldOutcome.INVALID)

    @precondition(lambda self: self.pending())
    @rule(data=st.data(), q_placed=st.booleans(), q_refused=st.booleans())
    def decide_hold(self, data, q_placed, q_refused):
        self._decide_hold(self.records[data.draw(st.sampled_from(self.pending()))], q_placed, q_refused)

    def _decide_hold(self, record: ModelRecord, q_placed: bool, q_refused: bool) -> None:
        rid = record.rid
        part = self.parts.get(rid)
        here = part is not None and part.attempt == record.attempt
        placed = here and (Q not in record.partitions or q_placed)
        unplaced = ((P,) if record.refused else ()) + ((Q,) if Q in record.partitions and q_refused else ())
        if placed:
            unplaced = ()
        command = DecideHold(P, rid, record.attempt, placed, unplaced)
        if placed:
            event = self.decided(record, Decision.HELD, self.now, record.expires_at, None)
        else:
            event = self.aborted(record, unplaced)
        result, events = self.run(command)
        if event.intent is None and not placed:  # nothing to withdraw anywhere: the id is free at once
            assert events == [event, ClaimDropped(rid)]
            assert (result.outcome, result.decision, result.carry) == (
                DecisionOutcome.DECIDED,
                Decision.ABORTED,
                None,
            )
            self.drop(rid)
            return
        assert events == [event]
        self.check_decision(result, DecisionOutcome.DECIDED, record, event.intent)

    @precondition(lambda self: self.records)
    @rule(data=st.data(), other_attempt=st.booleans())
    def decide_hold_again(self, data, other_attempt):
        rid = self.pick(data, [rid for rid, r in self.records.items() if r.decision is not Decision.PENDING])
        record = self.records.get(rid)
        attempt = "stale" if other_attempt or record is None else record.attempt
        result = self.run_unchanged(DecideHold(P, rid, attempt, True))
        if record is None:
            assert result.outcome is DecisionOutcome.NOT_FOUND
        elif other_attempt:
            assert (result.outcome, result.claim) == (DecisionOutcome.REFUSED, record.claim())
        else:
            self.check_decision(
                result, DecisionOutcome.REPLAYED, record, record.intents[0] if record.intents else None
            )

    @precondition(lambda self: self.parts)
    @rule(data=st.data(), same=st.booleans())
    def place_retry(self, data, same):
        rid = data.draw(st.sampled_from(sorted(self.parts)))
        part = self.parts[rid]
        if same:
            lines = tuple(data.draw(st.permutations(part.lines)))
        else:
            lines = data.draw(hold_lines.filter(lambda ls: fingerprint(ls) != part.fingerprint))
        self.place(rid, part.attempt, fingerprint(lines), lines, self.now, self.now + 10)

    @precondition(lambda self: any(self.now < late.until for late in self.late.values()))
    @rule(data=st.data())
    def late_part_of_an_aborted_attempt(self, data):
        """The PlaceHold of an attempt aborted before it arrived: fenced out if its Withdraw
        came first, else placed (and withdrawn when the Withdraw comes)."""
        key = data.draw(st.sampled_from(sorted(k for k, late in self.late.items() if self.now < late.until)))
        late = self.late.pop(key)
        self.place(key[0], key[1], late.fingerprint, late.lines, late.created_at, late.expires_at)

    # --- later decisions, at the home on its clock ---

    def carry_now(self, rid: str) -> None:
        """What the home's shard does with a decision: its own part takes the step at once."""
        record = self.records.get(rid)
        intent = next((i for i in record.intents if P in i.partitions), None) if record else None
        if record is not None and intent is not None:
            self.take(rid, dict(intent.steps)[P])
            self.mark(record, intent, (P,))

    @precondition(lambda self: self.records)
    @rule(data=st.data(), now=st.booleans())
    def confirm(self, data, now):
        rid = self.pick(data, self.records)
        self.decide_state(rid, ConfirmReservation(P, rid), Decision.CONFIRMED)
        if now:
            self.carry_now(rid)

    @precondition(lambda self: self.records)
    @rule(data=st.data(), now=st.booleans())
    def release(self, data, now):
        rid = self.pick(data, self.records)
        self.decide_state(rid, ReleaseReservation(P, rid), Decision.RELEASED)
        if now:
            self.carry_now(rid)

    @precondition(lambda self: self.records)
    @rule(data=st.data(), ttl=st.integers(0, 40), now=st.booleans())
    def extend(self, data, ttl, now):
        rid = self.pick(data, self.records)
        record = self.records.get(rid)
        expires_at = record.expires_at if record is not None and ttl == 0 else self.now + ttl  # 0: the same
        self.decide_state(rid, ExtendReservation(P, rid, expires_at), None, expires_at)
        if now:
            self.carry_now(rid)

    @precondition(lambda self: self.records)
    @rule(data=st.data())
    def get_claim(self, data):
        rid = self.pick(data, self.records)
        result = self.run_unchanged(GetClaim(P, rid))
        record = self.records.get(rid)
        if record is None:
            assert result.outcome is ClaimOutcome.NOT_FOUND
        else:
            expected = (ClaimOutcome.FOUND, record.claim(), record.decision_at(self.now))
            assert (result.outcome, result.claim, result.decision) == expected

    # --- carrying the decided steps ---

    def carrying(self, partition: int) -> list[str]:
        return sorted(
            rid for rid, r in self.records.items() if any(partition in i.partitions for i in r.intents)
        )

    @precondition(lambda self: self.carrying(P))
    @rule(data=st.data(), mark=st.sampled_from((True, True, False)))
    def carry(self, data, mark):
        """A carrier takes P's step of the home's first intent to the part, then (unless it
        dies first) tells the home."""
        record = self.records[data.draw(st.sampled_from(self.carrying(P)))]
        intent = next(i for i in record.intents if P in i.partitions)
        self.take(record.rid, dict(intent.steps)[P])
        if mark:
            self.mark(record, intent, (P,))

    @precondition(lambda self: self.carrying(Q))
    @rule(data=st.data())
    def other_shard_took_its_step(self, data):
        record = self.records[data.draw(st.sampled_from(self.carrying(Q)))]
        intent = next(i for i in record.intents if Q in i.partitions)
        self.mark(record, intent, (Q,))

    @precondition(lambda self: self.superseded)
    @rule(data=st.data())
    def a_superseded_step_arrives_late(self, data):
        """A part only moves forward: an earlier decision's step changes it only if it is
        still behind (it then takes the later decision's step when that comes)."""
        rid = data.draw(st.sampled_from(sorted(self.superseded)))
        step = self.superseded[rid].pop(0)
        if not self.superseded[rid]:
            del self.superseded[rid]
        self.take(rid, step)

    @precondition(lambda self: self.taken)
    @rule(data=st.data())
    def carry_again(self, data):
        """A carrier retries the last step a part took (each step is idempotent)."""
        rid = data.draw(st.sampled_from(sorted(self.taken)))
        self.take(rid, self.taken[rid])

    @rule(data=st.data(), step=st.sampled_from(("follow", "withdraw")))
    def step_for_an_unknown_part(self, data, step):
        rid = data.draw(st.sampled_from([GHOST, *sorted(self.dropped)]))
        if step == "follow" or rid in self.parts:
            follow = Follow(PartState.CONFIRMED, self.now, self.now)
            self.take(rid if rid not in self.parts else GHOST, follow, decided=False)
        else:
            self.take(rid, Withdraw("never", self.now + FENCE_MARGIN), decided=False)

    # --- time and the home's timer ---

    @rule(dt=st.integers(0, 8))
    def advance_clock(self, dt):
        self.now += dt

    def deadlines(self) -> list[float]:
        due = [until for attempts in self.fences.values() for until in attempts.values()]
        for record in self.records.values():
            if record.decision is Decision.HELD:
                due.append(record.expires_at)
            elif record.decision is Decision.PENDING:
                due.append(record.created_at + PENDING)
        return sorted(due)

    @precondition(lambda self: self.deadlines())
    @rule(data=st.data(), offset=st.sampled_from((-1.0, -0.5, 0.0, 0.5, 1.0)))
    def advance_to_a_deadline(self, data, offset):
        """Jump to just around some expiry, PENDING timeout or fence's end, where the boundaries are."""
        self.now = max(self.now, data.draw(st.sampled_from(self.deadlines())) + offset)

    @rule(now=st.booleans())
    def timer(self, now=False):
        """The home's timer; with `now`, its decisions' steps are taken at once, as the
        shard does for its own partitions."""
        expected: list[Event] = []
        expiring = sorted(
            (r.expires_at, rid)
            for rid, r in self.records.items()
            if r.decision is Decision.HELD and r.expires_at <= self.now
        )
        for expires_at, rid in expiring:
            record = self.records[rid]
            follow = Follow(PartState.EXPIRED, expires_at, expires_at, record.decisions + 1, EXPIRY_BY)
            intent = Intent(f"expire#{follow.version}", tuple((p, follow) for p in record.partitions))
            expected.append(self.decided(record, Decision.EXPIRED, expires_at, expires_at, intent, EXPIRY_BY))
        timed_out = sorted(
            (r.created_at, rid)
            for rid, r in self.records.items()
            if r.decision is Decision.PENDING and r.created_at + PENDING <= self.now
        )
        expected.extend(self.aborted(self.records[rid], by=EXPIRY_BY) for _, rid in timed_out)
        for rid in list(self.fences):
            self.dropped_fences.update(
                (rid, a, until) for a, until in self.fences[rid].items() if until <= self.now
            )
            self.fences[rid] = {a: until for a, until in self.fences[rid].items() if until > self.now}
            if not self.fences[rid]:
                del self.fences[rid]
        events = self.p.expire_due(self.now, PENDING)
        self.log.extend(events)
        assert events == expected
        due = self.p.next_due(PENDING)
        assert due is None or due > self.now
        for event in events if now else ():
            self.carry_now(event.reservation_id)

    # --- recovery ---

    @rule()
    def recover_from_a_snapshot(self):
        """Carry on with the partition a snapshot of the live one decodes to."""
        restored, last = decode_snapshot(encode_snapshot(self.p, "9-9"))
        assert last == "9-9"
        assert snapshot(restored) == snapshot(self.p)
        self.p = restored

    @rule()
    def recover_from_the_journal(self):
        """Carry on with a partition rebuilt from every event. The live one's timer runs (its
        last batch), then the rebuilt one's, as a restarted shard's first batch does: it
        decides nothing again and drops the fences that had done their work (dropping one
        is not journaled)."""
        self.timer()
        fresh = Partition(P)
        for event in self.log:
            fresh.apply(event)
        assert fresh.expire_due(self.now, PENDING) == []
        assert snapshot(fresh) == snapshot(self.p)
        self.p = fresh

    # --- invariants ---

    @invariant()
    def the_partition_matches_the_model(self):
        counts = self.model_counts()
        for key in KEYS:
            view = self.p.view(*key)
            assert view.on_hand == self.on_hand[key], key
            assert view.as_of == self.as_of[key], key
            assert (view.reserved, view.committed) == counts[key], key
        assert self.p.parts == {rid: m.part(rid) for rid, m in self.parts.items()}
        assert {(v.sku, v.node_id) for sku in self.p.skus() for v in self.p.views(sku)} <= set(KEYS)
        assert self.p.claims == {rid: r.claim() for rid, r in self.records.items()}
        assert self.p.fences == self.fences
        assert {
            adjustment_id: (a.sku, a.node_id, a.delta) for adjustment_id, a in self.p.adjustments.items()
        } == self.adjustments

    @invariant()
    def conservation_check_is_clean(self):
        assert self.p.check() == []

    @invariant()
    def parts_follow_their_homes_decision_once_its_step_is_taken(self):
        for rid, record in self.records.items():
            if record.decision is Decision.PENDING or any(P in i.partitions for i in record.intents):
                continue
            part = self.p.parts.get(rid)
            if record.decision is Decision.ABORTED:
                assert part is None or part.attempt != record.attempt
                continue
            assert part is not None and part.state is record.decision.part_state, (record, part)
            if part.state is PartState.HELD:
                assert part.expires_at == record.expires_at

    @invariant()
    def replaying_the_events_rebuilds_the_partition(self):
        fresh = Partition(P)
        for event in self.log:
            fresh.apply(event)
        positions, parts, claims, adjustments, fences = snapshot(fresh)
        # fences the live timer dropped come back until the rebuilt one's timer runs
        fences = {
            rid: kept
            for rid, attempts in fences.items()
            if (kept := {a: u for a, u in attempts.items() if (rid, a, u) not in self.dropped_fences})
        }
        assert (positions, parts, claims, adjustments, fences) == snapshot(self.p)

    def teardown(self):
        if sys.exc_info()[0] is not None:
            return  # the run already failed; don't mask that failure
        assert decode_entry(encode_entry(self.log)) == self.log  # every entry survives the journal
        # every reservation ends, in the live partition and in one rebuilt from its events
        fresh = Partition(P)
        for event in self.log:
            fresh.apply(event)
        now, events = finish(self.p, self.now)
        assert finish(fresh, self.now) == (now, events)
        assert snapshot(fresh) == snapshot(self.p)
        assert not [part for part in self.p.parts.values() if part.state is PartState.HELD]
        assert all(q.reserved == 0 for nodes in self.p.positions.values() for q in nodes.values())
        assert all(claim.intents == () for claim in self.p.claims.values())
        assert {claim.decision for claim in self.p.claims.values()} <= {
            Decision.CONFIRMED,
            Decision.RELEASED,
            Decision.EXPIRED,
        }
        assert self.p.fences == {}
        assert self.p.check() == []


PartitionMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow],
)
TestPartitionMachine = PartitionMachine.TestCase
