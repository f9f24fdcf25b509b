"""Positions that only have a loaded count live in arrays until something else touches them."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omnistock.availability.positions import PositionView
from omnistock.protos.gen.omnistock.journal.v1 import journal_pb2
from omnistock.reservations.domain.commands import AdjustStock, LoadLevels, PlaceHold, SetStock
from omnistock.reservations.domain.levels import LoadedLevels
from omnistock.reservations.domain.model import Level, LevelColumns, LevelsSet, Line, StockSet
from omnistock.reservations.domain.partition import Partition
from omnistock.reservations.shard.codec import decode_entry, decode_snapshot, encode_entry, encode_snapshot

P = 5


def load(*levels: Level) -> LoadLevels:
    return LoadLevels(P, LevelColumns.of(levels))


def test_loaded_levels_keep_each_sku_s_nodes_in_order() -> None:
    levels = LoadedLevels()
    for node in ("n3", "n1", "n2"):
        levels.put("a", node, int(node[1]), 1.0)
    levels.put("a", "n2", 20, 2.0)  # a newer count replaces, it does not add
    levels.put("b", "n1", 7, 1.0)
    assert list(levels.nodes("a")) == [("n1", 1, 1.0), ("n2", 20, 2.0), ("n3", 3, 1.0)]
    assert (len(levels), levels.node_count("a"), levels.get("a", "n2"), levels.get("a", "n9")) == (
        4,
        3,
        (20, 2.0),
        None,
    )
    assert levels.pop("a", "n2") == (20, 2.0)
    assert levels.pop("a", "n2") is None
    assert [n for n, _, _ in levels.nodes("a")] == ["n1", "n3"]
    assert levels.pop("b", "n1") == (7, 1.0)
    assert sorted(levels.skus()) == ["a"]  # a SKU with no node left is gone
    assert len(levels) == 2


def test_a_load_keeps_plain_counts_out_of_position_objects() -> None:
    p = Partition(P)
    p.handle(load(("a", "n1", 5, 1.0, 0, 0), ("a", "n2", 3, 1.0, 0, 0), ("b", "n1", 4, 1.0, 2, 0)))
    assert p.positions == {"b": {"n1": p.positions["b"]["n1"]}}  # damaged units need a Position
    assert len(p.loaded) == 2
    assert list(p.views("a")) == [
        PositionView("a", "n1", 5, 0, 0, 1.0),
        PositionView("a", "n2", 3, 0, 0, 1.0),
    ]
    assert p.view("b", "n1").damaged == 2
    assert p.check() == []


def test_the_first_hold_or_adjustment_turns_a_loaded_count_into_a_position() -> None:
    p = Partition(P)
    p.handle(load(("a", "n1", 5, 1.0, 0, 0), ("a", "n2", 3, 1.0, 0, 0)))
    p.handle(PlaceHold(P, "r1", "f", (Line("a", "n1", 2),), 10.0, 100.0))
    p.handle(AdjustStock(P, "adj-1", "a", "n2", -1, "count"))
    assert len(p.loaded) == 0
    assert [(v.node_id, v.on_hand, v.reserved, v.as_of) for v in p.views("a")] == [
        ("n1", 5, 2, 1.0),
        ("n2", 2, 0, 1.0),
    ]
    # A later load counts the position where it now lives.
    _, events = p.handle(load(("a", "n1", 9, 2.0, 0, 0), ("a", "n3", 1, 2.0, 0, 0)))
    assert events == [LevelsSet(LevelColumns.of((("a", "n1", 9, 2.0, 0, 0), ("a", "n3", 1, 2.0, 0, 0))))]
    assert (p.view("a", "n1").on_hand, p.view("a", "n1").reserved, len(p.loaded)) == (9, 2, 1)
    assert p.check() == []


def test_an_unchanged_or_older_loaded_count_is_not_journaled_again() -> None:
    p = Partition(P)
    p.handle(SetStock(P, "a", "n1", 5, 2.0))
    assert p.handle(SetStock(P, "a", "n1", 5, 2.0))[1] == []
    result, events = p.handle(load(("a", "n1", 9, 1.0, 0, 0)))
    assert (result.stale, events, p.view("a", "n1").on_hand) == (1, [], 5)


def test_levels_set_and_snapshots_round_trip_with_loaded_and_touched_positions() -> None:
    live = Partition(P)
    _, events = live.handle(load(*((f"s{i}", f"n{j}", i + j, 1.5, 0, 0) for i in range(3) for j in range(4))))
    assert decode_entry(encode_entry(events)) == events
    live.handle(PlaceHold(P, "r1", "f", (Line("s1", "n2", 1),), 10.0, 100.0))
    live.handle(SetStock(P, "s2", "n0", 8, 3.0, 1, 1))
    restored, last = decode_snapshot(encode_snapshot(live, "7-0"))
    assert last == "7-0"
    assert sorted(restored.levels().rows()) == sorted(live.levels().rows())
    assert [list(restored.views(s)) for s in sorted(restored.skus())] == [
        list(live.views(s)) for s in sorted(live.skus())
    ]
    assert restored.check() == []


def test_journals_with_one_event_per_count_still_replay() -> None:
    p = Partition(P)
    old_entry = journal_pb2.JournalEntry(
        events=[
            journal_pb2.Event(stock_set=journal_pb2.StockSet(sku="a", node_id="n1", on_hand=4, as_of=1.0)),
            journal_pb2.Event(
                stock_set=journal_pb2.StockSet(sku="a", node_id="n2", on_hand=6, as_of=1.0, damaged=1)
            ),
        ]
    )
    events = decode_entry(old_entry.SerializeToString())
    assert events == [StockSet("a", "n1", 4, 1.0), StockSet("a", "n2", 6, 1.0, 1, 0)]
    for event in events:
        p.apply(event)
    assert [(v.node_id, v.on_hand, v.damaged) for v in p.views("a")] == [("n1", 4, 0), ("n2", 6, 1)]


def test_level_columns_cut_and_join_by_level() -> None:
    levels = LevelColumns.of(
        [
            ("a", "n1", 1, 1.0, 0, 0),
            ("a", "n2", 2, 1.0, 0, 0),
            ("b", "n1", 3, 2.0, 1, 0),
            ("a", "n3", 4, 3.0, 0, 2),
        ]
    )
    assert levels.sku_runs() == [("a", 0, 2), ("b", 2, 3), ("a", 3, 4)]
    assert list(levels.part(1, 3).rows()) == list(levels.rows())[1:3]
    assert list(levels.runs([(3, 4), (0, 1)]).rows()) == [list(levels.rows())[i] for i in (3, 0)]
    assert levels.take([2, 0]) == LevelColumns.of([list(levels.rows())[i] for i in (2, 0)])
    assert LevelColumns.join([levels.part(0, 2), levels.part(2, 4)]) == levels
    assert (levels.unsellable_in(0, 2), levels.unsellable_in(2, 3), levels.unsellable_in(3, 4)) == (
        False,
        True,
        True,
    )
    assert len(LevelColumns.of([])) == 0


def test_a_journaled_load_leaves_out_columns_of_zeros_and_reads_either_form() -> None:
    plain = LevelColumns.of([("a", "n1", 5, 1.0, 0, 0), ("a", "n2", 3, 1.0, 0, 0)])
    entry = journal_pb2.JournalEntry.FromString(encode_entry([LevelsSet(plain)]))
    assert (len(entry.events[0].levels_set.damaged), len(entry.events[0].levels_set.quality_hold)) == (0, 0)
    assert decode_entry(entry.SerializeToString()) == [LevelsSet(plain)]
    written_whole = journal_pb2.JournalEntry(
        events=[
            journal_pb2.Event(
                levels_set=journal_pb2.LevelsSet(
                    sku=["a", "a"],
                    node_id=["n1", "n2"],
                    on_hand=[5, 3],
                    as_of=[1.0, 1.0],
                    damaged=[0, 0],
                    quality_hold=[0, 0],
                )
            )
        ]
    )
    assert decode_entry(written_whole.SerializeToString()) == [LevelsSet(plain)]
    torn = journal_pb2.JournalEntry(
        events=[
            journal_pb2.Event(
                levels_set=journal_pb2.LevelsSet(sku=["a", "a"], node_id=["n1"], on_hand=[5, 3])
            )
        ]
    )
    with pytest.raises(ValueError, match="differ in length"):
        decode_entry(torn.SerializeToString())


SKUS = ("a", "b", "c")
NODES = ("n1", "n2", "n3")
a_level = st.tuples(
    st.sampled_from(SKUS),
    st.sampled_from(NODES),
    st.integers(2, 9),
    st.sampled_from([1.0, 2.0, 3.0]),
    st.sampled_from([0, 0, 0, 1]),  # damaged, and quality_hold: within on_hand
    st.sampled_from([0, 0, 0, 1]),
)


@settings(max_examples=200, deadline=None)
@given(
    before=st.lists(a_level, max_size=5),
    load=st.lists(a_level, max_size=12),
    whole_sku=st.sampled_from(SKUS),
)
def test_a_load_decides_as_the_same_levels_set_one_at_a_time(
    before: list[Level], load: list[Level], whole_sku: str
) -> None:
    # A SKU new to the partition, sent with each node once, takes the whole-SKU path: make
    # that likely by adding one such run.
    load = [*load, *((whole_sku + "-new", n, i, 1.0, 0, 0) for i, n in enumerate(NODES))]
    at_once, one_by_one = Partition(P), Partition(P)
    for level in before:
        at_once.handle(SetStock(P, *level))
        one_by_one.handle(SetStock(P, *level))
    result, events = at_once.handle(LoadLevels(P, LevelColumns.of(load)))
    applied = sum(one_by_one.handle(SetStock(P, *level))[0].applied for level in load)
    assert (result.applied, result.stale) == (applied, len(load) - applied)
    skus = sorted(one_by_one.skus())
    assert sorted(at_once.skus()) == skus
    assert [list(at_once.views(s)) for s in skus] == [list(one_by_one.views(s)) for s in skus]
    # Its event rebuilds the same partition on replay.
    replayed = Partition(P)
    for level in before:
        replayed.handle(SetStock(P, *level))
    for event in events:
        replayed.apply(event)
    assert [list(replayed.views(s)) for s in skus] == [list(at_once.views(s)) for s in skus]
    assert at_once.check() == []
