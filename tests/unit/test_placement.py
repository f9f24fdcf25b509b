"""The placement of partitions on shards: where a start puts them, what a move changes, and
which moves a change of the shard count takes."""

from __future__ import annotations

import pytest

from omnistock.reservations.domain.placement import Move, Placement


def test_even_puts_partition_p_on_shard_p_mod_shards() -> None:
    placement = Placement.even(8, 3)
    assert placement.owners == (0, 1, 2, 0, 1, 2, 0, 1)
    assert placement.shards == 3 and placement.version == 1 and placement.partitions == 8
    assert placement.partitions_of(0) == (0, 3, 6)
    assert placement.partitions_of(2) == (2, 5)
    assert placement.shard_of(7) == 1
    assert Placement.even(8, 3, version=5).version == 5


def test_a_shard_beyond_every_owner_owns_nothing() -> None:
    assert Placement.even(4, 4).with_shards(6).partitions_of(5) == ()


def test_with_owner_moves_one_partition_one_version_on() -> None:
    before = Placement.even(8, 2, version=3)
    after = before.with_owner(2, 1)
    assert after.owners == (0, 1, 1, 1, 0, 1, 0, 1)
    assert after.version == 4 and after.shards == 2
    assert before.owners == (0, 1, 0, 1, 0, 1, 0, 1)  # frozen: the old copy is unchanged


def test_with_owner_to_a_new_shard_grows_the_shard_count() -> None:
    after = Placement.even(8, 2).with_owner(5, 3)
    assert after.shards == 4
    assert after.partitions_of(3) == (5,)
    assert after.partitions_of(2) == ()


def test_with_shards_refuses_while_a_partition_is_owned_beyond_the_new_count() -> None:
    grown = Placement.even(8, 4)
    with pytest.raises(ValueError, match="beyond 2"):
        grown.with_shards(2)
    shrunk = grown
    for move in grown.moves_to(2):
        shrunk = shrunk.with_owner(move.partition, move.target)
    fewer = shrunk.with_shards(2)
    assert fewer.shards == 2 and fewer.owners == Placement.even(8, 2).owners
    assert fewer.version == shrunk.version + 1


def test_growing_from_2_to_4_moves_exactly_half_each_to_a_new_shard() -> None:
    placement = Placement.even(16, 2)
    moves = placement.moves_to(4)
    assert len(moves) == 8
    assert all(move.source == placement.shard_of(move.partition) for move in moves)
    assert all(move.target in (2, 3) for move in moves)
    assert {move.target for move in moves} == {2, 3}
    moved = placement
    for move in moves:
        moved = moved.with_owner(move.partition, move.target)
    assert moved.owners == Placement.even(16, 4).owners
    assert moved.shards == 4 and moved.version == placement.version + 8
    assert moved.moves_to(4) == []


def test_shrinking_from_4_to_2_moves_them_back() -> None:
    grown = Placement.even(16, 4)
    moves = grown.moves_to(2)
    assert len(moves) == 8
    assert all(move.source in (2, 3) and move.target in (0, 1) for move in moves)
    assert Move(2, 2, 0) in moves and Move(3, 3, 1) in moves
    back = grown
    for move in moves:
        back = back.with_owner(move.partition, move.target)
    assert back.owners == Placement.even(16, 2).owners


def test_the_same_shard_count_moves_nothing() -> None:
    assert Placement.even(16, 3).moves_to(3) == []


def test_json_round_trip_keeps_everything() -> None:
    placement = Placement.even(12, 3, version=7).with_owner(4, 5)
    text = placement.to_json()
    assert Placement.from_json(text) == placement
    assert Placement.from_json(text.encode()) == placement
