"""Reservations across partitions: all-or-nothing holds, confirm, release, lookup.

A reservation's lines are split by partition into parts, each held by the shard
that owns the partition. The reservation id is claimed in its home partition
(hash of the id), which makes the id unique network-wide and records where the
parts are. Shards are reached only through `execute`, which takes a list of
commands and returns their results in order (the gateway batches them per shard).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace

from availability.atp import ChannelLimit
from reservations.commands import (
    AbortHold,
    CapacityResult,
    ClaimOutcome,
    ClaimResult,
    CloseLines,
    Command,
    ConfirmPart,
    DropClaim,
    EndCapacityPart,
    ExtendPart,
    GetClaim,
    GetPart,
    HoldOutcome,
    HoldResult,
    MoveLine,
    PartOutcome,
    PartResult,
    PlaceHold,
    ReadCapacity,
    RecordClaim,
    ReleasePart,
    Result,
    ReturnUnits,
)
from reservations.errors import (
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
from reservations.model import Claim, Line, Part, PartState, fingerprint, line_key, utc_day
from reservations.sourcing import Destination, LineSourcing

log = logging.getLogger(__name__)

Execute = Callable[[Sequence[Command]], Awaitable[list[Result]]]


@dataclass(frozen=True, slots=True)
class ReservationView:
    """A whole reservation, merged from its parts."""

    reservation_id: str
    state: PartState
    lines: tuple[Line, ...]
    created_at: float
    expires_at: float
    changed_at: float
    channel: str = ""
    customer: str = ""
    history: tuple[tuple[str, float], ...] = ()
    """(what, when) of every transition, oldest first, once per transition."""
    progress: tuple[tuple[int, int, int], ...] = ()
    """(fulfilled, cancelled, returned) units of each line, in the order of `lines`."""
    sourcing: tuple[LineSourcing, ...] = ()
    """Why each sourced line went where it went (empty when the lines named their nodes)."""
    destination: Destination | None = None


def capacity_key(node_id: str) -> str:
    """What places a node's daily capacity counter in a partition."""
    return f"capacity/{node_id}"


def merged_state(parts: Sequence[Part], at: float | None = None) -> PartState:
    """The reservation's state from its parts' (as of `at`, when given: a hold past its
    expiry reads EXPIRED). An expired part means the reservation expired; otherwise it is
    open while any part is open (a part whose lines were all cancelled or fulfilled has
    settled on its own); once every part is closed, it was RELEASED if any part was
    released as a whole, else FULFILLED if anything shipped. Parts that only count a
    node's daily capacity have no lines and no say."""
    parts = [part for part in parts if part.lines] or list(parts)
    states = [part.state if at is None else part.effective_state(at) for part in parts]
    for state in (PartState.EXPIRED, PartState.HELD, PartState.CONFIRMED):
        if state in states:
            return state
    if any(
        state is PartState.RELEASED and not part.settled for part, state in zip(parts, states, strict=True)
    ):
        return PartState.RELEASED
    return PartState.FULFILLED if PartState.FULFILLED in states else PartState.RELEASED


def shown_state(view: ReservationView, refused: Sequence[PartResult]) -> PartState:
    """The state a refusal reports: the reservation's once it has ended; while it is open,
    the refusing part's as of the call (a hold just past its expiry reads EXPIRED)."""
    if not view.state.is_open:
        return view.state
    return next((r.state for r in refused if r.state is not None), view.state)


def merge(reservation_id: str, parts: Sequence[Part], claim: Claim | None = None) -> ReservationView:
    """One view of all parts (see `merged_state` for its state)."""
    state = merged_state(parts)
    parts = [part for part in parts if part.lines] or list(parts)
    rows = sorted(
        (
            (
                line,
                part.fulfilled[i] if part.fulfilled else 0,
                part.cancelled[i] if part.cancelled else 0,
                part.returned[i] if part.returned else 0,
            )
            for part in parts
            for i, line in enumerate(part.lines)
        ),
        key=lambda row: line_key(row[0]),
    )
    lines = tuple(row[0] for row in rows)
    return ReservationView(
        reservation_id,
        state,
        lines,
        min(part.created_at for part in parts),
        # A settled part keeps the expiry it had when it ended; the others' is the reservation's.
        min(part.expires_at for part in ([p for p in parts if not p.settled] or parts)),
        max((part.changed_at for part in parts if part.state is state), default=0.0),
        parts[0].channel,
        parts[0].customer,
        _history(parts),
        tuple((fulfilled, cancelled, returned) for _, fulfilled, cancelled, returned in rows),
        claim.sourcing if claim else (),
        claim.destination if claim else None,
    )


