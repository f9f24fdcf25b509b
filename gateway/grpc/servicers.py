"""gRPC servicers: validate, convert, delegate, convert back. Nothing else."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, ClassVar, TypeVar

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import DecodeError, Message
from google.protobuf.message_factory import GetMessageClass

from omnistock.availability.answer import (
    SkuAvailability,
    channel_availability,
    network_availability,
    promisable_at,
)
from omnistock.availability.network import Channel, Network
from omnistock.availability.pickup import find_pickup_stores
from omnistock.availability.positions import PositionView
from omnistock.availability.view import NetworkView
from omnistock.gateway.grpc.answer_cache import AnswerCache
from omnistock.gateway.grpc.convert import (
    NODE_TYPES,
    STATUSES,
    STOCK_STATES,
    Limits,
    adjustments_problems,
    availability_to_proto,
    channel_id_from_proto,
    channels_from_proto,
    close_lines_from_proto,
    date_query_from_proto,
    extend_from_proto,
    groups_from_proto,
    ids_from_proto,
    levels_from_columns,
    levels_from_proto,
    line_sourcing_to_proto,
    network_to_proto,
    node_to_proto,
    nodes_from_proto,
    pickup_query_from_proto,
    pickup_store_to_proto,
    position_to_proto,
    purchase_limits_from_proto,
    reassign_from_proto,
    reservation_id_from_proto,
    reservation_to_proto,
    reserve_from_proto,
    return_from_proto,
    skus_from_proto,
    supplies_from_proto,
    to_timestamp,
)
from omnistock.gateway.grpc.feed_hub import WatchHub
from omnistock.gateway.grpc.guard import current_caller
from omnistock.gateway.grpc.load_batches import LoadBatches
from omnistock.gateway.grpc.network_store import NETWORK_KINDS, NetworkStore
from omnistock.gateway.grpc.statuses import UndecodableRequest, to_status
from omnistock.gateway.metrics import Metrics
from omnistock.gateway.transport.router import ShardRouter
from omnistock.gateway.usecases.checkout import Checkout
from omnistock.gateway.usecases.reservations import ReservationCoordinator
from omnistock.gateway.usecases.stock import Stock
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
from omnistock.reservations.domain.commands import (
    AdjustOutcome,
    AdjustStock,
)
from omnistock.reservations.domain.commands import ExpectSupply as ExpectSupplyCommand
from omnistock.reservations.domain.errors import (
    AlreadyExists,
    CannotSource,
    InsufficientStock,
    NotFound,
    PermissionDenied,
    PurchaseLimitExceeded,
)
from omnistock.reservations.domain.model import LevelColumns

log = logging.getLogger(__name__)

T = TypeVar("T")
Handler = Callable[..., Awaitable[T]]

MAX_WATCHED_SKUS = 10_000
MAX_DISAGREEMENTS_LISTED = 1_000
UNSPECIFIED = common_pb2.STOCK_STATUS_UNSPECIFIED

ADJUSTMENT_OUTCOMES = {
    AdjustOutcome.APPLIED: inventory_pb2.ADJUSTMENT_OUTCOME_APPLIED,
    AdjustOutcome.REPLAYED: inventory_pb2.ADJUSTMENT_OUTCOME_REPLAYED,
    AdjustOutcome.REFUSED_NEGATIVE: inventory_pb2.ADJUSTMENT_OUTCOME_REFUSED_NEGATIVE,
    AdjustOutcome.CONFLICT: inventory_pb2.ADJUSTMENT_OUTCOME_CONFLICT,
    AdjustOutcome.UNKNOWN_SUPPLY: inventory_pb2.ADJUSTMENT_OUTCOME_UNKNOWN_SUPPLY,
}


async def end_call(
    metrics: Metrics,
    method: str,
    context: grpc.aio.ServicerContext,
    started: float,
    error: BaseException | None,
) -> None:
    """Count and time a call that ended; a refusal becomes its gRPC status (raised)."""
    code = "OK"
    try:
        if isinstance(error, asyncio.CancelledError):
            code = "CANCELLED"
        elif isinstance(error, Exception):
            status_code, status = to_status(error)
            code = status_code.name
            await context.abort_with_status(status)  # always raises
    finally:
        metrics.observe_rpc(method, code, time.perf_counter() - started)


class Served:
    """A stream, served (counted, timed, refusals turned into statuses)."""

    __slots__ = ("context", "method", "metrics", "started")

    def __init__(self, metrics: Metrics, method: str, context: grpc.aio.ServicerContext) -> None:
        self.metrics, self.method, self.context = metrics, method, context
        self.started = 0.0

    async def __aenter__(self) -> None:
        self.started = time.perf_counter()

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None, _: Any) -> None:
        await end_call(self.metrics, self.method, self.context, self.started, error)


class Undecodable:
    """What a method taking one request gets for bytes that are not its request message
    (`request_decoder`): `rpc` (or the stream's handler) refuses it with INVALID_ARGUMENT.
    Reading any field of it raises that refusal too, so no handler can take it for a request."""

    __slots__ = ("refusal",)

    def __init__(self, refusal: UndecodableRequest) -> None:
        self.refusal = refusal

    def __getattr__(self, name: str) -> Any:
        raise self.refusal


def request_decoder(method: str, message: type[Message], streamed: bool) -> Callable[[bytes], Any]:
    """`message.FromString` for `method`'s requests, where bytes that are not such a message
    become a refusal (a deserializer that raises makes grpc answer UNKNOWN and log a
    traceback): raised into the handler's iteration for a stream of requests, an
    `Undecodable` in the request's place for one request. One warning line a refusal."""
    parse = message.FromString
    name = message.DESCRIPTOR.full_name

    def decode(data: bytes) -> Any:
        try:
            return parse(data)
        except DecodeError:
            log.warning("refused %d bytes sent to %s: not a valid %s message", len(data), method, name)
            refusal = UndecodableRequest(method, name, len(data))
            if streamed:
                raise refusal from None
            return Undecodable(refusal)

    return decode


METHOD_HANDLERS = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}
"""By (request streamed, response streamed)."""


