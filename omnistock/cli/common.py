"""What every part of the `omnistock` command shares: exit codes, usage errors, names of
node types, ids and timestamps made on the client, and reading a file or stdin."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import uuid
from collections.abc import Coroutine, Sequence, Sized
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from omnistock.client import (
    API_KEY_ENV,
    API_KEY_FILE_ENV,
    TLS_CA_ENV,
    TLS_CERT_ENV,
    TLS_KEY_ENV,
    Credentials,
    read_api_key,
)
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


def add_connection_arguments(parser: argparse.ArgumentParser) -> None:
    """--tls-ca, --tls-cert, --tls-key, --api-key, --api-key-file: how a command reaches a
    service that serves TLS and asks for API keys (credentials_of reads them)."""
    group = parser.add_argument_group("TLS and API key (for a service that asks for them)")
    group.add_argument(
        "--tls-ca",
        metavar="FILE",
        default=os.environ.get(TLS_CA_ENV) or None,
        help="connect with TLS, checking the server's certificate with this PEM CA bundle"
        f" (default: ${TLS_CA_ENV}; none: plain text)",
    )
    group.add_argument(
        "--tls-cert",
        metavar="FILE",
        default=os.environ.get(TLS_CERT_ENV) or None,
        help="PEM client certificate, for a service that asks for one (mutual TLS;"
        f" default: ${TLS_CERT_ENV})",
    )
    group.add_argument(
        "--tls-key",
        metavar="FILE",
        default=os.environ.get(TLS_KEY_ENV) or None,
        help=f"the client certificate's PEM private key (default: ${TLS_KEY_ENV})",
    )
    group.add_argument(
        "--api-key",
        metavar="KEY",
        help=f"API key sent with every call (default: ${API_KEY_ENV}); a command line is seen by"
        " every user of the machine: prefer --api-key-file or the variable",
    )
    group.add_argument(
        "--api-key-file",
        metavar="FILE",
        help=f"file holding the API key (default: ${API_KEY_FILE_ENV})",
    )


def _readable(flag: str, path: str) -> Path:
    try:
        Path(path).read_bytes()
    except OSError as error:
        raise UsageError(f"cannot read {flag} {path}: {error.strerror or error}") from None
    return Path(path)


def credentials_of(args: argparse.Namespace) -> Credentials:
    """The credentials of add_connection_arguments' options: a flag wins over its environment
    variable; UsageError for a missing half or a file that cannot be read (never showing a key)."""
    if args.api_key is not None and args.api_key_file:
        raise UsageError("give --api-key or --api-key-file, not both")
    if bool(args.tls_cert) != bool(args.tls_key):
        given, missing = ("--tls-cert", "--tls-key") if args.tls_cert else ("--tls-key", "--tls-cert")
        raise UsageError(f"{given} needs {missing}: a client certificate and its key go together")
    key, key_file = args.api_key, args.api_key_file
    if key is None and not key_file:
        key = os.environ.get(API_KEY_ENV) or None
        key_file = None if key else os.environ.get(API_KEY_FILE_ENV) or None
    if key is None and key_file:
        try:
            key = read_api_key(key_file)
        except (OSError, UnicodeDecodeError) as error:
            reason = getattr(error, "strerror", None) or "not a text file"
            raise UsageError(f"cannot read the API key file {key_file}: {reason}") from None
        except ValueError as error:
            raise UsageError(str(error)) from None
    try:
        return Credentials(
            tls_ca=_readable("--tls-ca", args.tls_ca) if args.tls_ca else None,
            client_cert=_readable("--tls-cert", args.tls_cert) if args.tls_cert else None,
            client_key=_readable("--tls-key", args.tls_key) if args.tls_key else None,
            api_key=key,
        )
    except ValueError as error:
        raise UsageError(str(error)) from None


def connection_hint(code: grpc.StatusCode, detail: str, credentials: Credentials) -> str:
    """What to do about a refusal for want of a key, a scope or the right TLS settings ("" when
    the refusal is about something else)."""
    if code == grpc.StatusCode.UNAUTHENTICATED:
        if credentials.api_key is None:
            return (
                "hint: this service asks for an API key: pass --api-key-file FILE (or --api-key KEY),"
                f" or set {API_KEY_ENV} (or {API_KEY_FILE_ENV})"
            )
        return (
            "hint: the service does not know this API key (mistyped, revoked or rotated): check"
            f" --api-key, --api-key-file or ${API_KEY_ENV}"
        )
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return "hint: this API key may not do that (see the scope named above): use a key that has it"
    if code != grpc.StatusCode.UNAVAILABLE:
        return ""
    text = detail.lower()
    if "handshake failed" in text:
        if "wrong_version_number" in text:
            return "hint: the TLS handshake failed: the service may serve plain text; leave out --tls-ca"
        return (
            "hint: the TLS handshake failed: check --tls-ca (the CA that signed the service's"
            " certificate) and that the target's name is in that certificate"
        )
    if "socket closed" in text:
        if not credentials.uses_tls:
            return "hint: the service closed the connection: if it serves TLS, pass --tls-ca FILE"
        if credentials.client_cert is None:
            return (
                "hint: the service closed the connection during TLS: if it asks for a client"
                " certificate (mutual TLS), pass --tls-cert FILE --tls-key FILE"
            )
        return "hint: the service closed the connection during TLS: it may refuse the --tls-cert certificate"
    return ""


async def until_interrupted(work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
    """Run `work` until it ends or Ctrl-C (SIGINT) or SIGTERM: its task, done or cancelled.
    Outside the main thread (no signal handlers there) Ctrl-C ends the run instead."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    handled = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop.set)
            handled.append(signum)
        except (NotImplementedError, RuntimeError, ValueError):
            pass
    task = asyncio.create_task(work)
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for signum in handled:
            loop.remove_signal_handler(signum)
        stopper.cancel()
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    return task
