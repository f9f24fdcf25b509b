"""The multi-partition reservation protocol against in-memory partitions (no runtime)."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Sequence

import pytest

from omnistock.gateway.usecases.reservations import ReservationCoordinator, Sourced
from omnistock.reservations.domain.audit import disagreements, rows_of
from omnistock.reservations.domain.commands import (
    AdjustStock,
    Command,
    HoldOutcome,
    HoldResult,
    PlaceHold,
    RecordClaim,
    Result,
    SetStock,
)
from omnistock.reservations.domain.errors import (
    AlreadyExists,
    FailedPrecondition,
    InsufficientStock,
    InvalidState,
    NotFound,
    OmnistockError,
)
from omnistock.reservations.domain.model import Line, Part, PartState
from omnistock.reservations.domain.partition import Partition
from omnistock.reservations.domain.reservation_view import merged_state
from omnistock.reservations.domain.sourcing import Destination
from omnistock.reservations.shard.state import Handoff, ShardState

PARTITIONS = 8
SHARDS = 2


def partition_of(key: str) -> int:
    """Deterministic and readable: the digits at the end of the key pick the partition."""
    return int(key.rsplit("-", 1)[1]) % PARTITIONS


class GatewayDied(Exception):
    """The gateway process ended: nothing it had in flight goes on."""


class Gateway:
    """A coordinator as one gateway process runs it; `die_after(n)` ends it at its n-th call."""

    def __init__(self, net: Network) -> None:
        self.net = net
        self.alive = True
        self.calls_left: int | None = None
        self.coordinator = ReservationCoordinator(
            self.execute,
            partition_of,
            lambda: net.now,
            colocated=lambda partitions: len({p % SHARDS for p in partitions}) <= 1,
        )

    def die_after(self, calls: int) -> None:
        self.calls_left = calls

    async def execute(self, commands: Sequence[Command]) -> list[Result]:
        if self.calls_left is not None:
            if self.calls_left <= 0:
                self.alive = False
            self.calls_left -= 1
        if not self.alive:
            raise GatewayDied()
        return await self.net.execute(commands)


class Network:
    """The partitions over two shards (even and odd numbers), each applying its batches as
    the shard process does, reached through a gateway's coordinator."""

    def __init__(self) -> None:
        self.now = 1_000.0
        self.shards = [
            ShardState(Partition(n) for n in range(PARTITIONS) if n % SHARDS == shard)
            for shard in range(SHARDS)
        ]
        self.calls: list[list[Command]] = []
        self.handoffs: list[Handoff] = []
        self.gateway = Gateway(self)
        self.coordinator = self.gateway.coordinator

    def restart_gateway(self) -> None:
        self.gateway = Gateway(self)
        self.coordinator = self.gateway.coordinator

    async def execute(self, commands: Sequence[Command]) -> list[Result]:
        self.calls.append(list(commands))
        by_shard: dict[int, list[int]] = {}
        for position, command in enumerate(commands):
            by_shard.setdefault(command.partition % SHARDS, []).append(position)
        results: list[Result | None] = [None] * len(commands)
        for shard, positions in by_shard.items():
            outcome = self.shards[shard].apply_batch([commands[i] for i in positions], self.now)
            self.handoffs.extend(outcome.handoffs)
            for position, result in zip(positions, outcome.results, strict=True):
                assert isinstance(result, Result.__args__)  # type: ignore[attr-defined]
                results[position] = result
        return results  # type: ignore[return-value]

    async def courier(self) -> None:
        """What the gateways' couriers do: call every shard, carry what it hands out."""
        await self.coordinator.settled()
        for _ in range(10):
            for shard in self.shards:
                self.handoffs.extend(shard.apply_batch([], self.now).handoffs)
            if not self.handoffs:
                return
            handed, self.handoffs = self.handoffs, []
            for handoff in handed:
                await self.coordinator.finish(handoff.home, handoff.reservation_id, handoff.intent)
            await self.coordinator.settled()
        raise AssertionError("handoffs keep coming")

    def partition(self, number: int) -> Partition:
        return self.shards[number % SHARDS].partitions[number]

    def stock(self, sku: str, node: str, on_hand: int) -> None:
        p = partition_of(sku)
        self.shards[p % SHARDS].apply_batch([SetStock(p, sku, node, on_hand, self.now)], self.now)

    def position(self, sku: str, node: str) -> tuple[int, int, int]:
        view = self.partition(partition_of(sku)).view(sku, node)
        return view.on_hand, view.reserved, view.committed

    def claims(self) -> int:
        return sum(len(s.partitions[n].claims) for s in self.shards for n in s.partitions)

    def check(self, recovered: bool = False) -> list[str]:
        """Conservation in every shard, and every reservation's parts agreeing with its home
        (and, once recovery has run, nothing left in doubt)."""
        records, parts = [], []
        for shard in self.shards:
            for partition in shard.partitions.values():
                r, p = rows_of(partition)
                records += r
                parts += p
        report = disagreements(records, parts)
        found = [f"{d.reservation_id}: {d.problem}" for d in report.disagreements]
        if recovered and report.in_doubt:
            found.append(f"{report.in_doubt} reservation(s) still in doubt")
        return [p for shard in self.shards for p in shard.check()] + found


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
    await net.coordinator.settled()
    assert net.position("sku-1", "dc") == (10, 0, 0)
    assert net.claims() == 0
    assert net.check() == []
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
    assert net.check() == []


