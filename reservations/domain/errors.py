"""One exception root for everything omnistock refuses; the gateway maps each to a gRPC status."""

from __future__ import annotations

from collections.abc import Sequence

from omnistock.reservations.domain.commands import OverLimit, ShortLine
from omnistock.reservations.domain.reservation_view import ReservationView
from omnistock.reservations.domain.sourcing import SourcingPlan


class OmnistockError(Exception):
    """Base of every refusal; the message says what is wrong and what to do."""


class InvalidArgument(OmnistockError):
    """Malformed input; `violations` are (field, description) pairs."""

    def __init__(self, violations: Sequence[tuple[str, str]]) -> None:
        self.violations = list(violations)
        super().__init__("; ".join(f"{field}: {description}" for field, description in self.violations))


class NotFound(OmnistockError):
    def __init__(self, kind: str, name: str) -> None:
        self.kind = kind
        self.name = name
        super().__init__(f"{kind} {name!r} not found")


class AlreadyExists(OmnistockError):
    """The client id is taken by a request with different content."""

    def __init__(self, kind: str, name: str, message: str) -> None:
        self.kind = kind
        self.name = name
        super().__init__(message)


class FailedPrecondition(OmnistockError):
    pass


class InsufficientStock(FailedPrecondition):
    def __init__(self, short: Sequence[ShortLine]) -> None:
        self.short = sorted(short, key=lambda line: (line.sku, line.node_id))
        lines = ", ".join(
            f"{s.sku} at {s.node_id} (requested {s.requested}, available {s.available})" for s in self.short
        )
        super().__init__(f"not enough stock for {len(self.short)} line(s): {lines}")


class CapacityReached(FailedPrecondition):
    """Nodes a sourced order was planned on took their last order of the day meanwhile."""

    def __init__(self, node_ids: Sequence[str]) -> None:
        self.node_ids = list(node_ids)
        super().__init__(f"daily capacity reached at {', '.join(self.node_ids)}")


class CannotSource(FailedPrecondition):
    """No plan within the channel's rules fills every line; `plan` says how far it got and why."""

    def __init__(self, plan: SourcingPlan) -> None:
        self.plan = plan
        text = ", ".join(
            f"{sku} (requested {asked}, could source {got})" for sku, asked, got in plan.unfilled
        )
        super().__init__(f"cannot source {len(plan.unfilled)} line(s) within the channel's rules: {text}")


class PurchaseLimitExceeded(OmnistockError):
    """A customer would hold more of a limited SKU than allowed (hot drops)."""

    def __init__(self, customer: str, over: Sequence[OverLimit]) -> None:
        self.customer = customer
        self.over = sorted(over, key=lambda o: o.sku)
        text = ", ".join(
            f"{o.sku} (limit {o.limit}, already held {o.held}, requested {o.requested})" for o in self.over
        )
        super().__init__(f"customer {customer!r} would exceed the purchase limit of {text}")


class InvalidState(FailedPrecondition):
    """The reservation is in a state that does not allow the transition."""

    def __init__(self, action: str, reservation: ReservationView) -> None:
        self.action = action
        self.reservation = reservation
        super().__init__(
            f"cannot {action} reservation {reservation.reservation_id!r}: it is {reservation.state.name}"
        )


class PermissionDenied(OmnistockError):
    """The caller's key may not do this: a channel it is not bound to, a customer it may not
    name. The message says which and what to use instead."""


class Unavailable(OmnistockError):
    """A shard or the journal cannot serve now; retrying with the same id is safe."""
