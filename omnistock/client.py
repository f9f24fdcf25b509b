"""A small async Python client of omnistock, used by the CLI, the tests and the load tests."""

from __future__ import annotations

import itertools
import math
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from omnistock.protos.gen.omnistock.v1 import (
    availability_pb2,
    availability_pb2_grpc,
    common_pb2,
    inventory_pb2,
    inventory_pb2_grpc,
    network_pb2,
    network_pb2_grpc,
    reservation_pb2,
    reservation_pb2_grpc,
)

DEFAULT_TARGET = "127.0.0.1:50051"


@dataclass
class OmnistockRpcError(Exception):
    """A refused call with its parsed details."""

    code: grpc.StatusCode
    message: str
    field_violations: list[tuple[str, str]] = field(default_factory=list)
    short_lines: list[common_pb2.ShortLine] = field(default_factory=list)
    quota_violations: list[tuple[str, str]] = field(default_factory=list)
    """(subject, description) of each purchase limit a reserve would exceed."""
    reservation: reservation_pb2.Reservation | None = None
    sourcing: list[reservation_pb2.LineSourcing] = field(default_factory=list)
    """Why a sourced Reserve could not fill its lines, line by line."""
    precondition_violations: list[tuple[str, str, str]] = field(default_factory=list)
    """(type, subject, description) of each failed precondition."""

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"

    @classmethod
    def from_grpc(cls, error: grpc.aio.AioRpcError) -> OmnistockRpcError:
        parsed = cls(error.code(), error.details() or "")
        status = rpc_status.from_call(error)
        for detail in status.details if status else []:
            if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                parsed.field_violations = [(v.field, v.description) for v in bad.field_violations]
            elif detail.Is(error_details_pb2.QuotaFailure.DESCRIPTOR):
                quota = error_details_pb2.QuotaFailure()
                detail.Unpack(quota)
                parsed.quota_violations = [(v.subject, v.description) for v in quota.violations]
            elif detail.Is(common_pb2.InsufficientStock.DESCRIPTOR):
                short = common_pb2.InsufficientStock()
                detail.Unpack(short)
                parsed.short_lines = list(short.lines)
            elif detail.Is(reservation_pb2.Reservation.DESCRIPTOR):
                reservation = reservation_pb2.Reservation()
                detail.Unpack(reservation)
                parsed.reservation = reservation
            elif detail.Is(reservation_pb2.LineSourcing.DESCRIPTOR):
                why = reservation_pb2.LineSourcing()
                detail.Unpack(why)
                parsed.sourcing.append(why)
            elif detail.Is(error_details_pb2.PreconditionFailure.DESCRIPTOR):
                failure = error_details_pb2.PreconditionFailure()
                detail.Unpack(failure)
                parsed.precondition_violations = [
                    (v.type, v.subject, v.description) for v in failure.violations
                ]
        return parsed


def line(sku: str, node_id: str, quantity: int) -> reservation_pb2.ReservationLine:
    return reservation_pb2.ReservationLine(sku=sku, node_id=node_id, quantity=quantity)


def to_timestamp(moment: float | datetime) -> Timestamp:
    """Seconds since the epoch, or an aware datetime (a naive one is local time), as a Timestamp."""
    seconds = moment.timestamp() if isinstance(moment, datetime) else moment
    whole = math.floor(seconds)
    nanos = round((seconds - whole) * 1e9)  # exact to the float's precision, not 1e9 times coarser
    if nanos >= 1_000_000_000:
        whole, nanos = whole + 1, nanos - 1_000_000_000
    return Timestamp(seconds=whole, nanos=nanos)


def basket_item(sku: str, quantity: int = 1) -> availability_pb2.BasketItem:
    """One item of a pickup basket."""
    return availability_pb2.BasketItem(sku=sku, quantity=quantity)


