"""The client commands of nodes, stock, availability, the reservation lifecycle and pickup in
store: each takes a connected client, its arguments and the output, and returns the exit code."""

from __future__ import annotations

import argparse
import asyncio
import csv
import dataclasses
import math
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from typing import IO, Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from omnistock.cli.common import (
    EXIT_OK,
    EXIT_REFUSED,
    NODE_TYPE_LABELS,
    UsageError,
    new_id,
    number_text,
    read_text,
    to_timestamp,
)
from omnistock.cli.network_args import STOCK_STATE_NAMES
from omnistock.cli.output import (
    CHOSEN,
    Output,
    chosen_nodes,
    format_position,
    format_reservation,
    local_time,
    sourcing_text,
    status_name,
    table,
    to_dict,
)
from omnistock.cli.parsing import (
    iter_levels,
    operation_id,
    parse_closing_lines,
    parse_int,
    parse_items,
    parse_lat_lon,
    parse_line,
    parse_node_type,
    parse_nodes,
    parse_reserve_lines,
    parse_time,
)
from omnistock.client import OmnistockClient, OmnistockRpcError
from omnistock.protos.gen.omnistock.v1 import availability_pb2, common_pb2, inventory_pb2, reservation_pb2

Command = Callable[[OmnistockClient, argparse.Namespace, Output], Awaitable[int]]


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
    reservations = f"{response.reservations_checked:,} reservation(s) checked"
    if response.reservations_in_doubt:
        reservations += f", {response.reservations_in_doubt:,} still being carried"
    lines: list[str] = []
    if response.problems:
        lines.append(f"conservation broken at {len(response.problems)} position(s):")
        lines.extend(f"  {problem}" for problem in response.problems)
    if response.disagreement_count:
        lines.append(f"{response.disagreement_count:,} reservation(s) whose parts disagree:")
        lines.extend(f"  {d.reservation_id}: {d.problem}" for d in response.disagreements)
        if response.disagreement_count > len(response.disagreements):
            lines.append(f"  ... and {response.disagreement_count - len(response.disagreements):,} more")
    if response.ok:
        lines.append(f"stock is conserved and every reservation is in one state ({reservations})")
    else:
        lines.append(f"({response.shards_checked} shard(s) and {reservations})")
    out.result(response, "\n".join(lines))
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
    where = f"within {number_text(radius_km)} km of {around}" + (f", channel {channel}" if channel else "")
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
        raise UsageError(f"--radius must be more than 0 km (at most 1000), got {number_text(args.radius)}")
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
        args.store
        if args.store
        else f"{number_text(location[0])},{number_text(location[1])}"
        if location
        else ""
    )
    text = format_pickup(response, items, around, args.radius or 50.0, args.channel or "")
    out.result(response, text)
    return EXIT_OK
