"""A refusal's status stays small whatever the input: gRPC caps trailers at 8 KB (soft), and
past it a client gets RESOURCE_EXHAUSTED instead of the refusal."""

from __future__ import annotations

import math
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2

from omnistock.gateway.grpc.statuses import (
    MAX_LISTED,
    MAX_MESSAGE_BYTES,
    MAX_TEXT,
    UndecodableRequest,
    to_status,
)
from omnistock.protos.gen.omnistock.v1 import common_pb2, reservation_pb2
from omnistock.reservations.domain.commands import OverLimit, ShortLine
from omnistock.reservations.domain.errors import (
    CannotSource,
    CapacityReached,
    InsufficientStock,
    InvalidArgument,
    InvalidState,
    NotFound,
    PurchaseLimitExceeded,
)
from omnistock.reservations.domain.model import Line, PartState
from omnistock.reservations.domain.reservation_view import ReservationView
from omnistock.reservations.domain.sourcing import LineSourcing, NodeVerdict, SourcingPlan

TRAILER_LIMIT = 8 * 1024
LONG = "x" * 5_000
WIDE = "\U0001f4e6" * 2_000
"""Four bytes of UTF-8 a character, each percent-encoded (three bytes a byte) in grpc-message."""


def trailer_size(status: grpc.Status) -> int:
    """The trailers' size as HTTP/2 counts it (name + value + 32 an entry), values encoded as
    gRPC sends them: binary ones in base64, the message percent-encoded."""
    encoded_message = sum(1 if 0x20 <= b < 0x7F and b != 0x25 else 3 for b in status.details.encode())
    size = len("grpc-status") + 2 + 32 + len("grpc-message") + encoded_message + 32
    for key, value in status.trailing_metadata:
        size += len(key) + (4 * math.ceil(len(value) / 3) if key.endswith("-bin") else len(value)) + 32
    return size


def parsed(status: grpc.Status) -> status_pb2.Status:
    ((key, value),) = status.trailing_metadata
    assert key == "grpc-status-details-bin"
    return status_pb2.Status.FromString(value)


def detail(status: status_pb2.Status, kind: type[Message]) -> Any:
    found = [d for d in status.details if d.Is(kind.DESCRIPTOR)]
    assert len(found) == 1, [d.type_url for d in status.details]
    message = kind()
    found[0].Unpack(message)
    return message


def reservation(lines: int, history: int = 0) -> ReservationView:
    return ReservationView(
        reservation_id="r-" + "9" * 126,
        state=PartState.RELEASED,
        lines=tuple(Line(f"SKU-{i:05d}-{LONG[:100]}", f"NODE-{i:03d}", 1) for i in range(lines)),
        created_at=1.0,
        expires_at=2.0,
        changed_at=3.0,
        history=tuple(("held", float(i), "local") for i in range(history)),
    )


def explained(sku: str) -> LineSourcing:
    verdicts = tuple(NodeVerdict(f"NODE-{i:04d}", 0, f"lost: {LONG[:400]}", 1.5) for i in range(20))
    return LineSourcing(sku, 5, ("nearest", LONG), verdicts, omitted=300)


HUGE = [
    pytest.param(
        InvalidArgument([(f"levels[{i}].on_hand{LONG}", f"{WIDE} out of range") for i in range(5_000)]),
        grpc.StatusCode.INVALID_ARGUMENT,
        id="field violations",
    ),
    pytest.param(
        InsufficientStock([ShortLine(f"SKU-{i}{LONG}", f"NODE{LONG}", 5, 1) for i in range(2_000)]),
        grpc.StatusCode.FAILED_PRECONDITION,
        id="short lines",
    ),
    pytest.param(
        CannotSource(
            SourcingPlan(
                (),
                tuple(explained(f"SKU-{i}") for i in range(100)),
                tuple((f"SKU-{i}{WIDE}", 5, 0) for i in range(2_000)),
            )
        ),
        grpc.StatusCode.FAILED_PRECONDITION,
        id="sourcing",
    ),
    pytest.param(
        CapacityReached([f"NODE-{i}{LONG}" for i in range(2_000)]),
        grpc.StatusCode.FAILED_PRECONDITION,
        id="capacity",
    ),
    pytest.param(
        PurchaseLimitExceeded(WIDE, [OverLimit(f"SKU-{i}", 2, 1, 2) for i in range(2_000)]),
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        id="purchase limits",
    ),
    pytest.param(
        InvalidState("confirm", reservation(100, history=500)),
        grpc.StatusCode.FAILED_PRECONDITION,
        id="reservation",
    ),
    pytest.param(NotFound("node", WIDE), grpc.StatusCode.NOT_FOUND, id="name"),
]


