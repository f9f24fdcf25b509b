"""Refusals to gRPC statuses with rich details (google.rpc.Status)."""

from __future__ import annotations

import logging

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from gateway.convert import line_sourcing_to_proto, reservation_to_proto, short_lines_to_proto
from reservations.errors import (
    AlreadyExists,
    CannotSource,
    CapacityReached,
    FailedPrecondition,
    InsufficientStock,
    InvalidArgument,
    InvalidState,
    NotFound,
    OmnistockError,
    PurchaseLimitExceeded,
    Unavailable,
)

log = logging.getLogger(__name__)


def _pack(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)  # type: ignore[arg-type]
    return packed


def to_status(error: BaseException) -> tuple[grpc.StatusCode, grpc.Status]:
    """The status a refusal maps to; an unexpected exception is INTERNAL (and logged)."""
    details: list[object] = []
    match error:
        case InvalidArgument():
            code = code_pb2.INVALID_ARGUMENT
            details.append(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(field=field, description=description)
                        for field, description in error.violations
                    ]
                )
            )
        case NotFound():
            code = code_pb2.NOT_FOUND
            details.append(error_details_pb2.ResourceInfo(resource_type=error.kind, resource_name=error.name))
        case AlreadyExists():
            code = code_pb2.ALREADY_EXISTS
            details.append(error_details_pb2.ResourceInfo(resource_type=error.kind, resource_name=error.name))
        case InsufficientStock():
            code = code_pb2.FAILED_PRECONDITION
            details.append(
                error_details_pb2.PreconditionFailure(
                    violations=[
                        error_details_pb2.PreconditionFailure.Violation(
                            type="INSUFFICIENT_STOCK",
                            subject=f"{s.sku}@{s.node_id}",
                            description=f"requested {s.requested}, available {s.available}",
                        )
                        for s in error.short
                    ]
                )
            )
            details.append(short_lines_to_proto(error.short))
        case CannotSource():
            code = code_pb2.FAILED_PRECONDITION
            details.append(
                error_details_pb2.PreconditionFailure(
                    violations=[
                        error_details_pb2.PreconditionFailure.Violation(
                            type="CANNOT_SOURCE",
                            subject=sku,
                            description=f"requested {asked}, could source {got}",
                        )
                        for sku, asked, got in error.plan.unfilled
                    ]
                )
            )
            details.extend(line_sourcing_to_proto(line) for line in error.plan.explanations)
        case CapacityReached():
            code = code_pb2.FAILED_PRECONDITION
            details.append(
                error_details_pb2.PreconditionFailure(
                    violations=[
                        error_details_pb2.PreconditionFailure.Violation(
                            type="DAILY_CAPACITY", subject=node_id, description="daily capacity reached"
                        )
                        for node_id in error.node_ids
                    ]
                )
            )
        case PurchaseLimitExceeded():
            code = code_pb2.RESOURCE_EXHAUSTED
            details.append(
                error_details_pb2.QuotaFailure(
                    violations=[
                        error_details_pb2.QuotaFailure.Violation(
                            subject=f"customer:{error.customer}/sku:{o.sku}",
                            description=f"limit {o.limit}, already held {o.held}, requested {o.requested}",
                        )
                        for o in error.over
                    ]
                )
            )
        case InvalidState():
            code = code_pb2.FAILED_PRECONDITION
            details.append(
                error_details_pb2.PreconditionFailure(
                    violations=[
                        error_details_pb2.PreconditionFailure.Violation(
                            type="RESERVATION_STATE",
                            subject=error.reservation.reservation_id,
                            description=f"reservation is {error.reservation.state.name}",
                        )
                    ]
                )
            )
            details.append(reservation_to_proto(error.reservation))
        case FailedPrecondition():
            code = code_pb2.FAILED_PRECONDITION
        case Unavailable():
            code = code_pb2.UNAVAILABLE
            details.append(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(nanos=100_000_000)))
        case OmnistockError():
            code = code_pb2.INTERNAL
        case _:
            log.exception("unexpected error", exc_info=error)
            code = code_pb2.INTERNAL
            error = RuntimeError("internal error; the request may be retried with the same id")
    status = status_pb2.Status(code=code, message=str(error), details=[_pack(d) for d in details])
    converted = rpc_status.to_status(status)
    return converted.code, converted
