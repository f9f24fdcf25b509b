"""The feed of changed positions (ShardState.changes_since) and the gateway's NetworkView built from it."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from omnistock.availability.positions import PositionView
from omnistock.availability.view import NetworkView
from omnistock.reservations.domain.commands import (
    AdjustStock,
    Command,
    ConfirmReservation,
    DecideHold,
    GetPart,
    HoldOutcome,
    LoadLevels,
    PlaceHold,
    ReadPositions,
    RecordClaim,
    ReleaseReservation,
    SetStock,
)
from omnistock.reservations.domain.model import (
    HoldAborted,
    HoldPlaced,
    LevelColumns,
    LevelsSet,
    Line,
    PartChanged,
    StockAdjusted,
    StockState,
    fingerprint,
)
from omnistock.reservations.domain.partition import Partition
from omnistock.reservations.shard.state import ShardState, WrongShard

POSITION_EVENTS = (LevelsSet, StockAdjusted, HoldPlaced, PartChanged, HoldAborted)
"""Events that change a position (the others change records, fences or a part's expiry)."""


def shard(*numbers: int, epoch: str = "e1") -> ShardState:
    return ShardState([Partition(n) for n in numbers], epoch=epoch)


def keys(positions: list[PositionView]) -> list[tuple[str, str]]:
    return sorted((p.sku, p.node_id) for p in positions)


def hold(partition: int, rid: str, sku: str, node: str, qty: int, expires: float = 50.0, channel: str = ""):
    lines = (Line(sku, node, qty),)
    return PlaceHold(partition, rid, fingerprint(lines, channel), lines, 10.0, expires, channel)


def reserve(
    partition: int, rid: str, sku: str, node: str, qty: int, expires: float = 50.0, channel: str = ""
) -> list[Command]:
    """A Reserve whose home and only part are in `partition`: recorded, placed and decided in one batch."""
    lines, attempt = (Line(sku, node, qty),), f"at-{rid}"
    digest = fingerprint(lines, channel)
    return [
        RecordClaim(partition, rid, digest, (partition,), 10.0, attempt=attempt, expires_at=expires),
        PlaceHold(partition, rid, digest, lines, 10.0, expires, channel, attempt=attempt, home=partition),
        DecideHold(partition, rid, attempt),
    ]


def test_a_new_shard_feeds_the_positions_it_was_started_with() -> None:
    p0, p1 = Partition(0), Partition(1)
    p0.handle(SetStock(0, "a", "n1", 5, 1.0))
    p1.handle(SetStock(1, "b", "n1", 7, 1.0))
    state = ShardState([p0, p1], epoch="e1")
    first = state.changes_since("", 0)
    assert (first.epoch, first.version) == ("e1", 1)
    assert keys(first.positions) == [("a", "n1"), ("b", "n1")]
    assert state.changes_since("e1", first.version).positions == []


def test_only_positions_changed_after_the_version_are_sent() -> None:
    state = shard(0, 1)
    state.apply_batch([SetStock(0, "a", "n1", 5, 1.0), SetStock(1, "b", "n1", 5, 1.0)], now=1.0)
    v1 = state.changes_since("e1", 0).version
    state.apply_batch([SetStock(0, "a", "n2", 3, 1.0)], now=1.0)
    v2 = state.changes_since("e1", v1)
    assert keys(v2.positions) == [("a", "n2")]
    state.apply_batch([hold(1, "r1", "b", "n1", 2)], now=1.0)
    v3 = state.changes_since("e1", v2.version)
    assert v3.version > v2.version > v1
    assert [(p.sku, p.node_id, p.reserved) for p in v3.positions] == [("b", "n1", 2)]
    # An older cursor gets everything changed since then, each position once, as it is now.
    since_v1 = state.changes_since("e1", v1)
    assert keys(since_v1.positions) == [("a", "n2"), ("b", "n1")]
    assert {(p.sku, p.node_id): p for p in since_v1.positions}[("b", "n1")].reserved == 2


def test_another_epoch_gets_every_position() -> None:
    state = shard(0, 1, epoch="new")
    state.apply_batch([SetStock(0, "a", "n1", 5, 1.0), SetStock(1, "b", "n1", 5, 1.0)], now=1.0)
    version = state.changes_since("new", 0).version
    for epoch, cursor in [("old", version), ("old", 10**9), ("", version)]:
        answer = state.changes_since(epoch, cursor)
        assert answer.epoch == "new"
        assert keys(answer.positions) == [("a", "n1"), ("b", "n1")]


def test_version_moves_only_when_something_changed() -> None:
    state = shard(0)
    start = state.changes_since("e1", 0).version
    outcome = state.apply_batch([ReadPositions(0, ("a",)), GetPart(0, "nope")], now=1.0)
    assert not outcome.events
    assert state.changes_since("e1", start).version == start
    state.apply_batch([SetStock(0, "a", "n1", 5, 1.0)], now=1.0)
    after = state.changes_since("e1", start).version
    assert after == start + 1
    # a refused command changes nothing
    state.apply_batch([AdjustStock(0, "adj", "a", "n1", -6)], now=1.0)
    assert state.changes_since("e1", after) == state.changes_since("e1", after)
    assert state.changes_since("e1", after).version == after
    assert state.changes_since("e1", after).positions == []


def test_one_batch_is_one_version() -> None:
    state = shard(0)
    start = state.version
    state.apply_batch([SetStock(0, "a", f"n{i}", 5, 1.0) for i in range(5)], now=1.0)
    answer = state.changes_since("e1", start)
    assert answer.version == start + 1
    assert len(answer.positions) == 5


def test_expiry_shows_up_in_the_feed() -> None:
    state = shard(0)
    state.apply_batch(
        [SetStock(0, "a", "n1", 5, 1.0), *reserve(0, "r1", "a", "n1", 3, expires=20.0)], now=1.0
    )
    seen = state.changes_since("e1", 0)
    assert seen.positions[0].reserved == 3
    # its home decides at 20: not before
    assert state.apply_batch([], now=19.99).expired == 0
    assert state.changes_since("e1", seen.version).positions == []
    outcome = state.apply_batch([], now=20.0)
    assert outcome.expired == 1
    after = state.changes_since("e1", seen.version)
    assert after.version > seen.version
    assert [(p.sku, p.node_id, p.reserved) for p in after.positions] == [("a", "n1", 0)]


def test_expire_due_alone_feeds_the_change() -> None:
    state = shard(0)
    state.apply_batch(
        [SetStock(0, "a", "n1", 5, 1.0), *reserve(0, "r1", "a", "n1", 3, expires=20.0)], now=1.0
    )
    version = state.changes_since("e1", 0).version
    assert state.expire_due(30.0)
    assert state.version == version + 1  # noted at once, before anyone asks
    assert [p.reserved for p in state.changes_since("e1", version).positions] == [0]


def test_changes_made_straight_on_a_partition_are_picked_up() -> None:
    p = Partition(0)
    state = ShardState([p], epoch="e1")
    version = state.changes_since("e1", 0).version
    p.handle(SetStock(0, "a", "n1", 4, 1.0))
    answer = state.changes_since("e1", version)
    assert answer.version == version + 1
    assert keys(answer.positions) == [("a", "n1")]


def test_a_partition_this_shard_does_not_own_is_refused_and_changes_nothing() -> None:
    state = shard(0)
    outcome = state.apply_batch([SetStock(5, "a", "n1", 4, 1.0)], now=1.0)
    assert outcome.results == [WrongShard(5)]
    assert state.changes_since("e1", 0).positions == []


# --- NetworkView ---


def pv(sku: str, node: str, on_hand: int) -> PositionView:
    return PositionView(sku, node, on_hand, 0, 0, 1.0)


def test_view_apply_positions_version_and_as_of() -> None:
    view = NetworkView(2)
    assert not view.ready and view.version == 0 and len(view) == 0
    assert view.apply(0, "e0", 3, [pv("a", "n2", 1), pv("a", "n1", 2), pv("b", "n1", 3)], synced_at=10.0) == {
        "a",
        "b",
    }
    assert view.version == 1
    assert not view.ready  # shard 1 has not synced
    assert view.as_of == 0.0  # the oldest shard's last sync
    assert view.apply(1, "e1", 1, [], synced_at=12.0) == set()
    assert view.version == 1  # nothing changed
    assert view.ready
    assert view.as_of == 10.0
    assert [p.node_id for p in view.positions("a")] == ["n1", "n2"]  # sorted by node
    assert view.positions("zzz") == []
    assert len(view) == 3
    assert view.apply(0, "e0", 4, [pv("a", "n1", 9)], synced_at=15.0) == {"a"}
    assert view.version == 2
    assert [p.on_hand for p in view.positions("a")] == [9, 1]
    assert view.as_of == 12.0
    assert (view.cursors[0].epoch, view.cursors[0].version, view.cursors[0].synced_at) == ("e0", 4, 15.0)


# --- property: a view kept by the feed always equals the shards' positions ---

SKUS = ("a", "b", "c")
NODES = ("n1", "n2")
ALL_SKUS = tuple(f"{n}{sku}" for n in (0, 1) for sku in SKUS)


@st.composite
def commands(draw: st.DrawFn, partition: int, step: int) -> list:
    batch = []
    for i in range(draw(st.integers(0, 3))):
        # every node of a SKU lives in one partition: the SKU names its partition
        sku, node = f"{partition}{draw(st.sampled_from(SKUS))}", draw(st.sampled_from(NODES))
        rid = f"r{draw(st.integers(0, 5))}"
        kind = draw(st.sampled_from(["set", "load", "adjust", "hold", "confirm", "release"]))
        if kind == "load":  # a SKU's nodes counted in one go, as a catalog load sends them
            nodes = draw(st.sampled_from([NODES, NODES[:1], NODES[::-1]]))
            counts = [draw(st.integers(0, 8)) for _ in nodes]
            levels = LevelColumns.of(
                (sku, n, h, float(step), 0, 0) for n, h in zip(nodes, counts, strict=True)
            )
            batch.append(LoadLevels(partition, levels))
        elif kind == "set":
            batch.append(
                SetStock(partition, sku, node, draw(st.integers(0, 8)), float(step), draw(st.integers(0, 1)))
            )
        elif kind == "adjust":
            state = draw(st.sampled_from(list(StockState)))
            batch.append(
                AdjustStock(partition, f"adj{step}-{i}", sku, node, draw(st.integers(-3, 3)), "", state)
            )
        elif kind == "hold":
            batch.extend(
                reserve(
                    partition,
                    f"{rid}-{step}",
                    sku,
                    node,
                    draw(st.integers(1, 3)),
                    expires=step + 3.0,
                    channel="web",
                )
            )
        elif kind == "confirm":
            batch.append(ConfirmReservation(partition, f"{rid}-{step - 1}"))
        else:
            batch.append(ReleaseReservation(partition, f"{rid}-{step - 2}"))
    return batch


@settings(max_examples=150, deadline=None)
@given(data=st.data(), steps=st.integers(1, 16))
def test_a_view_synced_from_the_feed_matches_the_shards(data: st.DataObject, steps: int) -> None:
    partitions = {0: Partition(0), 1: Partition(1)}
    owners = [[0], [1]]  # shard -> partitions
    epochs = [0, 0]
    states = [ShardState([partitions[n] for n in owners[s]], epoch=f"s{s}-0") for s in range(2)]
    view = NetworkView(2)
    last_version = [0, 0]

    def sync(s: int, now: float) -> None:
        cursor = view.cursors[s]
        before = {(p.sku, p.node_id): p for sku in ALL_SKUS for p in view.positions(sku)}
        answer = states[s].changes_since(cursor.epoch, cursor.version)
        if answer.epoch == cursor.epoch:
            assert answer.version >= cursor.version  # monotonic within an epoch
        truth = [v for n in owners[s] for sku in ALL_SKUS for v in partitions[n].views(sku)]
        # every position that differs from the view's copy is in the answer
        sent = {(p.sku, p.node_id) for p in answer.positions}
        assert len(sent) == len(answer.positions)  # each position once
        for v in truth:
            if before.get((v.sku, v.node_id)) != v:
                assert (v.sku, v.node_id) in sent, (v, answer)
        view.apply(s, answer.epoch, answer.version, answer.rows, now, answer.loaded)
        last_version[s] = answer.version

    for step in range(1, steps + 1):
        s = data.draw(st.integers(0, 1), label="shard")
        action = data.draw(st.sampled_from(["batch", "batch", "sync", "restart"]), label="action")
        if action == "batch":
            batch = [c for n in owners[s] for c in data.draw(commands(n, step), label="commands")]
            before = states[s].version
            outcome = states[s].apply_batch(batch, now=float(step))
            # one version for the holds it expired first, one for the commands
            assert before <= states[s].version <= before + 2
            touched = any(isinstance(e, POSITION_EVENTS) for evs in outcome.events.values() for e in evs)
            assert (states[s].version > before) == touched
            assert all(getattr(r, "outcome", None) is not HoldOutcome.INVALID for r in outcome.results)
        elif action == "sync":
            sync(s, float(step))
        else:  # the shard restarts: same partitions (recovered), new epoch, version from the start
            epochs[s] += 1
            states[s] = ShardState([partitions[n] for n in owners[s]], epoch=f"s{s}-{epochs[s]}")
    for s in range(2):
        sync(s, 100.0)
    for sku in ALL_SKUS:
        truth = sorted((v for n in partitions for v in partitions[n].views(sku)), key=lambda v: v.node_id)
        assert view.positions(sku) == truth
    assert view.ready and view.as_of == 100.0


def test_changes_overtaken_by_newer_ones_are_left_out() -> None:
    """A fetch asked before a batch reply, answered after it, must not roll the view back."""
    view = NetworkView(shards=1)
    view.apply(0, "e0", 5, [pv("a", "n1", 7)], synced_at=1.0)
    assert view.apply(0, "e0", 4, [pv("a", "n1", 3)], synced_at=2.0) == set()
    assert view.position("a", "n1").on_hand == 7 and view.cursors[0].version == 5
    # Another epoch (a restarted shard) always counts.
    assert view.apply(0, "e1", 1, [pv("a", "n1", 2)], synced_at=3.0) == {"a"}
