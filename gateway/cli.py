"""The `omnistock` command: `serve` runs the service, every other command is a client of it.

    omnistock serve --demo
    omnistock availability SKU-00001 --nodes
    omnistock reserve --ttl 600 SKU-00001:STORE-001:2 SKU-00002:DC-01:1
    omnistock confirm res-...

Client commands print aligned text, or JSON on stdout with --json. Exit codes: 0 done,
1 refused (or not applied), 2 bad usage or INVALID_ARGUMENT, 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import logging
import math
import os
import signal
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from gateway.client import DEFAULT_TARGET, OmnistockClient, OmnistockRpcError
from protos.gen.omnistock.v1 import common_pb2, inventory_pb2, reservation_pb2

if TYPE_CHECKING:
    from gateway.service import Service, ServiceConfig

TARGET_ENV = "OMNISTOCK_TARGET"

NODE_TYPE_NAMES: dict[str, common_pb2.NodeType] = {
    "store": common_pb2.NODE_TYPE_STORE,
    "dc": common_pb2.NODE_TYPE_DC,
    "3pl": common_pb2.NODE_TYPE_3PL,
    "dropship": common_pb2.NODE_TYPE_DROPSHIP,
}
NODE_TYPE_LABELS = {value: key for key, value in NODE_TYPE_NAMES.items()}
NODE_FIELDS = ("node_id", "type", "name", "latitude", "longitude", "ships", "pickup", "enabled")
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


class UsageError(ValueError):
    """Bad input found before anything was sent: exit code 2."""


# --- parsing (pure) ---


def parse_line(text: str) -> reservation_pb2.ReservationLine:
    """`SKU:NODE:QTY` -> a reservation line. The last two colons separate, so a SKU may hold colons."""
    parts = text.rsplit(":", 2)
    if len(parts) != 3:
        raise UsageError(f"line {text!r} must look like SKU:NODE:QTY, e.g. SKU-00001:DC-01:2")
    sku, node_id, quantity = (part.strip() for part in parts)
    if not sku or not node_id:
        raise UsageError(f"line {text!r} needs a SKU and a node before the quantity (SKU:NODE:QTY)")
    try:
        count = int(quantity)
    except ValueError:
        raise UsageError(f"line {text!r}: quantity {quantity!r} is not a whole number") from None
    if count < 1:
        raise UsageError(f"line {text!r}: quantity must be at least 1, got {count}")
    if count > INT64[1]:
        raise UsageError(f"line {text!r}: quantity {count} is out of range")
    return reservation_pb2.ReservationLine(sku=sku, node_id=node_id, quantity=count)


def parse_lines(texts: Iterable[str]) -> list[reservation_pb2.ReservationLine]:
    return [parse_line(text) for text in texts]


def parse_int(text: str, what: str, bounds: tuple[int, int] = INT64) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise UsageError(f"{what} must be a whole number, got {text!r}") from None
    if not bounds[0] <= value <= bounds[1]:
        raise UsageError(f"{what} is out of range: {value}")
    return value


def parse_bool(text: Any, what: str, default: bool) -> bool:
    if text is None:
        return default
    if isinstance(text, bool):
        return text
    word = str(text).strip().lower()
    if not word:
        return default
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise UsageError(f"{what} must be true or false (yes/no, 1/0), got {text!r}")


def parse_node_type(text: Any, what: str) -> common_pb2.NodeType:
    word = str(text or "").strip().lower()
    word = word.removeprefix("node_type_")
    if word in NODE_TYPE_NAMES:
        return NODE_TYPE_NAMES[word]
    raise UsageError(f"{what} must be one of store, dc, 3pl, dropship; got {text!r}")


def parse_float(text: Any, what: str) -> float:
    if text is None or (isinstance(text, str) and not text.strip()):
        return 0.0
    if isinstance(text, bool):
        raise UsageError(f"{what} must be a number, got {text!r}")
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise UsageError(f"{what} must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise UsageError(f"{what} must be a finite number, got {text!r}")
    return value


def parse_time(text: str, what: str = "time") -> float:
    """ISO 8601 -> seconds since the epoch; without a UTC offset the time is local."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"{what} must be an ISO 8601 time such as 2024-06-11T09:30:00Z, got {text!r}"
        ) from None
    try:
        if moment.tzinfo is None:
            moment = moment.astimezone()  # local time
        return moment.timestamp()
    except (OverflowError, OSError, ValueError):
        raise UsageError(f"{what} is out of range: {text!r}") from None