async def test_a_hold_past_its_expiry_reads_expired_everywhere_before_the_timer_runs(net: Network) -> None:
    await net.coordinator.reserve("order-2", [Line("sku-1", "dc", 1), Line("sku-2", "dc", 1)], 60)
    net.now += 60  # at expires_at: no timer has run yet
    for action in (net.coordinator.confirm, lambda rid: net.coordinator.extend(rid, 60)):
        with pytest.raises(InvalidState) as refused:
            await action("order-2")
        assert refused.value.reservation.state is PartState.EXPIRED
    assert (await net.coordinator.get("order-2")).state is PartState.EXPIRED
    assert net.position("sku-1", "dc")[1:] == (1, 0)  # units come back when the home decides
    await net.courier()
    assert net.position("sku-1", "dc") == (10, 0, 0)
    assert net.position("sku-2", "dc") == (2, 0, 0)
    assert {p.state for s in net.shards for n in s.partitions for p in s.partitions[n].parts.values()} == {
        PartState.EXPIRED
    }
    assert net.check() == []


async def test_parts_never_expire_on_their_own_so_a_confirm_made_in_time_holds_everywhere(
    net: Network,
) -> None:
    await net.coordinator.reserve("order-1", [Line("sku-1", "dc", 3), Line("sku-2", "dc", 1)], 60)
    net.now += 59.9
    view, _ = await net.coordinator.confirm("order-1")
    net.now += 3600
    await net.courier()
    assert view.state is PartState.CONFIRMED
    assert (await net.coordinator.get("order-1")).state is PartState.CONFIRMED
    assert net.position("sku-1", "dc") == (10, 0, 3) and net.position("sku-2", "dc") == (2, 0, 1)
    assert net.check() == []


async def test_with_every_partition_in_one_shard_a_reserve_and_a_confirm_are_one_call_each(
    net: Network,
) -> None:
    lines = [Line("sku-1", "dc", 1), Line("sku-3", "dc", 0 + 1)]  # partitions 1 and 3, home 5: shard 1
    net.stock("sku-3", "dc", 5)
    net.calls.clear()
    await net.coordinator.reserve("order-5", lines, 60)
    await net.coordinator.confirm("order-5")
    await net.coordinator.settled()
    assert len(net.calls) == 2
    assert net.check() == []


async def test_unknown_reservation_is_not_found(net: Network) -> None:
    for action in (net.coordinator.confirm, net.coordinator.release, net.coordinator.get):
        with pytest.raises(NotFound):
            await action("order-7")


