"""The `omnistock` command: `serve` runs the service, every other command is a client of it.

    omnistock serve --demo
    omnistock availability SKU-00001 --nodes
    omnistock availability SKU-00001 --channel web
    omnistock reserve --ttl 600 --channel web SKU-00001:STORE-001:2 SKU-00002:DC-01:1
    omnistock reserve --channel web --ship-to 40.7128,-74.0060 SKU-00001:2 SKU-00002:1
                                                              (sourced: the channel's rules choose)
    omnistock get res-... --explain                           (why each line went where it went)
    omnistock reassign res-... SKU-00001 STORE-001            (the store cannot find it: source anew)
    omnistock return res-... SKU-00001:STORE-001:1 --at STORE-002   (back on hand at any node)
    omnistock limits put SKU-00042 2                          (at most 2 per customer; 0 removes)
    omnistock reserve --customer alice SKU-00042:DC-01:1
    omnistock extend res-... --ttl 1800                       (a HELD hold lives 30 more minutes)
    omnistock confirm res-...
    omnistock fulfil res-... SKU-00001:STORE-001:1 --id ship-1 (units shipped; the same id is a replay)
    omnistock cancel-lines res-... SKU-00002:DC-01:1          (units back to availability)
    omnistock get res-...                                     (lines, fulfilled, cancelled, history)
    omnistock channels put web --groups dcs,ship-from-store --safety units=2,node_type=store
    omnistock network apply network.toml
    omnistock pickup SKU-00003:2 SKU-00007 --near 40.7128,-74.0060 --channel store-pickup
    omnistock watch SKU-00652 --channel marketplace          (Ctrl-C prints how to resume)
    omnistock supply expect PO-4711 SKU-00432 DC-01 200 --date 2026-12-01
    omnistock availability SKU-00432 --by-date 2026-12-05 --quantity 250

Client commands print aligned text, or JSON on stdout with --json. Exit codes: 0 done,
1 refused (or not applied), 2 bad usage or INVALID_ARGUMENT, 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import dataclasses
import faulthandler
import io
import json
import logging
import math
import os
import re
import shlex
import signal
import sys
import textwrap
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence, Sized
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit, urlunsplit

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from availability.network import Channel, Network, NodeGroup
from availability.network_file import NetworkFile, NetworkFileError, parse_network_file
from availability.nodes import Node
from gateway.client import DEFAULT_TARGET, OmnistockClient, OmnistockRpcError
from gateway.client import to_timestamp as client_timestamp
from gateway.convert import (
    Limits,
    channels_from_proto,
    groups_from_proto,
    network_from_proto,
    network_to_proto,
    node_to_proto,
    nodes_from_proto,
    purchase_limits_from_proto,
)
from gateway.event_loop import loop_runner
from gateway.routing import default_shards
from loadtest.bench import add_arguments as add_bench_arguments
from loadtest.bench import run_bench
from loadtest.peakday import add_arguments as add_loadtest_arguments
from loadtest.peakday import run_loadtest
from loadtest.sizing import add_arguments as add_size_arguments
from loadtest.sizing import run_size
from protos.gen.omnistock.v1 import availability_pb2, common_pb2, inventory_pb2, network_pb2, reservation_pb2
from reservations.errors import InvalidArgument

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


def parse_closing_lines(texts: Iterable[str], what: str) -> list[reservation_pb2.ReservationLine]:
    """`SKU:NODE:QTY` units to fulfil or cancel, each (SKU, NODE) once: the units of one line
    go in one LINE (the service refuses a line twice)."""
    lines: list[reservation_pb2.ReservationLine] = []
    seen: dict[tuple[str, str], str] = {}
    for text in texts:
        parsed = parse_line(text)
        key = (parsed.sku, parsed.node_id)
        if key in seen:
            raise UsageError(
                f"{parsed.sku} at {parsed.node_id} is in the {what} twice ({seen[key]!r}, {text!r});"
                " give it once with the whole quantity"
            )
        seen[key] = text
        lines.append(parsed)
    if not lines:
        raise UsageError(f"a {what} needs at least one line SKU:NODE:QTY")
    return lines


ANY_NODE = "*"
"""In a line, the node omnistock is to choose: `SKU:*:QTY` (for a SKU that holds colons)."""

SOURCED_FORM = "SKU:QTY"
MIXED_LINES = (
    "either every line names its node (SKU:NODE:QTY) or none does"
    " (SKU:QTY with --ship-to LAT,LON or --pickup-at STORE_ID, and --channel)"
)


def parse_sourced_line(text: str, flag: str = "--ship-to") -> reservation_pb2.ReservationLine:
    """`SKU:QTY` -> a line without a node, for the channel's rules to source.

    The part after the last colon is the quantity; a SKU that holds colons is written
    `SKU:*:QTY`. A line naming a node (`SKU:NODE:QTY`) is refused: with a destination
    (`flag`) every line is sourced."""
    head, sep, quantity = text.strip().rpartition(":")
    sku = head.strip()
    if not sep or not sku:
        raise UsageError(f"line {text!r} must look like {SOURCED_FORM}, e.g. SKU-00001:2")
    if sku.endswith(f":{ANY_NODE}"):
        sku = sku[: -len(ANY_NODE) - 1].strip()
    elif ":" in sku:
        named, node_id = (part.strip() for part in sku.rsplit(":", 1))
        raise UsageError(
            f"line {text!r} names node {node_id}, but with {flag} omnistock sources every line:"
            f" write it {named}:{quantity.strip()} (a SKU holding colons: SKU:{ANY_NODE}:QTY),"
            f" or leave out {flag} to hold at the nodes you name; {MIXED_LINES}"
        )
    if not sku:
        raise UsageError(f"line {text!r} needs a SKU before the quantity ({SOURCED_FORM})")
    try:
        count = int(quantity)
    except ValueError:
        raise UsageError(f"line {text!r}: quantity {quantity.strip()!r} is not a whole number") from None
    if count < 1:
        raise UsageError(f"line {text!r}: quantity must be at least 1, got {count}")
    if count > INT64[1]:
        raise UsageError(f"line {text!r}: quantity {count} is out of range")
    return reservation_pb2.ReservationLine(sku=sku, quantity=count)


def _names_no_node(text: str) -> bool:
    """`SKU:QTY` (a whole number after the colon) or `SKU:*:QTY`: a line written to be sourced."""
    parts = [part.strip() for part in text.strip().rsplit(":", 2)]
    if len(parts) == 3:
        return parts[1] == ANY_NODE
    return len(parts) == 2 and bool(re.fullmatch(r"[+-]?\d+", parts[1]))


def parse_reserve_lines(
    texts: Sequence[str], flag: str | None = None
) -> list[reservation_pb2.ReservationLine]:
    """The lines of a reserve: with a destination (`flag`, --ship-to or --pickup-at) each
    `SKU:QTY`, sourced by the channel's rules (each SKU once); without, each `SKU:NODE:QTY`.
    Lines of both kinds in one reserve are a usage error."""
    if flag is not None:
        lines = [parse_sourced_line(text, flag) for text in texts]
        seen: dict[str, str] = {}
        for text, line in zip(texts, lines, strict=True):
            if line.sku in seen:
                raise UsageError(
                    f"{line.sku} is in the order twice ({seen[line.sku]!r}, {text!r});"
                    " give it once with the whole quantity"
                )
            seen[line.sku] = text
        return lines
    sourced = [text for text in texts if _names_no_node(text)]
    if sourced:
        named = [text for text in texts if text not in sourced]
        if named:
            raise UsageError(f"line {sourced[0]!r} names no node while {named[0]!r} does: {MIXED_LINES}")
        raise UsageError(
            f"line {sourced[0]!r} names no node: to let omnistock choose one, say where the order"
            " goes with --ship-to LAT,LON or --pickup-at STORE_ID (and --channel, whose rules"
            " choose); or name the node: SKU:NODE:QTY"
        )
    return parse_lines(texts)


def operation_id(given: str | None, prefix: str) -> tuple[str, bool]:
    """The id of a fulfilment or cancellation: --id as given, or a new one.

    Returns (id, generated). A new id is printed so a retry can reuse it; an empty --id is
    a usage error rather than silently a new operation."""
    if given is None:
        return new_id(prefix), True
    if not given.strip():
        raise UsageError("--id must not be empty; leave it out for a new id")
    return given, False


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
        priority=_optional_int(record.get("priority"), f"{where}: priority"),
        shipment_cost=parse_float(record.get("shipment_cost"), f"{where}: shipment_cost"),
        daily_capacity=_optional_int(record.get("daily_capacity"), f"{where}: daily_capacity"),
    )


def _optional_int(value: Any, what: str) -> int:
    """A whole number from CSV text or JSON; missing or empty is 0."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return 0
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise UsageError(f"{what} must be a whole number, got {value!r}")
    return parse_int(str(int(value)) if isinstance(value, float) else str(value), what, (0, 2**31 - 1))


def parse_nodes_csv(text: str) -> list[common_pb2.Node]:
    """CSV with a header naming some of NODE_FIELDS (node_id and type required)."""
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


LEVEL_COLUMNS = ("sku", "node_id", "on_hand", "as_of", "damaged", "quality_hold")
REQUIRED_LEVEL_COLUMNS = LEVEL_COLUMNS[:3]
LEVEL_FORM = "sku,node_id,on_hand[,as_of[,damaged,quality_hold]]"


def _level_header(cells: list[str], number: int) -> tuple[str, ...]:
    columns = tuple(cell.lower() for cell in cells)
    unknown = [name for name in columns if name not in LEVEL_COLUMNS]
    if unknown:
        expected = ",".join(LEVEL_COLUMNS)
        raise UsageError(
            f"line {number}: unknown column(s) {', '.join(unknown)}; expected some of {expected}"
        )
    twice = sorted({name for name in columns if columns.count(name) > 1})
    if twice:
        raise UsageError(f"line {number}: column(s) {', '.join(twice)} named twice")
    missing = [name for name in REQUIRED_LEVEL_COLUMNS if name not in columns]
    if missing:
        raise UsageError(f"line {number}: the header must name {', '.join(missing)}")
    return columns


def iter_levels(rows: Iterable[Sequence[str]]) -> Iterator[inventory_pb2.StockLevel]:
    """CSV rows -> levels, lazily.

    Without a header the columns are `sku,node_id,on_hand[,as_of[,damaged,quality_hold]]`;
    a first row starting with `sku` is a header naming the columns in any order
    (sku, node_id and on_hand required). damaged and quality_hold are parts of on_hand.
    """
    columns: tuple[str, ...] | None = None
    for number, row in enumerate(rows, start=1):
        cells = [cell.strip() for cell in row]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if number == 1 and cells[0].lower() == "sku":
            columns = _level_header(cells, number)
            continue
        if columns is None:
            if not 3 <= len(cells) <= len(LEVEL_COLUMNS):
                raise UsageError(f"line {number}: expected {LEVEL_FORM}; got {len(cells)} values")
            record = dict(zip(LEVEL_COLUMNS, cells, strict=False))
        else:
            if len(cells) > len(columns):
                raise UsageError(
                    f"line {number}: {len(cells)} values but the header names {len(columns)} columns"
                )
            record = dict(zip(columns, cells, strict=False))
        sku, node_id = record.get("sku", ""), record.get("node_id", "")
        if not sku or not node_id:
            raise UsageError(f"line {number}: sku and node_id are required")
        if not record.get("on_hand"):
            raise UsageError(f"line {number}: on_hand is required")
        message = inventory_pb2.StockLevel(
            sku=sku,
            node_id=node_id,
            on_hand=parse_int(record["on_hand"], f"line {number}: on_hand"),
            damaged=parse_int(record.get("damaged") or "0", f"line {number}: damaged"),
            quality_hold=parse_int(record.get("quality_hold") or "0", f"line {number}: quality_hold"),
        )
        if record.get("as_of"):
            message.as_of.CopyFrom(to_timestamp(parse_time(record["as_of"], f"line {number}: as_of")))
        yield message


# --- pickup baskets, places, expected supply (pure) ---


def parse_item(text: str) -> availability_pb2.BasketItem:
    """`SKU[:QTY]` -> a basket item (quantity 1 when left out).

    The part after the last colon is the quantity, so a SKU holding colons needs an
    explicit quantity: `vendor:123:1`.
    """
    sku, sep, quantity = text.strip().rpartition(":")
    if not sep:
        sku, quantity = text.strip(), "1"
    sku, quantity = sku.strip(), quantity.strip()
    if not sku:
        raise UsageError(f"item {text!r} must look like SKU or SKU:QTY, e.g. SKU-00001:2")
    try:
        count = int(quantity)
    except ValueError:
        raise UsageError(
            f"item {text!r}: quantity {quantity!r} is not a whole number"
            " (a SKU holding colons needs an explicit quantity: vendor:123:1)"
        ) from None
    if count < 1:
        raise UsageError(f"item {text!r}: quantity must be at least 1, got {count}")
    if count > INT64[1]:
        raise UsageError(f"item {text!r}: quantity {count} is out of range")
    return availability_pb2.BasketItem(sku=sku, quantity=count)


def parse_items(texts: Iterable[str]) -> list[availability_pb2.BasketItem]:
    """Basket items, each SKU once (the service refuses a SKU twice)."""
    items: list[availability_pb2.BasketItem] = []
    seen: dict[str, str] = {}
    for text in texts:
        item = parse_item(text)
        if item.sku in seen:
            raise UsageError(
                f"{item.sku} is in the basket twice ({seen[item.sku]!r}, {text!r});"
                " give it once with the whole quantity"
            )
        seen[item.sku] = text
        items.append(item)
    return items


