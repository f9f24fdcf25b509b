"""A small async Python client of omnistock, used by the CLI, the tests and the load tests."""

from __future__ import annotations

import collections
import itertools
import math
import os
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from omnistock.protos.gen.omnistock.v1 import (
    availability_pb2,
    availability_pb2_grpc,
    common_pb2,
    events_pb2,
    events_pb2_grpc,
    inventory_pb2,
    inventory_pb2_grpc,
    keys_pb2,
    keys_pb2_grpc,
    network_pb2,
    network_pb2_grpc,
    reservation_pb2,
    reservation_pb2_grpc,
    shards_pb2,
    shards_pb2_grpc,
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
    retry_delay: float | None = None
    """Seconds the service asks a caller to wait before trying again (RetryInfo), if it said."""

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
            elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                retry = error_details_pb2.RetryInfo()
                detail.Unpack(retry)
                parsed.retry_delay = retry.retry_delay.seconds + retry.retry_delay.nanos / 1e9
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


TLS_CA_ENV = "OMNISTOCK_TLS_CA"
TLS_CERT_ENV = "OMNISTOCK_TLS_CERT"
TLS_KEY_ENV = "OMNISTOCK_TLS_KEY"
API_KEY_ENV = "OMNISTOCK_API_KEY"
API_KEY_FILE_ENV = "OMNISTOCK_API_KEY_FILE"
"""Environment variables a client's credentials may come from (`Credentials.from_env`)."""


def read_api_key(path: str | os.PathLike[str]) -> str:
    """The API key in a file (its first line; blanks around it dropped)."""
    lines = Path(path).read_text(encoding="utf-8").strip().splitlines()
    if not lines:
        raise ValueError(f"{path} holds no API key")
    return lines[0].strip()


@dataclass(frozen=True)
class Credentials:
    """How a client checks the server and shows who it is: TLS (`tls_ca`, the CA that signed
    the server's certificate; a client certificate for mutual TLS) and an API key, sent on
    every call as `authorization: Bearer <key>`. No TLS setting: plain text."""

    tls_ca: Path | None = None
    """PEM CA bundle to check the server's certificate with; TLS is on with it."""
    client_cert: Path | None = None
    """PEM certificate (chain) shown to a server that asks for one (mutual TLS), with client_key."""
    client_key: Path | None = None
    api_key: str | None = field(default=None, repr=False)
    server_name: str | None = None
    """The name to expect in the server's certificate when it is not the target's host."""
    tls: bool = False
    """TLS even without tls_ca: the server's certificate is checked against gRPC's default roots
    (the public CAs it ships, or the file $GRPC_DEFAULT_SSL_ROOTS_FILE_PATH names)."""

    def __post_init__(self) -> None:
        if (self.client_cert is None) != (self.client_key is None):
            missing = "client_key" if self.client_key is None else "client_cert"
            raise ValueError(
                f"a client certificate needs its key and the key its certificate: {missing} is missing"
            )
        if self.api_key is not None and not (
            self.api_key and self.api_key.isascii() and self.api_key.isprintable() and " " not in self.api_key
        ):
            # Never say what the key is: messages end up in logs.
            raise ValueError(
                "the API key is empty or holds characters a key never has (spaces, control characters)"
            )

    @property
    def uses_tls(self) -> bool:
        return self.tls or self.tls_ca is not None or self.client_cert is not None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Credentials:
        """From OMNISTOCK_TLS_CA, OMNISTOCK_TLS_CERT, OMNISTOCK_TLS_KEY and OMNISTOCK_API_KEY (or
        OMNISTOCK_API_KEY_FILE); unset or empty ones are left out."""
        env = os.environ if environ is None else environ

        def path(name: str) -> Path | None:
            return Path(env[name]) if env.get(name) else None

        key = env.get(API_KEY_ENV) or None
        if key is None and env.get(API_KEY_FILE_ENV):
            key = read_api_key(env[API_KEY_FILE_ENV])
        return cls(path(TLS_CA_ENV), path(TLS_CERT_ENV), path(TLS_KEY_ENV), key)

    def env(self) -> dict[str, str]:
        """The environment variables from_env reads back (for a child process: Locust)."""
        values = {
            TLS_CA_ENV: self.tls_ca,
            TLS_CERT_ENV: self.client_cert,
            TLS_KEY_ENV: self.client_key,
            API_KEY_ENV: self.api_key,
        }
        return {name: str(value) for name, value in values.items() if value is not None}

    def channel_credentials(self) -> grpc.ChannelCredentials | None:
        """TLS credentials, the API key riding on them; None for plain text. Reads the files
        (OSError names the one that cannot be read)."""
        if not self.uses_tls:
            return None
        ssl = grpc.ssl_channel_credentials(
            root_certificates=self.tls_ca.read_bytes() if self.tls_ca else None,
            private_key=self.client_key.read_bytes() if self.client_key else None,
            certificate_chain=self.client_cert.read_bytes() if self.client_cert else None,
        )
        if self.api_key is None:
            return ssl
        # gRPC sends call credentials over TLS only: the key never travels in clear text this way.
        return grpc.composite_channel_credentials(ssl, grpc.access_token_call_credentials(self.api_key))

    def _channel_options(self, options: Sequence[tuple[str, Any]]) -> list[tuple[str, Any]]:
        named = [("grpc.ssl_target_name_override", self.server_name)] if self.server_name else []
        return [*options, *named]

    def aio_channel(self, target: str, options: Sequence[tuple[str, Any]] = ()) -> grpc.aio.Channel:
        """An asyncio channel to `target` with these credentials."""
        secure = self.channel_credentials()
        every = self._channel_options(options)
        if secure is not None:
            return grpc.aio.secure_channel(target, secure, every)
        interceptors = bearer_interceptors(self.api_key) if self.api_key is not None else None
        return grpc.aio.insecure_channel(target, every, interceptors=interceptors)

    def channel(self, target: str, options: Sequence[tuple[str, Any]] = ()) -> grpc.Channel:
        """A blocking channel to `target` with these credentials (Locust's users)."""
        secure = self.channel_credentials()
        every = self._channel_options(options)
        if secure is not None:
            return grpc.secure_channel(target, secure, every)
        channel = grpc.insecure_channel(target, every)
        if self.api_key is None:
            return channel
        return grpc.intercept_channel(channel, BlockingBearerKey(self.api_key))


def bearer(api_key: str) -> tuple[str, str]:
    return ("authorization", f"Bearer {api_key}")


class _AddsKey:
    """Adds the API key to a call's metadata (for a plain-text asyncio channel: over TLS the
    channel's call credentials carry it)."""

    def __init__(self, api_key: str) -> None:
        self._pair = bearer(api_key)

    def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*(details.metadata or ()))
        metadata.add(*self._pair)
        return details._replace(metadata=metadata)


