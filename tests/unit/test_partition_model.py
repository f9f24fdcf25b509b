"""Stateful property test: a Partition against a small reference model.

Every rule sends one command (or runs the expiry timer) to the real partition,
predicts the outcome from the model, and updates the model. The invariants then
compare the two after every step, and check that replaying every event emitted
so far on a fresh Partition rebuilds the live one.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from reservations.commands import (
    AbortHold,
    AdjustOutcome,
    AdjustStock,
    ClaimOutcome,
    ConfirmPart,
    DropClaim,
    GetClaim,
    HoldOutcome,
    PartOutcome,
    PlaceHold,
    RecordClaim,
    ReleasePart,
    SetStock,
    ShortLine,
)
from reservations.model import Claim, Line, Part, PartChanged, PartState, fingerprint
from reservations.partition import Partition

P = 0
SKUS = ("a", "b", "c")
NODES = ("n1", "n2")
KEYS = tuple((sku, node) for sku in SKUS for node in NODES)
GRACE = 3.0
GHOST = "ghost"  # an id that is never placed

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
    changed_at: float = 0.0

    def effective(self, at: float) -> PartState:
        if self.state is PartState.HELD and at >= self.expires_at:
            return PartState.EXPIRED
        return self.state


def snapshot(p: Partition) -> tuple:
    positions = {(v.sku, v.node_id): v for sku in p.skus() for v in p.views(sku)}
    return positions, dict(p.parts), dict(p.claims), dict(p.adjustments)


class PartitionMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.p = Partition(P)
        self.log: list = []
        self.now = 1000.0
        self.on_hand = dict.fromkeys(KEYS, 0)
        self.as_of = dict.fromkeys(KEYS, 0.0)
        self.adjustments: dict[str, tuple[str, str, int]] = {}
        self.refused_adjustments: set[str] = set()
        self.parts: dict[str, ModelPart] = {}
        self.aborted: set[str] = set()
        self.claims: dict[str, Claim] = {}
        self.ids = 0

    # --- helpers ---

    def new_id(self, prefix: str) -> str:
        self.ids += 1
        return f"{prefix}{self.ids}"

    def run(self, command):
        result, events = self.p.handle(command)
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

    def expire(self) -> None:
        due = sorted(
            (part.expires_at, rid)
            for rid, part in self.parts.items()
            if part.state is PartState.HELD and part.expires_at + GRACE <= self.now
        )
        events = self.p.expire_due(self.now, GRACE)
        self.log.extend(events)
        assert events == [PartChanged(rid, PartState.EXPIRED, expires_at) for expires_at, rid in due]
        for expires_at, rid in due:
            self.parts[rid].state = PartState.EXPIRED
            self.parts[rid].changed_at = expires_at

    def end_every_hold(self) -> None:
        held = [part.expires_at for part in self.parts.values() if part.state is PartState.HELD]
        if held:
            self.now = max(self.now, max(held) + GRACE)
        self.expire()
        assert not [rid for rid, part in self.p.parts.items() if part.state is PartState.HELD]
        assert all(part.state is not PartState.HELD for part in self.parts.values())
        assert all(q.reserved == 0 for nodes in self.p.positions.values() for q in nodes.values())

    def place(self, rid: str, lines: tuple[Line, ...], ttl: int) -> bool:
        wanted: dict[tuple[str, str], int] = {}  # per position, in order of first mention
        for line in lines:
            wanted[(line.sku, line.node_id)] = wanted.get((line.sku, line.node_id), 0) + line.quantity
        short = tuple(
            ShortLine(sku, node, quantity, available)
            for (sku, node), quantity in wanted.items()
            if quantity > (available := self.model_available((sku, node)))
        )
        command = PlaceHold(P, rid, fingerprint(lines), lines, self.now, self.now + ttl)
        if any(line.quantity < 1 for line in lines):
            result = self.run_unchanged(command)
            assert result.outcome is HoldOutcome.INVALID
            assert rid not in self.p.parts
            return False
        if short:
            result = self.run_unchanged(command)
            assert result.outcome is HoldOutcome.SHORT
            assert result.short == short
            assert rid not in self.p.parts
            return False
        before = {key: self.p.view(*key) for key in wanted}
        result, events = self.run(command)
        assert result.outcome is HoldOutcome.PLACED, (result, short)
        assert len(events) == 1
        assert result.part is not None
        assert result.part.state is PartState.HELD
        for key, quantity in wanted.items():
            after = self.p.view(*key)
            prior = before[key]
            # a successful hold never drives available below zero
            assert after.on_hand - after.reserved - after.committed >= 0
            assert after.reserved == prior.reserved + quantity
            assert (after.on_hand, after.committed) == (prior.on_hand, prior.committed)
        self.parts[rid] = ModelPart(lines, fingerprint(lines), PartState.HELD, self.now, self.now + ttl)
        return True

    def pick_part(self, data) -> str:
        """Mostly a known part, now and then an aborted or never-placed id."""
        if self.parts and data.draw(st.integers(0, 7), label="unknown?") < 7:
            return data.draw(st.sampled_from(sorted(self.parts)), label="reservation_id")
        return data.draw(st.sampled_from([*sorted(self.aborted), GHOST]), label="reservation_id")

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

    # --- holds ---

    @rule(lines=hold_lines, ttl=st.integers(1, 40))
    def place_hold(self, lines, ttl):
        self.place(self.new_id("r"), lines, ttl)

    @rule(key=keys, extra=st.sampled_from((0, 1)), ttl=st.integers(1, 40))
    def place_hold_at_the_boundary(self, key, extra, ttl):
        """Ask for exactly what is available (fits) or one more (short)."""
        quantity = self.model_available(key) + extra
        if quantity >= 1:
            self.place(self.new_id("r"), (Line(key[0], key[1], quantity),), ttl)

    @rule(lines=invalid_lines)
    def place_invalid_hold(self, lines):
        assert not self.place(self.new_id("r"), lines, 10)

    @precondition(lambda self: self.aborted)
    @rule(data=st.data(), lines=hold_lines, ttl=st.integers(1, 40))
    def place_hold_reusing_aborted_id(self, data, lines, ttl):
        rid = data.draw(st.sampled_from(sorted(self.aborted)))
        if self.place(rid, lines, ttl):
            self.aborted.discard(rid)

    @precondition(lambda self: self.parts)
    @rule(data=st.data(), same=st.booleans(), ttl=st.integers(1, 40))
    def place_hold_retry(self, data, same, ttl):
        rid = data.draw(st.sampled_from(sorted(self.parts)))
        original = self.parts[rid]
        if same:
            lines = tuple(data.draw(st.permutations(original.lines)))
        else:
            lines = data.draw(hold_lines.filter(lambda ls: fingerprint(ls) != original.fingerprint))
        existing = self.p.parts[rid]
        command = PlaceHold(P, rid, fingerprint(lines), lines, self.now, self.now + ttl)
        result = self.run_unchanged(command)
        assert result.outcome is (HoldOutcome.REPLAYED if same else HoldOutcome.CONFLICT)
        assert result.part == existing

    @precondition(lambda self: self.parts)
    @rule(data=st.data())
    def confirm(self, data):
        rid = self.pick_part(data)
        command = ConfirmPart(P, rid, self.now)
        part = self.parts.get(rid)
        if part is None:
            assert self.run_unchanged(command).outcome is PartOutcome.NOT_FOUND
            return
        state = part.effective(self.now)
        if state is PartState.HELD:
            result, events = self.run(command)
            assert result.outcome is PartOutcome.CHANGED
            assert events == [PartChanged(rid, PartState.CONFIRMED, self.now)]
            part.state = PartState.CONFIRMED
            part.changed_at = self.now
        else:
            result = self.run_unchanged(command)
            expected = PartOutcome.REPLAYED if state is PartState.CONFIRMED else PartOutcome.REFUSED
            assert result.outcome is expected
        assert result.state is part.effective(self.now)

    @precondition(lambda self: self.parts)
    @rule(data=st.data())
    def release(self, data):
        rid = self.pick_part(data)
        command = ReleasePart(P, rid, self.now)
        part = self.parts.get(rid)
        if part is None:
            assert self.run_unchanged(command).outcome is PartOutcome.NOT_FOUND
            return
        state = part.effective(self.now)
        if state in (PartState.HELD, PartState.CONFIRMED):
            result, events = self.run(command)
            assert result.outcome is PartOutcome.CHANGED
            assert events == [PartChanged(rid, PartState.RELEASED, self.now)]
            part.state = PartState.RELEASED
            part.changed_at = self.now
        else:
            result = self.run_unchanged(command)
            expected = PartOutcome.REPLAYED if state is PartState.RELEASED else PartOutcome.REFUSED
            assert result.outcome is expected
        assert result.state is part.effective(self.now)

    @precondition(lambda self: self.parts)
    @rule(data=st.data())
    def abort(self, data):
        rid = self.pick_part(data)
        command = AbortHold(P, rid)
        part = self.parts.get(rid)
        if part is None or part.state is not PartState.HELD:
            assert self.run_unchanged(command).outcome is PartOutcome.NOT_FOUND
            return
        result, events = self.run(command)
        assert result.outcome is PartOutcome.CHANGED
        assert len(events) == 1
        assert rid not in self.p.parts
        del self.parts[rid]
        self.aborted.add(rid)

    # --- time ---

    @rule(dt=st.integers(0, 8))
    def advance_clock(self, dt):
        self.now += dt

    @precondition(lambda self: any(part.state is PartState.HELD for part in self.parts.values()))
    @rule(data=st.data(), offset=st.sampled_from((-1.0, 0.0, 1.0, GRACE - 0.5, GRACE, GRACE + 1)))
    def advance_to_an_expiry(self, data, offset):
        """Jump to just around some hold's expiry, where the boundaries are."""
        held = sorted(part.expires_at for part in self.parts.values() if part.state is PartState.HELD)
        self.now = max(self.now, data.draw(st.sampled_from(held)) + offset)

    @rule()
    def expire_due(self):
        self.expire()

    @rule()
    def every_hold_ends(self):
        self.end_every_hold()

    # --- recovery ---

    @rule()
    def recover_from_snapshot(self):
        """Carry on with a partition restored from a dump of the live one (snapshot recovery)."""
        live = self.p
        restored = Partition(P)
        restored.restore(
            live.levels(),
            list(live.parts.values()),
            list(live.claims.values()),
            list(live.adjustments.values()),
        )
        assert snapshot(restored) == snapshot(live)
        self.p = restored

    # --- claims ---

    @rule(data=st.data(), fp=st.sampled_from(("f1", "f2")), again=st.booleans())
    def record_claim(self, data, fp, again):
        if again and self.claims:
            rid = data.draw(st.sampled_from(sorted(self.claims)))
            claim = self.claims[rid]
            result = self.run_unchanged(RecordClaim(P, rid, fp, (P, P + 1), self.now))
            expected = ClaimOutcome.EXISTS if fp == claim.fingerprint else ClaimOutcome.CONFLICT
            assert result.outcome is expected
            assert result.claim == claim
            return
        rid = self.new_id("c")
        result, events = self.run(RecordClaim(P, rid, fp, (P,), self.now))
        assert result.outcome is ClaimOutcome.RECORDED
        assert len(events) == 1
        self.claims[rid] = Claim(rid, fp, (P,), self.now)

    @precondition(lambda self: self.claims)
    @rule(data=st.data())
    def drop_claim(self, data):
        rid = data.draw(st.sampled_from(sorted(self.claims)))
        result, events = self.run(DropClaim(P, rid))
        assert result.outcome is ClaimOutcome.DROPPED
        assert len(events) == 1
        del self.claims[rid]
        assert self.run_unchanged(GetClaim(P, rid)).outcome is ClaimOutcome.NOT_FOUND

    # --- invariants ---

    @invariant()
    def positions_match_the_model(self):
        counts = self.model_counts()
        for key in KEYS:
            view = self.p.view(*key)
            assert view.on_hand == self.on_hand[key], key
            assert view.as_of == self.as_of[key], key
            assert (view.reserved, view.committed) == counts[key], key
        assert self.p.parts == {
            rid: Part(rid, m.fingerprint, m.lines, m.state, m.created_at, m.expires_at, m.changed_at)
            for rid, m in self.parts.items()
        }
        assert {(v.sku, v.node_id) for sku in self.p.skus() for v in self.p.views(sku)} <= set(KEYS)
        assert self.p.claims == self.claims
        assert {
            adjustment_id: (a.sku, a.node_id, a.delta) for adjustment_id, a in self.p.adjustments.items()
        } == self.adjustments

    @invariant()
    def conservation_check_is_clean(self):
        assert self.p.check() == []

    @invariant()
    def replaying_the_events_rebuilds_the_partition(self):
        fresh = Partition(P)
        for event in self.log:
            fresh.apply(event)
        assert snapshot(fresh) == snapshot(self.p)

    def teardown(self):
        if sys.exc_info()[0] is not None:
            return  # the run already failed; don't mask that failure
        # every hold ends, in the live partition and in one rebuilt from its events
        fresh = Partition(P)
        for event in self.log:
            fresh.apply(event)
        mark = len(self.log)
        self.end_every_hold()
        assert fresh.expire_due(self.now, GRACE) == self.log[mark:]
        assert snapshot(fresh) == snapshot(self.p)


PartitionMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow],
)
TestPartitionMachine = PartitionMachine.TestCase
