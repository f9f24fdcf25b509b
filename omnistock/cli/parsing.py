"""Reading what a person types (pure): lines, ids, numbers, times, nodes, stock levels, pickup
baskets, places and expected supply."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from omnistock.cli.common import (
    FALSE_WORDS,
    INT64,
    NODE_FIELDS,
    NODE_TYPE_NAMES,
    TRUE_WORDS,
    ProblemsError,
    UsageError,
    count_of,
    new_id,
    number_text,
    to_timestamp,
)
from omnistock.protos.gen.omnistock.v1 import availability_pb2, common_pb2, inventory_pb2, reservation_pb2


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


# --- pickup baskets, places, expected supply ---


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
        raise UsageError(f"{what} latitude must be within -90..90, got {number_text(latitude)}")
    if not -180 <= longitude <= 180:
        raise UsageError(f"{what} longitude must be within -180..180, got {number_text(longitude)}")
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
        raise ProblemsError(f"{where}: {count_of(problems, 'problem')}", problems)
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
        found = f"the first {count_of(shown, 'problem')}" if stopped else count_of(problems, "problem")
        raise ProblemsError(f"{found}, nothing was sent", shown)
    if not supplies:
        raise UsageError(f"no supply lines in the file; expected CSV {SUPPLY_FORM}")
    return supplies
