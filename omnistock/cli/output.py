"""What the command prints: aligned text for a person and JSON for a script (`Output`), and
the tables of reservations, sourcing, positions and limits."""

from __future__ import annotations

import json
import re
import sys
import textwrap
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import IO, Any

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from omnistock.cli.common import EXIT_REFUSED, EXIT_USAGE, UNCERTAIN, ProblemsError, count_of
from omnistock.cli.network_args import parse_quota_subject, quota_text
from omnistock.client import OmnistockRpcError
from omnistock.protos.gen.omnistock.v1 import common_pb2, network_pb2, reservation_pb2

WIDE_CONTROLS = "\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029"
"""Beyond ASCII's control characters, characters never written raw: DEL and the C1 controls
(Cc), the bidirectional controls that reorder what is shown, the line separators."""
UNPRINTABLE = re.compile(f"[\x00-\x1f{WIDE_CONTROLS}]")
UNPRINTABLE_BUT_NEWLINES = re.compile(f"[\x00-\x09\x0b-\x1f{WIDE_CONTROLS}]")


def _escaped(found: re.Match[str]) -> str:
    code = ord(found.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str, newlines: bool = False) -> str:
    """`text` with every control character written as an escape (`\\x1b`, `\\u202e`): a name or
    id read from a response or a file cannot move the cursor, recolour or retitle the terminal,
    or reorder what is shown. `newlines`: a text of several lines keeps its line breaks."""
    pattern = UNPRINTABLE_BUT_NEWLINES if newlines else UNPRINTABLE
    return pattern.sub(_escaped, text) if pattern.search(text) else text


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
    """Aligned columns; numbers right-aligned, text left-aligned. Empty cells ("") leave a
    column of numbers a column of numbers (a row continuing the one above it)."""
    body = [list(row) for row in rows]
    numeric = [
        any(row[i] != "" for row in body)
        and all(
            row[i] == "" or (isinstance(row[i], int | float) and not isinstance(row[i], bool)) for row in body
        )
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
    return printable(str(value))


def state_name(state: int) -> str:
    try:
        return reservation_pb2.ReservationState.Name(state).removeprefix("RESERVATION_STATE_")
    except ValueError:
        return f"STATE_{state}"


def event_name(event_type: int) -> str:
    """`RESERVATION_EVENT_TYPE_LINES_CANCELLED` -> `LINES_CANCELLED` (a type this CLI does not
    know yet prints as its number)."""
    try:
        name = reservation_pb2.ReservationEventType.Name(event_type)
    except ValueError:
        return f"EVENT_{event_type}"
    return name.removeprefix("RESERVATION_EVENT_TYPE_")


def _degrees(value: float) -> str:
    """A latitude or longitude as typed: up to 6 decimals, no trailing zeros."""
    return f"{value:.6f}".rstrip("0").rstrip(".")


def destination_text(destination: reservation_pb2.Destination) -> str:
    """`ship to 40.7128,-74.006` or `pickup at STORE-001`; "" when there is none."""
    match destination.WhichOneof("to"):
        case "address":
            where = destination.address
            return f"ship to {_degrees(where.latitude)},{_degrees(where.longitude)}"
        case "pickup_node_id":
            return f"pickup at {destination.pickup_node_id}"
    return ""


CHOSEN = "chosen: "


def chosen_nodes(sourcing: reservation_pb2.LineSourcing) -> list[reservation_pb2.NodeVerdict]:
    """The node(s) a sourced line went to (units > 0), as sourced."""
    return [verdict for verdict in sourcing.considered if verdict.units > 0]


def short_why(sourcing: Sequence[reservation_pb2.LineSourcing], sku: str, node_id: str) -> str:
    """Why the line of `sku` at `node_id` is there: its node's reason without `chosen: `;
    a line no longer at a node it was sourced at was reassigned since; "" when not sourced."""
    for line in sourcing:
        if line.sku != sku:
            continue
        chosen = chosen_nodes(line)
        for verdict in chosen:
            if verdict.node_id == node_id:
                return verdict.reason.removeprefix(CHOSEN)
        first = ", ".join(verdict.node_id for verdict in chosen)
        return f"reassigned (sourced at {first})" if first else "reassigned"
    return ""


def line_rows(
    lines: Sequence[reservation_pb2.ReservationLine],
    sourcing: Sequence[reservation_pb2.LineSourcing] = (),
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """The lines table: FULFILLED and CANCELLED columns once any unit of any line is closed,
    RETURNED once any came back, and with `sourcing` WHY each line is at its node."""
    closed = any(line.fulfilled or line.cancelled or line.returned for line in lines)
    returned = any(line.returned for line in lines)
    headers = ["SKU", "NODE", "QUANTITY"] + (["FULFILLED", "CANCELLED"] if closed else [])
    headers += ["RETURNED"] if returned else []
    headers += ["WHY"] if sourcing else []
    rows = [
        (
            line.sku,
            line.node_id,
            line.quantity,
            *((line.fulfilled, line.cancelled) if closed else ()),
            *((line.returned,) if returned else ()),
            *((short_why(sourcing, line.sku, line.node_id) or "-",) if sourcing else ()),
        )
        for line in lines
    ]
    return headers, rows


GROUP_REASONS_FROM = 3
"""In a refusal without --explain, a reason shared by this many nodes is printed once, with
the nodes it names."""


def sourcing_text(
    sourcing: Sequence[reservation_pb2.LineSourcing], indent: str = "  ", whole: bool = True
) -> str:
    """Why each sourced line went where it went: the rules in order, then per line every
    node considered, chosen first, with its units, distance and reason. With `whole` False
    (a refusal without --explain) the lines that could be filled say where in one line, and
    a reason shared by several nodes is printed once with their ids."""
    rule_sets = {tuple(line.rules) for line in sourcing}
    shared = len(rule_sets) == 1
    text: list[str] = []
    if shared and sourcing[0].rules:
        text.append(f"{indent}rules, in order: {', '.join(sourcing[0].rules)}")
    for line in sourcing:
        chosen = chosen_nodes(line)
        got = sum(verdict.units for verdict in chosen)
        head = f"{line.sku} x{line.quantity}"
        if got < line.quantity:
            head += f": could source {got} of {line.quantity}"
        elif not whole:
            at = ", ".join(v.node_id for v in chosen)
            reasons = "; ".join(v.reason.removeprefix(CHOSEN) for v in chosen)
            text.append(f"{indent}{head}: could be sourced at {at} ({reasons})")
            continue
        else:
            head += f": {', '.join(f'{v.node_id} ({v.units})' for v in chosen)}"
        text.append(f"{indent}{head}")
        if not shared and line.rules:
            text.append(f"{indent}  rules, in order: {', '.join(line.rules)}")
        listed = list(line.considered)
        grouped: dict[str, list[str]] = {}
        if not whole:
            by_reason: dict[str, list[str]] = {}
            for verdict in listed:
                if not verdict.units:
                    by_reason.setdefault(verdict.reason, []).append(verdict.node_id)
            grouped = {reason: ids for reason, ids in by_reason.items() if len(ids) >= GROUP_REASONS_FROM}
            listed = [v for v in listed if v.units or v.reason not in grouped]
        rows = [
            (
                verdict.node_id,
                verdict.units,
                round(verdict.distance_km, 1) if verdict.HasField("distance_km") else "",
                verdict.reason,
            )
            for verdict in listed
        ]
        if rows:
            text.append(table(["NODE", "UNITS", "DISTANCE_KM", "WHY"], rows, indent=indent + "  "))
        for reason, ids in grouped.items():
            text.append(
                textwrap.fill(
                    f"{reason} ({count_of(ids, 'node')}): {' '.join(ids)}",
                    width=100,
                    initial_indent=indent + "  ",
                    subsequent_indent=indent + "    ",
                )
            )
        if line.omitted:
            text.append(
                f"{indent}  ... and {count_of(range(line.omitted), 'more node')} that lost, not listed"
            )
    return "\n".join(text)


def event_detail(event: reservation_pb2.ReservationEvent) -> str:
    """What an event moved or closed, when it says: `SKU-1 x2: STORE-001 -> DC-01`."""
    if event.type == reservation_pb2.RESERVATION_EVENT_TYPE_MOVED and event.from_node_id:
        return (
            ", ".join(
                f"{line.sku} x{line.quantity}: {event.from_node_id} -> {line.node_id}" for line in event.lines
            )
            or f"from {event.from_node_id}"
        )
    return ", ".join(f"{line.sku} at {line.node_id} x{line.quantity}" for line in event.lines)


def history_table(history: Sequence[reservation_pb2.ReservationEvent], indent: str = "  ") -> str:
    """Every transition, oldest first: when, what happened, who made it happen (the key's
    label, `local` without keys, `expiry` for the service's own timer), and to which lines
    when it says."""
    if not history:
        return f"{indent}(no events)"
    details = [event_detail(event) for event in history]
    rows = [
        (local_time(event.at), event_name(event.type), printable(event.by) or "-", detail)
        for event, detail in zip(history, details, strict=True)
    ]
    if any(details):
        return table(["TIME", "EVENT", "BY", "DETAIL"], rows, indent)
    return table(["TIME", "EVENT", "BY"], [row[:3] for row in rows], indent)


def format_reservation(
    reservation: reservation_pb2.Reservation,
    replayed: bool = False,
    operation: tuple[str, str] | None = None,
    history: bool = False,
    why: bool = False,
    explain: bool = False,
    notes: Sequence[tuple[str, str]] = (),
) -> str:
    """The reservation as the CLI prints it; `operation` (label, id) names the fulfilment or
    cancellation that answered with it, `notes` add (label, text) rows after it, `history`
    adds every transition. A sourced reservation's lines say WHY they are at their node
    with `why`, and `explain` adds every node considered for each line."""
    state = state_name(reservation.state)
    rows: list[tuple[str, str]] = [("reservation", reservation.reservation_id), ("state", state)]
    if reservation.channel_id:
        rows.append(("channel", reservation.channel_id))
    if reservation.customer_id:
        rows.append(("customer", reservation.customer_id))
    if reservation.HasField("destination") and destination_text(reservation.destination):
        rows.append(("destination", destination_text(reservation.destination)))
    if reservation.HasField("created_at"):
        rows.append(("created", local_time(reservation.created_at)))
    if reservation.state == reservation_pb2.RESERVATION_STATE_HELD and reservation.HasField("expires_at"):
        left = reservation.expires_at.seconds + reservation.expires_at.nanos / 1e9 - time.time()
        rows.append(("expires", f"{local_time(reservation.expires_at)} (in {duration(left)})"))
    if reservation.HasField("changed_at"):
        rows.append((state.lower(), local_time(reservation.changed_at)))
    if operation is not None:
        rows.append(operation)
    rows.extend(notes)
    if replayed:
        rows.append(("replayed", "yes: this id was seen before, nothing changed"))
    width = max(len(label) for label, _ in rows)
    text = [f"{label.ljust(width)}  {value}" for label, value in rows]
    sourcing = list(reservation.sourcing) if why or explain else []
    headers, line_table = line_rows(reservation.lines, sourcing)
    text.append(table(headers, line_table, indent="  "))
    if explain and reservation.sourcing:
        text.append("sourcing, as decided at the reserve")
        text.append(sourcing_text(reservation.sourcing))
    if history:
        text.append("history")
        text.append(history_table(reservation.history))
    return "\n".join(text)


def format_position(position: common_pb2.Position) -> str:
    states = (
        f" (damaged {position.damaged}, quality_hold {position.quality_hold})"
        if position.damaged or position.quality_hold
        else ""
    )
    inbound = f", inbound {position.inbound}" if position.inbound else ""
    return (
        f"{position.sku} at {position.node_id}: on_hand {position.on_hand}{states},"
        f" reserved {position.reserved}, committed {position.committed}, available {position.available}"
        f"{inbound}"
    )


def status_name(status: int) -> str:
    return common_pb2.StockStatus.Name(status).removeprefix("STOCK_STATUS_")


def wrapped(words: Sequence[str], indent: str = "  ", width: int = 100) -> str:
    return textwrap.fill(" ".join(words), width=width, initial_indent=indent, subsequent_indent=indent)


class Output:
    """Where a client command writes: text or JSON on stdout, progress and errors on stderr.
    Text goes out `printable` (JSON escapes control characters itself)."""

    def __init__(self, as_json: bool, stdout: IO[str] | None = None, stderr: IO[str] | None = None) -> None:
        self.as_json = as_json
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr

    def result(self, data: dict[str, Any] | Message, text: str) -> None:
        if self.as_json:
            payload = to_dict(data) if isinstance(data, Message) else data
            print(json.dumps(payload, indent=2), file=self.stdout)
        else:
            print(printable(text, newlines=True), file=self.stdout)

    def note(self, text: str) -> None:
        """Human-only remarks (stderr), never mixed into JSON."""
        print(printable(text, newlines=True), file=self.stderr)

    def error(self, code: str, message: str, extra: dict[str, Any] | None = None, text: str = "") -> None:
        if self.as_json:
            print(
                json.dumps({"error": {"code": code, "message": message, **(extra or {})}}, indent=2),
                file=self.stdout,
            )
        else:
            message = printable(message)
            print(f"error: {code}: {message}" if code else f"error: {message}", file=self.stderr)
            if text:
                print(printable(text, newlines=True), file=self.stderr)

    def rpc_error(
        self,
        error: OmnistockRpcError,
        ids: dict[str, str] | None = None,
        customer: str = "",
        explain: bool = False,
    ) -> int:
        """Print a refusal with every detail; `customer` (the one sent) reads quota subjects right.
        A sourcing refusal lists why the nodes lost for each line that could not be filled
        (`explain`: for every line)."""
        extra: dict[str, Any] = dict(ids or {})
        lines: list[str] = []
        if error.precondition_violations:
            extra["precondition_violations"] = [
                {"type": kind, "subject": subject, "description": description}
                for kind, subject, description in error.precondition_violations
            ]
        if error.sourcing:
            extra["sourcing"] = [to_dict(line) for line in error.sourcing]
            lines.append("sourcing, by the channel's rules:")
            lines.append(sourcing_text(error.sourcing, whole=explain))
        if error.field_violations:
            extra["field_violations"] = [
                {"field": field, "description": description} for field, description in error.field_violations
            ]
            lines += [f"  {field}: {description}" for field, description in error.field_violations]
        if error.quota_violations:
            extra["quota_violations"] = [
                dict(
                    zip(("customer", "sku"), parse_quota_subject(subject, customer), strict=True),
                    subject=subject,
                    description=description,
                )
                for subject, description in error.quota_violations
            ]
            lines += [
                f"  {quota_text(subject, description, customer)}"
                for subject, description in error.quota_violations
            ]
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
        message = error.message
        if error.field_violations and not self.as_json:
            # The server's message repeats the violations listed below it.
            message = f"{count_of(error.field_violations, 'problem')}, nothing was changed"
        elif error.quota_violations and not self.as_json:
            over = count_of(error.quota_violations, "SKU")
            message = f"over the per-customer purchase limit of {over}, nothing was held"
        self.error(error.code.name, message, extra, "\n".join(lines))
        return EXIT_USAGE if error.code == grpc.StatusCode.INVALID_ARGUMENT else EXIT_REFUSED

    def problems(self, error: ProblemsError) -> int:
        """Problems found before anything was sent, reported like a refusal naming every field."""
        extra = {"field_violations": [{"field": f, "description": d} for f, d in error.problems]}
        text = "\n".join(f"  {field}: {description}" for field, description in error.problems)
        self.error("INVALID_ARGUMENT", str(error), extra, text)
        return EXIT_USAGE


def limits_table(limits: Iterable[network_pb2.PurchaseLimit], indent: str = "") -> str:
    rows = [(limit.sku, limit.max_per_customer) for limit in sorted(limits, key=lambda limit: limit.sku)]
    if not rows:
        return f"{indent}no purchase limits"
    return table(["SKU", "MAX_PER_CUSTOMER"], rows, indent=indent)
