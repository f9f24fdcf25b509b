"""Refusals to gRPC statuses with rich details (google.rpc.Status).

A status travels in the call's trailers, which gRPC caps at 8 KB (soft) and 16 KB (hard):
past them the client gets RESOURCE_EXHAUSTED instead of the refusal. So every detail list
is bounded (`MAX_LISTED` entries, then one saying how many more were left out), every text
is clipped, and all details together fit `MAX_DETAILS_BYTES`, whatever the input.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from omnistock.gateway.grpc.convert import line_sourcing_to_proto, reservation_to_proto, short_lines_to_proto
from omnistock.protos.gen.omnistock.v1 import common_pb2, reservation_pb2
from omnistock.reservations.domain.errors import (
    AlreadyExists,
    CannotSource,
    CapacityReached,
    FailedPrecondition,
    InsufficientStock,
    InvalidArgument,
    InvalidState,
    NotFound,
    OmnistockError,
    PermissionDenied,
    PurchaseLimitExceeded,
    Unavailable,
)
from omnistock.reservations.domain.sourcing import LineSourcing

log = logging.getLogger(__name__)

MAX_LISTED = 100
"""Entries a detail list (field or precondition violations, short lines, quota violations,
sourcing explanations) lists at most; one more entry says how many were left out."""
MAX_TEXT = 200
"""Characters of a field, subject, description, name or reason in a detail at most."""
MAX_MESSAGE_BYTES = 400
"""UTF-8 bytes of a status message at most. It goes in the grpc-message trailer
percent-encoded (up to 3 times as long) and again inside the details."""
MAX_DETAILS_BYTES = 3_500
"""The serialized google.rpc.Status at most (message and details; base64 in the
grpc-status-details-bin trailer, 4/3 as long): with the message trailer, a refusal's
trailers stay near 6 KB, under gRPC's 8 KB metadata limit."""

DETAIL_OVERHEAD = 64
"""Bytes a detail costs beyond its message: its Any's type URL, tags and lengths."""
ENTRY_OVERHEAD = 3
"""Bytes an entry of a repeated field costs beyond its message: a tag and a length."""
MORE = "..."
"""The field or subject of the entry that counts what a list left out."""

T = TypeVar("T", bound=Message)


class UndecodableRequest(InvalidArgument):
    """Request bytes that are not the method's message (garbage, truncated)."""

    def __init__(self, method: str, message_type: str, size: int) -> None:
        super().__init__([("", f"the request ({size} bytes) is not a valid {message_type} message")])
        self.args = (f"request to {method} is not a valid {message_type} message",)


def clip(text: str, most: int = MAX_TEXT) -> str:
    """`text`, cut to `most` characters."""
    return text if len(text) <= most else text[: most - len(MORE)] + MORE


def clip_bytes(text: str, most: int = MAX_MESSAGE_BYTES) -> str:
    """`text`, cut to `most` bytes of UTF-8 (at a character's end)."""
    if len(text) * 4 <= most:
        return text
    data = text.encode()
    if len(data) <= most:
        return text
    return data[: most - len(MORE) - 1].decode(errors="ignore") + " " + MORE


def more_text(rest: int) -> str:
    return f"{rest:,} more violations not listed"


class Room:
    """What is left of MAX_DETAILS_BYTES."""

    __slots__ = ("left",)

    def __init__(self, left: int) -> None:
        self.left = left

    def take(self, size: int) -> bool:
        """Take `size` bytes if they fit."""
        if size > self.left:
            return False
        self.left -= size
        return True


def listed(
    count: int, entries: Iterable[T], more: Callable[[int], T] | None, room: Room, most: int | None = None
) -> list[T]:
    """The first of `count` entries (built lazily) that fit the room (and `most` bytes of it),
    at most MAX_LISTED; then `more(rest)`, saying how many were left out."""
    # Room kept for `more`: its text for `count` is at least as long as for any rest.
    spare = more(count).ByteSize() + ENTRY_OVERHEAD if more is not None and count else 0
    limit = room.left - spare if most is None else min(room.left, most) - spare
    budget = Room(limit)
    kept: list[T] = []
    for entry in entries:
        if len(kept) == MAX_LISTED or not budget.take(entry.ByteSize() + ENTRY_OVERHEAD):
            break
        kept.append(entry)
    room.left -= limit - budget.left  # what the entries took
    if more is not None and len(kept) < count:
        extra = more(count - len(kept))
        kept.append(extra)
        room.left -= extra.ByteSize() + ENTRY_OVERHEAD
    return kept


def field_violations(
    violations: Sequence[tuple[str, str]], room: Room
) -> list[error_details_pb2.BadRequest.FieldViolation]:
    violation = error_details_pb2.BadRequest.FieldViolation
    return listed(
        len(violations),
        (violation(field=clip(field), description=clip(description)) for field, description in violations),
        lambda rest: violation(field=MORE, description=more_text(rest)),
        room,
    )


def precondition_violations(
    kind: str, violations: Sequence[tuple[str, str]], room: Room, most: int | None = None
) -> list[error_details_pb2.PreconditionFailure.Violation]:
    violation = error_details_pb2.PreconditionFailure.Violation
    return listed(
        len(violations),
        (violation(type=kind, subject=clip(s), description=clip(d)) for s, d in violations),
        lambda rest: violation(type=kind, subject=MORE, description=more_text(rest)),
        room,
        most,
    )