async def test_extend_moves_every_part_and_refuses_an_expired_hold(net: Network) -> None:
    view, _ = await net.coordinator.reserve("order-8", [Line("sku-1", "dc", 1), Line("sku-2", "dc", 1)], 60)
    net.now += 30
    extended = await net.coordinator.extend("order-8", 600)
    assert extended.expires_at == net.now + 600 > view.expires_at
    parts = [p for s in net.shards for n in s.partitions for p in s.partitions[n].parts.values()]
    assert {p.expires_at for p in parts} == {net.now + 600}
    net.now += 601  # past the new expiry: extend is refused and nothing moves
    with pytest.raises(InvalidState) as refused:
        await net.coordinator.extend("order-8", 600)
    assert refused.value.reservation.state is PartState.EXPIRED
    await net.courier()
    assert (await net.coordinator.get("order-8")).state is PartState.EXPIRED
    assert net.check() == []


# --- crashes: a gateway that dies midway leaves nothing half done once recovery has run ---


async def test_a_reserve_cut_after_its_record_is_aborted_by_the_home(net: Network) -> None:
    net.gateway.die_after(1)  # the record is PENDING at the home; no part elsewhere
    with pytest.raises(GatewayDied):
        await net.coordinator.reserve("order-4", [Line("sku-1", "dc", 2), Line("sku-2", "dc", 1)], 60)
    net.restart_gateway()
    with pytest.raises(NotFound):  # never acknowledged: no one may see it
        await net.coordinator.get("order-4")
    net.now += 5.0  # the home's timer aborts an attempt undecided for this long
    await net.courier()
    assert net.position("sku-1", "dc") == (10, 0, 0) and net.position("sku-2", "dc") == (2, 0, 0)
    assert net.claims() == 0 and net.check() == []
    view, replayed = await net.coordinator.reserve(
        "order-4", [Line("sku-1", "dc", 2), Line("sku-2", "dc", 1)], 60
    )
    assert view.state is PartState.HELD and not replayed


async def test_a_reserve_cut_after_its_parts_is_aborted_and_its_parts_withdrawn(net: Network) -> None:
    net.gateway.die_after(2)  # record and every part placed; no decision
    with pytest.raises(GatewayDied):
        await net.coordinator.reserve("order-4", [Line("sku-1", "dc", 2), Line("sku-2", "dc", 1)], 60)
    net.restart_gateway()
    assert net.position("sku-1", "dc") == (10, 2, 0)  # provisional: reserved, promised to no one
    net.now += 5.0
    await net.courier()
    assert net.position("sku-1", "dc") == (10, 0, 0) and net.position("sku-2", "dc") == (2, 0, 0)
    assert net.claims() == 0 and net.check() == []


@pytest.mark.parametrize("calls", [1, 2])
async def test_a_confirm_cut_between_its_parts_is_finished_without_a_client(net: Network, calls: int) -> None:
    await net.coordinator.reserve("order-9", [Line("sku-1", "dc", 2), Line("sku-2", "dc", 1)], 60)
    net.gateway.die_after(calls)  # 1: decided at the home, no step elsewhere; 2: steps taken, home not told
    with contextlib.suppress(GatewayDied):
        await net.coordinator.confirm("order-9")
    await net.coordinator.settled()
    assert not net.gateway.alive
    net.restart_gateway()
    assert (await net.coordinator.get("order-9")).state is PartState.CONFIRMED  # decided: it is so
    net.now += 3.0  # the dead gateway's lease on carrying it runs out
    await net.courier()
    assert net.position("sku-1", "dc") == (10, 0, 2) and net.position("sku-2", "dc") == (2, 0, 1)
    net.now += 3600  # and nothing expires later
    await net.courier()
    assert net.position("sku-1", "dc") == (10, 0, 2) and net.check() == []


async def test_a_retry_finishes_what_a_crash_left_and_answers_as_the_first_did(net: Network) -> None:
    await net.coordinator.reserve("order-9", [Line("sku-1", "dc", 2), Line("sku-2", "dc", 1)], 60)
    net.gateway.die_after(1)
    with pytest.raises(GatewayDied):
        await net.coordinator.release("order-9")
    net.restart_gateway()
    view, replayed = await net.coordinator.release("order-9")
    assert view.state is PartState.RELEASED and replayed
    await net.coordinator.settled()
    assert net.position("sku-1", "dc") == (10, 0, 0) and net.position("sku-2", "dc") == (2, 0, 0)
    assert net.check() == []