def add_service(servicer: Any, server: grpc.aio.Server, service: ServiceDescriptor | None = None) -> None:
    """What the generated add_*Servicer_to_server does, for every method of the servicer's
    `SERVICE` (or `service`), with request deserializers that refuse undecodable bytes
    (`request_decoder`) and the response serializers of `RESPONSE_SERIALIZERS`.

    Only as a generic handler: gRPC's asyncio server keeps a pending request per registered
    method and waits on all of them for every call it takes, so each method registered makes
    every call dearer (a profile found that wait a tenth of the gateway's time with every
    method registered); a generic handler is found by one lookup in its dict."""
    service = service or servicer.SERVICE
    handlers = {}
    for method in service.methods:
        path = f"/{service.full_name}/{method.name}"
        streamed = method.client_streaming
        handlers[method.name] = METHOD_HANDLERS[streamed, method.server_streaming](
            getattr(servicer, method.name),
            request_deserializer=request_decoder(path, GetMessageClass(method.input_type), streamed),
            response_serializer=RESPONSE_SERIALIZERS.get(path)
            or GetMessageClass(method.output_type).SerializeToString,
        )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))


def rpc(method: str) -> Callable[[Handler[T]], Handler[T]]:
    """A unary handler, served (counted, timed, refusals turned into statuses). Not through
    Served: it wraps every call, and an async context manager costs two more coroutines a
    call, so an answered call is counted here and only a refused one awaits `end_call`."""

    def decorate(handler: Handler[T]) -> Handler[T]:
        @functools.wraps(handler)
        async def wrapper(self: Servicer, request: Any, context: grpc.aio.ServicerContext) -> T:
            started = time.perf_counter()
            try:
                try:
                    if request.__class__ is Undecodable:
                        raise request.refusal
                    answer = await handler(self, request, context)
                except NotFound as error:
                    # Another gateway may have just added that node, group or channel: if
                    # the network in hand changed since the call started (now, or taken
                    # meanwhile), ask once more. A refusal for an unknown part of the network
                    # comes before any change, so a unary call is safe to run again.
                    if not (
                        error.kind in NETWORK_KINDS
                        and not hasattr(request, "__aiter__")
                        and await self.network.refreshed_since(started)
                    ):
                        raise
                    answer = await handler(self, request, context)
            except BaseException as error:
                await end_call(self.metrics, method, context, started, error)
                raise
            self.metrics.observe_rpc(method, "OK", time.perf_counter() - started)
            return answer

        return wrapper

    return decorate