def _history(parts: Sequence[Part]) -> tuple[tuple[str, float], ...]:
    """Parts share their timestamps (one per transition), so one entry per (what, when)."""
    entries = {entry for part in parts for entry in part.history}
    return tuple(sorted(entries, key=lambda entry: (entry[1], entry[0])))


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
        claim_cache_size: int = 100_000,
    ) -> None:
        self._execute = execute
        self._partition_of = partition_of
        self._clock = clock
        # reservation id -> partitions of its parts, for reservations known to exist
        # (a claim whose Reserve succeeded never changes, so other gateways cannot make
        # it wrong; everything else is asked of the shards every time).
        self._known: OrderedDict[str, tuple[int, ...]] = OrderedDict()
        self._cache_size = claim_cache_size

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
    ) -> tuple[ReservationView, bool]:
        """Hold every line or none. Returns (reservation, replayed).

        Through a channel, each line may only take what `limits` (the channel's rules
        at that position) let the channel promise. A sourced order also takes one order
        of each chosen node's daily capacity, in the same all-or-nothing step."""
        by_partition: dict[int, list[Line]] = {}
        for line in lines:
            by_partition.setdefault(self._partition_of(line.sku), []).append(line)
        now = self._clock()
        capacity: dict[int, list[tuple[str, int, int]]] = {}
        for node_id, most in sourced.capacity if sourced else ():
            entry = (node_id, utc_day(now), most)
            capacity.setdefault(self._partition_of(capacity_key(node_id)), []).append(entry)
        partitions = tuple(sorted(set(by_partition) | set(capacity)))
        digest = sourced.fingerprint if sourced else fingerprint(lines, channel, customer)
        expires_at = now + ttl_seconds
        home = self._partition_of(reservation_id)
        commands: list[Command] = [
            RecordClaim(
                home,
                reservation_id,
                digest,
                partitions,
                now,
                sourced.explanation if sourced else (),
                sourced.destination if sourced else None,
            )
        ]
        for p in partitions:
            part_lines = tuple(by_partition.get(p, ()))
            part_limits = tuple(limits[line_key(line)] for line in part_lines) if limits else ()
            capped = tuple(
                sorted(
                    {
                        (line.sku, purchase_limits[line.sku])
                        for line in part_lines
                        if line.sku in purchase_limits
                    }
                )
                if customer and purchase_limits
                else ()
            )
            commands.append(
                PlaceHold(
                    p,
                    reservation_id,
                    digest,
                    part_lines,
                    now,
                    expires_at,
                    channel,
                    part_limits,
                    customer,
                    capped,
                    tuple(capacity.get(p, ())),
                )
            )
        results = await self._execute(commands)
        claim = results[0]
        holds = results[1:]
        assert isinstance(claim, ClaimResult)
        assert all(isinstance(h, HoldResult) for h in holds)
        hold_results: list[HoldResult] = holds  # type: ignore[assignment]
        placed = [p for p, h in zip(partitions, hold_results, strict=True) if h.outcome is HoldOutcome.PLACED]

        if claim.outcome is ClaimOutcome.CONFLICT or any(
            h.outcome is HoldOutcome.CONFLICT for h in hold_results
        ):
            await self._undo(reservation_id, placed, claim_home=None)
            raise AlreadyExists(
                "reservation",
                reservation_id,
                f"reservation id {reservation_id!r} is already used with other lines, channel or customer;"
                " use a new id for a new reservation",
            )
        if any(h.outcome is HoldOutcome.INVALID for h in hold_results):
            await self._undo(
                reservation_id, placed, claim_home=home if claim.outcome is ClaimOutcome.RECORDED else None
            )
            raise InvalidArgument([("lines", "every quantity must be at least 1")])
        over = [o for h in hold_results for o in h.over_limit]
        if over and not any(h.short for h in hold_results):
            recorded = home if claim.outcome is ClaimOutcome.RECORDED else None
            await self._undo(reservation_id, placed, claim_home=recorded)
            raise PurchaseLimitExceeded(customer, over)
        short = [line for h in hold_results for line in h.short]
        if short:
            recorded = home if claim.outcome is ClaimOutcome.RECORDED else None
            await self._undo(reservation_id, placed, claim_home=recorded)
            raise InsufficientStock(short)
        full = sorted(node_id for h in hold_results for node_id in h.full)
        if full:
            recorded = home if claim.outcome is ClaimOutcome.RECORDED else None
            await self._undo(reservation_id, placed, claim_home=recorded)
            raise CapacityReached(full)
        if claim.outcome is ClaimOutcome.EXISTS and claim.claim and claim.claim.partitions != partitions:
            # A concurrent retry of a sourced order planned other nodes: the first one
            # recorded stands, so withdraw what this attempt placed besides it.
            await self._undo(reservation_id, placed, claim_home=None)
            return await self.get(reservation_id), True

        parts = [h.part for h in hold_results if h.part is not None]
        view = merge(reservation_id, parts, claim.claim)
        ended_before = [h.part for h in hold_results if h.part is not None and not h.part.state.is_open]
        if ended_before and placed:
            # A retry found an earlier attempt already ended (e.g. expired); do not resurrect it.
            await self._undo(reservation_id, placed, claim_home=None)
            view = replace(merge(reservation_id, ended_before), lines=tuple(sorted(lines, key=line_key)))
        self._remember(reservation_id, partitions)
        replayed = not placed
        return view, replayed

    async def confirm(self, reservation_id: str) -> tuple[ReservationView, bool]:
        return await self._transition(reservation_id, "confirm", ConfirmPart)

    async def release(self, reservation_id: str) -> tuple[ReservationView, bool]:
        return await self._transition(reservation_id, "release", ReleasePart)

    async def extend(self, reservation_id: str, ttl_seconds: float) -> ReservationView:
        """A HELD reservation now expires `ttl_seconds` from now (every part alike)."""
        partitions = await self._partitions(reservation_id)
        at = self._clock()
        expires_at = at + ttl_seconds
        results = await self._execute([ExtendPart(p, reservation_id, expires_at, at) for p in partitions])
        part_results: list[PartResult] = results  # type: ignore[assignment]
        if any(r.outcome is PartOutcome.NOT_FOUND for r in part_results):
            raise NotFound("reservation", reservation_id)
        parts = [r.part for r in part_results if r.part is not None]
        if all(r.outcome is PartOutcome.SETTLED for r in part_results):
            raise InvalidState("extend", merge(reservation_id, parts))
        refused = [r for r in part_results if r.outcome is PartOutcome.REFUSED]
        if refused:
            # Parts agree (one timestamp); after a crash mid-way they may not: put the parts
            # that moved back to the expiry the others kept, so nothing outlives its reservation.
            kept = next(r.part.expires_at for r in refused if r.part is not None)
            moved: list[Command] = [
                ExtendPart(p, reservation_id, kept, at)
                for p, r in zip(partitions, part_results, strict=True)
                if r.outcome is PartOutcome.CHANGED
            ]
            if moved:
                await self._best_effort(moved)
            current = merge(reservation_id, parts)
            raise InvalidState("extend", replace(current, state=shown_state(current, refused)))
        return merge(reservation_id, parts)

    async def close_lines(
        self, reservation_id: str, operation_id: str, kind: str, lines: Sequence[Line]
    ) -> tuple[ReservationView, bool]:
        """Fulfil (kind "fulfilled") or cancel (kind "cancelled") units of some lines.

        The operation is first checked against every part (state, open units, stock to
        ship, the id's earlier use) without changing anything; only if every part would
        take it is it applied, each partition atomically. So a refusal changes nothing;
        only a competing change to the same lines between the check and the change can
        leave it applied in some partitions (the refusal then says which)."""
        partitions = await self._partitions(reservation_id)
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
        checks: list[Command] = [
            CloseLines(p, reservation_id, operation_id, kind, by_partition[p], at, check_only=True)
            if p in by_partition
            else GetPart(p, reservation_id)
            for p in partitions
        ]
        results: list[PartResult] = await self._execute(checks)  # type: ignore[assignment]
        if any(r.part is None for r in results):
            raise NotFound("reservation", reservation_id)
        parts = {p: r.part for p, r in zip(partitions, results, strict=True) if r.part is not None}
        asked = {p: r for p, r in zip(partitions, results, strict=True) if p in by_partition}
        view = merge(reservation_id, list(parts.values()))
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
        allowed = (PartState.CONFIRMED,) if kind == "fulfilled" else (PartState.HELD, PartState.CONFIRMED)
        state = merged_state(list(parts.values()), at)
        if state not in allowed:
            raise InvalidState(action, replace(view, state=state))
        self._raise_refused(reservation_id, action, view, list(asked.values()))
        applied: list[PartResult] = await self._execute(  # type: ignore[assignment]
            [CloseLines(p, reservation_id, operation_id, kind, by_partition[p], at) for p in asked]
        )
        for p, result in zip(asked, applied, strict=True):
            if result.part is not None:
                parts[p] = result.part
        if any(r.outcome is PartOutcome.REFUSED for r in applied):
            done = [
                ln
                for p, r in zip(asked, applied, strict=True)
                if r.outcome is not PartOutcome.REFUSED
                for ln in by_partition[p]
            ]
            log.warning(
                "%s %s of reservation %s was refused in part after its check: %s stay applied",
                kind,
                operation_id,
                reservation_id,
                [f"{ln.sku}@{ln.node_id}" for ln in done],
            )
            self._raise_refused(reservation_id, action, merge(reservation_id, list(parts.values())), applied)
        view = merge(reservation_id, list(parts.values()))
        await self._end_capacity_parts(reservation_id, view, parts, at)
        return view, False

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

    async def _end_capacity_parts(
        self, reservation_id: str, view: ReservationView, parts: Mapping[int, Part], at: float
    ) -> None:
        """A reservation that ended line by line ends its capacity-only parts the same way."""
        if view.state.is_open:
            return
        ends: list[Command] = [
            EndCapacityPart(p, reservation_id, view.state, at)
            for p, part in parts.items()
            if not part.lines and part.state.is_open
        ]
        if ends:
            await self._best_effort(ends)

    async def return_units(
        self,
        reservation_id: str,
        return_id: str,
        line: Line,
        node_id: str,
        sellable: bool,
    ) -> tuple[ReservationView, bool]:
        """Fulfilled units of `line` (its sku and reserved node; quantity = units) come back at `node_id`."""
        partitions = await self._partitions(reservation_id)
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
        )
        (result,) = await self._execute([command])
        assert isinstance(result, PartResult)
        if result.outcome is PartOutcome.REFUSED:
            raise FailedPrecondition(f"cannot return to reservation {reservation_id!r}: {result.reason}")
        if result.outcome is PartOutcome.NOT_FOUND:
            raise NotFound("reservation", reservation_id)
        return await self.get(reservation_id), result.outcome is PartOutcome.REPLAYED

    async def get(self, reservation_id: str) -> ReservationView:
        claim = await self.find(reservation_id)
        if claim is None:
            raise NotFound("reservation", reservation_id)
        results = await self._execute([GetPart(p, reservation_id) for p in claim.partitions])
        parts = [r.part for r in results if isinstance(r, PartResult) and r.part is not None]
        if len(parts) != len(claim.partitions):
            raise NotFound("reservation", reservation_id)
        return merge(reservation_id, parts, claim)

    async def find(self, reservation_id: str) -> Claim | None:
        """The reservation's claim (its fingerprint, partitions and sourcing), if any."""
        (result,) = await self._execute([GetClaim(self._partition_of(reservation_id), reservation_id)])
        assert isinstance(result, ClaimResult)
        return result.claim

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
    ) -> tuple[ReservationView, bool]:
        """Move a line's open units to `to_node` in one step (one partition holds both nodes
        of a SKU, so the new node is held and the old freed atomically)."""
        partitions = await self._partitions(reservation_id)
        partition = self._partition_of(sku)
        if partition not in partitions:
            raise InvalidArgument([("sku", f"{sku} is not in reservation {reservation_id!r}")])
        await self._refuse_id_used_elsewhere(
            reservation_id, partitions, partition, operation_id, "move the line of"
        )
        command = MoveLine(
            partition, reservation_id, operation_id, sku, from_node, to_node, self._clock(), limit
        )
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

    async def _transition(
        self,
        reservation_id: str,
        action: str,
        command: type[ConfirmPart] | type[ReleasePart],
    ) -> tuple[ReservationView, bool]:
        partitions = await self._partitions(reservation_id)
        # One timestamp for every part, so parts decide the same way about expiry.
        at = self._clock()
        results = await self._execute([command(p, reservation_id, at) for p in partitions])
        part_results: list[PartResult] = results  # type: ignore[assignment]
        missing = [r for r in part_results if r.outcome is PartOutcome.NOT_FOUND]
        if missing:
            if command is ConfirmPart:
                await self._release_changed(reservation_id, partitions, part_results)
            raise NotFound("reservation", reservation_id)
        parts = [r.part for r in part_results if r.part is not None]
        if all(r.outcome is PartOutcome.SETTLED for r in part_results):
            # Every line was cancelled or fulfilled: the reservation ended line by line.
            ended = merge(reservation_id, parts)
            if command is ReleasePart and ended.state is PartState.RELEASED:
                return ended, True
            raise InvalidState(action, ended)
        refused = [r for r in part_results if r.outcome is PartOutcome.REFUSED]
        if refused:
            if command is ConfirmPart:
                await self._release_changed(reservation_id, partitions, part_results)
            current = merge(reservation_id, parts)
            raise InvalidState(action, replace(current, state=shown_state(current, refused)))
        replayed = all(r.outcome in (PartOutcome.REPLAYED, PartOutcome.SETTLED) for r in part_results)
        return merge(reservation_id, parts), replayed

    async def _partitions(self, reservation_id: str) -> tuple[int, ...]:
        known = self._known.get(reservation_id)
        if known is not None:
            return known
        home = self._partition_of(reservation_id)
        (result,) = await self._execute([GetClaim(home, reservation_id)])
        assert isinstance(result, ClaimResult)
        if result.claim is None:
            raise NotFound("reservation", reservation_id)
        return result.claim.partitions

    async def _release_changed(
        self, reservation_id: str, partitions: Sequence[int], results: Sequence[PartResult]
    ) -> None:
        """Compensate a Confirm that some parts refused: release the parts it confirmed."""
        changed = [p for p, r in zip(partitions, results, strict=True) if r.outcome is PartOutcome.CHANGED]
        if changed:
            await self._best_effort([ReleasePart(p, reservation_id, self._clock()) for p in changed])

    async def _undo(self, reservation_id: str, placed: Sequence[int], claim_home: int | None) -> None:
        """Withdraw the parts this Reserve placed (and its claim); left-overs expire by TTL."""
        commands: list[Command] = [AbortHold(p, reservation_id) for p in placed]
        if claim_home is not None:
            commands.append(DropClaim(claim_home, reservation_id))
        if commands:
            await self._best_effort(commands)

    async def _best_effort(self, commands: list[Command]) -> None:
        try:
            await self._execute(commands)
        except Unavailable as error:
            # What stays held ends by its TTL; a retry of the same id sees it.
            log.warning("compensation of %d command(s) failed: %s", len(commands), error)

    def _remember(self, reservation_id: str, partitions: tuple[int, ...]) -> None:
        self._known[reservation_id] = partitions
        self._known.move_to_end(reservation_id)
        if len(self._known) > self._cache_size:
            self._known.popitem(last=False)