async def test_a_late_part_of_an_aborted_attempt_is_fenced_out(net: Network) -> None:
    net.gateway.die_after(1)  # order-6's home (6) and sku-2's partition (2) are in shard 0, sku-1's in 1
    with pytest.raises(GatewayDied):
        await net.coordinator.reserve("order-6", [Line("sku-1", "dc", 2), Line("sku-2", "dc", 1)], 60)
    net.restart_gateway()
    late = next(c for c in net.calls[-1] if isinstance(c, RecordClaim))
    net.now += 5.0
    await net.courier()
    # The dead gateway's PlaceHold for the other shard arrives only now.
    hold = PlaceHold(
        partition_of("sku-1"),
        "order-6",
        late.fingerprint,
        (Line("sku-1", "dc", 2),),
        late.created_at,
        late.expires_at,
        attempt=late.attempt,
        home=late.partition,
    )
    (result,) = await net.execute([hold])
    assert isinstance(result, HoldResult) and result.outcome is HoldOutcome.FENCED
    assert net.position("sku-1", "dc") == (10, 0, 0) and net.position("sku-2", "dc") == (2, 0, 0)
    assert net.check() == []


async def test_random_crashes_leave_every_reservation_in_one_state(net: Network) -> None:
    """Seeded rounds of mixed multi-part work, the gateway killed at a random call in each,
    then recovery (a new gateway, the homes' timers, the couriers): every invariant holds."""
    rng = random.Random(25)
    skus = [f"sku-{n}" for n in range(1, 7)]
    for sku in skus:
        net.stock(sku, "dc", 40)
    opened: list[str] = []
    for round_number in range(150):
        net.gateway.die_after(rng.randrange(0, 6))
        rid = f"order-{round_number}"
        action = rng.choice(["reserve", "reserve", "confirm", "release", "extend", "fulfil", "cancel"])
        try:
            if action == "reserve" or not opened:
                lines = [Line(sku, "dc", rng.randint(1, 3)) for sku in rng.sample(skus, rng.randint(1, 3))]
                await net.coordinator.reserve(rid, lines, rng.choice([5, 60, 600]))
                opened.append(rid)
            else:
                target = rng.choice(opened)
                if action == "confirm":
                    await net.coordinator.confirm(target)
                elif action == "release":
                    await net.coordinator.release(target)
                elif action == "extend":
                    await net.coordinator.extend(target, 300)
                else:
                    view = await net.coordinator.get(target)
                    line = rng.choice(view.lines)
                    kind = "fulfilled" if action == "fulfil" else "cancelled"
                    await net.coordinator.close_lines(
                        target, f"{rid}-op", kind, [Line(line.sku, line.node_id, 1)]
                    )
        except (GatewayDied, OmnistockError):
            pass
        await net.coordinator.settled()
        if net.gateway.alive:
            net.gateway.calls_left = None
        else:
            net.restart_gateway()
        net.now += rng.choice([0.0, 0.5, 3.0, 10.0])
        await net.courier()
        net.now += 6.0  # every lease and PENDING timeout over: recovery has finished everything
        await net.courier()
        assert net.check(recovered=True) == [], f"round {round_number} ({action})"
    assert sum(s.partitions[n].claims != {} for s in net.shards for n in s.partitions) > 0


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
    assert net.check() == []


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
    assert net.check() == []


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
    await net.execute([AdjustStock(partition_of("sku-1"), "count-1", "sku-1", "dc", -7)])
    with pytest.raises(FailedPrecondition, match="3 sellable on hand, asked to ship 4"):
        await net.coordinator.close_lines("order-15", "ship-1", "fulfilled", [Line("sku-1", "dc", 4)])
    assert net.position("sku-1", "dc") == (3, 0, 4)
    await net.coordinator.close_lines("order-15", "ship-2", "fulfilled", [Line("sku-1", "dc", 3)])
    assert net.position("sku-1", "dc") == (0, 0, 1)
    assert net.check() == []


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
    assert net.check() == []


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