def bound_channel(channel_id: str, what: str = "channel_id") -> None:
    """Refuse a channel the caller's key is not bound to (a key bound to none sees them all)."""
    caller = current_caller()
    if caller.channels and channel_id not in caller.channels:
        bound = ", ".join(sorted(caller.channels))
        if what != "channel_id":
            subject = f"{what} is held through channel {channel_id!r}"
        elif channel_id:
            subject = f"channel_id {channel_id!r}"
        else:
            subject = "channel_id: none named"
        raise PermissionDenied(f"{subject}; {caller.label} is bound to channel(s) {bound} only")


class Servicer:
    SERVICE: ClassVar[ServiceDescriptor]
    """The service it serves (`add_service`)."""

    def __init__(self, network: NetworkStore, limits: Limits, metrics: Metrics) -> None:
        self.network = network
        self.limits = limits
        self.metrics = metrics


class InventoryServicer(Servicer, inventory_pb2_grpc.InventoryServiceServicer):
    SERVICE = inventory_pb2.DESCRIPTOR.services_by_name["InventoryService"]

    def __init__(
        self, network: NetworkStore, limits: Limits, metrics: Metrics, stock: Stock, router: ShardRouter
    ) -> None:
        super().__init__(network, limits, metrics)
        self.stock = stock
        self.router = router

    @rpc("PutNodes")
    async def PutNodes(
        self, request: inventory_pb2.PutNodesRequest, context: grpc.aio.ServicerContext
    ) -> inventory_pb2.PutNodesResponse:
        nodes = nodes_from_proto(request.nodes, self.limits)
        known = self.network.network.nodes
        created = sum(1 for node in nodes if node.node_id not in known)
        await self.network.change(nodes=nodes, by=current_caller().label)
        return inventory_pb2.PutNodesResponse(created=created, updated=len(nodes) - created)

    @rpc("ListNodes")
    async def ListNodes(
        self, request: inventory_pb2.ListNodesRequest, context: grpc.aio.ServicerContext
    ) -> inventory_pb2.ListNodesResponse:
        node_type = NODE_TYPES.get(request.type)
        nodes = sorted(self.network.network.nodes.items())
        return inventory_pb2.ListNodesResponse(
            nodes=[node_to_proto(n) for _, n in nodes if node_type is None or n.type is node_type]
        )

    @rpc("SetStock")
    async def SetStock(
        self, request: inventory_pb2.SetStockRequest, context: grpc.aio.ServicerContext
    ) -> inventory_pb2.SetStockResponse:
        levels = levels_from_proto(request.levels, self.limits, time.time())
        applied, stale = await self.stock.set_levels(levels, current_caller().label)
        return inventory_pb2.SetStockResponse(applied=applied, stale=stale)

    @rpc("AdjustStock")
    async def AdjustStock(
        self, request: inventory_pb2.AdjustStockRequest, context: grpc.aio.ServicerContext
    ) -> inventory_pb2.AdjustStockResponse:
        adjustments = request.adjustments
        adjustments_problems(adjustments, self.limits)
        partition = self.stock.partition
        by = current_caller().label
        results = await self.stock.adjust(
            [
                AdjustStock(
                    partition(a.sku),
                    a.adjustment_id,
                    a.sku,
                    a.node_id,
                    a.delta,
                    a.reason,
                    STOCK_STATES[a.state],
                    a.supply_id,
                    by,
                )
                for a in adjustments
            ]
        )
        response = inventory_pb2.AdjustStockResponse()
        for adjustment, (result, available) in zip(adjustments, results, strict=True):
            response.results.add(
                adjustment_id=adjustment.adjustment_id,
                outcome=ADJUSTMENT_OUTCOMES[result.outcome],
                position=position_to_proto(result.position, available),
            )
        return response

    @rpc("LoadStock")
    async def LoadStock(
        self,
        request_iterator: AsyncIterator[inventory_pb2.LoadStockRequest],
        context: grpc.aio.ServicerContext,
    ) -> inventory_pb2.LoadStockResponse:
        batches = LoadBatches(functools.partial(self.stock.set_levels, by=current_caller().label))
        try:
            async for chunk in request_iterator:
                now, limits = time.time(), self.limits
                if chunk.HasField("columns"):
                    levels = levels_from_columns(chunk.columns, limits, now, len(chunk.levels))
                    if chunk.levels:
                        levels = LevelColumns.join([levels_from_proto(chunk.levels, limits, now), levels])
                else:
                    levels = levels_from_proto(chunk.levels, limits, now)
                await batches.add(levels)
            await batches.finish()
        finally:
            batches.cancel()
        return inventory_pb2.LoadStockResponse(
            received=batches.received, applied=batches.applied, stale=batches.stale
        )

    @rpc("ExpectSupply")
    async def ExpectSupply(
        self, request: inventory_pb2.ExpectSupplyRequest, context: grpc.aio.ServicerContext
    ) -> inventory_pb2.ExpectSupplyResponse:
        supplies = supplies_from_proto(request.supplies, self.limits, time.time())
        partition, by = self.stock.partition, current_caller().label
        applied = await self.stock.expect_supply(
            [
                ExpectSupplyCommand(partition(sku), supply_id, sku, node_id, quantity, expected_at, by)
                for supply_id, sku, node_id, quantity, expected_at in supplies
            ]
        )
        return inventory_pb2.ExpectSupplyResponse(applied=applied)

    @rpc("CheckConservation")
    async def CheckConservation(
        self, request: inventory_pb2.CheckConservationRequest, context: grpc.aio.ServicerContext
    ) -> inventory_pb2.CheckConservationResponse:
        router = self.router
        problems, audit = await asyncio.gather(router.check(), router.audit())
        self.metrics.observe_audit(audit)
        return inventory_pb2.CheckConservationResponse(
            ok=not problems and not audit.disagreements,
            problems=problems,
            shards_checked=len(router.handles),
            disagreements=[
                inventory_pb2.ReservationDisagreement(reservation_id=d.reservation_id, problem=d.problem)
                for d in audit.disagreements[:MAX_DISAGREEMENTS_LISTED]
            ],
            disagreement_count=len(audit.disagreements),
            reservations_checked=audit.reservations,
            reservations_in_doubt=audit.in_doubt,
        )


