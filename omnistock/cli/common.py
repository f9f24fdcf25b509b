"""What every part of the `omnistock` command shares: exit codes, usage errors, names of
node types, ids and timestamps made on the client, and reading a file or stdin."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Sequence, Sized
from pathlib import Path

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from omnistock.client import to_timestamp as client_timestamp
from omnistock.protos.gen.omnistock.v1 import common_pb2

TARGET_ENV = "OMNISTOCK_TARGET"

NODE_TYPE_NAMES: dict[str, common_pb2.NodeType] = {
    "store": common_pb2.NODE_TYPE_STORE,
    "dc": common_pb2.NODE_TYPE_DC,
    "3pl": common_pb2.NODE_TYPE_3PL,
    "dropship": common_pb2.NODE_TYPE_DROPSHIP,
}
NODE_TYPE_LABELS = {value: key for key, value in NODE_TYPE_NAMES.items()}
NODE_FIELDS = (
    "node_id",
    "type",
    "name",
    "latitude",
    "longitude",
    "ships",
    "pickup",
    "enabled",
    "priority",
    "shipment_cost",
    "daily_capacity",
)
TRUE_WORDS = {"1", "true", "t", "yes", "y", "on"}
FALSE_WORDS = {"0", "false", "f", "no", "n", "off"}

UNCERTAIN = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.ABORTED,
}
"""Codes after which a mutating call may or may not have been applied: retry with the same id."""

INT64 = (-(2**63), 2**63 - 1)
INT32 = (-(2**31), 2**31 - 1)

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
STOP_TIMEOUT = 30.0
"""Seconds a stop may take (drain 5 s, then shards, Ray and Redis) before it is cut short."""


class UsageError(ValueError):
    """Bad input found before anything was sent: exit code 2."""


class ProblemsError(UsageError):
    """Bad input with one or more (field, description) problems, all reported at once."""

    def __init__(self, message: str, problems: Sequence[tuple[str, str]]) -> None:
        self.problems = list(problems)
        super().__init__(message)


def number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def count_of(items: Sized, noun: str) -> str:
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"


def to_timestamp(seconds: float) -> Timestamp:
    return client_timestamp(seconds)


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def read_text(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror or error}") from None