def supply(
    supply_id: str, sku: str, node_id: str, quantity: int, expected_at: float | datetime
) -> inventory_pb2.InboundSupply:
    """One expected supply line (a purchase order or transfer line); quantity 0 clears it."""
    return inventory_pb2.InboundSupply(
        supply_id=supply_id,
        sku=sku,
        node_id=node_id,
        quantity=quantity,
        expected_at=to_timestamp(expected_at),
    )


def level(
    sku: str,
    node_id: str,
    on_hand: int,
    as_of: float | None = None,
    damaged: int = 0,
    quality_hold: int = 0,
) -> inventory_pb2.StockLevel:
    """An absolute count; `damaged` and `quality_hold` are parts of `on_hand` that are not sellable."""
    message = inventory_pb2.StockLevel(
        sku=sku, node_id=node_id, on_hand=on_hand, damaged=damaged, quality_hold=quality_hold
    )
    if as_of is not None:
        message.as_of.CopyFrom(to_timestamp(as_of))
    return message


async def load_stock_requests(
    levels: Iterable[inventory_pb2.StockLevel], chunk_size: int = 5_000
) -> AsyncIterator[inventory_pb2.LoadStockRequest]:
    """The LoadStock request stream: `levels` in chunks of `chunk_size`, read lazily."""
    chunk: list[inventory_pb2.StockLevel] = []
    for item in levels:
        chunk.append(item)
        if len(chunk) >= chunk_size:
            yield inventory_pb2.LoadStockRequest(levels=chunk)
            chunk = []
    if chunk:
        yield inventory_pb2.LoadStockRequest(levels=chunk)


async def load_stock_column_requests(
    levels: Iterable[tuple[str, str, int]], chunk_size: int = 10_000
) -> AsyncIterator[inventory_pb2.LoadStockRequest]:
    """The LoadStock request stream in columns, for bulk loads: (sku, node_id, on_hand) rows,
    counted at the server's receive time, in chunks of `chunk_size`, read lazily."""
    rows = iter(levels)
    while chunk := list(itertools.islice(rows, chunk_size)):
        skus, node_ids, on_hand = zip(*chunk, strict=True)
        columns = inventory_pb2.StockColumns(sku=skus, node_id=node_ids, on_hand=on_hand)
        yield inventory_pb2.LoadStockRequest(columns=columns)


