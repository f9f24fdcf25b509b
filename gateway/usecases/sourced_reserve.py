"""Reserve lines that name no node: plan by the channel's rules from fresh stock, then hold.

Planning reads positions and capacity strongly consistently from the shards, then
holds the plan in one all-or-nothing step. If stock (or a node's capacity) moved in
between, the hold is refused and the order is planned again from fresh numbers, so
sourcing never oversells. A retry of the same request replays the first answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import replace

from omnistock.availability.answer import promisable_at
from omnistock.availability.network import Network
from omnistock.availability.positions import PositionView
from omnistock.gateway.usecases.reservations import ReservationCoordinator, Sourced
from omnistock.reservations.domain.errors import (
    AlreadyExists,
    CannotSource,
    CapacityReached,
    InsufficientStock,
)
from omnistock.reservations.domain.model import Line, fingerprint
from omnistock.reservations.domain.reservation_view import ReservationView
from omnistock.reservations.domain.sourcing import Destination, SourcingPlan, Wanted, plan

ReadPositions = Callable[[list[str]], Awaitable[Mapping[str, Sequence[PositionView]]]]
PLAN_ATTEMPTS = 3
"""Plans tried when stock keeps moving between planning and holding."""


async def plan_from_shards(
    coordinator: ReservationCoordinator,
    read_positions: ReadPositions,
    network: Network,
    channel_id: str,
    wanted: Sequence[Wanted],
    destination: Destination,
    exclude: Collection[str] = (),
) -> SourcingPlan:
    """A plan from the current (strongly consistent) stock and today's capacity use."""
    channel = network.channels[channel_id]
    eligible = network.eligible(channel_id)
    limited = sorted(n for n in eligible if network.nodes[n].daily_capacity)
    positions, used = await asyncio.gather(
        read_positions(list(dict.fromkeys(w.sku for w in wanted))), coordinator.capacity_used(limited)
    )
    promisable = {
        (p.sku, p.node_id): promisable_at(p, network, channel)
        for rows in positions.values()
        for p in rows
        if p.node_id in eligible
    }
    capacity_left = {n: network.nodes[n].daily_capacity - used.get(n, 0) for n in limited}
    return plan(network, channel_id, wanted, destination, promisable, capacity_left, exclude)


async def reserve_sourced(
    coordinator: ReservationCoordinator,
    read_positions: ReadPositions,
    network: Network,
    reservation_id: str,
    lines: Sequence[Line],
    ttl_seconds: float,
    channel_id: str,
    destination: Destination,
    customer: str = "",
    purchase_limits: Mapping[str, int] | None = None,
    by: str = "",
) -> tuple[ReservationView, bool]:
    """Choose nodes for `lines` (their node_id is empty) and hold them for `by`. Returns
    (reservation, replayed); raises CannotSource when the rules cannot fill the order."""
    digest = fingerprint(lines, channel_id, customer, destination)
    wanted = [Wanted(line.sku, line.quantity) for line in lines]

    async def fresh_plan() -> SourcingPlan:
        return await plan_from_shards(coordinator, read_positions, network, channel_id, wanted, destination)

    # The retry check and the first plan read the shards side by side (one round trip).
    claim, sourcing = await asyncio.gather(coordinator.find(reservation_id), fresh_plan())
    if claim is not None:
        if claim.fingerprint != digest:
            raise AlreadyExists(
                "reservation",
                reservation_id,
                f"reservation id {reservation_id!r} is already used with other lines, channel, customer"
                " or destination; use a new id for a new reservation",
            )
        return await coordinator.get(reservation_id), True
    channel = network.channels[channel_id]
    last: Exception | None = None
    for attempt in range(PLAN_ATTEMPTS):
        if attempt:
            sourcing = await fresh_plan()
        if not sourcing.complete:
            raise CannotSource(sourcing)
        chosen = [Line(sku, node_id, units) for sku, node_id, units in sourcing.allocations]
        limits = {
            (ln.sku, ln.node_id): network.limit(channel, ln.sku, network.nodes[ln.node_id]) for ln in chosen
        }
        nodes = sorted({ln.node_id for ln in chosen})
        capacity = tuple(
            (n, network.nodes[n].daily_capacity) for n in nodes if network.nodes[n].daily_capacity
        )
        sourced = Sourced(digest, sourcing.explanations, destination, capacity)
        try:
            return await coordinator.reserve(
                reservation_id,
                chosen,
                ttl_seconds,
                channel_id,
                limits,
                customer,
                purchase_limits,
                sourced,
                by,
            )
        except (InsufficientStock, CapacityReached) as moved:
            last = moved  # stock or capacity changed since the plan was made: plan again
    assert last is not None
    raise last


def single_node(network: Network, channel_id: str) -> Network:
    """The network with the channel's policy narrowed to one node and whole lines (a moved
    line goes to exactly one node)."""
    channel = network.channels[channel_id]
    policy = replace(channel.sourcing, split_lines=False, max_shipments=1)
    narrowed = network.with_changes(channels=[replace(channel, sourcing=policy)])
    return narrowed