def parse_lat_lon(text: str, what: str = "--near") -> tuple[float, float]:
    """`LAT,LON` in decimal degrees -> (latitude, longitude), e.g. `40.7128,-74.0060`."""
    parts = text.split(",")
    if len(parts) != 2 or not all(part.strip() for part in parts):
        raise UsageError(f"{what} must be LAT,LON in decimal degrees, e.g. 40.7128,-74.0060; got {text!r}")
    latitude = parse_float(parts[0], f"{what} latitude")
    longitude = parse_float(parts[1], f"{what} longitude")
    if not -90 <= latitude <= 90:
        raise UsageError(f"{what} latitude must be within -90..90, got {_number(latitude)}")
    if not -180 <= longitude <= 180:
        raise UsageError(f"{what} longitude must be within -180..180, got {_number(longitude)}")
    return latitude, longitude


SUPPLY_COLUMNS = ("supply_id", "sku", "node_id", "quantity", "expected_at")
SUPPLY_FORM = ",".join(SUPPLY_COLUMNS)


def _supply_header(cells: list[str], number: int) -> tuple[str, ...]:
    columns = tuple(cell.lower() for cell in cells)
    unknown = [name for name in columns if name not in SUPPLY_COLUMNS]
    if unknown:
        raise UsageError(f"line {number}: unknown column(s) {', '.join(unknown)}; expected {SUPPLY_FORM}")
    twice = sorted({name for name in columns if columns.count(name) > 1})
    if twice:
        raise UsageError(f"line {number}: column(s) {', '.join(twice)} named twice")
    missing = [name for name in SUPPLY_COLUMNS if name not in columns]
    if missing:
        raise UsageError(f"line {number}: the header must name {', '.join(missing)}")
    return columns


def supply_from_record(record: dict[str, str], where: str) -> inventory_pb2.InboundSupply:
    """One expected supply line from CSV cells; every problem of the row in one ProblemsError."""
    problems: list[tuple[str, str]] = []
    message = inventory_pb2.InboundSupply()
    for name in SUPPLY_COLUMNS:
        value = record.get(name, "")
        if not value:
            problems.append((where, f"{name} is required"))
        elif name == "quantity":
            try:
                message.quantity = parse_int(value, "quantity", (0, INT64[1]))
            except UsageError:
                problems.append(
                    (where, f"quantity must be a whole number, 0 or more (0 clears), got {value!r}")
                )
        elif name == "expected_at":
            try:
                message.expected_at.CopyFrom(to_timestamp(parse_time(value, "expected_at")))
            except UsageError as error:
                problems.append((where, str(error)))
        else:
            setattr(message, name, value)
    if problems:
        raise ProblemsError(f"{where}: {_count(problems, 'problem')}", problems)
    return message


def read_supplies(
    rows: Iterable[Sequence[str]], most_problems: int = 20
) -> list[inventory_pb2.InboundSupply]:
    """Every expected supply line of a CSV, checked whole before anything is sent.

    Without a header the columns are `supply_id,sku,node_id,quantity,expected_at`; a first
    row starting with one of those names is a header naming the five in any order. Blank
    rows and rows starting with # are skipped. ProblemsError names every bad row (up to
    `most_problems`) and every (supply_id, sku, node_id) line given twice.
    """
    columns: tuple[str, ...] = SUPPLY_COLUMNS
    supplies: list[inventory_pb2.InboundSupply] = []
    problems: list[tuple[str, str]] = []
    first_line: dict[tuple[str, str, str], int] = {}
    stopped = False
    for number, row in enumerate(rows, start=1):
        if len(problems) >= most_problems:
            stopped = True
            break
        cells = [cell.strip() for cell in row]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if number == 1 and cells[0].lower() in SUPPLY_COLUMNS:
            columns = _supply_header(cells, number)
            continue
        where = f"line {number}"
        if len(cells) != len(columns):
            problems.append(
                (where, f"expected {len(columns)} values ({','.join(columns)}), got {len(cells)}")
            )
            continue
        try:
            item = supply_from_record(dict(zip(columns, cells, strict=True)), where)
        except ProblemsError as error:
            problems.extend(error.problems)
            continue
        key = (item.supply_id, item.sku, item.node_id)
        if key in first_line:
            problems.append(
                (where, f"{item.supply_id} for {item.sku} at {item.node_id} is on line {first_line[key]} too")
            )
        else:
            first_line[key] = number
        supplies.append(item)
    if problems:
        shown = problems[:most_problems]
        found = f"the first {_count(shown, 'problem')}" if stopped else _count(problems, "problem")
        raise ProblemsError(f"{found}, nothing was sent", shown)
    if not supplies:
        raise UsageError(f"no supply lines in the file; expected CSV {SUPPLY_FORM}")
    return supplies


# --- node groups and channels (pure) ---

STOCK_STATE_NAMES: dict[str, common_pb2.StockState] = {
    "sellable": common_pb2.STOCK_STATE_SELLABLE,
    "damaged": common_pb2.STOCK_STATE_DAMAGED,
    "quality_hold": common_pb2.STOCK_STATE_QUALITY_HOLD,
}
SAFETY_KEYS = ("units", "percent", "sku", "node", "node_type")
CAP_KEYS = ("percent", "node", "node_type")
KEY_ALIASES = {"node_id": "node", "type": "node_type", "pct": "percent"}


def split_list(text: str, what: str) -> list[str]:
    """`A,B, C` -> ["A", "B", "C"]; an empty item is a usage error."""
    items = [item.strip() for item in text.split(",")]
    if not text.strip() or not all(items):
        raise UsageError(f"{what} must be a comma-separated list without empty items, got {text!r}")
    return items


def parse_yes_no(text: str) -> bool:
    """argparse type of --ships / --pickup: yes or no (also true/false, 1/0, on/off)."""
    word = text.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise argparse.ArgumentTypeError(f"must be yes or no, got {text!r}")


def _rule_fields(text: str, what: str, allowed: Sequence[str]) -> dict[str, str]:
    """`key=value,key=value` -> fields, each key known and given once."""
    fields: dict[str, str] = {}
    for item in text.split(","):
        key, sep, value = (part.strip() for part in item.partition("="))
        key = key.lower().replace("-", "_")
        key = KEY_ALIASES.get(key, key)
        if not sep or not key or not value:
            raise UsageError(
                f"{what} {text!r}: {item.strip()!r} must be key=value (keys: {', '.join(allowed)})"
            )
        if key not in allowed:
            raise UsageError(f"{what} {text!r}: unknown key {key!r}; use {', '.join(allowed)}")
        if key in fields:
            raise UsageError(f"{what} {text!r}: {key} is given twice")
        fields[key] = value
    return fields


def _percent(text: str, what: str) -> float:
    return parse_float(text.removesuffix("%"), what)


def parse_safety_rule(text: str) -> network_pb2.SafetyRule:
    """`units=2,node_type=store`, `percent=10,sku=SKU-00001`, `units=3,node=STORE-001` -> a rule.

    Ranges (percent within 0..100, units not negative) are the server's to check, so a
    refusal names the field the same way for every client.
    """
    what = "safety rule"
    fields = _rule_fields(text, what, SAFETY_KEYS)
    if "units" not in fields and "percent" not in fields:
        raise UsageError(f"{what} {text!r} needs units=N and/or percent=P")
    rule = network_pb2.SafetyRule(
        units=parse_int(fields.get("units", "0"), f"{what} {text!r}: units"),
        percent=_percent(fields.get("percent", "0"), f"{what} {text!r}: percent"),
        sku=fields.get("sku", ""),
        node_id=fields.get("node", ""),
    )
    if "node_type" in fields:
        rule.node_type = parse_node_type(fields["node_type"], f"{what} {text!r}: node_type")
    return rule


def parse_cap_rule(text: str) -> network_pb2.AllocationCap:
    """`percent=50,node_type=store` or `percent=30,node=STORE-001` or `percent=80` -> a cap."""
    what = "cap"
    fields = _rule_fields(text, what, CAP_KEYS)
    if "percent" not in fields:
        raise UsageError(f"{what} {text!r} needs percent=P")
    cap = network_pb2.AllocationCap(
        percent=_percent(fields["percent"], f"{what} {text!r}: percent"), node_id=fields.get("node", "")
    )
    if "node_type" in fields:
        cap.node_type = parse_node_type(fields["node_type"], f"{what} {text!r}: node_type")
    return cap


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _scope(sku: str, node_id: str, node_type: common_pb2.NodeType) -> list[str]:
    parts = []
    if sku:
        parts.append(f"sku={sku}")
    if node_id:
        parts.append(f"node={node_id}")
    if node_type:
        parts.append(f"node_type={NODE_TYPE_LABELS.get(node_type, str(node_type))}")
    return parts


def format_safety_rule(rule: network_pb2.SafetyRule) -> str:
    """The rule as `--safety` takes it (parse_safety_rule reads it back)."""
    share = []
    if rule.units or not rule.percent:
        share.append(f"units={rule.units}")
    if rule.percent:
        share.append(f"percent={_number(rule.percent)}")
    return ",".join(share + _scope(rule.sku, rule.node_id, rule.node_type))


def format_cap_rule(cap: network_pb2.AllocationCap) -> str:
    """The cap as `--cap` takes it (parse_cap_rule reads it back)."""
    return ",".join([f"percent={_number(cap.percent)}", *_scope("", cap.node_id, cap.node_type)])


def safety_precedence(rule: network_pb2.SafetyRule) -> int:
    """Higher wins: sku + node > sku + node type > sku > node > node type > channel-wide."""
    return 4 * bool(rule.sku) + 2 * bool(rule.node_id) + bool(rule.node_type)


def cap_precedence(cap: network_pb2.AllocationCap) -> int:
    """Higher wins: node > node type > channel-wide."""
    return 2 * bool(cap.node_id) + bool(cap.node_type)


def describe_group(group: network_pb2.NodeGroup) -> str:
    """The group's definition as `groups put` flags take it."""
    parts = []
    if group.node_ids:
        parts.append(f"nodes={','.join(group.node_ids)}")
    if group.types:
        parts.append(f"types={','.join(NODE_TYPE_LABELS.get(t, str(t)) for t in group.types)}")
    if group.HasField("ships"):
        parts.append(f"ships={'yes' if group.ships else 'no'}")
    if group.HasField("pickup"):
        parts.append(f"pickup={'yes' if group.pickup else 'no'}")
    return " ".join(parts) or "(empty)"


def group_from_args(
    group_id: str,
    nodes: str | None = None,
    types: str | None = None,
    ships: bool | None = None,
    pickup: bool | None = None,
) -> network_pb2.NodeGroup:
    group = network_pb2.NodeGroup(group_id=group_id)
    if nodes is not None:
        group.node_ids.extend(split_list(nodes, "--nodes"))
    if types is not None:
        group.types.extend(parse_node_type(t, "--types") for t in split_list(types, "--types"))
    if ships is not None:
        group.ships = ships
    if pickup is not None:
        group.pickup = pickup
    return group


def channel_from_args(
    channel_id: str,
    groups: str,
    name: str = "",
    low_stock: int = 0,
    display_cap: int = 0,
    safety: Sequence[str] = (),
    caps: Sequence[str] = (),
    future_supply_holds: bool = False,
    sourcing: str | None = None,
    split_lines: bool = False,
    max_shipments: int = 0,
) -> network_pb2.Channel:
    """The whole definition of a channel (`channels put` replaces what was there). Without
    sourcing settings the channel sources by the default policy."""
    channel = network_pb2.Channel(
        channel_id=channel_id,
        name=name,
        groups=split_list(groups, "--groups"),
        safety=[parse_safety_rule(text) for text in safety],
        caps=[parse_cap_rule(text) for text in caps],
        low_stock_threshold=low_stock,
        display_cap=display_cap,
        future_supply_holds=future_supply_holds,
    )
    if sourcing is not None or split_lines or max_shipments:
        channel.sourcing.CopyFrom(sourcing_policy(sourcing, split_lines, max_shipments))
    return channel


SOURCING_RULES = ("single_node", "nearest", "priority", "cost")
DEFAULT_SOURCING = ("single_node", "nearest", "priority")


def sourcing_policy(
    rules: str | None = None, split_lines: bool = False, max_shipments: int = 0
) -> network_pb2.SourcingPolicy:
    """`--sourcing single_node,nearest,priority` (in order; the first decides), `--split-lines`,
    `--max-shipments N` -> a policy. Rule names are the server's to check, so a refusal
    names the field the same way for every client."""
    policy = network_pb2.SourcingPolicy(split_lines=split_lines, max_shipments=max_shipments)
    if rules is not None:
        policy.rules.extend(rule.lower() for rule in split_list(rules, "--sourcing"))
    return policy


def describe_sourcing(policy: network_pb2.SourcingPolicy, compact: bool = False) -> str:
    """`single_node,nearest,priority; lines not split; at most 2 shipments` (compact: for a
    table cell, `single_node,nearest,priority max 2`)."""
    rules = ",".join(policy.rules or DEFAULT_SOURCING)
    if compact:
        return (
            rules
            + (" split" if policy.split_lines else "")
            + (f" max {policy.max_shipments}" if policy.max_shipments else "")
        )
    split = "lines may be split over nodes" if policy.split_lines else "lines not split"
    most = (
        f"at most {_count(range(policy.max_shipments), 'shipment')} per order"
        if policy.max_shipments
        else "no limit of shipments"
    )
    return f"{rules}; {split}; {most}"


# --- purchase limits (pure) ---