def node_from_record(record: dict[str, Any], where: str) -> common_pb2.Node:
    """One node from a CSV row or a JSON object (missing fields take their defaults)."""
    unknown = sorted(set(record) - set(NODE_FIELDS) - {None})
    if unknown:
        raise UsageError(f"{where}: unknown field(s) {', '.join(unknown)}; expected {', '.join(NODE_FIELDS)}")
    node_id = str(record.get("node_id") or "").strip()
    if not node_id:
        raise UsageError(f"{where}: node_id is required")
    if record.get("type") in (None, ""):
        raise UsageError(f"{where}: type is required (store, dc, 3pl or dropship)")
    return common_pb2.Node(
        node_id=node_id,
        type=parse_node_type(record.get("type"), f"{where}: type"),
        name=str(record.get("name") or "").strip(),
        latitude=parse_float(record.get("latitude"), f"{where}: latitude"),
        longitude=parse_float(record.get("longitude"), f"{where}: longitude"),
        ships=parse_bool(record.get("ships"), f"{where}: ships", default=True),
        pickup=parse_bool(record.get("pickup"), f"{where}: pickup", default=False),
        enabled=parse_bool(record.get("enabled"), f"{where}: enabled", default=True),
    )


def parse_nodes_csv(text: str) -> list[common_pb2.Node]:
    """CSV with a header naming some of node_id,type,name,latitude,longitude,ships,pickup,enabled."""
    reader = csv.DictReader(io.StringIO(text))
    header = [name.strip() for name in reader.fieldnames or []]
    if "node_id" not in header or "type" not in header:
        raise UsageError(f"the CSV header must name at least node_id and type; got {','.join(header)!r}")
    reader.fieldnames = header
    nodes = []
    for record in reader:
        if None in record:
            raise UsageError(f"line {reader.line_num}: more values than header fields")
        if not any((value or "").strip() for value in record.values()):
            continue
        nodes.append(node_from_record(record, f"line {reader.line_num}"))
    return nodes