def quota_violations(
    error: PurchaseLimitExceeded, room: Room
) -> list[error_details_pb2.QuotaFailure.Violation]:
    violation = error_details_pb2.QuotaFailure.Violation
    return listed(
        len(error.over),
        (
            violation(
                subject=clip(f"customer:{error.customer}/sku:{o.sku}"),
                description=f"limit {o.limit}, already held {o.held}, requested {o.requested}",
            )
            for o in error.over
        ),
        lambda rest: violation(subject=MORE, description=more_text(rest)),
        room,
    )


def sourcing_details(lines: Sequence[LineSourcing], room: Room) -> list[reservation_pb2.LineSourcing]:
    """Why each line went where it went, as many lines as fit, each trimmed to its share of
    the room (its last verdicts dropped and counted in `omitted`)."""
    lines = lines[:MAX_LISTED]
    found = []
    for index, line in enumerate(lines):
        share = room.left // (len(lines) - index) - DETAIL_OVERHEAD
        message = line_sourcing_to_proto(line)
        message.sku = clip(message.sku)
        rules = [clip(rule) for rule in message.rules[:MAX_LISTED]]
        del message.rules[:]
        message.rules.extend(rules)
        for verdict in message.considered:
            verdict.node_id, verdict.reason = clip(verdict.node_id), clip(verdict.reason)
        while message.ByteSize() > share and len(message.considered) > 1:
            del message.considered[-1]
            message.omitted += 1
        if room.take(message.ByteSize() + DETAIL_OVERHEAD):
            found.append(message)
    return found


def _pack(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def to_status(error: BaseException) -> tuple[grpc.StatusCode, grpc.Status]:
    """The status a refusal maps to; an unexpected exception is INTERNAL (and logged)."""
    details: list[Message] = []
    if not isinstance(error, OmnistockError):
        log.exception("unexpected error", exc_info=error)
        error = RuntimeError("internal error; the request may be retried with the same id")
    message = clip_bytes(str(error))
    room = Room(MAX_DETAILS_BYTES - len(message.encode()) - 16)
    room.left -= DETAIL_OVERHEAD  # the first detail's; the others take theirs as they come
    match error:
        case InvalidArgument():
            code = code_pb2.INVALID_ARGUMENT
            details.append(
                error_details_pb2.BadRequest(field_violations=field_violations(error.violations, room))
            )
        case NotFound():
            code = code_pb2.NOT_FOUND
            details.append(
                error_details_pb2.ResourceInfo(resource_type=clip(error.kind), resource_name=clip(error.name))
            )
        case AlreadyExists():
            code = code_pb2.ALREADY_EXISTS
            details.append(
                error_details_pb2.ResourceInfo(resource_type=clip(error.kind), resource_name=clip(error.name))
            )
        case InsufficientStock():
            code = code_pb2.FAILED_PRECONDITION
            short = error.short
            violations = [
                (f"{s.sku}@{s.node_id}", f"requested {s.requested}, available {s.available}") for s in short
            ]
            # Half the room for the violations, the rest for the short lines (as for sourcing).
            details.append(
                error_details_pb2.PreconditionFailure(
                    violations=precondition_violations("INSUFFICIENT_STOCK", violations, room, room.left // 2)
                )
            )
            if room.take(DETAIL_OVERHEAD):  # (ids are bounded by validation: nothing to clip)
                lines = short_lines_to_proto(short).lines
                details.append(common_pb2.InsufficientStock(lines=listed(len(short), lines, None, room)))
        case CannotSource():
            code = code_pb2.FAILED_PRECONDITION
            violations = [
                (sku, f"requested {asked}, could source {got}") for sku, asked, got in error.plan.unfilled
            ]
            details.append(
                error_details_pb2.PreconditionFailure(
                    violations=precondition_violations("CANNOT_SOURCE", violations, room, room.left // 2)
                )
            )
            details.extend(sourcing_details(error.plan.explanations, room))
        case CapacityReached():
            code = code_pb2.FAILED_PRECONDITION
            violations = [(node_id, "daily capacity reached") for node_id in error.node_ids]
            details.append(
                error_details_pb2.PreconditionFailure(
                    violations=precondition_violations("DAILY_CAPACITY", violations, room)
                )
            )
        case PurchaseLimitExceeded():
            code = code_pb2.RESOURCE_EXHAUSTED
            details.append(error_details_pb2.QuotaFailure(violations=quota_violations(error, room)))
        case InvalidState():
            code = code_pb2.FAILED_PRECONDITION
            reservation = reservation_to_proto(error.reservation)
            description = f"reservation is {error.reservation.state.name}"
            room.left -= 2 * MAX_TEXT  # the violation's, at most
            included = room.take(reservation.ByteSize() + DETAIL_OVERHEAD)
            if not included:
                description += "; too large to include here: GetReservation reads it"
            details.append(
                error_details_pb2.PreconditionFailure(
                    violations=[
                        error_details_pb2.PreconditionFailure.Violation(
                            type="RESERVATION_STATE",
                            subject=clip(error.reservation.reservation_id),
                            description=description,
                        )
                    ]
                )
            )
            if included:
                details.append(reservation)
        case FailedPrecondition():
            code = code_pb2.FAILED_PRECONDITION
        case PermissionDenied():
            code = code_pb2.PERMISSION_DENIED
        case Unavailable():
            code = code_pb2.UNAVAILABLE
            details.append(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(nanos=100_000_000)))
        case _:
            code = code_pb2.INTERNAL
    status = status_pb2.Status(code=code, message=message, details=[_pack(d) for d in details])
    while status.details and status.ByteSize() > MAX_DETAILS_BYTES:  # never, if the sums above hold
        del status.details[-1]
    converted = rpc_status.to_status(status)
    return converted.code, converted