def parse_limit_pairs(texts: Sequence[str]) -> dict[str, int]:
    """`SKU MAX [SKU MAX ...]` -> {sku: max}, in the order given; MAX 0 removes the SKU's limit.

    Each SKU once; MAX a whole number, 0 or more (the upper bound is the server's to check,
    so a refusal names the field the same way for every client)."""
    if len(texts) % 2:
        given = " ".join(shlex.quote(text) for text in texts)
        raise UsageError(
            f"expected SKU MAX pairs, e.g. SKU-00042 2 SKU-00043 0; got {_count(texts, 'value')}: {given}"
        )
    limits: dict[str, int] = {}
    for sku, most in zip(texts[::2], texts[1::2], strict=True):
        sku = sku.strip()
        if not sku:
            raise UsageError(f"a SKU must not be empty (before MAX {most!r})")
        if sku in limits:
            raise UsageError(f"{sku} is given twice; give each SKU once")
        try:
            limits[sku] = parse_int(most, f"{sku}: MAX", (0, INT64[1]))
        except UsageError:
            raise UsageError(
                f"{sku}: MAX must be a whole number of units, 0 or more (0 removes the limit), got {most!r}"
            ) from None
    return limits


QUOTA_SUBJECT = re.compile(r"^customer:(?P<customer>.*?)/sku:(?P<sku>.*)$", re.DOTALL)


def parse_quota_subject(subject: str, customer: str = "") -> tuple[str, str]:
    """`customer:alice/sku:SKU-00042` -> ("alice", "SKU-00042"); ("", subject) when it is not one.

    With the customer that was sent, a customer id holding `/sku:` is split right."""
    known = f"customer:{customer}/sku:"
    if customer and subject.startswith(known):
        return customer, subject[len(known) :]
    match = QUOTA_SUBJECT.match(subject)
    if not match:
        return "", subject
    return match.group("customer"), match.group("sku")


def quota_text(subject: str, description: str, customer: str = "") -> str:
    """One purchase limit a hold would exceed, e.g.
    `customer alice, SKU-00042: limit 2, already held 2, requested 1`."""
    who, sku = parse_quota_subject(subject, customer)
    return f"customer {who}, {sku}: {description}" if who else f"{subject}: {description}"


def limits_table(limits: Iterable[network_pb2.PurchaseLimit], indent: str = "") -> str:
    rows = [(limit.sku, limit.max_per_customer) for limit in sorted(limits, key=lambda limit: limit.sku)]
    if not rows:
        return f"{indent}no purchase limits"
    return table(["SKU", "MAX_PER_CUSTOMER"], rows, indent=indent)


def describe_limit_changes(limits: Mapping[str, int]) -> str:
    """`SKU-00042 2, SKU-00043 removed`: what a put of these limits does."""
    return ", ".join(f"{sku} {most}" if most else f"{sku} removed" for sku, most in limits.items())


def network_messages(
    nodes: Sequence[Node], groups: Sequence[NodeGroup], channels: Sequence[Channel]
) -> tuple[list[common_pb2.Node], list[network_pb2.NodeGroup], list[network_pb2.Channel]]:
    """A parsed network file as the messages PutNodes, PutGroups and PutChannels take (file order)."""
    config = network_to_proto(
        Network(groups={g.group_id: g for g in groups}, channels={c.channel_id: c for c in channels})
    )
    by_group = {g.group_id: g for g in config.groups}
    by_channel = {c.channel_id: c for c in config.channels}
    return (
        [node_to_proto(node) for node in nodes],
        [by_group[g.group_id] for g in groups],
        [by_channel[c.channel_id] for c in channels],
    )


def read_network_file(path: str, then: str = "") -> NetworkFile:
    """Parse a TOML network file, raising ProblemsError naming every problem."""
    return parse_network_text(read_text(path), path, then)


def parse_network_text(text: str, where: str, then: str = "") -> NetworkFile:
    try:
        return parse_network_file(text)
    except NetworkFileError as error:
        raise ProblemsError(f"{where}: {_count(error.problems, 'problem')}{then}", error.problems) from None


def message_problems(
    nodes: Sequence[common_pb2.Node],
    groups: Sequence[network_pb2.NodeGroup],
    channels: Sequence[network_pb2.Channel],
) -> tuple[tuple[list[Node], list[NodeGroup], list[Channel]], list[tuple[str, str]]]:
    """The server's checks of each message on its own (ids, types, counts), and what they convert to."""
    limits = Limits()
    found: list[tuple[str, str]] = []

    def checked(convert: Callable[[Any, Limits], list[Any]], items: Sequence[Any]) -> list[Any]:
        try:
            return convert(items, limits) if items else []
        except InvalidArgument as error:
            found.extend((_by_id(field, nodes, groups, channels), text) for field, text in error.violations)
            return []

    converted = (
        checked(nodes_from_proto, nodes),
        checked(groups_from_proto, groups),
        checked(channels_from_proto, channels),
    )
    return converted, found


INDEXED_FIELD = re.compile(r"^(nodes|groups|channels)\[(\d+)\]")


def _by_id(
    field: str,
    nodes: Sequence[common_pb2.Node],
    groups: Sequence[network_pb2.NodeGroup],
    channels: Sequence[network_pb2.Channel],
) -> str:
    """`groups[2].node_ids[0]` -> `groups[west].node_ids[0]`: a file names things by id."""
    match = INDEXED_FIELD.match(field)
    if not match:
        return field
    kind, index = match.group(1), int(match.group(2))
    items: Sequence[Any] = {"nodes": nodes, "groups": groups, "channels": channels}[kind]
    if index >= len(items):
        return field
    item = items[index]
    name = {"nodes": "node_id", "groups": "group_id", "channels": "channel_id"}[kind]
    return f"{kind}[{getattr(item, name) or index}]{field[match.end() :]}"


def limit_problems(purchase_limits: Mapping[str, int]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """The server's checks of a PutPurchaseLimits (ids, ranges), named as a network file names
    them (`purchase_limits[SKU]`), and the limits they convert to."""
    if not purchase_limits:
        return {}, []
    huge = [
        (f"purchase_limits[{sku}]", f"is out of range: {most}")
        for sku, most in purchase_limits.items()
        if not INT64[0] <= most <= INT64[1]
    ]
    if huge:
        return {}, huge
    limits = [
        network_pb2.PurchaseLimit(sku=sku, max_per_customer=most) for sku, most in purchase_limits.items()
    ]
    try:
        return purchase_limits_from_proto(limits, Limits()), []
    except InvalidArgument as error:
        return {}, [(_limit_field(field, limits), text) for field, text in error.violations]


LIMIT_FIELD = re.compile(r"^limits\[(\d+)\](\.\w+)?")


def limit_field_by_sku(field: str, skus: Sequence[str]) -> str:
    """`limits[1].max_per_customer` -> `limits[SKU-00042].max_per_customer`, as `limits put` names them."""
    match = LIMIT_FIELD.match(field)
    if not match or int(match.group(1)) >= len(skus):
        return field
    return f"limits[{skus[int(match.group(1))] or match.group(1)}]{field[match.end(1) + 1 :]}"


def _limit_field(field: str, limits: Sequence[network_pb2.PurchaseLimit]) -> str:
    """`limits[1].max_per_customer` -> `purchase_limits[SKU-00042]`."""
    match = LIMIT_FIELD.match(field)
    if not match:
        return "purchase_limits" if field == "limits" else field
    index = int(match.group(1))
    sku = limits[index].sku if index < len(limits) else ""
    return f"purchase_limits[{sku or index}]"


def network_problems(
    current: network_pb2.NetworkConfig | None,
    nodes: Sequence[common_pb2.Node],
    groups: Sequence[network_pb2.NodeGroup],
    channels: Sequence[network_pb2.Channel],
    purchase_limits: Mapping[str, int] | None = None,
) -> list[tuple[str, str]]:
    """What the server would refuse if these were put over `current`: the same checks, run first,
    so a file applies whole or not at all. `current` None: only the checks that hold whatever
    the stored network is (ids, types, ranges), not references to nodes and groups."""
    parsed, found = message_problems(nodes, groups, channels)
    limits, found_in_limits = limit_problems(purchase_limits or {})
    found += found_in_limits
    base = network_from_proto(current, Limits()) if current is not None else Network()
    problems = base.with_changes(*parsed, purchase_limits=limits).problems()
    if found or current is None:
        # References may be to what failed to convert (or to what is stored): values only.
        problems = [p for p in problems if p[0].rsplit(".", 1)[-1] in VALUE_SETTINGS]
    return found + problems


VALUE_SETTINGS = {
    "percent",
    "units",
    "low_stock",
    "display_cap",
    "latitude",
    "longitude",
    "name",
    "rules",
    "max_shipments",
}
"""Settings whose value is right or wrong whatever else the network holds."""


def _count(items: Sized, noun: str) -> str:
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"


def to_timestamp(seconds: float) -> Timestamp:
    return client_timestamp(seconds)


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
    return str(value)


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
                    f"{reason} ({_count(ids, 'node')}): {' '.join(ids)}",
                    width=100,
                    initial_indent=indent + "  ",
                    subsequent_indent=indent + "    ",
                )
            )
        if line.omitted:
            text.append(f"{indent}  ... and {_count(range(line.omitted), 'more node')} that lost, not listed")
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
    """Every transition, oldest first: when, what happened, and to which lines when it says."""
    if not history:
        return f"{indent}(no events)"
    details = [event_detail(event) for event in history]
    if any(details):
        return table(
            ["TIME", "EVENT", "DETAIL"],
            [
                (local_time(event.at), event_name(event.type), detail)
                for event, detail in zip(history, details, strict=True)
            ],
            indent,
        )
    return table(
        ["TIME", "EVENT"], [(local_time(event.at), event_name(event.type)) for event in history], indent
    )


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
            message = f"{_count(error.field_violations, 'problem')}, nothing was changed"
        elif error.quota_violations and not self.as_json:
            over = _count(error.quota_violations, "SKU")
            message = f"over the per-customer purchase limit of {over}, nothing was held"
        self.error(error.code.name, message, extra, "\n".join(lines))
        return EXIT_USAGE if error.code == grpc.StatusCode.INVALID_ARGUMENT else EXIT_REFUSED

    def problems(self, error: ProblemsError) -> int:
        """Problems found before anything was sent, reported like a refusal naming every field."""
        extra = {"field_violations": [{"field": f, "description": d} for f, d in error.problems]}
        text = "\n".join(f"  {field}: {description}" for field, description in error.problems)
        self.error("INVALID_ARGUMENT", str(error), extra, text)
        return EXIT_USAGE


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
            n.priority,
            f"{n.shipment_cost:.2f}",
            n.daily_capacity or "-",
        )
        for n in nodes
    ]
    headers = ["NODE_ID", "TYPE", "NAME", "LATITUDE", "LONGITUDE", "SHIPS", "PICKUP", "ENABLED"]
    headers += ["PRIORITY", "SHIPMENT_COST", "DAILY_CAPACITY"]
    text = table(headers, rows) if nodes else "no nodes"
    out.result(inventory_pb2.ListNodesResponse(nodes=nodes), text)
    return EXIT_OK


async def cmd_stock_set(client: OmnistockClient, args: argparse.Namespace, out: Output) -> int:
    stock = inventory_pb2.StockLevel(
        sku=args.sku,
        node_id=args.node,
        on_hand=parse_int(args.on_hand, "ON_HAND"),
        damaged=parse_int(args.damaged, "--damaged"),
        quality_hold=parse_int(args.quality_hold, "--quality-hold"),
    )
    if args.as_of:
        stock.as_of.CopyFrom(to_timestamp(parse_time(args.as_of, "--as-of")))
    response = await client.set_stock([stock])
    if response.applied:
        states = (
            f" (damaged {stock.damaged}, quality_hold {stock.quality_hold})"
            if stock.damaged or stock.quality_hold
            else ""
        )
        text = f"{args.sku} at {args.node}: on_hand set to {stock.on_hand}{states}"
    else:
        text = f"{args.sku} at {args.node}: stale, not applied (a newer count is already in place)"
    out.result(response, text)
    return EXIT_OK


ADJUST_OK = {inventory_pb2.ADJUSTMENT_OUTCOME_APPLIED, inventory_pb2.ADJUSTMENT_OUTCOME_REPLAYED}


def outcome_name(outcome: int) -> str:
    return inventory_pb2.AdjustmentOutcome.Name(outcome).removeprefix("ADJUSTMENT_OUTCOME_")


def adjustment_text(
    adjustment_id: str, result: inventory_pb2.AdjustmentResult, sku: str, node_id: str, supply_id: str = ""
) -> str:
    """The outcome, why when refused, and the position after it (or as it stands)."""
    outcome = outcome_name(result.outcome)
    head = f"adjustment {adjustment_id}: {outcome}"
    if supply_id and result.outcome == inventory_pb2.ADJUSTMENT_OUTCOME_APPLIED:
        head += f" (received against supply {supply_id})"
    elif result.outcome == inventory_pb2.ADJUSTMENT_OUTCOME_UNKNOWN_SUPPLY:
        head += f": no supply {supply_id} is expected for {sku} at {node_id}; nothing changed"
    elif result.outcome == inventory_pb2.ADJUSTMENT_OUTCOME_REFUSED_NEGATIVE:
        head += ": on_hand would go below zero; nothing changed"
    elif result.outcome == inventory_pb2.ADJUSTMENT_OUTCOME_CONFLICT:
        head += ": this id was used before with different content; nothing changed"
    return f"{head}\n{format_position(result.position)}"