def parse_nodes_json(text: str) -> list[common_pb2.Node]:
    """A JSON list of node objects, or `{"nodes": [...]}` as `nodes list --json` prints it."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise UsageError(f"invalid JSON: {error}") from None
    if isinstance(data, dict) and isinstance(data.get("nodes"), list):
        data = data["nodes"]
    if not isinstance(data, list):
        raise UsageError('expected a JSON list of node objects (or {"nodes": [...]})')
    nodes = []
    for i, record in enumerate(data):
        if not isinstance(record, dict):
            raise UsageError(f"node {i}: expected an object, got {type(record).__name__}")
        nodes.append(node_from_record(record, f"node {i}"))
    return nodes


def parse_nodes(text: str, name: str = "") -> list[common_pb2.Node]:
    """JSON when the file is .json or starts with [ or {, CSV otherwise."""
    stripped = text.lstrip("\ufeff \t\r\n")
    if name.lower().endswith(".json") or stripped[:1] in ("[", "{"):
        nodes = parse_nodes_json(stripped)
    else:
        nodes = parse_nodes_csv(stripped)
    if not nodes:
        raise UsageError("no nodes in the file")
    return nodes


def iter_levels(rows: Iterable[Sequence[str]]) -> Iterator[inventory_pb2.StockLevel]:
    """CSV rows `sku,node_id,on_hand[,as_of]` -> levels, lazily. A header row is skipped if present."""
    for number, row in enumerate(rows, start=1):
        cells = [cell.strip() for cell in row]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if number == 1 and cells[0].lower() == "sku":
            continue
        if not 3 <= len(cells) <= 4:
            raise UsageError(f"line {number}: expected sku,node_id,on_hand[,as_of]; got {len(cells)} values")
        sku, node_id, on_hand = cells[:3]
        if not sku or not node_id:
            raise UsageError(f"line {number}: sku and node_id are required")
        message = inventory_pb2.StockLevel(
            sku=sku, node_id=node_id, on_hand=parse_int(on_hand, f"line {number}: on_hand")
        )
        if len(cells) == 4 and cells[3]:
            message.as_of.CopyFrom(to_timestamp(parse_time(cells[3], f"line {number}: as_of")))
        yield message


def to_timestamp(seconds: float) -> Timestamp:
    timestamp = Timestamp()
    timestamp.FromNanoseconds(round(seconds * 1e9))
    return timestamp


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


# --- output ---


def to_dict(message: Message) -> dict[str, Any]:
    """Proto JSON with snake_case names, every field (zeros too), int64 as numbers, in field order."""
    data = json_format.MessageToDict(
        message,
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
        unquote_int64_if_possible=True,
    )
    return _in_field_order(message.DESCRIPTOR, data)


def _in_field_order(descriptor: Any, data: dict[str, Any]) -> dict[str, Any]:
    ordered: dict[str, Any] = {}
    for field in descriptor.fields:
        if field.name not in data:
            continue
        value = data[field.name]
        if field.message_type is not None and not field.message_type.GetOptions().map_entry:
            if isinstance(value, dict):
                value = _in_field_order(field.message_type, value)
            elif isinstance(value, list):
                value = [_in_field_order(field.message_type, v) if isinstance(v, dict) else v for v in value]
        ordered[field.name] = value
    ordered.update((key, value) for key, value in data.items() if key not in ordered)
    return ordered


def local_time(timestamp: Timestamp) -> str:
    seconds = timestamp.seconds + timestamp.nanos / 1e9
    return datetime.fromtimestamp(seconds, tz=UTC).astimezone().isoformat(timespec="seconds")


def duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], indent: str = "") -> str:
    """Aligned columns; numbers right-aligned, text left-aligned."""
    body = [list(row) for row in rows]
    numeric = [
        bool(body) and all(isinstance(row[i], int | float) and not isinstance(row[i], bool) for row in body)
        for i in range(len(headers))
    ]
    cells = [list(headers)] + [[_cell(value) for value in row] for row in body]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for row in cells:
        parts = [
            value.rjust(width) if numeric[i] else value.ljust(width)
            for i, (value, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append(indent + "  ".join(parts).rstrip())
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def state_name(state: int) -> str:
    return reservation_pb2.ReservationState.Name(state).removeprefix("RESERVATION_STATE_")


def format_reservation(reservation: reservation_pb2.Reservation, replayed: bool = False) -> str:
    state = state_name(reservation.state)
    rows: list[tuple[str, str]] = [("reservation", reservation.reservation_id), ("state", state)]
    if reservation.HasField("created_at"):
        rows.append(("created", local_time(reservation.created_at)))
    if reservation.state == reservation_pb2.RESERVATION_STATE_HELD and reservation.HasField("expires_at"):
        left = reservation.expires_at.seconds + reservation.expires_at.nanos / 1e9 - time.time()
        rows.append(("expires", f"{local_time(reservation.expires_at)} (in {duration(left)})"))
    if reservation.HasField("changed_at"):
        rows.append((state.lower(), local_time(reservation.changed_at)))
    if replayed:
        rows.append(("replayed", "yes: this id was seen before, nothing changed"))
    width = max(len(label) for label, _ in rows)
    text = [f"{label.ljust(width)}  {value}" for label, value in rows]
    text.append(
        table(
            ["SKU", "NODE", "QUANTITY"],
            [(line.sku, line.node_id, line.quantity) for line in reservation.lines],
            indent="  ",
        )
    )
    return "\n".join(text)


def format_position(position: common_pb2.Position) -> str:
    return (
        f"{position.sku} at {position.node_id}: on_hand {position.on_hand}, reserved {position.reserved},"
        f" committed {position.committed}, available {position.available}"
    )


class Output:
    """Where a client command writes: text or JSON on stdout, progress and errors on stderr."""

    def __init__(self, as_json: bool, stdout: IO[str] | None = None, stderr: IO[str] | None = None) -> None:
        self.as_json = as_json
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr

    def result(self, data: dict[str, Any] | Message, text: str) -> None:
        if self.as_json:
            payload = to_dict(data) if isinstance(data, Message) else data
            print(json.dumps(payload, indent=2), file=self.stdout)
        else:
            print(text, file=self.stdout)

    def note(self, text: str) -> None:
        """Human-only remarks (stderr), never mixed into JSON."""
        print(text, file=self.stderr)

    def error(self, code: str, message: str, extra: dict[str, Any] | None = None, text: str = "") -> None:
        if self.as_json:
            print(
                json.dumps({"error": {"code": code, "message": message, **(extra or {})}}, indent=2),
                file=self.stdout,
            )
        else:
            print(f"error: {code}: {message}" if code else f"error: {message}", file=self.stderr)
            if text:
                print(text, file=self.stderr)

    def rpc_error(self, error: OmnistockRpcError, ids: dict[str, str] | None = None) -> int:
        extra: dict[str, Any] = dict(ids or {})
        lines: list[str] = []
        if error.field_violations:
            extra["field_violations"] = [
                {"field": field, "description": description} for field, description in error.field_violations
            ]
            lines += [f"  {field}: {description}" for field, description in error.field_violations]
        if error.short_lines:
            extra["short_lines"] = [to_dict(short) for short in error.short_lines]
            lines.append("short lines:")
            lines.append(
                table(
                    ["SKU", "NODE", "REQUESTED", "AVAILABLE"],
                    [(s.sku, s.node_id, s.requested, s.available) for s in error.short_lines],
                    indent="  ",
                )
            )
        if error.reservation is not None:
            extra["reservation"] = to_dict(error.reservation)
            lines.append("current state:")
            lines.append("\n".join("  " + row for row in format_reservation(error.reservation).splitlines()))
        if error.code in UNCERTAIN:
            for name, value in (ids or {}).items():
                lines.append(f"{name}: {value}; the call may or may not have taken effect:")
                lines.append(f"  retry with --id {value} (the same id again is safe)")
        self.error(error.code.name, error.message, extra, "\n".join(lines))
        return EXIT_USAGE if error.code == grpc.StatusCode.INVALID_ARGUMENT else EXIT_REFUSED


# --- client commands ---

Command = Callable[[OmnistockClient, argparse.Namespace, Output], Awaitable[int]]


def read_text(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror or error}") from None


async def cmd_nodes_put(client: OmnistockClient, args: argparse.Namespace, out: Output) -> int:
    nodes = parse_nodes(read_text(args.file), args.file)
    response = await client.put_nodes(nodes)
    out.result(response, f"{len(nodes)} node(s): {response.created} created, {response.updated} updated")
    return EXIT_OK


async def cmd_nodes_list(client: OmnistockClient, args: argparse.Namespace, out: Output) -> int:
    node_type = parse_node_type(args.type, "--type") if args.type else common_pb2.NODE_TYPE_UNSPECIFIED
    nodes = await client.list_nodes(node_type)
    rows = [
        (
            n.node_id,
            NODE_TYPE_LABELS.get(n.type, str(n.type)),
            n.name,
            f"{n.latitude:.4f}",
            f"{n.longitude:.4f}",
            n.ships,
            n.pickup,
            n.enabled,
        )
        for n in nodes
    ]
    text = (
        table(["NODE_ID", "TYPE", "NAME", "LATITUDE", "LONGITUDE", "SHIPS", "PICKUP", "ENABLED"], rows)
        if nodes
        else "no nodes"
    )
    out.result(inventory_pb2.ListNodesResponse(nodes=nodes), text)
    return EXIT_OK


async def cmd_stock_set(client: OmnistockClient, args: argparse.Namespace, out: Output) -> int:
    stock = inventory_pb2.StockLevel(
        sku=args.sku, node_id=args.node, on_hand=parse_int(args.on_hand, "ON_HAND")
    )
    if args.as_of:
        stock.as_of.CopyFrom(to_timestamp(parse_time(args.as_of, "--as-of")))
    response = await client.set_stock([stock])
    if response.applied:
        text = f"{args.sku} at {args.node}: on_hand set to {stock.on_hand}"
    else:
        text = f"{args.sku} at {args.node}: stale, not applied (a newer count is already in place)"
    out.result(response, text)
    return EXIT_OK


ADJUST_OK = {inventory_pb2.ADJUSTMENT_OUTCOME_APPLIED, inventory_pb2.ADJUSTMENT_OUTCOME_REPLAYED}


async def cmd_stock_adjust(client: OmnistockClient, args: argparse.Namespace, out: Output) -> int:
    delta = parse_int(args.delta, "DELTA")
    adjustment_id = args.id or new_id("adj")
    try:
        result = await client.adjust(adjustment_id, args.sku, args.node, delta, args.reason)
    except OmnistockRpcError as error:
        return out.rpc_error(error, {} if args.id else {"adjustment_id": adjustment_id})
    outcome = inventory_pb2.AdjustmentOutcome.Name(result.outcome).removeprefix("ADJUSTMENT_OUTCOME_")
    text = f"adjustment {adjustment_id}: {outcome}\n{format_position(result.position)}"
    out.result(result, text)
    return EXIT_OK if result.outcome in ADJUST_OK else EXIT_REFUSED


class Progress:
    """Counts rows as they are read and reports rows/s on stderr, at most twice a second."""

    def __init__(self, stream: IO[str], every: float = 0.5) -> None:
        self.stream = stream
        self.every = every
        self.started = time.perf_counter()
        self.last = self.started
        self.rows = 0
        self.tty = stream.isatty()

    def count(self, levels: Iterable[inventory_pb2.StockLevel]) -> Iterator[inventory_pb2.StockLevel]:
        for item in levels:
            self.rows += 1
            if self.rows % 1000 == 0:
                now = time.perf_counter()
                if now - self.last >= (self.every if self.tty else 5 * self.every):
                    self.last = now
                    self.report(end="\r" if self.tty else "\n")
            yield item

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def report(self, end: str = "\n") -> None:
        rate = self.rows / self.elapsed if self.elapsed > 0 else 0.0
        print(f"read {self.rows} rows, {rate:,.0f} rows/s", end=end, file=self.stream, flush=True)

    def done(self) -> None:
        if self.tty:
            print(" " * 60, end="\r", file=self.stream)


async def cmd_stock_load(client: OmnistockClient, args: argparse.Namespace, out: Output) -> int:
    if args.file == "-":
        handle: IO[str] = sys.stdin
    else:
        try:
            handle = open(args.file, newline="", encoding="utf-8-sig")  # noqa: SIM115 closed below
        except OSError as error:
            raise UsageError(f"cannot read {args.file}: {error.strerror or error}") from None
    progress = Progress(out.stderr)
    bad: list[UsageError] = []

    def guarded(levels: Iterator[inventory_pb2.StockLevel]) -> Iterator[inventory_pb2.StockLevel]:
        try:
            yield from levels
        except UsageError as error:
            bad.append(error)
            raise

    try:
        levels = guarded(progress.count(iter_levels(csv.reader(handle))))
        try:
            response = await client.load_stock(levels, chunk_size=args.chunk)
        except asyncio.CancelledError:
            # gRPC cancels the stream when its request iterator raises; report the bad row instead.
            task = asyncio.current_task()
            if not bad or (task is not None and task.cancelling()):
                raise
            progress.done()
            sent = progress.rows // args.chunk * args.chunk
            raise UsageError(
                f"{bad[0]}; "
                + (
                    f"the {sent} rows before it may have been loaded, none after it"
                    " (loading again is safe: counts are absolute)"
                    if sent
                    else "nothing was loaded"
                )
            ) from None
    finally:
        if handle is not sys.stdin:
            handle.close()
    progress.done()
    elapsed = progress.elapsed
    text = (
        f"received {response.received}, applied {response.applied}, stale {response.stale}"
        f" in {elapsed:.1f}s ({response.received / elapsed if elapsed > 0 else 0:,.0f} rows/s)"
    )
    out.result(response, text)
    return EXIT_OK


async def cmd_availability(client: OmnistockClient, args: argparse.Namespace, out: Output) -> int:
    response = await client.availability(args.skus, include_nodes=args.nodes)
    as_of = f"as of {local_time(response.as_of)}"
    if not args.nodes:
        text = table(
            ["SKU", "AVAILABLE", "ON_HAND", "RESERVED", "COMMITTED"],
            [(a.sku, a.available, a.on_hand, a.reserved, a.committed) for a in response.skus],
        )
        out.result(response, f"{text}\n{as_of}")
        return EXIT_OK
    blocks = []
    for a in response.skus:
        head = (
            f"{a.sku}: available {a.available} (on_hand {a.on_hand}, reserved {a.reserved},"
            f" committed {a.committed}) at {len(a.nodes)} node(s)"
        )
        if a.nodes:
            rows = [(p.node_id, p.on_hand, p.reserved, p.committed, p.available) for p in a.nodes]
            head += "\n" + table(["NODE", "ON_HAND", "RESERVED", "COMMITTED", "AVAILABLE"], rows, indent="  ")
        blocks.append(head)
    out.result(response, "\n\n".join(blocks) + f"\n{as_of}")
    return EXIT_OK


async def cmd_reserve(client: OmnistockClient, args: argparse.Namespace, out: Output) -> int:
    lines = parse_lines(args.lines)
    reservation_id = args.id or new_id("res")
    try:
        response = await client.reserve(reservation_id, lines, ttl_seconds=args.ttl)
    except OmnistockRpcError as error:
        return out.rpc_error(error, {} if args.id else {"reservation_id": reservation_id})
    out.result(response, format_reservation(response.reservation, response.replayed))
    return EXIT_OK


async def cmd_confirm(client: OmnistockClient, args: argparse.Namespace, out: Output) -> int:
    response = await client.confirm(args.id)
    out.result(response, format_reservation(response.reservation, response.replayed))
    return EXIT_OK


async def cmd_release(client: OmnistockClient, args: argparse.Namespace, out: Output) -> int:
    response = await client.release(args.id)
    out.result(response, format_reservation(response.reservation, response.replayed))
    return EXIT_OK


async def cmd_get(client: OmnistockClient, args: argparse.Namespace, out: Output) -> int:
    reservation = await client.get_reservation(args.id)
    out.result(
        reservation_pb2.GetReservationResponse(reservation=reservation), format_reservation(reservation)
    )
    return EXIT_OK


async def cmd_check(client: OmnistockClient, args: argparse.Namespace, out: Output) -> int:
    response = await client.check_conservation()
    if response.ok:
        text = f"stock is conserved ({response.shards_checked} shard(s) checked)"
    else:
        text = "\n".join(
            [f"conservation broken at {len(response.problems)} position(s):"]
            + [f"  {problem}" for problem in response.problems]
        )
    out.result(response, text)
    return EXIT_OK if response.ok else EXIT_REFUSED


def unreachable(client: OmnistockClient) -> bool:
    """UNAVAILABLE with no live connection: the server is not there (the service's own UNAVAILABLE
    comes over a READY channel)."""
    state = client.channel.get_state(try_to_connect=False)
    return bool(state != grpc.ChannelConnectivity.READY)


def run_client(args: argparse.Namespace, command: Command) -> int:
    out = Output(args.json)

    async def go() -> int:
        async with OmnistockClient(args.target, timeout=args.timeout) as client:
            try:
                return await command(client, args, out)
            except OmnistockRpcError as error:
                if error.code == grpc.StatusCode.UNAVAILABLE and unreachable(client):
                    out.error(
                        "UNAVAILABLE",
                        f'cannot reach omnistock at {args.target}; is "omnistock serve" running?',
                        {"target": args.target, "detail": error.message},
                    )
                    return EXIT_REFUSED
                return out.rpc_error(error)

    try:
        return asyncio.run(go())
    except UsageError as error:
        out.error("INVALID_ARGUMENT" if out.as_json else "", str(error))
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


# --- serve ---


def client_target(host: str, port: int) -> str:
    """Where a local client reaches a server listening on host:port."""
    if host in ("", "0.0.0.0", "::", "[::]"):
        host = "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}"


def service_config(args: argparse.Namespace) -> ServiceConfig:
    from gateway.service import ServiceConfig

    return ServiceConfig(
        host=args.host,
        port=args.port,
        metrics_port=args.metrics_port,
        shards=args.shards,
        partitions=args.partitions,
        redis_url=args.redis_url,
        ray_address=args.ray_address,
        data_dir=Path(args.data_dir),
        redis_fsync=args.redis_fsync,
    )


def redact(url: str) -> str:
    """The URL without its password (banners end up in logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def banner(service: Service) -> str:
    config = service.config
    redis = redact(service.redis_url) + (
        f" (embedded, data in {(config.data_dir / 'redis').resolve()})" if not config.redis_url else ""
    )
    metrics = (
        f"http://{client_target(config.host, service.metrics_port)}/metrics"
        if service.metrics_port
        else "off"
    )
    rows = [
        ("gRPC", f"{client_target(config.host, service.port)} (listening on {config.host})"),
        ("metrics", metrics),
        ("shards", f"{config.shards} Ray actor(s) on {config.ray_address or 'a local Ray runtime'}"),
        ("redis", redis),
        ("data dir", str(config.data_dir.resolve())),
    ]
    width = max(len(label) for label, _ in rows)
    lines = ["omnistock is serving"] + [f"  {label.ljust(width)}  {value}" for label, value in rows]
    return "\n".join(lines)


def try_hint(target: str) -> str:
    flag = "" if target == DEFAULT_TARGET else f" --target {target}"
    return f"try: omnistock availability SKU-00001 --nodes{flag}    (stop with Ctrl-C)"


async def load_demo_if_empty(target: str, say: Callable[[str], None]) -> None:
    from loadtest.datagen import load_demo

    async with OmnistockClient(target, timeout=60.0) as client:
        if await client.list_nodes():
            say("demo: nodes are already registered; keeping the stock as it is")
            return
        started = time.perf_counter()
        say("demo: loading the demo network ...")
        await load_demo(client, progress=lambda text: say(f"demo: {text}"))
        say(f"demo: ready in {time.perf_counter() - started:.1f}s")


async def serve_async(args: argparse.Namespace) -> int:
    from gateway.service import Service

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    service = Service(service_config(args))
    try:
        await service.start()
    except BaseException as error:
        # Whatever started (redis-server, Ray) must not outlive a failed start.
        try:
            await service.stop(grace=0)
        except Exception:
            logging.getLogger(__name__).exception("clean-up after a failed start")
        if isinstance(error, Exception):
            hint = " (is something else listening on that port?)" if "bind" in str(error).lower() else ""
            say(f"error: cannot start omnistock: {error}{hint}")
            return EXIT_REFUSED
        raise

    # Installed after start: ray.init() replaces the SIGTERM handler with its own sys.exit.
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()

    def on_signal(signum: int) -> None:
        if stopping.is_set():
            say("already stopping; waiting for in-flight calls to finish")
        else:
            say(f"\n{signal.Signals(signum).name}: stopping, draining in-flight calls (up to 5s)")
            stopping.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)

    target = client_target(service.config.host, service.port)
    say(banner(service))
    demo: asyncio.Task[None] | None = None
    if args.demo:

        async def demo_then_hint() -> None:
            try:
                await load_demo_if_empty(target, say)
            except OmnistockRpcError as error:
                say(f"demo: loading failed: {error}; the service keeps running")
            say(try_hint(target))

        demo = asyncio.create_task(demo_then_hint())
    else:
        say(try_hint(target))
    try:
        await stopping.wait()
    finally:
        if demo is not None and not demo.done():
            demo.cancel()
            await asyncio.gather(demo, return_exceptions=True)
        await service.stop(grace=5)
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
    say("omnistock stopped")
    return EXIT_OK


def serve(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        import uvloop
    except ImportError:
        runner: Callable[[Awaitable[int]], int] = asyncio.run  # type: ignore[assignment]
    else:
        runner = uvloop.run
    try:
        return runner(serve_async(args))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


# --- the parser ---


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def int32(text: str) -> int:
    value = int(text)
    if not INT32[0] <= value <= INT32[1]:
        raise argparse.ArgumentTypeError(f"out of range: {value}")
    return value


def port_number(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port within 0..65535, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="omnistock",
        description="Inventory availability and reservations for omnichannel retail.",
        epilog="Run `omnistock COMMAND --help` for the options of a command.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve_parser = commands.add_parser("serve", help="run the service (gRPC, shard actors, Redis journal)")
    serve_parser.add_argument(
        "--host", default="127.0.0.1", help="interface to listen on (default %(default)s)"
    )
    serve_parser.add_argument(
        "--port", type=port_number, default=50051, help="gRPC port (default %(default)s)"
    )
    serve_parser.add_argument(
        "--metrics-port",
        type=port_number,
        default=9464,
        help="Prometheus /metrics port (default %(default)s)",
    )
    serve_parser.add_argument(
        "--shards",
        type=positive_int,
        default=os.cpu_count() or 1,
        help="shard actors owning the partitions (default: CPU count, %(default)s)",
    )
    serve_parser.add_argument(
        "--partitions",
        type=positive_int,
        default=256,
        help="partitions of the SKU space; fixed at the first start, then read from Redis"
        " (default %(default)s)",
    )
    serve_parser.add_argument(
        "--redis-url", help="external Redis, e.g. redis://host:6379/0 (default: embedded)"
    )
    serve_parser.add_argument(
        "--ray-address", help="Ray cluster to join, e.g. auto (default: a local runtime)"
    )
    serve_parser.add_argument(
        "--data-dir", default="./var", help="where the embedded Redis keeps its data (default %(default)s)"
    )
    serve_parser.add_argument(
        "--demo",
        action="store_true",
        help="load the demo network (3 DCs, 50 stores, 1000 SKUs) when no node is registered yet",
    )
    serve_parser.add_argument(
        "--redis-fsync",
        choices=["always", "everysec"],
        default="always",
        help="AOF fsync of the embedded Redis: always loses no acknowledged write (default %(default)s)",
    )
    serve_parser.add_argument(
        "--log-level",
        default="info",
        type=str.lower,
        choices=["debug", "info", "warning", "error"],
        help="(default %(default)s)",
    )
    serve_parser.set_defaults(handler=serve)

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--target",
        default=os.environ.get(TARGET_ENV, DEFAULT_TARGET),
        help=f"omnistock gRPC address (default: ${TARGET_ENV} or {DEFAULT_TARGET})",
    )
    common.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")
    common.add_argument("--timeout", type=float, default=30.0, help="seconds per call (default %(default)s)")

    def client_command(
        group: Any, name: str, command: Command, help_text: str, **kwargs: Any
    ) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = group.add_parser(name, parents=[common], help=help_text, **kwargs)
        sub.set_defaults(handler=lambda args: run_client(args, command))
        return sub

    nodes = commands.add_parser("nodes", help="stocking locations: put, list")
    node_commands = nodes.add_subparsers(dest="nodes_command", metavar="ACTION", required=True)
    put = client_command(
        node_commands,
        "put",
        cmd_nodes_put,
        "create or replace nodes from a CSV or JSON file",
        description="FILE is CSV with the header node_id,type,name,latitude,longitude,ships,pickup,enabled"
        " (only node_id and type are required; ships and enabled default to true, pickup to false)"
        " or a JSON list of such objects. type is store, dc, 3pl or dropship. - reads stdin.",
    )
    put.add_argument("file", metavar="FILE")
    listing = client_command(node_commands, "list", cmd_nodes_list, "list nodes")
    listing.add_argument("--type", choices=sorted(NODE_TYPE_NAMES), help="only nodes of this type")

    stock = commands.add_parser("stock", help="supply: set, adjust, load")
    stock_commands = stock.add_subparsers(dest="stock_command", metavar="ACTION", required=True)
    setting = client_command(
        stock_commands,
        "set",
        cmd_stock_set,
        "set the absolute on_hand of a SKU at a node",
        description="An older --as-of never overwrites a newer count (the call answers stale).",
    )
    setting.add_argument("sku", metavar="SKU")
    setting.add_argument("node", metavar="NODE")
    setting.add_argument("on_hand", metavar="ON_HAND")
    setting.add_argument(
        "--as-of", help="when the count was taken, ISO 8601 (default: now); local time without offset"
    )
    adjust = client_command(
        stock_commands,
        "adjust",
        cmd_stock_adjust,
        "add a signed delta to on_hand (idempotent by id)",
        description="Prints the outcome APPLIED, REPLAYED, REFUSED_NEGATIVE or CONFLICT;"
        " exits 1 unless APPLIED or REPLAYED.",
    )
    adjust.add_argument("sku", metavar="SKU")
    adjust.add_argument("node", metavar="NODE")
    adjust.add_argument("delta", metavar="DELTA")
    adjust.add_argument("--id", help="adjustment id (default: a new one, printed); the same id again is safe")
    adjust.add_argument("--reason", default="", help="free text for audit: receipt, pos-sale, damage, ...")
    load = client_command(
        stock_commands,
        "load",
        cmd_stock_load,
        "stream a CSV of absolute counts",
        description="FILE is CSV sku,node_id,on_hand[,as_of] (an optional header row is skipped),"
        " streamed in chunks without reading it all into memory. - reads stdin.",
    )
    load.add_argument("file", metavar="FILE")
    load.add_argument(
        "--chunk", type=positive_int, default=5_000, help="levels per chunk (default %(default)s)"
    )

    availability = client_command(
        commands, "availability", cmd_availability, "network availability of SKUs (1000 per call)"
    )
    availability.add_argument("skus", metavar="SKU", nargs="+")
    availability.add_argument("--nodes", action="store_true", help="also show every node's position")

    reserve = client_command(
        commands,
        "reserve",
        cmd_reserve,
        "hold stock: every line or none",
        description="Each LINE is SKU:NODE:QTY. The same --id again returns the first answer.",
    )
    reserve.add_argument("lines", metavar="LINE", nargs="+", help="SKU:NODE:QTY")
    reserve.add_argument("--id", help="reservation id (default: a new one, printed)")
    reserve.add_argument(
        "--ttl", type=int32, default=0, help="seconds the hold lives (default: server's, 900)"
    )

    client_command(
        commands,
        "check",
        cmd_check,
        "conservation check: reserved and committed match the holds, no negative on_hand",
        description="Exits 1 when any position breaks conservation.",
    )

    for name, command, help_text in (
        ("confirm", cmd_confirm, "HELD -> CONFIRMED: the hold no longer expires"),
        ("release", cmd_release, "HELD or CONFIRMED -> RELEASED: the units return to availability"),
        ("get", cmd_get, "show a reservation"),
    ):
        sub = client_command(commands, name, command, help_text)
        sub.add_argument("id", metavar="ID")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except BrokenPipeError:
        # The reader went away (`omnistock nodes list | head`): stop quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_REFUSED


if __name__ == "__main__":
    sys.exit(main())