@pytest.mark.parametrize(("error", "code"), HUGE)
def test_a_refusal_of_any_size_fits_the_trailers(error: Exception, code: grpc.StatusCode) -> None:
    status_code, status = to_status(error)
    assert status_code is code
    assert trailer_size(status) < TRAILER_LIMIT
    assert len(status.details.encode()) <= MAX_MESSAGE_BYTES
    details = parsed(status)
    assert details.details, "a bounded refusal keeps its details"
    for packed in details.details:
        for entries in (
            "field_violations",
            "violations",
            "lines",
        ):
            message: Any = None
            for kind in (
                error_details_pb2.BadRequest,
                error_details_pb2.PreconditionFailure,
                error_details_pb2.QuotaFailure,
                common_pb2.InsufficientStock,
            ):
                if packed.Is(kind.DESCRIPTOR) and entries in kind.DESCRIPTOR.fields_by_name:
                    message = kind()
                    packed.Unpack(message)
            if message is not None:
                assert len(getattr(message, entries)) <= MAX_LISTED + 1
                for entry in getattr(message, entries):
                    for text in entry.DESCRIPTOR.fields:
                        value = getattr(entry, text.name)
                        assert not isinstance(value, str) or len(value) <= MAX_TEXT


def test_a_huge_violation_list_lists_the_first_and_counts_the_rest() -> None:
    violations = [(f"levels[{i}].on_hand", "must be between 0 and 1000000000") for i in range(2_000)]
    code, status = to_status(InvalidArgument(violations))
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert trailer_size(status) < TRAILER_LIMIT
    listed = detail(parsed(status), error_details_pb2.BadRequest).field_violations
    assert 10 <= len(listed) <= MAX_LISTED + 1
    *first, more = listed
    assert [(v.field, v.description) for v in first] == violations[: len(first)]
    assert more.field == "..."
    assert more.description == f"{2_000 - len(first):,} more violations not listed"


def test_long_texts_are_clipped() -> None:
    _, status = to_status(InvalidArgument([(LONG, LONG)]))
    (violation,) = detail(parsed(status), error_details_pb2.BadRequest).field_violations
    assert len(violation.field) == len(violation.description) == MAX_TEXT
    assert violation.field.endswith("...")
    assert len(status.details) <= MAX_MESSAGE_BYTES


def test_a_long_sourcing_explanation_drops_its_last_verdicts() -> None:
    plan = SourcingPlan((), tuple(explained(f"SKU-{i}") for i in range(8)), (("SKU-0", 5, 0),))
    _, status = to_status(CannotSource(plan))
    assert trailer_size(status) < TRAILER_LIMIT
    lines = [d for d in parsed(status).details if d.Is(reservation_pb2.LineSourcing.DESCRIPTOR)]
    assert lines
    for packed in lines:
        line = reservation_pb2.LineSourcing()
        packed.Unpack(line)
        assert 1 <= len(line.considered) < 20
        assert line.omitted == 300 + 20 - len(line.considered)


def test_small_refusals_are_whole() -> None:
    violations = [("reservation_id", "is required"), ("lines[0].quantity", "must be at least 1")]
    _, status = to_status(InvalidArgument(violations))
    listed = detail(parsed(status), error_details_pb2.BadRequest).field_violations
    assert [(v.field, v.description) for v in listed] == violations
    assert status.details == "reservation_id: is required; lines[0].quantity: must be at least 1"

    short = [ShortLine("SKU-1", "DC-1", 5, 1), ShortLine("SKU-2", "DC-1", 3, 0)]
    _, status = to_status(InsufficientStock(short))
    details = parsed(status)
    assert len(detail(details, error_details_pb2.PreconditionFailure).violations) == 2
    assert [s.sku for s in detail(details, common_pb2.InsufficientStock).lines] == ["SKU-1", "SKU-2"]

    _, status = to_status(InvalidState("confirm", reservation(3, history=2)))
    details = parsed(status)
    assert len(detail(details, reservation_pb2.Reservation).lines) == 3
    (violation,) = detail(details, error_details_pb2.PreconditionFailure).violations
    assert violation.description == "reservation is RELEASED"

    plan = SourcingPlan((), (explained("SKU-1"),), (("SKU-1", 5, 0),))
    _, status = to_status(CannotSource(plan))
    assert len([d for d in parsed(status).details if d.Is(reservation_pb2.LineSourcing.DESCRIPTOR)]) == 1


def test_a_reservation_too_large_to_include_is_named() -> None:
    _, status = to_status(InvalidState("confirm", reservation(100, history=500)))
    details = parsed(status)
    assert not [d for d in details.details if d.Is(reservation_pb2.Reservation.DESCRIPTOR)]
    (violation,) = detail(details, error_details_pb2.PreconditionFailure).violations
    assert violation.description.startswith("reservation is RELEASED; too large to include")


def test_an_undecodable_request_names_the_method_and_the_message() -> None:
    error = UndecodableRequest("/omnistock.v1.ReservationService/Reserve", "omnistock.v1.ReserveRequest", 7)
    code, status = to_status(error)
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert status.details == (
        "request to /omnistock.v1.ReservationService/Reserve"
        " is not a valid omnistock.v1.ReserveRequest message"
    )
    (violation,) = detail(parsed(status), error_details_pb2.BadRequest).field_violations
    assert "omnistock.v1.ReserveRequest" in violation.description