async def cmd_stock_adjust(client: OmnistockClient, args: argparse.Namespace, out: Output) -> int:
    delta = parse_int(args.delta, "DELTA")
    supply_id = (args.supply_id or "").strip()
    if args.supply_id is not None:
        if not supply_id:
            raise UsageError("--supply-id must not be empty")
        if delta <= 0 or args.state != "sellable":
            raise UsageError(
                "a receipt (--supply-id) takes a positive DELTA of sellable units,"
                f" got {delta}{'' if args.state == 'sellable' else f' with --state {args.state}'}"
            )
    adjustment_id = args.id or new_id("rcv" if supply_id else "adj")
    try:
        result = await client.adjust(
            adjustment_id,
            args.sku,
            args.node,
            delta,
            args.reason,
            STOCK_STATE_NAMES[args.state],
            supply_id=supply_id,
        )
    except OmnistockRpcError as error:
        return out.rpc_error(error, {} if args.id else {"adjustment_id": adjustment_id})
    out.result(result, adjustment_text(adjustment_id, result, args.sku, args.node, supply_id))
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


def freshness(response: availability_pb2.GetAvailabilityResponse, channel: str) -> str:
    """Where an answer comes from: the gateway's view (version, as-of) or the shards."""
    source = (
        f"consistent read, as of {local_time(response.as_of)}"
        if response.consistent
        else f"as of {local_time(response.as_of)}, view version {response.version}"
    )
    return f"channel {channel}; {source}" if channel else source


def earliest_text(answer: availability_pb2.SkuAvailability, as_of: Timestamp) -> str:
    """When the asked quantity can be promised: now, a date, or - (not with what is expected)."""
    if not answer.HasField("earliest_date"):
        return "-"
    if answer.earliest_date.ToNanoseconds() - as_of.ToNanoseconds() <= 5 * 10**9:
        return "now"
    return local_time(answer.earliest_date)


def date_notes(by_date: float | None, quantity: int) -> list[str]:
    notes = []
    if by_date is not None:
        notes.append(
            f"BY_DATE: promisable by {local_time(to_timestamp(by_date))}, counting supply expected by then"
        )
    if quantity:
        notes.append(
            f"EARLIEST: when {quantity} unit(s) can be promised; -: not with the stock and supply expected"
        )
    return notes


async def cmd_availability(client: OmnistockClient, args: argparse.Namespace, out: Output) -> int:
    channel = args.channel or ""
    by_date = parse_time(args.by_date, "--by-date") if args.by_date else None
    quantity = args.quantity or 0
    dated: dict[str, Any] = {}
    if by_date is not None:
        dated["by_date"] = by_date
    if quantity:
        dated["quantity"] = quantity
    response = await client.availability(
        args.skus, include_nodes=args.nodes, channel_id=channel, consistent=args.consistent, **dated
    )
    footer = "\n".join([freshness(response, channel), *date_notes(by_date, quantity)])
    status = ["STATUS"] if channel else []
    inbound = by_date is not None or bool(quantity) or any(a.inbound for a in response.skus)
    extra = (["INBOUND"] if inbound else []) + (["BY_DATE"] if by_date is not None else [])
    extra += ["EARLIEST"] if quantity else []

    def extra_cells(a: availability_pb2.SkuAvailability) -> list[Any]:
        cells: list[Any] = [a.inbound] if inbound else []
        cells += [a.available_by_date] if by_date is not None else []
        return cells + ([earliest_text(a, response.as_of)] if quantity else [])

    if not args.nodes:
        text = table(
            [
                "SKU",
                *status,
                "AVAILABLE",
                "ON_HAND",
                "RESERVED",
                "COMMITTED",
                "DAMAGED",
                "QUALITY_HOLD",
                *extra,
            ],
            [
                (
                    a.sku,
                    *([status_name(a.status)] if channel else []),
                    a.available,
                    a.on_hand,
                    a.reserved,
                    a.committed,
                    a.damaged,
                    a.quality_hold,
                    *extra_cells(a),
                )
                for a in response.skus
            ],
        )
        out.result(response, f"{text}\n{footer}")
        return EXIT_OK
    blocks = []
    for a in response.skus:
        shown = f"{status_name(a.status)}, available {a.available}" if channel else f"available {a.available}"
        at_nodes = sum(p.available for p in a.nodes)
        if at_nodes > a.available:
            shown += f" (display cap; the nodes hold {at_nodes})"
        dates = ""
        if inbound:
            dates += f", inbound {a.inbound}"
        if by_date is not None:
            dates += f", by date {a.available_by_date}"
        if quantity:
            dates += f", earliest for {quantity}: {earliest_text(a, response.as_of)}"
        head = (
            f"{a.sku}: {shown}; on_hand {a.on_hand}, reserved {a.reserved}, committed {a.committed},"
            f" damaged {a.damaged}, quality_hold {a.quality_hold}{dates} at {len(a.nodes)} node(s)"
        )
        if a.nodes:
            rows = [
                (
                    p.node_id,
                    p.on_hand,
                    p.damaged,
                    p.quality_hold,
                    p.reserved,
                    p.committed,
                    p.available,
                    *([p.inbound] if inbound else []),
                )
                for p in a.nodes
            ]
            head += "\n" + table(
                [
                    "NODE",
                    "ON_HAND",
                    "DAMAGED",
                    "QUALITY_HOLD",
                    "RESERVED",
                    "COMMITTED",
                    "AVAILABLE",
                    *(["INBOUND"] if inbound else []),
                ],
                rows,
                indent="  ",
            )
        blocks.append(head)
    out.result(response, "\n\n".join(blocks) + f"\n{footer}")
    return EXIT_OK


def customer_arg(text: str | None) -> str:
    """--customer: left out is no customer; given, it must say one."""
    if text is None:
        return ""
    if not text.strip():
        raise UsageError("--customer must not be empty; leave it out for a hold without a customer")
    return text.strip()


def destination_args(args: argparse.Namespace) -> tuple[str | None, dict[str, Any]]:
    """--ship-to / --pickup-at: (the flag given, the reserve call's keyword), or (None, {})."""
    if args.ship_to is not None:
        return "--ship-to", {"ship_to": parse_lat_lon(args.ship_to, "--ship-to")}
    if args.pickup_at is not None:
        store = args.pickup_at.strip()
        if not store:
            raise UsageError("--pickup-at must name the store the customer collects at, e.g. STORE-001")
        return "--pickup-at", {"pickup_at": store}
    return None, {}


async def cmd_reserve(client: OmnistockClient, args: argparse.Namespace, out: Output) -> int:
    flag, destination = destination_args(args)
    lines = parse_reserve_lines(args.lines, flag)
    if flag is not None and not args.channel:
        raise UsageError(f"{flag} needs --channel: the channel's sourcing rules choose the nodes")
    customer = customer_arg(args.customer)
    reservation_id = args.id or new_id("res")
    try:
        response = await client.reserve(
            reservation_id,
            lines,
            ttl_seconds=args.ttl,
            channel_id=args.channel or "",
            customer_id=customer,
            **destination,
        )
    except OmnistockRpcError as error:
        ids = {} if args.id else {"reservation_id": reservation_id}
        code = out.rpc_error(error, ids, customer, explain=args.explain)
        if not customer and any(field == "customer_id" for field, _ in error.field_violations):
            out.note("hint: give the customer the hold is for with --customer ID")
        if error.sourcing and not args.explain:
            out.note("hint: --explain lists every node considered for every line, with its distance")
        return code
    text = format_reservation(response.reservation, response.replayed, why=True, explain=args.explain)
    out.result(response, text)
    return EXIT_OK


async def cmd_confirm(client: OmnistockClient, args: argparse.Namespace, out: Output) -> int:
    response = await client.confirm(args.id)
    out.result(response, format_reservation(response.reservation, response.replayed))
    return EXIT_OK


async def cmd_release(client: OmnistockClient, args: argparse.Namespace, out: Output) -> int:
    response = await client.release(args.id)
    out.result(response, format_reservation(response.reservation, response.replayed))
    return EXIT_OK


async def with_current_state(
    client: OmnistockClient, error: OmnistockRpcError, reservation_id: str
) -> OmnistockRpcError:
    """A FAILED_PRECONDITION without the reservation in its details (too many units asked,
    say) gets the reservation as it stands now, so the refusal shows what is open."""
    if error.code != grpc.StatusCode.FAILED_PRECONDITION or error.reservation is not None:
        return error
    try:
        current = await client.get_reservation(reservation_id)
    except OmnistockRpcError:
        return error
    return dataclasses.replace(error, reservation=current)


async def cmd_extend(client: OmnistockClient, args: argparse.Namespace, out: Output) -> int:
    try:
        reservation = await client.extend(args.id, args.ttl)
    except OmnistockRpcError as error:
        return out.rpc_error(await with_current_state(client, error, args.id))
    out.result(reservation_pb2.ExtendResponse(reservation=reservation), format_reservation(reservation))
    return EXIT_OK


CLOSINGS = {
    # command: (what, id label, generated id prefix)
    "fulfil": ("fulfilment", "fulfilment_id", "ful"),
    "cancel-lines": ("cancellation", "cancellation_id", "cxl"),
}


async def cmd_fulfil(client: OmnistockClient, args: argparse.Namespace, out: Output) -> int:
    return await close_lines(client, args, out, "fulfil")


async def cmd_cancel_lines(client: OmnistockClient, args: argparse.Namespace, out: Output) -> int:
    return await close_lines(client, args, out, "cancel-lines")


async def close_lines(client: OmnistockClient, args: argparse.Namespace, out: Output, command: str) -> int:
    """Fulfil or cancel units of some lines; the same --id again is a replay."""
    what, id_field, prefix = CLOSINGS[command]
    lines = parse_closing_lines(args.lines, what)
    closing_id, generated = operation_id(args.id, prefix)
    call = client.fulfil if command == "fulfil" else client.cancel_lines
    try:
        response = await call(args.reservation_id, closing_id, lines)
    except OmnistockRpcError as error:
        error = await with_current_state(client, error, args.reservation_id)
        code = out.rpc_error(error, {id_field: closing_id} if generated else {})
        held = (
            error.reservation is not None
            and error.reservation.state == reservation_pb2.RESERVATION_STATE_HELD
        )
        if command == "fulfil" and held:
            out.note(
                f"hint: confirm it first (omnistock confirm {args.reservation_id}): only confirmed units ship"
            )
        return code
    data = {id_field: closing_id, **to_dict(response)}
    out.result(data, format_reservation(response.reservation, response.replayed, (what, closing_id)))
    return EXIT_OK


async def cmd_get(client: OmnistockClient, args: argparse.Namespace, out: Output) -> int:
    reservation = await client.get_reservation(args.id)
    out.result(
        reservation_pb2.GetReservationResponse(reservation=reservation),
        format_reservation(reservation, history=True, why=True, explain=args.explain),
    )
    return EXIT_OK


async def cmd_reassign(client: OmnistockClient, args: argparse.Namespace, out: Output) -> int:
    """Move a line's open units to TO_NODE, or to a node the channel's rules choose."""
    to_node = (args.to_node or "").strip()
    if args.to_node is not None and not to_node:
        raise UsageError("TO_NODE must not be empty; leave it out to let the channel's rules choose")
    if to_node == args.from_node:
        raise UsageError(f"the line is at {to_node} already; name another TO_NODE, or leave it out")
    reassignment_id, generated = operation_id(args.id, "mv")
    try:
        response = await client.reassign(
            args.reservation_id, reassignment_id, args.sku, args.from_node, to_node
        )
    except OmnistockRpcError as error:
        error = await with_current_state(client, error, args.reservation_id)
        ids = {"reassignment_id": reassignment_id} if generated else {}
        code = out.rpc_error(error, ids, explain=args.explain)
        if not to_node and any(field == "to_node_id" for field, _ in error.field_violations):
            out.note(
                f"hint: name the node to move it to: omnistock reassign {args.reservation_id}"
                f" {args.sku} {args.from_node} TO_NODE"
            )
        return code
    sourced = chosen_nodes(response.sourcing) if response.HasField("sourcing") else []
    moved = f"{args.sku} {args.from_node} -> {to_node or ', '.join(v.node_id for v in sourced) or '?'}"
    if sourced:
        moved += f" (sourced: {sourced[0].reason.removeprefix(CHOSEN)})"
    data = {"reassignment_id": reassignment_id, **to_dict(response)}
    text = format_reservation(
        response.reservation,
        response.replayed,
        ("reassignment", reassignment_id),
        why=True,
        notes=[("moved", moved)],
    )
    if args.explain and response.HasField("sourcing"):
        text += "\nsourcing of the move\n" + sourcing_text([response.sourcing])
    out.result(data, text)
    return EXIT_OK


async def cmd_return(client: OmnistockClient, args: argparse.Namespace, out: Output) -> int:
    """Fulfilled units of a line come back at a node (any node: buy online, return in store)."""
    line = parse_line(args.line)
    at = (args.at or line.node_id).strip()
    if not at:
        raise UsageError("--at must name the node the units come back to")
    return_id, generated = operation_id(args.id, "rtn")
    try:
        response = await client.return_units(
            args.reservation_id, return_id, line.sku, line.node_id, at, line.quantity, damaged=args.damaged
        )
    except OmnistockRpcError as error:
        error = await with_current_state(client, error, args.reservation_id)
        return out.rpc_error(error, {"return_id": return_id} if generated else {})
    back = f"{line.quantity} x {line.sku} (of the line at {line.node_id}) at {at}, " + (
        "damaged: on hand, not sellable" if args.damaged else "on hand and sellable again"
    )
    data = {"return_id": return_id, **to_dict(response)}
    text = format_reservation(
        response.reservation, response.replayed, ("return", return_id), notes=[("returned", back)]
    )
    out.result(data, text)
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


