"""Checkout and after: the rules a reservation meets before its stock is held, and moving a
line to another node.

A Reserve reads top to bottom: the gRPC edge (gateway/grpc/servicers.py) converts the request
and calls `Checkout.reserve`; the rules here (known and enabled nodes, the channel's limits,
per-customer purchase limits, or sourcing when the lines name no node) decide what may be
held; `ReservationCoordinator.reserve` (gateway/usecases/reservations.py) holds it across
partitions, through the shards (gateway/transport, then reservations/shard).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from omnistock.availability.network import Network
from omnistock.gateway.usecases.network_rules import (
    channel_limits,
    require_channel,
    require_enabled,
    require_nodes,
)
from omnistock.gateway.usecases.reservations import ReservationCoordinator
from omnistock.gateway.usecases.sourced_reserve import (
    ReadPositions,
    plan_from_shards,
    reserve_sourced,
    single_node,
)
from omnistock.reservations.domain.errors import CannotSource, FailedPrecondition, InvalidArgument
from omnistock.reservations.domain.model import Line, PartState
from omnistock.reservations.domain.reservation_view import ReservationView
from omnistock.reservations.domain.sourcing import Destination, LineSourcing, Wanted


class Checkout:
    def __init__(
        self,
        coordinator: ReservationCoordinator,
        positions: ReadPositions,
        network: Callable[[], Network],
    ) -> None:
        self._coordinator = coordinator
        self._positions = positions
        self._network = network

    async def reserve(
        self,
        reservation_id: str,
        lines: Sequence[Line],
        ttl_seconds: float,
        channel_id: str = "",
        customer_id: str = "",
        destination: Destination | None = None,
        by: str = "",
    ) -> tuple[ReservationView, bool]:
        """Hold every line or none for `by` (the caller's label); lines that name no node are
        sourced by the channel's rules towards `destination`. Returns (reservation, replayed)."""
        network = self._network()
        if destination is not None:
            require_channel(network, channel_id)
            if destination.pickup_node_id:
                require_nodes(network, [destination.pickup_node_id])
            purchase_limits = _purchase_limits(network, customer_id, lines)
            return await reserve_sourced(
                self._coordinator,
                self._positions,
                network,
                reservation_id,
                lines,
                ttl_seconds,
                channel_id,
                destination,
                customer_id,
                purchase_limits,
                by,
            )
        require_enabled(network, {line.node_id for line in lines})
        limits = channel_limits(network, channel_id, lines) if channel_id else None
        purchase_limits = _purchase_limits(network, customer_id, lines)
        return await self._coordinator.reserve(
            reservation_id, lines, ttl_seconds, channel_id, limits, customer_id, purchase_limits, by=by
        )

    async def reassign(
        self,
        reservation_id: str,
        reassignment_id: str,
        sku: str,
        from_node: str,
        to_node: str = "",
        by: str = "",
    ) -> tuple[ReservationView, bool, LineSourcing | None]:
        """Move a line's open units to `to_node`, or, without one, to the node the reservation's
        channel rules choose. Returns (reservation, replayed, why that node when it was chosen)."""
        current = await self._coordinator.get(reservation_id)
        sourcing = None
        if not to_node and _open_units(current, sku, from_node):
            sourcing = await self._source_move(current, sku, from_node)
            to_node = next(v.node_id for v in sourcing.considered if v.chosen)
        # Otherwise (nothing open there any more) the shard replays a retry of this move or
        # says why there is nothing to move.
        network = self._network()
        if to_node:
            require_enabled(network, [to_node])
        limit = None
        if current.channel and to_node:
            if to_node not in network.eligible(current.channel):
                raise FailedPrecondition(
                    f"node {to_node} is not one of channel {current.channel}'s enabled nodes; name another"
                )
            limit = network.limit(network.channels[current.channel], sku, network.nodes[to_node])
        view, replayed = await self._coordinator.move_line(
            reservation_id, reassignment_id, sku, from_node, to_node, limit, by
        )
        return view, replayed, sourcing

    async def _source_move(self, current: ReservationView, sku: str, from_node: str) -> LineSourcing:
        """Choose the node a line moves to by the reservation's channel rules, from its
        destination (or, without one, from the node it leaves)."""
        if not current.channel:
            raise InvalidArgument(
                [
                    (
                        "to_node_id",
                        "is required: the reservation has no channel whose rules could choose a node",
                    )
                ]
            )
        network = self._network()
        units = _open_units(current, sku, from_node)
        destination = current.destination
        if destination is not None and destination.pickup_node_id:
            raise InvalidArgument(
                [("to_node_id", "is required: a pickup order is collected at its store, so name the node")]
            )
        if destination is None:
            leaving = network.nodes.get(from_node)
            destination = Destination(leaving.latitude, leaving.longitude) if leaving else Destination()
        taken = {ln.node_id for ln in current.lines if ln.sku == sku}
        sourcing = await plan_from_shards(
            self._coordinator,
            self._positions,
            single_node(network, current.channel),
            current.channel,
            [Wanted(sku, units)],
            destination,
            exclude=taken,
        )
        if not sourcing.complete:
            raise CannotSource(sourcing)
        return sourcing.explanations[0]


def _purchase_limits(network: Network, customer_id: str, lines: Sequence[Line]) -> dict[str, int]:
    """The limits of the SKUs asked for; a limited SKU needs to know whose basket it is."""
    limits = network.purchase_limits
    limited = {line.sku: limits[line.sku] for line in lines if line.sku in limits}
    if limited and not customer_id:
        raise InvalidArgument(
            [("customer_id", f"is required: {', '.join(sorted(limited))} has a per-customer purchase limit")]
        )
    return limited


def _open_units(reservation: ReservationView, sku: str, node_id: str) -> int:
    """Units of the line still held or committed (0 when there is no such line or it is not open)."""
    if reservation.state not in (PartState.HELD, PartState.CONFIRMED):
        return 0
    for index, line in enumerate(reservation.lines):
        if (line.sku, line.node_id) == (sku, node_id):
            fulfilled, cancelled, _ = reservation.progress[index] if reservation.progress else (0, 0, 0)
            return line.quantity - fulfilled - cancelled
    return 0