class OmnistockClient:
    """`async with OmnistockClient(target) as client: await client.reserve(...)`.

    Every method raises OmnistockRpcError on a refused call.
    """

    def __init__(
        self, target: str = DEFAULT_TARGET, timeout: float = 30.0, options: Sequence[tuple[str, Any]] = ()
    ) -> None:
        """`options` are more gRPC channel options, e.g. ("grpc.use_local_subchannel_pool", 1)
        for a connection of its own (channels of one process otherwise share one, and so
        reach one gateway of several)."""
        self.target = target
        self.timeout = timeout
        self.channel = grpc.aio.insecure_channel(
            target,
            options=[
                ("grpc.max_receive_message_length", 8 * 1024 * 1024),
                ("grpc.max_send_message_length", 8 * 1024 * 1024),
                *options,
            ],
        )
        self.inventory = inventory_pb2_grpc.InventoryServiceStub(self.channel)
        self.availability_stub = availability_pb2_grpc.AvailabilityServiceStub(self.channel)
        self.reservations = reservation_pb2_grpc.ReservationServiceStub(self.channel)
        self.network = network_pb2_grpc.NetworkServiceStub(self.channel)

    async def __aenter__(self) -> OmnistockClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.channel.close()

    async def _call(self, method: Any, request: Any) -> Any:
        try:
            return await method(request, timeout=self.timeout)
        except grpc.aio.AioRpcError as error:
            raise OmnistockRpcError.from_grpc(error) from None

    # --- inventory ---

    async def put_nodes(self, nodes: Sequence[common_pb2.Node]) -> inventory_pb2.PutNodesResponse:
        return await self._call(self.inventory.PutNodes, inventory_pb2.PutNodesRequest(nodes=nodes))

    async def list_nodes(
        self, node_type: common_pb2.NodeType = common_pb2.NODE_TYPE_UNSPECIFIED
    ) -> list[common_pb2.Node]:
        response = await self._call(self.inventory.ListNodes, inventory_pb2.ListNodesRequest(type=node_type))
        return list(response.nodes)

    async def set_stock(self, levels: Sequence[inventory_pb2.StockLevel]) -> inventory_pb2.SetStockResponse:
        return await self._call(self.inventory.SetStock, inventory_pb2.SetStockRequest(levels=levels))

    async def adjust_stock(
        self, adjustments: Sequence[inventory_pb2.StockAdjustment]
    ) -> inventory_pb2.AdjustStockResponse:
        request = inventory_pb2.AdjustStockRequest(adjustments=adjustments)
        return await self._call(self.inventory.AdjustStock, request)

    async def adjust(
        self,
        adjustment_id: str,
        sku: str,
        node_id: str,
        delta: int,
        reason: str = "",
        state: common_pb2.StockState = common_pb2.STOCK_STATE_SELLABLE,
        supply_id: str = "",
    ) -> inventory_pb2.AdjustmentResult:
        """One signed delta. `state` DAMAGED or QUALITY_HOLD changes on_hand and that state's count.

        With `supply_id` it is a receipt of that expected supply line (a positive SELLABLE
        delta): the units leave the supply as they go on hand. Outcome UNKNOWN_SUPPLY when
        no such line is expected for the SKU at the node."""
        adjustment = inventory_pb2.StockAdjustment(
            adjustment_id=adjustment_id,
            sku=sku,
            node_id=node_id,
            delta=delta,
            reason=reason,
            state=state,
            supply_id=supply_id,
        )
        response = await self.adjust_stock([adjustment])
        return response.results[0]

    async def load_stock(
        self, levels: Iterable[inventory_pb2.StockLevel], chunk_size: int = 5_000
    ) -> inventory_pb2.LoadStockResponse:
        """Stream levels in chunks; `levels` may be a lazy iterable (a large CSV)."""
        try:
            return await self.inventory.LoadStock(load_stock_requests(levels, chunk_size), timeout=None)
        except grpc.aio.AioRpcError as error:
            raise OmnistockRpcError.from_grpc(error) from None

    async def expect_supply(
        self, supplies: Sequence[inventory_pb2.InboundSupply]
    ) -> inventory_pb2.ExpectSupplyResponse:
        """Create, change or clear (quantity 0) expected supply lines, up to 10,000 per call;
        each (supply_id, sku, node_id) is one line. Build them with `supply(...)`."""
        request = inventory_pb2.ExpectSupplyRequest(supplies=supplies)
        return await self._call(self.inventory.ExpectSupply, request)

    async def check_conservation(self) -> inventory_pb2.CheckConservationResponse:
        request = inventory_pb2.CheckConservationRequest()
        return await self._call(self.inventory.CheckConservation, request)

    # --- availability ---

    async def availability(
        self,
        skus: Sequence[str],
        include_nodes: bool = False,
        channel_id: str = "",
        consistent: bool = False,
        *,
        by_date: float | datetime | None = None,
        quantity: int = 0,
    ) -> availability_pb2.GetAvailabilityResponse:
        """From the gateway's network view (fresh within tens of ms), or with
        `consistent` from the shards (reflects every acknowledged write).

        `by_date` (seconds since the epoch or a datetime) also answers `available_by_date`,
        counting supply expected by then; `quantity` also answers `earliest_date`, the first
        time that many units can be promised (unset when nothing expected reaches it)."""
        request = availability_pb2.GetAvailabilityRequest(
            skus=skus,
            include_nodes=include_nodes,
            channel_id=channel_id,
            consistent=consistent,
            quantity=quantity,
        )
        if by_date is not None:
            request.by_date.CopyFrom(to_timestamp(by_date))
        return await self._call(self.availability_stub.GetAvailability, request)

    async def find_pickup_stores(
        self,
        items: Sequence[availability_pb2.BasketItem],
        *,
        location: tuple[float, float] | None = None,
        store_id: str = "",
        radius_km: float = 0.0,
        channel_id: str = "",
        limit: int = 0,
    ) -> availability_pb2.FindPickupStoresResponse:
        """Pickup stores around `location` (latitude, longitude) or around the store `store_id`
        (give one): `complete` have the whole basket, `partial` some of it, nearest first.
        radius_km 0 means 50 (at most 1000); limit 0 means 10 stores per list (at most 100)."""
        if (location is None) == (not store_id):
            raise ValueError("give either location=(latitude, longitude) or store_id")
        request = availability_pb2.FindPickupStoresRequest(
            items=items, radius_km=radius_km, channel_id=channel_id, limit=limit
        )
        if location is not None:
            request.location.CopyFrom(common_pb2.Location(latitude=location[0], longitude=location[1]))
        else:
            request.store_id = store_id
        return await self._call(self.availability_stub.FindPickupStores, request)

    async def watch_availability(
        self, skus: Sequence[str] = (), channel_id: str = "", from_version: int = 0
    ) -> AsyncIterator[availability_pb2.WatchAvailabilityResponse]:
        """Live availability: first catch-up updates (the current state of every watched SKU, or
        with `from_version` what changed after it), then each change as it happens. Empty `skus`
        watches every SKU (at most 10,000 named). The stream has no deadline; stop iterating (or
        cancel the task) to end it. Pass the last update's `version` as `from_version` to resume."""
        request = availability_pb2.WatchAvailabilityRequest(
            channel_id=channel_id, skus=skus, from_version=from_version
        )
        call = self.availability_stub.WatchAvailability(request, timeout=None)
        try:
            async for update in call:
                yield update
        except grpc.aio.AioRpcError as error:
            raise OmnistockRpcError.from_grpc(error) from None
        finally:
            call.cancel()

    # --- reservations ---

    async def reserve(
        self,
        reservation_id: str,
        lines: Sequence[reservation_pb2.ReservationLine],
        ttl_seconds: int = 0,
        channel_id: str = "",
        customer_id: str = "",
        ship_to: tuple[float, float] | None = None,
        pickup_at: str = "",
    ) -> reservation_pb2.ReserveResponse:
        """Hold lines at their nodes; or, with `ship_to` (latitude, longitude) or `pickup_at`
        (a store id) and lines without node ids, let the channel's rules source them."""
        request = reservation_pb2.ReserveRequest(
            reservation_id=reservation_id,
            lines=lines,
            ttl_seconds=ttl_seconds,
            channel_id=channel_id,
            customer_id=customer_id,
        )
        if ship_to is not None:
            request.destination.address.latitude, request.destination.address.longitude = ship_to
        elif pickup_at:
            request.destination.pickup_node_id = pickup_at
        return await self._call(self.reservations.Reserve, request)

    async def reassign(
        self, reservation_id: str, reassignment_id: str, sku: str, from_node_id: str, to_node_id: str = ""
    ) -> reservation_pb2.ReassignResponse:
        """Move a line's open units to `to_node_id` (empty: sourced by the channel's rules)."""
        request = reservation_pb2.ReassignRequest(
            reservation_id=reservation_id,
            reassignment_id=reassignment_id,
            sku=sku,
            from_node_id=from_node_id,
            to_node_id=to_node_id,
        )
        return await self._call(self.reservations.Reassign, request)

    async def extend(self, reservation_id: str, ttl_seconds: int) -> reservation_pb2.Reservation:
        request = reservation_pb2.ExtendRequest(reservation_id=reservation_id, ttl_seconds=ttl_seconds)
        response = await self._call(self.reservations.Extend, request)
        return response.reservation

    async def fulfil(
        self, reservation_id: str, fulfilment_id: str, lines: Sequence[reservation_pb2.ReservationLine]
    ) -> reservation_pb2.FulfilResponse:
        request = reservation_pb2.FulfilRequest(
            reservation_id=reservation_id, fulfilment_id=fulfilment_id, lines=lines
        )
        return await self._call(self.reservations.Fulfil, request)

    async def cancel_lines(
        self, reservation_id: str, cancellation_id: str, lines: Sequence[reservation_pb2.ReservationLine]
    ) -> reservation_pb2.CancelLinesResponse:
        request = reservation_pb2.CancelLinesRequest(
            reservation_id=reservation_id, cancellation_id=cancellation_id, lines=lines
        )
        return await self._call(self.reservations.CancelLines, request)

    async def return_units(
        self,
        reservation_id: str,
        return_id: str,
        sku: str,
        line_node_id: str,
        node_id: str,
        quantity: int,
        damaged: bool = False,
    ) -> reservation_pb2.ReturnResponse:
        """Fulfilled units of a line come back at `node_id` (any node)."""
        request = reservation_pb2.ReturnRequest(
            reservation_id=reservation_id,
            return_id=return_id,
            sku=sku,
            line_node_id=line_node_id,
            node_id=node_id,
            quantity=quantity,
            damaged=damaged,
        )
        return await self._call(self.reservations.Return, request)

    async def confirm(self, reservation_id: str) -> reservation_pb2.ConfirmResponse:
        request = reservation_pb2.ConfirmRequest(reservation_id=reservation_id)
        return await self._call(self.reservations.Confirm, request)

    async def release(self, reservation_id: str) -> reservation_pb2.ReleaseResponse:
        request = reservation_pb2.ReleaseRequest(reservation_id=reservation_id)
        return await self._call(self.reservations.Release, request)

    async def get_reservation(self, reservation_id: str) -> reservation_pb2.Reservation:
        request = reservation_pb2.GetReservationRequest(reservation_id=reservation_id)
        response = await self._call(self.reservations.GetReservation, request)
        return response.reservation

    # --- network: node groups and channels ---

    async def get_network(self) -> network_pb2.NetworkConfig:
        """Nodes, groups and channels with the network's version."""
        response = await self._call(self.network.GetNetwork, network_pb2.GetNetworkRequest())
        return response.network

    async def put_groups(self, groups: Sequence[network_pb2.NodeGroup]) -> network_pb2.NetworkConfig:
        """Create or replace groups by group_id, all or none; returns the network after the change."""
        response = await self._call(self.network.PutGroups, network_pb2.PutGroupsRequest(groups=groups))
        return response.network

    async def delete_groups(self, group_ids: Sequence[str]) -> network_pb2.NetworkConfig:
        """Refused (INVALID_ARGUMENT) while a channel still sells from one of them."""
        request = network_pb2.DeleteGroupsRequest(group_ids=group_ids)
        response = await self._call(self.network.DeleteGroups, request)
        return response.network

    async def put_channels(self, channels: Sequence[network_pb2.Channel]) -> network_pb2.NetworkConfig:
        """Create or replace whole channel definitions by channel_id, all or none."""
        request = network_pb2.PutChannelsRequest(channels=channels)
        response = await self._call(self.network.PutChannels, request)
        return response.network

    async def delete_channels(self, channel_ids: Sequence[str]) -> network_pb2.NetworkConfig:
        request = network_pb2.DeleteChannelsRequest(channel_ids=channel_ids)
        response = await self._call(self.network.DeleteChannels, request)
        return response.network

    async def put_purchase_limits(self, limits: Mapping[str, int]) -> network_pb2.NetworkConfig:
        """Per-customer limits by SKU; 0 removes a SKU's limit."""
        request = network_pb2.PutPurchaseLimitsRequest(
            limits=[network_pb2.PurchaseLimit(sku=sku, max_per_customer=most) for sku, most in limits.items()]
        )
        response = await self._call(self.network.PutPurchaseLimits, request)
        return response.network