class _UnaryUnaryKey(_AddsKey, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)


class _UnaryStreamKey(_AddsKey, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)


class _StreamUnaryKey(_AddsKey, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(self._details(details), requests)


class _StreamStreamKey(_AddsKey, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(self._details(details), requests)


def bearer_interceptors(api_key: str) -> list[grpc.aio.ClientInterceptor]:
    """One interceptor per kind of call: a channel files each under the first kind it is."""
    kinds = (_UnaryUnaryKey, _UnaryStreamKey, _StreamUnaryKey, _StreamStreamKey)
    return [kind(api_key) for kind in kinds]


class _BlockingCallDetails(
    collections.namedtuple(
        "_BlockingCallDetails",
        ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression"),
    ),
    grpc.ClientCallDetails,
):
    pass


class BlockingBearerKey(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds the API key to every call of a plain-text blocking channel (Locust's users)."""

    def __init__(self, api_key: str) -> None:
        self._pair = bearer(api_key)

    def _details(self, details: Any) -> _BlockingCallDetails:
        return _BlockingCallDetails(
            details.method,
            details.timeout,
            [*(details.metadata or ()), self._pair],
            details.credentials,
            getattr(details, "wait_for_ready", None),
            getattr(details, "compression", None),
        )

    def _call(self, continuation: Callable[[Any, Any], Any], details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    intercept_unary_unary = _call
    intercept_unary_stream = _call
    intercept_stream_unary = _call
    intercept_stream_stream = _call


class OmnistockClient:
    """`async with OmnistockClient(target) as client: await client.reserve(...)`.

    Every method raises OmnistockRpcError on a refused call.
    """

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        timeout: float = 30.0,
        options: Sequence[tuple[str, Any]] = (),
        *,
        tls_ca: str | os.PathLike[str] | None = None,
        client_cert: str | os.PathLike[str] | None = None,
        client_key: str | os.PathLike[str] | None = None,
        api_key: str | None = None,
        server_name: str | None = None,
        credentials: Credentials | None = None,
    ) -> None:
        """`options` are more gRPC channel options, e.g. ("grpc.use_local_subchannel_pool", 1)
        for a connection of its own (channels of one process otherwise share one, and so
        reach one gateway of several).

        TLS: `tls_ca` is the PEM file of the CA that signed the server's certificate;
        `client_cert` and `client_key` the PEM files shown to a server that asks for a client
        certificate (mutual TLS); `server_name` the name to expect in the server's certificate
        when it is not the target's host. `api_key` goes with every call as
        `authorization: Bearer <key>`. Or all of it as `credentials`."""
        given = (tls_ca, client_cert, client_key, api_key, server_name)
        if credentials is not None and any(value is not None for value in given):
            raise ValueError(
                "give either credentials or tls_ca, client_cert, client_key, api_key, server_name"
            )
        if credentials is None:
            credentials = Credentials(
                Path(tls_ca) if tls_ca is not None else None,
                Path(client_cert) if client_cert is not None else None,
                Path(client_key) if client_key is not None else None,
                api_key,
                server_name,
            )
        self.target = target
        self.timeout = timeout
        self.credentials = credentials
        self.channel = credentials.aio_channel(
            target,
            [
                ("grpc.max_receive_message_length", 8 * 1024 * 1024),
                ("grpc.max_send_message_length", 8 * 1024 * 1024),
                *options,
            ],
        )
        self.inventory = inventory_pb2_grpc.InventoryServiceStub(self.channel)
        self.availability_stub = availability_pb2_grpc.AvailabilityServiceStub(self.channel)
        self.reservations = reservation_pb2_grpc.ReservationServiceStub(self.channel)
        self.network = network_pb2_grpc.NetworkServiceStub(self.channel)
        self.keys = keys_pb2_grpc.KeyServiceStub(self.channel)
        self.events = events_pb2_grpc.EventServiceStub(self.channel)
        self.shard_service = shards_pb2_grpc.ShardServiceStub(self.channel)

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

    # --- shards (ops:read, ops:admin) ---

    async def shards(self) -> shards_pb2.GetShardsResponse:
        """The shards, the partitions each owns, and any change of their number under way."""
        return await self._call(self.shard_service.GetShards, shards_pb2.GetShardsRequest())

    async def scale_shards(self, shards: int) -> AsyncIterator[shards_pb2.ScaleShardsResponse]:
        """Change the number of shards while the service serves: progress as partitions move,
        ending with a message whose `done` is set. Stopping the iteration does not stop the
        change (the service completes it); asking again for the same count waits for nothing
        and completes one that was cut."""
        request = shards_pb2.ScaleShardsRequest(shards=shards)
        async for progress in _streamed(self.shard_service.ScaleShards(request, timeout=None)):
            yield progress

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
        async for update in _streamed(self.availability_stub.WatchAvailability(request, timeout=None)):
            yield update

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

    # --- API keys (network:admin) ---

    async def create_key(
        self,
        name: str,
        scopes: Sequence[str],
        channels: Sequence[str] = (),
        asserts_customers: bool = False,
    ) -> keys_pb2.CreateKeyResponse:
        """A new API key; its token is in the response only (keep it: it is not stored)."""
        request = keys_pb2.CreateKeyRequest(
            name=name, scopes=scopes, channels=channels, asserts_customers=asserts_customers
        )
        return await self._call(self.keys.CreateKey, request)

    async def list_keys(self) -> list[keys_pb2.ApiKey]:
        response = await self._call(self.keys.ListKeys, keys_pb2.ListKeysRequest())
        return list(response.keys)

    async def rotate_key(self, name: str, grace_seconds: int = 0) -> keys_pb2.RotateKeyResponse:
        """A new secret; the old one keeps working for `grace_seconds`."""
        request = keys_pb2.RotateKeyRequest(name=name, grace_seconds=grace_seconds)
        return await self._call(self.keys.RotateKey, request)

    async def revoke_key(self, name: str) -> keys_pb2.ApiKey:
        response = await self._call(self.keys.RevokeKey, keys_pb2.RevokeKeyRequest(name=name))
        return response.key

    # --- events and the audit trail (events:read) ---

    async def read_events(
        self, after: str = "", limit: int = 0, wait_ms: int = 0
    ) -> events_pb2.ReadReservationEventsResponse:
        """A page of reservation events, merged from every journal group's stream, after `after`:
        the response's last_id of a previous page (an opaque cursor: pass it back unchanged),
        "" for the oldest kept, "$" for only new ones, or a stream id ("1733580000000-0") to
        start from that time. At most `limit` (0: 100, at most 1000), waiting up to `wait_ms`
        (at most 30000) when there is none yet. Entry ids ("<group>/<stream id>") are unique
        in the feed. Read on with the response's last_id."""
        request = events_pb2.ReadReservationEventsRequest(after=after, limit=limit, wait_ms=wait_ms)
        return await self._read_page(self.events.ReadReservationEvents, request, wait_ms)

    async def read_audit(
        self, after: str = "", limit: int = 0, wait_ms: int = 0, subject_prefix: str = ""
    ) -> events_pb2.ReadAuditEventsResponse:
        """A page of the audit trail (stock, network and key changes, each with who made it),
        as `read_events` (its own cursor: a reservation events cursor is refused); only entries
        whose subject starts with `subject_prefix` when given."""
        request = events_pb2.ReadAuditEventsRequest(
            after=after, limit=limit, wait_ms=wait_ms, subject_prefix=subject_prefix
        )
        return await self._read_page(self.events.ReadAuditEvents, request, wait_ms)

    async def _read_page(self, method: Any, request: Any, wait_ms: int) -> Any:
        """A call that may wait on the server: its deadline leaves room for the wait."""
        try:
            return await method(request, timeout=self.timeout + wait_ms / 1000)
        except grpc.aio.AioRpcError as error:
            raise OmnistockRpcError.from_grpc(error) from None


async def _streamed(call: Any) -> AsyncIterator[Any]:
    """The messages of a server stream; a refusal raised as OmnistockRpcError, and the call
    cancelled however the iteration ends."""
    try:
        async for message in call:
            yield message
    except grpc.aio.AioRpcError as error:
        raise OmnistockRpcError.from_grpc(error) from None
    finally:
        call.cancel()
