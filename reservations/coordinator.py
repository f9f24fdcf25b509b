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


def merge(reservation_id: str, parts: Sequence[Part], claim: Claim | None = None) -> ReservationView:
    """One view of all parts. An expired part means the reservation expired; otherwise
    it is open while any part is open (lines cancelled in one part leave it RELEASED),
    and once every part is closed it is FULFILLED if anything shipped. Parts that only
    count a node's daily capacity have no lines and no say in the state."""
    parts = [part for part in parts if part.lines] or list(parts)
    states = {part.state for part in parts}
    order = (PartState.EXPIRED, PartState.HELD, PartState.CONFIRMED, PartState.FULFILLED, PartState.RELEASED)
    state = next(s for s in order if s in states)
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
        min(part.expires_at for part in parts),
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
        # (a claim whose Reserve succeeded never changes).
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
            current = merge(reservation_id, [r.part for r in part_results if r.part is not None])
            raise InvalidState("extend", replace(current, state=refused[0].state or current.state))
        return merge(reservation_id, [r.part for r in part_results if r.part is not None])

    async def close_lines(
        self, reservation_id: str, operation_id: str, kind: str, lines: Sequence[Line]
    ) -> tuple[ReservationView, bool]:
        """Fulfil (kind "fulfilled") or cancel (kind "cancelled") units of some lines.

        Each partition checks and applies its lines atomically. The lines of one
        operation are checked against every part first, so a refusal (too many units,
        wrong state) normally changes nothing anywhere; only a competing operation on the
        same reservation between the check and the change can split it."""
        partitions = await self._partitions(reservation_id)
        action = "fulfil" if kind == "fulfilled" else "cancel lines of"
        by_partition: dict[int, list[Line]] = {}
        for line in lines:
            by_partition.setdefault(self._partition_of(line.sku), []).append(line)
        at = self._clock()
        current = await self._execute([GetPart(p, reservation_id) for p in partitions])
        parts = {
            p: r.part
            for p, r in zip(partitions, current, strict=True)
            if isinstance(r, PartResult) and r.part
        }
        if len(parts) != len(partitions):
            raise NotFound("reservation", reservation_id)
        view = merge(reservation_id, list(parts.values()))
        for p, part_lines in by_partition.items():
            part = parts.get(p)
            if part is None or any(part.line_index(line.sku, line.node_id) is None for line in part_lines):
                missing = next(
                    line
                    for line in part_lines
                    if part is None or part.line_index(line.sku, line.node_id) is None
                )
                raise InvalidArgument(
                    [("lines", f"{missing.sku} at {missing.node_id} is not in this reservation")]
                )
        commands: list[Command] = [
            CloseLines(p, reservation_id, operation_id, kind, tuple(part_lines), at)
            for p, part_lines in sorted(by_partition.items())
        ]
        results: list[PartResult] = await self._execute(commands)  # type: ignore[assignment]
        refused = [r for r in results if r.outcome is PartOutcome.REFUSED]
        if refused:
            reason = refused[0].reason
            if reason:
                raise FailedPrecondition(f"cannot {action} reservation {reservation_id!r}: {reason}")
            raise InvalidState(action, replace(view, state=refused[0].state or view.state))
        for p, result in zip(sorted(by_partition), results, strict=True):
            if result.part is not None:
                parts[p] = result.part
        replayed = all(r.outcome is PartOutcome.REPLAYED for r in results)
        return merge(reservation_id, list(parts.values())), replayed

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
        refused = [r for r in part_results if r.outcome is PartOutcome.REFUSED]
        if refused:
            if command is ConfirmPart:
                await self._release_changed(reservation_id, partitions, part_results)
            parts = [r.part for r in part_results if r.part is not None]
            current = merge(reservation_id, parts)
            state = refused[0].state or current.state
            raise InvalidState(action, replace(current, state=state))
        parts = [r.part for r in part_results if r.part is not None]
        replayed = all(r.outcome is PartOutcome.REPLAYED for r in part_results)
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
