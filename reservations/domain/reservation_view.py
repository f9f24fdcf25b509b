"""A whole reservation as callers see it, merged from its parts and its home's decision (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from omnistock.reservations.domain.commands import PartResult, ReserveTogether
from omnistock.reservations.domain.model import Claim, Decision, HistoryEntry, Line, Part, PartState, line_key
from omnistock.reservations.domain.sourcing import Destination, LineSourcing


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
    history: tuple[HistoryEntry, ...] = ()
    """(what, when, by whom) of every transition, oldest first, once per transition."""
    progress: tuple[tuple[int, int, int], ...] = ()
    """(fulfilled, cancelled, returned) units of each line, in the order of `lines`."""
    sourcing: tuple[LineSourcing, ...] = ()
    """Why each sourced line went where it went (empty when the lines named their nodes)."""
    destination: Destination | None = None


def capacity_key(node_id: str) -> str:
    """What places a node's daily capacity counter in a partition."""
    return f"capacity/{node_id}"


def merged_state(parts: Sequence[Part]) -> PartState:
    """The reservation's state from its parts' (for a record without a decision, and for a
    reservation whose lines all closed). An expired part means it expired; otherwise it is
    open while any part is open (a part whose lines were all cancelled or fulfilled has
    settled on its own); once every part is closed, it was RELEASED if any part was
    released as a whole, else FULFILLED if anything shipped. Parts that only count a
    node's daily capacity have no lines and no say."""
    parts = [part for part in parts if part.lines] or list(parts)
    states = [part.state for part in parts]
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


def decided_state(parts: Sequence[Part], decision: Decision) -> PartState:
    """The state of a reservation whose home decided `decision` (as of now): that, but for
    an open reservation whose every line was closed, which ended line by line."""
    lined = [part for part in parts if part.lines]
    if decision.is_open and lined and all(part.settled for part in lined):
        return merged_state(lined)
    return decision.part_state


def merge(
    reservation_id: str, parts: Sequence[Part], claim: Claim | None = None, decision: Decision | None = None
) -> ReservationView:
    """One view of all parts. Its state is the home's decision (as of now: `decision`) when
    the claim is known, else the parts' (see `merged_state`)."""
    if claim is not None and claim.attempt:
        state = decided_state(parts, decision or claim.decision)
    else:
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
        _expires_at(parts, claim),
        max(
            (part.changed_at for part in parts if part.state is state),
            default=claim.decided_at if claim is not None else 0.0,
        ),
        parts[0].channel,
        parts[0].customer,
        _history(parts, claim),
        tuple((fulfilled, cancelled, returned) for _, fulfilled, cancelled, returned in rows),
        claim.sourcing if claim else (),
        claim.destination if claim else None,
    )


def _expires_at(parts: Sequence[Part], claim: Claim | None) -> float:
    if claim is not None and claim.attempt:
        return claim.expires_at
    # A settled part keeps the expiry it had when it ended; the others' is the reservation's.
    return min(part.expires_at for part in ([p for p in parts if not p.settled] or parts))


def _history(parts: Sequence[Part], claim: Claim | None = None) -> tuple[HistoryEntry, ...]:
    """Parts and their home share the timestamps and the caller of a decision (its steps carry
    both), so one entry per (what, when, by); the home has every decision even while a part
    has yet to take it."""
    entries = {entry for part in parts for entry in part.history}
    if claim is not None:
        entries.update(claim.history)
    return tuple(sorted(entries, key=lambda entry: (entry[1], entry[0], entry[2])))


def fresh_hold(plan: ReserveTogether) -> ReservationView:
    """The view of a hold just placed as `plan` asked: what `merge` makes of its new parts
    and its record (every line open, nothing changed since, held once), known without them."""
    lines = tuple(sorted(plan.lines, key=line_key))
    return ReservationView(
        plan.reservation_id,
        PartState.HELD,
        lines,
        plan.created_at,
        plan.expires_at,
        0.0,
        plan.channel,
        plan.customer,
        (("held", plan.created_at, plan.by),),
        ((0, 0, 0),) * len(lines),
        plan.sourcing,
        plan.destination,
    )