class AvailabilityServicer(Servicer, availability_pb2_grpc.AvailabilityServiceServicer):
    SERVICE = availability_pb2.DESCRIPTOR.services_by_name["AvailabilityService"]

    def __init__(
        self,
        network: NetworkStore,
        limits: Limits,
        metrics: Metrics,
        stock: Stock,
        view: NetworkView,
        watch: WatchHub,
        answers: AnswerCache,
    ) -> None:
        super().__init__(network, limits, metrics)
        self.stock = stock
        self.view = view
        self.watch = watch
        self.answers = answers

    @rpc("GetAvailability")
    async def GetAvailability(
        self, request: availability_pb2.GetAvailabilityRequest, context: grpc.aio.ServicerContext
    ) -> availability_pb2.GetAvailabilityResponse | bytes:
        """From the view, answers that do not depend on the clock come from the answer cache
        as serialized fragments, joined (see gateway/grpc/answer_cache.py); the method's serializer
        passes bytes through (`RESPONSE_SERIALIZERS`)."""
        bound_channel(request.channel_id)
        if request.consistent or request.quantity or request.HasField("by_date"):
            return await self._availability_by_request(request)
        skus, limits, view = request.skus, self.limits, self.view
        if not 1 <= len(skus) <= limits.max_skus:
            skus_from_proto(skus, limits)  # raises, naming the problem
        store, cache = self.network, self.answers
        key, stamp, network = (request.channel_id, request.include_nodes), view.stamp, store.network
        channel: Channel | None = None
        checked = False
        parts = []
        for sku in skus:
            part = cache.get(sku, key, stamp(sku), network)
            if part is None:
                # A cached answer was made for a well-formed SKU and a channel of this very
                # network (the entry holds the network's number), so checks wait for a miss.
                if not checked:
                    skus_from_proto(skus, limits)
                    channel_id_from_proto(request.channel_id, limits)
                    channel = store.channel(request.channel_id) if request.channel_id else None
                    checked = True
                found = self._availability(sku, view.positions(sku), network, channel)
                part = cache.put(
                    sku, key, stamp(sku), network, availability_to_proto(found, request.include_nodes)
                )
            parts.append(part)
        parts.append(cache.response_tail(view.as_of, view.version))
        return b"".join(parts)

    async def _availability_by_request(
        self, request: availability_pb2.GetAvailabilityRequest
    ) -> availability_pb2.GetAvailabilityResponse:
        """Answers that depend on the clock (a date or quantity asked) or on a fresh read."""
        skus = skus_from_proto(request.skus, self.limits)
        by_date, quantity = date_query_from_proto(request, self.limits)
        store = self.network
        channel = store.channel(request.channel_id) if request.channel_id else None
        network = store.network

        def answer(sku: str, positions: list[PositionView]) -> availability_pb2.SkuAvailability:
            found = self._availability(sku, positions, network, channel)
            return availability_to_proto(found, request.include_nodes, by_date, quantity, time.time())

        if request.consistent:
            read_at = time.time()
            read = await self.stock.positions(skus)
            return availability_pb2.GetAvailabilityResponse(
                skus=[answer(sku, read[sku]) for sku in skus],
                as_of=to_timestamp(read_at),
                consistent=True,
            )
        view = self.view
        return availability_pb2.GetAvailabilityResponse(
            skus=[answer(sku, view.positions(sku)) for sku in skus],
            as_of=to_timestamp(view.as_of),
            version=view.version,
        )

    @staticmethod
    def _availability(
        sku: str, positions: list[PositionView], network: Network, channel: Channel | None
    ) -> SkuAvailability:
        if channel:
            return channel_availability(sku, positions, network, channel)
        return network_availability(sku, positions, network)

    @rpc("FindPickupStores")
    async def FindPickupStores(
        self, request: availability_pb2.FindPickupStoresRequest, context: grpc.aio.ServicerContext
    ) -> availability_pb2.FindPickupStoresResponse:
        query = pickup_query_from_proto(request, self.limits)
        bound_channel(query.channel_id)
        store = self.network
        network = store.network
        channel = store.channel(query.channel_id) if query.channel_id else None
        latitude, longitude = query.latitude, query.longitude
        if query.store_id:
            store.require([query.store_id])
            origin = network.nodes[query.store_id]
            latitude, longitude = origin.latitude, origin.longitude
        view = self.view
        complete, partial = find_pickup_stores(
            query.basket,
            latitude,
            longitude,
            query.radius_km,
            network,
            lambda sku, node: promisable_at(view.position(sku, node.node_id), network, channel),
            eligible=network.eligible(channel.channel_id) if channel else None,
            limit=query.limit,
        )
        return availability_pb2.FindPickupStoresResponse(
            complete=[pickup_store_to_proto(s) for s in complete],
            partial=[pickup_store_to_proto(s) for s in partial],
            as_of=to_timestamp(view.as_of),
            version=view.version,
        )

    async def WatchAvailability(
        self, request: availability_pb2.WatchAvailabilityRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[availability_pb2.WatchAvailabilityResponse]:
        """A stream: Served wraps the whole of it."""
        async with Served(self.metrics, "WatchAvailability", context):
            if request.__class__ is Undecodable:
                raise request.refusal
            skus = skus_from_proto(request.skus, self.limits, most=MAX_WATCHED_SKUS, least=0)
            channel_id_from_proto(request.channel_id, self.limits)
            bound_channel(request.channel_id)
            store = self.network
            channel = store.channel(request.channel_id) if request.channel_id else None
            view = self.view

            def answer(sku: str) -> SkuAvailability:
                network = store.network
                positions = view.positions(sku)
                if channel is None:
                    return network_availability(sku, positions, network)
                # The channel as it is now: rule changes apply to open streams too.
                return channel_availability(sku, positions, network, store.channel(channel.channel_id))

            watched = frozenset(skus) if skus else None
            self.metrics.watchers.inc()
            try:
                async for version, catch_up, rows in self.watch.watch(watched, request.from_version, answer):
                    yield availability_pb2.WatchAvailabilityResponse(
                        version=version,
                        as_of=to_timestamp(view.as_of),
                        catch_up=catch_up,
                        changes=[
                            availability_pb2.AvailabilityChange(
                                sku=row.sku,
                                available=row.available,
                                status=STATUSES[row.status] if row.status else UNSPECIFIED,
                                previous_status=STATUSES[previous] if previous else UNSPECIFIED,
                            )
                            for row, previous in rows
                        ],
                    )
            finally:
                self.metrics.watchers.dec()


def serialize_availability(response: availability_pb2.GetAvailabilityResponse | bytes) -> bytes:
    """GetAvailability's response serializer: a response joined from cached fragments is
    already bytes."""
    return response if isinstance(response, bytes) else response.SerializeToString()


RESPONSE_SERIALIZERS: dict[str, Callable[[Any], bytes]] = {
    "/omnistock.v1.AvailabilityService/GetAvailability": serialize_availability,
}
"""Response serializers other than the message's own, by method path."""


class ReservationServicer(Servicer, reservation_pb2_grpc.ReservationServiceServicer):
    SERVICE = reservation_pb2.DESCRIPTOR.services_by_name["ReservationService"]

    def __init__(
        self,
        network: NetworkStore,
        limits: Limits,
        metrics: Metrics,
        checkout: Checkout,
        coordinator: ReservationCoordinator,
    ) -> None:
        super().__init__(network, limits, metrics)
        self.checkout = checkout
        self.coordinator = coordinator

    def _count(self, outcome: str) -> None:
        self.metrics.count_reservation(outcome)

    async def _bound_reservation(self, reservation_id: str) -> None:
        """Refuse a change to a reservation held through a channel the caller's key is not
        bound to (one read of the reservation, for channel-bound keys only)."""
        if current_caller().channels:
            view = await self.coordinator.get(reservation_id)
            bound_channel(view.channel, what=f"reservation {reservation_id!r}")

    @rpc("Reserve")
    async def Reserve(
        self, request: reservation_pb2.ReserveRequest, context: grpc.aio.ServicerContext
    ) -> reservation_pb2.ReserveResponse:
        reservation_id, lines, ttl, destination = reserve_from_proto(request, self.limits)
        if request.customer_id:
            reservation_id_from_proto(request.customer_id, self.limits, field="customer_id")
        bound_channel(request.channel_id)
        if (problem := current_caller().customer_problem(request.customer_id)) is not None:
            raise PermissionDenied(f"customer_id: {problem}")
        try:
            view, replayed = await self.checkout.reserve(
                reservation_id,
                lines,
                ttl,
                request.channel_id,
                request.customer_id,
                destination,
                current_caller().label,
            )
        except CannotSource:
            self._count("refused_sourcing")
            raise
        except InsufficientStock:
            self._count("refused_short")
            raise
        except AlreadyExists:
            self._count("conflict")
            raise
        except PurchaseLimitExceeded:
            self._count("refused_limit")
            raise
        self._count("replayed" if replayed else "held")
        response = reservation_pb2.ReserveResponse(replayed=replayed)
        reservation_to_proto(view, response.reservation)
        return response

    @rpc("Reassign")
    async def Reassign(
        self, request: reservation_pb2.ReassignRequest, context: grpc.aio.ServicerContext
    ) -> reservation_pb2.ReassignResponse:
        reassign_from_proto(request, self.limits)
        await self._bound_reservation(reservation_id_from_proto(request.reservation_id, self.limits))
        view, replayed, sourcing = await self.checkout.reassign(
            request.reservation_id,
            request.reassignment_id,
            request.sku,
            request.from_node_id,
            request.to_node_id,
            current_caller().label,
        )
        if not replayed:
            self._count("reassigned")
        response = reservation_pb2.ReassignResponse(reservation=reservation_to_proto(view), replayed=replayed)
        if sourcing is not None:
            response.sourcing.CopyFrom(line_sourcing_to_proto(sourcing))
        return response

    @rpc("Confirm")
    async def Confirm(
        self, request: reservation_pb2.ConfirmRequest, context: grpc.aio.ServicerContext
    ) -> reservation_pb2.ConfirmResponse:
        reservation_id = reservation_id_from_proto(request.reservation_id, self.limits)
        await self._bound_reservation(reservation_id)
        view, replayed = await self.coordinator.confirm(reservation_id, current_caller().label)
        if not replayed:
            self._count("confirmed")
        response = reservation_pb2.ConfirmResponse(replayed=replayed)
        reservation_to_proto(view, response.reservation)
        return response

    @rpc("Release")
    async def Release(
        self, request: reservation_pb2.ReleaseRequest, context: grpc.aio.ServicerContext
    ) -> reservation_pb2.ReleaseResponse:
        reservation_id = reservation_id_from_proto(request.reservation_id, self.limits)
        await self._bound_reservation(reservation_id)
        view, replayed = await self.coordinator.release(reservation_id, current_caller().label)
        if not replayed:
            self._count("released")
        response = reservation_pb2.ReleaseResponse(replayed=replayed)
        reservation_to_proto(view, response.reservation)
        return response

    @rpc("Extend")
    async def Extend(
        self, request: reservation_pb2.ExtendRequest, context: grpc.aio.ServicerContext
    ) -> reservation_pb2.ExtendResponse:
        reservation_id, ttl = extend_from_proto(request, self.limits)
        await self._bound_reservation(reservation_id)
        view = await self.coordinator.extend(reservation_id, ttl, current_caller().label)
        self._count("extended")
        return reservation_pb2.ExtendResponse(reservation=reservation_to_proto(view))

    @rpc("Fulfil")
    async def Fulfil(
        self, request: reservation_pb2.FulfilRequest, context: grpc.aio.ServicerContext
    ) -> reservation_pb2.FulfilResponse:
        lines = close_lines_from_proto(
            request.reservation_id, request.fulfilment_id, "fulfilment_id", request.lines, self.limits
        )
        await self._bound_reservation(request.reservation_id)
        view, replayed = await self.coordinator.close_lines(
            request.reservation_id, request.fulfilment_id, "fulfilled", lines, current_caller().label
        )
        if not replayed:
            self._count("fulfilled")
        return reservation_pb2.FulfilResponse(reservation=reservation_to_proto(view), replayed=replayed)

    @rpc("CancelLines")
    async def CancelLines(
        self, request: reservation_pb2.CancelLinesRequest, context: grpc.aio.ServicerContext
    ) -> reservation_pb2.CancelLinesResponse:
        lines = close_lines_from_proto(
            request.reservation_id,
            request.cancellation_id,
            "cancellation_id",
            request.lines,
            self.limits,
        )
        await self._bound_reservation(request.reservation_id)
        view, replayed = await self.coordinator.close_lines(
            request.reservation_id, request.cancellation_id, "cancelled", lines, current_caller().label
        )
        if not replayed:
            self._count("lines_cancelled")
        return reservation_pb2.CancelLinesResponse(reservation=reservation_to_proto(view), replayed=replayed)

    @rpc("Return")
    async def Return(
        self, request: reservation_pb2.ReturnRequest, context: grpc.aio.ServicerContext
    ) -> reservation_pb2.ReturnResponse:
        returned, node_id = return_from_proto(request, self.limits)
        self.network.require([node_id])
        await self._bound_reservation(request.reservation_id)
        view, replayed = await self.coordinator.return_units(
            request.reservation_id,
            request.return_id,
            returned,
            node_id,
            sellable=not request.damaged,
            by=current_caller().label,
        )
        if not replayed:
            self._count("returned")
        return reservation_pb2.ReturnResponse(reservation=reservation_to_proto(view), replayed=replayed)

    @rpc("GetReservation")
    async def GetReservation(
        self, request: reservation_pb2.GetReservationRequest, context: grpc.aio.ServicerContext
    ) -> reservation_pb2.GetReservationResponse:
        reservation_id = reservation_id_from_proto(request.reservation_id, self.limits)
        view = await self.coordinator.get(reservation_id)
        bound_channel(view.channel, what=f"reservation {reservation_id!r}")
        return reservation_pb2.GetReservationResponse(reservation=reservation_to_proto(view))


class NetworkServicer(Servicer, network_pb2_grpc.NetworkServiceServicer):
    """Groups and channels as data, changed at runtime and effective at once."""

    SERVICE = network_pb2.DESCRIPTOR.services_by_name["NetworkService"]

    def __init__(self, network: NetworkStore, limits: Limits, metrics: Metrics, watch: WatchHub) -> None:
        super().__init__(network, limits, metrics)
        self.watch = watch

    @rpc("GetNetwork")
    async def GetNetwork(
        self, request: network_pb2.GetNetworkRequest, context: grpc.aio.ServicerContext
    ) -> network_pb2.GetNetworkResponse:
        return network_pb2.GetNetworkResponse(network=network_to_proto(await self.network.latest()))

    @rpc("PutGroups")
    async def PutGroups(
        self, request: network_pb2.PutGroupsRequest, context: grpc.aio.ServicerContext
    ) -> network_pb2.PutGroupsResponse:
        groups = groups_from_proto(request.groups, self.limits)
        network = await self._changed(self.network.change(groups=groups, by=current_caller().label))
        return network_pb2.PutGroupsResponse(network=network)

    @rpc("DeleteGroups")
    async def DeleteGroups(
        self, request: network_pb2.DeleteGroupsRequest, context: grpc.aio.ServicerContext
    ) -> network_pb2.DeleteGroupsResponse:
        network = await self._changed(
            self.network.change(
                drop_groups=ids_from_proto(request.group_ids, "group_ids", self.limits),
                by=current_caller().label,
            )
        )
        return network_pb2.DeleteGroupsResponse(network=network)

    @rpc("PutChannels")
    async def PutChannels(
        self, request: network_pb2.PutChannelsRequest, context: grpc.aio.ServicerContext
    ) -> network_pb2.PutChannelsResponse:
        channels = channels_from_proto(request.channels, self.limits)
        network = await self._changed(self.network.change(channels=channels, by=current_caller().label))
        return network_pb2.PutChannelsResponse(network=network)

    @rpc("DeleteChannels")
    async def DeleteChannels(
        self, request: network_pb2.DeleteChannelsRequest, context: grpc.aio.ServicerContext
    ) -> network_pb2.DeleteChannelsResponse:
        network = await self._changed(
            self.network.change(
                drop_channels=ids_from_proto(request.channel_ids, "channel_ids", self.limits),
                by=current_caller().label,
            )
        )
        return network_pb2.DeleteChannelsResponse(network=network)

    @rpc("PutPurchaseLimits")
    async def PutPurchaseLimits(
        self, request: network_pb2.PutPurchaseLimitsRequest, context: grpc.aio.ServicerContext
    ) -> network_pb2.PutPurchaseLimitsResponse:
        limits = purchase_limits_from_proto(request.limits, self.limits)
        network = await self._changed(self.network.change(purchase_limits=limits, by=current_caller().label))
        return network_pb2.PutPurchaseLimitsResponse(network=network)

    async def _changed(self, change: Awaitable[Network]) -> network_pb2.NetworkConfig:
        """Apply a change, then let open feeds recompute under the new rules."""
        network = await change
        self.watch.rules_changed()
        return network_to_proto(network)