# --- pickup in store ---


def basket_text(items: Sequence[availability_pb2.BasketItem]) -> str:
    return ", ".join(f"{item.sku} x{item.quantity or 1}" for item in items)


def pickup_table(stores: Sequence[availability_pb2.PickupStore], short: bool) -> str:
    """One block of rows per store, nearest first: its items' available and requested units."""
    headers = ["STORE", "NAME", "DISTANCE_KM", "SKU", "AVAILABLE", "REQUESTED"] + (["SHORT"] if short else [])
    rows: list[list[Any]] = []
    for store in stores:
        for i, item in enumerate(store.items):
            first = i == 0
            row: list[Any] = [
                store.node.node_id if first else "",
                (store.node.name or "-") if first else "",
                round(store.distance_km, 1) if first else "",
                item.sku,
                item.available,
                item.requested,
            ]
            if short:
                row.append(item.requested - item.available if item.available < item.requested else "")
            rows.append(row)
    return table(headers, rows, indent="  ")


def format_pickup(
    response: availability_pb2.FindPickupStoresResponse,
    items: Sequence[availability_pb2.BasketItem],
    around: str,
    radius_km: float,
    channel: str,
) -> str:
    where = f"within {_number(radius_km)} km of {around}" + (f", channel {channel}" if channel else "")
    lines = [f"basket {basket_text(items)}; pickup stores {where}"]
    if not response.complete and not response.partial:
        lines += ["", "no pickup store there has any of the basket"]
    else:
        lines.append("")
        if response.complete:
            lines.append(f"stores with the whole basket: {len(response.complete)}, nearest first")
            lines.append(pickup_table(response.complete, short=False))
        else:
            lines.append("no store has the whole basket")
        lines.append("")
        if response.partial:
            lines.append(f"stores with part of the basket: {len(response.partial)}, nearest first")
            lines.append(pickup_table(response.partial, short=True))
        else:
            lines.append("no other store has part of the basket")
    lines += ["", f"as of {local_time(response.as_of)}, view version {response.version}"]
    return "\n".join(lines)


async def cmd_pickup(client: OmnistockClient, args: argparse.Namespace, out: Output) -> int:
    items = parse_items(args.items)
    if args.radius is not None and not (math.isfinite(args.radius) and args.radius > 0):
        raise UsageError(f"--radius must be more than 0 km (at most 1000), got {_number(args.radius)}")
    location = parse_lat_lon(args.near) if args.near is not None else None
    response = await client.find_pickup_stores(
        items,
        location=location,
        store_id=args.store or "",
        radius_km=args.radius or 0.0,
        channel_id=args.channel or "",
        limit=args.limit or 0,
    )
    around = (
        args.store if args.store else f"{_number(location[0])},{_number(location[1])}" if location else ""
    )
    text = format_pickup(response, items, around, args.radius or 50.0, args.channel or "")
    out.result(response, text)
    return EXIT_OK


# --- live availability feed ---

STATUS_COLORS = {"IN_STOCK": "32", "LOW_STOCK": "33", "OUT_OF_STOCK": "31"}


class WatchPrinter:
    """Prints a watch stream: JSON lines, or one aligned line per change with status crossings
    marked `OLD -> NEW`. A catch-up of more than `summarise_over` SKUs is summarised by status
    in text unless `full`."""

    def __init__(
        self, out: Output, color: bool = False, full: bool = False, summarise_over: int = 50
    ) -> None:
        self.out = out
        self.color = color
        self.full = full
        self.summarise_over = summarise_over
        self.version = 0
        self.updates = 0
        self.last: dict[str, int] = {}
        """Available last printed per SKU, to say what it was."""
        self.hinted = False

    def paint(self, text: str, status: str) -> str:
        code = STATUS_COLORS.get(status)
        return f"\033[1;{code}m{text}\033[0m" if self.color and code else text

    def change_cells(self, change: availability_pb2.AvailabilityChange) -> tuple[str, str]:
        status = status_name(change.status) if change.status else ""
        previous = status_name(change.previous_status) if change.previous_status else ""
        was = self.last.get(change.sku)
        amount = f"available {change.available}" + (
            f" (was {was})" if was is not None and was != change.available else ""
        )
        if previous and status and previous != status:
            return self.paint(f"{previous} -> {status}", status), amount
        return status, amount

    def format(self, update: availability_pb2.AvailabilityUpdate) -> str:
        head = f"version {update.version}, as of {local_time(update.as_of)}"
        changes = list(update.changes)
        if update.catch_up:
            head += f" (catch-up: {_count(changes, 'SKU')})"
        if update.catch_up and not self.full and len(changes) > self.summarise_over:
            by_status: dict[str, int] = {}
            for change in changes:
                if change.status:
                    key = status_name(change.status)
                else:
                    key = "with stock" if change.available else "without stock"
                by_status[key] = by_status.get(key, 0) + 1
                self.last[change.sku] = change.available
            counts = ", ".join(f"{key} {count}" for key, count in sorted(by_status.items()))
            hint = "" if self.hinted else "  (--full lists every SKU)"
            self.hinted = True
            return f"{head}\n  {counts}{hint}"
        cells = [(change.sku, *self.change_cells(change)) for change in changes]
        for change in changes:
            self.last[change.sku] = change.available
        sku_width = max((len(sku) for sku, _, _ in cells), default=0)
        status_width = max((len(_plain(status)) for _, status, _ in cells), default=0)
        lines = [head]
        for sku, status, amount in cells:
            parts = [sku.ljust(sku_width)]
            if status_width:
                parts.append(status + " " * (status_width - len(_plain(status))))
            lines.append("  " + "  ".join([*parts, amount]))
        return "\n".join(lines)

    def show(self, update: availability_pb2.AvailabilityUpdate) -> None:
        self.version = update.version
        self.updates += 1
        if self.out.as_json:
            print(json.dumps(to_dict(update), separators=(",", ":")), file=self.out.stdout, flush=True)
        else:
            print(self.format(update), file=self.out.stdout, flush=True)


ANSI = re.compile(r"\033\[[0-9;]*m")


def _plain(text: str) -> str:
    return ANSI.sub("", text)


def resume_command(args: argparse.Namespace, version: int) -> str:
    parts = ["omnistock", "watch"]
    if len(args.skus) <= 10:
        parts += args.skus
    else:
        parts.append(f"<the same {len(args.skus)} SKUs>")
    if args.channel:
        parts += ["--channel", args.channel]
    if args.target != os.environ.get(TARGET_ENV, DEFAULT_TARGET):
        parts += ["--target", args.target]
    if args.json:
        parts.append("--json")
    parts += ["--from-version", str(version)]
    return " ".join(part if part.startswith("<") else shlex.quote(part) for part in parts)


def use_color(stream: IO[str]) -> bool:
    return stream.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"


