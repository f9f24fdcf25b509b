"""Reservations across partitions: all-or-nothing holds, confirm, release, lookup.

A reservation's lines are split by partition into parts, each held by the shard that
owns the partition. Its id is claimed in its home partition (a hash of the id), which
makes the id unique network-wide, records where the parts are, and holds the one
decision about the reservation as a whole (docs/consistency.md):

- Reserve is a two-phase commit with the home as the durable coordinator: the attempt is
  recorded (PENDING), the parts are placed, then the home decides HELD or ABORTED. An
  attempt nobody decides is aborted by the home's timer.
- Every later change (confirm, release, extend, fulfil, cancel, expiry) is decided at the
  home first and journaled there with the steps each part must take (an intent); the
  steps are carried to the parts afterwards, by the caller, by the home's shard for its
  own partitions, and by any gateway the shard hands an unfinished intent to.

Shards are reached only through `execute`, which takes a list of commands and returns
their results in order (the gateway batches them per shard).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar, cast

from omnistock.availability.atp import ChannelLimit
from omnistock.reservations import crash_points
from omnistock.reservations.domain.commands import (
    Asks,
    BatchCommand,
    CapacityResult,
    CarryStep,
    ClaimOutcome,
    ClaimResult,
    CloseLines,
    Command,
    ConfirmReservation,
    DecideClose,
    DecideHold,
    DecisionOutcome,
    DecisionResult,
    ExtendReservation,
    GetClaim,
    GetPart,
    HoldOutcome,
    HoldResult,
    MarkCarried,
    MoveLine,
    PartOutcome,
    PartResult,
    PlaceHold,
    ReadCapacity,
    ReleaseReservation,
    ReserveTogether,
    ReserveTogetherResult,
    Result,
    ReturnUnits,
)
from omnistock.reservations.domain.errors import (
    AlreadyExists,
    CapacityReached,
    FailedPrecondition,
    InsufficientStock,
    InvalidArgument,
    InvalidState,
    NotFound,
    PurchaseLimitExceeded,
    Unavailable,
)
from omnistock.reservations.domain.model import (
    Claim,
    Close,
    Decision,
    Follow,
    Intent,
    Line,
    Part,
    PartState,
    fingerprint,
    line_key,
    utc_day,
)
from omnistock.reservations.domain.reservation_view import (
    ReservationView,
    capacity_key,
    fresh_hold,
    merge,
    shown_state,
)
from omnistock.reservations.domain.sourcing import Destination, LineSourcing
from omnistock.reservations.shard.state import WrongShard

log = logging.getLogger(__name__)

R = TypeVar("R")

Execute = Callable[[Sequence[BatchCommand]], Awaitable[list[Result]]]
Colocated = Callable[[Sequence[int]], bool]
"""Whether these partitions are all owned by one shard (one call then decides a Reserve whole)."""


@dataclass(frozen=True, slots=True)
class Sourced:
    """What a sourced Reserve adds to its hold."""

    fingerprint: str
    """Of the request as asked (lines without nodes, destination): a retry re-plans, but is
    still the same request."""
    explanation: tuple[LineSourcing, ...]
    destination: Destination
    capacity: tuple[tuple[str, int], ...] = ()
    """(node_id, daily capacity) of each chosen node that has one."""


class ReservationCoordinator:
    def __init__(
        self,
        execute: Execute,
        partition_of: Callable[[str], int],
        clock: Callable[[], float],
        colocated: Colocated = lambda partitions: False,
        new_attempt: Callable[[], str] = lambda: uuid.uuid4().hex[:16],
        execute_once: Execute | None = None,
    ) -> None:
        self._execute = execute
        self._execute_once = execute_once or execute
        """Sends without following a partition that moved: its commands come back WrongShard."""
        self._partition_of = partition_of
        self._clock = clock
        self._colocated = colocated
        self._new_attempt = new_attempt
        self._marking: set[asyncio.Task[None]] = set()

    async def _ask(self, commands: Sequence[Asks[R]]) -> list[R]:
        """Commands answered alike, their results typed as the commands declare them (a
        partition answers each with its RESULT_OF)."""
        return cast("list[R]", await self._execute(cast("Sequence[Command]", commands)))

    # --- Reserve: a two-phase commit with the home as coordinator ---

    async def reserve(
        self,
        reservation_id: str,
        lines: Sequence[Line],
        ttl_seconds: float,
        channel: str = "",
        limits: Mapping[tuple[str, str], ChannelLimit] | None = None,
        customer: str = "",
        purchase_limits: Mapping[str, int] | None = None,
        sourced: Sourced | None = None,
        by: str = "",
        _retried: bool = False,
    ) -> tuple[ReservationView, bool]:
        """Hold every line or none for `by` (the caller's label, recorded with the hold).
        Returns (reservation, replayed).

        Through a channel, each line may only take what `limits` (the channel's rules
        at that position) let the channel promise. A sourced order also takes one order
        of each chosen node's daily capacity, in the same all-or-nothing step.

        The attempt is recorded PENDING at the home, its parts are placed, then the home
        decides: HELD when every part was placed, else ABORTED (the parts withdrawn). With
        every partition in one shard, the three steps are one call."""
        partition_of = self._partition_of
        now = self._clock()
        day = utc_day(now)
        plan = ReserveTogether(
            partition_of(reservation_id),
            reservation_id,
            sourced.fingerprint if sourced else fingerprint(lines, channel, customer),
            tuple(lines),
            tuple(partition_of(line.sku) for line in lines),
            now,
            now + ttl_seconds,
            self._new_attempt(),
            channel,
            tuple(limits[line_key(line)] for line in lines) if limits else (),
            customer,
            tuple(purchase_limits.items()) if customer and purchase_limits else (),
            tuple(
                (partition_of(capacity_key(node_id)), node_id, day, most)
                for node_id, most in (sourced.capacity if sourced else ())
            ),
            sourced.explanation if sourced else (),
            sourced.destination if sourced else None,
            by,
        )
        home, attempt, partitions = plan.partition, plan.attempt, plan.partitions

        placed: dict[int, HoldResult] = {}
        decided: DecisionResult | None = None
        together: list[Result] = []
        if self._colocated((home, *partitions)):
            (answer,) = await self._execute_once([plan])
            if isinstance(answer, ReserveTogetherResult):
                if answer.held:  # the common case: nothing to make out of the steps
                    crash_points.crash_point("reserve.before_reply")
                    return fresh_hold(plan), False
                together = list(answer.steps)
            else:
                together = [answer]
        holds = plan.holds()
        if together and not isinstance(together[0], WrongShard):
            claimed, last = together[0], together[-1]
            assert isinstance(claimed, ClaimResult)
            placed = {
                p: r for p, r in zip(partitions, together[1:-1], strict=True) if isinstance(r, HoldResult)
            }
            if isinstance(last, DecisionResult):
                decided = last
            elif claimed.outcome is ClaimOutcome.RECORDED:
                # A part's partition moved to another shard meanwhile: the rest of the Reserve
                # was not applied; it goes on as across shards.
                decided = await self._place_and_decide(home, reservation_id, attempt, holds, placed, by)
        else:  # across shards, or the home's partition moved before anything was applied
            # Parts in the home's shard go with the record (that shard checks the attempt owns
            # the id); the others only once the record is known to be this attempt's.
            here = [p for p in partitions if self._colocated((home, p))]
            results = await self._execute([plan.record(), *(holds[p] for p in here)])
            claimed = results[0]
            assert isinstance(claimed, ClaimResult)
            placed = dict(zip(here, _holds(results[1:]), strict=True))
            if claimed.outcome is ClaimOutcome.RECORDED:
                decided = await self._place_and_decide(home, reservation_id, attempt, holds, placed, by)

        if claimed.outcome is ClaimOutcome.CONFLICT or any(
            h.outcome is HoldOutcome.CONFLICT for h in placed.values()
        ):
            raise AlreadyExists(
                "reservation",
                reservation_id,
                f"reservation id {reservation_id!r} is already used with other lines, channel or customer;"
                " use a new id for a new reservation",
            )
        if claimed.outcome is ClaimOutcome.BUSY:
            raise Unavailable(f"reservation {reservation_id!r}: an earlier attempt is being withdrawn; retry")
        if claimed.outcome is ClaimOutcome.EXISTS:
            assert claimed.claim is not None
            # The same Reserve in flight from another call: its answer is this one's.
            pending = claimed.claim.decision is Decision.PENDING
            if pending and not await self._decided(reservation_id) and not _retried:
                return await self.reserve(
                    reservation_id,
                    lines,
                    ttl_seconds,
                    channel,
                    limits,
                    customer,
                    purchase_limits,
                    sourced,
                    by,
                    True,
                )
            return await self._replay(reservation_id, claimed)
        assert decided is not None
        crash_points.crash_point("reserve.before_reply")
        if decided.decision is Decision.HELD:
            parts = [h.part for h in placed.values() if h.part is not None]
            return merge(reservation_id, parts, decided.claim, Decision.HELD), False
        if decided.outcome is not DecisionOutcome.DECIDED:
            # The home's timer aborted the attempt first (this gateway was too slow).
            raise Unavailable(f"reservation {reservation_id!r} took too long to place; retry")
        _raise_refusal(reservation_id, customer, list(placed.values()))
        raise Unavailable(f"reservation {reservation_id!r} could not be placed; retry")

    async def _place_and_decide(
        self,
        home: int,
        reservation_id: str,
        attempt: str,
        holds: Mapping[int, PlaceHold],
        placed: dict[int, HoldResult],
        by: str,
    ) -> DecisionResult:
        """The parts outside the home's shard, then the home's decision (and, for an abort,
        the withdrawal of what was placed)."""
        crash_points.crash_point("reserve.after_claim")
        rest = [p for p in holds if p not in placed]
        unknown = False
        try:
            placed.update(zip(rest, _holds(await self._execute([holds[p] for p in rest])), strict=True))
        except Unavailable:
            unknown = True  # some parts may have been placed: they are withdrawn (fenced) below
        crash_points.crash_point("reserve.after_parts")
        ok = not unknown and all(h.outcome in _HELD for h in placed.values())
        refused = () if ok else tuple(p for p, h in placed.items() if h.outcome not in _MAY_HOLD)
        (result,) = await self._execute([DecideHold(home, reservation_id, attempt, ok, refused, by)])
        assert isinstance(result, DecisionResult)
        if result.carry is not None:
            await self._carry(home, reservation_id, result.carry)
        if unknown:
            raise Unavailable(f"reservation {reservation_id!r}: a shard did not answer; retry")
        return result

    async def _decided(self, reservation_id: str) -> bool:
        """Wait (a little) for another call's Reserve of this id to be decided: True once it
        is, False once it is gone (aborted: the id is free again)."""
        delay = 0.005
        home = self._partition_of(reservation_id)
        for _ in range(12):  # about 5 s in all, the longest an attempt stays undecided
            await asyncio.sleep(delay)
            (result,) = await self._execute([GetClaim(home, reservation_id)])
            assert isinstance(result, ClaimResult)
            if result.claim is None or result.decision is Decision.ABORTED:
                return False
            if result.decision is not Decision.PENDING:
                return True
            delay = min(delay * 2, 1.0)
        raise Unavailable(f"reservation {reservation_id!r} is being placed by another call; retry")

    async def _replay(self, reservation_id: str, claimed: ClaimResult) -> tuple[ReservationView, bool]:
        """A Reserve with an id already taken for the same content: the reservation as it is."""
        try:
            return await self.get(reservation_id), True
        except NotFound:  # decided ABORTED meanwhile (another call's attempt was refused)
            raise Unavailable(f"reservation {reservation_id!r} is being withdrawn; retry") from None

    # --- changes decided at the home, then carried to the parts ---

    async def confirm(self, reservation_id: str, by: str = "") -> tuple[ReservationView, bool]:
        home = self._partition_of(reservation_id)
        command = ConfirmReservation(home, reservation_id, by)
        return await self._transition(reservation_id, "confirm", command)

    async def release(self, reservation_id: str, by: str = "") -> tuple[ReservationView, bool]:
        home = self._partition_of(reservation_id)
        command = ReleaseReservation(home, reservation_id, by)
        return await self._transition(reservation_id, "release", command)

    async def extend(self, reservation_id: str, ttl_seconds: float, by: str = "") -> ReservationView:
        """A HELD reservation now expires `ttl_seconds` from now (every part alike)."""
        home = self._partition_of(reservation_id)
        command = ExtendReservation(home, reservation_id, self._clock() + ttl_seconds, by)
        view, _ = await self._transition(reservation_id, "extend", command)
        return view

    async def _transition(
        self,
        reservation_id: str,
        action: str,
        command: ConfirmReservation | ReleaseReservation | ExtendReservation,
    ) -> tuple[ReservationView, bool]:
        result, parts = await self._decide(command)
        if result.outcome is DecisionOutcome.NOT_FOUND or result.claim is None:
            raise NotFound("reservation", reservation_id)
        assert result.decision is not None
        view = await self._view(result.claim, result.decision, parts)
        if result.outcome is DecisionOutcome.REFUSED:
            raise InvalidState(action, view)
        return view, result.outcome is DecisionOutcome.REPLAYED

    async def _decide(self, command: Command) -> tuple[DecisionResult, dict[int, Part]]:
        """Ask the home to decide; carry what its shard could not. Returns the decision and
        the parts as their steps left them. An earlier decision still on its way is carried
        first (the home says BUSY), so parts take decisions in the order they were made."""
        for _ in range(3):
            (result,) = await self._execute([command])
            assert isinstance(result, DecisionResult)
            parts = {p: r.part for p, r in result.carried if r.part is not None}
            busy = result.outcome is DecisionOutcome.BUSY
            if result.carry is not None and result.claim is not None:
                crash_points.crash_point("decide.before_carry")
                rid = result.claim.reservation_id
                carried = await self._carry(command.partition, rid, result.carry, wait=busy)
                parts.update((p, r.part) for p, r in carried if r.part is not None)
            if not busy:
                return result, parts
        raise Unavailable("the reservation is still taking an earlier change; retry")

    async def finish(self, home: int, reservation_id: str, intent: Intent) -> None:
        """Carry an intent a shard handed out (a decision its own gateway did not finish)."""
        await self._carry(home, reservation_id, intent)

    async def _carry(
        self, home: int, reservation_id: str, intent: Intent, wait: bool = False
    ) -> list[tuple[int, PartResult]]:
        """Every step to its part, then tell the home: not awaited unless `wait` (the caller
        decides next), as a home that never hears hands the intent out again (its steps are
        idempotent)."""
        commands: list[Command] = [CarryStep(p, reservation_id, step) for p, step in intent.steps]
        if crash_points.armed("carry.between_parts") and len(commands) > 1:
            await self._execute(commands[:1])
            crash_points.crash_point("carry.between_parts")
        results = await self._execute(commands)
        crash_points.crash_point("carry.before_mark")
        mark = MarkCarried(home, reservation_id, intent.operation, intent.partitions)
        if wait:
            await self._execute([mark])
        else:
            task = asyncio.ensure_future(self._mark(mark))
            self._marking.add(task)
            task.add_done_callback(self._marking.discard)
        return [(p, r) for p, r in zip(intent.partitions, results, strict=True) if isinstance(r, PartResult)]

    async def _mark(self, mark: MarkCarried) -> None:
        try:
            await self._execute([mark])
        except Unavailable as error:  # the home hands the intent out again after its lease
            log.info("home of %s not told its steps were taken: %s", mark.reservation_id, error)

    async def settled(self) -> None:
        """Wait for the homes to be told of every carried step (tests, shutdown)."""
        while self._marking:
            await asyncio.gather(*self._marking, return_exceptions=True)

    async def close_lines(
        self, reservation_id: str, operation_id: str, kind: str, lines: Sequence[Line], by: str = ""
    ) -> tuple[ReservationView, bool]:
        """Fulfil (kind "fulfilled") or cancel (kind "cancelled") units of some lines.

        The operation is first checked against every part (state, open units, stock to
        ship, the id's earlier use) without changing anything; only if every part would
        take it is it decided at the home and carried to the parts. So a refusal changes
        nothing, and a crash midway is finished by recovery. Only a count that takes the
        units to ship between the check and the change can refuse a part its step (the
        refusal then says which parts shipped)."""
        claim, decision = await self._claim(reservation_id)
        for intent in claim.intents:  # parts first take what was decided before
            await self._carry(self._partition_of(reservation_id), reservation_id, intent, wait=True)
        partitions = claim.partitions
        action = "fulfil" if kind == "fulfilled" else "cancel lines of"
        grouped: dict[int, list[Line]] = {}
        for line in lines:
            grouped.setdefault(self._partition_of(line.sku), []).append(line)
        by_partition = {p: tuple(part_lines) for p, part_lines in grouped.items()}
        if not set(by_partition) <= set(partitions):
            missing = next(line for line in lines if self._partition_of(line.sku) not in partitions)
            raise InvalidArgument(
                [("lines", f"{missing.sku} at {missing.node_id} is not in this reservation")]
            )
        at = self._clock()
        checks: list[Asks[PartResult]] = [
            CloseLines(p, reservation_id, operation_id, kind, by_partition[p], at, check_only=True)
            if p in by_partition
            else GetPart(p, reservation_id)
            for p in partitions
        ]
        results = await self._ask(checks)
        if any(r.part is None for r in results):
            raise NotFound("reservation", reservation_id)
        parts = {p: r.part for p, r in zip(partitions, results, strict=True) if r.part is not None}
        asked = {p: r for p, r in zip(partitions, results, strict=True) if p in by_partition}
        view = merge(reservation_id, list(parts.values()), claim, decision)
        for p, part_lines in by_partition.items():
            missing_line = next(
                (ln for ln in part_lines if parts[p].line_index(ln.sku, ln.node_id) is None), None
            )
            if missing_line is not None:
                where = f"{missing_line.sku} at {missing_line.node_id}"
                raise InvalidArgument([("lines", f"{where} is not in this reservation")])
        used_in = {p for p, part in parts.items() if part.knows_operation(operation_id)}
        if used_in:
            # A retry must name the same lines: the partitions that applied it, and only those.
            if used_in != set(by_partition) or any(
                r.outcome is not PartOutcome.REPLAYED for r in asked.values()
            ):
                raise FailedPrecondition(
                    f"cannot {action} reservation {reservation_id!r}: id {operation_id!r} was used with"
                    " other content; use a new id for a new operation"
                )
            return view, True
        allowed = (Decision.CONFIRMED,) if kind == "fulfilled" else (Decision.HELD, Decision.CONFIRMED)
        if view.state not in {d.part_state for d in allowed}:
            raise InvalidState(action, view)
        self._raise_refused(reservation_id, action, view, list(asked.values()))
        ends = _ends(parts, by_partition, kind)
        steps: list[tuple[int, Close | Follow]] = [
            (p, Close(operation_id, kind, by_partition[p], at, by)) for p in asked
        ]
        if ends is not None:  # a part that only counts a node's daily capacity ends with the lines
            follow = Follow(ends.part_state, at, parts[next(iter(parts))].expires_at, by=by)
            steps.extend((p, follow) for p, part in parts.items() if not part.lines and part.state.is_open)
        home = self._partition_of(reservation_id)
        decided, carried = await self._decide(
            DecideClose(home, reservation_id, operation_id, tuple(steps), allowed, ends, by)
        )
        if decided.outcome is DecisionOutcome.NOT_FOUND or decided.claim is None:
            raise NotFound("reservation", reservation_id)
        if decided.outcome is DecisionOutcome.REFUSED:
            assert decided.decision is not None
            raise InvalidState(action, await self._view(decided.claim, decided.decision, parts))
        step_results = {p: r for p, r in decided.carried}
        parts.update(carried)
        view = merge(reservation_id, list(parts.values()), decided.claim, decided.decision)
        refused_after = [
            p for p in asked if p in step_results and step_results[p].outcome is PartOutcome.REFUSED
        ]
        if refused_after:
            log.warning(
                "%s %s of reservation %s was refused in part after its check: the others stay applied",
                kind,
                operation_id,
                reservation_id,
            )
            self._raise_refused(reservation_id, action, view, [step_results[p] for p in refused_after])
        return view, decided.outcome is DecisionOutcome.REPLAYED

    async def _refuse_id_used_elsewhere(
        self, reservation_id: str, partitions: Sequence[int], partition: int, operation_id: str, action: str
    ) -> None:
        """An operation id is unique within its reservation: refuse one that a part in
        another partition already applied (the partition asked checks its own)."""
        others = [p for p in partitions if p != partition]
        if not others:
            return
        results = await self._execute([GetPart(p, reservation_id) for p in others])
        if any(
            isinstance(r, PartResult) and r.part and r.part.knows_operation(operation_id) for r in results
        ):
            raise FailedPrecondition(
                f"cannot {action} reservation {reservation_id!r}: id {operation_id!r} was used with"
                " other content; use a new id for a new operation"
            )

    def _raise_refused(
        self, reservation_id: str, action: str, view: ReservationView, results: Sequence[PartResult]
    ) -> None:
        refused = [r for r in results if r.outcome is PartOutcome.REFUSED]
        if not refused:
            return
        if refused[0].reason:
            raise FailedPrecondition(f"cannot {action} reservation {reservation_id!r}: {refused[0].reason}")
        raise InvalidState(action, replace(view, state=shown_state(view, refused)))

    async def return_units(
        self,
        reservation_id: str,
        return_id: str,
        line: Line,
        node_id: str,
        sellable: bool,
        by: str = "",
    ) -> tuple[ReservationView, bool]:
        """Fulfilled units of `line` (its sku and reserved node; quantity = units) come back at `node_id`."""
        claim, _ = await self._claim(reservation_id)
        partitions = claim.partitions
        partition = self._partition_of(line.sku)
        if partition not in partitions:
            raise InvalidArgument([("sku", f"{line.sku} is not in reservation {reservation_id!r}")])
        await self._refuse_id_used_elsewhere(reservation_id, partitions, partition, return_id, "return to")
        command = ReturnUnits(
            partition,
            reservation_id,
            return_id,
            line.sku,
            line.node_id,
            node_id,
            line.quantity,
            sellable,
            self._clock(),
            by,
        )
        (result,) = await self._execute([command])
        assert isinstance(result, PartResult)
        if result.outcome is PartOutcome.REFUSED:
            raise FailedPrecondition(f"cannot return to reservation {reservation_id!r}: {result.reason}")
        if result.outcome is PartOutcome.NOT_FOUND:
            raise NotFound("reservation", reservation_id)
        return await self.get(reservation_id), result.outcome is PartOutcome.REPLAYED

    # --- reads ---

    async def get(self, reservation_id: str) -> ReservationView:
        claim, decision = await self._claim(reservation_id)
        return await self._view(claim, decision, {})

    async def _view(self, claim: Claim, decision: Decision, known: Mapping[int, Part]) -> ReservationView:
        """The reservation as its home decided it, with the parts (those not in `known` read now)."""
        parts = dict(known)
        missing = [p for p in claim.partitions if p not in parts]
        if missing:
            results = await self._execute([GetPart(p, claim.reservation_id) for p in missing])
            parts.update(
                (p, r.part)
                for p, r in zip(missing, results, strict=True)
                if isinstance(r, PartResult) and r.part
            )
        if len(parts) < len(claim.partitions):
            raise NotFound("reservation", claim.reservation_id)
        return merge(claim.reservation_id, [parts[p] for p in claim.partitions], claim, decision)

    async def _claim(self, reservation_id: str) -> tuple[Claim, Decision]:
        """The claim of a reservation a client may know of (decided, not aborted) and its
        decision as of now on the home's clock."""
        (result,) = await self._execute([GetClaim(self._partition_of(reservation_id), reservation_id)])
        assert isinstance(result, ClaimResult)
        if result.claim is None or result.decision in (None, Decision.PENDING, Decision.ABORTED):
            raise NotFound("reservation", reservation_id)
        assert result.decision is not None
        return result.claim, result.decision

    async def find(self, reservation_id: str) -> Claim | None:
        """The reservation's claim (its fingerprint, partitions and sourcing), if it was decided."""
        try:
            claim, _ = await self._claim(reservation_id)
        except NotFound:
            return None
        return claim

    async def capacity_used(self, node_ids: Sequence[str]) -> dict[str, int]:
        """Orders each node has taken today (UTC), in one call per partition."""
        by_partition: dict[int, list[str]] = {}
        for node_id in node_ids:
            by_partition.setdefault(self._partition_of(capacity_key(node_id)), []).append(node_id)
        if not by_partition:
            return {}
        day = utc_day(self._clock())
        results = await self._execute([ReadCapacity(p, day, tuple(n)) for p, n in by_partition.items()])
        used: dict[str, int] = {}
        for result in results:
            assert isinstance(result, CapacityResult)
            used.update(result.used)
        return used

    async def move_line(
        self,
        reservation_id: str,
        operation_id: str,
        sku: str,
        from_node: str,
        to_node: str,
        limit: ChannelLimit | None,
        by: str = "",
    ) -> tuple[ReservationView, bool]:
        """Move a line's open units to `to_node` in one step (one partition holds both nodes
        of a SKU, so the new node is held and the old freed atomically)."""
        claim, decision = await self._claim(reservation_id)
        partitions = claim.partitions
        partition = self._partition_of(sku)
        if partition not in partitions:
            raise InvalidArgument([("sku", f"{sku} is not in reservation {reservation_id!r}")])
        await self._refuse_id_used_elsewhere(
            reservation_id, partitions, partition, operation_id, "move the line of"
        )
        command = MoveLine(
            partition, reservation_id, operation_id, sku, from_node, to_node, self._clock(), limit, by
        )
        if not decision.is_open:  # decided at the home: its parts may not have taken it yet
            current = await self._view(claim, decision, {})
            if current.state is not PartState.FULFILLED:
                (replay,) = await self._execute([GetPart(partition, reservation_id)])
                assert isinstance(replay, PartResult)
                if not (replay.part and replay.part.knows_operation(operation_id)):
                    raise InvalidState("move a line of", current)
        (result,) = await self._execute([command])
        assert isinstance(result, PartResult)
        if result.outcome is PartOutcome.NOT_FOUND:
            raise NotFound("reservation", reservation_id)
        if result.outcome is PartOutcome.REFUSED:
            if result.reason:
                raise FailedPrecondition(
                    f"cannot move the line of reservation {reservation_id!r}: {result.reason}"
                )
            current = await self.get(reservation_id)
            raise InvalidState("move a line of", replace(current, state=result.state or current.state))
        return await self.get(reservation_id), result.outcome is PartOutcome.REPLAYED


_HELD = (HoldOutcome.PLACED, HoldOutcome.REPLAYED)
"""Outcomes after which a partition holds its part of the attempt."""
_MAY_HOLD = (HoldOutcome.PLACED, HoldOutcome.REPLAYED, HoldOutcome.CONFLICT)
"""Outcomes after which a partition may hold a part of the attempt."""


def _holds(results: Sequence[Result]) -> list[HoldResult]:
    holds = [r for r in results if isinstance(r, HoldResult)]
    assert len(holds) == len(results)
    return holds


def _raise_refusal(reservation_id: str, customer: str, holds: Sequence[HoldResult]) -> None:
    """The reason a Reserve was refused, by precedence (the same as a single partition's)."""
    if any(h.outcome is HoldOutcome.INVALID for h in holds):
        raise InvalidArgument([("lines", "every quantity must be at least 1")])
    over = [o for h in holds for o in h.over_limit]
    short = [line for h in holds for line in h.short]
    if over and not short:
        raise PurchaseLimitExceeded(customer, over)
    if short:
        raise InsufficientStock(short)
    full = sorted(node_id for h in holds for node_id in h.full)
    if full:
        raise CapacityReached(full)
    if any(h.outcome is HoldOutcome.FENCED for h in holds):
        raise Unavailable(f"reservation {reservation_id!r} was aborted while it was placed; retry")


def _ends(parts: Mapping[int, Part], closing: Mapping[int, Sequence[Line]], kind: str) -> Decision | None:
    """How the reservation ends if closing these lines leaves no unit open (else None)."""
    shipped = kind == "fulfilled"
    for p, part in parts.items():
        if not part.lines:
            continue
        closed: dict[tuple[str, str], int] = {}
        for line in closing.get(p, ()):
            closed[(line.sku, line.node_id)] = closed.get((line.sku, line.node_id), 0) + line.quantity
        for i, line in enumerate(part.lines):
            if part.open_units(i) - closed.get((line.sku, line.node_id), 0) > 0:
                return None
        shipped = shipped or any(part.fulfilled)
    return Decision.FULFILLED if shipped else Decision.RELEASED
