"""The multi-partition reservation protocol against in-memory partitions (no runtime)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import pytest

from reservations.commands import AdjustStock, Command, Result, SetStock
from reservations.coordinator import ReservationCoordinator, Sourced, merged_state
from reservations.errors import AlreadyExists, FailedPrecondition, InsufficientStock, InvalidState, NotFound
from reservations.model import Line, Part, PartState
from reservations.partition import Partition
from reservations.shard import ShardState
from reservations.sourcing import Destination

PARTITIONS = 8


def partition_of(key: str) -> int:
    """Deterministic and readable: the digits at the end of the key pick the partition."""
    return int(key.rsplit("-", 1)[1]) % PARTITIONS


class Network:
    """Every partition in one ShardState, reached through a coordinator."""

    def __init__(self) -> None:
        self.now = 1_000.0
        self.state = ShardState((Partition(n) for n in range(PARTITIONS)), expiry_grace=1.0)
        self.calls: list[list[Command]] = []
        self.coordinator = ReservationCoordinator(self.execute, partition_of, lambda: self.now)

    async def execute(self, commands: Sequence[Command]) -> list[Result]:
        self.calls.append(list(commands))
        outcome = self.state.apply_batch(list(commands), self.now)
        return outcome.results  # type: ignore[return-value]

    def stock(self, sku: str, node: str, on_hand: int) -> None:
        self.state.apply_batch([SetStock(partition_of(sku), sku, node, on_hand, self.now)], self.now)

    def position(self, sku: str, node: str) -> tuple[int, int, int]:
        view = self.state.partitions[partition_of(sku)].view(sku, node)
        return view.on_hand, view.reserved, view.committed

    def claims(self) -> int:
        return sum(len(p.claims) for p in self.state.partitions.values())


@pytest.fixture
def net() -> Network:
    network = Network()
    network.stock("sku-1", "dc", 10)
    network.stock("sku-2", "dc", 2)
    return network


async def test_refused_reserve_withdraws_every_part_and_its_claim(net: Network) -> None:
    with pytest.raises(InsufficientStock) as refused:
        await net.coordinator.reserve("order-5", [Line("sku-1", "dc", 4), Line("sku-2", "dc", 3)], 60)
    assert [(s.sku, s.requested, s.available) for s in refused.value.short] == [("sku-2", 3, 2)]
    assert net.position("sku-1", "dc") == (10, 0, 0)
    assert net.claims() == 0
    assert net.state.check() == []
    # The id is free again: a retry that fits succeeds.
    view, replayed = await net.coordinator.reserve(
        "order-5", [Line("sku-1", "dc", 4), Line("sku-2", "dc", 2)], 60
    )
    assert view.state is PartState.HELD and not replayed


async def test_same_id_with_other_lines_is_refused_even_on_other_partitions(net: Network) -> None:
    await net.coordinator.reserve("order-3", [Line("sku-1", "dc", 1)], 60)
    with pytest.raises(AlreadyExists):
        await net.coordinator.reserve("order-3", [Line("sku-2", "dc", 1)], 60)
    assert net.position("sku-2", "dc") == (2, 0, 0)
    assert net.position("sku-1", "dc") == (10, 1, 0)


async def test_confirm_compensates_when_a_part_already_expired(net: Network) -> None:
    await net.coordinator.reserve("order-1", [Line("sku-1", "dc", 3), Line("sku-2", "dc", 1)], 60)
    # One part's timer has run (e.g. the gateway stalled past the grace); the other's has not.
    net.state.partitions[partition_of("sku-2")].expire_due(net.now + 120, grace=1.0)
    with pytest.raises(InvalidState) as refused:
        await net.coordinator.confirm("order-1")
    assert refused.value.reservation.state is PartState.EXPIRED
    # The part that did confirm was released again: no units stay committed.
    assert net.position("sku-1", "dc") == (10, 0, 0)
    assert net.position("sku-2", "dc") == (2, 0, 0)
    assert (await net.coordinator.get("order-1")).state is PartState.EXPIRED
    assert net.state.check() == []


async def test_every_part_decides_expiry_on_one_timestamp(net: Network) -> None:
    await net.coordinator.reserve("order-2", [Line("sku-1", "dc", 1), Line("sku-2", "dc", 1)], 60)
    net.now += 60.5  # past expiry but inside the timer's grace: no part has expired yet
    with pytest.raises(InvalidState) as refused:
        await net.coordinator.confirm("order-2")
    assert refused.value.reservation.state is PartState.EXPIRED
    assert net.position("sku-1", "dc")[2] == 0 and net.position("sku-2", "dc")[2] == 0
    net.now += 1.0
    net.state.expire_due(net.now)
    assert (await net.coordinator.get("order-2")).state is PartState.EXPIRED
    assert net.position("sku-1", "dc") == (10, 0, 0)


async def test_retry_completes_an_interrupted_reserve(net: Network) -> None:
    lines = [Line("sku-1", "dc", 2), Line("sku-2", "dc", 1)]
    await net.coordinator.reserve("order-4", lines, 60)
    # Simulate a gateway that crashed after one part: withdraw the other part by hand.
    from reservations.commands import AbortHold

    await net.execute([AbortHold(partition_of("sku-2"), "order-4")])
    view, replayed = await net.coordinator.reserve("order-4", lines, 60)
    assert view.state is PartState.HELD and not replayed  # the missing part was placed
    assert net.position("sku-1", "dc") == (10, 2, 0)
    assert net.position("sku-2", "dc") == (2, 1, 0)


async def test_lookup_uses_one_call_once_the_reservation_is_known(net: Network) -> None:
    await net.coordinator.reserve("order-6", [Line("sku-1", "dc", 1)], 60)
    net.calls.clear()
    await net.coordinator.confirm("order-6")
    assert len(net.calls) == 1  # no claim lookup: this gateway made the reservation


async def test_unknown_reservation_is_not_found(net: Network) -> None:
    for action in (net.coordinator.confirm, net.coordinator.release, net.coordinator.get):
        with pytest.raises(NotFound):
            await action("order-7")


async def test_extend_moves_every_part_and_refuses_an_expired_hold(net: Network) -> None:
    view, _ = await net.coordinator.reserve("order-8", [Line("sku-1", "dc", 1), Line("sku-2", "dc", 1)], 60)
    net.now += 30
    extended = await net.coordinator.extend("order-8", 600)
    assert extended.expires_at == net.now + 600 > view.expires_at
    assert {p.expires_at for p in net.state.partitions.values() for p in p.parts.values()} == {net.now + 600}
    net.now += 601  # past the new expiry: extend is refused and nothing moves
    with pytest.raises(InvalidState) as refused:
        await net.coordinator.extend("order-8", 600)
    assert refused.value.reservation.state is PartState.EXPIRED
    net.state.expire_due(net.now + 2)
    assert (await net.coordinator.get("order-8")).state is PartState.EXPIRED


async def test_extend_puts_back_parts_that_moved_when_another_already_expired(net: Network) -> None:
    await net.coordinator.reserve("order-9", [Line("sku-1", "dc", 1), Line("sku-2", "dc", 1)], 60)
    # One part's timer ran early (a stalled gateway): extending must not keep the other part alive.
    net.state.partitions[partition_of("sku-2")].expire_due(net.now + 120, grace=1.0)
    with pytest.raises(InvalidState):
        await net.coordinator.extend("order-9", 600)
    held = net.state.partitions[partition_of("sku-1")].parts["order-9"]
    assert held.expires_at == net.now + 60  # back where it was
    net.now += 62
    net.state.expire_due(net.now)
    assert net.position("sku-1", "dc") == (10, 0, 0)


# --- a reservation whose lines end partition by partition ---


async def confirmed(net: Network, rid: str, lines: list[Line]) -> None:
    await net.coordinator.reserve(rid, lines, 60)
    await net.coordinator.confirm(rid)


async def test_a_part_whose_lines_were_all_cancelled_sits_out_confirm_and_extend(net: Network) -> None:
    await net.coordinator.reserve("order-10", [Line("sku-1", "dc", 2), Line("sku-2", "dc", 1)], 60)
    await net.coordinator.close_lines("order-10", "cancel-1", "cancelled", [Line("sku-1", "dc", 2)])
    assert (await net.coordinator.get("order-10")).state is PartState.HELD
    net.now += 30
    extended = await net.coordinator.extend("order-10", 600)
    assert extended.state is PartState.HELD and extended.expires_at == net.now + 600
    view, replayed = await net.coordinator.confirm("order-10")
    assert view.state is PartState.CONFIRMED and not replayed
    assert net.position("sku-2", "dc") == (2, 0, 1)
    assert (await net.coordinator.confirm("order-10"))[1]  # again: a replay
    assert net.state.check() == []


async def test_release_after_one_partition_shipped_everything_releases_the_rest(net: Network) -> None:
    await confirmed(net, "order-11", [Line("sku-1", "dc", 2), Line("sku-2", "dc", 1)])
    await net.coordinator.close_lines("order-11", "ship-1", "fulfilled", [Line("sku-1", "dc", 2)])
    view, replayed = await net.coordinator.release("order-11")
    assert view.state is PartState.RELEASED and not replayed
    assert net.position("sku-1", "dc") == (8, 0, 0)
    assert net.position("sku-2", "dc") == (2, 0, 0)
    assert (await net.coordinator.release("order-11"))[1]
    with pytest.raises(InvalidState) as refused:
        await net.coordinator.confirm("order-11")
    assert refused.value.reservation.state is PartState.RELEASED


@pytest.mark.parametrize(
    ("last", "ended"),
    [("cancelled", PartState.RELEASED), ("fulfilled", PartState.FULFILLED)],
)
async def test_a_reservation_that_ended_line_by_line_refuses_with_its_own_state(
    net: Network, last: str, ended: PartState
) -> None:
    await confirmed(net, "order-12", [Line("sku-1", "dc", 1), Line("sku-2", "dc", 1)])
    await net.coordinator.close_lines("order-12", "cancel-1", "cancelled", [Line("sku-1", "dc", 1)])
    view, _ = await net.coordinator.close_lines("order-12", "close-2", last, [Line("sku-2", "dc", 1)])
    assert view.state is ended
    actions = [net.coordinator.confirm, lambda rid: net.coordinator.extend(rid, 60)]
    if ended is PartState.FULFILLED:
        actions.append(net.coordinator.release)
    for action in actions:
        with pytest.raises(InvalidState) as refused:
            await action("order-12")
        assert refused.value.reservation.state is ended
    if ended is PartState.RELEASED:
        assert (await net.coordinator.release("order-12"))[1]  # already released: a replay
    assert net.state.check() == []


async def test_a_refused_close_is_checked_in_every_partition_before_any_changes(net: Network) -> None:
    await confirmed(net, "order-13", [Line("sku-1", "dc", 1), Line("sku-2", "dc", 1)])
    for kind in ("fulfilled", "cancelled"):
        with pytest.raises(FailedPrecondition, match="1 open, asked 2"):
            await net.coordinator.close_lines(
                "order-13", f"{kind}-1", kind, [Line("sku-1", "dc", 1), Line("sku-2", "dc", 2)]
            )
    assert net.position("sku-1", "dc") == (10, 0, 1)
    view = await net.coordinator.get("order-13")
    assert view.progress == ((0, 0, 0), (0, 0, 0))


async def test_an_operation_id_is_unique_across_partitions(net: Network) -> None:
    await confirmed(net, "order-14", [Line("sku-1", "dc", 2), Line("sku-2", "dc", 2)])
    await net.coordinator.close_lines("order-14", "op-1", "fulfilled", [Line("sku-1", "dc", 1)])
    for lines in ([Line("sku-2", "dc", 1)], [Line("sku-1", "dc", 1), Line("sku-2", "dc", 1)]):
        with pytest.raises(FailedPrecondition, match="used with other content"):
            await net.coordinator.close_lines("order-14", "op-1", "fulfilled", lines)
    with pytest.raises(FailedPrecondition, match="used with other content"):
        await net.coordinator.return_units("order-14", "op-1", Line("sku-2", "dc", 1), "dc", True)
    with pytest.raises(FailedPrecondition, match="used with other content"):
        await net.coordinator.move_line("order-14", "op-1", "sku-2", "dc", "store-1", None)
    view, replayed = await net.coordinator.close_lines(
        "order-14", "op-1", "fulfilled", [Line("sku-1", "dc", 1)]
    )
    assert replayed and view.progress == ((1, 0, 0), (0, 0, 0))
    assert net.position("sku-2", "dc") == (2, 0, 2)


async def test_units_written_off_below_what_is_committed_cannot_ship(net: Network) -> None:
    await confirmed(net, "order-15", [Line("sku-1", "dc", 4)])
    net.state.apply_batch([AdjustStock(partition_of("sku-1"), "count-1", "sku-1", "dc", -7)], net.now)
    with pytest.raises(FailedPrecondition, match="3 sellable on hand, asked to ship 4"):
        await net.coordinator.close_lines("order-15", "ship-1", "fulfilled", [Line("sku-1", "dc", 4)])
    assert net.position("sku-1", "dc") == (3, 0, 4)
    await net.coordinator.close_lines("order-15", "ship-2", "fulfilled", [Line("sku-1", "dc", 3)])
    assert net.position("sku-1", "dc") == (0, 0, 1)
    assert net.state.check() == []


@pytest.mark.parametrize(
    ("kind", "used"),
    [("cancelled", 0), ("fulfilled", 1)],
)
async def test_a_capacity_only_part_ends_with_its_lines(net: Network, kind: str, used: int) -> None:
    # The capacity of store-5 is counted in partition 5, where the order has no lines.
    net.stock("sku-1", "store-5", 3)
    sourced = Sourced("fp-16", (), Destination(1.0, 2.0), capacity=(("store-5", 10),))
    await net.coordinator.reserve("order-16", [Line("sku-1", "store-5", 1)], 60, sourced=sourced)
    await net.coordinator.confirm("order-16")
    assert await net.coordinator.capacity_used(["store-5"]) == {"store-5": 1}
    view, _ = await net.coordinator.close_lines("order-16", "close", kind, [Line("sku-1", "store-5", 1)])
    assert view.state is (PartState.FULFILLED if used else PartState.RELEASED)
    assert await net.coordinator.capacity_used(["store-5"]) == {"store-5": used}
    for action in (net.coordinator.release, net.coordinator.confirm):  # changes nothing now
        with contextlib.suppress(InvalidState):
            await action("order-16")
    assert await net.coordinator.capacity_used(["store-5"]) == {"store-5": used}
    assert net.state.check() == []


def part(state: PartState, quantity: int = 1, fulfilled: int = 0, cancelled: int = 0) -> Part:
    return Part(
        "r",
        "fp",
        (Line("sku-1", "dc", quantity),),
        state,
        0.0,
        60.0,
        0.0,
        "",
        "",
        (),
        (fulfilled,),
        (cancelled,),
    )


@pytest.mark.parametrize(
    ("parts", "state"),
    [
        ([part(PartState.HELD), part(PartState.RELEASED, cancelled=1)], PartState.HELD),
        ([part(PartState.CONFIRMED), part(PartState.FULFILLED, fulfilled=1)], PartState.CONFIRMED),
        (
            [part(PartState.RELEASED, cancelled=1), part(PartState.FULFILLED, fulfilled=1)],
            PartState.FULFILLED,
        ),
        ([part(PartState.RELEASED), part(PartState.FULFILLED, fulfilled=1)], PartState.RELEASED),
        ([part(PartState.RELEASED, 2, fulfilled=1)], PartState.RELEASED),
        ([part(PartState.RELEASED, cancelled=1), part(PartState.RELEASED, cancelled=1)], PartState.RELEASED),
        ([part(PartState.EXPIRED), part(PartState.RELEASED, cancelled=1)], PartState.EXPIRED),
    ],
    ids=[
        "held",
        "confirmed",
        "ended by lines",
        "released",
        "released part-shipped",
        "all cancelled",
        "expired",
    ],
)
def test_the_reservation_state_from_its_parts(parts: list[Part], state: PartState) -> None:
    assert merged_state(parts) is state