async def cmd_watch(client: OmnistockClient, args: argparse.Namespace, out: Output) -> int:
    printer = WatchPrinter(out, color=use_color(out.stdout), full=args.full)
    printer.version = args.from_version
    watched = f"{_count(args.skus, 'SKU')}" if args.skus else "every SKU"
    through = f" through channel {args.channel}" if args.channel else " (free units network-wide)"
    out.note(f"watching {watched}{through}; Ctrl-C stops")

    async def consume() -> None:
        async for update in client.watch_availability(args.skus, args.channel or "", args.from_version):
            printer.show(update)

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    handled = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop.set)
            handled.append(signum)
        except (NotImplementedError, RuntimeError, ValueError):
            pass  # not the main thread (or no signals here): Ctrl-C ends the run instead

    def resume_hint(ended: str) -> None:
        if printer.updates:
            command = resume_command(args, printer.version)
            out.note(f"{ended} at version {printer.version}; resume with:\n  {command}")
        else:
            out.note(f"{ended} before any update arrived")

    feed = asyncio.create_task(consume())
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({feed, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for signum in handled:
            loop.remove_signal_handler(signum)
        stopper.cancel()
        if not feed.done():
            feed.cancel()
            await asyncio.gather(feed, return_exceptions=True)
    if feed.cancelled():
        resume_hint("stopped")
        return EXIT_OK
    error = feed.exception()
    if error is None:
        resume_hint("the service ended the feed")
        return EXIT_REFUSED
    if isinstance(error, OmnistockRpcError) and printer.updates:
        code = out.rpc_error(error)
        resume_hint("the feed broke")
        return code
    raise error


# --- expected supply ---


def supply_text(item: inventory_pb2.InboundSupply) -> str:
    if not item.quantity:
        return f"supply {item.supply_id}: {item.sku} at {item.node_id} cleared (nothing expected)"
    return (
        f"supply {item.supply_id}: {item.quantity} x {item.sku} expected at {item.node_id}"
        f" on {local_time(item.expected_at)}"
    )


async def cmd_supply_expect(client: OmnistockClient, args: argparse.Namespace, out: Output) -> int:
    quantity = parse_int(args.quantity, "QTY", (0, INT64[1]))
    if args.date is None and quantity:
        raise UsageError("--date is required: when the supply is expected, ISO 8601 (e.g. 2026-12-01)")
    expected_at = parse_time(args.date, "--date") if args.date is not None else time.time()
    item = inventory_pb2.InboundSupply(
        supply_id=args.supply_id,
        sku=args.sku,
        node_id=args.node,
        quantity=quantity,
        expected_at=to_timestamp(expected_at),
    )
    response = await client.expect_supply([item])
    out.result({"applied": response.applied, "supply": to_dict(item)}, supply_text(item))
    return EXIT_OK


async def cmd_supply_load(client: OmnistockClient, args: argparse.Namespace, out: Output) -> int:
    if args.file == "-":
        supplies = read_supplies(csv.reader(sys.stdin))
    else:
        try:
            with open(args.file, newline="", encoding="utf-8-sig") as handle:
                supplies = read_supplies(csv.reader(handle))
        except OSError as error:
            raise UsageError(f"cannot read {args.file}: {error.strerror or error}") from None
    applied = 0
    started = time.perf_counter()
    for start in range(0, len(supplies), args.chunk):
        chunk = supplies[start : start + args.chunk]
        try:
            response = await client.expect_supply(chunk)
        except OmnistockRpcError as error:
            if start:
                out.note(
                    f"the first {start} line(s) were applied, none after them"
                    " (loading the file again is safe: each line sets its quantity and date)"
                )
            return out.rpc_error(error)
        applied += response.applied
        if len(supplies) > args.chunk:
            out.note(f"sent {start + len(chunk)} of {len(supplies)} lines")
    cleared = sum(1 for item in supplies if not item.quantity)
    supply_ids = len({item.supply_id for item in supplies})
    units = sum(item.quantity for item in supplies)
    text = (
        f"{_count(supplies, 'supply line')} applied: {supply_ids} supply id(s), {units} units expected"
        + (f", {cleared} line(s) cleared" if cleared else "")
        + f" ({time.perf_counter() - started:.1f}s)"
    )
    out.result({"applied": applied, "lines": len(supplies), "supplies": supply_ids, "cleared": cleared}, text)
    return EXIT_OK


# --- network: groups and channels ---


class NetworkReading:
    """A NetworkConfig with the members of each group and the nodes each channel sells from."""

    def __init__(self, config: network_pb2.NetworkConfig) -> None:
        self.config = config
        self.network = network_from_proto(config, Limits())
        self.groups = {g.group_id: g for g in config.groups}
        self.channels = {c.channel_id: c for c in config.channels}

    def members(self, group_id: str) -> list[str]:
        group = self.network.groups.get(group_id)
        return sorted(group.members(self.network.nodes)) if group else []

    def eligible(self, channel_id: str) -> list[str]:
        return sorted(self.network.eligible(channel_id)) if channel_id in self.network.channels else []

    def groups_table(self) -> str:
        if not self.groups:
            return "no groups"
        rows = [
            (group_id, len(self.members(group_id)), describe_group(group))
            for group_id, group in sorted(self.groups.items())
        ]
        return table(["GROUP", "NODES", "DEFINITION"], rows)

    def channels_table(self) -> str:
        if not self.channels:
            return "no channels"
        rows = [
            (
                channel_id,
                channel.name or "-",
                ",".join(channel.groups),
                len(self.eligible(channel_id)),
                len(channel.safety),
                len(channel.caps),
                describe_sourcing(channel.sourcing, compact=True),
                channel.low_stock_threshold,
                channel.display_cap or "-",
                channel.future_supply_holds,
            )
            for channel_id, channel in sorted(self.channels.items())
        ]
        return table(
            [
                "CHANNEL",
                "NAME",
                "GROUPS",
                "NODES",
                "SAFETY",
                "CAPS",
                "SOURCING",
                "LOW_STOCK",
                "DISPLAY_CAP",
                "FUTURE_SUPPLY",
            ],
            rows,
        )

    def show_group(self, group_id: str) -> str:
        members = self.members(group_id)
        lines = [f"group {group_id}: {describe_group(self.groups[group_id])}, {_count(members, 'node')}"]
        if members:
            lines.append(wrapped(members))
        return "\n".join(lines)

    def show_channel(self, channel_id: str) -> str:
        channel = self.channels[channel_id]
        eligible = self.eligible(channel_id)
        safety = sorted(channel.safety, key=safety_precedence, reverse=True)
        caps = sorted(channel.caps, key=cap_precedence, reverse=True)
        rows: list[tuple[str, str]] = [
            ("channel", channel_id),
            ("name", channel.name or "-"),
            ("groups", ", ".join(channel.groups)),
            ("nodes", f"{len(eligible)} enabled node(s) in those groups"),
            ("", wrapped(eligible, indent="", width=86)),
            ("low stock", f"LOW_STOCK when 0 < available <= {channel.low_stock_threshold}"),
            ("display cap", f"answers show at most {channel.display_cap}" if channel.display_cap else "none"),
            (
                "future supply",
                "holds may take expected inbound supply (preorders)"
                if channel.future_supply_holds
                else "no: holds take stock on hand only",
            ),
        ]
        rows += [("safety" if i == 0 else "", format_safety_rule(r)) for i, r in enumerate(safety)] or [
            ("safety", "none")
        ]
        rows += [("caps" if i == 0 else "", format_cap_rule(c)) for i, c in enumerate(caps)] or [
            ("caps", "none (up to 100% of a node)")
        ]
        rows.append(("sourcing", describe_sourcing(channel.sourcing)))
        width = max(len(label) for label, _ in rows)
        lines = []
        for label, value in rows:
            for i, part in enumerate(value.splitlines() or [""]):
                lines.append(f"{(label if i == 0 else '').ljust(width)}  {part}".rstrip())
        return "\n".join(line for line in lines if line)

    def summary(self) -> str:
        nodes = self.config.nodes
        by_type: dict[str, int] = {}
        for node in nodes:
            label = NODE_TYPE_LABELS.get(node.type, str(node.type))
            by_type[label] = by_type.get(label, 0) + 1
        kinds = ", ".join(f"{count} {label}" for label, count in sorted(by_type.items()))
        disabled = sum(1 for node in nodes if not node.enabled)
        limits = self.config.purchase_limits
        return (
            f"network version {self.config.version}: {_count(nodes, 'node')}"
            + (f" ({kinds}; {disabled} disabled)" if nodes else "")
            + f", {_count(self.groups, 'group')}, {_count(self.channels, 'channel')}"
            + (f", {_count(limits, 'purchase limit')}" if limits else "")
        )

    def limits_table(self) -> str:
        return limits_table(self.config.purchase_limits)


def version_line(config: network_pb2.NetworkConfig) -> str:
    return f"network version {config.version}"


async def cmd_groups_list(client: OmnistockClient, args: argparse.Namespace, out: Output) -> int:
    reading = NetworkReading(await client.get_network())
    data = {
        "version": reading.config.version,
        "groups": [
            {**to_dict(group), "members": reading.members(group.group_id)} for group in reading.config.groups
        ],
    }
    out.result(data, f"{reading.groups_table()}\n{version_line(reading.config)}")
    return EXIT_OK


async def cmd_groups_put(client: OmnistockClient, args: argparse.Namespace, out: Output) -> int:
    group = group_from_args(args.group_id, args.nodes, args.types, args.ships, args.pickup)
    reading = NetworkReading(await client.put_groups([group]))
    data = {
        "version": reading.config.version,
        "group": to_dict(reading.groups[group.group_id]),
        "members": reading.members(group.group_id),
    }
    out.result(data, f"{reading.show_group(group.group_id)}\n{version_line(reading.config)}")
    return EXIT_OK


async def cmd_groups_delete(client: OmnistockClient, args: argparse.Namespace, out: Output) -> int:
    config = await client.delete_groups(args.group_ids)
    data = {"version": config.version, "deleted": list(args.group_ids)}
    out.result(data, f"deleted group(s) {', '.join(args.group_ids)}\n{version_line(config)}")
    return EXIT_OK


async def cmd_channels_list(client: OmnistockClient, args: argparse.Namespace, out: Output) -> int:
    reading = NetworkReading(await client.get_network())
    data = {
        "version": reading.config.version,
        "channels": [
            {**to_dict(channel), "eligible_nodes": reading.eligible(channel.channel_id)}
            for channel in reading.config.channels
        ],
    }
    out.result(data, f"{reading.channels_table()}\n{version_line(reading.config)}")
    return EXIT_OK


async def cmd_channels_show(client: OmnistockClient, args: argparse.Namespace, out: Output) -> int:
    reading = NetworkReading(await client.get_network())
    if args.channel_id not in reading.channels:
        known = ", ".join(sorted(reading.channels)) or "none"
        out.error(
            "NOT_FOUND",
            f"channel {args.channel_id!r} not found (channels: {known})",
            {"channel_id": args.channel_id},
        )
        return EXIT_REFUSED
    data = {
        "version": reading.config.version,
        "channel": to_dict(reading.channels[args.channel_id]),
        "eligible_nodes": reading.eligible(args.channel_id),
    }
    out.result(data, f"{reading.show_channel(args.channel_id)}\n{version_line(reading.config)}")
    return EXIT_OK


async def cmd_channels_put(client: OmnistockClient, args: argparse.Namespace, out: Output) -> int:
    channel = channel_from_args(
        args.channel_id,
        args.groups,
        args.name,
        args.low_stock,
        args.display_cap,
        args.safety,
        args.cap,
        args.future_supply_holds,
        args.sourcing,
        args.split_lines,
        args.max_shipments,
    )
    try:
        config = await client.put_channels([channel])
    except OmnistockRpcError as error:
        # Some checks name the channel by its place in the call (`channels[0]`): name it by id.
        named = [(_by_id(field, [], [], [channel]), text) for field, text in error.field_violations]
        return out.rpc_error(dataclasses.replace(error, field_violations=named))
    reading = NetworkReading(config)
    data = {
        "version": reading.config.version,
        "channel": to_dict(reading.channels[channel.channel_id]),
        "eligible_nodes": reading.eligible(channel.channel_id),
    }
    out.result(data, f"{reading.show_channel(channel.channel_id)}\n{version_line(reading.config)}")
    return EXIT_OK


async def cmd_channels_delete(client: OmnistockClient, args: argparse.Namespace, out: Output) -> int:
    config = await client.delete_channels(args.channel_ids)
    data = {"version": config.version, "deleted": list(args.channel_ids)}
    out.result(data, f"deleted channel(s) {', '.join(args.channel_ids)}\n{version_line(config)}")
    return EXIT_OK


async def cmd_network_show(client: OmnistockClient, args: argparse.Namespace, out: Output) -> int:
    reading = NetworkReading(await client.get_network())
    text = "\n\n".join(
        [reading.summary(), reading.groups_table(), reading.channels_table(), reading.limits_table()]
    )
    out.result(reading.config, text)
    return EXIT_OK


def limits_data(config: network_pb2.NetworkConfig) -> list[dict[str, Any]]:
    return [to_dict(limit) for limit in sorted(config.purchase_limits, key=lambda limit: limit.sku)]


async def cmd_limits_list(client: OmnistockClient, args: argparse.Namespace, out: Output) -> int:
    config = await client.get_network()
    data = {"version": config.version, "purchase_limits": limits_data(config)}
    out.result(data, f"{limits_table(config.purchase_limits)}\n{version_line(config)}")
    return EXIT_OK


async def cmd_limits_put(client: OmnistockClient, args: argparse.Namespace, out: Output) -> int:
    limits = parse_limit_pairs(args.pairs)
    try:
        config = await client.put_purchase_limits(limits)
    except OmnistockRpcError as error:
        named = [(limit_field_by_sku(field, list(limits)), text) for field, text in error.field_violations]
        return out.rpc_error(dataclasses.replace(error, field_violations=named))
    data = {
        "version": config.version,
        "changed": [{"sku": sku, "max_per_customer": most} for sku, most in limits.items()],
        "purchase_limits": limits_data(config),
    }
    text = f"purchase limits: {describe_limit_changes(limits)}\n{limits_table(config.purchase_limits)}"
    out.result(data, f"{text}\n{version_line(config)}")
    return EXIT_OK


async def apply_network(client: OmnistockClient, network: NetworkFile, where: str) -> dict[str, Any]:
    """Put a parsed network file's nodes, then groups, then channels, then purchase limits.

    Everything is checked first against the network as it stands, with the server's own
    rules, so a bad file changes nothing (ProblemsError names every problem).
    """
    node_messages, group_messages, channel_messages = network_messages(
        network.nodes, network.groups, network.channels
    )
    problems = network_problems(
        await client.get_network(), node_messages, group_messages, channel_messages, network.purchase_limits
    )
    if problems:
        raise ProblemsError(f"{where}: {_count(problems, 'problem')}, nothing was applied", problems)
    applied: dict[str, Any] = {}
    config: network_pb2.NetworkConfig | None = None
    if node_messages:
        put = await client.put_nodes(node_messages)
        applied["nodes"] = {"created": put.created, "updated": put.updated}
    if group_messages:
        config = await client.put_groups(group_messages)
        applied["groups"] = [g.group_id for g in group_messages]
    if channel_messages:
        config = await client.put_channels(channel_messages)
        applied["channels"] = [c.channel_id for c in channel_messages]
    if network.purchase_limits:
        config = await client.put_purchase_limits(network.purchase_limits)
        applied["purchase_limits"] = dict(network.purchase_limits)
    if config is None:
        config = await client.get_network()
    applied["version"] = config.version
    return applied


def describe_applied(applied: dict[str, Any]) -> str:
    lines = []
    if "nodes" in applied:
        nodes = applied["nodes"]
        lines.append(f"nodes     {nodes['created']} created, {nodes['updated']} updated")
    if "groups" in applied:
        lines.append(f"groups    {', '.join(applied['groups'])}")
    if "channels" in applied:
        lines.append(f"channels  {', '.join(applied['channels'])}")
    if "purchase_limits" in applied:
        lines.append(f"limits    {describe_limit_changes(applied['purchase_limits'])}")
    lines.append(f"network version {applied['version']}")
    return "\n".join(lines)


async def cmd_network_apply(client: OmnistockClient, args: argparse.Namespace, out: Output) -> int:
    network = read_network_file(args.file, ", nothing was applied")
    if not (network.nodes or network.groups or network.channels or network.purchase_limits):
        raise UsageError(f"{args.file}: no nodes, groups, channels or purchase limits in the file")
    applied = await apply_network(client, network, args.file)
    out.result(applied, f"applied {args.file}\n{describe_applied(applied)}")
    return EXIT_OK


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
    except ProblemsError as error:
        return out.problems(error)
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
        gateways=args.gateways,
        # With --demo the file is applied once the demo nodes are there (see serve_async).
        network_file=Path(args.network) if args.network and not args.demo else None,
    )


ParsedNetwork = tuple[list[Node], list[NodeGroup], list[Channel]]


def serve_network_file(args: argparse.Namespace) -> tuple[str, NetworkFile] | None:
    """The network file `serve` applies at start (--network, or the demo's with --demo), read and
    checked before anything starts; ProblemsError names every problem."""
    if args.network:
        where = args.network
        parsed = read_network_file(args.network)
    elif args.demo:
        from loadtest.datagen import DEMO_NETWORK_FILE, demo_network_text

        where = f"loadtest/{DEMO_NETWORK_FILE}"
        parsed = parse_network_text(demo_network_text(), where)
    else:
        return None
    # Checks of single settings (ids, types, ranges) now; references to nodes and groups,
    # which the stored network may hold, are checked when the file is applied.
    messages = network_messages(parsed.nodes, parsed.groups, parsed.channels)
    problems = network_problems(None, *messages, parsed.purchase_limits)
    if problems:
        raise ProblemsError(f"{where}: {_count(problems, 'problem')}", problems)
    return where, parsed


def serve_network(args: argparse.Namespace) -> tuple[str, ParsedNetwork] | None:
    """serve_network_file's nodes, groups and channels (its purchase limits left out)."""
    found = serve_network_file(args)
    if found is None:
        return None
    where, parsed = found
    return where, (parsed.nodes, parsed.groups, parsed.channels)


def say_problems(say: Callable[[str], None], headline: str, problems: Sequence[tuple[str, str]]) -> None:
    say(f"error: {headline}")
    for field, description in problems:
        say(f"  {field}: {description}")


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
    ports = [port for port in service.metrics_ports if port]
    metrics = ", ".join(f"http://{client_target(config.host, port)}/metrics" for port in ports) or "off"
    if len(ports) > 1:
        metrics += " (one per gateway)"
    gateways = (
        f"{config.gateways} processes sharing the port (SO_REUSEPORT)" if config.gateways > 1 else "1 process"
    )
    rows = [
        ("gRPC", f"{client_target(config.host, service.port)} (listening on {config.host})"),
        ("gateways", gateways),
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


async def load_demo_if_empty(
    target: str, say: Callable[[str], None], network: tuple[str, NetworkFile] | None = None
) -> None:
    """Load the demo nodes and stock unless nodes are registered, and apply `network` (the demo's
    groups and channels, or the --network file) once the nodes are there."""
    from loadtest.datagen import demo_nodes, load_demo

    async with OmnistockClient(target, timeout=60.0) as client:

        async def apply() -> None:
            if network is not None:
                where, parsed = network
                applied = await apply_network(client, parsed, where)
                say(f"demo: network {where} applied (version {applied['version']}):")
                for line in describe_applied(applied).splitlines()[:-1]:
                    say(f"demo:   {line}")

        if await client.list_nodes():
            say("demo: nodes are already registered; keeping the stock as it is")
            await apply()
            return
        if network is not None:
            # Checked with the demo nodes before they are put: a bad file leaves nothing behind.
            where, parsed = network
            node_messages, group_messages, channel_messages = network_messages(
                parsed.nodes, parsed.groups, parsed.channels
            )
            problems = network_problems(
                await client.get_network(),
                [*demo_nodes(), *node_messages],
                group_messages,
                channel_messages,
                parsed.purchase_limits,
            )
            if problems:
                raise ProblemsError(f"{where}: {_count(problems, 'problem')}, nothing was applied", problems)
        started = time.perf_counter()
        say("demo: loading the demo network ...")
        await load_demo(client, progress=lambda text: say(f"demo: {text}"), after_nodes=apply)
        say(f"demo: ready in {time.perf_counter() - started:.1f}s")


async def serve_async(args: argparse.Namespace, network: tuple[str, NetworkFile] | None = None) -> int:
    from gateway.service import Service
    from reservations.actor import settle_heap

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
        if isinstance(error, InvalidArgument) and network is not None:
            headline = f"{network[0]} does not fit the stored network; nothing was applied or started"
            say_problems(say, headline, error.violations)
            return EXIT_USAGE
        if isinstance(error, Exception):
            hint = " (is something else listening on that port?)" if "bind" in str(error).lower() else ""
            say(f"error: cannot start omnistock: {error}{hint}")
            return EXIT_REFUSED
        raise

    settle_heap()
    # Installed after start: ray.init() replaces the SIGTERM handler with its own sys.exit.
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    exit_code = EXIT_OK

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
    if network is not None and not args.demo and service.backend is not None:
        say(f"network {network[0]} applied (version {service.backend.network.network.version})")
    demo: asyncio.Task[None] | None = None
    if args.demo:

        async def demo_then_hint() -> None:
            nonlocal exit_code
            try:
                await load_demo_if_empty(target, say, network)
            except ProblemsError as error:
                say_problems(say, f"{error}; stopping", error.problems)
                exit_code = EXIT_USAGE
                stopping.set()
                return
            except OmnistockRpcError as error:
                say(f"demo: loading failed: {error}; the service keeps running")
            say(try_hint(target))

        demo = asyncio.create_task(demo_then_hint())
    else:
        say(try_hint(target))
    try:
        await stopping.wait()
    finally:
        # A stop that hangs would be killed by the supervisor without a word: print every
        # thread's stack and exit instead, so the log says where it hung. Left armed until
        # the process ends, since interpreter exit can hang too.
        faulthandler.dump_traceback_later(STOP_TIMEOUT, exit=True)
        if demo is not None and not demo.done():
            demo.cancel()
            await asyncio.gather(demo, return_exceptions=True)
        await service.stop(grace=5)
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
    say("omnistock stopped")
    # Everything is stopped and flushed: leave now. Tearing down the event loop can hang
    # joining gRPC's poller thread (grpc/grpc#40989), and nothing is left to clean up.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(exit_code)


def serve(args: argparse.Namespace) -> int:
    try:
        network = serve_network_file(args)
    except ProblemsError as error:
        say_problems(lambda text: print(text, file=sys.stderr), str(error), error.problems)
        return EXIT_USAGE
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    start_logging(args)
    try:
        return cast(int, loop_runner()(serve_async(args, network)))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def add_log_level(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-level",
        default="info",
        type=str.lower,
        choices=["debug", "info", "warning", "error"],
        help="(default %(default)s)",
    )


def start_logging(args: argparse.Namespace) -> None:
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def run_gateway(args: argparse.Namespace) -> int:
    from gateway.service import serve_gateway

    settings = sys.stdin.readline()
    if not settings.strip():
        print("error: omnistock gateway reads its settings on stdin (serve starts it)", file=sys.stderr)
        return EXIT_USAGE
    start_logging(args)
    code = EXIT_OK
    try:
        loop_runner()(serve_gateway(settings))
    except Exception:
        logging.getLogger(__name__).exception("gateway failed")
        code = EXIT_REFUSED
    # As serve: leave without tearing down the loop (grpc/grpc#40989).
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


# --- the parser ---


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


def int32(text: str) -> int:
    value = int(text)
    if not INT32[0] <= value <= INT32[1]:
        raise argparse.ArgumentTypeError(f"out of range: {value}")
    return value


def int64(text: str) -> int:
    value = int(text)
    if not INT64[0] <= value <= INT64[1]:
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
        default=default_shards(),
        help="shard actors owning the partitions (default: one per CPU but one, %(default)s)",
    )
    serve_parser.add_argument(
        "--gateways",
        type=positive_int,
        default=1,
        help="gateway processes sharing the gRPC port (SO_REUSEPORT); gateway i serves its metrics"
        " on --metrics-port + i (default %(default)s)",
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
        help="load the demo network (3 DCs, 50 stores, 1000 SKUs) when no node is registered yet,"
        " with its node groups and channels (loadtest/demo-network.toml) unless --network is given",
    )
    serve_parser.add_argument(
        "--network",
        metavar="FILE",
        help="TOML file of nodes, node groups, channels and purchase limits applied at start over the"
        " stored network;"
        " checked whole: a bad file prints every problem and exits 2",
    )
    serve_parser.add_argument(
        "--redis-fsync",
        choices=["always", "everysec"],
        default="always",
        help="AOF fsync of the embedded Redis: always loses no acknowledged write (default %(default)s)",
    )
    add_log_level(serve_parser)
    serve_parser.set_defaults(handler=serve)

    gateway_parser = commands.add_parser(
        "gateway",
        help="one more gateway of a running `omnistock serve --gateways N` (serve starts it)",
        description="Started by `omnistock serve --gateways N` for each gateway beyond its own:"
        " reads its settings as one JSON line on stdin, joins serve's Ray runtime and Redis, and"
        " serves the same port until SIGTERM or until serve is gone. Not meant to be run by hand.",
    )
    add_log_level(gateway_parser)
    gateway_parser.set_defaults(handler=run_gateway)

    bench_parser = commands.add_parser(
        "bench",
        help="measure every hot path against a bare gRPC echo server, in one run",
        description="Starts a gRPC echo server and (unless --target) an omnistock service, loads a"
        " catalog, and measures Reserve, availability, a hot SKU and checkouts against the echo"
        " ceiling: calls/s, p50/p99/max, errors, ratio, and the targets of docs/performance.md."
        " Exit status 1 if any scenario had an error.",
    )
    add_bench_arguments(bench_parser)
    bench_parser.set_defaults(handler=run_bench)

    size_parser = commands.add_parser(
        "size",
        help="gateways, shards and cores for a retailer's busy hour times a spike",
        description="Turns orders per busy hour, lines and availability checks per order, stock updates"
        " and a spike factor into request rates per RPC, and, from the per-core capacity `omnistock bench`"
        " measured, into the gateways, shards and cores needed with headroom (docs/sizing.md).",
    )
    add_size_arguments(size_parser)
    size_parser.set_defaults(handler=run_size)

    loadtest_parser = commands.add_parser(
        "loadtest",
        help="the peak day: Locust scenarios ramped to a spike of the normal peak, with a verdict",
        description="Starts an omnistock service (unless --target) with the demo network, runs Locust"
        " (shoppers, checkouts, store associates, the POS / WMS feed, marketplaces on the live feed)"
        " from the normal peak up to --spike x and holds it, writes Locust's CSV and HTML report into"
        " --out, and prints achieved rates against targets, p50/p99 and errors per RPC, and the stock"
        " checks at the end. Exit status 1 on any error, oversold unit or hold left open.",
    )
    add_loadtest_arguments(loadtest_parser)
    loadtest_parser.set_defaults(handler=run_loadtest)

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
        description=f"FILE is CSV with a header naming some of {','.join(NODE_FIELDS)}"
        " (only node_id and type are required; ships and enabled default to true, pickup to false;"
        " priority, shipment_cost and daily_capacity, used by sourcing, to 0: daily_capacity 0 is no"
        " limit) or a JSON list of such objects. type is store, dc, 3pl or dropship. - reads stdin.",
    )
    put.add_argument("file", metavar="FILE")
    listing = client_command(node_commands, "list", cmd_nodes_list, "list nodes")
    listing.add_argument("--type", choices=sorted(NODE_TYPE_NAMES), help="only nodes of this type")

    stock = commands.add_parser("stock", help="stock on hand: set, adjust (and receive), load")
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
    setting.add_argument("--damaged", default="0", metavar="N", help="of ON_HAND, units damaged (default 0)")
    setting.add_argument(
        "--quality-hold", default="0", metavar="N", help="of ON_HAND, units under quality hold (default 0)"
    )
    adjust = client_command(
        stock_commands,
        "adjust",
        cmd_stock_adjust,
        "add a signed delta to on_hand (idempotent by id); with --supply-id a receipt",
        description="Prints the outcome APPLIED, REPLAYED, REFUSED_NEGATIVE, CONFLICT or UNKNOWN_SUPPLY;"
        " exits 1 unless APPLIED or REPLAYED. With --supply-id the delta is a receipt of that expected"
        " supply line (a positive delta of sellable units): the units leave the supply as they go on hand.",
    )
    adjust.add_argument("sku", metavar="SKU")
    adjust.add_argument("node", metavar="NODE")
    adjust.add_argument("delta", metavar="DELTA")
    adjust.add_argument("--id", help="adjustment id (default: a new one, printed); the same id again is safe")
    adjust.add_argument("--reason", default="", help="free text for audit: receipt, pos-sale, damage, ...")
    adjust.add_argument(
        "--state",
        type=str.lower,
        choices=sorted(STOCK_STATE_NAMES),
        default="sellable",
        help="which units change: sellable (default) changes on_hand; damaged or quality_hold changes"
        " on_hand and that state's count together",
    )
    adjust.add_argument(
        "--supply-id",
        metavar="ID",
        help="a receipt of this expected supply line of the SKU at the node (UNKNOWN_SUPPLY when"
        " there is none)",
    )
    load = client_command(
        stock_commands,
        "load",
        cmd_stock_load,
        "stream a CSV of absolute counts",
        description=f"FILE is CSV {LEVEL_FORM}, or with a header row naming those columns in any order"
        " (sku, node_id and on_hand required); damaged and quality_hold are parts of on_hand."
        " Streamed in chunks without reading it all into memory. - reads stdin.",
    )
    load.add_argument("file", metavar="FILE")
    load.add_argument(
        "--chunk", type=positive_int, default=5_000, help="levels per chunk (default %(default)s)"
    )

    supply = commands.add_parser("supply", help="expected inbound supply: expect, load")
    supply_commands = supply.add_subparsers(dest="supply_command", metavar="ACTION", required=True)
    expect = client_command(
        supply_commands,
        "expect",
        cmd_supply_expect,
        "expect QTY units of a SKU at a node on a date (QTY 0 clears the line)",
        description="Creates or changes the supply line (SUPPLY_ID, SKU, NODE): a purchase order or"
        " transfer line still to come. A supply id may have lines for many SKUs and nodes. Receive it"
        " with `omnistock stock adjust SKU NODE QTY --supply-id SUPPLY_ID`.",
    )
    expect.add_argument("supply_id", metavar="SUPPLY_ID")
    expect.add_argument("sku", metavar="SKU")
    expect.add_argument("node", metavar="NODE")
    expect.add_argument("quantity", metavar="QTY", help="units still to come; 0 clears the line")
    expect.add_argument(
        "--date",
        metavar="ISO8601",
        help="when the supply is expected, e.g. 2026-12-01 or 2026-12-01T09:00:00Z (local time"
        " without offset); required unless QTY is 0",
    )
    supply_load = client_command(
        supply_commands,
        "load",
        cmd_supply_load,
        "expect the supply lines of a CSV file",
        description=f"FILE is CSV {SUPPLY_FORM}, or with a header row naming those columns in any order."
        " The whole file is checked before anything is sent, then sent in calls of --chunk lines."
        " Quantity 0 clears a line. - reads stdin.",
    )
    supply_load.add_argument("file", metavar="FILE")
    supply_load.add_argument(
        "--chunk", type=positive_int, default=10_000, help="lines per call (default and most %(default)s)"
    )

    availability = client_command(
        commands,
        "availability",
        cmd_availability,
        "availability of SKUs, network-wide or for a channel (1000 per call)",
        description="Answers come from the gateway's view of the shards (fresh within tens of"
        " milliseconds; the answer says its version and time) unless --consistent is given.",
    )
    availability.add_argument("skus", metavar="SKU", nargs="+")
    availability.add_argument("--nodes", action="store_true", help="also show every node's position")
    availability.add_argument(
        "--channel", metavar="CHANNEL", help="what this channel may promise, with its stock status"
    )
    availability.add_argument(
        "--consistent",
        action="store_true",
        help="read the shards (slower, reflects every acknowledged write)",
    )
    availability.add_argument(
        "--by-date",
        metavar="ISO8601",
        help="also what can be promised by then, counting expected supply (BY_DATE; local time"
        " without offset)",
    )
    availability.add_argument(
        "--quantity",
        type=positive_int,
        metavar="N",
        help="also the earliest time N units can be promised (EARLIEST: now, a date, or -)",
    )

    pickup = client_command(
        commands,
        "pickup",
        cmd_pickup,
        "pickup stores near a place or a store that have the basket, nearest first",
        description="Each ITEM is SKU or SKU:QTY (quantity 1 when left out; the part after the last"
        " colon is the quantity). Prints the stores that have the whole basket, then those that have"
        " part of it, each with every item's available and requested units. A latitude below zero"
        " needs the = form: --near=-33.87,151.21.",
    )
    pickup.add_argument("items", metavar="ITEM", nargs="+", help="SKU[:QTY], each SKU once (up to 100)")
    origin = pickup.add_mutually_exclusive_group(required=True)
    origin.add_argument("--near", metavar="LAT,LON", help="search around this place, decimal degrees")
    origin.add_argument("--store", metavar="STORE_ID", help="search around this store (it is included)")
    pickup.add_argument(
        "--radius", type=float, metavar="KM", help="search radius in km (default 50, at most 1000)"
    )
    pickup.add_argument(
        "--channel", metavar="CHANNEL", help="only the channel's pickup stores, with its share of their stock"
    )
    pickup.add_argument(
        "--limit", type=positive_int, metavar="N", help="stores per list (default 10, at most 100)"
    )

    watch = client_command(
        commands,
        "watch",
        cmd_watch,
        "follow availability live: changes and status crossings as they happen",
        description="First the current availability of every watched SKU (catch-up), then each"
        " change as it happens; a status crossing prints as OLD -> NEW. With no SKU every SKU is"
        " watched. Ctrl-C stops and prints the last version seen; --from-version V resumes after it"
        " with only what changed since. --json prints one JSON object per update and line.",
    )
    watch.add_argument("skus", metavar="SKU", nargs="*", help="SKUs to watch (up to 10000; none: every SKU)")
    watch.add_argument("--channel", metavar="CHANNEL", help="what this channel may promise, with its status")
    watch.add_argument(
        "--from-version",
        type=non_negative_int,
        default=0,
        metavar="V",
        help="resume after this version (the last one seen); 0 starts with every watched SKU",
    )
    watch.add_argument(
        "--full",
        action="store_true",
        help="list every SKU of a catch-up; without it a catch-up of more than 50 SKUs is counted by status",
    )

    reserve = client_command(
        commands,
        "reserve",
        cmd_reserve,
        "hold stock: every line or none, at the nodes named or sourced by the channel's rules",
        description="Each LINE is SKU:NODE:QTY, held at that node. With --ship-to or --pickup-at"
        " (and --channel) each LINE is SKU:QTY instead (SKU:*:QTY for a SKU holding colons) and the"
        " channel's sourcing rules choose the nodes; the answer says why each line went where it"
        " went (--explain: every node considered and why it lost). Either every line names its node"
        " or none does. A latitude below zero needs the = form: --ship-to=-33.87,151.21. The same"
        " --id again returns the first answer. A SKU with a purchase limit (`omnistock limits list`)"
        " needs --customer; a hold that would take the customer over it is refused"
        " (RESOURCE_EXHAUSTED, exit 1) naming every limit exceeded.",
    )
    reserve.add_argument("lines", metavar="LINE", nargs="+", help="SKU:NODE:QTY, or SKU:QTY to be sourced")
    destination = reserve.add_mutually_exclusive_group()
    destination.add_argument(
        "--ship-to",
        metavar="LAT,LON",
        help="deliver to this place (decimal degrees): omnistock sources the lines by --channel's rules",
    )
    destination.add_argument(
        "--pickup-at",
        metavar="STORE_ID",
        help="the customer collects at this store: only it can hold the lines (sourced, with --channel)",
    )
    reserve.add_argument(
        "--explain",
        action="store_true",
        help="for sourced lines, print every node considered, with its distance and why it won or lost",
    )
    reserve.add_argument("--id", help="reservation id (default: a new one, printed)")
    reserve.add_argument(
        "--ttl", type=int32, default=0, help="seconds the hold lives (default: server's, 900)"
    )
    reserve.add_argument(
        "--channel",
        metavar="CHANNEL",
        help="hold through this channel: each line may take only what the channel may promise there",
    )
    reserve.add_argument(
        "--customer",
        metavar="ID",
        help="the customer the hold is for; required for SKUs with a purchase limit, which counts"
        " this customer's open reservations",
    )

    groups = commands.add_parser("groups", help="node groups: list, put, delete")
    group_commands = groups.add_subparsers(dest="groups_command", metavar="ACTION", required=True)
    client_command(group_commands, "list", cmd_groups_list, "list node groups and their members")
    group_put = client_command(
        group_commands,
        "put",
        cmd_groups_put,
        "create or replace a node group",
        description="A group is the nodes named with --nodes plus every node matching the selector"
        " (--types, --ships, --pickup), when one is given. Selectors follow the nodes as they change."
        " A group must hold at least one node.",
    )
    group_put.add_argument("group_id", metavar="GROUP_ID")
    group_put.add_argument("--nodes", metavar="N1,N2", help="node ids in the group")
    group_put.add_argument("--types", metavar="dc,store", help="selector: nodes of these types")
    group_put.add_argument(
        "--ships", type=parse_yes_no, metavar="yes|no", help="selector: only nodes that ship (or do not)"
    )
    group_put.add_argument(
        "--pickup", type=parse_yes_no, metavar="yes|no", help="selector: only nodes with pickup (or without)"
    )
    group_delete = client_command(
        group_commands,
        "delete",
        cmd_groups_delete,
        "delete node groups (refused while a channel sells from one)",
    )
    group_delete.add_argument("group_ids", metavar="GROUP_ID", nargs="+")

    channels = commands.add_parser("channels", help="sales channels: list, show, put, delete")
    channel_commands = channels.add_subparsers(dest="channels_command", metavar="ACTION", required=True)
    client_command(channel_commands, "list", cmd_channels_list, "list channels")
    channel_show = client_command(channel_commands, "show", cmd_channels_show, "show a channel and its rules")
    channel_show.add_argument("channel_id", metavar="CHANNEL_ID")
    channel_put = client_command(
        channel_commands,
        "put",
        cmd_channels_put,
        "create or replace a channel (the whole definition)",
        description="A safety RULE keeps units back from the channel: units=N and/or percent=P"
        " (the larger applies), optionally scoped by sku=SKU, node=NODE or node_type=TYPE, e.g."
        " units=2,node_type=store or percent=10,sku=SKU-00001. The most specific rule wins:"
        " sku+node > sku+node_type > sku > node > node_type > channel-wide. A cap RULE limits"
        " the share of a node's sellable units the channel may hold: percent=P, optionally with"
        " node=NODE or node_type=TYPE (node > node_type > channel-wide), e.g. percent=50,node_type=store.",
    )
    channel_put.add_argument("channel_id", metavar="CHANNEL_ID")
    channel_put.add_argument(
        "--groups", required=True, metavar="G1,G2", help="node groups the channel sells from"
    )
    channel_put.add_argument("--name", default="", help="display name")
    channel_put.add_argument(
        "--low-stock",
        type=int64,
        default=0,
        metavar="N",
        help="status LOW_STOCK when 0 < available <= N (default 0)",
    )
    channel_put.add_argument(
        "--display-cap",
        type=int64,
        default=0,
        metavar="N",
        help="answers show at most N units (default 0: no cap); holds are not limited by it",
    )
    channel_put.add_argument(
        "--safety", action="append", default=[], metavar="RULE", help="safety stock rule (repeatable)"
    )
    channel_put.add_argument(
        "--cap", action="append", default=[], metavar="RULE", help="allocation cap (repeatable)"
    )
    channel_put.add_argument(
        "--future-supply-holds",
        action="store_true",
        help="holds through the channel may take expected inbound supply (preorders, backorders),"
        " not only stock on hand",
    )
    channel_put.add_argument(
        "--sourcing",
        metavar="RULE,RULE",
        help="how lines without a node are sourced: preferences in order, the first decides, from"
        f" {', '.join(SOURCING_RULES)} (default {','.join(DEFAULT_SOURCING)})",
    )
    channel_put.add_argument(
        "--split-lines",
        action="store_true",
        help="a sourced line's units may come from several nodes (default: each line from one node)",
    )
    channel_put.add_argument(
        "--max-shipments",
        type=int32,
        default=0,
        metavar="N",
        help="a sourced order uses at most N nodes (default 0: no limit)",
    )
    channel_delete = client_command(channel_commands, "delete", cmd_channels_delete, "delete channels")
    channel_delete.add_argument("channel_ids", metavar="CHANNEL_ID", nargs="+")

    limits = commands.add_parser("limits", help="per-customer purchase limits (hot drops): list, put")
    limit_commands = limits.add_subparsers(dest="limits_command", metavar="ACTION", required=True)
    client_command(limit_commands, "list", cmd_limits_list, "list the SKUs with a purchase limit")
    limits_put = client_command(
        limit_commands,
        "put",
        cmd_limits_put,
        "set or remove per-customer purchase limits (MAX 0 removes)",
        description="One customer may hold at most MAX units of SKU over all their open reservations"
        " (held or confirmed), across nodes and channels; holds of a limited SKU need"
        " `reserve --customer`. MAX 0 removes the SKU's limit; SKUs not named keep theirs.",
    )
    limits_put.add_argument(
        "pairs", metavar="SKU MAX", nargs="+", help="a SKU and the most units one customer may hold"
    )

    network = commands.add_parser("network", help="the whole network: show, apply a file")
    network_commands = network.add_subparsers(dest="network_command", metavar="ACTION", required=True)
    client_command(network_commands, "show", cmd_network_show, "nodes, groups, channels and purchase limits")
    network_apply = client_command(
        network_commands,
        "apply",
        cmd_network_apply,
        "put the nodes, groups, channels and purchase limits of a TOML file",
        description="FILE has the format of `omnistock serve --network` ([[nodes]], [groups.ID],"
        " [channels.ID], [purchase_limits]). It is checked whole against the network as it stands"
        " before anything is sent; then its nodes, groups, channels and purchase limits are put,"
        " in that order. - reads stdin.",
    )
    network_apply.add_argument("file", metavar="FILE")

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
        ("get", cmd_get, "show a reservation, its fulfilled and cancelled units and its history"),
    ):
        sub = client_command(commands, name, command, help_text)
        sub.add_argument("id", metavar="ID")
        if name == "get":
            sub.add_argument(
                "--explain",
                action="store_true",
                help="for a sourced reservation, every node considered for each line and why it won or lost",
            )

    reassign = client_command(
        commands,
        "reassign",
        cmd_reassign,
        "move the open units of a line to another node in one step (the store cannot find them)",
        description="The open units of the line of SKU at FROM_NODE (HELD or CONFIRMED) move to"
        " TO_NODE: the new node is held before the old one is freed, and a refusal changes nothing."
        " Without TO_NODE the reservation's channel's sourcing rules choose the node (never one the"
        " SKU is at already); the answer says why (--explain: every node considered). Units already"
        " fulfilled or cancelled stay where they were. The same --id again returns the answer as it"
        " stands and changes nothing.",
    )
    reassign.add_argument("reservation_id", metavar="ID")
    reassign.add_argument("sku", metavar="SKU")
    reassign.add_argument("from_node", metavar="FROM_NODE", help="the node the line is at now")
    reassign.add_argument(
        "to_node", metavar="TO_NODE", nargs="?", help="the node to move it to (default: sourced)"
    )
    reassign.add_argument(
        "--id", metavar="REASSIGNMENT_ID", help="reassignment id (default: a new one, printed)"
    )
    reassign.add_argument(
        "--explain", action="store_true", help="when sourced, every node considered and why it won or lost"
    )

    returning = client_command(
        commands,
        "return",
        cmd_return,
        "fulfilled units of a line come back, at any node (buy online, return in store)",
        description="LINE is SKU:NODE:QTY: the reservation's line (the node it was fulfilled at) and"
        " the units that come back, at most those fulfilled and not yet returned. They go on hand at"
        " --at (default: the line's node), sellable at once, or as damaged with --damaged. The same"
        " --id again returns the answer as it stands and changes nothing.",
    )
    returning.add_argument("reservation_id", metavar="ID")
    returning.add_argument("line", metavar="LINE", help="SKU:NODE:QTY")
    returning.add_argument(
        "--at", metavar="NODE", help="where the units come back (default: the line's node)"
    )
    returning.add_argument(
        "--damaged", action="store_true", help="not sellable: the units go on hand as damaged"
    )
    returning.add_argument("--id", metavar="RETURN_ID", help="return id (default: a new one, printed)")

    extend = client_command(
        commands,
        "extend",
        cmd_extend,
        "a HELD reservation now expires SECONDS from now",
        description="The hold's expiry moves to now + SECONDS (1..86400) on the server's clock, for"
        " every line alike. A retry is safe: it moves the expiry to the retry's now + SECONDS."
        " Only a HELD reservation can be extended (FAILED_PRECONDITION, exit 1, otherwise).",
    )
    extend.add_argument("id", metavar="ID")
    extend.add_argument(
        "--ttl", type=int32, required=True, metavar="SECONDS", help="seconds from now (1..86400)"
    )
    fulfil = client_command(
        commands,
        "fulfil",
        cmd_fulfil,
        "units of CONFIRMED lines shipped or picked up: they leave on_hand",
        description="Each LINE is SKU:NODE:QTY, a line of the reservation and the units of it that"
        " left, whole or in part; each SKU:NODE once. Once every unit of every line is fulfilled or"
        " cancelled the reservation is FULFILLED. The same --id again returns the answer as it stands"
        " and changes nothing. More units than are open is refused (FAILED_PRECONDITION, exit 1).",
    )
    fulfil.add_argument("reservation_id", metavar="ID")
    fulfil.add_argument("lines", metavar="LINE", nargs="+", help="SKU:NODE:QTY")
    fulfil.add_argument("--id", metavar="FULFILMENT_ID", help="fulfilment id (default: a new one, printed)")
    cancel = client_command(
        commands,
        "cancel-lines",
        cmd_cancel_lines,
        "cancel units of some lines of a HELD or CONFIRMED reservation: they return to availability",
        description="Each LINE is SKU:NODE:QTY, a line of the reservation and the units of it to"
        " cancel; each SKU:NODE once. The rest of the reservation stays as it is (`release` cancels"
        " all of it). The same --id again returns the answer as it stands and changes nothing."
        " More units than are open is refused (FAILED_PRECONDITION, exit 1).",
    )
    cancel.add_argument("reservation_id", metavar="ID")
    cancel.add_argument("lines", metavar="LINE", nargs="+", help="SKU:NODE:QTY")
    cancel.add_argument(
        "--id", metavar="CANCELLATION_ID", help="cancellation id (default: a new one, printed)"
    )
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
